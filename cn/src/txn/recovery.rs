//! Recovery of in-doubt branches: a watchdog that finds XA branches left
//! prepared by a crashed transaction (`XA RECOVER` on every DN) and settles
//! each from the transaction log: commit at the logged timestamp, or record
//! an abort and roll back (ARCHITECTURE.md, "Recovery").
//!
//! Ownership (several CNs over shared agents): a CN settles a branch only
//! when no live transaction of its own has its XA id, it is older than
//! [`GRACE_MS`] or registered at its agent, and the agent grants a claim
//! ([`dn_plugin::AgentApi::claim`]): refused while the branch was
//! registered by another CN that holds a session at the agent (or closed
//! its last one less than [`dn_plugin::agent::OWNER_GRACE`] ago); granted
//! for this CN's own branches, for branches without owner (rebuilt after an
//! agent restart) and for those of a CN that is gone. A granted claim makes
//! the agent refuse to decide the branch, so an async commit racing its
//! settlement is never acknowledged. With in-process agents every claim is
//! granted (one CN).

use super::log::{self, Decision, RecordError};
use crate::cluster::Cluster;
use crate::error::Result;
use dn_plugin::PrepareRecord;
use std::sync::Arc;
use std::time::Duration;

/// How often the watchdog looks for in-doubt branches.
pub const INTERVAL: Duration = Duration::from_millis(1000);

/// A prepared branch younger than this (by the physical part of the start
/// timestamp in its XA id) and not known to this CN is left alone: it may
/// belong to another CN's transaction that is about to decide.
pub const GRACE_MS: u64 = 3000;

/// The start timestamp in a CN XA id `cn-<conn>-<ts>`.
pub fn xid_start_ts(xid: &str) -> Option<u64> {
    let rest = xid.strip_prefix("cn-")?;
    rest.rsplit_once('-')?.1.parse().ok()
}

/// Rebuilds each DN agent's prepared branches after a restart from
/// `XA RECOVER` and the agent's log ([`dn_plugin::agent::rebuild`]):
/// snapshots wait for them, and reads without a view too, until the
/// watchdog settles them. Shared agents are skipped: each rebuilt itself
/// when it started, and outlives the CNs.
pub async fn register_in_doubt(cluster: &Cluster) {
    for (i, dn) in cluster.dns.iter().enumerate() {
        if cluster.shared_agent(i as u32) {
            continue;
        }
        let r = async {
            let mut c = dn.conn().await?;
            dn_plugin::agent::rebuild(&*cluster.agents[i], &mut c, dn_plugin::agent::is_cn_xid)
                .await
                .map_err(|e| dn.agent_err(e))
        }
        .await;
        if let Err(e) = r {
            tracing::warn!(dn = %dn.name, error = %e, "rebuilding the agent's prepared branches failed at start-up");
        }
    }
}

/// Committed rows of the agents' logs older than this are deleted once no
/// branch of their transaction is prepared on any DN.
pub const LOG_KEEP_SECS: u64 = 10;

/// One pass: settles the in-doubt branches on every DN that answers, then
/// (when every DN answered) deletes the agents' log rows no longer needed.
/// Returns how many branches were settled.
pub async fn resolve_once(cluster: &Cluster) -> Result<usize> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    // Read before XA RECOVER (see sweep_logs).
    let candidates = log_candidates(cluster).await;
    let mut prepared: Vec<Option<Vec<String>>> = Vec::with_capacity(cluster.dns.len());
    for dn in &cluster.dns {
        let r = async {
            let mut c = dn.conn().await?;
            dn_plugin::agent::xa_recover(&mut c).await.map_err(|e| dn.err(e))
        }
        .await;
        match r {
            Ok(x) => prepared.push(Some(x)),
            Err(e) => {
                tracing::debug!(dn = %dn.name, error = %e, "XA RECOVER failed; the DN is skipped this pass");
                prepared.push(None);
            }
        }
    }
    let mut settled = 0;
    for (i, xids) in prepared.iter().enumerate() {
        let Some(xids) = xids else { continue };
        let dn = &cluster.dns[i];
        let mut c = dn.conn().await?;
        let agent = &*cluster.agents[i];
        for xid in xids {
            let Some(ts) = xid_start_ts(xid) else { continue };
            let live = cluster.txns.lock().unwrap_or_else(|e| e.into_inner()).contains_key(xid);
            if live {
                continue;
            }
            let young = now_ms.saturating_sub(tso::physical(ts)) < GRACE_MS;
            if young && !agent.is_prepared(xid).await.map_err(|e| dn.agent_err(e))? {
                continue;
            }
            // A shared agent refuses while the CN that registered the
            // branch is alive; once granted, the branch cannot be decided
            // any more (an async commit racing this is not acknowledged).
            if !agent.claim(xid).await.map_err(|e| dn.agent_err(e))? {
                continue;
            }
            let decision = decide(cluster, &mut c, xid).await?;
            let r = match decision {
                Decision::Commit(ts) => dn_plugin::agent::commit_prepared(agent, &mut c, xid, ts).await,
                Decision::Abort => dn_plugin::agent::rollback_prepared(agent, &mut c, xid).await,
            };
            match r {
                Ok(()) => {
                    settled += 1;
                    tracing::info!(xid, dn = %dn.name, ?decision, "settled an in-doubt branch");
                }
                Err(dn_plugin::AgentError::Db(mysql_async::Error::Server(e))) if e.code == 1397 => {
                    // XAER_NOTA: its connection still lives (or someone
                    // settled it meanwhile): the next pass looks again.
                }
                Err(e) => tracing::warn!(xid, dn = %dn.name, error = %e, "could not settle an in-doubt branch"),
            }
        }
        // Branches the agent still waits for that no live transaction owns
        // and that the DN no longer has prepared were settled elsewhere:
        // stop making snapshots wait for them. The candidates are taken
        // before the second XA RECOVER, so a branch prepared meanwhile is
        // never among them.
        // With a shared agent, only branches the agent lets this CN claim
        // (not registered by another live CN, which may be preparing them).
        let mut candidates = Vec::new();
        for (x, _) in agent.status().await.map_err(|e| dn.agent_err(e))?.prepared {
            let live = cluster.txns.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&x);
            if !live && agent.claim(&x).await.map_err(|e| dn.agent_err(e))? {
                candidates.push(x);
            }
        }
        if !candidates.is_empty() {
            let still = dn_plugin::agent::xa_recover(&mut c).await.map_err(|e| dn.err(e))?;
            for x in candidates.iter().filter(|x| !still.contains(x)) {
                agent.forget(x).await.map_err(|e| dn.agent_err(e))?;
            }
        }
    }
    let prepared: Option<Vec<Vec<String>>> = prepared.into_iter().collect();
    if let (Some(candidates), Some(prepared)) = (candidates, prepared) {
        if candidates.iter().any(|c| !c.is_empty()) {
            sweep_logs(cluster, candidates, &prepared).await?;
        }
    }
    Ok(settled)
}

/// The outcome of in-doubt transaction `xid` (`c` is a connection to a DN
/// where it is prepared): the decision in the transaction log; else, for
/// an async commit, committed at `max(L, max min_commit_ts)` when every
/// participant is prepared or committed and aborted otherwise; else (2PC
/// without a decision) aborted. The outcome is recorded in the
/// transaction log first, so every resolver reaches the same one.
async fn decide(cluster: &Cluster, c: &mut mysql_async::Conn, xid: &str) -> Result<Decision> {
    if let Some(d) = log::lookup(&cluster.metadb, xid).await? {
        return Ok(d);
    }
    let rows = dn_plugin::agent::read_log(c, Some(&[xid.to_string()]), true).await?;
    let proposal = match rows.first() {
        Some(r) if r.record.async_commit => async_outcome(cluster, xid, &r.record).await?,
        _ => Decision::Abort,
    };
    match log::record(&cluster.metadb, xid, proposal).await {
        Ok(()) => Ok(proposal),
        Err(RecordError::Decided(d)) => Ok(d),
        Err(RecordError::Unknown(e)) => Err(e),
    }
}

/// An async-commit transaction is committed iff every participant
/// prepared: on each, the branch is still prepared (its log row read at
/// READ UNCOMMITTED) or already committed (its log row committed). A
/// participant with neither never prepared, so nobody can have committed.
async fn async_outcome(cluster: &Cluster, xid: &str, record: &PrepareRecord) -> Result<Decision> {
    let mut c = record.lower_bound;
    let key = [xid.to_string()];
    for p in &record.participants {
        let dn = cluster.dn(*p)?;
        let mut conn = dn.conn().await?;
        // XA RECOVER before the committed read: a branch that commits in
        // between is found by one or the other.
        let prepared = dn_plugin::agent::xa_recover(&mut conn).await.map_err(|e| dn.err(e))?.contains(&key[0]);
        let rows = dn_plugin::agent::read_log(&mut conn, Some(&key), prepared).await.map_err(|e| dn.err(e))?;
        match rows.first() {
            Some(r) => c = c.max(r.min_commit_ts),
            None => return Ok(Decision::Abort),
        }
    }
    Ok(Decision::Commit(c))
}

/// The XA ids of each DN's committed agent-log rows older than
/// [`LOG_KEEP_SECS`]: the candidates of [`sweep_logs`]. `None` when a DN
/// did not answer (no sweep this pass).
async fn log_candidates(cluster: &Cluster) -> Option<Vec<Vec<String>>> {
    let mut candidates = Vec::with_capacity(cluster.dns.len());
    for dn in &cluster.dns {
        let mut c = dn.conn().await.ok()?;
        candidates.push(dn_plugin::agent::old_log_rows(&mut c, LOG_KEEP_SECS).await.ok()?);
    }
    Some(candidates)
}

/// Deletes the agents' log rows in `candidates` whose transaction has no
/// branch in any DN's `prepared` (`XA RECOVER`, taken after the candidates
/// were read): a committed row means every branch had prepared, so none
/// prepares later, and a transaction still in doubt keeps its rows, which
/// recovery may need to decide.
async fn sweep_logs(cluster: &Cluster, candidates: Vec<Vec<String>>, prepared: &[Vec<String>]) -> Result<()> {
    let in_doubt: std::collections::HashSet<&String> = prepared.iter().flatten().collect();
    for (dn, rows) in cluster.dns.iter().zip(candidates) {
        let done: Vec<String> = rows.into_iter().filter(|x| !in_doubt.contains(x)).collect();
        if !done.is_empty() {
            let mut c = dn.conn().await?;
            dn_plugin::agent::delete_log(&mut c, &done).await.map_err(|e| dn.err(e))?;
        }
    }
    Ok(())
}

/// Runs [`resolve_once`] every [`INTERVAL`] while the cluster lives.
pub fn spawn_watchdog(cluster: &Arc<Cluster>) {
    cluster.spawn_every(INTERVAL, |c| async move {
        if let Err(e) = resolve_once(&c).await {
            tracing::debug!(error = %e, "in-doubt branch resolution pass failed");
        }
    });
}
