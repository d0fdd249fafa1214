//! Cost-based join order for a tree of inner joins.
//!
//! A DataFusion optimizer rule, registered after [`super::join_transpose`]
//! and right before [`super::pushdown`]. It takes each maximal tree of
//! inner equality joins (a *region*: DataFusion's joins of a FROM list,
//! which its cross-join elimination builds left-deep in the order the
//! tables are written), its inputs (*leaves*: table scans with the filters
//! pushed into them, or any other subtree) and its join predicates, and
//! searches every join tree over the leaves, bushy ones included, without
//! cross products, by dynamic programming over the subsets of leaves
//! (DPsub: Moerkotte & Neumann, "Analysis of Two Existing and One New
//! Dynamic Programming Algorithm for the Generation of Optimal Bushy Join
//! Trees without Cross Products", VLDB 2006). The cost of a tree:
//! - a set of leaves the shards can join whole (co-located on their
//!   partition keys, or with broadcast tables: [`pushes_whole`]) costs the
//!   rows it sends to the CN;
//! - a join the CN runs costs its inputs' costs plus the rows it yields
//!   (the C_out measure: Cluet & Moerkotte, "On the Complexity of
//!   Generating Optimal Left-Deep Processing Trees with Cross Products",
//!   ICDT 1995).
//!
//! So a tree that lets the shards join more, or that keeps the CN's
//! intermediate results small, wins. In TPC-H Q5, written `FROM customer,
//! orders, lineitem, supplier, nation, region`, the CN used to join the
//! year's 910,000 order lines with all 150,000 customers before the
//! suppliers and their region cut them to a fifth; with the order chosen
//! here the shards join supplier, nation and region (2,000 Asian
//! suppliers) and the CN joins that with the order lines first.
//!
//! Estimates follow System R (Selinger et al., SIGMOD 1979), from the
//! statistics of `ANALYZE TABLE` ([`super::cardinality`]): a leaf's rows
//! are its table's rows times each filter conjunct's selectivity, or
//! [`FILTER_SELECTIVITY`] for a conjunct the column statistics cannot
//! estimate (a `LIKE`); leaves joined by `a = b` keep `1 / max(ndv(a),
//! ndv(b))` of their pairs, the most selective predicate between two
//! leaves standing for all of them (a composite key's columns are rarely
//! independent). A region with a leaf whose rows are unknown (a table
//! without statistics) keeps its order, and so does one where the best tree
//! does not cost less than [`MARGIN`] of the current one: a new order
//! must pay for the risk of the estimates being wrong. The new tree gets
//! a projection that restores the region's column order.
//!
//! DataFusion's cross-join elimination, run again in the optimizer's next
//! pass, rebuilds a tree of inner joins left-deep in its leaves' order;
//! after the pushdown the leaves are the pushed queries, so the joins the
//! shards run keep their place, and only a bushy tree of joins the CN runs
//! becomes left-deep.

use super::cardinality;
use super::pushdown::pushes_whole;
use crate::catalog::statistics::FILTER_SELECTIVITY;
use crate::catalog::CatalogSnapshot;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{NullEquality, Result};
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{Expr, Join, JoinConstraint, JoinType, LogicalPlan, Projection};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use std::sync::Arc;

/// Regions with more leaves keep their order: the search visits every
/// split of every subset, 3^n of them.
pub const MAX_LEAVES: usize = 10;

/// A new tree replaces the current one only when its cost is below this
/// fraction of the current one's.
pub const MARGIN: f64 = 0.8;

/// The optimizer rule; see the module documentation.
#[derive(Debug)]
pub struct JoinReorder {
    /// The catalog the statement is planned in, for the statistics.
    pub snapshot: Arc<CatalogSnapshot>,
}

impl OptimizerRule for JoinReorder {
    fn name(&self) -> &str {
        "cn_join_reorder"
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        reorder(plan, &self.snapshot)
    }
}

/// Reorders every region of `plan` (its subqueries' too), each after the
/// regions inside its leaves.
pub fn reorder(plan: LogicalPlan, snap: &CatalogSnapshot) -> Result<Transformed<LogicalPlan>> {
    plan.transform_down_with_subqueries(|node| {
        if !in_region(&node) {
            return Ok(Transformed::no(node));
        }
        let inner = map_leaves(node, &mut |leaf| reorder(leaf, snap))?;
        let changed = inner.transformed;
        let t = match Region::of(&inner.data, snap).and_then(|r| r.better(&inner.data)) {
            Some(Ok(new)) => Transformed::yes(new),
            // An order that cannot be built is no reason to fail the
            // statement: the written one stands.
            Some(Err(e)) => {
                tracing::debug!(error = %e, "join order: kept as written");
                Transformed::new(inner.data, changed, TreeNodeRecursion::Continue)
            }
            None => Transformed::new(inner.data, changed, TreeNodeRecursion::Continue),
        };
        // The leaves are done.
        Ok(Transformed::new(t.data, t.transformed, TreeNodeRecursion::Jump))
    })
}

/// Whether `plan` is a join of a region: an inner join on equalities
/// (`NULL` never equal), written `ON`.
fn in_region(plan: &LogicalPlan) -> bool {
    matches!(plan, LogicalPlan::Join(j) if j.join_type == JoinType::Inner
        && !j.on.is_empty()
        && !j.null_aware
        && j.null_equality == NullEquality::NullEqualsNothing
        && j.join_constraint == JoinConstraint::On)
}

/// `plan` under the projections of plain columns above it (DataFusion's
/// column pruning puts them between joins).
fn peel(plan: &LogicalPlan) -> &LogicalPlan {
    match plan {
        LogicalPlan::Projection(p) if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) => peel(&p.input),
        _ => plan,
    }
}

/// Whether `plan` is a join of a region below its root: one under
/// projections of plain columns.
fn inside_region(plan: &LogicalPlan) -> bool {
    in_region(peel(plan))
}

/// `plan` with `f` applied to the leaves of the region it is the root of.
fn map_leaves(
    plan: LogicalPlan,
    f: &mut dyn FnMut(LogicalPlan) -> Result<Transformed<LogicalPlan>>,
) -> Result<Transformed<LogicalPlan>> {
    if inside_region(&plan) {
        plan.map_children(|c| map_leaves(c, f))
    } else {
        f(plan)
    }
}

/// A set of leaves, bit `i` for leaf `i`.
type Set = u32;

/// An equality between two leaves' expressions.
struct Edge {
    a: usize,
    b: usize,
    a_expr: Expr,
    b_expr: Expr,
}

/// One region's leaves, predicates and estimates.
struct Region {
    leaves: Vec<LogicalPlan>,
    edges: Vec<Edge>,
    /// The conjuncts of the joins' filters, with the leaves they name.
    residual: Vec<(Expr, Set)>,
    /// The rows of each set of leaves joined, indexed by the set (the
    /// product over leaves of their rows and over joined pairs of their
    /// selectivity).
    rows: Vec<f64>,
    /// Each leaf's neighbours (leaves it has an equality with).
    adjacent: Vec<Set>,
}

/// The best tree found for a set of leaves.
#[derive(Clone)]
struct Best {
    cost: f64,
    /// How it splits, for a set of two or more leaves the CN joins.
    split: Option<(Set, Set)>,
    /// The plan that the shards compute whole, when there is one.
    pushed: Option<Arc<LogicalPlan>>,
}

fn members(s: Set) -> impl Iterator<Item = usize> {
    (0..Set::BITS as usize).filter(move |i| s & (1 << i) != 0)
}

impl Region {
    /// The region rooted at `root`, with estimates for every subset; `None`
    /// when it is too small or too large to reorder, a predicate is not
    /// over the leaves, or a leaf has no estimate.
    fn of(root: &LogicalPlan, snap: &CatalogSnapshot) -> Option<Region> {
        let mut leaves = Vec::new();
        let mut on = Vec::new();
        let mut filters = Vec::new();
        collect(root, &mut leaves, &mut on, &mut filters);
        let n = leaves.len();
        if !(3..=MAX_LEAVES).contains(&n) {
            return None;
        }
        let owner = |e: &Expr| -> Option<Set> {
            let mut set = 0;
            for c in e.column_refs() {
                set |= 1 << leaves.iter().position(|l| l.schema().has_column(c))?;
            }
            Some(set)
        };
        let single = |s: Set| (s.count_ones() == 1).then(|| s.trailing_zeros() as usize);
        let mut edges = Vec::new();
        for (l, r) in on {
            let (a, b) = (single(owner(&l)?)?, single(owner(&r)?)?);
            if a == b {
                return None;
            }
            edges.push(Edge { a, b, a_expr: l, b_expr: r });
        }
        let mut residual = Vec::new();
        for f in filters {
            for c in split_conjunction(&f) {
                let s = owner(c)?;
                // Over one leaf or none: DataFusion pushes such conjuncts
                // down, and one left here has no join to go with.
                if s.count_ones() < 2 {
                    return None;
                }
                residual.push((c.clone(), s));
            }
        }
        let leaf_rows: Vec<f64> = leaves.iter().map(|l| leaf_rows(l, snap)).collect::<Option<_>>()?;
        // Per pair of leaves, the selectivity of their most selective
        // equality.
        let mut sel = vec![vec![1.0f64; n]; n];
        let mut adjacent = vec![0; n];
        for e in &edges {
            let distinct = key_ndv(&leaves[e.a], &e.a_expr, leaf_rows[e.a], snap)
                .max(key_ndv(&leaves[e.b], &e.b_expr, leaf_rows[e.b], snap))
                .max(1.0);
            let s = (1.0 / distinct).min(sel[e.a][e.b]);
            sel[e.a][e.b] = s;
            sel[e.b][e.a] = s;
            adjacent[e.a] |= 1 << e.b;
            adjacent[e.b] |= 1 << e.a;
        }
        let mut rows = vec![1.0f64; 1 << n];
        for s in 1..(1usize << n) {
            let low = s.trailing_zeros() as usize;
            let rest = s & (s - 1);
            rows[s] = rows[rest] * leaf_rows[low] * members(rest as Set).map(|j| sel[low][j]).product::<f64>();
        }
        Some(Region { leaves, edges, residual, rows, adjacent })
    }

    /// The region's best tree as a plan with `root`'s columns, when it
    /// costs less than [`MARGIN`] of `root`'s tree.
    fn better(&self, root: &LogicalPlan) -> Option<Result<LogicalPlan>> {
        let started = std::time::Instant::now();
        let n = self.leaves.len();
        let full: Set = (1 << n) - 1;
        let mut best: Vec<Option<Best>> = vec![None; 1 << n];
        // The leaves each set has an equality with.
        let mut neighbours: Vec<Set> = vec![0; 1 << n];
        for s in 1..(1usize << n) {
            neighbours[s] = neighbours[s & (s - 1)] | self.adjacent[s.trailing_zeros() as usize];
        }
        for (i, leaf) in self.leaves.iter().enumerate() {
            let pushed = pushes_whole(leaf).then(|| Arc::new(leaf.clone()));
            best[1 << i] = Some(Best { cost: self.rows[1 << i], split: None, pushed });
        }
        for s in 1..=full {
            if s.count_ones() < 2 {
                continue;
            }
            let low = s & s.wrapping_neg();
            let mut found: Option<Best> = None;
            // The splits (l, s − l) with l holding s's lowest leaf.
            let mut l = (s - 1) & s;
            while l > 0 {
                let r = s ^ l;
                if l & low != 0 {
                    if let (Some(bl), Some(br)) = (&best[l as usize], &best[r as usize]) {
                        if neighbours[l as usize] & r != 0 {
                            let cost = bl.cost + br.cost + self.rows[s as usize];
                            if found.as_ref().is_none_or(|f| f.pushed.is_none() && cost < f.cost) {
                                found = Some(Best { cost, split: Some((l, r)), pushed: None });
                            }
                            if let (true, Some(pl), Some(pr)) =
                                (found.as_ref().is_some_and(|f| f.pushed.is_none()), &bl.pushed, &br.pushed)
                            {
                                let join = match self.join(pl.clone(), pr.clone(), l, r) {
                                    Ok(j) => j,
                                    Err(e) => return Some(Err(e)),
                                };
                                if pushes_whole(&join) {
                                    found = Some(Best {
                                        cost: self.rows[s as usize],
                                        split: Some((l, r)),
                                        pushed: Some(Arc::new(join)),
                                    });
                                }
                            }
                        }
                    }
                }
                l = (l - 1) & s;
            }
            best[s as usize] = found;
        }
        let chosen = best[full as usize].as_ref()?;
        let (current, _) = self.current_cost(root, &mut 0);
        tracing::debug!(leaves = n, current, best = chosen.cost, searched = ?started.elapsed(), "join order");
        if chosen.cost >= MARGIN * current {
            return None;
        }
        Some(self.build(&best, full).and_then(|plan| {
            let cols: Vec<Expr> = root.schema().columns().into_iter().map(Expr::Column).collect();
            Ok(LogicalPlan::Projection(Projection::try_new(cols, Arc::new(plan))?))
        }))
    }

    /// The cost of the tree as it is, and its set of leaves; `next` counts
    /// the leaves met, in the order [`collect`] met them.
    fn current_cost(&self, plan: &LogicalPlan, next: &mut usize) -> (f64, Set) {
        if !inside_region(plan) {
            let i = *next;
            *next += 1;
            return (self.rows[1 << i], 1 << i);
        }
        let plan = peel(plan);
        let inputs = plan.inputs();
        let (cl, l) = self.current_cost(inputs[0], next);
        let (cr, r) = self.current_cost(inputs[1], next);
        let s = l | r;
        let rows = self.rows[s as usize];
        (if pushes_whole(plan) { rows } else { cl + cr + rows }, s)
    }

    /// The join of `left` (leaves `l`) and `right` (leaves `r`) on their
    /// equalities, with the filter conjuncts that need both.
    fn join(&self, left: Arc<LogicalPlan>, right: Arc<LogicalPlan>, l: Set, r: Set) -> Result<LogicalPlan> {
        let (in_l, in_r) = (|i: usize| (l >> i) & 1 == 1, |i: usize| (r >> i) & 1 == 1);
        let mut on = Vec::new();
        for e in &self.edges {
            if in_l(e.a) && in_r(e.b) {
                on.push((e.a_expr.clone(), e.b_expr.clone()));
            } else if in_l(e.b) && in_r(e.a) {
                on.push((e.b_expr.clone(), e.a_expr.clone()));
            }
        }
        let s = l | r;
        let filter = conjunction(
            self.residual.iter().filter(|(_, m)| m & !s == 0 && m & !l != 0 && m & !r != 0).map(|(c, _)| c.clone()),
        );
        Ok(LogicalPlan::Join(Join::try_new(
            left,
            right,
            on,
            filter,
            JoinType::Inner,
            JoinConstraint::On,
            NullEquality::NullEqualsNothing,
            false,
        )?))
    }

    fn build(&self, best: &[Option<Best>], s: Set) -> Result<LogicalPlan> {
        let b = best[s as usize].as_ref().expect("a chosen tree's parts were chosen");
        if let Some(p) = &b.pushed {
            return Ok(p.as_ref().clone());
        }
        match b.split {
            None => Ok(self.leaves[s.trailing_zeros() as usize].clone()),
            Some((l, r)) => {
                let (left, right) = (self.build(best, l)?, self.build(best, r)?);
                self.join(Arc::new(left), Arc::new(right), l, r)
            }
        }
    }
}

/// The leaves of the region rooted at `plan`, left to right, its joins'
/// equalities and filters.
fn collect(plan: &LogicalPlan, leaves: &mut Vec<LogicalPlan>, on: &mut Vec<(Expr, Expr)>, filters: &mut Vec<Expr>) {
    match peel(plan) {
        LogicalPlan::Join(j) if inside_region(plan) => {
            collect(&j.left, leaves, on, filters);
            collect(&j.right, leaves, on, filters);
            on.extend(j.on.iter().cloned());
            filters.extend(j.filter.iter().cloned());
        }
        _ => leaves.push(plan.clone()),
    }
}

/// A leaf's estimated rows: a table scan's (or a filter's over one) from
/// the table's rows and each conjunct's selectivity, the statistics' or
/// [`FILTER_SELECTIVITY`]; other plans by [`cardinality::rows`], else by
/// the heuristics of [`super::lookup::estimate`]. At least 1.
fn leaf_rows(leaf: &LogicalPlan, snap: &CatalogSnapshot) -> Option<f64> {
    let kept = |input: &LogicalPlan, predicates: &[Expr]| -> f64 {
        predicates
            .iter()
            .flat_map(split_conjunction)
            .map(|c| cardinality::selectivity(input, c, snap).unwrap_or(FILTER_SELECTIVITY))
            .product()
    };
    let rows = match leaf {
        LogicalPlan::TableScan(scan) => {
            let t = cardinality::sharded(scan)?;
            let rows = snap.statistics(&t.db, &t.name)?.rows as f64 * kept(leaf, &scan.filters);
            scan.fetch.map_or(rows, |n| rows.min(n as f64))
        }
        LogicalPlan::Filter(f) => leaf_rows(&f.input, snap)? * kept(&f.input, std::slice::from_ref(&f.predicate)),
        LogicalPlan::Projection(p) => leaf_rows(&p.input, snap)?,
        LogicalPlan::SubqueryAlias(a) => leaf_rows(&a.input, snap)?,
        _ => cardinality::rows(leaf, snap).or_else(|| super::lookup::estimate(leaf, snap))?,
    };
    Some(rows.max(1.0))
}

/// The distinct values of a join key in a leaf's rows: its column's NDV
/// (at most the rows), or the rows when unknown (a key).
fn key_ndv(leaf: &LogicalPlan, key: &Expr, rows: f64, snap: &CatalogSnapshot) -> f64 {
    let mut e = key;
    while let Expr::Cast(c) = e {
        e = &c.expr;
    }
    match e {
        Expr::Column(c) => cardinality::column_stats(leaf, c, snap).map_or(rows, |s| s.ndv.min(rows)),
        _ => rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_lists_the_bits() {
        assert_eq!(members(0b1011).collect::<Vec<_>>(), vec![0, 1, 3]);
        assert_eq!(members(0).count(), 0);
    }
}
