//! The shard scan: a DataFusion [`ExecutionPlan`] with one output partition
//! per shard access. Each partition runs one physical SELECT on its DN and
//! streams the rows back as Arrow batches.
//!
//! The plan carries only its physical SQL and DN per partition (no live
//! connection), so it can later be serialized and run on another CN.

use super::convert::rows_to_batch;
use crate::error::CnError;
use crate::protocol::resultset::TextRow;
use crate::txn::{value_bytes, ConnSource};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties};
use futures::StreamExt;
use mysql_async::prelude::*;
use std::fmt;
use std::sync::Arc;

/// Rows per Arrow batch produced by a shard scan, at most: fewer when the
/// session's batch size is smaller (a query with a small memory limit).
pub const BATCH_ROWS: usize = 4096;

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
    schema: SchemaRef,
    source: ConnSource,
    props: Arc<PlanProperties>,
}

impl fmt::Debug for ShardScanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardScanExec").field("queries", &self.queries).finish()
    }
}

impl ShardScanExec {
    pub fn new(queries: Vec<ShardQuery>, schema: SchemaRef, source: ConnSource) -> Self {
        let props = PlanProperties::new(
            EquivalenceProperties::new(schema.clone()),
            Partitioning::UnknownPartitioning(queries.len().max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        ShardScanExec { queries, schema, source, props: Arc::new(props) }
    }

    /// The same scan with `suffix` (a locking clause) after every query.
    pub fn with_suffix(&self, suffix: &str) -> Self {
        let mut queries = self.queries.clone();
        for q in &mut queries {
            q.sql.push_str(suffix);
        }
        ShardScanExec { queries, schema: self.schema.clone(), source: self.source.clone(), props: self.props.clone() }
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
        // When several partitions may share one DN connection (a
        // transaction's branch, a snapshot's view), a partition must not
        // stall holding it: buffer without bound there; a scan with its own
        // connection streams with backpressure.
        let (tx, rx) = if source.shared() {
            let (tx, rx) = futures::channel::mpsc::unbounded::<Result<_>>();
            (Sender::Unbounded(tx), futures::future::Either::Left(rx))
        } else {
            let (tx, rx) = futures::channel::mpsc::channel::<Result<_>>(2);
            (Sender::Bounded(tx), futures::future::Either::Right(rx))
        };
        let s2 = schema.clone();
        tokio::spawn(async move {
            let mut tx = tx;
            if let Err(e) = run_query(&source, &q, &s2, batch_rows, &mut tx).await {
                tx.send(Err(ext(e))).await;
            }
        });
        let stream = match rx {
            futures::future::Either::Left(r) => r.boxed(),
            futures::future::Either::Right(r) => r.boxed(),
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

enum Sender<T> {
    Bounded(futures::channel::mpsc::Sender<T>),
    Unbounded(futures::channel::mpsc::UnboundedSender<T>),
}

impl<T> Sender<T> {
    /// Sends; false when the receiver is gone (the query was cancelled).
    async fn send(&mut self, v: T) -> bool {
        use futures::SinkExt;
        match self {
            Sender::Bounded(s) => s.send(v).await.is_ok(),
            Sender::Unbounded(s) => s.unbounded_send(v).is_ok(),
        }
    }
}

async fn run_query(
    source: &ConnSource,
    q: &ShardQuery,
    schema: &SchemaRef,
    batch_rows: usize,
    tx: &mut Sender<Result<datafusion::arrow::record_batch::RecordBatch>>,
) -> crate::error::Result<()> {
    let cluster = source.cluster().clone();
    let dn = cluster.dn(q.dn)?.clone();
    let mut c = source.get(q.dn).await?;
    let mut result = c.query_iter(q.sql.as_str()).await.map_err(|e| dn.err(e))?;
    let mut rows: Vec<TextRow> = Vec::with_capacity(batch_rows);
    while let Some(row) = result.next().await.map_err(|e| dn.err(e))? {
        let vals: TextRow = row.unwrap().into_iter().map(value_bytes).collect();
        rows.push(vals);
        if rows.len() == batch_rows {
            let b = rows_to_batch(schema, &rows)?;
            rows.clear();
            if !tx.send(Ok(b)).await {
                return Ok(());
            }
        }
    }
    if !rows.is_empty() {
        let b = rows_to_batch(schema, &rows)?;
        tx.send(Ok(b)).await;
    }
    Ok(())
}
