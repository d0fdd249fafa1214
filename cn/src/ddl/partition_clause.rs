//! The partition clause of CREATE TABLE (PolarDB-X AUTO mode syntax), which
//! sqlparser does not parse: split off the statement and parsed here.
//!
//! ```text
//! PARTITION BY {KEY | HASH}(c1[, c2…]) [PARTITIONS n]
//! PARTITION BY RANGE COLUMNS(c) (PARTITION p0 VALUES LESS THAN (v | MAXVALUE), …)
//! PARTITION BY LIST COLUMNS(c) (PARTITION p0 VALUES IN (v, …), …)
//! BROADCAST
//! SINGLE
//! ```

use crate::catalog::Partitioning;
use crate::error::{CnError, Result};
use datafusion::sql::sqlparser::dialect::MySqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

/// Byte offset of the top-level `(` that opens the column list and of the
/// partition clause (if any) in a CREATE TABLE statement.
pub fn locate(sql: &str) -> Result<(usize, Option<usize>)> {
    let b = sql.as_bytes();
    let (mut i, mut depth, mut open, mut close) = (0usize, 0i32, None, None);
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' | b'`' => i = crate::planner::split::skip_quoted(b, i),
            b'(' => {
                if depth == 0 && open.is_none() {
                    open = Some(i);
                }
                depth += 1;
            }
            b')' => {
                depth -= 1;
                if depth == 0 && close.is_none() && open.is_some() {
                    close = Some(i);
                }
            }
            _ if depth == 0 && close.is_some() => {
                let rest = &sql[i..];
                let at_word = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
                if at_word {
                    let up = rest.get(..rest.len().min(16)).unwrap_or("").to_ascii_uppercase();
                    let word_end =
                        |n: usize| rest.as_bytes().get(n).is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_'));
                    if (up.starts_with("PARTITION")
                        && word_end(9)
                        && rest[9..].trim_start().to_ascii_uppercase().starts_with("BY"))
                        || (up.starts_with("BROADCAST") && word_end(9))
                        || (up.starts_with("SINGLE") && word_end(6))
                    {
                        return Ok((open.unwrap_or(0), Some(i)));
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    let open = open.ok_or_else(|| CnError::parse("CREATE TABLE needs a column list"))?;
    Ok((open, None))
}

fn tokens(s: &str) -> Result<Vec<Token>> {
    let toks = Tokenizer::new(&MySqlDialect {}, s).tokenize().map_err(CnError::parse)?;
    Ok(toks.into_iter().filter(|t| !matches!(t, Token::Whitespace(_))).collect())
}

struct P {
    t: Vec<Token>,
    i: usize,
}

impl P {
    fn peek_kw(&self, kw: &str) -> bool {
        matches!(self.t.get(self.i), Some(Token::Word(w)) if w.value.eq_ignore_ascii_case(kw))
    }
    fn kw(&mut self, kw: &str) -> Result<()> {
        if self.peek_kw(kw) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(kw))
        }
    }
    fn err(&self, want: &str) -> CnError {
        let near = self.t.get(self.i).map(|t| t.to_string()).unwrap_or_else(|| "end of statement".into());
        CnError::parse(format!("expected {want} in the partition clause near '{near}'"))
    }
    fn tok(&mut self, t: Token) -> Result<()> {
        if self.t.get(self.i) == Some(&t) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(&t.to_string()))
        }
    }
    fn eat(&mut self, t: Token) -> bool {
        if self.t.get(self.i) == Some(&t) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn ident(&mut self) -> Result<String> {
        match self.t.get(self.i) {
            Some(Token::Word(w)) => {
                self.i += 1;
                Ok(w.value.to_ascii_lowercase())
            }
            _ => Err(self.err("a column name")),
        }
    }
    fn ident_list(&mut self) -> Result<Vec<String>> {
        self.tok(Token::LParen)?;
        let mut v = vec![self.ident()?];
        while self.eat(Token::Comma) {
            v.push(self.ident()?);
        }
        self.tok(Token::RParen)?;
        Ok(v)
    }
    /// A literal value; `None` for MAXVALUE.
    fn value(&mut self) -> Result<Option<String>> {
        let neg = self.eat(Token::Minus);
        let v = match self.t.get(self.i).cloned() {
            Some(Token::Number(n, _)) => Some(if neg { format!("-{n}") } else { n }),
            Some(Token::SingleQuotedString(s)) | Some(Token::DoubleQuotedString(s)) => Some(s),
            Some(Token::Word(w)) if w.value.eq_ignore_ascii_case("MAXVALUE") => None,
            Some(Token::Word(w)) if w.value.eq_ignore_ascii_case("NULL") => Some("NULL".into()),
            _ => return Err(self.err("a literal")),
        };
        self.i += 1;
        Ok(v)
    }
    fn end(&self) -> Result<()> {
        match self.t.get(self.i) {
            None | Some(Token::EOF) | Some(Token::SemiColon) => Ok(()),
            _ => Err(self.err("end of statement")),
        }
    }
}

/// Parses a partition clause; `default_count` applies to KEY/HASH without
/// PARTITIONS.
pub fn parse(clause: &str, default_count: u32) -> Result<Partitioning> {
    let mut p = P { t: tokens(clause)?, i: 0 };
    if p.peek_kw("BROADCAST") {
        p.i += 1;
        p.end()?;
        return Ok(Partitioning::Broadcast);
    }
    if p.peek_kw("SINGLE") {
        p.i += 1;
        p.end()?;
        return Ok(Partitioning::Single);
    }
    p.kw("PARTITION")?;
    p.kw("BY")?;
    let r = if p.peek_kw("KEY") || p.peek_kw("HASH") {
        let function = if p.peek_kw("KEY") { "key" } else { "hash" }.to_string();
        p.i += 1;
        let columns = p.ident_list()?;
        let count = if p.peek_kw("PARTITIONS") {
            p.i += 1;
            match p.value()? {
                Some(n) => n.parse::<u32>().map_err(|_| CnError::parse(format!("bad partition count {n}")))?,
                None => return Err(p.err("a partition count")),
            }
        } else {
            default_count
        };
        if count == 0 || count > 8192 {
            return Err(CnError::mysql(1499, "Too many partitions (including subpartitions) were defined"));
        }
        Partitioning::Hash { columns, count, function }
    } else if p.peek_kw("RANGE") || p.peek_kw("LIST") {
        let range = p.peek_kw("RANGE");
        p.i += 1;
        if p.peek_kw("COLUMNS") {
            p.i += 1;
        }
        let cols = p.ident_list()?;
        if cols.len() != 1 {
            return Err(CnError::unsupported("RANGE/LIST COLUMNS over more than one column"));
        }
        p.tok(Token::LParen)?;
        let (mut names, mut bounds, mut values) = (vec![], vec![], vec![]);
        loop {
            p.kw("PARTITION")?;
            names.push(p.ident()?);
            p.kw("VALUES")?;
            if range {
                p.kw("LESS")?;
                p.kw("THAN")?;
                let paren = p.eat(Token::LParen);
                bounds.push(p.value()?);
                if paren {
                    p.tok(Token::RParen)?;
                }
            } else {
                p.kw("IN")?;
                p.tok(Token::LParen)?;
                let mut v = vec![p.value()?.ok_or_else(|| p.err("a literal"))?];
                while p.eat(Token::Comma) {
                    v.push(p.value()?.ok_or_else(|| p.err("a literal"))?);
                }
                p.tok(Token::RParen)?;
                values.push(v);
            }
            if !p.eat(Token::Comma) {
                break;
            }
        }
        p.tok(Token::RParen)?;
        let column = cols.into_iter().next().expect("one column");
        if range {
            if bounds.iter().rev().skip(1).any(|b| b.is_none()) {
                return Err(CnError::mysql(1481, "MAXVALUE can only be used in last partition definition"));
            }
            Partitioning::Range { column, bounds, names }
        } else {
            Partitioning::List { column, values, names }
        }
    } else {
        return Err(p.err("KEY, HASH, RANGE or LIST"));
    };
    p.end()?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_clause_outside_quotes() {
        let sql =
            "CREATE TABLE t (a int comment 'partition by x', b int) ENGINE=InnoDB PARTITION BY KEY(a) PARTITIONS 4";
        let (open, at) = locate(sql).unwrap();
        assert_eq!(&sql[open..open + 2], "(a");
        assert_eq!(&sql[at.unwrap()..], "PARTITION BY KEY(a) PARTITIONS 4");
        assert_eq!(locate("create table t (a int) broadcast").unwrap().1, Some(23));
        assert_eq!(locate("create table single_t (single int)").unwrap().1, None);
    }

    #[test]
    fn parses_clauses() {
        assert_eq!(
            parse("PARTITION BY KEY(a, B) PARTITIONS 8", 16).unwrap(),
            Partitioning::Hash { columns: vec!["a".into(), "b".into()], count: 8, function: "key".into() }
        );
        assert_eq!(
            parse("partition by hash(a)", 16).unwrap(),
            Partitioning::Hash { columns: vec!["a".into()], count: 16, function: "hash".into() }
        );
        let r = parse("PARTITION BY RANGE COLUMNS(d) (PARTITION p0 VALUES LESS THAN ('2020-01-01'), PARTITION p1 VALUES LESS THAN (MAXVALUE))", 16).unwrap();
        assert_eq!(
            r,
            Partitioning::Range {
                column: "d".into(),
                bounds: vec![Some("2020-01-01".into()), None],
                names: vec!["p0".into(), "p1".into()]
            }
        );
        let l =
            parse("PARTITION BY LIST COLUMNS(c) (PARTITION a VALUES IN (1,2), PARTITION b VALUES IN (3))", 16).unwrap();
        assert!(matches!(l, Partitioning::List { .. }));
        assert_eq!(parse("BROADCAST", 16).unwrap(), Partitioning::Broadcast);
        assert!(parse("PARTITION BY KEY(a) PARTITIONS 0", 16).is_err());
        assert!(parse("PARTITION BY FOO(a)", 16).is_err());
        assert!(parse("PARTITION BY RANGE COLUMNS(d) (PARTITION p0 VALUES LESS THAN (MAXVALUE), PARTITION p1 VALUES LESS THAN (5))", 16).is_err());
    }
}
