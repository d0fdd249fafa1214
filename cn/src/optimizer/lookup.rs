//! Lookup joins: a join whose one side is small and whose other side reads
//! a large sharded table gets that side's rows by batched key lookups (a
//! `key IN (…)` condition in the shards' SQL, answered from their indexes)
//! instead of reading the whole table into the CN. This is PolarDB-X's
//! BKA join ("batched key access") done once per statement, as a semi-join
//! reduction: the small side's distinct join keys are read first, then
//! the large side is planned with `key IN (those keys)` above it, which
//! DataFusion's filter pushdown carries through projections, aliases,
//! aggregates grouped by the key and joins on it, down to the table scans
//! and from there into every shard's SQL ([`super::pushdown`]).
//!
//! TPC-H Q17 is the case in point: 204 parts qualify, and the per-part
//! average over lineitem (6 million rows at SF 1) needs only their 6,000
//! lineitems; with the lookup each shard reads them by the
//! `l_part_supp` index.
//!
//! The rewrite works on the logical plan after DataFusion's own rules
//! (subqueries decorrelated, filters pushed) and before the shard
//! pushdown, bottom up, so that a reduced join can be the small side of
//! the join above it (Q20: part → partsupp → lineitem). A join qualifies
//! when:
//! - it is an equality join whose rows a `key IN (…)` filter on the large
//!   side cannot change: inner and semi joins (either side), the inner
//!   side of an outer or anti join; NULL keys never match;
//! - its key on the large side is a column and both keys are integers
//!   (the IN list then means on the DN what the equality means in the CN;
//!   string keys would need the collation's rules);
//! - by the statistics of `ANALYZE TABLE` the large side reads at least
//!   [`MIN_LOOKUP_ROWS`] rows (its largest table; the session's
//!   `cn_lookup_min_rows`, and `cn_lookup_join = OFF` turns lookups off)
//!   and [`MIN_RATIO`] times the small side's estimated rows ([`estimate`]);
//!   of two sides that qualify, the one whose small side reads less is
//!   the large one;
//! - the shards cannot compute the join whole (a co-located join, see
//!   [`keys_reach_beyond`]), unless its keys also serve a join that they
//!   cannot;
//! - the small side is estimated at no more than 10 × [`MAX_KEYS`] rows
//!   and has at most [`MAX_KEYS`] distinct keys, which is
//!   checked by reading them (`SELECT DISTINCT key … LIMIT MAX_KEYS + 1`),
//!   and they are expected to select at most [`MAX_FRACTION`] of the
//!   large side (each key as many rows as the large side's tables have
//!   per row of the small side's); otherwise the join is left as it was.
//!
//! Keys that the column statistics ([`super::cardinality`]) predict to be
//! too many, by more than [`PREDICTION_MARGIN`], are not read at all: the
//! plan then reads the small side alongside the large one (TPC-H Q2's
//! 2,000 European suppliers). A small side the statistics cannot
//! estimate (a `LIKE`, a computed column) is read as before.
//!
//! The small side of an inner join is read once: its rows give the keys
//! and then stand in for it in the plan (at most [`MAX_KEPT_BYTES`]);
//! other small sides are read twice (their keys, then in the plan), and
//! are small by construction. Its keys are not read when an earlier lookup's
//! list already bounds them ([`known_keys`]: TPC-H Q17's lineitem, read
//! by the part keys, then joined to the per-part aggregate, which the
//! same list then selects); that list, a superset of the keys, filters
//! the large side but does not replace a semi join. Locking reads (`FOR
//! UPDATE`, `LOCK IN SHARE MODE`) get no lookups: their keys would be
//! read without locks.

use super::pushdown::pushes_whole;
use crate::catalog::statistics::{FILTER_SELECTIVITY, GROUPS_PER_ROW};
use crate::catalog::CatalogSnapshot;
use datafusion::arrow::array::Array;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, NullEquality, Result, ScalarValue, TableReference};
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    in_list, lit, Expr, ExprSchemable, Filter, Join, JoinType, LogicalPlan, LogicalPlanBuilder, TableScan,
};
use std::future::Future;
use std::sync::Arc;

/// The most distinct keys a lookup sends to the shards (one IN list per
/// shard query; MariaDB answers an IN list of this size on an index by
/// range lookups).
pub const MAX_KEYS: usize = 20_000;

/// The fewest rows (estimated) the large side must have for a lookup to be
/// worth reading the small side first, unless the session sets
/// `cn_lookup_min_rows`.
pub const MIN_LOOKUP_ROWS: f64 = 100_000.0;

/// How many times the small side's estimate the large side's must be.
pub const MIN_RATIO: f64 = 10.0;

/// A lookup is made when its keys are expected to select at most this
/// fraction of the large side's rows (measured on TPC-H SF 1, see the
/// check in [`rewrite`]).
pub const MAX_FRACTION: f64 = 0.1;

/// A lookup is not tried when its small side is estimated at more rows
/// than this: 10 × [`MAX_KEYS`].
const KEY_READ_MAX_ROWS: f64 = 10.0 * MAX_KEYS as f64;

/// A lookup's key read is skipped only when the keys its statistics
/// predict ([`predicted_keys`]) would be too many even divided by this:
/// a prediction one and a half times too high (skewed or correlated
/// data) still reads the keys.
const PREDICTION_MARGIN: f64 = 1.5;

/// At most this many lookups per statement.
const MAX_LOOKUPS: usize = 4;

/// The most bytes of a small side's rows a lookup keeps for the plan
/// ([`rows_plan`]); a larger side is read again by the plan. The rows are
/// held outside the query's memory pool until the statement ends, so this
/// stays well under the smallest `query_memory_limit` worth running with.
const MAX_KEPT_BYTES: usize = 4 << 20;

/// Rows estimated per key of an IN list of keys the CN read: the fan-out
/// of a foreign key (TPC-H's lineitem has 30 rows per part, partsupp 4).
const ROWS_PER_KEY: f64 = 32.0;

/// Estimated rows of a logical plan, from the tables' `ANALYZE TABLE`
/// statistics with the same heuristics as the shard scans' estimates
/// (each filter conjunct keeps [`FILTER_SELECTIVITY`], a grouped
/// aggregate [`GROUPS_PER_ROW`] of its input, an inner join as its larger
/// input, a semi join as its outer side, an IN list of `n` literal keys at
/// most `n` × [`ROWS_PER_KEY`]). `None` when a table has no statistics or
/// the plan has a node it does not know.
pub fn estimate(plan: &LogicalPlan, snap: &CatalogSnapshot) -> Option<f64> {
    rows(plan, snap, false)
}

/// The rows the shards read for a plan: its largest table, cut only by
/// IN lists of literal keys (a lookup's), whatever the other filters,
/// aggregates and joins above it keep.
fn work(plan: &LogicalPlan, snap: &CatalogSnapshot) -> Option<f64> {
    rows(plan, snap, true)
}

fn rows(plan: &LogicalPlan, snap: &CatalogSnapshot, work: bool) -> Option<f64> {
    let estimate = |p: &LogicalPlan, snap: &CatalogSnapshot| rows(p, snap, work);
    let filtered = |input: f64, predicate: &Expr| {
        let mut rows = input;
        for c in split_conjunction(predicate) {
            rows = match c {
                Expr::InList(l) if !l.negated && l.list.iter().all(|e| matches!(e, Expr::Literal(..))) => {
                    rows.min(l.list.len() as f64 * ROWS_PER_KEY)
                }
                _ if work => rows,
                _ => rows * FILTER_SELECTIVITY,
            };
        }
        rows.max(1.0)
    };
    Some(match plan {
        LogicalPlan::TableScan(scan) => {
            let mut rows = table_rows(scan, snap)?;
            for f in &scan.filters {
                rows = filtered(rows, f);
            }
            rows.max(1.0)
        }
        LogicalPlan::Filter(f) => filtered(estimate(&f.input, snap)?, &f.predicate),
        LogicalPlan::Projection(p) => estimate(&p.input, snap)?,
        LogicalPlan::SubqueryAlias(a) => estimate(&a.input, snap)?,
        LogicalPlan::Sort(s) => estimate(&s.input, snap)?,
        LogicalPlan::Distinct(_) if work => estimate(plan.inputs()[0], snap)?,
        LogicalPlan::Distinct(_) => estimate(plan.inputs()[0], snap)? * GROUPS_PER_ROW,
        LogicalPlan::Limit(l) => {
            let rows = estimate(&l.input, snap)?;
            match l.fetch.as_deref() {
                Some(Expr::Literal(ScalarValue::Int64(Some(n)), _)) if !work => rows.min(*n as f64),
                _ => rows,
            }
        }
        LogicalPlan::Aggregate(a) if work => estimate(&a.input, snap)?,
        LogicalPlan::Aggregate(a) if a.group_expr.is_empty() => 1.0,
        LogicalPlan::Aggregate(a) => (estimate(&a.input, snap)? * GROUPS_PER_ROW).max(1.0),
        LogicalPlan::Join(j) => {
            let (l, r) = (estimate(&j.left, snap)?, estimate(&j.right, snap)?);
            match j.join_type {
                _ if work => l.max(r),
                JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark => l,
                JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark => r,
                _ => l.max(r),
            }
        }
        _ => return None,
    })
}

/// Whether any table `plan` reads (in its subqueries too) has at least
/// `min_rows` rows by its statistics: without one no join of the plan can
/// be a lookup (a large side reads at most its largest table), and the
/// plan need not be optimized a second time to look.
pub fn reads_a_large_table(plan: &LogicalPlan, snap: &CatalogSnapshot, min_rows: f64) -> bool {
    let mut large = false;
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            large = table_rows(scan, snap).is_some_and(|rows| rows.max(1.0) >= min_rows);
        }
        Ok(if large { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    });
    large
}

/// The rows of the CN table `scan` reads, by its `ANALYZE TABLE`
/// statistics; `None` for another table or one without statistics.
fn table_rows(scan: &TableScan, snap: &CatalogSnapshot) -> Option<f64> {
    let def = super::cardinality::sharded(scan)?;
    Some(snap.statistics(&def.db, &def.name)?.rows as f64)
}

/// Which child of a join a lookup filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

/// How a join would be a lookup: which side is large, the key pair, the
/// rows the shards read for the large side without the lookup, and the
/// rows it has per key (estimated).
struct Choice {
    large: Side,
    small_key: Expr,
    large_key: Expr,
    /// The large side's schema (the key's type is read from it).
    large_schema: datafusion::common::DFSchemaRef,
    large_rows: f64,
    rows_per_key: f64,
}

/// A join chosen for a lookup: the `index`th join of the plan in post
/// order, and its small side's plan.
struct Candidate {
    index: usize,
    small_plan: LogicalPlan,
    choice: Choice,
    /// The shards compute the join whole.
    colocated: bool,
    join_type: JoinType,
}

/// The large side of join `j` for a lookup, the key pair, the rows the
/// shards read for the large side and the rows it has per key; of the
/// sides that qualify, the one whose small side reads the fewest rows (its
/// keys are read first).
fn choose(j: &Join, snap: &CatalogSnapshot, min_rows: f64) -> Option<Choice> {
    if j.null_equality != NullEquality::NullEqualsNothing || j.null_aware {
        return None;
    }
    let sides: &[Side] = match j.join_type {
        JoinType::Inner | JoinType::LeftSemi | JoinType::RightSemi => &[Side::Left, Side::Right],
        JoinType::Left | JoinType::LeftAnti => &[Side::Right],
        JoinType::Right | JoinType::RightAnti => &[Side::Left],
        _ => return None,
    };
    let mut best: Option<(f64, Choice)> = None;
    for &large in sides {
        let (large_plan, small_plan) = if large == Side::Left { (&j.left, &j.right) } else { (&j.right, &j.left) };
        let (large_work, small_work) = (work(large_plan, snap)?, work(small_plan, snap)?);
        let small_rows = estimate(small_plan, snap)?;
        if large_work < min_rows.max(small_rows * MIN_RATIO) {
            continue;
        }
        // Reading the keys costs the small side's rows, LIMIT or not (its
        // DISTINCT runs on the CN): not tried when they are expected to
        // be far more than a lookup takes (TPC-H Q21's finished orders,
        // 730,000 keys read to find there are too many).
        if small_rows > KEY_READ_MAX_ROWS {
            continue;
        }
        if best.as_ref().is_some_and(|(w, _)| *w <= small_work) {
            continue;
        }
        for (l, r) in &j.on {
            let (large_key, small_key) = if large == Side::Left { (l, r) } else { (r, l) };
            if !matches!(large_key, Expr::Column(_)) {
                continue;
            }
            let types =
                (large_key.get_type(large_plan.schema().as_ref()), small_key.get_type(small_plan.schema().as_ref()));
            if let (Ok(a), Ok(b)) = types {
                if a.is_integer() && b.is_integer() {
                    // Rows per key: what the large side reads over what the
                    // small side reads (a foreign key over the key it
                    // references: lineitem over part, 30).
                    let per_key = (large_work / small_work).max(1.0);
                    best = Some((
                        small_work,
                        Choice {
                            large,
                            small_key: small_key.clone(),
                            large_key: large_key.clone(),
                            large_schema: large_plan.schema().clone(),
                            large_rows: large_work,
                            rows_per_key: per_key,
                        },
                    ));
                    break;
                }
            }
        }
    }
    best.map(|(_, c)| c)
}

/// The first join in post order, past the first `skip` joins, that
/// qualifies for a lookup.
fn find(plan: &LogicalPlan, snap: &CatalogSnapshot, min_rows: f64, skip: usize) -> Option<Candidate> {
    let mut joins: Vec<&Join> = Vec::new();
    post_order_joins(plan, &mut joins);
    joins.iter().enumerate().skip(skip).find_map(|(index, j)| {
        let choice = choose(j, snap, min_rows)?;
        let colocated = pushes_whole(&LogicalPlan::Join((*j).clone()));
        if colocated && !keys_reach_beyond(&joins, index, &choice) {
            return None;
        }
        let small_plan = if choice.large == Side::Left { j.right.as_ref() } else { j.left.as_ref() };
        Some(Candidate { index, small_plan: small_plan.clone(), choice, colocated, join_type: j.join_type })
    })
}

/// Whether the keys of a lookup on the `index`th join, a co-located one,
/// can also cut a read outside it: another join of the plan that the
/// shards cannot compute whole has the lookup's large or small key column
/// among its keys, so that the next lookup, on that join, reads the same
/// keys into its large side.
///
/// A co-located join alone gains nothing from a lookup: each DN joins from
/// the small side through the large side's index itself, in one pass,
/// where a lookup reads the small side twice, and in vain when its keys
/// are too many (TPC-H Q12's filtered lineitem, 30,000 orders: 0.7 s of
/// key reading at SF 1; Q4's orders of one quarter, Q5's of one year).
/// Q20's parts named `forest%` are a lookup into partsupp, a
/// co-located join, because the same keys then select the lineitem
/// aggregate joined to partsupp on `ps_partkey`, which is not co-located.
fn keys_reach_beyond(joins: &[&Join], index: usize, choice: &Choice) -> bool {
    let keys = [&choice.large_key, &choice.small_key];
    joins.iter().enumerate().any(|(i, other)| {
        i != index
            && other.on.iter().any(|(l, r)| keys.iter().any(|k| *k == l || *k == r))
            && !pushes_whole(&LogicalPlan::Join((*other).clone()))
    })
}

fn post_order_joins<'a>(plan: &'a LogicalPlan, out: &mut Vec<&'a Join>) {
    for c in plan.inputs() {
        post_order_joins(c, out);
    }
    if let LogicalPlan::Join(j) = plan {
        out.push(j);
    }
}

/// Puts `Filter(key IN keys)` above the `large` input of the `index`th join
/// (post order) of `plan`. With `replace_semi`, when that join is a semi
/// join of the large side by the key alone, the filter replaces it: the
/// keys are all the small side has, so the filter keeps exactly the rows
/// the join keeps, and the small side is not read a second time (TPC-H
/// Q18's orders of large quantity, an aggregate of all lineitem: 0.9 ->
/// 0.5 s at SF 1). With `small_rows` ([`rows_plan`]) those rows take the
/// small input's place; with no `predicate`, that is all. Returns the plan
/// and whether the join was replaced.
fn add_filter(
    plan: LogicalPlan,
    index: usize,
    large: Side,
    predicate: Option<Expr>,
    replace_semi: bool,
    small_rows: Option<LogicalPlan>,
) -> Result<(LogicalPlan, bool)> {
    let mut seen = 0;
    let mut replaced = false;
    let plan = plan
        .transform_up(|node| {
            let LogicalPlan::Join(j) = &node else { return Ok(Transformed::no(node)) };
            seen += 1;
            if seen - 1 != index {
                return Ok(Transformed::no(node));
            }
            let mut j = j.clone();
            if let Some(predicate) = &predicate {
                let child = if large == Side::Left { &mut j.left } else { &mut j.right };
                let filtered = LogicalPlan::Filter(Filter::try_new(predicate.clone(), child.clone())?);
                let semi = matches!(
                    (j.join_type, large),
                    (JoinType::LeftSemi, Side::Left) | (JoinType::RightSemi, Side::Right)
                );
                if replace_semi && semi && j.on.len() == 1 && j.filter.is_none() {
                    replaced = true;
                    return Ok(Transformed::new(filtered, true, TreeNodeRecursion::Stop));
                }
                *child = Arc::new(filtered);
            }
            if let Some(rows) = &small_rows {
                *(if large == Side::Left { &mut j.right } else { &mut j.left }) = Arc::new(rows.clone());
            }
            Ok(Transformed::new(LogicalPlan::Join(j), true, TreeNodeRecursion::Stop))
        })
        .map(|t| t.data)?;
    Ok((plan, replaced))
}

/// Rewrites the joins of `plan` (optimized by DataFusion's rules, not yet
/// pushed down) that qualify into lookups; `read` runs a plan and returns
/// its rows. Returns the plan and how many joins it changed (lookups, and
/// small sides replaced by their rows without a lookup).
///
/// The small side of an inner join that the shards cannot compute whole
/// is read once: its rows give the keys and then take its place in the
/// plan ([`rows_plan`], when they take at most [`MAX_KEPT_BYTES`]), in the
/// same snapshot, where it used to be read twice (its distinct keys, then
/// the plan's read): TPC-H Q17's parts of one brand and container, a scan
/// of all 200,000 parts at SF 1. The rows stand in even when their keys
/// are too many for a lookup. Such a side with more than
/// [`KEY_READ_MAX_ROWS`] rows gets no lookup. Other small sides are read
/// for their distinct keys alone.
pub async fn rewrite<F, Fut>(
    mut plan: LogicalPlan,
    snap: &CatalogSnapshot,
    min_rows: f64,
    read: F,
) -> crate::error::Result<(LogicalPlan, usize)>
where
    F: Fn(LogicalPlan) -> Fut,
    Fut: Future<Output = crate::error::Result<Vec<RecordBatch>>>,
{
    let mut skip = 0;
    let mut done = 0;
    let mut rows_kept = 0;
    while done < MAX_LOOKUPS {
        let Some(c) = find(&plan, snap, min_rows, skip) else { break };
        skip = c.index + 1;
        // Keys that select much of the large side cost the DNs more than
        // the full read (MariaDB turns a long IN list into a semi join),
        // and save the CN little. 10 %: TPC-H Q7's 800 suppliers (8 % of
        // lineitem) took the query from 6.7 to 1.5 s at SF 1; Q21's 411
        // (4 %) once took twice the full read, when its EXISTS ran in the
        // CN, and now that they run on the shards 2.2 -> 0.7 s.
        let few = |n: usize| n <= MAX_KEYS && n as f64 * c.choice.rows_per_key <= c.choice.large_rows * MAX_FRACTION;
        // The small side's keys may be known without reading them: an
        // earlier lookup's list bounds them (TPC-H Q17's lineitem, read by
        // the part keys, joined to the per-part aggregate). They are then
        // a superset of the keys, which filters the large side as well,
        // but does not replace a semi join.
        let known = match &c.choice.small_key {
            Expr::Column(k) => known_keys(&c.small_plan, k).filter(|v| few(v.len())),
            _ => None,
        };
        // Keys that the column statistics confidently put well above what
        // a lookup takes are not read: the plan then reads the small side
        // alongside the rest instead of first (TPC-H Q2's 2,000 European
        // suppliers, where 1,000 would do: 36-37 -> 32 ms at SF 1).
        if known.is_none() {
            if let Some(predicted) = predicted_keys(&c.small_plan, &c.choice.small_key, snap) {
                if !few((predicted / PREDICTION_MARGIN).ceil().min(usize::MAX as f64) as usize) {
                    tracing::debug!(predicted, "lookup join: the statistics predict too many keys; not read");
                    continue;
                }
            }
        }
        let exact = known.is_none();
        let mut kept = None;
        let values = match known {
            Some(v) => v,
            None if c.join_type == JoinType::Inner && !c.colocated => {
                let Expr::Column(key) = &c.choice.small_key else { continue };
                let column = c.small_plan.schema().index_of_column(key)?;
                let capped = LogicalPlanBuilder::from(c.small_plan.clone())
                    .limit(0, Some(KEY_READ_MAX_ROWS as usize + 1))?
                    .build()?;
                let batches = match read(capped).await {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::debug!(error = %e, "lookup join: reading the small side failed; the join stays as it was");
                        continue;
                    }
                };
                let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
                if rows as f64 > KEY_READ_MAX_ROWS {
                    continue;
                }
                let values = distinct_non_null(&batches, column)?;
                let bytes: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
                if bytes <= MAX_KEPT_BYTES {
                    kept = Some(rows_plan(&c.small_plan, batches, c.index)?);
                }
                values
            }
            None => {
                let distinct = LogicalPlanBuilder::from(c.small_plan)
                    .filter(c.choice.small_key.clone().is_not_null())?
                    .aggregate(vec![c.choice.small_key.clone()], Vec::<Expr>::new())?
                    .limit(0, Some(MAX_KEYS + 1))?
                    .build()?;
                // A key query that fails leaves the join as it was: the plan
                // then reads the small side itself and fails the same way if
                // it must (DataFusion 55.2 cannot run the LIMITed DISTINCT
                // under `cn_hash_join = OFF`: "Ordering direction required
                // for DISTINCT with limit").
                match read(distinct).await.and_then(|b| Ok(first_column(&b)?)) {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::debug!(error = %e, "lookup join: reading the keys failed; the join stays as it was");
                        continue;
                    }
                }
            }
        };
        if !few(values.len()) {
            // Too many keys for a lookup; the rows read stand in for the
            // small side all the same (TPC-H Q2's 2,000 European
            // suppliers, which partsupp is not read by).
            if let Some(rows) = kept {
                plan = add_filter(plan, c.index, c.choice.large, None, false, Some(rows))?.0;
                rows_kept += 1;
            }
            continue;
        }
        let key_type = c.choice.large_key.get_type(c.choice.large_schema.as_ref())?;
        let mut list = Vec::with_capacity(values.len());
        for v in values.into_iter().filter(|v| !v.is_null()) {
            list.push(v.cast_to(&key_type)?);
        }
        // In order: the same keys give the same SQL.
        list.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        let predicate = if list.is_empty() {
            lit(false)
        } else {
            in_list(c.choice.large_key.clone(), list.into_iter().map(lit).collect(), false)
        };
        // A co-located semi join stays: the shards answer it from the
        // small side's index, cheaply, and without it the estimates of
        // the joins above see the keys' rows alone and find no further
        // lookup worth its key read (Q20's suppliers of Canada).
        let (filtered, replaced) =
            add_filter(plan, c.index, c.choice.large, Some(predicate), exact && !c.colocated, kept)?;
        plan = filtered;
        if replaced {
            // The join is gone: the next one in post order takes its index.
            skip = c.index;
        }
        done += 1;
    }
    Ok((plan, done + rows_kept))
}

/// The distinct keys the small side of a lookup is predicted to have by
/// the column statistics ([`super::cardinality`]): the key's NDV, at most
/// the rows the side yields; `None` when the statistics cannot say.
fn predicted_keys(small: &LogicalPlan, key: &Expr, snap: &CatalogSnapshot) -> Option<f64> {
    let Expr::Column(key) = key else { return None };
    super::cardinality::ndv(small, key, snap)
}

/// Values that include every non-NULL value of column `key` in `plan`'s
/// rows, when a literal `key IN (…)` (an earlier lookup's) bounds them:
/// found through filters, scans, projections that pass the column on,
/// and joins, where an inner join's `key = other` pair lets `other`'s list
/// bound `key` (its rows have equal values). `None` when nothing bounds it.
fn known_keys(plan: &LogicalPlan, key: &Column) -> Option<Vec<ScalarValue>> {
    let listed = |e: &Expr| match e {
        Expr::InList(l) if !l.negated && matches!(l.expr.as_ref(), Expr::Column(c) if c == key) => l
            .list
            .iter()
            .map(|v| match v {
                Expr::Literal(v, _) => Some(v.clone()),
                _ => None,
            })
            .collect::<Option<Vec<_>>>(),
        _ => None,
    };
    match plan {
        LogicalPlan::Filter(f) => {
            split_conjunction(&f.predicate).into_iter().find_map(listed).or_else(|| known_keys(&f.input, key))
        }
        LogicalPlan::TableScan(scan) => scan.filters.iter().flat_map(|f| split_conjunction(f)).find_map(listed),
        LogicalPlan::Projection(p) if p.expr.iter().any(|e| matches!(e, Expr::Column(c) if c == key)) => {
            known_keys(&p.input, key)
        }
        LogicalPlan::Join(j) => {
            let (left, right) = match j.join_type {
                JoinType::Inner => (true, true),
                JoinType::Left | JoinType::LeftSemi | JoinType::LeftAnti => (true, false),
                JoinType::Right | JoinType::RightSemi | JoinType::RightAnti => (false, true),
                _ => (false, false),
            };
            let direct = (left.then(|| known_keys(&j.left, key)).flatten())
                .or_else(|| right.then(|| known_keys(&j.right, key)).flatten());
            if direct.is_some() || j.join_type != JoinType::Inner {
                return direct;
            }
            j.on.iter().find_map(|(l, r)| match (l, r) {
                (Expr::Column(a), Expr::Column(b)) if a == key => known_keys(&j.right, b),
                (Expr::Column(a), Expr::Column(b)) if b == key => known_keys(&j.left, a),
                _ => None,
            })
        }
        _ => None,
    }
}

/// The distinct non-NULL values of column `column` of `batches`.
fn distinct_non_null(batches: &[RecordBatch], column: usize) -> Result<Vec<ScalarValue>> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for b in batches {
        let col = b.column(column);
        for i in 0..col.len() {
            if col.is_null(i) {
                continue;
            }
            let v = ScalarValue::try_from_array(col, i)?;
            if seen.insert(v.clone()) {
                out.push(v);
            }
        }
    }
    Ok(out)
}

/// A plan that gives `batches`, the rows `small` gave, with `small`'s
/// schema (the same qualified names, types and nullability, so the join
/// above keeps its schema): a scan of an in-memory table
/// `__cn_lookup_rows_<n>` under a projection that names its columns back.
fn rows_plan(small: &LogicalPlan, batches: Vec<RecordBatch>, n: usize) -> Result<LogicalPlan> {
    use datafusion::arrow::datatypes::{Field, Schema};
    let fields: Vec<Field> = small
        .schema()
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| Field::new(format!("c{i}"), f.data_type().clone(), f.is_nullable()))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let mut renamed = Vec::with_capacity(batches.len());
    for b in batches {
        renamed.push(RecordBatch::try_new(schema.clone(), b.columns().to_vec())?);
    }
    let table = datafusion::datasource::MemTable::try_new(schema, vec![renamed])?;
    let name = format!("__cn_lookup_rows_{n}");
    let columns = small.schema().iter().enumerate().map(|(i, (qualifier, f))| {
        Expr::Column(Column::new(Some(TableReference::bare(name.clone())), format!("c{i}")))
            .alias_qualified(qualifier.cloned(), f.name())
    });
    LogicalPlanBuilder::scan(name.clone(), provider_as_source(Arc::new(table)), None)?.project(columns)?.build()
}

/// The first column of `batches`' rows as scalars.
pub fn first_column(batches: &[RecordBatch]) -> Result<Vec<ScalarValue>> {
    let mut out = Vec::new();
    for b in batches {
        let col = b.column(0);
        for i in 0..col.len() {
            out.push(ScalarValue::try_from_array(col, i)?);
        }
    }
    Ok(out)
}
