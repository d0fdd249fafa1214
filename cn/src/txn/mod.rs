//! Distributed transactions, first cut: one XA branch per DN touched,
//! committed with `XA COMMIT … ONE PHASE` when a single DN was touched and
//! with XA two-phase commit otherwise.
//!
//! WARNING: this is the interim protocol of the foundation issue. It has no
//! durable decision log and no TSO-stamped snapshots yet; a CN crash between
//! prepare and commit leaves branches in `XA RECOVER` until the transaction
//! issue's recovery watchdog lands.

use crate::cluster::Cluster;
use crate::dn::quote_str;
use crate::error::Result;
use mysql_async::prelude::*;
use mysql_async::Conn;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::Mutex;

/// A connection shared by the statements of one transaction on one DN.
pub type SharedConn = Arc<Mutex<Conn>>;

/// The branches of one distributed transaction.
pub struct Txn {
    pub xid: String,
    /// Timestamp the transaction started at (from the cluster's clock).
    pub start_ts: u64,
    branches: Mutex<BTreeMap<u32, SharedConn>>,
    cluster: Arc<Cluster>,
}

impl Txn {
    /// Starts a transaction stamped with a fresh timestamp; its XA id
    /// (`cn-<conn>-<ts>`) is unique across CNs sharing a TSO.
    pub async fn begin(cluster: Arc<Cluster>, conn_id: u32) -> Result<Arc<Txn>> {
        let start_ts = cluster.timestamp().await?;
        Ok(Arc::new(Txn {
            xid: format!("cn-{conn_id}-{start_ts}"),
            start_ts,
            branches: Mutex::new(BTreeMap::new()),
            cluster,
        }))
    }

    /// The branch on DN `dn`, started (`XA START`) on first use.
    pub async fn branch(&self, dn: u32) -> Result<SharedConn> {
        let mut b = self.branches.lock().await;
        if let Some(c) = b.get(&dn) {
            return Ok(c.clone());
        }
        let d = self.cluster.dn(dn)?;
        let mut conn = d.conn().await?;
        conn.query_drop(format!("XA START {}", quote_str(&self.xid))).await.map_err(|e| d.err(e))?;
        let c = Arc::new(Mutex::new(conn));
        b.insert(dn, c.clone());
        Ok(c)
    }

    /// DNs with a branch.
    pub async fn participants(&self) -> Vec<u32> {
        self.branches.lock().await.keys().copied().collect()
    }

    /// Commits: one phase for a single branch, XA 2PC otherwise. On a prepare
    /// failure every branch is rolled back and the error returned.
    pub async fn commit(&self) -> Result<()> {
        let branches = std::mem::take(&mut *self.branches.lock().await);
        let xid = quote_str(&self.xid);
        if branches.len() == 1 {
            let (dn, c) = branches.into_iter().next().expect("one branch");
            let d = self.cluster.dn(dn)?;
            let mut c = c.lock().await;
            let r = async {
                c.query_drop(format!("XA END {xid}")).await?;
                c.query_drop(format!("XA COMMIT {xid} ONE PHASE")).await
            }
            .await;
            if let Err(e) = r {
                let _ = c.query_drop(format!("XA ROLLBACK {xid}")).await;
                return Err(d.err(e));
            }
            return Ok(());
        }
        let prepares = branches.iter().map(|(dn, c)| {
            let xid = xid.clone();
            async move {
                let d = self.cluster.dn(*dn)?;
                let mut c = c.lock().await;
                c.query_drop(format!("XA END {xid}")).await.map_err(|e| d.err(e))?;
                c.query_drop(format!("XA PREPARE {xid}")).await.map_err(|e| d.err(e))
            }
        });
        let results = futures::future::join_all(prepares).await;
        if let Some(e) = results.into_iter().find_map(|r| r.err()) {
            rollback_all(&branches, &xid).await;
            return Err(e);
        }
        // Decision: commit. Every branch is prepared, so a commit failure
        // here leaves the branch in XA RECOVER for recovery to finish.
        let commits = branches.iter().map(|(dn, c)| {
            let xid = xid.clone();
            async move {
                let d = self.cluster.dn(*dn)?;
                let mut c = c.lock().await;
                c.query_drop(format!("XA COMMIT {xid}")).await.map_err(|e| d.err(e))
            }
        });
        for r in futures::future::join_all(commits).await {
            if let Err(e) = r {
                tracing::error!(xid = %self.xid, error = %e, "XA COMMIT failed after a commit decision");
            }
        }
        Ok(())
    }

    /// Rolls back every branch.
    pub async fn rollback(&self) {
        let branches = std::mem::take(&mut *self.branches.lock().await);
        rollback_all(&branches, &quote_str(&self.xid)).await;
    }
}

async fn rollback_all(branches: &BTreeMap<u32, SharedConn>, xid: &str) {
    let rbs = branches.values().map(|c| async move {
        let mut c = c.lock().await;
        let _ = c.query_drop(format!("XA END {xid}")).await;
        if let Err(e) = c.query_drop(format!("XA ROLLBACK {xid}")).await {
            tracing::warn!(error = %e, "XA ROLLBACK failed");
        }
    });
    futures::future::join_all(rbs).await;
}

impl Drop for Txn {
    fn drop(&mut self) {
        // A transaction dropped without COMMIT/ROLLBACK (client gone): roll
        // its branches back in the background.
        let branches = std::mem::take(self.branches.get_mut());
        if !branches.is_empty() {
            let xid = quote_str(&self.xid);
            if let Ok(h) = tokio::runtime::Handle::try_current() {
                h.spawn(async move { rollback_all(&branches, &xid).await });
            }
        }
    }
}

/// Where a statement gets its DN connections.
#[derive(Clone)]
pub enum ConnSource {
    /// A pooled connection per shard access (autocommit reads).
    Pool(Arc<Cluster>),
    /// The branches of a transaction.
    Txn(Arc<Txn>),
}

impl ConnSource {
    pub fn cluster(&self) -> &Arc<Cluster> {
        match self {
            ConnSource::Pool(c) => c,
            ConnSource::Txn(t) => &t.cluster,
        }
    }
}

/// A connection for one access: owned from the pool, or a transaction's.
/// A connection to one DN for one statement: a pooled one, or the
/// transaction's branch held locked. Dereferences to the connection.
pub enum DnConn {
    Owned(Conn),
    Shared(tokio::sync::OwnedMutexGuard<Conn>),
}

impl std::ops::Deref for DnConn {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        match self {
            DnConn::Owned(c) => c,
            DnConn::Shared(g) => g,
        }
    }
}

impl std::ops::DerefMut for DnConn {
    fn deref_mut(&mut self) -> &mut Conn {
        match self {
            DnConn::Owned(c) => c,
            DnConn::Shared(g) => g,
        }
    }
}

/// A DN's text-protocol value as the bytes the CN passes on (`None`: NULL).
pub fn value_bytes(v: mysql_async::Value) -> Option<Vec<u8>> {
    match v {
        mysql_async::Value::NULL => None,
        mysql_async::Value::Bytes(b) => Some(b),
        other => Some(other.as_sql(true).into_bytes()),
    }
}

impl ConnSource {
    pub async fn get(&self, dn: u32) -> Result<DnConn> {
        match self {
            ConnSource::Pool(c) => Ok(DnConn::Owned(c.dn(dn)?.conn().await?)),
            ConnSource::Txn(t) => Ok(DnConn::Shared(t.branch(dn).await?.lock_owned().await)),
        }
    }
}

impl std::fmt::Debug for ConnSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnSource::Pool(_) => f.write_str("Pool"),
            ConnSource::Txn(t) => write!(f, "Txn({})", t.xid),
        }
    }
}
