//! The entries of the `sluice` binary. Inside AWS Lambda it is the
//! function's `bootstrap` (`lambda`); otherwise `sluice daemon` goes to the
//! daemon and every other subcommand to `cli`. The three entries depend on
//! the engine, never on each other.

use clap::{CommandFactory, Parser, Subcommand};

use crate::{cli, daemon, lambda};

/// Declarative stream pipelines: check, test and run them.
#[derive(Debug, Parser)]
#[command(name = "sluice", version = cli::VERSION, about)]
struct Sluice {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

/// The subcommands, by entry.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run a pipeline as a service: workers share a stream through leases,
    /// with metrics and health probes over HTTP.
    // Listed after `run`, where it has always been (the test below keeps it there).
    #[command(display_order = 3)]
    Daemon(daemon::Args),
    #[command(flatten)]
    Cli(cli::Command),
}

/// Runs the binary and returns its exit code.
pub fn main() -> i32 {
    if lambda::detected() {
        return lambda::main();
    }
    match Sluice::parse().command {
        Command::Daemon(args) => daemon::main(&args),
        Command::Cli(command) => cli::main(command, Sluice::command),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Sluice::command().debug_assert();
    }

    #[test]
    fn the_help_lists_daemon_between_run_and_test() {
        let help = Sluice::command().render_help().to_string();
        let at = |name: &str| help.find(&format!("\n  {name} ")).unwrap();
        assert!(
            at("run") < at("daemon") && at("daemon") < at("test"),
            "{help}"
        );
    }
}
