//! `EXTRACT(unit FROM x)` with MySQL's composite units (`YEAR_MONTH`,
//! `DAY_HOUR`, …, `SECOND_MICROSECOND`; MySQL 8.0 reference, 14.7
//! "Temporal Intervals"), which sqlparser 0.62's MySQL dialect does not
//! parse (it takes custom units only for dialects whose type the parser
//! does not test for MySQL's paths, like [`super::rollup`]'s modifier).
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

use datafusion::sql::sqlparser::ast::{
    DateTimeField, Expr, ExtractSyntax, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, Statement, VisitMut,
    VisitorMut,
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

/// The prefix of the calls [`mark`] writes.
const PREFIX: &str = "__cnx_";

/// `sql` with each `EXTRACT ( <composite unit> FROM` outside quotes and
/// comments (on one line) replaced by `__cnx_<unit>(` and spaces, of
/// the same length; `None` when it has none (found without allocating in
/// the common case).
pub fn mark(sql: &str) -> Option<String> {
    let b = sql.as_bytes();
    if !b.windows(7).any(|w| w.eq_ignore_ascii_case(b"extract")) {
        return None;
    }
    let word_at = |i: usize| -> usize {
        let mut j = i;
        while j < b.len() && is_word_byte(b[j]) {
            j += 1;
        }
        j
    };
    let blanks = |mut i: usize| {
        while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
            i += 1;
        }
        i
    };
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += if b[i] == b'\\' && q != b'`' { 2 } else { 1 };
                }
                i += 1;
            }
            b'#' => i = skip_line(b, i),
            b'-' if b.get(i + 1) == Some(&b'-') => i = skip_line(b, i),
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            c if is_word_byte(c) => {
                let end = word_at(i);
                let is_extract = (i == 0 || !is_word_byte(b[i - 1])) && b[i..end].eq_ignore_ascii_case(b"extract");
                if is_extract {
                    if let Some((unit, from_end)) = composite_after(b, end, &blanks, &word_at) {
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

/// After `EXTRACT` (ending at `at`): `( <unit> FROM` with a composite
/// unit, on one line: the unit and where `FROM` ends.
fn composite_after(
    b: &[u8],
    at: usize,
    blanks: &dyn Fn(usize) -> usize,
    word_at: &dyn Fn(usize) -> usize,
) -> Option<(&'static str, usize)> {
    let open = blanks(at);
    if b.get(open) != Some(&b'(') {
        return None;
    }
    let u = blanks(open + 1);
    let u_end = word_at(u);
    let unit = COMPOSITE_UNITS.iter().find(|c| b[u..u_end].eq_ignore_ascii_case(c.as_bytes()))?;
    let f = blanks(u_end);
    if f == u_end {
        return None;
    }
    let f_end = word_at(f);
    b[f..f_end].eq_ignore_ascii_case(b"from").then_some((unit, f_end))
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

fn skip_line(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i] != b'\n' {
        i += 1;
    }
    i
}

/// Turns the calls [`mark`] wrote back into `EXTRACT(<unit> FROM x)`.
pub fn restore(stmt: &mut Statement) {
    struct Restore;
    impl VisitorMut for Restore {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            let Expr::Function(f) = e else { return ControlFlow::Continue(()) };
            let name = f.name.to_string();
            let Some(unit) = name.strip_prefix(PREFIX).map(str::to_ascii_uppercase) else {
                return ControlFlow::Continue(());
            };
            let FunctionArguments::List(list) = &mut f.args else { return ControlFlow::Continue(()) };
            if !COMPOSITE_UNITS.contains(&unit.as_str()) || list.args.len() != 1 {
                return ControlFlow::Continue(());
            }
            let FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) = list.args.remove(0) else {
                return ControlFlow::Continue(());
            };
            *e = Expr::Extract {
                field: DateTimeField::Custom(Ident::new(unit)),
                syntax: ExtractSyntax::From,
                expr: Box::new(x),
            };
            ControlFlow::Continue(())
        }
    }
    let _ = stmt.visit(&mut Restore);
}

/// The composite unit of an `EXTRACT` [`restore`] made, if `field` is one.
pub fn composite_unit(field: &DateTimeField) -> Option<&'static str> {
    match field {
        DateTimeField::Custom(u) => COMPOSITE_UNITS.iter().find(|c| u.value.eq_ignore_ascii_case(c)).copied(),
        _ => None,
    }
}

/// Parses `sql` as MySQL, with the composite units of `EXTRACT` ([`mark`],
/// [`restore`]).
pub fn parse(sql: &str) -> Result<Vec<Statement>, datafusion::sql::sqlparser::parser::ParserError> {
    use datafusion::sql::sqlparser::{dialect::MySqlDialect, parser::Parser};
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
}
