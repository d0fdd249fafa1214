//! The timestamp oracle (TSO): the global clock distributed transactions and
//! snapshots are stamped with (ARCHITECTURE.md, "Transactions").
//!
//! Timestamps are 64 bits: physical milliseconds since the Unix epoch
//! shifted left by 18 bits, plus an 18-bit logical counter (PD's layout).
//!
//! - [`oracle`]: the allocator (monotonic across clock steps, logical
//!   overflow, restarts);
//! - [`store`]: the durable upper bound in a data directory;
//! - [`election`]: leader lease and bound in the metadb (HA);
//! - [`server`]: the gRPC service (`proto/tso.proto`) and `tso serve`;
//! - [`client`]: the batching, reconnecting client the CN uses;
//! - [`LocalClock`]: an in-process source for a CN started without a TSO.

pub mod client;
pub mod clock;
pub mod election;
pub mod error;
pub mod oracle;
pub mod server;
pub mod store;

pub use client::{ClientOptions, TsoClient};
pub use error::TsoError;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Bits of the logical part of a timestamp.
pub const LOGICAL_BITS: u32 = 18;

/// Timestamps per physical millisecond.
pub const MAX_LOGICAL: u64 = 1 << LOGICAL_BITS;

/// The most timestamps one request may ask for.
pub const MAX_COUNT: u32 = 1 << 16;

/// Composes a timestamp from physical milliseconds and a logical counter.
pub fn compose(physical_ms: u64, logical: u64) -> u64 {
    physical_ms << LOGICAL_BITS | (logical & (MAX_LOGICAL - 1))
}

/// The physical milliseconds of a timestamp.
pub fn physical(ts: u64) -> u64 {
    ts >> LOGICAL_BITS
}

/// A monotonic timestamp source inside one process, for a CN run without a
/// TSO service (single CN only).
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
    fn local_clock_strictly_increasing_across_threads() {
        let c = std::sync::Arc::new(LocalClock::default());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || (0..10000).map(|_| c.next()).collect::<Vec<_>>())
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
