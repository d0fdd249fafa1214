//! MySQL syntax sqlparser 0.62 does not parse or reads otherwise than
//! MySQL, made right around the parse ([`parse`]): the operators `a MOD b`
//! (as `%`) and `BINARY x` (sqlparser casts all that follows `BINARY`;
//! MySQL only its operand), the multi-table `UPDATE t, u SET …` (as a
//! CROSS JOIN), and
//! `EXTRACT(unit FROM x)` and `INTERVAL 'v' unit` with MySQL's composite
//! units (`YEAR_MONTH`, `DAY_HOUR`, …, `SECOND_MICROSECOND`; MySQL 8.0
//! reference, 14.7 "Temporal Intervals"), which sqlparser 0.62's MySQL
//! dialect does not parse (it takes custom units only for dialects whose
//! type the parser does not test for MySQL's paths, like
//! [`super::rollup`]'s modifier).
//!
//! An INTERVAL's value must be a string or number literal
//! (`INTERVAL '1:30' HOUR_MINUTE`): [`mark`] writes
//! `__cni_hour_minute('1:30')`, [`restore`] makes it an `Expr::Interval`
//! with the unit as a custom field (printed back as MySQL's), and where the
//! CN computes, [`interval_value`] turns it into an interval of one unit.
//!
//! Before parsing, [`mark`] rewrites each `EXTRACT(YEAR_MONTH FROM` into
//! `__cnx_year_month(` padded with spaces to the same length, so
//! every position the parser records (and the select items' text that
//! [`super::names::name_as_typed`] cuts from the original statement) stays
//! where it was. After parsing, [`restore`] turns those calls into
//! `Expr::Extract` with the unit as a custom field, which prints back as
//! MySQL's `EXTRACT(YEAR_MONTH FROM x)`: what a DN is sent. Where the CN
//! computes it, [`crate::optimizer::semantics`] plans it as the shard
//! function `cn_extract('YEAR_MONTH', x)`, pushed to the shards as the same
//! EXTRACT or computed by a DN ([`crate::executor::dn_eval`]).

use super::rollup::{is_word_byte, skip_quoted_or_comment};
use datafusion::sql::sqlparser::ast::{
    DateTimeField, Expr, ExtractSyntax, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, Interval, ObjectName,
    Statement, VisitMut, VisitorMut,
};
use std::ops::ControlFlow;

/// MySQL's composite units of `EXTRACT` (and of `INTERVAL`).
pub const COMPOSITE_UNITS: &[&str] = &[
    "YEAR_MONTH",
    "DAY_HOUR",
    "DAY_MINUTE",
    "DAY_SECOND",
    "DAY_MICROSECOND",
    "HOUR_MINUTE",
    "HOUR_SECOND",
    "HOUR_MICROSECOND",
    "MINUTE_SECOND",
    "MINUTE_MICROSECOND",
    "SECOND_MICROSECOND",
];

/// The prefix of the calls [`mark`] writes for EXTRACT.
const PREFIX: &str = "__cnx_";
/// The prefix of the calls [`mark`] writes for INTERVAL.
const INTERVAL_PREFIX: &str = "__cni_";

/// `sql` with each `EXTRACT ( <composite unit> FROM` outside quotes and
/// comments (on one line) replaced by `__cnx_<unit>(` and spaces, each
/// composite `INTERVAL` by `__cni_<unit>(v)`, and each `MOD` operator
/// (which sqlparser 0.62 does not parse) by `%`, all of the same length;
/// `None` when it has none (found without allocating in the common case).
pub fn mark(sql: &str) -> Option<String> {
    let b = sql.as_bytes();
    if !b.windows(7).any(|w| w.eq_ignore_ascii_case(b"extract") || w.eq_ignore_ascii_case(b"interva"))
        && !b.windows(3).any(|w| w.eq_ignore_ascii_case(b"mod"))
        && !b.windows(6).any(|w| w.eq_ignore_ascii_case(b"binary"))
    {
        return None;
    }
    let blanks = |mut i: usize| {
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        i
    };
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < b.len() {
        if let Some(next) = skip_quoted_or_comment(b, i) {
            i = next;
            continue;
        }
        match b[i] {
            c if is_word_byte(c) => {
                let end = word_end(b, i);
                let starts = i == 0 || !is_word_byte(b[i - 1]);
                if starts && b[i..end].eq_ignore_ascii_case(b"interval") {
                    // The function `INTERVAL(N, N1, …)`, not an interval
                    // `INTERVAL (expr) unit`: a call sqlparser reads.
                    if interval_function_after(b, blanks(end)) {
                        let o = out.get_or_insert_with(|| b.to_vec());
                        o[i..end].copy_from_slice(INTERVAL_CALL.as_bytes());
                        i = end;
                        continue;
                    }
                    if let Some((unit, value, unit_end)) = composite_interval_after(b, end, &blanks) {
                        let call = format!("{INTERVAL_PREFIX}{}({})", unit.to_ascii_lowercase(), &sql[value.clone()]);
                        let o = out.get_or_insert_with(|| b.to_vec());
                        o[i..i + call.len()].copy_from_slice(call.as_bytes());
                        o[i + call.len()..unit_end].fill(b' ');
                        i = unit_end;
                        continue;
                    }
                }
                // `a MOD b` (MOD is a reserved word: as a name it is quoted),
                // not the function `MOD(a, b)`: `a %   b`.
                if starts && b[i..end].eq_ignore_ascii_case(b"mod") && b.get(blanks(end)) != Some(&b'(') {
                    let o = out.get_or_insert_with(|| b.to_vec());
                    o[i..end].copy_from_slice(b"%  ");
                    i = end;
                    continue;
                }
                // The operator `BINARY x` (binding tighter than any other,
                // where sqlparser casts all that follows): `__cnb(x)`.
                if starts && b[i..end].eq_ignore_ascii_case(b"binary") {
                    if let Some((from, to)) = binary_operand(b, i, end, &blanks) {
                        let o = out.get_or_insert_with(|| b.to_vec());
                        let call = format!("{BINARY_CALL}({})", &sql[from..to]);
                        o[i..i + call.len()].copy_from_slice(call.as_bytes());
                        o[i + call.len()..to].fill(b' ');
                        i = to;
                        continue;
                    }
                }
                let is_extract = starts && b[i..end].eq_ignore_ascii_case(b"extract");
                if is_extract {
                    if let Some((unit, from_end)) = composite_after(b, end, &blanks) {
                        let call = format!("{PREFIX}{}(", unit.to_ascii_lowercase());
                        let o = out.get_or_insert_with(|| b.to_vec());
                        o[i..i + call.len()].copy_from_slice(call.as_bytes());
                        o[i + call.len()..from_end].fill(b' ');
                        i = from_end;
                        continue;
                    }
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    out.and_then(|o| String::from_utf8(o).ok())
}

/// Where the word (name or keyword) starting at `b[i]` ends.
fn word_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_word_byte(b[i]) {
        i += 1;
    }
    i
}

/// The name [`mark`] gives the function `INTERVAL(N, N1, …)` (as long as
/// `INTERVAL`), which [`restore`] names `interval` again.
const INTERVAL_CALL: &str = "__cnival";

/// Whether `b[at..]` is a parenthesized list with a comma at its top
/// level: the arguments of the function `INTERVAL`, where an interval's
/// value has none.
fn interval_function_after(b: &[u8], at: usize) -> bool {
    b.get(at) == Some(&b'(') && parenthesized(b, at, false).is_some_and(|(_, comma)| comma)
}

/// The balanced parenthesis opening at `b[open]`: where it ends, and
/// whether a comma stands at its top level (quotes, comments and nested
/// parentheses skipped). `None` when it does not close, or, with
/// `one_line`, not before the line ends.
fn parenthesized(b: &[u8], open: usize, one_line: bool) -> Option<(usize, bool)> {
    let (mut i, mut depth, mut comma) = (open, 0usize, false);
    while i < b.len() {
        if let Some(next) = skip_quoted_or_comment(b, i) {
            i = next;
            continue;
        }
        match b[i] {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some((i + 1, comma));
                }
            }
            b',' if depth == 1 => comma = true,
            b'\n' if one_line => return None,
            _ => {}
        }
        i += 1;
    }
    None
}

/// The call [`mark`] writes for the operator `BINARY x`.
const BINARY_CALL: &str = "__cnb";

/// Keywords after which `BINARY` starts an operand (the operator), not
/// a type (`CAST(x AS BINARY)`, `b BINARY(16)`, `CHARACTER SET binary`).
const BEFORE_OPERAND: &[&str] = &[
    "SELECT", "WHERE", "AND", "OR", "NOT", "XOR", "ON", "WHEN", "THEN", "ELSE", "CASE", "BY", "HAVING", "DISTINCT",
    "ALL", "LIKE", "REGEXP", "RLIKE", "BETWEEN", "DIV", "RETURN",
];

/// For `BINARY` at `b[at..end]` used as the operator: the byte range of
/// its operand (a name, possibly qualified, a call, a literal, a
/// variable or a parenthesized expression) after one or more blanks; the
/// operand and `BINARY` on one line. `None` where `BINARY` names a type
/// or the operand is anything else (sqlparser's reading then stands).
fn binary_operand(b: &[u8], at: usize, end: usize, blanks: &dyn Fn(usize) -> usize) -> Option<(usize, usize)> {
    let mut p = at;
    while p > 0 && b[p - 1].is_ascii_whitespace() {
        p -= 1;
    }
    let after_operator = p == 0 || b"=<>!+-*/%(,|&^~".contains(&b[p - 1]);
    if !after_operator {
        let mut w = p;
        while w > 0 && is_word_byte(b[w - 1]) {
            w -= 1;
        }
        if w == p || !BEFORE_OPERAND.iter().any(|k| b[w..p].eq_ignore_ascii_case(k.as_bytes())) {
            return None;
        }
    }
    let from = blanks(end);
    if from == end {
        return None;
    }
    let to = match *b.get(from)? {
        b'(' => {
            let (to, _) = parenthesized(b, from, true)?;
            // `CONVERT(x, BINARY(16))`: a type's length.
            if b[from + 1..to - 1].iter().all(u8::is_ascii_digit) {
                return None;
            }
            to
        }
        b'\'' | b'"' => skip_quoted_or_comment(b, from)?,
        c if c == b'`' || c == b'@' || is_word_byte(c) => {
            let mut i = from;
            while b.get(i) == Some(&b'@') {
                i += 1;
            }
            loop {
                i = match b.get(i) {
                    Some(b'`') => skip_quoted_or_comment(b, i)?,
                    Some(&c) if is_word_byte(c) => word_end(b, i),
                    _ => return None,
                };
                match b.get(i) {
                    Some(b'.') => i += 1,
                    Some(b'(') => break parenthesized(b, i, true)?.0,
                    _ => break i,
                }
            }
        }
        _ => return None,
    };
    (!b[at..to].contains(&b'\n')).then_some((from, to))
}

/// After `EXTRACT` (ending at `at`): `( <unit> FROM` with a composite
/// unit, on one line: the unit and where `FROM` ends.
fn composite_after(b: &[u8], at: usize, blanks: &dyn Fn(usize) -> usize) -> Option<(&'static str, usize)> {
    let open = blanks(at);
    if b.get(open) != Some(&b'(') {
        return None;
    }
    let u = blanks(open + 1);
    let u_end = word_end(b, u);
    let unit = COMPOSITE_UNITS.iter().find(|c| b[u..u_end].eq_ignore_ascii_case(c.as_bytes()))?;
    let f = blanks(u_end);
    if f == u_end {
        return None;
    }
    let f_end = word_end(b, f);
    b[f..f_end].eq_ignore_ascii_case(b"from").then_some((unit, f_end))
}

/// After `INTERVAL` (ending at `at`): a string literal (no backslash) or
/// a number, then a composite unit, on one line: the unit, the value's
/// byte range, and where the unit ends.
fn composite_interval_after(
    b: &[u8],
    at: usize,
    blanks: &dyn Fn(usize) -> usize,
) -> Option<(&'static str, std::ops::Range<usize>, usize)> {
    let v = blanks(at);
    if v == at {
        return None;
    }
    let mut e = v;
    match b.get(v)? {
        b'\'' => {
            e += 1;
            loop {
                match b.get(e)? {
                    b'\'' if b.get(e + 1) == Some(&b'\'') => e += 2,
                    b'\'' => break,
                    b'\\' | b'\n' => return None,
                    _ => e += 1,
                }
            }
            e += 1;
        }
        b'-' | b'+' | b'0'..=b'9' | b'.' => {
            e += 1;
            while b.get(e).is_some_and(|c| c.is_ascii_digit() || *c == b'.') {
                e += 1;
            }
        }
        _ => return None,
    }
    let u = blanks(e);
    if u == e {
        return None;
    }
    let u_end = word_end(b, u);
    let unit = COMPOSITE_UNITS.iter().find(|c| b[u..u_end].eq_ignore_ascii_case(c.as_bytes()))?;
    Some((unit, v..e, u_end))
}

/// Turns the calls [`mark`] wrote back into `EXTRACT(<unit> FROM x)`.
pub fn restore(stmt: &mut Statement) {
    struct Restore;
    impl VisitorMut for Restore {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            let Expr::Function(f) = e else { return ControlFlow::Continue(()) };
            let name = f.name.to_string();
            if name == INTERVAL_CALL {
                f.name = ObjectName::from(vec![Ident::new("interval")]);
                return ControlFlow::Continue(());
            }
            if name == BINARY_CALL {
                if let FunctionArguments::List(list) = &mut f.args {
                    if let [FunctionArg::Unnamed(FunctionArgExpr::Expr(x))] = list.args.as_mut_slice() {
                        let x = std::mem::replace(x, Expr::value(datafusion::sql::sqlparser::ast::Value::Null));
                        *e = Expr::Cast {
                            kind: datafusion::sql::sqlparser::ast::CastKind::Cast,
                            expr: Box::new(x),
                            data_type: datafusion::sql::sqlparser::ast::DataType::Binary(None),
                            array: false,
                            format: None,
                        };
                    }
                }
                return ControlFlow::Continue(());
            }
            let (interval, unit) = match (name.strip_prefix(PREFIX), name.strip_prefix(INTERVAL_PREFIX)) {
                (Some(u), _) => (false, u.to_ascii_uppercase()),
                (_, Some(u)) => (true, u.to_ascii_uppercase()),
                _ => return ControlFlow::Continue(()),
            };
            let FunctionArguments::List(list) = &mut f.args else { return ControlFlow::Continue(()) };
            if !COMPOSITE_UNITS.contains(&unit.as_str()) || list.args.len() != 1 {
                return ControlFlow::Continue(());
            }
            let FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) = list.args.remove(0) else {
                return ControlFlow::Continue(());
            };
            *e = match interval {
                false => extract(&unit, x),
                true => Expr::Interval(Interval {
                    value: Box::new(x),
                    leading_field: Some(DateTimeField::Custom(Ident::new(unit))),
                    leading_precision: None,
                    last_field: None,
                    fractional_seconds_precision: None,
                }),
            };
            ControlFlow::Continue(())
        }
    }
    let _ = stmt.visit(&mut Restore);
}

/// `EXTRACT(<unit> FROM x)` with `unit` as a custom field: MySQL's text
/// when printed (what [`restore`] makes, and the shards get for the CN's
/// `cn_extract('UNIT', x)`).
pub fn extract(unit: &str, x: Expr) -> Expr {
    Expr::Extract { field: DateTimeField::Custom(Ident::new(unit)), syntax: ExtractSyntax::From, expr: Box::new(x) }
}

/// The composite unit of an `EXTRACT` [`restore`] made, if `field` is one.
pub fn composite_unit(field: &DateTimeField) -> Option<&'static str> {
    match field {
        DateTimeField::Custom(u) => COMPOSITE_UNITS.iter().find(|c| u.value.eq_ignore_ascii_case(c)).copied(),
        _ => None,
    }
}

/// The value of a composite-unit INTERVAL (`INTERVAL '1 2:30' DAY_MINUTE`)
/// in one unit, as MySQL reads it (MySQL 8.0 reference, 14.7: the numbers
/// of `text` separated by any other characters, right-aligned to the
/// unit's parts, a leading `-` negating the whole; a microseconds part of
/// fewer than 6 digits is scaled, `.5` being 500,000 µs): months for
/// `YEAR_MONTH` (`Month`), else seconds (`Second`) or, for the
/// `…_MICROSECOND` units, microseconds (`Microsecond`). `None` for a text
/// with more numbers than the unit has parts (MySQL's NULL).
pub fn interval_value(unit: &str, text: &str) -> Option<(i64, DateTimeField)> {
    // Each part's size in the result unit.
    let (parts, field): (&[i64], DateTimeField) = match unit {
        "YEAR_MONTH" => (&[12, 1], DateTimeField::Month),
        "DAY_HOUR" => (&[86_400, 3_600], DateTimeField::Second),
        "DAY_MINUTE" => (&[86_400, 3_600, 60], DateTimeField::Second),
        "DAY_SECOND" => (&[86_400, 3_600, 60, 1], DateTimeField::Second),
        "HOUR_MINUTE" => (&[3_600, 60], DateTimeField::Second),
        "HOUR_SECOND" => (&[3_600, 60, 1], DateTimeField::Second),
        "MINUTE_SECOND" => (&[60, 1], DateTimeField::Second),
        "DAY_MICROSECOND" => (&[86_400_000_000, 3_600_000_000, 60_000_000, 1_000_000, 1], DateTimeField::Microsecond),
        "HOUR_MICROSECOND" => (&[3_600_000_000, 60_000_000, 1_000_000, 1], DateTimeField::Microsecond),
        "MINUTE_MICROSECOND" => (&[60_000_000, 1_000_000, 1], DateTimeField::Microsecond),
        "SECOND_MICROSECOND" => (&[1_000_000, 1], DateTimeField::Microsecond),
        _ => return None,
    };
    let t = text.trim_start();
    let negative = t.starts_with('-');
    let numbers: Vec<&str> = t.split(|c: char| !c.is_ascii_digit()).filter(|n| !n.is_empty()).collect();
    if numbers.len() > parts.len() {
        return None;
    }
    let micros = field == DateTimeField::Microsecond;
    let mut total: i64 = 0;
    for (k, n) in numbers.iter().enumerate() {
        let part = parts[parts.len() - numbers.len() + k];
        let mut v: i64 = n.parse().ok()?;
        if micros && k == numbers.len() - 1 {
            // The microseconds: `5` is .5 s, `1234567` is .123456 s.
            let digits = n.len().min(6) as u32;
            v = n[..digits as usize].parse::<i64>().ok()? * 10i64.pow(6 - digits);
        }
        total = total.checked_add(v.checked_mul(part)?)?;
    }
    Some((if negative { -total } else { total }, field))
}

/// MySQL's multi-table `UPDATE t, u SET …` (which sqlparser 0.62 does not
/// parse) as `UPDATE t CROSS JOIN u SET …`, the same join; `None` for any
/// other statement.
fn update_comma_join(sql: &str) -> Option<String> {
    let b = sql.as_bytes();
    let start = sql.len() - sql.trim_start().len();
    if !b.get(start..start + 6)?.eq_ignore_ascii_case(b"update") || !b.get(start + 6)?.is_ascii_whitespace() {
        return None;
    }
    let (mut i, mut depth, mut commas) = (start + 6, 0usize, Vec::new());
    while i < b.len() {
        if let Some(next) = skip_quoted_or_comment(b, i) {
            i = next;
            continue;
        }
        match b[i] {
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            b',' if depth == 0 => commas.push(i),
            c if is_word_byte(c) => {
                let j = word_end(b, i);
                if depth == 0 && b[i..j].eq_ignore_ascii_case(b"set") {
                    break;
                }
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    if commas.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(sql.len() + commas.len() * 12);
    let mut from = 0;
    for c in commas {
        out.push_str(&sql[from..c]);
        out.push_str(" CROSS JOIN");
        from = c + 1;
    }
    out.push_str(&sql[from..]);
    Some(out)
}

/// Parses `sql` as MySQL, with the composite units of `EXTRACT` and
/// `INTERVAL` ([`mark`], [`restore`]).
pub fn parse(sql: &str) -> Result<Vec<Statement>, datafusion::sql::sqlparser::parser::ParserError> {
    use datafusion::sql::sqlparser::{dialect::MySqlDialect, parser::Parser};
    let joined = update_comma_join(sql);
    let sql = joined.as_deref().unwrap_or(sql);
    match mark(sql) {
        None => Parser::parse_sql(&MySqlDialect {}, sql),
        Some(marked) => {
            let mut stmts = Parser::parse_sql(&MySqlDialect {}, &marked)?;
            stmts.iter_mut().for_each(restore);
            Ok(stmts)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binary_operator_binds_to_its_operand_alone() {
        let sql = "SELECT BINARY a = 'x', binary  t.`b c` < BINARY f(x, ')'), BINARY (a) LIKE 'y', \
                   CAST(a AS BINARY), CONVERT(a, BINARY(4)), BINARY 'q' FROM t WHERE NOT BINARY @v = 1";
        let marked = mark(sql).unwrap();
        assert_eq!(marked.len(), sql.len());
        assert_eq!(
            parse(sql).unwrap()[0].to_string(),
            "SELECT CAST(a AS BINARY) = 'x', CAST(t.`b c` AS BINARY) < CAST(f(x, ')') AS BINARY), \
             CAST((a) AS BINARY) LIKE 'y', CAST(a AS BINARY), CONVERT(a, BINARY(4)), CAST('q' AS BINARY) FROM t \
             WHERE NOT CAST(@v AS BINARY) = 1"
        );
        // A type, not the operator.
        assert_eq!(mark("CREATE TABLE t (b BINARY(16), c VARCHAR(3) CHARACTER SET binary NOT NULL)"), None);
    }

    #[test]
    fn the_interval_function_is_a_call_and_intervals_stay() {
        let sql = "SELECT INTERVAL(a, 1, 10), interval (f(x, y), 2), d + INTERVAL (1 + 2) DAY, \
                   d - INTERVAL '1,2' DAY FROM t WHERE INTERVAL(',', 1) = 0";
        assert_eq!(mark(sql).unwrap().len(), sql.len());
        assert_eq!(
            parse(sql).unwrap()[0].to_string(),
            "SELECT interval(a, 1, 10), interval(f(x, y), 2), d + INTERVAL (1 + 2) DAY, \
             d - INTERVAL '1,2' DAY FROM t WHERE interval(',', 1) = 0"
        );
    }

    #[test]
    fn a_comma_join_in_update_becomes_a_cross_join() {
        let sql = "UPDATE t, u AS x SET t.a = x.b, t.c = 'p,q' WHERE t.id IN (1, 2)";
        assert_eq!(
            parse(sql).unwrap()[0].to_string(),
            "UPDATE t CROSS JOIN u AS x SET t.a = x.b, t.c = 'p,q' WHERE t.id IN (1, 2)"
        );
        assert_eq!(update_comma_join("UPDATE t SET a = 1, b = 2"), None);
        assert_eq!(update_comma_join("SELECT a, b FROM t"), None);
    }

    #[test]
    fn the_mod_operator_becomes_percent_and_the_function_stays() {
        let sql = "SELECT a MOD 3, MOD(a, 2), `mod`, 'x mod y', 7 mod\t-2, mode FROM t";
        let marked = mark(sql).unwrap();
        assert_eq!(marked, "SELECT a %   3, MOD(a, 2), `mod`, 'x mod y', 7 %  \t-2, mode FROM t");
        assert_eq!(
            parse(sql).unwrap()[0].to_string(),
            "SELECT a % 3, MOD(a, 2), `mod`, 'x mod y', 7 % -2, mode FROM t"
        );
        assert_eq!(mark("SELECT model FROM t"), None);
    }

    #[test]
    fn composite_units_keep_their_positions_and_print_back_as_mysql() {
        let sql = "SELECT extract(year_month FROM d) AS ym, EXTRACT( DAY_HOUR  from t.x), 'EXTRACT(DAY_HOUR FROM d)', \
                   EXTRACT(YEAR FROM d) FROM t";
        let marked = mark(sql).unwrap();
        assert_eq!(marked.len(), sql.len());
        assert!(marked.starts_with("SELECT __cnx_year_month(       d) AS ym, __cnx_day_hour("), "{marked}");
        assert!(marked.contains("'EXTRACT(DAY_HOUR FROM d)'"), "{marked}");
        let stmts = parse(sql).unwrap();
        assert_eq!(
            stmts[0].to_string(),
            "SELECT EXTRACT(YEAR_MONTH FROM d) AS ym, EXTRACT(DAY_HOUR FROM t.x), 'EXTRACT(DAY_HOUR FROM d)', \
             EXTRACT(YEAR FROM d) FROM t"
        );
        // Nothing to mark: no allocation, the parser's own errors.
        assert_eq!(mark("SELECT 1"), None);
        assert_eq!(mark("SELECT EXTRACT(YEAR FROM d) -- EXTRACT(YEAR_MONTH FROM d)"), None);
        assert!(parse("SELECT EXTRACT(FORTNIGHT FROM d)").is_err());
    }

    #[test]
    fn composite_intervals_print_back_and_read_as_mysql() {
        let sql = "SELECT DATE_ADD(d, INTERVAL '1:30' hour_minute), d - INTERVAL 5 DAY_HOUR, 'INTERVAL 1 DAY_HOUR', \
                   d + INTERVAL '1' DAY";
        let marked = mark(sql).unwrap();
        assert_eq!(marked.len(), sql.len());
        assert!(marked.contains("__cni_hour_minute('1:30')"), "{marked}");
        assert_eq!(
            parse(sql).unwrap()[0].to_string(),
            "SELECT DATE_ADD(d, INTERVAL '1:30' HOUR_MINUTE), d - INTERVAL 5 DAY_HOUR, 'INTERVAL 1 DAY_HOUR', \
             d + INTERVAL '1' DAY"
        );
        use DateTimeField::{Microsecond, Month, Second};
        for (unit, text, want) in [
            ("HOUR_MINUTE", "1:30", Some((5_400, Second))),
            ("HOUR_MINUTE", " -1 : 30", Some((-5_400, Second))),
            ("HOUR_MINUTE", "5", Some((300, Second))),
            ("HOUR_MINUTE", "1.5", Some((3_900, Second))),
            ("HOUR_MINUTE", "1:90", Some((9_000, Second))),
            ("HOUR_MINUTE", "1:2:3", None),
            ("YEAR_MONTH", "1-13", Some((25, Month))),
            ("DAY_HOUR", "1 2", Some((93_600, Second))),
            ("SECOND_MICROSECOND", "5", Some((500_000, Microsecond))),
            ("SECOND_MICROSECOND", "1.05", Some((1_050_000, Microsecond))),
            ("SECOND_MICROSECOND", "1.1234567", Some((1_123_456, Microsecond))),
            ("DAY_MICROSECOND", "1 2:3:4.5", Some((93_784_500_000, Microsecond))),
        ] {
            assert_eq!(interval_value(unit, text), want, "INTERVAL '{text}' {unit}");
        }
    }
}
