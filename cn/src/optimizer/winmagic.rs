//! A correlated aggregate subquery over the query's own join, computed as
//! a window aggregate over that join instead of a second read of it:
//! WinMagic (Zuzarte, Pirahesh, Ma, Cheng, Liu and Wang, "WinMagic:
//! Subquery Elimination Using Window Aggregation", SIGMOD 2003).
//!
//! TPC-H Q17 and Q2 are the examples:
//!
//! ```text
//! SELECT sum(l_extendedprice) / 7.0 FROM lineitem, part
//! WHERE p_partkey = l_partkey AND p_brand = 'Brand#23' AND p_container = 'MED BOX'
//!   AND l_quantity < (SELECT 0.2 * avg(l_quantity) FROM lineitem WHERE l_partkey = p_partkey)
//! ```
//!
//! The subquery reads, for each part, the lineitems of that part: exactly
//! the lineitem rows the outer join pairs with that part. So the average
//! is `avg(l_quantity) OVER (PARTITION BY p_partkey)` over the outer join's
//! rows, and the query becomes one read of the join (the CN's lookup join
//! reads lineitem by the chosen parts' keys once, not twice: once for the
//! join and once for DataFusion's decorrelated GROUP BY).
//!
//! The rule applies to a WHERE conjunct holding one scalar subquery
//! `(SELECT f(agg(..), ..) FROM S WHERE s_preds AND s.c = x.k ...)` under
//! a filter over an inner join of plain tables (outer tables `S ∪ X`),
//! when
//! - every table of the subquery is the one outer table of the same table
//!   (`S`; aliases may differ: `fact f` outside, `fact f2` inside), and the
//!   subquery's other predicates (`s_preds`) are conjuncts of the outer
//!   query too: the outer rows for one `x` are `x` joined to exactly
//!   the subquery's rows for `x`, no fewer;
//! - its correlation is column equalities `s.c = x.k` with `x` in `X`
//!   (the outer tables not in `S`), each also a conjunct of the outer query;
//! - the outer query's remaining conjuncts read only `X`: they choose
//!   which `x` count, not which rows of `S`;
//! - the aggregates are plain MIN, MAX, SUM, COUNT or AVG (no DISTINCT,
//!   FILTER or ORDER BY), without GROUP BY; SUM, COUNT and AVG (which the
//!   CN computes as SUM / COUNT) also need `X` to be one table whose
//!   primary key is among the `k`, since a window partition holds the
//!   subquery's rows once per `x` row of the same key (MIN and MAX do not
//!   mind).
//!
//! A subquery with no rows for some `x` needs no care: that `x` has no
//! outer rows either. The rewrite is
//!
//! ```text
//! Projection(<the filter's columns>)
//!   Filter(<the conjunct, subquery := f(__cn_wm_i)>)
//!     Window(agg_i(..) OVER (PARTITION BY x.k, ..) AS __cn_wm_i)
//!       Filter(<the other conjuncts>)
//!         <the join>
//! ```
//!
//! It runs as an analyzer rule before [`super::decorrelate`] and
//! DataFusion's subquery unnesting, which see the subquery only when this
//! rule leaves it.

use crate::executor::table::ShardedTable;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, Result, TableReference};
use datafusion::config::ConfigOptions;
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::expr::{AggregateFunction, WindowFunction};
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{
    BinaryExpr, Expr, Filter, JoinType, LogicalPlan, LogicalPlanBuilder, Operator, TableScan, WindowFunctionDefinition,
};
use datafusion::optimizer::AnalyzerRule;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The analyzer rule (see the module documentation).
#[derive(Debug, Default)]
pub struct WinMagic {
    /// Numbers the window columns of the subqueries it rewrites.
    next: AtomicUsize,
}

impl AnalyzerRule for WinMagic {
    fn name(&self) -> &str {
        "cn_winmagic"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|p| {
            let LogicalPlan::Filter(f) = &p else { return Ok(Transformed::no(p)) };
            Ok(match self.rewrite(f)? {
                Some(new) => Transformed::yes(new),
                None => Transformed::no(p),
            })
        })
        .map(|t| t.data)
    }
}

/// A conjunct of the subquery's predicate: a correlation `s.c = x.k`, or
/// one that reads only the subquery's tables.
enum Inner {
    Correlation { s: Column, x: Column },
    Local(Expr),
}

impl WinMagic {
    /// `filter` with one scalar subquery of its predicate computed as a
    /// window aggregate, or `None` when no conjunct has the shape.
    fn rewrite(&self, filter: &Filter) -> Result<Option<LogicalPlan>> {
        let Some(outer_tables) = join_tables(&filter.input) else { return Ok(None) };
        let conjuncts: Vec<Expr> = split_conjunction(&filter.predicate).into_iter().cloned().collect();
        // The conjuncts of the join conditions count as the outer query's too.
        let mut outer_preds = conjuncts.clone();
        join_conditions(&filter.input, &mut outer_preds);
        for (i, c) in conjuncts.iter().enumerate() {
            let subqueries = scalar_subqueries(c);
            if subqueries.len() != 1 {
                continue;
            }
            let others: Vec<&Expr> = outer_preds.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, e)| e).collect();
            if others.iter().any(|e| has_subquery(e)) {
                return Ok(None);
            }
            if let Some(new) = self.rewrite_one(filter, &conjuncts, i, &subqueries[0], &outer_tables, &others)? {
                return Ok(Some(new));
            }
        }
        Ok(None)
    }

    fn rewrite_one(
        &self,
        filter: &Filter,
        conjuncts: &[Expr],
        at: usize,
        sq: &datafusion::logical_expr::Subquery,
        outer_tables: &[Leaf],
        others: &[&Expr],
    ) -> Result<Option<LogicalPlan>> {
        // The subquery: Projection(one expression) over a global Aggregate
        // over a Filter over a join of tables.
        let LogicalPlan::Projection(proj) = sq.subquery.as_ref() else { return Ok(None) };
        let LogicalPlan::Aggregate(agg) = proj.input.as_ref() else { return Ok(None) };
        let LogicalPlan::Filter(inner_filter) = agg.input.as_ref() else { return Ok(None) };
        if proj.expr.len() != 1
            || !agg.group_expr.is_empty()
            || proj.expr.iter().chain(&agg.aggr_expr).any(Expr::contains_outer)
        {
            return Ok(None);
        }
        let Some(inner_tables) = join_tables(&inner_filter.input) else { return Ok(None) };
        // Each subquery table is the one outer table of the same table
        // (under its own alias or not): its columns are renamed to the
        // outer table's name.
        let mut renames: Vec<(TableReference, TableReference)> = Vec::new();
        for t in &inner_tables {
            let mut same = outer_tables.iter().filter(|o| o.scan.table_name == t.scan.table_name);
            let (Some(o), None) = (same.next(), same.next()) else { return Ok(None) };
            if renames.iter().any(|(_, to)| *to == o.name) {
                return Ok(None);
            }
            renames.push((t.name.clone(), o.name.clone()));
        }
        let s_names: BTreeSet<TableReference> = renames.iter().map(|(_, to)| to.clone()).collect();
        let o_names: BTreeSet<TableReference> = outer_tables.iter().map(|o| o.name.clone()).collect();
        let x_names: BTreeSet<TableReference> = o_names.difference(&s_names).cloned().collect();
        if x_names.is_empty() {
            return Ok(None);
        }
        let in_set = |c: &Column, set: &BTreeSet<TableReference>| c.relation.as_ref().is_some_and(|r| set.contains(r));

        // The subquery's conjuncts.
        let mut inner_preds: Vec<Expr> = split_conjunction(&inner_filter.predicate).into_iter().cloned().collect();
        join_conditions(&inner_filter.input, &mut inner_preds);
        let mut inner = Vec::new();
        for p in inner_preds {
            let p = rename(p, &renames)?;
            if has_subquery(&p) {
                return Ok(None);
            }
            if !p.contains_outer() {
                if !p.column_refs().iter().all(|c| in_set(c, &s_names)) {
                    return Ok(None);
                }
                inner.push(Inner::Local(p));
                continue;
            }
            match correlation(&p) {
                Some((s, x)) if in_set(&s, &s_names) && in_set(&x, &x_names) => inner.push(Inner::Correlation { s, x }),
                _ => return Ok(None),
            }
        }
        let correlations: Vec<(&Column, &Column)> = inner
            .iter()
            .filter_map(|p| match p {
                Inner::Correlation { s, x } => Some((s, x)),
                Inner::Local(_) => None,
            })
            .collect();
        if correlations.is_empty() {
            return Ok(None);
        }
        // Every subquery conjunct is one of the outer query's, and every
        // other outer conjunct reads only X.
        for p in &inner {
            if let Inner::Local(e) = p {
                if !others.contains(&e) {
                    return Ok(None);
                }
            }
        }
        if !correlations.iter().all(|(s, x)| others.iter().any(|o| equates(o, s, x))) {
            return Ok(None);
        }
        for o in others {
            let local = inner.iter().any(|p| matches!(p, Inner::Local(e) if e == *o));
            let x_only = o.column_refs().iter().all(|c| in_set(c, &x_names));
            let correlation = correlations.iter().any(|(s, x)| equates(o, s, x));
            if !(local || x_only || correlation) {
                return Ok(None);
            }
        }

        // The aggregates, and whether a partition may hold the subquery's
        // rows more than once.
        let mut functions = Vec::with_capacity(agg.aggr_expr.len());
        let mut only_min_max = true;
        for e in &agg.aggr_expr {
            let Expr::AggregateFunction(AggregateFunction { func, params }) =
                crate::optimizer::pushdown::strip_alias(e)
            else {
                return Ok(None);
            };
            let name = func.name().to_ascii_lowercase();
            if !["min", "max", "sum", "count", "avg"].contains(&name.as_str())
                || params.distinct
                || params.filter.is_some()
                || !params.order_by.is_empty()
            {
                return Ok(None);
            }
            only_min_max &= name == "min" || name == "max";
            let args = params.args.iter().map(|a| rename(a.clone(), &renames)).collect::<Result<Vec<_>>>()?;
            functions.push((func.clone(), args));
        }
        let partition_by: Vec<Column> = {
            let mut v: Vec<Column> = Vec::new();
            for (_, x) in &correlations {
                if !v.contains(x) {
                    v.push((*x).clone());
                }
            }
            v
        };
        if !only_min_max && !unique_in_x(outer_tables, &x_names, &partition_by) {
            return Ok(None);
        }

        // The rewrite.
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let rest: Vec<Expr> = conjuncts.iter().enumerate().filter(|(j, _)| *j != at).map(|(_, e)| e.clone()).collect();
        let base = match conjunction(rest) {
            Some(p) => LogicalPlan::Filter(Filter::try_new(p, filter.input.clone())?),
            None => filter.input.as_ref().clone(),
        };
        let names: Vec<String> = (0..functions.len()).map(|i| format!("__cn_wm{n}_{i}")).collect();
        let windows = functions.into_iter().zip(&names).map(|((func, args), name)| {
            let mut w = WindowFunction::new(WindowFunctionDefinition::AggregateUDF(func), args);
            w.params.partition_by = partition_by.iter().cloned().map(Expr::Column).collect();
            Expr::WindowFunction(Box::new(w)).alias(name)
        });
        let windowed = LogicalPlanBuilder::from(base).window(windows)?.build()?;
        // The subquery's expression over the window columns: its column
        // references are the aggregate's output fields, in order.
        let value = proj.expr[0].clone().unalias_nested().data.transform(|e| {
            Ok(match &e {
                Expr::Column(c) => match agg.schema.columns().iter().position(|a| a == c) {
                    Some(i) => Transformed::yes(Expr::Column(Column::new_unqualified(&names[i]))),
                    None => Transformed::no(e),
                },
                _ => Transformed::no(e),
            })
        })?;
        let compared = conjuncts[at]
            .clone()
            .transform(|e| {
                Ok(match e {
                    Expr::ScalarSubquery(s) if s == *sq => Transformed::yes(value.data.clone()),
                    other => Transformed::no(other),
                })
            })?
            .data;
        let columns = filter.input.schema().columns().into_iter().map(Expr::Column);
        let plan = LogicalPlanBuilder::from(windowed).filter(compared)?.project(columns)?.build()?;
        Ok(Some(plan))
    }
}

/// A table of a FROM list: the name its columns are qualified with (its
/// alias, or the table's name) and its scan.
struct Leaf {
    name: TableReference,
    scan: TableScan,
}

/// The tables of a tree of inner joins over table scans (aliased or not),
/// or `None` when `plan` is anything else (or uses a name twice).
fn join_tables(plan: &LogicalPlan) -> Option<Vec<Leaf>> {
    let mut out: Vec<Leaf> = Vec::new();
    fn walk(p: &LogicalPlan, out: &mut Vec<Leaf>) -> bool {
        let (name, scan) = match p {
            LogicalPlan::TableScan(s) => (s.table_name.clone(), s),
            LogicalPlan::SubqueryAlias(a) => match a.input.as_ref() {
                LogicalPlan::TableScan(s) => (a.alias.clone(), s),
                _ => return false,
            },
            LogicalPlan::Join(j) if j.join_type == JoinType::Inner => return walk(&j.left, out) && walk(&j.right, out),
            _ => return false,
        };
        if out.iter().any(|t| t.name == name) || scan.fetch.is_some() {
            return false;
        }
        out.push(Leaf { name, scan: scan.clone() });
        true
    }
    walk(plan, &mut out).then_some(out)
}

/// `e` with the columns of each table `from` qualified with `to` instead.
fn rename(e: Expr, renames: &[(TableReference, TableReference)]) -> Result<Expr> {
    e.transform(|x| {
        Ok(match x {
            Expr::Column(c) => match c.relation.as_ref().and_then(|r| renames.iter().find(|(from, _)| from == r)) {
                Some((_, to)) => Transformed::yes(Expr::Column(Column::new(Some(to.clone()), c.name))),
                None => Transformed::no(Expr::Column(c)),
            },
            other => Transformed::no(other),
        })
    })
    .map(|t| t.data)
}

/// Appends the conditions of the joins of `plan` (a [`join_tables`] tree),
/// as conjuncts, to `out`.
fn join_conditions(plan: &LogicalPlan, out: &mut Vec<Expr>) {
    if let LogicalPlan::Join(j) = plan {
        for (l, r) in &j.on {
            out.push(l.clone().eq(r.clone()));
        }
        if let Some(f) = &j.filter {
            out.extend(split_conjunction(f).into_iter().cloned());
        }
        join_conditions(&j.left, out);
        join_conditions(&j.right, out);
    }
}

/// The scalar subqueries in `e` (not inside another subquery).
fn scalar_subqueries(e: &Expr) -> Vec<datafusion::logical_expr::Subquery> {
    let mut out = Vec::new();
    let _ = e.apply(|x| {
        if let Expr::ScalarSubquery(s) = x {
            out.push(s.clone());
            return Ok(TreeNodeRecursion::Jump);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    out
}

/// Whether `e` holds a subquery (scalar, IN or EXISTS).
pub(crate) fn has_subquery(e: &Expr) -> bool {
    e.exists(|x| Ok(matches!(x, Expr::ScalarSubquery(_) | Expr::InSubquery(_) | Expr::Exists(_))))
        .expect("the closure is infallible")
}

/// Whether `e` is `a = b` or `b = a` (plain columns).
fn equates(e: &Expr, a: &Column, b: &Column) -> bool {
    let Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) = e else { return false };
    match (left.as_ref(), right.as_ref()) {
        (Expr::Column(l), Expr::Column(r)) => (l == a && r == b) || (l == b && r == a),
        _ => false,
    }
}

/// `(s, x)` of a correlation `s = outer(x)` (either way round).
fn correlation(e: &Expr) -> Option<(Column, Column)> {
    let Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) = e else { return None };
    match (left.as_ref(), right.as_ref()) {
        (Expr::Column(s), Expr::OuterReferenceColumn(_, x)) | (Expr::OuterReferenceColumn(_, x), Expr::Column(s)) => {
            Some((s.clone(), x.clone()))
        }
        _ => None,
    }
}

/// Whether `X` is one sharded table whose primary key is among `keys`:
/// then one key value is at most one row of `X`.
fn unique_in_x(outer: &[Leaf], x_names: &BTreeSet<TableReference>, keys: &[Column]) -> bool {
    let [x] = x_names.iter().collect::<Vec<_>>()[..] else { return false };
    let Some(leaf) = outer.iter().find(|l| &l.name == x) else { return false };
    let Ok(provider) = source_as_provider(&leaf.scan.source) else { return false };
    let Some(table) = provider.downcast_ref::<ShardedTable>() else { return false };
    let pk = &table.def.primary_key;
    !pk.is_empty() && pk.iter().all(|k| keys.iter().any(|c| c.name.eq_ignore_ascii_case(k)))
}
