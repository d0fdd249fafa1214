//! SHOW statements over the logical catalog, including PolarDB-X's
//! `SHOW TOPOLOGY FROM t` and `SHOW PARTITIONS FROM t`.

use super::sink::{send_rows, CollectSink, ResultSink};
use super::Session;
use crate::catalog::{Partitioning, TableDef, ViewDef, IMPLICIT_PK};
use crate::dn::quote_ident;
use crate::error::{code, CnError, Result};
use crate::protocol::constants::ty;
use crate::protocol::resultset::ColumnDef;
use crate::txn::TxnInfo;
use std::sync::Arc;

/// SQL LIKE with `%` and `_`, case-insensitive (utf8mb4_general_ci).
pub fn like(pattern: &str, s: &str) -> bool {
    fn go(p: &[char], s: &[char]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some(('%', rest)) => (0..=s.len()).any(|i| go(rest, &s[i..])),
            Some(('_', rest)) => !s.is_empty() && go(rest, &s[1..]),
            Some(('\\', rest)) if !rest.is_empty() => !s.is_empty() && s[0] == rest[0] && go(&rest[1..], &s[1..]),
            Some((c, rest)) => !s.is_empty() && s[0] == *c && go(rest, &s[1..]),
        }
    }
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let s: Vec<char> = s.to_lowercase().chars().collect();
    go(&p, &s)
}

fn unquote(s: &str) -> String {
    s.trim().trim_end_matches(';').trim().trim_matches(|c| c == '`' || c == '\'' || c == '"').to_string()
}

/// Tokens of a SHOW statement (whitespace-separated, `;` dropped).
fn tokens(sql: &str) -> Vec<String> {
    sql.trim().trim_end_matches(';').split_whitespace().map(str::to_string).collect()
}

/// Value of the `LIKE 'x'` clause, if any.
fn like_clause(toks: &[String]) -> Option<String> {
    toks.iter().position(|t| t.eq_ignore_ascii_case("LIKE")).and_then(|i| toks.get(i + 1)).map(|p| unquote(p))
}

/// The table named after FROM/IN (and an optional second FROM db).
fn table_arg(s: &Session, toks: &[String]) -> Result<Arc<TableDef>> {
    let i = toks
        .iter()
        .position(|t| t.eq_ignore_ascii_case("FROM") || t.eq_ignore_ascii_case("IN"))
        .ok_or_else(|| CnError::parse("expected FROM table"))?;
    let name = toks.get(i + 1).ok_or_else(|| CnError::parse("expected a table name"))?;
    let db_override = toks
        .get(i + 2)
        .filter(|t| t.eq_ignore_ascii_case("FROM") || t.eq_ignore_ascii_case("IN"))
        .and_then(|_| toks.get(i + 3))
        .map(|d| unquote(d));
    let (db, t) = qualified(s, name, db_override)?;
    let snap = s.cluster.catalog.snapshot();
    snap.table(&db, &t).cloned().ok_or_else(|| CnError::no_such_table(&db, &t))
}

/// `(db, name)` of a `[db.]name` token; the database defaults to
/// `default_db`, then the session's (1046 without one).
fn qualified(s: &Session, name: &str, default_db: Option<String>) -> Result<(String, String)> {
    Ok(match name.split_once('.') {
        Some((d, t)) => (unquote(d), unquote(t)),
        None => (default_db.or_else(|| s.db.clone()).ok_or_else(CnError::no_db)?, unquote(name)),
    })
}

/// The view named by `SHOW CREATE {VIEW|TABLE} [db.]name`, if it is one.
fn view_arg(s: &Session, toks: &[String]) -> Result<Option<Arc<ViewDef>>> {
    let name = toks.get(3).ok_or_else(|| CnError::parse("expected a name"))?;
    let (db, v) = qualified(s, name, None)?;
    Ok(s.cluster.catalog.snapshot().view(&db, &v).cloned())
}

/// SHOW CREATE VIEW's row, as MySQL prints it.
async fn show_create_view(v: &ViewDef, sink: &mut dyn ResultSink) -> Result<()> {
    let cols: Vec<String> = v.columns.iter().map(|c| quote_ident(c)).collect();
    let list = if cols.is_empty() { String::new() } else { format!("({}) ", cols.join(",")) };
    let ddl = format!(
        "CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`%` SQL SECURITY DEFINER VIEW {} {list}AS {}",
        quote_ident(&v.name),
        v.query
    );
    let row = vec![Some(v.name.clone()), Some(ddl), Some("utf8mb4".into()), Some("utf8mb4_general_ci".into())];
    send_rows(sink, &text_cols(&["View", "Create View", "character_set_client", "collation_connection"]), vec![row])
        .await
}

/// Runs `sql` on the DN of partition 0 of `t` and collects the result.
async fn on_first_partition(s: &mut Session, t: &TableDef, sql: String) -> Result<CollectSink> {
    let mut c = CollectSink::default();
    s.run_on_dn(t.partitions[0].dn, &sql, &mut c).await?;
    Ok(c)
}

/// Sets SHOW INDEX's `Cardinality` (column 6) to the whole table's, from
/// the statistics of `ANALYZE TABLE` (the first shard's own are a
/// fraction): for the first `i` columns of an index, MySQL's number of
/// distinct prefixes, estimated as the product of their NDVs, at most the
/// table's rows, which a unique index's full key has. Rows of a column
/// without statistics keep the shard's.
fn index_cardinality(rows: &mut [crate::protocol::resultset::TextRow], st: &crate::catalog::statistics::TableStats) {
    let text = |r: &crate::protocol::resultset::TextRow, i: usize| {
        r.get(i).and_then(|v| v.as_deref()).map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default()
    };
    let total = st.rows as f64;
    // A unique index's columns, to know its full key.
    let mut widths: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for r in rows.iter() {
        *widths.entry(text(r, 2)).or_default() += 1;
    }
    let mut prefix: Option<(String, f64)> = None;
    for r in rows.iter_mut() {
        let (key, seq, column) = (text(r, 2), text(r, 3).parse::<usize>().unwrap_or(1), text(r, 4));
        let before = match &prefix {
            Some((k, n)) if *k == key && seq > 1 => *n,
            _ => 1.0,
        };
        let Some(col) = st.columns.get(&column.to_ascii_lowercase()) else {
            prefix = None;
            continue;
        };
        let unique_key = text(r, 1) == "0" && widths.get(&key) == Some(&seq);
        let distinct = if unique_key { total } else { (before * col.ndv.max(1.0)).min(total) };
        prefix = Some((key, distinct));
        if let Some(v) = r.get_mut(6) {
            *v = Some(format!("{}", distinct.round() as u64).into_bytes());
        }
    }
}

/// Text columns named `names`.
pub fn text_columns(names: &[&str]) -> Vec<ColumnDef> {
    text_cols(names)
}

fn text_cols(names: &[&str]) -> Vec<ColumnDef> {
    names.iter().map(|n| ColumnDef::text(*n)).collect()
}

/// Runs a SHOW statement.
pub async fn show(s: &mut Session, sql: &str, sink: &mut dyn ResultSink) -> Result<()> {
    let toks = tokens(sql);
    let up: Vec<String> = toks.iter().map(|t| t.to_ascii_uppercase()).collect();
    let w: Vec<&str> =
        up.iter().skip(1).map(String::as_str).filter(|w| *w != "FULL" && *w != "SESSION" && *w != "GLOBAL").collect();
    let full = up.get(1).is_some_and(|w| w == "FULL");
    if up.get(1).is_some_and(|w| w == "GLOBAL") && up.get(2).is_some_and(|w| w == "INDEX" || w == "INDEXES") {
        let t = if up.len() > 3 { Some(table_arg(s, &toks)?) } else { None };
        return crate::gsi::ddl::show(s, t, sink).await;
    }
    let snap = s.cluster.catalog.snapshot();
    match w.as_slice() {
        ["DATABASES", ..] | ["SCHEMAS", ..] => {
            let pat = like_clause(&toks);
            let mut names = vec!["information_schema".to_string()];
            names.extend(snap.databases.keys().cloned());
            let rows = names
                .into_iter()
                .filter(|n| pat.as_deref().is_none_or(|p| like(p, n)))
                .map(|n| vec![Some(n)])
                .collect();
            send_rows(sink, &text_cols(&["Database"]), rows).await
        }
        ["TABLES", ..] => {
            let db = match up.iter().position(|t| t == "FROM" || t == "IN") {
                Some(i) => unquote(toks.get(i + 1).map(String::as_str).unwrap_or("")),
                None => s.db.clone().ok_or_else(CnError::no_db)?,
            };
            let d = snap.database(&db).ok_or_else(|| CnError::bad_db(&db))?;
            let pat = like_clause(&toks);
            let col = format!("Tables_in_{db}");
            let mut names: Vec<(&String, &str)> = d.tables.keys().map(|n| (n, "BASE TABLE")).collect();
            names.extend(d.views.keys().map(|n| (n, "VIEW")));
            names.sort();
            let rows: Vec<Vec<Option<String>>> = names
                .into_iter()
                .filter(|(n, _)| pat.as_deref().is_none_or(|p| like(p, n)))
                .map(|(n, ty)| if full { vec![Some(n.clone()), Some(ty.into())] } else { vec![Some(n.clone())] })
                .collect();
            let cols = if full { text_cols(&[&col, "Table_type"]) } else { text_cols(&[&col]) };
            send_rows(sink, &cols, rows).await
        }
        ["COLUMNS", ..] | ["FIELDS", ..] => {
            let t = table_arg(s, &toks)?;
            let phys = format!("{}.{}", quote_ident(&t.db), quote_ident(&t.partitions[0].phys_table));
            let sql = format!("SHOW {}COLUMNS FROM {phys}", if full { "FULL " } else { "" });
            let mut c = on_first_partition(s, &t, sql).await?;
            c.rows.retain(|r| r.first().and_then(|v| v.as_deref()) != Some(IMPLICIT_PK.as_bytes()));
            if let Some(p) = like_clause(&toks) {
                c.rows.retain(|r| {
                    r.first().and_then(|v| v.as_deref()).is_some_and(|n| like(&p, &String::from_utf8_lossy(n)))
                });
            }
            forward(sink, c).await
        }
        ["INDEX", ..] | ["INDEXES", ..] | ["KEYS", ..] => {
            let t = table_arg(s, &toks)?;
            let phys = format!("{}.{}", quote_ident(&t.db), quote_ident(&t.partitions[0].phys_table));
            let mut c = on_first_partition(s, &t, format!("SHOW INDEX FROM {phys}")).await?;
            for r in c.rows.iter_mut() {
                if let Some(v) = r.first_mut() {
                    *v = Some(t.name.clone().into_bytes());
                }
            }
            c.rows.retain(|r| r.get(4).and_then(|v| v.as_deref()) != Some(IMPLICIT_PK.as_bytes()));
            if let Some(st) = snap.statistics(&t.db, &t.name) {
                index_cardinality(&mut c.rows, st);
            }
            forward(sink, c).await
        }
        ["CREATE", "VIEW", ..] => match view_arg(s, &toks)? {
            Some(v) => show_create_view(&v, sink).await,
            None => {
                let name = unquote(toks.get(3).map(String::as_str).unwrap_or(""));
                Err(CnError::mysql(code::ER_NO_SUCH_TABLE, format!("Table '{name}' doesn't exist")))
            }
        },
        ["CREATE", "TABLE", ..] => {
            if let Some(v) = view_arg(s, &toks)? {
                return show_create_view(&v, sink).await;
            }
            let mut toks2 = toks.clone();
            toks2[2] = "FROM".into();
            let t = table_arg(s, &toks2)?;
            let ddl = create_table_text(s, &t).await?;
            send_rows(sink, &text_cols(&["Table", "Create Table"]), vec![vec![Some(t.name.clone()), Some(ddl)]]).await
        }
        ["CREATE", "DATABASE", ..] | ["CREATE", "SCHEMA", ..] => {
            let db = unquote(toks.last().map(String::as_str).unwrap_or(""));
            snap.database(&db).ok_or_else(|| CnError::bad_db(&db))?;
            let ddl = format!("CREATE DATABASE {} /*!40100 DEFAULT CHARACTER SET utf8mb4 */", quote_ident(&db));
            send_rows(sink, &text_cols(&["Database", "Create Database"]), vec![vec![Some(db), Some(ddl)]]).await
        }
        ["VARIABLES", ..] => {
            let pat = like_clause(&toks);
            let rows = s
                .vars
                .iter()
                .filter(|(k, _)| pat.as_deref().is_none_or(|p| like(p, k)))
                .map(|(k, v)| vec![Some(k.clone()), Some(v.clone())])
                .collect();
            send_rows(sink, &text_cols(&["Variable_name", "Value"]), rows).await
        }
        ["STATUS", ..] => {
            // The statement counters are the session's unless GLOBAL is
            // asked (MySQL's default scope is SESSION); the others are the
            // CN's, or the session's own last query and commit.
            let status = if up.get(1).is_some_and(|w| w == "GLOBAL") { &s.cluster.status } else { &*s.status };
            let procs = s.cluster.processes.lock().unwrap_or_else(|e| e.into_inner()).len();
            let m = &s.cluster.memory;
            let n = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed).to_string();
            let vals = [
                ("Threads_connected", procs.to_string()),
                ("Uptime", "0".to_string()),
                // CN-wide: memory held by queries now and their limit, queries
                // run in DataFusion, spilled and refused, bytes and files spilled.
                ("Cn_memory_used", m.used().to_string()),
                ("Cn_memory_total", m.total().to_string()),
                ("Cn_queries", n(&m.queries)),
                ("Cn_queries_spilled", n(&m.queries_spilled)),
                ("Cn_queries_out_of_memory", n(&m.out_of_memory)),
                ("Cn_spilled_bytes", n(&m.spilled_bytes)),
                ("Cn_spill_files", n(&m.spill_files)),
                ("Cn_spill_bytes_on_disk", m.spilled_now().0.to_string()),
                // Point SELECTs served from the plan cache, entries built, held.
                ("Cn_plan_cache_hits", n(&status.plan_cache_hits)),
                ("Cn_plan_cache_misses", n(&status.plan_cache_misses)),
                ("Cn_plan_cache_size", (s.cluster.plan_cache.len() + s.cluster.statement_plans.len()).to_string()),
                // Global-index lookups of base rows: per-DN queries, or the planner.
                ("Cn_gsi_lookups_direct", n(&status.gsi_lookups_direct)),
                ("Cn_gsi_lookups_planned", n(&status.gsi_lookups_planned)),
                // SELECTs gathered from per-DN queries, without the executor.
                ("Cn_gathered_selects", n(&status.gathered_selects)),
                // Key queries of lookup joins (keys an earlier lookup bounds
                // are not read).
                ("Cn_lookup_key_reads", n(&status.lookup_key_reads)),
                // Write transactions committed: one DN in one phase, several
                // DNs with async commit or with two-phase commit.
                ("Cn_commits_one_phase", n(&s.cluster.commits.one_phase)),
                ("Cn_commits_async", n(&s.cluster.commits.async_commit)),
                ("Cn_commits_two_phase", n(&s.cluster.commits.two_phase)),
                // How this session's last write transaction committed.
                ("Cn_last_commit", s.last_commit.as_str().to_string()),
                // This session's last query run in DataFusion.
                ("Cn_last_query_peak_memory", s.last_query.peak_memory.to_string()),
                ("Cn_last_query_spilled_bytes", s.last_query.spilled_bytes.to_string()),
                ("Cn_last_query_spill_files", s.last_query.spill_files.to_string()),
            ];
            let pat = like_clause(&toks);
            let rows = vals
                .into_iter()
                .filter(|(k, _)| pat.as_deref().is_none_or(|p| like(p, k)))
                .map(|(k, v)| vec![Some(k.to_string()), Some(v)])
                .collect();
            send_rows(sink, &text_cols(&["Variable_name", "Value"]), rows).await
        }
        ["WARNINGS", ..] | ["ERRORS", ..] => {
            let cols = vec![ColumnDef::text("Level"), ColumnDef::new("Code", ty::LONG), ColumnDef::text("Message")];
            let rows = s
                .warnings
                .iter()
                .map(|(l, c, m)| vec![Some(l.clone()), Some(c.to_string()), Some(m.clone())])
                .collect();
            send_rows(sink, &cols, rows).await
        }
        ["PROCESSLIST", ..] => {
            let procs: Vec<_> =
                s.cluster.processes.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
            let cols: Vec<ColumnDef> = crate::cluster::ProcessInfo::COLUMNS
                .iter()
                .map(|&(n, t)| t.map_or_else(|| ColumnDef::text(n), |t| ColumnDef::new(n, t)))
                .collect();
            let rows = procs
                .iter()
                .map(|p| {
                    let mut row = p.row();
                    let info = &mut row[crate::cluster::ProcessInfo::INFO];
                    if !full {
                        *info = info.take().map(|i| i.chars().take(100).collect());
                    }
                    row
                })
                .collect();
            send_rows(sink, &cols, rows).await
        }
        ["TRANS", ..] => {
            // PolarDB-X's SHOW TRANS: the distributed transactions in flight
            // on this CN, with their timestamps.
            let txns: Vec<_> = s.cluster.txns.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
            let cols: Vec<ColumnDef> = TxnInfo::COLUMNS
                .iter()
                .map(|&(n, num)| if num { ColumnDef::new(n, ty::LONGLONG) } else { ColumnDef::text(n) })
                .collect();
            let rows = txns.iter().map(|t| t.row().into_iter().map(Some).collect()).collect();
            send_rows(sink, &cols, rows).await
        }
        ["TOPOLOGY", ..] => {
            let t = table_arg(s, &toks)?;
            let cols = vec![
                ColumnDef::new("ID", ty::LONG),
                ColumnDef::text("GROUP_NAME"),
                ColumnDef::text("TABLE_NAME"),
                ColumnDef::text("PARTITION_NAME"),
                ColumnDef::text("DN_ID"),
                ColumnDef::text("DN_ADDRESS"),
            ];
            let rows = t
                .partitions
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let addr = s.cluster.dns.get(p.dn as usize).map(|d| format!("{}:{}", d.info.host, d.info.port));
                    vec![
                        Some(i.to_string()),
                        Some(format!("{}_dn{}", t.db, p.dn)),
                        Some(p.phys_table.clone()),
                        Some(p.name.clone()),
                        Some(format!("dn{}", p.dn)),
                        addr,
                    ]
                })
                .collect();
            send_rows(sink, &cols, rows).await
        }
        ["PARTITIONS", ..] => {
            let t = table_arg(s, &toks)?;
            let cols = text_cols(&[
                "TABLE_NAME",
                "TABLE_GROUP",
                "PARTITION_POLICY",
                "PARTITION_KEY",
                "PARTITION_NAME",
                "PHYSICAL_TABLE",
                "DN_ID",
            ]);
            let rows = t
                .partitions
                .iter()
                .map(|p| {
                    vec![
                        Some(t.name.clone()),
                        Some(t.table_group.clone()),
                        Some(t.partitioning.policy().to_string()),
                        Some(t.partitioning.key_columns().join(",")),
                        Some(p.name.clone()),
                        Some(p.phys_table.clone()),
                        Some(format!("dn{}", p.dn)),
                    ]
                })
                .collect();
            send_rows(sink, &cols, rows).await
        }
        ["TABLE", "STATUS", ..] => {
            let db = s.db.clone().ok_or_else(CnError::no_db)?;
            let d = snap.database(&db).ok_or_else(|| CnError::bad_db(&db))?;
            let pat = like_clause(&toks);
            let cols = text_cols(&[
                "Name",
                "Engine",
                "Version",
                "Row_format",
                "Rows",
                "Collation",
                "Create_options",
                "Comment",
            ]);
            let rows = d
                .tables
                .values()
                .filter(|t| pat.as_deref().is_none_or(|p| like(p, &t.name)))
                .map(|t| {
                    vec![
                        Some(t.name.clone()),
                        Some("InnoDB".into()),
                        Some("10".into()),
                        Some("Dynamic".into()),
                        None,
                        Some("utf8mb4_general_ci".into()),
                        Some(t.partitioning.policy().to_string()),
                        Some(String::new()),
                    ]
                })
                .collect();
            send_rows(sink, &cols, rows).await
        }
        ["ENGINES", ..] | ["CHARSET", ..] | ["CHARACTER", "SET", ..] | ["COLLATION", ..] | ["PLUGINS", ..] => {
            // Server-level facts: the DNs' answer is the CN's.
            let dn = s.cluster.any_dn();
            s.run_on_dn(dn, sql, sink).await
        }
        // The CN's users (its config's) may do anything: MySQL's answer for
        // such a user, which tools read before offering what they do.
        ["GRANTS", ..] => {
            let who = format!("{}@{}", quote_ident(&s.user), quote_ident(&s.host));
            let cols = text_cols(&[&format!("Grants for {}@{}", s.user, s.host)]);
            let grant = format!("GRANT ALL PRIVILEGES ON *.* TO {who} WITH GRANT OPTION");
            send_rows(sink, &cols, vec![vec![Some(grant)]]).await
        }
        // The CN has no stored routines, events or triggers: MySQL's
        // empty answers (`mariadb-dump --routines --events` asks).
        ["EVENTS", ..] => {
            let cols = text_cols(&[
                "Db",
                "Name",
                "Definer",
                "Time zone",
                "Type",
                "Execute at",
                "Interval value",
                "Interval field",
                "Starts",
                "Ends",
                "Status",
                "Originator",
                "character_set_client",
                "collation_connection",
                "Database Collation",
            ]);
            send_rows(sink, &cols, vec![]).await
        }
        ["FUNCTION", "STATUS", ..] | ["PROCEDURE", "STATUS", ..] => {
            let cols = text_cols(&[
                "Db",
                "Name",
                "Type",
                "Definer",
                "Modified",
                "Created",
                "Security_type",
                "Comment",
                "character_set_client",
                "collation_connection",
                "Database Collation",
            ]);
            send_rows(sink, &cols, vec![]).await
        }
        ["TRIGGERS", ..] => {
            let cols = text_cols(&[
                "Trigger",
                "Event",
                "Table",
                "Statement",
                "Timing",
                "Created",
                "sql_mode",
                "Definer",
                "character_set_client",
                "collation_connection",
                "Database Collation",
            ]);
            send_rows(sink, &cols, vec![]).await
        }
        _ => Err(CnError::unsupported(format!("SHOW {}", w.first().copied().unwrap_or("")))),
    }
}

async fn forward(sink: &mut dyn ResultSink, c: CollectSink) -> Result<()> {
    sink.columns(&c.columns).await?;
    for r in &c.rows {
        sink.row(r).await?;
    }
    sink.end_rows().await
}

/// The logical CREATE TABLE: a partition's DDL with the logical name, the
/// implicit key hidden, the partition clause appended, and written so that
/// running it again through the CN (a dump restored) builds the same table:
/// on a partitioned table the shard's keys say `LOCAL` (AUTO mode would
/// make a plain `KEY` global) and the global indexes are listed.
/// The logical `CREATE TABLE` of `t` that `SHOW CREATE TABLE` shows: its
/// first partition's, read from its DN, as [`logical_create_table`] makes
/// it.
pub async fn create_table_text(s: &mut Session, t: &TableDef) -> Result<String> {
    let phys = format!("{}.{}", quote_ident(&t.db), quote_ident(&t.partitions[0].phys_table));
    let c = on_first_partition(s, t, format!("SHOW CREATE TABLE {phys}")).await?;
    let ddl = c.rows.first().and_then(|r| r.get(1)).and_then(|v| v.clone()).unwrap_or_default();
    Ok(logical_create_table(t, &String::from_utf8_lossy(&ddl)))
}

pub fn logical_create_table(t: &TableDef, physical: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    for (i, line) in physical.lines().enumerate() {
        if i == 0 {
            lines.push(format!("CREATE TABLE {} (", quote_ident(&t.name)));
            continue;
        }
        if line.contains(IMPLICIT_PK) {
            continue;
        }
        if line.starts_with(')') {
            let globals: Vec<String> = t.global_indexes.iter().map(global_index_element).collect();
            if !globals.is_empty() {
                if let Some(last) = lines.last_mut().filter(|l| !l.ends_with(',') && !l.ends_with('(')) {
                    last.push(',');
                }
                let n = globals.len();
                for (k, g) in globals.into_iter().enumerate() {
                    lines.push(if k + 1 < n { format!("{g},") } else { g });
                }
            }
        }
        let local = t.is_partitioned().then(|| line.trim_start()).and_then(|l| {
            let indent = &line[..line.len() - l.len()];
            l.strip_prefix("UNIQUE KEY ")
                .map(|rest| format!("{indent}UNIQUE LOCAL KEY {rest}"))
                .or_else(|| l.strip_prefix("KEY ").map(|rest| format!("{indent}LOCAL KEY {rest}")))
        });
        lines.push(local.unwrap_or_else(|| line.to_string()));
    }
    // Dropping the hidden key can leave a trailing comma before ")".
    let mut out = lines.join("\n");
    while let Some(pos) = out.find(",\n)") {
        out.replace_range(pos..pos + 1, "");
    }
    let clause = match &t.partitioning {
        Partitioning::Hash { columns, count, function } => {
            let cols: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
            format!("\nPARTITION BY {}({}) PARTITIONS {count}", function.to_ascii_uppercase(), cols.join(","))
        }
        Partitioning::Range { column, bounds, names } => {
            let parts: Vec<String> = names
                .iter()
                .zip(bounds)
                .map(|(n, b)| {
                    format!(
                        "PARTITION {n} VALUES LESS THAN ({})",
                        b.as_deref().map(sql_lit).unwrap_or_else(|| "MAXVALUE".into())
                    )
                })
                .collect();
            format!("\nPARTITION BY RANGE COLUMNS({})\n({})", quote_ident(column), parts.join(",\n "))
        }
        Partitioning::List { column, values, names } => {
            let parts: Vec<String> = names
                .iter()
                .zip(values)
                .map(|(n, v)| {
                    format!("PARTITION {n} VALUES IN ({})", v.iter().map(|x| sql_lit(x)).collect::<Vec<_>>().join(","))
                })
                .collect();
            format!("\nPARTITION BY LIST COLUMNS({})\n({})", quote_ident(column), parts.join(",\n "))
        }
        Partitioning::Broadcast => "\nBROADCAST".into(),
        Partitioning::Single => "\nSINGLE".into(),
    };
    out.push_str(&clause);
    out
}

/// A global index as a CREATE TABLE element: `[UNIQUE] {GLOBAL |
/// CLUSTERED} INDEX g (cols) [COVERING (cols)] PARTITION BY KEY(cols)
/// PARTITIONS n`.
fn global_index_element(g: &crate::catalog::GlobalIndex) -> String {
    let list = |cols: &[String]| cols.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ");
    let mut out = format!(
        "  {}{} INDEX {} ({})",
        if g.unique { "UNIQUE " } else { "" },
        if g.clustered { "CLUSTERED" } else { "GLOBAL" },
        quote_ident(&g.name),
        list(&g.columns)
    );
    if !g.clustered && !g.covering.is_empty() {
        out.push_str(&format!(" COVERING ({})", list(&g.covering)));
    }
    if let Partitioning::Hash { columns, count, function } = &g.table.partitioning {
        out.push_str(&format!(" PARTITION BY {}({}) PARTITIONS {count}", function.to_ascii_uppercase(), list(columns)));
    }
    out
}

fn sql_lit(v: &str) -> String {
    if v.parse::<f64>().is_ok() || v.eq_ignore_ascii_case("null") {
        v.to_string()
    } else {
        crate::dn::quote_str(v)
    }
}

#[cfg(test)]
mod tests {
    use super::like;

    #[test]
    fn like_patterns() {
        assert!(like("tpch%", "TPCH"));
        assert!(like("a_c", "abc"));
        assert!(!like("a_c", "abbc"));
        assert!(like("%", ""));
        assert!(like("a\\_b", "a_b"));
        assert!(!like("a\\_b", "axb"));
    }
}
