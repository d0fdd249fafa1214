//! `utf8mb4_general_ci` wherever the CN compares strings.
//!
//! What a shard computes, MariaDB computes under the column's collation. What
//! stays in the CN (merging partial aggregates, DISTINCT and GROUP BY across
//! shards, sorts, hash joins, filters over joined rows) DataFusion would
//! compare byte-wise: `'a'` and `'A'` would become two groups, `'b'` would
//! sort after `'B'`'s neighbours, `'abc'` would not join `'ABC '`. This rule
//! runs after [`super::pushdown`], over the part of the plan left to the CN,
//! and routes every string comparison through a collation key
//! ([`crate::collation::functions`]):
//! - `=`, `<>`, `<=>`, `IN`, simple `CASE`, equi-join keys, GROUP BY keys
//!   and `COUNT(DISTINCT …)` compare [`CiKey::Fold`]s;
//! - `<`, `<=`, `>`, `>=`, `BETWEEN`, ORDER BY (also in window and
//!   aggregate ORDER BYs, GROUP_CONCAT's included) compare [`CiKey::Order`]
//!   keys;
//! - `LIKE` matches [`CiKey::Chars`] of value and pattern;
//! - `MIN` and `MAX` of strings become `cn_ci_min` and `cn_ci_max`.
//!
//! A GROUP BY key must still show a value, not its fold: a string group key
//! `g` becomes `GROUP BY cn_ci_fold(g)` with `cn_ci_group_value(g)` as the
//! group's value (one of the group's spellings, as MariaDB shows the first
//! it read), under a projection that restores the aggregate's schema.
//!
//! All strings are taken to be `utf8mb4_general_ci`, the CN's only collation
//! for now: the catalog does not keep a column's COLLATE clause yet, so a
//! `utf8mb4_bin` column is compared case-insensitively where the CN computes.

use crate::collation::functions::{CiExtreme, CiFunction, CiGroupValue, CiKey};
use crate::executor::group_concat::MysqlGroupConcat;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, Result, ScalarValue};
use datafusion::logical_expr::expr::{AggregateFunction, Case, InList, Like, ScalarFunction, Sort, WindowFunction};
use datafusion::logical_expr::{
    Aggregate, AggregateUDF, Between, BinaryExpr, Expr, ExprSchemable, Filter, Join, LogicalPlan, Operator, Projection,
    ScalarUDF, Window, WindowFunctionDefinition,
};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use std::sync::Arc;

/// The optimizer rule (see the module documentation).
#[derive(Debug, Default)]
pub struct GeneralCiCollation;

impl OptimizerRule for GeneralCiCollation {
    fn name(&self) -> &str {
        "cn_general_ci_collation"
    }

    fn rewrite(&self, plan: LogicalPlan, _config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        // Subqueries too: an uncorrelated scalar subquery stays a plan of
        // its own, which DataFusion runs apart (its GROUP BY and joins on
        // strings compared bytes before).
        plan.transform_up_with_subqueries(rewrite_node)
    }
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn string_typed(e: &Expr, schema: &DFSchema) -> bool {
    e.get_type(schema).is_ok_and(|t| is_string(&t))
}

/// Whether `e` is already one of the key functions (the rule may run more
/// than once over a plan).
fn is_key(e: &Expr) -> bool {
    matches!(e, Expr::ScalarFunction(f) if f.name().starts_with("cn_ci_"))
}

/// Whether `e` is a string that still needs a collation key: not a key
/// already, nor a binary string DataFusion's coercion made text (`BINARY
/// s LIKE 'M%'`), which MySQL compares byte by byte.
fn keyable(e: &Expr, schema: &DFSchema) -> bool {
    string_typed(e, schema) && !is_key(e) && !binary_as_text(e, schema)
}

/// Whether `e` is a cast of a binary string (DataFusion's or the CN's
/// `__cn_text`).
fn binary_as_text(e: &Expr, schema: &DFSchema) -> bool {
    let inner = match e {
        Expr::Cast(c) => &c.expr,
        Expr::TryCast(c) => &c.expr,
        Expr::ScalarFunction(f) if f.name() == "__cn_text" && f.args.len() == 1 => &f.args[0],
        _ => return false,
    };
    inner.get_type(schema).is_ok_and(|t| {
        matches!(t, DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_))
    })
}

/// `key(e)`, computed at once for a literal.
fn wrap(key: CiKey, e: Expr) -> Expr {
    match e {
        Expr::Literal(ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v), _) => {
            let value = match (v, key) {
                (Some(s), k) => k.of(&s),
                (None, CiKey::Order) => ScalarValue::Binary(None),
                (None, _) => ScalarValue::Utf8(None),
            };
            Expr::Literal(value, None)
        }
        e => Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::new(ScalarUDF::new_from_impl(CiFunction::new(key))),
            vec![e],
        )),
    }
}

fn wrap_sort(s: Sort, schema: &DFSchema) -> Sort {
    if keyable(&s.expr, schema) {
        Sort { expr: wrap(CiKey::Order, s.expr), ..s }
    } else {
        s
    }
}

/// `cn_ci_min`/`cn_ci_max` in place of aggregate `name` over `args`, when
/// it is MIN or MAX of strings.
fn ci_extreme_for(name: &str, args: &[Expr], schema: &DFSchema) -> Option<Arc<AggregateUDF>> {
    let strings = !args.is_empty() && args.iter().all(|a| string_typed(a, schema));
    (strings && matches!(name, "min" | "max"))
        .then(|| Arc::new(AggregateUDF::new_from_impl(CiExtreme::new(name == "max"))))
}

/// Routes the string comparisons of `e`, whose columns come from `schema`,
/// through collation keys. Top down, so that each node sees its operands'
/// original types.
fn rewrite_expr(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    e.transform_down(|e| {
        let out = match e {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) if keyable(&left, schema) && keyable(&right, schema) => {
                let key = match op {
                    Operator::Eq | Operator::NotEq | Operator::IsDistinctFrom | Operator::IsNotDistinctFrom => {
                        CiKey::Fold
                    }
                    Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq => CiKey::Order,
                    _ => return Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr { left, op, right }))),
                };
                Expr::BinaryExpr(BinaryExpr::new(Box::new(wrap(key, *left)), op, Box::new(wrap(key, *right))))
            }
            Expr::InList(InList { expr, list, negated })
                if keyable(&expr, schema) && list.iter().all(|i| string_typed(i, schema)) =>
            {
                let list = list.into_iter().map(|i| wrap(CiKey::Fold, i)).collect();
                Expr::InList(InList::new(Box::new(wrap(CiKey::Fold, *expr)), list, negated))
            }
            Expr::Between(Between { expr, negated, low, high })
                if [&expr, &low, &high].iter().all(|x| string_typed(x, schema)) && !is_key(&expr) =>
            {
                Expr::Between(Between::new(
                    Box::new(wrap(CiKey::Order, *expr)),
                    negated,
                    Box::new(wrap(CiKey::Order, *low)),
                    Box::new(wrap(CiKey::Order, *high)),
                ))
            }
            Expr::Like(Like { negated, expr, pattern, escape_char, case_insensitive: false })
                if keyable(&expr, schema) && keyable(&pattern, schema) =>
            {
                let escape_char = escape_char.map(|c| char::from_u32(crate::collation::weight(c) as u32).unwrap_or(c));
                Expr::Like(Like::new(
                    negated,
                    Box::new(wrap(CiKey::Chars, *expr)),
                    Box::new(wrap(CiKey::Chars, *pattern)),
                    escape_char,
                    false,
                ))
            }
            Expr::Case(Case { expr: Some(operand), when_then_expr, else_expr })
                if keyable(&operand, schema) && when_then_expr.iter().all(|(w, _)| string_typed(w, schema)) =>
            {
                let when_then_expr =
                    when_then_expr.into_iter().map(|(w, t)| (Box::new(wrap(CiKey::Fold, *w)), t)).collect();
                Expr::Case(Case { expr: Some(Box::new(wrap(CiKey::Fold, *operand))), when_then_expr, else_expr })
            }
            Expr::AggregateFunction(f) => match rewrite_aggregate(&f, schema) {
                Some(f) => Expr::AggregateFunction(f),
                None => return Ok(Transformed::no(Expr::AggregateFunction(f))),
            },
            Expr::WindowFunction(w) => match rewrite_window(&w, schema) {
                Some(w) => Expr::WindowFunction(Box::new(w)),
                None => return Ok(Transformed::no(Expr::WindowFunction(w))),
            },
            e => return Ok(Transformed::no(e)),
        };
        Ok(Transformed::new(out, true, TreeNodeRecursion::Continue))
    })
}

/// MIN/MAX of a string, `COUNT(DISTINCT string)`, a string aggregate ORDER
/// BY; `None` when nothing changes.
fn rewrite_aggregate(f: &AggregateFunction, schema: &DFSchema) -> Option<AggregateFunction> {
    let mut out = f.clone();
    let mut changed = false;
    if let Some(func) = ci_extreme_for(f.func.name(), &f.params.args, schema) {
        out.func = func;
        changed = true;
    }
    if f.func.name() == "count" && f.params.distinct {
        if let Some(args) = fold_strings(&f.params.args, schema) {
            out.params.args = args;
            changed = true;
        }
    }
    if let Some(order_by) = key_sorts(&f.params.order_by, schema) {
        out.params.order_by = order_by;
        changed = true;
    }
    // GROUP_CONCAT's ORDER BY keys are its arguments from the fourth on
    // (see `MysqlGroupConcat`): they sort by their order keys.
    let args = &f.params.args;
    if f.func.name() == MysqlGroupConcat::NAME && args.iter().skip(3).any(|k| keyable(k, schema)) {
        let key = |k: &Expr| if keyable(k, schema) { wrap(CiKey::Order, k.clone()) } else { k.clone() };
        out.params.args = args.iter().take(3).cloned().chain(args.iter().skip(3).map(key)).collect();
        changed = true;
    }
    changed.then_some(out)
}

/// PARTITION BY folds, ORDER BY keys, MIN/MAX over a window; `None` when
/// nothing changes.
fn rewrite_window(w: &WindowFunction, schema: &DFSchema) -> Option<WindowFunction> {
    let mut out = w.clone();
    let mut changed = false;
    if let WindowFunctionDefinition::AggregateUDF(f) = &w.fun {
        if let Some(func) = ci_extreme_for(f.name(), &w.params.args, schema) {
            out.fun = WindowFunctionDefinition::AggregateUDF(func);
            changed = true;
        }
    }
    if let Some(partition_by) = fold_strings(&w.params.partition_by, schema) {
        out.params.partition_by = partition_by;
        changed = true;
    }
    if let Some(order_by) = key_sorts(&w.params.order_by, schema) {
        out.params.order_by = order_by;
        changed = true;
    }
    changed.then_some(out)
}

/// `exprs` with each string one folded; `None` when none is.
fn fold_strings(exprs: &[Expr], schema: &DFSchema) -> Option<Vec<Expr>> {
    let folds = |e: &Expr| keyable(e, schema);
    exprs
        .iter()
        .any(folds)
        .then(|| exprs.iter().map(|e| if folds(e) { wrap(CiKey::Fold, e.clone()) } else { e.clone() }).collect())
}

/// `sorts` with each string key replaced by its order key; `None` when
/// none is a string.
fn key_sorts(sorts: &[Sort], schema: &DFSchema) -> Option<Vec<Sort>> {
    sorts.iter().any(|s| keyable(&s.expr, schema)).then(|| sorts.iter().map(|s| wrap_sort(s.clone(), schema)).collect())
}

/// Rewrites `exprs` (which produce the fields of `output` from position
/// `first` on) and keeps each changed one's output name.
fn rewrite_named(
    exprs: Vec<Expr>,
    input: &DFSchema,
    output: &DFSchema,
    first: usize,
) -> Result<Transformed<Vec<Expr>>> {
    let mut changed = false;
    let mut out = Vec::with_capacity(exprs.len());
    for (i, e) in exprs.into_iter().enumerate() {
        let t = rewrite_expr(e, input)?;
        if t.transformed {
            changed = true;
            let (q, f) = output.qualified_field(first + i);
            out.push(t.data.unalias().alias_qualified(q.cloned(), f.name()));
        } else {
            out.push(t.data);
        }
    }
    Ok(Transformed::new_transformed(out, changed))
}

fn rewrite_node(plan: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    match plan {
        LogicalPlan::Filter(f) => {
            let t = rewrite_expr(f.predicate.clone(), f.input.schema())?;
            if !t.transformed {
                return Ok(Transformed::no(LogicalPlan::Filter(f)));
            }
            Ok(Transformed::yes(LogicalPlan::Filter(Filter::try_new(t.data, f.input)?)))
        }
        LogicalPlan::Projection(p) => {
            let t = rewrite_named(p.expr.clone(), p.input.schema(), &p.schema, 0)?;
            if !t.transformed {
                return Ok(Transformed::no(LogicalPlan::Projection(p)));
            }
            Ok(Transformed::yes(LogicalPlan::Projection(Projection::try_new(t.data, p.input)?)))
        }
        LogicalPlan::Sort(mut s) => match key_sorts(&s.expr, s.input.schema()) {
            Some(expr) => {
                s.expr = expr;
                Ok(Transformed::yes(LogicalPlan::Sort(s)))
            }
            None => Ok(Transformed::no(LogicalPlan::Sort(s))),
        },
        LogicalPlan::Join(j) => rewrite_join(j),
        LogicalPlan::Aggregate(a) => rewrite_group_by(a),
        LogicalPlan::Window(w) => {
            // A window's output is its input's columns, then one per window expression.
            let first = w.input.schema().fields().len();
            let t = rewrite_named(w.window_expr.clone(), w.input.schema(), &w.schema, first)?;
            if !t.transformed {
                return Ok(Transformed::no(LogicalPlan::Window(w)));
            }
            Ok(Transformed::yes(LogicalPlan::Window(Window::try_new(t.data, w.input)?)))
        }
        other => Ok(Transformed::no(other)),
    }
}

fn rewrite_join(j: Join) -> Result<Transformed<LogicalPlan>> {
    let (ls, rs) = (j.left.schema().clone(), j.right.schema().clone());
    let mut changed = false;
    let on =
        j.on.iter()
            .map(|(l, r)| {
                if keyable(l, &ls) && keyable(r, &rs) {
                    changed = true;
                    (wrap(CiKey::Fold, l.clone()), wrap(CiKey::Fold, r.clone()))
                } else {
                    (l.clone(), r.clone())
                }
            })
            .collect();
    let filter = match &j.filter {
        Some(f) => {
            let both = ls.join(&rs)?;
            let t = rewrite_expr(f.clone(), &both)?;
            changed |= t.transformed;
            Some(t.data)
        }
        None => None,
    };
    if !changed {
        return Ok(Transformed::no(LogicalPlan::Join(j)));
    }
    Ok(Transformed::yes(LogicalPlan::Join(Join { on, filter, ..j })))
}

/// [`rewrite_group_by`] for grouping sets (`GROUP BY … WITH ROLLUP`): each
/// string key inside them becomes its fold, shown as `cn_ci_group_value`
/// of the group, or NULL in the rows where the key is rolled up (or its
/// group is NULL's). The output columns are the distinct keys in order,
/// DataFusion's grouping id, then the aggregates, as before.
fn rewrite_grouping_sets(a: Aggregate) -> Result<Transformed<LogicalPlan>> {
    use datafusion::logical_expr::GroupingSet;
    let input = a.input.schema().clone();
    let [Expr::GroupingSet(set)] = a.group_expr.as_slice() else {
        return Ok(Transformed::no(LogicalPlan::Aggregate(a)));
    };
    let keys: Vec<Expr> = set.distinct_expr().into_iter().cloned().collect();
    let mut firsts = Vec::new();
    let mut folded = Vec::with_capacity(keys.len());
    for (i, k) in keys.iter().enumerate() {
        if keyable(k, &input) {
            firsts.push((i, group_value(k)));
            folded.push((k.clone(), wrap(CiKey::Fold, k.clone())));
        }
    }
    if firsts.is_empty() {
        return Ok(Transformed::no(LogicalPlan::Aggregate(a)));
    }
    let fold = |e: &Expr| folded.iter().find(|(k, _)| k == e).map_or_else(|| e.clone(), |(_, f)| f.clone());
    let fold_all = |v: &[Expr]| v.iter().map(fold).collect::<Vec<_>>();
    let set = match set {
        GroupingSet::Rollup(v) => GroupingSet::Rollup(fold_all(v)),
        GroupingSet::Cube(v) => GroupingSet::Cube(fold_all(v)),
        GroupingSet::GroupingSets(sets) => GroupingSet::GroupingSets(sets.iter().map(|v| fold_all(v)).collect()),
    };
    let mut aggr = Vec::with_capacity(a.aggr_expr.len() + firsts.len());
    for e in &a.aggr_expr {
        aggr.push(rewrite_expr(e.clone(), &input)?.data);
    }
    aggr.extend(firsts.iter().map(|(_, f)| f.clone()));
    let new = Aggregate::try_new(a.input.clone(), vec![Expr::GroupingSet(set)], aggr)?;
    let new_schema = new.schema.clone();
    let n_out = a.schema.fields().len();
    let extra_from = new_schema.fields().len() - firsts.len();
    let column = |i: usize| Expr::Column(Column::from(new_schema.qualified_field(i)));
    let exprs = (0..n_out)
        .map(|i| {
            let e = match firsts.iter().position(|(g, _)| *g == i) {
                Some(k) => Expr::Case(Case::new(
                    None,
                    vec![(Box::new(column(i).is_null()), Box::new(Expr::Literal(ScalarValue::Utf8(None), None)))],
                    Some(Box::new(column(extra_from + k))),
                )),
                None => column(i),
            };
            let (q, f) = a.schema.qualified_field(i);
            e.alias_qualified(q.cloned(), f.name())
        })
        .collect();
    Ok(Transformed::yes(LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(LogicalPlan::Aggregate(new)))?)))
}

/// `cn_ci_group_value(k)` under a name of its own: DataFusion's later rules
/// (a COUNT(DISTINCT) split into two aggregates) and passes can put two
/// rewritten aggregates' columns side by side.
fn group_value(k: &Expr) -> Expr {
    let n = GROUP_VALUE_NAMES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    AggregateUDF::new_from_impl(CiGroupValue::default()).call(vec![k.clone()]).alias(format!("__cn_ci_value_{n}"))
}

/// Numbers the group value columns of [`rewrite_group_by`].
static GROUP_VALUE_NAMES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// String GROUP BY keys group by their fold and show `cn_ci_group_value`; the
/// aggregates get [`rewrite_expr`]; a projection restores the schema.
fn rewrite_group_by(a: Aggregate) -> Result<Transformed<LogicalPlan>> {
    if let [Expr::GroupingSet(_)] = a.group_expr.as_slice() {
        return rewrite_grouping_sets(a);
    }
    let input = a.input.schema().clone();
    let grouping_sets = a.group_expr.iter().any(|g| matches!(g, Expr::GroupingSet(_)));
    let mut changed = false;
    let mut group = Vec::with_capacity(a.group_expr.len());
    let mut firsts = Vec::new();
    for (i, g) in a.group_expr.iter().enumerate() {
        let t = rewrite_expr(g.clone(), &input)?;
        changed |= t.transformed;
        let g = t.data;
        if !grouping_sets && keyable(&g, &input) {
            firsts.push((i, group_value(&g)));
            group.push(wrap(CiKey::Fold, g));
            changed = true;
        } else {
            group.push(g);
        }
    }
    let mut aggr = Vec::with_capacity(a.aggr_expr.len() + firsts.len());
    for e in &a.aggr_expr {
        let t = rewrite_expr(e.clone(), &input)?;
        changed |= t.transformed;
        aggr.push(t.data);
    }
    if !changed {
        return Ok(Transformed::no(LogicalPlan::Aggregate(a)));
    }
    let n_aggr = aggr.len();
    aggr.extend(firsts.iter().map(|(_, f)| f.clone()));
    let new = Aggregate::try_new(a.input.clone(), group, aggr)?;
    let new_schema = new.schema.clone();
    let first_of = |i: usize| firsts.iter().position(|(g, _)| *g == i);
    let n_out = a.schema.fields().len();
    let extra_from = new_schema.fields().len() - firsts.len();
    debug_assert_eq!(extra_from, n_out, "{n_aggr} aggregates");
    let exprs = (0..n_out)
        .map(|i| {
            let src = match first_of(i) {
                Some(k) => extra_from + k,
                None => i,
            };
            let (q, f) = a.schema.qualified_field(i);
            Expr::Column(Column::from(new_schema.qualified_field(src))).alias_qualified(q.cloned(), f.name())
        })
        .collect();
    Ok(Transformed::yes(LogicalPlan::Projection(Projection::try_new(exprs, Arc::new(LogicalPlan::Aggregate(new)))?)))
}
