//! MySQL's `DATE_FORMAT(date, format)` where the CN computes it (MySQL
//! 8.0 reference, 14.7 "Date and Time Functions", the specifier table of
//! DATE_FORMAT). DataFusion's `date_format` is its `to_char` with chrono's
//! specifiers, which share a few letters with MySQL's and mean something
//! else by most (`%i`, `%s`, `%M`, `%W`, `%D`, `%h`, `%c`, `%U` …): the
//! answer was silently wrong. Registered as `date_format`; on a shard the
//! same call is MariaDB's own.

use super::functions::{to_days, DAY_NAMES, MONTH_NAMES};
use chrono::{Datelike, NaiveDateTime, Timelike};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::compute::{cast_with_options, CastOptions};
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility};
use std::fmt::Write;
use std::sync::Arc;

/// `WEEK()`'s mode bits (MySQL's `sql_time.h`).
const MONDAY_FIRST: u32 = 1;
const WEEK_YEAR: u32 = 2;
const FIRST_WEEKDAY: u32 = 4;

fn days_in_year(y: i32) -> i64 {
    if chrono::NaiveDate::from_ymd_opt(y, 2, 29).is_some() {
        366
    } else {
        365
    }
}

/// MySQL's `calc_weekday`: 0 = Monday (or Sunday when `sunday_first`).
fn weekday(daynr: i64, sunday_first: bool) -> i64 {
    (daynr + 5 + i64::from(sunday_first)).rem_euclid(7)
}

/// MySQL's `calc_week` (`sql_time.cc`): the week of `d` under the mode
/// bits `behaviour`, and the year it belongs to.
pub fn calc_week(d: chrono::NaiveDate, behaviour: u32) -> (i64, i32) {
    let daynr = to_days(d);
    let mut first_daynr = to_days(d.with_ordinal(1).expect("day 1 exists"));
    let monday_first = behaviour & MONDAY_FIRST != 0;
    let mut week_year = behaviour & WEEK_YEAR != 0;
    let first_weekday = behaviour & FIRST_WEEKDAY != 0;
    let mut wd = weekday(first_daynr, !monday_first);
    let mut year = d.year();
    if d.month() == 1 && i64::from(d.day()) <= 7 - wd {
        if !week_year && ((first_weekday && wd != 0) || (!first_weekday && wd >= 4)) {
            return (0, year);
        }
        week_year = true;
        year -= 1;
        let days = days_in_year(year);
        first_daynr -= days;
        wd = (wd + 53 * 7 - days).rem_euclid(7);
    }
    let days = if (first_weekday && wd != 0) || (!first_weekday && wd >= 4) {
        daynr - (first_daynr + (7 - wd))
    } else {
        daynr - (first_daynr - wd)
    };
    if week_year && days >= 52 * 7 {
        let wd = (wd + days_in_year(year)).rem_euclid(7);
        if (!first_weekday && wd < 4) || (first_weekday && wd == 0) {
            return (1, year + 1);
        }
    }
    (days / 7 + 1, year)
}

/// Walks the format `f`: its text is copied, each specifier (the character
/// after a `%`) is written by `spec`; `None` when `spec` gives none.
fn expand(f: &str, mut spec: impl FnMut(char, &mut String) -> Option<()>) -> Option<String> {
    let mut out = String::with_capacity(f.len() + 16);
    let mut chars = f.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(s) = chars.next() else {
            // A `%` at the end stands for itself.
            out.push('%');
            break;
        };
        spec(s, &mut out)?;
    }
    Some(out)
}

/// `t` formatted by MySQL's DATE_FORMAT specifiers; a `%` before any
/// other character gives that character.
pub fn format(t: NaiveDateTime, f: &str) -> String {
    let hour12 = |h: u32| if h.is_multiple_of(12) { 12 } else { h % 12 };
    let (d, h) = (t.date(), t.hour());
    let written = expand(f, |s, out| {
        let _ = match s {
            'a' => write!(out, "{}", &DAY_NAMES[d.weekday().num_days_from_monday() as usize][..3]),
            'b' => write!(out, "{}", &MONTH_NAMES[d.month0() as usize][..3]),
            'c' => write!(out, "{}", d.month()),
            'D' => {
                let n = d.day();
                let suffix = match (n % 100, n % 10) {
                    (11..=13, _) => "th",
                    (_, 1) => "st",
                    (_, 2) => "nd",
                    (_, 3) => "rd",
                    _ => "th",
                };
                write!(out, "{n}{suffix}")
            }
            'd' => write!(out, "{:02}", d.day()),
            'e' => write!(out, "{}", d.day()),
            'f' => write!(out, "{:06}", t.nanosecond() / 1000),
            'H' => write!(out, "{h:02}"),
            'h' | 'I' => write!(out, "{:02}", hour12(h)),
            'i' => write!(out, "{:02}", t.minute()),
            'j' => write!(out, "{:03}", d.ordinal()),
            'k' => write!(out, "{h}"),
            'l' => write!(out, "{}", hour12(h)),
            'M' => write!(out, "{}", MONTH_NAMES[d.month0() as usize]),
            'm' => write!(out, "{:02}", d.month()),
            'p' => write!(out, "{}", if h < 12 { "AM" } else { "PM" }),
            'r' => {
                write!(out, "{:02}:{:02}:{:02} {}", hour12(h), t.minute(), t.second(), if h < 12 { "AM" } else { "PM" })
            }
            'S' | 's' => write!(out, "{:02}", t.second()),
            'T' => write!(out, "{h:02}:{:02}:{:02}", t.minute(), t.second()),
            'U' => write!(out, "{:02}", calc_week(d, FIRST_WEEKDAY).0),
            'u' => write!(out, "{:02}", calc_week(d, MONDAY_FIRST).0),
            'V' => write!(out, "{:02}", calc_week(d, WEEK_YEAR | FIRST_WEEKDAY).0),
            'v' => write!(out, "{:02}", calc_week(d, WEEK_YEAR | MONDAY_FIRST).0),
            'X' => write!(out, "{:04}", calc_week(d, WEEK_YEAR | FIRST_WEEKDAY).1),
            'x' => write!(out, "{:04}", calc_week(d, WEEK_YEAR | MONDAY_FIRST).1),
            'W' => write!(out, "{}", DAY_NAMES[d.weekday().num_days_from_monday() as usize]),
            'w' => write!(out, "{}", d.weekday().num_days_from_sunday()),
            'Y' => write!(out, "{:04}", d.year()),
            'y' => write!(out, "{:02}", d.year().rem_euclid(100)),
            other => write!(out, "{other}"),
        };
        Some(())
    });
    written.unwrap_or_default()
}

/// The zero date `0000-00-00` formatted as MariaDB formats it: zeros for
/// its numbers, midnight for its time (`%h` is 12), `0th` for `%D`;
/// `None` (NULL) when the format names a weekday, a month or a day of the
/// year, which it has none of. MariaDB's week numbers of it (`%U`, `%u`,
/// `%V`, `%v`) are not a week: NULL here too.
pub fn format_zero(f: &str) -> Option<String> {
    expand(f, |s, out| {
        out.push_str(match s {
            'Y' | 'X' | 'x' => "0000",
            'y' | 'm' | 'd' | 'H' | 'i' | 'S' | 's' => "00",
            'c' | 'e' | 'k' => "0",
            'D' => "0th",
            'f' => "000000",
            'h' | 'I' | 'l' => "12",
            'p' => "AM",
            'r' => "12:00:00 AM",
            'T' => "00:00:00",
            'a' | 'b' | 'j' | 'M' | 'U' | 'u' | 'V' | 'v' | 'W' | 'w' => return None,
            other => {
                out.push(other);
                return Some(());
            }
        });
        Some(())
    })
}

/// `date_format(date, format)`: see the module documentation. A date
/// given as a string is read as a DATE or DATETIME; one that does not
/// read as either gives NULL, as in MySQL.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MysqlDateFormat {
    signature: Signature,
}

impl MysqlDateFormat {
    pub const NAME: &'static str = "date_format";

    pub fn new() -> Self {
        MysqlDateFormat { signature: Signature::any(2, Volatility::Immutable) }
    }
}

impl Default for MysqlDateFormat {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for MysqlDateFormat {
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
        let [t, f] = arrays.as_slice() else {
            return exec_err!("DATE_FORMAT takes two arguments");
        };
        let safe = CastOptions { safe: true, ..Default::default() };
        let micros: ArrayRef = cast_with_options(t, &DataType::Timestamp(TimeUnit::Microsecond, None), &safe)?;
        let micros = micros.as_primitive::<TimestampMicrosecondType>();
        let f = cast_with_options(f, &DataType::Utf8, &safe)?;
        let f = f.as_string::<i32>();
        let out: StringArray = (0..micros.len())
            .map(|i| {
                if micros.is_null(i) || f.is_null(i) {
                    return None;
                }
                if micros.value(i) == crate::executor::convert::ZERO_DATETIME_MICROS {
                    return format_zero(f.value(i));
                }
                let t = chrono::DateTime::from_timestamp_micros(micros.value(i))?.naive_utc();
                Some(format(t, f.value(i)))
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specifiers_are_mysqls() {
        let t = |s: &str| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap();
        // As MariaDB 10.11 formats them.
        assert_eq!(
            format(t("1995-01-31 00:00:00"), "%W %M %D %j %U %u %V %v %X %x"),
            "Tuesday January 31st 031 05 05 05 05 1995 1995"
        );
        assert_eq!(
            format(t("1995-12-31 00:00:00"), "%W %M %D %j %U %u %V %v %X %x"),
            "Sunday December 31st 365 53 52 53 52 1995 1995"
        );
        assert_eq!(
            format(t("2000-03-01 00:00:00"), "%W %M %D %j %U %u %V %v %X %x"),
            "Wednesday March 1st 061 09 09 09 09 2000 2000"
        );
        assert_eq!(
            format(
                t("2001-02-03 13:04:05.000600"),
                "%Y-%m-%d %H:%i:%s.%f %a %b %c %e %h %I %k %l %p %r %T %w %y %% %q"
            ),
            "2001-02-03 13:04:05.000600 Sat Feb 2 3 01 01 13 1 PM 01:04:05 PM 13:04:05 6 01 % q"
        );
        // The first days of a year may belong to the last week of the one
        // before (%X, %V) or to week 0 (%U).
        assert_eq!(format(t("2021-01-01 00:00:00"), "%U %u %V %v %X %x %D"), "00 00 52 53 2020 2020 1st");
        assert_eq!(format(t("2012-12-31 00:00:00"), "%U %u %V %v %X %x %D"), "53 53 53 01 2012 2013 31st");
        assert_eq!(format(t("2000-01-12 00:00:00"), "%D %D"), "12th 12th");
        assert_eq!(format(t("2000-01-22 00:00:00"), "%D a%"), "22nd a%");
        assert_eq!(format(t("2000-01-01 00:00:00"), "%h %l %p"), "12 12 AM");
    }
}
