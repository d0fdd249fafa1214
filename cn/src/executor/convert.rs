//! Conversions between MySQL values and Arrow: the text values a DN sends
//! become Arrow arrays for DataFusion; Arrow results become MySQL text rows
//! and column definitions.

use crate::catalog::{ColumnMeta, TypeKind};
use crate::error::{CnError, Result};
use crate::protocol::constants::{charset, flag, ty};
use crate::protocol::resultset::{ColumnDef, TextRow};
use chrono::{NaiveDate, NaiveDateTime};
use datafusion::arrow::array::*;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use std::sync::Arc;

/// Largest DECIMAL precision held in Decimal128.
const MAX_DEC128: u8 = 38;

/// The Arrow type a column of kind `k` is read as.
pub fn arrow_type(k: TypeKind) -> DataType {
    match k {
        TypeKind::Int { unsigned: false, bytes: 1 } => DataType::Int8,
        TypeKind::Int { unsigned: false, bytes: 2 } => DataType::Int16,
        TypeKind::Int { unsigned: false, bytes: 3 | 4 } => DataType::Int32,
        TypeKind::Int { unsigned: false, .. } => DataType::Int64,
        TypeKind::Int { unsigned: true, bytes: 1 } => DataType::UInt8,
        TypeKind::Int { unsigned: true, bytes: 2 } => DataType::UInt16,
        TypeKind::Int { unsigned: true, bytes: 3 | 4 } => DataType::UInt32,
        TypeKind::Int { unsigned: true, .. } => DataType::UInt64,
        TypeKind::Decimal { precision, scale } => DataType::Decimal128(precision.clamp(1, MAX_DEC128), scale),
        TypeKind::Float => DataType::Float32,
        TypeKind::Double => DataType::Float64,
        TypeKind::String => DataType::Utf8,
        // Microseconds from 00:00:00, negative and beyond 24 hours as MySQL
        // allows (-838:59:59 to 838:59:59); see [`parse_time`].
        TypeKind::Time => DataType::Time64(TimeUnit::Microsecond),
        TypeKind::Binary => DataType::Binary,
        TypeKind::Date => DataType::Date32,
        TypeKind::DateTime { .. } => DataType::Timestamp(TimeUnit::Microsecond, None),
    }
}

/// The Arrow schema of a logical table (hidden columns included).
pub fn table_schema(cols: &[ColumnMeta]) -> SchemaRef {
    Arc::new(Schema::new(cols.iter().map(|c| Field::new(&c.name, arrow_type(c.kind), true)).collect::<Vec<_>>()))
}

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")
}

/// MySQL's zero date `0000-00-00` as the CN holds it in a `Date32`: the
/// day before 0000-01-01 (-0001-12-31), so that it sorts and compares
/// below every real date as in MySQL, groups as one value, and stays in
/// chrono's range for DataFusion's date functions. MariaDB stores zero
/// dates unless `sql_mode` has `NO_ZERO_DATE`, which its default lacks
/// (MariaDB KB, "SQL_MODE"). Shown to clients, given to DNs and pushed
/// down as `0000-00-00` ([`zero_temporals`], [`zero_text`]).
/// Dates with only a zero month or day (`2020-05-00`) fail a statement the
/// CN computes ([`rows_to_batch`]).
pub const ZERO_DATE_DAYS: i32 = -719_529;

/// The zero DATETIME or TIMESTAMP `0000-00-00 00:00:00` in a
/// `Timestamp(Microsecond)`: midnight of [`ZERO_DATE_DAYS`].
pub const ZERO_DATETIME_MICROS: i64 = ZERO_DATE_DAYS as i64 * 86_400_000_000;

/// Whether `s` (a DN's text of a DATE, DATETIME or TIMESTAMP) is the zero
/// date, with or without a zero time and fraction.
pub fn is_zero_date_text(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("0000-00-00") else { return false };
    let rest = rest.strip_prefix(" 00:00:00").unwrap_or(rest);
    rest.is_empty() || rest.strip_prefix('.').is_some_and(|f| f.bytes().all(|b| b == b'0'))
}

/// Whether `v` is the CN's zero date or datetime ([`ZERO_DATE_DAYS`],
/// [`ZERO_DATETIME_MICROS`]) in the unit of its type.
pub fn is_zero_temporal(t: &DataType, v: i64) -> bool {
    match t {
        DataType::Date32 => v == ZERO_DATE_DAYS as i64,
        DataType::Timestamp(TimeUnit::Microsecond, _) => v == ZERO_DATETIME_MICROS,
        DataType::Timestamp(TimeUnit::Millisecond, _) => v == ZERO_DATETIME_MICROS / 1_000,
        DataType::Timestamp(TimeUnit::Second, _) => v == ZERO_DATETIME_MICROS / 1_000_000,
        _ => false,
    }
}

/// Which values of `col` are the zero date or datetime, worked out once
/// for the column; `None` when it is neither a DATE nor a DATETIME.
pub fn zero_temporals(col: &dyn Array) -> Option<Vec<bool>> {
    let t = col.data_type();
    if !matches!(t, DataType::Date32 | DataType::Timestamp(..)) {
        return None;
    }
    let n = datafusion::arrow::compute::cast(col, &DataType::Int64).ok()?;
    let n = n.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
    Some((0..n.len()).map(|i| n.is_valid(i) && is_zero_temporal(t, n.value(i))).collect())
}

/// MySQL's text of the zero date (`0000-00-00`, for a `Date32`) or
/// datetime (`0000-00-00 00:00:00`, and `fsp` zero digits after a point).
pub fn zero_text(t: &DataType, fsp: usize) -> String {
    match (t, fsp.min(6)) {
        (DataType::Date32, _) => "0000-00-00".to_string(),
        (_, 0) => "0000-00-00 00:00:00".to_string(),
        (_, fsp) => format!("0000-00-00 00:00:00.{:0<fsp$}", ""),
    }
}

/// A MySQL DATE as text (`YYYY-MM-DD`, anything after it ignored) in days
/// since 1970-01-01, the zero date as [`ZERO_DATE_DAYS`]; `None` for
/// anything else.
pub fn parse_date(s: &str) -> Option<i32> {
    if is_zero_date_text(s) {
        return Some(ZERO_DATE_DAYS);
    }
    let d = NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d").ok()?;
    Some((d - epoch()).num_days() as i32)
}

/// A MySQL TIME as text (`[-]H…H:MM:SS[.ffffff]`, as a DN sends it) in
/// microseconds; `None` for anything else.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let (hms, frac) = body.split_once('.').unwrap_or((body, ""));
    let mut parts = hms.split(':');
    let (h, m, sec) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m, sec): (i64, i64, i64) = (h.parse().ok()?, m.parse().ok()?, sec.parse().ok()?);
    if h < 0 || !(0..60).contains(&m) || !(0..60).contains(&sec) {
        return None;
    }
    let micros = if frac.is_empty() { 0 } else { format!("{frac:0<6}").parse::<i64>().ok()? };
    let v = ((h * 60 + m) * 60 + sec) * 1_000_000 + micros;
    Some(if neg { -v } else { v })
}

/// Microseconds as MySQL shows a TIME: `[-]HH:MM:SS`, more hour digits
/// when needed, and `.ffffff` when there is a fraction.
pub fn format_time(v: i64) -> String {
    let sign = if v < 0 { "-" } else { "" };
    let v = v.unsigned_abs();
    let (secs, micros) = (v / 1_000_000, v % 1_000_000);
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if micros == 0 {
        format!("{sign}{h:02}:{m:02}:{s:02}")
    } else {
        format!("{sign}{h:02}:{m:02}:{s:02}.{micros:06}")
    }
}

pub fn parse_datetime(s: &str) -> Option<i64> {
    if is_zero_date_text(s) {
        return Some(ZERO_DATETIME_MICROS);
    }
    let dt = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDate::parse_from_str(s, "%Y-%m-%d").map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default()))
        .ok()?;
    Some(dt.and_utc().timestamp_micros())
}

/// Parses a decimal string into an i128 scaled by 10^scale (truncating
/// extra digits; MariaDB sends exactly `scale` digits).
pub fn parse_decimal(s: &str, scale: i8) -> Option<i128> {
    let s = s.trim();
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let mut v: i128 = 0;
    for b in int.bytes() {
        v = v.checked_mul(10)?.checked_add((b.checked_sub(b'0').filter(|d| *d < 10)?) as i128)?;
    }
    let mut fb = frac.bytes();
    for _ in 0..scale.max(0) {
        let d = match fb.next() {
            Some(b) => b.checked_sub(b'0').filter(|d| *d < 10)? as i128,
            None => 0,
        };
        v = v.checked_mul(10)?.checked_add(d)?;
    }
    Some(if neg { -v } else { v })
}

/// Ends the unique alias the CN gives a result column whose name an earlier
/// column already has (DataFusion needs unique names, MySQL does not);
/// [`column_def`] drops it and what follows. A control character (unit
/// separator), so no real name has it.
pub const DUPLICATE_NAME_MARK: char = '\u{1f}';

/// Builds a RecordBatch of `schema` from text rows (as a DN sends them).
pub fn rows_to_batch(schema: &SchemaRef, rows: &[TextRow]) -> Result<RecordBatch> {
    if schema.fields().is_empty() {
        return RecordBatch::try_new_with_options(
            schema.clone(),
            vec![],
            &RecordBatchOptions::new().with_row_count(Some(rows.len())),
        )
        .map_err(|e| CnError::internal(e.to_string()));
    }
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (i, f) in schema.fields().iter().enumerate() {
        let vals =
            rows.iter().map(|r| r.get(i).and_then(|v| v.as_deref()).map(|b| std::str::from_utf8(b).unwrap_or("")));
        // A value that does not read as the column's type (a fraction where
        // the plan typed an integer, a date with a zero day): the statement
        // fails, never a NULL in its place.
        let unreadable = |t: &str| {
            CnError::unsupported(format!(
                "the value '{t}' a DN sent for the {} column `{}` where the CN computes",
                f.data_type(),
                f.name()
            ))
        };
        let strict = |read: &dyn Fn(&str) -> bool| -> Result<()> {
            match vals.clone().flatten().find(|t| !read(t)) {
                Some(t) => Err(unreadable(t)),
                None => Ok(()),
            }
        };
        macro_rules! prim {
            ($arr:ty, $t:ty) => {
                parsed!($arr, |s: &str| s.trim().parse::<$t>().ok())
            };
        }
        macro_rules! parsed {
            ($arr:ty, $parse:expr) => {{
                let arr = vals.clone().map(|v| v.and_then($parse)).collect::<$arr>();
                if arr.null_count() > vals.clone().filter(Option::is_none).count() {
                    strict(&|s| $parse(s).is_some())?;
                }
                Arc::new(arr) as ArrayRef
            }};
        }
        let a: ArrayRef = match f.data_type() {
            DataType::Int8 => prim!(Int8Array, i8),
            DataType::Int16 => prim!(Int16Array, i16),
            DataType::Int32 => prim!(Int32Array, i32),
            DataType::Int64 => prim!(Int64Array, i64),
            DataType::UInt8 => prim!(UInt8Array, u8),
            DataType::UInt16 => prim!(UInt16Array, u16),
            DataType::UInt32 => prim!(UInt32Array, u32),
            DataType::UInt64 => prim!(UInt64Array, u64),
            DataType::Float32 => prim!(Float32Array, f32),
            DataType::Float64 => prim!(Float64Array, f64),
            DataType::Decimal128(p, s) => {
                // A value past Decimal128's 38 digits (a DECIMAL(65) column
                // holds 65) fails the statement rather than reading as NULL.
                let parse = |t: &str| {
                    parse_decimal(t, *s).map(Some).ok_or_else(|| {
                        CnError::unsupported(format!(
                            "the DECIMAL value {t} where the CN computes (it holds at most 38 digits)"
                        ))
                    })
                };
                let arr: Decimal128Array = vals
                    .map(|v| v.map_or(Ok(None), parse))
                    .collect::<Result<Vec<Option<i128>>>>()?
                    .into_iter()
                    .collect();
                Arc::new(arr.with_precision_and_scale(*p, *s).map_err(|e| CnError::internal(e.to_string()))?)
            }
            DataType::Date32 => parsed!(Date32Array, parse_date),
            DataType::Time64(TimeUnit::Microsecond) => parsed!(Time64MicrosecondArray, parse_time),
            DataType::Timestamp(TimeUnit::Microsecond, None) => parsed!(TimestampMicrosecondArray, parse_datetime),
            DataType::Binary => {
                Arc::new(rows.iter().map(|r| r.get(i).and_then(|v| v.as_deref())).collect::<BinaryArray>())
            }
            // A pushed-down TRUE or comparison: MariaDB sends 1 or 0.
            DataType::Boolean => {
                parsed!(BooleanArray, |s: &str| s.trim().parse::<f64>().ok().map(|n| n != 0.0))
            }
            DataType::Null => Arc::new(NullArray::new(rows.len())),
            _ => Arc::new(vals.collect::<StringArray>()),
        };
        arrays.push(a);
    }
    RecordBatch::try_new(schema.clone(), arrays).map_err(|e| CnError::internal(e.to_string()))
}

/// Field metadata: the decimals a DOUBLE result column shows (MySQL's
/// column `decimals`; its text values have exactly that many digits after
/// the point), as MariaDB shows `STDDEV` of a DECIMAL(10,2) as
/// `191.505770`; for a TIME or DATETIME column its fractional seconds
/// precision ([`with_fsp`]). Absent: as many as the value needs.
pub const DECIMALS_KEY: &str = "mysql.decimals";

/// `f` marked with fractional seconds precision `fsp` when it is a TIME
/// or DATETIME column ([`crate::executor::fsp`]); else `f` as it is.
pub fn with_fsp(f: &FieldRef, fsp: Option<u8>) -> FieldRef {
    match (f.data_type(), fsp) {
        (DataType::Timestamp(..) | DataType::Time64(_), Some(n)) => {
            let mut meta = f.metadata().clone();
            meta.insert(DECIMALS_KEY.to_string(), n.min(6).to_string());
            Arc::new(f.as_ref().clone().with_metadata(meta))
        }
        _ => f.clone(),
    }
}

/// Microseconds as MySQL shows a TIME of fractional seconds precision
/// `fsp`: exactly `fsp` digits after the point, none for 0.
pub fn format_time_fsp(v: i64, fsp: usize) -> String {
    let whole = format_time(v - v % 1_000_000);
    if fsp == 0 {
        return whole;
    }
    let frac = v.unsigned_abs() % 1_000_000 / 10u64.pow(6 - fsp.min(6) as u32);
    let sign = if v < 0 && whole == "00:00:00" { "-" } else { "" };
    format!("{sign}{whole}.{frac:0fsp$}")
}

/// Microseconds since the epoch as MySQL shows a DATETIME of fractional
/// seconds precision `fsp` (`YYYY-MM-DD HH:MM:SS[.f…]`, `fsp` digits).
fn format_datetime_fsp(micros: i64, fsp: usize) -> Option<String> {
    if micros == ZERO_DATETIME_MICROS {
        return Some(zero_text(&DataType::Timestamp(TimeUnit::Microsecond, None), fsp));
    }
    let dt = chrono::DateTime::from_timestamp_micros(micros)?.naive_utc();
    let whole = dt.format("%Y-%m-%d %H:%M:%S").to_string();
    if fsp == 0 {
        return Some(whole);
    }
    let frac = micros.rem_euclid(1_000_000) / 10i64.pow(6 - fsp.min(6) as u32);
    Some(format!("{whole}.{frac:0fsp$}"))
}

/// A DOUBLE as MariaDB shows it with `n` decimals: its shortest digits
/// that read back as the same DOUBLE, the places after them zeros
/// (`TRUNCATE(x / 7, 20)` is `0.35714285714285715000`, not the binary
/// value's `…15079`); rounded at the n-th decimal when they need more.
pub fn format_fixed_double(v: f64, n: usize) -> String {
    if !v.is_finite() || v == 0.0 {
        return format!("{v:.n$}");
    }
    let sci = format!("{:e}", v.abs());
    let (mantissa, exp) = sci.split_once('e').expect("`e` in scientific notation");
    let exp: i64 = exp.parse().expect("an integer exponent");
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    // Decimals the shortest digits need.
    if digits.len() as i64 - 1 - exp > n as i64 {
        return format!("{v:.n$}");
    }
    let point = exp + 1; // digits before the decimal point
    let (int, frac) = if point <= 0 {
        ("0".to_string(), format!("{}{digits}", "0".repeat((-point) as usize)))
    } else if point as usize >= digits.len() {
        (format!("{digits}{}", "0".repeat(point as usize - digits.len())), String::new())
    } else {
        (digits[..point as usize].to_string(), digits[point as usize..].to_string())
    };
    let sign = if v < 0.0 { "-" } else { "" };
    if n == 0 {
        return format!("{sign}{int}");
    }
    format!("{sign}{int}.{frac:0<n$}")
}

/// `f` marked to show `n` decimals, as MySQL shows a DOUBLE whose decimals
/// are fixed (`ROUND(x, n)`, `TRUNCATE(x, n)`, `STDDEV`): `n` clamped to
/// 0..=30 in the field's [`DECIMALS_KEY`], which [`batch_to_rows_as`] reads.
pub fn with_decimals(f: Field, n: i64) -> Field {
    f.with_metadata([(DECIMALS_KEY.to_string(), n.clamp(0, 30).to_string())].into())
}

fn fixed_decimals(f: &Field) -> Option<usize> {
    f.metadata().get(DECIMALS_KEY).and_then(|n| n.parse().ok())
}

/// The MySQL column definition for an Arrow field of a result.
pub fn column_def(f: &Field) -> ColumnDef {
    let name = f.name().split(DUPLICATE_NAME_MARK).next().unwrap_or_default();
    let mut c = match f.data_type() {
        DataType::Int8 => ColumnDef::new(name, ty::TINY),
        DataType::Int16 => ColumnDef::new(name, ty::SHORT),
        DataType::Int32 => ColumnDef::new(name, ty::LONG),
        DataType::Int64 | DataType::Boolean => ColumnDef::new(name, ty::LONGLONG),
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            let t = match f.data_type() {
                DataType::UInt8 => ty::TINY,
                DataType::UInt16 => ty::SHORT,
                DataType::UInt32 => ty::LONG,
                _ => ty::LONGLONG,
            };
            let mut c = ColumnDef::new(name, t);
            c.flags |= flag::UNSIGNED;
            c
        }
        DataType::Float32 => ColumnDef::new(name, ty::FLOAT),
        DataType::Float64 => {
            let mut c = ColumnDef::new(name, ty::DOUBLE);
            if let Some(n) = fixed_decimals(f) {
                c.decimals = n as u8;
            }
            c
        }
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => {
            let mut c = ColumnDef::new(name, ty::NEWDECIMAL);
            c.decimals = (*s).max(0) as u8;
            c.length = *p as u32 + 2;
            c
        }
        DataType::Date32 | DataType::Date64 => ColumnDef::new(name, ty::DATE),
        DataType::Timestamp(_, _) | DataType::Time64(_) | DataType::Time32(_) => {
            let (t, width) =
                if matches!(f.data_type(), DataType::Timestamp(..)) { (ty::DATETIME, 19) } else { (ty::TIME, 10) };
            let mut c = ColumnDef::new(name, t);
            if let Some(n) = fixed_decimals(f) {
                c.decimals = n as u8;
                c.length = width + if n > 0 { n as u32 + 1 } else { 0 };
            }
            c
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            let mut c = ColumnDef::new(name, ty::BLOB);
            c.charset = charset::BINARY;
            c.flags |= flag::BLOB | flag::BINARY;
            c
        }
        DataType::Null => ColumnDef::new(name, ty::NULL),
        _ => ColumnDef::text(name),
    };
    if !f.is_nullable() {
        c.flags |= flag::NOT_NULL;
    }
    c
}

/// MySQL's text of a DOUBLE (MariaDB's `my_gcvt`, which `SELECT` of a
/// DOUBLE uses): the shortest digits that read back as the same value,
/// in fixed notation (`0.30000000000000004`, `100`, `0.0000001`) unless
/// the decimal point would sit more than 15 places right of the first
/// digit or more than 14 zeros left of it: then `1e15`,
/// `1.2345678901234568e17`, `1e-16`. Zero (also −0) is `0`; infinities
/// and NaN, which MySQL never stores, as `inf`, `-inf`, `nan`.
pub fn double_text(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    if !v.is_finite() {
        return v.to_string().to_ascii_lowercase();
    }
    // `{:e}` gives the shortest round-trip digits: `d[.ddd]e<exp>`.
    let e = format!("{v:e}");
    let exp: i32 = e.split_once('e').and_then(|(_, x)| x.parse().ok()).unwrap_or(0);
    // MariaDB's `decpt` is exp + 1 (digits before the point).
    if exp + 1 > 15 || exp + 1 < -14 {
        return e;
    }
    // Fixed notation: Rust's `Display` writes the same shortest digits
    // without an exponent.
    v.to_string()
}

/// How Arrow's formatter shows values as MySQL does: datetimes as
/// `YYYY-MM-DD HH:MM:SS[.fff[fff]]`, dates as `YYYY-MM-DD`.
fn text_options() -> FormatOptions<'static> {
    FormatOptions::default()
        .with_null("")
        .with_datetime_format(Some("%Y-%m-%d %H:%M:%S%.f"))
        .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.f"))
        .with_date_format(Some("%Y-%m-%d"))
        // A value that cannot be shown fails the statement (it was shown
        // as the text "ERROR: …").
        .with_display_error(false)
}

/// A TIME column (`CAST(… AS TIME)` is of nanoseconds in DataFusion) in
/// microseconds, the unit [`format_time`] reads.
fn time_micros(col: &ArrayRef, unit: TimeUnit) -> Result<Time64MicrosecondArray> {
    let micros = match unit {
        TimeUnit::Microsecond => col.clone(),
        _ => datafusion::arrow::compute::cast(col, &DataType::Time64(TimeUnit::Microsecond))
            .map_err(|e| CnError::internal(e.to_string()))?,
    };
    Ok(micros.as_primitive::<datafusion::arrow::datatypes::Time64MicrosecondType>().clone())
}

/// Whether MySQL's text of a value of type `t` differs from Arrow's cast
/// to `Utf8` (which fails for the CN's TIME values past 24 hours or below
/// zero, writes a `T` into datetimes, `true` for 1 and `1.0` for a DOUBLE
/// 1): those a function
/// reading its arguments as strings takes as they are and turns into
/// text with [`mysql_text`].
pub fn has_mysql_text(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Time64(_) | DataType::Timestamp(..) | DataType::Date32 | DataType::Boolean | DataType::Float64
    )
}

/// `col` as a `Utf8` array of MySQL's text of its values: TIME as
/// `[-]HH:MM:SS[.ffffff]`, datetimes and dates as [`batch_to_rows`] shows
/// them, booleans as `1` / `0`, anything else by Arrow's cast.
pub fn mysql_text(col: &ArrayRef) -> Result<ArrayRef> {
    let texts: StringArray = match col.data_type() {
        DataType::Utf8 => return Ok(col.clone()),
        DataType::Time64(unit) => time_micros(col, *unit)?.iter().map(|v| v.map(format_time)).collect(),
        DataType::Boolean => col.as_boolean().iter().map(|v| v.map(|b| if b { "1" } else { "0" })).collect(),
        DataType::Float64 => col.as_primitive::<Float64Type>().iter().map(|v| v.map(double_text)).collect(),
        DataType::Timestamp(..) | DataType::Date32 => {
            let opts = text_options();
            let fmt = ArrayFormatter::try_new(col.as_ref(), &opts).map_err(|e| CnError::internal(e.to_string()))?;
            let zeros = zero_temporals(col.as_ref()).unwrap_or_default();
            let text = |i: usize| match zeros.get(i) {
                Some(true) => zero_text(col.data_type(), 0),
                _ => fmt.value(i).to_string(),
            };
            (0..col.len()).map(|i| col.is_valid(i).then(|| text(i))).collect()
        }
        _ => {
            return datafusion::arrow::compute::cast(col, &DataType::Utf8).map_err(|e| CnError::internal(e.to_string()))
        }
    };
    Ok(Arc::new(texts))
}

/// Formats the rows of a batch as MySQL text values: booleans as 1/0,
/// datetimes as `YYYY-MM-DD HH:MM:SS[.ffffff]`.
pub fn batch_to_rows(batch: &RecordBatch) -> Result<Vec<TextRow>> {
    batch_to_rows_as(batch, batch.schema_ref().fields())
}

/// [`batch_to_rows`] with the columns described by `fields` (the batch's
/// own with the CN's metadata: [`DECIMALS_KEY`]).
pub fn batch_to_rows_as(batch: &RecordBatch, fields: &Fields) -> Result<Vec<TextRow>> {
    let opts = text_options();
    let n = batch.num_rows();
    let mut rows: Vec<TextRow> = (0..n).map(|_| Vec::with_capacity(batch.num_columns())).collect();
    for (j, col) in batch.columns().iter().enumerate() {
        let fixed = fields.get(j).and_then(|f| fixed_decimals(f));
        if let (Some(n), Some(v)) = (fixed, col.as_any().downcast_ref::<Float64Array>()) {
            for (i, r) in rows.iter_mut().enumerate() {
                r.push(v.is_valid(i).then(|| format_fixed_double(v.value(i), n).into_bytes()));
            }
            continue;
        }
        // TIME (`CAST(… AS TIME)` is of nanoseconds in DataFusion).
        if let DataType::Time64(unit) = col.data_type() {
            let t = time_micros(col, *unit)?;
            for (i, r) in rows.iter_mut().enumerate() {
                let text = |v| fixed.map_or_else(|| format_time(v), |n| format_time_fsp(v, n));
                r.push(t.is_valid(i).then(|| text(t.value(i)).into_bytes()));
            }
            continue;
        }
        if let (Some(n), DataType::Timestamp(..)) = (fixed, col.data_type()) {
            let micros = datafusion::arrow::compute::cast(col, &DataType::Timestamp(TimeUnit::Microsecond, None))
                .map_err(|e| CnError::internal(e.to_string()))?;
            let t = micros.as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
            for (i, r) in rows.iter_mut().enumerate() {
                let text = t.is_valid(i).then(|| format_datetime_fsp(t.value(i), n));
                r.push(match text {
                    Some(Some(s)) => Some(s.into_bytes()),
                    Some(None) => return Err(CnError::internal(format!("DATETIME {} out of range", t.value(i)))),
                    None => None,
                });
            }
            continue;
        }
        if let Some(v) = col.as_any().downcast_ref::<Float64Array>() {
            for (i, r) in rows.iter_mut().enumerate() {
                r.push(v.is_valid(i).then(|| double_text(v.value(i)).into_bytes()));
            }
            continue;
        }
        if let Some(b) = col.as_any().downcast_ref::<BooleanArray>() {
            for (i, r) in rows.iter_mut().enumerate() {
                r.push(if b.is_null(i) { None } else { Some(if b.value(i) { b"1".to_vec() } else { b"0".to_vec() }) });
            }
            continue;
        }
        if let Some(b) = col.as_any().downcast_ref::<BinaryArray>() {
            for (i, r) in rows.iter_mut().enumerate() {
                r.push(if b.is_null(i) { None } else { Some(b.value(i).to_vec()) });
            }
            continue;
        }
        let fmt = ArrayFormatter::try_new(col.as_ref(), &opts).map_err(|e| CnError::internal(e.to_string()))?;
        // Logical nulls: a NullArray (`SELECT NULL`) has no validity buffer.
        let nulls = col.logical_nulls();
        let zeros = zero_temporals(col.as_ref()).unwrap_or_default();
        for (i, r) in rows.iter_mut().enumerate() {
            let null = nulls.as_ref().is_some_and(|n| n.is_null(i));
            if null {
                r.push(None);
                continue;
            }
            if zeros.get(i) == Some(&true) {
                r.push(Some(zero_text(col.data_type(), 0).into_bytes()));
                continue;
            }
            let mut text = String::new();
            std::fmt::Write::write_fmt(&mut text, format_args!("{}", fmt.value(i)))
                .map_err(|_| CnError::internal(format!("a value of type {} cannot be shown", col.data_type())))?;
            r.push(Some(text.into_bytes()));
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_show_as_mariadb_shows_them() {
        // Each pair as `SELECT <literal>` shows it on MariaDB 10.11.
        for (v, text) in [
            (1.0, "1"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e15, "1e15"),
            (999_999_999_999_999.0, "999999999999999"),
            (100_000_000_000_000.5, "100000000000000.5"),
            (1.234_567_890_123_456_8e17, "1.2345678901234568e17"),
            (-1e16, "-1e16"),
            (1e-15, "0.000000000000001"),
            (1.5e-15, "0.0000000000000015"),
            (1e-16, "1e-16"),
            (1.5e-16, "1.5e-16"),
            (2.5e-5, "0.000025"),
            (1.0 / 3.0, "0.3333333333333333"),
            (-0.0, "0"),
            (5e-324, "5e-324"),
            (1e308, "1e308"),
        ] {
            assert_eq!(double_text(v), text, "{v:e}");
        }
    }

    #[test]
    fn fractional_seconds_show_with_the_columns_precision() {
        assert_eq!(format_time_fsp(36_000_123_000, 3), "10:00:00.123");
        assert_eq!(format_time_fsp(36_000_000_000, 3), "10:00:00.000");
        assert_eq!(format_time_fsp(-1_500_000, 3), "-00:00:01.500");
        assert_eq!(format_time_fsp(-500_000, 1), "-00:00:00.5");
        assert_eq!(format_time_fsp(3_020_399_000_000, 0), "838:59:59");
        // MariaDB's: the shortest digits that read back as the DOUBLE, then zeros.
        assert_eq!(format_fixed_double(2.5 / 7.0, 20), "0.35714285714285715000");
        assert_eq!(format_fixed_double(-3.0 / 7.0, 20), "-0.42857142857142855000");
        assert_eq!(format_fixed_double(1e20 / 7.0, 3), "14285714285714287000.000");
        assert_eq!(format_fixed_double(1.0 / 3.0, 2), "0.33");
        assert_eq!(format_fixed_double(2.5, 0), "2");
        assert_eq!(format_fixed_double(-2.675, 2), "-2.67");
        assert_eq!(format_fixed_double(3.7, 2), "3.70");
        assert_eq!(format_fixed_double(1234.5678, 16), "1234.5678000000000000");
        assert_eq!(format_fixed_double(0.001234, 22), "0.0012340000000000000000");
        assert_eq!(format_fixed_double(0.0, 20), "0.00000000000000000000");
        let micros = parse_datetime("2001-01-01 00:00:00.5").unwrap();
        assert_eq!(format_datetime_fsp(micros, 2).as_deref(), Some("2001-01-01 00:00:00.50"));
        assert_eq!(format_datetime_fsp(micros, 6).as_deref(), Some("2001-01-01 00:00:00.500000"));
        assert_eq!(format_datetime_fsp(micros, 0).as_deref(), Some("2001-01-01 00:00:00"));
        let before_1970 = parse_datetime("1969-12-31 23:59:59.25").unwrap();
        assert_eq!(format_datetime_fsp(before_1970, 2).as_deref(), Some("1969-12-31 23:59:59.25"));
        let f = Arc::new(Field::new("t", DataType::Time64(TimeUnit::Microsecond), true));
        assert_eq!(column_def(&with_fsp(&f, Some(3))).decimals, 3);
        let f = Arc::new(Field::new("n", DataType::Int64, true));
        assert!(with_fsp(&f, Some(3)).metadata().is_empty());
    }

    #[test]
    fn times_read_and_show_as_mysql_does() {
        for (text, micros) in [
            ("10:00:00", 36_000_000_000),
            ("-01:30:00", -5_400_000_000),
            ("100:00:00", 360_000_000_000),
            ("838:59:59", 3_020_399_000_000),
            ("00:00:01.500000", 1_500_000),
            ("-00:00:00.000001", -1),
        ] {
            assert_eq!(parse_time(text), Some(micros), "{text}");
            assert_eq!(format_time(micros), text);
        }
        assert_eq!(parse_time("1:2:3.5"), Some(3_723_500_000));
        for bad in ["", "10:00", "10:60:00", "ab:00:00", "1:00:00.1234567", "1:00:00:00"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn text_rows_roundtrip_through_arrow() {
        let cols = vec![
            ColumnMeta {
                name: "a".into(),
                sql_type: "int".into(),
                kind: TypeKind::Int { unsigned: false, bytes: 4 },
                nullable: true,
                auto_increment: false,
                hidden: false,
            },
            ColumnMeta {
                name: "d".into(),
                sql_type: "decimal(15,2)".into(),
                kind: TypeKind::Decimal { precision: 15, scale: 2 },
                nullable: true,
                auto_increment: false,
                hidden: false,
            },
            ColumnMeta {
                name: "t".into(),
                sql_type: "datetime".into(),
                kind: TypeKind::DateTime { fsp: 0 },
                nullable: true,
                auto_increment: false,
                hidden: false,
            },
            ColumnMeta {
                name: "day".into(),
                sql_type: "date".into(),
                kind: TypeKind::Date,
                nullable: true,
                auto_increment: false,
                hidden: false,
            },
        ];
        let schema = table_schema(&cols);
        let rows: Vec<TextRow> = vec![
            vec![
                Some(b"-3".to_vec()),
                Some(b"-12.05".to_vec()),
                Some(b"2024-02-29 23:59:58".to_vec()),
                Some(b"1995-03-15".to_vec()),
            ],
            vec![None, None, None, None],
        ];
        let b = rows_to_batch(&schema, &rows).unwrap();
        assert_eq!(batch_to_rows(&b).unwrap(), rows);
        // A value that does not read as its column's type fails the
        // statement rather than reading as NULL.
        for (column, text) in [(0, "1552641011.123"), (3, "2020-05-00"), (2, "noon")] {
            let mut row: TextRow = vec![None; 4];
            row[column] = Some(text.as_bytes().to_vec());
            let err = rows_to_batch(&schema, &[rows[0].clone(), row]).unwrap_err().to_string();
            assert!(err.contains(text), "{err}");
        }
    }

    #[test]
    fn decimal_parsing() {
        assert_eq!(parse_decimal("12.3", 2), Some(1230));
        assert_eq!(parse_decimal("-0.05", 2), Some(-5));
        assert_eq!(parse_decimal("x", 2), None);
    }
}
