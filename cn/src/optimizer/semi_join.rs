//! Semi-join transposition: an `EXISTS` / `NOT EXISTS` (a left semi or
//! anti join) that correlates with one table of a join moves below that
//! join, next to the table, when it can then run on the shards with it.
//!
//! DataFusion decorrelates a WHERE clause's `EXISTS (…)` into a semi join
//! above the whole FROM list. In TPC-H Q21 that is above the join of
//! `lineitem l1` and `orders` with `supplier` (partitioned by suppkey, not
//! co-located), so the `EXISTS` over `lineitem l2` and the `NOT EXISTS`
//! over `lineitem l3`, both correlated on `l_orderkey`, would read all of
//! lineitem twice into the CN. Moved next to `l1 ⋈ orders`, all four
//! tables are co-located on orderkey and [`super::pushdown`] sends one
//! query per shard with both subqueries in it.
//!
//! The rewrite is Calcite's `SemiJoinJoinTransposeRule` (and the filter and
//! projection transposes around it): for a semi or anti join `S(L, R)`
//! whose left-side references (its equi-keys and the left columns of its
//! filter) all come from one input `A` of an inner join `L = A ⋈ B`,
//! `S(A ⋈ B, R) = S(A, R) ⋈ B`: a row of `A ⋈ B` is kept exactly when its
//! `A` part has (or has no) match in `R`. Filters and plain column
//! projections between `S` and the join are passed through the same way.
//!
//! Without costs the rewrite is made only where it lets the shards do the
//! semi join: the new `S(A, R)` must be pushable as a whole (the caller's
//! test); elsewhere the semi join stays where DataFusion put it, after the
//! join that may have filtered its left side.

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, Result};
use datafusion::logical_expr::{Expr, Join, JoinType, LogicalPlan};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};

/// The optimizer rule: [`transpose`] where [`super::pushdown`] can then
/// push the semi join. Registered before the pushdown, and not among the
/// rules the lookup joins leave out, so that their candidates see the
/// semi joins where the shards will run them.
#[derive(Debug, Default)]
pub struct SemiJoinTranspose;

impl OptimizerRule for SemiJoinTranspose {
    fn name(&self) -> &str {
        "cn_semi_join_transpose"
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        transpose(plan, &|p| Ok(super::pushdown::pushes_whole(p)))
    }
}

/// Moves every semi and anti join of `plan` down to the input of the inner
/// join it correlates with, bottom up, where `pushable(new semi join)`
/// says the shards can run it.
pub fn transpose(
    plan: LogicalPlan,
    pushable: &dyn Fn(&LogicalPlan) -> Result<bool>,
) -> Result<Transformed<LogicalPlan>> {
    plan.transform_up(|node| {
        let LogicalPlan::Join(j) = &node else {
            return Ok(Transformed::no(node));
        };
        if !matches!(j.join_type, JoinType::LeftSemi | JoinType::LeftAnti) || j.null_aware {
            return Ok(Transformed::no(node));
        }
        let refs = left_references(j);
        match sink(j, &j.left, &refs, pushable)? {
            Some(p) => Ok(Transformed::yes(p)),
            None => Ok(Transformed::no(node)),
        }
    })
}

/// The columns of the left side the semi join `j` reads: its left keys and
/// its filter's columns that are not the right side's.
fn left_references(j: &Join) -> Vec<Column> {
    let mut out: Vec<Column> = Vec::new();
    let mut add = |e: &Expr, skip_right: bool| {
        for c in e.column_refs() {
            let right_side = skip_right && j.right.schema().has_column(c);
            if !right_side && !out.contains(c) {
                out.push(c.clone());
            }
        }
    };
    for (l, _) in &j.on {
        add(l, false);
    }
    if let Some(f) = &j.filter {
        add(f, true);
    }
    out
}

fn all_in(refs: &[Column], schema: &DFSchema) -> bool {
    refs.iter().all(|c| schema.has_column(c))
}

/// The semi join `j` rebuilt over `left` (its schema is `left`'s).
fn semi_over(j: &Join, left: LogicalPlan) -> Result<LogicalPlan> {
    let node = LogicalPlan::Join(j.clone());
    node.with_new_exprs(node.expressions(), vec![left, j.right.as_ref().clone()])
}

/// `j` (a semi or anti join) applied inside `left` instead of above it, or
/// `None` when it cannot move or would not be pushable where it lands.
fn sink(
    j: &Join,
    left: &LogicalPlan,
    refs: &[Column],
    pushable: &dyn Fn(&LogicalPlan) -> Result<bool>,
) -> Result<Option<LogicalPlan>> {
    let rebuild = |node: &LogicalPlan, inputs: Vec<LogicalPlan>| node.with_new_exprs(node.expressions(), inputs);
    Ok(match left {
        // Plain column projections and filters commute with a semi join
        // on the columns they pass through.
        LogicalPlan::Projection(p) if p.expr.iter().all(|e| matches!(e, Expr::Column(_))) => {
            sink(j, &p.input, refs, pushable)?.map(|inner| rebuild(left, vec![inner])).transpose()?
        }
        LogicalPlan::Filter(f) => {
            sink(j, &f.input, refs, pushable)?.map(|inner| rebuild(left, vec![inner])).transpose()?
        }
        LogicalPlan::Join(inner) if inner.join_type == JoinType::Inner => {
            let sides = [inner.left.as_ref(), inner.right.as_ref()];
            let mut moved = None;
            for (k, side) in sides.iter().enumerate() {
                if !all_in(refs, side.schema()) {
                    continue;
                }
                // Deeper first: next to the table it correlates with.
                let new_side = match sink(j, side, refs, pushable)? {
                    Some(p) => Some(p),
                    None => {
                        let here = semi_over(j, (*side).clone())?;
                        pushable(&here)?.then_some(here)
                    }
                };
                if let Some(new_side) = new_side {
                    let mut inputs: Vec<LogicalPlan> = sides.iter().map(|s| (*s).clone()).collect();
                    inputs[k] = new_side;
                    moved = Some(rebuild(left, inputs)?);
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
    use datafusion::logical_expr::{col, logical_plan::builder::LogicalTableSource, LogicalPlanBuilder};
    use std::sync::Arc;

    fn scan(name: &str, cols: &[&str]) -> LogicalPlanBuilder {
        let schema = Schema::new(cols.iter().map(|c| Field::new(*c, DataType::Int32, false)).collect::<Vec<_>>());
        LogicalPlanBuilder::scan(name, Arc::new(LogicalTableSource::new(Arc::new(schema))), None).unwrap()
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
        let moved = transpose(plan.clone(), &|_| Ok(true)).unwrap();
        assert!(moved.transformed);
        let text = format!("{}", moved.data.display_indent());
        let want =
            "Projection: a.k, b.y\n  Inner Join: a.x = b.x\n    LeftSemi Join: a.k = r.k Filter: r.z != a.k\n      \
                    TableScan: a\n      TableScan: r\n    TableScan: b";
        assert_eq!(text, want);
        assert_eq!(moved.data.schema(), &before, "the output is unchanged");

        let kept = transpose(plan.clone(), &|_| Ok(false)).unwrap();
        assert!(!kept.transformed, "not pushable where it would land: left where it was");

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
        let moved = transpose(plan, &|p| Ok(!format!("{}", p.display_indent()).contains("TableScan: a"))).unwrap();
        let text = format!("{}", moved.data.display_indent());
        let want =
            "Inner Join: a.x = b.x\n  TableScan: a\n  LeftAnti Join: b.y = r.y\n    TableScan: b\n    TableScan: r";
        assert_eq!(text, want);
    }
}
