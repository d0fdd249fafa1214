//! Global index DDL: the index table's definition, online CREATE INDEX
//! (PolarDB-X's states DELETE_ONLY → WRITE_ONLY → WRITE_REORG (backfill) →
//! PUBLIC, each recorded in the metadb), DROP INDEX, and the SHOW output.

use super::clause::{parse_element, IndexSpec};
use super::maintain::{insert_rows_sql, phys};
use super::{all_columns, pk_in, positions, IndexLayout, Row};
use crate::catalog::{table_group_name, GlobalIndex, IndexState, Partitioning, TableDef, TypeKind};
use crate::cluster::Cluster;
use crate::ddl::{create_partitions, drop_partitions, place_partitions, random_suffix, DEFAULT_PARTITIONS};
use crate::dml::StatementTxn;
use crate::dn::quote_ident;
use crate::error::{code, CnError, Result};
use crate::planner::resolve_name;
use crate::session::sink::{send_rows, ResultSink};
use crate::session::Session;
use std::sync::Arc;
use std::time::Duration;

/// Base rows copied per backfill transaction.
const BACKFILL_BATCH: usize = 1000;

/// The definition of a new global index of `base` (whose columns are
/// known), placed over `ndn` DNs. Errors: an unknown column (1072), a
/// duplicate index name (1061), a partition key outside the index columns.
pub fn index_def(base: &TableDef, spec: &IndexSpec, ndn: u32, state: IndexState) -> Result<GlobalIndex> {
    for c in spec.columns.iter().chain(&spec.covering) {
        if base.column(c).is_none() {
            return Err(CnError::mysql(1072, format!("Key column '{c}' doesn't exist in table")));
        }
    }
    let mut name = spec.name.clone().unwrap_or_else(|| spec.columns[0].clone());
    if spec.name.is_none() {
        let mut k = 2;
        while base.global_index(&name).is_some() {
            name = format!("{}_{k}", spec.columns[0]);
            k += 1;
        }
    } else if base.global_index(&name).is_some() {
        return Err(CnError::mysql(1061, format!("Duplicate key name '{name}'")));
    }
    let mut stored: Vec<String> = Vec::new();
    let mut add = |c: &String| {
        if !stored.contains(c) {
            stored.push(c.clone());
        }
    };
    spec.columns.iter().for_each(&mut add);
    base.primary_key.iter().for_each(&mut add);
    spec.covering.iter().for_each(&mut add);
    if spec.clustered {
        base.columns.iter().map(|c| &c.name).for_each(&mut add);
    }
    let partitioning = spec.partitioning.clone().unwrap_or_else(|| Partitioning::Hash {
        columns: spec.columns.clone(),
        count: DEFAULT_PARTITIONS,
        function: "key".into(),
    });
    if matches!(partitioning, Partitioning::Broadcast | Partitioning::Single) {
        return Err(CnError::unsupported("a broadcast or single global index"));
    }
    for k in partitioning.key_columns() {
        if !spec.columns.contains(&k) {
            return Err(CnError::mysql(
                code::ER_NOT_SUPPORTED_YET,
                format!("The partition key of global index '{name}' must be among its index columns ('{k}' is not)"),
            ));
        }
    }
    let columns: Vec<_> = stored
        .iter()
        .map(|c| {
            let mut m = base.column(c).expect("checked above").clone();
            m.hidden = false;
            m.auto_increment = false;
            m
        })
        .collect();
    let q = |cols: &[String]| cols.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ");
    let mut body: Vec<String> = columns
        .iter()
        .map(|c| format!("{} {} {}", quote_ident(&c.name), c.sql_type, if c.nullable { "NULL" } else { "NOT NULL" }))
        .collect();
    body.push(format!("PRIMARY KEY ({})", q(&base.primary_key)));
    body.push(format!("{}KEY {} ({})", if spec.unique { "UNIQUE " } else { "" }, quote_ident(&name), q(&spec.columns)));
    let table_name = super::index_table_name(&base.name, &name);
    let short: String = name.chars().take(32).collect();
    let partitions = place_partitions(&partitioning, &format!("{}_{short}_${}", base.name, random_suffix()), ndn);
    let key_kinds: Vec<TypeKind> =
        partitioning.key_columns().iter().map(|k| base.column(k).map(|c| c.kind).unwrap_or(TypeKind::String)).collect();
    let table = TableDef {
        db: base.db.clone(),
        name: table_name,
        columns,
        primary_key: base.primary_key.clone(),
        table_group: table_group_name(&partitioning, &key_kinds),
        partitioning,
        partitions,
        physical_body: format!("({}) DEFAULT CHARSET=utf8mb4", body.join(", ")),
        version: 1,
        global_indexes: vec![],
    };
    Ok(GlobalIndex {
        name,
        columns: spec.columns.clone(),
        covering: spec.covering.clone(),
        unique: spec.unique,
        clustered: spec.clustered,
        state,
        table,
    })
}

/// `CREATE [UNIQUE] [GLOBAL | CLUSTERED | LOCAL] INDEX name ON t (cols) …`.
pub async fn create_index_statement(s: &mut Session, sql: &str, sink: &mut dyn ResultSink) -> Result<()> {
    let body = sql.trim().trim_end_matches(';');
    // Split "CREATE <flags> INDEX name ON table <rest>".
    let upper = body.to_ascii_uppercase();
    let on = find_word(&upper, "ON").ok_or_else(|| CnError::parse("CREATE INDEX needs ON table"))?;
    let head = body[6..on].trim(); // after CREATE
    let after = body[on + 2..].trim_start();
    let open = after.find('(').ok_or_else(|| CnError::parse("CREATE INDEX needs a column list"))?;
    let table = after[..open].trim();
    let element = format!("{head} {}", &after[open..]);
    let spec = parse_element(&element)?.ok_or_else(|| CnError::parse(format!("near '{head}'")))?;
    let (db, t) = resolve_name(&super::table_name(table), s.db.as_deref())?;
    add_index(s, &db, &t, spec, sink).await
}

/// `ALTER TABLE t ADD [UNIQUE] [GLOBAL | CLUSTERED] INDEX …` and `ALTER TABLE
/// t DROP INDEX g` when g is global: `Ok(false)` when the statement is
/// another ALTER TABLE.
pub async fn alter_table_statement(s: &mut Session, sql: &str, sink: &mut dyn ResultSink) -> Result<bool> {
    let body = sql.trim().trim_end_matches(';');
    let words: Vec<&str> = body.split_whitespace().collect();
    if words.len() < 5 || !words[0].eq_ignore_ascii_case("ALTER") || !words[1].eq_ignore_ascii_case("TABLE") {
        return Ok(false);
    }
    let (db, t) = resolve_name(&super::table_name(words[2]), s.db.as_deref())?;
    let verb = words[3].to_ascii_uppercase();
    if verb == "DROP" && (words[4].eq_ignore_ascii_case("INDEX") || words[4].eq_ignore_ascii_case("KEY")) {
        let idx = words.get(5).map(|w| w.trim_matches('`').to_ascii_lowercase()).unwrap_or_default();
        let snap = s.cluster.catalog.snapshot();
        if snap.base_table(&db, &t).is_some_and(|d| d.global_index(&idx).is_some()) && words.len() == 6 {
            drop_index(s, &db, &t, &idx).await?;
            sink.ok(0, 0, "").await?;
            return Ok(true);
        }
        return Ok(false);
    }
    if verb != "ADD" {
        return Ok(false);
    }
    let at = find_word(&body.to_ascii_uppercase(), "ADD").unwrap_or(0) + 3;
    let rest = body[at..].trim();
    // One operation only: several go the ordinary way (local indexes).
    let several = super::clause::split_elements(&format!("({rest})"), 0).map(|(e, _)| e.len() > 1).unwrap_or(true);
    if several {
        return Ok(false);
    }
    let Some(spec) = parse_element(rest)? else {
        return Ok(false);
    };
    add_index(s, &db, &t, spec, sink).await?;
    Ok(true)
}

/// `DROP INDEX name ON t`.
pub async fn drop_index_statement(s: &mut Session, sql: &str, sink: &mut dyn ResultSink) -> Result<()> {
    let words: Vec<&str> = sql.trim().trim_end_matches(';').split_whitespace().collect();
    let [_, _, idx, on, table] = words.as_slice() else {
        return Err(CnError::parse("expected DROP INDEX name ON table"));
    };
    if !on.eq_ignore_ascii_case("ON") {
        return Err(CnError::parse(format!("near '{on}'")));
    }
    let (db, t) = resolve_name(&super::table_name(table), s.db.as_deref())?;
    let idx = idx.trim_matches('`').to_ascii_lowercase();
    s.cluster.refresh_catalog().await?;
    let snap = s.cluster.catalog.snapshot();
    let def = snap.base_table(&db, &t).ok_or_else(|| CnError::no_such_table(&db, &t))?.clone();
    if def.global_index(&idx).is_some() {
        drop_index(s, &db, &t, &idx).await?;
    } else {
        on_every_partition(&s.cluster, &def, &format!("DROP INDEX {}", quote_ident(&idx))).await?;
    }
    sink.ok(0, 0, "").await
}

/// Byte offset of a whole word `w` (upper-case) in `upper`, outside quotes.
fn find_word(upper: &str, w: &str) -> Option<usize> {
    let b = upper.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' | b'`' => i = crate::planner::split::skip_quoted(b, i),
            _ => {
                let start = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
                let end = b.get(i + w.len()).is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_'));
                if start && end && upper[i..].starts_with(w) {
                    return Some(i);
                }
            }
        }
        i += 1;
    }
    None
}

/// `ALTER TABLE <partition> <op>` on every partition of `def`.
async fn on_every_partition(cluster: &Cluster, def: &TableDef, op: &str) -> Result<()> {
    let work = def.partitions.iter().map(|p| {
        let sql = format!("ALTER TABLE {}.{} {op}", quote_ident(&def.db), quote_ident(&p.phys_table));
        async move { crate::ddl::exec_dn(cluster, p.dn, &sql).await }
    });
    for r in futures::future::join_all(work).await {
        r?;
    }
    Ok(())
}

/// Adds an index to an existing table: a local one on every partition, or
/// a global one built online.
async fn add_index(s: &mut Session, db: &str, t: &str, spec: IndexSpec, sink: &mut dyn ResultSink) -> Result<()> {
    s.cluster.refresh_catalog().await?;
    let snap = s.cluster.catalog.snapshot();
    let def = snap.base_table(db, t).ok_or_else(|| CnError::no_such_table(db, t))?.clone();
    let keys = if def.is_partitioned() { def.partitioning.key_columns() } else { vec![] };
    if !spec.is_global(&keys) {
        on_every_partition(&s.cluster, &def, &format!("ADD {}", spec.local_sql)).await?;
        return sink.ok(0, 0, "").await;
    }
    if keys.is_empty() {
        return Err(CnError::mysql(
            code::ER_NOT_SUPPORTED_YET,
            "This version of the CN doesn't yet support 'a global index on a broadcast or single table'",
        ));
    }
    create_online(s, &def, &spec).await?;
    sink.ok(0, 0, "").await
}

/// How long a CN may go on using a catalog version after the metadb moved
/// on: two polls and a margin. A state change waits this long before the
/// next, so no two CNs are more than one state apart (F1's invariant).
fn propagation(cluster: &Cluster) -> Duration {
    Duration::from_millis(2 * cluster.config.catalog_poll_ms.max(50) + 100)
}

/// Records `state` for index `name` of `db.t` (or removes the index with
/// `None`), then waits until every CN has loaded it.
async fn set_state(cluster: &Cluster, db: &str, t: &str, name: &str, state: Option<IndexState>) -> Result<()> {
    cluster.refresh_catalog().await?;
    let snap = cluster.catalog.snapshot();
    let def = snap.base_table(db, t).ok_or_else(|| CnError::no_such_table(db, t))?;
    let mut nd = TableDef::clone(def);
    match state {
        Some(st) => {
            for g in nd.global_indexes.iter_mut().filter(|g| g.name == name) {
                g.state = st;
            }
        }
        None => nd.global_indexes.retain(|g| g.name != name),
    }
    nd.version += 1;
    cluster.metadb.put_table(&nd).await?;
    cluster.refresh_catalog().await?;
    settle(cluster).await;
    Ok(())
}

/// Waits until the catalog just installed is the only one in use: this
/// CN's statements that started with an older one have ended, and other
/// CNs have polled (F1's bound on how far apart CNs can be). With no other
/// live CN the poll wait is skipped: a CN that starts later registers
/// before it reads the catalog, so it reads this version or a newer one.
async fn settle(cluster: &Cluster) {
    let version = cluster.catalog.snapshot().version;
    if !cluster.drain_statements_below(version, Duration::from_secs(60)).await {
        tracing::warn!(version, "statements planned with an older catalog still run after 60 s");
    }
    let alone = matches!(cluster.metadb.other_live_cns(cluster.cn_id, crate::cluster::CN_LIVENESS).await, Ok(0));
    if !alone {
        tokio::time::sleep(propagation(cluster)).await;
    }
}

/// Online CREATE INDEX: the index table is created, the index enters
/// DELETE_ONLY, then WRITE_ONLY (every CN maintains it), then WRITE_REORG
/// while the rows that existed before are copied in batches, each a
/// distributed transaction that locks its base rows, and finally PUBLIC.
/// Progress is in `cn_meta.gsi_backfill` (SHOW GLOBAL INDEX). A failure or
/// KILL QUERY removes the index and its tables.
async fn create_online(s: &mut Session, def: &TableDef, spec: &IndexSpec) -> Result<()> {
    let cluster = s.cluster.clone();
    let ndn = cluster.dns.len() as u32;
    let g = index_def(def, spec, ndn, IndexState::DeleteOnly)?;
    if cluster.catalog.snapshot().table(&def.db, &g.table.name).is_some() {
        return Err(CnError::mysql(code::ER_TABLE_EXISTS_ERROR, format!("Table '{}' already exists", g.table.name)));
    }
    create_partitions(&cluster, &def.db, &g.table.partitions, &g.table.physical_body).await?;
    let mut nd = def.clone();
    nd.global_indexes.push(g.clone());
    nd.version += 1;
    if let Err(e) = cluster.metadb.put_table(&nd).await {
        drop_partitions(&cluster, &def.db, &g.table.partitions).await;
        return Err(e);
    }
    let r = async {
        cluster.refresh_catalog().await?;
        settle(&cluster).await;
        set_state(&cluster, &def.db, &def.name, &g.name, Some(IndexState::WriteOnly)).await?;
        let total = count_rows(&cluster, def).await?;
        cluster.metadb.backfill_progress(&def.db, &def.name, &g.name, Some((0, total))).await?;
        set_state(&cluster, &def.db, &def.name, &g.name, Some(IndexState::WriteReorg)).await?;
        backfill(s, &def.db, &def.name, &g.name, total).await?;
        set_state(&cluster, &def.db, &def.name, &g.name, Some(IndexState::Public)).await
    }
    .await;
    cluster.metadb.backfill_progress(&def.db, &def.name, &g.name, None).await.ok();
    if let Err(e) = r {
        if let Err(e2) = set_state(&cluster, &def.db, &def.name, &g.name, None).await {
            tracing::warn!(error = %e2, index = %g.name, "removing a failed global index from the catalog failed");
        }
        drop_partitions(&cluster, &def.db, &g.table.partitions).await;
        return Err(e);
    }
    Ok(())
}

/// Times a backfill batch that lost a deadlock runs again before the
/// creation fails with 1213.
const BACKFILL_DEADLOCK_RETRIES: u64 = 20;

/// Copies every base row into index `name` (in WRITE_REORG): per partition,
/// in primary-key order, batches of [`BACKFILL_BATCH`] rows locked FOR
/// UPDATE; index rows already there (written by concurrent statements)
/// are kept; a batch that loses a deadlock is retried. Errors: 1062 when a
/// unique index meets a duplicate, 1317 on KILL QUERY, 1213 after
/// [`BACKFILL_DEADLOCK_RETRIES`] lost deadlocks in a row.
async fn backfill(s: &mut Session, db: &str, t: &str, name: &str, total: u64) -> Result<()> {
    let cluster = s.cluster.clone();
    let snap = cluster.catalog.snapshot();
    let def = snap.base_table(db, t).ok_or_else(|| CnError::no_such_table(db, t))?.clone();
    let g = def.global_index(name).ok_or_else(|| CnError::internal("index vanished during backfill"))?.clone();
    let mut done = 0u64;
    cluster.metadb.backfill_progress(db, t, name, Some((done, total))).await?;
    let pk_cols = def.primary_key.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ");
    for p in &def.partitions {
        let mut last: Option<Row> = None;
        loop {
            crate::txn::failpoint::reached(crate::txn::failpoint::GSI_BACKFILL_BATCH).await;
            if s.kill_query.is_set() {
                return Err(CnError::mysql(code::ER_QUERY_INTERRUPTED, "Query execution was interrupted"));
            }
            let from = match &last {
                Some(r) => {
                    let pos = positions(&def, &def.primary_key)?;
                    let lits: Vec<String> =
                        pos.iter().map(|&i| super::literal(def.columns[i].kind, r[i].as_deref())).collect();
                    format!(" WHERE ({pk_cols}) > ({})", lits.join(", "))
                }
                None => String::new(),
            };
            let sql = format!(
                "SELECT {} FROM {}.{}{from} ORDER BY {pk_cols} LIMIT {BACKFILL_BATCH} FOR UPDATE",
                all_columns(&def),
                quote_ident(db),
                quote_ident(&p.phys_table)
            );
            // A batch chosen as a deadlock victim (its gap locks on the
            // index against a concurrent insert) is rolled back whole and
            // runs again, as a client would retry it.
            let mut attempt = 0u64;
            let rows = loop {
                let st = StatementTxn::begin(s, false).await?;
                let r = async {
                    let rows = st.query(p.dn, &sql).await?;
                    copy_rows(&st, &def, &g, &rows).await?;
                    Ok::<_, CnError>(rows)
                }
                .await;
                match st.finish(s, r).await {
                    Err(CnError::Mysql { code: code::ER_LOCK_DEADLOCK, .. }) if attempt < BACKFILL_DEADLOCK_RETRIES => {
                        attempt += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(10 * attempt)).await;
                    }
                    r => break r?,
                }
            };
            let Some(tail) = rows.last() else { break };
            done += rows.len() as u64;
            last = Some(tail.clone());
            cluster.metadb.backfill_progress(db, t, name, Some((done, total.max(done)))).await?;
            if rows.len() < BACKFILL_BATCH {
                break;
            }
        }
    }
    Ok(())
}

/// The rows of a table (summed `COUNT(*)` of its partitions): the
/// backfill's total.
async fn count_rows(cluster: &Cluster, def: &TableDef) -> Result<u64> {
    let mut total = 0u64;
    for p in &def.partitions {
        let d = cluster.dn(p.dn)?;
        let mut c = d.conn().await?;
        let n: Option<u64> = mysql_async::prelude::Queryable::query_first(
            &mut c,
            format!("SELECT COUNT(*) FROM {}.{}", quote_ident(&def.db), quote_ident(&p.phys_table)),
        )
        .await
        .map_err(|e| d.err(e))?;
        total += n.unwrap_or(0);
    }
    Ok(total)
}

/// Inserts the index rows of `rows` that the index lacks.
async fn copy_rows(st: &StatementTxn, def: &TableDef, g: &GlobalIndex, rows: &[Row]) -> Result<()> {
    let pk_pos = positions(&g.table, &g.table.primary_key)?;
    let pk_cols = g.table.primary_key.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ");
    for (ip, irs) in IndexLayout::new(def, g)?.by_partition(rows)? {
        let dn = g.table.partitions[ip].dn;
        let refs: Vec<&Row> = irs.iter().collect();
        let present = st
            .query(
                dn,
                &format!("SELECT {pk_cols} FROM {} WHERE {} FOR UPDATE", phys(&g.table, ip), pk_in(&g.table, &refs)?),
            )
            .await?;
        let missing: Vec<&Row> = irs
            .iter()
            .filter(|r| {
                let pk: Row = pk_pos.iter().map(|&i| r[i].clone()).collect();
                !present.contains(&pk)
            })
            .collect();
        if !missing.is_empty() {
            st.exec(dn, &insert_rows_sql(&g.table, ip, &missing, false)).await?;
        }
    }
    Ok(())
}

/// DROP of global index `name`: it stops being read and written (removed
/// from the catalog, every CN given time to notice), then its tables go.
async fn drop_index(s: &mut Session, db: &str, t: &str, name: &str) -> Result<()> {
    let cluster = s.cluster.clone();
    cluster.refresh_catalog().await?;
    let snap = cluster.catalog.snapshot();
    let def = snap.base_table(db, t).ok_or_else(|| CnError::no_such_table(db, t))?.clone();
    let g = def
        .global_index(name)
        .ok_or_else(|| CnError::mysql(1091, format!("Can't DROP INDEX `{name}`; check that it exists")))?
        .clone();
    if g.state == IndexState::Public {
        set_state(&cluster, db, t, name, Some(IndexState::WriteOnly)).await?;
    }
    set_state(&cluster, db, t, name, Some(IndexState::DeleteOnly)).await?;
    set_state(&cluster, db, t, name, None).await?;
    drop_partitions(&cluster, db, &g.table.partitions).await;
    cluster.metadb.drop_statistics(db, &g.table.name).await?;
    Ok(())
}

/// `SHOW GLOBAL {INDEX | INDEXES} [FROM t]`: one row per global index, as
/// PolarDB-X shows them, with the backfill's progress while one runs.
pub async fn show(s: &mut Session, table: Option<Arc<TableDef>>, sink: &mut dyn ResultSink) -> Result<()> {
    let snap = s.cluster.catalog.snapshot();
    let tables: Vec<Arc<TableDef>> = match table {
        Some(t) => vec![t],
        None => snap
            .databases
            .values()
            .filter(|d| s.db.as_deref().is_none_or(|db| db == d.name))
            .flat_map(|d| d.tables.values().cloned())
            .collect(),
    };
    let progress = s.cluster.metadb.backfill_progress_all().await?;
    let mut rows = Vec::new();
    for t in tables {
        for g in &t.global_indexes {
            rows.push(global_index_row(&t, g, progress.get(&(t.db.clone(), t.name.clone(), g.name.clone()))));
        }
    }
    send_rows(sink, &crate::session::show::text_columns(SHOW_COLUMNS), rows).await
}

/// The columns of SHOW GLOBAL INDEX and information_schema.GLOBAL_INDEXES.
pub const SHOW_COLUMNS: &[&str] = &[
    "SCHEMA",
    "TABLE",
    "NON_UNIQUE",
    "KEY_NAME",
    "INDEX_NAMES",
    "COVERING_NAMES",
    "INDEX_TYPE",
    "PARTITION_KEY",
    "PARTITION_POLICY",
    "PARTITION_COUNT",
    "STATUS",
    "BACKFILL_PROGRESS",
];

/// One row of [`SHOW_COLUMNS`].
pub fn global_index_row(t: &TableDef, g: &GlobalIndex, progress: Option<&(u64, u64)>) -> Vec<Option<String>> {
    let covering: Vec<String> =
        g.table.columns.iter().map(|c| c.name.clone()).filter(|c| !g.columns.contains(c)).collect();
    vec![
        Some(t.db.clone()),
        Some(t.name.clone()),
        Some(if g.unique { "0" } else { "1" }.into()),
        Some(g.name.clone()),
        Some(g.columns.join(", ")),
        Some(covering.join(", ")),
        Some(if g.clustered { "CLUSTERED" } else { "GLOBAL" }.into()),
        Some(g.table.partitioning.key_columns().join(", ")),
        Some(g.table.partitioning.policy().into()),
        Some(g.table.partitions.len().to_string()),
        Some(g.state.as_str().into()),
        progress.map(|(d, t)| format!("{d} / {t}")),
    ]
}
