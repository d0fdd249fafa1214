//! CN-side execution in DataFusion: logical databases as schemas, logical
//! tables as [`table::ShardedTable`]s whose scans become per-shard physical
//! SQL ([`shard_scan::ShardScanExec`]), and the MySQL-facing
//! `information_schema`.

pub mod convert;
pub mod date_format;
pub mod dn_eval;
pub mod fsp;
pub mod functions;
pub mod group_concat;
pub mod hybrid_hash_join;
pub mod info_schema;
pub mod math;
pub mod memory;
pub mod operator_memory;
pub mod plan_cache;
pub mod repartition;
pub mod shard_scan;
pub mod spill;
pub mod table;
pub mod truth;

use crate::catalog::CatalogSnapshot;
use crate::error::{CnError, Result};
use crate::planner::locking::LockingRead;
use crate::session::sink::ResultSink;
use crate::txn::ConnSource;
use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::execution::context::{SessionConfig, SessionContext};
use datafusion::logical_expr::LogicalPlan;
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
            let cluster = self.source.cluster();
            let txns = cluster.txns.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
            let processes = cluster.processes.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
            return Some(Arc::new(info_schema::InfoSchema::new(self.snapshot.clone(), txns, processes)));
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

/// A DataFusion context over the catalog, with `db` as the default schema,
/// whose operators reserve from `pool` and spill through the CN's disk
/// manager (see [`memory`]). With `gsi_joins` (the statement's index
/// hints), a covering global index may replace its table where that
/// co-locates a join ([`crate::gsi::join`]; not for locking reads, which
/// must lock the table's rows). `opts` gives the join algorithm, the
/// session's KILL QUERY (the shard scans kill their DN queries when it is
/// set) and its status counters.
pub fn context(
    snapshot: Arc<CatalogSnapshot>,
    source: ConnSource,
    db: Option<&str>,
    pool: Arc<memory::QueryMemoryPool>,
    opts: &QueryOptions,
    gsi_joins: Option<crate::gsi::join::JoinHints>,
) -> Result<SessionContext> {
    let cn_memory = source.cluster().memory.clone();
    let limit = pool.limit();
    let mut config = SessionConfig::new()
        .with_default_catalog_and_schema("def", db.unwrap_or("information_schema"))
        .with_create_default_catalog_and_schema(false)
        .with_information_schema(false)
        .with_target_partitions(2)
        .with_batch_size(batch_rows(limit));
    config.options_mut().sql_parser.dialect = datafusion::config::Dialect::MySQL;
    // `0.06` is DECIMAL in MySQL, not DOUBLE.
    config.options_mut().sql_parser.parse_float_as_decimal = true;
    // MySQL sorts NULL as the smallest value: first in ASC, last in DESC.
    config.options_mut().sql_parser.default_null_ordering = "nulls_min".into();
    let exec = &mut config.options_mut().execution;
    exec.spill_compression = cn_memory.compression();
    // A sort keeps this much back for merging its spilled runs; DataFusion's
    // 10 MiB would not fit a small limit.
    exec.sort_spill_reservation_bytes = exec.sort_spill_reservation_bytes.min(limit / 16);
    // An ORDER BY over several partitions sorts once, over their union, and
    // not each partition apart before a merge: DataFusion's pool shares
    // memory among the sorts that have started, so the first ones would
    // take it all and a later one could not even reserve its merge buffer.
    config.options_mut().optimizer.repartition_sorts = false;
    // Every hash join becomes a HybridHashJoinExec, which no longer feeds
    // DataFusion's dynamic join filters to the probe side.
    config.options_mut().optimizer.enable_join_dynamic_filter_pushdown = false;
    // Without hash joins DataFusion plans equality joins as SortMergeJoinExec
    // (it needs more than one target partition, which the CN has).
    config.options_mut().optimizer.prefer_hash_join = opts.hash_join;
    // With row estimates (ANALYZE TABLE) DataFusion would collect a small
    // build side into one partition (CollectLeft), which the hybrid hash
    // join runs over the union of the probe side in one partition: keep
    // every join partitioned, and let the estimates only pick the build side.
    config.options_mut().optimizer.hash_join_single_partition_threshold = 0;
    config.options_mut().optimizer.hash_join_single_partition_threshold_rows = 0;
    // The session's KILL QUERY, for the shard scans to stop their DN
    // queries with ([`shard_scan::ShardScanExec`]).
    if let Some(kill) = &opts.kill {
        config = config.with_extension(kill.clone());
    }
    // The session's counters, for the lookups ([`lookup_read`]).
    if let Some(status) = &opts.status {
        config = config.with_extension(status.clone());
    }
    let mut state = datafusion::execution::SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(cn_memory.runtime(pool)?)
        .with_default_features()
        // Ahead of DataFusion's own, whose type coercion would settle the
        // UNION types first, and convert strings and dates its own way.
        .with_analyzer_rules(
            [
                Arc::new(fsp::UnixTimestampScale) as _,
                Arc::new(crate::optimizer::text_types::TextTypes) as _,
                Arc::new(crate::optimizer::coercion::MysqlCoercion) as _,
            ]
            .into_iter()
            .chain(datafusion::optimizer::Analyzer::new().rules)
            .collect(),
        )
        .with_analyzer_rule(Arc::new(crate::optimizer::winmagic::WinMagic::default()))
        .with_analyzer_rule(Arc::new(crate::optimizer::decorrelate::DomainJoinDecorrelation::default()));
    if opts.hash_join {
        state = state.with_physical_optimizer_rule(Arc::new(hybrid_hash_join::HybridHashJoinRule));
    }
    // Last: after every rule that adds repartitions (the hybrid hash join's too).
    state = state.with_physical_optimizer_rule(Arc::new(repartition::SingleInputRepartition));
    let state = state.build();
    let ctx = SessionContext::new_with_state(state);
    // DataFusion 55.2's rule drops a GROUP BY expression computed from
    // other GROUP BY columns (`GROUP BY b, LENGTH(b)` groups by `b` alone).
    // Under utf8mb4_general_ci `b` groups 'a' with 'a ', which LENGTH tells
    // apart, so MySQL has two groups where the rule leaves one.
    ctx.remove_optimizer_rule("eliminate_group_by_constant");
    for f in functions::all(Some(dn_eval::DnEval {
        cluster: source.cluster().clone(),
        session: source.dn_session().clone(),
    })) {
        ctx.register_udf(f);
    }
    ctx.register_udaf(group_concat::MysqlGroupConcat::udaf());
    if let Some(hints) = gsi_joins {
        ctx.add_optimizer_rule(Arc::new(crate::gsi::join::IndexColocatedJoin { hints }));
    }
    ctx.add_optimizer_rule(Arc::new(crate::optimizer::join_transpose::JoinTranspose));
    ctx.add_optimizer_rule(Arc::new(crate::optimizer::join_reorder::JoinReorder { snapshot: snapshot.clone() }));
    ctx.add_optimizer_rule(Arc::new(crate::optimizer::pushdown::ShardPushdown::new()));
    ctx.add_optimizer_rule(Arc::new(crate::optimizer::collation::GeneralCiCollation));
    ctx.register_catalog("def", Arc::new(CnCatalog { snapshot, source }));
    Ok(ctx)
}

/// Rows per batch for a query that may hold `limit` bytes: 8192 (DataFusion's
/// default) from 64 MiB up, fewer below (2048 at 16 MiB), so that the
/// batches a sort or an aggregate must hold at once fit the limit with room
/// to spare (one batch per partition per operator, sorted twice over).
///
/// The tightest case is an aggregate merging its spill files: it holds two
/// buffered batches of each of at least two files plus the groups of one
/// merged batch, all in proportion to the batch's rows. TPC-H Q10 at SF 1
/// (wide customer rows) under 16 MiB peaked at 22 to 24 MB with 4096 rows
/// (`limit / 4096`), 17.8 MB with 2048, 16.0 MB with 1024; the 22 queries
/// took 82 s with 2048 and 103 s with 1024 rows, so 2048 it is.
pub fn batch_rows(limit: usize) -> usize {
    (limit / 8192).clamp(64, 8192)
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

/// What a session asks of one query the CN runs.
#[derive(Debug, Clone)]
pub struct QueryOptions {
    /// Bytes the query may hold (the session's `query_memory_limit`; 0 = the
    /// CN's `query-memory-limit`).
    pub memory_limit: u64,
    /// Equality joins run as [`hybrid_hash_join::HybridHashJoinExec`] (true)
    /// or as DataFusion's `SortMergeJoinExec` (false; `cn_hash_join = OFF`).
    pub hash_join: bool,
    /// Joins become lookups ([`crate::optimizer::lookup`]) when the large
    /// side has at least this many rows (estimated); `None`: never
    /// (`cn_lookup_join = OFF`).
    pub lookup_min_rows: Option<f64>,
    /// Where the query's memory figures go (the session's SHOW PROCESSLIST
    /// row).
    pub memory_gauge: Option<Arc<memory::MemoryGauge>>,
    /// Set by `KILL QUERY`: the query stops (ERR 1317) at once, dropping
    /// its operators and so their spill files.
    pub kill: Option<Arc<crate::cluster::KillFlag>>,
    /// The session's `SHOW STATUS` counters.
    pub status: Option<Arc<crate::cluster::StatusCounters>>,
    /// A repeated statement takes its optimized plan from the CN's
    /// [`plan_cache`] (`cn_plan_cache`, on by default).
    pub plan_cache: bool,
}

/// Resolves once `flag` is set (never without one).
pub(crate) async fn killed(flag: Option<&crate::cluster::KillFlag>) {
    match flag {
        Some(f) => f.wait().await,
        None => std::future::pending().await,
    }
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            memory_limit: 0,
            hash_join: true,
            lookup_min_rows: Some(crate::optimizer::lookup::MIN_LOOKUP_ROWS),
            memory_gauge: None,
            kill: None,
            status: None,
            plan_cache: true,
        }
    }
}

/// Plans and runs a statement in DataFusion, streaming the result to `sink`.
/// With `lock`, every physical query of the plan carries the locking clause
/// (see [`crate::planner::locking`]).
/// The query holds at most `opts.memory_limit` bytes; errors: ERR 1041 when
/// an operator needs more and cannot spill. Returns what the query used
/// (also added to the CN's counters).
pub async fn run(
    snapshot: Arc<CatalogSnapshot>,
    source: ConnSource,
    db: Option<&str>,
    mut stmt: Statement,
    lock: Option<&LockingRead>,
    sink: &mut dyn ResultSink,
    opts: QueryOptions,
) -> Result<memory::QueryStats> {
    let started = std::time::Instant::now();
    // The plan cache's key: the statement as the session hands it over
    // (its clock functions and variables already literals), before the
    // rewrites below, which depend only on it and the catalog.
    let cache_key = (opts.plan_cache && lock.is_none() && !matches!(stmt, Statement::Explain { .. }))
        .then(|| plan_cache::key(snapshot.version, db, &opts, &stmt.to_string()));
    let cached = cache_key.as_deref().and_then(|k| source.cluster().statement_plans.get(k));
    crate::optimizer::semantics::rewrite(&mut stmt);
    crate::optimizer::join_order::colocate(&mut stmt, &snapshot, db);
    let rewritten = started.elapsed();
    let cn_memory = source.cluster().memory.clone();
    let pool = cn_memory.query_pool_with_gauge(cn_memory.limit_for(opts.memory_limit), opts.memory_gauge.clone());
    let gsi_joins = lock.is_none().then(|| crate::gsi::join::JoinHints::of(&stmt, &snapshot, db));
    let ctx = context(snapshot.clone(), source.clone(), db, pool.clone(), &opts, gsi_joins)?;
    let r = async {
        // A locking read locks what it reads: its keys, read first without
        // locks, could miss a row committed before the locking read.
        let lookups = opts.lookup_min_rows.filter(|_| lock.is_none());
        let context_made = started.elapsed();
        let plan = match cached {
            Some(hit) => {
                if let Some(status) = &opts.status {
                    crate::cluster::StatusCounters::count(status, source.cluster(), |c| &c.plan_cache_hits);
                }
                Planned::Optimized(plan_cache::rebind(&hit.plan, &source)?, hit.fsp.clone())
            }
            None => {
                let (plan, read_data) = plan_statement(&ctx, &snapshot, lookups, lock.is_none(), &source, stmt).await?;
                let keep = cache_key.filter(|_| !read_data).map(|key| Keep { key, status: opts.status.clone() });
                Planned::Logical(plan, keep)
            }
        };
        let planned = started.elapsed();
        let r = run_in(ctx, source, plan, lock, sink, pool.clone(), opts.kill.as_deref()).await;
        tracing::debug!(?rewritten, ?context_made, ?planned, done = ?started.elapsed(), "statement timing");
        r
    }
    .await;
    if matches!(&r, Err(CnError::Mysql { code: crate::error::code::ER_OUT_OF_RESOURCES, .. })) {
        cn_memory.out_of_memory.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let (spilled_bytes, spill_files) = r?;
    let stats = memory::QueryStats { peak_memory: pool.peak(), spilled_bytes, spill_files };
    cn_memory.record(&stats);
    Ok(stats)
}

/// The `spilled_bytes` and `spill_count` metrics of every operator of a
/// plan that has run, summed.
fn spill_totals(plan: &Arc<dyn ExecutionPlan>) -> (u64, u64) {
    let (mut bytes, mut files) = plan
        .metrics()
        .map(|m| (m.spilled_bytes().unwrap_or(0) as u64, m.spill_count().unwrap_or(0) as u64))
        .unwrap_or_default();
    for c in plan.children() {
        let (b, f) = spill_totals(c);
        bytes += b;
        files += f;
    }
    (bytes, files)
}

/// A statement's plan on its way to the physical planner.
enum Planned {
    /// Not yet optimized; kept in the plan cache, once optimized, if
    /// [`plan_cache::cacheable`].
    Logical(LogicalPlan, Option<Keep>),
    /// Optimized (from the plan cache), with its result columns' precision.
    Optimized(LogicalPlan, Vec<Option<u8>>),
}

/// Where a plan is kept in the plan cache, and the session's counters
/// (`Cn_plan_cache_misses` counts the plans kept).
struct Keep {
    key: String,
    status: Option<Arc<crate::cluster::StatusCounters>>,
}

/// The statement's logical plan, with lookup joins when `lookup_min_rows`
/// is set ([`QueryOptions::lookup_min_rows`]), and with `fold`, the values
/// of its uncorrelated scalar subqueries in WHERE and HAVING
/// ([`fold_scalar_subqueries`]); and whether planning read data into it
/// (a lookup's keys, a folded value), which keeps it out of the plan cache.
async fn plan_statement(
    ctx: &SessionContext,
    snapshot: &CatalogSnapshot,
    lookup_min_rows: Option<f64>,
    fold: bool,
    source: &ConnSource,
    stmt: Statement,
) -> Result<(LogicalPlan, bool)> {
    let plan = ctx.state().statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(stmt))).await?;
    let (plan, folded) =
        if fold { fold_scalar_subqueries(ctx, snapshot, lookup_min_rows, source, plan).await? } else { (plan, false) };
    Ok(match lookup_min_rows {
        Some(min_rows) => {
            let lookups = Lookups { ctx, snapshot, min_rows, source, rewrote: Default::default() };
            let plan = lookups.plan(plan).await?;
            (plan, folded || lookups.rewrote.load(std::sync::atomic::Ordering::Relaxed))
        }
        None => (plan, folded),
    })
}

async fn run_in(
    ctx: SessionContext,
    source: ConnSource,
    plan: Planned,
    lock: Option<&LockingRead>,
    sink: &mut dyn ResultSink,
    pool: Arc<memory::QueryMemoryPool>,
    kill: Option<&crate::cluster::KillFlag>,
) -> Result<(u64, u64)> {
    let state = ctx.state();
    let task = ctx.task_ctx();
    let started = std::time::Instant::now();
    // What `SessionState::create_physical_plan` does, in its two steps,
    // so that the optimized plan can be kept.
    let (optimized, fsp) = match plan {
        Planned::Logical(plan, keep) => {
            let fsp = fsp::result_fsp(&plan);
            let optimized = state.optimize(&plan)?;
            if let Some(keep) = keep.filter(|_| plan_cache::cacheable(&optimized)) {
                plan_cache::keep(source.cluster(), keep.key, &optimized, &fsp)?;
                if let Some(status) = &keep.status {
                    crate::cluster::StatusCounters::count(status, source.cluster(), |c| &c.plan_cache_misses);
                }
            }
            (optimized, fsp)
        }
        Planned::Optimized(plan, fsp) => (plan, fsp),
    };
    let mut physical = state.query_planner().create_physical_plan(&optimized, &state).await?;
    tracing::debug!(physical_planning = ?started.elapsed(), "statement timing");
    // The column definitions come from the plan that makes the rows: the
    // DataFrame's schema is the statement's before type coercion, where
    // `CASE WHEN … THEN 0 ELSE dec_col END` is still a BIGINT although its
    // values are DECIMAL (a client then fails to parse them).
    // Temporal columns carry their fractional seconds precision.
    let fields: datafusion::arrow::datatypes::Fields = physical
        .schema()
        .fields()
        .iter()
        .enumerate()
        .map(|(j, f)| convert::with_fsp(f, fsp.get(j).copied().flatten()))
        .collect();
    let cols: Vec<_> = fields.iter().map(|f| convert::column_def(f)).collect();
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
    // Each operator's memory, for EXPLAIN ANALYZE.
    let physical = operator_memory::instrument(physical, pool.clone())?;
    let dyn_pool: Arc<dyn datafusion::execution::memory_pool::MemoryPool> = pool;
    let encoding = datafusion::execution::memory_pool::MemoryConsumer::new("ResultEncoding").register(&dyn_pool);
    let mut stream = datafusion::physical_plan::execute_stream(physical.clone(), task)?;
    sink.columns(&cols).await?;
    loop {
        let next = tokio::select! {
            next = stream.next() => next,
            _ = killed(kill) => {
                return Err(CnError::mysql(crate::error::code::ER_QUERY_INTERRUPTED, "Query execution was interrupted"))
            }
        };
        let Some(batch) = next else { break };
        let batch = batch?;
        let rows = convert::batch_to_rows_as(&batch, &fields)?;
        // The encoded rows are counted while they are sent (never refused:
        // one batch, and refusing it would fail a query that is done).
        encoding
            .resize(rows.iter().map(|r| r.iter().map(|v| v.as_ref().map_or(8, |v| v.len() + 24)).sum::<usize>()).sum());
        for row in rows {
            sink.row(&row).await?;
        }
        encoding.resize(0);
    }
    sink.end_rows().await?;
    drop(stream);
    Ok(spill_totals(&physical))
}

/// What the lookup joins of one statement ([`crate::optimizer::lookup`])
/// need: its context and catalog, the session's `cn_lookup_min_rows`,
/// and where its reads go.
struct Lookups<'a> {
    ctx: &'a SessionContext,
    snapshot: &'a CatalogSnapshot,
    min_rows: f64,
    source: &'a ConnSource,
    /// Set once a lookup join is in the plan (its keys read).
    rewrote: std::sync::atomic::AtomicBool,
}

/// The rules the CN adds after DataFusion's: they see the plan once the
/// lookups are in it.
const CN_LOGICAL_RULES: [&str; 2] = ["cn_shard_pushdown", "cn_general_ci_collation"];

impl Lookups<'_> {
    /// The statement's plan with its lookup joins: inside EXPLAIN and
    /// EXPLAIN ANALYZE too, so they show the SQL the shards get. A plan
    /// without joins or subqueries, or whose joins do not qualify, is
    /// returned as it was.
    async fn plan(&self, plan: LogicalPlan) -> Result<LogicalPlan> {
        Ok(match plan {
            LogicalPlan::Explain(mut e) => {
                e.plan = Arc::new(self.rewrite(e.plan.as_ref().clone()).await?);
                LogicalPlan::Explain(e)
            }
            LogicalPlan::Analyze(mut a) => {
                a.input = Arc::new(self.rewrite(a.input.as_ref().clone()).await?);
                LogicalPlan::Analyze(a)
            }
            plan => self.rewrite(plan).await?,
        })
    }

    async fn rewrite(&self, plan: LogicalPlan) -> Result<LogicalPlan> {
        use crate::optimizer::winmagic::has_subquery;
        let joins =
            plan.exists(|n| Ok(matches!(n, LogicalPlan::Join(_)) || n.expressions().iter().any(has_subquery)))?;
        if !joins || !crate::optimizer::lookup::reads_a_large_table(&plan, self.snapshot, self.min_rows) {
            return Ok(plan);
        }
        let started = std::time::Instant::now();
        let state = self.ctx.state();
        let analyzed = state.analyzer().execute_and_check(plan.clone(), state.config_options(), |_, _| {})?;
        let rules = state.optimizers().iter().filter(|r| !CN_LOGICAL_RULES.contains(&r.name())).cloned().collect();
        let optimized = datafusion::optimizer::Optimizer::with_rules(rules).optimize(analyzed, &state, |_, _| {})?;
        let optimizing = started.elapsed();
        let read = |p: LogicalPlan| lookup_read(self.ctx, self.source, p);
        let (rewritten, mut n) =
            crate::optimizer::lookup::rewrite(optimized, self.snapshot, self.min_rows, read).await?;
        tracing::debug!(?optimizing, lookups = ?started.elapsed(), "statement timing");
        // The uncorrelated subqueries left as plans of their own (TPC-H
        // Q11's total over the same join as its groups) get lookups too.
        let mut subqueries: Vec<(LogicalPlan, LogicalPlan)> = Vec::new();
        for sub in uncorrelated_subqueries(&rewritten)? {
            let (new, k) = crate::optimizer::lookup::rewrite(sub.clone(), self.snapshot, self.min_rows, read).await?;
            if k > 0 {
                n += k;
                subqueries.push((sub, new));
            }
        }
        if n == 0 {
            return Ok(plan);
        }
        self.rewrote.store(true, std::sync::atomic::Ordering::Relaxed);
        if subqueries.is_empty() {
            return Ok(rewritten);
        }
        let replaced = rewritten.transform_down(|node| {
            node.map_subqueries(|sq| match sq {
                LogicalPlan::Subquery(s) => match subqueries.iter().find(|(old, _)| old == s.subquery.as_ref()) {
                    Some((_, new)) => Ok(Transformed::yes(LogicalPlan::Subquery(datafusion::logical_expr::Subquery {
                        subquery: Arc::new(new.clone()),
                        ..s
                    }))),
                    None => Ok(Transformed::no(LogicalPlan::Subquery(s))),
                },
                other => Ok(Transformed::no(other)),
            })
        })?;
        Ok(replaced.data)
    }
}

/// The plans of the subqueries without outer references in the
/// expressions of `plan`'s nodes (not those nested in them), each once (a
/// subquery written twice gets its lookups' keys read once).
fn uncorrelated_subqueries(plan: &LogicalPlan) -> Result<Vec<LogicalPlan>> {
    let mut out: Vec<LogicalPlan> = Vec::new();
    plan.apply(|node| {
        node.apply_subqueries(|sq| {
            if let LogicalPlan::Subquery(s) = sq {
                if s.outer_ref_columns.is_empty() && !out.contains(s.subquery.as_ref()) {
                    out.push(s.subquery.as_ref().clone());
                }
            }
            Ok(TreeNodeRecursion::Jump)
        })?;
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(out)
}

/// `plan` with each uncorrelated scalar subquery of a filter (WHERE,
/// HAVING) of the statement itself replaced by its value, read first in
/// the statement's snapshot. MySQL evaluates such a subquery once, before
/// the rows it filters (its optimizer treats it as a constant); here the
/// value is a literal the pushdown can send to the shards: TPC-H Q22's
/// `c_acctbal > (SELECT AVG(c_acctbal) …)` then filters on the customer
/// shards, inside the anti join pushed with them, instead of in the CN
/// over every row the anti join returns. Subqueries inside other
/// subqueries, in the select list (whose column name would change) and
/// in locking reads (whose subquery must lock what it reads) are left
/// to DataFusion. Errors: ERR 1242 when the subquery returns more than
/// one row; none is NULL.
async fn fold_scalar_subqueries(
    ctx: &SessionContext,
    snapshot: &CatalogSnapshot,
    lookup_min_rows: Option<f64>,
    source: &ConnSource,
    plan: LogicalPlan,
) -> Result<(LogicalPlan, bool)> {
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::{Expr, Subquery};
    let mut subqueries: Vec<Subquery> = Vec::new();
    plan.apply(|node| {
        if let LogicalPlan::Filter(f) = node {
            f.predicate.apply(|e| {
                if let Expr::ScalarSubquery(sq) = e {
                    if sq.outer_ref_columns.is_empty() && !subqueries.contains(sq) {
                        subqueries.push(sq.clone());
                    }
                }
                Ok(TreeNodeRecursion::Continue)
            })?;
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    if subqueries.is_empty() {
        return Ok((plan, false));
    }
    let mut values: Vec<(Subquery, ScalarValue)> = Vec::new();
    for sq in subqueries {
        // With its lookup joins, as it would have had as part of the
        // statement (TPC-H Q11's total reads partsupp by the German
        // suppliers' keys).
        let sub = sq.subquery.as_ref().clone();
        let sub = match lookup_min_rows {
            Some(min_rows) => {
                Lookups { ctx, snapshot, min_rows, source, rewrote: Default::default() }.plan(sub).await?
            }
            None => sub,
        };
        let batches = collect(ctx, source, sub).await?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let value = match batches.iter().find(|b| b.num_rows() > 0) {
            _ if rows > 1 => {
                return Err(CnError::mysql(
                    crate::error::code::ER_SUBQUERY_NO_1_ROW,
                    "Subquery returns more than 1 row",
                ))
            }
            Some(b) if b.num_columns() == 1 => ScalarValue::try_from_array(b.column(0), 0)?,
            None if sq.subquery.schema().fields().len() == 1 => {
                ScalarValue::try_from(sq.subquery.schema().field(0).data_type())?
            }
            _ => {
                return Err(CnError::mysql(
                    crate::error::code::ER_OPERAND_COLUMNS,
                    "Operand should contain 1 column(s)",
                ))
            }
        };
        values.push((sq, value));
    }
    Ok((
        plan.transform_up(|node| {
            if !matches!(node, LogicalPlan::Filter(_)) {
                return Ok(Transformed::no(node));
            }
            node.map_expressions(|e| {
                e.transform_up(|x| match x {
                    Expr::ScalarSubquery(sq) => match values.iter().find(|(s, _)| *s == sq) {
                        Some((_, v)) => Ok(Transformed::yes(Expr::Literal(v.clone(), None))),
                        None => Ok(Transformed::no(Expr::ScalarSubquery(sq))),
                    },
                    other => Ok(Transformed::no(other)),
                })
            })
        })?
        .data,
        true,
    ))
}

/// Runs a lookup's read (its small side's keys or rows) and returns its
/// rows. The statement's read views are opened first, on every DN (the
/// shards the statement reads after the lookups are not known yet).
async fn lookup_read(
    ctx: &SessionContext,
    source: &ConnSource,
    plan: LogicalPlan,
) -> Result<Vec<datafusion::arrow::record_batch::RecordBatch>> {
    let cluster = source.cluster();
    match ctx.state().config().get_extension::<crate::cluster::StatusCounters>() {
        Some(session) => crate::cluster::StatusCounters::count(&session, cluster, |c| &c.lookup_key_reads),
        None => {
            cluster.status.lookup_key_reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    collect(ctx, source, plan).await
}

/// Runs `plan` (a part of a statement: a lookup's key query, a scalar
/// subquery) to its end, in the statement's snapshot: the read views of
/// every DN are opened first.
async fn collect(
    ctx: &SessionContext,
    source: &ConnSource,
    plan: LogicalPlan,
) -> Result<Vec<datafusion::arrow::record_batch::RecordBatch>> {
    let df = ctx.execute_logical_plan(plan).await?;
    let task = Arc::new(df.task_ctx());
    let physical = df.create_physical_plan().await?;
    source.open_all().await?;
    Ok(datafusion::physical_plan::collect(physical, task).await?)
}
