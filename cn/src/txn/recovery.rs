//! Recovery of in-doubt branches: a watchdog that finds XA branches left
//! prepared by a crashed transaction (`XA RECOVER` on every DN) and settles
//! each from the transaction log: commit at the logged timestamp, or record
//! an abort and roll back (ARCHITECTURE.md, "Recovery").

use super::log::{self, Decision, RecordError};
use crate::cluster::Cluster;
use crate::error::Result;
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

/// Registers, in each DN's agent, the branches found prepared on it: after
/// a restart their `min_commit_ts` is unknown, so snapshots wait for them
/// until the watchdog settles them.
pub async fn register_in_doubt(cluster: &Cluster) {
    for (i, dn) in cluster.dns.iter().enumerate() {
        let r = async {
            let mut c = dn.conn().await?;
            dn_plugin::agent::xa_recover(&mut c).await.map_err(|e| dn.err(e))
        }
        .await;
        match r {
            Ok(xids) => {
                for x in xids.iter().filter(|x| xid_start_ts(x).is_some()) {
                    cluster.agents[i].register_in_doubt(x);
                }
            }
            Err(e) => tracing::warn!(dn = %dn.name, error = %e, "XA RECOVER failed at start-up"),
        }
    }
}

/// One pass over every DN; returns how many branches were settled.
pub async fn resolve_once(cluster: &Cluster) -> Result<usize> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let mut settled = 0;
    for (i, dn) in cluster.dns.iter().enumerate() {
        let mut c = dn.conn().await?;
        let xids = dn_plugin::agent::xa_recover(&mut c).await.map_err(|e| dn.err(e))?;
        let agent = &cluster.agents[i];
        for xid in xids {
            let Some(ts) = xid_start_ts(&xid) else { continue };
            let live = cluster.txns.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&xid);
            if live {
                continue;
            }
            let young = now_ms.saturating_sub(tso::physical(ts)) < GRACE_MS;
            if young && !agent.is_prepared(&xid) {
                continue;
            }
            let decision = match log::lookup(&cluster.metadb, &xid).await? {
                Some(d) => d,
                None => match log::record(&cluster.metadb, &xid, Decision::Abort).await {
                    Ok(()) => Decision::Abort,
                    Err(RecordError::Decided(d)) => d,
                    Err(RecordError::Unknown(e)) => return Err(e),
                },
            };
            let r = match decision {
                Decision::Commit(ts) => agent.commit_prepared(&mut c, &xid, ts).await,
                Decision::Abort => agent.rollback_prepared(&mut c, &xid).await,
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
        let candidates: Vec<String> = agent
            .status()
            .prepared
            .into_iter()
            .map(|(x, _)| x)
            .filter(|x| !cluster.txns.lock().unwrap_or_else(|e| e.into_inner()).contains_key(x))
            .collect();
        if !candidates.is_empty() {
            let still = dn_plugin::agent::xa_recover(&mut c).await.map_err(|e| dn.err(e))?;
            for x in candidates.iter().filter(|x| !still.contains(x)) {
                agent.forget(x);
            }
        }
    }
    Ok(settled)
}

/// Runs [`resolve_once`] every [`INTERVAL`] while the cluster lives.
pub fn spawn_watchdog(cluster: &Arc<Cluster>) {
    cluster.spawn_every(INTERVAL, |c| async move {
        if let Err(e) = resolve_once(&c).await {
            tracing::debug!(error = %e, "in-doubt branch resolution pass failed");
        }
    });
}
