//! The transaction log: the durable commit decision of every two-phase
//! commit, one row per transaction in the metadb (`cn_meta.txn_log`).
//!
//! A transaction is committed once its `C` row exists; recovery aborts an
//! in-doubt transaction by inserting an `A` row. The primary key on the XA
//! id settles a race between a late commit and the resolver: whichever
//! insert lands first is the outcome (ARCHITECTURE.md, "Recovery").

use crate::catalog::metadb::MetaDb;
use crate::error::{CnError, Result};
use mysql_async::prelude::*;

/// Creates the log table (part of the metadb bootstrap).
pub const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS cn_meta.txn_log (xid VARCHAR(128) PRIMARY KEY, \
     state CHAR(1) NOT NULL, commit_ts BIGINT UNSIGNED NOT NULL, \
     created TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3))";

/// The recorded outcome of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Committed at this commit timestamp.
    Commit(u64),
    /// Aborted (by recovery).
    Abort,
}

/// Why [`record`] did not record the decision asked for.
#[derive(Debug)]
pub enum RecordError {
    /// Another decision was recorded first.
    Decided(Decision),
    /// The metadb did not answer: whether the row was written is unknown.
    Unknown(CnError),
}

fn row_decision(state: &str, ts: u64) -> Decision {
    if state == "C" {
        Decision::Commit(ts)
    } else {
        Decision::Abort
    }
}

/// The decision recorded for `xid`, if any.
pub async fn lookup(metadb: &MetaDb, xid: &str) -> Result<Option<Decision>> {
    let mut c = metadb.conn().await?;
    let row: Option<(String, u64)> =
        c.exec_first("SELECT state, commit_ts FROM cn_meta.txn_log WHERE xid = ?", (xid,)).await?;
    Ok(row.map(|(s, ts)| row_decision(&s, ts)))
}

/// Records `d` for `xid` unless a decision exists. Returns the decision
/// that holds: `d`, or the one recorded before (as
/// [`RecordError::Decided`] when it differs).
pub async fn record(metadb: &MetaDb, xid: &str, d: Decision) -> Result<(), RecordError> {
    let (state, ts) = match d {
        Decision::Commit(ts) => ("C", ts),
        Decision::Abort => ("A", 0),
    };
    let mut c = metadb.conn().await.map_err(RecordError::Unknown)?;
    let r = c.exec_drop("INSERT INTO cn_meta.txn_log (xid, state, commit_ts) VALUES (?, ?, ?)", (xid, state, ts)).await;
    match r {
        Ok(()) => Ok(()),
        Err(mysql_async::Error::Server(e)) if e.code == crate::error::code::ER_DUP_ENTRY => {
            match lookup(metadb, xid).await.map_err(RecordError::Unknown)? {
                Some(existing) if existing == d => Ok(()),
                Some(existing) => Err(RecordError::Decided(existing)),
                None => Err(RecordError::Unknown(CnError::internal(format!("txn_log row of {xid} vanished")))),
            }
        }
        Err(e) => Err(RecordError::Unknown(e.into())),
    }
}

/// Deletes the row of a transaction none of whose branches is prepared
/// any more.
pub async fn forget(metadb: &MetaDb, xid: &str) -> Result<()> {
    let mut c = metadb.conn().await?;
    c.exec_drop("DELETE FROM cn_meta.txn_log WHERE xid = ?", (xid,)).await?;
    Ok(())
}
