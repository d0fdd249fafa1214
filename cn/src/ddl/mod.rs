//! DDL: CREATE/DROP DATABASE, CREATE/DROP/TRUNCATE/RENAME/ALTER TABLE;
//! table maintenance (CHECK/OPTIMIZE/REPAIR/CHECKSUM TABLE) in
//! [`maintenance`].
//!
//! A logical table is created by creating each partition's physical table
//! on its DN, reading the column definitions back from the DN (so types are
//! exactly as MariaDB normalized them) and then recording the table in the
//! metadb. A failure half way drops what was created.

pub mod maintenance;
pub mod partition_clause;
pub mod views;

use crate::catalog::{table_group_name, ColumnMeta, PartitionPlacement, Partitioning, TableDef, TypeKind, IMPLICIT_PK};
use crate::cluster::Cluster;
use crate::dn::quote_ident;
use crate::error::{code, CnError, Result};
use crate::planner::resolve_name;
use crate::session::sink::ResultSink;
use crate::session::Session;
use datafusion::sql::sqlparser::ast::{ColumnOption, ObjectType, Statement, TableConstraint};
use datafusion::sql::sqlparser::dialect::MySqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use mysql_async::prelude::*;
use rand::Rng;

/// Partitions of a table created without a partition count (PolarDB-X's
/// AUTO-mode default is 16).
pub const DEFAULT_PARTITIONS: u32 = 16;

/// Runs `sql` on DN `dn` with a pooled connection.
pub async fn exec_dn(cluster: &Cluster, dn: u32, sql: &str) -> Result<()> {
    let d = cluster.dn(dn)?;
    let mut c = d.conn().await?;
    c.query_drop(sql).await.map_err(|e| d.err(e))
}

/// Runs one statement per (DN, SQL) pair concurrently; returns each result.
async fn exec_all(cluster: &Cluster, work: Vec<(u32, String)>) -> Vec<Result<()>> {
    futures::future::join_all(work.iter().map(|(dn, sql)| exec_dn(cluster, *dn, sql))).await
}

pub(crate) fn random_suffix() -> String {
    let mut r = rand::rng();
    (0..4).map(|_| (b'a' + r.random_range(0..26u8)) as char).collect()
}

/// The type family of a column from its information_schema description.
pub fn type_kind(
    data_type: &str,
    column_type: &str,
    precision: Option<u64>,
    scale: Option<u64>,
    fsp: Option<u64>,
) -> TypeKind {
    let unsigned = column_type.contains("unsigned");
    match data_type {
        "tinyint" => TypeKind::Int { unsigned, bytes: 1 },
        "smallint" | "year" => TypeKind::Int { unsigned, bytes: 2 },
        "mediumint" => TypeKind::Int { unsigned, bytes: 3 },
        "int" | "integer" => TypeKind::Int { unsigned, bytes: 4 },
        "bigint" => TypeKind::Int { unsigned, bytes: 8 },
        "decimal" | "numeric" => TypeKind::Decimal {
            precision: precision.unwrap_or(10).min(65) as u8,
            scale: scale.unwrap_or(0).min(30) as i8,
        },
        "float" => TypeKind::Float,
        "double" | "real" => TypeKind::Double,
        "date" => TypeKind::Date,
        "datetime" | "timestamp" => TypeKind::DateTime { fsp: fsp.unwrap_or(0) as u8 },
        "time" => TypeKind::Time,
        "binary" | "varbinary" | "blob" | "tinyblob" | "mediumblob" | "longblob" | "bit" | "geometry" => {
            TypeKind::Binary
        }
        _ => TypeKind::String,
    }
}

type ColumnRow = (String, String, String, String, String, Option<u64>, Option<u64>, Option<u64>);

/// Reads the columns of a physical table from its DN.
async fn read_columns(cluster: &Cluster, dn: u32, db: &str, phys: &str) -> Result<Vec<ColumnMeta>> {
    let d = cluster.dn(dn)?;
    let mut c = d.conn().await?;
    let rows: Vec<ColumnRow> = c
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, EXTRA, NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (db, phys),
        )
        .await
        .map_err(|e| d.err(e))?;
    Ok(rows
        .into_iter()
        .map(|(name, dt, ct, nullable, extra, p, s, fsp)| {
            let name = name.to_ascii_lowercase();
            ColumnMeta {
                kind: type_kind(&dt.to_ascii_lowercase(), &ct.to_ascii_lowercase(), p, s, fsp),
                sql_type: ct,
                nullable: nullable == "YES",
                auto_increment: extra.contains("auto_increment") || name == IMPLICIT_PK,
                hidden: name == IMPLICIT_PK,
                name,
            }
        })
        .collect())
}

/// Creates a physical table with `body` for every placement, in parallel; when
/// one fails, drops those that were created and returns its error.
pub async fn create_partitions(
    cluster: &Cluster,
    db: &str,
    partitions: &[PartitionPlacement],
    body: &str,
) -> Result<()> {
    let work: Vec<(u32, String)> = partitions
        .iter()
        .map(|p| (p.dn, format!("CREATE TABLE {}.{} {body}", quote_ident(db), quote_ident(&p.phys_table))))
        .collect();
    let results = exec_all(cluster, work).await;
    if let Some(e) = results.iter().position(|r| r.is_err()) {
        let created: Vec<PartitionPlacement> =
            partitions.iter().zip(&results).filter(|(_, r)| r.is_ok()).map(|(p, _)| p.clone()).collect();
        drop_partitions(cluster, db, &created).await;
        let mut results = results;
        return Err(results.swap_remove(e).expect_err("position found an error"));
    }
    Ok(())
}

/// Drops the physical tables of `partitions` (best effort: errors are
/// logged; `DROP TABLE IF EXISTS` makes a retry safe).
pub async fn drop_partitions(cluster: &Cluster, db: &str, partitions: &[PartitionPlacement]) {
    let work = partitions
        .iter()
        .map(|p| (p.dn, format!("DROP TABLE IF EXISTS {}.{}", quote_ident(db), quote_ident(&p.phys_table))))
        .collect();
    for r in exec_all(cluster, work).await {
        if let Err(e) = r {
            tracing::warn!(error = %e, "dropping a physical table failed");
        }
    }
}

/// Places `names.len()` partitions of a hash, range or list table round
/// robin over `ndn` DNs (partition i on DN i mod ndn), named
/// `<prefix>_<i:05>`; a broadcast table gets one copy per DN and a single
/// table one on DN 0, named `prefix`.
pub fn place_partitions(p: &Partitioning, prefix: &str, ndn: u32) -> Vec<PartitionPlacement> {
    match p {
        Partitioning::Broadcast => (0..ndn)
            .map(|dn| PartitionPlacement { name: format!("dn{dn}"), phys_table: prefix.to_string(), dn })
            .collect(),
        Partitioning::Single => vec![PartitionPlacement { name: "p1".into(), phys_table: prefix.to_string(), dn: 0 }],
        Partitioning::Hash { count, .. } => (0..*count)
            .map(|i| PartitionPlacement {
                name: format!("p{}", i + 1),
                phys_table: format!("{prefix}_{i:05}"),
                dn: i % ndn,
            })
            .collect(),
        Partitioning::Range { names, .. } | Partitioning::List { names, .. } => names
            .iter()
            .enumerate()
            .map(|(i, n)| PartitionPlacement {
                name: n.clone(),
                phys_table: format!("{prefix}_{i:05}"),
                dn: i as u32 % ndn,
            })
            .collect(),
    }
}

/// `CREATE TABLE [IF NOT EXISTS] t LIKE src` (also `(LIKE src)`) as the
/// CREATE TABLE of `src` that `SHOW CREATE TABLE` shows, named `t`: the
/// same columns, local and global indexes and partitioning, without the
/// AUTO_INCREMENT counter (MySQL 8.0 reference, 15.1.20.3). `None` for
/// any other CREATE TABLE.
async fn create_like(s: &mut Session, sql: &str) -> Result<Option<String>> {
    let Ok(mut stmts) = Parser::parse_sql(&MySqlDialect {}, sql) else { return Ok(None) };
    let Some(Statement::CreateTable(ct)) = stmts.pop() else { return Ok(None) };
    let Some(like) = &ct.like else { return Ok(None) };
    let src = match like {
        datafusion::sql::sqlparser::ast::CreateTableLikeKind::Parenthesized(l)
        | datafusion::sql::sqlparser::ast::CreateTableLikeKind::Plain(l) => &l.name,
    };
    let (db, name) = resolve_name(src, s.db.as_deref())?;
    s.cluster.refresh_catalog().await?;
    let t =
        s.cluster.catalog.snapshot().table(&db, &name).cloned().ok_or_else(|| CnError::no_such_table(&db, &name))?;
    let text = crate::session::show::create_table_text(s, &t).await?;
    let (_, body) = text.split_once('(').ok_or_else(|| CnError::internal("SHOW CREATE TABLE without columns"))?;
    // The table options' AUTO_INCREMENT=n is the source's counter.
    let body = body
        .split(' ')
        .filter(|w| !w.to_ascii_uppercase().starts_with("AUTO_INCREMENT="))
        .collect::<Vec<_>>()
        .join(" ");
    let exists = if ct.if_not_exists { "IF NOT EXISTS " } else { "" };
    Ok(Some(format!("CREATE TABLE {exists}{} ({body}", ct.name)))
}

/// CREATE TABLE.
pub async fn create_table(s: &mut Session, sql: &str, sink: &mut dyn ResultSink) -> Result<()> {
    let sql = sql.trim().trim_end_matches(';');
    if let Some(like) = create_like(s, sql).await? {
        return Box::pin(create_table(s, &like, sink)).await;
    }
    let (open, clause_at) = partition_clause::locate(sql)?;
    let main = &sql[..clause_at.unwrap_or(sql.len())];
    // Index definitions come out of the column list (sqlparser knows no
    // GLOBAL INDEX); each goes back as a local index or becomes a global one
    // once the partitioning is known.
    let (elements, close) = crate::gsi::clause::split_elements(main, open)?;
    let mut kept: Vec<String> = Vec::new();
    let mut specs: Vec<crate::gsi::clause::IndexSpec> = Vec::new();
    for (a, b) in elements {
        let text = main[a..b].trim();
        if let Some(spec) = crate::gsi::clause::parse_element(text)? {
            specs.push(spec);
        } else if let Some((x, y)) = crate::gsi::clause::inline_unique(text) {
            // `c INT UNIQUE`: a unique index on c, named c.
            let col = text.split_whitespace().next().unwrap_or("").trim_matches('`').to_ascii_lowercase();
            kept.push(format!("{}{}", &text[..x], &text[y..]));
            specs.push(crate::gsi::clause::IndexSpec {
                name: Some(col.clone()),
                local_sql: format!("UNIQUE KEY {} ({})", quote_ident(&col), quote_ident(&col)),
                columns: vec![col],
                covering: vec![],
                unique: true,
                clustered: false,
                scope: crate::gsi::clause::Scope::Auto,
                partitioning: None,
            });
        } else {
            kept.push(text.to_string());
        }
    }
    let tail = main[close + 1..].trim();
    let stripped = format!("{}({}) {tail}", &main[..open], kept.join(", "));
    let main = stripped.as_str();
    let mut stmts = Parser::parse_sql(&MySqlDialect {}, main).map_err(CnError::parse)?;
    let Some(Statement::CreateTable(ct)) = stmts.pop() else {
        return Err(CnError::parse("expected CREATE TABLE"));
    };
    if ct.query.is_some() || ct.like.is_some() {
        return Err(CnError::unsupported("CREATE TABLE … SELECT / LIKE"));
    }
    if ct.temporary {
        return Err(CnError::unsupported("CREATE TEMPORARY TABLE"));
    }
    let (db, name) = resolve_name(&ct.name, s.db.as_deref())?;
    if name.len() > 48 {
        return Err(CnError::mysql(
            1059,
            format!("Identifier name '{name}' is too long (the CN allows 48 characters)"),
        ));
    }
    let cluster = s.cluster.clone();
    cluster.refresh_catalog().await?;
    let snap = cluster.catalog.snapshot();
    if snap.database(&db).is_none() {
        return Err(CnError::bad_db(&db));
    }
    if snap.name_taken(&db, &name) {
        if ct.if_not_exists {
            s.warnings.push(("Note".into(), 1050, format!("Table '{name}' already exists")));
            return sink.ok(0, 0, "").await;
        }
        return Err(CnError::mysql(code::ER_TABLE_EXISTS_ERROR, format!("Table '{name}' already exists")));
    }
    // Primary key from column options or a table constraint.
    let mut pk: Vec<String> = Vec::new();
    for c in &ct.columns {
        if c.options.iter().any(|o| matches!(o.option, ColumnOption::PrimaryKey(_))) {
            pk = vec![c.name.value.to_ascii_lowercase()];
        }
    }
    for con in &ct.constraints {
        if let TableConstraint::PrimaryKey(p) = con {
            pk = p.columns.iter().map(|c| c.column.expr.to_string().trim_matches('`').to_ascii_lowercase()).collect();
        }
    }
    let col_names: Vec<String> = ct.columns.iter().map(|c| c.name.value.to_ascii_lowercase()).collect();
    let hidden_pk = pk.is_empty();
    let partitioning = match clause_at {
        Some(at) => partition_clause::parse(&sql[at..], DEFAULT_PARTITIONS)?,
        None if hidden_pk => {
            Partitioning::Hash { columns: vec![IMPLICIT_PK.into()], count: DEFAULT_PARTITIONS, function: "key".into() }
        }
        None => Partitioning::Hash { columns: pk.clone(), count: DEFAULT_PARTITIONS, function: "key".into() },
    };
    for k in partitioning.key_columns() {
        if k != IMPLICIT_PK && !col_names.contains(&k) {
            return Err(CnError::mysql(
                code::ER_BAD_FIELD_ERROR,
                format!("Unknown column '{k}' in 'partition function'"),
            ));
        }
    }
    // Physical body: the column list and table options as written, local
    // indexes included.
    let keys = if matches!(partitioning, Partitioning::Broadcast | Partitioning::Single) {
        vec![]
    } else {
        partitioning.key_columns()
    };
    let (global, local): (Vec<_>, Vec<_>) = specs.into_iter().partition(|sp| sp.is_global(&keys));
    if keys.is_empty() && !global.is_empty() {
        return Err(CnError::mysql(
            code::ER_NOT_SUPPORTED_YET,
            "This version of the CN doesn't yet support 'a global index on a broadcast or single table'",
        ));
    }
    kept.extend(local.iter().map(|sp| sp.local_sql.clone()));
    if hidden_pk {
        kept.push(format!(
            "{} bigint NOT NULL DEFAULT 0 INVISIBLE, PRIMARY KEY ({})",
            quote_ident(IMPLICIT_PK),
            quote_ident(IMPLICIT_PK)
        ));
    }
    let body = format!("({}) {tail}", kept.join(", ")).trim().to_string();
    let ndn = cluster.dns.len() as u32;
    let partitions = place_partitions(&partitioning, &format!("{name}_{}", random_suffix()), ndn);
    create_partitions(&cluster, &db, &partitions, &body).await?;
    let columns = read_columns(&cluster, partitions[0].dn, &db, &partitions[0].phys_table).await?;
    let key_kinds: Vec<TypeKind> = partitioning
        .key_columns()
        .iter()
        .map(|k| columns.iter().find(|c| &c.name == k).map(|c| c.kind).unwrap_or(TypeKind::String))
        .collect();
    let def = TableDef {
        db: db.clone(),
        name: name.clone(),
        primary_key: if hidden_pk { vec![IMPLICIT_PK.into()] } else { pk },
        table_group: table_group_name(&partitioning, &key_kinds),
        partitioning,
        partitions,
        columns,
        physical_body: body,
        version: 1,
        global_indexes: vec![],
    };
    let mut def = def;
    for spec in &global {
        let g = match crate::gsi::ddl::index_def(&def, spec, ndn, crate::catalog::IndexState::Public) {
            Ok(g) => g,
            Err(e) => {
                drop_table_partitions(&cluster, &def).await;
                return Err(e);
            }
        };
        if let Err(e) = create_partitions(&cluster, &db, &g.table.partitions, &g.table.physical_body).await {
            drop_table_partitions(&cluster, &def).await;
            return Err(e);
        }
        def.global_indexes.push(g);
    }
    if let Err(e) = cluster.metadb.put_table(&def).await {
        drop_table_partitions(&cluster, &def).await;
        return Err(e);
    }
    cluster.refresh_catalog().await?;
    sink.ok(0, 0, "").await
}

/// Drops every physical table of `def` and of its global indexes.
pub async fn drop_table_partitions(cluster: &Cluster, def: &TableDef) {
    drop_partitions(cluster, &def.db, &def.partitions).await;
    for g in &def.global_indexes {
        drop_partitions(cluster, &def.db, &g.table.partitions).await;
    }
}

/// The other DDL statements.
pub async fn execute(s: &mut Session, stmt: Statement, sink: &mut dyn ResultSink) -> Result<()> {
    let cluster = s.cluster.clone();
    cluster.refresh_catalog().await?;
    let snap = cluster.catalog.snapshot();
    match stmt {
        Statement::CreateDatabase { db_name, if_not_exists, .. } => {
            let db = db_name.to_string().trim_matches('`').to_ascii_lowercase();
            if db == "information_schema" || db == crate::catalog::metadb::META_DB || db == "mysql" {
                return Err(CnError::mysql(1044, format!("Access denied to database '{db}'")));
            }
            if snap.database(&db).is_some() {
                if if_not_exists {
                    return sink.ok(0, 0, "").await;
                }
                return Err(CnError::mysql(
                    code::ER_DB_CREATE_EXISTS,
                    format!("Can't create database '{db}'; database exists"),
                ));
            }
            let work = (0..cluster.dns.len() as u32)
                .map(|dn| {
                    (dn, format!("CREATE DATABASE IF NOT EXISTS {} DEFAULT CHARACTER SET utf8mb4", quote_ident(&db)))
                })
                .collect();
            for r in exec_all(&cluster, work).await {
                r?;
            }
            cluster.metadb.create_database(&db).await?;
            cluster.refresh_catalog().await?;
            sink.ok(1, 0, "").await
        }
        Statement::Drop { object_type: ObjectType::Database | ObjectType::Schema, if_exists, names, .. } => {
            let db = names.first().map(|n| n.to_string().trim_matches('`').to_ascii_lowercase()).unwrap_or_default();
            let Some(d) = snap.database(&db) else {
                if if_exists {
                    return sink.ok(0, 0, "").await;
                }
                return Err(CnError::mysql(
                    code::ER_DB_DROP_EXISTS,
                    format!("Can't drop database '{db}'; database doesn't exist"),
                ));
            };
            let ntables = d.tables.len() as u64;
            let work = (0..cluster.dns.len() as u32)
                .map(|dn| (dn, format!("DROP DATABASE IF EXISTS {}", quote_ident(&db))))
                .collect();
            for r in exec_all(&cluster, work).await {
                r?;
            }
            cluster.metadb.drop_database(&db).await?;
            cluster.refresh_catalog().await?;
            if s.db.as_deref() == Some(db.as_str()) {
                s.db = None;
            }
            sink.ok(ntables, 0, "").await
        }
        Statement::Drop { object_type: ObjectType::Table, if_exists, names, .. } => {
            for n in names {
                let (db, t) = resolve_name(&n, s.db.as_deref())?;
                let Some(def) = snap.table(&db, &t) else {
                    if if_exists {
                        s.warnings.push(("Note".into(), 1051, format!("Unknown table '{db}.{t}'")));
                        continue;
                    }
                    return Err(CnError::mysql(code::ER_BAD_TABLE_ERROR, format!("Unknown table '{db}.{t}'")));
                };
                if snap.base_table(&db, &t).is_none() {
                    return Err(CnError::mysql(
                        code::ER_NOT_SUPPORTED_YET,
                        format!("'{t}' is the table of a global index; drop the index instead"),
                    ));
                }
                let work = def
                    .partitions
                    .iter()
                    .chain(def.global_indexes.iter().flat_map(|g| g.table.partitions.iter()))
                    .map(|p| {
                        (p.dn, format!("DROP TABLE IF EXISTS {}.{}", quote_ident(&db), quote_ident(&p.phys_table)))
                    })
                    .collect();
                for r in exec_all(&cluster, work).await {
                    r?; // the metadb entry stays: DROP TABLE can be retried
                }
                cluster.metadb.drop_table(&db, &t).await?;
                cluster.forget_sequence(&db, &t).await;
            }
            cluster.refresh_catalog().await?;
            sink.ok(0, 0, "").await
        }
        Statement::Truncate(tr) => {
            for target in tr.table_names {
                let (db, t) = resolve_name(&target.name, s.db.as_deref())?;
                let def = snap.table(&db, &t).ok_or_else(|| CnError::no_such_table(&db, &t))?;
                let work = def
                    .partitions
                    .iter()
                    .chain(def.global_indexes.iter().flat_map(|g| g.table.partitions.iter()))
                    .map(|p| (p.dn, format!("TRUNCATE TABLE {}.{}", quote_ident(&db), quote_ident(&p.phys_table))))
                    .collect();
                for r in exec_all(&cluster, work).await {
                    r?;
                }
            }
            sink.ok(0, 0, "").await
        }
        Statement::RenameTable(renames) => {
            for r in renames {
                let (db, old) = resolve_name(&r.old_name, s.db.as_deref())?;
                let (ndb, new) = resolve_name(&r.new_name, s.db.as_deref())?;
                if ndb != db {
                    return Err(CnError::unsupported("RENAME TABLE across databases"));
                }
                let snap = cluster.catalog.snapshot();
                let def = snap.base_table(&db, &old).ok_or_else(|| CnError::no_such_table(&db, &old))?;
                if snap.name_taken(&db, &new) {
                    return Err(CnError::mysql(code::ER_TABLE_EXISTS_ERROR, format!("Table '{new}' already exists")));
                }
                // Placement is recorded per partition, so a rename only
                // changes the logical name.
                let mut nd = TableDef::clone(def);
                nd.name = new.clone();
                nd.version += 1;
                for g in &mut nd.global_indexes {
                    g.table.name = crate::gsi::index_table_name(&new, &g.name);
                }
                cluster.metadb.rename_table(&nd, &old).await?;
                cluster.forget_sequence(&db, &old).await;
                cluster.refresh_catalog().await?;
            }
            sink.ok(0, 0, "").await
        }
        Statement::AlterTable(at) => alter_table(s, at, sink).await,
        Statement::CreateView(cv) => views::create_view(s, cv, sink).await,
        Statement::Drop { object_type: ObjectType::View, if_exists, names, .. } => {
            views::drop_views(s, &names, if_exists, sink).await
        }
        Statement::CreateIndex(ci) => {
            // A local index on every partition (global indexes are a later issue).
            let (db, t) = resolve_name(&ci.table_name, s.db.as_deref())?;
            let def = snap.table(&db, &t).ok_or_else(|| CnError::no_such_table(&db, &t))?;
            let work = def
                .partitions
                .iter()
                .map(|p| {
                    let mut c = ci.clone();
                    c.table_name = datafusion::sql::sqlparser::ast::ObjectName::from(vec![
                        datafusion::sql::sqlparser::ast::Ident::with_quote('`', db.as_str()),
                        datafusion::sql::sqlparser::ast::Ident::with_quote('`', p.phys_table.as_str()),
                    ]);
                    (p.dn, Statement::CreateIndex(c).to_string())
                })
                .collect();
            for r in exec_all(&cluster, work).await {
                r?;
            }
            sink.ok(0, 0, "").await
        }
        other => Err(CnError::unsupported(other.to_string().split_whitespace().take(3).collect::<Vec<_>>().join(" "))),
    }
}

/// ALTER TABLE: column and index changes run on every partition; the
/// catalog's columns are re-read from the DN afterwards. When some
/// partitions fail, the logical table keeps its old definition and the
/// error names the partitions; re-running the same statement applies it to
/// the partitions that still lack it.
async fn alter_table(
    s: &mut Session,
    at: datafusion::sql::sqlparser::ast::AlterTable,
    sink: &mut dyn ResultSink,
) -> Result<()> {
    use datafusion::sql::sqlparser::ast::AlterTableOperation as Op;
    let cluster = s.cluster.clone();
    let (db, t) = resolve_name(&at.name, s.db.as_deref())?;
    let snap = cluster.catalog.snapshot();
    let def = snap.table(&db, &t).ok_or_else(|| CnError::no_such_table(&db, &t))?.clone();
    let keys = def.partitioning.key_columns();
    // A column a global index stores changes only with its index (not yet).
    let indexed = |c: &str| def.global_indexes.iter().find(|g| g.table.column(c).is_some()).map(|g| g.name.clone());
    let mut ops = Vec::new();
    for op in &at.operations {
        match op {
            Op::DropColumn { column_names, .. } => {
                if column_names.iter().any(|c| keys.contains(&c.value.to_ascii_lowercase())) {
                    return Err(CnError::unsupported("dropping a partition key column"));
                }
                if let Some(g) = column_names.iter().find_map(|c| indexed(&c.value)) {
                    return Err(CnError::unsupported(format!(
                        "dropping a column of global index {g} (drop the index first)"
                    )));
                }
            }
            Op::ModifyColumn { col_name, .. } | Op::ChangeColumn { old_name: col_name, .. } => {
                if keys.contains(&col_name.value.to_ascii_lowercase()) {
                    return Err(CnError::unsupported("changing a partition key column"));
                }
                if let Some(g) = indexed(&col_name.value) {
                    return Err(CnError::unsupported(format!(
                        "changing a column of global index {g} (drop the index first)"
                    )));
                }
            }
            Op::AddColumn { .. } | Op::AddConstraint { .. } | Op::DropIndex { .. } | Op::AlterColumn { .. } => {}
            Op::RenameTable { .. } => return Err(CnError::unsupported("ALTER TABLE … RENAME (use RENAME TABLE)")),
            other => return Err(CnError::unsupported(format!("ALTER TABLE {other}"))),
        }
        ops.push(op.to_string());
    }
    let ops = ops.join(", ");
    // Partitions that already have the change (a retry after a partial
    // failure) are recognised by their column list differing from the
    // catalog's.
    let signature = |cols: &[ColumnMeta]| {
        cols.iter().map(|c| format!("{} {} {}", c.name, c.sql_type, c.nullable)).collect::<Vec<_>>()
    };
    let before = signature(&def.columns);
    let mut work = Vec::new();
    for p in &def.partitions {
        let cols = read_columns(&cluster, p.dn, &db, &p.phys_table).await?;
        if signature(&cols) == before {
            work.push((
                p.dn,
                format!("ALTER TABLE {}.{} {ops}", quote_ident(&db), quote_ident(&p.phys_table)),
                p.name.clone(),
            ));
        }
    }
    let results = futures::future::join_all(work.iter().map(|(dn, sql, _)| exec_dn(&cluster, *dn, sql))).await;
    let failed: Vec<String> = work
        .iter()
        .zip(&results)
        .filter(|(_, r)| r.is_err())
        .map(|((_, _, n), r)| format!("{n}: {}", r.as_ref().err().map(|e| e.to_string()).unwrap_or_default()))
        .collect();
    if !failed.is_empty() {
        return Err(CnError::mysql(
            code::ER_UNKNOWN_ERROR,
            format!(
                "ALTER TABLE applied to {} of {} partitions; failed on {}. The table keeps its old definition; run the same statement again to finish.",
                def.partitions.len() - failed.len(),
                def.partitions.len(),
                failed.join("; ")
            ),
        ));
    }
    let columns = read_columns(&cluster, def.partitions[0].dn, &db, &def.partitions[0].phys_table).await?;
    let mut nd = TableDef::clone(&def);
    nd.columns = columns;
    nd.version += 1;
    cluster.metadb.put_table(&nd).await?;
    cluster.refresh_catalog().await?;
    sink.ok(0, 0, "").await
}
