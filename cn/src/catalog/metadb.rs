//! The metadb (PolarDB-X's GMS): a MariaDB database `cn_meta` holding the
//! catalog, the DN list, sequences and the catalog version.
//!
//! Each table's definition is one JSON document (a [`TableDef`]) in
//! `cn_meta.tables`; every DDL bumps `cn_meta.catalog_version`, which CNs poll
//! to reload their snapshot. Sequences hand out cached ranges of ids.

use super::{CatalogSnapshot, DatabaseDef, TableDef, ViewDef};
use crate::error::{CnError, Result};
use mysql_async::prelude::*;
use mysql_async::Pool;
use std::collections::BTreeMap;
use std::sync::Arc;

pub const META_DB: &str = "cn_meta";

const SCHEMA: &[&str] = &[
    "CREATE DATABASE IF NOT EXISTS cn_meta",
    "CREATE TABLE IF NOT EXISTS cn_meta.dns (id INT PRIMARY KEY, host VARCHAR(255) NOT NULL, port INT NOT NULL, user VARCHAR(64) NOT NULL, password VARCHAR(255) NOT NULL DEFAULT '')",
    "CREATE TABLE IF NOT EXISTS cn_meta.dbs (name VARCHAR(64) PRIMARY KEY, created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    "CREATE TABLE IF NOT EXISTS cn_meta.tables (db VARCHAR(64) NOT NULL, name VARCHAR(64) NOT NULL, version BIGINT NOT NULL, def LONGTEXT NOT NULL, PRIMARY KEY (db, name))",
    "CREATE TABLE IF NOT EXISTS cn_meta.catalog_version (id INT PRIMARY KEY, version BIGINT NOT NULL)",
    "INSERT IGNORE INTO cn_meta.catalog_version VALUES (1, 1)",
    "CREATE TABLE IF NOT EXISTS cn_meta.gsi_backfill (db VARCHAR(64) NOT NULL, tbl VARCHAR(64) NOT NULL, idx VARCHAR(64) NOT NULL, rows_done BIGINT UNSIGNED NOT NULL, rows_total BIGINT UNSIGNED NOT NULL, PRIMARY KEY (db, tbl, idx))",
    "CREATE TABLE IF NOT EXISTS cn_meta.cns (id BIGINT UNSIGNED PRIMARY KEY, last_seen TIMESTAMP(3) NOT NULL)",
    "CREATE TABLE IF NOT EXISTS cn_meta.views (db VARCHAR(64) NOT NULL, name VARCHAR(64) NOT NULL, def LONGTEXT NOT NULL, PRIMARY KEY (db, name))",
    "CREATE TABLE IF NOT EXISTS cn_meta.table_stats (db VARCHAR(64) NOT NULL, tbl VARCHAR(64) NOT NULL, row_count BIGINT UNSIGNED NOT NULL, avg_row_bytes BIGINT UNSIGNED NOT NULL, analyzed TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (db, tbl))",
    // Per-column statistics (JSON of `ColumnStats` by column), added after
    // the table: a metadb made before has the table without it.
    "ALTER TABLE cn_meta.table_stats ADD COLUMN IF NOT EXISTS column_stats LONGTEXT NULL",
    "CREATE TABLE IF NOT EXISTS cn_meta.sequences (db VARCHAR(64) NOT NULL, tbl VARCHAR(64) NOT NULL, next_value BIGINT UNSIGNED NOT NULL, PRIMARY KEY (db, tbl))",
];

/// A data node as recorded in the metadb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnInfo {
    pub id: u32,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
}

/// Access to the metadb.
#[derive(Clone)]
pub struct MetaDb {
    pool: Pool,
}

impl MetaDb {
    pub fn new(pool: Pool) -> Self {
        MetaDb { pool }
    }

    pub async fn conn(&self) -> Result<mysql_async::Conn> {
        self.pool.get_conn().await.map_err(|e| CnError::from_dn("metadb", e))
    }

    /// Creates the metadb schema if it is missing (idempotent).
    pub async fn bootstrap(&self) -> Result<()> {
        let mut c = self.conn().await?;
        for s in SCHEMA.iter().chain([&crate::txn::log::SCHEMA]) {
            c.query_drop(*s).await?;
        }
        Ok(())
    }

    pub async fn dns(&self) -> Result<Vec<DnInfo>> {
        let mut c = self.conn().await?;
        let rows: Vec<(u32, String, u16, String, String)> =
            c.query("SELECT id, host, port, user, password FROM cn_meta.dns ORDER BY id").await?;
        Ok(rows.into_iter().map(|(id, host, port, user, password)| DnInfo { id, host, port, user, password }).collect())
    }

    /// Registers DNs (playground set-up); existing ids are updated.
    pub async fn register_dns(&self, dns: &[DnInfo]) -> Result<()> {
        let mut c = self.conn().await?;
        for d in dns {
            c.exec_drop(
                "REPLACE INTO cn_meta.dns (id, host, port, user, password) VALUES (?, ?, ?, ?, ?)",
                (d.id, &d.host, d.port, &d.user, &d.password),
            )
            .await?;
        }
        Ok(())
    }

    pub async fn version(&self) -> Result<u64> {
        let mut c = self.conn().await?;
        let v: Option<u64> = c.query_first("SELECT version FROM cn_meta.catalog_version WHERE id = 1").await?;
        Ok(v.unwrap_or(0))
    }

    /// Reads the whole catalog.
    pub async fn load(&self) -> Result<CatalogSnapshot> {
        let mut c = self.conn().await?;
        let version: Option<u64> = c.query_first("SELECT version FROM cn_meta.catalog_version WHERE id = 1").await?;
        let dbs: Vec<String> = c.query("SELECT name FROM cn_meta.dbs").await?;
        let mut databases: BTreeMap<String, DatabaseDef> =
            dbs.into_iter().map(|n| (n.clone(), DatabaseDef { name: n, ..Default::default() })).collect();
        let tables: Vec<String> = c.query("SELECT def FROM cn_meta.tables").await?;
        for def in tables {
            let t: TableDef = serde_json::from_str(&def)
                .map_err(|e| CnError::internal(format!("corrupt table definition in metadb: {e}")))?;
            if let Some(d) = databases.get_mut(&t.db) {
                for g in &t.global_indexes {
                    d.index_tables.insert(g.table.name.clone(), Arc::new(g.table.clone()));
                }
                d.tables.insert(t.name.clone(), Arc::new(t));
            }
        }
        let views: Vec<String> = c.query("SELECT def FROM cn_meta.views").await?;
        for def in views {
            let v: ViewDef = serde_json::from_str(&def)
                .map_err(|e| CnError::internal(format!("corrupt view definition in metadb: {e}")))?;
            if let Some(d) = databases.get_mut(&v.db) {
                d.views.insert(v.name.clone(), Arc::new(v));
            }
        }
        let stats: Vec<(String, String, u64, u64, Option<String>)> =
            c.query("SELECT db, tbl, row_count, avg_row_bytes, column_stats FROM cn_meta.table_stats").await?;
        for (db, tbl, rows, avg_row_bytes, columns) in stats {
            if let Some(d) = databases.get_mut(&db) {
                // Statistics that do not read (another version's) count as none.
                let columns = columns.and_then(|j| serde_json::from_str(&j).ok()).unwrap_or_default();
                let columns = Arc::new(columns);
                d.statistics.insert(tbl, super::statistics::TableStats { rows, avg_row_bytes, columns });
            }
        }
        Ok(CatalogSnapshot { version: version.unwrap_or(0), databases })
    }

    async fn bump(c: &mut mysql_async::Conn) -> Result<()> {
        c.query_drop("UPDATE cn_meta.catalog_version SET version = version + 1 WHERE id = 1").await?;
        Ok(())
    }

    pub async fn create_database(&self, name: &str) -> Result<()> {
        let mut c = self.conn().await?;
        c.exec_drop("INSERT INTO cn_meta.dbs (name) VALUES (?)", (name,)).await?;
        Self::bump(&mut c).await
    }

    pub async fn drop_database(&self, name: &str) -> Result<()> {
        let mut c = self.conn().await?;
        c.exec_drop("DELETE FROM cn_meta.tables WHERE db = ?", (name,)).await?;
        c.exec_drop("DELETE FROM cn_meta.sequences WHERE db = ?", (name,)).await?;
        c.exec_drop("DELETE FROM cn_meta.views WHERE db = ?", (name,)).await?;
        c.exec_drop("DELETE FROM cn_meta.table_stats WHERE db = ?", (name,)).await?;
        c.exec_drop("DELETE FROM cn_meta.dbs WHERE name = ?", (name,)).await?;
        Self::bump(&mut c).await
    }

    /// Inserts or replaces a table definition.
    pub async fn put_table(&self, t: &TableDef) -> Result<()> {
        let def = serde_json::to_string(t).map_err(|e| CnError::internal(e.to_string()))?;
        let mut c = self.conn().await?;
        c.exec_drop(
            "REPLACE INTO cn_meta.tables (db, name, version, def) VALUES (?, ?, ?, ?)",
            (&t.db, &t.name, t.version, def),
        )
        .await?;
        Self::bump(&mut c).await
    }

    /// Records a table's statistics (`ANALYZE TABLE`) and bumps the
    /// catalog version, so every CN loads them with its next catalog poll.
    pub async fn put_statistics(&self, db: &str, tbl: &str, st: &super::statistics::TableStats) -> Result<()> {
        let mut c = self.conn().await?;
        c.exec_drop(
            "REPLACE INTO cn_meta.table_stats (db, tbl, row_count, avg_row_bytes, column_stats) VALUES (?, ?, ?, ?, ?)",
            (
                db,
                tbl,
                st.rows,
                st.avg_row_bytes,
                serde_json::to_string(st.columns.as_ref()).map_err(|e| CnError::internal(e.to_string()))?,
            ),
        )
        .await?;
        Self::bump(&mut c).await
    }

    /// Forgets the statistics of table (or index table) `tbl`.
    pub async fn drop_statistics(&self, db: &str, tbl: &str) -> Result<()> {
        let mut c = self.conn().await?;
        c.exec_drop("DELETE FROM cn_meta.table_stats WHERE db = ? AND tbl = ?", (db, tbl)).await?;
        Self::bump(&mut c).await
    }

    pub async fn drop_table(&self, db: &str, name: &str) -> Result<()> {
        let mut c = self.conn().await?;
        c.exec_drop("DELETE FROM cn_meta.table_stats WHERE db = ? AND tbl = ?", (db, name)).await?;
        // Its index tables' (`name$index`).
        c.exec_drop(
            "DELETE FROM cn_meta.table_stats WHERE db = ? AND LEFT(tbl, CHAR_LENGTH(?) + 1) = CONCAT(?, '$')",
            (db, name, name),
        )
        .await?;
        c.exec_drop("DELETE FROM cn_meta.tables WHERE db = ? AND name = ?", (db, name)).await?;
        c.exec_drop("DELETE FROM cn_meta.sequences WHERE db = ? AND tbl = ?", (db, name)).await?;
        Self::bump(&mut c).await
    }

    /// Records that CN `cn_id` is alive now (the metadb's clock), and
    /// forgets CNs silent for a day.
    pub async fn heartbeat(&self, cn_id: u64) -> Result<()> {
        let mut c = self.conn().await?;
        c.exec_drop("REPLACE INTO cn_meta.cns (id, last_seen) VALUES (?, NOW(3))", (cn_id,)).await?;
        Ok(())
    }

    /// Removes CN `cn_id` from the live CNs (a clean shutdown) and those
    /// silent for a day.
    pub async fn forget_cn(&self, cn_id: u64) -> Result<()> {
        let mut c = self.conn().await?;
        c.exec_drop("DELETE FROM cn_meta.cns WHERE id = ? OR last_seen < NOW(3) - INTERVAL 1 DAY", (cn_id,)).await?;
        Ok(())
    }

    /// How many CNs other than `cn_id` sent a heartbeat in the last
    /// `within` (by the metadb's clock).
    pub async fn other_live_cns(&self, cn_id: u64, within: std::time::Duration) -> Result<u64> {
        let mut c = self.conn().await?;
        let n: Option<u64> = c
            .exec_first(
                "SELECT COUNT(*) FROM cn_meta.cns WHERE id <> ? AND last_seen > NOW(3) - INTERVAL ? MICROSECOND",
                (cn_id, within.as_micros() as u64),
            )
            .await?;
        Ok(n.unwrap_or(0))
    }

    /// Inserts or replaces a view.
    pub async fn put_view(&self, v: &ViewDef) -> Result<()> {
        let def = serde_json::to_string(v).map_err(|e| CnError::internal(e.to_string()))?;
        let mut c = self.conn().await?;
        c.exec_drop("REPLACE INTO cn_meta.views (db, name, def) VALUES (?, ?, ?)", (&v.db, &v.name, def)).await?;
        Self::bump(&mut c).await
    }

    pub async fn drop_view(&self, db: &str, name: &str) -> Result<()> {
        let mut c = self.conn().await?;
        c.exec_drop("DELETE FROM cn_meta.views WHERE db = ? AND name = ?", (db, name)).await?;
        Self::bump(&mut c).await
    }

    /// Renames a table: its definition moves to the new name.
    pub async fn rename_table(&self, t: &TableDef, old_name: &str) -> Result<()> {
        let def = serde_json::to_string(t).map_err(|e| CnError::internal(e.to_string()))?;
        let mut c = self.conn().await?;
        c.query_drop("START TRANSACTION").await?;
        c.exec_drop("DELETE FROM cn_meta.tables WHERE db = ? AND name = ?", (&t.db, old_name)).await?;
        c.exec_drop(
            "INSERT INTO cn_meta.tables (db, name, version, def) VALUES (?, ?, ?, ?)",
            (&t.db, &t.name, t.version, def),
        )
        .await?;
        c.exec_drop("UPDATE cn_meta.sequences SET tbl = ? WHERE db = ? AND tbl = ?", (&t.name, &t.db, old_name))
            .await?;
        c.exec_drop("UPDATE cn_meta.table_stats SET tbl = ? WHERE db = ? AND tbl = ?", (&t.name, &t.db, old_name))
            .await?;
        c.query_drop("UPDATE cn_meta.catalog_version SET version = version + 1 WHERE id = 1").await?;
        c.query_drop("COMMIT").await?;
        Ok(())
    }

    /// Records (or with `None` forgets) the progress of a global index's
    /// backfill: rows copied and rows to copy.
    pub async fn backfill_progress(&self, db: &str, tbl: &str, idx: &str, p: Option<(u64, u64)>) -> Result<()> {
        let mut c = self.conn().await?;
        match p {
            Some((done, total)) => {
                c.exec_drop("REPLACE INTO cn_meta.gsi_backfill VALUES (?, ?, ?, ?, ?)", (db, tbl, idx, done, total))
                    .await?
            }
            None => {
                c.exec_drop("DELETE FROM cn_meta.gsi_backfill WHERE db = ? AND tbl = ? AND idx = ?", (db, tbl, idx))
                    .await?
            }
        }
        Ok(())
    }

    /// Every backfill in progress: (db, table, index) → (done, total).
    pub async fn backfill_progress_all(&self) -> Result<BTreeMap<(String, String, String), (u64, u64)>> {
        let mut c = self.conn().await?;
        let rows: Vec<(String, String, String, u64, u64)> =
            c.query("SELECT db, tbl, idx, rows_done, rows_total FROM cn_meta.gsi_backfill").await?;
        Ok(rows.into_iter().map(|(d, t, i, done, total)| ((d, t, i), (done, total))).collect())
    }

    /// Reserves `n` consecutive ids of table `db.tbl`'s sequence, at least
    /// `min_next`; returns the first. One metadb transaction per range, so
    /// CNs that cache ranges hand out globally unique ids.
    pub async fn reserve_ids(&self, db: &str, tbl: &str, n: u64, min_next: u64) -> Result<u64> {
        let mut c = self.conn().await?;
        c.query_drop("START TRANSACTION").await?;
        c.exec_drop("INSERT IGNORE INTO cn_meta.sequences (db, tbl, next_value) VALUES (?, ?, 1)", (db, tbl)).await?;
        let cur: Option<u64> = c
            .exec_first("SELECT next_value FROM cn_meta.sequences WHERE db = ? AND tbl = ? FOR UPDATE", (db, tbl))
            .await?;
        let start = cur.unwrap_or(1).max(min_next);
        c.exec_drop("UPDATE cn_meta.sequences SET next_value = ? WHERE db = ? AND tbl = ?", (start + n, db, tbl))
            .await?;
        c.query_drop("COMMIT").await?;
        Ok(start)
    }
}
