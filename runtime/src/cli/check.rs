//! `sluice check FILE...`: every problem in every file, at once.

use std::path::PathBuf;

use super::{EXIT_INVALID, EXIT_OK, EXIT_UNREADABLE};
use crate::config::{self, Env, LoadError};
use crate::diagnostics::Diagnostics;
use crate::diagnostics::render::{self, Format};

/// Checks the files and prints the diagnostics. Exit code 0 when every file
/// is valid (warnings allowed), 1 when one is invalid, 2 when one cannot be read.
pub fn main(files: &[PathBuf], format: Format) -> i32 {
    let env = Env::process();
    let mut all = Vec::new();
    let mut code = EXIT_OK;
    for f in files {
        match config::load(f, &env) {
            Ok(loaded) => all.push(loaded.diagnostics),
            Err(e) => {
                code = code.max(match e {
                    LoadError::Unreadable(_) => EXIT_UNREADABLE,
                    LoadError::Invalid(_) => EXIT_INVALID,
                });
                all.push(e.diagnostics().clone());
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
                for f in files {
                    crate::errln!("{}: ok", f.display());
                }
            }
        }
    }
    code
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
