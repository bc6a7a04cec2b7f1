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
pub mod duration;
pub mod fetch;
pub mod interpolate;
pub mod pipeline;
pub mod schema;
pub mod shape;
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
    /// Warnings found on the way.
    pub diagnostics: Diagnostics,
}

impl Loaded {
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

/// Loads and checks a pipeline file.
pub fn load(path: &Path, env: &Env) -> Result<Loaded, LoadError> {
    let mut diags = Diagnostics::default();
    let text = match std::fs::read(path) {
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
    // passes; shape errors do, as the typed pipeline cannot be built without it.
    let before = diags.list.len();
    shape::check(&cx, &mut diags);
    if diags.list[before..]
        .iter()
        .any(|d| d.severity == crate::diagnostics::Severity::Error)
    {
        diags.sort();
        return Err(LoadError::Invalid(diags));
    }
    let mut pipeline: Pipeline = match serde_json::from_value(value.clone()) {
        Ok(p) => p,
        Err(e) => {
            // The shape pass accepts only what deserializes; this is a safety net.
            diags.push(Diagnostic::error(Code::InvalidValue, e.to_string()).at(file, 0..0));
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
    let (schemas, scripts) = check::check(&cx, &pipeline, &dir, &mut diags);
    diags.sort();
    if diags.has_errors() {
        return Err(LoadError::Invalid(diags));
    }
    Ok(Loaded {
        pipeline,
        path: path.to_path_buf(),
        dir,
        schemas,
        scripts,
        diagnostics: diags,
    })
}
