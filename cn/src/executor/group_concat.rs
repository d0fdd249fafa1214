//! MySQL's `GROUP_CONCAT` as an aggregate of the CN's own (MySQL 8.0
//! reference, 14.19.1): `GROUP_CONCAT([DISTINCT] e1 [, e2 …] [ORDER BY k1
//! [ASC|DESC], …] [SEPARATOR 's'])` is planned as
//! `mysql_group_concat('s', spec, value, k1, …)` by
//! [`crate::optimizer::semantics`], where `value` is `e1` alone or MySQL's
//! CONCAT of the values (NULL when one is) and `spec` is a text literal:
//! `D` or `-` (DISTINCT or not), then `A` or `D` per ORDER BY key.
//!
//! Each row whose value is not NULL is kept as (its sort keys, its value as
//! text). The keys are encoded by Arrow's row format with MySQL's order
//! (NULL first ascending, last descending), so entries sort as bytes and
//! travel between the partial and final aggregation as one binary state
//! (entries as `[u32 key length][key][u32 value length][value]`). At the
//! end the entries are sorted by key (stable: equal keys keep their
//! arrival order, which MySQL leaves unspecified too), DISTINCT keeps the
//! first of each value in that order (MySQL keeps the first row it reads,
//! which over shards has no order either: the same answer whenever the
//! ORDER BY follows from the value), and the values are joined by the
//! separator; no
//! entry gives NULL. DataFusion's `string_agg` refuses DISTINCT with an
//! ORDER BY on other expressions, and two aggregates of one query ordered
//! differently; this one does not need DataFusion's ordering at all.
//!
//! String ORDER BY keys arrive as `utf8mb4_general_ci` order keys
//! ([`crate::optimizer::collation`]), and DISTINCT compares values under
//! it too (over several expressions, their concatenation: `'a '`, `'b'`
//! and `'a'`, `' b'` count as one there, not in MySQL). Not done:
//! `group_concat_max_len` (MariaDB's default 1 MiB).

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility};
use datafusion::physical_expr::expressions::Literal;
use std::collections::HashSet;
use std::sync::Arc;

/// `mysql_group_concat(separator, spec, value, keys…)`: see the module
/// documentation.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MysqlGroupConcat {
    signature: Signature,
}

impl MysqlGroupConcat {
    pub const NAME: &'static str = "mysql_group_concat";

    pub fn new() -> Self {
        Self { signature: Signature::variadic_any(Volatility::Immutable) }
    }

    /// The function to register in a query context.
    pub fn udaf() -> AggregateUDF {
        AggregateUDF::from(Self::new())
    }
}

impl Default for MysqlGroupConcat {
    fn default() -> Self {
        Self::new()
    }
}

/// A text literal argument of the call.
fn literal_text(args: &AccumulatorArgs, i: usize) -> Result<String> {
    match args.exprs.get(i).and_then(|e| e.downcast_ref::<Literal>()).map(|l| l.value()) {
        Some(ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s))) => {
            Ok(s.clone())
        }
        _ => exec_err!("{}: argument {i} must be a text literal", MysqlGroupConcat::NAME),
    }
}

impl AggregateUDFImpl for MysqlGroupConcat {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(format!("{}[entries]", args.name), DataType::Binary, true))])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let separator = literal_text(&args, 0)?;
        let spec = literal_text(&args, 1)?;
        let keys = args.expr_fields.len().saturating_sub(3);
        if args.expr_fields.len() < 3 || spec.len() != 1 + keys {
            return exec_err!("{}: bad arguments", Self::NAME);
        }
        let fields = spec[1..]
            .chars()
            .zip(&args.expr_fields[3..])
            .map(|(d, f)| {
                let descending = d == 'D';
                SortField::new_with_options(
                    f.data_type().clone(),
                    datafusion::arrow::compute::SortOptions { descending, nulls_first: !descending },
                )
            })
            .collect();
        Ok(Box::new(GroupConcatAccumulator {
            separator,
            distinct: spec.starts_with('D'),
            numeric: args.expr_fields[2].data_type().is_numeric(),
            keys: RowConverter::new(fields)?,
            entries: Vec::new(),
            bytes: 0,
        }))
    }
}

#[derive(Debug)]
struct GroupConcatAccumulator {
    separator: String,
    distinct: bool,
    /// The values are numbers (DISTINCT orders them as numbers).
    numeric: bool,
    keys: RowConverter,
    /// (sort key in the row format, value) per row kept.
    entries: Vec<(Vec<u8>, String)>,
    bytes: usize,
}

impl GroupConcatAccumulator {
    fn push(&mut self, key: Vec<u8>, value: String) {
        self.bytes += key.len() + value.len() + 48;
        self.entries.push((key, value));
    }
}

impl Accumulator for GroupConcatAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let Some(value) = values.get(2) else {
            return exec_err!("{}: no value", MysqlGroupConcat::NAME);
        };
        // MySQL's text of each value (a DOUBLE 1 is `1`, a DATETIME has no
        // `T`), where Arrow's cast writes its own.
        let text = crate::collation::functions::utf8(value)?;
        let text = text.as_string::<i32>();
        let rows = self.keys.convert_columns(&values[3..])?;
        for i in 0..text.len() {
            if text.is_null(i) {
                continue;
            }
            let key = if values.len() > 3 { rows.row(i).as_ref().to_vec() } else { Vec::new() };
            self.push(key, text.value(i).to_string());
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.entries.is_empty() {
            return Ok(ScalarValue::Utf8(None));
        }
        // DISTINCT keeps the least spelling of values equal under the
        // collation (as a group shows, `cn_ci_group_value`), and without
        // ORDER BY gives them in their type's order, as MariaDB's DISTINCT
        // tree does (`ann,Bob`; `9,10`).
        if self.distinct {
            let numeric = self.numeric;
            let value_order = |x: &str, y: &str| {
                if numeric {
                    let n = |v: &str| v.parse::<f64>().unwrap_or(0.0);
                    n(x).total_cmp(&n(y))
                } else {
                    crate::collation::compare(x, y)
                }
            };
            self.entries
                .sort_by(|a, b| a.0.cmp(&b.0).then_with(|| value_order(&a.1, &b.1)).then_with(|| a.1.cmp(&b.1)));
        } else {
            self.entries.sort_by(|a, b| a.0.cmp(&b.0));
        }
        // DISTINCT compares under utf8mb4_general_ci ('Sales' and
        // 'sales ' are one value).
        let mut seen = HashSet::new();
        let kept: Vec<&str> = self
            .entries
            .iter()
            .map(|(_, v)| v.as_str())
            .filter(|v| !self.distinct || seen.insert(crate::collation::fold(v)))
            .collect();
        Ok(ScalarValue::Utf8(Some(kept.join(&self.separator))))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.bytes + self.keys.size()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let mut buf = Vec::with_capacity(self.bytes);
        for (k, v) in &self.entries {
            buf.extend_from_slice(&(k.len() as u32).to_le_bytes());
            buf.extend_from_slice(k);
            buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
            buf.extend_from_slice(v.as_bytes());
        }
        Ok(vec![ScalarValue::Binary(Some(buf))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Some(states) = states.first() else {
            return Ok(());
        };
        let states = states.as_binary::<i32>();
        for i in 0..states.len() {
            if states.is_null(i) {
                continue;
            }
            let mut b = states.value(i);
            let next = |b: &mut &[u8]| -> Result<Vec<u8>> {
                if b.len() < 4 {
                    return exec_err!("{}: a truncated state", MysqlGroupConcat::NAME);
                }
                let n = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
                if b.len() < 4 + n {
                    return exec_err!("{}: a truncated state", MysqlGroupConcat::NAME);
                }
                let out = b[4..4 + n].to_vec();
                *b = &b[4 + n..];
                Ok(out)
            };
            while !b.is_empty() {
                let key = next(&mut b)?;
                let value = String::from_utf8(next(&mut b)?)
                    .or_else(|_| exec_err!("{}: a state value is not UTF-8", MysqlGroupConcat::NAME))?;
                self.push(key, value);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{BinaryArray, Int32Array, StringArray};

    fn accumulator(distinct: bool, descending: bool) -> GroupConcatAccumulator {
        let options = datafusion::arrow::compute::SortOptions { descending, nulls_first: !descending };
        GroupConcatAccumulator {
            separator: "|".into(),
            distinct,
            numeric: false,
            keys: RowConverter::new(vec![SortField::new_with_options(DataType::Int32, options)]).unwrap(),
            entries: vec![],
            bytes: 0,
        }
    }

    fn update(acc: &mut GroupConcatAccumulator, values: Vec<Option<&str>>, keys: Vec<Option<i32>>) {
        let n = values.len();
        let lit: ArrayRef = Arc::new(StringArray::from(vec!["x"; n]));
        let values: ArrayRef = Arc::new(StringArray::from(values));
        let keys: ArrayRef = Arc::new(Int32Array::from(keys));
        acc.update_batch(&[lit.clone(), lit, values, keys]).unwrap();
    }

    /// Two partial states merge into the final one: sorted by key (NULL
    /// first ascending, last descending), NULL values left out, DISTINCT
    /// by value; a truncated state is an error, not a short answer.
    #[test]
    fn partial_states_merge_in_key_order() {
        for (distinct, descending, want) in
            [(false, false, "n|a|b|a|c"), (false, true, "c|a|b|a|n"), (true, false, "n|a|b|c"), (true, true, "c|a|b|n")]
        {
            let (mut p1, mut p2, mut fin) = (
                accumulator(distinct, descending),
                accumulator(distinct, descending),
                accumulator(distinct, descending),
            );
            update(&mut p1, vec![Some("b"), None, Some("c")], vec![Some(2), Some(9), Some(4)]);
            update(&mut p2, vec![Some("a"), Some("n"), Some("a")], vec![Some(1), None, Some(3)]);
            for p in [&mut p1, &mut p2] {
                let ScalarValue::Binary(state) = p.state().unwrap().remove(0) else { panic!("binary state") };
                let array: ArrayRef = Arc::new(BinaryArray::from(vec![state.as_deref()]));
                fin.merge_batch(&[array]).unwrap();
            }
            assert_eq!(fin.evaluate().unwrap(), ScalarValue::Utf8(Some(want.into())), "{distinct} {descending}");
        }
        assert_eq!(accumulator(false, false).evaluate().unwrap(), ScalarValue::Utf8(None));
        let truncated: ArrayRef = Arc::new(BinaryArray::from(vec![Some(&[5u8, 0, 0, 0, 1][..])]));
        assert!(accumulator(false, false).merge_batch(&[truncated]).is_err());
    }
}
