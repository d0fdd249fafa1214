//! The fractional seconds precision (MySQL's *fsp*, 0 to 6) of a result's
//! TIME, DATETIME and TIMESTAMP columns. MariaDB shows a value with exactly
//! its column's fsp digits after the point (`DATETIME(2)`: `…:00.50`;
//! `DATETIME(6)`: `…:00.000000`) and sends the fsp as the column's
//! `decimals`. The CN's Arrow types hold microseconds whatever the fsp,
//! so [`result_fsp`] traces each result column back through the logical
//! plan to the table column it shows, through what keeps a value as it is
//! (projections, filters, joins, sorts, grouping keys, `MIN`, `MAX`,
//! `CASE`, `COALESCE`, UNION: the largest of its inputs). A column it
//! cannot trace keeps the CN's default display (a fraction only when the
//! value has one).

use crate::executor::table::ShardedTable;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::Result;
use datafusion::common::ScalarValue;
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{Distinct, Expr, ExprSchemable, JoinType, LogicalPlan};
use datafusion::optimizer::AnalyzerRule;
use std::sync::Arc;

/// Plans deeper than this are not traced (the column shows by default).
const MAX_DEPTH: usize = 128;

/// The fsp of each column of `plan`'s result, `None` where it is not a
/// traced temporal column.
pub fn result_fsp(plan: &LogicalPlan) -> Vec<Option<u8>> {
    (0..plan.schema().fields().len()).map(|i| column_fsp(plan, i, 0)).collect()
}

fn column_fsp(plan: &LogicalPlan, i: usize, depth: usize) -> Option<u8> {
    if depth > MAX_DEPTH || i >= plan.schema().fields().len() {
        return None;
    }
    let d = depth + 1;
    match plan {
        LogicalPlan::Projection(p) => expr_fsp(p.expr.get(i)?, &p.input, d),
        LogicalPlan::Aggregate(a) => {
            if a.group_expr.iter().any(|e| matches!(e, Expr::GroupingSet(_))) {
                return None;
            }
            match a.group_expr.get(i) {
                Some(g) => expr_fsp(g, &a.input, d),
                None => expr_fsp(a.aggr_expr.get(i - a.group_expr.len())?, &a.input, d),
            }
        }
        LogicalPlan::Window(w) => {
            let n = w.input.schema().fields().len();
            if i < n {
                column_fsp(&w.input, i, d)
            } else {
                expr_fsp(w.window_expr.get(i - n)?, &w.input, d)
            }
        }
        LogicalPlan::Filter(f) => column_fsp(&f.input, i, d),
        LogicalPlan::Sort(s) => column_fsp(&s.input, i, d),
        LogicalPlan::Limit(l) => column_fsp(&l.input, i, d),
        LogicalPlan::SubqueryAlias(s) => column_fsp(&s.input, i, d),
        LogicalPlan::Repartition(r) => column_fsp(&r.input, i, d),
        LogicalPlan::Distinct(Distinct::All(input)) => column_fsp(input, i, d),
        LogicalPlan::Join(j) => {
            let left = j.left.schema().fields().len();
            match j.join_type {
                JoinType::Inner | JoinType::Left | JoinType::Right | JoinType::Full if i >= left => {
                    column_fsp(&j.right, i - left, d)
                }
                JoinType::Inner
                | JoinType::Left
                | JoinType::Right
                | JoinType::Full
                | JoinType::LeftSemi
                | JoinType::LeftAnti
                | JoinType::LeftMark => column_fsp(&j.left, i, d),
                JoinType::RightSemi | JoinType::RightAnti => column_fsp(&j.right, i, d),
                _ => None,
            }
        }
        LogicalPlan::Union(u) => {
            u.inputs.iter().map(|p| column_fsp(p, i, d)).collect::<Option<Vec<_>>>()?.into_iter().max()
        }
        LogicalPlan::TableScan(s) => {
            let name = s.projected_schema.field(i).name();
            let provider = source_as_provider(&s.source).ok()?;
            let table = provider.downcast_ref::<ShardedTable>()?;
            table.def.columns.iter().find(|c| c.name.eq_ignore_ascii_case(name))?.fsp()
        }
        _ => None,
    }
}

/// The fsp of the values `e` gives over `input`'s rows.
fn expr_fsp(e: &Expr, input: &LogicalPlan, depth: usize) -> Option<u8> {
    if depth > MAX_DEPTH {
        return None;
    }
    // The largest fsp of several candidate values, NULLs aside; `None` when
    // one of them cannot be traced.
    let widest = |exprs: &mut dyn Iterator<Item = &Expr>| -> Option<u8> {
        let mut out = None;
        for x in exprs {
            if matches!(x, Expr::Literal(ScalarValue::Null, _)) {
                continue;
            }
            out = out.max(Some(expr_fsp(x, input, depth + 1)?));
        }
        out
    };
    match e {
        Expr::Column(c) => column_fsp(input, input.schema().index_of_column(c).ok()?, depth + 1),
        Expr::Alias(a) => expr_fsp(&a.expr, input, depth + 1),
        Expr::AggregateFunction(f) if keeps_value(f.func.name()) => expr_fsp(f.params.args.first()?, input, depth + 1),
        Expr::WindowFunction(w) if keeps_value(w.fun.name()) => expr_fsp(w.params.args.first()?, input, depth + 1),
        Expr::Case(c) => widest(&mut c.when_then_expr.iter().map(|(_, t)| t.as_ref()).chain(c.else_expr.as_deref())),
        Expr::ScalarFunction(f) if matches!(f.name(), "coalesce" | "nvl" | "ifnull") => widest(&mut f.args.iter()),
        // `ADDTIME(x, t)`, `SUBTIME(x, t)`: as `TIMESTAMP(d, t)` below.
        // `TIMESTAMP(d, t)` as `d + t`: the larger fsp, a string's its
        // fraction's digits (MariaDB shows `TIMESTAMP(d, '01:02:03.5')`
        // with one).
        Expr::ScalarFunction(f) if matches!(f.name(), "timestamp" | "addtime" | "subtime") => {
            let mut out = None;
            for a in &f.args {
                let fsp = match a {
                    Expr::Literal(ScalarValue::Utf8(Some(t)), _) => {
                        Some(t.rsplit_once('.').map_or(0, |(_, f)| f.len().min(6) as u8))
                    }
                    // A DATE, or a DATE cast to DATETIME: none.
                    a if a.get_type(input.schema()).is_ok_and(|t| t == DataType::Date32) => Some(0),
                    Expr::Cast(c) if c.expr.get_type(input.schema()).is_ok_and(|t| t == DataType::Date32) => Some(0),
                    a => expr_fsp(a, input, depth + 1),
                };
                out = out.max(Some(fsp?));
            }
            out
        }
        Expr::ScalarFunction(f) if matches!(f.name(), "nullif" | "time" | "adddate" | "convert_tz") => {
            expr_fsp(f.args.first()?, input, depth + 1)
        }
        // `CAST(x AS DATETIME(p))`, `CAST(x AS TIME(p))`.
        Expr::ScalarFunction(f) if f.name() == crate::executor::functions::MysqlFsp::NAME => match f.args.get(1) {
            Some(Expr::Literal(ScalarValue::Int64(Some(p)), _)) => Some((*p).clamp(0, 6) as u8),
            _ => None,
        },
        // `TIMESTAMPADD('unit', n, d)`: microseconds make a DATETIME(6),
        // other units keep `d`'s fsp.
        Expr::ScalarFunction(f) if f.name() == "timestampadd" => match f.args.as_slice() {
            [Expr::Literal(ScalarValue::Utf8(Some(u)), _), _, d] => match u.eq_ignore_ascii_case("MICROSECOND") {
                true => Some(6),
                false => expr_fsp(d, input, depth + 1),
            },
            _ => None,
        },
        _ => None,
    }
}

/// Aggregate and window functions whose result is one of their first
/// argument's values.
fn keeps_value(name: &str) -> bool {
    matches!(name, "min" | "max" | "first_value" | "last_value" | "any_value" | "nth_value" | "lag" | "lead")
}

/// Analyzer rule: `UNIX_TIMESTAMP(x)` of a DATETIME or TIMESTAMP of
/// fractional seconds precision n > 0 is a DECIMAL of scale n (MySQL 8.0
/// reference, 14.7: `1552641011.123` for a DATETIME(3)), where the
/// function's planned type, with nothing but its argument's Arrow type to
/// go by, is an integer. Traces the argument's fsp to its table column
/// (as for the result's display) in a node of one input, and retypes the
/// call ([`crate::executor::functions::ShardFunction::with_scale`]) and
/// the schemas above it. Runs ahead of type coercion.
#[derive(Debug, Default)]
pub struct UnixTimestampScale;

impl AnalyzerRule for UnixTimestampScale {
    fn name(&self) -> &str {
        "cn_unix_timestamp_scale"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|p| {
            let input = match p.inputs().as_slice() {
                [input] => (*input).clone(),
                _ => return Ok(Transformed::no(p)),
            };
            let t = p.map_expressions(|e| {
                e.transform_up(|x| match x {
                    Expr::ScalarFunction(f) if f.name() == "unix_timestamp" && f.args.len() == 1 => {
                        let fsp = expr_fsp(&f.args[0], &input, 0);
                        match crate::executor::functions::ShardFunction::with_scale(&f.func, fsp) {
                            Some(func) => Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(
                                Arc::new(func),
                                f.args,
                            )))),
                            None => Ok(Transformed::no(Expr::ScalarFunction(f))),
                        }
                    }
                    x => Ok(Transformed::no(x)),
                })
            })?;
            if t.transformed {
                t.map_data(|p| p.recompute_schema())
            } else {
                Ok(t)
            }
        })
        .data()
    }
}
