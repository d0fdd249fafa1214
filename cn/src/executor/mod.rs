//! CN-side execution in DataFusion: logical databases as schemas, logical
//! tables as [`table::ShardedTable`]s whose scans become per-shard physical
//! SQL ([`shard_scan::ShardScanExec`]), and the MySQL-facing
//! `information_schema`.

pub mod convert;
pub mod functions;
pub mod info_schema;
pub mod shard_scan;
pub mod table;

use crate::catalog::CatalogSnapshot;
use crate::error::Result;
use crate::planner::locking::LockingRead;
use crate::session::sink::ResultSink;
use crate::txn::ConnSource;
use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::execution::context::{SessionConfig, SessionContext};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::sql::sqlparser::ast::Statement;
use futures::StreamExt;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The catalog DataFusion sees: one schema per logical database plus
/// `information_schema`.
#[derive(Debug)]
pub struct CnCatalog {
    snapshot: Arc<CatalogSnapshot>,
    source: ConnSource,
}

impl CatalogProvider for CnCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.snapshot.databases.keys().cloned().collect();
        v.push("information_schema".into());
        v
    }
    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        let name = name.to_ascii_lowercase();
        if name == "information_schema" {
            let txns = self.source.cluster().txns.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
            return Some(Arc::new(info_schema::InfoSchema::new(self.snapshot.clone(), txns)));
        }
        self.snapshot.database(&name)?;
        Some(Arc::new(CnSchema { db: name, snapshot: self.snapshot.clone(), source: self.source.clone() }))
    }
}

/// A logical database.
#[derive(Debug)]
pub struct CnSchema {
    db: String,
    snapshot: Arc<CatalogSnapshot>,
    source: ConnSource,
}

#[async_trait]
impl SchemaProvider for CnSchema {
    fn table_names(&self) -> Vec<String> {
        self.snapshot.database(&self.db).map(|d| d.tables.keys().cloned().collect()).unwrap_or_default()
    }
    async fn table(&self, name: &str) -> datafusion::error::Result<Option<Arc<dyn TableProvider>>> {
        Ok(self
            .snapshot
            .table(&self.db, name)
            .map(|t| Arc::new(table::ShardedTable::new(t.clone(), self.source.clone())) as Arc<dyn TableProvider>))
    }
    fn table_exist(&self, name: &str) -> bool {
        self.snapshot.table(&self.db, name).is_some()
    }
}

/// A DataFusion context over the catalog, with `db` as the default schema.
pub fn context(snapshot: Arc<CatalogSnapshot>, source: ConnSource, db: Option<&str>) -> SessionContext {
    let mut config = SessionConfig::new()
        .with_default_catalog_and_schema("def", db.unwrap_or("information_schema"))
        .with_create_default_catalog_and_schema(false)
        .with_information_schema(false)
        .with_target_partitions(2)
        .with_batch_size(8192);
    config.options_mut().sql_parser.dialect = datafusion::config::Dialect::MySQL;
    // `0.06` is DECIMAL in MySQL, not DOUBLE.
    config.options_mut().sql_parser.parse_float_as_decimal = true;
    let ctx = SessionContext::new_with_config(config);
    for f in functions::all() {
        ctx.register_udf(f);
    }
    ctx.add_optimizer_rule(Arc::new(crate::optimizer::pushdown::ShardPushdown::new()));
    ctx.register_catalog("def", Arc::new(CnCatalog { snapshot, source }));
    ctx
}

/// Counts the shard accesses per DN of a physical plan.
fn shard_accesses(plan: &Arc<dyn ExecutionPlan>, out: &mut BTreeMap<u32, usize>) {
    if let Some(scan) = plan.downcast_ref::<shard_scan::ShardScanExec>() {
        for q in &scan.queries {
            *out.entry(q.dn).or_default() += 1;
        }
    }
    for c in plan.children() {
        shard_accesses(c, out);
    }
}

/// Plans and runs a statement in DataFusion, streaming the result to `sink`.
/// With `lock`, every physical query of the plan carries the locking clause
/// (see [`crate::planner::locking`]).
pub async fn run(
    snapshot: Arc<CatalogSnapshot>,
    source: ConnSource,
    db: Option<&str>,
    mut stmt: Statement,
    lock: Option<&LockingRead>,
    sink: &mut dyn ResultSink,
) -> Result<()> {
    crate::optimizer::semantics::rewrite(&mut stmt);
    crate::optimizer::join_order::colocate(&mut stmt, &snapshot, db);
    let ctx = context(snapshot, source.clone(), db);
    let state = ctx.state();
    let plan = state.statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(stmt))).await?;
    let df = ctx.execute_logical_plan(plan).await?;
    let cols: Vec<_> = df.schema().fields().iter().map(|f| convert::column_def(f)).collect();
    let task = Arc::new(df.task_ctx());
    let mut physical = df.create_physical_plan().await?;
    if let Some(lock) = lock {
        physical = physical
            .transform_up(|p| match p.downcast_ref::<shard_scan::ShardScanExec>() {
                Some(scan) => Ok(Transformed::yes(Arc::new(scan.with_suffix(&lock.suffix)) as Arc<dyn ExecutionPlan>)),
                None => Ok(Transformed::no(p)),
            })?
            .data;
    }
    // Every read view the plan needs is made before the first row is read,
    // so a late OPEN can still be retried at a higher snapshot.
    let mut shards = BTreeMap::new();
    shard_accesses(&physical, &mut shards);
    source.open(&shards).await?;
    let mut stream = datafusion::physical_plan::execute_stream(physical, task)?;
    sink.columns(&cols).await?;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        for row in convert::batch_to_rows(&batch)? {
            sink.row(&row).await?;
        }
    }
    sink.end_rows().await
}
