//! Repartitions that may spill: every `RepartitionExec` reads one input
//! partition.
//!
//! DataFusion's `RepartitionExec` buffers without bound: its distribution
//! gate keeps sending while any output channel is empty, so when one
//! consumer already reads and another does not yet (a hybrid hash join
//! partition still building while its neighbour probes), the idle one's
//! channel grows with the whole input (TPC-H Q9 at SF 1: 26 MB of lineitem
//! under a 16 MiB limit). A refused reservation makes it spill the batch
//! instead, but in DataFusion 55.2 that hangs when two input tasks spill
//! into one output's spill pool at once: the pool then has two open files
//! and its reader waits on the older one for a batch that is in the newer
//! (apache/datafusion#24883, fixed after 55.2 by #24891). With one input
//! task there is one writer and at most one open file, so this rule puts a
//! `CoalescePartitionsExec` under every repartition of several input
//! partitions (not order-preserving ones, which keep one spill pool per
//! input), and the query's pool may refuse repartitions
//! ([`super::memory`]). The inputs still run in parallel (the coalesce
//! polls each in its own task, with backpressure); only the hashing of the
//! rows into output partitions runs in one task.

use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::error::Result;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};
use std::sync::Arc;

/// The physical optimizer rule; see the module docs.
#[derive(Debug, Default)]
pub struct SingleInputRepartition;

impl PhysicalOptimizerRule for SingleInputRepartition {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(r) = node.downcast_ref::<RepartitionExec>() else {
                return Ok(Transformed::no(node));
            };
            if r.preserve_order() || r.input().output_partitioning().partition_count() <= 1 {
                return Ok(Transformed::no(node));
            }
            let one: Arc<dyn ExecutionPlan> = Arc::new(CoalescePartitionsExec::new(r.input().clone()));
            Ok(Transformed::yes(Arc::new(RepartitionExec::try_new(one, r.partitioning().clone())?)))
        })
        .data()
    }
    fn name(&self) -> &str {
        "single_input_repartition"
    }
    fn schema_check(&self) -> bool {
        true
    }
}
