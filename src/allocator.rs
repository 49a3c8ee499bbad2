//! The memory allocator's tuning, set once at the start of the process, before any other thread.

/// glibc malloc, tuned for a small sidecar: blocks over 512 KiB (dedup tables, big pages) are mapped
/// and unmapped instead of parking in arenas, and at most two arenas exist instead of one per
/// thread; together that kept several megabytes less resident after an ingest. Smaller buffers (HTTP
/// reads, decoded pages) are reused from the heap without page faults. musl's allocator returns
/// memory on its own and has no such knobs. Call it first thing in `main`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn tune() {
    // SAFETY: mallopt only sets allocator parameters; it is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 512 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune() {}
