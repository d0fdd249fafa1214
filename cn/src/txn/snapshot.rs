//! Statement snapshots: the read views of one autocommit statement that
//! reads several shards, all at one snapshot timestamp.

use super::{DnConn, SharedConn, ViewConn, OPEN_RETRIES};
use crate::cluster::Cluster;
use crate::error::{code, CnError, Result};
use dn_plugin::{AgentError, View};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// The read views of one statement: per DN, one view per shard access, so
/// shard scans stream in parallel as they do outside a snapshot. The views
/// are made by [`StmtSnapshot::open`] before anything is read; when the
/// snapshot is dropped they are rolled back in the background.
pub struct StmtSnapshot {
    cluster: Arc<Cluster>,
    /// `None` until opened; an empty map when the statement reads one shard
    /// (a single consistent read needs no view).
    views: Mutex<Option<BTreeMap<u32, Vec<SharedConn>>>>,
    /// Some DN has fewer views than shard accesses.
    shared: std::sync::atomic::AtomicBool,
    /// The session state of the views' connections.
    session: crate::dn::DnSession,
}

/// 1213 for a statement whose snapshot opened late [`OPEN_RETRIES`] times.
pub fn opened_late() -> CnError {
    CnError::mysql(
        code::ER_LOCK_DEADLOCK,
        "Statement snapshot: commits kept landing above the snapshot; try restarting transaction",
    )
}

/// At most this many read views per DN for one statement: shard accesses
/// beyond it share views (one at a time), so a statement over many
/// partitions does not drain the DN's connection pool.
pub const MAX_VIEWS_PER_DN: usize = 4;

impl StmtSnapshot {
    /// A snapshot whose views carry `session`'s state.
    pub fn new(cluster: Arc<Cluster>, session: crate::dn::DnSession) -> Arc<Self> {
        Arc::new(StmtSnapshot {
            cluster,
            views: Mutex::new(None),
            shared: std::sync::atomic::AtomicBool::new(false),
            session,
        })
    }

    /// The session state of the views' connections.
    pub fn session(&self) -> &crate::dn::DnSession {
        &self.session
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// Whether shard accesses share views (see [`MAX_VIEWS_PER_DN`]).
    pub fn shared(&self) -> bool {
        self.shared.load(Ordering::Relaxed)
    }

    fn views(&self) -> std::sync::MutexGuard<'_, Option<BTreeMap<u32, Vec<SharedConn>>>> {
        self.views.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens `shards[dn]` views on each DN at one snapshot: the DN's
    /// [`read_ts`](dn_plugin::AgentApi::read_ts) when all views are on one
    /// DN, else [`Cluster::statement_ts`] (no TSO call with the CN's own
    /// agents). A late OPEN is retried at `max(TSO, amx)`. Errors: a DN error,
    /// the TSO unreachable, or 1213 after [`OPEN_RETRIES`] late opens.
    pub async fn open(&self, shards: &BTreeMap<u32, usize>) -> Result<()> {
        if self.views().is_some() {
            return Ok(());
        }
        let total: usize = shards.values().sum();
        if total <= 1 {
            *self.views() = Some(BTreeMap::new());
            return Ok(());
        }
        let shards: BTreeMap<u32, usize> = shards.iter().map(|(d, n)| (*d, (*n).clamp(1, MAX_VIEWS_PER_DN))).collect();
        let shared = shards.values().sum::<usize>() < total;
        self.shared.store(shared, Ordering::Relaxed);
        let shards = &shards;
        let mut s = match shards.keys().collect::<Vec<_>>().as_slice() {
            [only] => {
                let dn = **only;
                self.cluster.agents[dn as usize]
                    .read_ts()
                    .await
                    .map_err(|e| self.cluster.dn(dn).map_or_else(|x| x, |d| d.agent_err(e)))?
            }
            _ => self.cluster.statement_ts().await?,
        };
        for _ in 0..OPEN_RETRIES {
            match self.try_open(shards, s).await? {
                Ok(views) => {
                    *self.views() = Some(views);
                    return Ok(());
                }
                Err(amx) => s = self.cluster.timestamp().await?.max(amx),
            }
        }
        Err(opened_late())
    }

    /// Opens `per_dn` read views on every DN (at least two when there is
    /// one DN, so reads never fall back to single autocommit reads), shared
    /// by all of a statement's reads: for statements made of several reads
    /// whose shards are not known up front (a global-index lookup, a
    /// lookup join). Scans then buffer (see [`Self::shared`]): with more
    /// scans than views, a scan streaming with backpressure would hold a
    /// view another scan of the plan waits for.
    pub async fn open_every_dn(&self, per_dn: usize) -> Result<()> {
        let n = self.cluster.dns.len() as u32;
        let per_dn = if n == 1 { per_dn.max(2) } else { per_dn.max(1) };
        self.open(&(0..n).map(|d| (d, per_dn)).collect()).await?;
        self.shared.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Opens one read view at snapshot `s` on each DN of `dns` that has
    /// none yet, for a statement whose reads become known one after the
    /// other (a global-index lookup: the index's DN, then the base rows'
    /// DNs). `s` is a TSO timestamp the caller took for the whole
    /// statement. Reads then share the views (see [`Self::shared`]).
    /// With `deferred` and one DN without a view, that view is made by the
    /// first query on it, in that query's round trip
    /// ([`dn_plugin::agent::DeferredOpen`]): only for a caller that sends
    /// that query right away, since no commit lands on the DN between its
    /// admission here and the query. Never for several DNs: holding one
    /// DN's gate closed while waiting for another's admission deadlocks
    /// (statement A holds DN 0 and waits for DN 1, where a commit waits
    /// for statement B, which holds DN 1 and waits for DN 0 behind a
    /// commit that waits for A: the gate lets waiting commits go before
    /// new opens). `Ok(Err(amx))`: a DN already shows a commit above `s`
    /// (RAISE); the statement must start again at a later snapshot, before
    /// it has sent anything. Errors: a DN error.
    pub async fn open_more(
        &self,
        dns: &std::collections::BTreeSet<u32>,
        s: u64,
        deferred: bool,
    ) -> Result<Result<(), u64>> {
        let missing: BTreeMap<u32, usize> = {
            let views = self.views();
            dns.iter().filter(|d| !views.as_ref().is_some_and(|m| m.contains_key(*d))).map(|d| (*d, 1)).collect()
        };
        if missing.is_empty() {
            return Ok(Ok(()));
        }
        self.shared.store(true, Ordering::Relaxed);
        let opened = match missing.keys().collect::<Vec<_>>().as_slice() {
            [dn] if deferred => self.try_open_deferred(**dn, s).await?,
            _ => self.try_open(&missing, s).await?,
        };
        Ok(opened.map(|views| self.views().get_or_insert_with(BTreeMap::new).extend(views)))
    }

    /// [`Self::try_open`] with one deferred view on DN `dn`: the admission
    /// taken, no view made yet.
    async fn try_open_deferred(&self, dn: u32, s: u64) -> Result<Result<BTreeMap<u32, Vec<SharedConn>>, u64>> {
        let conn = self
            .cluster
            .acquire(&BTreeMap::from([(dn, 1)]), &self.session)
            .await?
            .into_iter()
            .flat_map(|(_, c)| c)
            .next();
        let conn = conn.ok_or_else(|| CnError::internal(format!("no connection to dn{dn} for a read view")))?;
        let open = dn_plugin::agent::open_deferred(&*self.cluster.agents[dn as usize], s);
        match self.cluster.while_dn_answers(dn, open).await {
            Ok(open) => {
                let view = ViewConn::deferred(conn, open, vec!["ROLLBACK".to_string()]);
                Ok(Ok(BTreeMap::from([(dn, vec![Arc::new(tokio::sync::Mutex::new(view))])])))
            }
            Err(AgentError::Raise { amx, .. }) => Ok(Err(amx)),
            Err(e) => Err(self.cluster.dn(dn)?.agent_err(e)),
        }
    }

    /// One attempt: `Ok(Err(amx))` when a DN raised.
    async fn try_open(
        &self,
        shards: &BTreeMap<u32, usize>,
        s: u64,
    ) -> Result<Result<BTreeMap<u32, Vec<SharedConn>>, u64>> {
        let acquired = self.cluster.acquire(shards, &self.session).await?;
        let opens = acquired.into_iter().map(|(dn, mut conns)| {
            let cluster = self.cluster.clone();
            async move {
                let views = conns.iter_mut().map(View::ReadOnly).collect();
                let open = dn_plugin::agent::open(&*cluster.agents[dn as usize], s, views);
                let r = cluster.while_dn_answers(dn, open).await;
                let views: Vec<ViewConn> =
                    conns.into_iter().map(|c| ViewConn::new(c, vec!["ROLLBACK".to_string()])).collect();
                Ok::<_, CnError>((dn, views, r))
            }
        });
        let mut out = BTreeMap::new();
        let mut raised = None;
        let mut failed = None;
        for r in futures::future::join_all(opens).await {
            match r {
                Ok((dn, views, Ok(()))) => {
                    out.insert(dn, views.into_iter().map(|v| Arc::new(tokio::sync::Mutex::new(v))).collect());
                }
                Ok((_, mut views, Err(AgentError::Raise { amx, .. }))) => {
                    views.iter_mut().for_each(ViewConn::finished);
                    raised = Some(raised.unwrap_or(0).max(amx));
                }
                Ok((dn, _views, Err(e))) => failed = Some(self.cluster.dn(dn)?.agent_err(e)),
                Err(e) => failed = Some(e),
            }
        }
        // Views in `out` of a failed attempt roll back when dropped.
        if let Some(e) = failed {
            return Err(e);
        }
        Ok(match raised {
            Some(amx) => Err(amx),
            None => Ok(out),
        })
    }

    /// A connection reading DN `dn` in this snapshot: a free view (or the
    /// first, once it is free); a pooled connection when the statement
    /// reads one shard. Errors: the DN was not opened (a planning bug).
    pub async fn get(&self, dn: u32) -> Result<DnConn> {
        let list = match self.views().as_ref() {
            Some(m) if m.is_empty() => None,
            Some(m) => Some(m.get(&dn).cloned().unwrap_or_default()),
            None => return Err(CnError::internal("statement snapshot used before it was opened")),
        };
        let Some(list) = list else {
            return Ok(DnConn::Owned(self.cluster.fresh_conn(dn, &self.session).await?));
        };
        for c in &list {
            if let Ok(g) = c.clone().try_lock_owned() {
                return Ok(DnConn::Shared(g));
            }
        }
        match list.first() {
            Some(c) => Ok(DnConn::Shared(c.clone().lock_owned().await)),
            None => Err(CnError::internal(format!("statement snapshot has no view on dn{dn}"))),
        }
    }
}
