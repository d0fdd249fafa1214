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
//! - Async commit: each prepare writes the participants, `L` and `m` into
//!   the agent's log (`cn_agent.prepared`, a row inside the branch, durable
//!   with `XA PREPARE`); the transaction is decided once every branch is
//!   prepared, at `c = max(L, max m_i)`, and answered before its branches
//!   commit. [`Agent::decide`] marks the branches so that reads answered
//!   after it see them: [`Agent::read_ts`] (single-DN snapshots) covers
//!   their `c`, and [`Agent::wait_decided`] holds back reads that use no
//!   read view until they have committed.
//! - [`Agent::rebuild`] restores `P` after a restart from `XA RECOVER` and
//!   the log.
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

#[derive(Default)]
struct State {
    prepared: HashMap<String, u64>,
    /// Branches acknowledged to the client (async commit) or found in doubt
    /// after a restart, not yet committed here: xid -> (sequence number,
    /// commit_ts or 0). Reads that bypass snapshots wait for them.
    decided: HashMap<String, (u64, u64)>,
    next_decided: u64,
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
        let mut decided: Vec<(String, u64)> = st.decided.iter().map(|(k, v)| (k.clone(), v.1)).collect();
        decided.sort();
        AgentStatus {
            mrt: st.mrt,
            amx: st.amx,
            prepared,
            decided,
            commits_in_flight: st.commits_in_flight,
            opens_in_flight: st.opens_in_flight,
        }
    }

    /// The highest commit timestamp applied here: a snapshot at `amx` sees
    /// every commit this DN has acknowledged.
    pub fn amx(&self) -> u64 {
        self.lock().amx
    }

    /// The snapshot a read of this DN alone may take without a TSO call:
    /// `max(amx, commit_ts of every decided branch)`, so it sees every
    /// commit acknowledged to a client (an async commit is acknowledged
    /// before its branches commit; OPEN at this timestamp waits for them).
    pub fn read_ts(&self) -> u64 {
        let st = self.lock();
        st.decided.values().map(|d| d.1).fold(st.amx, u64::max)
    }

    /// Waits until every branch decided before the call has committed here
    /// (or been settled by recovery): a read that goes to the DN without a
    /// read view then sees every commit acknowledged before it started.
    /// Returns at once when nothing is decided, the usual case.
    pub async fn wait_decided(&self) {
        let target = {
            let st = self.lock();
            if st.decided.is_empty() {
                return;
            }
            st.next_decided
        };
        self.wait_for(|st| st.decided.values().all(|d| d.0 >= target).then_some(())).await;
    }

    /// Marks a prepared branch as decided at `c` (async commit, before the
    /// client is answered): see [`Agent::read_ts`] and
    /// [`Agent::wait_decided`].
    pub fn decide(&self, xid: &str, c: u64) {
        self.update(|st| {
            let seq = st.next_decided;
            st.next_decided += 1;
            st.decided.insert(xid.to_string(), (seq, c));
        });
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
    /// amx)`, writes `record` with it into `cn_agent.prepared` inside the
    /// branch and runs `XA END; XA PREPARE` (one round trip). Returns
    /// `min_commit_ts`; the coordinator must commit at a timestamp at least
    /// that. On error the branch is forgotten (the caller rolls it back).
    pub async fn prepare(&self, conn: &mut Conn, xid: &str, record: &PrepareRecord) -> Result<u64, AgentError> {
        let mut m = 0;
        self.update(|st| {
            m = (st.mrt + 1).max(st.amx);
            st.prepared.insert(xid.to_string(), m);
        });
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
            self.forget(xid);
            return Err(e.into());
        }
        Ok(m)
    }

    /// Registers a branch found prepared in `XA RECOVER` after a restart,
    /// with its `min_commit_ts` from the agent's log (`None`: no log row,
    /// every snapshot waits for it). It counts as decided (reads without a
    /// view wait for it too) until it is committed or rolled back.
    pub fn register_in_doubt(&self, xid: &str, min_commit_ts: Option<u64>) {
        self.update(|st| {
            st.prepared.entry(xid.to_string()).or_insert(min_commit_ts.unwrap_or(0));
            st.decided.entry(xid.to_string()).or_insert((0, 0));
        });
    }

    /// Rebuilds `P` after a restart from the DN behind `conn`: every branch
    /// in `XA RECOVER` whose XA id `owned` accepts is registered in doubt
    /// with the `min_commit_ts` of its log row. Returns the XA ids
    /// registered.
    pub async fn rebuild(&self, conn: &mut Conn, owned: impl Fn(&str) -> bool) -> Result<Vec<String>, AgentError> {
        let xids: Vec<String> = xa_recover(conn).await?.into_iter().filter(|x| owned(x)).collect();
        let rows = read_log(conn, Some(&xids), true).await?;
        for x in &xids {
            let m = rows.iter().find(|r| &r.xid == x).map(|r| r.min_commit_ts);
            self.register_in_doubt(x, m);
        }
        Ok(xids)
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
                st.decided.remove(x);
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
            st.decided.remove(xid);
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
        a.register_in_doubt("cn-1-5", None);
        let a2 = a.clone();
        let open = tokio::spawn(async move { a2.open(200, vec![]).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!open.is_finished(), "OPEN must wait for a prepared branch with min_commit_ts <= s");
        a.forget("cn-1-5");
        tokio::time::timeout(Duration::from_secs(5), open).await.unwrap().unwrap().unwrap();
        assert!(a.status().prepared.is_empty());
    }

    #[tokio::test]
    async fn decided_branches_hold_back_direct_reads_and_raise_read_ts() {
        let a = Arc::new(Agent::new("dn0", 100));
        a.wait_decided().await; // nothing decided: returns at once
        a.decide("cn-1-7", 150);
        assert_eq!((a.amx(), a.read_ts()), (100, 150), "a single-DN read must see the acknowledged commit");
        let a2 = a.clone();
        let read = tokio::spawn(async move { a2.wait_decided().await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!read.is_finished(), "a direct read waits for a decided branch");
        // A branch decided after the read started does not hold it back.
        a.decide("cn-2-9", 160);
        a.forget("cn-1-7");
        tokio::time::timeout(Duration::from_secs(5), read).await.unwrap().unwrap();
        assert_eq!(a.read_ts(), 160);
    }
}
