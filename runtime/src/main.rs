//! The `sluice` command. See `sluice --help`.

// Records are many small maps and strings: mimalloc's thread-local free lists
// make their allocation and release markedly cheaper than the system allocator's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(sluice::cli::main());
}
