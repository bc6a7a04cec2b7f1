//! `sluice check FILE...`: every problem in every file, at once.

use std::path::PathBuf;

use super::{EXIT_INVALID, EXIT_OK, EXIT_UNREADABLE};
use crate::config::{self, Env, LoadError};
use crate::diagnostics::render::{self, Format};
use crate::diagnostics::{Code, Diagnostic, Diagnostics, Severity};
use crate::sources::RunMode;

/// Checks the files and prints the diagnostics. Exit code 0 when every file
/// is valid (warnings allowed), 1 when one is invalid, 2 when one cannot be read.
/// A folder stands for every pipeline file under it (`*.yaml`, `*.yml`),
/// test files (`tests/` folders) and hidden folders left out; `-` for a
/// pipeline read from standard input.
/// With `deny_warnings`, every warning is reported, and counts, as an error.
/// With `mode`, a source that mode does not read is an error.
pub fn main(args: &[PathBuf], format: Format, deny_warnings: bool, mode: Option<Mode>) -> i32 {
    let env = Env::process();
    let mut all = Vec::new();
    let mut code = EXIT_OK;
    let mut files = Vec::new();
    for a in args {
        if a.is_dir() {
            let found = pipelines_under(a);
            if found.is_empty() {
                crate::errln!(
                    "error: no pipeline file (*.yaml, *.yml) under `{}`",
                    a.display()
                );
                code = EXIT_UNREADABLE;
            }
            files.extend(found);
        } else {
            files.push(a.clone());
        }
    }
    for f in &files {
        let loaded = if f.as_os_str() == "-" {
            config::load_stdin(&env)
        } else {
            config::load(f, &env)
        };
        match loaded {
            Ok(mut loaded) => {
                let refused = mode.and_then(|m| loaded.pipeline.refusal_at(m.into()));
                if let Some((pointer, why)) = refused {
                    let (file, span) = loaded.at(pointer);
                    loaded.diagnostics.push(
                        Diagnostic::error(Code::UnsupportedMode, why)
                            .at(file, span)
                            .help(if pointer.starts_with("/aggregate") {
                                "docs/aggregate.md says what runs where"
                            } else {
                                "docs/sources.md says which source runs in which mode"
                            }),
                    );
                    loaded.diagnostics.sort();
                    code = code.max(EXIT_INVALID);
                }
                let notes = mode.map_or_else(Vec::new, |m| loaded.pipeline.mode_notes(m.into()));
                for note in notes {
                    let (file, span) = loaded.at(note.pointer);
                    loaded.diagnostics.push(
                        Diagnostic::warning(Code::UnsupportedMode, note.message)
                            .at(file, span)
                            .help(note.help),
                    );
                }
                loaded.diagnostics.sort();
                if deny_warnings && deny(&mut loaded.diagnostics) {
                    code = code.max(EXIT_INVALID);
                }
                all.push(loaded.diagnostics);
            }
            Err(e) => {
                code = code.max(match e {
                    LoadError::Unreadable(_) => EXIT_UNREADABLE,
                    LoadError::Invalid(_) => EXIT_INVALID,
                });
                let mut diags = e.diagnostics().clone();
                if deny_warnings {
                    deny(&mut diags);
                }
                all.push(diags);
            }
        }
    }
    match format {
        Format::Json => {
            let merged = merge(all);
            crate::out!("{}", render::json(&merged));
        }
        Format::Human | Format::Short => {
            let merged = merge(all);
            crate::err!("{}", render::text(&merged, format));
            if code == EXIT_OK && format == Format::Human {
                for f in &files {
                    let name = if f.as_os_str() == "-" {
                        "<stdin>".into()
                    } else {
                        f.display().to_string()
                    };
                    crate::errln!("{name}: ok");
                }
            }
        }
    }
    code
}

/// The mode `--mode` checks the pipeline for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// `sluice run`.
    Run,
    /// `sluice daemon`.
    Daemon,
    /// Lambda mode (`sluice lambda`, `sluice deploy template`).
    Lambda,
}

impl From<Mode> for RunMode {
    fn from(m: Mode) -> RunMode {
        match m {
            Mode::Run => RunMode::Run,
            Mode::Daemon => RunMode::Daemon,
            Mode::Lambda => RunMode::Lambda,
        }
    }
}

/// What `--deny` makes errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Deny {
    /// Every warning.
    Warnings,
}

/// Makes every warning an error; whether there was one.
fn deny(diags: &mut Diagnostics) -> bool {
    let mut any = false;
    for d in &mut diags.list {
        if d.severity == Severity::Warning {
            d.severity = Severity::Error;
            d.help
                .push("this warning is an error: `--deny warnings`".into());
            any = true;
        }
    }
    any
}

/// The pipeline files under `dir`, sorted: YAML files outside `tests/`
/// folders (test files) and hidden folders.
fn pipelines_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !name.starts_with('.') && name != "tests" {
                    stack.push(path);
                }
            } else if name.ends_with(".yaml") || name.ends_with(".yml") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// One list of diagnostics over several files (file ids renumbered).
fn merge(all: Vec<Diagnostics>) -> Diagnostics {
    let mut out = Diagnostics::default();
    for d in all {
        let base = out.sources.files().len();
        for f in d.sources.files() {
            out.sources.add(f.name.clone(), f.text.clone());
        }
        for mut diag in d.list {
            if let Some((id, _)) = &mut diag.span {
                *id += base;
            }
            out.push(diag);
        }
    }
    out
}
