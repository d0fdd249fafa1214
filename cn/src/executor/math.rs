//! MySQL's floating-point math functions where the CN computes them: the
//! logarithms, SQRT, ACOS, ASIN, ATAN, COT, EXP and POW, in place of
//! DataFusion's functions of the same names.
//!
//! DataFusion's give NaN or ±infinity outside a function's domain
//! (`LN(-1)` was `nan`, `LOG2(0)` `-inf`, `EXP(1000)` `inf`) or fail
//! (`SQRT` of a negative DECIMAL: "cannot take square root of a negative
//! number"). MariaDB (`sql/item_func.cc`) computes each in DOUBLE, and:
//! - an argument outside the domain gives NULL: `LN`, `LOG`, `LOG2`,
//!   `LOG10` of x ≤ 0, `LOG(b, x)` of a base ≤ 0 or 1, `SQRT` of x < 0,
//!   `ACOS` and `ASIN` beyond ±1;
//! - a result that is not a finite number is error 1690 (`EXP`, `POW`,
//!   `COT`: its `check_float_overflow`), as `POW(-8, 0.5)` and `COT(0)` are;
//! - `ATAN(y, x)` is `ATAN2(y, x)` (DataFusion's ATAN takes one argument);
//! - `LOG2(x)` is `log(x) / M_LN2` and `LOG(b, x)` is `log(x) / log(b)`,
//!   whose last bit can differ from a direct base-2 logarithm's
//!   (`LOG2(3)`: 1.5849625007211563, where `log2` gives …156).

use crate::error::{code, CnError};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{exec_err, Result};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

/// One of the functions: its name, aliases, arity and value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Function {
    Ln,
    Log,
    Log2,
    Log10,
    Sqrt,
    Acos,
    Asin,
    Exp,
    Power,
    Cot,
    Atan,
}

impl Function {
    const ALL: [Function; 11] = [
        Function::Ln,
        Function::Log,
        Function::Log2,
        Function::Log10,
        Function::Sqrt,
        Function::Acos,
        Function::Asin,
        Function::Exp,
        Function::Power,
        Function::Cot,
        Function::Atan,
    ];

    /// DataFusion's name of the function, which this one replaces.
    fn name(self) -> &'static str {
        match self {
            Function::Ln => "ln",
            Function::Log => "log",
            Function::Log2 => "log2",
            Function::Log10 => "log10",
            Function::Sqrt => "sqrt",
            Function::Acos => "acos",
            Function::Asin => "asin",
            Function::Exp => "exp",
            Function::Power => "power",
            Function::Cot => "cot",
            Function::Atan => "atan",
        }
    }

    /// MariaDB's value of the function of `args` (one, or two for `LOG`
    /// with a base and for `POW`): `Ok(None)` for NULL, error 1690 for an
    /// overflow.
    fn eval(self, args: &[f64]) -> Result<Option<f64>> {
        let x = args[0];
        let within = |ok: bool, v: f64| if ok { Some(v) } else { None };
        Ok(match (self, args) {
            (Function::Ln, _) => within(x > 0.0, x.ln()),
            // DataFusion's one-argument LOG is base 10 (MySQL's LOG(x) is
            // rewritten to LN before it gets here); LOG(b, x) is the base first.
            (Function::Log, [_]) => within(x > 0.0, x.log10()),
            (Function::Log, [b, x]) => within(*b > 0.0 && *b != 1.0 && *x > 0.0, x.ln() / b.ln()),
            (Function::Log2, _) => within(x > 0.0, x.ln() / std::f64::consts::LN_2),
            (Function::Log10, _) => within(x > 0.0, x.log10()),
            (Function::Sqrt, _) => within(x >= 0.0, x.sqrt()),
            (Function::Acos, _) => within((-1.0..=1.0).contains(&x), x.acos()),
            (Function::Asin, _) => within((-1.0..=1.0).contains(&x), x.asin()),
            (Function::Exp, _) => Some(finite(x.exp(), || format!("exp({x})"))?),
            (Function::Power, [b, e]) => Some(finite(b.powf(*e), || format!("pow({b},{e})"))?),
            (Function::Cot, _) => Some(finite(1.0 / x.tan(), || format!("cot({x})"))?),
            // MySQL's ATAN(Y, X) is ATAN2(Y, X).
            (Function::Atan, [_]) => Some(x.atan()),
            (Function::Atan, [y, x]) => Some(y.atan2(*x)),
            (f, args) => return exec_err!("{} does not take {} arguments", f.name(), args.len()),
        })
    }
}

/// `v`, or error 1690 naming `what` when it is not a finite number.
fn finite(v: f64, what: impl FnOnce() -> String) -> Result<f64> {
    if v.is_finite() {
        return Ok(v);
    }
    Err(DataFusionError::External(Box::new(CnError::mysql(
        code::ER_DATA_OUT_OF_RANGE,
        format!("DOUBLE value is out of range in '{}'", what()),
    ))))
}

/// The scalar function; see the module documentation.
#[derive(Debug, PartialEq, Eq, Hash)]
struct MysqlMath {
    function: Function,
    signature: Signature,
    aliases: Vec<String>,
}

impl MysqlMath {
    fn new(function: Function) -> Self {
        let double = |n| TypeSignature::Uniform(n, vec![DataType::Float64]);
        let arities = match function {
            Function::Log | Function::Atan => vec![double(1), double(2)],
            Function::Power => vec![double(2)],
            _ => vec![double(1)],
        };
        let aliases = match function {
            Function::Power => vec!["pow".to_string()],
            _ => Vec::new(),
        };
        MysqlMath { function, signature: Signature::one_of(arities, Volatility::Immutable), aliases }
    }
}

impl ScalarUDFImpl for MysqlMath {
    fn name(&self) -> &str {
        self.function.name()
    }
    fn aliases(&self) -> &[String] {
        &self.aliases
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let columns: Vec<&Float64Array> = arrays.iter().map(|a: &ArrayRef| a.as_primitive::<Float64Type>()).collect();
        let mut values = Vec::with_capacity(args.number_rows);
        let mut row = Vec::with_capacity(columns.len());
        for i in 0..args.number_rows {
            row.clear();
            for c in &columns {
                if c.is_null(i) {
                    break;
                }
                row.push(c.value(i));
            }
            values.push(if row.len() < columns.len() { None } else { self.function.eval(&row)? });
        }
        Ok(ColumnarValue::Array(std::sync::Arc::new(Float64Array::from(values))))
    }
}

/// The functions, to register over DataFusion's.
pub fn all() -> impl Iterator<Item = ScalarUDF> {
    Function::ALL.into_iter().map(|f| ScalarUDF::from(MysqlMath::new(f)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_outside_the_domain_are_null_and_overflows_error_1690() {
        assert_eq!(Function::Ln.eval(&[-1.0]).unwrap(), None);
        assert_eq!(Function::Log2.eval(&[0.0]).unwrap(), None);
        assert_eq!(Function::Log10.eval(&[-0.5]).unwrap(), None);
        assert_eq!(Function::Log.eval(&[1.0, 8.0]).unwrap(), None, "base 1");
        assert_eq!(Function::Log.eval(&[-2.0, 8.0]).unwrap(), None);
        assert_eq!(Function::Log.eval(&[2.0, 1024.0]).unwrap(), Some(10.0));
        assert_eq!(Function::Sqrt.eval(&[-4.0]).unwrap(), None);
        assert_eq!(Function::Sqrt.eval(&[2.25]).unwrap(), Some(1.5));
        assert_eq!(Function::Acos.eval(&[1.5]).unwrap(), None);
        assert_eq!(Function::Asin.eval(&[-1.0]).unwrap(), Some(-std::f64::consts::FRAC_PI_2));
        assert_eq!(Function::Atan.eval(&[1.0, -1.0]).unwrap(), Some(1f64.atan2(-1.0)));
        for (f, args) in [(Function::Exp, vec![1000.0]), (Function::Power, vec![-8.0, 0.5]), (Function::Cot, vec![0.0])]
        {
            let e = f.eval(&args).unwrap_err().to_string();
            assert!(e.contains("DOUBLE value is out of range"), "{e}");
        }
        // MariaDB's log(x) / M_LN2, not a base-2 logarithm.
        assert_eq!(Function::Log2.eval(&[3.0]).unwrap(), Some(1.5849625007211563));
        assert_ne!(3f64.log2(), 1.5849625007211563);
    }
}
