//! DDL: CREATE/DROP DATABASE, CREATE/DROP/TRUNCATE/RENAME/ALTER TABLE.
//!
//! A logical table is created by creating each partition's physical table
//! on its DN, reading the column definitions back from the DN (so types are
//! exactly as MariaDB normalized them) and then recording the table in the
//! metadb. A failure half way drops what was created.

pub mod partition_clause;

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

fn random_suffix() -> String {
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

/// CREATE TABLE.
pub async fn create_table(s: &mut Session, sql: &str, sink: &mut dyn ResultSink) -> Result<()> {
    let sql = sql.trim().trim_end_matches(';');
    let (open, clause_at) = partition_clause::locate(sql)?;
    let main = &sql[..clause_at.unwrap_or(sql.len())];
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
    if snap.table(&db, &name).is_some() {
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
    // Physical body: the column list and table options as written.
    let mut body = main[open..].trim().to_string();
    if hidden_pk {
        let close = body.rfind(')').ok_or_else(|| CnError::parse("unbalanced parentheses"))?;
        body.insert_str(
            close,
            &format!(
                ", {} bigint NOT NULL DEFAULT 0 INVISIBLE, PRIMARY KEY ({})",
                quote_ident(IMPLICIT_PK),
                quote_ident(IMPLICIT_PK)
            ),
        );
    }
    let ndn = cluster.dns.len() as u32;
    let suffix = random_suffix();
    let partitions: Vec<PartitionPlacement> = match &partitioning {
        Partitioning::Broadcast => (0..ndn)
            .map(|dn| PartitionPlacement { name: format!("dn{dn}"), phys_table: format!("{name}_{suffix}"), dn })
            .collect(),
        Partitioning::Single => {
            vec![PartitionPlacement { name: "p1".into(), phys_table: format!("{name}_{suffix}"), dn: 0 }]
        }
        Partitioning::Hash { count, .. } => (0..*count)
            .map(|i| PartitionPlacement {
                name: format!("p{}", i + 1),
                phys_table: format!("{name}_{suffix}_{i:05}"),
                dn: i % ndn,
            })
            .collect(),
        Partitioning::Range { names, .. } | Partitioning::List { names, .. } => names
            .iter()
            .enumerate()
            .map(|(i, n)| PartitionPlacement {
                name: n.clone(),
                phys_table: format!("{name}_{suffix}_{i:05}"),
                dn: i as u32 % ndn,
            })
            .collect(),
    };
    let work: Vec<(u32, String)> = partitions
        .iter()
        .map(|p| (p.dn, format!("CREATE TABLE {}.{} {body}", quote_ident(&db), quote_ident(&p.phys_table))))
        .collect();
    let results = exec_all(&cluster, work).await;
    if let Some(e) = results.iter().position(|r| r.is_err()) {
        let undo: Vec<(u32, String)> = partitions
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.is_ok())
            .map(|(p, _)| (p.dn, format!("DROP TABLE IF EXISTS {}.{}", quote_ident(&db), quote_ident(&p.phys_table))))
            .collect();
        exec_all(&cluster, undo).await;
        let mut results = results;
        return Err(results.swap_remove(e).expect_err("position found an error"));
    }
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
    };
    cluster.metadb.put_table(&def).await?;
    cluster.refresh_catalog().await?;
    sink.ok(0, 0, "").await
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
                    return Err(CnError::mysql(1051, format!("Unknown table '{db}.{t}'")));
                };
                let work = def
                    .partitions
                    .iter()
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
                let def = snap.table(&db, &old).ok_or_else(|| CnError::no_such_table(&db, &old))?;
                if snap.table(&db, &new).is_some() {
                    return Err(CnError::mysql(code::ER_TABLE_EXISTS_ERROR, format!("Table '{new}' already exists")));
                }
                // Placement is recorded per partition, so a rename only
                // changes the logical name.
                let mut nd = TableDef::clone(def);
                nd.name = new.clone();
                nd.version += 1;
                cluster.metadb.rename_table(&nd, &old).await?;
                cluster.forget_sequence(&db, &old).await;
                cluster.refresh_catalog().await?;
            }
            sink.ok(0, 0, "").await
        }
        Statement::AlterTable(at) => alter_table(s, at, sink).await,
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
    let mut ops = Vec::new();
    for op in &at.operations {
        match op {
            Op::DropColumn { column_names, .. } => {
                if column_names.iter().any(|c| keys.contains(&c.value.to_ascii_lowercase())) {
                    return Err(CnError::unsupported("dropping a partition key column"));
                }
            }
            Op::ModifyColumn { col_name, .. } | Op::ChangeColumn { old_name: col_name, .. } => {
                if keys.contains(&col_name.value.to_ascii_lowercase()) {
                    return Err(CnError::unsupported("changing a partition key column"));
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
