//! The hybrid (grace) hash join: an equi-join whose build side need not fit
//! in memory.
//!
//! The algorithm is the grace hash join of Kitsuregawa, Tanaka and
//! Moto-oka ("Application of hash to data base machine and its
//! architecture", 1983) in its hybrid form (DeWitt et al., "Implementation
//! techniques for main memory database systems", SIGMOD 1984), as
//! PolarDB-X's `HybridHashJoinExec` runs it:
//!
//! 1. **Build.** Build rows are hashed on the join keys (seed of level 0)
//!    into [`FANOUT`] partitions kept in memory, each batch reserved from
//!    the query's memory pool. When a reservation is refused, the largest
//!    in-memory partition is written to a spill file (Arrow IPC, compressed
//!    with the session's `spill_compression`) and every later build row of
//!    that partition goes to the file too.
//! 2. **Probe.** The partitions still in memory get a hash table. Each probe
//!    row is hashed the same way: rows of an in-memory partition are joined
//!    at once, rows of a spilled partition are written to that partition's
//!    probe file.
//! 3. **Spilled pairs.** Each spilled (build file, probe file) pair is
//!    joined like the inputs were, one level deeper, with another hash seed,
//!    so a partition that was too large splits again. The smaller file of a
//!    pair is its build side: a pair whose probe file is smaller is joined
//!    *reversed* (role reversal, as in Graefe's survey "Query evaluation
//!    techniques for large databases", 1993), by the same code with
//!    the join type mirrored and the output and filter columns taken from
//!    the other side. A plan built without statistics often hashes the
//!    larger input; reversed, such a pair is read once instead of being
//!    split again level after level. A pair that does not split (every row
//!    has the same key: a hot key), or still too large [`MAX_DEPTH`] levels
//!    down, is joined in chunks instead: as much of the build file as the
//!    pool grants at a time (at least one batch), each chunk against the whole probe
//!    file (a block nested-loop over hash tables), with one bit per probe
//!    row remembering matches across chunks.
//!
//! Join types: inner, left, right, full, left semi/anti, right semi/anti,
//! with the equality keys `on` and an optional residual [`JoinFilter`]
//! evaluated on candidate pairs, as in DataFusion's `HashJoinExec` (whose
//! left input is likewise the build side). Under
//! `NullEquality::NullEqualsNothing` a row with a NULL key matches nothing:
//! such build rows are emitted at once where the join type keeps unmatched
//! build rows (left, full, left anti) and dropped otherwise; probe rows
//! likewise. Output rows come in no particular order.
//!
//! A *null-aware* left anti join (`x NOT IN (subquery)`, DataFusion's
//! `HashJoinExec` with `null_aware`; one key, no residual filter) follows
//! SQL's three-valued `NOT IN`: when the probe side (the subquery) has a
//! NULL key, no row is emitted at all; a build row with a NULL key is
//! emitted only when the probe side has no rows. Such build rows are
//! therefore held back in a spill file of their own until the probe side
//! has been read, and the join runs as one partition so that what the
//! probe side holds is known whole.
//!
//! Each output partition joins input partition `p` of the build side with
//! input partition `p` of the probe side, so the inputs must be partitioned
//! alike (hash-partitioned on the keys, or one partition each); the
//! [`HybridHashJoinRule`] takes care of that when it replaces a
//! `HashJoinExec`.
//!
//! Spill files are created through the query's DataFusion `DiskManager`
//! and removed when dropped: when their pair is joined, or when the query
//! ends, fails or is cancelled (dropping the output stream aborts the
//! join's task). EXPLAIN ANALYZE shows `spill_count`, `spilled_bytes`,
//! `spilled_rows`, `peak_mem_used`, `spill_depth` (the deepest level a
//! spilled pair was joined at, summed over partitions), `chunks` (chunks of
//! pairs joined in chunks; each read its pair's whole probe file) and
//! `reversals` (pairs joined reversed).

use super::spill::{SpillFile, SpillOut, Spiller};
use datafusion::arrow::array::{
    new_null_array, Array, ArrayRef, BooleanArray, BooleanBufferBuilder, RecordBatch, UInt32Array,
};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::compute::kernels::cmp::{eq, not_distinct};
use datafusion::arrow::compute::{concat_batches, filter_record_batch, take, take_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::config::ConfigOptions;
use datafusion::common::hash_utils::{create_hashes, RandomState};
use datafusion::common::runtime::SpawnedTask;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{JoinSide, JoinType, NullEquality};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr, PhysicalExprRef};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::joins::utils::{build_join_schema, ColumnIndex, JoinFilter};
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, Gauge, MetricBuilder, MetricsSet, SpillMetrics,
};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::ExecutionPlanProperties;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::StreamExt;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// Partitions per level: the build side splits 16 ways at each level.
pub const FANOUT: usize = 16;

/// Levels of re-partitioning before a pair is joined in chunks.
pub const MAX_DEPTH: usize = 4;

/// A batch smaller than this (bytes) joins a chunk even past the pool's
/// share: halving it further would not help.
const MIN_CHUNK: usize = 64 << 10;

/// The hash seed of level 0; level `l` uses `SEED + l`.
const SEED: u64 = 0x6a09_e667_f3bc_c908;

/// A hybrid (grace) hash join; see the module documentation. The left
/// input is the build side, the right input the probe side.
#[derive(Debug)]
pub struct HybridHashJoinExec {
    left: Arc<dyn ExecutionPlan>,
    right: Arc<dyn ExecutionPlan>,
    on: Vec<(PhysicalExprRef, PhysicalExprRef)>,
    filter: Option<JoinFilter>,
    join_type: JoinType,
    null_equality: NullEquality,
    /// `NOT IN` semantics (left anti joins only); see the module docs.
    null_aware: bool,
    /// Indices into the join schema of the output columns (`None`: all).
    projection: Option<Vec<usize>>,
    join_schema: SchemaRef,
    column_indices: Vec<ColumnIndex>,
    props: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl HybridHashJoinExec {
    /// A join of `left` (build) and `right` (probe) on `on` (pairs of
    /// left and right key expressions) with an optional residual `filter`;
    /// `projection` picks output columns of the join schema
    /// (`build_join_schema(left, right, join_type)`); `partitioning` is
    /// what the output claims, with as many partitions as each input has.
    ///
    /// Errors: the inputs have different partition counts, `partitioning`
    /// another count, no keys, or a mark join type.
    #[allow(clippy::too_many_arguments)]
    pub fn try_new(
        left: Arc<dyn ExecutionPlan>,
        right: Arc<dyn ExecutionPlan>,
        on: Vec<(PhysicalExprRef, PhysicalExprRef)>,
        filter: Option<JoinFilter>,
        join_type: JoinType,
        null_equality: NullEquality,
        projection: Option<Vec<usize>>,
        partitioning: Partitioning,
    ) -> Result<Self> {
        let n = left.output_partitioning().partition_count();
        if right.output_partitioning().partition_count() != n || partitioning.partition_count() != n {
            return Err(DataFusionError::Plan(format!(
                "HybridHashJoinExec: {n} build partitions, {} probe partitions, {} output partitions",
                right.output_partitioning().partition_count(),
                partitioning.partition_count()
            )));
        }
        if on.is_empty() {
            return Err(DataFusionError::Plan("HybridHashJoinExec needs equality keys".into()));
        }
        if !supported(join_type) {
            return Err(DataFusionError::NotImplemented(format!("HybridHashJoinExec for {join_type} joins")));
        }
        let (schema, column_indices) = build_join_schema(&left.schema(), &right.schema(), &join_type);
        let join_schema = Arc::new(schema);
        let out_schema = match &projection {
            Some(p) => Arc::new(join_schema.project(p)?),
            None => join_schema.clone(),
        };
        let props = PlanProperties::new(
            EquivalenceProperties::new(out_schema),
            partitioning,
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Ok(HybridHashJoinExec {
            left,
            right,
            on,
            filter,
            join_type,
            null_equality,
            null_aware: false,
            projection,
            join_schema,
            column_indices,
            props: Arc::new(props),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// The join with (or without) `NOT IN` semantics: a NULL probe key
    /// empties the result, a NULL build key is kept only against an empty
    /// probe side (see the module documentation).
    ///
    /// Errors: `null_aware` on anything but a single-partition left anti
    /// join with one key, no residual filter and `NullEqualsNothing`.
    pub fn with_null_aware(mut self, null_aware: bool) -> Result<Self> {
        if null_aware
            && (self.join_type != JoinType::LeftAnti
                || self.on.len() != 1
                || self.filter.is_some()
                || self.null_equality != NullEquality::NullEqualsNothing
                || self.props.output_partitioning().partition_count() != 1)
        {
            return Err(DataFusionError::Plan(format!(
                "HybridHashJoinExec: a null-aware join must be a one-partition left anti join on one key without \
                 a filter (got {} on {} keys, {} partitions)",
                self.join_type,
                self.on.len(),
                self.props.output_partitioning().partition_count()
            )));
        }
        self.null_aware = null_aware;
        Ok(self)
    }

    /// The join type.
    pub fn join_type(&self) -> JoinType {
        self.join_type
    }
}

/// Whether [`HybridHashJoinExec`] runs this join type (all but the mark joins).
pub fn supported(t: JoinType) -> bool {
    !matches!(t, JoinType::LeftMark | JoinType::RightMark)
}

impl DisplayAs for HybridHashJoinExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let on: Vec<String> = self.on.iter().map(|(l, r)| format!("({l}, {r})")).collect();
        write!(f, "HybridHashJoinExec: join_type={:?}, on=[{}]", self.join_type, on.join(", "))?;
        if self.null_aware {
            write!(f, ", null_aware")?;
        }
        if let Some(filt) = &self.filter {
            write!(f, ", filter={}", filt.expression())?;
        }
        if let Some(p) = &self.projection {
            write!(f, ", projection={p:?}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for HybridHashJoinExec {
    fn name(&self) -> &str {
        "HybridHashJoinExec"
    }
    fn properties(&self) -> &Arc<PlanProperties> {
        &self.props
    }
    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.left, &self.right]
    }
    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        let keys = self.on.iter().flat_map(|(l, r)| [l.clone(), r.clone()]);
        let filter = self.filter.iter().map(|f| f.expression().clone());
        datafusion::physical_plan::execution_plan::apply_expression_roots(keys.chain(filter), f)
    }
    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        let [left, right]: [Arc<dyn ExecutionPlan>; 2] =
            children.try_into().map_err(|_| DataFusionError::Internal("HybridHashJoinExec has two children".into()))?;
        Ok(Arc::new(
            HybridHashJoinExec::try_new(
                left,
                right,
                self.on.clone(),
                self.filter.clone(),
                self.join_type,
                self.null_equality,
                self.projection.clone(),
                self.props.output_partitioning().clone(),
            )?
            .with_null_aware(self.null_aware)?,
        ))
    }
    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(&self, partition: usize, ctx: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let build = self.left.execute(partition, ctx.clone())?;
        let probe = self.right.execute(partition, ctx.clone())?;
        let spill_metrics = SpillMetrics::new(&self.metrics, partition);
        let spill = |schema: SchemaRef| Arc::new(Spiller::new(&ctx, spill_metrics.clone(), schema));
        let reservation = MemoryConsumer::new(format!("HybridHashJoin[{partition}]"))
            .with_can_spill(true)
            .register(ctx.memory_pool());
        let core = Core {
            build_keys: self.on.iter().map(|(l, _)| l.clone()).collect(),
            probe_keys: self.on.iter().map(|(_, r)| r.clone()).collect(),
            filter: self.filter.clone(),
            join_type: self.join_type,
            null_equality: self.null_equality,
            null_aware: self.null_aware,
            projection: self.projection.clone(),
            join_schema: self.join_schema.clone(),
            column_indices: self.column_indices.clone(),
            build_spill: spill(self.left.schema()),
            probe_spill: spill(self.right.schema()),
            batch_size: ctx.session_config().batch_size().max(1),
            baseline: BaselineMetrics::new(&self.metrics, partition),
            peak: MetricBuilder::new(&self.metrics).gauge("peak_mem_used", partition),
            depth: MetricBuilder::new(&self.metrics).gauge("spill_depth", partition),
            chunks: MetricBuilder::new(&self.metrics).counter("chunks", partition),
            reversals: MetricBuilder::new(&self.metrics).counter("reversals", partition),
        };
        let schema = self.schema();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch>>(2);
        let task = SpawnedTask::spawn(async move {
            let reversed = core.reversed();
            let mut run = Run { core, reversed, is_reversed: false, reservation, tx, not_in: NotIn::default() };
            if let Err(e) = run.join(build, probe).await {
                let _ = run.tx.send(Err(e)).await;
            }
        });
        // The stream owns the task: dropping it aborts the join, which
        // drops (and so removes) its spill files.
        let stream =
            futures::stream::unfold(
                (rx, task),
                |(mut rx, task)| async move { rx.recv().await.map(|b| (b, (rx, task))) },
            );
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// What one output partition's join needs, immutable while it runs.
struct Core {
    build_keys: Vec<PhysicalExprRef>,
    probe_keys: Vec<PhysicalExprRef>,
    filter: Option<JoinFilter>,
    join_type: JoinType,
    null_equality: NullEquality,
    null_aware: bool,
    projection: Option<Vec<usize>>,
    join_schema: SchemaRef,
    column_indices: Vec<ColumnIndex>,
    build_spill: Arc<Spiller>,
    probe_spill: Arc<Spiller>,
    batch_size: usize,
    baseline: BaselineMetrics,
    peak: Gauge,
    /// The deepest level a spilled pair was joined at (0: nothing spilled).
    depth: Gauge,
    /// Chunks of chunked pairs: each one read its pair's whole probe file.
    chunks: Count,
    /// Pairs whose build and probe files swapped roles.
    reversals: Count,
}

/// The join of one output partition: its memory and its output channel.
struct Run {
    core: Core,
    /// `core` with the roles of the inputs swapped, for pairs joined
    /// reversed (see [`Run::orient`]); `is_reversed` says which of the two
    /// `core` is now.
    reversed: Core,
    is_reversed: bool,
    reservation: MemoryReservation,
    tx: tokio::sync::mpsc::Sender<Result<RecordBatch>>,
    not_in: NotIn,
}

/// What a null-aware join learns of its probe side, and the build rows
/// with a NULL key it holds back meanwhile.
#[derive(Default)]
struct NotIn {
    probe_rows: bool,
    probe_null: bool,
    null_build: Option<SpillOut>,
}

/// A build partition at one level.
#[derive(Default)]
struct Part {
    /// Build rows held in memory (while not spilled).
    mem: Vec<RecordBatch>,
    /// Bytes reserved for `mem`.
    bytes: usize,
    /// Build rows routed here.
    rows: usize,
    /// The build file, once spilled.
    build_file: Option<SpillOut>,
    /// The probe file of a spilled partition.
    probe_file: Option<SpillOut>,
}

/// A spilled partition to join later.
struct Pair {
    build: Option<SpillFile>,
    probe: Option<SpillFile>,
    level: usize,
    /// Every build row of the parent landed here: splitting again is futile.
    stuck: bool,
    /// `build` holds rows of the join's probe input and `probe` rows of its
    /// build input (the pair is joined by the reversed core).
    reversed: bool,
}

/// The hash table of the build rows in memory for one partition (or one
/// chunk): rows chained by hash, first row of each hash in `heads`.
struct Table {
    batch: RecordBatch,
    keys: Vec<ArrayRef>,
    heads: HashMap<u64, u32>,
    /// `next[i]`: the next row (plus one) with row i's hash; 0 ends a chain.
    next: Vec<u32>,
    /// Build rows that met a match (kept for left/full/semi/anti joins).
    matched: BooleanBufferBuilder,
    /// Bytes reserved for the table beyond its batches.
    bytes: usize,
}

/// Where a probe of a table stopped: probe row and the next chain entry.
#[derive(Default, Clone, Copy)]
struct Cursor {
    row: usize,
    chain: u32,
    started: bool,
}

/// Key arrays, hashes and a copy of the batch without rows whose keys are
/// NULL (when NULL matches nothing).
struct Keyed {
    batch: RecordBatch,
    keys: Vec<ArrayRef>,
    hashes: Vec<u64>,
}

impl Core {
    /// The same join with the inputs' roles swapped: the right input's
    /// rows are hashed into tables and the left input's probe them. The
    /// join type is mirrored (left outer becomes right outer, left semi
    /// right semi, ...) and the output columns and the filter's columns
    /// name the other side, so the output is the same.
    fn reversed(&self) -> Core {
        let flip = |c: &ColumnIndex| ColumnIndex { index: c.index, side: c.side.negate() };
        Core {
            build_keys: self.probe_keys.clone(),
            probe_keys: self.build_keys.clone(),
            filter: self.filter.as_ref().map(JoinFilter::swap),
            join_type: self.join_type.swap(),
            null_equality: self.null_equality,
            null_aware: self.null_aware,
            projection: self.projection.clone(),
            join_schema: self.join_schema.clone(),
            column_indices: self.column_indices.iter().map(flip).collect(),
            build_spill: self.probe_spill.clone(),
            probe_spill: self.build_spill.clone(),
            batch_size: self.batch_size,
            baseline: self.baseline.clone(),
            peak: self.peak.clone(),
            depth: self.depth.clone(),
            chunks: self.chunks.clone(),
            reversals: self.reversals.clone(),
        }
    }

    fn emits_unmatched_build(&self) -> bool {
        matches!(self.join_type, JoinType::Left | JoinType::Full | JoinType::LeftAnti)
    }
    fn tracks_build(&self) -> bool {
        matches!(self.join_type, JoinType::Left | JoinType::Full | JoinType::LeftSemi | JoinType::LeftAnti)
    }
    fn emits_unmatched_probe(&self) -> bool {
        matches!(self.join_type, JoinType::Right | JoinType::Full | JoinType::RightAnti)
    }
    fn tracks_probe(&self) -> bool {
        matches!(self.join_type, JoinType::Right | JoinType::Full | JoinType::RightSemi | JoinType::RightAnti)
    }
    fn emits_pairs(&self) -> bool {
        matches!(self.join_type, JoinType::Inner | JoinType::Left | JoinType::Right | JoinType::Full)
    }

    /// Evaluates the keys of `batch` and hashes them with `level`'s seed.
    /// Rows with a NULL key (under NullEqualsNothing) are split off and
    /// returned as the second value.
    fn keyed(
        &self,
        batch: RecordBatch,
        exprs: &[PhysicalExprRef],
        level: usize,
    ) -> Result<(Keyed, Option<RecordBatch>)> {
        let n = batch.num_rows();
        let eval = |b: &RecordBatch| -> Result<Vec<ArrayRef>> {
            exprs.iter().map(|e| e.evaluate(b)?.into_array(b.num_rows())).collect()
        };
        let mut keys = eval(&batch)?;
        let mut batch = batch;
        let mut nulls = None;
        if self.null_equality == NullEquality::NullEqualsNothing && keys.iter().any(|k| k.null_count() > 0) {
            let valid: BooleanArray = (0..n).map(|i| Some(keys.iter().all(|k| k.is_valid(i)))).collect();
            let invalid = datafusion::arrow::compute::not(&valid)?;
            nulls = Some(filter_record_batch(&batch, &invalid)?);
            batch = filter_record_batch(&batch, &valid)?;
            keys = eval(&batch)?;
        }
        let mut hashes = vec![0u64; batch.num_rows()];
        create_hashes(&keys, &RandomState::with_seed(SEED.wrapping_add(level as u64)), &mut hashes)?;
        Ok((Keyed { batch, keys, hashes }, nulls))
    }

    fn part_of(hash: u64) -> usize {
        ((hash >> 40) as usize) % FANOUT
    }

    /// Rows of `k` by partition: (partition, row indices).
    fn split(k: &Keyed) -> Vec<(usize, UInt32Array)> {
        let mut idx: Vec<Vec<u32>> = vec![Vec::new(); FANOUT];
        for (i, h) in k.hashes.iter().enumerate() {
            idx[Self::part_of(*h)].push(i as u32);
        }
        idx.into_iter().enumerate().filter(|(_, v)| !v.is_empty()).map(|(p, v)| (p, UInt32Array::from(v))).collect()
    }

    /// An output batch from build rows `b` and probe rows `p` (an absent
    /// side, or a NULL index, gives NULLs), projected.
    fn assemble(
        &self,
        b: Option<(&RecordBatch, &UInt32Array)>,
        p: Option<(&RecordBatch, &UInt32Array)>,
        n: usize,
    ) -> Result<RecordBatch> {
        let mut cols = Vec::with_capacity(self.column_indices.len());
        for (ci, field) in self.column_indices.iter().zip(self.join_schema.fields()) {
            let side = if ci.side == JoinSide::Left { b } else { p };
            cols.push(match side {
                Some((batch, idx)) => take(batch.column(ci.index), idx, None)?,
                None => new_null_array(field.data_type(), n),
            });
        }
        let batch = RecordBatch::try_new_with_options(
            self.join_schema.clone(),
            cols,
            &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(n)),
        )?;
        Ok(match &self.projection {
            Some(proj) => batch.project(proj)?,
            None => batch,
        })
    }

    /// Output for build rows that can never match (NULL keys).
    fn unmatched_build_rows(&self, batch: &RecordBatch, out: &mut Vec<RecordBatch>) -> Result<()> {
        if !self.emits_unmatched_build() || batch.num_rows() == 0 {
            return Ok(());
        }
        for start in (0..batch.num_rows()).step_by(self.batch_size) {
            let len = self.batch_size.min(batch.num_rows() - start);
            let idx = UInt32Array::from_iter_values((start..start + len).map(|i| i as u32));
            out.push(self.assemble(Some((batch, &idx)), None, len)?);
        }
        Ok(())
    }

    /// Output for probe rows by their match bits: unmatched rows (right,
    /// full, right anti) or matched rows (right semi).
    fn probe_rows_by_match(
        &self,
        batch: &RecordBatch,
        matched: &BooleanBuffer,
        out: &mut Vec<RecordBatch>,
    ) -> Result<()> {
        let want_matched = self.join_type == JoinType::RightSemi;
        if !self.tracks_probe() {
            return Ok(());
        }
        let idx: Vec<u32> =
            (0..batch.num_rows()).filter(|&i| matched.value(i) == want_matched).map(|i| i as u32).collect();
        for chunk in idx.chunks(self.batch_size) {
            let idx = UInt32Array::from(chunk.to_vec());
            out.push(self.assemble(None, Some((batch, &idx)), chunk.len())?);
        }
        Ok(())
    }

    /// Output for a table's build rows once every probe row has been seen:
    /// unmatched rows (left, full, left anti) or matched rows (left semi).
    fn build_rows_by_match(&self, t: &Table, out: &mut Vec<RecordBatch>) -> Result<()> {
        if !self.tracks_build() {
            return Ok(());
        }
        let want_matched = self.join_type == JoinType::LeftSemi;
        let idx: Vec<u32> =
            (0..t.batch.num_rows()).filter(|&i| t.matched.get_bit(i) == want_matched).map(|i| i as u32).collect();
        for chunk in idx.chunks(self.batch_size) {
            let idx = UInt32Array::from(chunk.to_vec());
            out.push(self.assemble(Some((&t.batch, &idx)), None, chunk.len())?);
        }
        Ok(())
    }

    /// A hash table over `batches` (hashed with `level`'s seed).
    fn table(&self, batches: &[RecordBatch], schema: &SchemaRef, level: usize, bytes: usize) -> Result<Table> {
        let batch = concat_batches(schema, batches)?;
        let (k, _) = self.keyed(batch, &self.build_keys, level)?;
        let n = k.batch.num_rows();
        let mut heads: HashMap<u64, u32> = HashMap::with_capacity(n);
        let mut next = vec![0u32; n];
        for i in (0..n).rev() {
            if let Some(old) = heads.insert(k.hashes[i], i as u32 + 1) {
                next[i] = old;
            }
        }
        let mut matched = BooleanBufferBuilder::new(n);
        matched.append_n(n, false);
        Ok(Table { batch: k.batch, keys: k.keys, heads, next, matched, bytes })
    }

    /// Memory a table over `rows` rows needs besides its batches.
    fn table_bytes(rows: usize) -> usize {
        rows * 40
    }

    /// Candidate pairs from `cursor` on, at most `batch_size` of them, then
    /// the pairs whose keys are equal and that pass the filter.
    fn next_matches(&self, t: &Table, probe: &Keyed, cursor: &mut Cursor) -> Result<(UInt32Array, UInt32Array)> {
        let (mut bi, mut pi) = (Vec::new(), Vec::new());
        while cursor.row < probe.batch.num_rows() && bi.len() < self.batch_size {
            if !cursor.started {
                cursor.chain = t.heads.get(&probe.hashes[cursor.row]).copied().unwrap_or(0);
                cursor.started = true;
            }
            while cursor.chain != 0 && bi.len() < self.batch_size {
                bi.push(cursor.chain - 1);
                pi.push(cursor.row as u32);
                cursor.chain = t.next[(cursor.chain - 1) as usize];
            }
            if cursor.chain == 0 {
                cursor.row += 1;
                cursor.started = false;
            }
        }
        let (bi, pi) = (UInt32Array::from(bi), UInt32Array::from(pi));
        if bi.is_empty() {
            return Ok((bi, pi));
        }
        let mut keep: Option<BooleanArray> = None;
        for (bk, pk) in t.keys.iter().zip(&probe.keys) {
            let (l, r) = (take(bk, &bi, None)?, take(pk, &pi, None)?);
            let m = match self.null_equality {
                NullEquality::NullEqualsNothing => eq(&l, &r)?,
                NullEquality::NullEqualsNull => not_distinct(&l, &r)?,
            };
            keep = Some(match keep {
                None => m,
                Some(k) => datafusion::arrow::compute::and(&k, &m)?,
            });
        }
        if let Some(f) = &self.filter {
            let cols: Vec<ArrayRef> = f
                .column_indices()
                .iter()
                .map(|c| match c.side {
                    JoinSide::Left => take(t.batch.column(c.index), &bi, None),
                    _ => take(probe.batch.column(c.index), &pi, None),
                })
                .collect::<std::result::Result<_, _>>()?;
            let fb = RecordBatch::try_new_with_options(
                f.schema().clone(),
                cols,
                &datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(bi.len())),
            )?;
            let v = f.expression().evaluate(&fb)?.into_array(bi.len())?;
            let v = v
                .as_any()
                .downcast_ref::<BooleanArray>()
                .ok_or_else(|| DataFusionError::Internal("join filter is not boolean".into()))?
                .clone();
            keep = Some(match keep {
                None => v,
                Some(k) => datafusion::arrow::compute::and(&k, &v)?,
            });
        }
        // `filter` takes a NULL as false: a NULL key or filter value is no match.
        let keep = keep.expect("at least one key");
        let bi = datafusion::arrow::compute::filter(&bi, &keep)?;
        let pi = datafusion::arrow::compute::filter(&pi, &keep)?;
        let bi = bi.as_any().downcast_ref::<UInt32Array>().expect("u32").clone();
        let pi = pi.as_any().downcast_ref::<UInt32Array>().expect("u32").clone();
        Ok((bi, pi))
    }
}

impl Run {
    async fn send(&mut self, out: &mut Vec<RecordBatch>) -> Result<()> {
        if self.not_in.probe_null {
            // NOT IN a set with a NULL: no row is TRUE.
            out.clear();
            return Ok(());
        }
        for b in out.drain(..) {
            if b.num_rows() == 0 {
                continue;
            }
            self.core.baseline.output_rows().add(b.num_rows());
            if self.tx.send(Ok(b)).await.is_err() {
                // The consumer is gone (query done or cancelled).
                return Err(DataFusionError::Execution("HybridHashJoin output dropped".into()));
            }
        }
        Ok(())
    }

    fn note_peak(&self) {
        self.core.peak.set_max(self.reservation.size());
    }

    /// Makes `core` the one for pairs of orientation `reversed`.
    fn orient(&mut self, reversed: bool) {
        if self.is_reversed != reversed {
            std::mem::swap(&mut self.core, &mut self.reversed);
            self.is_reversed = reversed;
        }
    }

    /// The whole join of one partition.
    async fn join(&mut self, build: SendableRecordBatchStream, probe: SendableRecordBatchStream) -> Result<()> {
        let mut work = self.level(build, probe, 0).await?;
        if self.core.null_aware {
            if self.not_in.probe_null {
                return Ok(());
            }
            if let Some(f) = self.not_in.null_build.take() {
                let f = Some(self.core.build_spill.finish(f)?);
                if !self.not_in.probe_rows {
                    // NULL NOT IN (empty set) is TRUE.
                    let mut rows = self.read(&f, true)?;
                    let mut out = Vec::new();
                    while let Some(b) = rows.next().await {
                        self.core.unmatched_build_rows(&b?, &mut out)?;
                        self.send(&mut out).await?;
                    }
                }
            }
        }
        while let Some(mut pair) = work.pop() {
            // The smaller file of a pair is its build side: a pair whose
            // probe file is smaller is joined reversed (not a NOT IN, whose
            // NULL rules are the build side's). A plan without statistics
            // often builds on the larger input (TPC-H Q9 hashes all of
            // lineitem, then probes with 10,000 parts): reversed, each of its
            // pairs is read once instead of split again level after level.
            if !self.core.null_aware {
                let size = |f: &Option<SpillFile>| f.as_ref().map_or(0, |f| f.size().unwrap_or(0));
                if size(&pair.build) > size(&pair.probe) && pair.probe.is_some() {
                    std::mem::swap(&mut pair.build, &mut pair.probe);
                    pair.reversed = !pair.reversed;
                    pair.stuck = false;
                    self.core.reversals.add(1);
                }
            }
            self.orient(pair.reversed);
            // A side without rows decides the pair alone.
            if pair.build.is_none() && (!self.core.emits_unmatched_probe() || pair.probe.is_none()) {
                continue;
            }
            if pair.probe.is_none() && !self.core.emits_unmatched_build() {
                continue;
            }
            self.core.depth.set_max(pair.level);
            if pair.stuck || pair.level >= MAX_DEPTH {
                self.chunked(pair).await?;
                continue;
            }
            let build = self.read(&pair.build, true)?;
            let probe = self.read(&pair.probe, false)?;
            let more = self.level(build, probe, pair.level).await?;
            work.extend(more);
        }
        Ok(())
    }

    fn read(&self, f: &Option<SpillFile>, build: bool) -> Result<SendableRecordBatchStream> {
        if build {
            self.core.build_spill.read(f)
        } else {
            self.core.probe_spill.read(f)
        }
    }

    /// Writes partition `p`'s in-memory build rows to its file.
    fn spill(&mut self, parts: &mut [Part], p: usize) -> Result<()> {
        let part = &mut parts[p];
        if part.build_file.is_none() {
            part.build_file = Some(self.core.build_spill.create("HybridHashJoin build")?);
        }
        let f = part.build_file.as_mut().expect("just made");
        for b in part.mem.drain(..) {
            self.core.build_spill.append(f, &b)?;
        }
        self.reservation.shrink(part.bytes);
        part.bytes = 0;
        Ok(())
    }

    /// Spills the largest in-memory partition; false when none holds memory.
    fn spill_largest(&mut self, parts: &mut [Part]) -> Result<Option<usize>> {
        let victim = (0..parts.len()).filter(|&p| parts[p].bytes > 0).max_by_key(|&p| parts[p].bytes);
        if let Some(p) = victim {
            self.spill(parts, p)?;
        }
        Ok(victim)
    }

    /// One level of the grace join: partitions `build`, joins the
    /// partitions that stayed in memory with `probe`, and returns the
    /// spilled pairs (marked stuck when, below level 0, every build row
    /// landed in the same partition again).
    async fn level(
        &mut self,
        mut build: SendableRecordBatchStream,
        mut probe: SendableRecordBatchStream,
        level: usize,
    ) -> Result<Vec<Pair>> {
        let build_schema = build.schema();
        let mut parts: Vec<Part> = (0..FANOUT).map(|_| Part::default()).collect();
        let mut out = Vec::new();
        let mut total_rows = 0usize;
        // 1. Build.
        while let Some(batch) = build.next().await {
            let (k, nulls) = self.core.keyed(batch?, &self.core.build_keys, level)?;
            if let Some(nulls) = nulls {
                if self.core.null_aware {
                    // Kept only if the probe side turns out empty.
                    if self.not_in.null_build.is_none() {
                        self.not_in.null_build = Some(self.core.build_spill.create("HybridHashJoin NULL keys")?);
                    }
                    let f = self.not_in.null_build.as_mut().expect("just made");
                    self.core.build_spill.append(f, &nulls)?;
                } else {
                    self.core.unmatched_build_rows(&nulls, &mut out)?;
                    self.send(&mut out).await?;
                }
            }
            total_rows += k.batch.num_rows();
            for (p, idx) in Core::split(&k) {
                let slice = compact(take_record_batch(&k.batch, &idx)?)?;
                parts[p].rows += slice.num_rows();
                self.add_build(&mut parts, p, slice)?;
            }
        }
        // 2. Tables for the partitions in memory, spilling more while the
        //    tables do not fit.
        let mut tables: Vec<Option<Table>> = (0..FANOUT).map(|_| None).collect();
        let untabled = |parts: &[Part], tables: &[Option<Table>]| {
            (0..FANOUT).find(|&p| parts[p].build_file.is_none() && tables[p].is_none() && parts[p].rows > 0)
        };
        while let Some(p) = untabled(&parts, &tables) {
            let need = Core::table_bytes(parts[p].rows);
            match self.reservation.try_grow(need) {
                Ok(()) => {
                    self.note_peak();
                    let part = &mut parts[p];
                    let t = self.core.table(&part.mem, &build_schema, level, need)?;
                    part.mem.clear();
                    tables[p] = Some(t);
                }
                Err(_) => {
                    // Spill the largest partition not yet tabled (p itself
                    // at the latest).
                    let victim = (0..FANOUT)
                        .filter(|&q| parts[q].bytes > 0 && tables[q].is_none())
                        .max_by_key(|&q| parts[q].bytes);
                    match victim {
                        Some(q) => self.spill(&mut parts, q)?,
                        None => self.spill(&mut parts, p)?,
                    }
                }
            }
        }
        // 3. Probe.
        while let Some(batch) = probe.next().await {
            let batch = batch?;
            self.not_in.probe_rows |= batch.num_rows() > 0;
            let (k, nulls) = self.core.keyed(batch, &self.core.probe_keys, level)?;
            if self.core.null_aware && nulls.is_some() {
                // A NULL in the set: the result is empty whatever else comes.
                self.not_in.probe_null = true;
                break;
            }
            if let Some(nulls) = nulls {
                if self.core.emits_unmatched_probe() {
                    let none = BooleanBuffer::new_unset(nulls.num_rows());
                    self.core.probe_rows_by_match(&nulls, &none, &mut out)?;
                    self.send(&mut out).await?;
                }
            }
            for (p, idx) in Core::split(&k) {
                if parts[p].build_file.is_some() || (tables[p].is_none() && self.core.emits_unmatched_probe()) {
                    if parts[p].build_file.is_none() {
                        // No build rows at all here: every probe row is unmatched.
                        let slice = take_record_batch(&k.batch, &idx)?;
                        let none = BooleanBuffer::new_unset(slice.num_rows());
                        self.core.probe_rows_by_match(&slice, &none, &mut out)?;
                        self.send(&mut out).await?;
                        continue;
                    }
                    let slice = compact(take_record_batch(&k.batch, &idx)?)?;
                    let part = &mut parts[p];
                    if part.probe_file.is_none() {
                        part.probe_file = Some(self.core.probe_spill.create("HybridHashJoin probe")?);
                    }
                    self.core.probe_spill.append(part.probe_file.as_mut().expect("just made"), &slice)?;
                    continue;
                }
                let Some(t) = tables[p].as_mut() else { continue };
                let sub = Keyed {
                    batch: take_record_batch(&k.batch, &idx)?,
                    keys: k.keys.iter().map(|a| take(a, &idx, None)).collect::<std::result::Result<_, _>>()?,
                    hashes: idx.values().iter().map(|&i| k.hashes[i as usize]).collect(),
                };
                let mut matched = BooleanBufferBuilder::new(sub.batch.num_rows());
                matched.append_n(sub.batch.num_rows(), false);
                probe_table(&self.core, t, &sub, &mut matched, &mut out)?;
                self.send(&mut out).await?;
                let matched = matched.finish();
                self.core.probe_rows_by_match(&sub.batch, &matched, &mut out)?;
                self.send(&mut out).await?;
            }
        }
        drop(probe);
        // 4. Build rows of the in-memory partitions, now that every probe
        //    row has been seen; then their memory goes.
        for (t, part) in tables.iter_mut().zip(parts.iter_mut()) {
            if let Some(t) = t.take() {
                self.core.build_rows_by_match(&t, &mut out)?;
                self.send(&mut out).await?;
                self.reservation.shrink((t.bytes + part.bytes).min(self.reservation.size()));
                part.bytes = 0;
            }
        }
        // 5. The spilled pairs, for later.
        let mut pairs = Vec::new();
        for part in parts.iter_mut() {
            let Some(bf) = part.build_file.take() else { continue };
            let build = Some(self.core.build_spill.finish(bf)?);
            let probe = match part.probe_file.take() {
                Some(pf) => Some(self.core.probe_spill.finish(pf)?),
                None => None,
            };
            // Below level 0, a pair is stuck when all its build rows landed in
            // one partition again (one key): splitting again would only write
            // it all once more. A pair none of whose partitions could stay in
            // memory (the pool's share was below 1/FANOUT of it) splits
            // again: each level costs one more write of the pair, while a
            // chunk of a pair costs a read of its whole probe file, and a
            // small share makes thousands of chunks (TPC-H Q18 at SF 1
            // under 16 MiB: 13,000 chunks in one join).
            let stuck = level > 0 && part.rows == total_rows;
            pairs.push(Pair { build, probe, level: level + 1, stuck, reversed: self.is_reversed });
        }
        Ok(pairs)
    }

    /// Adds build rows to partition `p`: to its file if spilled, else to
    /// memory, spilling the largest partitions while the pool refuses.
    fn add_build(&mut self, parts: &mut [Part], p: usize, slice: RecordBatch) -> Result<()> {
        loop {
            if let Some(f) = parts[p].build_file.as_mut() {
                self.core.build_spill.append(f, &slice)?;
                return Ok(());
            }
            let bytes = slice.get_array_memory_size();
            if self.reservation.try_grow(bytes).is_ok() {
                self.note_peak();
                parts[p].bytes += bytes;
                parts[p].mem.push(slice);
                return Ok(());
            }
            if self.spill_largest(parts)?.is_none() {
                // Nothing in memory to give up: this partition spills.
                self.spill(parts, p)?;
            }
        }
    }

    /// Joins a pair that does not split: the build file in chunks that fit,
    /// each against the whole probe file; then the probe rows by their
    /// match bits over all chunks.
    async fn chunked(&mut self, pair: Pair) -> Result<()> {
        let mut build = self.read(&pair.build, true)?;
        let schema = build.schema();
        let mut probe_matched: Vec<BooleanBufferBuilder> = Vec::new();
        // Batches read but not yet in a chunk (halves of one too large).
        let mut pending: Vec<RecordBatch> = Vec::new();
        let mut out = Vec::new();
        let mut done = false;
        while !done {
            // Gather a chunk.
            let mut chunk = Vec::new();
            let mut bytes = 0;
            loop {
                let b = match pending.pop() {
                    Some(b) => b,
                    None => match build.next().await {
                        Some(b) => b?,
                        None => {
                            done = true;
                            break;
                        }
                    },
                };
                let need = b.get_array_memory_size() * 2 + Core::table_bytes(b.num_rows());
                if let Err(e) = self.reservation.try_grow(need) {
                    if !chunk.is_empty() {
                        pending.push(b);
                        break;
                    }
                    if b.num_rows() <= 1 || b.get_array_memory_size() < MIN_CHUNK {
                        // The pool's fair share is smaller than one batch
                        // (a plan with many operators under a small limit):
                        // take it anyway, so the join goes on one batch per
                        // chunk, past the share by at most one batch.
                        let _ = e;
                        self.reservation.grow(need);
                        self.note_peak();
                        bytes += need;
                        chunk.push(b);
                        break;
                    }
                    // Halve the batch (copies, so each half holds only its
                    // own rows) and try the first half.
                    let half = b.num_rows() / 2;
                    let range = |a: usize, z: usize| UInt32Array::from_iter_values((a as u32)..(z as u32));
                    pending.push(compact(take_record_batch(&b, &range(half, b.num_rows()))?)?);
                    pending.push(compact(take_record_batch(&b, &range(0, half))?)?);
                    continue;
                }
                self.note_peak();
                bytes += need;
                chunk.push(b);
            }
            if chunk.is_empty() {
                continue;
            }
            let mut t = self.core.table(&chunk, &schema, pair.level, 0)?;
            drop(chunk);
            self.core.chunks.add(1);
            // The whole probe file against this chunk.
            let mut probe = self.read(&pair.probe, false)?;
            let mut i = 0;
            while let Some(b) = probe.next().await {
                let (k, _) = self.core.keyed(b?, &self.core.probe_keys, pair.level)?;
                if probe_matched.len() <= i {
                    let mut m = BooleanBufferBuilder::new(k.batch.num_rows());
                    m.append_n(k.batch.num_rows(), false);
                    probe_matched.push(m);
                }
                probe_table(&self.core, &mut t, &k, &mut probe_matched[i], &mut out)?;
                self.send(&mut out).await?;
                i += 1;
            }
            self.core.build_rows_by_match(&t, &mut out)?;
            self.send(&mut out).await?;
            drop(t);
            self.reservation.shrink(bytes.min(self.reservation.size()));
        }
        if self.core.tracks_probe() {
            let mut probe = self.read(&pair.probe, false)?;
            let mut i = 0;
            while let Some(b) = probe.next().await {
                let b = b?;
                let matched = match probe_matched.get_mut(i) {
                    Some(m) => m.finish(),
                    None => BooleanBuffer::new_unset(b.num_rows()),
                };
                self.core.probe_rows_by_match(&b, &matched, &mut out)?;
                self.send(&mut out).await?;
                i += 1;
            }
        }
        Ok(())
    }
}

/// `batch` with its string and binary view columns holding only their own
/// rows' bytes. `take` keeps the views pointing into the input's buffers:
/// a slice would count, and spill, all of them.
fn compact(batch: RecordBatch) -> Result<RecordBatch> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::DataType;
    if !batch.columns().iter().any(|c| matches!(c.data_type(), DataType::Utf8View | DataType::BinaryView)) {
        return Ok(batch);
    }
    let cols: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| -> ArrayRef {
            match c.data_type() {
                DataType::Utf8View => Arc::new(c.as_string_view().gc()),
                DataType::BinaryView => Arc::new(c.as_binary_view().gc()),
                _ => c.clone(),
            }
        })
        .collect();
    Ok(RecordBatch::try_new(batch.schema(), cols)?)
}

/// Probes `t` with every row of `probe`: emits the matching pairs (inner,
/// left, right, full) and sets the match bits of both sides.
fn probe_table(
    core: &Core,
    t: &mut Table,
    probe: &Keyed,
    probe_matched: &mut BooleanBufferBuilder,
    out: &mut Vec<RecordBatch>,
) -> Result<()> {
    let mut cursor = Cursor::default();
    while cursor.row < probe.batch.num_rows() {
        let (bi, pi) = core.next_matches(t, probe, &mut cursor)?;
        if bi.is_empty() {
            continue;
        }
        if core.tracks_build() {
            for &b in bi.values() {
                t.matched.set_bit(b as usize, true);
            }
        }
        if core.tracks_probe() {
            for &p in pi.values() {
                probe_matched.set_bit(p as usize, true);
            }
        }
        if core.emits_pairs() {
            out.push(core.assemble(Some((&t.batch, &bi)), Some((&probe.batch, &pi)), bi.len())?);
        }
    }
    Ok(())
}

/// The physical optimizer rule that puts a [`HybridHashJoinExec`] in place
/// of every DataFusion `HashJoinExec` it can run (not mark joins, joins
/// with a fetch limit, keys of nested types, or null-aware anti joins with
/// a residual filter).
///
/// The CN applies it to every query: every query has a finite memory limit
/// (`query_memory_limit`), and a build side that fits runs in memory as a
/// plain hash join would, while one that does not spills instead of
/// failing. A `Partitioned` join keeps its inputs and output partitioning
/// (partition `p` joins the same rows); a `CollectLeft` join over several
/// probe partitions joins their union once, and a repartition restores the
/// output partitioning the parents were planned with. A null-aware join
/// always joins the union of each side once: whether the subquery holds a
/// NULL decides every output row.
#[derive(Debug, Default)]
pub struct HybridHashJoinRule;

impl PhysicalOptimizerRule for HybridHashJoinRule {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(hj) = node.downcast_ref::<HashJoinExec>() else {
                return Ok(Transformed::no(node));
            };
            match replace(hj)? {
                Some(new) => Ok(Transformed::yes(new)),
                None => Ok(Transformed::no(node)),
            }
        })
        .data()
    }
    fn name(&self) -> &str {
        "hybrid_hash_join"
    }
    fn schema_check(&self) -> bool {
        true
    }
}

/// `hj` as a hybrid hash join, sorted again when `hj` had an output
/// ordering. DataFusion's hash join keeps the order of its probe side, and
/// `EnforceSorting` (which runs before this rule) may have sorted the probe
/// side for an operator above the join (a window function partitioned by
/// the join key); the hybrid join does not keep it (a spilled partition
/// comes back later), so the sort moves above it. Without it the window
/// operator found its input unordered ("All partition by columns should
/// have an ordering").
fn replace(hj: &HashJoinExec) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    let Some(new) = replace_unordered(hj)? else { return Ok(None) };
    Ok(Some(match hj.properties().output_ordering() {
        Some(ordering) => Arc::new(SortExec::new(ordering.clone(), new).with_preserve_partitioning(true)),
        None => new,
    }))
}

fn replace_unordered(hj: &HashJoinExec) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    if !supported(hj.join_type) || hj.fetch().is_some() {
        return Ok(None);
    }
    if hj.null_aware && (hj.filter.is_some() || hj.on.len() != 1 || hj.null_equality != NullEquality::NullEqualsNothing)
    {
        return Ok(None);
    }
    let left_schema = hj.left.schema();
    for (l, _) in &hj.on {
        if l.data_type(&left_schema)?.is_nested() {
            return Ok(None);
        }
    }
    let projection = hj.projection.as_ref().map(|p| p.iter().copied().collect::<Vec<usize>>());
    let partitioning = hj.properties().output_partitioning().clone();
    let new = |left: Arc<dyn ExecutionPlan>, right: Arc<dyn ExecutionPlan>, partitioning: Partitioning| {
        HybridHashJoinExec::try_new(
            left,
            right,
            hj.on.clone(),
            hj.filter.clone(),
            hj.join_type,
            hj.null_equality,
            projection.clone(),
            partitioning,
        )?
        .with_null_aware(hj.null_aware)
    };
    let n_left = hj.left.output_partitioning().partition_count();
    let n_right = hj.right.output_partitioning().partition_count();
    match hj.mode {
        PartitionMode::Partitioned
            if !hj.null_aware && n_left == n_right && partitioning.partition_count() == n_left =>
        {
            Ok(Some(Arc::new(new(hj.left.clone(), hj.right.clone(), partitioning)?)))
        }
        PartitionMode::CollectLeft | PartitionMode::Partitioned => {
            let one = |p: &Arc<dyn ExecutionPlan>| -> Arc<dyn ExecutionPlan> {
                if p.output_partitioning().partition_count() == 1 {
                    p.clone()
                } else {
                    Arc::new(CoalescePartitionsExec::new(p.clone()))
                }
            };
            let join: Arc<dyn ExecutionPlan> =
                Arc::new(new(one(&hj.left), one(&hj.right), Partitioning::UnknownPartitioning(1))?);
            if partitioning.partition_count() == 1 {
                return Ok(Some(join));
            }
            let target = match partitioning {
                Partitioning::Hash(exprs, n) => Partitioning::Hash(exprs, n),
                other => Partitioning::RoundRobinBatch(other.partition_count()),
            };
            Ok(Some(Arc::new(RepartitionExec::try_new(join, target)?)))
        }
        PartitionMode::Auto => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    //! Every join type against DataFusion's in-memory `HashJoinExec` on
    //! generated data several times larger than the memory limit: uniform,
    //! skewed and hot keys, one key for every build row, NULL keys, with
    //! and without a residual filter; spill files must be gone afterwards.

    use super::*;
    use crate::config::Config;
    use crate::executor::memory::CnMemory;
    use datafusion::arrow::array::{Int32Array, Int64Array, StringViewArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::util::display::array_value_to_string;
    use datafusion::datasource::memory::MemorySourceConfig;
    use datafusion::execution::config::SessionConfig;
    use datafusion::execution::memory_pool::MemoryPool;
    use datafusion::logical_expr::Operator;
    use datafusion::physical_expr::expressions::{binary, col};
    use datafusion::physical_plan::collect;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const TYPES: [JoinType; 8] = [
        JoinType::Inner,
        JoinType::Left,
        JoinType::Right,
        JoinType::Full,
        JoinType::LeftSemi,
        JoinType::LeftAnti,
        JoinType::RightSemi,
        JoinType::RightAnti,
    ];

    #[derive(Clone, Copy, Debug)]
    enum Keys {
        Uniform,
        /// Key i has weight ~ 1/i (Zipf-like).
        Skewed,
        /// Half the build rows share one key.
        Hot,
        /// Every build row has the same key.
        Single,
    }

    fn key(rng: &mut StdRng, keys: Keys, build: bool) -> Option<i32> {
        if rng.random_ratio(1, 20) {
            return None;
        }
        Some(match keys {
            Keys::Uniform => rng.random_range(0..4000),
            Keys::Skewed => {
                let u: f64 = rng.random_range(0.0..1.0);
                (4000f64.powf(u) as i32) - 1
            }
            // Few probe rows meet the hot key, so the output stays small.
            Keys::Hot if rng.random_bool(if build { 0.5 } else { 0.01 }) => 7,
            Keys::Hot => rng.random_range(0..4000),
            Keys::Single if build => 7,
            // Few probe rows meet the single build key: the output stays small.
            Keys::Single => {
                if rng.random_ratio(1, 500) {
                    7
                } else {
                    rng.random_range(8..4000)
                }
            }
        })
    }

    /// `rows` rows of (k INT NULL, x BIGINT, s VARCHAR) in batches of 1000.
    fn side(seed: u64, rows: usize, keys: Keys, build: bool, prefix: &str) -> (SchemaRef, Vec<RecordBatch>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new(format!("{prefix}k"), DataType::Int32, true),
            Field::new(format!("{prefix}x"), DataType::Int64, false),
            // A view type: take() keeps views into the input's buffers.
            Field::new(format!("{prefix}s"), DataType::Utf8View, false),
        ]));
        let mut rng = StdRng::seed_from_u64(seed);
        let mut batches = Vec::new();
        for start in (0..rows).step_by(1000) {
            let n = 1000.min(rows - start);
            let k: Int32Array = (0..n).map(|_| key(&mut rng, keys, build)).collect();
            let x: Int64Array = (0..n).map(|i| (start + i) as i64).collect();
            let s: StringViewArray = (0..n).map(|i| Some(format!("{prefix}-{:040}", start + i))).collect();
            batches.push(RecordBatch::try_new(schema.clone(), vec![Arc::new(k), Arc::new(x), Arc::new(s)]).unwrap());
        }
        (schema, batches)
    }

    /// `l.x % 3 <> r.x % 3`: rejects about a third of the key matches.
    fn filter(ls: &Schema, rs: &Schema) -> JoinFilter {
        let schema = Arc::new(Schema::new(vec![ls.field(1).clone(), rs.field(1).clone()]));
        let three = Arc::new(datafusion::physical_expr::expressions::Literal::new(
            datafusion::common::ScalarValue::Int64(Some(3)),
        ));
        let lm = binary(col("lx", &schema).unwrap(), Operator::Modulo, three.clone(), &schema).unwrap();
        let rm = binary(col("rx", &schema).unwrap(), Operator::Modulo, three, &schema).unwrap();
        // Not symmetric: a join that mixed up the sides would keep other pairs.
        let e = binary(lm, Operator::Lt, rm, &schema).unwrap();
        JoinFilter::new(
            e,
            vec![ColumnIndex { index: 1, side: JoinSide::Left }, ColumnIndex { index: 1, side: JoinSide::Right }],
            schema,
        )
    }

    fn rows(batches: &[RecordBatch]) -> Vec<String> {
        let mut out: Vec<String> = batches
            .iter()
            .flat_map(|b| {
                (0..b.num_rows()).map(move |r| {
                    b.columns().iter().map(|c| array_value_to_string(c, r).unwrap()).collect::<Vec<_>>().join("|")
                })
            })
            .collect();
        out.sort();
        out
    }

    /// The rows of DataFusion's in-memory `HashJoinExec` (the reference).
    async fn in_memory(
        left: Arc<dyn ExecutionPlan>,
        right: Arc<dyn ExecutionPlan>,
        on: &[(PhysicalExprRef, PhysicalExprRef)],
        filter: Option<JoinFilter>,
        jt: JoinType,
        projection: Option<Vec<usize>>,
        null_aware: bool,
    ) -> Vec<String> {
        let join = HashJoinExec::try_new(
            left,
            right,
            on.to_vec(),
            filter,
            &jt,
            projection,
            PartitionMode::CollectLeft,
            NullEquality::NullEqualsNothing,
            null_aware,
        )
        .unwrap();
        rows(&collect(Arc::new(join), Arc::new(TaskContext::default())).await.unwrap())
    }

    struct Setup {
        cn: Arc<CnMemory>,
        _dir: tempfile::TempDir,
    }

    fn setup(limit: u64) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            query_memory_limit: limit,
            memory_total: 1 << 30,
            spill_dir: dir.path().join("spill"),
            ..Config::default()
        };
        Setup { cn: CnMemory::new(&config).unwrap(), _dir: dir }
    }

    fn task(s: &Setup, limit: usize) -> (Arc<TaskContext>, Arc<crate::executor::memory::QueryMemoryPool>) {
        let pool = s.cn.query_pool(limit);
        let mut config = SessionConfig::new().with_batch_size(1024);
        config.options_mut().execution.spill_compression = datafusion::common::config::SpillCompression::Lz4Frame;
        let ctx = TaskContext::default().with_runtime(s.cn.runtime(pool.clone()).unwrap()).with_session_config(config);
        (Arc::new(ctx), pool)
    }

    fn spill_count(plan: &dyn ExecutionPlan) -> usize {
        plan.metrics().and_then(|m| m.spill_count()).unwrap_or(0)
    }

    /// A counter of the plan's metrics, summed over partitions.
    fn counter(plan: &dyn ExecutionPlan, name: &str) -> usize {
        plan.metrics().and_then(|m| m.sum_by_name(name)).map_or(0, |v| v.as_usize())
    }

    fn assert_no_files(s: &Setup) {
        assert_eq!(s.cn.spilled_now().1, 0, "spill files still open");
        for d in s.cn.spill_dirs() {
            assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0, "files left in {}", d.display());
        }
    }

    /// Runs every join type on generated sides against DataFusion's
    /// in-memory join: how many spilled, and how many joined some pair
    /// reversed.
    async fn check(
        keys: Keys,
        build_rows: usize,
        probe_rows: usize,
        with_filter: bool,
        limit: usize,
    ) -> (usize, usize) {
        let (ls, lb) = side(1, build_rows, keys, true, "l");
        let (rs, rb) = side(2, probe_rows, keys, false, "r");
        let s = setup(limit as u64);
        let (mut spilled, mut reversed) = (0, 0);
        for jt in TYPES {
            let left = MemorySourceConfig::try_new_exec(std::slice::from_ref(&lb), ls.clone(), None).unwrap();
            let right = MemorySourceConfig::try_new_exec(std::slice::from_ref(&rb), rs.clone(), None).unwrap();
            let on: Vec<(PhysicalExprRef, PhysicalExprRef)> = vec![(col("lk", &ls).unwrap(), col("rk", &rs).unwrap())];
            let f = with_filter.then(|| filter(&ls, &rs));
            let expected = in_memory(left.clone(), right.clone(), &on, f.clone(), jt, None, false).await;
            let ours = Arc::new(
                HybridHashJoinExec::try_new(
                    left,
                    right,
                    on,
                    f,
                    jt,
                    NullEquality::NullEqualsNothing,
                    None,
                    Partitioning::UnknownPartitioning(1),
                )
                .unwrap(),
            );
            let (ctx, pool) = task(&s, limit);
            let got = collect(ours.clone(), ctx).await.unwrap_or_else(|e| panic!("{keys:?} {jt}: {e}"));
            let got = rows(&got);
            assert!(
                got == expected,
                "{keys:?} {jt} filter={with_filter}: {} rows, expected {}",
                got.len(),
                expected.len()
            );
            assert!(pool.peak() <= limit, "{keys:?} {jt}: peak {} over the limit {limit}", pool.peak());
            if spill_count(ours.as_ref()) > 0 {
                spilled += 1;
            }
            if counter(ours.as_ref(), "reversals") > 0 {
                reversed += 1;
            }
            assert_no_files(&s);
            assert_eq!(pool.reserved(), 0, "{keys:?} {jt}: memory still reserved");
        }
        (spilled, reversed)
    }

    /// About 1.6 MB of build rows against a 256 KiB limit.
    const LIMIT: usize = 256 << 10;

    #[tokio::test]
    async fn uniform_keys_spill_and_agree() {
        assert_eq!(check(Keys::Uniform, 20_000, 20_000, false, LIMIT).await.0, TYPES.len());
        assert_eq!(check(Keys::Uniform, 20_000, 20_000, true, LIMIT).await.0, TYPES.len());
    }

    /// A probe side much smaller than the build side: the spilled pairs are
    /// joined reversed (tables over the probe rows), with the mirrored join
    /// type and filter, for every join type.
    #[tokio::test]
    async fn pairs_with_the_smaller_probe_file_are_joined_reversed_and_agree() {
        assert_eq!(check(Keys::Uniform, 20_000, 1_500, true, LIMIT).await, (TYPES.len(), TYPES.len()));
        assert_eq!(check(Keys::Uniform, 20_000, 1_500, false, LIMIT).await, (TYPES.len(), TYPES.len()));
    }

    #[tokio::test]
    async fn skewed_keys_spill_and_agree() {
        assert_eq!(check(Keys::Skewed, 20_000, 5_000, true, LIMIT).await.0, TYPES.len());
    }

    #[tokio::test]
    async fn hot_key_spills_and_agrees() {
        assert_eq!(check(Keys::Hot, 20_000, 3_000, false, LIMIT).await.0, TYPES.len());
    }

    #[tokio::test]
    async fn one_key_for_every_build_row_is_joined_in_chunks() {
        assert_eq!(check(Keys::Single, 20_000, 20_000, true, LIMIT).await.0, TYPES.len());
    }

    #[tokio::test]
    async fn a_build_side_that_fits_does_not_spill() {
        assert_eq!(check(Keys::Uniform, 3_000, 3_000, true, 64 << 20).await.0, 0);
    }

    /// `NOT IN` (a null-aware left anti join) against DataFusion's
    /// in-memory one: probe keys without NULLs (build NULL keys dropped),
    /// with a NULL (nothing out), and no probe rows (every build row out,
    /// NULL keys too); each spills its build side.
    #[tokio::test]
    async fn null_aware_anti_join_spills_and_agrees() {
        let (ls, lb) = side(1, 20_000, Keys::Uniform, true, "l");
        let (rs, rb) = side(2, 20_000, Keys::Uniform, false, "r");
        let no_nulls: Vec<RecordBatch> = rb
            .iter()
            .map(|b| {
                let valid = datafusion::arrow::compute::is_not_null(b.column(0)).unwrap();
                filter_record_batch(b, &valid).unwrap()
            })
            .collect();
        let s = setup(LIMIT as u64);
        let cases: [(&str, Vec<RecordBatch>); 3] =
            [("no NULL probe keys", no_nulls), ("a NULL probe key", rb), ("no probe rows", vec![])];
        let mut lens = Vec::new();
        for (what, probe) in cases {
            let left = MemorySourceConfig::try_new_exec(std::slice::from_ref(&lb), ls.clone(), None).unwrap();
            let right = MemorySourceConfig::try_new_exec(&[probe], rs.clone(), None).unwrap();
            let on: Vec<(PhysicalExprRef, PhysicalExprRef)> = vec![(col("lk", &ls).unwrap(), col("rk", &rs).unwrap())];
            let expected =
                in_memory(left.clone(), right.clone(), &on, None, JoinType::LeftAnti, Some(vec![2, 0]), true).await;
            let ours = Arc::new(
                HybridHashJoinExec::try_new(
                    left,
                    right,
                    on,
                    None,
                    JoinType::LeftAnti,
                    NullEquality::NullEqualsNothing,
                    // A projection: output rows are assembled, not build rows.
                    Some(vec![2, 0]),
                    Partitioning::UnknownPartitioning(1),
                )
                .unwrap()
                .with_null_aware(true)
                .unwrap(),
            );
            let (ctx, pool) = task(&s, LIMIT);
            let got = rows(&collect(ours.clone(), ctx).await.unwrap());
            assert_eq!(got.len(), expected.len(), "{what}");
            assert!(got == expected, "{what}: rows differ");
            lens.push(got.len());
            assert!(spill_count(ours.as_ref()) > 0, "{what}: did not spill");
            assert_no_files(&s);
            assert_eq!(pool.reserved(), 0, "{what}: memory still reserved");
        }
        // NOT IN's three outcomes: some rows (not those with NULL keys),
        // none, all.
        assert!(lens[0] > 0 && lens[0] < 20_000 - lb.iter().map(|b| b.column(0).null_count()).sum::<usize>());
        assert_eq!(lens[1..], [0, 20_000]);
    }

    #[tokio::test]
    async fn a_dropped_join_removes_its_spill_files() {
        let (ls, lb) = side(1, 20_000, Keys::Uniform, true, "l");
        let (rs, rb) = side(2, 20_000, Keys::Uniform, false, "r");
        let s = setup(LIMIT as u64);
        let left = MemorySourceConfig::try_new_exec(&[lb], ls.clone(), None).unwrap();
        let right = MemorySourceConfig::try_new_exec(&[rb], rs.clone(), None).unwrap();
        let on: Vec<(PhysicalExprRef, PhysicalExprRef)> = vec![(col("lk", &ls).unwrap(), col("rk", &rs).unwrap())];
        let join = HybridHashJoinExec::try_new(
            left,
            right,
            on,
            None,
            JoinType::Inner,
            NullEquality::NullEqualsNothing,
            None,
            Partitioning::UnknownPartitioning(1),
        )
        .unwrap();
        let (ctx, _pool) = task(&s, LIMIT);
        let mut stream = join.execute(0, ctx).unwrap();
        stream.next().await.unwrap().unwrap();
        assert!(s.cn.spilled_now().1 > 0, "the join spilled before its first output");
        drop(stream);
        for _ in 0..100 {
            if s.cn.spilled_now().1 == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_no_files(&s);
    }
}
