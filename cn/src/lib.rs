//! The compute node (CN): a MySQL-compatible front end over sharded MariaDB
//! data nodes.
//!
//! A statement's way through the CN: [`protocol`] (MySQL wire protocol) →
//! [`server`] (connections) → [`session`] (state and dispatch) →
//! [`planner`] (routing: one DN or distributed) → [`optimizer`] (MySQL
//! semantics, pushdown) → [`executor`] (DataFusion over shard scans) or [`dml`]/[`ddl`] → [`dn`] (physical SQL on the data
//! nodes), with [`txn`] for multi-DN writes and [`catalog`] /
//! [`sharding`] for where rows live.

pub mod catalog;
pub mod cluster;
pub mod collation;
pub mod config;
pub mod ddl;
pub mod dml;
pub mod dn;
pub mod error;
pub mod executor;
pub mod gsi;
pub mod optimizer;
pub mod planner;
pub mod playground;
pub mod protocol;
pub mod server;
pub mod session;
pub mod sharding;
pub mod tpch;
pub mod txn;
