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

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Builder, Float64Array};
use datafusion::arrow::datatypes::{i256, DataType, Decimal128Type, Float64Type};
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
pub fn all() -> Vec<ScalarUDF> {
    vec![ScalarUDF::from(MysqlDiv::new())]
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

fn exact(t: &DataType) -> bool {
    t.is_integer() || matches!(t, DataType::Decimal128(..) | DataType::Null | DataType::Boolean)
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
            Ok(arg_types
                .iter()
                .map(|t| match t {
                    DataType::Decimal128(..) => t.clone(),
                    _ => DataType::Decimal128(INT_DIGITS, 0),
                })
                .collect())
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

#[cfg(test)]
mod tests {
    use super::*;

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
