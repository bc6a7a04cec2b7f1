//! `sluice test PIPELINE...`: run the test cases in the `tests/` folder
//! beside each pipeline and show a diff for every case that fails.
//!
//! A test file holds `tests:`, a list of cases ([`file`]). Each case gives
//! input records and the expected outcome: the records in every sink (sinks
//! not named must receive nothing), exactly or by parts, the dead-lettered
//! records' stages, steps and error texts, and counts. Sources and sinks
//! are replaced by memory: the case's records go through the real engine,
//! parse to routes ([`expect`]). `--bless` rewrites the failing cases'
//! expectations as what they produced ([`bless`]).

mod bless;
mod expect;
pub mod file;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{EXIT_INVALID, EXIT_OK, EXIT_UNREADABLE};
use crate::config::{self, Env, LoadError};
use crate::diagnostics::render::{self, Format};
use crate::engine::Built;

/// `sluice test` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pipeline files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Run only the cases whose name contains this text.
    #[arg(long)]
    pub filter: Option<String>,
    /// Rewrite the `expect` of every failing case as what it produced (review the diff).
    #[arg(long)]
    pub bless: bool,
}

/// Runs the tests of every pipeline (with `filter`, only the cases whose
/// name contains it). Prints one line per case and a `N passed, N failed`
/// summary; exit code 1 when a case fails or a test file has an error.
pub fn main(args: &Args) -> i32 {
    let filter = args.filter.as_deref();
    let env = Env::process();
    let mut tally = Tally::default();
    let mut code = EXIT_OK;
    for f in &args.files {
        let loaded = match config::load(f, &env) {
            Ok(l) => l,
            Err(e) => {
                crate::err!("{}", render::text(e.diagnostics(), Format::Human));
                code = code.max(match e {
                    LoadError::Unreadable(_) => EXIT_UNREADABLE,
                    LoadError::Invalid(_) => EXIT_INVALID,
                });
                continue;
            }
        };
        let built = match Built::new(&loaded) {
            // `print` and `debug` in scripts write to standard error.
            Ok(b) => Arc::new(Built { debug: true, ..b }),
            Err(e) => {
                crate::errln!("error: {}: {e}", f.display());
                code = code.max(EXIT_INVALID);
                continue;
            }
        };
        if !loaded.diagnostics.list.is_empty() {
            crate::err!("{}", render::text(&loaded.diagnostics, Format::Human));
        }
        let tests_dir = loaded.dir.join("tests");
        let test_files = match test_files(&tests_dir) {
            Ok(t) if !t.is_empty() => t,
            Ok(_) => {
                crate::errln!(
                    "error: {}: no test files in {}",
                    f.display(),
                    loaded.dir.join("tests").display()
                );
                code = code.max(EXIT_INVALID);
                continue;
            }
            Err(e) => {
                crate::errln!(
                    "error: {}: cannot read the test folder {}: {e}",
                    f.display(),
                    tests_dir.display()
                );
                code = code.max(EXIT_UNREADABLE);
                continue;
            }
        };
        for tf in test_files {
            code = code.max(run_file(&tf, &built, filter, args.bless, &mut tally));
        }
    }
    let Tally {
        passed,
        failed,
        skipped,
        blessed,
    } = tally;
    let mut last = format!("{passed} passed, {failed} failed");
    if filter.is_some() {
        last.push_str(&format!(", {skipped} filtered out"));
    }
    if args.bless {
        last.push_str(&format!(", {blessed} blessed"));
    }
    crate::outln!("{last}");
    if failed > 0 && !args.bless {
        code.max(EXIT_INVALID)
    } else {
        code
    }
}

/// Cases counted over every file.
#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    skipped: usize,
    blessed: usize,
}

/// Runs one test file's cases; its exit code.
fn run_file(
    path: &Path,
    built: &Arc<Built>,
    filter: Option<&str>,
    bless: bool,
    tally: &mut Tally,
) -> i32 {
    let read = match file::read(path, &built.sink_names) {
        Ok(r) => r,
        Err(e) => {
            crate::errln!("error: {e}");
            return EXIT_UNREADABLE;
        }
    };
    let mut code = EXIT_OK;
    if !read.diags.list.is_empty() {
        crate::err!("{}", render::text(&read.diags, Format::Human));
    }
    if read.diags.has_errors() {
        code = EXIT_INVALID;
    }
    let mut results = Vec::new();
    for (i, case) in read.cases.iter().enumerate() {
        let case = match case {
            Ok(c) => c,
            Err(name) => {
                tally.failed += 1;
                crate::outln!(
                    "FAIL  {}: {name}: the case has errors (above)",
                    path.display()
                );
                continue;
            }
        };
        if filter.is_some_and(|f| !case.name.contains(f)) {
            tally.skipped += 1;
            continue;
        }
        let actual = match expect::run(built, case) {
            Ok(a) => a,
            Err(e) => {
                tally.failed += 1;
                crate::outln!("FAIL  {}: {}\n  {e}", path.display(), case.name);
                continue;
            }
        };
        let problems = expect::compare(built, case, &actual);
        if problems.is_empty() {
            tally.passed += 1;
            crate::outln!("ok    {}: {}", path.display(), case.name);
        } else if bless {
            tally.blessed += 1;
            crate::outln!("bless {}: {}\n{problems}", path.display(), case.name);
            results.push((i, case, actual));
        } else {
            tally.failed += 1;
            crate::outln!("FAIL  {}: {}\n{problems}", path.display(), case.name);
        }
    }
    if !results.is_empty() {
        let text = bless::rewrite(&read, &results, built);
        if let Err(e) = std::fs::write(path, text) {
            crate::errln!("error: cannot write `{}`: {e}", path.display());
            code = code.max(EXIT_UNREADABLE);
        }
    }
    code
}

fn test_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    out.sort();
    Ok(out)
}
