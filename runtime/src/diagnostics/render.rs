//! Renderers for [`Diagnostics`]: human, short (one line each) and JSON.

use codespan_reporting::diagnostic::{Diagnostic as CsDiagnostic, Label, Severity as CsSeverity};
use codespan_reporting::files::SimpleFiles;
use codespan_reporting::term::{self, Chars, Config, DisplayStyle};
use serde::Serialize;

use super::{Diagnostic, Diagnostics, Severity};

/// How `sluice check` prints diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The offending line, underlined, with help (like rustc).
    Human,
    /// One line each: `file:line:col: error[code]: message`.
    Short,
    /// One JSON document with every diagnostic, for tools.
    Json,
}

/// Renders the diagnostics as text (human or short form), ending with a count line
/// in the human form.
pub fn text(diags: &Diagnostics, format: Format) -> String {
    let mut files = SimpleFiles::new();
    for f in diags.sources.files() {
        files.add(f.name.clone(), f.text.clone());
    }
    let config = Config {
        display_style: if format == Format::Short {
            DisplayStyle::Short
        } else {
            DisplayStyle::Rich
        },
        chars: Chars::ascii(),
        ..Config::default()
    };
    let mut out = String::new();
    for d in &diags.list {
        emit(&mut out, &config, &files, d);
    }
    if format == Format::Human {
        let errors = diags
            .list
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count();
        let warnings = diags.list.len() - errors;
        if !diags.list.is_empty() {
            out.push_str(&format!(
                "{} error{}, {} warning{}\n",
                errors,
                if errors == 1 { "" } else { "s" },
                warnings,
                if warnings == 1 { "" } else { "s" }
            ));
        }
    }
    out
}

/// Each diagnostic in the short form, with its severity: the JSON log
/// lines of `sluice daemon` carry one each.
pub fn short_lines(diags: &Diagnostics) -> Vec<(Severity, String)> {
    let mut files = SimpleFiles::new();
    for f in diags.sources.files() {
        files.add(f.name.clone(), f.text.clone());
    }
    let config = Config {
        display_style: DisplayStyle::Short,
        chars: Chars::ascii(),
        ..Config::default()
    };
    diags
        .list
        .iter()
        .map(|d| {
            let mut line = String::new();
            emit(&mut line, &config, &files, d);
            (d.severity, line.trim_end().to_owned())
        })
        .collect()
}

fn emit(out: &mut String, config: &Config, files: &SimpleFiles<String, String>, d: &Diagnostic) {
    let severity = match d.severity {
        Severity::Error => CsSeverity::Error,
        Severity::Warning => CsSeverity::Warning,
    };
    let mut cs = CsDiagnostic::new(severity)
        .with_code(d.code.as_str())
        .with_message(&d.message)
        .with_notes(d.help.iter().map(|h| format!("help: {h}")).collect());
    if let Some((file, range)) = &d.span {
        cs = cs.with_labels(vec![Label::primary(*file, range.clone())]);
    }
    // Rendering only fails on a span outside its file, which the passes never produce;
    // fall back to the message alone rather than losing the diagnostic.
    if term::emit_to_string(out, config, files, &cs).is_err() {
        out.push_str(&format!("error[{}]: {}\n", d.code.as_str(), d.message));
    }
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    code: &'a str,
    severity: Severity,
    message: &'a str,
    file: Option<&'a str>,
    line: Option<usize>,
    column: Option<usize>,
    end_line: Option<usize>,
    end_column: Option<usize>,
    help: &'a [String],
}

/// Renders the diagnostics as one JSON document: `{"diagnostics": [...], "errors": N, "warnings": N}`.
pub fn json(diags: &Diagnostics) -> String {
    let list: Vec<JsonDiagnostic<'_>> = diags
        .list
        .iter()
        .map(|d| {
            let (file, start, end) = match &d.span {
                Some((id, range)) => {
                    let f = diags.sources.get(*id);
                    (
                        Some(f.name.as_str()),
                        Some(f.line_col(range.start)),
                        Some(f.line_col(range.end)),
                    )
                }
                None => (None, None, None),
            };
            JsonDiagnostic {
                code: d.code.as_str(),
                severity: d.severity,
                message: &d.message,
                file,
                line: start.map(|s| s.0),
                column: start.map(|s| s.1),
                end_line: end.map(|e| e.0),
                end_column: end.map(|e| e.1),
                help: &d.help,
            }
        })
        .collect();
    let errors = diags
        .list
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let doc = serde_json::json!({
        "diagnostics": list,
        "errors": errors,
        "warnings": diags.list.len() - errors,
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}
