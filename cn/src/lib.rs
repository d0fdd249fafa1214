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

/// The CN's memory allocator, for every program that links the CN (the `cn`
/// binary, the benches, the tests). A statement allocates many short-lived
/// buffers (rows decoded from the DNs' text protocol, Arrow arrays, plan
/// nodes); under glibc's malloc, `malloc`/`free` and their consolidation took
/// about a fifth of the CN's CPU in TPC-H Q2 (perf, SF 1). mimalloc is the
/// allocator DataFusion's own CLI ships with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
