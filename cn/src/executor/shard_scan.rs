//! The shard scan: a DataFusion [`ExecutionPlan`] with one output partition
//! per shard access. Each partition runs one physical SELECT on its DN and
//! streams the rows back as Arrow batches.
//!
//! The plan carries only its physical SQL and DN per partition (no live
//! connection), so it can later be serialized and run on another CN.
//!
//! Buffers: a scan with a connection of its own streams with backpressure
//! (at most two batches in flight). Scans that share a connection (a
//! transaction's branch, a statement snapshot's view) must each read their
//! result to the end before the next can run, whether or not the plan is
//! reading them yet, so they buffer without backpressure: those buffers
//! are reserved from the query's memory pool (`ShardScan[p]`, an operator
//! that cannot spill by itself; all such scans of a query together hold at
//! most [`super::memory::SCAN_BUFFER_DIVISOR`]th of its limit), and a batch
//! the pool refuses is written
//! to a spill file instead (several such batches to one file) and read
//! back when the plan gets to it. Rows come out in no particular order.

use super::convert::rows_to_batch;
use super::spill::{SpillFile, SpillOut, Spiller};
use crate::cluster::KillFlag;
use crate::error::CnError;
use crate::protocol::resultset::TextRow;
use crate::txn::{value_bytes, ConnSource};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::stats::Precision;
use datafusion::common::Statistics;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricsSet, SpillMetrics};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Rows per Arrow batch produced by a shard scan, at most: fewer when the
/// session's batch size is smaller (a query with a small memory limit).
pub const BATCH_ROWS: usize = 4096;

/// Batches a shared-connection scan writes to one spill file before it
/// hands the file on.
const BATCHES_PER_SPILL_FILE: usize = 64;

/// One physical query: which DN, which SQL.
#[derive(Debug, Clone)]
pub struct ShardQuery {
    pub dn: u32,
    /// Partition name, for EXPLAIN.
    pub partition: String,
    pub sql: String,
}

/// Scans shards; output partition i is `queries[i]`.
pub struct ShardScanExec {
    pub queries: Vec<ShardQuery>,
    /// For each query, the per-partition SELECTs it is the `UNION ALL` of
    /// (one when it is not merged; see [`merge_per_dn`]).
    branches: Vec<Vec<String>>,
    schema: SchemaRef,
    source: ConnSource,
    props: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
    /// Estimated rows of all shards together, from `ANALYZE TABLE`
    /// statistics ([`crate::catalog::statistics`]); `None` when unknown.
    estimated_rows: Option<usize>,
}

impl fmt::Debug for ShardScanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardScanExec").field("queries", &self.queries).finish()
    }
}

impl ShardScanExec {
    /// A scan of `queries` (one per partition) on `source`; the queries of
    /// one DN are merged when the source has fewer connections per DN than
    /// there are queries ([`merge_per_dn`]).
    pub fn new(queries: Vec<ShardQuery>, schema: SchemaRef, source: ConnSource) -> Self {
        let (queries, branches) = merge_per_dn(queries, source.connections_per_dn());
        let props = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(queries.len().max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        ShardScanExec {
            queries,
            branches,
            schema,
            source,
            props: Arc::new(props),
            metrics: ExecutionPlanMetricsSet::new(),
            estimated_rows: None,
        }
    }

    /// The same scan with an estimate of its rows (all shards together),
    /// which [`ExecutionPlan::partition_statistics`] reports as inexact:
    /// DataFusion's join selection then builds on the smaller input.
    pub fn with_estimated_rows(mut self, rows: Option<f64>) -> Self {
        self.estimated_rows = rows.map(|r| r.round().max(0.0) as usize);
        self
    }

    /// The same scan with `suffix` (a locking clause) after every
    /// partition's SELECT (inside the parentheses of a merged query).
    pub fn with_suffix(&self, suffix: &str) -> Self {
        let mut queries = self.queries.clone();
        let branches: Vec<Vec<String>> =
            self.branches.iter().map(|b| b.iter().map(|sql| format!("{sql}{suffix}")).collect()).collect();
        for (q, b) in queries.iter_mut().zip(&branches) {
            q.sql = union_all(b);
        }
        ShardScanExec {
            queries,
            branches,
            schema: self.schema.clone(),
            source: self.source.clone(),
            props: self.props.clone(),
            metrics: ExecutionPlanMetricsSet::new(),
            estimated_rows: self.estimated_rows,
        }
    }
}

/// Merges the queries of each DN into at most `per_dn` queries, each the
/// `UNION ALL` of the partitions' SELECTs in parentheses (PolarDB-X merges a
/// DN's physical tables into one UNION query the same way): a transaction
/// has one connection per DN (its branch) and a statement snapshot at most
/// [`crate::txn::snapshot::MAX_VIEWS_PER_DN`], so the partitions of one DN
/// run one after the other anyway; merged, they cost one round trip per
/// connection instead of one per partition, and each connection streams
/// one query. MariaDB runs a UNION ALL without a temporary table, and a
/// scan promises no order. `None` (pooled connections, one per query)
/// merges nothing, nor does a query that is not a plain SELECT (MariaDB
/// refuses a WITH inside a UNION's parentheses). Returns the queries and, for each, its branches.
pub fn merge_per_dn(queries: Vec<ShardQuery>, per_dn: Option<usize>) -> (Vec<ShardQuery>, Vec<Vec<String>>) {
    let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
    for q in &queries {
        *counts.entry(q.dn).or_default() += 1;
    }
    // MariaDB takes no WITH inside a UNION's parentheses: only SELECTs merge.
    let selects = queries.iter().all(|q| q.sql.trim_start().get(..6).is_some_and(|w| w.eq_ignore_ascii_case("SELECT")));
    let per_dn = match per_dn.map(|n| n.max(1)) {
        Some(n) if selects && counts.values().any(|c| *c > n) => n,
        _ => {
            let branches = queries.iter().map(|q| vec![q.sql.clone()]).collect();
            return (queries, branches);
        }
    };
    let mut by_dn: BTreeMap<u32, Vec<ShardQuery>> = BTreeMap::new();
    for q in queries {
        by_dn.entry(q.dn).or_default().push(q);
    }
    let mut out = Vec::new();
    let mut branches = Vec::new();
    for (dn, qs) in by_dn {
        // Round-robin into `per_dn` groups, so each holds about as many partitions.
        let groups = qs.len().min(per_dn);
        let mut grouped: Vec<Vec<ShardQuery>> = vec![Vec::new(); groups];
        for (i, q) in qs.into_iter().enumerate() {
            grouped[i % groups].push(q);
        }
        for g in grouped {
            let b: Vec<String> = g.iter().map(|q| q.sql.clone()).collect();
            let partition = g.iter().map(|q| q.partition.as_str()).collect::<Vec<_>>().join("+");
            out.push(ShardQuery { dn, partition, sql: union_all(&b) });
            branches.push(b);
        }
    }
    (out, branches)
}

/// One SELECT as it is, several as `(a) UNION ALL (b) …`.
pub(crate) fn union_all(branches: &[String]) -> String {
    match branches {
        [one] => one.clone(),
        many => format!("({})", many.join(") UNION ALL (")),
    }
}

impl DisplayAs for ShardScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "ShardScanExec: shards={}", self.queries.len())?;
        for q in &self.queries {
            write!(f, "\n  dn{} {}: {}", q.dn, q.partition, q.sql)?;
        }
        Ok(())
    }
}

fn ext(e: CnError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

impl ExecutionPlan for ShardScanExec {
    fn name(&self) -> &str {
        "ShardScanExec"
    }
    fn properties(&self) -> &Arc<PlanProperties> {
        &self.props
    }
    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }
    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(
            &Arc<dyn datafusion::physical_expr::PhysicalExpr>,
        ) -> Result<datafusion::common::tree_node::TreeNodeRecursion>,
    ) -> Result<datafusion::common::tree_node::TreeNodeRecursion> {
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    }
    fn with_new_children(self: Arc<Self>, _children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }
    /// Inexact row counts from the estimate (a partition's share of it),
    /// nothing else: never exact, so no rule answers `COUNT(*)` from it.
    fn partition_statistics(&self, partition: Option<usize>) -> Result<Arc<Statistics>> {
        let mut st = Statistics::new_unknown(&self.schema);
        if let Some(rows) = self.estimated_rows {
            let n = match partition {
                Some(_) => rows / self.queries.len().max(1),
                None => rows,
            };
            st.num_rows = Precision::Inexact(n);
        }
        Ok(Arc::new(st))
    }
    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
    fn with_new_children_and_same_properties(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(&self, partition: usize, ctx: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let schema = self.schema.clone();
        let batch_rows = ctx.session_config().batch_size().clamp(1, BATCH_ROWS);
        let Some(q) = self.queries.get(partition).cloned() else {
            // No shard survived pruning: one empty partition.
            return Ok(Box::pin(RecordBatchStreamAdapter::new(schema, futures::stream::empty())));
        };
        let source = self.source.clone();
        let s2 = schema.clone();
        let kill = ctx.session_config().get_extension::<KillFlag>();
        if !source.shared() {
            // A connection of its own: stream with backpressure.
            let (tx, rx) = futures::channel::mpsc::channel::<Result<RecordBatch>>(2);
            let mut tx = Sender::Bounded(tx);
            tokio::spawn(async move {
                if let Err(e) = run_query(&source, &q, &s2, batch_rows, &mut tx, kill.as_deref()).await {
                    tx.error(ext(e)).await;
                }
            });
            return Ok(Box::pin(RecordBatchStreamAdapter::new(schema, rx)));
        }
        // A shared connection: a partition must not stall holding it, so
        // it buffers without backpressure, in the pool's memory or on disk.
        let reservation = Arc::new(MemoryConsumer::new(format!("ShardScan[{partition}]")).register(ctx.memory_pool()));
        let spill = Arc::new(Spiller::new(&ctx, SpillMetrics::new(&self.metrics, partition), schema.clone()));
        let (tx, rx) = futures::channel::mpsc::unbounded::<Buffered>();
        let mut tx = Sender::Buffered { tx, reservation: reservation.clone(), spill: spill.clone(), file: None };
        tokio::spawn(async move {
            let r = run_query(&source, &q, &s2, batch_rows, &mut tx, kill.as_deref()).await;
            match r {
                Ok(()) => tx.finish().await,
                Err(e) => tx.error(ext(e)).await,
            }
        });
        // Batches in memory give their bytes back as they leave; a spill
        // file is read back batch by batch.
        let stream = rx
            .map(move |item| -> futures::stream::BoxStream<'static, Result<RecordBatch>> {
                match item {
                    Buffered::Batch(b, bytes) => {
                        reservation.shrink(bytes);
                        futures::stream::once(async move { Ok(b) }).boxed()
                    }
                    Buffered::File(f) => match spill.read(&Some(f)) {
                        Ok(s) => s.boxed(),
                        Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
                    },
                    Buffered::Error(e) => futures::stream::once(async move { Err(e) }).boxed(),
                }
            })
            .flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// What a shared-connection scan hands on: a batch and the bytes reserved
/// for it, a spill file of batches, or the scan's error.
enum Buffered {
    Batch(RecordBatch, usize),
    File(SpillFile),
    Error(DataFusionError),
}

/// Where a scan's batches go.
enum Sender {
    /// To the plan, with backpressure.
    Bounded(futures::channel::mpsc::Sender<Result<RecordBatch>>),
    /// To the plan without backpressure: in memory while the pool grants
    /// `reservation`, else into `file`.
    Buffered {
        tx: futures::channel::mpsc::UnboundedSender<Buffered>,
        reservation: Arc<MemoryReservation>,
        spill: Arc<Spiller>,
        file: Option<Box<SpillOut>>,
    },
}

impl Sender {
    /// Sends a batch; false when the receiver is gone (the query was
    /// cancelled). Errors: a spill file cannot be written.
    async fn send(&mut self, b: RecordBatch) -> Result<bool> {
        use futures::SinkExt;
        match self {
            Sender::Bounded(s) => Ok(s.send(Ok(b)).await.is_ok()),
            Sender::Buffered { tx, reservation, spill, file } => {
                let bytes = b.get_array_memory_size();
                if file.is_none() && reservation.try_grow(bytes).is_ok() {
                    if tx.unbounded_send(Buffered::Batch(b, bytes)).is_err() {
                        reservation.shrink(bytes);
                        return Ok(false);
                    }
                    return Ok(true);
                }
                let f = match file {
                    Some(f) => f,
                    None => file.insert(Box::new(spill.create("ShardScan buffer")?)),
                };
                spill.append(f, &b)?;
                if f.batches() >= BATCHES_PER_SPILL_FILE {
                    return self.hand_on_file();
                }
                Ok(true)
            }
        }
    }

    /// Hands the spill file being written (if any) to the plan.
    fn hand_on_file(&mut self) -> Result<bool> {
        let Sender::Buffered { tx, file, spill, .. } = self else { return Ok(true) };
        let Some(f) = file.take() else { return Ok(true) };
        let done = spill.finish(*f)?;
        Ok(tx.unbounded_send(Buffered::File(done)).is_ok())
    }

    /// The scan read its last row.
    async fn finish(&mut self) {
        if let Err(e) = self.hand_on_file() {
            self.error(e).await;
        }
    }

    async fn error(&mut self, e: DataFusionError) {
        use futures::SinkExt;
        match self {
            Sender::Bounded(s) => {
                let _ = s.send(Err(e)).await;
            }
            Sender::Buffered { tx, .. } => {
                let _ = tx.unbounded_send(Buffered::Error(e));
            }
        }
    }
}

/// Runs one shard query and sends its rows on in batches of `batch_rows`.
/// At the session's KILL QUERY (`kill`), the DN's query is killed too
/// ([`crate::cluster::Cluster::killable`]): the plan has stopped reading,
/// and the DN would otherwise run the query to its end.
async fn run_query(
    source: &ConnSource,
    q: &ShardQuery,
    schema: &SchemaRef,
    batch_rows: usize,
    tx: &mut Sender,
    kill: Option<&KillFlag>,
) -> crate::error::Result<()> {
    let cluster = source.cluster().clone();
    let dn = cluster.dn(q.dn)?.clone();
    let mut c = source.get(q.dn).await?;
    let thread = c.id();
    let read = async {
        let mut result = c.query_iter(q.sql.as_str()).await.map_err(|e| dn.err(e))?;
        let mut rows: Vec<TextRow> = Vec::with_capacity(batch_rows);
        while let Some(row) = result.next().await.map_err(|e| dn.err(e))? {
            let vals: TextRow = row.unwrap().into_iter().map(value_bytes).collect();
            rows.push(vals);
            if rows.len() == batch_rows {
                let b = rows_to_batch(schema, &rows)?;
                rows.clear();
                if !tx.send(b).await? {
                    return Ok(());
                }
            }
        }
        if !rows.is_empty() {
            let b = rows_to_batch(schema, &rows)?;
            tx.send(b).await?;
        }
        Ok(())
    };
    match kill {
        Some(kill) => cluster.killable(kill, q.dn, thread, read).await,
        None => read.await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(dn: u32, p: usize) -> ShardQuery {
        ShardQuery { dn, partition: format!("p{p}"), sql: format!("SELECT a FROM t_p{p}") }
    }

    #[test]
    fn queries_of_a_dn_merge_into_its_connections() {
        let qs: Vec<ShardQuery> = (0..6).map(|p| q((p % 2) as u32, p)).collect();
        // Pooled connections: nothing merges.
        let (out, branches) = merge_per_dn(qs.clone(), None);
        assert_eq!(out.len(), 6);
        assert!(branches.iter().all(|b| b.len() == 1));
        // One connection per DN (a transaction): one query per DN.
        let (out, branches) = merge_per_dn(qs.clone(), Some(1));
        let got: Vec<(u32, &str, &str)> = out.iter().map(|q| (q.dn, q.partition.as_str(), q.sql.as_str())).collect();
        assert_eq!(
            got,
            [
                (0, "p0+p2+p4", "(SELECT a FROM t_p0) UNION ALL (SELECT a FROM t_p2) UNION ALL (SELECT a FROM t_p4)"),
                (1, "p1+p3+p5", "(SELECT a FROM t_p1) UNION ALL (SELECT a FROM t_p3) UNION ALL (SELECT a FROM t_p5)"),
            ]
        );
        assert_eq!(branches[0], ["SELECT a FROM t_p0", "SELECT a FROM t_p2", "SELECT a FROM t_p4"]);
        // Two per DN: three partitions split 2 + 1; at least as many
        // connections as queries: unchanged.
        let (out, _) = merge_per_dn(qs.clone(), Some(2));
        let parts: Vec<&str> = out.iter().map(|q| q.partition.as_str()).collect();
        assert_eq!(parts, ["p0+p4", "p2", "p1+p5", "p3"]);
        assert_eq!(out[1].sql, "SELECT a FROM t_p2");
        let mut with = qs.clone();
        with[5].sql = "WITH x AS (SELECT 1) SELECT a FROM t_p5".into();
        assert_eq!(merge_per_dn(with, Some(1)).0.len(), 6);
        let (out, _) = merge_per_dn(qs.clone(), Some(4));
        assert_eq!(out.iter().map(|q| &q.sql).collect::<Vec<_>>(), qs.iter().map(|q| &q.sql).collect::<Vec<_>>());
    }
}
