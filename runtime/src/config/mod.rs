//! Config: a pipeline file → a checked, typed [`Pipeline`].
//!
//! The passes, each reporting every problem it finds before the next runs:
//! 1. read the file and parse the YAML into a spanned tree ([`yaml`]),
//!    interpolating `${VAR}` ([`interpolate`]);
//! 2. check its shape against the generated JSON Schema of the format
//!    ([`schema`], [`shape`]): unknown keys, wrong types, missing keys;
//! 3. cross-references and files ([`check`]): routes to unknown sinks, unused
//!    sinks, schema files, transform scripts compiled and their errors mapped
//!    to the line and column inside the YAML file.
//!
//! Config knows types, not clients: building running components is `engine`'s job.

pub mod check;
pub mod fetch;
pub mod interpolate;
pub mod pipeline;
pub mod reference;
mod salvage;
pub mod schema;
pub mod shape;
pub mod size;
pub mod yaml;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use interpolate::Env;
pub use pipeline::Pipeline;

use crate::diagnostics::{Code, Diagnostic, Diagnostics, FileId};

/// A pipeline that passed every check, with what the checks loaded.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The typed pipeline.
    pub pipeline: Pipeline,
    /// The pipeline file.
    pub path: PathBuf,
    /// Its folder: relative paths in the pipeline are resolved against it.
    pub dir: PathBuf,
    /// Schema documents by name.
    pub schemas: HashMap<String, Value>,
    /// The source of each transform, in order (inline or read from its file).
    pub scripts: Vec<String>,
    /// Where the scripts are written.
    pub places: check::Places,
    /// Warnings found on the way.
    pub diagnostics: Diagnostics,
    /// The lookup tables, loaded.
    pub lookups: std::sync::Arc<crate::lookup::Tables>,
    /// The pipeline file, and where each value is written in it: for
    /// diagnostics found after loading (`sluice check --mode`).
    pub origins: (FileId, yaml::SpanMap),
}

impl Loaded {
    /// Where the value at JSON pointer `pointer` is written (or its nearest
    /// ancestor), in the pipeline file.
    pub fn at(&self, pointer: &str) -> (FileId, std::ops::Range<usize>) {
        (self.origins.0, check::value_span(&self.origins.1, pointer))
    }

    /// A path from the pipeline, resolved against the pipeline's folder.
    pub fn resolve(&self, path: &str) -> PathBuf {
        resolve(&self.dir, path)
    }
}

/// `path` relative to `dir`, unless absolute.
pub fn resolve(dir: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

/// Why a pipeline could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// The pipeline file could not be read.
    Unreadable(Diagnostics),
    /// The pipeline has errors.
    Invalid(Diagnostics),
}

impl LoadError {
    /// The diagnostics, whichever the kind.
    pub fn diagnostics(&self) -> &Diagnostics {
        match self {
            LoadError::Unreadable(d) | LoadError::Invalid(d) => d,
        }
    }
}

/// Reads a file the pipeline names (a schema, a script) as text. Only a
/// regular file is read: a FIFO or a device would block or never end.
pub fn read_regular(path: &Path) -> std::io::Result<String> {
    if !std::fs::metadata(path)?.is_file() {
        return Err(std::io::Error::other("it is not a regular file"));
    }
    std::fs::read_to_string(path)
}

/// Loads and checks a pipeline file.
pub fn load(path: &Path, env: &Env) -> Result<Loaded, LoadError> {
    load_bytes(path, std::fs::read(path), env)
}

/// Loads a pipeline read from standard input, named `<stdin>` in
/// diagnostics; its relative paths are relative to the current folder.
pub fn load_stdin(env: &Env) -> Result<Loaded, LoadError> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    let read = std::io::stdin().read_to_end(&mut bytes).map(|_| bytes);
    load_bytes(Path::new("<stdin>"), read, env)
}

fn load_bytes(path: &Path, read: std::io::Result<Vec<u8>>, env: &Env) -> Result<Loaded, LoadError> {
    let mut diags = Diagnostics::default();
    let text = match read {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
                let file = diags.sources.add(path.display().to_string(), lossy);
                diags.push(
                    Diagnostic::error(Code::YamlSyntax, "the pipeline file is not valid UTF-8")
                        .at(file, at..at + 1),
                );
                return Err(LoadError::Invalid(diags));
            }
        },
        Err(e) => {
            diags.push(Diagnostic::error(
                Code::Io,
                format!("cannot read `{}`: {e}", path.display()),
            ));
            return Err(LoadError::Unreadable(diags));
        }
    };
    let file = diags.sources.add(path.display().to_string(), text.clone());
    load_text(path, file, &text, env, diags)
}

/// A value the typed pipeline cannot take, at its position: a number out of
/// range gets the range its field allows.
fn deserialize_error(
    cx: &check::Cx<'_>,
    e: &serde_path_to_error::Error<serde_json::Error>,
) -> Diagnostic {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    let mut name = String::new();
    for segment in e.path().iter() {
        match segment {
            Segment::Seq { index } => pointer.push_str(&format!("/{index}")),
            Segment::Map { key } => {
                pointer.push('/');
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
                name.clone_from(key);
            }
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    let span = cx.value_span(&pointer);
    let inner = e.inner().to_string();
    let range = [
        ("u64", "0", u64::MAX.to_string()),
        ("usize", "0", usize::MAX.to_string()),
        ("u32", "0", u32::MAX.to_string()),
        ("u16", "0", u16::MAX.to_string()),
        ("u8", "0", u8::MAX.to_string()),
        ("i64", "-9223372036854775808", i64::MAX.to_string()),
        ("i32", "-2147483648", i32::MAX.to_string()),
    ]
    .into_iter()
    .find(|(t, _, _)| inner.ends_with(&format!("expected {t}")));
    let written = cx.text.get(span.clone()).unwrap_or_default().trim();
    let message = match range {
        Some((_, low, high)) => {
            format!("`{name}` must be a whole number from {low} to {high}, not {written}")
        }
        None => format!("`{name}`: {inner}"),
    };
    Diagnostic::error(Code::InvalidValue, message).at(cx.file, span)
}

fn load_text(
    path: &Path,
    file: FileId,
    text: &str,
    env: &Env,
    mut diags: Diagnostics,
) -> Result<Loaded, LoadError> {
    let Some(root) = yaml::parse(text, file, env, &mut diags) else {
        return Err(LoadError::Invalid(diags));
    };
    let mut spans = yaml::SpanMap::new();
    let value = yaml::to_json(&root, &mut spans);
    let cx = check::Cx {
        file,
        spans: &spans,
        value: &value,
        text,
    };
    // Earlier problems (duplicate keys, unset variables) do not stop the later
    // passes, nor do shape errors: the broken parts are made unknown and the
    // rest is checked (`salvage`).
    let before = diags.list.len();
    shape::check(&cx, &mut diags);
    let shape_failed = diags.list[before..]
        .iter()
        .any(|d| d.severity == crate::diagnostics::Severity::Error);
    let (typed, replaced) = if shape_failed {
        match salvage::salvage(&cx, (shape::PIPELINE.validator)()) {
            Some(s) => s,
            None => {
                diags.sort();
                return Err(LoadError::Invalid(diags));
            }
        }
    } else {
        (value.clone(), Vec::new())
    };
    let mut pipeline: Pipeline = match serde_path_to_error::deserialize(&typed) {
        Ok(p) => p,
        Err(_) if shape_failed => {
            diags.sort();
            return Err(LoadError::Invalid(diags));
        }
        Err(e) => {
            // The shape pass accepts nearly only what deserializes: what is
            // left is a number out of its field's range.
            diags.push(deserialize_error(&cx, &e));
            return Err(LoadError::Invalid(diags));
        }
    };
    // JSON objects are sorted by key; put named things back in file order.
    let file_order = |section: &str, name: &str| {
        let pointer = format!("/{section}/{}", name.replace('~', "~0").replace('/', "~1"));
        spans.get(&pointer).map_or(0, |o| o.value.start)
    };
    pipeline
        .sinks
        .sort_by(|a, _, b, _| file_order("sinks", a).cmp(&file_order("sinks", b)));
    pipeline
        .schemas
        .sort_by(|a, _, b, _| file_order("schemas", a).cmp(&file_order("schemas", b)));
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let before = diags.list.len();
    let (schemas, scripts, places, lookups) = check::check(&cx, &pipeline, &dir, &mut diags);
    // What the later passes found inside a replaced part is about its stand-in.
    let mut i = before;
    while i < diags.list.len() {
        let inside = diags.list[i].span.as_ref().is_some_and(|(f, s)| {
            *f == file
                && replaced
                    .iter()
                    .any(|r| r.start <= s.start && s.start < r.end.max(r.start + 1))
        });
        if inside {
            diags.list.remove(i);
        } else {
            i += 1;
        }
    }
    diags.sort();
    if diags.has_errors() {
        return Err(LoadError::Invalid(diags));
    }
    Ok(Loaded {
        origins: (file, spans),
        pipeline,
        path: path.to_path_buf(),
        dir,
        schemas,
        scripts,
        places,
        lookups: std::sync::Arc::new(lookups),
        diagnostics: diags,
    })
}
