//! `CHECK GLOBAL INDEX g [ON t]`: reads the base table and the index table
//! in one snapshot (read views at one snapshot_ts on every DN, no locks)
//! and reports every index row that is missing, orphaned (no base row),
//! different from what its base row implies, or on the wrong partition.

use super::{all_columns, pk_of, IndexLayout, Row};
use crate::catalog::TableDef;
use crate::dn::quote_ident;
use crate::error::{CnError, Result};
use crate::planner::resolve_name;
use crate::session::sink::{send_rows, ResultSink};
use crate::session::Session;
use crate::txn::snapshot::StmtSnapshot;
use crate::txn::ConnSource;
use mysql_async::prelude::*;
use std::collections::BTreeMap;

/// Rows reported in detail; beyond, only counted.
const MAX_DETAILS: usize = 100;

/// The columns of the report.
pub const COLUMNS: &[&str] = &["TABLE", "INDEX", "ERROR_TYPE", "PRIMARY_KEY", "DETAILS"];

/// Runs CHECK GLOBAL INDEX.
pub async fn check_statement(s: &mut Session, sql: &str, sink: &mut dyn ResultSink) -> Result<()> {
    let words: Vec<&str> = sql.trim().trim_end_matches(';').split_whitespace().collect();
    let idx = words
        .get(3)
        .map(|w| w.trim_matches('`').to_ascii_lowercase())
        .ok_or_else(|| CnError::parse("expected CHECK GLOBAL INDEX name [ON table]"))?;
    s.cluster.refresh_catalog().await?;
    let snap = s.cluster.catalog.snapshot();
    let def = match words.get(4..) {
        Some([on, table]) if on.eq_ignore_ascii_case("ON") => {
            let (db, t) = resolve_name(&super::table_name(table), s.db.as_deref())?;
            snap.base_table(&db, &t).cloned().ok_or_else(|| CnError::no_such_table(&db, &t))?
        }
        Some([]) | None => {
            let db = s.db.clone().ok_or_else(CnError::no_db)?;
            snap.database(&db)
                .and_then(|d| d.tables.values().find(|t| t.global_index(&idx).is_some()).cloned())
                .ok_or_else(|| CnError::mysql(1176, format!("Key '{idx}' doesn't exist")))?
        }
        _ => return Err(CnError::parse("expected CHECK GLOBAL INDEX name [ON table]")),
    };
    let rows = check(s, &def, &idx).await?;
    send_rows(sink, &crate::session::show::text_columns(COLUMNS), rows).await
}

/// Compares index `idx` of `def` with the table; returns the report rows,
/// the last a summary.
pub async fn check(s: &Session, def: &TableDef, idx: &str) -> Result<Vec<Vec<Option<String>>>> {
    let g = def
        .global_index(idx)
        .ok_or_else(|| CnError::mysql(1176, format!("Key '{idx}' doesn't exist in table '{}'", def.name)))?;
    // One snapshot: a read view on every DN (two where there is one DN, so
    // that the reads are not single autocommit reads).
    let snapshot = StmtSnapshot::new(s.cluster.clone(), s.dn_session.clone());
    let ndn = s.cluster.dns.len() as u32;
    let per_dn = if ndn == 1 { 2 } else { 1 };
    snapshot.open(&(0..ndn).map(|d| (d, per_dn)).collect()).await?;
    let source = ConnSource::Snapshot(snapshot);
    let read = |t: &TableDef, p: usize| {
        let source = &source;
        let sql = format!(
            "SELECT {} FROM {}.{}",
            all_columns(t),
            quote_ident(&t.db),
            quote_ident(&t.partitions[p].phys_table)
        );
        let dn = t.partitions[p].dn;
        async move {
            let mut c = source.get(dn).await?;
            let rows: Vec<mysql_async::Row> = c.query(sql).await.map_err(CnError::from)?;
            Ok::<Vec<Row>, CnError>(
                rows.into_iter().map(|r| r.unwrap().into_iter().map(crate::txn::value_bytes).collect()).collect(),
            )
        }
    };
    let layout = IndexLayout::new(def, g)?;
    let mut expected: BTreeMap<Row, Row> = BTreeMap::new();
    for p in 0..def.partitions.len() {
        for r in read(def, p).await? {
            expected.insert(pk_of(def, &r)?, layout.row(&r));
        }
    }
    let pk_pos = super::positions(&g.table, &g.table.primary_key)?;
    let mut problems: Vec<(&'static str, Row, String)> = Vec::new();
    let mut index_rows = 0usize;
    for p in 0..g.table.partitions.len() {
        for ir in read(&g.table, p).await? {
            index_rows += 1;
            let pk: Row = pk_pos.iter().map(|&i| ir[i].clone()).collect();
            match expected.remove(&pk) {
                None => problems.push(("ORPHAN", pk, "an index row without a base row".into())),
                Some(want) if want != ir => problems.push((
                    "CONFLICT",
                    pk,
                    format!("index has ({}), table implies ({})", show(&ir), show(&want)),
                )),
                Some(_) => {
                    let right = layout.partition(&ir)?;
                    if right != p {
                        problems.push((
                            "MISPLACED",
                            pk,
                            format!(
                                "on partition {} instead of {}",
                                g.table.partitions[p].name, g.table.partitions[right].name
                            ),
                        ));
                    }
                }
            }
        }
    }
    for (pk, _) in expected {
        problems.push(("MISSING", pk, "a base row without its index row".into()));
    }
    let n = problems.len();
    let mut out: Vec<Vec<Option<String>>> = problems
        .into_iter()
        .take(MAX_DETAILS)
        .map(|(kind, pk, detail)| {
            vec![Some(def.name.clone()), Some(g.name.clone()), Some(kind.into()), Some(show(&pk)), Some(detail)]
        })
        .collect();
    let summary = if n == 0 {
        format!("OK: {index_rows} index rows match the table")
    } else {
        format!("{n} problems in {index_rows} index rows")
    };
    out.push(vec![Some(def.name.clone()), Some(g.name.clone()), Some("SUMMARY".into()), None, Some(summary)]);
    Ok(out)
}

fn show(r: &Row) -> String {
    r.iter()
        .map(|v| match v {
            None => "NULL".to_string(),
            Some(b) => String::from_utf8_lossy(b).into_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
