//! MySQL functions the CN has no code for, evaluated by a DN over values
//! the CN computed. A [`super::functions::ShardFunction`] (`HEX`, `WEEK`,
//! the `JSON_…` functions, …) runs on the shards wherever it applies to a
//! table's columns; over what the CN computes itself (an aggregate's
//! result, a join the CN makes) the CN hands the values to a DN in one
//! statement per batch, `SELECT f(a, b), f(c, d), …` with one select item
//! per distinct argument tuple, and reads the answers back. MariaDB then
//! computes them as it would from a table: the same answer as MySQL, for
//! the price of one round trip per batch of rows.
//!
//! Arguments go as typed literals: strings as `_utf8mb4 X'…'` (no escaping
//! to get wrong), numbers as written, DOUBLEs in exponent form (a DOUBLE
//! literal in MySQL), dates and times as `DATE'…'`, `TIMESTAMP'…'`,
//! `TIME'…'`, bytes as `X'…'`.

use crate::cluster::Cluster;
use crate::error::{CnError, Result};
use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type};
use mysql_async::prelude::Queryable;
use std::collections::HashMap;
use std::sync::Arc;

/// Select items per statement sent to a DN (MySQL allows 4,096 columns
/// in a result; this stays well under it).
const ITEMS_PER_QUERY: usize = 500;

/// Bytes of select items per statement: well under MariaDB's default
/// `max_allowed_packet` (16 MiB), whatever the size of the arguments.
const BYTES_PER_QUERY: usize = 4 << 20;

/// Where the CN's functions send what they cannot compute: the cluster's
/// DNs. Every evaluator compares equal (DataFusion compares functions by
/// their definition, which the evaluator does not change).
#[derive(Clone)]
pub struct DnEval {
    pub cluster: Arc<Cluster>,
    /// The session's DN state: MariaDB computes time functions
    /// (`FROM_UNIXTIME`, …) in the session's time zone.
    pub session: crate::dn::DnSession,
}

impl std::fmt::Debug for DnEval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DnEval")
    }
}

impl PartialEq for DnEval {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for DnEval {}

impl std::hash::Hash for DnEval {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

/// The values of `a` as MySQL literals of the same type (`NULL` for a
/// null). Errors: a type with no MySQL literal (lists, structs), a DOUBLE
/// that is infinite or NaN.
pub fn literals(a: &ArrayRef) -> Result<Vec<String>> {
    use crate::planner::split::hex_literal;
    // MySQL's text of every value, made once for the array.
    let texts = || -> Result<ArrayRef> { crate::executor::convert::mysql_text(a) };
    let each = |f: &dyn Fn(usize) -> Result<String>| -> Result<Vec<String>> {
        (0..a.len()).map(|i| if a.is_null(i) { Ok("NULL".into()) } else { f(i) }).collect()
    };
    match a.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let t = texts()?;
            let t = t.as_string::<i32>();
            each(&|i| Ok(format!("_utf8mb4 {}", hex_literal(t.value(i).as_bytes()))))
        }
        DataType::Binary => each(&|i| Ok(hex_literal(a.as_binary::<i32>().value(i)))),
        DataType::LargeBinary => each(&|i| Ok(hex_literal(a.as_binary::<i64>().value(i)))),
        DataType::Float64 => each(&|i| float(a.as_primitive::<Float64Type>().value(i))),
        DataType::Float32 => each(&|i| float(f64::from(a.as_primitive::<Float32Type>().value(i)))),
        DataType::Boolean => each(&|i| Ok(if a.as_boolean().value(i) { "TRUE" } else { "FALSE" }.into())),
        DataType::Null => each(&|_| Ok("NULL".into())),
        t => {
            let prefix = match t {
                DataType::Date32 => "DATE",
                DataType::Timestamp(..) => "TIMESTAMP",
                DataType::Time64(_) => "TIME",
                t if t.is_integer() || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..)) => "",
                // NULLs of it still go as NULL.
                other => {
                    return each(&|_| {
                        Err(CnError::unsupported(format!("a value of type {other} as a function's argument")))
                    })
                }
            };
            let t = texts()?;
            let t = t.as_string::<i32>();
            if prefix.is_empty() {
                each(&|i| Ok(t.value(i).to_string()))
            } else {
                each(&|i| Ok(format!("{prefix}'{}'", t.value(i))))
            }
        }
    }
}

/// The values of `a`, unit names (`'MONTH'`), as the keywords of
/// `units`. Errors: a value that is none of them.
fn unit_keywords(a: &ArrayRef, units_allowed: &[&str]) -> Result<Vec<String>> {
    let units = crate::executor::convert::mysql_text(a)?;
    let units = units.as_string::<i32>();
    (0..a.len())
        .map(|i| {
            let u = units.value(i).to_ascii_uppercase();
            match units_allowed.contains(&u.as_str()) && units.is_valid(i) {
                true => Ok(u),
                false => Err(CnError::unsupported(format!("the unit '{}'", units.value(i)))),
            }
        })
        .collect()
}

/// A DOUBLE literal: exponent form (`1.5e0`), which MySQL reads as a
/// DOUBLE where `1.5` would be a DECIMAL. Errors: infinities and NaN,
/// which MySQL has no literal for.
fn float(v: f64) -> Result<String> {
    if !v.is_finite() {
        return Err(CnError::unsupported("an infinite or NaN DOUBLE as a function's argument"));
    }
    Ok(format!("{v:e}"))
}

impl DnEval {
    /// `name(args…)` for each row of `args` (arrays of one length),
    /// computed by a DN: the text of each answer (`None` for NULL).
    /// Errors: the DN's, or a DN that is down.
    pub async fn eval(&self, name: &str, args: &[ArrayRef], rows: usize) -> Result<Vec<Option<Vec<u8>>>> {
        // One select item per distinct argument tuple.
        let mut literal_args = Vec::with_capacity(args.len());
        for (i, a) in args.iter().enumerate() {
            literal_args.push(match (name, i) {
                // The units of `timestampadd` and `cn_extract` go as
                // MySQL's keywords.
                ("timestampadd", 0) => unit_keywords(a, crate::executor::functions::TIMESTAMPADD_UNITS)?,
                ("cn_extract", 0) => unit_keywords(a, crate::planner::extract::COMPOSITE_UNITS)?,
                _ => literals(a)?,
            });
        }
        let args = literal_args;
        // `cn_extract(UNIT, x)` is MySQL's `EXTRACT(UNIT FROM x)`.
        let call = |a: Vec<&str>| match (name, a.as_slice()) {
            ("cn_extract", [unit, x]) => format!("EXTRACT({unit} FROM {x})"),
            _ => format!("{name}({})", a.join(", ")),
        };
        let mut items: Vec<String> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut of_row = Vec::with_capacity(rows);
        for i in 0..rows {
            let call = call(args.iter().map(|a| a[i].as_str()).collect());
            let n = *index.entry(call.clone()).or_insert_with(|| {
                items.push(call);
                items.len() - 1
            });
            of_row.push(n);
        }
        let dn = self.cluster.dn(self.cluster.any_dn())?.clone();
        let mut conn = dn.conn_for(&self.session).await?;
        let mut answers: Vec<Option<Vec<u8>>> = Vec::with_capacity(items.len());
        let mut rest = items.as_slice();
        while !rest.is_empty() {
            // At least one item, then as many as fit.
            let mut n = 1;
            let mut bytes = rest[0].len();
            while n < rest.len() && n < ITEMS_PER_QUERY && bytes + rest[n].len() + 2 <= BYTES_PER_QUERY {
                bytes += rest[n].len() + 2;
                n += 1;
            }
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            let sql = format!("SELECT {}", chunk.join(", "));
            let row: Option<mysql_async::Row> = conn.query_first(sql).await.map_err(|e| dn.err(e))?;
            let row = row.ok_or_else(|| CnError::internal("a DN answered a function's values with no row"))?;
            for v in row.unwrap() {
                answers.push(match v {
                    mysql_async::Value::NULL => None,
                    mysql_async::Value::Bytes(b) => Some(b),
                    other => Some(other.as_sql(true).into_bytes()),
                });
            }
        }
        if answers.len() != items.len() {
            return Err(CnError::internal("a DN answered a function's values with another number of columns"));
        }
        Ok(of_row.into_iter().map(|n| answers[n].clone()).collect())
    }

    /// [`Self::eval`] from a function's synchronous evaluation inside a
    /// DataFusion operator: the worker thread waits for the DN
    /// (`block_in_place`, so the runtime's other tasks move on). Errors:
    /// [`Self::eval`]'s, or a runtime that cannot wait so (single-threaded).
    pub fn eval_blocking(&self, name: &str, args: &[ArrayRef], rows: usize) -> Result<Vec<Option<Vec<u8>>>> {
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| CnError::internal("a function evaluated outside the CN's runtime"))?;
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return Err(CnError::unsupported(format!(
                "{}() over what the CN computes, on a single-threaded runtime",
                name.to_ascii_uppercase()
            )));
        }
        tokio::task::block_in_place(|| handle.block_on(self.eval(name, args, rows)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Date32Array, Float64Array, Int64Array, StringArray, Time64MicrosecondArray};

    #[test]
    fn values_become_typed_literals() {
        let s: ArrayRef = Arc::new(StringArray::from(vec![Some("a'b"), None]));
        assert_eq!(literals(&s).unwrap(), ["_utf8mb4 X'612762'", "NULL"]);
        let f: ArrayRef = Arc::new(Float64Array::from(vec![1.5]));
        assert_eq!(literals(&f).unwrap(), ["1.5e0"]);
        let f: ArrayRef = Arc::new(Float64Array::from(vec![f64::NAN]));
        assert!(literals(&f).is_err());
        let n: ArrayRef = Arc::new(Int64Array::from(vec![-42]));
        assert_eq!(literals(&n).unwrap(), ["-42"]);
        let d: ArrayRef = Arc::new(Date32Array::from(vec![10_957]));
        assert_eq!(literals(&d).unwrap(), ["DATE'2000-01-01'"]);
        let t: ArrayRef = Arc::new(Time64MicrosecondArray::from(vec![-5_400_000_000]));
        assert_eq!(literals(&t).unwrap(), ["TIME'-01:30:00'"]);
    }
}
