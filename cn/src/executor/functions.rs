//! Scalar functions with MySQL semantics that DataFusion's built-ins do not
//! have, registered in every CN query context.
//!
//! - `mysql_div(a, b)`: MySQL's `/`. With two exact operands (integers or
//!   DECIMAL) the result is DECIMAL with the scale of `a` plus
//!   `div_precision_increment` (4), rounded half away from zero, as MySQL's
//!   decimal library does (MySQL 8.0 reference, 12.25.3 "Expression
//!   Handling" and 12.6.1 "Arithmetic Operators"); `7 / 2` is `3.5000`,
//!   not DataFusion's integer `3`. With a floating-point or string operand
//!   it is a DOUBLE division. Division by zero gives NULL (MySQL without
//!   `ERROR_FOR_DIVISION_BY_ZERO` in strict mode), not an error.
//!   `AVG(x)` is planned as `mysql_div(SUM(x), COUNT(x))`, which is MySQL's
//!   AVG exactly: DECIMAL with scale + 4, rounded half up.
//! - `mysql_intdiv(a, b)`: MySQL's `a DIV b` ([`MysqlIntDiv`]).
//! - `mysql_signed(x)`, `mysql_unsigned(x)`: `CAST(x AS SIGNED|UNSIGNED)`
//!   ([`MysqlCastInt`]).
//! - `concat(…)`: MySQL's CONCAT, NULL if any argument is ([`MysqlConcat`]).
//! - `year(d)`, `quarter(d)`, `month(d)`, `dayofmonth(d)`, `day(d)`,
//!   `hour(t)`, `minute(t)`, `second(t)` ([`MysqlDatePart`]).
//! - `truncate(x, d)`: MySQL's TRUNCATE ([`MysqlTruncate`]).
//! - `timediff(a, b)`: MySQL's TIMEDIFF ([`MysqlTimediff`]).
//! - `floor(x)`, `ceil(x)` (`CEILING`): MySQL's, an integer-valued DECIMAL
//!   for a DECIMAL ([`MysqlFloorCeil`]).
//! - `mysql_fixed_decimals(v, sum)`: a STDDEV or VARIANCE result shown
//!   with MySQL's decimals ([`MysqlFixedDecimals`]).
//! - `datediff`, `timestampdiff`, `week`, `monthname`, `field`, …
//!   ([`ShardFunction`]): planned with MySQL's result type, computed by
//!   the DNs, and by the CN only for the date functions, ISNULL and SIGN.

use crate::error::CnError;
use crate::executor::convert::ZERO_DATE_DAYS;
use crate::executor::dn_eval::DnEval;
use chrono::Datelike;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Decimal128Builder, Float64Array, Int64Array, Int64Builder, StringArray,
    StringBuilder, UInt64Array,
};
use datafusion::arrow::compute::kernels::temporal::{date_part, DatePart};
use datafusion::arrow::datatypes::{i256, DataType, Date32Type, Decimal128Type, Float64Type, Int64Type, TimeUnit};
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};
use std::sync::Arc;

/// MySQL's `div_precision_increment` default: digits of scale a division
/// adds to its dividend's.
pub const DIV_PRECISION_INCREMENT: i8 = 4;

/// Largest scale a division result gets (MySQL caps at 30 digits).
const MAX_DIV_SCALE: i8 = 30;

/// Digits of the integer types seen as DECIMAL(20, 0) by the division.
const INT_DIGITS: u8 = 20;

/// The functions to register in a query context.
pub fn all(dn: Option<DnEval>) -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::from(MysqlDiv::new()),
        ScalarUDF::from(MysqlIntDiv::new()),
        ScalarUDF::from(MysqlCastInt::new(false)),
        ScalarUDF::from(MysqlCastInt::new(true)),
        ScalarUDF::from(MysqlCastInt::bitnot()),
        ScalarUDF::from(MysqlCastInt::bits()),
        ScalarUDF::from(MysqlConcat::new()),
        ScalarUDF::from(SingleRow::new()),
        ScalarUDF::from(MysqlTruncate::new()),
        ScalarUDF::from(MysqlFloorCeil::new(false)),
        ScalarUDF::from(MysqlFloorCeil::new(true)),
        ScalarUDF::from(MysqlFixedDecimals::new()),
        ScalarUDF::from(MysqlTimediff::new()),
        ScalarUDF::from(MysqlFsp::new()),
        ScalarUDF::from(MysqlJsonValue::new()),
        ScalarUDF::from(MysqlText::new()),
        ScalarUDF::from(MysqlCoalesce::new()),
        ScalarUDF::from(super::date_format::MysqlDateFormat::new()),
        ScalarUDF::from(MysqlRound::new()),
    ]
    .into_iter()
    .chain(MysqlIntArith::OPS.iter().filter_map(|(_, op)| MysqlIntArith::new(*op).map(ScalarUDF::from)))
    .chain((0..MysqlDatePart::PARTS.len()).map(|i| ScalarUDF::from(MysqlDatePart::new(i))))
    .chain(super::truth::Conversion::ALL.map(super::truth::Conversion::udf))
    .chain(super::math::all())
    .chain(ShardFunction::all(dn))
    .chain(crate::optimizer::coercion::string_functions())
    .chain(std::iter::once(crate::optimizer::coercion::order_arg()))
    .collect()
}

/// `mysql_int_add(a, b)`, `mysql_int_sub(a, b)`, `mysql_int_mul(a, b)`:
/// MySQL's `+`, `-`, `*` of two integers (MySQL 8.0 reference, 14.6.1
/// "Arithmetic Operators", and 13.1.7 "Out-of-Range and Overflow
/// Handling"): computed in 64 bits whatever the operands' widths (`INT +
/// INT` is a BIGINT: DataFusion's stayed an INT and wrapped, so
/// 2147483647 + 2147483647 was -2), a BIGINT UNSIGNED when either operand
/// is unsigned, and a result beyond the type's range is error 1690
/// (DataFusion's wrapped silently). The analyzer writes integer
/// arithmetic so ([`crate::optimizer::coercion`]); on a shard it is the
/// operator itself.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MysqlIntArith {
    signature: Signature,
    op: datafusion::logical_expr::Operator,
}

impl MysqlIntArith {
    /// The three functions and their operators.
    pub const OPS: [(&'static str, datafusion::logical_expr::Operator); 3] = [
        ("mysql_int_add", datafusion::logical_expr::Operator::Plus),
        ("mysql_int_sub", datafusion::logical_expr::Operator::Minus),
        ("mysql_int_mul", datafusion::logical_expr::Operator::Multiply),
    ];

    /// The function for `op` (`+`, `-` or `*`); `None` for another.
    pub fn new(op: datafusion::logical_expr::Operator) -> Option<Self> {
        Self::OPS
            .iter()
            .any(|(_, o)| *o == op)
            .then(|| MysqlIntArith { signature: Signature::user_defined(Volatility::Immutable), op })
    }

    /// The operator of the function named `name`, if it is one of these.
    pub fn operator_of(name: &str) -> Option<datafusion::logical_expr::Operator> {
        Self::OPS.iter().find(|(n, _)| *n == name).map(|(_, o)| *o)
    }
}

impl ScalarUDFImpl for MysqlIntArith {
    fn name(&self) -> &str {
        Self::OPS.iter().find(|(_, o)| *o == self.op).map(|(n, _)| *n).expect("one of OPS")
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        Ok(arg_types.iter().map(|t| if t.is_unsigned_integer() { DataType::UInt64 } else { DataType::Int64 }).collect())
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(if arg_types.iter().any(DataType::is_unsigned_integer) { DataType::UInt64 } else { DataType::Int64 })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [a, b] = arrays.as_slice() else {
            return exec_err!("{} takes two arguments", self.name());
        };
        let wide = |x: &ArrayRef| -> Result<Vec<Option<i128>>> {
            Ok(match x.data_type() {
                DataType::UInt64 => x
                    .as_primitive::<datafusion::arrow::datatypes::UInt64Type>()
                    .iter()
                    .map(|v| v.map(i128::from))
                    .collect(),
                _ => {
                    let x = datafusion::arrow::compute::cast(x, &DataType::Int64)?;
                    x.as_primitive::<Int64Type>().iter().map(|v| v.map(i128::from)).collect()
                }
            })
        };
        let unsigned = *args.return_field.data_type() == DataType::UInt64;
        let (lo, hi) = if unsigned { (0, u64::MAX as i128) } else { (i64::MIN as i128, i64::MAX as i128) };
        let op = self.op;
        // MySQL names the expression; the values are what the CN has.
        let out_of_range = |x: i128, y: i128| {
            let what = if unsigned { "BIGINT UNSIGNED" } else { "BIGINT" };
            datafusion::error::DataFusionError::External(Box::new(CnError::mysql(
                1690,
                format!("{what} value is out of range in '{x} {op} {y}'"),
            )))
        };
        let values = wide(a)?
            .into_iter()
            .zip(wide(b)?)
            .map(|(x, y)| {
                let (Some(x), Some(y)) = (x, y) else { return Ok(None) };
                let v = match op {
                    datafusion::logical_expr::Operator::Plus => x + y,
                    datafusion::logical_expr::Operator::Minus => x - y,
                    _ => x.checked_mul(y).ok_or_else(|| out_of_range(x, y))?,
                };
                if v < lo || v > hi {
                    return Err(out_of_range(x, y));
                }
                Ok(Some(v))
            })
            .collect::<Result<Vec<_>>>()?;
        let out: ArrayRef = if unsigned {
            Arc::new(values.into_iter().map(|v| v.map(|v| v as u64)).collect::<UInt64Array>())
        } else {
            Arc::new(values.into_iter().map(|v| v.map(|v| v as i64)).collect::<Int64Array>())
        };
        Ok(ColumnarValue::Array(out))
    }
}

/// `mysql_div(a, b)`: see the module documentation.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MysqlDiv {
    signature: Signature,
}

impl MysqlDiv {
    pub const NAME: &'static str = "mysql_div";

    pub fn new() -> Self {
        MysqlDiv { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl Default for MysqlDiv {
    fn default() -> Self {
        Self::new()
    }
}

/// Integers, and what MySQL computes as one (NULL, a boolean).
fn integer_like(t: &DataType) -> bool {
    t.is_integer() || matches!(t, DataType::Null | DataType::Boolean)
}

fn exact(t: &DataType) -> bool {
    integer_like(t) || matches!(t, DataType::Decimal128(..))
}

/// An exact operand's type as a DECIMAL: itself, or DECIMAL(20, 0) for an
/// integer.
fn as_decimal(t: &DataType) -> DataType {
    match t {
        DataType::Decimal128(..) => t.clone(),
        _ => DataType::Decimal128(INT_DIGITS, 0),
    }
}

/// (precision, scale) of an exact operand type after coercion.
fn decimal_parts(t: &DataType) -> (u8, i8) {
    match t {
        DataType::Decimal128(p, s) => (*p, *s),
        _ => (INT_DIGITS, 0),
    }
}

/// The result type of `a / b` for exact operands: scale `s1 + 4` (capped),
/// integer digits those of `a` plus the scale of `b` (MySQL's rule),
/// precision capped at 38.
pub fn div_result_type(a: &DataType, b: &DataType) -> DataType {
    let (p1, s1) = decimal_parts(a);
    let (_, s2) = decimal_parts(b);
    let scale = (s1 + DIV_PRECISION_INCREMENT).min(MAX_DIV_SCALE);
    let int_digits = (p1 as i16 - s1 as i16 + s2 as i16).max(1);
    let precision = (int_digits + scale as i16).clamp(scale as i16 + 1, 38);
    DataType::Decimal128(precision as u8, scale)
}

impl ScalarUDFImpl for MysqlDiv {
    fn name(&self) -> &str {
        Self::NAME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if arg_types.iter().all(exact) {
            Ok(arg_types.iter().map(as_decimal).collect())
        } else {
            Ok(vec![DataType::Float64; arg_types.len()])
        }
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [a, b] if exact(a) && exact(b) => Ok(div_result_type(a, b)),
            [_, _] => Ok(DataType::Float64),
            _ => exec_err!("mysql_div takes two arguments"),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [a, b] = arrays.as_slice() else {
            return exec_err!("mysql_div takes two arguments");
        };
        let out: ArrayRef = match (a.data_type(), b.data_type()) {
            (DataType::Decimal128(_, s1), DataType::Decimal128(_, s2)) => {
                let DataType::Decimal128(p, s) = args.return_field.data_type().clone() else {
                    return exec_err!("mysql_div: decimal operands need a decimal result");
                };
                // result = a * 10^(s - s1 + s2) / b, rounded half away from zero.
                let shift = (s as i32 - *s1 as i32 + *s2 as i32) as u32;
                let (a, b) = (a.as_primitive::<Decimal128Type>(), b.as_primitive::<Decimal128Type>());
                let mut out = Decimal128Builder::with_capacity(a.len());
                for i in 0..a.len() {
                    if a.is_null(i) || b.is_null(i) || b.value(i) == 0 {
                        out.append_null();
                    } else {
                        out.append_value(div_round(a.value(i), b.value(i), shift)?);
                    }
                }
                Arc::new(out.finish().with_precision_and_scale(p, s)?)
            }
            (DataType::Float64, DataType::Float64) => {
                let (a, b) = (a.as_primitive::<Float64Type>(), b.as_primitive::<Float64Type>());
                let out: Float64Array = a
                    .iter()
                    .zip(b.iter())
                    .map(|(x, y)| match (x, y) {
                        (Some(x), Some(y)) if y != 0.0 => Some(x / y),
                        _ => None,
                    })
                    .collect();
                Arc::new(out)
            }
            (x, y) => return exec_err!("mysql_div of {x} and {y}"),
        };
        Ok(ColumnarValue::Array(out))
    }
}

/// `n * 10^shift / d` rounded half away from zero; `d != 0`. Exact in
/// 256-bit arithmetic; errors when the result does not fit 128 bits.
pub fn div_round(n: i128, d: i128, shift: u32) -> Result<i128> {
    if let Some(num) = 10i128.checked_pow(shift).and_then(|m| n.checked_mul(m)) {
        let (q, r) = (num / d, num % d);
        // |2r| >= |d| without overflow: |r| >= |d| - |r|.
        let up = r.unsigned_abs() >= d.unsigned_abs() - r.unsigned_abs();
        return Ok(if up && r != 0 { q + (num.signum() * d.signum()) } else { q });
    }
    let num = i256::from_i128(10).checked_pow(shift).and_then(|m| i256::from_i128(n).checked_mul(m));
    let Some(num) = num else {
        return exec_err!("DECIMAL value is out of range in division");
    };
    let d = i256::from_i128(d);
    let (q, r) = (num.wrapping_div(d), num.wrapping_rem(d));
    let up = r.wrapping_abs().wrapping_mul(i256::from_i128(2)) >= d.wrapping_abs();
    let q = if up && r != i256::ZERO {
        let sign = if (num < i256::ZERO) != (d < i256::ZERO) { i256::MINUS_ONE } else { i256::ONE };
        q.wrapping_add(sign)
    } else {
        q
    };
    match q.to_i128() {
        Some(v) => Ok(v),
        None => exec_err!("DECIMAL value is out of range in division"),
    }
}

/// `mysql_intdiv(a, b)`: MySQL's `a DIV b` (MySQL 8.0 reference, 14.6.1
/// "Arithmetic Operators"): the quotient truncated toward zero as BIGINT.
/// Integer operands divide as integers; DECIMAL operands divide exactly and
/// truncate; floating-point (and string) operands divide as DOUBLE and
/// truncate. Division by zero gives NULL; a quotient beyond BIGINT is an
/// error ("BIGINT value is out of range"), as in MySQL.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MysqlIntDiv {
    signature: Signature,
}

impl MysqlIntDiv {
    pub const NAME: &'static str = "mysql_intdiv";

    pub fn new() -> Self {
        MysqlIntDiv { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl Default for MysqlIntDiv {
    fn default() -> Self {
        Self::new()
    }
}

fn bigint_range<T>(v: Option<T>) -> Result<T> {
    match v {
        Some(v) => Ok(v),
        None => exec_err!("BIGINT value is out of range in DIV"),
    }
}

impl ScalarUDFImpl for MysqlIntDiv {
    fn name(&self) -> &str {
        Self::NAME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        Ok(if arg_types.iter().all(integer_like) {
            vec![DataType::Int64; arg_types.len()]
        } else if arg_types.iter().all(exact) {
            arg_types.iter().map(as_decimal).collect()
        } else {
            vec![DataType::Float64; arg_types.len()]
        })
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [_, _] => Ok(DataType::Int64),
            _ => exec_err!("mysql_intdiv takes two arguments"),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [a, b] = arrays.as_slice() else {
            return exec_err!("mysql_intdiv takes two arguments");
        };
        let mut out = Int64Builder::with_capacity(a.len());
        match (a.data_type(), b.data_type()) {
            (DataType::Int64, DataType::Int64) => {
                let (a, b) = (a.as_primitive::<Int64Type>(), b.as_primitive::<Int64Type>());
                for (x, y) in a.iter().zip(b.iter()) {
                    match (x, y) {
                        (Some(x), Some(y)) if y != 0 => out.append_value(bigint_range(x.checked_div(y))?),
                        _ => out.append_null(),
                    }
                }
            }
            (DataType::Decimal128(_, s1), DataType::Decimal128(_, s2)) => {
                // a / 10^s1 DIV b / 10^s2 = (a * 10^s2) DIV (b * 10^s1).
                let (a, b) = (a.as_primitive::<Decimal128Type>(), b.as_primitive::<Decimal128Type>());
                let scale =
                    |v: i128, s: i8| i256::from_i128(v).checked_mul(i256::from_i128(10).checked_pow(s.max(0) as u32)?);
                for (x, y) in a.iter().zip(b.iter()) {
                    match (x, y) {
                        (Some(x), Some(y)) if y != 0 => {
                            let n = bigint_range(scale(x, *s2))?;
                            let d = bigint_range(scale(y, *s1))?;
                            let q = n.wrapping_div(d).to_i128().and_then(|q| i64::try_from(q).ok());
                            out.append_value(bigint_range(q)?);
                        }
                        _ => out.append_null(),
                    }
                }
            }
            (DataType::Float64, DataType::Float64) => {
                let (a, b) = (a.as_primitive::<Float64Type>(), b.as_primitive::<Float64Type>());
                for (x, y) in a.iter().zip(b.iter()) {
                    match (x, y) {
                        (Some(x), Some(y)) if y != 0.0 => {
                            let q = (x / y).trunc();
                            let fits = q.is_finite() && q >= i64::MIN as f64 && q < i64::MAX as f64;
                            out.append_value(bigint_range(fits.then_some(q as i64))?);
                        }
                        _ => out.append_null(),
                    }
                }
            }
            (x, y) => return exec_err!("mysql_intdiv of {x} and {y}"),
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// `mysql_signed(x)` and `mysql_unsigned(x)`: MySQL's `CAST(x AS SIGNED)`
/// and `CAST(x AS UNSIGNED)` (MySQL 8.0 reference, 14.10 "Cast Functions
/// and Operators"), which DataFusion's SQL planner does not know. DECIMAL
/// values round half away from zero (`CAST(3.5 AS SIGNED)` is 4, where an
/// Arrow cast truncates), DOUBLE values half to even as C's `rint`
/// (MariaDB: `CAST(2.5e0 AS SIGNED)` is 2); strings give their
/// leading integer (`'12abc'` is 12, `'x'` is 0); values beyond the range
/// saturate. UNSIGNED of a negative integer wraps modulo 2^64, as MySQL's
/// does.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MysqlCastInt {
    signature: Signature,
    mode: IntMode,
}

/// What [`MysqlCastInt`] gives.
#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
enum IntMode {
    /// `CAST(x AS SIGNED)`.
    Signed,
    /// `CAST(x AS UNSIGNED)`.
    Unsigned,
    /// `mysql_bits(x)`: the 64 bits MySQL's bit operators (`&`, `|`, `^`,
    /// `<<`, `>>`) take of an operand (converted as for `CAST(x AS
    /// SIGNED)`, a negative one as its two's complement), an unsigned
    /// BIGINT (`-1` is 18446744073709551615). On a shard it is `x`: MariaDB
    /// converts the operands itself.
    Bits,
    /// `mysql_bitnot(x)`: MySQL's `~x`, those bits inverted (`~0` is
    /// 18446744073709551615, `~-1` is 0). On a shard it is `x ^
    /// 18446744073709551615`, the same bits.
    BitNot,
}

impl MysqlCastInt {
    pub const SIGNED: &'static str = "mysql_signed";
    pub const UNSIGNED: &'static str = "mysql_unsigned";
    pub const BITS: &'static str = "mysql_bits";
    pub const BITNOT: &'static str = "mysql_bitnot";

    pub fn new(unsigned: bool) -> Self {
        Self::of(if unsigned { IntMode::Unsigned } else { IntMode::Signed })
    }

    fn of(mode: IntMode) -> Self {
        MysqlCastInt { signature: Signature::user_defined(Volatility::Immutable), mode }
    }

    /// `mysql_bits` (see [`IntMode::Bits`]).
    pub fn bits() -> Self {
        Self::of(IntMode::Bits)
    }

    /// `mysql_bitnot` (see [`IntMode::BitNot`]).
    pub fn bitnot() -> Self {
        Self::of(IntMode::BitNot)
    }
}

/// The leading integer of a string, as MySQL converts it (0 without one).
fn leading_integer(s: &str) -> i128 {
    let t = s.trim_start();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut v: i128 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        v = (v * 10 + (b - b'0') as i128).min(u64::MAX as i128 + 1);
    }
    if neg {
        -v
    } else {
        v
    }
}

impl ScalarUDFImpl for MysqlCastInt {
    fn name(&self) -> &str {
        match self.mode {
            IntMode::Signed => Self::SIGNED,
            IntMode::Unsigned => Self::UNSIGNED,
            IntMode::Bits => Self::BITS,
            IntMode::BitNot => Self::BITNOT,
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        Ok(arg_types
            .iter()
            .map(|t| match t {
                DataType::UInt64 | DataType::Date32 | DataType::Timestamp(..) | DataType::Time64(_) => t.clone(),
                t if integer_like(t) => DataType::Int64,
                DataType::Decimal128(..) => t.clone(),
                t if t.is_floating() => DataType::Float64,
                _ => DataType::Utf8,
            })
            .collect())
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(if self.mode == IntMode::Signed { DataType::Int64 } else { DataType::UInt64 })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [a] = arrays.as_slice() else {
            return exec_err!("{} takes one argument", self.name());
        };
        // Every input as an i128 (exact for all of them), then the range.
        let wide: Vec<Option<i128>> = match a.data_type() {
            DataType::Int64 => a.as_primitive::<Int64Type>().iter().map(|v| v.map(i128::from)).collect(),
            DataType::UInt64 => {
                a.as_primitive::<datafusion::arrow::datatypes::UInt64Type>().iter().map(|v| v.map(i128::from)).collect()
            }
            // A date or time as its number (`19950131`, `HHMMSS`), as MySQL
            // reads it in numeric context.
            DataType::Date32 | DataType::Timestamp(..) | DataType::Time64(_) => {
                let n = crate::executor::truth::temporal_numbers(a)?;
                n.as_primitive::<Int64Type>().iter().map(|v| v.map(i128::from)).collect()
            }
            DataType::Decimal128(_, s) => {
                let m = 10i128.pow((*s).max(0) as u32);
                a.as_primitive::<Decimal128Type>().iter().map(|v| v.map(|v| (v + v.signum() * (m / 2)) / m)).collect()
            }
            DataType::Float64 => a
                .as_primitive::<Float64Type>()
                .iter()
                .map(|v| v.map(|f| f.round_ties_even().clamp(i128::MIN as f64, i128::MAX as f64) as i128))
                .collect(),
            DataType::Utf8 => a.as_string::<i32>().iter().map(|v| v.map(leading_integer)).collect(),
            other => return exec_err!("{} of {other}", self.name()),
        };
        // The 64 bits MySQL keeps of a value: a negative one as BIGINT, a
        // positive one as BIGINT UNSIGNED (both saturating).
        let bits = |v: i128| if v < 0 { v.max(i64::MIN as i128) as i64 as u64 } else { v.min(u64::MAX as i128) as u64 };
        let out: ArrayRef = if self.mode == IntMode::BitNot {
            Arc::new(wide.into_iter().map(|v| v.map(|v| !bits(v))).collect::<UInt64Array>())
        } else if self.mode == IntMode::Bits {
            Arc::new(wide.into_iter().map(|v| v.map(bits)).collect::<UInt64Array>())
        } else if self.mode == IntMode::Signed && matches!(a.data_type(), DataType::UInt64) {
            // BIGINT UNSIGNED to SIGNED keeps the bits (MySQL wraps).
            Arc::new(wide.into_iter().map(|v| v.map(|v| bits(v) as i64)).collect::<Int64Array>())
        } else if self.mode == IntMode::Unsigned {
            let signed = matches!(a.data_type(), DataType::Int64);
            Arc::new(
                wide.into_iter()
                    .map(|v| v.map(|v| if signed { v as i64 as u64 } else { v.clamp(0, u64::MAX as i128) as u64 }))
                    .collect::<UInt64Array>(),
            )
        } else {
            Arc::new(
                wide.into_iter()
                    .map(|v| v.map(|v| v.clamp(i64::MIN as i128, i64::MAX as i128) as i64))
                    .collect::<Int64Array>(),
            )
        };
        Ok(ColumnarValue::Array(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_cast_to_their_leading_integer() {
        assert_eq!(leading_integer(" 12abc"), 12);
        assert_eq!(leading_integer("-7.9"), -7);
        assert_eq!(leading_integer("x"), 0);
        assert_eq!(leading_integer("+3"), 3);
    }

    #[test]
    fn division_rounds_half_away_from_zero_at_scale_plus_four() {
        // 7 / 2 = 3.5000 (scale 4: shift 4)
        assert_eq!(div_round(7, 2, 4).unwrap(), 35000);
        // 1 / 3 = 0.3333; 2 / 3 = 0.6667; -2 / 3 = -0.6667
        assert_eq!(div_round(1, 3, 4).unwrap(), 3333);
        assert_eq!(div_round(2, 3, 4).unwrap(), 6667);
        assert_eq!(div_round(-2, 3, 4).unwrap(), -6667);
        assert_eq!(div_round(2, -3, 4).unwrap(), -6667);
        // exactly half: 1 / 8 at scale 2 (shift 2) = 0.125 -> 0.13
        assert_eq!(div_round(1, 8, 2).unwrap(), 13);
        assert_eq!(div_round(-1, 8, 2).unwrap(), -13);
        // past i128 in the intermediate product, still exact
        let big = 10i128.pow(36);
        assert_eq!(div_round(big, big, 10).unwrap(), 10i128.pow(10));
        assert_eq!(
            div_result_type(&DataType::Decimal128(15, 2), &DataType::Int64),
            DataType::Decimal128(19, 6),
            "AVG(DECIMAL(15,2)) has scale 6, as in MySQL"
        );
        assert_eq!(div_result_type(&DataType::Int32, &DataType::Int32), DataType::Decimal128(24, 4));
    }
}

/// MySQL's date-part functions `YEAR(d)`, `QUARTER(d)`, `MONTH(d)`,
/// `DAYOFMONTH(d)` (and `DAY(d)`), `HOUR(t)`, `MINUTE(t)`, `SECOND(t)`
/// (MySQL 8.0 reference, 14.7 "Date and Time Functions"), under their
/// MySQL names, so MariaDB computes them the same where they are pushed
/// down. The argument is a DATE, a DATETIME/TIMESTAMP, or a string, which
/// is read as a DATETIME (`'2024-01-05'` or `'2024-01-05 10:20:30'`); a
/// string that is no date gives NULL, as MySQL gives (with a warning).
/// The result is a BIGINT; NULL in, NULL out.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MysqlDatePart {
    signature: Signature,
    /// An index into [`MysqlDatePart::PARTS`].
    index: usize,
}

impl MysqlDatePart {
    /// The functions' names and the part each extracts.
    pub const PARTS: [(&'static str, DatePart); 8] = [
        ("year", DatePart::Year),
        ("quarter", DatePart::Quarter),
        ("month", DatePart::Month),
        ("dayofmonth", DatePart::Day),
        ("day", DatePart::Day),
        ("hour", DatePart::Hour),
        ("minute", DatePart::Minute),
        ("second", DatePart::Second),
    ];

    /// The function `PARTS[index]`; panics for an index past the table.
    pub fn new(index: usize) -> Self {
        assert!(index < Self::PARTS.len(), "no date part {index}");
        MysqlDatePart { signature: Signature::user_defined(Volatility::Immutable), index }
    }
}

impl ScalarUDFImpl for MysqlDatePart {
    fn name(&self) -> &str {
        Self::PARTS[self.index].0
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [t] = arg_types else {
            return exec_err!("{} takes one argument", self.name());
        };
        Ok(vec![match t {
            DataType::Date32 | DataType::Date64 | DataType::Timestamp(..) => t.clone(),
            _ => DataType::Utf8,
        }])
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [a] = arrays.as_slice() else {
            return exec_err!("{} takes one argument", self.name());
        };
        let a = match a.data_type() {
            // Not Arrow's default cast, which fails on a string that is no
            // date: MySQL gives NULL.
            DataType::Utf8 => {
                let safe = datafusion::arrow::compute::CastOptions { safe: true, ..Default::default() };
                let to = DataType::Timestamp(TimeUnit::Microsecond, None);
                datafusion::arrow::compute::cast_with_options(a, &to, &safe)?
            }
            _ => a.clone(),
        };
        let part = date_part(a.as_ref(), Self::PARTS[self.index].1)?;
        let out = datafusion::arrow::compute::cast(&part, &DataType::Int64)?;
        // Every part of the zero date `0000-00-00` is 0 in MySQL.
        let zeros = crate::executor::convert::zero_temporals(a.as_ref()).unwrap_or_default();
        if zeros.contains(&true) {
            let out = out.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            let fixed: Int64Array = out.iter().zip(zeros).map(|(v, z)| if z { Some(0) } else { v }).collect();
            return Ok(ColumnarValue::Array(Arc::new(fixed)));
        }
        Ok(ColumnarValue::Array(out))
    }
}

/// MySQL's `CONCAT(s1, s2, …)`: NULL when any argument is NULL (MySQL 8.0
/// reference, 14.8 "String Functions"), where DataFusion's `concat` skips
/// NULL arguments as PostgreSQL's does. Registered as `concat`, in place of
/// DataFusion's; arguments of other types are cast to strings.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MysqlConcat {
    signature: Signature,
}

impl MysqlConcat {
    pub const NAME: &'static str = "concat";

    pub fn new() -> Self {
        MysqlConcat { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl Default for MysqlConcat {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for MysqlConcat {
    fn name(&self) -> &str {
        Self::NAME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if arg_types.is_empty() {
            return exec_err!("CONCAT takes at least one argument");
        }
        crate::collation::functions::as_utf8(arg_types)
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        // Coerced to Utf8 when planned; a call built later may not be.
        let arrays = arrays.iter().map(crate::collation::functions::utf8).collect::<Result<Vec<_>>>()?;
        let strings: Vec<_> = arrays.iter().map(|a| a.as_string::<i32>()).collect();
        let mut out = StringBuilder::with_capacity(args.number_rows, 0);
        let mut row = String::new();
        for i in 0..args.number_rows {
            if strings.iter().any(|s| s.is_null(i)) {
                out.append_null();
                continue;
            }
            row.clear();
            for s in &strings {
                row.push_str(s.value(i));
            }
            out.append_value(&row);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// `__cn_text(v)`: `v` as MySQL shows it, a string
/// ([`crate::executor::convert::mysql_text`]). The CN's own (never sent to
/// a DN), for a value that becomes a string where DataFusion would not
/// make it one: a TIME or DATETIME column in a UNION with a string column
/// ([`crate::optimizer::text_types`]).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MysqlText {
    signature: Signature,
}

impl MysqlText {
    pub const NAME: &'static str = "__cn_text";

    pub fn new() -> Self {
        MysqlText { signature: Signature::any(1, Volatility::Immutable) }
    }
}

impl Default for MysqlText {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for MysqlText {
    fn name(&self) -> &str {
        Self::NAME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [a] = arrays.as_slice() else {
            return exec_err!("{} takes one argument", Self::NAME);
        };
        Ok(ColumnarValue::Array(crate::collation::functions::utf8(a)?.into_owned()))
    }
}

/// `cn_json_value(v)`: `v` as a JSON value, the text MariaDB's
/// `JSON_ARRAYAGG` and `JSON_OBJECTAGG` give it: `null` for NULL, `true`
/// or `false` for a truth value (a comparison's), a number as MySQL shows
/// it (`1400.00`), anything else its MySQL text as a JSON string (`"2018-01-31"`,
/// with `"`, `\` and control characters escaped). Never NULL itself, so
/// that GROUP_CONCAT keeps NULLs as `null` ([`crate::optimizer::semantics`]).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MysqlJsonValue {
    signature: Signature,
}

impl MysqlJsonValue {
    pub const NAME: &'static str = "cn_json_value";

    pub fn new() -> Self {
        MysqlJsonValue { signature: Signature::any(1, Volatility::Immutable) }
    }
}

impl Default for MysqlJsonValue {
    fn default() -> Self {
        Self::new()
    }
}

/// `s` as a JSON string, quoted and escaped (RFC 8259, section 7).
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl ScalarUDFImpl for MysqlJsonValue {
    fn name(&self) -> &str {
        Self::NAME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [a] = arrays.as_slice() else {
            return exec_err!("{} takes one argument", Self::NAME);
        };
        let truth = *a.data_type() == DataType::Boolean;
        let number = a.data_type().is_numeric();
        let text = crate::collation::functions::utf8(a)?;
        let text = text.as_string::<i32>();
        let mut out = StringBuilder::with_capacity(a.len(), text.value_data().len() + 8 * a.len());
        for i in 0..a.len() {
            if a.is_null(i) {
                out.append_value("null");
            } else if truth {
                let on = a.as_boolean().value(i);
                out.append_value(if on { "true" } else { "false" });
            } else if number {
                out.append_value(text.value(i));
            } else {
                out.append_value(json_string(text.value(i)));
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// MySQL's `COALESCE` (and `IFNULL`, planned as it): DataFusion's, but
/// for a mix of temporal arguments with strings or numbers
/// (`IFNULL(MAX(d), 'never')`), or of strings with numbers (`IFNULL(g,
/// 'none')`, `COALESCE(s, x)`: DataFusion cast the string to the number),
/// whose result MySQL makes a string (MySQL 8.0 reference, 14.4.2
/// "Comparison Functions and Operators": the aggregated type of the
/// arguments). DataFusion finds no common type there and failed to plan
/// the statement (1105); this one gives each argument's MySQL text
/// ([`crate::executor::convert::mysql_text`]) and picks the first that is
/// not NULL. Registered as `coalesce`, in place of DataFusion's, to which
/// it leaves every other mix (and its rewrite into a CASE).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MysqlCoalesce {
    inner: ScalarUDF,
    signature: Signature,
}

impl MysqlCoalesce {
    pub fn new() -> Self {
        let inner = datafusion::functions::core::coalesce().as_ref().clone();
        MysqlCoalesce { signature: inner.signature().clone(), inner }
    }

    /// Whether the arguments mix dates or times with strings or numbers.
    fn mixed(types: &[DataType]) -> bool {
        use crate::optimizer::text_types::{is_string, mixes_temporal_and_text};
        mixes_temporal_and_text(types) || (types.iter().any(is_string) && types.iter().any(DataType::is_numeric))
    }
}

impl Default for MysqlCoalesce {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for MysqlCoalesce {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if Self::mixed(arg_types) {
            return crate::collation::functions::as_utf8(arg_types);
        }
        self.inner.coerce_types(arg_types)
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if Self::mixed(arg_types) {
            return Ok(DataType::Utf8);
        }
        self.inner.return_type(arg_types)
    }
    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> Result<datafusion::arrow::datatypes::FieldRef> {
        let types: Vec<DataType> = args.arg_fields.iter().map(|f| f.data_type().clone()).collect();
        if Self::mixed(&types) {
            let nullable = args.arg_fields.iter().all(|f| f.is_nullable());
            return Ok(Arc::new(datafusion::arrow::datatypes::Field::new(self.name(), DataType::Utf8, nullable)));
        }
        self.inner.return_field_from_args(args)
    }
    fn simplify(
        &self,
        args: Vec<datafusion::logical_expr::Expr>,
        info: &datafusion::logical_expr::simplify::SimplifyContext,
    ) -> Result<datafusion::logical_expr::simplify::ExprSimplifyResult> {
        let types = args.iter().map(|a| info.get_data_type(a)).collect::<Result<Vec<_>>>()?;
        if Self::mixed(&types) {
            return Ok(datafusion::logical_expr::simplify::ExprSimplifyResult::Original(args));
        }
        self.inner.simplify(args, info)
    }
    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let types: Vec<DataType> = args.args.iter().map(|a| a.data_type()).collect();
        if !Self::mixed(&types) {
            return self.inner.invoke_with_args(args);
        }
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let texts = arrays.iter().map(crate::collation::functions::utf8).collect::<Result<Vec<_>>>()?;
        let strings: Vec<_> = texts.iter().map(|a| a.as_string::<i32>()).collect();
        let out: StringArray =
            (0..args.number_rows).map(|i| strings.iter().find(|s| s.is_valid(i)).map(|s| s.value(i))).collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `__cn_single_row(n, v)`: `v` when `n` (a row count) is at most 1, else
/// MySQL's error 1242 "Subquery returns more than 1 row" (SQLSTATE 21000).
/// A scalar subquery that is no aggregate is planned as `(SELECT
/// __cn_single_row(COUNT(*), MAX(item)) …)` (see
/// `optimizer::semantics::SubqueryAsAggregate`), which DataFusion can
/// decorrelate.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SingleRow {
    signature: Signature,
}

impl SingleRow {
    pub const NAME: &'static str = "__cn_single_row";

    pub fn new() -> Self {
        SingleRow { signature: Signature::any(2, Volatility::Immutable) }
    }
}

impl Default for SingleRow {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for SingleRow {
    fn name(&self) -> &str {
        Self::NAME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types[1].clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [n, v] = args.args.as_slice() else {
            return exec_err!("{} takes two arguments", Self::NAME);
        };
        let n = n.to_array(args.number_rows)?;
        let n = datafusion::arrow::compute::cast(&n, &DataType::Int64)?;
        if n.as_primitive::<Int64Type>().iter().any(|c| c.is_some_and(|c| c > 1)) {
            let e = crate::error::CnError::mysql(
                crate::error::code::ER_SUBQUERY_NO_1_ROW,
                "Subquery returns more than 1 row",
            );
            return Err(datafusion::error::DataFusionError::External(Box::new(e)));
        }
        Ok(v.clone())
    }
}

/// MySQL's `ROUND(x[, d])`: DataFusion's for exact values (half away from
/// zero, as MySQL rounds DECIMALs and integers); for a DOUBLE, MySQL's
/// `rint(x * 10^d) / 10^d` (half to even: `ROUND(2.5e0)` is 2, DataFusion
/// gave 3), shown with `d` decimals when `d` is a constant (`ROUND(-1e0,
/// 1)` is `-1.0`), as MariaDB's `my_double_round` and its result field.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MysqlRound {
    inner: ScalarUDF,
}

impl MysqlRound {
    pub fn new() -> Self {
        MysqlRound { inner: datafusion::functions::math::round().as_ref().clone() }
    }
}

impl Default for MysqlRound {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for MysqlRound {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn signature(&self) -> &Signature {
        self.inner.signature()
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }
    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> Result<datafusion::arrow::datatypes::FieldRef> {
        let double = args.arg_fields.first().is_some_and(|f| f.data_type() == &DataType::Float64);
        let decimals = match args.scalar_arguments.get(1) {
            None => Some(0),
            Some(Some(d)) => d.cast_to(&DataType::Int64).ok().and_then(|d| i64::try_from(d).ok()),
            Some(None) => None,
        };
        let f = self.inner.return_field_from_args(args)?;
        match decimals {
            Some(n) if double && f.data_type() == &DataType::Float64 => {
                Ok(Arc::new(crate::executor::convert::with_decimals(f.as_ref().clone(), n)))
            }
            _ => Ok(f),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if args.args.first().is_none_or(|a| a.data_type() != DataType::Float64) {
            return self.inner.invoke_with_args(args);
        }
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let x = arrays[0].as_primitive::<Float64Type>();
        let d = match arrays.get(1) {
            Some(d) => datafusion::arrow::compute::cast(d, &DataType::Int64)?,
            None => Arc::new(Int64Array::from(vec![0; x.len()])),
        };
        let d = d.as_primitive::<Int64Type>();
        let out: Float64Array = (0..x.len())
            .map(|i| {
                if x.is_null(i) || d.is_null(i) {
                    return None;
                }
                let (v, d) = (x.value(i), d.value(i).clamp(-308, 308) as i32);
                let scale = 10f64.powi(d.abs());
                Some(if d >= 0 { (v * scale).round_ties_even() / scale } else { (v / scale).round_ties_even() * scale })
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `truncate(x, d)`: MySQL's `TRUNCATE(x, d)`, `x` cut (toward zero) to
/// `d` digits after the point, or to a multiple of `10^-d` for a negative
/// `d` (MySQL 8.0 reference, 14.6.2 "Mathematical Functions"). A DECIMAL
/// stays DECIMAL with scale `d` (0 to 30; with `d` not a constant, the
/// scale of `x`), as MariaDB gives `TRUNCATE(100.50, 3)` as `100.500`; an integer stays an integer; anything else
/// is a DOUBLE. NULL when either argument is.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MysqlTruncate {
    signature: Signature,
}

impl MysqlTruncate {
    pub const NAME: &'static str = "truncate";

    pub fn new() -> Self {
        MysqlTruncate { signature: Signature::any(2, Volatility::Immutable) }
    }
}

impl Default for MysqlTruncate {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for MysqlTruncate {
    fn name(&self) -> &str {
        Self::NAME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(match &arg_types[0] {
            DataType::Decimal128(..) => arg_types[0].clone(),
            t if t.is_integer() => DataType::Int64,
            _ => DataType::Float64,
        })
    }
    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> Result<datafusion::arrow::datatypes::FieldRef> {
        let types: Vec<DataType> = args.arg_fields.iter().map(|f| f.data_type().clone()).collect();
        let mut t = self.return_type(&types)?;
        let decimals = match args.scalar_arguments.get(1) {
            Some(Some(d)) => d.cast_to(&DataType::Int64).and_then(i64::try_from).ok(),
            _ => None,
        };
        if let (DataType::Decimal128(p, s), Some(d)) = (&t, decimals) {
            let out_s = d.clamp(0, 30) as i16;
            let p = (i16::from(*p) - i16::from(*s) + out_s).clamp(out_s.max(1), 38);
            t = DataType::Decimal128(p as u8, out_s as i8);
        }
        let mut f = datafusion::arrow::datatypes::Field::new(self.name(), t, true);
        // A DOUBLE shows the D decimals MariaDB gives it (`TRUNCATE(3.7, 2)`
        // of a DOUBLE is `3.70`), as ROUND's does.
        if let (DataType::Float64, Some(d)) = (f.data_type(), decimals) {
            f = crate::executor::convert::with_decimals(f, d);
        }
        Ok(Arc::new(f))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [x, d] = arrays.as_slice() else {
            return exec_err!("TRUNCATE takes two arguments");
        };
        let d = datafusion::arrow::compute::cast(d, &DataType::Int64)?;
        let d = d.as_primitive::<Int64Type>();
        let pow = |n: i64| 10i128.checked_pow(n.clamp(0, 38) as u32).unwrap_or(i128::MAX);
        let out: ArrayRef = match (x.data_type(), args.return_field.data_type()) {
            (DataType::Decimal128(_, s), DataType::Decimal128(p, out_s)) => {
                let (s, out_s) = (i64::from(*s), i64::from(*out_s));
                let v = x.as_primitive::<Decimal128Type>();
                let mut b = Decimal128Builder::with_capacity(v.len());
                for i in 0..v.len() {
                    if v.is_null(i) || d.is_null(i) {
                        b.append_null();
                        continue;
                    }
                    // Cut below digit `keep`, then give the result scale.
                    let cut = pow(s - d.value(i).min(s));
                    let cut = v.value(i) / cut * cut;
                    b.append_value(if out_s < s { cut / pow(s - out_s) } else { cut * pow(out_s - s) });
                }
                Arc::new(b.finish().with_precision_and_scale(*p, out_s as i8)?)
            }
            (t, _) if t.is_integer() => {
                let v = datafusion::arrow::compute::cast(x, &DataType::Int64)?;
                let v = v.as_primitive::<Int64Type>();
                let mut b = Int64Builder::with_capacity(v.len());
                for i in 0..v.len() {
                    if v.is_null(i) || d.is_null(i) {
                        b.append_null();
                    } else if d.value(i) >= 0 {
                        b.append_value(v.value(i));
                    } else {
                        let cut = i64::try_from(pow(-d.value(i))).unwrap_or(i64::MAX);
                        b.append_value(v.value(i) / cut * cut);
                    }
                }
                Arc::new(b.finish())
            }
            _ => {
                let v = datafusion::arrow::compute::cast(x, &DataType::Float64)?;
                let v = v.as_primitive::<Float64Type>();
                let out: Float64Array = v
                    .iter()
                    .zip(d.iter())
                    .map(|(v, d)| {
                        let f = 10f64.powi(d?.clamp(-330, 330) as i32);
                        Some((v? * f).trunc() / f)
                    })
                    .collect();
                Arc::new(out)
            }
        };
        Ok(ColumnarValue::Array(out))
    }
}

/// `mysql_fsp(t, p)`: a DATETIME or TIME `t` with its fractional seconds
/// cut to `p` digits (0 to 6), as MySQL's `CAST(x AS DATETIME(p))` and
/// `CAST(x AS TIME(p))` (p 0 when not given) give it: truncated, as
/// MariaDB's default `sql_mode` (without `TIME_ROUND_FRACTIONAL`) has it
/// (MariaDB KB, "SQL_MODE"); a DATETIME towards the earlier second, a
/// TIME towards zero. The result shows `p` digits
/// ([`crate::executor::fsp`]).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MysqlFsp {
    signature: Signature,
}

impl MysqlFsp {
    pub const NAME: &'static str = "mysql_fsp";
    pub fn new() -> Self {
        MysqlFsp { signature: Signature::any(2, Volatility::Immutable) }
    }
}

impl Default for MysqlFsp {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for MysqlFsp {
    fn name(&self) -> &str {
        Self::NAME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(arg_types.first().cloned().unwrap_or(DataType::Null))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        use datafusion::arrow::array::{Time64MicrosecondArray, TimestampMicrosecondArray};
        use datafusion::arrow::datatypes::{Time64MicrosecondType, TimestampMicrosecondType};
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [t, p] = arrays.as_slice() else {
            return exec_err!("mysql_fsp takes a value and a precision");
        };
        let p = datafusion::arrow::compute::cast(p, &DataType::Int64)?;
        let p = p.as_primitive::<Int64Type>();
        let unit = |i: usize| 10i64.pow(6 - p.value(i).clamp(0, 6) as u32);
        let out: ArrayRef = match t.data_type() {
            DataType::Timestamp(TimeUnit::Microsecond, None) => Arc::new(
                t.as_primitive::<TimestampMicrosecondType>()
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v.map(|v| v - v.rem_euclid(unit(i))))
                    .collect::<TimestampMicrosecondArray>(),
            ),
            DataType::Time64(TimeUnit::Microsecond) => Arc::new(
                t.as_primitive::<Time64MicrosecondType>()
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v.map(|v| v - v % unit(i)))
                    .collect::<Time64MicrosecondArray>(),
            ),
            _ => t.clone(),
        };
        Ok(ColumnarValue::Array(out))
    }
}

/// Largest TIME magnitude MySQL has, 838:59:59, in microseconds.
const MAX_TIME_MICROS: i64 = (838 * 3600 + 59 * 60 + 59) * 1_000_000;

/// `timediff(a, b)`: MySQL's `TIMEDIFF(a, b)`, `a - b` as a TIME (Arrow
/// Time64 of microseconds, see `convert::parse_time`), clipped to ±838:59:59
/// (MySQL 8.0 reference, 14.7 "Date and Time Functions"). Both must be
/// DATETIMEs or both TIMEs ([`timediff_operands`]), else it is NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MysqlTimediff {
    signature: Signature,
}

impl MysqlTimediff {
    pub fn new() -> Self {
        MysqlTimediff { signature: Signature::any(2, Volatility::Immutable) }
    }
}

impl Default for MysqlTimediff {
    fn default() -> Self {
        Self::new()
    }
}

/// Each value of `a` as TIMEDIFF reads it: `(true, µs since the epoch)`
/// for a DATETIME, `(false, µs)` for a TIME; `None` for NULL, for a DATE
/// and for a string that is neither (MariaDB: `TIMEDIFF(date_col, …)` and
/// `TIMEDIFF(datetime, '2019-01-01')` are NULL).
fn timediff_operands(a: &ArrayRef) -> Result<Vec<Option<(bool, i64)>>> {
    use datafusion::arrow::datatypes::{Time64MicrosecondType, TimestampMicrosecondType};
    Ok(match a.data_type() {
        DataType::Time64(TimeUnit::Microsecond) => {
            a.as_primitive::<Time64MicrosecondType>().iter().map(|v| v.map(|v| (false, v))).collect()
        }
        DataType::Timestamp(..) => {
            let t = datafusion::arrow::compute::cast(a, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
            t.as_primitive::<TimestampMicrosecondType>().iter().map(|v| v.map(|v| (true, v))).collect()
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let t = crate::collation::functions::utf8(a)?;
            let datetime = |s: &str| {
                let s = s.trim();
                let f = if s.contains('.') { "%Y-%m-%d %H:%M:%S%.f" } else { "%Y-%m-%d %H:%M:%S" };
                chrono::NaiveDateTime::parse_from_str(s, f).ok().map(|d| (true, d.and_utc().timestamp_micros()))
            };
            t.as_string::<i32>()
                .iter()
                .map(|v| {
                    v.and_then(|s| datetime(s).or_else(|| crate::executor::convert::parse_time(s).map(|t| (false, t))))
                })
                .collect()
        }
        _ => vec![None; a.len()],
    })
}

impl ScalarUDFImpl for MysqlTimediff {
    fn name(&self) -> &str {
        "timediff"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Time64(TimeUnit::Microsecond))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [a, b] = arrays.as_slice() else {
            return exec_err!("TIMEDIFF takes two arguments");
        };
        let (a, b) = (timediff_operands(a)?, timediff_operands(b)?);
        let diffs = a.into_iter().zip(b).map(|(x, y)| match (x?, y?) {
            ((p, x), (q, y)) if p == q => Some(x - y),
            _ => None,
        });
        let out: datafusion::arrow::array::Time64MicrosecondArray =
            diffs.map(|d| d.map(|d| d.clamp(-MAX_TIME_MICROS, MAX_TIME_MICROS))).collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// `floor(x)`, `ceil(x)` (also `ceiling`): MySQL's FLOOR and CEILING
/// (MySQL 8.0 reference, 14.6.2): an integer stays an integer, a DECIMAL
/// becomes a DECIMAL of scale 0 (`FLOOR(100.50)` is `100`, where
/// DataFusion's keeps the scale, `100.00`), anything else a DOUBLE.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MysqlFloorCeil {
    ceil: bool,
    signature: Signature,
}

impl MysqlFloorCeil {
    pub fn new(ceil: bool) -> Self {
        MysqlFloorCeil { ceil, signature: Signature::any(1, Volatility::Immutable) }
    }
}

impl ScalarUDFImpl for MysqlFloorCeil {
    fn name(&self) -> &str {
        if self.ceil {
            "ceil"
        } else {
            "floor"
        }
    }
    fn aliases(&self) -> &[String] {
        static CEILING: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
        if self.ceil {
            CEILING.get_or_init(|| vec!["ceiling".to_string()])
        } else {
            &[]
        }
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(match &arg_types[0] {
            DataType::Decimal128(p, s) => {
                DataType::Decimal128((i16::from(*p) - i16::from(*s) + 1).clamp(1, 38) as u8, 0)
            }
            t if integer_like(t) => DataType::Int64,
            _ => DataType::Float64,
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let x = args.args[0].to_array(args.number_rows)?;
        let out: ArrayRef = match (x.data_type(), args.return_field.data_type()) {
            (DataType::Decimal128(_, s), DataType::Decimal128(p, _)) => {
                let unit = 10i128.pow(u32::from(*s as u8));
                let v = x.as_primitive::<Decimal128Type>();
                let whole = |v: i128| {
                    let (q, r) = (v / unit, v % unit);
                    match (self.ceil, r.signum()) {
                        (true, 1) => q + 1,
                        (false, -1) => q - 1,
                        _ => q,
                    }
                };
                Arc::new(v.unary::<_, Decimal128Type>(whole).with_precision_and_scale(*p, 0)?)
            }
            (_, DataType::Int64) => datafusion::arrow::compute::cast(&x, &DataType::Int64)?,
            _ => {
                let v = datafusion::arrow::compute::cast(&x, &DataType::Float64)?;
                let f = if self.ceil { f64::ceil } else { f64::floor };
                Arc::new(v.as_primitive::<Float64Type>().unary::<_, Float64Type>(f))
            }
        };
        Ok(ColumnarValue::Array(out))
    }
}

/// `mysql_fixed_decimals(v, sum)`: `v` (a DOUBLE STDDEV or VARIANCE of some
/// `x`), shown with the decimals MySQL gives it, those of `x` plus 4 for a
/// DECIMAL or integer `x` (MariaDB shows `STDDEV` of a DECIMAL(10,2) as
/// `63.835257`), all digits for a floating-point one (the field's
/// [`crate::executor::convert::DECIMALS_KEY`]). `sum` is `SUM(x)`, whose
/// type carries the scale of `x`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MysqlFixedDecimals {
    signature: Signature,
}

impl MysqlFixedDecimals {
    pub const NAME: &'static str = "mysql_fixed_decimals";

    /// The decimals of the result for `SUM(x)` of type `sum`; `None` for
    /// a floating-point `x`.
    fn decimals(sum: &DataType) -> Option<u8> {
        match sum {
            DataType::Decimal128(_, s) => Some((*s).max(0) as u8 + DIV_PRECISION_INCREMENT as u8),
            t if integer_like(t) => Some(DIV_PRECISION_INCREMENT as u8),
            _ => None,
        }
        .map(|n| n.min(30))
    }

    pub fn new() -> Self {
        MysqlFixedDecimals { signature: Signature::any(2, Volatility::Immutable) }
    }
}

impl Default for MysqlFixedDecimals {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for MysqlFixedDecimals {
    fn name(&self) -> &str {
        Self::NAME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> Result<datafusion::arrow::datatypes::FieldRef> {
        let mut f = datafusion::arrow::datatypes::Field::new(self.name(), DataType::Float64, true);
        if let Some(n) = args.arg_fields.get(1).and_then(|s| Self::decimals(s.data_type())) {
            f = crate::executor::convert::with_decimals(f, n.into());
        }
        Ok(Arc::new(f))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        // Only the display is fixed (the field's metadata): the value is
        // the DOUBLE MySQL computes with.
        let v = args.args[0].to_array(args.number_rows)?;
        Ok(ColumnarValue::Array(datafusion::arrow::compute::cast(&v, &DataType::Float64)?))
    }
}

/// The type a [`ShardFunction`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ShardType {
    Int,
    Str,
    Date,
    /// TIME (microseconds, beyond 24 hours and negative as MySQL allows).
    Time,
    /// A binary string (VARBINARY).
    Bytes,
    /// `FROM_UNIXTIME`: DATETIME, a string with a format argument.
    UnixTime,
    /// `ADDTIME(x, t)`: a DATETIME or TIME as `x` is, else a string.
    SameTime,
    /// DATETIME whatever the arguments (`CONVERT_TZ`, `TIMESTAMP(x)`).
    DateTime,
    /// `STR_TO_DATE`: DATE, TIME or DATETIME by the parts its format
    /// names (MySQL 8.0 reference, 14.7: DATETIME when the format is not a
    /// constant).
    Temporal,
    /// `ADDDATE(d, days)`: a DATE or DATETIME as `d` is, a string for a
    /// string `d` (MySQL 8.0 reference, 14.7, `DATE_ADD`).
    SameTemporal,
    /// `TIMESTAMPADD('unit', n, d)` (the unit a string, as for
    /// `timestampdiff`): as [`ShardType::SameTemporal`] for `d`, except
    /// that a DATE plus hours, minutes, seconds or microseconds is a
    /// DATETIME (MySQL 8.0 reference, 14.7, `DATE_ADD`).
    AddTemporal,
}

/// The units of `TIMESTAMPADD` / `DATE_ADD` that keep a DATE a DATE.
const DATE_UNITS: &[&str] = &["YEAR", "QUARTER", "MONTH", "WEEK", "DAY"];

/// The single units `TIMESTAMPADD` takes (MySQL 8.0 reference, 14.7).
pub const TIMESTAMPADD_UNITS: &[&str] =
    &["YEAR", "QUARTER", "MONTH", "WEEK", "DAY", "HOUR", "MINUTE", "SECOND", "MICROSECOND"];

/// MySQL row functions the CN plans but leaves to the DNs: name, result
/// type, fewest and most arguments (MySQL 8.0 reference, 14.7 "Date and
/// Time Functions", 14.8 "String Functions", 14.6.2 "Mathematical
/// Functions", 14.13 "Encryption and Compression Functions", 14.17 "JSON
/// Functions").
const SHARD_FUNCTIONS: &[(&str, ShardType, usize, usize)] = &[
    ("datediff", ShardType::Int, 2, 2),
    ("timestampdiff", ShardType::Int, 3, 3),
    ("to_days", ShardType::Int, 1, 1),
    ("dayofweek", ShardType::Int, 1, 1),
    ("weekday", ShardType::Int, 1, 1),
    ("dayofyear", ShardType::Int, 1, 1),
    ("week", ShardType::Int, 1, 2),
    ("yearweek", ShardType::Int, 1, 2),
    ("locate", ShardType::Int, 2, 3),
    ("instr", ShardType::Int, 2, 2),
    ("crc32", ShardType::Int, 1, 1),
    ("field", ShardType::Int, 2, usize::MAX),
    ("strcmp", ShardType::Int, 2, 2),
    ("isnull", ShardType::Int, 1, 1),
    ("sign", ShardType::Int, 1, 1),
    ("monthname", ShardType::Str, 1, 1),
    ("dayname", ShardType::Str, 1, 1),
    ("hex", ShardType::Str, 1, 1),
    ("sha1", ShardType::Str, 1, 1),
    ("sha", ShardType::Str, 1, 1),
    ("conv", ShardType::Str, 3, 3),
    ("format", ShardType::Str, 2, 3),
    ("elt", ShardType::Str, 2, usize::MAX),
    ("json_extract", ShardType::Str, 2, usize::MAX),
    ("json_unquote", ShardType::Str, 1, 1),
    ("json_value", ShardType::Str, 2, 2),
    ("json_query", ShardType::Str, 2, 2),
    ("json_type", ShardType::Str, 1, 1),
    ("json_keys", ShardType::Str, 1, 2),
    ("json_search", ShardType::Str, 3, usize::MAX),
    ("json_object", ShardType::Str, 0, usize::MAX),
    ("json_array", ShardType::Str, 0, usize::MAX),
    ("json_set", ShardType::Str, 3, usize::MAX),
    ("json_insert", ShardType::Str, 3, usize::MAX),
    ("json_replace", ShardType::Str, 3, usize::MAX),
    ("json_remove", ShardType::Str, 2, usize::MAX),
    ("json_contains", ShardType::Int, 2, 3),
    ("json_contains_path", ShardType::Int, 3, usize::MAX),
    ("json_length", ShardType::Int, 1, 2),
    ("json_depth", ShardType::Int, 1, 1),
    ("json_valid", ShardType::Int, 1, 1),
    ("bit_count", ShardType::Int, 1, 1),
    ("time_to_sec", ShardType::Int, 1, 1),
    ("period_diff", ShardType::Int, 2, 2),
    ("period_add", ShardType::Int, 2, 2),
    ("inet_aton", ShardType::Int, 1, 1),
    ("regexp_instr", ShardType::Int, 2, 2),
    ("bin", ShardType::Str, 1, 1),
    ("oct", ShardType::Str, 1, 1),
    ("space", ShardType::Str, 1, 1),
    ("quote", ShardType::Str, 1, 1),
    ("insert", ShardType::Str, 4, 4),
    ("make_set", ShardType::Str, 2, usize::MAX),
    ("export_set", ShardType::Str, 3, 5),
    ("soundex", ShardType::Str, 1, 1),
    ("inet_ntoa", ShardType::Str, 1, 1),
    ("to_base64", ShardType::Str, 1, 1),
    ("time_format", ShardType::Str, 2, 2),
    ("regexp_replace", ShardType::Str, 3, 3),
    ("regexp_substr", ShardType::Str, 2, 2),
    ("date", ShardType::Date, 1, 1),
    ("last_day", ShardType::Date, 1, 1),
    ("makedate", ShardType::Date, 2, 2),
    ("from_days", ShardType::Date, 1, 1),
    ("unix_timestamp", ShardType::Int, 0, 1),
    ("from_unixtime", ShardType::UnixTime, 1, 2),
    ("convert_tz", ShardType::DateTime, 3, 3),
    ("timestamp", ShardType::DateTime, 1, 2),
    ("microsecond", ShardType::Int, 1, 1),
    ("to_seconds", ShardType::Int, 1, 1),
    ("ord", ShardType::Int, 1, 1),
    // `INTERVAL(N, N1, …)` ([`crate::planner::extract`] names it).
    ("interval", ShardType::Int, 2, usize::MAX),
    ("addtime", ShardType::SameTime, 2, 2),
    ("subtime", ShardType::SameTime, 2, 2),
    ("sec_to_time", ShardType::Time, 1, 1),
    ("maketime", ShardType::Time, 3, 3),
    ("time", ShardType::Time, 1, 1),
    ("str_to_date", ShardType::Temporal, 2, 2),
    ("adddate", ShardType::SameTemporal, 2, 2),
    ("timestampadd", ShardType::AddTemporal, 3, 3),
    // `EXTRACT(unit FROM x)` of a composite unit, the unit a string
    // ([`crate::planner::extract`]).
    ("cn_extract", ShardType::Int, 2, 2),
    ("unhex", ShardType::Bytes, 1, 1),
    // `CAST(x AS BINARY)` ([`crate::optimizer::semantics`]).
    ("binary", ShardType::Bytes, 1, 1),
    ("char", ShardType::Bytes, 1, usize::MAX),
];

/// The type `STR_TO_DATE` gives for `format`: DATE when it names date
/// parts only, TIME for time parts only, else DATETIME.
fn str_to_date_type(format: &str) -> DataType {
    let (mut date, mut time) = (false, false);
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            continue;
        }
        match chars.next() {
            Some(
                'Y' | 'y' | 'm' | 'c' | 'd' | 'e' | 'j' | 'M' | 'b' | 'D' | 'U' | 'u' | 'V' | 'v' | 'X' | 'x' | 'W'
                | 'a' | 'w',
            ) => date = true,
            Some('H' | 'k' | 'h' | 'I' | 'l' | 'i' | 'S' | 's' | 'f' | 'p' | 'r' | 'T') => time = true,
            _ => {}
        }
    }
    match (date, time) {
        (true, false) => DataType::Date32,
        (false, true) => DataType::Time64(TimeUnit::Microsecond),
        _ => DataType::Timestamp(TimeUnit::Microsecond, None),
    }
}

/// Whether `name` is a [`ShardFunction`].
pub fn is_shard_function(name: &str) -> bool {
    SHARD_FUNCTIONS.iter().any(|(n, ..)| *n == name)
}

/// Whether `name` (lower-case) is a [`ShardFunction`] that answers an
/// integer (MySQL's truth values included: `JSON_CONTAINS`, `ISNULL`).
pub fn is_integer_shard_function(name: &str) -> bool {
    SHARD_FUNCTIONS.iter().any(|(n, t, ..)| *n == name && *t == ShardType::Int)
}

/// A MySQL row function DataFusion does not have (`DATEDIFF`, `WEEK`,
/// `MONTHNAME`, `FIELD`, …, see [`SHARD_FUNCTIONS`]): planned with MySQL's
/// result type so that a statement using it plans at all, and pushed to
/// the shards by name (`pushdown::pushable`), where MariaDB computes it as
/// MySQL does: in a filter, a projection, a GROUP BY key or an aggregate's
/// argument over a pushed fragment. Where the CN itself has to compute it
/// (over a join or an aggregate the CN computes) it does so for
/// `DATEDIFF`, `TIMESTAMPDIFF`, `TO_DAYS`, `DAYOFWEEK`, `WEEKDAY`,
/// `DAYOFYEAR`, `MONTHNAME`, `DAYNAME`, `DATE`, `LAST_DAY`, `FROM_DAYS`,
/// `ISNULL` and `SIGN`; the others it hands to a DN with the values
/// ([`crate::executor::dn_eval`]), or, without a DN to ask, fails with
/// 1235 rather than give another answer than MySQL's.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ShardFunction {
    name: &'static str,
    ty: ShardType,
    args: (usize, usize),
    signature: Signature,
    dn: Option<DnEval>,
    /// `UNIX_TIMESTAMP(x)` of a DATETIME(n), n > 0: a DECIMAL of scale n
    /// ([`crate::executor::fsp::UnixTimestampScale`]).
    scale: Option<u8>,
}

impl ShardFunction {
    /// `func` (`UNIX_TIMESTAMP`) answering a DECIMAL of scale `fsp`, its
    /// argument's fractional seconds precision, when that is 1 to 6 and
    /// `func` does not already; else `None`.
    pub fn with_scale(func: &ScalarUDF, fsp: Option<u8>) -> Option<ScalarUDF> {
        let f = (func.inner().as_ref() as &dyn std::any::Any).downcast_ref::<ShardFunction>()?;
        let n = fsp.filter(|n| (1..=6).contains(n))?;
        (f.name == "unix_timestamp" && f.scale.is_none()).then(|| {
            ScalarUDF::from(ShardFunction {
                name: f.name,
                ty: f.ty,
                args: f.args,
                signature: f.signature.clone(),
                dn: f.dn.clone(),
                scale: Some(n),
            })
        })
    }

    /// Every shard function, for registration; `dn` computes those the CN
    /// has no code for.
    pub fn all(dn: Option<DnEval>) -> impl Iterator<Item = ScalarUDF> {
        SHARD_FUNCTIONS.iter().map(move |&(name, ty, lo, hi)| {
            ScalarUDF::from(ShardFunction {
                name,
                ty,
                args: (lo, hi),
                signature: Signature::variadic_any(Volatility::Immutable),
                dn: dn.clone(),
                scale: None,
            })
        })
    }

    /// The function over `arrays` (`rows` long) computed by a DN, as an
    /// array of its result type `ty`.
    fn on_dn(&self, dn: &DnEval, arrays: &[ArrayRef], rows: usize, ty: &DataType) -> Result<ArrayRef> {
        let external = |e: CnError| datafusion::error::DataFusionError::External(Box::new(e));
        let texts = dn.eval_blocking(self.name, arrays, rows).map_err(external)?;
        let utf8 = |b: &Vec<u8>| String::from_utf8_lossy(b).into_owned();
        let unexpected = |b: &Vec<u8>, what: &str| {
            external(CnError::internal(format!("{}() gave '{}' where {what} was expected", self.name, utf8(b))))
        };
        // A value the DN gave that does not read as `ty`: an error, never
        // another value (MySQL's NULL for a bad date comes as NULL).
        let each = |read: &dyn Fn(&str) -> Option<i64>, what: &str| -> Result<Vec<Option<i64>>> {
            texts
                .iter()
                .map(|v| v.as_ref().map(|b| read(&utf8(b)).ok_or_else(|| unexpected(b, what))).transpose())
                .collect()
        };
        Ok(match ty {
            DataType::Decimal128(p, s) => {
                let read = |b: &Vec<u8>| {
                    crate::executor::convert::parse_decimal(&utf8(b), *s).ok_or_else(|| unexpected(b, "a DECIMAL"))
                };
                let scaled: Vec<Option<i128>> =
                    texts.iter().map(|v| v.as_ref().map(read).transpose()).collect::<Result<_>>()?;
                Arc::new(datafusion::arrow::array::Decimal128Array::from(scaled).with_precision_and_scale(*p, *s)?)
            }
            DataType::Int64 => {
                // UNIX_TIMESTAMP of a value with fractional seconds is a
                // DECIMAL in MySQL, whose scale the plan knows only for a
                // column's ([`crate::executor::fsp::UnixTimestampScale`]).
                if let Some(b) = texts.iter().flatten().find(|b| b.contains(&b'.')) {
                    return Err(external(CnError::unsupported(format!(
                        "{}() giving '{}' (a fraction) in a statement the CN computes across shards",
                        self.name.to_ascii_uppercase(),
                        utf8(b)
                    ))));
                }
                Arc::new(Int64Array::from(each(&|t| t.parse().ok(), "an integer")?))
            }
            DataType::Date32 => Arc::new(Date32Array::from(
                each(&|t| crate::executor::convert::parse_date(t).map(i64::from), "a DATE")?
                    .into_iter()
                    .map(|v| v.map(|d| d as i32))
                    .collect::<Vec<_>>(),
            )),
            DataType::Timestamp(TimeUnit::Microsecond, None) => {
                Arc::new(datafusion::arrow::array::TimestampMicrosecondArray::from(each(
                    &crate::executor::convert::parse_datetime,
                    "a DATETIME",
                )?))
            }
            DataType::Time64(TimeUnit::Microsecond) => {
                Arc::new(datafusion::arrow::array::Time64MicrosecondArray::from(each(
                    &crate::executor::convert::parse_time,
                    "a TIME",
                )?))
            }
            DataType::Binary => {
                Arc::new(texts.iter().map(|v| v.as_deref()).collect::<datafusion::arrow::array::BinaryArray>())
            }
            _ => Arc::new(texts.iter().map(|v| v.as_ref().map(utf8)).collect::<StringArray>()),
        })
    }

    /// The result type for arguments of types `types`, with `strings`
    /// their values where they are constant strings (`STR_TO_DATE`'s
    /// format, `TIMESTAMPADD`'s unit).
    fn result_type(&self, types: &[&DataType], strings: &[Option<&str>]) -> Result<DataType> {
        let args = types.len();
        let first = types.first().copied();
        let format = strings.get(1).copied().flatten();
        let (lo, hi) = self.args;
        if args < lo || args > hi {
            return datafusion::common::plan_err!(
                "Incorrect parameter count in the call to native function '{}'",
                self.name.to_ascii_uppercase()
            );
        }
        if let Some(n) = self.scale {
            return Ok(DataType::Decimal128(18, n as i8));
        }
        Ok(match self.ty {
            ShardType::Int => DataType::Int64,
            ShardType::Str => DataType::Utf8,
            ShardType::Date => DataType::Date32,
            ShardType::Time => DataType::Time64(TimeUnit::Microsecond),
            ShardType::Bytes => DataType::Binary,
            ShardType::UnixTime if args == 2 => DataType::Utf8,
            ShardType::UnixTime | ShardType::DateTime => DataType::Timestamp(TimeUnit::Microsecond, None),
            ShardType::Temporal => format.map_or(DataType::Timestamp(TimeUnit::Microsecond, None), str_to_date_type),
            ShardType::SameTime => match first {
                Some(DataType::Timestamp(..)) => DataType::Timestamp(TimeUnit::Microsecond, None),
                Some(DataType::Time64(_)) => DataType::Time64(TimeUnit::Microsecond),
                _ => DataType::Utf8,
            },
            ShardType::SameTemporal => match first {
                Some(DataType::Date32) => DataType::Date32,
                Some(DataType::Timestamp(..)) => DataType::Timestamp(TimeUnit::Microsecond, None),
                _ => DataType::Utf8,
            },
            ShardType::AddTemporal => {
                let unit = strings.first().copied().flatten().map(str::to_ascii_uppercase);
                match (types.get(2), unit) {
                    (Some(DataType::Date32), Some(u)) if DATE_UNITS.contains(&u.as_str()) => DataType::Date32,
                    (Some(DataType::Date32 | DataType::Timestamp(..)), Some(_)) => {
                        DataType::Timestamp(TimeUnit::Microsecond, None)
                    }
                    (Some(DataType::Date32 | DataType::Timestamp(..)), None) => {
                        return datafusion::common::plan_err!("TIMESTAMPADD with a unit that is not a constant")
                    }
                    _ => DataType::Utf8,
                }
            }
        })
    }
}

impl ScalarUDFImpl for ShardFunction {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.result_type(&arg_types.iter().collect::<Vec<_>>(), &[])
    }
    fn return_field_from_args(
        &self,
        args: datafusion::logical_expr::ReturnFieldArgs,
    ) -> Result<datafusion::arrow::datatypes::FieldRef> {
        let strings: Vec<Option<&str>> = args
            .scalar_arguments
            .iter()
            .map(|a| match a {
                Some(
                    datafusion::common::ScalarValue::Utf8(Some(f))
                    | datafusion::common::ScalarValue::LargeUtf8(Some(f))
                    | datafusion::common::ScalarValue::Utf8View(Some(f)),
                ) => Some(f.as_str()),
                _ => None,
            })
            .collect();
        let types: Vec<&DataType> = args.arg_fields.iter().map(|f| f.data_type()).collect();
        let ty = self.result_type(&types, &strings)?;
        Ok(Arc::new(datafusion::arrow::datatypes::Field::new(self.name, ty, true)))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let ints = |v: Vec<Option<i64>>| -> ArrayRef { Arc::new(Int64Array::from(v)) };
        let names = |v: Vec<Option<&str>>| -> ArrayRef { Arc::new(StringArray::from(v)) };
        let days = |v: Vec<Option<chrono::NaiveDate>>| -> ArrayRef {
            Arc::new(v.into_iter().map(|d| d.map(Date32Type::from_naive_date)).collect::<Date32Array>())
        };
        let out = match (self.name, arrays.as_slice()) {
            ("field", [x, list @ ..]) => ints(field(x, list)?),
            ("isnull", [a]) => ints((0..a.len()).map(|i| Some(i64::from(a.is_null(i)))).collect()),
            ("sign", [a]) => {
                let f = datafusion::arrow::compute::cast(a, &DataType::Float64)?;
                ints(f.as_primitive::<Float64Type>().iter().map(|v| v.map(sign)).collect())
            }
            ("datediff", [a, b]) => {
                let (a, b) = (dates(a)?, dates(b)?);
                ints(a.into_iter().zip(b).map(|(x, y)| Some((x? - y?).num_days())).collect())
            }
            ("timestampdiff", [u, a, b]) => {
                let (a, b) = (datetimes(a)?, datetimes(b)?);
                let u = datafusion::arrow::compute::cast(u, &DataType::Utf8)?;
                let u = u.as_string::<i32>();
                let unit = |i: usize| u.is_valid(i).then(|| u.value(i));
                ints((0..a.len()).map(|i| timestampdiff(unit(i)?, a[i]?, b[i]?)).collect())
            }
            ("to_days", [a]) => ints(per_date(a, |d| Some(to_days(d)))?),
            ("dayofweek", [a]) => ints(per_date(a, |d| Some(i64::from(d.weekday().num_days_from_sunday()) + 1))?),
            ("weekday", [a]) => ints(per_date(a, |d| Some(i64::from(d.weekday().num_days_from_monday())))?),
            ("dayofyear", [a]) => ints(per_date(a, |d| Some(i64::from(d.ordinal())))?),
            ("monthname", [a]) => names(per_date(a, |d| Some(MONTH_NAMES[d.month0() as usize]))?),
            ("dayname", [a]) => names(per_date(a, |d| Some(DAY_NAMES[d.weekday().num_days_from_monday() as usize]))?),
            // DATE of the zero date is the zero date.
            ("date", [a]) => {
                let zeros = crate::executor::convert::zero_temporals(a.as_ref()).unwrap_or_default();
                let zero = |i: usize| zeros.get(i) == Some(&true);
                let d = dates(a)?.into_iter().enumerate();
                let v = d.map(|(i, d)| if zero(i) { Some(ZERO_DATE_DAYS) } else { d.map(Date32Type::from_naive_date) });
                Arc::new(v.collect::<Date32Array>())
            }
            ("last_day", [a]) => days(per_date(a, last_day)?),
            ("from_days", [a]) => {
                let n = datafusion::arrow::compute::cast(a, &DataType::Int64)?;
                days(n.as_primitive::<Int64Type>().iter().map(|v| from_days(v?)).collect())
            }
            (_, arrays) if self.dn.is_some() => {
                let rows = args.number_rows;
                self.on_dn(self.dn.as_ref().expect("checked"), arrays, rows, args.return_field.data_type())?
            }
            _ => {
                return datafusion::common::not_impl_err!(
                    "{}() over what the CN computes itself \
                     (the data nodes compute it where it applies to a table's columns)",
                    self.name.to_ascii_uppercase()
                )
            }
        };
        Ok(ColumnarValue::Array(out))
    }
}

/// MySQL's `FIELD(x, a, b, …)`: the position of the first argument equal
/// to `x`, 0 for none or a NULL `x`. Strings compare under
/// `utf8mb4_general_ci` when all arguments are strings, else all compare
/// as numbers (MySQL 8.0 reference, 14.8 "String Functions").
fn field(x: &ArrayRef, list: &[ArrayRef]) -> Result<Vec<Option<i64>>> {
    let is_str = |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    let n = x.len();
    if is_str(x.data_type()) && list.iter().all(|a| is_str(a.data_type())) {
        let x = crate::collation::functions::utf8(x)?;
        let list = list.iter().map(crate::collation::functions::utf8).collect::<Result<Vec<_>>>()?;
        let (x, list) = (x.as_string::<i32>(), list.iter().map(|a| a.as_string::<i32>()).collect::<Vec<_>>());
        return Ok((0..n)
            .map(|i| {
                let hit = x.is_valid(i).then(|| {
                    list.iter().position(|a| a.is_valid(i) && crate::collation::compare(x.value(i), a.value(i)).is_eq())
                });
                Some(hit.flatten().map_or(0, |p| p as i64 + 1))
            })
            .collect());
    }
    let safe = datafusion::arrow::compute::CastOptions { safe: true, ..Default::default() };
    let num = |a: &ArrayRef| datafusion::arrow::compute::cast_with_options(a, &DataType::Float64, &safe);
    let x = num(x)?;
    let list = list.iter().map(num).collect::<Result<Vec<_>, _>>()?;
    let (x, list) =
        (x.as_primitive::<Float64Type>(), list.iter().map(|a| a.as_primitive::<Float64Type>()).collect::<Vec<_>>());
    Ok((0..n)
        .map(|i| {
            let hit = x.is_valid(i).then(|| list.iter().position(|a| a.is_valid(i) && a.value(i) == x.value(i)));
            Some(hit.flatten().map_or(0, |p| p as i64 + 1))
        })
        .collect())
}

/// MySQL's `SIGN(x)`: -1, 0 or 1.
fn sign(x: f64) -> i64 {
    if x > 0.0 {
        1
    } else if x < 0.0 {
        -1
    } else {
        0
    }
}

/// MySQL's `TO_DAYS(d)`: days since year 0 (`TO_DAYS('2007-10-07')` is
/// 733321; MySQL's calc_daynr counts 365 days for year 0).
pub(crate) fn to_days(d: chrono::NaiveDate) -> i64 {
    i64::from(d.num_days_from_ce()) + 365
}

/// MySQL's `FROM_DAYS(n)`, the inverse of [`to_days`]; `None` for days 0-365
/// (MySQL's '0000-00-00') and beyond chrono's range.
fn from_days(n: i64) -> Option<chrono::NaiveDate> {
    let n = i32::try_from(n).ok().filter(|n| *n > 365)?;
    chrono::NaiveDate::from_num_days_from_ce_opt(n - 365)
}

/// MySQL's month and day names (`lc_time_names = en_US`).
pub(crate) const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
pub(crate) const DAY_NAMES: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// `f` of each date of `a` ([`dates`]); NULL where there is none or `f`
/// gives none.
fn per_date<T>(a: &ArrayRef, f: impl Fn(chrono::NaiveDate) -> Option<T>) -> Result<Vec<Option<T>>> {
    Ok(dates(a)?.into_iter().map(|d| d.and_then(&f)).collect())
}

/// The dates of `a` (a DATE, a DATETIME's date, a string read as either;
/// NULL for what is none, as MySQL gives NULL for a string that is no date).
fn dates(a: &ArrayRef) -> Result<Vec<Option<chrono::NaiveDate>>> {
    let safe = datafusion::arrow::compute::CastOptions { safe: true, ..Default::default() };
    let d = datafusion::arrow::compute::cast_with_options(a, &DataType::Date32, &safe)?;
    // The zero date is no date to these functions: NULL, as in MySQL.
    let real = |v: i32| (v != ZERO_DATE_DAYS).then_some(v);
    Ok(d.as_primitive::<Date32Type>()
        .iter()
        .map(|v| v.and_then(real).and_then(Date32Type::to_naive_date_opt))
        .collect())
}

/// The units `TIMESTAMPDIFF` takes (MySQL 8.0 reference, 14.7).
pub const TIMESTAMPDIFF_UNITS: &[&str] =
    &["MICROSECOND", "SECOND", "MINUTE", "HOUR", "DAY", "WEEK", "MONTH", "QUARTER", "YEAR"];

/// The datetimes of `a` (a DATE at midnight, a DATETIME, a string read as
/// either; NULL for what is none).
fn datetimes(a: &ArrayRef) -> Result<Vec<Option<chrono::NaiveDateTime>>> {
    let safe = datafusion::arrow::compute::CastOptions { safe: true, ..Default::default() };
    let t = datafusion::arrow::compute::cast_with_options(a, &DataType::Timestamp(TimeUnit::Microsecond, None), &safe)?;
    Ok(t.as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>()
        .iter()
        .map(|v| v.filter(|v| *v != crate::executor::convert::ZERO_DATETIME_MICROS))
        .map(|v| v.and_then(|v| chrono::DateTime::from_timestamp_micros(v).map(|d| d.naive_utc())))
        .collect())
}

/// MySQL's `TIMESTAMPDIFF(unit, a, b)`: whole units from `a` to `b`,
/// truncated toward zero; months (and quarters, years) count only when
/// the later value's day and time reach the earlier's (`'2020-01-31'` to
/// `'2020-02-29'` is 0 months). `None` for an unknown unit.
fn timestampdiff(unit: &str, a: chrono::NaiveDateTime, b: chrono::NaiveDateTime) -> Option<i64> {
    use chrono::Timelike;
    let micros = (b - a).num_microseconds()?;
    let months = || {
        let (x, y, sign) = if b >= a { (a, b, 1) } else { (b, a, -1) };
        let mut m = i64::from(y.year() - x.year()) * 12 + i64::from(y.month()) - i64::from(x.month());
        let rest = |t: chrono::NaiveDateTime| (t.day(), t.num_seconds_from_midnight(), t.nanosecond());
        if rest(y) < rest(x) {
            m -= 1;
        }
        sign * m
    };
    Some(match unit.to_ascii_uppercase().as_str() {
        "MICROSECOND" => micros,
        "SECOND" => micros / 1_000_000,
        "MINUTE" => micros / 60_000_000,
        "HOUR" => micros / 3_600_000_000,
        "DAY" => micros / 86_400_000_000,
        "WEEK" => micros / (7 * 86_400_000_000),
        "MONTH" => months(),
        "QUARTER" => months() / 3,
        "YEAR" => months() / 12,
        _ => return None,
    })
}

/// The last day of `d`'s month.
fn last_day(d: chrono::NaiveDate) -> Option<chrono::NaiveDate> {
    let (y, m) = if d.month() == 12 { (d.year() + 1, 1) } else { (d.year(), d.month() + 1) };
    chrono::NaiveDate::from_ymd_opt(y, m, 1)?.pred_opt()
}

#[cfg(test)]
mod date_tests {
    use super::*;

    #[test]
    fn json_strings_escape_as_mariadb_shows_them() {
        assert_eq!(json_string("a\"b\n"), r#""a\"b\n""#);
        assert_eq!(json_string("c:\\d\t\u{1}"), r#""c:\\d\t\u0001""#);
        assert_eq!(json_string("é"), "\"é\"");
    }

    #[test]
    fn timestampdiff_counts_whole_units_as_mysql() {
        let t = |s: &str| {
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap_or_else(|_| {
                chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap().and_hms_opt(0, 0, 0).unwrap()
            })
        };
        // Values from MySQL 8.0 / MariaDB 10.11.
        for (unit, a, b, want) in [
            ("MONTH", "2020-01-31", "2020-02-29", 0),
            ("MONTH", "2020-01-31", "2020-03-31", 2),
            ("MONTH", "2020-03-31", "2020-01-31", -2),
            ("MONTH", "2020-02-29", "2020-01-31", 0),
            ("MONTH", "2020-01-15 10:00:00", "2020-02-15 09:59:59", 0),
            ("YEAR", "1996-02-29", "2000-02-28", 3),
            ("QUARTER", "2000-01-01", "2000-12-31", 3),
            ("WEEK", "2000-01-01", "2000-01-14", 1),
            ("DAY", "2000-01-02", "2000-01-01 12:00:00", 0),
            ("DAY", "2000-01-02", "2000-01-01", -1),
            ("HOUR", "2000-01-01", "2000-01-02 01:30:00", 25),
        ] {
            assert_eq!(timestampdiff(unit, t(a), t(b)), Some(want), "TIMESTAMPDIFF({unit}, {a}, {b})");
        }
        assert_eq!(timestampdiff("FORTNIGHT", t("2000-01-01"), t("2000-01-02")), None);
    }

    #[test]
    fn to_days_and_from_days_are_mysqls() {
        // MySQL: TO_DAYS('2007-10-07') = 733321; FROM_DAYS(730669) = '2000-07-03'.
        assert_eq!(to_days(chrono::NaiveDate::from_ymd_opt(2007, 10, 7).unwrap()), 733_321);
        assert_eq!(from_days(730_669), chrono::NaiveDate::from_ymd_opt(2000, 7, 3));
        assert_eq!(from_days(365), None);
        assert_eq!(sign(-0.5), -1);
        assert_eq!(sign(0.0), 0);
    }
}
