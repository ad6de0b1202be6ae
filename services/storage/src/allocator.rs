//! How the storage process uses glibc's malloc: set once at start, and free pages given back
//! after a large structure is dropped.

/// glibc malloc settings for the storage process, unless the operator set their own
/// (`MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_`, `GLIBC_TUNABLES`):
///
/// - at most one arena per core (glibc allows 8 per core): every thread that allocates may
///   otherwise get an arena of its own, and each keeps freed pages of its own;
/// - a fixed mmap threshold of 256 KiB: glibc raises the threshold to the size of each large
///   block freed (up to 32 MiB), after which a segment's vectors, a snapshot file being read
///   or a request of several MiB come from the heap and stay there once freed. Fixed, every
///   block that large is its own mapping and goes back to the system when freed.
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let set = |k: &str| std::env::var_os(k).is_some();
        if set("GLIBC_TUNABLES") {
            return;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // SAFETY: mallopt only changes allocator parameters; it is called before the
        // service allocates its working set.
        unsafe {
            if !set("MALLOC_ARENA_MAX") {
                libc::mallopt(libc::M_ARENA_MAX, cores.clamp(1, 64) as libc::c_int);
            }
            if !set("MALLOC_MMAP_THRESHOLD_") {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
            }
        }
    }
}

/// Give the allocator's free pages back to the system, after a large structure was freed
/// (a graph build's `hnsw_rs` structure, a demoted collection): glibc's malloc keeps them
/// otherwise, and the process would stay at its peak.
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns unused memory of the allocator to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}
