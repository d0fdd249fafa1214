//! `GROUP BY … WITH ROLLUP`, which sqlparser 0.62's MySQL dialect does not
//! parse (its `supports_group_by_with_modifier` is false, and a dialect of
//! our own would lose the parser's MySQL-only paths, which test the
//! dialect's type). Before parsing, [`mark`] turns each `WITH ROLLUP` into
//! one more GROUP BY item, a call of [`MARKER`]; after it, [`restore`]
//! takes the marker out again and records the modifier, so the statement
//! prints back as `… GROUP BY a, b WITH ROLLUP` (what a DN is sent when the
//! statement runs whole on one) and the CN's planner sees the modifier
//! ([`crate::optimizer::semantics`] plans it as `ROLLUP(a, b)`).

use datafusion::sql::sqlparser::ast::{
    Expr, GroupByExpr, GroupByWithModifier, Query, SetExpr, Statement, VisitMut, VisitorMut,
};
use std::ops::ControlFlow;

/// The GROUP BY item that stands for `WITH ROLLUP` between [`mark`] and
/// [`restore`].
pub const MARKER: &str = "__cn_with_rollup";

/// `sql` with every `WITH ROLLUP` outside quotes and comments replaced by
/// `, __cn_with_rollup()`; `None` when it has none (the common case, found
/// without allocating).
pub fn mark(sql: &str) -> Option<String> {
    let b = sql.as_bytes();
    if !b.windows(6).any(|w| w.eq_ignore_ascii_case(b"rollup")) {
        return None;
    }
    let word = |i: usize, w: &[u8]| {
        b.get(i..i + w.len()).is_some_and(|s| s.eq_ignore_ascii_case(w))
            && (i == 0 || !is_word_byte(b[i - 1]))
            && b.get(i + w.len()).is_none_or(|c| !is_word_byte(*c))
    };
    let mut out = String::with_capacity(sql.len() + 24);
    let (mut i, mut copied, mut found) = (0, 0, false);
    while i < b.len() {
        if let Some(next) = skip_quoted_or_comment(b, i) {
            i = next;
            continue;
        }
        match b[i] {
            _ if word(i, b"with") => {
                let mut j = i + 4;
                while j < b.len() && b[j].is_ascii_whitespace() {
                    j += 1;
                }
                if j > i + 4 && word(j, b"rollup") {
                    out.push_str(&sql[copied..i]);
                    out.push_str(&format!(", {MARKER}()"));
                    i = j + 6;
                    copied = i;
                    found = true;
                } else {
                    i += 4;
                }
            }
            _ => i += 1,
        }
    }
    if !found {
        return None;
    }
    out.push_str(&sql[copied.min(sql.len())..]);
    Some(out)
}

/// Whether `c` is a byte of an unquoted identifier or keyword.
pub(crate) fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

fn skip_line(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i] != b'\n' {
        i += 1;
    }
    i
}

/// Where a quoted string or name, or a comment, starting at `b[i]` ends
/// (the byte after it); `None` when none starts there. For the scans
/// over SQL text before parsing ([`mark`], [`super::extract::mark`]).
pub(crate) fn skip_quoted_or_comment(b: &[u8], mut i: usize) -> Option<usize> {
    match b[i] {
        q @ (b'\'' | b'"' | b'`') => {
            i += 1;
            while i < b.len() && b[i] != q {
                i += if b[i] == b'\\' && q != b'`' { 2 } else { 1 };
            }
            Some(i + 1)
        }
        b'#' => Some(skip_line(b, i)),
        b'-' if b.get(i + 1) == Some(&b'-') => Some(skip_line(b, i)),
        b'/' if b.get(i + 1) == Some(&b'*') => {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                i += 1;
            }
            Some(i + 2)
        }
        _ => None,
    }
}

/// Takes the markers [`mark`] put in out of `stmt`'s GROUP BY lists and
/// gives those lists the ROLLUP modifier. Errors: the marker somewhere
/// else than last in a GROUP BY (`WITH ROLLUP` where MySQL takes none):
/// the syntax error's message.
pub fn restore(stmt: &mut Statement) -> Result<(), String> {
    struct Restore(Option<String>);
    impl VisitorMut for Restore {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
            if let SetExpr::Select(sel) = q.body.as_mut() {
                if let GroupByExpr::Expressions(keys, modifiers) = &mut sel.group_by {
                    if keys.last().is_some_and(is_marker) {
                        keys.pop();
                        modifiers.push(GroupByWithModifier::Rollup);
                    }
                }
            }
            ControlFlow::Continue(())
        }
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if is_marker(e) {
                self.0 = Some("near 'WITH ROLLUP'".to_string());
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    let mut r = Restore(None);
    let _ = stmt.visit(&mut r);
    r.0.map_or(Ok(()), Err)
}

fn is_marker(e: &Expr) -> bool {
    matches!(e, Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case(MARKER))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::MySqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn round_trip(sql: &str) -> Result<String, String> {
        let marked = mark(sql).unwrap_or_else(|| sql.to_string());
        let mut s = Parser::parse_sql(&MySqlDialect {}, &marked).map_err(|e| e.to_string())?.remove(0);
        restore(&mut s)?;
        Ok(s.to_string())
    }

    #[test]
    fn with_rollup_parses_and_prints_back() {
        assert_eq!(
            round_trip("SELECT a, b, COUNT(*) FROM t GROUP BY a, b with\n rollup LIMIT 3").unwrap(),
            "SELECT a, b, COUNT(*) FROM t GROUP BY a, b WITH ROLLUP LIMIT 3"
        );
        assert_eq!(
            round_trip("SELECT 'with rollup', x FROM (SELECT a AS x FROM t GROUP BY a WITH ROLLUP) AS d").unwrap(),
            "SELECT 'with rollup', x FROM (SELECT a AS x FROM t GROUP BY a WITH ROLLUP) AS d"
        );
        assert_eq!(mark("SELECT rollup_x FROM t -- WITH ROLLUP"), None);
        assert_eq!(mark("SELECT `with rollup` FROM t"), None);
        assert!(round_trip("SELECT a FROM t WHERE a IN (1 WITH ROLLUP)").is_err());
    }
}
