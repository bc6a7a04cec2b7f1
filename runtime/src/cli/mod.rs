//! The `sluice` command line: one module per subcommand.
//!
//! Exit codes: 0 success; 1 the pipeline is invalid (or a test failed);
//! 2 a file could not be read; 3 a run stopped early (a sink or the DLQ could
//! not be written, `on_invalid: fail`, or the counts did not add up).

pub mod check;
pub mod deploy;
pub mod dlq;
pub mod eval;
pub mod plan;
pub mod probe;
pub mod run;
pub mod schema;
pub mod test;

use std::path::PathBuf;

use clap::Subcommand;

use crate::diagnostics::render::Format;

/// The version `--version` prints: the release and the commit it is built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("SLUICE_COMMIT"), ")");

/// The subcommands but `sluice daemon` (an entry of its own: `crate::entry`).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check pipeline files and print every problem found.
    Check {
        /// Pipeline files; a folder for every pipeline under it (test files
        /// in `tests/` folders left out); `-` for standard input.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// How to print diagnostics.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// `--deny warnings`: report warnings as errors (exit code 1).
        #[arg(long, short = 'D', value_enum, value_name = "LINTS")]
        deny: Vec<check::Deny>,
        /// Also check that this mode reads the pipeline's source (see docs/sources.md).
        #[arg(long, value_enum)]
        mode: Option<check::Mode>,
    },
    /// Run a pipeline over its whole input and print a summary.
    Run(run::Args),
    /// Run a pipeline's test cases (the `tests/*.yaml` files beside it).
    Test(test::Args),
    /// Try a script, or a pipeline's transforms and routes, on records from
    /// standard input; `-i` for a session.
    Eval(eval::Args),
    /// A session trying scripts on one record: `sluice eval -i`.
    Repl {
        /// The record the session starts with (JSON; `{}` by default).
        #[arg(long, value_name = "JSON")]
        record: Option<String>,
    },
    /// Work with a pipeline's dead-letter queue.
    #[command(subcommand)]
    Dlq(dlq::Command),
    /// Deploy a pipeline to AWS.
    #[command(subcommand)]
    Deploy(deploy::Command),
    /// Size a pipeline's Kinesis stream: shards, Lambda concurrency, daemon workers.
    Plan(plan::Args),
    /// Check an HTTP endpoint (a container health check): exit 0 on 2xx.
    Probe(probe::Args),
    /// Print the JSON Schema of the pipeline format (`--tests`: of test files).
    Schema {
        /// The schema of test files (`tests/*.yaml`) instead.
        #[arg(long)]
        tests: bool,
    },
    /// Print a shell's completion script: `sluice completions bash > /etc/bash_completion.d/sluice`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

pub use crate::exit::{EXIT_INVALID, EXIT_OK, EXIT_OVER_LIMIT, EXIT_RUN_FAILED, EXIT_UNREADABLE};

/// Runs `command` and returns the exit code. `whole` is the whole command
/// line's definition, for `sluice completions`.
pub fn main(command: Command, whole: impl FnOnce() -> clap::Command) -> i32 {
    match command {
        Command::Check {
            files,
            format,
            deny,
            mode,
        } => check::main(&files, format, deny.contains(&check::Deny::Warnings), mode),
        Command::Run(args) => run::main(&args),
        Command::Test(args) => test::main(&args),
        Command::Eval(args) => eval::main(&args),
        Command::Repl { record } => eval::main(&eval::Args {
            script: None,
            pipeline: None,
            transform: None,
            route: false,
            interactive: true,
            record,
        }),
        Command::Dlq(command) => dlq::main(&command),
        Command::Deploy(command) => deploy::main(&command),
        Command::Plan(args) => plan::main(&args),
        Command::Probe(args) => probe::main(&args),
        Command::Schema { tests } => schema::main(tests),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut whole(), "sluice", &mut script);
            print_all(&script)
        }
    }
}

/// Writes a command's whole output to standard output. A reader that stopped
/// early (`sluice schema | head`) is not an error: the command ends quietly.
pub fn print_all(bytes: &[u8]) -> i32 {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => EXIT_OK,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => EXIT_OK,
        Err(e) => {
            crate::errln!("error: cannot write to standard output: {e}");
            crate::exit::EXIT_RUN_FAILED
        }
    }
}
