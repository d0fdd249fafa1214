//! The DN agent's timestamp rules (ARCHITECTURE.md, "Transactions").
//!
//! One agent per DN. Every snapshot that reads the DN and every commit
//! that writes it goes through the agent, which keeps:
//! - `P`: the prepared (or preparing) XA branches with their
//!   `min_commit_ts`;
//! - `mrt`: the highest snapshot timestamp opened here;
//! - `amx`: the highest commit timestamp applied here;
//! - the gate: commits and the making of InnoDB read views exclude each
//!   other, so a read view never races a commit whose timestamp it has not
//!   been checked against.
//!
//! The agent's state operations are the trait [`AgentApi`], implemented in
//! process by [`Agent`] and over gRPC by `crate::remote::RemoteAgent` (a
//! sidecar shared by several CNs, `dn-plugin serve`). The SQL that runs on
//! the CN's own DN connections (where the XA branches live) is in the free
//! functions below, which go through any implementation; admissions
//! through the gate are objects ([`Admission`]) held while the SQL runs.
//!
//! The rules, for a snapshot `s` and a commit `c`:
//! - [`open`] sets `mrt = max(mrt, s)`, waits for every branch in `P` with
//!   `min_commit_ts <= s`, closes the gate (waiting for the commits under
//!   way), answers [`AgentError::Raise`] if `amx > s` (a commit above the
//!   snapshot is already visible), else makes the read views and opens the
//!   gate. [`open_deferred`] takes the same admission for one view that
//!   the first query on its connection makes, in that query's round trip.
//! - [`prepare`] registers the branch with `m = max(mrt + 1, amx)` before
//!   `XA PREPARE`; the coordinator commits at `c >= max(m_i)`.
//! - [`commit_prepared`] runs `XA COMMIT` inside the gate and then sets
//!   `amx = max(amx, c)`.
//! - [`commit_one_phase`] stamps `t = max(mrt + 1, amx, L)` and commits,
//!   both inside one admission, so no snapshot opened meanwhile can fall
//!   between the stamp and the commit.
//! - Async commit: each prepare writes the participants, `L` and `m` into
//!   the agent's log (`cn_agent.prepared`, a row inside the branch, durable
//!   with `XA PREPARE`); the transaction is decided once every branch is
//!   prepared, at `c = max(L, max m_i)`, and answered before its branches
//!   commit. [`AgentApi::decide`] marks the branches so that reads answered
//!   after it see them: [`AgentApi::read_ts`] (single-DN snapshots) covers
//!   their `c`, and [`AgentApi::wait_decided`] holds back reads that use no
//!   read view until they have committed.
//! - [`rebuild`] restores `P` after a restart from `XA RECOVER` and the
//!   log.
//! - Recovery claims a branch ([`AgentApi::claim`]) before settling it: a
//!   shared agent refuses while another CN with a live session registered
//!   it, and a claimed branch can no longer be decided, so an async commit
//!   racing its settlement is never acknowledged.
//!
//! Why this is enough: a snapshot `s` sees exactly the commits with
//! timestamp `<= s`. A branch prepared before the open with `m <= s` is
//! waited for; one prepared after it gets `m > s`, so `c > s`, and its
//! commit cannot land while the view is made (the gate) and, if it landed
//! before, `amx > s` raises. The source is PolarDB-X's and TiDB's use of
//! `min_commit_ts`/`max_ts` (Percolator-style SI over a TSO), adapted to
//! unmodified InnoDB as in `../shared/prototypes/si_protocol.py`.

use async_trait::async_trait;
use mysql_async::prelude::*;
use mysql_async::Conn;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// The database on each DN that holds the agent's own tables.
pub const AGENT_DB: &str = "cn_agent";

/// How long a CN may stay without a session at a shared agent before the
/// branches it registered may be claimed by another CN's recovery
/// ([`Agent::claim_for`]).
pub const OWNER_GRACE: Duration = Duration::from_secs(3);

/// Errors of the agent's operations.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// OPEN came late: a commit with timestamp `amx > s` is already visible
    /// on this DN. Retry at a snapshot `>= amx` if nothing has been read.
    #[error("snapshot {snapshot} opened late: a commit at {amx} is already visible")]
    Raise { snapshot: u64, amx: u64 },
    /// The DN answered with an error (or the connection broke).
    #[error(transparent)]
    Db(#[from] mysql_async::Error),
    /// `decide` refused: the branch is not registered as prepared, or
    /// recovery has claimed it (it may be rolling it back). The transaction
    /// must not be acknowledged; recovery settles it.
    #[error("branch {xid} is not prepared here or was claimed by recovery")]
    NotDecidable { xid: String },
    /// A remote agent could not be reached or broke the call (gRPC status
    /// text). The outcome of the operation is unknown.
    #[error("DN agent unavailable: {0}")]
    Unavailable(String),
}

/// How a read view is made on a connection by [`open`].
pub enum View<'a> {
    /// `XA START xid` and a consistent read: the branch of a transaction
    /// that may write. `setup`, when not empty, runs first in the same
    /// round trip (session settings such as `innodb_lock_wait_timeout`).
    Xa { conn: &'a mut Conn, xid: &'a str, setup: &'a str },
    /// `START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY`: a snapshot
    /// read.
    ReadOnly(&'a mut Conn),
    /// A consistent read inside a branch already started (by writes or
    /// locking reads): InnoDB makes the transaction's read view at its
    /// first consistent read.
    InBranch(&'a mut Conn),
}

/// What a prepare writes durably inside its branch, in `cn_agent.prepared`
/// (the agent's log): the row becomes durable with `XA PREPARE` and
/// committed with the branch. Recovery reads it (at READ UNCOMMITTED while
/// the branch is prepared) to rebuild `P` with the real `min_commit_ts`
/// and to decide an async-commit transaction without a decision row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepareRecord {
    /// The DN ids of every branch of the transaction.
    pub participants: Vec<u32>,
    /// `L`, the commit's lower bound (0 without the linearizability bound).
    pub lower_bound: u64,
    /// Async commit: the transaction is committed once every participant is
    /// prepared, at `max(L, max min_commit_ts)`; no decision row is written.
    pub async_commit: bool,
}

/// A row of `cn_agent.prepared` as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedRow {
    pub xid: String,
    pub min_commit_ts: u64,
    pub record: PrepareRecord,
}

/// A snapshot of the agent's state, for `SHOW TRANS` and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStatus {
    pub mrt: u64,
    pub amx: u64,
    /// Prepared branches: (xid, min_commit_ts).
    pub prepared: Vec<(String, u64)>,
    /// Branches decided but not yet committed here: (xid, commit_ts; 0 when
    /// rebuilt after a restart and not yet settled).
    pub decided: Vec<(String, u64)>,
    pub commits_in_flight: usize,
    pub opens_in_flight: usize,
}

/// What a commit admission ([`AgentApi::admit_commit`]) is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitKind {
    /// `XA COMMIT` of a prepared branch at the decided timestamp.
    Prepared { commit_ts: u64 },
    /// A one-phase commit, stamped by the agent at
    /// `max(mrt + 1, amx, lower_bound)`.
    OnePhase { lower_bound: u64 },
}

/// How an admission ends ([`Admission::finish`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// An OPEN admission: the read views are made (or failed); the gate
    /// reopens.
    Released,
    /// A commit admission: the commit was applied at the admission's
    /// timestamp (`amx` rises to it); `forget` is the XA id of the prepared
    /// branch it committed, dropped from `P`.
    Applied { forget: Option<String> },
    /// A commit admission: the DN refused the commit (nothing applied).
    Failed,
}

/// One admission through the gate of an agent, held until it is finished.
/// Dropping it unfinished releases it as if the holder died: an OPEN
/// reopens the gate; a commit's outcome is unknown, so `amx` rises to its
/// timestamp (a spurious raise only costs a retried OPEN; a missing one
/// could let a later snapshot below it see the commit).
#[async_trait]
pub trait Admission: Send {
    /// The timestamp of a commit admission (0 for an OPEN).
    fn ts(&self) -> u64;
    /// Ends the admission. Errors: a remote agent did not acknowledge (it
    /// then treats the admission as dropped, see above).
    async fn finish(self: Box<Self>, outcome: Outcome) -> Result<(), AgentError>;
}

/// The state operations of a DN agent, in process ([`Agent`]) or behind
/// the gRPC service (`crate::remote::RemoteAgent`). The SQL that runs on the
/// CN's own DN connections is in the free functions of this module
/// ([`open`], [`prepare`], [`commit_prepared`], …), which take any
/// implementation. Every method of a remote agent may fail with
/// [`AgentError::Unavailable`].
#[async_trait]
pub trait AgentApi: Send + Sync {
    /// The DN's name, for messages.
    fn dn(&self) -> &str;
    /// OPEN(s) admission: `mrt = max(mrt, s)`, waits for every branch in
    /// `P` with `min_commit_ts <= s`, closes the gate (waiting for the
    /// commits under way) and answers [`AgentError::Raise`] if `amx > s`.
    /// The gate stays closed to commits until the returned admission is
    /// finished or dropped. With gating off: only `mrt` moves.
    async fn admit_open(&self, s: u64) -> Result<Box<dyn Admission>, AgentError>;
    /// Registers a branch about to prepare with `m = max(mrt + 1, amx)`;
    /// returns `m`.
    async fn register_prepare(&self, xid: &str) -> Result<u64, AgentError>;
    /// Forgets a branch (rolled back, or settled elsewhere) and wakes the
    /// snapshots waiting for it.
    async fn forget(&self, xid: &str) -> Result<(), AgentError>;
    /// Marks a prepared branch as decided at `c` (async commit, before the
    /// client is answered). Errors: [`AgentError::NotDecidable`] when the
    /// branch is not in `P` or recovery claimed it.
    async fn decide(&self, xid: &str, c: u64) -> Result<(), AgentError>;
    /// `max(amx, commit_ts of every decided branch)`: the snapshot a read of
    /// this DN alone may take without a TSO call.
    async fn read_ts(&self) -> Result<u64, AgentError>;
    /// Waits until every branch decided before the call has committed here
    /// (or been settled by recovery).
    async fn wait_decided(&self) -> Result<(), AgentError>;
    /// A commit admission through the gate; its [`Admission::ts`] is `c`
    /// for [`CommitKind::Prepared`] and the stamp `t` for
    /// [`CommitKind::OnePhase`].
    async fn admit_commit(&self, kind: CommitKind) -> Result<Box<dyn Admission>, AgentError>;
    /// Registers a branch found prepared on the DN (after a restart) with
    /// its `min_commit_ts` (`None`: every snapshot waits for it); it counts
    /// as decided until committed or rolled back.
    async fn register_in_doubt(&self, xid: &str, min_commit_ts: Option<u64>) -> Result<(), AgentError>;
    /// Whether `xid` is registered as prepared here.
    async fn is_prepared(&self, xid: &str) -> Result<bool, AgentError>;
    /// Recovery asks to settle `xid`: `false` when another CN that still
    /// holds a session here registered it (leave it alone); else `true`,
    /// and from now on [`AgentApi::decide`] refuses it.
    async fn claim(&self, xid: &str) -> Result<bool, AgentError>;
    /// The agent's state.
    async fn status(&self) -> Result<AgentStatus, AgentError>;
    /// Test-only switch: with gating off, OPEN neither waits for prepared
    /// branches nor closes the gate nor raises (the negative controls).
    async fn set_gating(&self, on: bool) -> Result<(), AgentError>;
    /// Whether gating is on.
    async fn gating(&self) -> Result<bool, AgentError>;
}

#[derive(Default)]
struct State {
    prepared: HashMap<String, u64>,
    /// Branches acknowledged to the client (async commit) or found in doubt
    /// after a restart, not yet committed here: xid -> (sequence number,
    /// commit_ts or 0). Reads that bypass snapshots wait for them.
    decided: HashMap<String, (u64, u64)>,
    next_decided: u64,
    /// The CN that registered each prepared branch (shared agents only).
    owners: HashMap<String, u64>,
    /// Branches recovery claimed: `decide` refuses them.
    claimed: HashSet<String>,
    /// CN sessions: cn id -> (open sessions, when the last one closed).
    sessions: HashMap<u64, (usize, Instant)>,
    mrt: u64,
    amx: u64,
    commits_in_flight: usize,
    commits_waiting: usize,
    opens_in_flight: usize,
    opens_waiting: usize,
    /// Whose turn it is when both commits and opens wait: the gate
    /// alternates between a batch of commits and a batch of opens, so
    /// neither starves the other.
    commits_turn: bool,
}

impl State {
    fn commits_admitted(&self) -> bool {
        self.opens_in_flight == 0 && (self.opens_waiting == 0 || self.commits_turn)
    }
    fn opens_admitted(&self) -> bool {
        self.commits_in_flight == 0 && (self.commits_waiting == 0 || !self.commits_turn)
    }
    fn remove(&mut self, xid: &str) {
        self.prepared.remove(xid);
        self.decided.remove(xid);
        self.owners.remove(xid);
        self.claimed.remove(xid);
    }
    fn session_alive(&self, cn: u64) -> bool {
        match self.sessions.get(&cn) {
            Some((open, closed)) => *open > 0 || closed.elapsed() < OWNER_GRACE,
            None => false,
        }
    }
}

struct Inner {
    dn: String,
    state: Mutex<State>,
    changed: Notify,
    gating: AtomicBool,
}

/// The agent of one DN, in this process. Cheap to clone (clones share the
/// state); all methods take `&self`. The CN embeds one per DN when it runs
/// alone; `dn-plugin serve` wraps one in the gRPC service for several CNs.
#[derive(Clone)]
pub struct Agent {
    inner: Arc<Inner>,
}

/// Quotes an XA id as a string literal (ids are ASCII, made by the CN).
fn xid_lit(xid: &str) -> String {
    format!("'{}'", xid.replace('\\', "\\\\").replace('\'', "''"))
}

/// Decrements a waiting counter if the wait is abandoned (the future
/// dropped: a client that went away), so the gate never stays closed for
/// a waiter that no longer exists.
struct Waiting<'a> {
    agent: &'a Agent,
    opens: bool,
    done: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.done {
            let opens = self.opens;
            self.agent.update(|st| {
                if opens {
                    st.opens_waiting -= 1;
                } else {
                    st.commits_waiting -= 1;
                }
            });
        }
    }
}

impl Agent {
    /// An agent whose `mrt` and `amx` start at `start_ts`, a fresh TSO value:
    /// after a restart nothing is known of earlier snapshots and commits,
    /// and every one of them is below a fresh timestamp.
    pub fn new(dn: impl Into<String>, start_ts: u64) -> Self {
        Agent {
            inner: Arc::new(Inner {
                dn: dn.into(),
                state: Mutex::new(State { mrt: start_ts, amx: start_ts, ..State::default() }),
                changed: Notify::new(),
                gating: AtomicBool::new(true),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `f` returns `Some` under the state lock (it may change
    /// the state when it does).
    async fn wait_for<T>(&self, mut f: impl FnMut(&mut State) -> Option<T>) -> T {
        loop {
            let notified = self.inner.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(v) = f(&mut self.lock()) {
                return v;
            }
            notified.await;
        }
    }

    fn update<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let r = f(&mut self.lock());
        self.inner.changed.notify_waiters();
        r
    }

    fn gating_on(&self) -> bool {
        self.inner.gating.load(Ordering::SeqCst)
    }

    /// Registers a prepare for CN `owner` (a shared agent's client; `None`
    /// in process): see [`AgentApi::register_prepare`].
    pub fn register_prepare_for(&self, xid: &str, owner: Option<u64>) -> u64 {
        self.update(|st| {
            let m = (st.mrt + 1).max(st.amx);
            st.prepared.insert(xid.to_string(), m);
            if let Some(o) = owner {
                st.owners.insert(xid.to_string(), o);
                // A CN whose session has not reached the agent yet owns
                // its branches for the grace period all the same.
                st.sessions.entry(o).or_insert((0, Instant::now()));
            }
            m
        })
    }

    /// Recovery of CN `claimer` (`None` in process) asks to settle `xid`:
    /// refused while the branch was registered by another CN that holds a
    /// session here or closed its last one less than [`OWNER_GRACE`] ago.
    /// Granted claims make [`AgentApi::decide`] refuse the branch.
    pub fn claim_for(&self, xid: &str, claimer: Option<u64>) -> bool {
        self.update(|st| {
            if let Some(&owner) = st.owners.get(xid) {
                if Some(owner) != claimer && st.session_alive(owner) {
                    return false;
                }
            }
            st.claimed.insert(xid.to_string());
            true
        })
    }

    /// Opens a session of CN `cn` (a client of the shared agent): the
    /// branches it registers are its own while a session is open and for
    /// [`OWNER_GRACE`] after the last one closes. The session ends when the
    /// returned guard drops.
    pub fn attach(&self, cn: u64) -> Session {
        self.update(|st| st.sessions.entry(cn).or_insert((0, Instant::now())).0 += 1);
        Session { agent: self.clone(), cn }
    }

    fn finish_commit(&self, ts: Option<u64>, forget: Option<&str>) {
        self.update(|st| {
            st.commits_in_flight -= 1;
            if st.commits_in_flight == 0 {
                st.commits_turn = false;
            }
            if let Some(ts) = ts {
                st.amx = st.amx.max(ts);
            }
            if let Some(x) = forget {
                st.remove(x);
            }
        });
    }

    fn release_open(&self) {
        self.update(|st| {
            st.opens_in_flight -= 1;
            if st.opens_in_flight == 0 {
                st.commits_turn = true;
            }
        });
    }
}

/// A CN's session at an agent ([`Agent::attach`]); ends when dropped.
pub struct Session {
    agent: Agent,
    cn: u64,
}

impl Drop for Session {
    fn drop(&mut self) {
        let cn = self.cn;
        self.agent.update(|st| {
            if let Some(s) = st.sessions.get_mut(&cn) {
                s.0 -= 1;
                s.1 = Instant::now();
            }
        });
    }
}

/// An OPEN admission of an in-process agent.
struct LocalOpen {
    agent: Agent,
    gated: bool,
}

impl Drop for LocalOpen {
    fn drop(&mut self) {
        if self.gated {
            self.agent.release_open();
        }
    }
}

#[async_trait]
impl Admission for LocalOpen {
    fn ts(&self) -> u64 {
        0
    }
    async fn finish(self: Box<Self>, _: Outcome) -> Result<(), AgentError> {
        Ok(())
    }
}

/// A commit admission of an in-process agent.
struct LocalCommit {
    agent: Agent,
    ts: u64,
    done: bool,
}

impl Drop for LocalCommit {
    fn drop(&mut self) {
        if !self.done {
            // Outcome unknown: raise amx as if applied.
            self.agent.finish_commit(Some(self.ts), None);
        }
    }
}

#[async_trait]
impl Admission for LocalCommit {
    fn ts(&self) -> u64 {
        self.ts
    }
    async fn finish(mut self: Box<Self>, outcome: Outcome) -> Result<(), AgentError> {
        self.done = true;
        match outcome {
            Outcome::Applied { forget } => self.agent.finish_commit(Some(self.ts), forget.as_deref()),
            Outcome::Failed | Outcome::Released => self.agent.finish_commit(None, None),
        }
        Ok(())
    }
}

#[async_trait]
impl AgentApi for Agent {
    fn dn(&self) -> &str {
        &self.inner.dn
    }

    async fn admit_open(&self, s: u64) -> Result<Box<dyn Admission>, AgentError> {
        let gating = self.gating_on();
        self.update(|st| st.mrt = st.mrt.max(s));
        if !gating {
            return Ok(Box::new(LocalOpen { agent: self.clone(), gated: false }));
        }
        // Wait for the branches that may commit at or below s.
        self.wait_for(|st| st.prepared.values().all(|m| *m > s).then_some(())).await;
        // Close the gate: no new commit starts, those under way finish.
        self.update(|st| st.opens_waiting += 1);
        let mut waiting = Waiting { agent: self, opens: true, done: false };
        let raised = self
            .wait_for(|st| {
                st.opens_admitted().then(|| {
                    st.opens_waiting -= 1;
                    if st.amx > s {
                        Some(st.amx)
                    } else {
                        st.opens_in_flight += 1;
                        None
                    }
                })
            })
            .await;
        waiting.done = true;
        if let Some(amx) = raised {
            self.inner.changed.notify_waiters();
            return Err(AgentError::Raise { snapshot: s, amx });
        }
        Ok(Box::new(LocalOpen { agent: self.clone(), gated: true }))
    }

    async fn register_prepare(&self, xid: &str) -> Result<u64, AgentError> {
        Ok(self.register_prepare_for(xid, None))
    }

    async fn forget(&self, xid: &str) -> Result<(), AgentError> {
        self.update(|st| st.remove(xid));
        Ok(())
    }

    async fn decide(&self, xid: &str, c: u64) -> Result<(), AgentError> {
        self.update(|st| {
            if !st.prepared.contains_key(xid) || st.claimed.contains(xid) {
                return Err(AgentError::NotDecidable { xid: xid.to_string() });
            }
            let seq = st.next_decided;
            st.next_decided += 1;
            st.decided.insert(xid.to_string(), (seq, c));
            Ok(())
        })
    }

    async fn read_ts(&self) -> Result<u64, AgentError> {
        let st = self.lock();
        Ok(st.decided.values().map(|d| d.1).fold(st.amx, u64::max))
    }

    async fn wait_decided(&self) -> Result<(), AgentError> {
        let target = {
            let st = self.lock();
            if st.decided.is_empty() {
                return Ok(());
            }
            st.next_decided
        };
        self.wait_for(|st| st.decided.values().all(|d| d.0 >= target).then_some(())).await;
        Ok(())
    }

    async fn admit_commit(&self, kind: CommitKind) -> Result<Box<dyn Admission>, AgentError> {
        let stamp = |st: &State| match kind {
            CommitKind::Prepared { commit_ts } => commit_ts,
            CommitKind::OnePhase { lower_bound } => (st.mrt + 1).max(st.amx).max(lower_bound),
        };
        let ts = if !self.gating_on() {
            let mut st = self.lock();
            st.commits_in_flight += 1;
            stamp(&st)
        } else {
            self.update(|st| st.commits_waiting += 1);
            let mut waiting = Waiting { agent: self, opens: false, done: false };
            let ts = self
                .wait_for(|st| {
                    st.commits_admitted().then(|| {
                        st.commits_waiting -= 1;
                        st.commits_in_flight += 1;
                        stamp(st)
                    })
                })
                .await;
            waiting.done = true;
            ts
        };
        Ok(Box::new(LocalCommit { agent: self.clone(), ts, done: false }))
    }

    async fn register_in_doubt(&self, xid: &str, min_commit_ts: Option<u64>) -> Result<(), AgentError> {
        self.update(|st| {
            st.prepared.entry(xid.to_string()).or_insert(min_commit_ts.unwrap_or(0));
            st.decided.entry(xid.to_string()).or_insert((0, 0));
        });
        Ok(())
    }

    async fn is_prepared(&self, xid: &str) -> Result<bool, AgentError> {
        Ok(self.lock().prepared.contains_key(xid))
    }

    async fn claim(&self, xid: &str) -> Result<bool, AgentError> {
        Ok(self.claim_for(xid, None))
    }

    async fn status(&self) -> Result<AgentStatus, AgentError> {
        let st = self.lock();
        let mut prepared: Vec<(String, u64)> = st.prepared.iter().map(|(k, v)| (k.clone(), *v)).collect();
        prepared.sort();
        let mut decided: Vec<(String, u64)> = st.decided.iter().map(|(k, v)| (k.clone(), v.1)).collect();
        decided.sort();
        Ok(AgentStatus {
            mrt: st.mrt,
            amx: st.amx,
            prepared,
            decided,
            commits_in_flight: st.commits_in_flight,
            opens_in_flight: st.opens_in_flight,
        })
    }

    async fn set_gating(&self, on: bool) -> Result<(), AgentError> {
        self.inner.gating.store(on, Ordering::SeqCst);
        Ok(())
    }

    async fn gating(&self) -> Result<bool, AgentError> {
        Ok(self.gating_on())
    }
}

/// Test-only: the longest pause, in microseconds, that [`open`] makes
/// between its admission and its read views (0: none). See
/// [`set_view_pause`].
static VIEW_PAUSE_MAX_US: AtomicU64 = AtomicU64::new(0);

/// Test-only: makes every [`open`] in this process pause for a random time
/// in `0..=max` between its admission and its read views, so that the views
/// of one snapshot on several DNs are made far apart in time — the window
/// the gate must cover. With gating on the pause only delays the commits
/// held at the gate; with gating off commits land inside it, which makes
/// the negative controls see their anomaly within seconds rather than by
/// luck of scheduling. `Duration::ZERO` turns it off.
pub fn set_view_pause(max: Duration) {
    VIEW_PAUSE_MAX_US.store(u64::try_from(max.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// OPEN(s) through `agent`: the admission ([`AgentApi::admit_open`]), then
/// a read view on every connection in `views` (all inside one closing of
/// the gate, so they show the same state), then the gate reopens. Errors:
/// [`AgentError::Raise`] when a commit above `s` is already visible (no
/// view was made; the caller retries at a snapshot `>= amx` or fails its
/// transaction with a retryable error); a DN error (views already made
/// stay open; the caller rolls them back); a remote agent unreachable.
pub async fn open(agent: &dyn AgentApi, s: u64, views: Vec<View<'_>>) -> Result<(), AgentError> {
    let admission = admit_views(agent, s).await?;
    view_pause().await;
    let r = make_views(views).await;
    // A failed release ends the admission all the same (the agent drops
    // it with its stream).
    let _ = admission.finish(Outcome::Released).await;
    r.map_err(AgentError::Db)
}

/// The admission of an OPEN, with the failpoint a simulated crash of the
/// caller stops at.
async fn admit_views(agent: &dyn AgentApi, s: u64) -> Result<Box<dyn Admission>, AgentError> {
    let admission = agent.admit_open(s).await?;
    if crate::failpoint::reached(crate::failpoint::OPEN_AFTER_ADMISSION).await {
        // A simulated crash of the caller: the admission is dropped unfinished.
        drop(admission);
        return Err(AgentError::Unavailable("the CN crashed while opening (failpoint)".into()));
    }
    Ok(admission)
}

/// The test-only pause between an admission and its read views (see
/// [`set_view_pause`]).
async fn view_pause() {
    let max_pause = VIEW_PAUSE_MAX_US.load(Ordering::Relaxed);
    if max_pause > 0 {
        let pause = rand::random_range(0..=max_pause);
        tokio::time::sleep(Duration::from_micros(pause)).await;
    }
}

/// The statement that makes a snapshot's read view ([`View::ReadOnly`]).
pub const READ_VIEW_START: &str = "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY";

/// OPEN(s) for one read view that is made by the first query on its
/// connection, in that query's round trip: [`open_deferred`] takes the
/// admission (the gate closed, RAISE answered, as [`open`]);
/// [`DeferredOpen::query_iter`] sends `START TRANSACTION WITH CONSISTENT
/// SNAPSHOT, READ ONLY; <query>` as one multi-statement and reopens the
/// gate as soon as the START's OK arrives (MariaDB sends it before it
/// runs the query), so the gate is closed no longer than by [`open`], and
/// the view costs no round trip of its own. Dropped unused, it reopens
/// the gate and no view is made.
pub struct DeferredOpen {
    admission: Box<dyn Admission>,
}

/// Takes the admission of OPEN(s) for one read view made later by
/// [`DeferredOpen::query_iter`], which the caller must call right away:
/// until then no commit lands on this DN. Errors as [`open`]'s admission:
/// [`AgentError::Raise`] (a commit above `s` already visible), a remote
/// agent unreachable.
pub async fn open_deferred(agent: &dyn AgentApi, s: u64) -> Result<DeferredOpen, AgentError> {
    Ok(DeferredOpen { admission: admit_views(agent, s).await? })
}

impl DeferredOpen {
    /// Makes the read view on `conn` and runs `sql` in it; the result is
    /// positioned at `sql`'s answer. Errors: the DN's (the START's: no view
    /// was made; the query's: the view is open, the caller rolls it back).
    pub async fn query_iter<'a>(
        self,
        conn: &'a mut Conn,
        sql: &str,
    ) -> Result<mysql_async::QueryResult<'a, 'static, mysql_async::TextProtocol>, mysql_async::Error> {
        view_pause().await;
        let r = conn.query_iter(format!("{READ_VIEW_START}; {sql}")).await;
        // A failed release ends the admission all the same.
        let _ = self.admission.finish(Outcome::Released).await;
        let mut r = r?;
        // The START's OK, which has no rows: moves on to the query's answer.
        r.next().await?;
        if r.columns().is_none() {
            // No result set pending: the query failed, and its error waits
            // for the next read (mysql_async keeps a later result's error).
            r.next().await?;
        }
        Ok(r)
    }
}

/// PREPARE: registers the branch with `min_commit_ts = max(mrt + 1, amx)`,
/// writes `record` with it into `cn_agent.prepared` inside the branch and
/// runs `XA END; XA PREPARE` (one round trip). Returns `min_commit_ts`; the
/// coordinator must commit at a timestamp at least that. On a DN error the
/// branch is forgotten (the caller rolls it back).
pub async fn prepare(
    agent: &dyn AgentApi,
    conn: &mut Conn,
    xid: &str,
    record: &PrepareRecord,
) -> Result<u64, AgentError> {
    let m = agent.register_prepare(xid).await?;
    let x = xid_lit(xid);
    let participants: Vec<String> = record.participants.iter().map(u32::to_string).collect();
    let sql = format!(
        "INSERT INTO {AGENT_DB}.prepared (xid, min_commit_ts, lower_bound, async_commit, participants) \
         VALUES ({x}, {m}, {}, {}, '{}'); XA END {x}; XA PREPARE {x}",
        record.lower_bound,
        u8::from(record.async_commit),
        participants.join(",")
    );
    if let Err(e) = conn.query_drop(sql).await {
        let _ = agent.forget(xid).await;
        return Err(e.into());
    }
    Ok(m)
}

/// COMMIT(c) of a prepared branch: `XA COMMIT xid` inside a commit
/// admission, then `amx = max(amx, c)` and the branch leaves `P`. When the
/// DN refuses, the branch stays registered (it is still prepared, or its
/// fate is unknown): snapshots that might see it keep waiting until
/// recovery settles it; when the connection broke, `amx` also rises to `c`.
/// Once the DN committed, the call succeeds even if a remote agent does not
/// acknowledge the end of the admission: it then counts the commit as
/// applied at `c` anyway, and the branch it still lists is forgotten by a
/// recovery pass (it is no longer in `XA RECOVER`).
pub async fn commit_prepared(agent: &dyn AgentApi, conn: &mut Conn, xid: &str, c: u64) -> Result<(), AgentError> {
    let admission = agent.admit_commit(CommitKind::Prepared { commit_ts: c }).await?;
    match conn.query_drop(format!("XA COMMIT {}", xid_lit(xid))).await {
        Ok(()) => {
            if let Err(e) = admission.finish(Outcome::Applied { forget: Some(xid.to_string()) }).await {
                tracing::warn!(dn = agent.dn(), xid, error = %e, "the agent did not acknowledge a commit");
            }
            Ok(())
        }
        Err(e) => {
            finish_failed(admission, &e).await;
            Err(e.into())
        }
    }
}

/// Ends a commit admission whose SQL failed: `Failed` when the DN refused
/// (nothing applied), dropped (outcome unknown) when the connection broke.
async fn finish_failed(admission: Box<dyn Admission>, e: &mysql_async::Error) {
    if matches!(e, mysql_async::Error::Server(_)) {
        let _ = admission.finish(Outcome::Failed).await;
    }
}

/// Rolls back a prepared branch (`XA ROLLBACK xid`) and forgets it. A
/// branch the DN does not know (`XAER_NOTA`, 1397) counts as rolled back.
pub async fn rollback_prepared(agent: &dyn AgentApi, conn: &mut Conn, xid: &str) -> Result<(), AgentError> {
    let r = conn.query_drop(format!("XA ROLLBACK {}", xid_lit(xid))).await;
    match r {
        Ok(()) => {}
        Err(mysql_async::Error::Server(ref e)) if e.code == 1397 => {}
        Err(e) => return Err(e.into()),
    }
    agent.forget(xid).await
}

/// 1PC: stamps `t = max(mrt + 1, amx, l)` and commits the only branch that
/// wrote, both inside one admission. `xid` is the branch's XA id (`XA END;
/// XA COMMIT … ONE PHASE`), or `None` for a plain local transaction
/// (`COMMIT`). `l` is a fresh TSO value taken when the commit started (0 to
/// drop the linearizability bound). Returns `t`. When the DN refuses, the
/// transaction is rolled back by the DN or must be by the caller and `amx`
/// is not raised. Once the DN committed, the call succeeds even if a remote
/// agent does not acknowledge the end of the admission (it counts it as
/// applied at `t` anyway).
pub async fn commit_one_phase(
    agent: &dyn AgentApi,
    conn: &mut Conn,
    xid: Option<&str>,
    l: u64,
) -> Result<u64, AgentError> {
    let admission = agent.admit_commit(CommitKind::OnePhase { lower_bound: l }).await?;
    let t = admission.ts();
    let sql = match xid {
        Some(x) => {
            let x = xid_lit(x);
            format!("XA END {x}; XA COMMIT {x} ONE PHASE")
        }
        None => "COMMIT".to_string(),
    };
    match conn.query_drop(sql).await {
        Ok(()) => {
            if let Err(e) = admission.finish(Outcome::Applied { forget: None }).await {
                tracing::warn!(dn = agent.dn(), error = %e, "the agent did not acknowledge a commit");
            }
            Ok(t)
        }
        Err(e) => {
            finish_failed(admission, &e).await;
            Err(e.into())
        }
    }
}

/// Whether `xid` is a CN transaction's XA id, `cn-<conn>-<start_ts>`: the
/// branches a CN's recovery settles and a rebuilt agent registers.
pub fn is_cn_xid(xid: &str) -> bool {
    xid.strip_prefix("cn-").and_then(|r| r.rsplit_once('-')).is_some_and(|(_, ts)| ts.parse::<u64>().is_ok())
}

/// Rebuilds `P` after a restart from the DN behind `conn`: every branch in
/// `XA RECOVER` whose XA id `owned` accepts is registered in doubt with the
/// `min_commit_ts` of its log row. Returns the XA ids registered.
pub async fn rebuild(
    agent: &dyn AgentApi,
    conn: &mut Conn,
    owned: impl Fn(&str) -> bool,
) -> Result<Vec<String>, AgentError> {
    let xids: Vec<String> = xa_recover(conn).await?.into_iter().filter(|x| owned(x)).collect();
    let rows = read_log(conn, Some(&xids), true).await?;
    for x in &xids {
        let m = rows.iter().find(|r| &r.xid == x).map(|r| r.min_commit_ts);
        agent.register_in_doubt(x, m).await?;
    }
    Ok(xids)
}

async fn make_views(views: Vec<View<'_>>) -> Result<(), mysql_async::Error> {
    let runs = views.into_iter().map(|v| async move {
        match v {
            View::Xa { conn, xid, setup } => {
                let setup = if setup.is_empty() { String::new() } else { format!("{setup}; ") };
                // The consistent read fixes the InnoDB read view inside the
                // branch (XA START has no WITH CONSISTENT SNAPSHOT).
                conn.query_drop(format!("{setup}XA START {}; SELECT id FROM {AGENT_DB}.anchor", xid_lit(xid))).await
            }
            View::ReadOnly(conn) => conn.query_drop(READ_VIEW_START).await,
            View::InBranch(conn) => conn.query_drop(format!("SELECT id FROM {AGENT_DB}.anchor")).await,
        }
    });
    for r in futures::future::join_all(runs).await {
        r?;
    }
    Ok(())
}

/// The statements that create the agent's tables on a DN (idempotent):
/// `anchor`, one InnoDB row a consistent read can fix a read view with;
/// `prepared`, the agent's log (see [`PrepareRecord`]).
pub const SCHEMA: &[&str] = &[
    "CREATE DATABASE IF NOT EXISTS cn_agent",
    "CREATE TABLE IF NOT EXISTS cn_agent.anchor (id INT PRIMARY KEY) ENGINE=InnoDB",
    "INSERT IGNORE INTO cn_agent.anchor VALUES (1)",
    "CREATE TABLE IF NOT EXISTS cn_agent.prepared (xid VARCHAR(128) PRIMARY KEY, \
     min_commit_ts BIGINT UNSIGNED NOT NULL, lower_bound BIGINT UNSIGNED NOT NULL, \
     async_commit TINYINT NOT NULL, participants VARCHAR(1024) NOT NULL, \
     created TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)) ENGINE=InnoDB",
];

/// Creates the agent's tables on the DN behind `conn`.
pub async fn bootstrap(conn: &mut Conn) -> Result<(), mysql_async::Error> {
    for s in SCHEMA {
        conn.query_drop(*s).await?;
    }
    Ok(())
}

/// The agent's log rows for `xids` (all rows when `None`). With
/// `uncommitted` the read runs at READ UNCOMMITTED and also returns the rows
/// of branches still prepared (or, briefly, being prepared); without it
/// only the rows of committed branches.
pub async fn read_log(
    conn: &mut Conn,
    xids: Option<&[String]>,
    uncommitted: bool,
) -> Result<Vec<PreparedRow>, mysql_async::Error> {
    let filter = match xids {
        Some([]) => return Ok(Vec::new()),
        Some(x) => format!(" WHERE xid IN ({})", x.iter().map(|x| xid_lit(x)).collect::<Vec<_>>().join(",")),
        None => String::new(),
    };
    let level = if uncommitted { "READ UNCOMMITTED" } else { "READ COMMITTED" };
    conn.query_drop(format!("SET TRANSACTION ISOLATION LEVEL {level}; START TRANSACTION READ ONLY")).await?;
    /// xid, min_commit_ts, lower_bound, async_commit, participants.
    type LogRow = (String, u64, u64, u8, String);
    let rows: Result<Vec<LogRow>, _> = conn
        .query(format!(
            "SELECT xid, min_commit_ts, lower_bound, async_commit, participants FROM {AGENT_DB}.prepared{filter}"
        ))
        .await;
    conn.query_drop("COMMIT").await?;
    Ok(rows?
        .into_iter()
        .map(|(xid, m, l, a, p)| PreparedRow {
            xid,
            min_commit_ts: m,
            record: PrepareRecord {
                participants: p.split(',').filter_map(|d| d.parse().ok()).collect(),
                lower_bound: l,
                async_commit: a != 0,
            },
        })
        .collect())
}

/// The XA ids of committed log rows older than `secs` seconds: the
/// candidates for [`delete_log`] once no branch of theirs is prepared on
/// any DN.
pub async fn old_log_rows(conn: &mut Conn, secs: u64) -> Result<Vec<String>, mysql_async::Error> {
    conn.query(format!(
        "SELECT xid FROM {AGENT_DB}.prepared WHERE created < NOW(3) - INTERVAL {secs} SECOND LIMIT 10000"
    ))
    .await
}

/// Deletes the log rows of `xids` (transactions finished on every DN).
pub async fn delete_log(conn: &mut Conn, xids: &[String]) -> Result<(), mysql_async::Error> {
    if xids.is_empty() {
        return Ok(());
    }
    let list = xids.iter().map(|x| xid_lit(x)).collect::<Vec<_>>().join(",");
    conn.query_drop(format!("DELETE FROM {AGENT_DB}.prepared WHERE xid IN ({list})")).await
}

/// The XA ids of the branches prepared on the DN behind `conn`
/// (`XA RECOVER`), as text.
pub async fn xa_recover(conn: &mut Conn) -> Result<Vec<String>, mysql_async::Error> {
    let rows: Vec<mysql_async::Row> = conn.query("XA RECOVER").await?;
    let mut out = Vec::new();
    for r in rows {
        // formatID, gtrid_length, bqual_length, data
        let gl: Option<i64> = r.get(1);
        let data: Option<Vec<u8>> = r.get(3);
        if let (Some(gl), Some(data)) = (gl, data) {
            let gtrid = &data[..(gl as usize).min(data.len())];
            out.push(String::from_utf8_lossy(gtrid).into_owned());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::shared_tests::*;
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn open_below_amx_raises_and_above_moves_mrt() {
        open_below_amx_raises_and_above_moves_mrt_on(&Agent::new("dn0", 100)).await;
    }

    #[tokio::test]
    async fn open_waits_for_a_branch_that_may_commit_below_it() {
        open_waits_for_a_branch_that_may_commit_below_it_on(Arc::new(Agent::new("dn0", 100))).await;
    }

    #[tokio::test]
    async fn decided_branches_hold_back_direct_reads_and_raise_read_ts() {
        decided_branches_hold_back_direct_reads_and_raise_read_ts_on(Arc::new(Agent::new("dn0", 100))).await;
    }

    #[tokio::test]
    async fn claims_respect_live_owners_and_stop_decide() {
        let a = Agent::new("dn0", 100);
        a.register_prepare_for("cn-1-5", Some(7));
        let session = a.attach(7);
        assert!(!a.claim_for("cn-1-5", Some(8)), "another CN's live branch cannot be claimed");
        assert!(a.claim_for("cn-1-5", Some(7)), "a CN claims its own branch");
        assert!(matches!(a.decide("cn-1-5", 200).await, Err(AgentError::NotDecidable { .. })));
        drop(session);
        a.register_prepare_for("cn-1-6", Some(7));
        assert!(!a.claim_for("cn-1-6", Some(8)), "the owner's grace has not passed");
        assert!(matches!(a.decide("cn-1-9", 200).await, Err(AgentError::NotDecidable { .. })), "not prepared");
    }

    #[tokio::test]
    async fn an_abandoned_wait_does_not_keep_the_gate_closed() {
        let a = Agent::new("dn0", 100);
        let commit = a.admit_commit(CommitKind::OnePhase { lower_bound: 0 }).await.unwrap();
        // An OPEN waiting behind the commit goes away.
        assert!(tokio::time::timeout(Duration::from_millis(50), a.admit_open(300)).await.is_err());
        drop(commit);
        // A new commit and a new OPEN still get through.
        let c = a.admit_commit(CommitKind::OnePhase { lower_bound: 0 }).await.unwrap();
        c.finish(Outcome::Applied { forget: None }).await.unwrap();
        let st = a.status().await.unwrap();
        let o = tokio::time::timeout(Duration::from_secs(5), a.admit_open(st.amx)).await.unwrap().unwrap();
        o.finish(Outcome::Released).await.unwrap();
    }
}

/// The agent's unit tests, run against the in-process agent here and
/// against the gRPC service in `tests/remote.rs`.
#[doc(hidden)]
pub mod shared_tests {
    use super::*;
    use std::time::Duration;

    /// Expects an agent whose amx is 100 and whose gating is on; leaves
    /// gating off.
    pub async fn open_below_amx_raises_and_above_moves_mrt_on(a: &dyn AgentApi) {
        match open(a, 50, vec![]).await {
            Err(AgentError::Raise { snapshot: 50, amx: 100 }) => {}
            other => panic!("expected RAISE, got {other:?}"),
        }
        open(a, 150, vec![]).await.unwrap();
        let st = a.status().await.unwrap();
        assert_eq!((st.mrt, st.amx, st.opens_in_flight), (150, 100, 0));
        // With gating off nothing raises (the negative-control switch).
        a.set_gating(false).await.unwrap();
        open(a, 10, vec![]).await.unwrap();
    }

    /// Expects an agent whose amx is 100.
    pub async fn open_waits_for_a_branch_that_may_commit_below_it_on(a: Arc<dyn AgentApi>) {
        a.register_in_doubt("cn-1-5", None).await.unwrap();
        let a2 = a.clone();
        let open = tokio::spawn(async move { open(&*a2, 200, vec![]).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!open.is_finished(), "OPEN must wait for a prepared branch with min_commit_ts <= s");
        a.forget("cn-1-5").await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), open).await.unwrap().unwrap().unwrap();
        assert!(a.status().await.unwrap().prepared.is_empty());
    }

    /// Expects an agent whose amx is 100.
    pub async fn decided_branches_hold_back_direct_reads_and_raise_read_ts_on(a: Arc<dyn AgentApi>) {
        a.wait_decided().await.unwrap(); // nothing decided: returns at once
        a.register_prepare("cn-1-7").await.unwrap();
        a.register_prepare("cn-2-9").await.unwrap();
        a.decide("cn-1-7", 150).await.unwrap();
        let amx = a.status().await.unwrap().amx;
        assert_eq!((amx, a.read_ts().await.unwrap()), (100, 150), "a single-DN read must see the acknowledged commit");
        let a2 = a.clone();
        let read = tokio::spawn(async move { a2.wait_decided().await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!read.is_finished(), "a direct read waits for a decided branch");
        // A branch decided after the read started does not hold it back.
        a.decide("cn-2-9", 160).await.unwrap();
        a.forget("cn-1-7").await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), read).await.unwrap().unwrap().unwrap();
        assert_eq!(a.read_ts().await.unwrap(), 160);
    }
}
