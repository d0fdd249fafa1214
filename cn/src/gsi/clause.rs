//! The index definitions of PolarDB-X's AUTO mode, which sqlparser does not
//! parse, found and parsed here:
//!
//! ```text
//! [UNIQUE] {GLOBAL | CLUSTERED | LOCAL} {INDEX | KEY} name (c1[, c2…])
//!     [COVERING (c3[, c4…])] [PARTITION BY KEY(c1…) [PARTITIONS n]]
//! [UNIQUE] {INDEX | KEY} [name] (c1…)          -- AUTO: global when the table is
//!                                             -- partitioned and c1… lack its key
//! ```
//!
//! in a CREATE TABLE column list, after `ALTER TABLE t ADD`, and in
//! `CREATE [UNIQUE] [GLOBAL | CLUSTERED | LOCAL] INDEX name ON t (…) …`.

use crate::catalog::Partitioning;
use crate::error::{CnError, Result};
use datafusion::sql::sqlparser::dialect::MySqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

/// Where an index lives, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `GLOBAL` or `CLUSTERED`.
    Global,
    /// `LOCAL`: on each shard, beside its rows.
    Local,
    /// Neither: global on a partitioned table unless the index columns
    /// hold the whole partition key (then a local index enforces and
    /// serves it), local otherwise.
    Auto,
}

/// One index definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    /// Lower-case; `None` when the DDL gave none (MySQL then names it after
    /// its first column).
    pub name: Option<String>,
    pub columns: Vec<String>,
    pub covering: Vec<String>,
    pub unique: bool,
    pub clustered: bool,
    pub scope: Scope,
    /// The index table's partitioning (`None`: by the index columns).
    pub partitioning: Option<Partitioning>,
    /// The definition as a MariaDB local index (`[UNIQUE] KEY name (cols)`).
    pub local_sql: String,
}

impl IndexSpec {
    /// Whether this index is global on a table partitioned by `keys` (empty:
    /// broadcast or single, where every index is local).
    pub fn is_global(&self, keys: &[String]) -> bool {
        match self.scope {
            Scope::Global => true,
            Scope::Local => false,
            Scope::Auto => !keys.is_empty() && !keys.iter().all(|k| self.columns.contains(k)),
        }
    }
}

fn tokens(s: &str) -> Result<Vec<Token>> {
    let toks = Tokenizer::new(&MySqlDialect {}, s).tokenize().map_err(CnError::parse)?;
    Ok(toks.into_iter().filter(|t| !matches!(t, Token::Whitespace(_) | Token::EOF)).collect())
}

fn is_kw(t: Option<&Token>, kw: &str) -> bool {
    matches!(t, Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(kw))
}

fn word(t: Option<&Token>) -> Option<String> {
    match t {
        Some(Token::Word(w)) => Some(w.value.to_ascii_lowercase()),
        _ => None,
    }
}

fn near(t: &[Token], i: usize) -> String {
    t.get(i).map(|t| t.to_string()).unwrap_or_else(|| "end of statement".into())
}

/// `( col [(len)] [ASC|DESC], … )` from `t[*i]`; returns the column names.
fn column_list(t: &[Token], i: &mut usize) -> Result<Vec<String>> {
    if t.get(*i) != Some(&Token::LParen) {
        return Err(CnError::parse(format!("expected ( near '{}'", near(t, *i))));
    }
    *i += 1;
    let mut cols = Vec::new();
    loop {
        let c = word(t.get(*i)).ok_or_else(|| CnError::parse(format!("expected a column near '{}'", near(t, *i))))?;
        cols.push(c);
        *i += 1;
        if t.get(*i) == Some(&Token::LParen) {
            // A prefix length: `c(10)`.
            while *i < t.len() && t[*i] != Token::RParen {
                *i += 1;
            }
            *i += 1;
        }
        if is_kw(t.get(*i), "ASC") || is_kw(t.get(*i), "DESC") {
            *i += 1;
        }
        match t.get(*i) {
            Some(Token::Comma) => *i += 1,
            Some(Token::RParen) => {
                *i += 1;
                return Ok(cols);
            }
            _ => return Err(CnError::parse(format!("expected , or ) near '{}'", near(t, *i)))),
        }
    }
}

/// Parses one element of a column list (or what follows `ADD`) as an index
/// definition; `Ok(None)` when it is something else (a column, the primary
/// key, a foreign key, a FULLTEXT or SPATIAL index).
pub fn parse_element(text: &str) -> Result<Option<IndexSpec>> {
    let t = tokens(text)?;
    let mut i = 0;
    if is_kw(t.first(), "CONSTRAINT") {
        i += 1;
        if !is_kw(t.get(i), "UNIQUE") {
            i += 1; // the constraint's name
        }
    }
    let (mut unique, mut scope, mut clustered) = (false, Scope::Auto, false);
    loop {
        if is_kw(t.get(i), "UNIQUE") {
            unique = true;
        } else if is_kw(t.get(i), "GLOBAL") {
            scope = Scope::Global;
        } else if is_kw(t.get(i), "CLUSTERED") {
            scope = Scope::Global;
            clustered = true;
        } else if is_kw(t.get(i), "LOCAL") {
            scope = Scope::Local;
        } else {
            break;
        }
        i += 1;
    }
    if is_kw(t.get(i), "INDEX") || is_kw(t.get(i), "KEY") {
        i += 1;
    } else if unique && scope == Scope::Auto {
        // `UNIQUE (cols)`.
    } else if unique || scope != Scope::Auto {
        return Err(CnError::parse(format!("expected INDEX or KEY near '{}'", near(&t, i))));
    } else {
        return Ok(None); // a column, PRIMARY KEY, FOREIGN KEY, FULLTEXT…
    }
    let name = match t.get(i) {
        Some(Token::Word(w)) if !(w.quote_style.is_none() && w.value.eq_ignore_ascii_case("USING")) => {
            i += 1;
            Some(w.value.to_ascii_lowercase())
        }
        _ => None,
    };
    if is_kw(t.get(i), "USING") {
        i += 2;
    }
    let columns = column_list(&t, &mut i)?;
    let mut covering = Vec::new();
    let mut partitioning = None;
    let mut local_rest = Vec::new();
    while i < t.len() {
        if is_kw(t.get(i), "COVERING") {
            i += 1;
            covering = column_list(&t, &mut i)?;
        } else if is_kw(t.get(i), "PARTITION") {
            let clause: Vec<String> = t[i..].iter().map(|x| x.to_string()).collect();
            partitioning =
                Some(crate::ddl::partition_clause::parse(&clause.join(" "), crate::ddl::DEFAULT_PARTITIONS)?);
            i = t.len();
        } else {
            // Index options (USING BTREE, COMMENT '…'): kept for a local index.
            local_rest.push(t[i].to_string());
            i += 1;
        }
    }
    if scope != Scope::Global && (!covering.is_empty() || partitioning.is_some()) {
        scope = Scope::Global;
    }
    let quoted = |cols: &[String]| cols.iter().map(|c| crate::dn::quote_ident(c)).collect::<Vec<_>>().join(", ");
    let local_sql = format!(
        "{}KEY {}({}){}",
        if unique { "UNIQUE " } else { "" },
        name.as_deref().map(|n| format!("{} ", crate::dn::quote_ident(n))).unwrap_or_default(),
        quoted(&columns),
        if local_rest.is_empty() { String::new() } else { format!(" {}", local_rest.join(" ")) }
    );
    Ok(Some(IndexSpec { name, columns, covering, unique, clustered, scope, partitioning, local_sql }))
}

/// Byte ranges of the top-level comma-separated elements inside the
/// parentheses that open at `open` (`sql[open] == '('`); also returns the
/// offset of the matching `)`.
pub fn split_elements(sql: &str, open: usize) -> Result<(Vec<(usize, usize)>, usize)> {
    let b = sql.as_bytes();
    let (mut i, mut depth, mut start) = (open + 1, 0i32, open + 1);
    let mut out = Vec::new();
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' | b'`' => i = crate::planner::split::skip_quoted(b, i),
            b'(' => depth += 1,
            b')' if depth == 0 => {
                out.push((start, i));
                return Ok((out, i));
            }
            b')' => depth -= 1,
            b',' if depth == 0 => {
                out.push((start, i));
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    Err(CnError::parse("unbalanced parentheses in the column list"))
}

/// A column definition's inline `UNIQUE [KEY]`: the byte range to cut from
/// the element, if it has one.
pub fn inline_unique(element: &str) -> Option<(usize, usize)> {
    let b = element.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' | b'`' => i = crate::planner::split::skip_quoted(b, i),
            _ => {
                let boundary = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
                if boundary && element[i..].len() >= 6 && element[i..i + 6].eq_ignore_ascii_case("UNIQUE") {
                    let after = i + 6;
                    if b.get(after).is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_')) {
                        let rest = &element[after..];
                        let trimmed = rest.trim_start();
                        let ws = rest.len() - trimmed.len();
                        let end = if trimmed.len() >= 3
                            && trimmed[..3].eq_ignore_ascii_case("KEY")
                            && trimmed.as_bytes().get(3).is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
                        {
                            after + ws + 3
                        } else {
                            after
                        };
                        return Some((i, end));
                    }
                }
            }
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_index_elements() {
        let g = parse_element("UNIQUE GLOBAL INDEX g_b (b) COVERING (c, d) PARTITION BY KEY(b) PARTITIONS 4")
            .unwrap()
            .unwrap();
        assert_eq!(g.name.as_deref(), Some("g_b"));
        assert_eq!((g.unique, g.scope, g.clustered), (true, Scope::Global, false));
        assert_eq!(g.covering, vec!["c", "d"]);
        assert_eq!(
            g.partitioning,
            Some(Partitioning::Hash { columns: vec!["b".into()], count: 4, function: "key".into() })
        );
        let c = parse_element("CLUSTERED INDEX `cx` (`b`, c DESC)").unwrap().unwrap();
        assert!(c.clustered && c.scope == Scope::Global && c.columns == vec!["b", "c"]);
        let l = parse_element("LOCAL KEY lk (b(10)) USING BTREE").unwrap().unwrap();
        assert_eq!(l.scope, Scope::Local);
        assert_eq!(l.local_sql, "KEY `lk` (`b`) USING BTREE");
        let a = parse_element("UNIQUE (b)").unwrap().unwrap();
        assert!(a.unique && a.scope == Scope::Auto && a.name.is_none());
        assert!(a.is_global(&["a".into()]) && !a.is_global(&["b".into()]) && !a.is_global(&[]));
        assert!(parse_element("CONSTRAINT u UNIQUE KEY (b, a)").unwrap().unwrap().unique);
        assert_eq!(parse_element("b int NOT NULL").unwrap(), None);
        assert_eq!(parse_element("PRIMARY KEY (a)").unwrap(), None);
        assert_eq!(parse_element("`index` int").unwrap(), None);
        assert!(parse_element("GLOBAL g (b)").is_err());
    }

    #[test]
    fn splits_and_finds_inline_unique() {
        let sql = "(a int, b varchar(10) comment 'x,y', UNIQUE KEY (b), c decimal(5,2)) engine=innodb";
        let (els, close) = split_elements(sql, 0).unwrap();
        let texts: Vec<&str> = els.iter().map(|(s, e)| sql[*s..*e].trim()).collect();
        assert_eq!(texts, vec!["a int", "b varchar(10) comment 'x,y'", "UNIQUE KEY (b)", "c decimal(5,2)"]);
        assert_eq!(&sql[close..close + 2], ") ");
        let e = "email varchar(50) NOT NULL unique key comment 'unique'";
        let (s, t) = inline_unique(e).unwrap();
        assert_eq!(&e[s..t], "unique key");
        assert_eq!(inline_unique("uniq int comment 'unique'"), None);
    }
}
