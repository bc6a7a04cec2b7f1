//! Every syntax error of a script, for `sluice check`, each where a user
//! looks for it. Rhai's compiler stops at the first error; here:
//!
//! - a `{`, `(` or `[` that is never closed is reported where it was
//!   opened, and a closer that closes nothing where it is;
//! - a missing `;` is reported at the end of the statement that lacks it,
//!   not at the start of the next one;
//! - after an error on a line whose brackets balance, that line is set
//!   aside (a `let` keeps its name, as `()`) and the script compiled again,
//!   so independent mistakes on later lines are reported too.

use rhai::Engine;

use super::SyntaxError;

/// The most errors reported for one script.
const MAX_ERRORS: usize = 10;

/// Every syntax error of a transform script, in order; empty when it compiles.
pub fn errors(engine: &Engine, source: &str) -> Vec<SyntaxError> {
    let mut out: Vec<SyntaxError> = Vec::new();
    let mut text = source.to_owned();
    while out.len() < MAX_ERRORS {
        // Brackets first: with one left open, Rhai's error would be at the
        // end of the script.
        let (e, bracket) = match brackets(&text) {
            Some(e) => (e, true),
            None => match super::compile_script(engine, &text) {
                Err(e) => (at_statement_end(&text, e), false),
                Ok(_) => break,
            },
        };
        let line = e.line;
        if out.iter().any(|o| o.line == line) {
            break;
        }
        out.push(e);
        // Set the line aside, if that cannot make errors of its own: the
        // line of a bracket error holds the bracket; another line must
        // balance its brackets by itself.
        let lines: Vec<&str> = text.split('\n').collect();
        let Some(bad) = lines.get(line.wrapping_sub(1)) else {
            break;
        };
        if !bracket && brackets(bad).is_some() {
            break;
        }
        let replacement = set_aside(bad);
        let mut next: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
        next[line - 1] = replacement;
        text = next.join("\n");
    }
    out.sort_by_key(|e| (e.line, e.column));
    out
}

/// A line replaced by what keeps the rest of the script meaning the same:
/// a `let NAME` declares `NAME` as `()`, anything else becomes blank.
fn set_aside(line: &str) -> String {
    let t = line.trim_start();
    for kw in ["let ", "const "] {
        if let Some(rest) = t.strip_prefix(kw) {
            let name: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                return format!("let {name} = ();");
            }
        }
    }
    String::new()
}

/// Rhai reports a missing `;` at the token after it: move it to just after
/// the statement's last character.
fn at_statement_end(text: &str, e: SyntaxError) -> SyntaxError {
    if !e.message.contains("to terminate this statement") {
        return e;
    }
    let lines: Vec<&str> = text.split('\n').collect();
    // The error's position, as (line index, char column), then back over
    // blanks and comments-only lines to the last character before it.
    let mut l = e.line.saturating_sub(1).min(lines.len().saturating_sub(1));
    let mut col = e.column.saturating_sub(1);
    loop {
        let Some(line) = lines.get(l) else {
            return e;
        };
        let before: String = line.chars().take(col).collect();
        let code = strip_comment(&before);
        let trimmed = code.trim_end();
        if !trimmed.is_empty() {
            return SyntaxError {
                message: e.message,
                line: l + 1,
                column: trimmed.chars().count() + 1,
            };
        }
        if l == 0 {
            return e;
        }
        l -= 1;
        col = usize::MAX;
    }
}

/// `line` without a trailing `//` comment (outside strings).
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut prev = '\0';
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q && prev != '\\' => quote = None,
            Some(_) => {}
            None if c == '"' || c == '`' => quote = Some(c),
            None if c == '/' && prev == '/' => return &line[..i - 1],
            None => {}
        }
        prev = if prev == '\\' && c == '\\' { '\0' } else { c };
    }
    line
}

/// The first bracket that is never closed (where it was opened), or a
/// closer that closes nothing or the wrong bracket; strings, characters and
/// comments are skipped.
pub fn brackets(source: &str) -> Option<SyntaxError> {
    let mut stack: Vec<(char, usize, usize)> = Vec::new();
    let (mut line, mut col) = (1usize, 0usize);
    let mut chars = source.chars().peekable();
    let mut quote: Option<char> = None;
    let mut block_comment = false;
    let mut line_comment = false;
    while let Some(c) = chars.next() {
        col += 1;
        if c == '\n' {
            line += 1;
            col = 0;
            line_comment = false;
            if quote == Some('\'') || quote == Some('"') {
                // An unterminated string: Rhai reports it.
                return None;
            }
            continue;
        }
        if line_comment {
            continue;
        }
        if block_comment {
            if c == '*' && chars.peek() == Some(&'/') {
                chars.next();
                col += 1;
                block_comment = false;
            }
            continue;
        }
        if let Some(q) = quote {
            if c == '\\' && q != '`' {
                chars.next();
                col += 1;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '`' | '\'' => quote = Some(c),
            '/' if chars.peek() == Some(&'/') => line_comment = true,
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                col += 1;
                block_comment = true;
            }
            '{' | '(' | '[' => stack.push((c, line, col)),
            '}' | ')' | ']' => {
                let open = match c {
                    '}' => '{',
                    ')' => '(',
                    _ => '[',
                };
                match stack.pop() {
                    Some((o, ..)) if o == open => {}
                    Some((o, l, c0)) => {
                        return Some(SyntaxError {
                            message: format!(
                                "`{o}` is closed by `{c}`: close it with `{}` first",
                                closer(o)
                            ),
                            line: l,
                            column: c0,
                        });
                    }
                    None => {
                        return Some(SyntaxError {
                            message: format!("`{c}` closes nothing: no `{open}` is open here"),
                            line,
                            column: col,
                        });
                    }
                }
            }
            _ => {}
        }
    }
    if quote.is_some() || block_comment {
        return None;
    }
    stack.pop().map(|(o, l, c0)| SyntaxError {
        message: format!(
            "`{o}` is never closed: add the `{}` that closes it",
            closer(o)
        ),
        line: l,
        column: c0,
    })
}

fn closer(open: char) -> char {
    match open {
        '{' => '}',
        '(' => ')',
        _ => ']',
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(src: &str) -> Vec<(usize, usize, String)> {
        let e = crate::transform::engine(&crate::transform::Limits::default());
        errors(&e, src)
            .into_iter()
            .map(|e| (e.line, e.column, e.message))
            .collect()
    }

    #[test]
    fn a_missing_semicolon_is_reported_where_the_statement_ends() {
        assert_eq!(
            found("let a = 1   // one\n\nlet b = 2;\nrecord"),
            [(1, 10, "Expecting ';' to terminate this statement".into())]
        );
    }

    #[test]
    fn an_unclosed_bracket_is_reported_where_it_was_opened() {
        assert_eq!(
            found("if record.a > 1 {\n  record.b = \"}\";\nrecord"),
            [(
                1,
                17,
                "`{` is never closed: add the `}` that closes it".into()
            )]
        );
        assert_eq!(
            found("record.x = [1, 2);\nrecord"),
            [(
                1,
                12,
                "`[` is closed by `)`: close it with `]` first".into()
            )]
        );
        assert_eq!(
            found("record }\n"),
            [(1, 8, "`}` closes nothing: no `{` is open here".into())]
        );
        // Brackets in strings, characters and comments do not count.
        assert_eq!(
            found("let s = \"{(\"; let c = '['; // }\n/* ) */ record"),
            []
        );
    }

    #[test]
    fn independent_mistakes_on_later_lines_are_reported_too() {
        assert_eq!(
            found("let x = recrod.a;\nlet y = x + reccord.b;\nrecord.z = y;\nrecord"),
            [
                (1, 9, "Undefined variable: recrod".into()),
                (2, 13, "Undefined variable: reccord".into()),
            ]
        );
        assert_eq!(
            found("let a = ;\nrecord.b = a + nope;\nrecord"),
            [
                (1, 9, "Unexpected ';'".into()),
                (2, 16, "Undefined variable: nope".into()),
            ]
        );
        assert_eq!(found("record"), []);
    }

    #[test]
    fn an_unclosed_bracket_does_not_hide_the_other_errors() {
        assert_eq!(
            found("let a = 1 +;\nrecord.x = [1, 2;\nrecord"),
            [
                (1, 12, "Unexpected ';'".into()),
                (
                    2,
                    12,
                    "`[` is never closed: add the `]` that closes it".into()
                ),
            ]
        );
        assert_eq!(
            found("let a = 1\nlet b = (2;\nrecord"),
            [
                (1, 10, "Expecting ';' to terminate this statement".into()),
                (
                    2,
                    9,
                    "`(` is never closed: add the `)` that closes it".into()
                ),
            ]
        );
    }
}
