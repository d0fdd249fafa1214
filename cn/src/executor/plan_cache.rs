//! The plan cache for statements the CN computes: a repeated statement
//! (the same text, database, catalog version and planning options) skips
//! parsing, the analyzer, the lookup-join search and both logical
//! optimizations, and goes straight to physical planning from the
//! optimized logical plan its first execution kept. PolarDB-X caches every
//! statement's plan the same way (its plan cache; [`crate::planner::plan_cache`]
//! is the point-SELECT part of it, which skips the executor altogether).
//!
//! Only plans that hold nothing of the execution that made them are kept:
//! - their tables are shard scans ([`ShardedTable`]) and pushed queries
//!   ([`PushedQuery`]), whose connection source (the session's pool, its
//!   transaction or its statement snapshot) each execution replaces with
//!   its own ([`rebind`]);
//! - no lookup join read keys into them and no uncorrelated scalar
//!   subquery was folded into a value (both read data while planning);
//! - no function in them asks a DN with the session's variables (a
//!   [`ShardFunction`] evaluated on a DN, in the session's time zone);
//! - not `EXPLAIN` and not a locking read.
//!
//! The clock functions and the session's variables are literals in the
//! statement's text by the time it reaches the executor
//! ([`crate::planner::clock`]), so they are part of the key. A DDL or an
//! `ANALYZE TABLE` moves the catalog version, so the next execution plans
//! afresh with the new statistics.

use super::functions::ShardFunction;
use super::table::ShardedTable;
use super::QueryOptions;
use crate::cluster::Cluster;
use crate::optimizer::pushdown::PushedQuery;
use crate::txn::ConnSource;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, LogicalPlan};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Entries kept before the cache starts afresh (PolarDB-X's default plan
/// cache size is 4,000 entries; these plans are larger than a point
/// template, so fewer).
pub const CAPACITY: usize = 512;

/// A statement's optimized logical plan and the fractional seconds
/// precision of its result columns ([`super::fsp::result_fsp`], which
/// needs the plan before optimization).
#[derive(Debug)]
pub struct CachedStatement {
    pub plan: LogicalPlan,
    pub fsp: Vec<Option<u8>>,
}

/// Optimized plans by [`key`]; shared by the CN's sessions.
#[derive(Debug, Default)]
pub struct StatementPlans {
    entries: Mutex<HashMap<String, Arc<CachedStatement>>>,
}

impl StatementPlans {
    pub fn get(&self, key: &str) -> Option<Arc<CachedStatement>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
    }

    /// Keeps `entry`; a full cache is emptied first.
    pub fn insert(&self, key: String, entry: CachedStatement) {
        let mut m = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= CAPACITY {
            m.clear();
        }
        m.insert(key, Arc::new(entry));
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The cache key of a statement's text in database `db` at catalog
/// `version` under `opts` (the lookup-join threshold changes the logical
/// plan; the join algorithm only the physical one, but it is cheap to keep
/// apart).
pub fn key(version: u64, db: Option<&str>, opts: &QueryOptions, text: &str) -> String {
    format!("{version}\u{1f}{}\u{1f}{:?}\u{1f}{}\u{1f}{text}", db.unwrap_or(""), opts.lookup_min_rows, opts.hash_join)
}

/// Whether an optimized plan may be kept (see the module's list): every
/// table a [`ShardedTable`] or a [`PushedQuery`], no function a DN
/// evaluates, not an `EXPLAIN`.
pub fn cacheable(plan: &LogicalPlan) -> bool {
    let mut ok = true;
    let _ = plan.apply_with_subqueries(|node| {
        ok &= match node {
            LogicalPlan::Explain(_) | LogicalPlan::Analyze(_) | LogicalPlan::Dml(_) | LogicalPlan::Ddl(_) => false,
            LogicalPlan::Statement(_) | LogicalPlan::Copy(_) | LogicalPlan::DescribeTable(_) => false,
            LogicalPlan::TableScan(scan) => {
                source_as_provider(&scan.source).is_ok_and(|p| p.is::<ShardedTable>() || p.is::<PushedQuery>())
            }
            _ => true,
        } && node.expressions().iter().all(|e| !asks_a_dn(e));
        Ok(if ok { TreeNodeRecursion::Continue } else { TreeNodeRecursion::Stop })
    });
    ok
}

/// Whether `e` calls a function the CN has a DN compute (with the
/// session's variables).
fn asks_a_dn(e: &Expr) -> bool {
    e.exists(|e| {
        Ok(matches!(e, Expr::ScalarFunction(f)
            if (f.func.inner().as_ref() as &dyn std::any::Any).downcast_ref::<ShardFunction>().is_some()))
    })
    .unwrap_or(true)
}

/// Keeps `plan` (optimized, [`cacheable`]) under `key` in `cluster`'s
/// cache, its tables on the cluster's pool with no session state: the
/// source it was planned on may be a statement snapshot, whose read views
/// (open transactions on the DNs, holding metadata locks) must end with
/// the statement, not live on in the cache.
pub fn keep(cluster: &Arc<Cluster>, key: String, plan: &LogicalPlan, fsp: &[Option<u8>]) -> Result<()> {
    let detached = ConnSource::Pool(cluster.clone(), Default::default());
    let entry = CachedStatement { plan: rebind(plan, &detached)?, fsp: fsp.to_vec() };
    cluster.statement_plans.insert(key, entry);
    Ok(())
}

/// A cached plan with every table's connection source replaced by
/// `source` (this execution's pool, transaction or snapshot). Errors: a
/// table of a kind [`cacheable`] does not keep (none in a kept plan).
pub fn rebind(plan: &LogicalPlan, source: &ConnSource) -> Result<LogicalPlan> {
    plan.clone()
        .transform_up_with_subqueries(|node| {
            let LogicalPlan::TableScan(mut scan) = node else { return Ok(Transformed::no(node)) };
            let provider = source_as_provider(&scan.source)?;
            let rebound: Arc<dyn datafusion::catalog::TableProvider> =
                if let Some(t) = provider.downcast_ref::<ShardedTable>() {
                    Arc::new(t.with_source(source.clone()))
                } else if let Some(q) = provider.downcast_ref::<PushedQuery>() {
                    Arc::new(q.with_source(source))
                } else {
                    return Err(datafusion::error::DataFusionError::Internal(format!(
                        "a cached plan reads {} through a table the plan cache does not keep",
                        scan.table_name
                    )));
                };
            scan.source = provider_as_source(rebound);
            Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
        })
        .map(|t| t.data)
}
