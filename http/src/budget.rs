//! The memory budget of image decoding in flight ([`crate::limits::IMAGE_BUDGET_BYTES`]).
//!
//! A decode first takes a [`Permit`] for its cost (its decoded bytes, known from the PNG
//! header before any pixel is decoded) and gives it back when the permit drops, however the
//! handler ends (error or panic included). Invariant: the permits alive at any time add up
//! to at most the budget. Taking one never waits: over the budget is a 503 with
//! `Retry-After`, a cost larger than the whole budget a 413.

use std::sync::{Arc, Mutex};

use crate::limits::RETRY_AFTER_SECONDS;
use crate::reply::ApiError;

/// Bytes of decoding memory in use, out of a total.
#[derive(Debug)]
pub(crate) struct Budget {
    total: u64,
    used: Mutex<u64>,
}

/// `cost` bytes of a [`Budget`], given back on drop.
#[derive(Debug)]
pub(crate) struct Permit {
    budget: Arc<Budget>,
    cost: u64,
}

impl Budget {
    pub fn new(total: u64) -> Arc<Budget> {
        Arc::new(Budget {
            total,
            used: Mutex::new(0),
        })
    }

    /// `cost` bytes now, or the error to answer.
    pub fn take(self: &Arc<Self>, cost: u64) -> Result<Permit, ApiError> {
        if cost > self.total {
            return Err(ApiError::new(
                413,
                format!(
                    "decoding this image takes {} MiB, more than this server's whole image budget of {} MiB",
                    cost.div_ceil(1 << 20),
                    self.total >> 20
                ),
            ));
        }
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        if *used + cost > self.total {
            return Err(ApiError::new(
                503,
                "the server is decoding too many images at once; try again shortly",
            )
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
        let b = Budget::new(100);
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
