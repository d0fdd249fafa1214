//! The DN agent (`dn-plugin`): the per-DN component that enforces the
//! timestamp rules of ARCHITECTURE.md ("Transactions"): prepared branches
//! with their `min_commit_ts`, the highest opened snapshot and the highest
//! applied commit timestamp ([`agent`]).
//!
//! [`service`] serves an agent over gRPC as a sidecar shared by several
//! CNs (`dn-plugin serve`); [`remote::RemoteAgent`] is its client.
//!
//! [`mariadb`] starts and stops the local `mariadbd` the agent sits beside,
//! for the playground and tests.

pub mod agent;
pub mod failpoint;
pub mod mariadb;
pub mod remote;
pub mod service;

pub use agent::{
    Admission, Agent, AgentApi, AgentError, AgentStatus, CommitKind, Outcome, PrepareRecord, PreparedRow, View,
};
