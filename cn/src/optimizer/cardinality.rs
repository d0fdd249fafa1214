//! Cardinality estimates from column statistics: the rows a logical plan
//! yields and the distinct values of a column in them, from the NDV,
//! NULL fraction and value range `ANALYZE TABLE` records per column
//! ([`ColumnStats`]), under System R's assumptions (Selinger et al.,
//! "Access Path Selection in a Relational Database Management System",
//! SIGMOD 1979): values uniform over their range, predicates and columns
//! independent, and every value of the join key with fewer distinct
//! values present on the other side (containment), so that
//! `|L ⋈ R| = |L| × |R| / max(ndv(L.k), ndv(R.k))`.
//!
//! Unlike [`super::lookup::estimate`], which guesses a fixed selectivity
//! for any filter, these estimates are *confident* or nothing: a plan
//! with a predicate they cannot derive from statistics (a `LIKE`, a
//! function of a column, a column without statistics), or a node they do
//! not know, has no estimate (`None`). The lookup join uses them to skip
//! reading keys that the statistics say are too many (TPC-H Q2's 2,000
//! European suppliers: region `r_name = 'EUROPE'` one of 5 rows, its 5 of
//! the 25 nations, their 2,000 of the 10,000 suppliers).

use crate::catalog::statistics::{ColumnStats, TableStats};
use crate::catalog::{CatalogSnapshot, TableDef};
use crate::executor::table::ShardedTable;
use datafusion::common::{Column, ScalarValue};
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, JoinType, LogicalPlan, Operator, TableScan};
use std::sync::Arc;

/// The rows `plan` yields, when every filter, join and aggregate in it is
/// estimated from column statistics; `None` otherwise.
pub fn rows(plan: &LogicalPlan, snap: &CatalogSnapshot) -> Option<f64> {
    Some(match plan {
        LogicalPlan::TableScan(scan) => {
            let t = sharded(scan)?;
            let mut rows = snap.statistics(&t.db, &t.name)?.rows as f64;
            for f in &scan.filters {
                rows *= selectivity(plan, f, snap)?;
            }
            match scan.fetch {
                Some(n) => rows.min(n as f64),
                None => rows,
            }
        }
        LogicalPlan::Filter(f) => rows(&f.input, snap)? * selectivity(&f.input, &f.predicate, snap)?,
        LogicalPlan::Projection(p) => rows(&p.input, snap)?,
        LogicalPlan::SubqueryAlias(a) => rows(&a.input, snap)?,
        LogicalPlan::Sort(s) => rows(&s.input, snap)?,
        LogicalPlan::Limit(l) => {
            let input = rows(&l.input, snap)?;
            match l.fetch.as_deref() {
                Some(Expr::Literal(ScalarValue::Int64(Some(n)), _)) => input.min(*n as f64),
                None => input,
                _ => return None,
            }
        }
        LogicalPlan::Aggregate(a) => {
            let input = rows(&a.input, snap)?;
            let mut groups = 1.0;
            for g in &a.group_expr {
                let Expr::Column(c) = g else { return None };
                groups *= ndv(&a.input, c, snap)?;
            }
            groups.min(input).max(if a.group_expr.is_empty() { 1.0 } else { 0.0 })
        }
        LogicalPlan::Join(j) if j.filter.is_none() && !j.on.is_empty() => {
            let (l, r) = (rows(&j.left, snap)?, rows(&j.right, snap)?);
            // The most selective key pair: the others are taken as implied
            // by it (a composite key's columns are rarely independent).
            let mut pairs = Vec::with_capacity(j.on.len());
            for (lk, rk) in &j.on {
                let (Expr::Column(lc), Expr::Column(rc)) = (unwrap_cast(lk), unwrap_cast(rk)) else { return None };
                pairs.push((ndv(&j.left, lc, snap)?, ndv(&j.right, rc, snap)?));
            }
            let (nl, nr) = pairs.into_iter().max_by(|a, b| a.0.max(a.1).total_cmp(&b.0.max(b.1)))?;
            match j.join_type {
                JoinType::Inner => l * r / nl.max(nr).max(1.0),
                JoinType::LeftSemi => l * (nr / nl.max(1.0)).min(1.0),
                JoinType::RightSemi => r * (nl / nr.max(1.0)).min(1.0),
                _ => return None,
            }
        }
        _ => return None,
    })
}

/// The distinct non-NULL values of `column` in `plan`'s rows: its table
/// column's NDV, at most the rows the plan yields (by [`rows`]); `None`
/// when either is unknown or the column is computed.
pub fn ndv(plan: &LogicalPlan, column: &Column, snap: &CatalogSnapshot) -> Option<f64> {
    Some(column_stats(plan, column, snap)?.ndv.min(rows(plan, snap)?))
}

/// The statistics of the table column that `column` of `plan`'s output
/// is, traced through projections that pass it on, aliases, filters,
/// sorts, limits, joins and grouping keys.
pub fn column_stats<'a>(plan: &LogicalPlan, column: &Column, snap: &'a CatalogSnapshot) -> Option<&'a ColumnStats> {
    match plan {
        LogicalPlan::TableScan(scan) => {
            // By name: a scan's filters name columns it does not project.
            let t = sharded(scan)?;
            snap.statistics(&t.db, &t.name)?.columns.get(&column.name.to_ascii_lowercase())
        }
        LogicalPlan::Filter(f) => column_stats(&f.input, column, snap),
        LogicalPlan::Sort(s) => column_stats(&s.input, column, snap),
        LogicalPlan::Limit(l) => column_stats(&l.input, column, snap),
        LogicalPlan::Projection(p) => {
            let index = p.schema.index_of_column(column).ok()?;
            let mut e = &p.expr[index];
            while let Expr::Alias(a) = e {
                e = &a.expr;
            }
            match unwrap_cast(e) {
                Expr::Column(c) => column_stats(&p.input, c, snap),
                _ => None,
            }
        }
        LogicalPlan::SubqueryAlias(a) => {
            let index = a.schema.index_of_column(column).ok()?;
            let inner = Column::from(a.input.schema().qualified_field(index));
            column_stats(&a.input, &inner, snap)
        }
        LogicalPlan::Join(j) => {
            if j.left.schema().has_column(column) {
                column_stats(&j.left, column, snap)
            } else {
                column_stats(&j.right, column, snap)
            }
        }
        LogicalPlan::Aggregate(a) => {
            let index = a.schema.index_of_column(column).ok()?;
            match a.group_expr.get(index)? {
                Expr::Column(c) => column_stats(&a.input, c, snap),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The table a scan reads, when it is a CN table.
pub(crate) fn sharded(scan: &TableScan) -> Option<Arc<TableDef>> {
    let provider = source_as_provider(&scan.source).ok()?;
    Some(provider.downcast_ref::<ShardedTable>()?.def.clone())
}

/// A column under casts (DataFusion widens a column to a literal's type).
fn unwrap_cast(e: &Expr) -> &Expr {
    match e {
        Expr::Cast(c) => unwrap_cast(&c.expr),
        Expr::TryCast(c) => unwrap_cast(&c.expr),
        _ => e,
    }
}

/// The fraction of `input`'s rows that `predicate` keeps, 0 to 1, when
/// every conjunct is a comparison of a column with statistics to literals
/// (`=`, `<>`, `<`, `<=`, `>`, `>=`, `BETWEEN`, `IN`, `IS [NOT] NULL`, and
/// `OR`/`NOT` of them); `None` otherwise.
pub fn selectivity(input: &LogicalPlan, predicate: &Expr, snap: &CatalogSnapshot) -> Option<f64> {
    conjuncts(split_conjunction(predicate), &|c| column_stats(input, c, snap))
}

/// [`selectivity`] of a scan's filters on a table with statistics `st`
/// (their columns are the table's): the fraction of its rows they keep.
pub fn scan_selectivity(st: &TableStats, filters: &[Expr]) -> Option<f64> {
    conjuncts(filters.iter(), &|c| st.columns.get(&c.name.to_ascii_lowercase()))
}

fn conjuncts<'e, 's>(
    predicates: impl IntoIterator<Item = &'e Expr>,
    stats: &dyn Fn(&Column) -> Option<&'s ColumnStats>,
) -> Option<f64> {
    let mut kept = 1.0;
    for c in predicates {
        kept *= conjunct(c, stats)?;
    }
    Some(kept.clamp(0.0, 1.0))
}

fn conjunct<'s>(e: &Expr, column_stats: &dyn Fn(&Column) -> Option<&'s ColumnStats>) -> Option<f64> {
    let stats = |e: &Expr| match unwrap_cast(e) {
        Expr::Column(c) => column_stats(c),
        _ => None,
    };
    let literal = |e: &Expr| match unwrap_cast(e) {
        Expr::Literal(v, _) => Some(v.clone()),
        _ => None,
    };
    Some(match e {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::And, right }) => {
            conjunct(left, column_stats)? * conjunct(right, column_stats)?
        }
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Or, right }) => {
            let (a, b) = (conjunct(left, column_stats)?, conjunct(right, column_stats)?);
            a + b - a * b
        }
        Expr::Not(inner) => 1.0 - conjunct(inner, column_stats)?,
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            // Column on the left: `5 < c` is `c > 5`.
            let (s, v, op) = match (stats(left), literal(right), stats(right), literal(left)) {
                (Some(s), Some(v), _, _) => (s, v, *op),
                (_, _, Some(s), Some(v)) => (s, v, op.swap()?),
                _ => return None,
            };
            if v.is_null() {
                return Some(0.0);
            }
            match op {
                Operator::Eq => s.eq_selectivity(),
                Operator::NotEq => (1.0 - s.nulls - s.eq_selectivity()).max(0.0),
                Operator::Lt | Operator::LtEq => range(s, None, Some(&v))?,
                Operator::Gt | Operator::GtEq => range(s, Some(&v), None)?,
                _ => return None,
            }
        }
        Expr::Between(Between { expr, negated, low, high }) => {
            let s = stats(expr)?;
            let inside = range(s, Some(&literal(low)?), Some(&literal(high)?))?;
            if *negated {
                (1.0 - s.nulls - inside).max(0.0)
            } else {
                inside
            }
        }
        Expr::InList(l) => {
            let s = stats(&l.expr)?;
            let mut values = 0.0;
            for v in &l.list {
                if !literal(v)?.is_null() {
                    values += 1.0;
                }
            }
            let inside = (values * s.eq_selectivity()).min(1.0 - s.nulls);
            if l.negated {
                (1.0 - s.nulls - inside).max(0.0)
            } else {
                inside
            }
        }
        Expr::IsNull(c) => stats(c)?.nulls,
        Expr::IsNotNull(c) => 1.0 - stats(c)?.nulls,
        _ => return None,
    })
}

/// The fraction of rows between `low` and `high` (either open), by the
/// column's smallest and largest value: numbers and dates only.
fn range(s: &ColumnStats, low: Option<&ScalarValue>, high: Option<&ScalarValue>) -> Option<f64> {
    let (min, max) = (position(s.min.as_deref()?)?, position(s.max.as_deref()?)?);
    let value = |v: &ScalarValue| -> Option<f64> {
        match v {
            ScalarValue::Date32(Some(d)) => Some(f64::from(*d)),
            ScalarValue::Utf8(Some(t)) | ScalarValue::Utf8View(Some(t)) | ScalarValue::LargeUtf8(Some(t)) => {
                position(t)
            }
            ScalarValue::Decimal128(Some(n), _, scale) => Some(*n as f64 / 10f64.powi(i32::from(*scale))),
            other => other.cast_to(&datafusion::arrow::datatypes::DataType::Float64).ok().and_then(|f| match f {
                ScalarValue::Float64(Some(x)) => Some(x),
                _ => None,
            }),
        }
    };
    let lo = match low {
        Some(v) => value(v)?.max(min),
        None => min,
    };
    let hi = match high {
        Some(v) => value(v)?.min(max),
        None => max,
    };
    let width = max - min;
    let inside = if width <= 0.0 {
        if lo <= hi {
            1.0
        } else {
            0.0
        }
    } else {
        ((hi - lo) / width).clamp(0.0, 1.0)
    };
    Some(inside * (1.0 - s.nulls))
}

/// A statistic's value on a number line: a number as itself, a date
/// (`YYYY-MM-DD`, as MariaDB prints one) as days since 1970-01-01.
fn position(text: &str) -> Option<f64> {
    if let Ok(n) = text.trim().parse::<f64>() {
        return Some(n);
    }
    let date = chrono::NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d").ok()?;
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?;
    Some((date - epoch).num_days() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(ndv: f64, nulls: f64, min: &str, max: &str) -> ColumnStats {
        ColumnStats { ndv, nulls, min: Some(min.into()), max: Some(max.into()) }
    }

    #[test]
    fn ranges_take_their_share_of_the_value_range() {
        let s = stats(100.0, 0.0, "0", "100");
        let v = |n: i64| ScalarValue::Int64(Some(n));
        assert_eq!(range(&s, Some(&v(25)), None), Some(0.75));
        assert_eq!(range(&s, None, Some(&v(25))), Some(0.25));
        assert_eq!(range(&s, Some(&v(10)), Some(&v(20))), Some(0.1));
        assert_eq!(range(&s, Some(&v(200)), None), Some(0.0), "above the largest value");
        let d = stats(2406.0, 0.5, "1992-01-01", "1998-08-02");
        let day = |t: &str| ScalarValue::Date32(Some(position(t).unwrap() as i32));
        let year = range(&d, Some(&day("1994-01-01")), Some(&day("1995-01-01"))).unwrap();
        assert!((year - 0.5 * 365.0 / 2405.0).abs() < 1e-9, "a year of the dates, half of them NULL: {year}");
        assert_eq!(range(&stats(3.0, 0.0, "A", "F"), None, Some(&v(1))), None, "text has no range");
    }
}
