//! Memory budgets: of image decoding in flight ([`crate::limits::IMAGE_BUDGET_BYTES`]) and
//! of request bodies held at once ([`crate::limits::BODY_BUDGET_BYTES`]).
//!
//! Work that needs memory first takes a [`Permit`] for its cost (a decode: its decoded
//! bytes, known from the PNG header before any pixel is decoded; a body: the bytes it holds,
//! grown before each read, see `connection.rs`) and gives it back when the permit drops,
//! however the request ends (error or panic included). Invariants: the permits alive at any
//! time add up to at most the budget, and those of one client (a peer address, see
//! `server::client_of`) to at most its share. Taking or growing one never waits: over the
//! budget or the share is a 503 with `Retry-After`, a cost larger than the whole budget a
//! 413.
//!
//! A permit of at least [`GIVE_BACK_AFTER`] bytes, when it drops, marks its thread (the
//! connection's) so that the connection loop, once the request is routed and all it held is
//! freed, has the allocator return the free memory to the system ([`gave_back_large`],
//! `crate::allocator::give_back`).

use std::cell::Cell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::limits::RETRY_AFTER_SECONDS;
use crate::reply::ApiError;

/// Permits of at least this many bytes (1 MiB) have the allocator's free memory returned to
/// the system after their request (see the module doc). Smaller requests' memory is reused by
/// the next ones; `malloc_trim` after each would cost more than it gives back.
pub(crate) const GIVE_BACK_AFTER: u64 = 1 << 20;

thread_local! {
    /// Whether a permit of at least [`GIVE_BACK_AFTER`] dropped on this thread since the
    /// last [`gave_back_large`].
    static LARGE_DROPPED: Cell<bool> = const { Cell::new(false) };
}

/// Whether a permit of at least [`GIVE_BACK_AFTER`] bytes dropped on this thread since the
/// last call (which clears it).
pub(crate) fn gave_back_large() -> bool {
    LARGE_DROPPED.replace(false)
}

/// Bytes of memory in use for one purpose, out of a total, and out of a share of it for
/// each client.
#[derive(Debug)]
pub(crate) struct Budget {
    purpose: Purpose,
    total: u64,
    /// Most one client may hold of `total` at once.
    share: u64,
    used: Mutex<Used>,
}

#[derive(Debug, Default)]
struct Used {
    all: u64,
    /// What each client's permits hold (no entry: nothing).
    by_client: HashMap<IpAddr, u64>,
}

/// What a [`Budget`] is for (it words the errors).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Purpose {
    Images,
    Bodies,
}

/// `cost` bytes of a [`Budget`], given back on drop; it may grow ([`Permit::grow_to`]).
#[derive(Debug)]
pub(crate) struct Permit {
    budget: Arc<Budget>,
    cost: u64,
    client: Option<IpAddr>,
}

impl Budget {
    /// A budget of `total` bytes, of which one client may hold `share` at once.
    pub fn new(purpose: Purpose, total: u64, share: u64) -> Arc<Budget> {
        Arc::new(Budget {
            purpose,
            total,
            share,
            used: Mutex::new(Used::default()),
        })
    }

    /// `cost` bytes now (counted for no client), or the error to answer.
    pub fn take(self: &Arc<Self>, cost: u64) -> Result<Permit, ApiError> {
        self.take_for(None, cost)
    }

    /// `cost` bytes now for `client`, within its share, or the error to answer.
    pub fn take_for(
        self: &Arc<Self>,
        client: Option<IpAddr>,
        cost: u64,
    ) -> Result<Permit, ApiError> {
        let mut permit = Permit {
            budget: self.clone(),
            cost: 0,
            client,
        };
        permit.grow_to(cost)?;
        Ok(permit)
    }

    /// Counts `more` bytes for a permit of `client` that holds `held`: 413 when the permit
    /// would hold more than the whole budget, 503 when the budget or the client's share is
    /// used up.
    fn add(&self, client: Option<IpAddr>, held: u64, more: u64) -> Result<(), ApiError> {
        let (what, busy, mine) = match self.purpose {
            Purpose::Images => (
                "decoding this image takes",
                "the server is decoding too many images at once; try again shortly",
                "you are having too many images decoded at once",
            ),
            Purpose::Bodies => (
                "this body takes",
                "the server is receiving too many request bodies at once; try again shortly",
                "you are sending too many request bodies at once",
            ),
        };
        let cost = held + more;
        if cost > self.total {
            return Err(ApiError::new(
                413,
                format!(
                    "{what} {} MiB, more than this server's whole budget of {} MiB for it",
                    cost.div_ceil(1 << 20),
                    self.total >> 20
                ),
            ));
        }
        let retry = |message: String| {
            ApiError::new(503, message).with_header("Retry-After", RETRY_AFTER_SECONDS.to_string())
        };
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        if used.all + more > self.total {
            return Err(retry(busy.to_owned()));
        }
        if let Some(client) = client {
            let theirs = used.by_client.entry(client).or_default();
            if *theirs + more > self.share {
                return Err(retry(format!(
                    "{mine} (one client may hold {} MiB of the server's {} MiB); try again shortly",
                    self.share >> 20,
                    self.total >> 20
                )));
            }
            *theirs += more;
        }
        used.all += more;
        Ok(())
    }
}

impl Permit {
    /// Holds `cost` bytes in all from now on (nothing changes when it holds as many already),
    /// or the error to answer (see [`Budget::take`]); on an error it holds what it held.
    pub fn grow_to(&mut self, cost: u64) -> Result<(), ApiError> {
        if cost > self.cost {
            self.budget.add(self.client, self.cost, cost - self.cost)?;
            self.cost = cost;
        }
        Ok(())
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.cost >= GIVE_BACK_AFTER {
            LARGE_DROPPED.set(true);
        }
        let mut used = self.budget.used.lock().unwrap_or_else(|e| e.into_inner());
        used.all -= self.cost;
        if let Some(client) = self.client {
            if let Some(theirs) = used.by_client.get_mut(&client) {
                *theirs -= self.cost;
                if *theirs == 0 {
                    used.by_client.remove(&client);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_add_up_to_at_most_the_budget() {
        let b = Budget::new(Purpose::Images, 100, 100);
        let a = b.take(60).unwrap();
        assert_eq!(b.take(50).unwrap_err().status, 503);
        let c = b.take(40).unwrap();
        drop(a);
        let d = b.take(60).unwrap();
        drop((c, d));
        assert_eq!(b.take(101).unwrap_err().status, 413);
        assert!(b.take(100).is_ok());
    }

    #[test]
    fn a_client_holds_at_most_its_share_and_permits_grow() {
        let b = Budget::new(Purpose::Bodies, 100, 25);
        let (one, two): (IpAddr, IpAddr) =
            ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let mut a = b.take_for(Some(one), 10).unwrap();
        a.grow_to(20).unwrap();
        a.grow_to(5).unwrap();
        let e = b.take_for(Some(one), 10).unwrap_err();
        assert_eq!(e.status, 503);
        assert!(e.message.contains("one client may hold"), "{}", e.message);
        // Another client has its own share; a failed growth keeps what was held.
        let mut c = b.take_for(Some(two), 25).unwrap();
        assert_eq!(c.grow_to(26).unwrap_err().status, 503);
        assert_eq!(c.cost, 25);
        drop(a);
        assert!(b.take_for(Some(one), 25).is_ok());
        assert_eq!(b.used.lock().unwrap().by_client.len(), 1);
        drop(c);
        assert!(b.used.lock().unwrap().by_client.is_empty());
        assert_eq!(b.used.lock().unwrap().all, 0);
    }

    #[test]
    fn a_large_permit_dropped_marks_its_thread_once() {
        let b = Budget::new(Purpose::Images, 4 * GIVE_BACK_AFTER, 4 * GIVE_BACK_AFTER);
        assert!(!gave_back_large());
        drop(b.take(GIVE_BACK_AFTER - 1).unwrap());
        assert!(!gave_back_large(), "a small permit does not");
        let mut grown = b.take(1).unwrap();
        grown.grow_to(GIVE_BACK_AFTER).unwrap();
        let kept = b.take(2 * GIVE_BACK_AFTER).unwrap();
        assert!(!gave_back_large(), "nothing dropped yet");
        // Dropped on another thread: that thread's mark, not this one's.
        std::thread::spawn(move || {
            drop(grown);
            assert!(gave_back_large());
        })
        .join()
        .unwrap();
        assert!(!gave_back_large());
        drop(kept);
        assert!(gave_back_large());
        assert!(!gave_back_large(), "cleared by the call");
    }
}
