//! Result column names as MySQL gives them.
//!
//! MySQL and MariaDB name a select item that has no alias and is not a
//! column by its text as the client typed it, spaces and case included
//! (`SELECT id+1, COUNT( * )` gives the columns `id+1` and `COUNT( * )`;
//! MariaDB's `select_item` rule in `sql_yacc.yy` names the item by the
//! query text between its first and last token). The CN's SQL is parsed
//! and printed again before a DN or DataFusion sees it, which would name
//! them `id + 1` and `COUNT(*)`. [`name_as_typed`] gives such items an
//! alias equal to their text in the client's statement, cut out by
//! [`select_item_texts`].

use datafusion::sql::sqlparser::ast::{
    Expr, Ident, Query, Select, SelectItem, SetExpr, TableFactor, UnaryOperator, Value,
};
use datafusion::sql::sqlparser::tokenizer::Location;

/// MySQL's longest column name in a result set; MariaDB cuts longer
/// generated names to this many characters (`MAX_ALIAS_NAME` − 1).
pub const MAX_NAME_CHARS: usize = 255;

/// Words that end a select list at its own parenthesis depth.
const END_OF_SELECT_LIST: &[&str] = &[
    "FROM",
    "INTO",
    "WHERE",
    "GROUP",
    "HAVING",
    "WINDOW",
    "ORDER",
    "LIMIT",
    "UNION",
    "EXCEPT",
    "INTERSECT",
    "MINUS",
    "FOR",
    "LOCK",
    "PROCEDURE",
];

/// Words that may follow SELECT before its first item.
const SELECT_MODIFIERS: &[&str] = &[
    "ALL",
    "DISTINCT",
    "DISTINCTROW",
    "HIGH_PRIORITY",
    "STRAIGHT_JOIN",
    "SQL_SMALL_RESULT",
    "SQL_BIG_RESULT",
    "SQL_BUFFER_RESULT",
    "SQL_CACHE",
    "SQL_NO_CACHE",
    "SQL_CALC_FOUND_ROWS",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Word,
    Open,
    Close,
    Comma,
    Semicolon,
    Other,
}

/// The tokens of `sql` that matter for finding select items: (kind, start
/// byte, end byte). Comments and spaces are left out; a quoted string or
/// name is one `Other` token; a word is a run of identifier characters.
/// `None` for an unterminated quote or comment.
fn tokens(sql: &str) -> Option<Vec<(Tok, usize, usize)>> {
    let b = sql.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80;
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        let kind = match b[i] {
            c if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            b'#' => {
                i = b[i..].iter().position(|&c| c == b'\n').map_or(b.len(), |p| i + p);
                continue;
            }
            b'-' if b.get(i + 1) == Some(&b'-') && b.get(i + 2).is_none_or(|c| c.is_ascii_whitespace()) => {
                i = b[i..].iter().position(|&c| c == b'\n').map_or(b.len(), |p| i + p);
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = i + 2 + sql[i + 2..].find("*/")? + 2;
                continue;
            }
            b'\'' | b'"' | b'`' => {
                i = super::split::skip_quoted(b, i);
                if i >= b.len() {
                    return None;
                }
                i += 1;
                Tok::Other
            }
            c if word(c) => {
                while i < b.len() && word(b[i]) {
                    i += 1;
                }
                Tok::Word
            }
            c => {
                i += 1;
                match c {
                    b'(' => Tok::Open,
                    b')' => Tok::Close,
                    b',' => Tok::Comma,
                    b';' => Tok::Semicolon,
                    _ => Tok::Other,
                }
            }
        };
        out.push((kind, start, i));
    }
    Some(out)
}

/// The text of each select item of the statement's first SELECT (the main
/// query after a WITH clause; the leftmost SELECT of a UNION), as the
/// client typed it, without the spaces and comments around it. `None` when
/// the statement has no such SELECT or its text cannot be scanned.
pub fn select_item_texts(sql: &str) -> Option<Vec<&str>> {
    first_select_items(sql, &tokens(sql)?)
}

fn first_select_items<'a>(sql: &'a str, toks: &[(Tok, usize, usize)]) -> Option<Vec<&'a str>> {
    let is = |t: &(Tok, usize, usize), w: &str| t.0 == Tok::Word && sql[t.1..t.2].eq_ignore_ascii_case(w);
    // The SELECT: after a WITH clause, the first at depth 0; else the
    // first token but opening parentheses.
    let with = toks.first().is_some_and(|t| is(t, "WITH"));
    let mut depth = 0i32;
    for (n, t) in toks.iter().enumerate() {
        match t.0 {
            Tok::Open => depth += 1,
            Tok::Close => depth -= 1,
            _ if is(t, "SELECT") && (!with || depth == 0) => return items_after(sql, toks, n, depth),
            _ if !with => return None,
            _ => {}
        }
    }
    None
}

/// The select items of the SELECT whose keyword starts at byte `at` of
/// `sql` (a derived table's, a CTE's).
fn select_items_at<'a>(sql: &'a str, toks: &[(Tok, usize, usize)], at: usize) -> Option<Vec<&'a str>> {
    let mut depth = 0i32;
    for (n, t) in toks.iter().enumerate() {
        match t.0 {
            Tok::Open => depth += 1,
            Tok::Close => depth -= 1,
            Tok::Word if t.1 == at && sql[t.1..t.2].eq_ignore_ascii_case("SELECT") => {
                return items_after(sql, toks, n, depth)
            }
            _ => {}
        }
    }
    None
}

/// The select items of the SELECT at token `at`, which lies at
/// parenthesis depth `level`.
fn items_after<'a>(sql: &'a str, toks: &[(Tok, usize, usize)], at: usize, level: i32) -> Option<Vec<&'a str>> {
    let is = |t: &(Tok, usize, usize), w: &str| t.0 == Tok::Word && sql[t.1..t.2].eq_ignore_ascii_case(w);
    let mut depth = level;
    let mut rest = toks[at + 1..].iter().peekable();
    while rest.next_if(|t| SELECT_MODIFIERS.iter().any(|m| is(t, m))).is_some() {}
    let mut items = Vec::new();
    let mut item: Option<(usize, usize)> = None;
    for t in rest {
        match t.0 {
            Tok::Open => depth += 1,
            Tok::Close if depth == level => break,
            Tok::Close => depth -= 1,
            Tok::Semicolon if depth == level => break,
            Tok::Comma if depth == level => {
                let (s, e) = item.take()?;
                items.push(&sql[s..e]);
                continue;
            }
            Tok::Word if depth == level && END_OF_SELECT_LIST.iter().any(|w| is(t, w)) => break,
            _ => {}
        }
        item = Some(item.map_or((t.1, t.2), |(s, _)| (s, t.2)));
    }
    let (s, e) = item?;
    items.push(&sql[s..e]);
    Some(items)
}

/// The byte offset in `sql` of a parser location (1-based line and
/// column, the column counted in characters).
fn byte_offset(sql: &str, loc: Location) -> Option<usize> {
    let (mut line, mut col) = (1u64, 1u64);
    for (i, c) in sql.char_indices() {
        if line == loc.line && col == loc.column {
            return Some(i);
        }
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    None
}

/// The value of a string literal (also `N'…'`).
fn string_value(v: &Value) -> Option<&String> {
    match v {
        Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) | Value::NationalStringLiteral(s) => Some(s),
        _ => None,
    }
}

/// The name MySQL gives item `e` (without alias) typed as `typed`, when
/// the CN's own naming may differ: its text as typed, but for a column
/// (named by the column: `None`), a string (by its value, also with an
/// introducer or as `N'…'`), NULL, TRUE, FALSE (named in capitals: `None`)
/// and `+x` (named as `x`: `None`).
fn mysql_name(e: &Expr, typed: &str) -> Option<String> {
    match e {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => None,
        Expr::UnaryOp { op: UnaryOperator::Plus, .. } => None,
        Expr::Value(v) => match &v.value {
            // The plan cache's stand-in for a literal (named as it is).
            Value::Null | Value::Boolean(_) | Value::Placeholder(_) => None,
            other => Some(string_value(other).cloned().unwrap_or_else(|| typed.to_string())),
        },
        Expr::Prefixed { value, .. } => match value.as_ref() {
            Expr::Value(v) => Some(string_value(&v.value).cloned().unwrap_or_else(|| typed.to_string())),
            _ => Some(typed.to_string()),
        },
        _ => Some(typed.to_string()),
    }
}

/// The name of item `e` without alias where its typed text is not known:
/// a string's value, else `e` as printed.
pub fn printed_name(e: &Expr) -> String {
    match e {
        Expr::Value(v) => string_value(&v.value).cloned().unwrap_or_else(|| e.to_string()),
        _ => e.to_string(),
    }
}

/// The SELECT whose items name a query's columns: the query's own, or the
/// leftmost of a set operation.
pub fn naming_select(body: &mut SetExpr) -> Option<&mut Select> {
    match body {
        SetExpr::Select(s) => Some(s),
        SetExpr::SetOperation { left, .. } => naming_select(left),
        SetExpr::Query(q) => naming_select(&mut q.body),
        _ => None,
    }
}

/// Gives each item MySQL names by its text an alias equal to that text in
/// `sql`, the statement `q` was parsed from (cut to [`MAX_NAME_CHARS`]):
/// in the SELECT that names `q`'s columns, and in those of its derived
/// tables and CTEs, whose column names the outer query sees. A SELECT whose
/// list in `sql` does not split into as many items as it has is left as
/// it is.
pub fn name_as_typed(q: &mut Query, sql: &str) {
    let Some(toks) = tokens(sql) else { return };
    let n = Namer { sql, toks };
    if let (Some(sel), Some(texts)) = (naming_select(&mut q.body), first_select_items(sql, &n.toks)) {
        alias_items(sel, &texts);
    }
    n.query(q, true);
}

/// Finds the SELECTs of a query in its text (by the position of their
/// keyword) and names their items.
struct Namer<'a> {
    sql: &'a str,
    toks: Vec<(Tok, usize, usize)>,
}

impl Namer<'_> {
    /// `named`: the SELECT naming `q`'s columns was named already.
    fn query(&self, q: &mut Query, named: bool) {
        if let Some(with) = q.with.as_mut() {
            for cte in with.cte_tables.iter_mut() {
                self.query(&mut cte.query, false);
            }
        }
        self.set_expr(&mut q.body, named);
    }

    fn set_expr(&self, body: &mut SetExpr, named: bool) {
        match body {
            SetExpr::Select(sel) => {
                if !named {
                    let at = byte_offset(self.sql, sel.select_token.0.span.start);
                    if let Some(texts) = at.and_then(|at| select_items_at(self.sql, &self.toks, at)) {
                        alias_items(sel, &texts);
                    }
                }
                for t in sel.from.iter_mut() {
                    self.factor(&mut t.relation);
                    for j in t.joins.iter_mut() {
                        self.factor(&mut j.relation);
                    }
                }
            }
            SetExpr::SetOperation { left, right, .. } => {
                self.set_expr(left, named);
                self.set_expr(right, false);
            }
            SetExpr::Query(q) => self.query(q, named),
            _ => {}
        }
    }

    fn factor(&self, f: &mut TableFactor) {
        match f {
            TableFactor::Derived { subquery, .. } => self.query(subquery, false),
            TableFactor::NestedJoin { table_with_joins, .. } => {
                self.factor(&mut table_with_joins.relation);
                for j in table_with_joins.joins.iter_mut() {
                    self.factor(&mut j.relation);
                }
            }
            _ => {}
        }
    }
}

/// Aliases the items of `sel` MySQL names by their text, given the texts
/// of its items (nothing when their number differs).
fn alias_items(sel: &mut Select, texts: &[&str]) {
    if texts.len() != sel.projection.len() {
        return;
    }
    for (item, text) in sel.projection.iter_mut().zip(texts) {
        if let SelectItem::UnnamedExpr(e) = item {
            if let Some(name) = mysql_name(e, text) {
                let name: String = name.chars().take(MAX_NAME_CHARS).collect();
                *item = SelectItem::ExprWithAlias { expr: e.clone(), alias: Ident::with_quote('`', name) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::ast::Statement;
    use datafusion::sql::sqlparser::dialect::MySqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    #[test]
    fn select_items_are_cut_as_typed() {
        let t = |s| select_item_texts(s).unwrap_or_default();
        assert_eq!(t("SELECT id+1, g  *  2 FROM t"), ["id+1", "g  *  2"]);
        assert_eq!(t("select /* a */ DISTINCT  concat( s ,',' ) /* b */ ,x from t"), ["concat( s ,',' )", "x"]);
        assert_eq!(
            t("SELECT EXTRACT(YEAR FROM d), CASE WHEN a THEN 1 END x FROM t"),
            ["EXTRACT(YEAR FROM d)", "CASE WHEN a THEN 1 END x"]
        );
        assert_eq!(t("SELECT 1+1"), ["1+1"]);
        assert_eq!(t("SELECT 1+1;"), ["1+1"]);
        assert_eq!(t("(SELECT a+0 FROM t) UNION (SELECT b FROM u)"), ["a+0"]);
        assert_eq!(t("SELECT a-1 FROM t UNION SELECT b FROM u"), ["a-1"]);
        assert_eq!(t("WITH c AS (SELECT 1 AS n) SELECT n*2 FROM c"), ["n*2"]);
        assert_eq!(t("SELECT 'a,b' , `x,y`+1 , \"c\" FROM t"), ["'a,b'", "`x,y`+1", "\"c\""]);
        assert_eq!(t("SELECT a -- note\n + 1 # more\n FROM t"), ["a -- note\n + 1"]);
        assert_eq!(t("SELECT a+1 FOR UPDATE"), ["a+1"]);
        assert_eq!(select_item_texts("SELECT 'open"), None);
        assert_eq!(select_item_texts("SELECT a, FROM t"), None);
        assert_eq!(select_item_texts("INSERT INTO t SELECT 1"), None);
    }

    fn named(sql: &str) -> String {
        let Some(Statement::Query(mut q)) = Parser::parse_sql(&MySqlDialect {}, sql).unwrap().pop() else {
            panic!("not a query")
        };
        name_as_typed(&mut q, sql);
        q.to_string()
    }

    #[test]
    fn computed_items_get_their_text_as_alias() {
        assert_eq!(
            named("SELECT id+1, id, t.g, 'a', NULL, +4, -3, COUNT( * ) FROM t"),
            "SELECT id + 1 AS `id+1`, id, t.g, 'a' AS `a`, NULL, +4, -3 AS `-3`, COUNT(*) AS `COUNT( * )` FROM t"
        );
        assert_eq!(named("SELECT a+1 AS x, a+2 y FROM t"), "SELECT a + 1 AS x, a + 2 AS y FROM t");
        assert_eq!(
            named("SELECT a+1 FROM t UNION SELECT b+1 FROM u"),
            "SELECT a + 1 AS `a+1` FROM t UNION SELECT b + 1 AS `b+1` FROM u"
        );
        assert_eq!(named("SELECT `a,b`+1 FROM t"), "SELECT `a,b` + 1 AS ```a,b``+1` FROM t");
        assert_eq!(
            named("SELECT N'n', _utf8mb4'z', _utf8mb4 X'41', 0x41, TRUE"),
            "SELECT N'n' AS `n`, _utf8mb4 'z' AS `z`, _utf8mb4 X'41' AS `_utf8mb4 X'41'`, X'41' AS `0x41`, true"
        );
        assert_eq!(
            named("SELECT * FROM (SELECT g, g+1, MAX( d ) FROM t GROUP BY g) x JOIN (SELECT 1+1) y"),
            "SELECT * FROM (SELECT g, g + 1 AS `g+1`, MAX(d) AS `MAX( d )` FROM t GROUP BY g) x \
             JOIN (SELECT 1 + 1 AS `1+1`) y"
        );
        assert_eq!(
            named("WITH c AS (SELECT n*2 FROM u)\nSELECT `n*2`+1 FROM c"),
            "WITH c AS (SELECT n * 2 AS `n*2` FROM u) SELECT `n*2` + 1 AS ```n*2``+1` FROM c"
        );
        let long = format!("SELECT {} + 1", "1".repeat(300));
        assert!(named(&long).ends_with(&format!("AS `{}`", "1".repeat(MAX_NAME_CHARS))));
    }
}
