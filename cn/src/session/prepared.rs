//! SQL-level prepared statements (MySQL 8.0 reference, 15.5 "Prepared
//! Statements"): `PREPARE name FROM 'text' | @var`, `EXECUTE name [USING
//! @a, …]`, `{DEALLOCATE | DROP} PREPARE name`. sqlparser reads `PREPARE`
//! the PostgreSQL way (`PREPARE name AS …`), so these are read here. A
//! prepared text keeps its `?` placeholders; EXECUTE puts the user
//! variables' values in their places, as SQL literals, and runs the
//! statement as the binary protocol's COM_STMT_EXECUTE does.

use super::sink::ResultSink;
use super::Session;
use crate::error::{code, CnError, Result};
use datafusion::sql::sqlparser::dialect::MySqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

/// The tokens of `sql` but whitespace, comments and a final `;`.
fn tokens(sql: &str) -> Result<Vec<Token>> {
    let toks = Tokenizer::new(&MySqlDialect {}, sql).tokenize().map_err(|e| CnError::parse(e.to_string()))?;
    let mut out: Vec<Token> = toks.into_iter().filter(|t| !matches!(t, Token::Whitespace(_))).collect();
    if out.last() == Some(&Token::SemiColon) {
        out.pop();
    }
    Ok(out)
}

/// A statement name: a word, unquoted or backquoted, lower-cased.
fn name(t: Option<&Token>, syntax: &str) -> Result<String> {
    match t {
        Some(Token::Word(w)) => Ok(w.value.to_ascii_lowercase()),
        _ => Err(CnError::parse(format!("expected {syntax}"))),
    }
}

/// A user variable `@x` in the tokens at `i` (`@` then a word, or one
/// word `@x`): its lower-case name and the index after it.
fn user_var(toks: &[Token], i: usize) -> Option<(String, usize)> {
    match (toks.get(i), toks.get(i + 1)) {
        (Some(Token::AtSign), Some(Token::Word(w))) => Some((w.value.to_ascii_lowercase(), i + 2)),
        (Some(Token::Word(w)), _) if w.value.starts_with('@') && !w.value.starts_with("@@") => {
            Some((w.value[1..].trim_matches('`').to_ascii_lowercase(), i + 1))
        }
        _ => None,
    }
}

fn unknown(name: &str, verb: &str) -> CnError {
    CnError::mysql(
        code::ER_UNKNOWN_STMT_HANDLER,
        format!("Unknown prepared statement handler ({name}) given to {verb}"),
    )
}

impl Session {
    /// `PREPARE name FROM 'text'` or `FROM @var` (the variable's string).
    pub(super) async fn sql_prepare(&mut self, sql: &str, sink: &mut dyn ResultSink) -> Result<()> {
        const SYNTAX: &str = "PREPARE stmt_name FROM 'statement' | @variable";
        let toks = tokens(sql)?;
        let stmt = name(toks.get(1), SYNTAX)?;
        if !matches!(toks.get(2), Some(Token::Word(w)) if w.value.eq_ignore_ascii_case("FROM")) {
            return Err(CnError::parse(format!("expected {SYNTAX}")));
        }
        let text = match (toks.get(3), toks.len()) {
            (Some(Token::SingleQuotedString(s) | Token::DoubleQuotedString(s)), 4) => s.clone(),
            _ => match user_var(&toks, 3) {
                Some((var, end)) if end == toks.len() => {
                    // The variable holds an SQL literal: its string.
                    let literal = self.user_vars.get(&var).cloned().unwrap_or_else(|| "NULL".into());
                    match tokens(&literal)?.as_slice() {
                        [Token::SingleQuotedString(s) | Token::DoubleQuotedString(s)] => s.clone(),
                        [Token::Number(n, _)] => n.clone(),
                        _ => {
                            return Err(CnError::parse(format!(
                                "the statement to prepare in @{var} is {literal}, not a string"
                            )))
                        }
                    }
                }
                _ => return Err(CnError::parse(format!("expected {SYNTAX}"))),
            },
        };
        if text.trim().is_empty() {
            return Err(CnError::mysql(code::ER_EMPTY_QUERY, "Query was empty"));
        }
        // As MySQL: these cannot be prepared (an EXECUTE of itself would
        // not end).
        let first = super::leading_words(&text, 2);
        if matches!(
            first.iter().map(String::as_str).collect::<Vec<_>>().as_slice(),
            ["PREPARE" | "EXECUTE" | "DEALLOCATE", ..] | ["DROP", "PREPARE"]
        ) {
            return Err(CnError::mysql(
                code::ER_UNSUPPORTED_PS,
                "This command is not supported in the prepared statement protocol yet",
            ));
        }
        self.sql_prepared.insert(stmt, text);
        sink.ok(0, 0, "Statement prepared").await
    }

    /// `EXECUTE name [USING @a, @b, …]`: the prepared text with each `?`
    /// replaced by its variable's value (NULL for one never set). Errors:
    /// 1243 for an unknown name, 1210 for another number of variables than
    /// of placeholders, else the statement's own.
    pub(super) async fn sql_execute(&mut self, sql: &str, sink: &mut dyn ResultSink) -> Result<()> {
        const SYNTAX: &str = "EXECUTE stmt_name [USING @var [, @var] ...]";
        let toks = tokens(sql)?;
        let stmt = name(toks.get(1), SYNTAX)?;
        let mut values = Vec::new();
        if let Some(t) = toks.get(2) {
            if !matches!(t, Token::Word(w) if w.value.eq_ignore_ascii_case("USING")) {
                return Err(CnError::parse(format!("expected {SYNTAX}")));
            }
            let mut i = 3;
            loop {
                let Some((var, next)) = user_var(&toks, i) else {
                    return Err(CnError::parse(format!("expected {SYNTAX}")));
                };
                values.push(self.user_vars.get(&var).cloned().unwrap_or_else(|| "NULL".into()));
                match toks.get(next) {
                    None => break,
                    Some(Token::Comma) => i = next + 1,
                    Some(_) => return Err(CnError::parse(format!("expected {SYNTAX}"))),
                }
            }
        }
        let text = self.sql_prepared.get(&stmt).cloned().ok_or_else(|| unknown(&stmt, "EXECUTE"))?;
        let at = crate::server::placeholders(&text);
        if at.len() != values.len() {
            return Err(CnError::mysql(code::ER_WRONG_ARGUMENTS, "Incorrect arguments to EXECUTE"));
        }
        let mut bound = String::with_capacity(text.len() + 16 * values.len());
        let mut last = 0;
        for (off, v) in at.iter().zip(&values) {
            bound.push_str(&text[last..*off]);
            bound.push_str(v);
            last = off + 1;
        }
        bound.push_str(&text[last..]);
        self.execute(&bound, sink).await
    }

    /// `DEALLOCATE PREPARE name` / `DROP PREPARE name`. Errors: 1243 for
    /// an unknown name.
    pub(super) async fn sql_deallocate(&mut self, sql: &str, sink: &mut dyn ResultSink) -> Result<()> {
        let toks = tokens(sql)?;
        let stmt = name(toks.get(2), "DEALLOCATE PREPARE stmt_name")?;
        if toks.len() != 3 {
            return Err(CnError::parse("expected DEALLOCATE PREPARE stmt_name"));
        }
        self.sql_prepared.remove(&stmt).ok_or_else(|| unknown(&stmt, "DEALLOCATE PREPARE"))?;
        sink.ok(0, 0, "").await
    }
}
