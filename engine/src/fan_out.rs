//! Work over `0..n` items spread on threads, results in item order: the one fan-out every
//! "on all cores" loop of pismo goes through (making synthetic and redrawn digits,
//! compacting inked pixels, evaluating a model over a set, `pismo eval`'s tally in
//! [`crate::tally`]).
//!
//! Guarantees:
//! - the items are cut into contiguous shares of [`share_len`] items, the last one shorter;
//!   share `k` is `k * share_len(n, threads) ..` and its result is `results[k]`;
//! - each share runs on its own scoped thread, and a panic in one is passed on to the caller
//!   (a panic there is a bug, not bad input);
//! - the caller combines the results in share order, so a result that is a pure function of
//!   each item (a made-up digit, an image's inked pixels) is the same for any number of
//!   threads. Sums over shares depend on the share boundaries: [`crate::eval`] keeps its
//!   sums independent of the thread count by summing fixed chunks, of which the shares are
//!   runs.
//!
//! Why not `rayon`: its `par_chunks().map().collect()` would do the same, but its pool is
//! global and sized by the machine, where these loops take the thread count the user gave
//! (`--threads`) and must know the share boundaries ([`share_len`] indexes the trainer's
//! compacted images); it would also be a second thread pool beside the trainer's team.
//! These 20 lines are all of it.

use std::ops::Range;

/// Items per share when `n` items are spread over `threads` threads (0 counts as 1): at
/// least 1, and at most `threads` shares.
pub fn share_len(n: usize, threads: usize) -> usize {
    n.div_ceil(threads.max(1)).max(1)
}

/// `work` of each share of `0..n` ([`share_len`]), each on its own thread, the results in
/// share order. No items, no threads and no results.
pub fn map_shares<R: Send>(
    n: usize,
    threads: usize,
    work: impl Fn(Range<usize>) -> R + Sync,
) -> Vec<R> {
    let per = share_len(n, threads);
    let work = &work;
    std::thread::scope(|s| {
        let jobs: Vec<_> = (0..n)
            .step_by(per)
            .map(|start| s.spawn(move || work(start..(start + per).min(n))))
            .collect();
        jobs.into_iter()
            .map(|job| job.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_the_items_in_order() {
        for threads in [0, 1, 2, 3, 7, 64] {
            for n in [0, 1, 5, 64, 1000] {
                let shares = map_shares(n, threads, |r| r);
                assert!(shares.len() <= threads.max(1));
                assert!(shares
                    .iter()
                    .all(|r| r.len() == share_len(n, threads) || r.end == n));
                let items: Vec<usize> = shares.into_iter().flatten().collect();
                assert_eq!(items, (0..n).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn a_panic_in_a_share_reaches_the_caller() {
        let caught = std::panic::catch_unwind(|| {
            map_shares(10, 2, |r| assert!(!r.contains(&7), "item 7"));
        });
        assert!(caught.is_err());
    }
}
