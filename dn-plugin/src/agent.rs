//! The DN agent's timestamp rules (ARCHITECTURE.md, "Transactions").
//!
//! One [`Agent`] per DN. Every snapshot that reads the DN and every commit
//! that writes it goes through the agent, which keeps:
//! - `P`: the prepared (or preparing) XA branches with their
//!   `min_commit_ts`;
//! - `mrt`: the highest snapshot timestamp opened here;
//! - `amx`: the highest commit timestamp applied here;
//! - the gate: commits and the making of InnoDB read views exclude each
//!   other, so a read view never races a commit whose timestamp it has not
//!   been checked against.
//!
//! The rules, for a snapshot `s` and a commit `c`:
//! - [`Agent::open`] sets `mrt = max(mrt, s)`, waits for every branch in `P`
//!   with `min_commit_ts <= s`, closes the gate (waiting for the commits
//!   under way), answers [`AgentError::Raise`] if `amx > s` (a commit above
//!   the snapshot is already visible), else makes the read views and opens
//!   the gate.
//! - [`Agent::prepare`] registers the branch with `m = max(mrt + 1, amx)`
//!   before `XA PREPARE`; the coordinator commits at `c >= max(m_i)`.
//! - [`Agent::commit_prepared`] runs `XA COMMIT` inside the gate and then
//!   sets `amx = max(amx, c)`.
//! - [`Agent::commit_one_phase`] stamps `t = max(mrt + 1, amx, L)` and
//!   commits, both inside one admission, so no snapshot opened meanwhile can
//!   fall between the stamp and the commit.
//!
//! Why this is enough: a snapshot `s` sees exactly the commits with
//! timestamp `<= s`. A branch prepared before the open with `m <= s` is
//! waited for; one prepared after it gets `m > s`, so `c > s`, and its
//! commit cannot land while the view is made (the gate) and, if it landed
//! before, `amx > s` raises. The source is PolarDB-X's and TiDB's use of
//! `min_commit_ts`/`max_ts` (Percolator-style SI over a TSO), adapted to
//! unmodified InnoDB as in `../shared/prototypes/si_protocol.py`.
//!
//! The agent is a library: a single CN embeds one per DN and passes it the
//! DN connections to act on.

use mysql_async::prelude::*;
use mysql_async::Conn;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use tokio::sync::Notify;

/// The database on each DN that holds the agent's own tables.
pub const AGENT_DB: &str = "cn_agent";

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
}

/// How a read view is made on a connection by [`Agent::open`].
pub enum View<'a> {
    /// `XA START xid` and a consistent read: the branch of a transaction
    /// that may write.
    Xa { conn: &'a mut Conn, xid: &'a str },
    /// `START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY`: a snapshot
    /// read.
    ReadOnly(&'a mut Conn),
}

/// A snapshot of the agent's state, for `SHOW TRANS` and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStatus {
    pub mrt: u64,
    pub amx: u64,
    /// Prepared branches: (xid, min_commit_ts).
    pub prepared: Vec<(String, u64)>,
    pub commits_in_flight: usize,
    pub opens_in_flight: usize,
}

#[derive(Default)]
struct State {
    prepared: HashMap<String, u64>,
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
}

/// The agent of one DN. Cheap to share (`Arc<Agent>`); all methods take
/// `&self`.
pub struct Agent {
    /// The DN's name, for messages.
    pub dn: String,
    state: Mutex<State>,
    changed: Notify,
    gating: AtomicBool,
}

/// Quotes an XA id as a string literal (ids are ASCII, made by the CN).
fn xid_lit(xid: &str) -> String {
    format!("'{}'", xid.replace('\\', "\\\\").replace('\'', "''"))
}

impl Agent {
    /// An agent whose `mrt` and `amx` start at `start_ts`, a fresh TSO value:
    /// after a restart nothing is known of earlier snapshots and commits,
    /// and every one of them is below a fresh timestamp.
    pub fn new(dn: impl Into<String>, start_ts: u64) -> Self {
        Agent {
            dn: dn.into(),
            state: Mutex::new(State { mrt: start_ts, amx: start_ts, ..State::default() }),
            changed: Notify::new(),
            gating: AtomicBool::new(true),
        }
    }

    /// Test-only switch: with gating off, OPEN neither waits for prepared
    /// branches nor closes the gate nor raises. Snapshot isolation across
    /// DNs is then broken, which is what the negative-control tests must
    /// detect.
    pub fn set_gating(&self, on: bool) {
        self.gating.store(on, Ordering::SeqCst);
    }

    pub fn gating(&self) -> bool {
        self.gating.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `f` returns `Some` under the state lock (it may change
    /// the state when it does).
    async fn wait_for<T>(&self, mut f: impl FnMut(&mut State) -> Option<T>) -> T {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(v) = f(&mut self.lock()) {
                return v;
            }
            notified.await;
        }
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.lock());
        self.changed.notify_waiters();
    }

    pub fn status(&self) -> AgentStatus {
        let st = self.lock();
        let mut prepared: Vec<(String, u64)> = st.prepared.iter().map(|(k, v)| (k.clone(), *v)).collect();
        prepared.sort();
        AgentStatus {
            mrt: st.mrt,
            amx: st.amx,
            prepared,
            commits_in_flight: st.commits_in_flight,
            opens_in_flight: st.opens_in_flight,
        }
    }

    /// The highest commit timestamp applied here: a snapshot at `amx` sees
    /// every commit this DN has acknowledged.
    pub fn amx(&self) -> u64 {
        self.lock().amx
    }

    /// OPEN(s): makes a read view at snapshot `s` on every connection in
    /// `views` (all inside one closing of the gate, so they show the same
    /// state). Errors: [`AgentError::Raise`] when a commit above `s` is
    /// already visible (no view was made; the caller retries at a snapshot
    /// `>= amx` or fails its transaction with a retryable error); a DN
    /// error (views already made stay open; the caller rolls them back).
    pub async fn open(&self, s: u64, views: Vec<View<'_>>) -> Result<(), AgentError> {
        let gating = self.gating();
        self.update(|st| st.mrt = st.mrt.max(s));
        if gating {
            // Wait for the branches that may commit at or below s.
            self.wait_for(|st| st.prepared.values().all(|m| *m > s).then_some(())).await;
            // Close the gate: no new commit starts, those under way finish.
            self.update(|st| st.opens_waiting += 1);
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
            if let Some(amx) = raised {
                self.changed.notify_waiters();
                return Err(AgentError::Raise { snapshot: s, amx });
            }
        }
        let r = make_views(views).await;
        if gating {
            self.update(|st| {
                st.opens_in_flight -= 1;
                if st.opens_in_flight == 0 {
                    st.commits_turn = true;
                }
            });
        }
        r.map_err(AgentError::Db)
    }

    /// PREPARE: registers the branch with `min_commit_ts = max(mrt + 1,
    /// amx)` and runs `XA END; XA PREPARE`. Returns `min_commit_ts`; the
    /// coordinator must commit at a timestamp at least that. On error the
    /// branch is forgotten (the caller rolls it back).
    pub async fn prepare(&self, conn: &mut Conn, xid: &str) -> Result<u64, AgentError> {
        let mut m = 0;
        self.update(|st| {
            m = (st.mrt + 1).max(st.amx);
            st.prepared.insert(xid.to_string(), m);
        });
        let x = xid_lit(xid);
        if let Err(e) = conn.query_drop(format!("XA END {x}; XA PREPARE {x}")).await {
            self.forget(xid);
            return Err(e.into());
        }
        Ok(m)
    }

    /// Registers a branch found prepared in `XA RECOVER` whose
    /// `min_commit_ts` is unknown (after a restart): every snapshot waits
    /// for it until it is committed or rolled back.
    pub fn register_in_doubt(&self, xid: &str) {
        self.update(|st| {
            st.prepared.entry(xid.to_string()).or_insert(0);
        });
    }

    /// Whether `xid` is registered as prepared here.
    pub fn is_prepared(&self, xid: &str) -> bool {
        self.lock().prepared.contains_key(xid)
    }

    async fn admit_commit(&self, gating: bool, stamp: impl Fn(&State) -> u64) -> u64 {
        if !gating {
            let mut st = self.lock();
            st.commits_in_flight += 1;
            return stamp(&st);
        }
        self.update(|st| st.commits_waiting += 1);
        self.wait_for(|st| {
            st.commits_admitted().then(|| {
                st.commits_waiting -= 1;
                st.commits_in_flight += 1;
                stamp(st)
            })
        })
        .await
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
                st.prepared.remove(x);
            }
        });
    }

    /// COMMIT(c) of a prepared branch: `XA COMMIT xid` inside the gate,
    /// then `amx = max(amx, c)`. On a DN error the branch stays registered
    /// (it is still prepared on the DN, or its fate is unknown): snapshots
    /// that might see it keep waiting until recovery settles it.
    pub async fn commit_prepared(&self, conn: &mut Conn, xid: &str, c: u64) -> Result<(), AgentError> {
        let gating = self.gating();
        self.admit_commit(gating, |_| c).await;
        match conn.query_drop(format!("XA COMMIT {}", xid_lit(xid))).await {
            Ok(()) => {
                self.finish_commit(Some(c), Some(xid));
                Ok(())
            }
            Err(e) => {
                self.finish_commit(None, None);
                Err(e.into())
            }
        }
    }

    /// Rolls back a prepared branch (`XA ROLLBACK xid`) and forgets it.
    /// A branch the DN does not know (`XAER_NOTA`, 1397) counts as rolled
    /// back.
    pub async fn rollback_prepared(&self, conn: &mut Conn, xid: &str) -> Result<(), AgentError> {
        let r = conn.query_drop(format!("XA ROLLBACK {}", xid_lit(xid))).await;
        match r {
            Ok(()) => {}
            Err(mysql_async::Error::Server(ref e)) if e.code == 1397 => {}
            Err(e) => return Err(e.into()),
        }
        self.forget(xid);
        Ok(())
    }

    /// 1PC: stamps `t = max(mrt + 1, amx, l)` and commits the only branch
    /// that wrote, both inside one admission. `xid` is the branch's XA id
    /// (`XA END; XA COMMIT … ONE PHASE`), or `None` for a plain local
    /// transaction (`COMMIT`). `l` is a fresh TSO value taken when the
    /// commit started (0 to drop the linearizability bound). Returns `t`.
    /// On a DN error the transaction is rolled back by the DN or must be by
    /// the caller; `amx` is not raised.
    pub async fn commit_one_phase(&self, conn: &mut Conn, xid: Option<&str>, l: u64) -> Result<u64, AgentError> {
        let gating = self.gating();
        let t = self.admit_commit(gating, |st| (st.mrt + 1).max(st.amx).max(l)).await;
        let sql = match xid {
            Some(x) => {
                let x = xid_lit(x);
                format!("XA END {x}; XA COMMIT {x} ONE PHASE")
            }
            None => "COMMIT".to_string(),
        };
        match conn.query_drop(sql).await {
            Ok(()) => {
                self.finish_commit(Some(t), None);
                Ok(t)
            }
            Err(e) => {
                self.finish_commit(None, None);
                Err(e.into())
            }
        }
    }

    /// Forgets a branch (rolled back, or settled elsewhere) and wakes the
    /// snapshots waiting for it.
    pub fn forget(&self, xid: &str) {
        self.update(|st| {
            st.prepared.remove(xid);
        });
    }
}

async fn make_views(views: Vec<View<'_>>) -> Result<(), mysql_async::Error> {
    let runs = views.into_iter().map(|v| async move {
        match v {
            View::Xa { conn, xid } => {
                // The consistent read fixes the InnoDB read view inside the
                // branch (XA START has no WITH CONSISTENT SNAPSHOT).
                conn.query_drop(format!("XA START {}; SELECT id FROM {AGENT_DB}.anchor", xid_lit(xid))).await
            }
            View::ReadOnly(conn) => conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY").await,
        }
    });
    for r in futures::future::join_all(runs).await {
        r?;
    }
    Ok(())
}

/// The statements that create the agent's tables on a DN (idempotent):
/// `anchor`, one InnoDB row a consistent read can fix a read view with.
pub const SCHEMA: &[&str] = &[
    "CREATE DATABASE IF NOT EXISTS cn_agent",
    "CREATE TABLE IF NOT EXISTS cn_agent.anchor (id INT PRIMARY KEY) ENGINE=InnoDB",
    "INSERT IGNORE INTO cn_agent.anchor VALUES (1)",
];

/// Creates the agent's tables on the DN behind `conn`.
pub async fn bootstrap(conn: &mut Conn) -> Result<(), mysql_async::Error> {
    for s in SCHEMA {
        conn.query_drop(*s).await?;
    }
    Ok(())
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
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn open_below_amx_raises_and_above_moves_mrt() {
        let a = Agent::new("dn0", 100);
        match a.open(50, vec![]).await {
            Err(AgentError::Raise { snapshot: 50, amx: 100 }) => {}
            other => panic!("expected RAISE, got {other:?}"),
        }
        a.open(150, vec![]).await.unwrap();
        let st = a.status();
        assert_eq!((st.mrt, st.amx, st.opens_in_flight), (150, 100, 0));
        // With gating off nothing raises (the negative-control switch).
        a.set_gating(false);
        a.open(10, vec![]).await.unwrap();
    }

    #[tokio::test]
    async fn open_waits_for_a_branch_that_may_commit_below_it() {
        let a = Arc::new(Agent::new("dn0", 100));
        a.register_in_doubt("cn-1-5");
        let a2 = a.clone();
        let open = tokio::spawn(async move { a2.open(200, vec![]).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!open.is_finished(), "OPEN must wait for a prepared branch with min_commit_ts <= s");
        a.forget("cn-1-5");
        tokio::time::timeout(Duration::from_secs(5), open).await.unwrap().unwrap().unwrap();
        assert!(a.status().prepared.is_empty());
    }
}
