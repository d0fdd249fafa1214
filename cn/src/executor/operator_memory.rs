//! Memory per operator: the most bytes each operator of a running plan
//! held at once, shown as `peak_mem_used` in EXPLAIN ANALYZE next to the
//! operators' own `spill_count` (spill files), `spilled_bytes` and
//! `spilled_rows`.
//!
//! [`instrument`] wraps every operator of a physical plan, just before it
//! runs, in an [`OperatorMemoryExec`]: a transparent wrapper (same name,
//! display, properties, children and downcast identity, through
//! DataFusion's `downcast_delegate`) that runs its operator with a
//! [`TaskContext`] whose memory pool is an [`OperatorPool`]. That pool
//! passes every request on to the query's pool unchanged (not to its
//! parent operator's: the counts do not nest) and counts what the
//! operator's reservations hold. Each operator's children are wrapped too
//! and swap in their own pools, so every reservation is counted for the
//! operator that made it, summed over its partitions.

use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::analyze::AnalyzeExec;
use datafusion::physical_plan::metrics::{Gauge, Metric, MetricValue, MetricsSet};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// The metric name, as DataFusion's grouped aggregation spells it.
pub const PEAK_MEM_USED: &str = "peak_mem_used";

/// Wraps every operator of `plan` (but an `AnalyzeExec`, which holds no
/// memory and must stay the root) in an [`OperatorMemoryExec`] whose pool
/// forwards to `query` (the query's pool). Run it on the plan that will
/// execute, after every optimizer rule.
pub fn instrument(plan: Arc<dyn ExecutionPlan>, query: Arc<dyn MemoryPool>) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        if node.is::<AnalyzeExec>() {
            return Ok(Transformed::no(node));
        }
        Ok(Transformed::yes(Arc::new(OperatorMemoryExec::new(node, query.clone())) as Arc<dyn ExecutionPlan>))
    })
    .data()
}

/// A memory pool for one operator: forwards to the query's pool and
/// counts the bytes the operator's reservations hold (`used`) and the most
/// they held at once (`peak`, in bytes).
#[derive(Debug)]
pub struct OperatorPool {
    query: Arc<dyn MemoryPool>,
    used: AtomicUsize,
    peak: Gauge,
}

impl OperatorPool {
    fn add(&self, n: usize) {
        let now = self.used.fetch_add(n, Ordering::Relaxed) + n;
        self.peak.set_max(now);
    }
}

impl fmt::Display for OperatorPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "operator pool ({} bytes held) of {}", self.used.load(Ordering::Relaxed), self.query)
    }
}

impl MemoryPool for OperatorPool {
    fn name(&self) -> &str {
        "operator"
    }
    fn register(&self, consumer: &MemoryConsumer) {
        self.query.register(consumer)
    }
    fn unregister(&self, consumer: &MemoryConsumer) {
        self.query.unregister(consumer)
    }
    fn grow(&self, r: &MemoryReservation, additional: usize) {
        self.query.grow(r, additional);
        self.add(additional);
    }
    fn shrink(&self, r: &MemoryReservation, shrink: usize) {
        self.query.shrink(r, shrink);
        self.used.fetch_sub(shrink, Ordering::Relaxed);
    }
    fn try_grow(&self, r: &MemoryReservation, additional: usize) -> Result<()> {
        self.query.try_grow(r, additional)?;
        self.add(additional);
        Ok(())
    }
    fn reserved(&self) -> usize {
        self.query.reserved()
    }
    fn memory_limit(&self) -> MemoryLimit {
        self.query.memory_limit()
    }
}

/// An operator run with its own [`OperatorPool`]; otherwise the operator
/// itself (see the module documentation).
#[derive(Debug)]
pub struct OperatorMemoryExec {
    inner: Arc<dyn ExecutionPlan>,
    /// The query's pool.
    query: Arc<dyn MemoryPool>,
    peak: Gauge,
    /// The operator's task context, made at its first `execute` from the
    /// query's (every partition gets the same one, so the peak is the
    /// operator's over all its partitions).
    ctx: OnceLock<Arc<TaskContext>>,
}

impl OperatorMemoryExec {
    /// `inner`, to run with its own pool forwarding to `query`.
    pub fn new(inner: Arc<dyn ExecutionPlan>, query: Arc<dyn MemoryPool>) -> Self {
        OperatorMemoryExec { inner, query, peak: Gauge::new(), ctx: OnceLock::new() }
    }

    /// The most bytes the operator held at once (0 before it runs).
    pub fn peak(&self) -> usize {
        self.peak.value()
    }

    fn task_context(&self, ctx: &Arc<TaskContext>) -> Arc<TaskContext> {
        self.ctx
            .get_or_init(|| {
                let env = ctx.runtime_env();
                let pool =
                    OperatorPool { query: self.query.clone(), used: AtomicUsize::new(0), peak: self.peak.clone() };
                let runtime = RuntimeEnv {
                    memory_pool: Arc::new(pool),
                    disk_manager: env.disk_manager.clone(),
                    cache_manager: env.cache_manager.clone(),
                    object_store_registry: env.object_store_registry.clone(),
                };
                Arc::new(TaskContext::new(
                    ctx.task_id(),
                    ctx.session_id(),
                    ctx.session_config().clone(),
                    ctx.scalar_functions().clone(),
                    ctx.higher_order_functions().clone(),
                    ctx.aggregate_functions().clone(),
                    ctx.window_functions().clone(),
                    Arc::new(runtime),
                ))
            })
            .clone()
    }
}

impl DisplayAs for OperatorMemoryExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        self.inner.fmt_as(t, f)
    }
}

impl ExecutionPlan for OperatorMemoryExec {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn downcast_delegate(&self) -> Option<&dyn ExecutionPlan> {
        Some(self.inner.as_ref())
    }
    fn properties(&self) -> &Arc<PlanProperties> {
        self.inner.properties()
    }
    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.inner.children()
    }
    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.inner.apply_expressions(f)
    }
    fn with_new_children(self: Arc<Self>, children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        let inner = datafusion::physical_plan::replace_children_if_necessary(self.inner.clone(), children)?;
        Ok(Arc::new(OperatorMemoryExec::new(inner, self.query.clone())))
    }
    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        options: datafusion::physical_plan::ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let inner = self.inner.clone().replace_children(children, options)?;
        Ok(Arc::new(OperatorMemoryExec::new(inner, self.query.clone())))
    }
    /// The operator's own (a recursive CTE's `WorkTableExec` takes its work
    /// table so: without it the work table stayed empty, DataFusion's
    /// "Unexpected empty work table").
    fn with_new_state(&self, state: Arc<dyn std::any::Any + Send + Sync>) -> Option<Arc<dyn ExecutionPlan>> {
        let inner = self.inner.with_new_state(state)?;
        Some(Arc::new(OperatorMemoryExec {
            peak: self.peak.clone(),
            ..OperatorMemoryExec::new(inner, self.query.clone())
        }))
    }
    /// The operator's own reset (a recursive CTE resets its recursive term
    /// before each iteration), the peak kept.
    fn reset_state(self: Arc<Self>) -> Result<Arc<dyn ExecutionPlan>> {
        let inner = self.inner.clone().reset_state()?;
        Ok(Arc::new(OperatorMemoryExec {
            peak: self.peak.clone(),
            ..OperatorMemoryExec::new(inner, self.query.clone())
        }))
    }
    fn execute(&self, partition: usize, ctx: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        self.inner.execute(partition, self.task_context(&ctx))
    }
    /// The operator's metrics, its own `peak_mem_used` (where it has one)
    /// replaced by the pool's figure when the operator reserved anything.
    fn metrics(&self) -> Option<MetricsSet> {
        let inner = self.inner.metrics();
        if self.peak() == 0 {
            return inner;
        }
        let mut out = MetricsSet::new();
        for m in inner.iter().flat_map(|m| m.iter()) {
            if m.value().name() != PEAK_MEM_USED {
                out.push(m.clone());
            }
        }
        out.push(Arc::new(Metric::new(
            MetricValue::PeakMemoryUsage { name: PEAK_MEM_USED.into(), gauge: self.peak.clone() },
            None,
        )));
        Some(out)
    }
}
