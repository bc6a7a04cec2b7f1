//! The `sluice` command. See `sluice --help`.

fn main() {
    std::process::exit(sluice::cli::main());
}
