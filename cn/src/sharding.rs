//! Partition functions: which partition a row (or a literal in a WHERE
//! clause) belongs to.
//!
//! A key value is first brought to a canonical form for its column's type,
//! so that `5`, `'5'` and `5.0` for an INT column, or `'Abc'` and `'abc '`
//! for a `utf8mb4_general_ci` string, land on the same partition. The hash is
//! 64-bit FNV-1a over a type-tagged encoding, finished with the SplitMix64
//! mixer (Steele et al., "Fast splittable pseudorandom number generators",
//! OOPSLA 2014): stable across builds and platforms, which a partition
//! function must be since it is fixed at table creation.

use crate::catalog::{Partitioning, TableDef, TypeKind};
use crate::error::{code, CnError, Result};

/// A partition-key value in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyValue {
    Null,
    Int(i128),
    /// Canonical text: decimals at their column scale, temporals in MySQL's
    /// format, strings folded for case- and trailing-space-insensitivity.
    Text(String),
    Bytes(Vec<u8>),
}

/// Canonical form of a SQL value (given as its text, `None` for NULL) for a
/// column of kind `kind`. Fails with ERR 1366-like message when the text is
/// not a value of the type.
pub fn canonical(kind: TypeKind, text: Option<&str>) -> Result<KeyValue> {
    let Some(s) = text else {
        return Ok(KeyValue::Null);
    };
    let t = s.trim();
    Ok(match kind {
        TypeKind::Int { .. } => match t.parse::<i128>() {
            Ok(v) => KeyValue::Int(v),
            Err(_) => match t.parse::<f64>() {
                Ok(f) => KeyValue::Int(f.round() as i128),
                Err(_) => return Err(bad_value(s)),
            },
        },
        TypeKind::Decimal { scale, .. } => {
            KeyValue::Text(normalize_decimal(t, scale.max(0) as usize).ok_or_else(|| bad_value(s))?)
        }
        TypeKind::Float | TypeKind::Double => KeyValue::Text(t.parse::<f64>().map_err(|_| bad_value(s))?.to_string()),
        // Values equal under utf8mb4_general_ci land on one partition.
        TypeKind::String => KeyValue::Text(crate::collation::fold(s)),
        TypeKind::Binary => KeyValue::Bytes(s.as_bytes().to_vec()),
        TypeKind::Date => KeyValue::Text(normalize_temporal(t, false, 0).ok_or_else(|| bad_value(s))?),
        TypeKind::DateTime { fsp } => KeyValue::Text(normalize_temporal(t, true, fsp).ok_or_else(|| bad_value(s))?),
        TypeKind::Time => KeyValue::Text(t.to_string()),
    })
}

/// [`canonical`] for a value of column `col`, with what the column's
/// SQL type adds to its kind: a `YEAR` maps 1-69 to 2001-2069 and 70-99 to
/// 1970-1999 as MariaDB stores them (and converts a constant compared with
/// the column), a `BINARY(n)` is padded with zero bytes to `n`, and a
/// `TIME(fsp)` is spelled `[-]HH:MM:SS[.f]` whichever of MariaDB's forms
/// (`1:2:3`, `10203`, `1 2:3:4`) it was written in. Source: MySQL 8.0
/// reference, 13.2.4 "The YEAR Type" and 11.2.3 "The TIME Type".
pub fn canonical_for(col: &crate::catalog::ColumnMeta, text: Option<&str>) -> Result<KeyValue> {
    let ty = col.sql_type.as_str();
    match (col.kind, text) {
        (_, None) => Ok(KeyValue::Null),
        (TypeKind::Int { .. }, Some(s)) if ty.starts_with("year") => match canonical(col.kind, Some(s))? {
            KeyValue::Int(y @ 1..=69) => Ok(KeyValue::Int(y + 2000)),
            KeyValue::Int(y @ 70..=99) => Ok(KeyValue::Int(y + 1900)),
            v => Ok(v),
        },
        (TypeKind::Binary, Some(s)) if ty.starts_with("binary") => {
            let mut bytes = s.as_bytes().to_vec();
            if let Some(n) = type_length(ty) {
                if bytes.len() < n {
                    bytes.resize(n, 0);
                }
            }
            Ok(KeyValue::Bytes(bytes))
        }
        (TypeKind::Time, Some(s)) => {
            let fsp = type_length(ty).unwrap_or(0);
            Ok(KeyValue::Text(normalize_time(s.trim(), fsp).unwrap_or_else(|| s.trim().to_string())))
        }
        (kind, text) => canonical(kind, text),
    }
}

/// The `n` of a lower-case SQL type spelled `name(n)` or `name(n, m)`.
fn type_length(ty: &str) -> Option<usize> {
    ty.split_once('(').and_then(|(_, n)| n.split([')', ',']).next()?.trim().parse().ok())
}

/// A TIME value in MariaDB's forms: `[-][D ]H:M[:S][.f]` or
/// `[-]digits[.f]` read right to left as seconds, minutes, hours; spelled
/// `[-]HH:MM:SS` plus `fsp` fraction digits. `None` when it is none of these.
fn normalize_time(t: &str, fsp: usize) -> Option<String> {
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b.trim_start()),
        None => (false, t),
    };
    let (main, frac) = body.split_once('.').unwrap_or((body, ""));
    let num = |p: &str| -> Option<u64> {
        (!p.is_empty() && p.len() <= 10 && p.bytes().all(|b| b.is_ascii_digit())).then(|| p.parse().ok())?
    };
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m, s) = if main.contains(':') || main.contains(' ') {
        let (days, clock) = match main.split_once(' ') {
            Some((d, c)) => (num(d)?, c.trim()),
            None => (0, main),
        };
        let parts: Vec<&str> = clock.split(':').collect();
        let (h, m, s) = match parts[..] {
            [h] => (num(h)?, 0, 0),
            [h, m] => (num(h)?, num(m)?, 0),
            [h, m, s] => (num(h)?, num(m)?, num(s)?),
            _ => return None,
        };
        (days * 24 + h, m, s)
    } else {
        let v = num(main)?;
        (v / 10_000, v / 100 % 100, v % 100)
    };
    if m > 59 || s > 59 {
        return None;
    }
    let mut out = format!("{}{h:02}:{m:02}:{s:02}", if neg { "-" } else { "" });
    if fsp > 0 {
        out.push('.');
        out.extend(frac.chars().chain(std::iter::repeat('0')).take(fsp));
    }
    Some(out)
}

fn bad_value(s: &str) -> CnError {
    CnError::mysql(1366, format!("Incorrect value '{s}' for a partition key column"))
}

/// `[+-]digits[.digits]` at `scale` digits after the point, rounded half
/// away from zero as MySQL stores decimals.
fn normalize_decimal(t: &str, scale: usize) -> Option<String> {
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits: Vec<u8> =
        int.bytes().chain(frac.bytes().chain(std::iter::repeat(b'0')).take(scale)).map(|b| b - b'0').collect();
    if frac.len() > scale && frac.as_bytes()[scale] >= b'5' {
        let mut i = digits.len();
        loop {
            if i == 0 {
                digits.insert(0, 1);
                break;
            }
            i -= 1;
            if digits[i] == 9 {
                digits[i] = 0;
            } else {
                digits[i] += 1;
                break;
            }
        }
    }
    let split = digits.len() - scale;
    let int_part: String = digits[..split].iter().map(|d| (d + b'0') as char).collect();
    let int_part = int_part.trim_start_matches('0');
    let int_part = if int_part.is_empty() { "0" } else { int_part };
    let frac_part: String = digits[split..].iter().map(|d| (d + b'0') as char).collect();
    let zero = int_part == "0" && frac_part.bytes().all(|b| b == b'0');
    let sign = if neg && !zero { "-" } else { "" };
    Some(if scale > 0 { format!("{sign}{int_part}.{frac_part}") } else { format!("{sign}{int_part}") })
}

/// `YYYY-MM-DD[ HH:MM:SS[.f]]` in MySQL's canonical spelling. As MariaDB
/// reads dates (MySQL 8.0 reference, 11.2.2 "The DATE, DATETIME, and
/// TIMESTAMP Types"): any punctuation between the parts; a year of two
/// digits is 1970-1999 from 70, else 2000-2069; digits alone are
/// `YYYYMMDD[HHMMSS]` or `YYMMDD[HHMMSS]`.
fn normalize_temporal(t: &str, with_time: bool, fsp: u8) -> Option<String> {
    // The fraction is a last group after a '.' that follows the seconds
    // (`2020-01-02 03:04:05.5`, `20200102030405.5`); `2020.01.02` has none.
    let (main, frac) = match t.rsplit_once('.') {
        Some((m, f)) if f.bytes().all(|b| b.is_ascii_digit()) => {
            let groups = m.split(|c: char| !c.is_ascii_digit()).filter(|p| !p.is_empty()).count();
            let digits_only = m.bytes().all(|b| b.is_ascii_digit());
            if groups == 6 || digits_only && matches!(m.len(), 12 | 14) {
                (m, f)
            } else {
                (t, "")
            }
        }
        _ => (t, ""),
    };
    let mut parts: Vec<&str> = main.split(|c: char| !c.is_ascii_digit()).filter(|p| !p.is_empty()).collect();
    if let [digits] = parts[..] {
        let year_len = match digits.len() {
            8 | 14 => 4,
            6 | 12 => 2,
            _ => return None,
        };
        parts = vec![&digits[..year_len]];
        let mut rest = &digits[year_len..];
        while !rest.is_empty() {
            parts.push(&rest[..2]);
            rest = &rest[2..];
        }
    }
    let mut nums: Vec<u32> = parts.iter().map(|p| p.parse().ok()).collect::<Option<_>>()?;
    if nums.len() < 3 {
        return None;
    }
    if parts[0].len() == 2 {
        nums[0] += if nums[0] < 70 { 2000 } else { 1900 };
    }
    let g = |i: usize| nums.get(i).copied().unwrap_or(0);
    let date = format!("{:04}-{:02}-{:02}", g(0), g(1), g(2));
    if !with_time {
        return Some(date);
    }
    let mut s = format!("{date} {:02}:{:02}:{:02}", g(3), g(4), g(5));
    if fsp > 0 {
        let f: String = frac.chars().chain(std::iter::repeat('0')).take(fsp as usize).collect();
        s.push('.');
        s.push_str(&f);
    }
    Some(s)
}

/// FNV-1a 64 over type-tagged bytes of each key value, then SplitMix64.
pub fn hash_key(values: &[KeyValue]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= *b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for v in values {
        match v {
            KeyValue::Null => feed(&[0]),
            KeyValue::Int(i) => {
                feed(&[1]);
                feed(&i.to_le_bytes());
            }
            KeyValue::Text(s) => {
                feed(&[2]);
                feed(s.as_bytes());
                feed(&[0xff]);
            }
            KeyValue::Bytes(b) => {
                feed(&[3]);
                feed(b);
                feed(&[0xff]);
            }
        }
    }
    let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Orders two canonical values of the same column for RANGE partitioning.
fn cmp_range(kind: TypeKind, a: &KeyValue, b: &KeyValue) -> std::cmp::Ordering {
    match (kind, a, b) {
        (TypeKind::Decimal { .. } | TypeKind::Float | TypeKind::Double, KeyValue::Text(x), KeyValue::Text(y)) => {
            let (x, y) = (x.parse::<f64>().unwrap_or(0.0), y.parse::<f64>().unwrap_or(0.0));
            x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal)
        }
        _ => a.cmp(b),
    }
}

/// The partition of `table` that holds a row whose partition-key columns
/// have the given values (text form, `None` = NULL), in
/// [`Partitioning::key_columns`] order. Broadcast and single tables have
/// partition 0.
pub fn partition_for(table: &TableDef, key: &[Option<&str>]) -> Result<usize> {
    let canon = |col: &str, v: Option<&str>| match table.column(col) {
        Some(c) => canonical_for(c, v),
        None => canonical(TypeKind::String, v),
    };
    let kind_of = |col: &str| table.column(col).map(|c| c.kind).unwrap_or(TypeKind::String);
    match &table.partitioning {
        Partitioning::Hash { columns, count, .. } => {
            let vals = columns.iter().zip(key).map(|(c, v)| canon(c, *v)).collect::<Result<Vec<_>>>()?;
            Ok((hash_key(&vals) % *count as u64) as usize)
        }
        Partitioning::Range { column, bounds, .. } => {
            let kind = kind_of(column);
            let v = canon(column, key.first().copied().flatten())?;
            for (i, b) in bounds.iter().enumerate() {
                match b {
                    None => return Ok(i),
                    Some(b) => {
                        // NULL sorts below every value, as in MySQL RANGE partitioning.
                        if v == KeyValue::Null || cmp_range(kind, &v, &canon(column, Some(b))?).is_lt() {
                            return Ok(i);
                        }
                    }
                }
            }
            Err(no_partition(key.first().copied().flatten()))
        }
        Partitioning::List { column, values, .. } => {
            let v = canon(column, key.first().copied().flatten())?;
            for (i, vals) in values.iter().enumerate() {
                for lit in vals {
                    let lv = if lit.eq_ignore_ascii_case("null") { KeyValue::Null } else { canon(column, Some(lit))? };
                    if lv == v {
                        return Ok(i);
                    }
                }
            }
            Err(no_partition(key.first().copied().flatten()))
        }
        Partitioning::Broadcast | Partitioning::Single => Ok(0),
    }
}

/// [`partition_for`] for a row being written (row number `row`, from 1, for
/// the error): each partition-key value must be one MariaDB stores as it
/// is ([`check_stored`]). Under a non-strict `sql_mode` MariaDB would
/// store another value (a too-long string cut, an out-of-range number
/// clamped, an invalid date zeroed) than the one the CN routed by, and a
/// lookup by the stored value would miss the row; so such a key value is
/// refused as strict mode refuses it, whatever the session's mode.
pub fn partition_for_write(table: &TableDef, key: &[Option<&str>], row: usize) -> Result<usize> {
    for (c, v) in table.partitioning.key_columns().iter().zip(key) {
        if let Some(col) = table.column(c) {
            check_stored(col, *v, row)?;
        }
    }
    partition_for(table, key)
}

/// Checks that `text` (`None`: NULL) is stored unchanged in column `col`:
/// a string no longer than a CHAR / VARCHAR / VARBINARY's length, an
/// integer or DECIMAL in the column's range, a date or datetime that
/// exists (zero parts as MariaDB's default `sql_mode` allows:
/// `0000-00-00`, `2020-05-00`). Errors: MySQL's strict-mode errors 1406
/// (data too long), 1264 (out of range), 1292 (incorrect date), naming
/// `col` and `row`. Other types are not checked.
pub fn check_stored(col: &crate::catalog::ColumnMeta, text: Option<&str>, row: usize) -> Result<()> {
    let Some(s) = text else { return Ok(()) };
    let too_long = || CnError::mysql(1406, format!("Data too long for column '{}' at row {row}", col.name));
    let out_of_range = || CnError::mysql(1264, format!("Out of range value for column '{}' at row {row}", col.name));
    // As MariaDB's information_schema gives it: lower case.
    let ty = col.sql_type.as_str();
    let longer = |n: usize| type_length(ty).is_some_and(|max| n > max);
    match col.kind {
        TypeKind::String if (ty.starts_with("char") || ty.starts_with("varchar")) && longer(s.chars().count()) => {
            Err(too_long())
        }
        TypeKind::Binary if (ty.starts_with("varbinary") || ty.starts_with("binary")) && longer(s.len()) => {
            Err(too_long())
        }
        TypeKind::Int { .. } if ty.starts_with("year") => match canonical_for(col, Some(s))? {
            KeyValue::Int(0 | 1901..=2155) => Ok(()),
            _ => Err(out_of_range()),
        },
        TypeKind::Int { unsigned, bytes } if !ty.starts_with("bit") => {
            let KeyValue::Int(v) = canonical(col.kind, Some(s))? else { return Ok(()) };
            let bits = u32::from(bytes.clamp(1, 8)) * 8;
            let (lo, hi) =
                if unsigned { (0, (1i128 << bits) - 1) } else { (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1) };
            if v < lo || v > hi {
                return Err(out_of_range());
            }
            Ok(())
        }
        TypeKind::Decimal { precision, scale } => {
            let KeyValue::Text(t) = canonical(col.kind, Some(s))? else { return Ok(()) };
            let int_digits = t.trim_start_matches('-').split('.').next().unwrap_or("").trim_start_matches('0').len();
            if int_digits > usize::from(precision).saturating_sub(scale.max(0) as usize) {
                return Err(out_of_range());
            }
            Ok(())
        }
        TypeKind::Date | TypeKind::DateTime { .. }
            if normalize_temporal(s.trim(), true, 0).filter(|n| stored_temporal(n)).is_none() =>
        {
            let what = if col.kind == TypeKind::Date { "date" } else { "datetime" };
            Err(CnError::mysql(1292, format!("Incorrect {what} value: '{s}' for column '{}' at row {row}", col.name)))
        }
        _ => Ok(()),
    }
}

/// Whether MariaDB stores the date or datetime text `t` as it is (in its
/// default `sql_mode`): year, month 0-12 and day 0-31, a real day when
/// month and day are both set, and a time of day within 23:59:59.
fn stored_temporal(t: &str) -> bool {
    let main = t.split_once('.').map_or(t, |(m, _)| m);
    let nums: Option<Vec<u32>> =
        main.split(|c: char| !c.is_ascii_digit()).filter(|p| !p.is_empty()).map(|p| p.parse().ok()).collect();
    let Some(nums) = nums else { return false };
    if nums.len() < 3 || nums.len() > 6 {
        return false;
    }
    let g = |i: usize| nums.get(i).copied().unwrap_or(0);
    let (y, m, d) = (g(0), g(1), g(2));
    let date_ok = y <= 9999
        && m <= 12
        && d <= 31
        && (m == 0 || d == 0 || chrono::NaiveDate::from_ymd_opt(y as i32, m, d).is_some());
    date_ok && g(3) <= 23 && g(4) <= 59 && g(5) <= 59
}

fn no_partition(v: Option<&str>) -> CnError {
    CnError::mysql(
        code::ER_NO_PARTITION_FOR_GIVEN_VALUE,
        format!("Table has no partition for value {}", v.unwrap_or("NULL")),
    )
}

/// The partitions a range predicate `lo <op> col <op> hi` may touch on a
/// RANGE table; every partition for other partitionings.
pub fn partitions_for_range(table: &TableDef, lo: Option<&str>, hi: Option<&str>) -> Result<Vec<usize>> {
    let all: Vec<usize> = (0..table.partitions.len()).collect();
    let Partitioning::Range { bounds, .. } = &table.partitioning else {
        return Ok(all);
    };
    let first = match lo {
        Some(l) => partition_for(table, &[Some(l)]).unwrap_or(bounds.len()),
        None => 0,
    };
    let last = match hi {
        Some(h) => partition_for(table, &[Some(h)]).unwrap_or(bounds.len().saturating_sub(1)),
        None => bounds.len().saturating_sub(1),
    };
    Ok((first..=last.min(bounds.len().saturating_sub(1))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key column `k` of the given SQL type (lower case, as stored).
    fn col(sql_type: &str, kind: TypeKind) -> crate::catalog::ColumnMeta {
        crate::catalog::ColumnMeta {
            name: "k".into(),
            sql_type: sql_type.into(),
            kind,
            nullable: true,
            auto_increment: false,
            hidden: false,
        }
    }

    #[test]
    fn key_values_mariadb_would_change_are_refused() {
        let code =
            |c: &crate::catalog::ColumnMeta, v: &str| check_stored(c, Some(v), 1).err().map(|e| e.to_mysql().code);
        let s = col("varchar(3)", TypeKind::String);
        assert_eq!((code(&s, "abc"), code(&s, "äöü"), code(&s, "abcd")), (None, None, Some(1406)));
        assert_eq!(check_stored(&s, None, 1).ok(), Some(()));
        let t = col("tinyint", TypeKind::Int { unsigned: false, bytes: 1 });
        assert_eq!(
            (code(&t, "-128"), code(&t, "127"), code(&t, "128"), code(&t, "-129")),
            (None, None, Some(1264), Some(1264))
        );
        let u = col("tinyint unsigned", TypeKind::Int { unsigned: true, bytes: 1 });
        assert_eq!((code(&u, "255"), code(&u, "256"), code(&u, "-1")), (None, Some(1264), Some(1264)));
        let b = col("bigint unsigned", TypeKind::Int { unsigned: true, bytes: 8 });
        assert_eq!((code(&b, "18446744073709551615"), code(&b, "18446744073709551616")), (None, Some(1264)));
        let d = col("decimal(4,2)", TypeKind::Decimal { precision: 4, scale: 2 });
        assert_eq!((code(&d, "99.994"), code(&d, "99.995"), code(&d, "-99.99")), (None, Some(1264), None));
        let date = col("date", TypeKind::Date);
        for (v, ok) in [
            ("2020-02-29", true),
            ("2020-05-00", true),
            ("0000-00-00", true),
            ("2021-02-29", false),
            ("2020-13-01", false),
        ] {
            assert_eq!(code(&date, v).is_none(), ok, "{v}");
        }
        let dt = col("datetime", TypeKind::DateTime { fsp: 0 });
        assert_eq!((code(&dt, "2020-01-01 23:59:59"), code(&dt, "2020-01-01 24:00:00")), (None, Some(1292)));
    }

    #[test]
    fn canonical_forms_agree() {
        let int = TypeKind::Int { unsigned: false, bytes: 4 };
        assert_eq!(canonical(int, Some("5")).unwrap(), canonical(int, Some(" 5.0")).unwrap());
        let s = TypeKind::String;
        assert_eq!(canonical(s, Some("Abc")).unwrap(), canonical(s, Some("aBC  ")).unwrap());
        assert_ne!(canonical(s, Some("abc")).unwrap(), canonical(s, Some(" abc")).unwrap());
        // Accents fold too: MariaDB finds 'àbc' with `= 'abc'`, so both must route alike.
        assert_eq!(canonical(s, Some("àbc")).unwrap(), canonical(s, Some("ABC")).unwrap());
        let d = TypeKind::Decimal { precision: 10, scale: 2 };
        assert_eq!(canonical(d, Some("1.5")).unwrap(), KeyValue::Text("1.50".into()));
        assert_eq!(canonical(d, Some("0001.005")).unwrap(), KeyValue::Text("1.01".into()));
        assert_eq!(canonical(d, Some("-9.999")).unwrap(), KeyValue::Text("-10.00".into()));
        assert_eq!(canonical(d, Some("-0.001")).unwrap(), KeyValue::Text("0.00".into()));
        let dt = TypeKind::DateTime { fsp: 0 };
        assert_eq!(canonical(dt, Some("2024-1-2 3:4:5")).unwrap(), KeyValue::Text("2024-01-02 03:04:05".into()));
        assert!(canonical(int, Some("abc")).is_err());
        // As MariaDB stores them: two-digit years, digits without punctuation.
        let date = TypeKind::Date;
        for spelling in ["20-01-02", "2020.1.2", "20200102", "200102"] {
            assert_eq!(canonical(date, Some(spelling)).unwrap(), KeyValue::Text("2020-01-02".into()), "{spelling}");
        }
        assert_eq!(canonical(date, Some("99-1-2")).unwrap(), KeyValue::Text("1999-01-02".into()));
        assert_eq!(canonical(date, Some("5-01-02")).unwrap(), KeyValue::Text("0005-01-02".into()));
        assert_eq!(canonical(dt, Some("990102030405")).unwrap(), KeyValue::Text("1999-01-02 03:04:05".into()));
    }

    #[test]
    fn column_types_canonicalize_as_mariadb_stores_them() {
        let canon = |c: &crate::catalog::ColumnMeta, v: &str| canonical_for(c, Some(v)).unwrap();
        let year = col("year", TypeKind::Int { unsigned: true, bytes: 1 });
        for (v, stored) in [("70", 1970), ("5", 2005), ("05", 2005), ("69", 2069), ("2000", 2000), ("0", 0)] {
            assert_eq!(canon(&year, v), KeyValue::Int(stored), "{v}");
        }
        let int = col("tinyint", TypeKind::Int { unsigned: true, bytes: 1 });
        assert_eq!(canon(&int, "70"), KeyValue::Int(70));
        let bin = col("binary(4)", TypeKind::Binary);
        assert_eq!(canon(&bin, "ab"), KeyValue::Bytes(b"ab\0\0".to_vec()));
        assert_eq!(canon(&col("varbinary(4)", TypeKind::Binary), "ab"), KeyValue::Bytes(b"ab".to_vec()));
        let time = col("time", TypeKind::Time);
        for (v, stored) in [
            ("1:2:3", "01:02:03"),
            ("10203", "01:02:03"),
            ("1 2:3:4", "26:03:04"),
            ("-1:2", "-01:02:00"),
            ("123", "00:01:23"),
            ("01:02:03", "01:02:03"),
        ] {
            assert_eq!(canon(&time, v), KeyValue::Text(stored.into()), "{v}");
        }
        assert_eq!(canon(&col("time(3)", TypeKind::Time), "1:2:3.5"), KeyValue::Text("01:02:03.500".into()));
        let code =
            |c: &crate::catalog::ColumnMeta, v: &str| check_stored(c, Some(v), 1).err().map(|e| e.to_mysql().code);
        assert_eq!((code(&year, "1901"), code(&year, "1900"), code(&year, "2156")), (None, Some(1264), Some(1264)));
        assert_eq!((code(&bin, "abcd"), code(&bin, "abcde")), (None, Some(1406)));
        let date = col("date", TypeKind::Date);
        assert_eq!((code(&date, "20200229"), code(&date, "20210229")), (None, Some(1292)));
    }

    #[test]
    fn hash_is_stable_and_spreads() {
        // Fixed values: a change of the partition function would strand rows.
        assert_eq!(hash_key(&[KeyValue::Int(1)]) % 4, hash_key(&[KeyValue::Int(1)]) % 4);
        let golden = hash_key(&[KeyValue::Int(42)]);
        assert_eq!(golden, hash_key(&[KeyValue::Int(42)]));
        let mut counts = [0usize; 8];
        for i in 0..8000 {
            counts[(hash_key(&[KeyValue::Int(i)]) % 8) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800 && c < 1200), "{counts:?}");
    }
}
