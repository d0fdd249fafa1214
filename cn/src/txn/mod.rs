//! Distributed transactions: TSO-stamped snapshot isolation across DNs
//! through the DN agents (ARCHITECTURE.md, "Transactions";
//! [`dn_plugin::agent`] has the rules).
//!
//! - A transaction ([`Txn`]) has one XA branch per DN it touches, all with
//!   its XA id `cn-<conn>-<start_ts>`. Under REPEATABLE READ the first
//!   statement that needs a DN opens a read view on every DN at the
//!   transaction's snapshot timestamp (one OPEN per DN, in parallel), so
//!   later statements never open late; under READ COMMITTED branches start
//!   lazily and InnoDB makes a view per statement (not consistent across
//!   DNs within one statement: a documented departure).
//! - An autocommit statement that reads several shards runs in a statement
//!   snapshot ([`snapshot::StmtSnapshot`]) at a fresh TSO timestamp; a
//!   statement that reads one DN reads it directly (a consistent cut of one
//!   DN needs no timestamp).
//! - Commit: branches that only read are rolled back; one written branch
//!   commits in one phase stamped by its agent; several prepare (each
//!   writing its agent's log row) and then, with async commit (the
//!   default, `cn_async_commit`), the transaction is decided at
//!   `c = max(L, max min_commit_ts)` and answered while its branches commit
//!   in the background; with 2PC the CN takes `c = max(TSO, max
//!   min_commit_ts)`, records the decision in the transaction log ([`log`])
//!   and commits every branch through its agent before answering.
//! - A late OPEN (the agent answers RAISE) is retried transparently at a
//!   higher snapshot while nothing has been read.
//! - [`recovery`] resolves branches left prepared by a crash.

pub mod deadlock;
pub mod failpoint;
pub mod log;
pub mod recovery;
pub mod snapshot;
pub mod view;

use crate::cluster::Cluster;
use crate::dn::quote_str;
use crate::error::{code, CnError, Result};
use dn_plugin::{AgentError, PrepareRecord, View};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::Mutex;
pub use view::ViewConn;

/// How write transactions committed, for `SHOW STATUS LIKE 'Cn_commits%'`.
#[derive(Debug, Default)]
pub struct CommitCounters {
    /// One DN written: a local transaction or one XA branch committed in one
    /// phase (no prepare).
    pub one_phase: std::sync::atomic::AtomicU64,
    /// Several DNs, async commit: answered once every branch was prepared.
    pub async_commit: std::sync::atomic::AtomicU64,
    /// Several DNs, two-phase commit with a decision in the transaction log.
    pub two_phase: std::sync::atomic::AtomicU64,
}

impl CommitCounters {
    /// Counts one commit made with protocol `p` (nothing for `None`).
    pub fn count(&self, p: CommitProtocol) {
        let which = match p {
            CommitProtocol::None => return,
            CommitProtocol::OnePhase => &self.one_phase,
            CommitProtocol::Async => &self.async_commit,
            CommitProtocol::TwoPhase => &self.two_phase,
        };
        which.fetch_add(1, Ordering::Relaxed);
    }
}

/// How a transaction committed (`SHOW STATUS LIKE 'Cn_last_commit'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitProtocol {
    /// Nothing written: no commit on any DN.
    #[default]
    None,
    /// One DN written, committed in one phase.
    OnePhase,
    /// Several DNs, async commit.
    Async,
    /// Several DNs, two-phase commit with a logged decision.
    TwoPhase,
}

impl CommitProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            CommitProtocol::None => "NONE",
            CommitProtocol::OnePhase => "ONE_PHASE",
            CommitProtocol::Async => "ASYNC_COMMIT",
            CommitProtocol::TwoPhase => "TWO_PHASE",
        }
    }
}

/// A connection shared by the statements of one transaction on one DN.
pub type SharedConn = Arc<Mutex<ViewConn>>;

/// How many times an OPEN that came late is retried at a higher snapshot.
pub const OPEN_RETRIES: usize = 8;

/// Transaction isolation levels the CN offers (MySQL names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// A snapshot per statement (InnoDB's own per-statement views).
    ReadCommitted,
    /// One snapshot for the whole transaction, across DNs.
    RepeatableRead,
}

impl Isolation {
    /// From `transaction_isolation` (`READ-COMMITTED`, …). READ UNCOMMITTED
    /// runs as READ COMMITTED and SERIALIZABLE as REPEATABLE READ (snapshot
    /// isolation), as PolarDB-X does.
    pub fn from_var(v: &str) -> Self {
        match v.to_ascii_uppercase().replace(' ', "-").as_str() {
            "READ-COMMITTED" | "READ-UNCOMMITTED" => Isolation::ReadCommitted,
            _ => Isolation::RepeatableRead,
        }
    }
}

/// How a transaction runs.
#[derive(Debug, Clone)]
pub struct TxnOptions {
    pub isolation: Isolation,
    /// START TRANSACTION READ ONLY: snapshot reads, writes refused (1792).
    pub read_only: bool,
    /// Stamp one-phase commits at least at the transaction's start
    /// timestamp, so a transaction never commits below one that finished
    /// before it began (TiDB's `tidb_guarantee_linearizability`).
    pub linearizable: bool,
    /// Commit a transaction that wrote on several DNs with async commit
    /// (answered once every branch is prepared) instead of 2PC with a
    /// decision row (`cn_async_commit`).
    pub async_commit: bool,
    /// Seconds a branch's row lock waits before 1205
    /// (`innodb_lock_wait_timeout`, set on every branch's DN session).
    pub lock_wait_timeout: u64,
    /// The session state its branches' connections carry (time zone).
    pub dn_session: crate::dn::DnSession,
}

impl TxnOptions {
    /// What a branch runs on its DN connection before its first statement.
    pub fn branch_setup(&self) -> String {
        format!("SET SESSION innodb_lock_wait_timeout = {}", self.lock_wait_timeout)
    }

    /// The implicit transaction of one autocommit write statement on
    /// several DNs: branches start on the DNs written, no read view.
    pub fn implicit(self) -> Self {
        TxnOptions { isolation: Isolation::ReadCommitted, read_only: false, ..self }
    }
}

/// The phases `SHOW TRANS` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Active,
    Preparing,
    Committing,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Active => "ACTIVE",
            Phase::Preparing => "PREPARING",
            Phase::Committing => "COMMITTING",
        }
    }
}

/// A transaction in flight, as `SHOW TRANS` lists it.
#[derive(Debug, Clone)]
pub struct TxnInfo {
    pub xid: String,
    pub conn_id: u32,
    pub start_ts: u64,
    pub snapshot_ts: u64,
    pub commit_ts: u64,
    pub phase: Phase,
    pub participants: Vec<u32>,
    pub started: std::time::Instant,
}

impl TxnInfo {
    /// The columns `SHOW TRANS` and `information_schema.cn_trx` show, and
    /// whether each is a number.
    pub const COLUMNS: [(&'static str, bool); 8] = [
        ("TRANS_ID", false),
        ("PROCESS_ID", true),
        ("STATE", false),
        ("START_TS", true),
        ("SNAPSHOT_TS", true),
        ("COMMIT_TS", true),
        ("PARTICIPANTS", false),
        ("DURATION_MS", true),
    ];

    /// This transaction's values for [`TxnInfo::COLUMNS`], as text.
    pub fn row(&self) -> Vec<String> {
        let dns: Vec<String> = self.participants.iter().map(|d| format!("dn{d}")).collect();
        vec![
            self.xid.clone(),
            self.conn_id.to_string(),
            self.phase.as_str().to_string(),
            self.start_ts.to_string(),
            self.snapshot_ts.to_string(),
            self.commit_ts.to_string(),
            dns.join(","),
            self.started.elapsed().as_millis().to_string(),
        ]
    }
}

struct Branch {
    conn: SharedConn,
    wrote: bool,
}

/// What a statement does with a branch.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    /// A consistent (snapshot) read.
    Read,
    /// A locking read.
    Lock,
}

/// One distributed transaction.
pub struct Txn {
    /// The XA id of every branch: `cn-<conn>-<start_ts>`, unique across CNs
    /// sharing a TSO.
    pub xid: String,
    /// TSO timestamp taken at BEGIN.
    pub start_ts: u64,
    pub opts: TxnOptions,
    branches: Mutex<BTreeMap<u32, Branch>>,
    /// Whether the read views are made (REPEATABLE READ, READ ONLY);
    /// changed only under the `branches` lock.
    views_open: AtomicBool,
    /// The transaction's savepoints, oldest first (lower-case names). Every
    /// branch has each of them: a branch started after a savepoint sets it
    /// at its start, where rolling back to it undoes all its work.
    savepoints: std::sync::Mutex<Vec<String>>,
    /// The DN threads of the branches, for deadlock detection.
    owner: deadlock::OwnerGuard,
    cluster: Arc<Cluster>,
}

impl Txn {
    /// Starts a transaction stamped with a fresh timestamp. Errors: the TSO
    /// is unreachable.
    pub async fn begin(cluster: Arc<Cluster>, conn_id: u32, opts: TxnOptions) -> Result<Arc<Txn>> {
        let start_ts = cluster.timestamp().await?;
        let xid = format!("cn-{conn_id}-{start_ts}");
        cluster.txns.lock().unwrap_or_else(|e| e.into_inner()).insert(
            xid.clone(),
            TxnInfo {
                xid: xid.clone(),
                conn_id,
                start_ts,
                snapshot_ts: 0,
                commit_ts: 0,
                phase: Phase::Active,
                participants: Vec::new(),
                started: std::time::Instant::now(),
            },
        );
        Ok(Arc::new(Txn {
            xid: xid.clone(),
            start_ts,
            opts,
            branches: Mutex::new(BTreeMap::new()),
            views_open: AtomicBool::new(false),
            savepoints: std::sync::Mutex::new(Vec::new()),
            owner: deadlock::OwnerGuard::new(&cluster, xid, start_ts),
            cluster,
        }))
    }

    fn set_info(&self, f: impl FnOnce(&mut TxnInfo)) {
        if let Some(i) = self.cluster.txns.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&self.xid) {
            f(i);
        }
    }

    fn uses_views(&self) -> bool {
        self.opts.read_only || self.opts.isolation == Isolation::RepeatableRead
    }

    /// Opens the transaction's snapshot on every DN now, unless it is open
    /// (START TRANSACTION WITH CONSISTENT SNAPSHOT, and the first
    /// consistent read of a REPEATABLE READ transaction).
    pub async fn open(&self) -> Result<()> {
        let mut b = self.branches.lock().await;
        self.open_views(&mut b).await
    }

    async fn open_views(&self, b: &mut BTreeMap<u32, Branch>) -> Result<()> {
        if self.uses_views() && !self.views_open.load(Ordering::Relaxed) {
            self.open_all(b).await?;
            self.views_open.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Makes a read view on every DN at one snapshot: the start timestamp
    /// first, then, after a RAISE, at `max(TSO, amx)`. A DN without a
    /// branch gets one started with its view; a branch that writes or
    /// locking reads already started (as in InnoDB, a transaction's read
    /// view is made at its first consistent read, not at its first
    /// statement) gets its view from a consistent read inside it. Such a
    /// view cannot be remade: a RAISE after one was made fails the
    /// transaction with a retryable error. So when branches started before
    /// this first read, the snapshot is a fresh timestamp rather than the
    /// start timestamp (InnoDB too reads at its first consistent read's
    /// view): a commit that landed on some DN since BEGIN would raise the
    /// start timestamp, and the views already made in branches elsewhere
    /// would fail the transaction for it.
    async fn open_all(&self, out: &mut BTreeMap<u32, Branch>) -> Result<()> {
        let dns: Vec<u32> = (0..self.cluster.dns.len() as u32).collect();
        let want = dns.iter().filter(|d| !out.contains_key(d)).map(|d| (*d, 1)).collect();
        let started: Vec<(u32, SharedConn)> = out.iter().map(|(dn, b)| (*dn, b.conn.clone())).collect();
        let mut s = if started.is_empty() { self.start_ts } else { self.cluster.timestamp().await? };
        for _ in 0..OPEN_RETRIES {
            let conns = self.cluster.acquire(&want, &self.opts.dn_session).await?;
            let conns = conns.into_iter().filter_map(|(dn, mut v)| v.pop().map(|c| (dn, c)));
            let xid = self.xid.clone();
            let read_only = self.opts.read_only;
            let setup = self.opts.branch_setup();
            let opens = conns.into_iter().map(|(dn, conn)| {
                let cluster = self.cluster.clone();
                let (xid, setup) = (xid.clone(), setup.clone());
                async move {
                    let mut conn = conn;
                    let agent = &cluster.agents[dn as usize];
                    let view = if read_only {
                        View::ReadOnly(&mut conn)
                    } else {
                        View::Xa { conn: &mut conn, xid: &xid, setup: &setup }
                    };
                    let r = cluster.while_dn_answers(dn, dn_plugin::agent::open(&**agent, s, vec![view])).await;
                    let on_drop = if read_only { vec!["ROLLBACK".to_string()] } else { xa_rollback_sql(&xid) };
                    (dn, ViewConn::new(conn, on_drop), r)
                }
            });
            let in_branches = started.iter().map(|(dn, conn)| {
                let cluster = self.cluster.clone();
                async move {
                    let agent = &cluster.agents[*dn as usize];
                    let mut g = conn.lock().await;
                    let open = dn_plugin::agent::open(&**agent, s, vec![View::InBranch(&mut g)]);
                    (*dn, cluster.while_dn_answers(*dn, open).await)
                }
            });
            let (results, in_results) =
                futures::future::join(futures::future::join_all(opens), futures::future::join_all(in_branches)).await;
            let mut raised = None;
            let mut failed = None;
            let mut views = Vec::new();
            for (dn, mut v, r) in results {
                match r {
                    Ok(()) => views.push((dn, v)),
                    Err(AgentError::Raise { amx, .. }) => {
                        raised = Some(raised.unwrap_or(0).max(amx));
                        v.finished();
                    }
                    Err(e) => {
                        failed = Some(self.cluster.dn(dn)?.agent_err(e));
                        views.push((dn, v));
                    }
                }
            }
            let mut fixed = false;
            for (dn, r) in in_results {
                match r {
                    Ok(()) => fixed = true,
                    Err(AgentError::Raise { amx, .. }) => raised = Some(raised.unwrap_or(0).max(amx)),
                    Err(e) => failed = Some(self.cluster.dn(dn)?.agent_err(e)),
                }
            }
            if failed.is_none() && raised.is_some() && fixed {
                failed = Some(too_late(&self.xid));
            }
            if let Some(e) = failed {
                for (_, mut v) in views {
                    v.end().await;
                }
                return Err(e);
            }
            let sps = self.savepoint_names();
            if raised.is_none() && !sps.is_empty() {
                let sql: Vec<String> = sps.iter().map(|sp| format!("SAVEPOINT `{sp}`")).collect();
                let sql = sql.join("; ");
                let sets = views.iter_mut().map(|(dn, v)| {
                    let sql = sql.clone();
                    async move { mysql_async::prelude::Queryable::query_drop(&mut **v, sql).await.map_err(|e| (*dn, e)) }
                });
                if let Some(Err((dn, e))) =
                    futures::future::join_all(sets).await.into_iter().find(std::result::Result::is_err)
                {
                    let e = self.cluster.dn(dn)?.err(e);
                    for (_, mut v) in views {
                        v.end().await;
                    }
                    return Err(e);
                }
            }
            match raised {
                None => {
                    self.set_info(|i| {
                        i.snapshot_ts = s;
                        i.participants = dns.clone();
                    });
                    for (dn, v) in views {
                        self.owner.add(dn, v.id());
                        out.insert(dn, Branch { conn: Arc::new(Mutex::new(v)), wrote: false });
                    }
                    return Ok(());
                }
                Some(amx) => {
                    // End the views made at the old snapshot before the same
                    // XA id starts again.
                    for (_, mut v) in views {
                        v.end().await;
                    }
                    s = self.cluster.timestamp().await?.max(amx);
                }
            }
        }
        Err(too_late(&self.xid))
    }

    /// The branch on DN `dn` for a consistent read; opens the snapshot
    /// first (REPEATABLE READ), or starts the branch on first use (READ
    /// COMMITTED).
    pub async fn branch(&self, dn: u32) -> Result<SharedConn> {
        self.branch_inner(dn, Use::Read).await
    }

    /// The branch on DN `dn` for a locking read (`FOR UPDATE`, `LOCK IN
    /// SHARE MODE`): started without a read view when the snapshot is not
    /// open yet, so the read waits for locks and sees the latest rows, as
    /// InnoDB's locking reads do before a transaction's first consistent
    /// read. Errors: 1792 in a READ ONLY transaction.
    pub async fn branch_for_lock(&self, dn: u32) -> Result<SharedConn> {
        self.refuse_in_read_only()?;
        self.branch_inner(dn, Use::Lock).await
    }

    fn refuse_in_read_only(&self) -> Result<()> {
        if self.opts.read_only {
            return Err(CnError::mysql(
                code::ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION,
                "Cannot execute statement in a READ ONLY transaction.",
            ));
        }
        Ok(())
    }

    async fn branch_inner(&self, dn: u32, usage: Use) -> Result<SharedConn> {
        let mut b = self.branches.lock().await;
        if usage == Use::Read {
            self.open_views(&mut b).await?;
        }
        if let Some(br) = b.get(&dn) {
            return Ok(br.conn.clone());
        }
        let d = self.cluster.dn(dn)?;
        let conn = d.conn_for(&self.opts.dn_session).await?;
        let mut v = ViewConn::new(conn, xa_rollback_sql(&self.xid));
        if let Err(e) = mysql_async::prelude::Queryable::query_drop(&mut *v, self.branch_start()).await {
            v.finished();
            return Err(d.err(e));
        }
        let id = v.id();
        let c = Arc::new(Mutex::new(v));
        self.register(&mut b, dn, id, c.clone(), false);
        Ok(c)
    }

    /// Records a new branch on `dn` (DN connection `conn_id`): for the
    /// deadlock detector, in the branch map, in `SHOW TRANS`.
    fn register(&self, b: &mut BTreeMap<u32, Branch>, dn: u32, conn_id: u32, conn: SharedConn, wrote: bool) {
        self.owner.add(dn, conn_id);
        b.insert(dn, Branch { conn, wrote });
        let participants: Vec<u32> = b.keys().copied().collect();
        self.set_info(|i| i.participants = participants);
    }

    /// What starts a branch: the session setup, `XA START` and the
    /// transaction's savepoints, in one multi-statement.
    fn branch_start(&self) -> String {
        let mut start = format!("{}; XA START {}", self.opts.branch_setup(), quote_str(&self.xid));
        for sp in self.savepoint_names() {
            start.push_str(&format!("; SAVEPOINT `{sp}`"));
        }
        start
    }

    /// Whether the transaction has a branch on `dn`.
    pub async fn has_branch(&self, dn: u32) -> bool {
        self.branches.lock().await.contains_key(&dn)
    }

    /// The branch on DN `dn` for a write, marked written so commit prepares
    /// it; like [`Txn::branch_for_lock`], it makes no read view. When the
    /// branch is new, `first` (write statements) runs in the round trip that
    /// starts it, after
    /// the branch map's lock is released (so branches on other DNs start
    /// meanwhile). Returns the branch and, when `first` ran, the affected
    /// rows. A caller must not start the same DN's
    /// branch this way concurrently with another use of that DN in the
    /// same transaction (one statement's work on a DN runs in order).
    /// The affected rows returned are summed over `first`'s statements.
    /// Errors: 1792 in a READ ONLY transaction; a DN error (when `first`
    /// failed, the branch is started and stays, to be rolled back with
    /// the transaction or its statement savepoint).
    pub async fn branch_for_write_with(&self, dn: u32, first: &str) -> Result<(SharedConn, Option<u64>)> {
        self.refuse_in_read_only()?;
        let mut b = self.branches.lock().await;
        if let Some(br) = b.get_mut(&dn) {
            br.wrote = true;
            return Ok((br.conn.clone(), None));
        }
        let d = self.cluster.dn(dn)?.clone();
        let conn = d.conn_for(&self.opts.dn_session).await?;
        let c = Arc::new(Mutex::new(ViewConn::new(conn, xa_rollback_sql(&self.xid))));
        let mut g = c.clone().lock_owned().await;
        // Registered before the statement runs: a lock wait inside it is
        // this transaction's for the deadlock detector.
        self.register(&mut b, dn, g.id(), c.clone(), true);
        drop(b);
        match crate::dn::exec_summed(&mut g, &format!("{}; {first}", self.branch_start())).await {
            Ok(n) => Ok((c.clone(), Some(n))),
            Err(e) => {
                // MariaDB stops a multi-statement at its first error: an
                // error of the setup or of XA START means no branch.
                let no_branch = matches!(&e, mysql_async::Error::Server(s)
                    if (1397..=1402).contains(&s.code) || [1193, 1231, 1232, 1440].contains(&s.code));
                if no_branch {
                    g.abandon();
                    // Released before the map's lock is taken again (the
                    // opposite order of `open_all`, which locks branches
                    // under it); a waiter finds it abandoned.
                    drop(g);
                    let mut b = self.branches.lock().await;
                    if b.get(&dn).is_some_and(|br| Arc::ptr_eq(&br.conn, &c)) {
                        b.remove(&dn);
                    }
                }
                Err(d.err(e))
            }
        }
    }

    fn savepoint_names(&self) -> Vec<String> {
        self.savepoints.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Runs `sql` on every branch (or those on `only`) in parallel; the
    /// first DN error wins.
    async fn on_branches(&self, branches: &BTreeMap<u32, Branch>, only: Option<&[u32]>, sql: &str) -> Result<()> {
        let chosen = branches.iter().filter(|(dn, _)| only.is_none_or(|o| o.contains(dn)));
        let runs = chosen.map(|(dn, b)| async move {
            let mut c = b.conn.lock().await;
            mysql_async::prelude::Queryable::query_drop(&mut **c, sql).await.map_err(|e| (*dn, e))
        });
        for r in futures::future::join_all(runs).await {
            if let Err((dn, e)) = r {
                return Err(self.cluster.dn(dn)?.err(e));
            }
        }
        Ok(())
    }

    /// SAVEPOINT `name` (case-insensitive): set on every branch; a
    /// savepoint of the same name is replaced, as in MySQL.
    pub async fn savepoint(&self, name: &str) -> Result<()> {
        let name = savepoint_name(name)?;
        let b = self.branches.lock().await;
        self.on_branches(&b, None, &format!("SAVEPOINT `{name}`")).await?;
        let mut sps = self.savepoints.lock().unwrap_or_else(|e| e.into_inner());
        sps.retain(|s| *s != name);
        sps.push(name);
        Ok(())
    }

    /// ROLLBACK TO SAVEPOINT `name`: every branch rolls back to it (a
    /// branch started after it loses all its work); later savepoints are
    /// removed, `name` stays. Row locks taken since are kept, as in InnoDB.
    /// Errors: 1305 when there is no such savepoint.
    pub async fn rollback_to(&self, name: &str) -> Result<()> {
        self.back_to_savepoint(name, "ROLLBACK TO SAVEPOINT", 1).await
    }

    /// RELEASE SAVEPOINT `name`: removes it and every later savepoint.
    /// Errors: 1305 when there is no such savepoint.
    pub async fn release_savepoint(&self, name: &str) -> Result<()> {
        self.back_to_savepoint(name, "RELEASE SAVEPOINT", 0).await
    }

    /// Runs `<verb> name` on every branch, then keeps the savepoints up to
    /// `name` (and `keep` = 1 more: `name` itself, or 0).
    async fn back_to_savepoint(&self, name: &str, verb: &str, keep: usize) -> Result<()> {
        let name = savepoint_name(name)?;
        let b = self.branches.lock().await;
        let pos = self.savepoint_position(&name)?;
        self.on_branches(&b, None, &format!("{verb} `{name}`")).await?;
        self.savepoints.lock().unwrap_or_else(|e| e.into_inner()).truncate(pos + keep);
        Ok(())
    }

    /// Rolls the branches on `dns` back to savepoint `name` (quoted as
    /// given), one the CN set itself: a failed statement undoing its work.
    pub async fn rollback_branches_to(&self, dns: &[u32], name: &str) -> Result<()> {
        let b = self.branches.lock().await;
        self.on_branches(&b, Some(dns), &format!("ROLLBACK TO SAVEPOINT {name}")).await
    }

    fn savepoint_position(&self, name: &str) -> Result<usize> {
        let sps = self.savepoints.lock().unwrap_or_else(|e| e.into_inner());
        sps.iter().position(|s| s == name).ok_or_else(|| no_savepoint(name))
    }

    /// Whether the deadlock detector chose this transaction as a victim
    /// (clears the mark): its failed statement is reported as 1213 and the
    /// whole transaction rolls back.
    pub fn take_victim(&self) -> bool {
        self.owner.take_victim()
    }

    /// Commits. Branches that only read end with a rollback; one written
    /// branch commits in one phase; several prepare, then either (async
    /// commit) the transaction is decided and answered and the branches
    /// commit in the background, or (2PC) the decision is recorded in the
    /// transaction log before they commit. Errors: a failed prepare (every
    /// branch rolled back, the DN's error returned), a decision taken by
    /// recovery first (1213), an outcome unknown (1180: a prepare or the
    /// decision's recording did not answer; recovery settles it).
    pub async fn commit(self: &Arc<Self>) -> Result<CommitProtocol> {
        let branches = std::mem::take(&mut *self.branches.lock().await);
        let mut written = Vec::new();
        for (dn, b) in branches {
            if b.wrote {
                written.push((dn, b.conn));
            } else {
                // Read-only branch: its rollback runs in the background.
                drop(b);
            }
        }
        match written.len() {
            0 => Ok(CommitProtocol::None),
            1 => {
                let (dn, conn) = written.pop().expect("one branch");
                let mut c = conn.lock().await;
                let l = if self.opts.linearizable { self.start_ts } else { 0 };
                let agent = &*self.cluster.agents[dn as usize];
                match dn_plugin::agent::commit_one_phase(agent, &mut c, Some(&self.xid), l).await {
                    Ok(t) => {
                        c.finished();
                        self.set_info(|i| i.commit_ts = t);
                        Ok(CommitProtocol::OnePhase)
                    }
                    Err(e) => Err(self.agent_err(dn, e)),
                }
            }
            _ => self.commit_two_phase(written).await,
        }
    }

    fn agent_err(&self, dn: u32, e: AgentError) -> CnError {
        match e {
            AgentError::Raise { .. } => too_late(&self.xid),
            e => match self.cluster.dn(dn) {
                Ok(d) => d.agent_err(e),
                Err(other) => other,
            },
        }
    }

    async fn commit_two_phase(self: &Arc<Self>, written: Vec<(u32, SharedConn)>) -> Result<CommitProtocol> {
        self.set_info(|i| i.phase = Phase::Preparing);
        let mut guards = Vec::with_capacity(written.len());
        for (dn, c) in &written {
            guards.push((*dn, c.clone().lock_owned().await));
        }
        let record = PrepareRecord {
            participants: guards.iter().map(|(dn, _)| *dn).collect(),
            lower_bound: if self.opts.linearizable { self.start_ts } else { 0 },
            async_commit: self.opts.async_commit,
        };
        if failpoint::reached(failpoint::BEFORE_PREPARE).await {
            return Err(self.crash(&mut guards).await);
        }
        let mut results = Vec::with_capacity(guards.len());
        if failpoint::armed_at(failpoint::AFTER_FIRST_PREPARE) {
            // The first branch alone, then the failpoint, then the rest.
            let (dn, g) = &mut guards[0];
            results.push(dn_plugin::agent::prepare(&*self.cluster.agents[*dn as usize], g, &self.xid, &record).await);
            if failpoint::reached(failpoint::AFTER_FIRST_PREPARE).await {
                return Err(self.crash(&mut guards).await);
            }
        }
        let prepares = guards.iter_mut().skip(results.len()).map(|(dn, c)| {
            let agent = self.cluster.agents[*dn as usize].clone();
            let (xid, record) = (&self.xid, &record);
            async move { dn_plugin::agent::prepare(&*agent, c, xid, record).await }
        });
        results.extend(futures::future::join_all(prepares).await);
        let mut max_m = 0;
        let mut failure = None;
        let mut unknown = false;
        for ((dn, _), r) in guards.iter().zip(results) {
            match r {
                Ok(m) => max_m = max_m.max(m),
                Err(e) => {
                    // Only a DN's own refusal says the branch is not
                    // prepared; a broken connection leaves it unknown.
                    unknown |= matches!(e, AgentError::Db(ref e) if !matches!(e, mysql_async::Error::Server(_)));
                    failure = failure.or(Some(self.agent_err(*dn, e)));
                }
            }
        }
        if unknown && self.opts.async_commit {
            // The missing branch may be prepared after all, and then every
            // branch is and the transaction committed: leave it to
            // recovery, which decides from the agents' logs.
            return Err(self.leave_to_recovery(&mut guards, "a prepare did not answer"));
        }
        if failure.is_none() {
            if failpoint::reached(failpoint::AFTER_PREPARES).await {
                return Err(self.crash(&mut guards).await);
            }
            if self.opts.async_commit {
                // Decided: every branch is prepared. No TSO call, no log row.
                let c = record.lower_bound.max(max_m);
                return self.commit_async(guards, c).await.map(|()| CommitProtocol::Async);
            }
            match self.cluster.timestamp().await {
                Ok(ts) => {
                    let c = ts.max(max_m);
                    return self.decide_and_commit(guards, c).await.map(|()| CommitProtocol::TwoPhase);
                }
                Err(e) => failure = Some(e),
            }
        }
        self.rollback_prepared(&mut guards).await;
        Err(failure.expect("a failure"))
    }

    /// Async commit's second phase: marks the branches decided at `c` in
    /// their agents (reads that follow the answer wait for them), then
    /// commits them in the background. The transaction stays registered
    /// (live for recovery, listed by `SHOW TRANS`) until every branch has
    /// committed; a branch whose `XA COMMIT` fails is left to recovery,
    /// which reaches the same `c` from the agents' logs. When an agent
    /// refuses the decision (recovery claimed a branch, or the agent is
    /// unreachable) the transaction is not acknowledged: 1180, left to
    /// recovery.
    async fn commit_async(
        self: &Arc<Self>,
        mut guards: Vec<(u32, tokio::sync::OwnedMutexGuard<ViewConn>)>,
        c: u64,
    ) -> Result<()> {
        // Every agent at once (one round trip with sidecar agents).
        let decides = guards
            .iter()
            .map(|(dn, _)| async move { (*dn, self.cluster.agents[*dn as usize].decide(&self.xid, c).await) });
        let refused = futures::future::join_all(decides).await.into_iter().find_map(|(dn, r)| r.err().map(|e| (dn, e)));
        if let Some((dn, e)) = refused {
            tracing::warn!(xid = self.xid, dn, error = %e, "the decision was refused");
            return Err(self.leave_to_recovery(&mut guards, &format!("dn{dn}'s agent: {e}")));
        }
        self.set_info(|i| {
            i.phase = Phase::Committing;
            i.commit_ts = c;
        });
        let txn = self.clone();
        tokio::spawn(async move {
            let _ = txn.commit_branches(&mut guards, c).await;
        });
        Ok(())
    }

    /// `XA COMMIT` of every decided branch at `c`, all at once (with the
    /// [`failpoint::AFTER_FIRST_COMMIT`] armed: the first, the failpoint,
    /// then the others). Whether all committed; errors only after a
    /// simulated crash (the client's error).
    async fn commit_branches(
        &self,
        guards: &mut [(u32, tokio::sync::OwnedMutexGuard<ViewConn>)],
        c: u64,
    ) -> Result<bool> {
        let mut all = true;
        let mut first = 0;
        if failpoint::armed_at(failpoint::AFTER_FIRST_COMMIT) {
            let (dn, g) = &mut guards[0];
            all &= self.commit_branch(*dn, g, c).await;
            first = 1;
            if failpoint::reached(failpoint::AFTER_FIRST_COMMIT).await {
                return Err(self.crash(&mut guards[1..]).await);
            }
        }
        let commits = guards[first..].iter_mut().map(|(dn, g)| self.commit_branch(*dn, g, c));
        Ok(futures::future::join_all(commits).await.into_iter().fold(all, |a, ok| a && ok))
    }

    /// Closes the branches' connections without ending them (prepared ones
    /// stay prepared for recovery) and returns 1180: the outcome is
    /// unknown because `why`.
    fn leave_to_recovery(&self, guards: &mut [(u32, tokio::sync::OwnedMutexGuard<ViewConn>)], why: &str) -> CnError {
        for (_, g) in guards.iter_mut() {
            g.abandon();
        }
        CnError::mysql(
            code::ER_ERROR_DURING_COMMIT,
            format!("Outcome of transaction {} unknown ({why}); recovery will settle it", self.xid),
        )
    }

    /// What a crash of the CN at a failpoint leaves: the connections close
    /// without ending their branches (prepared ones stay prepared, the
    /// others roll back) and the agents forget the transaction, as agents
    /// restarted without it would. Returns the error the client gets.
    async fn crash(&self, guards: &mut [(u32, tokio::sync::OwnedMutexGuard<ViewConn>)]) -> CnError {
        for (dn, g) in guards.iter_mut() {
            g.abandon();
            let _ = self.cluster.agents[*dn as usize].forget(&self.xid).await;
        }
        CnError::mysql(code::ER_ERROR_DURING_COMMIT, format!("Transaction {}: the CN crashed (failpoint)", self.xid))
    }

    /// `XA COMMIT` of one decided branch through its agent. Returns whether
    /// it committed; on failure the branch is abandoned to recovery.
    async fn commit_branch(&self, dn: u32, g: &mut ViewConn, c: u64) -> bool {
        match dn_plugin::agent::commit_prepared(&*self.cluster.agents[dn as usize], g, &self.xid, c).await {
            Ok(()) => {
                g.finished();
                true
            }
            Err(e) => {
                // Committed by decision; recovery finishes the branch from
                // another connection.
                tracing::error!(xid = self.xid, dn, error = %e, "XA COMMIT failed after the commit decision");
                g.abandon();
                false
            }
        }
    }

    async fn rollback_prepared(&self, guards: &mut [(u32, tokio::sync::OwnedMutexGuard<ViewConn>)]) {
        let rbs = guards.iter_mut().map(|(dn, c)| {
            let agent = self.cluster.agents[*dn as usize].clone();
            let xid = &self.xid;
            async move {
                // When the agent does not answer, `end` rolls the branch
                // back whether it is prepared or not.
                if agent.is_prepared(xid).await.unwrap_or(false) {
                    match dn_plugin::agent::rollback_prepared(&*agent, c, xid).await {
                        Ok(()) => c.finished(),
                        Err(e) => tracing::warn!(xid, error = %e, "XA ROLLBACK of a prepared branch failed"),
                    }
                } else {
                    c.end().await;
                }
            }
        });
        futures::future::join_all(rbs).await;
    }

    async fn decide_and_commit(
        &self,
        mut guards: Vec<(u32, tokio::sync::OwnedMutexGuard<ViewConn>)>,
        c: u64,
    ) -> Result<()> {
        match log::record(&self.cluster.metadb, &self.xid, log::Decision::Commit(c)).await {
            Ok(()) => {}
            Err(log::RecordError::Decided(_)) => {
                self.rollback_prepared(&mut guards).await;
                return Err(CnError::mysql(
                    code::ER_LOCK_DEADLOCK,
                    format!(
                        "Transaction {} was rolled back by recovery before it committed; try restarting transaction",
                        self.xid
                    ),
                ));
            }
            Err(log::RecordError::Unknown(e)) => {
                // The decision may or may not be recorded: leave the
                // branches prepared for recovery, which commits them if the
                // row is there and aborts them otherwise.
                return Err(self.leave_to_recovery(&mut guards, &format!("transaction log unreachable: {e}")));
            }
        }
        self.set_info(|i| {
            i.phase = Phase::Committing;
            i.commit_ts = c;
        });
        if failpoint::reached(failpoint::AFTER_DECISION).await {
            return Err(self.crash(&mut guards).await);
        }
        let all = self.commit_branches(&mut guards, c).await?;
        if all {
            let metadb = self.cluster.metadb.clone();
            let xid = self.xid.clone();
            tokio::spawn(async move {
                if let Err(e) = log::forget(&metadb, &xid).await {
                    tracing::warn!(xid, error = %e, "could not delete a transaction log row");
                }
            });
        }
        Ok(())
    }

    /// Rolls back every branch.
    pub async fn rollback(&self) {
        let branches = std::mem::take(&mut *self.branches.lock().await);
        let ends = branches.into_values().map(|b| async move { b.conn.lock().await.end().await });
        futures::future::join_all(ends).await;
    }
}

/// `XA END`, `XA ROLLBACK` of a branch (the END fails harmlessly on a
/// branch already ended or marked rollback-only; the ROLLBACK still runs).
fn xa_rollback_sql(xid: &str) -> Vec<String> {
    let x = quote_str(xid);
    vec![format!("XA END {x}"), format!("XA ROLLBACK {x}")]
}

/// A savepoint name as the CN keeps it: unquoted, lower-case (MySQL
/// compares them case-insensitively). Errors: 1064 for an empty name or one
/// with a backtick.
pub fn savepoint_name(name: &str) -> Result<String> {
    let n = name.trim().trim_end_matches(';').trim().trim_matches('`');
    if n.is_empty() || n.contains('`') {
        return Err(CnError::parse(format!("near '{name}': expected a savepoint name")));
    }
    Ok(n.to_lowercase())
}

/// MySQL's error for an unknown savepoint (1305, SQLSTATE 42000).
pub fn no_savepoint(name: &str) -> CnError {
    CnError::mysql(code::ER_SP_DOES_NOT_EXIST, format!("SAVEPOINT {name} does not exist"))
}

fn too_late(xid: &str) -> CnError {
    CnError::mysql(
        code::ER_LOCK_DEADLOCK,
        format!("Transaction {xid}: commits kept landing above its snapshot; try restarting transaction"),
    )
}

impl Drop for Txn {
    fn drop(&mut self) {
        // Branches still held roll back in the background (ViewConn).
        self.cluster.txns.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.xid);
    }
}

/// Where a statement gets its DN connections.
#[derive(Clone)]
pub enum ConnSource {
    /// A pooled connection per shard access (reads of one DN, DDL), with
    /// the session's state.
    Pool(Arc<Cluster>, crate::dn::DnSession),
    /// The branches of a transaction.
    Txn(Arc<Txn>),
    /// The branches of a transaction for a locking read: no read view is
    /// made for it (see [`Txn::branch_for_lock`]).
    TxnLocking(Arc<Txn>),
    /// Pooled connections for an autocommit locking read; each first runs
    /// the session's [`TxnOptions::branch_setup`] (every use of a DN
    /// connection that may wait for a lock sets its lock wait timeout).
    PoolLocking(Arc<Cluster>, String, crate::dn::DnSession),
    /// The read views of an autocommit statement's snapshot.
    Snapshot(Arc<snapshot::StmtSnapshot>),
}

impl ConnSource {
    pub fn cluster(&self) -> &Arc<Cluster> {
        match self {
            ConnSource::Pool(c, _) | ConnSource::PoolLocking(c, ..) => c,
            ConnSource::Txn(t) | ConnSource::TxnLocking(t) => &t.cluster,
            ConnSource::Snapshot(s) => s.cluster(),
        }
    }

    /// The session state of the connections it gives.
    pub fn dn_session(&self) -> &crate::dn::DnSession {
        match self {
            ConnSource::Pool(_, s) | ConnSource::PoolLocking(.., s) => s,
            ConnSource::Txn(t) | ConnSource::TxnLocking(t) => &t.opts.dn_session,
            ConnSource::Snapshot(s) => s.session(),
        }
    }

    /// Makes the read views a statement needs before it reads: `shards`
    /// counts the shard accesses per DN. A snapshot opens that many views
    /// per DN; a REPEATABLE READ transaction opens its snapshot.
    pub async fn open(&self, shards: &BTreeMap<u32, usize>) -> Result<()> {
        match self {
            ConnSource::Pool(..) | ConnSource::PoolLocking(..) | ConnSource::TxnLocking(_) => Ok(()),
            ConnSource::Txn(t) => t.open().await,
            ConnSource::Snapshot(s) => s.open(shards).await,
        }
    }

    /// Makes the read views of a statement that reads before it knows all
    /// its shards (a lookup join reads its keys before the rest is
    /// planned): a snapshot opens [`snapshot::MAX_VIEWS_PER_DN`] views on
    /// every DN; a REPEATABLE READ transaction opens its snapshot.
    pub async fn open_all(&self) -> Result<()> {
        match self {
            ConnSource::Snapshot(s) => s.open_every_dn(snapshot::MAX_VIEWS_PER_DN).await,
            _ => self.open(&BTreeMap::new()).await,
        }
    }

    /// How many connections a statement's shard accesses on one DN can use
    /// at once: one for a transaction (its branch), at most
    /// [`snapshot::MAX_VIEWS_PER_DN`] for a statement snapshot, `None` (one
    /// per access) for pooled connections.
    pub fn connections_per_dn(&self) -> Option<usize> {
        match self {
            ConnSource::Pool(..) | ConnSource::PoolLocking(..) => None,
            ConnSource::Txn(_) | ConnSource::TxnLocking(_) => Some(1),
            ConnSource::Snapshot(_) => Some(snapshot::MAX_VIEWS_PER_DN),
        }
    }

    /// Whether several shard accesses may share one connection (so a scan
    /// must not stall while holding it).
    pub fn shared(&self) -> bool {
        match self {
            ConnSource::Pool(..) | ConnSource::PoolLocking(..) => false,
            ConnSource::Txn(_) | ConnSource::TxnLocking(_) => true,
            ConnSource::Snapshot(s) => s.shared(),
        }
    }

    pub async fn get(&self, dn: u32) -> Result<DnConn> {
        match self {
            ConnSource::Pool(c, session) => Ok(DnConn::Owned(c.fresh_conn(dn, session).await?)),
            ConnSource::PoolLocking(c, setup, session) => {
                let mut conn = c.fresh_conn(dn, session).await?;
                mysql_async::prelude::Queryable::query_drop(&mut conn, setup).await.map_err(|e| match c.dn(dn) {
                    Ok(d) => d.err(e),
                    Err(other) => other,
                })?;
                Ok(DnConn::Owned(conn))
            }
            ConnSource::Txn(t) => Ok(DnConn::Shared(t.branch(dn).await?.lock_owned().await)),
            ConnSource::TxnLocking(t) => Ok(DnConn::Shared(t.branch_for_lock(dn).await?.lock_owned().await)),
            ConnSource::Snapshot(s) => s.get(dn).await,
        }
    }
}

/// A connection to one DN for one statement: a pooled one, or a
/// transaction's branch (or snapshot view) held locked. Dereferences to the
/// connection.
pub enum DnConn {
    Owned(mysql_async::Conn),
    Shared(tokio::sync::OwnedMutexGuard<ViewConn>),
}

impl DnConn {
    /// Runs `sql` on the connection; on a snapshot's deferred read view
    /// the view is made first, in the same round trip (see
    /// [`ViewConn::query_iter`]). Named as mysql_async's method so that
    /// `c.query_iter(sql)` on a `DnConn` always comes here, never to the
    /// connection behind it. Errors: the DN's.
    pub async fn query_iter<'a>(
        &'a mut self,
        sql: &'a str,
    ) -> std::result::Result<mysql_async::QueryResult<'a, 'static, mysql_async::TextProtocol>, mysql_async::Error> {
        match self {
            DnConn::Owned(c) => mysql_async::prelude::Queryable::query_iter(c, sql).await,
            DnConn::Shared(g) => g.query_iter(sql).await,
        }
    }
}

impl std::ops::Deref for DnConn {
    type Target = mysql_async::Conn;
    fn deref(&self) -> &mysql_async::Conn {
        match self {
            DnConn::Owned(c) => c,
            DnConn::Shared(g) => g,
        }
    }
}

impl std::ops::DerefMut for DnConn {
    fn deref_mut(&mut self) -> &mut mysql_async::Conn {
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

impl std::fmt::Debug for ConnSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnSource::Pool(..) => f.write_str("Pool"),
            ConnSource::PoolLocking(_, setup, _) => write!(f, "PoolLocking({setup})"),
            ConnSource::Txn(t) => write!(f, "Txn({})", t.xid),
            ConnSource::TxnLocking(t) => write!(f, "TxnLocking({})", t.xid),
            ConnSource::Snapshot(_) => f.write_str("Snapshot"),
        }
    }
}
