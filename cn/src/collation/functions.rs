//! The collation as DataFusion functions, which
//! [`crate::optimizer::collation`] puts wherever the CN compares strings:
//! - `cn_ci_fold(s)`: [`super::fold`], Utf8 (equality, grouping, joins);
//! - `cn_ci_chars(s)`: [`super::fold_chars`], Utf8 (LIKE);
//! - `cn_ci_key(s)`: [`super::sort_key`], Binary (order);
//! - `cn_ci_min(s)`, `cn_ci_max(s)`: MIN and MAX of strings under the
//!   collation (the first of equal strings seen is kept);
//! - `cn_ci_group_value(s)`: [`CiGroupValue`], a grouped string key's value.
//!
//! A NULL argument gives NULL.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BinaryBuilder, BooleanArray, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{exec_err, Result, ScalarValue};
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, ColumnarValue, EmitTo, GroupsAccumulator, ScalarFunctionArgs, ScalarUDFImpl,
    Signature, Volatility,
};
use std::sync::Arc;

/// Which key a [`CiFunction`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CiKey {
    Fold,
    Chars,
    Order,
}

impl CiKey {
    /// The function's name in plans.
    pub const fn name(self) -> &'static str {
        match self {
            CiKey::Fold => "cn_ci_fold",
            CiKey::Chars => "cn_ci_chars",
            CiKey::Order => "cn_ci_key",
        }
    }

    /// The key of one string, as the function returns it.
    pub fn of(self, s: &str) -> ScalarValue {
        match self {
            CiKey::Fold => ScalarValue::Utf8(Some(super::fold(s))),
            CiKey::Chars => ScalarValue::Utf8(Some(super::fold_chars(s))),
            CiKey::Order => {
                let mut k = Vec::with_capacity(s.len() * 6 + 4);
                super::sort_key(s, &mut k);
                ScalarValue::Binary(Some(k))
            }
        }
    }

    fn data_type(self) -> DataType {
        match self {
            CiKey::Order => DataType::Binary,
            _ => DataType::Utf8,
        }
    }
}

/// One of the key functions (see the module documentation).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CiFunction {
    key: CiKey,
    signature: Signature,
}

impl CiFunction {
    pub fn new(key: CiKey) -> Self {
        CiFunction { key, signature: Signature::user_defined(Volatility::Immutable) }
    }
}

/// Every string type arrives as Utf8.
/// The types a function reading its arguments as strings is planned
/// with: `Utf8`, but for the types whose MySQL text is not Arrow's cast
/// ([`crate::executor::convert::has_mysql_text`]), which [`utf8`] turns
/// into text when it runs.
pub(crate) fn as_utf8(arg_types: &[DataType]) -> Result<Vec<DataType>> {
    use crate::executor::convert::has_mysql_text;
    Ok(arg_types.iter().map(|t| if has_mysql_text(t) { t.clone() } else { DataType::Utf8 }).collect())
}

/// `a` as a `Utf8` array, for a function that reads its argument as one
/// without DataFusion's coercion in between: the collation rule runs after
/// type coercion, so an argument may still be a `Utf8View` or `LargeUtf8`
/// (`MD5(x)`, `CAST(d AS CHAR)`) or not a string at all; those become
/// their MySQL text ([`crate::executor::convert::mysql_text`]), where
/// reading them as `Utf8` would panic.
pub(crate) fn utf8(a: &ArrayRef) -> Result<std::borrow::Cow<'_, ArrayRef>> {
    Ok(match a.data_type() {
        DataType::Utf8 => std::borrow::Cow::Borrowed(a),
        _ => std::borrow::Cow::Owned(
            crate::executor::convert::mysql_text(a)
                .map_err(|e| datafusion::error::DataFusionError::Execution(e.to_string()))?,
        ),
    })
}

impl ScalarUDFImpl for CiFunction {
    fn name(&self) -> &str {
        self.key.name()
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        as_utf8(arg_types)
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.key.data_type())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [a] = arrays.as_slice() else {
            return exec_err!("{} takes one argument", self.name());
        };
        let a = utf8(a)?;
        let strings = a.as_string::<i32>();
        let out: ArrayRef = match self.key {
            CiKey::Fold => Arc::new(strings.iter().map(|v| v.map(super::fold)).collect::<StringArray>()),
            CiKey::Chars => Arc::new(strings.iter().map(|v| v.map(super::fold_chars)).collect::<StringArray>()),
            CiKey::Order => {
                let mut b = BinaryBuilder::with_capacity(strings.len(), strings.value_data().len() * 6);
                let mut k = Vec::new();
                for v in strings.iter() {
                    match v {
                        Some(s) => {
                            k.clear();
                            super::sort_key(s, &mut k);
                            b.append_value(&k);
                        }
                        None => b.append_null(),
                    }
                }
                Arc::new(b.finish())
            }
        };
        Ok(ColumnarValue::Array(out))
    }
}

/// `cn_ci_min` / `cn_ci_max` (see the module documentation).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CiExtreme {
    max: bool,
    signature: Signature,
}

impl CiExtreme {
    pub const MIN: &'static str = "cn_ci_min";
    pub const MAX: &'static str = "cn_ci_max";

    pub fn new(max: bool) -> Self {
        CiExtreme { max, signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl AggregateUDFImpl for CiExtreme {
    fn name(&self) -> &str {
        if self.max {
            Self::MAX
        } else {
            Self::MIN
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        as_utf8(arg_types)
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(ExtremeAccumulator { max: self.max, best: None }))
    }
    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }
    fn create_groups_accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(ExtremeGroups { max: self.max, best: Vec::new(), bytes: 0 }))
    }
}

/// MIN or MAX of each group at once (DataFusion's grouped aggregation
/// calls it once per batch with each row's group index, where a plain
/// [`Accumulator`] is one object per group), each row compared with its
/// group's best by [`replaces`], without building order keys:
/// `GROUP BY o_custkey` with a MAX of a string over TPC-H's orders spent
/// 2.3 s in the two aggregation steps at SF 1, mostly building keys. The
/// state is the value itself.
#[derive(Debug)]
struct ExtremeGroups {
    max: bool,
    best: Vec<Option<String>>,
    /// Bytes of the values kept.
    bytes: usize,
}

impl GroupsAccumulator for ExtremeGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.best.resize(total_num_groups, None);
        let Some(a) = values.first() else { return Ok(()) };
        let a = utf8(a)?;
        let strings = a.as_string::<i32>();
        for (row, &g) in group_indices.iter().enumerate() {
            if strings.is_null(row) || opt_filter.is_some_and(|f| f.is_null(row) || !f.value(row)) {
                continue;
            }
            let s = strings.value(row);
            match &mut self.best[g] {
                Some(b) if replaces(self.max, s, b) => {
                    self.bytes = self.bytes + s.len() - b.len();
                    b.clear();
                    b.push_str(s);
                }
                Some(_) => {}
                slot @ None => {
                    self.bytes += s.len();
                    *slot = Some(s.to_string());
                }
            }
        }
        Ok(())
    }
    fn merge_batch(&mut self, values: &[ArrayRef], group_indices: &[usize], total_num_groups: usize) -> Result<()> {
        self.update_batch(values, group_indices, None, total_num_groups)
    }
    /// Each row's state is its value (NULL where the filter drops it).
    fn convert_to_state(&self, values: &[ArrayRef], opt_filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let Some(a) = values.first() else { return exec_err!("cn_ci_min/cn_ci_max take one argument") };
        let a = utf8(a)?;
        let Some(f) = opt_filter else { return Ok(vec![a.into_owned()]) };
        let strings = a.as_string::<i32>();
        let kept: StringArray = (0..strings.len())
            .map(|i| (f.is_valid(i) && f.value(i) && strings.is_valid(i)).then(|| strings.value(i)))
            .collect();
        Ok(vec![Arc::new(kept)])
    }
    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let taken = emit_to.take_needed(&mut self.best);
        self.bytes -= taken.iter().flatten().map(String::len).sum::<usize>();
        Ok(Arc::new(taken.into_iter().collect::<StringArray>()))
    }
    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.evaluate(emit_to)?])
    }
    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.best.capacity() * std::mem::size_of::<Option<String>>() + self.bytes
    }
}

/// Whether `s` takes the place of `best` as a MIN (`max` false) or MAX:
/// strictly better under the collation, so the first of equal strings
/// stays, as MariaDB keeps the first it read.
fn replaces(max: bool, s: &str, best: &str) -> bool {
    super::compare(s, best) == if max { std::cmp::Ordering::Greater } else { std::cmp::Ordering::Less }
}

/// The running MIN or MAX; the state is the value itself.
#[derive(Debug)]
struct ExtremeAccumulator {
    max: bool,
    best: Option<String>,
}

impl Accumulator for ExtremeAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let Some(a) = values.first() else { return Ok(()) };
        let a = utf8(a)?;
        for s in a.as_string::<i32>().iter().flatten() {
            match &mut self.best {
                Some(b) if replaces(self.max, s, b) => {
                    b.clear();
                    b.push_str(s);
                }
                Some(_) => {}
                slot @ None => *slot = Some(s.to_string()),
            }
        }
        Ok(())
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.update_batch(states)
    }
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }
    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Utf8(self.best.clone()))
    }
    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.best.as_ref().map_or(0, |s| s.capacity())
    }
}

/// `cn_ci_group_value(s)`: the value a group of strings equal under the
/// collation shows for its key (MariaDB shows one of the group's
/// spellings, the first it read; this is the least in bytes, one of them
/// too, and the same whatever order the shards answer in: capitals before
/// small letters, no trailing spaces before some, so `'Sales'` of
/// `'Sales'` and `'sales '`, which is what MariaDB shows when the rows come
/// in that order). It is DataFusion's MIN under a name of its own, so that
/// the collation rule, which turns a MIN of strings into [`CiExtreme`],
/// leaves it alone; and
/// unlike `first_value`, which has no groups accumulator for strings in
/// DataFusion 55 (an accumulator object per group), it aggregates a batch
/// at a time: TPC-H Q16's 118,000 groups of three strings took 0.4 s of
/// the CN's time with `first_value`.
#[derive(Debug, PartialEq, Eq, Hash, Default)]
pub struct CiGroupValue {
    min: datafusion::functions_aggregate::min_max::Min,
}

impl CiGroupValue {
    pub const NAME: &'static str = "cn_ci_group_value";
}

impl AggregateUDFImpl for CiGroupValue {
    fn name(&self) -> &str {
        Self::NAME
    }
    fn signature(&self) -> &Signature {
        self.min.signature()
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.min.coerce_types(arg_types)
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.min.return_type(arg_types)
    }
    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.min.accumulator(args)
    }
    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.min.groups_accumulator_supported(args)
    }
    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn datafusion::logical_expr::GroupsAccumulator>> {
        self.min.create_groups_accumulator(args)
    }
    fn order_sensitivity(&self) -> datafusion::logical_expr::utils::AggregateOrderSensitivity {
        datafusion::logical_expr::utils::AggregateOrderSensitivity::Insensitive
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::logical_expr::{AggregateUDF, ScalarUDF};
    use datafusion::prelude::SessionContext;

    /// Whether `f` aggregates strings a batch at a time.
    fn groups_over_strings(f: &dyn AggregateUDFImpl) -> bool {
        let schema = Schema::new(vec![Field::new("s", DataType::Utf8, true)]);
        f.groups_accumulator_supported(AccumulatorArgs {
            return_field: Arc::new(Field::new("v", DataType::Utf8, true)),
            schema: &schema,
            ignore_nulls: false,
            order_bys: &[],
            is_reversed: false,
            name: "v",
            is_distinct: false,
            exprs: &[],
            expr_fields: &[],
        })
    }

    /// The reason it exists: a batch at a time over strings, where
    /// `first_value` keeps an accumulator per group.
    #[test]
    fn group_value_has_a_groups_accumulator_for_strings() {
        assert!(groups_over_strings(&CiGroupValue::default()));
    }

    /// Grouped MIN and MAX of strings under the collation, a batch at a
    /// time: case and trailing spaces do not count, the first of equal
    /// strings stays, NULLs and filtered rows are skipped.
    #[tokio::test]
    async fn grouped_min_and_max_follow_the_collation() {
        let ctx = SessionContext::new();
        ctx.register_udaf(AggregateUDF::new_from_impl(CiExtreme::new(false)));
        ctx.register_udaf(AggregateUDF::new_from_impl(CiExtreme::new(true)));
        let sql = "SELECT g, cn_ci_min(s), cn_ci_max(s), cn_ci_max(s) FILTER (WHERE s <> 'b') \
                   FROM (VALUES (1, 'b'), (1, 'A'), (1, 'a '), (1, NULL), (2, 'Z'), (2, 'y'), (2, 'z'), (3, NULL)) \
                   AS t(g, s) GROUP BY g ORDER BY g";
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string();
        let rows: Vec<Vec<&str>> = text
            .lines()
            .filter(|l| l.starts_with("| "))
            .skip(1)
            .map(|l| l.split('|').map(str::trim).filter(|c| !c.is_empty()).collect())
            .collect();
        assert_eq!(rows, vec![vec!["1", "A", "b", "A"], vec!["2", "y", "Z", "Z"], vec!["3"]], "{text}");
        assert!(groups_over_strings(&CiExtreme::new(true)));
    }

    /// A group of spellings equal under the collation shows one of them;
    /// the NULL group NULL.
    #[tokio::test]
    async fn group_value_shows_one_spelling_of_the_group() {
        let ctx = SessionContext::new();
        ctx.register_udaf(AggregateUDF::new_from_impl(CiGroupValue::default()));
        ctx.register_udf(ScalarUDF::new_from_impl(CiFunction::new(CiKey::Fold)));
        let sql = "SELECT cn_ci_fold(s) AS k, cn_ci_group_value(s) AS v, COUNT(*) AS n \
                   FROM (VALUES ('abc'), ('ABC '), ('x'), (NULL), ('Abc')) AS t(s) GROUP BY cn_ci_fold(s) ORDER BY k";
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let rows: Vec<(Option<String>, Option<String>, i64)> = batches
            .iter()
            .flat_map(|b| {
                let (k, v) = (b.column(0).as_string::<i32>(), b.column(1).as_string::<i32>());
                let n = b.column(2).as_primitive::<datafusion::arrow::datatypes::Int64Type>();
                (0..b.num_rows())
                    .map(|i| {
                        let s = |a: &StringArray| (!a.is_null(i)).then(|| a.value(i).to_string());
                        (s(k), s(v), n.value(i))
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert_eq!(rows[0].0.as_deref(), Some("ABC"));
        assert_eq!(rows[0].1.as_deref(), Some("ABC "), "the least spelling in bytes: {rows:?}");
        assert_eq!(rows[0].2, 3);
        assert_eq!((rows[1].1.as_deref(), rows[1].2), (Some("x"), 1));
        assert_eq!((rows[2].0.as_deref(), rows[2].1.as_deref()), (None, None));
    }
}
