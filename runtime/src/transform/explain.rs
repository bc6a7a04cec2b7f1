//! Human reasons for the script errors a missing field causes: Rhai says
//! `Function not found: * (i64, ())`; the dead letter says which
//! expression of the script was `()`, and so which field was missing.

/// A reason naming the operand that was `()`, for Rhai's "function not
/// found" signature `sig` (`* (i64, ())`, `to_upper (())`) raised at 1-based
/// `line` and `column` of `source`; `None` when no argument was `()`.
pub fn not_found(sig: &str, source: &str, line: usize, column: usize) -> Option<String> {
    let (name, args) = sig.trim().split_once(" (")?;
    let args: Vec<&str> = args.strip_suffix(')')?.split(", ").collect();
    let unit = args.iter().position(|a| *a == "()")?;
    let text: Vec<char> = source.lines().nth(line.checked_sub(1)?)?.chars().collect();
    let at = column.checked_sub(1)?;
    let is_operator = !name.starts_with(|c: char| c.is_alphanumeric() || c == '_');
    if is_operator && args.len() == 2 {
        let left = operand_before(&text, at);
        let right = operand_after(&text, at + name.chars().count());
        let missing = if unit == 0 { &left } else { &right };
        if missing.is_empty() {
            return None;
        }
        return Some(format!(
            "`{missing}` is () (missing or null), so `{left} {name} {right}` cannot be computed: `{name}` takes no () ({} {name} {})",
            args[0], args[1]
        ));
    }
    // A method: `receiver.name(…)`, the error at `name` (or at the dot).
    if unit == 0 {
        let dot = if text.get(at) == Some(&'.') {
            Some(at)
        } else {
            at.checked_sub(1).filter(|&d| text.get(d) == Some(&'.'))
        };
        let receiver = dot.map(|d| operand_before(&text, d)).unwrap_or_default();
        if !receiver.is_empty() {
            return Some(format!(
                "`{receiver}` is () (missing or null), so `{name}` cannot be called on it"
            ));
        }
    }
    let which = match unit {
        0 => "first",
        1 => "second",
        2 => "third",
        _ => "an",
    };
    Some(format!(
        "the {which} argument of `{name}` is () (missing or null): `{name}` takes no ()"
    ))
}

/// Characters an operand such as `record.items[0].price` is made of.
fn in_operand(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | '[' | ']' | '"' | '\'' | '?')
}

/// The operand that ends before `at`, spaces skipped.
fn operand_before(text: &[char], at: usize) -> String {
    let mut end = at.min(text.len());
    while end > 0 && text[end - 1] == ' ' {
        end -= 1;
    }
    let mut start = end;
    while start > 0 && in_operand(text[start - 1]) {
        start -= 1;
    }
    text[start..end].iter().collect()
}

/// The operand that starts at `at`, spaces skipped.
fn operand_after(text: &[char], at: usize) -> String {
    let mut start = at.min(text.len());
    while start < text.len() && text[start] == ' ' {
        start += 1;
    }
    let mut end = start;
    while end < text.len() && in_operand(text[end]) {
        end += 1;
    }
    text[start..end].iter().collect()
}

#[cfg(test)]
mod tests {
    use super::not_found;

    #[test]
    fn the_operand_that_was_unit_is_named() {
        let src = "record.total = record.qty * record.price;";
        assert_eq!(
            not_found("* (i64, ())", src, 1, 27).as_deref(),
            Some(
                "`record.price` is () (missing or null), so `record.qty * record.price` cannot be computed: `*` takes no () (i64 * ())"
            )
        );
        let src = "let x = 1;\nrecord.t = record.items[0].qty+1;";
        assert_eq!(
            not_found("+ ((), i64)", src, 2, 31).as_deref(),
            Some(
                "`record.items[0].qty` is () (missing or null), so `record.items[0].qty + 1` cannot be computed: `+` takes no () (() + i64)"
            )
        );
        assert_eq!(
            not_found("to_upper (())", "record.n = record.name.to_upper();", 1, 24).as_deref(),
            Some("`record.name` is () (missing or null), so `to_upper` cannot be called on it")
        );
        assert_eq!(
            not_found(
                "pad (string, (), string)",
                "pad(record.s, record.n, \"x\")",
                1,
                1
            )
            .as_deref(),
            Some("the second argument of `pad` is () (missing or null): `pad` takes no ()")
        );
        assert_eq!(not_found("* (i64, string)", "a * b", 1, 3), None);
    }
}
