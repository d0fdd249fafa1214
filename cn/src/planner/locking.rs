//! Locking reads: `SELECT … FOR UPDATE` and `SELECT … LOCK IN SHARE MODE`
//! (with `NOWAIT` or `SKIP LOCKED`). The CN does not lock rows itself: every
//! physical SELECT the statement sends to a DN carries the locking clause,
//! so InnoDB takes the locks in the transaction's XA branch on that DN
//! (held to the end of the distributed transaction; under snapshot
//! isolation a row changed since the snapshot fails with 1020, first
//! committer wins). Outside a transaction the statement reads the latest
//! committed rows through plain connections and the locks end with it, as
//! in MySQL's autocommit mode. MariaDB spells a shared lock only `LOCK IN
//! SHARE MODE` (it has no `FOR SHARE`), so that is what the DNs get.

use crate::error::{CnError, Result};
use datafusion::sql::sqlparser::ast::{LockType, NonBlock, Query};

/// The locking clause of a SELECT, as appended to each physical query
/// (with a leading space): ` FOR UPDATE`, ` LOCK IN SHARE MODE`, and
/// ` NOWAIT` / ` SKIP LOCKED` after either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockingRead {
    pub suffix: String,
}

/// Takes the locking clause out of `q` (its rendering would say `FOR
/// SHARE`, which MariaDB refuses). Errors: `FOR UPDATE OF t` and more than
/// one clause (1235, not supported).
pub fn take(q: &mut Query) -> Result<Option<LockingRead>> {
    let locks = std::mem::take(&mut q.locks);
    let [lock] = locks.as_slice() else {
        return match locks.is_empty() {
            true => Ok(None),
            false => Err(CnError::unsupported("more than one locking clause")),
        };
    };
    if lock.of.is_some() {
        return Err(CnError::unsupported("FOR UPDATE OF"));
    }
    let mut suffix = match lock.lock_type {
        LockType::Update => " FOR UPDATE".to_string(),
        LockType::Share => " LOCK IN SHARE MODE".to_string(),
    };
    match lock.nonblock {
        Some(NonBlock::Nowait) => suffix.push_str(" NOWAIT"),
        Some(NonBlock::SkipLocked) => suffix.push_str(" SKIP LOCKED"),
        None => {}
    }
    Ok(Some(LockingRead { suffix }))
}

/// MySQL's `LOCK IN SHARE MODE` at the end of a statement (optionally
/// followed by `NOWAIT` / `SKIP LOCKED` and `;`), rewritten to `FOR SHARE`
/// for the SQL parser, which knows only that spelling. `None` when the
/// statement does not end so.
pub fn share_mode_as_for_share(sql: &str) -> Option<String> {
    let words = word_spans(sql);
    let word = |i: usize| words[i].1.trim_end_matches(';');
    // The clause can only be followed by zero, one or two words.
    [0, 1, 2].into_iter().find_map(|tail| {
        let i = words.len().checked_sub(4 + tail)?;
        let tail_ok = match tail {
            0 => true,
            1 => word(i + 4).eq_ignore_ascii_case("NOWAIT"),
            _ => word(i + 4).eq_ignore_ascii_case("SKIP") && word(i + 5).eq_ignore_ascii_case("LOCKED"),
        };
        let clause =
            ["LOCK", "IN", "SHARE", "MODE"].iter().enumerate().all(|(k, w)| word(i + k).eq_ignore_ascii_case(w));
        (tail_ok && clause).then(|| {
            let end = words[i + 3].0 + "MODE".len();
            format!("{}FOR SHARE{}", &sql[..words[i].0], &sql[end..])
        })
    })
}

/// The whitespace-separated words of `s` with their byte offsets.
fn word_spans(s: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in s.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(b)) => {
                out.push((b, &s[b..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(b) = start {
        out.push((b, &s[b..]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::ast::Statement;
    use datafusion::sql::sqlparser::dialect::MySqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn lock_of(sql: &str) -> Result<Option<LockingRead>> {
        let sql = share_mode_as_for_share(sql).unwrap_or_else(|| sql.to_string());
        let Statement::Query(mut q) = Parser::parse_sql(&MySqlDialect {}, &sql).unwrap().remove(0) else {
            panic!("a query")
        };
        let r = take(&mut q);
        assert!(!q.to_string().contains(" FOR "), "the clause is taken out: {q}");
        r
    }

    #[test]
    fn locking_clauses_become_mariadb_suffixes() {
        let s = |sql| lock_of(sql).unwrap().map(|l| l.suffix);
        assert_eq!(s("SELECT * FROM t"), None);
        assert_eq!(s("SELECT * FROM t WHERE a = 1 FOR UPDATE").as_deref(), Some(" FOR UPDATE"));
        assert_eq!(s("select * from t lock in share mode").as_deref(), Some(" LOCK IN SHARE MODE"));
        assert_eq!(s("SELECT * FROM t LOCK  IN\nSHARE MODE;").as_deref(), Some(" LOCK IN SHARE MODE"));
        assert_eq!(s("SELECT * FROM t FOR UPDATE NOWAIT").as_deref(), Some(" FOR UPDATE NOWAIT"));
        assert_eq!(
            s("SELECT * FROM t LOCK IN SHARE MODE SKIP LOCKED").as_deref(),
            Some(" LOCK IN SHARE MODE SKIP LOCKED")
        );
        assert!(lock_of("SELECT * FROM t FOR UPDATE OF t").is_err());
    }

    #[test]
    fn share_mode_is_rewritten_only_at_the_end() {
        assert_eq!(share_mode_as_for_share("SELECT 'lock in share mode' FROM t"), None);
        assert_eq!(share_mode_as_for_share("SELECT a FROM t").as_deref(), None);
        assert_eq!(
            share_mode_as_for_share("SELECT a FROM t Lock In Share Mode NOWAIT").as_deref(),
            Some("SELECT a FROM t FOR SHARE NOWAIT")
        );
    }
}
