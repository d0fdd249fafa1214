//! The DN agent (`dn-plugin`): the per-DN component that enforces the
//! timestamp rules of ARCHITECTURE.md ("Transactions"): prepared branches
//! with their `min_commit_ts`, the highest opened snapshot and the highest
//! applied commit timestamp.
//!
//! The agent itself is the transaction issue's work (until then the CN
//! commits multi-DN writes with plain XA two-phase commit, `cn::txn`). What
//! lives here now is [`mariadb`]: starting and stopping the local
//! `mariadbd` the agent sits beside, used by the playground and by tests.

pub mod mariadb;
