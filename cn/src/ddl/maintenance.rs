//! Table maintenance statements that MySQL users and `mysqlcheck` run:
//! `CHECK TABLE`, `OPTIMIZE TABLE`, `REPAIR TABLE` and `CHECKSUM TABLE`.
//! Each runs on every physical table of each logical table (every copy of
//! a broadcast table) and is answered as MySQL answers for one table
//! (MySQL 8.0 reference, "Table Maintenance Statements").

use crate::catalog::TableDef;
use crate::cluster::Cluster;
use crate::dn::quote_ident;
use crate::error::{code, CnError, Result};
use crate::planner::resolve_name;
use crate::protocol::constants::ty;
use crate::protocol::resultset::ColumnDef;
use crate::session::sink::{send_rows, ResultSink};
use crate::session::Session;
use datafusion::sql::sqlparser::ast::ObjectName;
use datafusion::sql::sqlparser::dialect::MySqlDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;
use mysql_async::prelude::*;

/// A maintenance statement's table list and what follows it: `verb
/// [NO_WRITE_TO_BINLOG | LOCAL] TABLE name [, name …] [options]`, where
/// `verb` is the statement's first keyword. The options (`QUICK`,
/// `EXTENDED`, `FOR UPGRADE`) are returned upper-cased, `None` when they
/// are not plain words (MariaDB's `ANALYZE … PERSISTENT FOR COLUMNS (…)`).
/// Errors: 1064 naming the expected form.
pub fn table_list(sql: &str, verb: Keyword) -> Result<(Vec<ObjectName>, Option<String>)> {
    let syntax = || CnError::parse(format!("expected {verb:?} [NO_WRITE_TO_BINLOG | LOCAL] TABLE name [, name ...]"));
    let mut p = Parser::new(&MySqlDialect {}).try_with_sql(sql).map_err(CnError::parse)?;
    if !p.parse_keyword(verb) {
        return Err(syntax());
    }
    let _ = p.parse_one_of_keywords(&[Keyword::NO_WRITE_TO_BINLOG, Keyword::LOCAL]);
    if !p.parse_keyword(Keyword::TABLE) {
        return Err(syntax());
    }
    let mut names = vec![p.parse_object_name(false).map_err(|_| syntax())?];
    while p.consume_token(&Token::Comma) {
        names.push(p.parse_object_name(false).map_err(|_| syntax())?);
    }
    let mut options = Some(Vec::new());
    loop {
        match p.next_token().token {
            Token::EOF => break,
            Token::SemiColon if p.next_token().token == Token::EOF => break,
            Token::SemiColon => return Err(CnError::parse("expected one statement")),
            Token::Word(w) if w.quote_style.is_none() => {
                if let Some(o) = options.as_mut() {
                    o.push(w.value.to_ascii_uppercase());
                }
            }
            _ => options = None,
        }
    }
    Ok((names, options.map(|o| o.join(" "))))
}

/// [`table_list`] whose options must be plain words. Errors: 1064.
fn table_list_with_options(sql: &str, verb: Keyword) -> Result<(Vec<ObjectName>, String)> {
    match table_list(sql, verb)? {
        (names, Some(options)) => Ok((names, options)),
        (_, None) => Err(CnError::parse(format!("unexpected {verb:?} TABLE options: expected words such as QUICK"))),
    }
}

/// `CHECK TABLE`, `OPTIMIZE TABLE` or `REPAIR TABLE` (`verb`): the
/// statement on each physical table, answered with MySQL's `Table | Op |
/// Msg_type | Msg_text` rows per logical table: the shards' notes and
/// errors (each once), then one `status` row, `OK` when every shard's is
/// (none when they give none, as InnoDB's REPAIR).
/// A table that does not exist gets MySQL's `Error` row and `Operation
/// failed`, and the others are still processed. Errors: 1064, a DN's.
pub async fn check_optimize_repair(s: &mut Session, sql: &str, verb: Keyword, sink: &mut dyn ResultSink) -> Result<()> {
    let (names, options) = table_list_with_options(sql, verb)?;
    let op = format!("{verb:?}").to_ascii_lowercase();
    let mut rows = Vec::new();
    for name in names {
        let (db, t) = resolve_name(&name, s.db.as_deref())?;
        let label = format!("{db}.{t}");
        let row = |kind: &str, text: &str| {
            vec![Some(label.clone()), Some(op.clone()), Some(kind.to_string()), Some(text.to_string())]
        };
        let Some(def) = s.cluster.catalog.snapshot().base_table(&db, &t).cloned() else {
            rows.push(row("Error", &format!("Table '{label}' doesn't exist")));
            rows.push(row("status", "Operation failed"));
            continue;
        };
        let mut messages: Vec<(String, String)> = Vec::new();
        // No status row when the shards give none (InnoDB's REPAIR).
        let mut status: Option<String> = None;
        for shard in on_every_shard(&s.cluster, &def, &format!("{verb:?} TABLE"), &options).await? {
            for (kind, text) in shard {
                if kind.eq_ignore_ascii_case("status") {
                    if status.is_none() || text != "OK" {
                        status = Some(text);
                    }
                } else if !messages.contains(&(kind.clone(), text.clone())) {
                    messages.push((kind, text));
                }
            }
        }
        rows.extend(messages.iter().map(|(kind, text)| row(kind, text)));
        rows.extend(status.map(|text| row("status", &text)));
    }
    let cols = ["Table", "Op", "Msg_type", "Msg_text"].map(ColumnDef::text);
    send_rows(sink, &cols, rows).await
}

/// `CHECKSUM TABLE t [, t …] [QUICK | EXTENDED]`: `Table | Checksum` per
/// table. MySQL's checksum is the sum, modulo 2^32, of each row's CRC
/// (`mysql_checksum_table`), so the shards' checksums add up to the
/// table's: the same as one MariaDB holding the same rows gives, for a
/// table with a primary key (a table without one has a hidden key column
/// in its shards, which their CRCs include). `QUICK` gives NULL, as
/// InnoDB keeps no live checksum. A table that does not exist gets NULL
/// and warning 1146. The shards are read one by one, not in one
/// snapshot. Errors: 1064, a DN's.
pub async fn checksum(s: &mut Session, sql: &str, sink: &mut dyn ResultSink) -> Result<()> {
    let (names, options) = table_list_with_options(sql, Keyword::CHECKSUM)?;
    let mut rows = Vec::new();
    for name in names {
        let (db, t) = resolve_name(&name, s.db.as_deref())?;
        let label = format!("{db}.{t}");
        let Some(def) = s.cluster.catalog.snapshot().base_table(&db, &t).cloned() else {
            s.warnings.push(("Error".into(), code::ER_NO_SUCH_TABLE, format!("Table '{label}' doesn't exist")));
            rows.push(vec![Some(label), None]);
            continue;
        };
        let copies = if def.is_broadcast() { &def.partitions[..1] } else { &def.partitions[..] };
        let mut sum: Option<u64> = Some(0);
        for p in copies {
            let dn = s.cluster.dn(p.dn)?;
            let mut c = dn.conn().await?;
            let sql = format!("CHECKSUM TABLE {}.{} {options}", quote_ident(&def.db), quote_ident(&p.phys_table));
            let row: Option<(String, Option<u64>)> = c.query_first(sql).await.map_err(|e| dn.err(e))?;
            sum = match (sum, row.and_then(|r| r.1)) {
                (Some(a), Some(b)) => Some((a + b) % (1 << 32)),
                _ => None,
            };
        }
        rows.push(vec![Some(label), sum.map(|n| n.to_string())]);
    }
    let cols = [ColumnDef::text("Table"), ColumnDef::new("Checksum", ty::LONGLONG)];
    send_rows(sink, &cols, rows).await
}

/// Runs `statement physical_table options` on every physical table of
/// `def` and returns each one's `(Msg_type, Msg_text)` rows.
async fn on_every_shard(
    cluster: &Cluster,
    def: &TableDef,
    statement: &str,
    options: &str,
) -> Result<Vec<Vec<(String, String)>>> {
    let work = def.partitions.iter().map(|p| async move {
        let dn = cluster.dn(p.dn)?;
        let mut c = dn.conn().await?;
        let sql = format!("{statement} {}.{} {options}", quote_ident(&def.db), quote_ident(&p.phys_table));
        let rows: Vec<(String, String, String, String)> = c.query(sql).await.map_err(|e| dn.err(e))?;
        Ok::<_, CnError>(rows.into_iter().map(|r| (r.2, r.3)).collect())
    });
    futures::future::join_all(work).await.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lists_parse_with_their_options() {
        let list = |sql: &str, verb| {
            table_list_with_options(sql, verb).map(|(n, o)| (n.iter().map(ToString::to_string).collect::<Vec<_>>(), o))
        };
        assert_eq!(list("CHECK TABLE t", Keyword::CHECK).unwrap(), (vec!["t".to_string()], String::new()));
        assert_eq!(
            list("checksum table a, db.b extended;", Keyword::CHECKSUM).unwrap(),
            (vec!["a".to_string(), "db.b".to_string()], "EXTENDED".to_string())
        );
        assert_eq!(list("OPTIMIZE NO_WRITE_TO_BINLOG TABLE t", Keyword::OPTIMIZE).unwrap().0, ["t"]);
        assert_eq!(list("CHECK TABLE t FOR UPGRADE", Keyword::CHECK).unwrap().1, "FOR UPGRADE");
        assert!(list("CHECK TABLE", Keyword::CHECK).is_err());
        assert!(list("CHECK TABLE t; DROP TABLE u", Keyword::CHECK).is_err(), "one statement");
        assert!(list("REPAIR TABLE t (x)", Keyword::REPAIR).is_err());
        assert!(list("CHECK TABLE t `; DROP TABLE u`", Keyword::CHECK).is_err(), "options are bare words");
        let analyze = table_list("ANALYZE TABLE t PERSISTENT FOR COLUMNS (a) INDEXES ()", Keyword::ANALYZE).unwrap();
        assert_eq!((analyze.0.len(), analyze.1), (1, None));
    }
}
