//! Memory budgets: of image decoding in flight ([`crate::limits::IMAGE_BUDGET_BYTES`]) and
//! of request bodies held at once ([`crate::limits::BODY_BUDGET_BYTES`]).
//!
//! Work that needs memory first takes a [`Permit`] for its cost (a decode: its decoded
//! bytes, known from the PNG header before any pixel is decoded; a body: its
//! `Content-Length`, before any of it is read) and gives it back when the permit drops,
//! however the request ends (error or panic included). Invariant: the permits alive at any
//! time add up to at most the budget. Taking one never waits: over the budget is a 503
//! with `Retry-After`, a cost larger than the whole budget a 413.

use std::sync::{Arc, Mutex};

use crate::limits::RETRY_AFTER_SECONDS;
use crate::reply::ApiError;

/// Bytes of memory in use for one purpose, out of a total.
#[derive(Debug)]
pub(crate) struct Budget {
    purpose: Purpose,
    total: u64,
    used: Mutex<u64>,
}

/// What a [`Budget`] is for (it words the errors).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Purpose {
    Images,
    Bodies,
}

/// `cost` bytes of a [`Budget`], given back on drop.
#[derive(Debug)]
pub(crate) struct Permit {
    budget: Arc<Budget>,
    cost: u64,
}

impl Budget {
    pub fn new(purpose: Purpose, total: u64) -> Arc<Budget> {
        Arc::new(Budget {
            purpose,
            total,
            used: Mutex::new(0),
        })
    }

    /// `cost` bytes now, or the error to answer.
    pub fn take(self: &Arc<Self>, cost: u64) -> Result<Permit, ApiError> {
        let (what, busy) = match self.purpose {
            Purpose::Images => (
                "decoding this image takes",
                "the server is decoding too many images at once; try again shortly",
            ),
            Purpose::Bodies => (
                "this body takes",
                "the server is receiving too many request bodies at once; try again shortly",
            ),
        };
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
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        if *used + cost > self.total {
            return Err(ApiError::new(503, busy)
                .with_header("Retry-After", RETRY_AFTER_SECONDS.to_string()));
        }
        *used += cost;
        Ok(Permit {
            budget: self.clone(),
            cost,
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut used = self.budget.used.lock().unwrap_or_else(|e| e.into_inner());
        *used -= self.cost;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_add_up_to_at_most_the_budget() {
        let b = Budget::new(Purpose::Images, 100);
        let a = b.take(60).unwrap();
        assert_eq!(b.take(50).unwrap_err().status, 503);
        let c = b.take(40).unwrap();
        drop(a);
        let d = b.take(60).unwrap();
        drop((c, d));
        assert_eq!(b.take(101).unwrap_err().status, 413);
        assert!(b.take(100).is_ok());
    }
}
