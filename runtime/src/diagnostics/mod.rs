//! Diagnostics about the user's files: what `sluice check` prints.
//!
//! A [`Diagnostic`] has a stable [`Code`], a message, a primary span in one of
//! the [`Sources`] and optional help. Passes collect diagnostics into a
//! [`Diagnostics`] list and never stop at the first one. Rendering lives in
//! [`render`]: the human form (source line underlined), a one-line form and
//! JSON. Runtime errors about records are not diagnostics: see `delivery`.

pub mod render;

use std::ops::Range;

use serde::Serialize;

/// What kind of problem a diagnostic reports. The code is stable: tools and
/// docs refer to it by its kebab-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Code {
    /// A file could not be read.
    Io,
    /// The YAML is not well formed.
    YamlSyntax,
    /// A key appears twice in one mapping.
    DuplicateKey,
    /// A key that the pipeline format does not know.
    UnknownField,
    /// A required key is missing.
    MissingField,
    /// A value has the wrong type.
    WrongType,
    /// A value is not one of the allowed ones.
    InvalidValue,
    /// `version` names a format version this runtime does not read.
    UnsupportedVersion,
    /// `${VAR}` names an environment variable that is not set.
    UnsetVariable,
    /// A route or the validate step names a sink or schema that does not exist.
    UnknownReference,
    /// A sink that no route sends records to.
    UnusedSink,
    /// A schema file is missing, is not JSON, or is not a valid JSON Schema.
    InvalidSchema,
    /// A Rhai script does not compile.
    ScriptSyntax,
    /// A Rhai script compiles but loses data: it returns `()` (filtering
    /// every record), or uses the `()` of an in-place method as a value.
    ScriptMistake,
    /// Two components share a name that must be unique.
    DuplicateName,
    /// The source is not read by the mode `sluice check --mode` names.
    UnsupportedMode,
}

impl Code {
    /// The kebab-case name of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Io => "io",
            Code::YamlSyntax => "yaml-syntax",
            Code::DuplicateKey => "duplicate-key",
            Code::UnknownField => "unknown-field",
            Code::MissingField => "missing-field",
            Code::WrongType => "wrong-type",
            Code::InvalidValue => "invalid-value",
            Code::UnsupportedVersion => "unsupported-version",
            Code::UnsetVariable => "unset-variable",
            Code::UnknownReference => "unknown-reference",
            Code::UnusedSink => "unused-sink",
            Code::InvalidSchema => "invalid-schema",
            Code::ScriptSyntax => "script-syntax",
            Code::ScriptMistake => "script-mistake",
            Code::DuplicateName => "duplicate-name",
            Code::UnsupportedMode => "unsupported-mode",
        }
    }
}

/// How serious a diagnostic is. Errors make `sluice check` fail; warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The pipeline cannot run.
    Error,
    /// The pipeline runs, but probably not as intended.
    Warning,
}

/// Where in a component (a sink, a source) one of its [`Findings`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// The component as a whole (its key).
    Whole,
    /// The key of one of its fields.
    Key(&'static str),
    /// The value of one of its fields.
    Value(&'static str),
}

/// A problem a component found in its own config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Stable code.
    pub code: Code,
    /// Where.
    pub at: At,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
}

/// What a component's `check` found, without knowing where its config is
/// written: the config checker turns each into a [`Diagnostic`] at its
/// place in the file.
#[derive(Debug, Clone, Default)]
pub struct Findings {
    /// In the order found.
    pub list: Vec<Finding>,
}

impl Findings {
    /// Notes an error at `at`.
    pub fn error(&mut self, code: Code, at: At, message: impl Into<String>) -> &mut Finding {
        self.list.push(Finding {
            code,
            at,
            message: message.into(),
            help: None,
        });
        self.list.last_mut().expect("just pushed")
    }
}

impl Finding {
    /// Adds how to fix it.
    pub fn help(&mut self, help: impl Into<String>) {
        self.help = Some(help.into());
    }
}

/// Index of a file in [`Sources`].
pub type FileId = usize;

/// A problem in one of the user's files.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// Stable code.
    pub code: Code,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, naming the thing that is wrong.
    pub message: String,
    /// Where: a file and a byte range in it. `None` when no file is involved.
    pub span: Option<(FileId, Range<usize>)>,
    /// Suggestions of how to fix it.
    pub help: Vec<String>,
}

impl Diagnostic {
    /// An error with a code and a message.
    pub fn error(code: Code, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            span: None,
            help: Vec::new(),
        }
    }

    /// A warning with a code and a message.
    pub fn warning(code: Code, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    /// Points the diagnostic at a byte range of a file.
    pub fn at(mut self, file: FileId, span: Range<usize>) -> Self {
        self.span = Some((file, span));
        self
    }

    /// Adds a `help:` line.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help.push(help.into());
        self
    }
}

/// The files diagnostics point into, with their text.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    files: Vec<SourceFile>,
}

/// One file known to [`Sources`].
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as the user gave it (or as derived from the pipeline's folder).
    pub name: String,
    /// The whole text.
    pub text: String,
    line_starts: Vec<usize>,
}

impl Sources {
    /// Adds a file and returns its id.
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> FileId {
        let text = text.into();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        self.files.push(SourceFile {
            name: name.into(),
            text,
            line_starts,
        });
        self.files.len() - 1
    }

    /// The file with this id.
    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id]
    }

    /// The first file added under `name`.
    pub fn find(&self, name: &str) -> Option<FileId> {
        self.files.iter().position(|f| f.name == name)
    }

    /// All files, in the order they were added.
    pub fn files(&self) -> &[SourceFile] {
        &self.files
    }
}

impl SourceFile {
    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let col = self.text[start..offset].chars().count();
        (line + 1, col + 1)
    }

    /// Byte offset of a 1-based line and a 0-based column counted in characters.
    /// Positions past the end of a line or of the file are clamped.
    pub fn offset(&self, line: usize, col: usize) -> usize {
        let Some(&start) = self.line_starts.get(line.saturating_sub(1)) else {
            return self.text.len();
        };
        let rest = &self.text[start..];
        let line_text = rest.split('\n').next().unwrap_or("");
        start
            + line_text
                .char_indices()
                .nth(col)
                .map_or(line_text.len(), |(i, _)| i)
    }

    /// The text of a 1-based line, without its line break.
    pub fn line(&self, line: usize) -> &str {
        let start = self
            .line_starts
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(self.text.len());
        self.text[start..].split('\n').next().unwrap_or("")
    }
}

/// Diagnostics collected by the passes over a pipeline, with the files they point into.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics {
    /// The files.
    pub sources: Sources,
    /// The diagnostics, in the order they were found.
    pub list: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Adds a diagnostic.
    pub fn push(&mut self, d: Diagnostic) {
        self.list.push(d);
    }

    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.list.iter().any(|d| d.severity == Severity::Error)
    }

    /// Sorts by file, then position, keeping the order of equal positions.
    pub fn sort(&mut self) {
        self.list.sort_by_key(|d| {
            d.span
                .as_ref()
                .map(|(f, r)| (*f, r.start))
                .unwrap_or((usize::MAX, 0))
        });
    }
}

/// Suggests the candidate closest to `word`, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_and_offset_round_trip() {
        let mut s = Sources::default();
        let id = s.add("p.yaml", "a: 1\nbé: 2\n");
        let f = s.get(id);
        assert_eq!(f.line_col(0), (1, 1));
        assert_eq!(f.line_col(5), (2, 1));
        assert_eq!(f.line_col(8), (2, 3)); // after the two-byte é
        assert_eq!(f.offset(2, 2), 8);
        assert_eq!(f.line(2), "bé: 2");
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(did_you_mean("bukcet", ["bucket", "key"]), Some("bucket"));
        assert_eq!(did_you_mean("zzz", ["bucket", "key"]), None);
    }
}
