//! The type of a UNION's column as MySQL decides it where the CN would
//! decide otherwise: a column that is a string in one SELECT and a TIME,
//! DATE or DATETIME in another is a string (MySQL 8.0 reference, 15.2.18
//! "UNION Clause": the result type is the aggregated type of the
//! corresponding columns; temporal and string aggregate to a string).
//! DataFusion coerces the string to the temporal type instead, so
//! `SELECT t FROM times UNION SELECT 'x'` failed casting `'x'`.
//!
//! An analyzer rule ahead of DataFusion's type coercion: the SELECTs whose
//! column is temporal get it as MySQL's text
//! ([`crate::executor::functions::MysqlText`]), so every input of the
//! UNION gives a string there.

use crate::executor::functions::MysqlText;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, Result};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::{Expr, LogicalPlan, Projection, ScalarUDF, Union};
use datafusion::optimizer::AnalyzerRule;
use std::sync::Arc;

/// The analyzer rule (see the module documentation).
#[derive(Debug, Default)]
pub struct UnionTypes;

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn is_temporal(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(..) | DataType::Time32(_) | DataType::Time64(_)
    )
}

impl AnalyzerRule for UnionTypes {
    fn name(&self) -> &str {
        "cn_union_types"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|p| {
            let LogicalPlan::Union(u) = &p else { return Ok(Transformed::no(p)) };
            match textual_union(u)? {
                Some(new) => Ok(Transformed::yes(new)),
                None => Ok(Transformed::no(p)),
            }
        })
        .map(|t| t.data)
    }
}

/// `u` with its temporal columns made text where another input has a
/// string in the same place; `None` when there is none.
fn textual_union(u: &Union) -> Result<Option<LogicalPlan>> {
    let width = u.schema.fields().len();
    if u.inputs.iter().any(|i| i.schema().fields().len() != width) {
        return Ok(None); // DataFusion's own error
    }
    let textual: Vec<bool> = (0..width)
        .map(|c| {
            let types = || u.inputs.iter().map(move |i| i.schema().field(c).data_type());
            types().any(is_string) && types().any(is_temporal)
        })
        .collect();
    if !textual.contains(&true) {
        return Ok(None);
    }
    let text = ScalarUDF::from(MysqlText::new());
    let inputs = u
        .inputs
        .iter()
        .map(|input| {
            let schema = input.schema();
            if !(0..width).any(|c| textual[c] && is_temporal(schema.field(c).data_type())) {
                return Ok(input.clone());
            }
            let exprs = schema
                .iter()
                .enumerate()
                .map(|(c, (q, f))| {
                    let col = Expr::Column(Column::from((q, f)));
                    if textual[c] && is_temporal(f.data_type()) {
                        text.call(vec![col]).alias_qualified(q.cloned(), f.name())
                    } else {
                        col
                    }
                })
                .collect();
            Ok(Arc::new(LogicalPlan::Projection(Projection::try_new(exprs, input.clone())?)))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(LogicalPlan::Union(Union::try_new_with_loose_types(inputs)?)))
}
