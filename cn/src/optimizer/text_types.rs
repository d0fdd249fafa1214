//! The type MySQL gives a mix of temporal values with strings or numbers
//! where the CN would give another: a string (MySQL 8.0 reference, 15.2.18
//! "UNION Clause" and 14.5 "Flow Control Functions": the aggregated type
//! of a TIME, DATE or DATETIME and a string or number is a string).
//!
//! - A UNION column that is a string in one SELECT and temporal in
//!   another: DataFusion coerces the string to the temporal type instead,
//!   so `SELECT t FROM times UNION SELECT 'x'` failed casting `'x'`.
//! - A CASE whose results mix them (`CASE WHEN … THEN 'none' ELSE MAX(d)
//!   END`): likewise.
//! - A UNION column that is a DECIMAL in one SELECT and a DOUBLE in
//!   another is a DOUBLE, as in MySQL (DataFusion's was a DECIMAL of
//!   scale 15).
//! - `CAST(x AS CHAR)` of a temporal or boolean `x` is MySQL's text of `x`
//!   (Arrow's cast wrote `2001-01-01T00:00:00`).
//!
//! An analyzer rule ahead of DataFusion's type coercion: the temporal
//! values (and the cast ones) become MySQL's text ([`crate::executor::functions::MysqlText`]),
//! so every branch gives a string. (`COALESCE` and `IFNULL` see to their
//! own: [`crate::executor::functions::MysqlCoalesce`].)

use crate::executor::functions::MysqlText;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::Transformed;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, Result};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{Case, Expr, ExprSchemable, LogicalPlan, Projection, ScalarUDF, Union};
use datafusion::optimizer::AnalyzerRule;
use std::sync::Arc;

/// How a UNION column's values are made one type ([`textual_union`]).
enum Fix {
    /// Temporal values as MySQL's text of them.
    Text,
    /// DATEs as DATETIMEs of microseconds (in the DATETIMEs' zone).
    Micros(Option<Arc<str>>),
    /// DECIMALs as DOUBLEs, where another input is a DOUBLE (MySQL's
    /// aggregated type, [`super::coercion::decimals_among_doubles`]).
    Double,
}

/// The analyzer rule (see the module documentation).
#[derive(Debug, Default)]
pub struct TextTypes;

pub fn is_temporal(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(..) | DataType::Time32(_) | DataType::Time64(_)
    )
}

/// Whether `t` is one of Arrow's string types.
pub fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// A string or a number: what a temporal value mixed with makes a string.
fn is_text_or_number(t: &DataType) -> bool {
    is_string(t) || t.is_numeric()
}

/// Whether values of `types` (NULLs aside) mix a temporal type with a
/// string or a number, which MySQL's result type of the mix makes a
/// string (several temporal types alone aggregate to a temporal one).
pub fn mixes_temporal_and_text(types: &[DataType]) -> bool {
    types.iter().any(is_temporal) && types.iter().any(is_text_or_number)
}

impl AnalyzerRule for TextTypes {
    fn name(&self) -> &str {
        "cn_text_types"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|p| {
            if let LogicalPlan::Union(u) = &p {
                return match textual_union(u)? {
                    Some(new) => Ok(Transformed::yes(new)),
                    None => Ok(Transformed::no(p)),
                };
            }
            // Most plans have neither CASE nor CAST: nothing to look at then.
            let mut candidate = false;
            p.apply_expressions(|e| {
                candidate = e.exists(|x| Ok(matches!(x, Expr::Case(_) | Expr::Cast(_))))?;
                Ok(if candidate { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
            })?;
            if !candidate || p.inputs().is_empty() {
                return Ok(Transformed::no(p));
            }
            let schema = merge_schema(&p.inputs());
            rewrite_expressions(p, |x| match x {
                Expr::Cast(_) => textual_cast(x, &schema),
                _ => textual_case(x, &schema),
            })
        })
        .map(|t| t.data)
    }
}

/// `p` with `f` applied to every node of its expressions, bottom up; a
/// rewritten expression keeps its name (the plans above refer to it by
/// it) and the node its schema recomputed.
pub fn rewrite_expressions(
    p: LogicalPlan,
    f: impl Fn(Expr) -> Result<Transformed<Expr>>,
) -> Result<Transformed<LogicalPlan>> {
    let names = NamePreserver::new(&p);
    let t = p.map_expressions(|e| {
        let name = names.save(&e);
        let e = e.transform_up(&f)?;
        Ok(e.update_data(|e| name.restore(e)))
    })?;
    if t.transformed {
        Ok(Transformed::yes(t.data.recompute_schema()?))
    } else {
        Ok(t)
    }
}

/// `u` with its temporal columns made text where another input has a
/// string or a number in the same place; `None` when there is none.
fn textual_union(u: &Union) -> Result<Option<LogicalPlan>> {
    let width = u.schema.fields().len();
    if u.inputs.iter().any(|i| i.schema().fields().len() != width) {
        return Ok(None); // DataFusion's own error
    }
    // Per column: MySQL's text of its temporal values when they mix with
    // strings or numbers; a DATE as a DATETIME of microseconds when it
    // mixes with DATETIMEs (DataFusion's common type is of nanoseconds,
    // which do not reach dates before 1677 nor the zero date).
    let fixes: Vec<Option<Fix>> = (0..width)
        .map(|c| {
            let types: Vec<DataType> = u.inputs.iter().map(|i| i.schema().field(c).data_type().clone()).collect();
            if mixes_temporal_and_text(&types) {
                Some(Fix::Text)
            } else if types.contains(&DataType::Date32) {
                types.iter().find_map(|t| match t {
                    DataType::Timestamp(_, tz) => Some(Fix::Micros(tz.clone())),
                    _ => None,
                })
            } else if types.iter().any(super::coercion::is_double) && types.iter().any(super::coercion::is_decimal) {
                Some(Fix::Double)
            } else {
                None
            }
        })
        .collect();
    if fixes.iter().all(Option::is_none) {
        return Ok(None);
    }
    let text = ScalarUDF::from(MysqlText::new());
    let fix = |c: usize, t: &DataType| match &fixes[c] {
        Some(Fix::Text) if is_temporal(t) => Some(&fixes[c]),
        Some(Fix::Micros(_)) if *t == DataType::Date32 => Some(&fixes[c]),
        Some(Fix::Double) if super::coercion::is_decimal(t) => Some(&fixes[c]),
        _ => None,
    };
    let inputs = u
        .inputs
        .iter()
        .map(|input| {
            let schema = input.schema();
            if !(0..width).any(|c| fix(c, schema.field(c).data_type()).is_some()) {
                return Ok(input.clone());
            }
            let exprs = schema
                .iter()
                .enumerate()
                .map(|(c, (q, f))| {
                    let col = Expr::Column(Column::from((q, f)));
                    match fix(c, f.data_type()) {
                        Some(Some(Fix::Text)) => text.call(vec![col]).alias_qualified(q.cloned(), f.name()),
                        Some(Some(Fix::Micros(tz))) => {
                            let datetime =
                                DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Microsecond, tz.clone());
                            super::coercion::date_as_datetime(&col, f.data_type(), &datetime)
                                .unwrap_or(col)
                                .alias_qualified(q.cloned(), f.name())
                        }
                        Some(Some(Fix::Double)) => {
                            datafusion::logical_expr::cast(col, DataType::Float64).alias_qualified(q.cloned(), f.name())
                        }
                        _ => col,
                    }
                })
                .collect();
            Ok(Arc::new(LogicalPlan::Projection(Projection::try_new(exprs, input.clone())?)))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(LogicalPlan::Union(Union::try_new_with_loose_types(inputs)?)))
}

/// `e` with the temporal results of a CASE made text where another result
/// is a string or a number; unchanged for any other expression (or a type
/// it cannot tell over `schema`).
fn textual_case(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::Case(c) = &e else { return Ok(Transformed::no(e)) };
    let results: Vec<&Expr> = c.when_then_expr.iter().map(|(_, t)| t.as_ref()).chain(c.else_expr.as_deref()).collect();
    let Ok(types) = results
        .iter()
        .filter(|r| !matches!(r, Expr::Literal(ScalarValue::Null, _)))
        .map(|r| r.get_type(schema))
        .collect::<Result<Vec<_>>>()
    else {
        return Ok(Transformed::no(e));
    };
    if !mixes_temporal_and_text(&types) {
        return Ok(Transformed::no(e));
    }
    let text = ScalarUDF::from(MysqlText::new());
    let as_text = |r: &Expr| -> Expr {
        match r.get_type(schema) {
            Ok(t) if is_temporal(&t) => text.call(vec![r.clone()]),
            _ => r.clone(),
        }
    };
    let case = Case {
        expr: c.expr.clone(),
        when_then_expr: c.when_then_expr.iter().map(|(w, t)| (w.clone(), Box::new(as_text(t)))).collect(),
        else_expr: c.else_expr.as_deref().map(|x| Box::new(as_text(x))),
    };
    Ok(Transformed::yes(Expr::Case(case)))
}

/// `CAST(x AS CHAR)` of a TIME, DATE, DATETIME or boolean `x` as MySQL's
/// text of `x` (Arrow's cast writes a `T` into datetimes, `true` for 1,
/// and fails for the CN's TIME values beyond 24 hours or below zero);
/// unchanged for any other expression.
fn textual_cast(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let Expr::Cast(c) = &e else { return Ok(Transformed::no(e)) };
    if !matches!(c.field.data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) {
        return Ok(Transformed::no(e));
    }
    match c.expr.get_type(schema) {
        Ok(t) if crate::executor::convert::has_mysql_text(&t) => {
            Ok(Transformed::yes(ScalarUDF::from(MysqlText::new()).call(vec![(*c.expr).clone()])))
        }
        _ => Ok(Transformed::no(e)),
    }
}
