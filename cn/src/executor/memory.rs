//! Memory-bounded execution: the memory a query may hold and where it
//! spills.
//!
//! Every query run in DataFusion gets its own [`QueryMemoryPool`], bounded
//! by the session's `query_memory_limit` (bytes; 0 = the CN's
//! `query-memory-limit`), and every pool of a CN also draws from the CN's
//! [`CnMemory`] total (`memory-total`). Operators reserve from the pool
//! before they buffer; the spilling ones (DataFusion's sort and grouped
//! aggregation, our [`super::hybrid_hash_join`]) write what does not fit to
//! compressed Arrow IPC files in the CN's spill directory, through one
//! DataFusion [`DiskManager`] per CN whose quota (`spill-quota`) bounds the
//! bytes on disk. A spill file is removed when the last reference to it is
//! dropped: when its operator is done, fails, or its query is cancelled;
//! the CN's directory inside `spill-dir` goes when the CN stops.
//!
//! Besides the operators, the pool counts the buffers of shard scans that
//! share a transaction's connections (`ShardScan[p]`, see
//! [`super::shard_scan`]; together at most [`SCAN_BUFFER_DIVISOR`]th of the
//! limit, the rest goes to spill files) and the rows of the batch being
//! sent to the client (`ResultEncoding`). A scan with its own connection
//! holds at most three batches (backpressure), which are not counted.
//!
//! A reservation the pool refuses is a `ResourcesExhausted` error that
//! names the operator and the limit; [`crate::error::CnError`] sends it as
//! ERR 1041 (ER_OUT_OF_RESOURCES). A query that passes its own limit never
//! takes memory from others: its pool refuses before the CN total is asked.

use crate::config::Config;
use crate::error::{CnError, Result};
use datafusion::common::config::SpillCompression;
use datafusion::error::DataFusionError;
use datafusion::execution::disk_manager::{DiskManager, DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{
    FairSpillPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation, TrackConsumersPool,
};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use std::fmt;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// The memory and spill space shared by all queries of one CN.
#[derive(Debug)]
pub struct CnMemory {
    /// Bytes all queries may hold together (`memory-total`).
    total: usize,
    /// Bytes held now by all queries' pools.
    used: AtomicUsize,
    /// A query's limit when its session sets none (`query-memory-limit`).
    default_limit: usize,
    /// The spill files of every query of this CN, bounded by `spill-quota`.
    disk: Arc<DiskManager>,
    /// The codec of spill files.
    compression: SpillCompression,
    /// Queries that failed because a reservation was refused.
    pub out_of_memory: AtomicU64,
    /// Queries run in DataFusion, those of them that spilled, and the
    /// bytes and files they spilled (`SHOW STATUS`, `Cn_*`).
    pub queries: AtomicU64,
    pub queries_spilled: AtomicU64,
    pub spilled_bytes: AtomicU64,
    pub spill_files: AtomicU64,
}

/// What a session's statement holds now and held at most, in bytes (its
/// query pool's figures, the headroom not counted): SHOW PROCESSLIST's
/// `Memory_used` and `Max_memory_used`. `used` is 0 between statements;
/// `peak` stays the last statement's until the next starts.
#[derive(Debug, Default)]
pub struct MemoryGauge {
    pub used: AtomicUsize,
    pub peak: AtomicUsize,
}

/// What one query run in DataFusion used: the most bytes its pool held at
/// once, and what its operators spilled (the sum of their `spilled_bytes`
/// and `spill_count` metrics). `SHOW STATUS LIKE 'Cn_last_query%'` shows
/// the session's last one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryStats {
    pub peak_memory: usize,
    pub spilled_bytes: u64,
    pub spill_files: u64,
}

impl CnMemory {
    /// The CN's memory and spill space from its configuration. Creates
    /// `spill-dir` if missing and this CN's own directory inside it.
    ///
    /// Errors: the directory cannot be created (1105 with the I/O error),
    /// or the compression is not one of `lz4_frame`, `zstd`, `uncompressed`.
    pub fn new(config: &Config) -> Result<Arc<CnMemory>> {
        std::fs::create_dir_all(&config.spill_dir).map_err(|e| {
            CnError::internal(format!("spill-dir {}: cannot create it: {e}", config.spill_dir.display()))
        })?;
        let disk = DiskManagerBuilder::default()
            .with_mode(DiskManagerMode::Directories(vec![config.spill_dir.clone()]))
            .with_max_temp_directory_size(config.spill_quota)
            .build()
            .map_err(|e| CnError::internal(format!("spill-dir {}: {e}", config.spill_dir.display())))?;
        let compression = SpillCompression::from_str(&config.spill_compression)
            .map_err(|e| CnError::internal(format!("spill-compression: {e}")))?;
        Ok(Arc::new(CnMemory {
            total: usize::try_from(config.memory_total).unwrap_or(usize::MAX),
            used: AtomicUsize::new(0),
            default_limit: usize::try_from(config.query_memory_limit).unwrap_or(usize::MAX),
            disk: Arc::new(disk),
            compression,
            out_of_memory: AtomicU64::new(0),
            queries: AtomicU64::new(0),
            queries_spilled: AtomicU64::new(0),
            spilled_bytes: AtomicU64::new(0),
            spill_files: AtomicU64::new(0),
        }))
    }

    /// The limit of a query whose session has `query_memory_limit =
    /// session` (bytes; 0 = the CN default). Never above the CN total.
    pub fn limit_for(&self, session: u64) -> usize {
        let l = if session == 0 { self.default_limit } else { usize::try_from(session).unwrap_or(usize::MAX) };
        l.min(self.total)
    }

    /// Bytes held now by all queries of this CN.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Bytes all queries of this CN may hold together.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Adds a finished query's figures to the CN-wide counters.
    pub fn record(&self, q: &QueryStats) {
        self.queries.fetch_add(1, Ordering::Relaxed);
        if q.spill_files > 0 {
            self.queries_spilled.fetch_add(1, Ordering::Relaxed);
        }
        self.spilled_bytes.fetch_add(q.spilled_bytes, Ordering::Relaxed);
        self.spill_files.fetch_add(q.spill_files, Ordering::Relaxed);
    }

    /// The codec spill files are written with.
    pub fn compression(&self) -> SpillCompression {
        self.compression
    }

    /// The CN's spill disk manager.
    pub fn disk(&self) -> &Arc<DiskManager> {
        &self.disk
    }

    /// This CN's spill directories (one inside each configured `spill-dir`).
    pub fn spill_dirs(&self) -> Vec<PathBuf> {
        self.disk.temp_dir_paths()
    }

    /// Bytes of spill files on disk now, and how many files.
    pub fn spilled_now(&self) -> (u64, usize) {
        let p = self.disk.spilling_progress();
        (p.current_bytes, p.active_files_count)
    }

    /// A fresh pool of `limit` bytes drawing from this CN's total.
    pub fn query_pool(self: &Arc<Self>, limit: usize) -> Arc<QueryMemoryPool> {
        self.query_pool_with_gauge(limit, None)
    }

    /// A fresh pool of `limit` bytes drawing from this CN's total that
    /// keeps `gauge` up to date (and starts it from zero).
    pub fn query_pool_with_gauge(
        self: &Arc<Self>,
        limit: usize,
        gauge: Option<Arc<MemoryGauge>>,
    ) -> Arc<QueryMemoryPool> {
        if let Some(g) = &gauge {
            g.used.store(0, Ordering::Relaxed);
            g.peak.store(0, Ordering::Relaxed);
        }
        let inner = Arc::new(TrackConsumersPool::new(FairSpillPool::new(limit), NonZeroUsize::new(3).expect("3 > 0")));
        let dyn_inner: Arc<dyn MemoryPool> = inner.clone();
        let headroom = MemoryConsumer::new("unspillable headroom").register(&dyn_inner);
        let target = limit / HEADROOM_DIVISOR;
        headroom.grow(target);
        Arc::new(QueryMemoryPool {
            limit,
            inner,
            cn: self.clone(),
            peak: AtomicUsize::new(0),
            repartition: AtomicUsize::new(0),
            scans: AtomicUsize::new(0),
            headroom: std::sync::Mutex::new(headroom),
            headroom_target: target,
            headroom_held: AtomicUsize::new(target),
            gauge,
        })
    }

    /// The DataFusion runtime of one query: `pool` and the CN's spill
    /// disk manager.
    pub fn runtime(&self, pool: Arc<QueryMemoryPool>) -> Result<Arc<RuntimeEnv>> {
        let mut b = RuntimeEnvBuilder::new().with_memory_pool(pool);
        b.disk_manager = Some(self.disk.clone());
        Ok(b.build_arc()?)
    }
}

/// DataFusion's `RepartitionExec` reservations (`RepartitionExec[i]`) are
/// kept out of the fair pool's even shares (DataFusion registers two per
/// repartition; as spilling consumers they diluted the joins' shares) and
/// granted while the query is within its limit; past it they are refused
/// and the repartition spills the batch. That is safe only because
/// [`super::repartition::SingleInputRepartition`] gives every repartition
/// one input task: refused with several, DataFusion 55.2's spill pool could
/// park its reader on a drained file while the batch it waits for sits in a
/// second one, and the query hung with every thread idle
/// (apache/datafusion#24883, fixed after 55.2 by #24891; our
/// `cn/tests/spill.rs` hit it about once in five runs when they were
/// refused without the rule). Granted without bound, a repartition held
/// 26 MB of lineitem in TPC-H Q9 under 16 MiB.
const REPARTITION_CONSUMER: &str = "RepartitionExec[";

/// A query pool keeps `limit / HEADROOM_DIVISOR` bytes aside for the
/// operators that cannot spill (a TopK's heap, a sort's merge buffers, a
/// window's partition): the spilling operators' even shares are taken from
/// the rest. Without it two final aggregates can take the whole pool
/// within their shares and a TopK that starts after them is refused (TPC-H
/// Q10 at SF 1 under 16 MiB, 1 run in 2).
pub const HEADROOM_DIVISOR: usize = 8;

/// The buffers of the shard scans that share connections
/// (`ShardScan[p]`, see [`super::shard_scan`]) hold at most
/// `limit / SCAN_BUFFER_DIVISOR` bytes together, and never the headroom:
/// past that, a scan writes its batches to spill files. Such a scan reads
/// its whole result before the plan may want it (TPC-H Q18's lineitem scan
/// under 16 MiB held 10 MB while its join was still building), and every
/// byte it holds is a byte the spilling operators' even shares lose: the
/// hash joins then had shares too small for any partition and joined in
/// thousands of chunks.
pub const SCAN_BUFFER_DIVISOR: usize = 16;

const SHARD_SCAN_CONSUMER: &str = "ShardScan[";

/// A sort's merge of its spill files (DataFusion's `ExternalSorterMerge`
/// consumer, one per sort partition) holds at most `limit /
/// SORT_MERGE_DIVISOR` bytes. It cannot spill, and it reads as many spill
/// files at once as the pool lets it, a buffer for each: uncapped, the
/// first partition's merge took 15 of 16 MiB in TPC-H Q5 with
/// `cn_hash_join = OFF`, and the second partition's sort could not
/// reserve the 1 MiB it sets aside for its own merge (ERR 1041). Capped,
/// a merge reads fewer files per pass (DataFusion's multi-level merge
/// merges the rest in further passes).
pub const SORT_MERGE_DIVISOR: usize = 4;

const SORT_MERGE_CONSUMER: &str = "ExternalSorterMerge[";

fn is_repartition(c: &MemoryConsumer) -> bool {
    c.name().starts_with(REPARTITION_CONSUMER)
}

fn is_shard_scan(c: &MemoryConsumer) -> bool {
    c.name().starts_with(SHARD_SCAN_CONSUMER)
}

fn is_sort_merge(c: &MemoryConsumer) -> bool {
    c.name().starts_with(SORT_MERGE_CONSUMER)
}

/// The memory pool of one query: at most `limit` bytes, shared among the
/// query's operators as DataFusion's [`FairSpillPool`] shares it
/// (operators that cannot spill first come, first served; the spilling
/// ones split the rest evenly, except that one holding less than it asks
/// may take what the pool has free), with a headroom for the operators that cannot
/// spill ([`HEADROOM_DIVISOR`]), its consumers tracked so a refusal names
/// the largest. Every reservation is also counted against the CN total.
#[derive(Debug)]
pub struct QueryMemoryPool {
    limit: usize,
    inner: Arc<TrackConsumersPool<FairSpillPool>>,
    cn: Arc<CnMemory>,
    peak: AtomicUsize,
    /// Bytes held by `RepartitionExec` reservations.
    repartition: AtomicUsize,
    /// Bytes held by shared-connection shard scans' buffers.
    scans: AtomicUsize,
    /// The headroom: an unspillable reservation of the inner pool that
    /// hands its bytes to unspillable operators the fair pool refuses, and
    /// takes them back (up to `headroom_target`) as they shrink.
    headroom: std::sync::Mutex<MemoryReservation>,
    headroom_target: usize,
    /// `headroom.size()`, readable without the lock.
    headroom_held: AtomicUsize,
    /// The session's figures for SHOW PROCESSLIST.
    gauge: Option<Arc<MemoryGauge>>,
}

impl QueryMemoryPool {
    /// The pool's limit in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The most bytes the query held at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// What the query holds against its limit: the fair pool's
    /// reservations (the headroom included) and the repartitions' buffers,
    /// which the fair pool does not see.
    fn held(&self) -> usize {
        self.inner.reserved() + self.repartition.load(Ordering::Relaxed)
    }

    fn note_peak(&self) {
        let now = self.reserved();
        self.peak.fetch_max(now, Ordering::Relaxed);
        if let Some(g) = &self.gauge {
            g.used.store(now, Ordering::Relaxed);
            g.peak.fetch_max(now, Ordering::Relaxed);
        }
    }

    /// Grants an unspillable operator's request the fair pool refused: from
    /// the headroom first (a transfer, granted even when lending took the
    /// pool past its limit), then from bytes no operator holds. False when
    /// both together are too few.
    fn grant_unspillable(&self, r: &MemoryReservation, additional: usize) -> bool {
        let headroom = self.headroom.lock().unwrap_or_else(|e| e.into_inner());
        let from_headroom = additional.min(headroom.size());
        let rest = additional - from_headroom;
        let held = self.held();
        if rest > 0 && held + rest > self.limit {
            return false;
        }
        headroom.shrink(from_headroom);
        self.headroom_held.store(headroom.size(), Ordering::Relaxed);
        self.inner.grow(r, additional);
        true
    }

    /// Gives `freed` bytes an unspillable operator released back to the
    /// headroom, up to its target.
    fn refill_headroom(&self, freed: usize) {
        let headroom = self.headroom.lock().unwrap_or_else(|e| e.into_inner());
        let back = freed.min(self.headroom_target.saturating_sub(headroom.size()));
        if back > 0 {
            headroom.grow(back);
            self.headroom_held.store(headroom.size(), Ordering::Relaxed);
        }
    }

    fn refused(&self, r: &MemoryReservation, additional: usize, why: String) -> DataFusionError {
        DataFusionError::ResourcesExhausted(format!(
            "{} could not reserve {additional} more bytes (it holds {}): {why}; largest consumers: {}",
            r.consumer().name(),
            r.size(),
            self.inner
                .report_top(3)
                .lines()
                .map(|l| l.trim().trim_end_matches(['.', ',']))
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; "),
        ))
    }
}

impl fmt::Display for QueryMemoryPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "query pool ({} of {} bytes reserved)", self.reserved(), self.limit)
    }
}

impl MemoryPool for QueryMemoryPool {
    fn name(&self) -> &str {
        "query"
    }

    // Repartitions stay out of the fair pool: registered there as
    // spilling consumers (DataFusion registers two per RepartitionExec),
    // they would split the spilling operators' memory with them although
    // they never spill here; TPC-H Q9 has 12 of them besides 14 operators
    // that do spill.
    fn register(&self, consumer: &MemoryConsumer) {
        if !is_repartition(consumer) {
            self.inner.register(consumer)
        }
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        if !is_repartition(consumer) {
            self.inner.unregister(consumer)
        }
    }

    fn grow(&self, r: &MemoryReservation, additional: usize) {
        if is_repartition(r.consumer()) {
            self.repartition.fetch_add(additional, Ordering::Relaxed);
        } else {
            if is_shard_scan(r.consumer()) {
                self.scans.fetch_add(additional, Ordering::Relaxed);
            }
            self.inner.grow(r, additional);
        }
        self.cn.used.fetch_add(additional, Ordering::Relaxed);
        self.note_peak();
    }

    fn shrink(&self, r: &MemoryReservation, shrink: usize) {
        if is_repartition(r.consumer()) {
            self.repartition.fetch_sub(shrink, Ordering::Relaxed);
        } else {
            if is_shard_scan(r.consumer()) {
                self.scans.fetch_sub(shrink, Ordering::Relaxed);
            }
            self.inner.shrink(r, shrink);
            // A repartition's bytes were never the fair pool's, so they do
            // not refill the headroom (its merge buffers cannot spill).
            if !r.consumer().can_spill() && self.headroom_held.load(Ordering::Relaxed) < self.headroom_target {
                self.refill_headroom(shrink);
            }
        }
        self.cn.used.fetch_sub(shrink, Ordering::Relaxed);
        if let Some(g) = &self.gauge {
            g.used.store(self.reserved(), Ordering::Relaxed);
        }
    }

    fn try_grow(&self, r: &MemoryReservation, additional: usize) -> datafusion::error::Result<()> {
        let limit_reached =
            || format!("the query's memory limit of {} bytes (query_memory_limit) is reached", self.limit);
        if is_repartition(r.consumer()) {
            // Not into the headroom: a repartition can spill.
            if self.held().saturating_add(additional) > self.limit {
                // The repartition spills the batch; nobody reads the message.
                return Err(DataFusionError::ResourcesExhausted(limit_reached()));
            }
            self.grow(r, additional);
            return Ok(());
        }
        if is_sort_merge(r.consumer()) {
            let cap = self.limit / SORT_MERGE_DIVISOR;
            if r.size().saturating_add(additional) > cap {
                return Err(self.refused(r, additional, format!("a sort's merge holds at most {cap} bytes")));
            }
        }
        let scan = is_shard_scan(r.consumer());
        if scan {
            let budget = self.limit / SCAN_BUFFER_DIVISOR;
            let fits = |held: usize| Some(held + additional).filter(|n| *n <= budget);
            if self.scans.fetch_update(Ordering::AcqRel, Ordering::Acquire, fits).is_err() {
                return Err(self.refused(r, additional, format!("shard scan buffers are at their {budget} bytes")));
            }
        }
        // Within its even share a spilling operator always gets what it
        // asks (FairSpillPool's guarantee, as before any exception below),
        // even when others took the query past its limit: refused, an
        // aggregate merging its spill files fails the query (it cannot
        // spill again), as `cn/tests/spill.rs` showed when such requests
        // were refused.
        let within_share = self.inner.try_grow(r, additional).is_ok();
        if !within_share && scan {
            self.scans.fetch_sub(additional, Ordering::Relaxed);
            return Err(self.refused(r, additional, limit_reached()));
        }
        if !within_share && !r.consumer().can_spill() {
            if !self.grant_unspillable(r, additional) {
                return Err(self.refused(r, additional, limit_reached()));
            }
        } else if !within_share {
            // A spilling operator that holds less than it asks cannot make
            // room for the request by spilling: refused, the query fails
            // although the pool may be mostly free (FairSpillPool caps every
            // spilling consumer at its even share, counting those not yet or
            // no longer active; TPC-H Q16's final aggregate at SF 0.1 under
            // 2 MiB held 22 KB and asked 254 KB with 1.4 MB free).
            // It gets what it asks while the pool as a whole has room; when
            // it asks again past its share holding more, it spills, as any
            // other. (Then another operator's request within its share can
            // take the query past the limit, by at most what was lent.)
            let unused_room = self.held().saturating_add(additional) <= self.limit;
            if !(r.size() < additional && r.consumer().can_spill() && unused_room) {
                return Err(self.refused(r, additional, limit_reached()));
            }
            self.inner.grow(r, additional);
        }
        let cn = &self.cn;
        let taken = cn.used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
            u.checked_add(additional).filter(|n| *n <= cn.total)
        });
        if taken.is_err() {
            self.inner.shrink(r, additional);
            if scan {
                self.scans.fetch_sub(additional, Ordering::Relaxed);
            } else if !r.consumer().can_spill() {
                self.refill_headroom(additional);
            }
            let why = format!("the CN's memory total of {} bytes (memory-total) is held by running queries", cn.total);
            return Err(self.refused(r, additional, why));
        }
        if self.held() > self.limit {
            tracing::debug!(
                consumer = r.consumer().name(),
                holds = r.size(),
                additional,
                held = self.held(),
                limit = self.limit,
                top = %self.inner.report_top(4).replace('\n', "; "),
                "granted past the query's memory limit"
            );
        }
        self.note_peak();
        Ok(())
    }

    /// Bytes the query's operators hold (the headroom not counted).
    fn reserved(&self) -> usize {
        (self.inner.reserved() + self.repartition.load(Ordering::Relaxed))
            .saturating_sub(self.headroom_held.load(Ordering::Relaxed))
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cn(limit: u64, total: u64) -> (Arc<CnMemory>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            query_memory_limit: limit,
            memory_total: total,
            spill_dir: dir.path().join("spill"),
            ..Config::default()
        };
        (CnMemory::new(&config).unwrap(), dir)
    }

    #[test]
    fn a_query_holds_at_most_its_limit_and_the_refusal_names_the_operator() {
        let (cn, _dir) = cn(1000, 10_000);
        assert_eq!(cn.limit_for(0), 1000);
        assert_eq!(cn.limit_for(500), 500);
        assert_eq!(cn.limit_for(1 << 40), 10_000, "a session cannot pass the CN total");
        let pool: Arc<dyn MemoryPool> = cn.query_pool(cn.limit_for(0));
        let r = MemoryConsumer::new("TestSort[0]").register(&pool);
        r.try_grow(600).unwrap();
        assert_eq!(cn.used(), 600);
        let e = r.try_grow(600).unwrap_err();
        let m = e.to_string();
        assert!(matches!(e, DataFusionError::ResourcesExhausted(_)), "{e:?}");
        assert!(m.contains("TestSort[0]") && m.contains("1000 bytes") && m.contains("query_memory_limit"), "{m}");
        assert_eq!(r.size(), 600, "a refused reservation does not grow");
        assert_eq!(cn.used(), 600);
        drop(r);
        assert_eq!(cn.used(), 0, "a dropped reservation gives its bytes back to the CN");
    }

    #[test]
    fn a_spilling_operator_holding_nothing_may_pass_its_share_while_the_pool_has_room() {
        let (cn, _dir) = cn(1000, 10_000);
        let pool: Arc<dyn MemoryPool> = cn.query_pool(1000);
        // Four spilling consumers share the 875 bytes the headroom (125)
        // leaves: an even share is 218 bytes. The repartition below is not
        // one of them.
        let rs: Vec<_> =
            (0..4).map(|i| MemoryConsumer::new(format!("Agg[{i}]")).with_can_spill(true).register(&pool)).collect();
        // A repartition's buffers are granted within the limit (past it the
        // repartition spills) and do not count against the others' shares.
        let rep = MemoryConsumer::new("RepartitionExec[0]").with_can_spill(true).register(&pool);
        rep.try_grow(5000).expect_err("past the limit, a repartition spills");
        rep.try_grow(100).unwrap();
        rs[0].try_grow(400).expect("holding nothing, it may take 400 of the 775 free");
        rs[0].try_grow(400).expect_err("holding 400, it can spill to make room for 400 more");
        rs[0].try_grow(1).expect_err("holding 400, it is past its share of 218 and must spill");
        rs[1].try_grow(175).unwrap();
        rs[2].try_grow(300).expect_err("the repartition's 100 bytes leave 200 besides the headroom");
        rs[2].try_grow(200).unwrap();
        assert_eq!(pool.reserved(), 875);
        rep.try_grow(100).expect_err("the query is at its limit: the headroom is not a repartition's");
        rs[3].try_grow(300).expect_err("the pool is full and 300 is past its share");
        rs[3].try_grow(175).expect("its even share is granted even now");
        drop(rep);
        assert_eq!(cn.used(), 950);
    }

    #[test]
    fn a_spilling_operator_holding_less_than_it_asks_may_borrow() {
        let (cn, _dir) = cn(1000, 10_000);
        let pool: Arc<dyn MemoryPool> = cn.query_pool(1000);
        let rs: Vec<_> =
            (0..5).map(|i| MemoryConsumer::new(format!("Agg[{i}]")).with_can_spill(true).register(&pool)).collect();
        // Shares of 175; the pool is mostly free.
        rs[0].try_grow(100).unwrap();
        rs[0].try_grow(300).expect("holding 100, spilling cannot make room for 300: it borrows");
        rs[0].try_grow(300).expect_err("holding 400, it spills first");
        rs[1].try_grow(500).expect_err("the pool has 475 free besides the headroom");
    }

    #[test]
    fn an_unspillable_operator_gets_the_headroom_the_spilling_ones_leave() {
        let (cn, _dir) = cn(1000, 10_000);
        let pool: Arc<dyn MemoryPool> = cn.query_pool(1000);
        let aggs: Vec<_> =
            (0..2).map(|i| MemoryConsumer::new(format!("Agg[{i}]")).with_can_spill(true).register(&pool)).collect();
        // Each takes its even share of the 875 bytes besides the headroom.
        aggs[0].try_grow(437).unwrap();
        aggs[1].try_grow(437).unwrap();
        assert_eq!(pool.reserved(), 874);
        let topk = MemoryConsumer::new("TopK[0]").register(&pool);
        topk.try_grow(100).expect("the headroom is the TopK's");
        assert_eq!((pool.reserved(), cn.used()), (974, 974));
        topk.try_grow(100).expect_err("25 bytes of headroom and 1 free byte are too few");
        topk.try_grow(26).expect("25 of headroom and the free byte");
        topk.shrink(126);
        assert_eq!(pool.reserved(), 874);
        topk.try_grow(125).expect("the shrunk bytes went back to the headroom");
        topk.try_grow(2).expect_err("and no more");
        topk.shrink(125);
        // A third spilling operator's even share (291) is granted although
        // the pool is full: the query is past its limit. The headroom is
        // still the TopK's.
        let late = MemoryConsumer::new("Agg[late]").with_can_spill(true).register(&pool);
        late.try_grow(291).unwrap();
        assert_eq!(pool.reserved(), 874 + 291);
        topk.try_grow(100).expect("a transfer from the headroom");
        topk.try_grow(26).expect_err("past the headroom the pool has no room");
        drop(late);
        drop(topk);
        drop(aggs);
        assert_eq!((pool.reserved(), cn.used()), (0, 0));
    }

    #[test]
    fn shard_scan_buffers_hold_at_most_their_budget_and_never_the_headroom() {
        let (cn, _dir) = cn(1600, 10_000);
        let pool: Arc<dyn MemoryPool> = cn.query_pool(1600);
        let scans: Vec<_> = (0..2).map(|i| MemoryConsumer::new(format!("ShardScan[{i}]")).register(&pool)).collect();
        // The budget is 1600 / 16 = 100 bytes for all scans together.
        scans[0].try_grow(60).unwrap();
        let e = scans[1].try_grow(60).unwrap_err().to_string();
        assert!(e.contains("ShardScan[1]") && e.contains("100 bytes"), "{e}");
        scans[1].try_grow(40).unwrap();
        scans[0].shrink(60);
        scans[1].try_grow(60).expect("what a scan handed on is budget again");
        drop(scans);
        // A pool whose spilling operators took everything but the headroom:
        // a scan gets none of it (a TopK does).
        let agg = MemoryConsumer::new("Agg[0]").with_can_spill(true).register(&pool);
        agg.try_grow(1400).unwrap();
        let scan = MemoryConsumer::new("ShardScan[0]").register(&pool);
        scan.try_grow(50).expect_err("the headroom is not a scan's");
        let topk = MemoryConsumer::new("TopK[0]").register(&pool);
        topk.try_grow(50).expect("the headroom is a TopK's");
        drop((agg, scan, topk));
        assert_eq!(cn.used(), 0);
    }

    #[test]
    fn queries_together_hold_at_most_the_cn_total() {
        let (cn, _dir) = cn(800, 1000);
        let a: Arc<dyn MemoryPool> = cn.query_pool(800);
        let b: Arc<dyn MemoryPool> = cn.query_pool(800);
        let ra = MemoryConsumer::new("A").register(&a);
        let rb = MemoryConsumer::new("B").register(&b);
        ra.try_grow(700).unwrap();
        let e = rb.try_grow(400).unwrap_err().to_string();
        assert!(e.contains("memory-total") && e.contains(" B "), "{e}");
        assert_eq!(b.reserved(), 0, "the refused query's pool is left as it was");
        rb.try_grow(300).unwrap();
        assert_eq!(cn.used(), 1000);
        drop(ra);
        rb.try_grow(400).unwrap();
        assert_eq!(cn.used(), 700);
    }

    #[test]
    fn a_sorts_merge_leaves_room_for_the_other_partitions_sorts() {
        let (cn, _dir) = cn(16_000, 100_000);
        let pool: Arc<dyn MemoryPool> = cn.query_pool(16_000);
        let merges: Vec<_> =
            (0..2).map(|i| MemoryConsumer::new(format!("ExternalSorterMerge[{i}]")).register(&pool)).collect();
        merges[0].try_grow(1000).unwrap();
        // Reading spill files one buffer at a time, as DataFusion's merge
        // does, until refused.
        while merges[0].try_grow(500).is_ok() {}
        assert_eq!(merges[0].size(), 16_000 / SORT_MERGE_DIVISOR, "capped at a quarter of the limit");
        let e = merges[0].try_grow(500).unwrap_err().to_string();
        assert!(e.contains("a sort's merge holds at most 4000 bytes"), "{e}");
        merges[1].try_grow(1000).expect("the other partition's sort sets aside its merge memory");
    }

    #[test]
    fn the_spill_directory_is_the_cns_own_and_goes_with_it() {
        let (cn, dir) = cn(1000, 1000);
        let dirs = cn.spill_dirs();
        assert_eq!(dirs.len(), 1);
        assert!(dirs[0].starts_with(dir.path().join("spill")) && dirs[0].is_dir());
        let f = cn.disk().create_tmp_file("test").unwrap();
        let path = f.path().unwrap().to_path_buf();
        assert!(path.starts_with(&dirs[0]) && path.exists());
        assert_eq!(cn.spilled_now().1, 1);
        drop(f);
        assert!(!path.exists(), "a spill file is removed with its last reference");
        assert_eq!(cn.spilled_now().1, 0);
        drop(cn);
        assert!(!dirs[0].exists(), "the CN's spill directory goes with the CN");
    }
}
