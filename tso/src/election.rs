//! High availability: one leader among several `tso` processes, under a
//! lease row in the metadb's MariaDB (`cn_meta.tso_lease`).
//!
//! The row holds the leader's id (`advertised address#nonce`), an epoch
//! bumped on every change of leader, the lease's expiry in the database's
//! clock (microseconds) and the persisted upper bound. A process acquires the
//! lease only once it has expired by the database's clock; the leader
//! renews it every third of its length and stops serving, by its own
//! monotonic clock, a fifth of a lease before the earliest moment the row
//! could be taken over. Every bound update is conditional on the epoch, so a
//! deposed leader can never write one, and a new leader starts above the
//! bound its predecessor persisted.

use crate::error::{Result, TsoError};
use crate::store::{BoundStore, FileStore};
use async_trait::async_trait;
use mysql_async::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const NOW_US: &str = "CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)";

/// The lease row of one TSO group in the metadb.
pub struct Election {
    pool: mysql_async::Pool,
    /// `advertised address#nonce`: unique per process start.
    id: String,
    group: String,
    lease: Duration,
    epoch: AtomicU64,
}

fn storage(e: mysql_async::Error) -> TsoError {
    TsoError::Storage(format!("metadb: {e}"))
}

impl Election {
    /// Connects to the metadb at `url` (`mysql://user@host:port`) and makes
    /// sure the lease table and this group's row exist.
    pub async fn connect(url: &str, group: &str, advertise: &str, lease: Duration) -> Result<Election> {
        let opts = mysql_async::Opts::from_url(url).map_err(|e| TsoError::Storage(format!("metadb URL {url}: {e}")))?;
        let pool = mysql_async::Pool::new(opts);
        let mut c = pool.get_conn().await.map_err(storage)?;
        c.query_drop("CREATE DATABASE IF NOT EXISTS cn_meta").await.map_err(storage)?;
        c.query_drop(
            "CREATE TABLE IF NOT EXISTS cn_meta.tso_lease (
               grp VARCHAR(64) PRIMARY KEY,
               leader VARCHAR(255) NOT NULL,
               epoch BIGINT UNSIGNED NOT NULL,
               expire_us BIGINT NOT NULL,
               bound_ms BIGINT UNSIGNED NOT NULL) ENGINE=InnoDB",
        )
        .await
        .map_err(storage)?;
        c.exec_drop("INSERT IGNORE INTO cn_meta.tso_lease VALUES (?, '', 0, 0, 0)", (group,)).await.map_err(storage)?;
        let nonce: u64 = rand::random();
        Ok(Election {
            pool,
            id: format!("{advertise}#{nonce:016x}"),
            group: group.to_string(),
            lease,
            epoch: AtomicU64::new(0),
        })
    }

    /// This process's id in the lease row.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The lease length.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// The local instant by which a lease renewed (or acquired) at `sent`
    /// must be treated as lost.
    pub fn deadline(&self, sent: Instant) -> Instant {
        sent + self.lease - self.lease / 5
    }

    /// Tries to take an expired lease. `Ok(true)`: this process leads now.
    pub async fn try_acquire(&self) -> Result<bool> {
        let mut c = self.pool.get_conn().await.map_err(storage)?;
        c.exec_drop(
            format!(
                "UPDATE cn_meta.tso_lease SET leader = ?, epoch = epoch + 1, expire_us = {NOW_US} + ?
                 WHERE grp = ? AND expire_us < {NOW_US}"
            ),
            (&self.id, self.lease.as_micros() as u64, &self.group),
        )
        .await
        .map_err(storage)?;
        if c.affected_rows() != 1 {
            return Ok(false);
        }
        let epoch: Option<u64> = c
            .exec_first("SELECT epoch FROM cn_meta.tso_lease WHERE grp = ? AND leader = ?", (&self.group, &self.id))
            .await
            .map_err(storage)?;
        match epoch {
            Some(e) => {
                self.epoch.store(e, Ordering::SeqCst);
                tracing::info!(id = %self.id, epoch = e, "acquired the TSO lease");
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Renews the lease this process holds. `Ok(false)`: it is lost.
    pub async fn renew(&self) -> Result<bool> {
        let mut c = self.pool.get_conn().await.map_err(storage)?;
        c.exec_drop(
            format!(
                "UPDATE cn_meta.tso_lease SET expire_us = {NOW_US} + ?
                 WHERE grp = ? AND leader = ? AND epoch = ? AND expire_us >= {NOW_US}"
            ),
            (self.lease.as_micros() as u64, &self.group, &self.id, self.epoch.load(Ordering::SeqCst)),
        )
        .await
        .map_err(storage)?;
        Ok(c.affected_rows() == 1)
    }

    /// Gives the lease up at once (clean shutdown), so a standby takes over
    /// without waiting for it to expire.
    pub async fn resign(&self) {
        if let Ok(mut c) = self.pool.get_conn().await {
            let _ = c
                .exec_drop(
                    "UPDATE cn_meta.tso_lease SET expire_us = 0 WHERE grp = ? AND leader = ? AND epoch = ?",
                    (&self.group, &self.id, self.epoch.load(Ordering::SeqCst)),
                )
                .await;
        }
    }

    /// The current leader's advertised address, if its lease is live.
    pub async fn leader(&self) -> Result<Option<String>> {
        let mut c = self.pool.get_conn().await.map_err(storage)?;
        let leader: Option<String> = c
            .exec_first(
                format!("SELECT leader FROM cn_meta.tso_lease WHERE grp = ? AND expire_us >= {NOW_US}"),
                (&self.group,),
            )
            .await
            .map_err(storage)?;
        Ok(leader.and_then(|l| l.rsplit_once('#').map(|(addr, _)| addr.to_string())).filter(|a| !a.is_empty()))
    }

    async fn bound(&self) -> Result<u64> {
        let mut c = self.pool.get_conn().await.map_err(storage)?;
        let b: Option<u64> = c
            .exec_first("SELECT bound_ms FROM cn_meta.tso_lease WHERE grp = ?", (&self.group,))
            .await
            .map_err(storage)?;
        Ok(b.unwrap_or(0))
    }

    /// Raises the bound in the row while this process holds the lease.
    async fn save_bound(&self, bound_ms: u64) -> Result<()> {
        let mut c = self.pool.get_conn().await.map_err(storage)?;
        let epoch = self.epoch.load(Ordering::SeqCst);
        c.exec_drop(
            format!(
                "UPDATE cn_meta.tso_lease SET bound_ms = GREATEST(bound_ms, ?)
                 WHERE grp = ? AND leader = ? AND epoch = ? AND expire_us >= {NOW_US}"
            ),
            (bound_ms, &self.group, &self.id, epoch),
        )
        .await
        .map_err(storage)?;
        if c.affected_rows() == 1 {
            return Ok(());
        }
        // Zero rows: either the bound was already that high, or the lease is gone.
        let still: Option<u64> = c
            .exec_first(
                "SELECT bound_ms FROM cn_meta.tso_lease WHERE grp = ? AND leader = ? AND epoch = ?",
                (&self.group, &self.id, epoch),
            )
            .await
            .map_err(storage)?;
        match still {
            Some(b) if b >= bound_ms => Ok(()),
            _ => Err(TsoError::NotLeader { leader: None }),
        }
    }
}

/// The bound of an HA member: authoritative in the lease row, mirrored in
/// the member's data directory. Loading takes the larger of the two.
pub struct MetadbStore {
    /// The lease row.
    pub election: std::sync::Arc<Election>,
    /// The local copy.
    pub file: FileStore,
}

#[async_trait]
impl BoundStore for MetadbStore {
    async fn load(&self) -> Result<u64> {
        Ok(self.election.bound().await?.max(self.file.load().await?))
    }

    async fn save(&self, bound_ms: u64) -> Result<()> {
        self.election.save_bound(bound_ms).await?;
        self.file.save(bound_ms).await
    }
}
