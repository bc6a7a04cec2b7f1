//! The `sluice` command. See `sluice --help`.

// Records are many small maps and strings: mimalloc's thread-local free lists
// make their allocation and release markedly cheaper than the system
// allocator's. It is counted per thread so that the script sandbox can bound
// a record's memory (`limits.max_memory`).
#[global_allocator]
static GLOBAL: sluice::heap::Counting = sluice::heap::Counting;

fn main() {
    sluice::secrets::register_environment();
    std::process::exit(sluice::entry::main());
}
