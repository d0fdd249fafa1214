//! The timestamp allocator.
//!
//! State: the current physical millisecond, the logical counter within it,
//! and the persisted upper bound. Rules (PD's design, see
//! <https://docs.pingcap.com/tidb/stable/tso>):
//! - physical = max(physical, wall clock): a clock stepping back never makes
//!   it smaller;
//! - a range that would overflow the 18-bit logical part waits for the next
//!   millisecond, and moves the physical part on by at most one per real
//!   millisecond when the wall clock lags behind it;
//! - no timestamp is handed out with physical >= the persisted bound: the
//!   bound is moved `window_ms` ahead and written durably first (normally by
//!   the background [`Oracle::maintain`] call, well before it is reached), so
//!   a restart that starts at the bound never goes backwards.

use crate::clock::Clock;
use crate::error::{Result, TsoError};
use crate::store::BoundStore;
use crate::{compose, MAX_COUNT, MAX_LOGICAL};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug)]
struct State {
    physical: u64,
    logical: u64,
    /// Exclusive: every timestamp handed out has physical < bound.
    bound: u64,
    serving: bool,
    /// HA: the local instant the lease may have run out by.
    lease_deadline: Option<Instant>,
    /// HA: where a standby should send clients.
    leader_hint: Option<String>,
}

/// Hands out strictly increasing timestamps while it serves.
pub struct Oracle {
    clock: Arc<dyn Clock>,
    store: Arc<dyn BoundStore>,
    window_ms: u64,
    state: Mutex<State>,
    persist: tokio::sync::Mutex<()>,
}

enum Step {
    Done(u64),
    Tick(u64),
    Persist,
}

impl Oracle {
    /// An oracle that does not serve until [`Oracle::start_serving`].
    /// `window_ms`: how far ahead of use the bound is persisted (PD uses 3 s).
    pub fn new(clock: Arc<dyn Clock>, store: Arc<dyn BoundStore>, window_ms: u64) -> Oracle {
        Oracle {
            clock,
            store,
            window_ms: window_ms.max(10),
            state: Mutex::new(State {
                physical: 0,
                logical: 0,
                bound: 0,
                serving: false,
                lease_deadline: None,
                leader_hint: None,
            }),
            persist: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Loads the persisted bound, moves the physical part to at least it,
    /// persists a new bound ahead and starts serving. `lease_deadline`: in
    /// HA mode, the instant the lease may expire (extended by
    /// [`Oracle::extend_lease`]).
    pub async fn start_serving(&self, lease_deadline: Option<Instant>) -> Result<()> {
        let _p = self.persist.lock().await;
        let loaded = self.store.load().await?;
        let now = self.clock.now_ms();
        let target = {
            let mut s = self.lock();
            let start = loaded.max(now);
            if start > s.physical {
                s.physical = start;
                s.logical = 0;
            }
            s.physical + self.window_ms
        };
        self.store.save(target).await?;
        let mut s = self.lock();
        s.bound = s.bound.max(target);
        s.serving = true;
        s.lease_deadline = lease_deadline;
        s.leader_hint = None;
        tracing::info!(physical = s.physical, bound = s.bound, "TSO serving");
        Ok(())
    }

    /// Stops serving (lease lost or shutting down); `leader` is where
    /// clients should go instead, when known.
    pub fn stop_serving(&self, leader: Option<String>) {
        let mut s = self.lock();
        if s.serving {
            tracing::warn!("TSO stops serving");
        }
        s.serving = false;
        s.leader_hint = leader;
    }

    /// Sets where a standby points clients.
    pub fn set_leader_hint(&self, leader: Option<String>) {
        let mut s = self.lock();
        if !s.serving {
            s.leader_hint = leader;
        }
    }

    /// Moves the lease deadline (after a successful renewal).
    pub fn extend_lease(&self, deadline: Instant) {
        self.lock().lease_deadline = Some(deadline);
    }

    /// Whether timestamps are handed out now.
    pub fn is_serving(&self) -> bool {
        let s = self.lock();
        s.serving && s.lease_deadline.is_none_or(|d| Instant::now() < d)
    }

    /// The error a non-serving oracle answers with.
    pub fn not_leader(&self) -> TsoError {
        TsoError::NotLeader { leader: self.lock().leader_hint.clone() }
    }

    /// The persisted bound in milliseconds (for tests and SHOW output).
    pub fn bound_ms(&self) -> u64 {
        self.lock().bound
    }

    /// The first of `count` consecutive timestamps, all greater than every
    /// timestamp handed out before. Errors: [`TsoError::InvalidCount`] for 0
    /// or more than [`MAX_COUNT`]; [`TsoError::NotLeader`] when not serving;
    /// [`TsoError::Storage`] when the bound cannot be persisted.
    pub async fn allocate(&self, count: u32) -> Result<u64> {
        if count == 0 || count > MAX_COUNT {
            return Err(TsoError::InvalidCount(count as u64));
        }
        let count = count as u64;
        loop {
            let step = {
                let mut s = self.lock();
                if !s.serving {
                    return Err(TsoError::NotLeader { leader: s.leader_hint.clone() });
                }
                if s.lease_deadline.is_some_and(|d| Instant::now() >= d) {
                    s.serving = false;
                    return Err(TsoError::NotLeader { leader: None });
                }
                let now = self.clock.now_ms();
                if now > s.physical {
                    s.physical = now;
                    s.logical = 0;
                }
                if s.logical + count > MAX_LOGICAL {
                    Step::Tick(s.physical)
                } else if s.physical >= s.bound {
                    Step::Persist
                } else {
                    let first = compose(s.physical, s.logical);
                    s.logical += count;
                    Step::Done(first)
                }
            };
            match step {
                Step::Done(first) => return Ok(first),
                Step::Tick(seen) => {
                    // The logical part of this millisecond is used up: wait
                    // for the next one. If the wall clock lags, move on by
                    // one millisecond per real millisecond waited.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    let now = self.clock.now_ms();
                    let mut s = self.lock();
                    if s.physical == seen {
                        s.physical = now.max(seen + 1);
                        s.logical = 0;
                    }
                }
                Step::Persist => self.extend_bound(true).await?,
            }
        }
    }

    /// Moves the bound ahead when use has come within half a window of it.
    /// Called every few hundred milliseconds so that [`Oracle::allocate`]
    /// does not wait for the disk.
    pub async fn maintain(&self) -> Result<()> {
        self.extend_bound(false).await
    }

    async fn extend_bound(&self, reached: bool) -> Result<()> {
        let _p = self.persist.lock().await;
        let target = {
            let s = self.lock();
            if !s.serving {
                return if reached { Err(TsoError::NotLeader { leader: s.leader_hint.clone() }) } else { Ok(()) };
            }
            let base = s.physical.max(self.clock.now_ms());
            if base + self.window_ms / 2 < s.bound {
                return Ok(());
            }
            base + self.window_ms
        };
        match self.store.save(target).await {
            Ok(()) => {
                let mut s = self.lock();
                s.bound = s.bound.max(target);
                Ok(())
            }
            Err(e) => {
                if let TsoError::NotLeader { leader } = &e {
                    self.stop_serving(leader.clone());
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::FileStore;
    use crate::{physical, LOGICAL_BITS};

    fn oracle(dir: &std::path::Path, clock: Arc<ManualClock>) -> Oracle {
        Oracle::new(clock, Arc::new(FileStore::open(dir).unwrap()), 3000)
    }

    #[tokio::test]
    async fn clock_stepping_back_never_goes_backwards() {
        let d = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_000_000));
        let o = oracle(d.path(), clock.clone());
        assert!(matches!(o.allocate(1).await, Err(TsoError::NotLeader { .. })));
        o.start_serving(None).await.unwrap();
        let a = o.allocate(10).await.unwrap();
        clock.set(1_000_000 - 60_000); // an NTP step back by a minute
        let b = o.allocate(1).await.unwrap();
        assert!(b >= a + 10, "{b} after {a}");
        assert_eq!(physical(b), 1_000_000);
        clock.set(1_000_005);
        let c = o.allocate(1).await.unwrap();
        assert_eq!(physical(c), 1_000_005);
        assert!(o.bound_ms() >= 1_003_000);
    }

    #[tokio::test]
    async fn logical_overflow_waits_for_the_next_millisecond() {
        let d = tempfile::tempdir().unwrap();
        // The wall clock is frozen: the physical part must still move on.
        let clock = Arc::new(ManualClock::new(2_000_000));
        let o = oracle(d.path(), clock);
        o.start_serving(None).await.unwrap();
        let mut last = 0;
        for _ in 0..10 {
            let first = o.allocate(MAX_COUNT).await.unwrap();
            assert!(first > last);
            last = first + MAX_COUNT as u64 - 1;
            assert!(last & ((1 << LOGICAL_BITS) - 1) >= MAX_COUNT as u64 - 1, "a range never straddles a millisecond");
        }
        assert!(physical(last) > 2_000_000, "moved past the frozen clock");
        assert!(matches!(o.allocate(0).await, Err(TsoError::InvalidCount(0))));
        assert!(matches!(o.allocate(MAX_COUNT + 1).await, Err(TsoError::InvalidCount(_))));
    }

    #[tokio::test]
    async fn restart_starts_above_the_persisted_bound() {
        let d = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(5_000_000));
        let o = oracle(d.path(), clock.clone());
        o.start_serving(None).await.unwrap();
        let before = o.allocate(100).await.unwrap() + 99;
        drop(o);
        // The restarted process sees a clock an hour behind.
        clock.set(5_000_000 - 3_600_000);
        let o = oracle(d.path(), clock);
        o.start_serving(None).await.unwrap();
        let after = o.allocate(1).await.unwrap();
        assert!(after > before);
        assert!(physical(after) >= 5_003_000, "starts at the bound, not at the clock");
    }

    #[tokio::test]
    async fn an_expired_lease_stops_serving() {
        let d = tempfile::tempdir().unwrap();
        let o = oracle(d.path(), Arc::new(ManualClock::new(7_000_000)));
        o.start_serving(Some(Instant::now() + Duration::from_millis(50))).await.unwrap();
        o.allocate(1).await.unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(matches!(o.allocate(1).await, Err(TsoError::NotLeader { .. })));
        assert!(!o.is_serving());
    }
}
