//! Failpoints of the transaction protocol: the registry lives in
//! [`dn_plugin::failpoint`] (the OPEN failpoint is inside the agent's
//! OPEN); the CN checks the commit path's points in [`crate::txn`] and arms
//! the one named by `CN_FAILPOINT` when it starts.

pub use dn_plugin::failpoint::*;
