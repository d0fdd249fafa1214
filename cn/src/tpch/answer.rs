//! A query's answer as a MySQL client sees it, and the comparison of two
//! answers, for the TPC-H differential test and benchmark: column names,
//! rows as the text the server sent; columns of a floating-point type on
//! either side compare with a relative tolerance of 1e-9, all else exactly.

use mysql_async::consts::ColumnType;
use mysql_async::prelude::*;
use mysql_async::{Conn, Row, Value};
use std::time::{Duration, Instant};

/// One result: column names (lower case), whether each column is floating
/// point, rows as text (`None` for NULL), and the wall time of the query.
pub struct Answer {
    pub names: Vec<String>,
    pub float: Vec<bool>,
    pub rows: Vec<Vec<Option<String>>>,
    pub took: Duration,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::NULL => None,
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        other => Some(other.as_sql(true).trim_matches('\'').to_string()),
    }
}

/// Runs `sql` on `c` (text protocol) and keeps its whole answer.
pub async fn answer(c: &mut Conn, sql: &str) -> Result<Answer, mysql_async::Error> {
    let start = Instant::now();
    let rows: Vec<Row> = c.query(sql).await?;
    let took = start.elapsed();
    let mut names = Vec::new();
    let mut float = Vec::new();
    if let Some(r) = rows.first() {
        for col in r.columns_ref() {
            names.push(col.name_str().to_ascii_lowercase());
            float.push(matches!(col.column_type(), ColumnType::MYSQL_TYPE_DOUBLE | ColumnType::MYSQL_TYPE_FLOAT));
        }
    }
    let rows = rows.into_iter().map(|r| r.unwrap().iter().map(text).collect()).collect();
    Ok(Answer { names, float, rows, took })
}

fn same_value(a: &Option<String>, b: &Option<String>, float: bool) -> bool {
    match (a, b) {
        (Some(x), Some(y)) if float => match (x.parse::<f64>(), y.parse::<f64>()) {
            (Ok(p), Ok(q)) => (p - q).abs() <= 1e-9 * p.abs().max(q.abs()).max(1.0),
            _ => x == y,
        },
        _ => a == b,
    }
}

/// The first difference between `got` and `expected` (row counts, column
/// names, then row by row in order), described for a person; `None` when
/// they are the same.
pub fn difference(got: &Answer, expected: &Answer) -> Option<String> {
    if got.rows.len() != expected.rows.len() {
        return Some(format!("{} rows from the CN, {} from MariaDB", got.rows.len(), expected.rows.len()));
    }
    if !got.rows.is_empty() && got.names != expected.names {
        return Some(format!("column names: CN {:?}, MariaDB {:?}", got.names, expected.names));
    }
    for (i, (a, b)) in got.rows.iter().zip(&expected.rows).enumerate() {
        let float =
            |j: usize| got.float.get(j).copied().unwrap_or(false) || expected.float.get(j).copied().unwrap_or(false);
        if a.len() != b.len() || a.iter().zip(b).enumerate().any(|(j, (x, y))| !same_value(x, y, float(j))) {
            return Some(format!("row {i}: CN {a:?}\n        MariaDB {b:?}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(rows: &[&[Option<&str>]], float: bool) -> Answer {
        Answer {
            names: vec!["a".into()],
            float: vec![float],
            rows: rows.iter().map(|r| r.iter().map(|v| v.map(String::from)).collect()).collect(),
            took: Duration::ZERO,
        }
    }

    #[test]
    fn floats_compare_with_tolerance_and_the_rest_exactly() {
        let a = one(&[&[Some("1.0000000000001")]], true);
        let b = one(&[&[Some("1")]], false);
        assert!(difference(&a, &b).is_none());
        let (c, d) = (one(&[&[Some("1.00")]], false), one(&[&[Some("1")]], false));
        assert!(difference(&c, &d).is_some(), "DECIMAL text must match exactly");
        assert!(difference(&one(&[&[None]], true), &one(&[&[Some("0")]], true)).is_some());
        assert!(difference(&one(&[], false), &one(&[&[None]], false)).unwrap().contains("0 rows"));
    }
}
