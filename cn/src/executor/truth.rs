//! MySQL's conversions of any value to a truth value and of a string to a
//! number, where the CN computes (MySQL 8.0 reference, 14.4.3 "Logical
//! Operators": any nonzero, non-NULL value is true; 14.3 "Type Conversion
//! in Expression Evaluation": a string in numeric context is the number
//! its longest numeric prefix reads as, 0 when there is none).
//!
//! - [`Conversion::Truth`] (`__cn_truth(x)`): a condition that is not a boolean
//!   expression (`WHERE flag`, `NOT g - 1`, `g AND x`, `a XOR b`), which
//!   DataFusion refuses, is wrapped in it by
//!   [`crate::optimizer::semantics`]; on a shard it is `(x) <> 0`.
//! - [`Conversion::ToDouble`] (`__cn_to_double(x)`): a string compared with or
//!   computed with a number (`s = 0`, `'3' * g`), which Arrow's cast
//!   refused for `'abc'`; on a shard it is `(x) + 0e0`.
//! - [`Conversion::TemporalNumber`] (`__cn_temporal_number(d)`): a DATE, DATETIME
//!   or TIME in arithmetic, `YYYYMMDD[HHMMSS]` or `HHMMSS`; on a shard
//!   `(d) + 0`.
//! - [`Conversion::Number`] (`__cn_num(x)`): the parser's mark on an
//!   arithmetic operand, which the analyzer replaces by one of the above
//!   or takes off.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use std::sync::Arc;

/// The number MySQL reads a string as: its longest prefix of the form
/// `[spaces][+|-]digits[.digits][e[+|-]digits]` (at least one digit
/// before or after the point), 0 when there is none (`'abc'`, `''`,
/// `'0x10'` is 0). Infinite for a prefix beyond DOUBLE's range, as Rust
/// parses it (MySQL clips it to the largest DOUBLE with a warning).
pub fn str_to_f64(s: &str) -> f64 {
    number_prefix(s, true, true).map_or(0.0, |n| n.parse().unwrap_or(0.0))
}

/// The number a string starts with, as text: `[+|-]digits`, with
/// `fraction` also `[.digits]`; `"0"` when there is none. Leading spaces
/// are skipped.
pub fn numeric_prefix(s: &str, fraction: bool) -> &str {
    number_prefix(s, fraction, false).unwrap_or("0")
}

/// The longest prefix of `s` after leading spaces (space, tab, newline,
/// carriage return) that reads as `[+|-]digits`, with `fraction`
/// `[.digits]` too (a digit before or after the point), with `exponent`
/// `[e[+|-]digits]` too (only when digits follow the `e`); `None` without
/// a digit.
fn number_prefix(s: &str, fraction: bool, exponent: bool) -> Option<&str> {
    let s = s.trim_start_matches([' ', '\t', '\n', '\r']);
    let b = s.as_bytes();
    let digits = |i: &mut usize| {
        let from = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - from
    };
    let mut i = usize::from(!b.is_empty() && (b[0] == b'+' || b[0] == b'-'));
    let mut n = digits(&mut i);
    if fraction && i < b.len() && b[i] == b'.' {
        let mut j = i + 1;
        let frac = digits(&mut j);
        if n + frac > 0 {
            i = j;
            n += frac;
        }
    }
    if n == 0 {
        return None;
    }
    if exponent && i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        if digits(&mut j) > 0 {
            i = j;
        }
    }
    Some(&s[..i])
}

/// The values of `a` as MySQL's DOUBLEs: strings by [`str_to_f64`],
/// anything else by Arrow's cast (numbers, booleans as 1 / 0, NULLs).
fn as_doubles(a: &ArrayRef) -> Result<Float64Array> {
    let strings = |it: &mut dyn Iterator<Item = Option<&str>>| it.map(|v| v.map(str_to_f64)).collect();
    Ok(match a.data_type() {
        DataType::Utf8 => strings(&mut a.as_string::<i32>().iter()),
        DataType::LargeUtf8 => strings(&mut a.as_string::<i64>().iter()),
        DataType::Utf8View => strings(&mut a.as_string_view().iter()),
        DataType::Binary => {
            a.as_binary::<i32>().iter().map(|v| v.map(|b| str_to_f64(&String::from_utf8_lossy(b)))).collect()
        }
        _ => datafusion::arrow::compute::cast(a, &DataType::Float64)?.as_primitive::<Float64Type>().clone(),
    })
}

/// The CN's one-argument MySQL conversions, each planned as a function
/// of its own name (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Conversion {
    /// `__cn_truth(x)`: MySQL's truth value of `x` as a boolean (NULL
    /// stays NULL): a boolean as it is, a number or string when it is not
    /// 0 (a string by its numeric prefix, [`str_to_f64`]), a DATE or
    /// DATETIME always (the CN holds no zero dates), a TIME when it is not
    /// 00:00:00.
    Truth,
    /// `__cn_to_double(x)`: `x` as MySQL's DOUBLE in numeric context (a
    /// string by its numeric prefix, [`str_to_f64`]).
    ToDouble,
    /// `__cn_temporal_number(d)`: a DATE, DATETIME or TIME in numeric
    /// context, MySQL's `YYYYMMDD`, `YYYYMMDDHHMMSS` or `HHMMSS` as a
    /// BIGINT (`d + 0`).
    TemporalNumber,
    /// `__cn_num(x)`: an operand of `+`, `-`, `*` or `%` as the statement
    /// is parsed, before its type is known: a string is MySQL's DOUBLE of
    /// it ([`str_to_f64`]), a truth value 1 or 0 (`(x > 0) + 1`), a date or
    /// time its number, anything else itself. It lets DataFusion plan
    /// `s + 1` at all; the analyzer ([`crate::optimizer::coercion`]) then
    /// replaces it by [`Conversion::ToDouble`],
    /// [`Conversion::TemporalNumber`] or its argument.
    Number,
    /// `__cn_integer_prefix(s)`: the text of the integer a string starts
    /// with (`[spaces][+|-]digits`), `0` when there is none: what
    /// `CAST(s AS SIGNED)` reads (`'12abc'` is 12, `'1.9'` is 1, `'x'` is
    /// 0), where Arrow's cast refused. On a shard it is `s` (the CAST
    /// around it reads the string itself).
    IntegerPrefix,
    /// `__cn_decimal_prefix(s)`: likewise `[spaces][+|-]digits[.digits]`,
    /// what `CAST(s AS DECIMAL)` reads.
    DecimalPrefix,
}

impl Conversion {
    /// Every conversion, for registration.
    pub const ALL: [Conversion; 6] = [
        Conversion::Truth,
        Conversion::ToDouble,
        Conversion::TemporalNumber,
        Conversion::Number,
        Conversion::IntegerPrefix,
        Conversion::DecimalPrefix,
    ];

    /// The function's name.
    pub const fn name(self) -> &'static str {
        match self {
            Conversion::Truth => "__cn_truth",
            Conversion::ToDouble => "__cn_to_double",
            Conversion::TemporalNumber => "__cn_temporal_number",
            Conversion::Number => "__cn_num",
            Conversion::IntegerPrefix => "__cn_integer_prefix",
            Conversion::DecimalPrefix => "__cn_decimal_prefix",
        }
    }

    /// The conversion a function name stands for.
    pub fn of(name: &str) -> Option<Conversion> {
        Conversion::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The function, for registration.
    pub fn udf(self) -> ScalarUDF {
        ScalarUDF::from(ConversionUdf { kind: self, signature: Signature::any(1, Volatility::Immutable) })
    }

    /// The function applied to `x`.
    pub fn call(self, x: Expr) -> Expr {
        self.udf().call(vec![x])
    }
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn is_temporal(t: &DataType) -> bool {
    matches!(t, DataType::Date32 | DataType::Timestamp(..) | DataType::Time64(_))
}

/// MySQL's truth values of `a` (see [`Conversion::Truth`]).
fn truth_values(a: &ArrayRef) -> Result<BooleanArray> {
    Ok(match a.data_type() {
        DataType::Boolean => a.as_boolean().clone(),
        DataType::Null => (0..a.len()).map(|_| None::<bool>).collect(),
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(..) => {
            (0..a.len()).map(|i| a.is_valid(i).then_some(true)).collect()
        }
        DataType::Time64(_) | DataType::Time32(_) => {
            let n = datafusion::arrow::compute::cast(a, &DataType::Int64)?;
            n.as_primitive::<datafusion::arrow::datatypes::Int64Type>().iter().map(|v| v.map(|v| v != 0)).collect()
        }
        t if t.is_numeric() || is_string(t) || *t == DataType::Binary => {
            as_doubles(a)?.iter().map(|v| v.map(|v| v != 0.0)).collect()
        }
        other => return exec_err!("a value of type {other} has no truth value"),
    })
}

/// One [`Conversion`] as a DataFusion function.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ConversionUdf {
    kind: Conversion,
    signature: Signature,
}

impl ScalarUDFImpl for ConversionUdf {
    fn name(&self) -> &str {
        self.kind.name()
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let [t] = arg_types else {
            return exec_err!("{} takes one argument", self.kind.name());
        };
        Ok(match self.kind {
            Conversion::Truth => DataType::Boolean,
            Conversion::ToDouble => DataType::Float64,
            Conversion::TemporalNumber => DataType::Int64,
            Conversion::Number if is_string(t) => DataType::Float64,
            Conversion::Number if is_temporal(t) || *t == DataType::Boolean => DataType::Int64,
            Conversion::Number => t.clone(),
            Conversion::IntegerPrefix | Conversion::DecimalPrefix => DataType::Utf8,
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [a] = arrays.as_slice() else {
            return exec_err!("{} takes one argument", self.kind.name());
        };
        let out: ArrayRef = match self.kind {
            Conversion::Truth => Arc::new(truth_values(a)?),
            Conversion::ToDouble => Arc::new(as_doubles(a)?),
            Conversion::TemporalNumber => temporal_numbers(a)?,
            Conversion::Number if is_string(a.data_type()) => Arc::new(as_doubles(a)?),
            Conversion::Number if is_temporal(a.data_type()) => temporal_numbers(a)?,
            Conversion::Number if a.data_type() == &DataType::Boolean => {
                datafusion::arrow::compute::cast(a, &DataType::Int64)?
            }
            Conversion::Number => a.clone(),
            Conversion::IntegerPrefix | Conversion::DecimalPrefix => {
                let fraction = self.kind == Conversion::DecimalPrefix;
                let t = datafusion::arrow::compute::cast(a, &DataType::Utf8)?;
                Arc::new(
                    t.as_string::<i32>()
                        .iter()
                        .map(|v| v.map(|s| numeric_prefix(s, fraction)))
                        .collect::<datafusion::arrow::array::StringArray>(),
                )
            }
        };
        Ok(ColumnarValue::Array(out))
    }
}

/// MySQL's numbers of dates and times: a DATE `YYYYMMDD`, a DATETIME
/// `YYYYMMDDHHMMSS`, a TIME `[-]HHMMSS` (fractions of a second dropped).
pub(crate) fn temporal_numbers(a: &ArrayRef) -> Result<ArrayRef> {
    use crate::executor::convert::{ZERO_DATETIME_MICROS, ZERO_DATE_DAYS};
    use chrono::{Datelike, Timelike};
    use datafusion::arrow::datatypes::{Date32Type, TimeUnit, TimestampMicrosecondType};
    let ymd = |d: chrono::NaiveDate| i64::from(d.year()) * 10_000 + i64::from(d.month()) * 100 + i64::from(d.day());
    // The zero date and datetime are the number 0.
    let out: datafusion::arrow::array::Int64Array = match a.data_type() {
        DataType::Date32 => a
            .as_primitive::<Date32Type>()
            .iter()
            .map(|v| if v? == ZERO_DATE_DAYS { Some(0) } else { Some(ymd(Date32Type::to_naive_date_opt(v?)?)) })
            .collect(),
        DataType::Timestamp(..) => {
            let t = datafusion::arrow::compute::cast(a, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
            t.as_primitive::<TimestampMicrosecondType>()
                .iter()
                .map(|v| {
                    if v? == ZERO_DATETIME_MICROS {
                        return Some(0);
                    }
                    let t = chrono::DateTime::from_timestamp_micros(v?)?.naive_utc();
                    let hms = i64::from(t.hour()) * 10_000 + i64::from(t.minute()) * 100 + i64::from(t.second());
                    Some(ymd(t.date()) * 1_000_000 + hms)
                })
                .collect()
        }
        DataType::Time64(_) => {
            let t = datafusion::arrow::compute::cast(a, &DataType::Time64(TimeUnit::Microsecond))?;
            t.as_primitive::<datafusion::arrow::datatypes::Time64MicrosecondType>()
                .iter()
                .map(|v| {
                    // The CN's TIME is a signed duration in microseconds.
                    let secs = v? / 1_000_000;
                    let (sign, s) = (secs.signum(), secs.abs());
                    Some(sign * ((s / 3600) * 10_000 + (s / 60 % 60) * 100 + s % 60))
                })
                .collect()
        }
        other => return exec_err!("{other} has no MySQL number"),
    };
    Ok(Arc::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_read_as_their_numeric_prefix() {
        // As `SELECT '<s>' + 0e0` answers on MariaDB 10.11.
        for (s, v) in [
            ("12", 12.0),
            ("  -3.5abc", -3.5),
            ("abc", 0.0),
            ("", 0.0),
            ("0x10", 0.0),
            (".5", 0.5),
            ("5.", 5.0),
            ("1e3", 1000.0),
            ("1e", 1.0),
            ("1e+", 1.0),
            ("2E-2x", 0.02),
            ("+7", 7.0),
            ("-", 0.0),
            (".", 0.0),
            ("1.2.3", 1.2),
        ] {
            assert_eq!(str_to_f64(s), v, "{s:?}");
        }
    }

    #[test]
    fn numeric_prefixes_are_what_cast_reads() {
        for (s, int, dec) in [
            ("12abc", "12", "12"),
            ("  -1.9x", "-1", "-1.9"),
            (".5", "0", ".5"),
            ("1e3", "1", "1"),
            ("abc", "0", "0"),
            ("-", "0", "0"),
            ("+7.", "+7", "+7."),
        ] {
            assert_eq!((numeric_prefix(s, false), numeric_prefix(s, true)), (int, dec), "{s:?}");
        }
    }
}
