//! Join transposition: a join that correlates with one table of a join
//! tree moves below it, next to that table, when the two can then run on
//! the shards together.
//!
//! Two cases, both after Calcite's transpose rules
//! (`SemiJoinJoinTransposeRule`, `JoinPushThroughJoinRule`):
//!
//! - **Semi and anti joins** (`EXISTS`, `NOT EXISTS`). DataFusion
//!   decorrelates a WHERE clause's `EXISTS (…)` into a semi join above the
//!   whole FROM list. In TPC-H Q21 that is above the join of `lineitem l1`
//!   and `orders` with `supplier` (partitioned by suppkey, not co-located),
//!   so the `EXISTS` over `lineitem l2` and the `NOT EXISTS` over
//!   `lineitem l3`, both correlated on `l_orderkey`, would read all of
//!   lineitem twice into the CN. Next to `l1 ⋈ orders` all four tables are
//!   co-located on orderkey and [`super::pushdown`] sends one query per
//!   shard with both subqueries in it. For a semi or anti join `S(L, R)`
//!   whose left-side references (its equi-keys and the left columns of its
//!   filter) all come from one input `A` of an inner join `L = A ⋈ B`,
//!   `S(A ⋈ B, R) = S(A, R) ⋈ B`: a row of `A ⋈ B` is kept exactly when
//!   its `A` part has (or has no) match in `R`.
//! - **Inner joins** with a table the shards can join where it is
//!   referenced. In TPC-H Q7, DataFusion joins `lineitem ⋈ orders` with
//!   `supplier` and `customer` first and only then with `nation n1` and
//!   `nation n2`, whose filters keep 2 of 25 nations; `supplier ⋈ n1`
//!   (nation is broadcast) runs on the shards and keeps 8 % of the
//!   suppliers, whose keys the lookup join (see [`super::lookup`]) can
//!   then send to lineitem. For `J = (A ⋈ B) ⋈ T` on keys of `A` and `T`,
//!   `J = (A ⋈ T) ⋈ B` (inner joins are associative); the conjuncts of the
//!   join's filter over `A` and `T` go with it, the others stay above as a
//!   filter, and a projection restores `J`'s column order.
//!
//! Filters and plain column projections between the join and the target
//! are passed through (a projection also passes the moved table's
//! columns). Without costs a move is made only where the shards can then
//! run the moved join whole (the caller's test, [`super::pushdown`]'s);
//! elsewhere the join stays where DataFusion put it. An inner join moves
//! only with an equality between the two (never as a cross join).

use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, DFSchema, NullEquality, Result};
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{BinaryExpr, Expr, Filter, Join, JoinType, LogicalPlan, Operator, Projection};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use std::cell::RefCell;
use std::sync::Arc;

/// The optimizer rule: [`transpose`] where [`super::pushdown`] can then
/// push the moved join. Registered before the pushdown, and not among the
/// rules the lookup joins leave out, so that their candidates see the
/// joins where the shards will run them.
#[derive(Debug, Default)]
pub struct JoinTranspose;

impl OptimizerRule for JoinTranspose {
    fn name(&self) -> &str {
        "cn_join_transpose"
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        transpose(plan, &|p| Ok(super::pushdown::pushes_whole(p)))
    }
}

/// Moves the semi, anti and inner joins of `plan` down to the input of the
/// join tree they correlate with, bottom up, where `pushable(moved join)`
/// says the shards can run it.
pub fn transpose(
    plan: LogicalPlan,
    pushable: &dyn Fn(&LogicalPlan) -> Result<bool>,
) -> Result<Transformed<LogicalPlan>> {
    plan.transform_up_with_subqueries(|node| {
        let LogicalPlan::Join(j) = &node else {
            return Ok(Transformed::no(node));
        };
        if j.null_aware || j.null_equality != NullEquality::NullEqualsNothing {
            return Ok(Transformed::no(node));
        }
        if !matches!(j.join_type, JoinType::LeftSemi | JoinType::LeftAnti | JoinType::Inner) || pushable(&node)? {
            // Where it is, the shards run it whole already (and moving it
            // could undo a move made below it).
            return Ok(Transformed::no(node));
        }
        let moved = match j.join_type {
            JoinType::LeftSemi | JoinType::LeftAnti => {
                let target = Target { refs: semi_references(j), extra: vec![], place: &|side| place_semi(j, side) };
                sink(&j.left, &target, pushable)?
            }
            JoinType::Inner => sink_inner(j, pushable)?,
            _ => None,
        };
        Ok(match moved {
            Some(p) => Transformed::yes(p),
            None => Transformed::no(node),
        })
    })
}

/// Where a join may land and how it is rebuilt there.
struct Target<'a> {
    /// Columns the landing input must have.
    refs: Vec<Column>,
    /// Columns the moved join adds, passed up through projections.
    extra: Vec<Column>,
    /// The moved join over a landing input, or `None` when it cannot go
    /// there.
    place: &'a dyn Fn(&LogicalPlan) -> Result<Option<LogicalPlan>>,
}

/// The columns of the left side the semi join `j` reads: its left keys and
/// its filter's columns that are not the right side's.
fn semi_references(j: &Join) -> Vec<Column> {
    let mut out: Vec<Column> = Vec::new();
    for (l, _) in &j.on {
        add_columns(l, None, &mut out);
    }
    if let Some(f) = &j.filter {
        add_columns(f, Some(j.right.schema()), &mut out);
    }
    out
}

/// Adds the columns `e` reads to `out` once each, but for those of `other`.
fn add_columns(e: &Expr, other: Option<&DFSchema>, out: &mut Vec<Column>) {
    for c in e.column_refs() {
        if !other.is_some_and(|s| s.has_column(c)) && !out.contains(c) {
            out.push(c.clone());
        }
    }
}

fn all_in(refs: &[Column], schema: &DFSchema) -> bool {
    refs.iter().all(|c| schema.has_column(c))
}

fn rebuild(node: &LogicalPlan, inputs: Vec<LogicalPlan>) -> Result<LogicalPlan> {
    node.with_new_exprs(node.expressions(), inputs)
}

/// The semi join `j` over `side` instead of its left input.
fn place_semi(j: &Join, side: &LogicalPlan) -> Result<Option<LogicalPlan>> {
    Ok(Some(rebuild(&LogicalPlan::Join(j.clone()), vec![side.clone(), j.right.as_ref().clone()])?))
}

/// The inner join `j` moved into one of its inputs, the other (`T`) joined
/// to the table it references; `None` when neither side can move so.
fn sink_inner(j: &Join, pushable: &dyn Fn(&LogicalPlan) -> Result<bool>) -> Result<Option<LogicalPlan>> {
    let conjuncts: Vec<Expr> = j.filter.iter().flat_map(|f| split_conjunction(f).into_iter().cloned()).collect();
    for t_is_right in [true, false] {
        let (x, t) = if t_is_right { (&j.left, &j.right) } else { (&j.right, &j.left) };
        // The keys, oriented (X side, T side).
        let keys: Vec<(Expr, Expr)> =
            j.on.iter()
                .map(|(l, r)| if t_is_right { (l.clone(), r.clone()) } else { (r.clone(), l.clone()) })
                .collect();
        let mut refs: Vec<Column> = Vec::new();
        for (xk, _) in &keys {
            add_columns(xk, None, &mut refs);
        }
        // Keys in the filter only (the optimizer's first pass, before
        // DataFusion extracts them): their X columns decide the target too.
        for c in conjuncts.iter().filter(|c| key_equality(c, t.schema()).is_some()) {
            add_columns(c, Some(t.schema()), &mut refs);
        }
        if refs.is_empty() {
            continue;
        }
        // The conjuncts the last placement took along: the search ends at
        // the first placement that is accepted.
        let taken: RefCell<Vec<Expr>> = RefCell::new(vec![]);
        let place = |side: &LogicalPlan| -> Result<Option<LogicalPlan>> {
            // The filter's conjuncts over the landing input and T go along.
            let (along, _): (Vec<Expr>, Vec<Expr>) = conjuncts.iter().cloned().partition(|c| {
                c.column_refs().iter().all(|col| side.schema().has_column(col) || t.schema().has_column(col))
            });
            if keys.is_empty() && !along.iter().any(|c| key_equality(c, t.schema()).is_some()) {
                return Ok(None);
            }
            *taken.borrow_mut() = along.clone();
            let join = Join::try_new(
                Arc::new(side.clone()),
                t.clone(),
                keys.clone(),
                conjunction(along),
                JoinType::Inner,
                j.join_constraint,
                j.null_equality,
                false,
            )?;
            Ok(Some(LogicalPlan::Join(join)))
        };
        let extra: Vec<Column> = t.schema().columns();
        let target = Target { refs, extra, place: &place };
        let Some(moved) = sink(x, &target, pushable)? else {
            continue;
        };
        // The conjuncts that did not go along stay above; then J's columns
        // in J's order.
        let landed = taken.borrow();
        let rest: Vec<Expr> = conjuncts.iter().filter(|c| !landed.contains(c)).cloned().collect();
        let mut plan = moved;
        if let Some(p) = conjunction(rest) {
            plan = LogicalPlan::Filter(Filter::try_new(p, Arc::new(plan))?);
        }
        let cols: Vec<Expr> = j.schema.columns().into_iter().map(Expr::Column).collect();
        return Ok(Some(LogicalPlan::Projection(Projection::try_new(cols, Arc::new(plan))?)));
    }
    Ok(None)
}

/// `c` as `x = t` with `t` over `t_schema`'s columns only and `x` over
/// none of them.
fn key_equality<'a>(c: &'a Expr, t_schema: &DFSchema) -> Option<(&'a Expr, &'a Expr)> {
    let Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) = c else {
        return None;
    };
    let on_t = |e: &Expr| {
        let refs = e.column_refs();
        !refs.is_empty() && refs.iter().all(|c| t_schema.has_column(c))
    };
    let off_t = |e: &Expr| {
        let refs = e.column_refs();
        !refs.is_empty() && !refs.iter().any(|c| t_schema.has_column(c))
    };
    if off_t(left) && on_t(right) {
        Some((left, right))
    } else if on_t(left) && off_t(right) {
        Some((right, left))
    } else {
        None
    }
}

/// The join of `target` placed inside `input` instead of above it, or
/// `None` when it cannot move or would not be pushable where it lands.
fn sink(
    input: &LogicalPlan,
    target: &Target,
    pushable: &dyn Fn(&LogicalPlan) -> Result<bool>,
) -> Result<Option<LogicalPlan>> {
    Ok(match input {
        // Plain column projections and filters commute with the join on
        // the columns they pass through.
        LogicalPlan::Projection(p) if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) => {
            match sink(&p.input, target, pushable)? {
                Some(inner) => {
                    let mut exprs = p.expr.clone();
                    for c in &target.extra {
                        if !exprs.iter().any(|e| matches!(e, Expr::Column(x) if x == c)) {
                            exprs.push(Expr::Column(c.clone()));
                        }
                    }
                    Some(LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(inner))?))
                }
                None => None,
            }
        }
        LogicalPlan::Filter(f) => {
            sink(&f.input, target, pushable)?.map(|inner| rebuild(input, vec![inner])).transpose()?
        }
        LogicalPlan::Join(inner) if inner.join_type == JoinType::Inner => {
            let sides = [inner.left.as_ref(), inner.right.as_ref()];
            let mut moved = None;
            for (k, side) in sides.iter().enumerate() {
                if !all_in(&target.refs, side.schema()) {
                    continue;
                }
                // Deeper first: next to the table it correlates with.
                let new_side = match sink(side, target, pushable)? {
                    Some(p) => Some(p),
                    None => match (target.place)(side)? {
                        Some(here) if pushable(&here)? => Some(here),
                        _ => None,
                    },
                };
                if let Some(new_side) = new_side {
                    let mut inputs: Vec<LogicalPlan> = sides.iter().map(|s| (*s).clone()).collect();
                    inputs[k] = new_side;
                    moved = Some(rebuild(input, inputs)?);
                    break;
                }
            }
            moved
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::logical_expr::{col, lit, logical_plan::builder::LogicalTableSource, LogicalPlanBuilder};

    fn scan(name: &str, cols: &[&str]) -> LogicalPlanBuilder {
        let schema = Schema::new(cols.iter().map(|c| Field::new(*c, DataType::Int32, false)).collect::<Vec<_>>());
        LogicalPlanBuilder::scan(name, Arc::new(LogicalTableSource::new(Arc::new(schema))), None).unwrap()
    }

    fn text(p: &LogicalPlan) -> String {
        format!("{}", p.display_indent())
    }

    /// `(a ⋈ b) ⋉ r` on a's key: moves to `(a ⋉ r) ⋈ b` when allowed,
    /// stays when not, and never moves to the side that lacks the key.
    #[test]
    fn semi_join_moves_to_the_side_it_correlates_with() {
        let a = scan("a", &["k", "x"]);
        let b = scan("b", &["x", "y"]).build().unwrap();
        let r = scan("r", &["k", "z"]).build().unwrap();
        let ab = a.join(b, JoinType::Inner, (vec!["a.x"], vec!["b.x"]), None).unwrap();
        let plan = ab
            .project(vec![col("a.k"), col("b.y")])
            .unwrap()
            .join(r, JoinType::LeftSemi, (vec!["a.k"], vec!["r.k"]), Some(col("r.z").not_eq(col("a.k"))))
            .unwrap()
            .build()
            .unwrap();
        let before = plan.schema().clone();
        // Pushable: only what has no `b` (a alone, a ⋉ r).
        let no_b = |p: &LogicalPlan| Ok(!text(p).contains("TableScan: b"));
        let moved = transpose(plan.clone(), &no_b).unwrap();
        assert!(moved.transformed);
        let want =
            "Projection: a.k, b.y\n  Inner Join: a.x = b.x\n    LeftSemi Join: a.k = r.k Filter: r.z != a.k\n      \
                    TableScan: a\n      TableScan: r\n    TableScan: b";
        assert_eq!(text(&moved.data), want);
        assert_eq!(moved.data.schema(), &before, "the output is unchanged");

        let kept = transpose(plan.clone(), &|_| Ok(false)).unwrap();
        assert!(!kept.transformed, "not pushable where it would land: left where it was");
        let whole = transpose(plan, &|_| Ok(true)).unwrap();
        assert!(!whole.transformed, "pushable where it is: left there");

        // A semi join on a column of b cannot go to a.
        let a = scan("a", &["k", "x"]);
        let b = scan("b", &["x", "y"]).build().unwrap();
        let r = scan("r", &["y"]).build().unwrap();
        let plan = a
            .join(b, JoinType::Inner, (vec!["a.x"], vec!["b.x"]), None)
            .unwrap()
            .join(r, JoinType::LeftAnti, (vec!["b.y"], vec!["r.y"]), None)
            .unwrap()
            .build()
            .unwrap();
        let moved = transpose(plan, &|p| Ok(!text(p).contains("TableScan: a"))).unwrap();
        let want =
            "Inner Join: a.x = b.x\n  TableScan: a\n  LeftAnti Join: b.y = r.y\n    TableScan: b\n    TableScan: r";
        assert_eq!(text(&moved.data), want);
    }

    /// `(a ⋈ b) ⋈ t` on a's key, with a filter conjunct over a and t and
    /// one over b and t: `(a ⋈ t) ⋈ b`, the first conjunct with the moved
    /// join, the second above, the columns in the old order. Keys that are
    /// still in the filter (before DataFusion extracts them) move the same.
    #[test]
    fn inner_join_moves_to_the_table_it_references() {
        let build = |keys_in_filter: bool| {
            let a = scan("a", &["k", "x"]);
            let b = scan("b", &["x", "y"]).build().unwrap();
            let t = scan("t", &["k", "z"]).build().unwrap();
            let ab = a.join(b, JoinType::Inner, (vec!["a.x"], vec!["b.x"]), None).unwrap();
            let along = (col("a.x") + col("t.z")).gt(lit(5));
            let above = col("b.y").lt(col("t.z"));
            if keys_in_filter {
                let f = col("a.k").eq(col("t.k")).and(along).and(above);
                ab.join_on(t, JoinType::Inner, vec![f]).unwrap().build().unwrap()
            } else {
                ab.join(t, JoinType::Inner, (vec!["a.k"], vec!["t.k"]), Some(along.and(above)))
                    .unwrap()
                    .build()
                    .unwrap()
            }
        };
        let no_b = |p: &LogicalPlan| Ok(!text(p).contains("TableScan: b"));
        for keys_in_filter in [false, true] {
            let plan = build(keys_in_filter);
            let moved = transpose(plan.clone(), &no_b).unwrap();
            assert!(moved.transformed);
            let got = text(&moved.data);
            let join = if keys_in_filter {
                "Inner Join:  Filter: a.k = t.k AND a.x + t.z > Int32(5)"
            } else {
                "Inner Join: a.k = t.k Filter: a.x + t.z > Int32(5)"
            };
            let want = format!(
                "Projection: a.k, a.x, b.x, b.y, t.k, t.z\n  Filter: b.y < t.z\n    Inner Join: a.x = b.x\n      \
                 {join}\n        TableScan: a\n        TableScan: t\n      TableScan: b"
            );
            assert_eq!(got, want, "keys in the filter: {keys_in_filter}");
            assert_eq!(moved.data.schema(), plan.schema());
        }
        // Not where the shards could not run it, and never as a cross join.
        assert!(!transpose(build(false), &|_| Ok(false)).unwrap().transformed);
        let a = scan("a", &["k", "x"]);
        let b = scan("b", &["x", "y"]).build().unwrap();
        let t = scan("t", &["k", "z"]).build().unwrap();
        let cross = a
            .join(b, JoinType::Inner, (vec!["a.x"], vec!["b.x"]), None)
            .unwrap()
            .join_on(t, JoinType::Inner, vec![col("a.k").lt(col("t.k"))])
            .unwrap()
            .build()
            .unwrap();
        assert!(!transpose(cross, &no_b).unwrap().transformed);
    }
}
