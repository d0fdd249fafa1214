//! The DN agent (`dn-plugin`): the per-DN component that enforces the
//! timestamp rules of ARCHITECTURE.md ("Transactions"): prepared branches
//! with their `min_commit_ts`, the highest opened snapshot and the highest
//! applied commit timestamp.
//!
//! Not implemented yet: the foundation CN commits multi-DN writes with plain
//! XA two-phase commit (`cn::txn`). The transaction issue builds the agent
//! here.
