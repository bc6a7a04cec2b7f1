//! Heap accounting: the process's allocator counts, per thread, the bytes
//! that thread allocated and has not freed, so the script sandbox can bound
//! what one record's scripts hold whatever its shape (strings, map keys,
//! arrays, the values a curried function captures …).
//!
//! [`Counting`] forwards every call to mimalloc and adds the size to a
//! thread-local counter. Memory freed on another thread than the one that
//! allocated it counts against the freeing thread, so a thread's figure is
//! only meaningful as a difference over a stretch of its own work: see
//! [`thread_bytes`].

// The one place that needs `unsafe`: a global allocator is an unsafe trait.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;

/// The global allocator of the `sluice` binary: mimalloc, counted per thread.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counting;

thread_local! {
    // No destructor and a constant initialiser: reading it never allocates.
    static HELD: Cell<i64> = const { Cell::new(0) };
}

fn add(n: i64) {
    let _ = HELD.try_with(|c| c.set(c.get().wrapping_add(n)));
}

// SAFETY: every method forwards to mimalloc with the caller's arguments and
// guarantees unchanged; the accounting only touches a thread-local integer.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        let p = unsafe { mimalloc::MiMalloc.alloc(layout) };
        if !p.is_null() {
            add(layout.size() as i64);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        let p = unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) };
        if !p.is_null() {
            add(layout.size() as i64);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) };
        add(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        let p = unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            add(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

/// Bytes the calling thread allocated minus the bytes it freed, since it
/// started. Only differences are meaningful (see the module docs); always 0
/// when [`Counting`] is not the global allocator.
pub fn thread_bytes() -> i64 {
    HELD.try_with(Cell::get).unwrap_or(0)
}

/// Whether [`Counting`] is the global allocator of this process.
pub fn counting() -> bool {
    let before = thread_bytes();
    let probe = std::hint::black_box(vec![0u8; 64]);
    let counted = thread_bytes() != before;
    drop(probe);
    counted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_the_thread_holds() {
        // The library's unit tests run with `Counting` as their allocator (lib.rs).
        assert!(counting());
        let before = thread_bytes();
        let v = vec![0u8; 1 << 20];
        assert!(thread_bytes() - before >= 1 << 20);
        drop(v);
        assert!(thread_bytes() - before < 1024);
    }
}
