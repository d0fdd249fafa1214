//! A global index that co-locates a join: the optimizer reads a table's
//! covering global index instead of the table when that lets the shards
//! run the join whole.
//!
//! A join on a column that is not the table's partition key cannot run on
//! the shards: matching rows sit on different shards, so the CN reads one
//! side whole and joins it. A global index partitioned by that column puts
//! the rows of its table next to the other side's (same partitioning
//! function, key type and count: one table group, the same placement of
//! partition i). When the index stores every column the query reads of
//! that table, reading the index instead changes no answer (the index is
//! written in the same distributed transaction as the table, so it holds
//! exactly the table's rows in every snapshot), and the join becomes one
//! query per shard. TPC-H Q22's `NOT EXISTS (SELECT * FROM orders WHERE
//! o_custkey = c_custkey)` is the example: orders is partitioned by
//! orderkey, customer by custkey; with a global index on `o_custkey` the
//! anti join runs on each customer shard against its index partition
//! instead of reading all 1.5 million `o_custkey` values (SF 1) into the
//! CN. PolarDB-X's optimizer likewise plans a join over a GSI's index
//! scan when the index covers the query and keeps the join pushed down
//! ("Global secondary indexes" in PolarDB-X's documentation: a covering
//! GSI avoids the look-up back to the primary table).
//!
//! The rule is conservative, without costs: it substitutes only a PUBLIC
//! index that covers the scan, only when the join does not push whole
//! already and does push whole with the index ([`pushes_whole`], the
//! pushdown's own test; conjuncts the shards cannot evaluate may move from
//! a filter right below the join to above it for that), and never for a
//! scan whose filters prune the
//! table's partitions (a pruned scan of the table reads less than every
//! index partition would). It is left out of locking reads: `FOR UPDATE`
//! must lock the table's rows, not the index's. Index hints of the query's
//! tables reach it ([`JoinHints`]): `IGNORE INDEX (g)` keeps `g` out, and
//! a table with `FORCE INDEX (g)` / `USE INDEX (g)` on a global index is
//! read through no other global index. A hint applies to every reference to
//! its table in the statement (the plan no longer tells the references
//! apart).

use crate::catalog::{CatalogSnapshot, TableDef};
use crate::executor::table::{prune, ShardedTable};
use crate::optimizer::pushdown::{pushable, pushes_whole};
use crate::planner::resolve_name;
use datafusion::common::tree_node::Transformed;
use datafusion::common::Result;
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{Expr, Filter, Join, JoinType, LogicalPlan, TableScan, TableScanBuilder};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::sql::sqlparser::ast::{Statement, TableFactor, TableIndexHintType, Visit, Visitor};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::sync::Arc;

/// The optimizer rule; see the module documentation. Registered before
/// the join transposition and the pushdown.
#[derive(Debug, Default)]
pub struct IndexColocatedJoin {
    pub hints: JoinHints,
}

/// The index hints of a statement's tables that name global indexes, by
/// `(database, table)`, names in lower case.
#[derive(Debug, Default, Clone)]
pub struct JoinHints {
    /// Indexes `IGNORE INDEX` names.
    pub ignored: BTreeMap<(String, String), BTreeSet<String>>,
    /// The index `FORCE INDEX` / `USE INDEX` names: the only one usable.
    pub forced: BTreeMap<(String, String), String>,
}

impl JoinHints {
    /// Collects the hints of every table reference in `stmt` (tables
    /// resolved against `db`) that name global indexes of `snap`'s tables.
    pub fn of(stmt: &Statement, snap: &CatalogSnapshot, db: Option<&str>) -> JoinHints {
        struct V<'a> {
            snap: &'a CatalogSnapshot,
            db: Option<&'a str>,
            out: JoinHints,
        }
        impl Visitor for V<'_> {
            type Break = ();
            fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
                let TableFactor::Table { name, index_hints, .. } = t else { return ControlFlow::Continue(()) };
                if index_hints.is_empty() {
                    return ControlFlow::Continue(());
                }
                let Ok(key) = resolve_name(name, self.db) else { return ControlFlow::Continue(()) };
                let Some(def) = self.snap.base_table(&key.0, &key.1) else { return ControlFlow::Continue(()) };
                for h in index_hints {
                    let names = h.index_names.iter().map(|i| i.value.to_ascii_lowercase());
                    let global: Vec<String> = names.filter(|n| def.global_index(n).is_some()).collect();
                    match h.hint_type {
                        TableIndexHintType::Ignore => self.out.ignored.entry(key.clone()).or_default().extend(global),
                        TableIndexHintType::Use | TableIndexHintType::Force => {
                            if let Some(g) = global.into_iter().next() {
                                self.out.forced.insert(key.clone(), g);
                            }
                        }
                    }
                }
                ControlFlow::Continue(())
            }
        }
        let mut v = V { snap, db, out: JoinHints::default() };
        let _ = stmt.visit(&mut v);
        v.out
    }

    /// Whether a hint lets the rule read `def` through its index `g`.
    fn allows(&self, def: &TableDef, g: &str) -> bool {
        let key = (def.db.clone(), def.name.clone());
        let ignored = self.ignored.get(&key).is_some_and(|i| i.contains(g));
        let other_forced = self.forced.get(&key).is_some_and(|f| f != g);
        !ignored && !other_forced
    }
}

impl OptimizerRule for IndexColocatedJoin {
    fn name(&self) -> &str {
        "cn_gsi_colocated_join"
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        plan.transform_up_with_subqueries(|node| {
            let LogicalPlan::Join(j) = &node else {
                return Ok(Transformed::no(node));
            };
            if j.on.is_empty() || pushes_whole(&node) {
                return Ok(Transformed::no(node));
            }
            for candidate in with_an_index(j, &self.hints)? {
                let join = LogicalPlan::Join(candidate.clone());
                if pushes_whole(&join) {
                    return Ok(Transformed::yes(join));
                }
                if let Some((join, lifted)) = lift_filters(candidate)? {
                    if pushes_whole(&join) {
                        return Ok(Transformed::yes(LogicalPlan::Filter(Filter::try_new(lifted, Arc::new(join))?)));
                    }
                }
            }
            Ok(Transformed::no(node))
        })
    }
}

/// `j` with one side's table replaced by a covering global index
/// partitioned by that side's join keys, once per such index and side.
fn with_an_index(j: &Join, hints: &JoinHints) -> Result<Vec<Join>> {
    let keys = |right: bool| -> BTreeSet<String> {
        j.on.iter().filter_map(|(l, r)| column_name(if right { r } else { l })).collect()
    };
    let mut out = Vec::new();
    for left in with_index(&j.left, &keys(false), hints)? {
        out.push(Join { left: Arc::new(left), ..j.clone() });
    }
    for right in with_index(&j.right, &keys(true), hints)? {
        out.push(Join { right: Arc::new(right), ..j.clone() });
    }
    Ok(out)
}

/// `j` with the conjuncts the shards cannot evaluate (a function MariaDB
/// would not evaluate as MySQL does, the value of a scalar subquery known
/// only when the query runs, as one inside another subquery) taken from a
/// filter right below it, and
/// those conjuncts, to be applied above it; `None` when there are none.
/// Sound for the sides whose rows the join passes on unchanged or drops
/// (both of an inner join, the preserved side of an outer join, the side a
/// semi or anti join returns): filtering such a row before the join or its
/// output rows after gives the same rows.
fn lift_filters(mut j: Join) -> Result<Option<(LogicalPlan, Expr)>> {
    use JoinType::*;
    let mut lifted = Vec::new();
    if matches!(j.join_type, Inner | Left | LeftSemi | LeftAnti) {
        if let Some((below, up)) = split_filter(&j.left)? {
            j.left = Arc::new(below);
            lifted.extend(up);
        }
    }
    if matches!(j.join_type, Inner | Right | RightSemi | RightAnti) {
        if let Some((below, up)) = split_filter(&j.right)? {
            j.right = Arc::new(below);
            lifted.extend(up);
        }
    }
    Ok(conjunction(lifted).map(|p| (LogicalPlan::Join(j), p)))
}

/// A filter's input with the filter's pushable conjuncts, and the others;
/// `None` when `plan` is not a filter or all its conjuncts push.
fn split_filter(plan: &LogicalPlan) -> Result<Option<(LogicalPlan, Vec<Expr>)>> {
    let LogicalPlan::Filter(f) = plan else { return Ok(None) };
    let (keep, lift): (Vec<Expr>, Vec<Expr>) = split_conjunction(&f.predicate).into_iter().cloned().partition(pushable);
    if lift.is_empty() {
        return Ok(None);
    }
    let below = match conjunction(keep) {
        Some(p) => LogicalPlan::Filter(Filter::try_new(p, f.input.clone())?),
        None => f.input.as_ref().clone(),
    };
    Ok(Some((below, lift)))
}

fn column_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Column(c) => Some(c.name.clone()),
        Expr::Cast(c) => column_name(&c.expr),
        _ => None,
    }
}

/// `plan` with the one table scan it reads (through filters, projections
/// and aliases) replaced by a covering global index partitioned by some of
/// `join_keys`, once per such index; none when `plan` is not of that
/// shape.
fn with_index(plan: &LogicalPlan, join_keys: &BTreeSet<String>, hints: &JoinHints) -> Result<Vec<LogicalPlan>> {
    match plan {
        LogicalPlan::TableScan(scan) => {
            Ok(index_scans(scan, join_keys, hints)?.into_iter().map(LogicalPlan::TableScan).collect())
        }
        LogicalPlan::Filter(_) | LogicalPlan::Projection(_) | LogicalPlan::SubqueryAlias(_) => {
            let Some(input) = plan.inputs().first().copied() else { return Ok(vec![]) };
            with_index(input, join_keys, hints)?
                .into_iter()
                .map(|new_input| plan.with_new_exprs(plan.expressions(), vec![new_input]))
                .collect()
        }
        _ => Ok(vec![]),
    }
}

/// Scans of `scan`'s table's PUBLIC global indexes that store every column
/// the scan reads and are partitioned by columns among `join_keys`, each
/// with `scan`'s name, projected schema and filters.
fn index_scans(scan: &TableScan, join_keys: &BTreeSet<String>, hints: &JoinHints) -> Result<Vec<TableScan>> {
    let Ok(provider) = source_as_provider(&scan.source) else { return Ok(vec![]) };
    let Some(table) = provider.downcast_ref::<ShardedTable>() else { return Ok(vec![]) };
    let def = &table.def;
    if def.global_indexes.is_empty() || scan.fetch.is_some() || prune(def, &scan.filters).is_some() {
        return Ok(vec![]);
    }
    let mut used: BTreeSet<String> = scan.projected_schema.fields().iter().map(|f| f.name().clone()).collect();
    for f in &scan.filters {
        used.extend(f.column_refs().into_iter().map(|c| c.name.clone()));
    }
    let mut out = Vec::new();
    for g in &def.global_indexes {
        let keyed = g.table.partitioning.key_columns().iter().all(|k| join_keys.contains(k));
        let covers = used.iter().all(|c| g.table.column(c).is_some());
        if g.state != crate::catalog::IndexState::Public || !keyed || !covers || !hints.allows(def, &g.name) {
            continue;
        }
        let index = ShardedTable::new(Arc::new(g.table.clone()), table.source.clone());
        let schema = datafusion::catalog::TableProvider::schema(&index);
        let projection: Option<Vec<usize>> =
            scan.projected_schema.fields().iter().map(|f| schema.index_of(f.name()).ok()).collect();
        let Some(projection) = projection else { continue };
        let new = TableScanBuilder::new(scan.table_name.clone(), provider_as_source(Arc::new(index)))
            .with_projection(Some(projection))
            .with_filters(scan.filters.clone())
            .build()?;
        // The same columns of the same types: nothing above the scan changes.
        if new.projected_schema.fields() == scan.projected_schema.fields() {
            out.push(new);
        }
    }
    Ok(out)
}
