//! Failpoints: named places in the commit path where a test makes the CN
//! behave as if its process died there (connections dropped without
//! cleanup, the agents' memory of the transaction lost), to check that
//! recovery leaves every transaction whole or absent and every
//! acknowledged one present. Armed only through this Rust API (tests);
//! when none is armed a check is one atomic load.
//!
//! The places, in commit order: [`BEFORE_PREPARE`], [`AFTER_FIRST_PREPARE`]
//! (one branch prepared, the others not), [`AFTER_PREPARES`] (every
//! branch prepared; async commit has decided, the client has no answer),
//! [`AFTER_DECISION`] (2PC: decision row written), [`AFTER_FIRST_COMMIT`]
//! (one branch committed; under async commit the client has its answer).
//! (fail-rs would do, but its callbacks are synchronous and the crash
//! needs to close connections on the way out.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

pub const BEFORE_PREPARE: &str = "commit-before-prepare";
pub const AFTER_FIRST_PREPARE: &str = "commit-after-first-prepare";
pub const AFTER_PREPARES: &str = "commit-after-prepares";
pub const AFTER_DECISION: &str = "commit-after-decision";
pub const AFTER_FIRST_COMMIT: &str = "commit-after-first-commit";

/// Every failpoint, in commit order.
pub const ALL: [&str; 5] = [BEFORE_PREPARE, AFTER_FIRST_PREPARE, AFTER_PREPARES, AFTER_DECISION, AFTER_FIRST_COMMIT];

static ARMED: AtomicBool = AtomicBool::new(false);
static POINT: Mutex<Option<&'static str>> = Mutex::new(None);

/// Arms `point` for its next hit (one shot).
pub fn arm(point: &'static str) {
    *POINT.lock().unwrap_or_else(|e| e.into_inner()) = Some(point);
    ARMED.store(true, Ordering::SeqCst);
}

/// Disarms any failpoint.
pub fn disarm() {
    *POINT.lock().unwrap_or_else(|e| e.into_inner()) = None;
    ARMED.store(false, Ordering::SeqCst);
}

/// Whether a failpoint is armed (it has not been reached yet).
pub fn armed() -> bool {
    ARMED.load(Ordering::SeqCst)
}

/// Whether the commit path reached armed `point` (which disarms it).
pub fn hit(point: &str) -> bool {
    if !ARMED.load(Ordering::Relaxed) {
        return false;
    }
    let mut p = POINT.lock().unwrap_or_else(|e| e.into_inner());
    if *p == Some(point) {
        *p = None;
        ARMED.store(false, Ordering::SeqCst);
        return true;
    }
    false
}
