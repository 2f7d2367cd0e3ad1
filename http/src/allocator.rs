//! What the server asks of the C allocator (glibc's malloc, which Rust's `System` allocator
//! calls on Linux), so that memory a request freed goes back to the system instead of staying
//! resident in the allocator's free lists.
//!
//! Two things kept freed memory resident, both found with `bench/soak` under its 512 MB
//! memory cgroup (the figures, with their dates: bench/README.md, "Soak", and SECURITY.md):
//!
//! - **glibc's dynamic mmap threshold.** A block of at least `M_MMAP_THRESHOLD` (128 KiB) is
//!   mapped on its own and unmapped when freed, but freeing one raises the threshold to its
//!   size (up to 32 MiB) and the trim threshold to twice that. After the first 8 MiB body or
//!   16 MiB of `/invocations` rows, buffers that large came from the per-thread arenas (16
//!   of them on 2 cores), and each arena kept up to twice the threshold free and resident
//!   above its last block in use: the server's RSS rose minute after minute until the cgroup
//!   killed it. [`configure`] fixes both thresholds at glibc's own defaults, which
//!   turns the dynamic raise off (`mallopt(3)`): large buffers are always mapped and unmapped.
//! - **Free space between blocks in use.** A 64 KiB body of `{"":0}` parsed into a
//!   `serde_json::Value` is megabytes of small map nodes in one arena; once freed, a block
//!   still in use above it (another connection's buffer) keeps the arena from shrinking, so
//!   `malloc_stats` showed arenas that were almost all free space. [`give_back`]
//!   (`malloc_trim(0)`) returns the whole free pages of every arena; the connection loop
//!   calls it after a request that held a large permit of a budget (`budget::GIVE_BACK_AFTER`),
//!   so what the budgets counted leaves the process when they stop counting it.
//!
//! Both are process-wide and harmless to repeat. Elsewhere (other systems, and the static
//! musl binary of the container image, whose malloc has no dynamic threshold) they do
//! nothing; only glibc's behaviour was measured.
//!
//! The only `unsafe` of this crate is here: two calls into libc with plain integer arguments.

/// glibc's default mmap and trim thresholds (`M_MMAP_THRESHOLD`, `M_TRIM_THRESHOLD`): 128 KiB.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const THRESHOLD: libc::c_int = 128 << 10;

/// Fixes glibc's mmap and trim thresholds at 128 KiB (see the module doc). Called by
/// [`crate::Server::start`]; later calls change nothing.
#[allow(unsafe_code)]
pub(crate) fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            for param in [libc::M_MMAP_THRESHOLD, libc::M_TRIM_THRESHOLD] {
                // SAFETY: mallopt takes two integers and only sets malloc's parameters (under
                // its own lock); 128 KiB is a valid value of both.
                let ok = unsafe { libc::mallopt(param, THRESHOLD) };
                if ok != 1 {
                    eprintln!("pismo serve: mallopt({param}, {THRESHOLD}) failed: freed memory may stay resident");
                }
            }
        });
    }
}

/// Returns the free pages of every malloc arena to the system (`malloc_trim(0)`).
#[allow(unsafe_code)]
pub(crate) fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes an integer and only releases pages no block uses, under each
    // arena's lock.
    unsafe {
        libc::malloc_trim(0);
    }
}
