//! Distributed deadlock detection. InnoDB finds a deadlock inside one DN;
//! a cycle that crosses DNs (T1 waits for T2 on DN 0 while T2 waits for T1
//! on DN 1) would otherwise last until the lock wait timeout. As in
//! PolarDB-X, the CN collects each DN's lock waits
//! (`information_schema.INNODB_LOCK_WAITS` joined with `INNODB_TRX`), maps
//! the DN threads to the transactions that own them, finds cycles in the
//! global wait-for graph, and kills the waiting statement of the youngest
//! transaction in each cycle; that transaction rolls back on every DN and
//! its client gets 1213.

use crate::cluster::Cluster;
use crate::error::Result;
use mysql_async::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How often the wait-for graph is built.
pub const INTERVAL: Duration = Duration::from_millis(500);

/// Who owns a DN thread (a connection's id on its DN).
#[derive(Clone)]
pub struct LockOwner {
    /// The transaction's XA id, or a name for a one-DN autocommit write.
    pub key: String,
    /// Youngest (largest) is chosen as the victim.
    pub start_ts: u64,
    /// Set when the owner was chosen as a deadlock victim.
    pub victim: Arc<AtomicBool>,
}

/// Registers DN threads with their owner for as long as it lives; dropping
/// it unregisters them.
pub struct OwnerGuard {
    cluster: Weak<Cluster>,
    threads: std::sync::Mutex<Vec<(u32, u32)>>,
    pub owner: LockOwner,
}

impl OwnerGuard {
    pub fn new(cluster: &Arc<Cluster>, key: String, start_ts: u64) -> Self {
        OwnerGuard {
            cluster: Arc::downgrade(cluster),
            threads: std::sync::Mutex::new(Vec::new()),
            owner: LockOwner { key, start_ts, victim: Arc::new(AtomicBool::new(false)) },
        }
    }

    /// Records that DN thread `thread` on DN `dn` works for this owner.
    pub fn add(&self, dn: u32, thread: u32) {
        let Some(c) = self.cluster.upgrade() else { return };
        c.lock_owners.lock().unwrap_or_else(|e| e.into_inner()).insert((dn, thread), self.owner.clone());
        self.threads.lock().unwrap_or_else(|e| e.into_inner()).push((dn, thread));
    }

    /// Whether the owner was chosen as a deadlock victim (and clears it).
    pub fn take_victim(&self) -> bool {
        self.owner.victim.swap(false, Ordering::SeqCst)
    }
}

impl Drop for OwnerGuard {
    fn drop(&mut self) {
        let Some(c) = self.cluster.upgrade() else { return };
        let mut owners = c.lock_owners.lock().unwrap_or_else(|e| e.into_inner());
        // A thread may already work for another owner: a connection goes
        // back to the pool when its branch ends (an async commit's branches
        // end after the transaction answered) and the next transaction that
        // takes it registers it anew. Removing that registration would hide
        // the new owner's waits from the detector until the lock wait
        // timeout.
        for t in self.threads.get_mut().unwrap_or_else(|e| e.into_inner()).iter() {
            if owners.get(t).is_some_and(|o| o.key == self.owner.key) {
                owners.remove(t);
            }
        }
    }
}

/// The lock waits on one DN: (waiting thread, blocking thread).
async fn lock_waits(cluster: &Cluster, dn: u32) -> Result<Vec<(u32, u32)>> {
    let d = cluster.dn(dn)?;
    let mut c = d.conn().await?;
    let rows: Vec<(u64, u64)> = c
        .query(
            "SELECT r.trx_mysql_thread_id, b.trx_mysql_thread_id \
             FROM information_schema.INNODB_LOCK_WAITS w \
             JOIN information_schema.INNODB_TRX r ON r.trx_id = w.requesting_trx_id \
             JOIN information_schema.INNODB_TRX b ON b.trx_id = w.blocking_trx_id",
        )
        .await
        .map_err(|e| d.err(e))?;
    Ok(rows.into_iter().map(|(w, b)| (w as u32, b as u32)).collect())
}

/// A waiting edge of the global graph: `from` waits for `to` on DN `dn`,
/// in `from`'s DN thread `thread`.
#[derive(Debug, Clone)]
struct Edge {
    to: String,
    dn: u32,
    thread: u32,
}

/// Finds a cycle reachable from `start` (its nodes in order), if any.
fn find_cycle(graph: &BTreeMap<String, Vec<Edge>>, start: &str) -> Option<Vec<String>> {
    fn dfs(
        g: &BTreeMap<String, Vec<Edge>>,
        n: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            return Some(path[i..].to_vec());
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for e in g.get(n).into_iter().flatten() {
            if let Some(c) = dfs(g, &e.to, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    dfs(graph, start, &mut Vec::new(), &mut BTreeSet::new())
}

/// One detection pass; returns the victims chosen.
pub async fn detect_once(cluster: &Cluster) -> Result<Vec<String>> {
    if cluster.lock_owners.lock().unwrap_or_else(|e| e.into_inner()).len() < 2 {
        return Ok(Vec::new());
    }
    let mut graph: BTreeMap<String, Vec<Edge>> = BTreeMap::new();
    for dn in 0..cluster.dns.len() as u32 {
        let waits = match lock_waits(cluster, dn).await {
            Ok(w) => w,
            Err(e) => {
                tracing::debug!(dn, error = %e, "lock waits unavailable");
                continue;
            }
        };
        let owners = cluster.lock_owners.lock().unwrap_or_else(|e| e.into_inner());
        for (w, b) in waits {
            if let (Some(from), Some(to)) = (owners.get(&(dn, w)), owners.get(&(dn, b))) {
                if from.key != to.key {
                    graph.entry(from.key.clone()).or_default().push(Edge { to: to.key.clone(), dn, thread: w });
                }
            }
        }
    }
    let mut victims = Vec::new();
    loop {
        let cycle = graph.keys().find_map(|k| find_cycle(&graph, k));
        let Some(cycle) = cycle else { break };
        let owners: BTreeMap<String, LockOwner> = cluster
            .lock_owners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|o| (o.key.clone(), o.clone()))
            .collect();
        let victim = cycle
            .iter()
            .max_by_key(|k| owners.get(*k).map(|o| o.start_ts).unwrap_or(0))
            .cloned()
            .expect("a cycle has nodes");
        if let Some(o) = owners.get(&victim) {
            o.victim.store(true, Ordering::SeqCst);
        }
        for e in graph.remove(&victim).unwrap_or_default() {
            let d = cluster.dn(e.dn)?;
            let mut c = d.conn().await?;
            if let Err(err) = c.query_drop(format!("KILL QUERY {}", e.thread)).await {
                tracing::warn!(victim, dn = e.dn, error = %err, "could not kill a deadlock victim's statement");
            }
        }
        tracing::info!(victim, cycle = ?cycle, "distributed deadlock: rolled back the youngest transaction");
        victims.push(victim);
    }
    Ok(victims)
}

/// Runs [`detect_once`] every [`INTERVAL`] while the cluster lives.
pub fn spawn_detector(cluster: &Arc<Cluster>) {
    cluster.spawn_every(INTERVAL, |c| async move {
        if let Err(e) = detect_once(&c).await {
            tracing::debug!(error = %e, "deadlock detection pass failed");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(to: &str) -> Edge {
        Edge { to: to.into(), dn: 0, thread: 0 }
    }

    #[test]
    fn finds_cycles_and_only_cycles() {
        let mut g = BTreeMap::new();
        g.insert("a".to_string(), vec![edge("b")]);
        g.insert("b".to_string(), vec![edge("c")]);
        assert_eq!(find_cycle(&g, "a"), None);
        g.insert("c".to_string(), vec![edge("a")]);
        let c = find_cycle(&g, "a").unwrap();
        assert_eq!(c, vec!["a", "b", "c"]);
        g.insert("x".to_string(), vec![edge("b")]);
        assert_eq!(find_cycle(&g, "x").unwrap(), vec!["b", "c", "a"]);
    }
}
