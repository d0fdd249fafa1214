//! Decorrelation of the scalar subqueries DataFusion cannot unnest: an
//! aggregate whose correlation is not an equality, as in
//! `SELECT (SELECT count(*) FROM t AS x WHERE x.b < t.b) FROM t` (1,879 of
//! the SQLite corpus' select1–3 records failed on it).
//!
//! DataFusion's `ScalarSubqueryToJoin` pulls correlated equalities up into
//! the GROUP BY of the subquery and joins on them; a `<` cannot be grouped
//! on, so the subquery stayed and the physical planner refused it. This
//! rule uses the domain join of Neumann and Kemper, "Unnesting Arbitrary
//! Queries" (BTW 2015), §3: for a node `P` (Projection or Filter) over input
//! `O` holding a correlated scalar subquery `(SELECT agg FROM I WHERE p)`,
//!
//! ```text
//! D = SELECT DISTINCT <outer columns the subquery reads> FROM O
//! S = SELECT agg FILTER (WHERE __cn_m IS NOT NULL), D.* FROM D
//!       LEFT JOIN (SELECT I.*, 1 AS __cn_m FROM I) ON p[outer := D]
//!     GROUP BY D.*
//! P' = P[subquery := S.value] over O LEFT JOIN S ON O.cols <=> D.cols
//! ```
//!
//! Every row of `O` meets exactly one row of `S` (S is grouped by the
//! distinct outer values, compared NULL-safely), so `O` keeps its rows. A
//! value of `D` that no inner row matches still forms a group, and the
//! FILTER on the marker makes each aggregate see no rows there: `count`
//! gives 0 and the others NULL, as over an empty subquery (the "count bug").
//! A HAVING above the aggregate drops a group, and the outer LEFT JOIN turns
//! it into NULL, as MySQL gives for a scalar subquery with no row.
//!
//! It runs as the last analyzer rule, before DataFusion's optimizer, and
//! only on subqueries DataFusion would leave in place: it leaves alone those
//! whose correlated predicates are all equalities (DataFusion's cheaper
//! group-and-join plan handles them, as in TPC-H Q2, Q17 and Q20).

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, JoinType, NullEquality, Result};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    lit, Aggregate, BinaryExpr, Expr, Filter, LogicalPlan, LogicalPlanBuilder, Operator, Projection, Subquery,
};
use datafusion::optimizer::AnalyzerRule;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The analyzer rule (see the module documentation).
#[derive(Debug, Default)]
pub struct DomainJoinDecorrelation {
    /// Numbers the aliases of the subqueries it rewrites.
    next: AtomicUsize,
}

impl AnalyzerRule for DomainJoinDecorrelation {
    fn name(&self) -> &str {
        "cn_domain_join_decorrelation"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|p| self.rewrite_node(p)).map(|t| t.data)
    }
}

/// The marker column that tells a matched inner row from the NULLs the
/// domain's LEFT JOIN adds.
const MARKER: &str = "__cn_m";

impl DomainJoinDecorrelation {
    fn rewrite_node(&self, plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
        let mut plan = plan;
        let mut changed = false;
        // One subquery at a time: each rewrite gives the node a new input.
        while let Some(sq) = first_candidate(&plan) {
            match self.rewrite_one(&plan, &sq)? {
                Some(p) => {
                    plan = p;
                    changed = true;
                }
                None => break,
            }
        }
        Ok(if changed { Transformed::yes(plan) } else { Transformed::no(plan) })
    }

    /// `node` with `sq` replaced by a column of a domain join, or `None`
    /// when the subquery's shape is not one this rule handles.
    fn rewrite_one(&self, node: &LogicalPlan, sq: &Subquery) -> Result<Option<LogicalPlan>> {
        let outer = match node {
            LogicalPlan::Projection(p) => p.input.as_ref(),
            LogicalPlan::Filter(f) => f.input.as_ref(),
            _ => return Ok(None),
        };
        // The outer columns the subquery reads, each in the outer input.
        let mut cols: Vec<Column> = Vec::new();
        for e in &sq.outer_ref_columns {
            if let Expr::OuterReferenceColumn(_, c) = e {
                if !cols.contains(c) {
                    cols.push(c.clone());
                }
            }
        }
        if cols.is_empty() || !cols.iter().all(|c| outer.schema().has_column(c)) {
            return Ok(None);
        }
        let Some(shape) = Shape::of(sq.subquery.as_ref()) else {
            return Ok(None);
        };
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let d_names: Vec<String> = (0..cols.len()).map(|i| format!("__cn_d{n}_{i}")).collect();
        let d_cols: Vec<Expr> = d_names.iter().map(|d| Expr::Column(Column::new_unqualified(d))).collect();
        let to_domain = |e: Expr| -> Result<Expr> {
            e.transform(|x| match x {
                Expr::OuterReferenceColumn(_, c) => {
                    let i = cols.iter().position(|k| *k == c).expect("collected above");
                    Ok(Transformed::yes(d_cols[i].clone()))
                }
                other => Ok(Transformed::no(other)),
            })
            .map(|t| t.data)
        };

        // D: the distinct outer values.
        let domain = LogicalPlanBuilder::from(outer.clone())
            .project(cols.iter().zip(&d_names).map(|(c, d)| Expr::Column(c.clone()).alias(d)))?
            .distinct()?
            .build()?;
        // The inner input with its marker, LEFT JOINed to D on the predicate.
        let inner_cols = shape.input.schema().columns().into_iter().map(Expr::Column);
        let marked = LogicalPlanBuilder::from(shape.input.clone())
            .project(inner_cols.chain([lit(1_i64).alias(MARKER)]))?
            .build()?;
        let on = match shape.predicate {
            Some(p) => vec![to_domain(p)?],
            None => vec![],
        };
        let joined = LogicalPlanBuilder::from(domain).join_on(marked, JoinType::Left, on)?.build()?;
        // The aggregate, grouped by D, each aggregate over matched rows only.
        let agg = shape.aggregate;
        let group_len = agg.group_expr.len();
        let mut aggr = Vec::with_capacity(agg.aggr_expr.len());
        for (i, e) in agg.aggr_expr.iter().enumerate() {
            let (qualifier, field) = agg.schema.qualified_field(group_len + i);
            let Some(filtered) = only_matched(e) else {
                return Ok(None);
            };
            aggr.push(filtered.alias_qualified(qualifier.cloned(), field.name()));
        }
        let mut s = LogicalPlanBuilder::from(joined).aggregate(d_cols.clone(), aggr)?.build()?;
        // The nodes above the aggregate, keeping D's columns.
        for above in shape.above.iter().rev() {
            s = match above {
                LogicalPlan::Projection(p) => {
                    let mut exprs = Vec::with_capacity(p.expr.len() + d_cols.len());
                    for e in &p.expr {
                        exprs.push(to_domain(e.clone())?);
                    }
                    exprs.extend(d_cols.iter().cloned());
                    LogicalPlanBuilder::from(s).project(exprs)?.build()?
                }
                LogicalPlan::Filter(f) => {
                    LogicalPlanBuilder::from(s).filter(to_domain(f.predicate.clone())?)?.build()?
                }
                _ => return Ok(None),
            };
        }
        let alias = format!("__cn_sq{n}");
        let value_name = sq.subquery.schema().field(0).name().clone();
        let s = LogicalPlanBuilder::from(s).alias(alias.as_str())?.build()?;
        let right_keys: Vec<Column> = d_names.iter().map(|d| Column::new(Some(alias.as_str()), d)).collect();
        let new_input = LogicalPlanBuilder::from(outer.clone())
            .join_detailed(s, JoinType::Left, (cols.clone(), right_keys), None, NullEquality::NullEqualsNull)?
            .build()?;
        let value = Expr::Column(Column::new(Some(alias.as_str()), value_name));
        let replace = |e: Expr| -> Result<Expr> {
            e.transform(|x| match x {
                Expr::ScalarSubquery(s) if s == *sq => Ok(Transformed::yes(value.clone())),
                other => Ok(Transformed::no(other)),
            })
            .map(|t| t.data)
        };
        Ok(Some(match node {
            LogicalPlan::Projection(p) => {
                let mut exprs = Vec::with_capacity(p.expr.len());
                for (i, e) in p.expr.iter().enumerate() {
                    let new = replace(e.clone())?;
                    if new == *e {
                        exprs.push(new);
                    } else {
                        // The same output name as before.
                        let (q, f) = p.schema.qualified_field(i);
                        exprs.push(new.unalias().alias_qualified(q.cloned(), f.name()));
                    }
                }
                LogicalPlan::Projection(Projection::try_new(exprs, new_input.into())?)
            }
            LogicalPlan::Filter(f) => {
                let filtered = LogicalPlan::Filter(Filter::try_new(replace(f.predicate.clone())?, new_input.into())?);
                // The filter's input had only the outer columns.
                let keep = outer.schema().columns().into_iter().map(Expr::Column);
                LogicalPlanBuilder::from(filtered).project(keep)?.build()?
            }
            _ => unreachable!("matched above"),
        }))
    }
}

/// The first correlated scalar subquery in the node's own expressions
/// (not in nested plans) that DataFusion would not unnest.
fn first_candidate(plan: &LogicalPlan) -> Option<Subquery> {
    let exprs: Vec<&Expr> = match plan {
        LogicalPlan::Projection(p) => p.expr.iter().collect(),
        LogicalPlan::Filter(f) => vec![&f.predicate],
        _ => return None,
    };
    let mut found = None;
    for e in exprs {
        let _ = e.apply(|x| {
            if let Expr::ScalarSubquery(sq) = x {
                if !sq.outer_ref_columns.is_empty() && !datafusion_unnests(sq.subquery.as_ref()) {
                    found = Some(sq.clone());
                    return Ok(TreeNodeRecursion::Stop);
                }
                // Its own plan is not this node's expression.
                return Ok(TreeNodeRecursion::Jump);
            }
            Ok(TreeNodeRecursion::Continue)
        });
        if found.is_some() {
            break;
        }
    }
    found
}

/// True when every correlated predicate of the subquery's filters is an
/// equality of an inner column with an outer one: DataFusion's
/// `ScalarSubqueryToJoin` unnests those itself (its
/// `can_pullup_over_aggregation`).
fn datafusion_unnests(plan: &LogicalPlan) -> bool {
    let mut all_equalities = true;
    let _ = plan.apply(|p| {
        if let LogicalPlan::Filter(f) = p {
            for c in split_conjunction(&f.predicate) {
                if c.contains_outer() && !is_column_equality(c) {
                    all_equalities = false;
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    all_equalities
}

fn is_column_equality(e: &Expr) -> bool {
    let Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) = e else {
        return false;
    };
    let bare = |e: &Expr| match e {
        Expr::Column(_) => true,
        Expr::Cast(c) => matches!(c.expr.as_ref(), Expr::Column(_)),
        _ => false,
    };
    (bare(left) && !right.any_column_refs()) || (bare(right) && !left.any_column_refs())
}

/// A subquery of the form `[Projection | Filter]* → Aggregate (no GROUP BY)
/// → [Filter] → input`, with outer references only in those filters and
/// projections.
struct Shape<'a> {
    /// The nodes above the aggregate, top first.
    above: Vec<&'a LogicalPlan>,
    aggregate: &'a Aggregate,
    /// The filter right under the aggregate (may read outer columns).
    predicate: Option<Expr>,
    /// What that filter reads: free of outer references.
    input: &'a LogicalPlan,
}

impl<'a> Shape<'a> {
    fn of(plan: &'a LogicalPlan) -> Option<Shape<'a>> {
        let mut above = Vec::new();
        let mut p = plan;
        let aggregate = loop {
            match p {
                LogicalPlan::Projection(x) => {
                    above.push(p);
                    p = x.input.as_ref();
                }
                LogicalPlan::Filter(x) => {
                    above.push(p);
                    p = x.input.as_ref();
                }
                LogicalPlan::Aggregate(a) if a.group_expr.is_empty() => break a,
                _ => return None,
            }
        };
        let (predicate, input) = match aggregate.input.as_ref() {
            LogicalPlan::Filter(f) => (Some(f.predicate.clone()), f.input.as_ref()),
            other => (None, other),
        };
        // Outer references anywhere else (in the input, in an aggregate's
        // arguments, in a nested subquery) are beyond this rewrite.
        let mut outer_below = false;
        let _ = input.apply_with_subqueries(|x| {
            outer_below |= x.contains_outer_reference();
            Ok(if outer_below { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
        });
        let aggregate_outer = aggregate.aggr_expr.iter().any(Expr::contains_outer);
        if outer_below || aggregate_outer {
            return None;
        }
        Some(Shape { above, aggregate, predicate, input })
    }
}

/// The aggregate call restricted to rows the domain join matched:
/// `FILTER (WHERE __cn_m IS NOT NULL)`, added to any filter it has.
fn only_matched(e: &Expr) -> Option<Expr> {
    match e {
        Expr::Alias(a) => only_matched(&a.expr),
        Expr::AggregateFunction(AggregateFunction { func, params }) => {
            let matched = Expr::Column(Column::new_unqualified(MARKER)).is_not_null();
            let mut params = params.clone();
            params.filter = Some(Box::new(match params.filter.take() {
                Some(f) => f.and(matched),
                None => matched,
            }));
            Some(Expr::AggregateFunction(AggregateFunction { func: func.clone(), params }))
        }
        _ => None,
    }
}
