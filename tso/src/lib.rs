//! Timestamps for distributed transactions: 64 bits, physical milliseconds
//! shifted left by 18 bits, plus an 18-bit logical counter (PD's layout).
//!
//! [`LocalClock`] is the in-process timestamp source the CN uses until the
//! TSO gRPC service lands: monotonic within one process, never below the
//! wall clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Bits of the logical part of a timestamp.
pub const LOGICAL_BITS: u32 = 18;

/// Composes a timestamp from physical milliseconds and a logical counter.
pub fn compose(physical_ms: u64, logical: u64) -> u64 {
    physical_ms << LOGICAL_BITS | (logical & ((1 << LOGICAL_BITS) - 1))
}

/// The physical milliseconds of a timestamp.
pub fn physical(ts: u64) -> u64 {
    ts >> LOGICAL_BITS
}

/// A monotonic timestamp source inside one process.
#[derive(Debug, Default)]
pub struct LocalClock {
    last: AtomicU64,
}

impl LocalClock {
    /// A timestamp greater than every one returned before, and at least the
    /// wall clock's milliseconds.
    pub fn next(&self) -> u64 {
        let now = compose(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0), 0);
        let mut cur = self.last.load(Ordering::Relaxed);
        loop {
            let candidate = now.max(cur + 1);
            match self.last.compare_exchange_weak(cur, candidate, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return candidate,
                Err(actual) => cur = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strictly_increasing_across_threads() {
        let c = std::sync::Arc::new(LocalClock::default());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    let mut v = Vec::with_capacity(10000);
                    for _ in 0..10000 {
                        v.push(c.next());
                    }
                    v
                })
            })
            .collect();
        let mut all: Vec<u64> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "duplicate timestamps");
        assert!(physical(all[0]) > 1_600_000_000_000);
    }
}
