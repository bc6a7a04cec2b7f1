//! Heap accounting: the process's allocator counts, per thread, the bytes
//! that thread allocated and has not freed, so the script sandbox can bound
//! what one record's scripts hold whatever its shape (strings, map keys,
//! arrays, the values a curried function captures …).
//!
//! [`Counting`] forwards every call to mimalloc (or, for large blocks, the
//! system allocator) and adds the size to a thread-local counter. Memory freed on another thread than the one that
//! allocated it counts against the freeing thread, so a thread's figure is
//! only meaningful as a difference over a stretch of its own work: see
//! [`thread_bytes`].

// The one place that needs `unsafe`: a global allocator is an unsafe trait.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The global allocator of the `sluice` binary: mimalloc for everything
/// below [`LARGE`], the system allocator from there on; counted per thread.
///
/// Records are many small maps and strings, where mimalloc's thread-local
/// free lists are markedly cheaper. But mimalloc keeps the pages of large
/// blocks it freed for reuse: a run over 9.9 MB records held 800 MB with a
/// single record in flight. The system allocator gives them back: glibc
/// maps a large block on its own, and once it freed one, serves blocks up
/// to that size from its heap, which it trims when the free space at the
/// top passes twice that size. (Mapping every large block on its own,
/// with a fixed threshold, made Lambda's 10 000-record events 8 % slower,
/// each event's buffers faulted in afresh, for 4 MiB less at the peak.)
#[derive(Debug, Default, Clone, Copy)]
pub struct Counting;

/// Blocks of this many bytes or more come from the system allocator.
pub const LARGE: usize = 1024 * 1024;

thread_local! {
    // No destructor and a constant initialiser: reading it never allocates.
    static HELD: Cell<i64> = const { Cell::new(0) };
}

fn add(n: i64) {
    let _ = HELD.try_with(|c| c.set(c.get().wrapping_add(n)));
}

/// Allocates from the allocator that serves `layout`'s size.
///
/// # Safety
/// As [`GlobalAlloc::alloc`] (or `alloc_zeroed` when `zeroed`).
unsafe fn alloc_from(layout: Layout, zeroed: bool) -> *mut u8 {
    // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
    unsafe {
        match (layout.size() >= LARGE, zeroed) {
            (true, false) => System.alloc(layout),
            (true, true) => System.alloc_zeroed(layout),
            (false, false) => mimalloc::MiMalloc.alloc(layout),
            (false, true) => mimalloc::MiMalloc.alloc_zeroed(layout),
        }
    }
}

/// Frees to the allocator that served `layout`'s size.
///
/// # Safety
/// As [`GlobalAlloc::dealloc`].
unsafe fn dealloc_to(ptr: *mut u8, layout: Layout) {
    // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract; a block
    // of this size came from this allocator (see `alloc_from`).
    unsafe {
        if layout.size() >= LARGE {
            System.dealloc(ptr, layout);
        } else {
            mimalloc::MiMalloc.dealloc(ptr, layout);
        }
    }
}

// SAFETY: every block is freed, and resized, by the allocator that its size
// says it came from: `alloc_from` and `dealloc_to` choose by the same size,
// and `realloc` moves a block whose size crosses `LARGE` to the other
// allocator. The accounting only touches a thread-local integer.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        let p = unsafe { alloc_from(layout, false) };
        if !p.is_null() {
            add(layout.size() as i64);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        let p = unsafe { alloc_from(layout, true) };
        if !p.is_null() {
            add(layout.size() as i64);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { dealloc_to(ptr, layout) };
        add(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (was_large, is_large) = (layout.size() >= LARGE, new_size >= LARGE);
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract: `ptr`
        // is a live block of `layout`, and `new_size` rounded up to
        // `layout.align()` does not overflow, so the new layout is valid.
        let p = unsafe {
            match (was_large, is_large) {
                (true, true) => System.realloc(ptr, layout, new_size),
                (false, false) => mimalloc::MiMalloc.realloc(ptr, layout, new_size),
                _ => {
                    let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
                    let q = alloc_from(new_layout, false);
                    if !q.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, q, layout.size().min(new_size));
                        dealloc_to(ptr, layout);
                    }
                    q
                }
            }
        };
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

    #[test]
    fn blocks_that_grow_or_shrink_across_the_large_size_keep_their_bytes() {
        let mut v: Vec<u8> = (0..=255).cycle().take(LARGE - 10).collect();
        v.extend((0..=255u8).cycle().take(20)); // to the system allocator
        assert_eq!(v.len(), LARGE + 10);
        assert!((0..LARGE - 10).all(|i| v[i] == (i % 256) as u8));
        v.truncate(100);
        v.shrink_to_fit(); // back to mimalloc
        assert!((0..100).all(|i| v[i] == (i % 256) as u8));
        let big = vec![0u8; 4 * LARGE];
        assert!(big.iter().all(|&b| b == 0));
    }
}
