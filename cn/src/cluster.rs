//! State shared by every session of one CN: configuration, the metadb, the
//! DNs, the cached catalog, sequences and the process list.

use crate::catalog::metadb::MetaDb;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::dn::{Dn, DnSession};
use crate::error::{CnError, Result};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One row of SHOW PROCESSLIST.
#[derive(Debug, Clone)]
pub struct ProcessInfo {
    pub id: u32,
    pub user: String,
    pub host: String,
    pub db: Option<String>,
    pub command: &'static str,
    pub started: Instant,
    pub info: Option<String>,
    /// Set by KILL QUERY; the running statement checks it or waits on it.
    pub kill_query: Arc<KillFlag>,
    /// Set by KILL; the connection closes after the statement.
    pub kill_conn: Arc<std::sync::atomic::AtomicBool>,
    /// What the session's statement holds in the CN's memory.
    pub memory: Arc<crate::executor::memory::MemoryGauge>,
}

impl ProcessInfo {
    /// The columns of `SHOW PROCESSLIST` and information_schema.PROCESSLIST,
    /// each with its MySQL type code (`None`: text). After MySQL's eight
    /// come MariaDB's `Memory_used` and `Max_memory_used` (its
    /// information_schema.PROCESSLIST columns): here the CN memory (bytes)
    /// of the session's running (or last) query.
    pub const COLUMNS: [(&'static str, Option<u8>); 10] = [
        ("Id", Some(crate::protocol::constants::ty::LONGLONG)),
        ("User", None),
        ("Host", None),
        ("db", None),
        ("Command", None),
        ("Time", Some(crate::protocol::constants::ty::LONG)),
        ("State", None),
        ("Info", None),
        ("Memory_used", Some(crate::protocol::constants::ty::LONGLONG)),
        ("Max_memory_used", Some(crate::protocol::constants::ty::LONGLONG)),
    ];

    /// Index of `Info` in [`ProcessInfo::COLUMNS`].
    pub const INFO: usize = 7;

    /// This session's values for [`ProcessInfo::COLUMNS`], as text (the
    /// whole statement in `Info`).
    pub fn row(&self) -> Vec<Option<String>> {
        vec![
            Some(self.id.to_string()),
            Some(self.user.clone()),
            Some(self.host.clone()),
            self.db.clone(),
            Some(self.command.to_string()),
            Some(self.started.elapsed().as_secs().to_string()),
            Some(String::new()),
            self.info.clone(),
            Some(self.memory.used.load(Ordering::Relaxed).to_string()),
            Some(self.memory.peak.load(Ordering::Relaxed).to_string()),
        ]
    }
}

/// A session's KILL QUERY: a flag its statement checks between rows, and a
/// wake-up for a statement waiting on a DN (no timer to poll).
#[derive(Debug, Default)]
pub struct KillFlag {
    set: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
}

impl KillFlag {
    /// Whether KILL QUERY was asked since the statement began.
    pub fn is_set(&self) -> bool {
        self.set.load(std::sync::atomic::Ordering::Acquire)
    }
    /// KILL QUERY: sets the flag and wakes the statement's waits.
    pub fn set(&self) {
        self.set.store(true, std::sync::atomic::Ordering::Release);
        self.notify.notify_waiters();
    }
    /// A new statement begins.
    pub fn clear(&self) {
        self.set.store(false, std::sync::atomic::Ordering::Release);
    }
    /// Resolves once the flag is set.
    pub async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before the check: a set() in between still wakes it.
            notified.as_mut().enable();
            if self.is_set() {
                return;
            }
            notified.await;
        }
    }
}

/// Ids handed out from a cached range of a metadb sequence.
#[derive(Debug, Default)]
struct SeqRange {
    next: u64,
    end: u64,
}

/// The shared state of a CN.
pub struct Cluster {
    pub config: Config,
    pub metadb: MetaDb,
    pub dns: Vec<Arc<Dn>>,
    pub catalog: Catalog,
    pub processes: Mutex<BTreeMap<u32, ProcessInfo>>,
    next_conn_id: AtomicU32,
    sequences: tokio::sync::Mutex<HashMap<(String, String), SeqRange>>,
    /// Where transaction timestamps come from.
    pub timestamps: Timestamps,
    /// This CN's id at the shared agents: the TSO value it started at.
    pub cn_id: u64,
    /// The DN agents, one per DN (index = DN id): in this process, or
    /// shared sidecars reached over gRPC.
    pub agents: Vec<Arc<dyn dn_plugin::AgentApi>>,
    /// Transactions in flight on this CN, by XA id (`SHOW TRANS`; recovery
    /// leaves their branches alone).
    pub txns: Mutex<BTreeMap<String, crate::txn::TxnInfo>>,
    /// DN threads (DN id, connection id on the DN) working for a
    /// transaction: the distributed deadlock detector's map.
    pub lock_owners: Mutex<HashMap<(u32, u32), crate::txn::deadlock::LockOwner>>,
    /// Round-robin counter for reads of broadcast tables.
    rr: AtomicU64,
    /// The memory all queries share and where they spill.
    pub memory: Arc<crate::executor::memory::CnMemory>,
    /// Reads and writes running on this CN, by the catalog version they
    /// started with: an online schema change waits for the older ones.
    running: Mutex<BTreeMap<u64, usize>>,
    /// Point SELECTs by parameterized text ([`crate::planner::plan_cache`]).
    pub plan_cache: crate::planner::plan_cache::PlanCache,
    /// Optimized plans of statements the CN computes, by text
    /// ([`crate::executor::plan_cache`]).
    pub statement_plans: crate::executor::plan_cache::StatementPlans,
    /// The counters of `SHOW GLOBAL STATUS`: every session's, summed.
    pub status: StatusCounters,
    /// Write transactions committed, by protocol ([`crate::txn`]).
    pub commits: crate::txn::CommitCounters,
}

/// A read or write statement in progress, registered under the catalog
/// version it started with (see [`Cluster::enter_statement`]).
pub struct StatementGuard {
    cluster: Arc<Cluster>,
    version: u64,
}

impl Drop for StatementGuard {
    fn drop(&mut self) {
        let mut r = self.cluster.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = r.get_mut(&self.version) {
            *n -= 1;
            if *n == 0 {
                r.remove(&self.version);
            }
        }
    }
}

/// The source of transaction timestamps.
pub enum Timestamps {
    /// In-process: monotonic in this CN only (a CN started without `tso`).
    Local(tso::LocalClock),
    /// The TSO service, through the batching client.
    Tso(tso::TsoClient),
}

/// A CN whose last heartbeat (`cn_meta.cns`) is older than this counts as
/// gone: a schema change no longer waits for it to poll.
pub const CN_LIVENESS: Duration = Duration::from_secs(30);

/// How often a CN writes its heartbeat: a tenth of [`CN_LIVENESS`], so a
/// live CN is never mistaken for a gone one, without a metadb write per
/// catalog poll.
pub const CN_HEARTBEAT: Duration = Duration::from_secs(3);

/// How often a wait at a DN's agent checks that the DN still answers
/// ([`Cluster::while_dn_answers`]).
pub const DN_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Ids a CN reserves from the metadb at a time for one sequence.
pub const SEQUENCE_CACHE: u64 = 1000;

impl Cluster {
    /// Connects to the metadb, creates its schema if needed, reads the DNs and
    /// the catalog.
    pub async fn connect(config: Config) -> Result<Arc<Cluster>> {
        let opts = mysql_async::Opts::from_url(&config.metadb)
            .map_err(|e| CnError::internal(format!("bad metadb URL {:?}: {e}", config.metadb)))?;
        let metadb = MetaDb::new(mysql_async::Pool::new(opts));
        metadb.bootstrap().await?;
        let memory = crate::executor::memory::CnMemory::new(&config)?;
        let dns = metadb.dns().await?;
        if dns.is_empty() {
            return Err(CnError::internal("the metadb lists no data nodes (cn_meta.dns is empty)"));
        }
        let dns: Vec<Arc<Dn>> = dns.into_iter().map(|d| Arc::new(Dn::new(d, config.dn_pool_size))).collect();
        let timestamps = if config.tso.is_empty() {
            Timestamps::Local(tso::LocalClock::default())
        } else {
            Timestamps::Tso(tso::TsoClient::new(config.tso.clone(), tso::ClientOptions::default()))
        };
        // An agent starts above every timestamp used before it (it knows
        // nothing of earlier snapshots and commits).
        let start_ts = timestamp_from(&timestamps).await?;
        for d in &dns {
            let r = async {
                let mut c = d.conn().await?;
                dn_plugin::agent::bootstrap(&mut c).await.map_err(|e| d.err(e))
            }
            .await;
            if let Err(e) = r {
                tracing::warn!(dn = %d.name, error = %e, "could not create the agent's tables");
            }
        }
        // The CN's id at shared agents (its session, the owner of the
        // branches it prepares): a TSO value, unique among the CNs that
        // share the TSO.
        let cn_id = start_ts;
        // Alive before the catalog is read: a schema change that finds no
        // other live CN skips waiting for them, and this one then reads a
        // catalog at least as new as that change (see gsi::ddl::settle).
        metadb.heartbeat(cn_id).await?;
        let snap = metadb.load().await?;
        let catalog = Catalog::default();
        catalog.install(snap);
        let mut agents: Vec<Arc<dyn dn_plugin::AgentApi>> = Vec::with_capacity(dns.len());
        for d in &dns {
            agents.push(match config.agents.get(&d.name) {
                Some(url) => Arc::new(
                    dn_plugin::remote::RemoteAgent::connect(d.name.clone(), url, cn_id).map_err(|e| d.agent_err(e))?,
                ),
                None => Arc::new(dn_plugin::Agent::new(d.name.clone(), start_ts)),
            });
        }
        let cluster = Arc::new(Cluster {
            metadb,
            dns,
            catalog,
            processes: Mutex::new(BTreeMap::new()),
            next_conn_id: AtomicU32::new(1),
            sequences: tokio::sync::Mutex::new(HashMap::new()),
            timestamps,
            cn_id,
            agents,
            txns: Mutex::new(BTreeMap::new()),
            lock_owners: Mutex::new(HashMap::new()),
            rr: AtomicU64::new(0),
            memory,
            config,
            running: Mutex::new(BTreeMap::new()),
            plan_cache: Default::default(),
            statement_plans: Default::default(),
            status: Default::default(),
            commits: Default::default(),
        });
        crate::txn::recovery::register_in_doubt(&cluster).await;
        Ok(cluster)
    }

    /// A timestamp greater than every one handed out before (TSO layout:
    /// physical ms << 18 | logical). Errors: the TSO is unreachable (1105
    /// with the TSO's message).
    pub async fn timestamp(&self) -> Result<u64> {
        timestamp_from(&self.timestamps).await
    }

    /// The snapshot timestamp of an autocommit statement that reads
    /// several DNs. With this CN's own agents: the highest of their
    /// [`read_ts`](dn_plugin::AgentApi::read_ts), no TSO round trip. It is
    /// at or above the commit timestamp of every transaction acknowledged
    /// before the statement began (a 1PC or 2PC commit has raised its DNs'
    /// `amx` before its client is answered; an async commit is decided on
    /// each of its DNs first), which is what a TSO timestamp gives a read
    /// (linearizability); ARCHITECTURE.md's "single-DN reads may open at
    /// `s = amx`", taken over every DN. With shared sidecar agents: a TSO
    /// timestamp (one RPC rather than one per DN). Errors: as
    /// [`Self::timestamp`].
    pub async fn statement_ts(&self) -> Result<u64> {
        if !self.config.agents.is_empty() {
            return self.timestamp().await;
        }
        let mut s = 0;
        for r in futures::future::join_all(self.agents.iter().map(|a| a.read_ts())).await {
            match r {
                Ok(t) => s = s.max(t),
                Err(_) => return self.timestamp().await,
            }
        }
        Ok(s)
    }

    /// Pooled connections, `want[dn]` to each DN, taken DN by DN in id
    /// order, each DN's batch under its acquisition lock: callers that need
    /// several connections then never hold some of one DN's pool while
    /// waiting for more of it, which could exhaust the pool with every
    /// caller waiting. The connections carry `session`'s state.
    pub async fn acquire(
        &self,
        want: &BTreeMap<u32, usize>,
        session: &DnSession,
    ) -> Result<Vec<(u32, Vec<mysql_async::Conn>)>> {
        let mut out = Vec::with_capacity(want.len());
        for (&dn, &n) in want {
            let d = self.dn(dn)?;
            let _g = d.acquire_lock.lock().await;
            let mut conns = Vec::with_capacity(n);
            for _ in 0..n {
                conns.push(d.conn_for(session).await?);
            }
            out.push((dn, conns));
        }
        Ok(out)
    }

    /// Runs `wait`, a wait at DN `id`'s agent (for the branches a snapshot
    /// or a fresh read must see to be decided or committed), and after
    /// every [`DN_PROBE_INTERVAL`] of it checks that the DN still answers
    /// ([`Dn::probe`]). A branch whose second phase broke with its DN (an
    /// async commit's `XA COMMIT` when the DN stopped) stays undecided until
    /// the DN is back and recovery settles it; a read of that DN would
    /// otherwise wait silently for as long as the DN is down. Errors: those
    /// of `wait`, or [`AgentError::Db`](dn_plugin::AgentError::Db) with the
    /// probe's error (which [`Dn::agent_err`] names the DN in).
    pub async fn while_dn_answers<T>(
        &self,
        id: u32,
        wait: impl std::future::Future<Output = std::result::Result<T, dn_plugin::AgentError>>,
    ) -> std::result::Result<T, dn_plugin::AgentError> {
        let Ok(dn) = self.dn(id) else { return wait.await };
        tokio::pin!(wait);
        loop {
            tokio::select! {
                r = &mut wait => return r,
                () = tokio::time::sleep(DN_PROBE_INTERVAL) => dn.probe().await?,
            }
        }
    }

    pub fn next_conn_id(&self) -> u32 {
        self.next_conn_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A pooled connection to DN `id` for a statement that reads or writes
    /// it outside any read view: first waits for the branches there that
    /// are decided but not yet committed (async commit answers before its
    /// second phase), so the statement sees every commit acknowledged
    /// before it began. It carries `session`'s state.
    pub async fn fresh_conn(&self, id: u32, session: &DnSession) -> Result<mysql_async::Conn> {
        let d = self.dn(id)?;
        self.while_dn_answers(id, self.agents[id as usize].wait_decided()).await.map_err(|e| d.agent_err(e))?;
        d.conn_for(session).await
    }

    /// A session's `time_zone` and `sql_mode` checked and named by a DN
    /// (the state's `default_week_format` is the caller's to keep):
    /// the state its DN connections carry ([`DnSession`]: `None` for a
    /// part that is the DNs' default; of the mode, the part that changes
    /// what statements do, [`crate::session::vars::dn_sql_mode`]), and
    /// both as `@@time_zone` and `@@sql_mode` show them (`'+8:00'` is
    /// `+08:00`; `TRADITIONAL` is spelled out). Errors: 1298 for a zone
    /// the DNs do not know (named zones need MariaDB's time zone tables),
    /// 1231 for an unknown mode, or a DN's error.
    pub async fn check_dn_session(&self, zone: &str, mode: &str) -> Result<(DnSession, String, String)> {
        let asked = DnSession {
            time_zone: Some(zone).filter(|z| !z.eq_ignore_ascii_case("SYSTEM")).map(Arc::from),
            sql_mode: Some(Arc::from(mode)),
            default_week_format: None,
        };
        let named: Option<(String, String)> =
            self.query_first_any(&asked, "SELECT @@session.time_zone, @@session.sql_mode").await?;
        let (zone, mode) = named.ok_or_else(|| CnError::internal("a DN answered no session state"))?;
        let forwarded = crate::session::vars::dn_sql_mode(&mode);
        let session = DnSession {
            time_zone: Some(zone.as_str()).filter(|z| !z.eq_ignore_ascii_case("SYSTEM")).map(Arc::from),
            sql_mode: Some(forwarded).filter(|m| m != crate::session::vars::DN_SQL_MODE).map(|m| Arc::from(m.as_str())),
            default_week_format: None,
        };
        if session != asked {
            // The pools of the states in use stay, not those of the asking.
            for d in &self.dns {
                d.forget_pool(&asked);
            }
        }
        Ok((session, zone, mode))
    }

    /// The first row of `sql` on any DN, on a connection with `session`'s
    /// state (a session value, the clock). Errors: the DN's.
    pub async fn query_first_any<T>(&self, session: &DnSession, sql: &str) -> Result<Option<T>>
    where
        T: mysql_async::prelude::FromRow + Send + 'static,
    {
        let d = self.dn(self.any_dn())?;
        let mut c = d.conn_for(session).await?;
        mysql_async::prelude::Queryable::query_first(&mut c, sql).await.map_err(|e| d.err(e))
    }

    /// Awaits `work`, a statement's wait on the query it sent on
    /// connection `thread` (the DN's `CONNECTION_ID()`) of DN `dn`. At KILL
    /// QUERY (`kill`) it first sends `KILL QUERY thread` to the DN from a
    /// connection of its own and then awaits `work` still: the DN stops the
    /// query and answers it with 1317, so a statement the DN runs whole
    /// (routed to one shard, or gathered) stops there at once instead of
    /// running to its end. The connection stays usable. The KILL cannot hit
    /// a later statement: the caller holds the connection until `work` ends,
    /// and MariaDB forgets a KILL QUERY that finds the connection idle (the
    /// query answered meanwhile). A KILL that fails is logged.
    pub async fn killable<T>(
        &self,
        kill: &KillFlag,
        dn: u32,
        thread: u32,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        tokio::pin!(work);
        tokio::select! {
            r = &mut work => return r,
            _ = kill.wait() => {}
        }
        let killed = async {
            let d = self.dn(dn)?;
            let mut c = d.conn().await?;
            mysql_async::prelude::Queryable::query_drop(&mut c, format!("KILL QUERY {thread}"))
                .await
                .map_err(|e| d.err(e))
        };
        match killed.await {
            Ok(()) => {}
            Err(CnError::Dn { code: crate::error::code::ER_NO_SUCH_THREAD, .. }) => {}
            Err(e) => tracing::warn!(dn, thread, error = %e, "KILL QUERY did not reach the DN"),
        }
        work.await
    }

    /// Whether DN `id`'s agent is a shared sidecar (`agents` in the
    /// configuration) rather than one in this process.
    pub fn shared_agent(&self, id: u32) -> bool {
        self.dns.get(id as usize).is_some_and(|d| self.config.agents.contains_key(&d.name))
    }

    pub fn dn(&self, id: u32) -> Result<&Arc<Dn>> {
        self.dns.get(id as usize).ok_or_else(|| CnError::internal(format!("no DN with id {id}")))
    }

    /// A DN for a read of a broadcast table (round robin).
    pub fn any_dn(&self) -> u32 {
        (self.rr.fetch_add(1, Ordering::Relaxed) % self.dns.len() as u64) as u32
    }

    /// Registers a read or write statement under the current catalog
    /// version until the guard drops.
    pub fn enter_statement(self: &Arc<Self>) -> StatementGuard {
        let version = self.catalog.snapshot().version;
        *self.running.lock().unwrap_or_else(|e| e.into_inner()).entry(version).or_default() += 1;
        StatementGuard { cluster: self.clone(), version }
    }

    /// Waits until no statement on this CN still runs with a catalog older
    /// than `version` (at most `limit`): after a schema change, the
    /// statements that planned with the previous state have finished.
    /// Returns whether they all did.
    pub async fn drain_statements_below(&self, version: u64, limit: Duration) -> bool {
        let start = std::time::Instant::now();
        loop {
            let oldest = self.running.lock().unwrap_or_else(|e| e.into_inner()).keys().next().copied();
            if oldest.is_none_or(|v| v >= version) {
                return true;
            }
            if start.elapsed() >= limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Reloads the catalog from the metadb if its version moved.
    pub async fn refresh_catalog(&self) -> Result<()> {
        let v = self.metadb.version().await?;
        if v != self.catalog.snapshot().version {
            let snap = self.metadb.load().await?;
            self.catalog.install(snap);
        }
        Ok(())
    }

    /// Polls the catalog version so DDL made on another CN becomes visible,
    /// and records in the metadb that this CN is alive (`cn_meta.cns`,
    /// every [`CN_HEARTBEAT`]).
    pub fn spawn_catalog_poller(self: &Arc<Self>) {
        let every = Duration::from_millis(self.config.catalog_poll_ms.max(50));
        self.spawn_every(every, |c| async move {
            if let Err(e) = c.refresh_catalog().await {
                tracing::warn!(error = %e, "catalog refresh failed");
            }
        });
        self.spawn_every(CN_HEARTBEAT, |c| async move {
            if let Err(e) = c.metadb.heartbeat(c.cn_id).await {
                tracing::warn!(error = %e, "heartbeat to the metadb failed");
            }
        });
    }

    /// Runs `task` every `every` (after a first sleep) for as long as the
    /// cluster lives; the task holds it only while it runs.
    pub fn spawn_every<F, Fut>(self: &Arc<Self>, every: Duration, task: F)
    where
        F: Fn(Arc<Cluster>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(c) = me.upgrade() else { return };
                task(c).await;
            }
        });
    }

    /// `n` consecutive ids of table `db.tbl`'s sequence. Served from a cached
    /// range of [`SEQUENCE_CACHE`] ids; ranges come from the metadb, so ids are
    /// unique across CNs (not monotonic across CNs, as in PolarDB-X's
    /// group sequence).
    pub async fn next_ids(&self, db: &str, tbl: &str, n: u64) -> Result<u64> {
        let mut seqs = self.sequences.lock().await;
        let r = seqs.entry((db.to_string(), tbl.to_string())).or_default();
        if r.end - r.next < n {
            let want = n.max(SEQUENCE_CACHE);
            let start = self.metadb.reserve_ids(db, tbl, want, 1).await?;
            *r = SeqRange { next: start, end: start + want };
        }
        let first = r.next;
        r.next += n;
        Ok(first)
    }

    /// Makes the sequence hand out ids above `value` (after an explicit id
    /// was inserted), as MySQL's AUTO_INCREMENT does.
    pub async fn observe_id(&self, db: &str, tbl: &str, value: u64) -> Result<()> {
        let mut seqs = self.sequences.lock().await;
        let r = seqs.entry((db.to_string(), tbl.to_string())).or_default();
        if value >= r.next && value < r.end {
            r.next = value + 1;
        } else if value >= r.end {
            let start = self.metadb.reserve_ids(db, tbl, SEQUENCE_CACHE, value + 1).await?;
            *r = SeqRange { next: start, end: start + SEQUENCE_CACHE };
        }
        Ok(())
    }

    /// Forgets the cached range of a dropped or truncated table.
    pub async fn forget_sequence(&self, db: &str, tbl: &str) {
        self.sequences.lock().await.remove(&(db.to_string(), tbl.to_string()));
    }
}

async fn timestamp_from(t: &Timestamps) -> Result<u64> {
    match t {
        Timestamps::Local(c) => Ok(c.next()),
        Timestamps::Tso(c) => c.get_ts().await.map_err(|e| CnError::internal(e.to_string())),
    }
}

/// How a session's statements ran, for `SHOW STATUS LIKE 'Cn_%'`. Each
/// session keeps its own (`SHOW [SESSION] STATUS`, MySQL's default scope)
/// and the cluster keeps their sum (`SHOW GLOBAL STATUS`); a statement
/// counts in both ([`StatusCounters::count`]).
#[derive(Debug, Default)]
pub struct StatusCounters {
    /// Statements answered from a cached plan: point SELECTs
    /// ([`crate::planner::plan_cache`]) and statements the CN computes
    /// ([`crate::executor::plan_cache`]).
    pub plan_cache_hits: AtomicU64,
    /// Plan cache entries built (a new text, or a catalog version moved).
    pub plan_cache_misses: AtomicU64,
    /// Global-index lookups that read the base rows by per-DN queries
    /// ([`crate::gsi::select`]).
    pub gsi_lookups_direct: AtomicU64,
    /// Global-index lookups that read the base rows through the planner.
    pub gsi_lookups_planned: AtomicU64,
    /// SELECTs run as per-DN queries without the executor
    /// ([`crate::planner::gather`]).
    pub gathered_selects: AtomicU64,
    /// Key queries of lookup joins run ([`crate::optimizer::lookup`]).
    pub lookup_key_reads: AtomicU64,
}

impl StatusCounters {
    /// Adds one to the counter `field` picks, in `session`'s counters and
    /// in the cluster's.
    pub fn count(session: &StatusCounters, cluster: &Cluster, field: fn(&StatusCounters) -> &AtomicU64) {
        field(session).fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        field(&cluster.status).fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}
