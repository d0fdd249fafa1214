//! MySQL's implicit conversions where DataFusion's differ (MySQL 8.0
//! reference, 14.3 "Type Conversion in Expression Evaluation"), as an
//! analyzer rule ahead of DataFusion's type coercion:
//!
//! - A string compared with a number is compared as a DOUBLE, both
//!   sides: `s = 0` is true for `'abc'`, `s < 1` for `' 0.5'`. DataFusion
//!   cast the string to the number's type and failed on `'abc'`. A string
//!   *literal* that reads whole as a number (`id = '5'`) is left to
//!   DataFusion, which makes it a literal of the column's type (so the
//!   partition pruning and the DN's index still see `id = 5`).
//! - A string in arithmetic is its number (`'3' * g`, `s + 1`): a
//!   DOUBLE ([`crate::executor::truth::Conversion::ToDouble`]); DataFusion
//!   refused to plan it. The parser marks every operand of `+`, `-`, `*`
//!   and `%` that is no number literal ([`crate::executor::truth::Conversion::Number`],
//!   so that DataFusion plans `s + 1` at all); here the mark goes.
//! - A DATE, DATETIME or TIME in arithmetic (but with an INTERVAL) is its
//!   number, `YYYYMMDD`, `YYYYMMDDHHMMSS`, `HHMMSS` (`d + 0`, `d + 1` is
//!   19950132): DataFusion added days, or refused.
//! - A DATE or DATETIME compared with an integer literal takes the
//!   literal as a date, `YYYYMMDD` or `YYMMDD` (`YYYYMMDDHHMMSS` for a
//!   DATETIME), as MySQL converts a constant to the column's type: `d >
//!   19950101` was compared with the date's day number, always false.
//! - `a % 0` and `MOD(a, 0)` are NULL (DataFusion failed the statement).
//! - `s IN (0, 1)` of a string and numbers compares DOUBLEs; `x LIKE
//!   '2%'` of a number or date matches its MySQL text.
//! - The string functions (`LENGTH`, `LOWER`, `SUBSTRING`, `REPLACE`, …)
//!   read a number, date or time argument as its MySQL text
//!   ([`crate::executor::functions::MysqlText`]); DataFusion refused them.

use super::text_types::{is_string, is_temporal};
use crate::executor::functions::MysqlText;
use crate::executor::truth::Conversion;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::datatypes::FieldRef;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{
    cast, lit, Between, BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ReturnFieldArgs,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;
use std::sync::Arc;

/// `__cn_order_arg(x, group)`: an argument of `LEAST` / `GREATEST` as the
/// parser writes them (pairwise comparisons,
/// [`crate::optimizer::semantics`]), `group` numbering the call. The
/// analyzer makes every argument of a group a DOUBLE when strings and
/// numbers meet in it (MariaDB then compares and answers DOUBLEs:
/// `LEAST('Mail', 1)` is 0), else takes the mark off. The value is `x`.
pub const ORDER_ARG: &str = "__cn_order_arg";

/// A fresh group number for [`ORDER_ARG`] (unique in the process, so in
/// every statement).
pub fn next_order_group() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The [`ORDER_ARG`] function, for registration.
pub fn order_arg() -> ScalarUDF {
    ScalarUDF::from(OrderArg { signature: Signature::any(2, Volatility::Immutable) })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct OrderArg {
    signature: Signature,
}

impl ScalarUDFImpl for OrderArg {
    fn name(&self) -> &str {
        ORDER_ARG
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types.first().cloned().unwrap_or(DataType::Null))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(args.args.into_iter().next().unwrap_or(ColumnarValue::Scalar(ScalarValue::Null)))
    }
}

/// The [`ORDER_ARG`] group of `e` and its argument, if `e` is a mark.
fn order_mark(e: &Expr) -> Option<(&Expr, u64)> {
    let Expr::ScalarFunction(f) = e else { return None };
    match (f.name() == ORDER_ARG, f.args.as_slice()) {
        (true, [x, Expr::Literal(g, _)]) => Some((x, g.cast_to(&DataType::UInt64).ok()?.to_string().parse().ok()?)),
        _ => None,
    }
}

/// The [`ORDER_ARG`] groups in `p`'s expressions where strings meet
/// numbers.
fn mixed_order_groups(p: &LogicalPlan, schema: &DFSchema) -> Result<std::collections::HashSet<u64>> {
    let mut kinds: std::collections::HashMap<u64, (bool, bool)> = Default::default();
    p.apply_expressions(|e| {
        e.apply(|x| {
            if let Some((arg, g)) = order_mark(x) {
                if let Ok(t) = arg.get_type(schema) {
                    let k = kinds.entry(g).or_default();
                    k.0 |= is_string(&t);
                    k.1 |= t.is_numeric();
                }
            }
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        })
    })?;
    Ok(kinds.into_iter().filter(|(_, (s, n))| *s && *n).map(|(g, _)| g).collect())
}

/// The analyzer rule (see the module documentation).
#[derive(Debug, Default)]
pub struct MysqlCoercion;

/// The string functions and which of their arguments are strings.
const STRING_ARGUMENTS: &[(&str, &[usize])] = &[
    ("lower", &[0]),
    ("upper", &[0]),
    ("octet_length", &[0]),
    ("character_length", &[0]),
    ("bit_length", &[0]),
    ("substr", &[0]),
    ("left", &[0]),
    ("right", &[0]),
    ("replace", &[0, 1, 2]),
    ("btrim", &[0, 1]),
    ("ltrim", &[0, 1]),
    ("rtrim", &[0, 1]),
    ("lpad", &[0, 2]),
    ("rpad", &[0, 2]),
    ("reverse", &[0]),
    ("repeat", &[0]),
    ("ascii", &[0]),
    ("md5", &[0]),
    ("substr_index", &[0, 1]),
    ("find_in_set", &[0, 1]),
    // Each argument as its MySQL text (`CONCAT_WS(',', 0e0)` is '0', where
    // DataFusion wrote '0.0').
    (
        "concat_ws",
        &[
            0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28,
            29, 30, 31,
        ],
    ),
];

/// DataFusion's string functions of [`STRING_ARGUMENTS`], planned with
/// any type at their string arguments (as `Utf8`: the analyzer then makes
/// such an argument its MySQL text), where DataFusion refused to plan
/// `LENGTH(x)` of a DECIMAL or `LOWER(d)` of a DATE. Registered in place of
/// DataFusion's; each computes as DataFusion's does.
pub fn string_functions() -> Vec<ScalarUDF> {
    let builtins = datafusion::functions::all_default_functions();
    STRING_ARGUMENTS
        .iter()
        .filter_map(|(name, positions)| {
            let inner = builtins.iter().find(|f| f.name() == *name)?.as_ref().clone();
            let signature = Signature::user_defined(inner.signature().volatility);
            Some(ScalarUDF::from(StringArgs { inner, positions, signature }))
        })
        .collect()
}

/// One of [`string_functions`].
#[derive(Debug, PartialEq, Eq, Hash)]
struct StringArgs {
    inner: ScalarUDF,
    positions: &'static [usize],
    signature: Signature,
}

impl ScalarUDFImpl for StringArgs {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let strings: Vec<DataType> = arg_types
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if self.positions.contains(&i) && !is_string(t) && *t != DataType::Null {
                    DataType::Utf8
                } else {
                    t.clone()
                }
            })
            .collect();
        let fields: Vec<FieldRef> =
            strings.into_iter().map(|t| Arc::new(datafusion::arrow::datatypes::Field::new("", t, true))).collect();
        Ok(datafusion::logical_expr::type_coercion::functions::fields_with_udf(&fields, &self.inner)?
            .iter()
            .map(|f| f.data_type().clone())
            .collect())
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }
    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        self.inner.simplify(args, info)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if self.inner.name() == "substr" {
            let ty = args.return_field.data_type().clone();
            let out = mysql_substring(&ColumnarValue::values_to_arrays(&args.args)?)?;
            return Ok(ColumnarValue::Array(datafusion::arrow::compute::cast(&out, &ty)?));
        }
        self.inner.invoke_with_args(args)
    }
}

/// MySQL's `SUBSTRING(s, pos[, len])` over `args` (s, pos and len as
/// arrays of one length), in characters: a negative `pos` counts from the
/// end, a `pos` of 0 or past either end and a `len` below 1 give '' (MySQL
/// 8.0 reference, 14.8; DataFusion's, PostgreSQL's, answered `s` whole for
/// `SUBSTRING('bob', -2)` and failed on a negative length).
fn mysql_substring(args: &[datafusion::arrow::array::ArrayRef]) -> Result<datafusion::arrow::array::ArrayRef> {
    use datafusion::arrow::array::{Array, AsArray, StringBuilder};
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::Int64Type;
    let [s, pos, rest @ ..] = args else {
        return datafusion::common::plan_err!("Incorrect parameter count in the call to native function 'SUBSTRING'");
    };
    let s = cast(s, &DataType::Utf8)?;
    let s = s.as_string::<i32>();
    let pos = cast(pos, &DataType::Int64)?;
    let pos = pos.as_primitive::<Int64Type>();
    let len = rest.first().map(|l| cast(l, &DataType::Int64)).transpose()?;
    let len = len.as_ref().map(|l| l.as_primitive::<Int64Type>());
    let mut out = StringBuilder::with_capacity(s.len(), s.value_data().len());
    for i in 0..s.len() {
        if s.is_null(i) || pos.is_null(i) || len.is_some_and(|l| l.is_null(i)) {
            out.append_null();
            continue;
        }
        let text = s.value(i);
        let chars = text.chars().count() as i64;
        let (p, n) = (pos.value(i), len.map_or(i64::MAX, |l| l.value(i)));
        let start = match p {
            0 => -1,
            p if p > 0 => p - 1,
            p => chars + p,
        };
        if start < 0 || start >= chars || n < 1 {
            out.append_value("");
            continue;
        }
        out.append_value(text.chars().skip(start as usize).take(n.min(chars) as usize).collect::<String>());
    }
    Ok(Arc::new(out.finish()))
}

impl AnalyzerRule for MysqlCoercion {
    fn name(&self) -> &str {
        "cn_mysql_coercion"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|p| {
            if p.inputs().is_empty() {
                return Ok(Transformed::no(p));
            }
            // Joins keep their keys (DataFusion coerces them pairwise), but
            // for the parser's arithmetic marks (`ON a.x = b.y + 1`).
            if let LogicalPlan::Join(_) = &p {
                let schema = merge_schema(&p.inputs());
                return super::text_types::rewrite_expressions(p, |x| match x {
                    Expr::ScalarFunction(f) if f.name() == Conversion::Number.name() => {
                        coerce(Expr::ScalarFunction(f), &schema)
                    }
                    x => Ok(Transformed::no(x)),
                });
            }
            let mut candidate = false;
            p.apply_expressions(|e| {
                candidate |= e.exists(|x| {
                    Ok(match x {
                        Expr::ScalarFunction(f) if f.name() == ORDER_ARG => true,
                        Expr::BinaryExpr(_)
                        | Expr::Between(_)
                        | Expr::InList(_)
                        | Expr::Like(_)
                        | Expr::Cast(_)
                        | Expr::Case(_)
                        | Expr::Negative(_) => true,
                        Expr::ScalarFunction(f) => {
                            STRING_ARGUMENTS.iter().any(|(n, _)| *n == f.name())
                                || DATE_MIXING_FUNCTIONS.contains(&f.name())
                                || f.name() == "date_part"
                        }
                        _ => false,
                    })
                })?;
                Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
            })?;
            if !candidate {
                return Ok(Transformed::no(p));
            }
            let schema = merge_schema(&p.inputs());
            let mixed = mixed_order_groups(&p, &schema)?;
            super::text_types::rewrite_expressions(p, |x| match order_mark(&x) {
                Some((arg, g)) => {
                    let arg = arg.clone();
                    Ok(Transformed::yes(match arg.get_type(&schema) {
                        Ok(t) if mixed.contains(&g) => as_double(arg, &t),
                        _ => arg,
                    }))
                }
                None => coerce(x, &schema),
            })
        })
        .map(|t| t.data)
    }
}

fn udf(u: impl datafusion::logical_expr::ScalarUDFImpl + 'static, arg: Expr) -> Expr {
    ScalarUDF::from(u).call(vec![arg])
}

/// `x` (of type `t`) as MySQL's DOUBLE: a string by its numeric prefix,
/// anything else by a cast.
fn as_double(x: Expr, t: &DataType) -> Expr {
    if is_string(t) {
        Conversion::ToDouble.call(x)
    } else {
        cast(x, DataType::Float64)
    }
}

/// `x` (of type `t`) as MySQL's number in arithmetic where that is not
/// `x` itself: a string's DOUBLE, a date's or time's number, a truth
/// value's 1 or 0; `Err(x)` back for anything else.
fn as_number(x: Expr, t: &DataType) -> Result<Expr, Expr> {
    match t {
        t if is_string(t) => Ok(Conversion::ToDouble.call(x)),
        DataType::Date32 | DataType::Timestamp(..) | DataType::Time64(_) => Ok(Conversion::TemporalNumber.call(x)),
        DataType::Boolean => Ok(cast(x, DataType::Int64)),
        _ => Err(x),
    }
}

/// Whether `e` is a string literal that DataFusion's cast reads whole as
/// a number of type `t` with the value MySQL gives it: an integer for an
/// integer type (`g = '1.5'` compares DOUBLEs in MySQL, where the cast to
/// INT failed), digits with at most a point for a decimal or floating
/// type. Such a literal stays as it is, so that pruning sees `id = '5'`.
fn numeric_string_literal(e: &Expr, t: &DataType) -> bool {
    let Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)), _) =
        e
    else {
        return false;
    };
    if t.is_integer() {
        return s.parse::<i64>().is_ok() || s.parse::<u64>().is_ok();
    }
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    body.bytes().any(|b| b.is_ascii_digit())
        && body.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && body.bytes().filter(|b| *b == b'.').count() <= 1
}

/// The integer literal `e` as MySQL reads it where a DATE (or, with
/// `datetime`, a DATETIME) is wanted: `YYYYMMDD`, `YYMMDD` (70-99 the
/// 1900s, 00-69 the 2000s), for a DATETIME also `YYYYMMDDHHMMSS`; 0 or the
/// string `'0000-00-00'` as the zero date
/// ([`crate::executor::convert::ZERO_DATE_DAYS`]). `None` when it is no
/// such date.
fn date_literal(e: &Expr, target: &DataType) -> Option<Expr> {
    use crate::executor::convert::{is_zero_date_text, ZERO_DATETIME_MICROS, ZERO_DATE_DAYS};
    // The zero date (`'0000-00-00'`, or 0) as the CN holds it.
    let zero = match e {
        Expr::Literal(
            ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)),
            _,
        ) => is_zero_date_text(s.trim()),
        Expr::Literal(v, _) if v.data_type().is_integer() => {
            v.cast_to(&DataType::Int64).ok() == Some(ScalarValue::Int64(Some(0)))
        }
        _ => false,
    };
    if zero {
        return match target {
            DataType::Date32 => Some(lit(ScalarValue::Date32(Some(ZERO_DATE_DAYS)))),
            DataType::Timestamp(unit, tz) => ScalarValue::TimestampMicrosecond(Some(ZERO_DATETIME_MICROS), None)
                .cast_to(&DataType::Timestamp(*unit, tz.clone()))
                .ok()
                .map(lit),
            _ => None,
        };
    }
    let n = match e {
        Expr::Literal(v, _) if v.data_type().is_integer() && !v.is_null() => {
            v.cast_to(&DataType::Int64).ok().and_then(|v| if let ScalarValue::Int64(n) = v { n } else { None })?
        }
        _ => return None,
    };
    let (date, secs) = match n {
        10_000_101..=99_991_231 => (n, 0),
        700_101..=991_231 => (n + 19_000_000, 0),
        101..=691_231 => (n + 20_000_000, 0),
        10_000_101_000_000..=99_991_231_235_959 if !matches!(target, DataType::Date32) => {
            (n / 1_000_000, n % 1_000_000)
        }
        _ => return None,
    };
    let d = chrono::NaiveDate::from_ymd_opt((date / 10_000) as i32, (date / 100 % 100) as u32, (date % 100) as u32)?;
    let t = chrono::NaiveTime::from_hms_opt((secs / 10_000) as u32, (secs / 100 % 100) as u32, (secs % 100) as u32)?;
    let v = match target {
        DataType::Date32 => ScalarValue::Date32(Some(datafusion::arrow::datatypes::Date32Type::from_naive_date(d))),
        DataType::Timestamp(unit, tz) => {
            let micros = d.and_time(t).and_utc().timestamp_micros();
            let v = ScalarValue::TimestampMicrosecond(Some(micros), None);
            v.cast_to(&DataType::Timestamp(*unit, tz.clone())).ok()?
        }
        _ => return None,
    };
    Some(lit(v))
}

/// A LIKE pattern with escape character `esc` written with backslash
/// escapes: `esc` + c becomes `\c` (a trailing `esc` is itself), a
/// backslash of the pattern (a plain character there) `\\`.
/// `x` (of type `t`) as a DATETIME of microseconds when it is a DATE and
/// `other` a DATETIME or TIMESTAMP. DataFusion's common type of the two is
/// of nanoseconds, which do not reach dates before 1677-09-21 (MySQL's
/// start at 1000-01-01) nor the CN's zero date: the cast failed.
pub(crate) fn date_as_datetime(x: &Expr, t: &DataType, other: &DataType) -> Option<Expr> {
    match (t, other) {
        (DataType::Date32, DataType::Timestamp(_, tz)) => Some(Expr::Cast(datafusion::logical_expr::Cast::new(
            Box::new(x.clone()),
            DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Microsecond, tz.clone()),
        ))),
        _ => None,
    }
}

/// Whether `e` is an interval literal with hours, minutes, seconds or a
/// fraction of a second.
fn has_time_part(e: &Expr) -> bool {
    match e {
        Expr::Literal(ScalarValue::IntervalDayTime(Some(v)), _) => v.milliseconds != 0,
        Expr::Literal(ScalarValue::IntervalMonthDayNano(Some(v)), _) => v.nanoseconds != 0,
        _ => false,
    }
}

/// Functions whose arguments DataFusion coerces to one type.
const DATE_MIXING_FUNCTIONS: &[&str] = &["coalesce", "greatest", "least", "nullif", "nvl", "ifnull"];

/// Casts the DECIMALs of `exprs` to DOUBLEs when another is a DOUBLE (or
/// FLOAT): MySQL's aggregated type of the mix is DOUBLE (MySQL 8.0
/// reference, 14.5 "Flow Control Functions", 15.2.18 "UNION Clause"),
/// where DataFusion's was a DECIMAL of scale 15 (`-2.000000000000000`).
/// Whether it cast any.
pub(crate) fn decimals_among_doubles(exprs: Vec<&mut Expr>, schema: &DFSchema) -> bool {
    let types: Vec<Option<DataType>> = exprs.iter().map(|x| x.get_type(schema).ok()).collect();
    if !types.iter().flatten().any(is_double) {
        return false;
    }
    let mut changed = false;
    for (x, t) in exprs.into_iter().zip(&types) {
        if t.as_ref().is_some_and(is_decimal) {
            *x = cast(x.clone(), DataType::Float64);
            changed = true;
        }
    }
    changed
}

/// Whether `t` is a DOUBLE (or FLOAT).
pub(crate) fn is_double(t: &DataType) -> bool {
    matches!(t, DataType::Float64 | DataType::Float32)
}

/// Whether `t` is a DECIMAL.
pub(crate) fn is_decimal(t: &DataType) -> bool {
    matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..))
}

/// Casts the DATEs of `exprs` to DATETIMEs of microseconds when others
/// are DATETIMEs ([`date_as_datetime`]); whether it cast any.
fn dates_among_datetimes(exprs: Vec<&mut Expr>, schema: &DFSchema) -> bool {
    let types: Vec<Option<DataType>> = exprs.iter().map(|x| x.get_type(schema).ok()).collect();
    let Some(datetime) = types.iter().flatten().find(|t| matches!(t, DataType::Timestamp(..))).cloned() else {
        return false;
    };
    let mut changed = false;
    for (x, t) in exprs.into_iter().zip(&types) {
        if let Some(cast) = t.as_ref().and_then(|t| date_as_datetime(x, t, &datetime)) {
            *x = cast;
            changed = true;
        }
    }
    changed
}

/// The [`crate::executor::functions::MysqlDatePart`] of a `date_part`
/// unit literal (`'YEAR'`, …), if it is one.
fn mysql_date_part(unit: &Expr) -> Option<usize> {
    let Expr::Literal(ScalarValue::Utf8(Some(u)) | ScalarValue::Utf8View(Some(u)) | ScalarValue::LargeUtf8(Some(u)), _) =
        unit
    else {
        return None;
    };
    let parts = crate::executor::functions::MysqlDatePart::PARTS;
    parts.iter().position(|(name, _)| name.eq_ignore_ascii_case(u) && *name != "dayofmonth")
}

fn backslash_escapes(p: &str, esc: char) -> String {
    let mut out = String::with_capacity(p.len() + 2);
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        if c == esc {
            // MySQL reads an escape at the end as itself.
            out.push('\\');
            out.push(chars.next().unwrap_or(esc));
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    out
}

fn is_comparison(op: &Operator) -> bool {
    use Operator::*;
    matches!(op, Eq | NotEq | Lt | LtEq | Gt | GtEq | IsDistinctFrom | IsNotDistinctFrom)
}

/// One expression with MySQL's conversions (see the module
/// documentation); unchanged where the types are not known over `schema`.
fn coerce(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let ty = |x: &Expr| x.get_type(schema).ok();
    // The parser's mark on an arithmetic operand (`__cn_num(x)`), taken
    // off: what it stands for is decided with the other operand.
    let unmarked = |x: Expr| match x {
        Expr::ScalarFunction(f) if f.name() == Conversion::Number.name() && f.args.len() == 1 => {
            (f.args.into_iter().next().expect("one"), true)
        }
        x => (x, false),
    };
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let ((left, lm), (right, rm)) = (unmarked(*left), unmarked(*right));
            let (left, right) = (Box::new(left), Box::new(right));
            let (Some(lt), Some(rt)) = (ty(&left), ty(&right)) else {
                let e = Expr::BinaryExpr(BinaryExpr { left, op, right });
                return Ok(if lm || rm { Transformed::yes(e) } else { Transformed::no(e) });
            };
            let (mut l, mut r) = (*left, *right);
            let mut changed = lm || rm;
            if is_comparison(&op) {
                // A DATE against a DATETIME: the DATE as a DATETIME of
                // microseconds ([`date_as_datetime`]).
                if let Some(x) = date_as_datetime(&l, &lt, &rt) {
                    (l, changed) = (x, true);
                } else if let Some(x) = date_as_datetime(&r, &rt, &lt) {
                    (r, changed) = (x, true);
                }
                // A string against a number: both as DOUBLEs.
                let string_number = |s: &Expr, st: &DataType, nt: &DataType| {
                    is_string(st) && nt.is_numeric() && !numeric_string_literal(s, nt)
                };
                if string_number(&l, &lt, &rt) || string_number(&r, &rt, &lt) {
                    (l, r) = (as_double(l, &lt), as_double(r, &rt));
                    changed = true;
                } else if is_temporal(&lt) && !matches!(lt, DataType::Time64(_) | DataType::Time32(_)) {
                    if let Some(d) = date_literal(&r, &lt) {
                        r = d;
                        changed = true;
                    }
                } else if is_temporal(&rt) && !matches!(rt, DataType::Time64(_) | DataType::Time32(_)) {
                    if let Some(d) = date_literal(&l, &rt) {
                        l = d;
                        changed = true;
                    }
                }
            } else if matches!(op, Operator::Plus | Operator::Minus)
                && (matches!(lt, DataType::Interval(_)) || matches!(rt, DataType::Interval(_)))
            {
                // Date arithmetic on the zero date is NULL in MySQL (a
                // literal is never the CN's zero date: it reads as NULL).
                let column = |x: &Expr, t: &DataType| {
                    matches!(t, DataType::Date32 | DataType::Timestamp(..)) && !matches!(x, Expr::Literal(..))
                };
                let nonzero = |x: Expr, t: &DataType| match date_literal(&lit(0i64), t) {
                    Some(zero) => datafusion::functions::core::expr_fn::nullif(x, zero),
                    None => x,
                };
                if column(&l, &lt) {
                    l = nonzero(l, &lt);
                    changed = true;
                } else if column(&r, &rt) {
                    r = nonzero(r, &rt);
                    changed = true;
                }
                // A DATE plus hours, minutes or seconds is a DATETIME in
                // MySQL (DataFusion's stayed a DATE, the time cut off).
                let datetime = DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Microsecond, None);
                if lt == DataType::Date32 && has_time_part(&r) {
                    l = date_as_datetime(&l, &lt, &datetime).expect("a DATE");
                    changed = true;
                } else if rt == DataType::Date32 && has_time_part(&l) {
                    r = date_as_datetime(&r, &rt, &datetime).expect("a DATE");
                    changed = true;
                }
            } else if matches!(op, Operator::Plus | Operator::Minus | Operator::Multiply | Operator::Modulo) {
                let temporal =
                    |t: &DataType| matches!(t, DataType::Date32 | DataType::Timestamp(..) | DataType::Time64(_));
                let arithmetic =
                    |t: &DataType| t.is_numeric() || is_string(t) || temporal(t) || *t == DataType::Boolean;
                if arithmetic(&lt) && arithmetic(&rt) {
                    let mut number =
                        |x: Expr, t: &DataType| as_number(x, t).inspect(|_| changed = true).unwrap_or_else(|x| x);
                    // Two dates as well: MySQL subtracts their numbers.
                    l = number(l, &lt);
                    r = number(r, &rt);
                }
                // MySQL's remainder by zero is NULL.
                let nonzero = matches!(&r, Expr::Literal(v, _)
                    if !v.is_null() && v.cast_to(&DataType::Float64).is_ok_and(|f| f != ScalarValue::Float64(Some(0.0))));
                if op == Operator::Modulo && !nonzero {
                    r = datafusion::functions::core::expr_fn::nullif(r, lit(0i64));
                    changed = true;
                }
            }
            // Integer `+`, `-`, `*`: MySQL's, in 64 bits with overflow an
            // error ([`MysqlIntArith`]).
            if let Some(f) = crate::executor::functions::MysqlIntArith::new(op) {
                if ty(&l).is_some_and(|t| t.is_integer()) && ty(&r).is_some_and(|t| t.is_integer()) {
                    return Ok(Transformed::yes(ScalarUDF::from(f).call(vec![l, r])));
                }
            }
            let e = Expr::BinaryExpr(BinaryExpr::new(Box::new(l), op, Box::new(r)));
            Ok(if changed { Transformed::yes(e) } else { Transformed::no(e) })
        }
        // `-x` of a signed integer: `0 - x`, so that BIGINT's minimum is
        // error 1690 as in MySQL (DataFusion's wrapped to itself).
        Expr::Negative(x) if ty(&x).is_some_and(|t| t.is_signed_integer()) => {
            let f = crate::executor::functions::MysqlIntArith::new(Operator::Minus).expect("a MysqlIntArith operator");
            Ok(Transformed::yes(ScalarUDF::from(f).call(vec![lit(0i64), *x])))
        }
        Expr::Between(b) => {
            let (Some(t), Some(lo), Some(hi)) = (ty(&b.expr), ty(&b.low), ty(&b.high)) else {
                return Ok(Transformed::no(Expr::Between(b)));
            };
            if matches!(t, DataType::Date32 | DataType::Timestamp(..)) {
                let (low, high) = (date_literal(&b.low, &t), date_literal(&b.high, &t));
                if low.is_some() || high.is_some() {
                    let low = Box::new(low.unwrap_or(*b.low));
                    let high = Box::new(high.unwrap_or(*b.high));
                    return Ok(Transformed::yes(Expr::Between(Between { low, high, ..b })));
                }
            }
            if is_string(&t) && (lo.is_numeric() || hi.is_numeric()) {
                return Ok(Transformed::yes(Expr::Between(Between {
                    expr: Box::new(as_double(*b.expr, &t)),
                    negated: b.negated,
                    low: Box::new(as_double(*b.low, &lo)),
                    high: Box::new(as_double(*b.high, &hi)),
                })));
            }
            Ok(Transformed::no(Expr::Between(b)))
        }
        // `s IN (0, 1)`, `g IN ('1', 'abc')`: as DOUBLEs when a string
        // meets a number that DataFusion would cast it to.
        Expr::InList(mut l) => {
            // DATEs among DATETIMEs ([`date_as_datetime`]).
            if dates_among_datetimes(std::iter::once(&mut *l.expr).chain(l.list.iter_mut()).collect(), schema) {
                return Ok(Transformed::yes(Expr::InList(l)));
            }
            let (Some(t), Some(types)) = (ty(&l.expr), l.list.iter().map(ty).collect::<Option<Vec<_>>>()) else {
                return Ok(Transformed::no(Expr::InList(l)));
            };
            let loose_string = |x: &Expr, xt: &DataType, nt: &DataType| is_string(xt) && !numeric_string_literal(x, nt);
            let mixed = types.iter().any(|nt| nt.is_numeric() && loose_string(&l.expr, &t, nt))
                || (t.is_numeric() && l.list.iter().zip(&types).any(|(x, xt)| loose_string(x, xt, &t)));
            if !mixed {
                return Ok(Transformed::no(Expr::InList(l)));
            }
            let list = l.list.into_iter().zip(&types).map(|(x, xt)| as_double(x, xt)).collect();
            Ok(Transformed::yes(Expr::InList(datafusion::logical_expr::expr::InList {
                expr: Box::new(as_double(*l.expr, &t)),
                list,
                negated: l.negated,
            })))
        }
        // `x LIKE '2%'` of a number or date: its MySQL text.
        Expr::Like(mut l) => {
            let mut changed = false;
            // `LIKE p ESCAPE '!'` (DataFusion takes backslash only): a
            // literal pattern rewritten with backslash escapes.
            if let (Some(esc), Expr::Literal(ScalarValue::Utf8(Some(p)), m)) = (l.escape_char, &*l.pattern) {
                if esc != '\\' {
                    let p = backslash_escapes(p, esc);
                    l.pattern = Box::new(Expr::Literal(ScalarValue::Utf8(Some(p)), m.clone()));
                    l.escape_char = None;
                    changed = true;
                }
            }
            for x in [&mut l.expr, &mut l.pattern] {
                if let Some(t) = ty(x) {
                    if !is_string(&t) && t != DataType::Null {
                        **x = udf(MysqlText::new(), (**x).clone());
                        changed = true;
                    }
                }
            }
            Ok(if changed { Transformed::yes(Expr::Like(l)) } else { Transformed::no(Expr::Like(l)) })
        }
        // EXTRACT(YEAR FROM d) and the like (DataFusion's `date_part`): as
        // MySQL's YEAR(d), …, which give whole numbers, and 0 for the zero
        // date (DataFusion's gave -1 and 12).
        Expr::ScalarFunction(f)
            if f.name() == "date_part"
                && f.args.len() == 2
                && ty(&f.args[1]).is_some_and(|t| matches!(t, DataType::Date32 | DataType::Timestamp(..)))
                && mysql_date_part(&f.args[0]).is_some() =>
        {
            let index = mysql_date_part(&f.args[0]).expect("checked");
            let x = f.args.into_iter().nth(1).expect("two");
            Ok(Transformed::yes(udf(crate::executor::functions::MysqlDatePart::new(index), x)))
        }
        // Functions whose arguments become one type, a CASE's results, an
        // IN list: DATEs among DATETIMEs as DATETIMEs of microseconds
        // ([`date_as_datetime`]); DECIMALs among DOUBLEs as DOUBLEs
        // (not NULLIF's, whose result is its first argument).
        Expr::ScalarFunction(mut f) if DATE_MIXING_FUNCTIONS.contains(&f.name()) => {
            let mut changed = dates_among_datetimes(f.args.iter_mut().collect(), schema);
            if f.name() != "nullif" {
                changed |= decimals_among_doubles(f.args.iter_mut().collect(), schema);
            }
            Ok(Transformed::new_transformed(Expr::ScalarFunction(f), changed))
        }
        Expr::Case(mut c) => {
            let results = c.when_then_expr.iter_mut().map(|(_, t)| &mut **t).chain(c.else_expr.as_deref_mut());
            let mut changed = dates_among_datetimes(results.collect(), schema);
            let results = c.when_then_expr.iter_mut().map(|(_, t)| &mut **t).chain(c.else_expr.as_deref_mut());
            changed |= decimals_among_doubles(results.collect(), schema);
            Ok(Transformed::new_transformed(Expr::Case(c), changed))
        }
        Expr::ScalarFunction(f) if f.name() == Conversion::Number.name() && f.args.len() == 1 => {
            // A mark not under an operator (an aggregate's argument, or
            // the operator went elsewhere): what it planned as.
            let x = f.args.into_iter().next().expect("one");
            Ok(Transformed::yes(match ty(&x) {
                Some(t) => as_number(x, &t).unwrap_or_else(|x| x),
                None => x,
            }))
        }
        // `CAST(s AS SIGNED)` / `AS DECIMAL` of a string: the number it
        // starts with, as MySQL reads it (Arrow's cast refused `'12abc'`).
        Expr::Cast(c) if ty(&c.expr).is_some_and(|t| is_string(&t)) && c.field.data_type().is_numeric() => {
            let prefix = match c.field.data_type() {
                t if t.is_integer() => Conversion::IntegerPrefix,
                DataType::Decimal128(..) | DataType::Decimal256(..) => Conversion::DecimalPrefix,
                _ => return Ok(Transformed::no(Expr::Cast(c))),
            };
            if matches!(&*c.expr, Expr::ScalarFunction(f) if Conversion::of(f.name()) == Some(prefix)) {
                return Ok(Transformed::no(Expr::Cast(c)));
            }
            let expr = Box::new(prefix.call(*c.expr));
            Ok(Transformed::yes(Expr::Cast(datafusion::logical_expr::Cast { expr, field: c.field })))
        }
        Expr::ScalarFunction(f) => {
            let Some((_, positions)) = STRING_ARGUMENTS.iter().find(|(n, _)| *n == f.name()) else {
                return Ok(Transformed::no(Expr::ScalarFunction(f)));
            };
            let mut changed = false;
            let args = f
                .args
                .into_iter()
                .enumerate()
                .map(|(i, a)| match ty(&a) {
                    Some(t) if positions.contains(&i) && !is_string(&t) && t != DataType::Null => {
                        changed = true;
                        udf(MysqlText::new(), a)
                    }
                    _ => a,
                })
                .collect();
            let e = Expr::ScalarFunction(ScalarFunction { func: f.func, args });
            Ok(if changed { Transformed::yes(e) } else { Transformed::no(e) })
        }
        other => Ok(Transformed::no(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::TimeUnit;

    #[test]
    fn like_patterns_with_another_escape_use_backslashes() {
        assert_eq!(backslash_escapes("M!%", '!'), "M\\%");
        assert_eq!(backslash_escapes("a\\b!_c!!", '!'), "a\\\\b\\_c\\!");
        assert_eq!(backslash_escapes("50!", '!'), "50\\!");
    }

    #[test]
    fn integers_read_as_dates_as_mysql_reads_them() {
        let date = |n: i64, t: &DataType| date_literal(&lit(n), t).map(|e| e.to_string());
        let d = DataType::Date32;
        assert_eq!(date(19950131, &d).as_deref(), Some("Date32(\"1995-01-31\")"));
        assert_eq!(date(950131, &d).as_deref(), Some("Date32(\"1995-01-31\")"));
        assert_eq!(date(100131, &d).as_deref(), Some("Date32(\"2010-01-31\")"));
        assert_eq!(date(19950231, &d), None);
        assert_eq!(date(5, &d), None);
        assert_eq!(date(19950131120000, &d), None);
        let ts = DataType::Timestamp(TimeUnit::Microsecond, None);
        let micros = |s: &str| {
            let t = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap();
            Some(lit(ScalarValue::TimestampMicrosecond(Some(t.and_utc().timestamp_micros()), None)).to_string())
        };
        assert_eq!(date(19950131120000, &ts), micros("1995-01-31 12:00:00"));
        assert_eq!(date(19950131, &ts), micros("1995-01-31 00:00:00"));
    }
}
