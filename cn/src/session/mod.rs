//! A client session: its state (current database, variables, transaction)
//! and the dispatch of each statement to the module that runs it.

mod prepared;
pub mod show;
pub mod sink;
pub mod vars;

use crate::cluster::{Cluster, ProcessInfo};
use crate::error::{code, CnError, Result};
use crate::planner::{self, PhysicalNames, Route};
use crate::protocol::constants::status;
use crate::protocol::resultset::{ColumnDef, TextRow};
use crate::txn::snapshot::StmtSnapshot;
use crate::txn::{ConnSource, DnConn, Isolation, Txn, TxnOptions};
use datafusion::sql::sqlparser::ast::{
    Expr, Ident, Query, SelectItem, SetExpr, Statement, Value, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::MySqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use sink::ResultSink;
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Rows of each DN's answer a statement over several DNs reads ahead of
/// the client while an earlier DN's answer is being sent (see
/// [`Session::run_on_dns_in`]): enough to keep a DN busy for a few
/// milliseconds, little memory (256 rows of sysbench's 200 bytes: 50 KB).
pub const PREFETCH_ROWS: usize = 256;

/// One DN's answer read by a task of its own ([`Session::spawn_reader`]).
struct DnReader {
    /// The answer's column definitions, first (dropped unsent on an error).
    columns: tokio::sync::oneshot::Receiver<Vec<ColumnDef>>,
    /// Its rows, then its end (the sender dropped) or an error.
    rows: tokio::sync::mpsc::Receiver<Result<TextRow>>,
    /// Set by the task as it returns: a queue that closes without it was
    /// cut short (the task panicked), not ended.
    done: Arc<AtomicBool>,
}

/// ERR 1317, as MySQL answers a statement stopped by KILL QUERY.
fn interrupted() -> CnError {
    CnError::mysql(code::ER_QUERY_INTERRUPTED, "Query execution was interrupted")
}

/// The next row of a DN's result set, as text values. Errors: the DN's,
/// or 1317 once `kill` is set.
async fn next_row(
    kill: &crate::cluster::KillFlag,
    d: &crate::dn::Dn,
    r: &mut mysql_async::QueryResult<'_, '_, mysql_async::TextProtocol>,
) -> Result<Option<TextRow>> {
    let Some(row) = r.next().await.map_err(|e| d.err(e))? else { return Ok(None) };
    if kill.is_set() {
        return Err(interrupted());
    }
    Ok(Some(row.unwrap().into_iter().map(crate::txn::value_bytes).collect()))
}

/// One client connection's state.
pub struct Session {
    pub cluster: Arc<Cluster>,
    pub conn_id: u32,
    pub user: String,
    pub host: String,
    /// Current database (`USE`), lower-case.
    pub db: Option<String>,
    pub vars: BTreeMap<String, String>,
    /// User variables (`SET @x = …`), as SQL literals.
    pub user_vars: BTreeMap<String, String>,
    /// Statements of SQL-level `PREPARE name FROM …`, by lower-case name.
    pub sql_prepared: BTreeMap<String, String>,
    /// The open transaction, if any.
    pub txn: Option<Arc<Txn>>,
    pub last_insert_id: u64,
    /// `FOUND_ROWS()`: the rows the last SELECT sent, or, after `SELECT
    /// SQL_CALC_FOUND_ROWS`, the rows it would have sent without its LIMIT
    /// (MySQL 8.0 reference, "Information Functions").
    pub found_rows: u64,
    /// The count a running `SQL_CALC_FOUND_ROWS` SELECT computed.
    calc_found_rows: Option<u64>,
    pub warnings: Vec<(String, u16, String)>,
    /// What the session's last query run in DataFusion used (`SHOW STATUS
    /// LIKE 'Cn_last_query%'`).
    pub last_query: crate::executor::memory::QueryStats,
    /// How the session's last write transaction committed (`SHOW STATUS
    /// LIKE 'Cn_last_commit'`).
    pub last_commit: crate::txn::CommitProtocol,
    pub kill_query: Arc<crate::cluster::KillFlag>,
    pub kill_conn: Arc<AtomicBool>,
    /// The memory of the session's running query (SHOW PROCESSLIST).
    pub memory: Arc<crate::executor::memory::MemoryGauge>,
    /// What the session's DN connections carry: its `time_zone` and
    /// `sql_mode`.
    pub dn_session: crate::dn::DnSession,
    /// The session's `SHOW STATUS` counters.
    pub status: Arc<crate::cluster::StatusCounters>,
}

/// How a SELECT reads through a global index ([`Session::select_by_index`]).
enum IndexRead<'a> {
    /// The optimizer's choice for the parsed statement.
    Planned(&'a crate::gsi::select::Choice),
    /// A lookup from the plan cache: `index_sql` (on DN `dn`) is the index
    /// query for this execution's literals `params`; `sql` the client's
    /// statement, parsed only when the lookup must be planned.
    Cached {
        plan: &'a planner::plan_cache::LookupPlan,
        params: &'a [planner::plan_cache::Param<'a>],
        dn: u32,
        index_sql: &'a str,
        sql: &'a str,
    },
}

impl Session {
    pub fn new(cluster: Arc<Cluster>, conn_id: u32, user: String, host: String) -> Self {
        let kill_query = Arc::new(crate::cluster::KillFlag::default());
        let kill_conn = Arc::new(AtomicBool::new(false));
        let memory = Arc::new(crate::executor::memory::MemoryGauge::default());
        cluster.processes.lock().unwrap_or_else(|e| e.into_inner()).insert(
            conn_id,
            ProcessInfo {
                id: conn_id,
                user: user.clone(),
                host: host.clone(),
                db: None,
                command: "Sleep",
                started: std::time::Instant::now(),
                info: None,
                kill_query: kill_query.clone(),
                kill_conn: kill_conn.clone(),
                memory: memory.clone(),
            },
        );
        Session {
            cluster,
            conn_id,
            user,
            host,
            db: None,
            vars: vars::defaults(),
            user_vars: BTreeMap::new(),
            sql_prepared: BTreeMap::new(),
            txn: None,
            last_insert_id: 0,
            found_rows: 0,
            calc_found_rows: None,
            warnings: Vec::new(),
            last_query: Default::default(),
            last_commit: Default::default(),
            kill_query,
            kill_conn,
            memory,
            dn_session: Default::default(),
            status: Default::default(),
        }
    }

    pub fn autocommit(&self) -> bool {
        self.vars.get("autocommit").map(|v| v == "1").unwrap_or(true)
    }

    /// SERVER_STATUS flags for OK/EOF packets.
    pub fn status_flags(&self) -> u16 {
        let mut s = 0;
        if self.autocommit() {
            s |= status::AUTOCOMMIT;
        }
        if self.txn.is_some() {
            s |= status::IN_TRANS;
        }
        s
    }

    fn set_process(&self, command: &'static str, info: Option<&str>) {
        if let Some(p) = self.cluster.processes.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&self.conn_id) {
            p.command = command;
            p.info = info.map(|s| s.chars().take(1024).collect());
            p.db = self.db.clone();
            p.started = std::time::Instant::now();
        }
    }

    /// Selects the current database (`USE db`, COM_INIT_DB).
    pub fn use_db(&mut self, db: &str) -> Result<()> {
        let db = db.trim().trim_matches('`').to_ascii_lowercase();
        if db != "information_schema" && self.cluster.catalog.snapshot().database(&db).is_none() {
            return Err(CnError::bad_db(&db));
        }
        self.db = Some(db);
        Ok(())
    }

    /// Where this statement's DN connections come from.
    pub fn source(&self) -> ConnSource {
        match &self.txn {
            Some(t) => ConnSource::Txn(t.clone()),
            None => ConnSource::Pool(self.cluster.clone(), self.dn_session.clone()),
        }
    }

    /// Where a locking read reads: the transaction's branches without a
    /// read view (a READ ONLY transaction's views, where the DN refuses
    /// the lock as MySQL does), or plain connections outside a transaction
    /// (the locks end with the statement; a read-only snapshot cannot lock).
    pub fn locking_source(&self) -> ConnSource {
        match &self.txn {
            Some(t) if t.opts.read_only => ConnSource::Txn(t.clone()),
            Some(t) => ConnSource::TxnLocking(t.clone()),
            None => ConnSource::PoolLocking(
                self.cluster.clone(),
                self.txn_options(None).branch_setup(),
                self.dn_session.clone(),
            ),
        }
    }

    /// Where a statement run in DataFusion reads: the transaction, or a
    /// fresh statement snapshot.
    pub fn read_source(&self) -> ConnSource {
        match &self.txn {
            Some(t) => ConnSource::Txn(t.clone()),
            None => ConnSource::Snapshot(StmtSnapshot::new(self.cluster.clone(), self.dn_session.clone())),
        }
    }

    /// The options of a transaction begun now: the session's isolation level
    /// and access mode, overridden by `read_only` from START TRANSACTION.
    pub(crate) fn txn_options(&self, read_only: Option<bool>) -> TxnOptions {
        let var = |k: &str| self.vars.get(k).map(String::as_str).unwrap_or("");
        TxnOptions {
            isolation: Isolation::from_var(var("transaction_isolation")),
            read_only: read_only.unwrap_or(var("transaction_read_only") == "1"),
            linearizable: var("cn_linearizable_commit") != "0",
            async_commit: var("cn_async_commit") != "0",
            lock_wait_timeout: var("innodb_lock_wait_timeout").parse().unwrap_or(50),
            dn_session: self.dn_session.clone(),
        }
    }

    /// Adds one to a `SHOW STATUS` counter, the session's and the CN's.
    fn count(&self, field: fn(&crate::cluster::StatusCounters) -> &std::sync::atomic::AtomicU64) {
        crate::cluster::StatusCounters::count(&self.status, &self.cluster, field);
    }

    /// What the session's variables ask of a query the CN runs:
    /// `query_memory_limit` (bytes; 0 = the CN default), `cn_hash_join`,
    /// `cn_lookup_join` and `cn_lookup_min_rows`.
    pub fn query_options(&self) -> crate::executor::QueryOptions {
        crate::executor::QueryOptions {
            memory_limit: self.vars.get("query_memory_limit").and_then(|v| v.parse().ok()).unwrap_or(0),
            hash_join: self.vars.get("cn_hash_join").map(String::as_str) != Some("0"),
            lookup_min_rows: match self.vars.get("cn_lookup_join").map(String::as_str) {
                Some("0") => None,
                _ => Some(
                    self.vars
                        .get("cn_lookup_min_rows")
                        .and_then(|v| v.parse::<u64>().ok())
                        .map_or(crate::optimizer::lookup::MIN_LOOKUP_ROWS, |n| n as f64),
                ),
            },
            memory_gauge: Some(self.memory.clone()),
            kill: Some(self.kill_query.clone()),
            status: Some(self.status.clone()),
            plan_cache: self.vars.get("cn_plan_cache").map(String::as_str) != Some("0"),
        }
    }

    /// Opens a transaction if autocommit is off and none is open.
    async fn implicit_begin(&mut self) -> Result<()> {
        if self.txn.is_none() && !self.autocommit() {
            let opts = self.txn_options(None);
            self.txn = Some(Txn::begin(self.cluster.clone(), self.conn_id, opts).await?);
        }
        Ok(())
    }

    /// BEGIN / START TRANSACTION [READ ONLY | READ WRITE | WITH CONSISTENT
    /// SNAPSHOT], after committing any open transaction (as MySQL does).
    async fn begin(&mut self, sql: &str) -> Result<()> {
        self.commit().await?;
        let upper = sql.to_ascii_uppercase();
        let read_only = if upper.contains("READ ONLY") {
            Some(true)
        } else if upper.contains("READ WRITE") {
            Some(false)
        } else {
            None
        };
        let t = Txn::begin(self.cluster.clone(), self.conn_id, self.txn_options(read_only)).await?;
        if upper.contains("WITH CONSISTENT SNAPSHOT") {
            t.open().await?;
        }
        self.txn = Some(t);
        Ok(())
    }

    pub async fn commit(&mut self) -> Result<()> {
        if let Some(t) = self.txn.take() {
            self.note_commit(t.commit().await?);
        }
        Ok(())
    }

    /// Records how a transaction of this session committed, for the
    /// session (`Cn_last_commit`) and the CN (`Cn_commits_*`). Every
    /// commit of a write passes here.
    pub fn note_commit(&mut self, p: crate::txn::CommitProtocol) {
        self.cluster.commits.count(p);
        if p != crate::txn::CommitProtocol::None {
            self.last_commit = p;
        }
    }

    pub async fn rollback(&mut self) {
        if let Some(t) = self.txn.take() {
            t.rollback().await;
        }
    }

    /// The SQL text a SET assigns for `value`: a variable's value where
    /// `value` names one (`SET @old = @@time_zone`, `SET time_zone =
    /// @old`, as dumps save and restore their settings), as a literal;
    /// `value` itself otherwise. An unset user variable is NULL.
    fn set_value(&self, value: &str) -> String {
        let quoted = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
        if value.starts_with("@@") {
            let key = vars::normalize_name(value);
            return match self.vars.get(&key) {
                Some(v) if vars::is_numeric(v) => v.clone(),
                Some(v) => quoted(v),
                None => value.to_string(),
            };
        }
        match value.strip_prefix('@') {
            Some(name) if name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c == b'`') => {
                let name = name.trim_matches('`').to_ascii_lowercase();
                self.user_vars.get(&name).cloned().unwrap_or_else(|| "NULL".into())
            }
            _ => value.to_string(),
        }
    }

    /// The table of `ALTER TABLE t DISABLE KEYS` / `ENABLE KEYS`.
    fn alter_keys(sql: &str) -> Option<String> {
        let w: Vec<&str> = sql.trim().trim_end_matches(';').split_whitespace().collect();
        match w.as_slice() {
            [_, _, t, k, keys]
                if ["DISABLE", "ENABLE"].iter().any(|x| k.eq_ignore_ascii_case(x))
                    && keys.eq_ignore_ascii_case("KEYS") =>
            {
                Some(t.trim_matches('`').to_string())
            }
            _ => None,
        }
    }

    /// SAVEPOINT name, ROLLBACK [WORK] TO [SAVEPOINT] name, RELEASE
    /// SAVEPOINT name (`verb` is the first word, upper-case). Outside a
    /// transaction SAVEPOINT does nothing (autocommit) or begins one
    /// (autocommit off), and the other two fail with 1305, as in MySQL.
    async fn savepoint_statement(&mut self, verb: &str, sql: &str) -> Result<()> {
        let name = sql.trim().trim_end_matches(';').split_whitespace().last().unwrap_or("");
        let name = crate::txn::savepoint_name(name)?;
        if verb == "SAVEPOINT" {
            self.implicit_begin().await?;
        }
        match (&self.txn, verb) {
            (Some(t), "SAVEPOINT") => t.savepoint(&name).await,
            (Some(t), "ROLLBACK") => t.rollback_to(&name).await,
            (Some(t), _) => t.release_savepoint(&name).await,
            (None, "SAVEPOINT") => Ok(()),
            (None, _) => Err(crate::txn::no_savepoint(&name)),
        }
    }

    /// Runs one statement (COM_QUERY may carry several; the protocol layer
    /// splits them).
    pub async fn execute(&mut self, sql: &str, sink: &mut dyn ResultSink) -> Result<()> {
        let opened = planner::split::open_executable_comments(sql);
        let sql = opened.as_deref().unwrap_or(sql);
        self.kill_query.clear();
        self.set_process("Query", Some(sql));
        // The diagnostics area: each statement but SHOW WARNINGS / ERRORS
        // starts it afresh, and an error is left in it (MySQL's rules).
        let words = leading_words(sql, 3);
        let w: Vec<&str> = words.iter().map(String::as_str).collect();
        if !matches!(w.as_slice(), ["SHOW", "WARNINGS" | "ERRORS" | "COUNT", ..]) {
            self.warnings.clear();
        }
        let select = matches!(w.first().map(|x| x.trim_start_matches('(')), Some("SELECT" | "WITH" | ""));
        let (mut r, dn_warnings) = crate::dn::with_dn_warnings(async {
            if select {
                self.calc_found_rows = None;
                let mut counted = sink::CountSink { inner: sink, rows: 0 };
                let r = self.execute_inner(sql, &w, &mut counted).await;
                if r.is_ok() {
                    self.found_rows = self.calc_found_rows.take().unwrap_or(counted.rows);
                }
                r
            } else {
                self.execute_inner(sql, &w, sink).await
            }
        })
        .await;
        // The DNs' warnings of the statement (MySQL's diagnostics area).
        let room = crate::dn::MAX_WARNINGS.saturating_sub(self.warnings.len());
        self.warnings.extend(dn_warnings.into_iter().take(room));
        if r.is_err() && self.txn.as_ref().is_some_and(|t| t.take_victim()) {
            // A distributed deadlock victim: the whole transaction goes.
            self.rollback().await;
            r = Err(CnError::deadlock());
        }
        self.set_process("Sleep", None);
        if let Err(e) = &r {
            let m = e.to_mysql();
            self.warnings.push(("Error".into(), m.code, m.message.clone()));
        }
        r
    }

    /// Runs one statement; `w` holds its first three words, upper-case.
    async fn execute_inner(&mut self, sql: &str, w: &[&str], sink: &mut dyn ResultSink) -> Result<()> {
        match w {
            ["SHOW", ..] => return show::show(self, sql, sink).await,
            ["USE", ..] => {
                let db = sql.trim().trim_end_matches(';')[3..].trim();
                self.use_db(db)?;
                return sink.ok(0, 0, "").await;
            }
            ["BEGIN", ..] | ["START", "TRANSACTION", ..] => {
                self.begin(sql).await?;
                return sink.ok(0, 0, "").await;
            }
            ["COMMIT", ..] => {
                self.commit().await?;
                return sink.ok(0, 0, "").await;
            }
            ["SAVEPOINT", ..] | ["ROLLBACK", "TO", ..] | ["ROLLBACK", "WORK", "TO"] | ["RELEASE", "SAVEPOINT", ..] => {
                self.savepoint_statement(w[0], sql).await?;
                return sink.ok(0, 0, "").await;
            }
            ["ROLLBACK", ..] => {
                self.rollback().await;
                return sink.ok(0, 0, "").await;
            }
            ["SET", ..] => {
                self.set(sql).await?;
                return sink.ok(0, 0, "").await;
            }
            ["KILL", ..] => return self.kill(sql, sink).await,
            ["CREATE", "INDEX" | "UNIQUE" | "GLOBAL" | "CLUSTERED" | "LOCAL", ..] => {
                self.commit().await?;
                return crate::gsi::ddl::create_index_statement(self, sql, sink).await;
            }
            ["DROP", "INDEX", ..] => {
                self.commit().await?;
                return crate::gsi::ddl::drop_index_statement(self, sql, sink).await;
            }
            ["LOCK", "TABLE" | "TABLES", ..] | ["UNLOCK", "TABLE" | "TABLES", ..] => {
                // Accepted and ignored, as TiDB does by default: every
                // statement is a distributed transaction of its own, and
                // the lock would hold on one CN only. Dumps wrap their
                // INSERTs in them. LOCK commits, as in MySQL; UNLOCK
                // commits only what LOCK TABLES locked (nothing here).
                if w[0] == "LOCK" {
                    self.commit().await?;
                    self.warnings.push((
                        "Note".into(),
                        code::ER_NOT_SUPPORTED_YET,
                        "LOCK TABLES is accepted and ignored: the CN takes no table locks".into(),
                    ));
                }
                return sink.ok(0, 0, "").await;
            }
            ["ALTER", "TABLE", ..] => {
                if let Some(table) = Self::alter_keys(sql) {
                    // `ALTER TABLE t DISABLE KEYS` (dumps): what InnoDB answers.
                    self.warnings.push((
                        "Note".into(),
                        code::ER_ILLEGAL_HA,
                        format!("Storage engine InnoDB of the table `{table}` doesn't have this option"),
                    ));
                    return sink.ok(0, 0, "").await;
                }
                self.commit().await?;
                if crate::gsi::ddl::alter_table_statement(self, sql, sink).await? {
                    return Ok(());
                }
            }
            ["CHECK", "GLOBAL", "INDEX"] => return crate::gsi::check::check_statement(self, sql, sink).await,
            ["CHECK" | "OPTIMIZE" | "REPAIR", ..] => {
                use datafusion::sql::sqlparser::keywords::Keyword;
                // An implicit commit, as in MySQL.
                self.commit().await?;
                let verb = match w[0] {
                    "CHECK" => Keyword::CHECK,
                    "OPTIMIZE" => Keyword::OPTIMIZE,
                    _ => Keyword::REPAIR,
                };
                return crate::ddl::maintenance::check_optimize_repair(self, sql, verb, sink).await;
            }
            ["CHECKSUM", ..] => return crate::ddl::maintenance::checksum(self, sql, sink).await,
            ["CREATE", "TABLE", ..] | ["CREATE", "TEMPORARY", "TABLE"] => {
                self.commit().await?;
                return crate::ddl::create_table(self, sql, sink).await;
            }
            ["DESC", ..] | ["DESCRIBE", ..] => {
                let rest =
                    sql.trim().split_once(char::is_whitespace).map(|x| x.1).unwrap_or("").trim().trim_end_matches(';');
                let table = rest.split_whitespace().next().unwrap_or("");
                return show::show(self, &format!("SHOW COLUMNS FROM {table}"), sink).await;
            }
            ["EXPLAIN", "SELECT", ..] | ["EXPLAIN", "ANALYZE", ..] | ["EXPLAIN", "WITH", ..] => {}
            ["EXPLAIN", ..] => {}
            ["DO", ..] => return sink.ok(0, 0, "").await,
            ["PREPARE", ..] => return self.sql_prepare(sql, sink).await,
            ["EXECUTE", ..] => return Box::pin(self.sql_execute(sql, sink)).await,
            ["DEALLOCATE" | "DROP", "PREPARE", ..] => return self.sql_deallocate(sql, sink).await,
            ["ANALYZE", ..] => {
                // An implicit commit, as in MySQL.
                self.commit().await?;
                return crate::catalog::statistics::analyze_statement(self, sql, sink).await;
            }
            ["LOAD", "DATA", ..] => {
                self.implicit_begin().await?;
                return crate::dml::load_data::execute(self, sql, sink).await;
            }
            ["LOAD", ..] => return Err(CnError::unsupported(first_words(sql, 2))),
            ["SELECT", ..] => {
                if let Some(r) = self.select_cached(sql, sink).await {
                    return r;
                }
            }
            _ => {}
        }
        let for_share = planner::locking::share_mode_as_for_share(sql);
        let sql = for_share.as_deref().unwrap_or(sql);
        let rollup = planner::rollup::mark(sql);
        let mut stmts = planner::extract::parse(rollup.as_deref().unwrap_or(sql)).map_err(CnError::parse)?;
        if stmts.len() != 1 {
            return Err(CnError::parse("expected one statement"));
        }
        let mut stmt = stmts.pop().expect("one statement");
        if rollup.is_some() {
            planner::rollup::restore(&mut stmt).map_err(CnError::parse)?;
        }
        match stmt {
            Statement::Query(mut q) => {
                // The text the parser read: its positions are the AST's.
                planner::names::name_as_typed(&mut q, rollup.as_deref().unwrap_or(sql));
                self.implicit_begin().await?;
                self.select(*q, sink).await
            }
            Statement::Explain { mut statement, analyze, .. } => {
                let snap = self.cluster.catalog.snapshot();
                let mut first = None;
                // A locking read is planned as it runs: no global index, no
                // gather, every shard query with its locking clause.
                let mut lock = None;
                if let Statement::Query(q) = statement.as_mut() {
                    planner::views::expand(&snap, self.db.as_deref(), q)?;
                    lock = planner::locking::take(q)?;
                }
                if let (Statement::Query(q), None) = (statement.as_mut(), &lock) {
                    if let Some(choice) = crate::gsi::select::choose(&snap, self.db.as_deref(), q)? {
                        first = Some(vec![Some(b"global_index".to_vec()), Some(choice.describe().into_bytes())]);
                        *q = match choice {
                            crate::gsi::select::Choice::Covering { query, .. } => query,
                            crate::gsi::select::Choice::Lookup { index_query, .. } => index_query,
                        };
                    }
                }
                // A gathered SELECT runs no plan: EXPLAIN shows its per-DN
                // queries (EXPLAIN ANALYZE runs it in DataFusion).
                if let (Statement::Query(q), None, None, false) = (statement.as_ref(), &first, &lock, analyze) {
                    let gather = self.vars.get("cn_gather").map(String::as_str) != Some("0");
                    let route = planner::route_query(&snap, self.db.as_deref(), q, self.cluster.any_dn())?;
                    if let (true, Route::Distributed) = (gather, route) {
                        if let Some(g) = planner::gather::plan(&snap, self.db.as_deref(), q) {
                            sink.columns(&[ColumnDef::text("plan_type"), ColumnDef::text("plan")]).await?;
                            if g.combine != planner::gather::Combine::Concat {
                                let text = g.combine.to_string().into_bytes();
                                sink.row(&[Some(b"gather".to_vec()), Some(text)]).await?;
                            }
                            for (dn, sql) in g.per_dn {
                                let text = format!("Gather dn{dn}: {sql}");
                                sink.row(&[Some(b"gather".to_vec()), Some(text.into_bytes())]).await?;
                            }
                            return sink.end_rows().await;
                        }
                    }
                }
                let mut sink = sink::PrefixSink { inner: sink, first };
                let sink = &mut sink;
                let stmt = Statement::Explain {
                    describe_alias: datafusion::sql::sqlparser::ast::DescribeAlias::Explain,
                    analyze,
                    verbose: false,
                    query_plan: false,
                    estimate: false,
                    statement,
                    format: None,
                    options: None,
                };
                let opts = self.query_options();
                let source = if lock.is_some() { self.locking_source() } else { self.read_source() };
                self.last_query =
                    crate::executor::run(snap, source, self.db.as_deref(), stmt, lock.as_ref(), sink, opts).await?;
                Ok(())
            }
            Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) => {
                self.implicit_begin().await?;
                crate::dml::execute(self, stmt, sink).await
            }
            Statement::CreateDatabase { .. }
            | Statement::Drop { .. }
            | Statement::Truncate(_)
            | Statement::RenameTable(_)
            | Statement::AlterTable(_)
            | Statement::CreateIndex(_)
            | Statement::CreateView(_)
            | Statement::CreateSchema { .. } => {
                self.commit().await?;
                crate::ddl::execute(self, stmt, sink).await
            }
            Statement::Use(_) => unreachable_use(),
            other => Err(CnError::unsupported(first_words(&other.to_string(), 3))),
        }
    }

    /// A SELECT: pushed whole to one DN when the route allows, else run
    /// in DataFusion.
    async fn select(&mut self, mut q: Query, sink: &mut dyn ResultSink) -> Result<()> {
        drop_cache_hints(&mut q);
        if let Some(count) = found_rows_query(&mut q) {
            self.select_inner(q, sink).await?;
            let mut c = sink::CollectSink::default();
            Box::pin(self.select_inner(count, &mut c)).await?;
            let n = c.rows.first().and_then(|r| r.first().cloned().flatten());
            self.calc_found_rows = n.and_then(|v| String::from_utf8(v).ok()?.parse().ok());
            return Ok(());
        }
        self.select_inner(q, sink).await
    }

    async fn select_inner(&mut self, mut q: Query, sink: &mut dyn ResultSink) -> Result<()> {
        let _running = self.cluster.enter_statement();
        let snap = self.cluster.catalog.snapshot();
        planner::views::expand(&snap, self.db.as_deref(), &mut q)?;
        if self.substitute_session_values(&mut q, None) {
            // PolarDB-X's TSO_TIMESTAMP(): a fresh timestamp from the TSO,
            // fetched only for the statements that ask for one.
            let ts = self.cluster.timestamp().await?;
            self.substitute_session_values(&mut q, Some(ts));
        }
        let lock = planner::locking::take(&mut q)?;
        if lock.is_none() {
            if let Some(choice) = crate::gsi::select::choose(&snap, self.db.as_deref(), &mut q)? {
                return self.select_by_index(IndexRead::Planned(&choice), sink).await;
            }
        }
        self.select_routed(q, lock, None, sink).await
    }

    /// A point SELECT answered from the plan cache ([`planner::plan_cache`]):
    /// the physical SQL spliced from the cached template, without the SQL
    /// parser or the planner. `None` when the statement has no cached point
    /// plan or its literals do not route it to one partition; the caller
    /// then takes the uncached way, which gives the same answer.
    async fn select_cached(&mut self, sql: &str, sink: &mut dyn ResultSink) -> Option<Result<()>> {
        use planner::plan_cache::{build, parameterize, CachedPlan, PlanCache};
        if self.vars.get("cn_plan_cache").map(String::as_str) == Some("0") {
            return None;
        }
        let p = parameterize(sql)?;
        let snap = self.cluster.catalog.snapshot();
        let cache = &self.cluster.plan_cache;
        let key = PlanCache::key(self.db.as_deref(), &p.text);
        let (entry, built) = match cache.get(&key, snap.version) {
            Some(e) => (e, false),
            None => {
                let e = Arc::new(build(&snap, self.db.as_deref(), &p.text, |q| {
                    let mut probe = q.clone();
                    !self.substitute_session_values(&mut probe, None) && probe == *q
                }));
                cache.insert(key, e.clone());
                (e, true)
            }
        };
        let (dn, physical) = match &entry.plan {
            CachedPlan::Point(plan) => plan.physical_sql(&p.params)?,
            CachedPlan::Lookup(plan) => plan.index.physical_sql(&p.params)?,
            CachedPlan::Other => return None,
        };
        self.count(if built { |c| &c.plan_cache_misses } else { |c| &c.plan_cache_hits });
        if let Err(e) = self.implicit_begin().await {
            return Some(Err(e));
        }
        let _running = self.cluster.enter_statement();
        if let CachedPlan::Lookup(plan) = &entry.plan {
            let read = IndexRead::Cached { plan, params: &p.params, dn, index_sql: &physical, sql };
            return Some(self.select_by_index(read, sink).await);
        }
        drop(entry);
        let source = self.source();
        Some(self.run_on_dn_in(&source, dn, &physical, sink).await)
    }

    /// The time now, read from a DN in the session's time zone, for the
    /// clock functions of a statement the CN computes ([`planner::clock`]).
    async fn clock(&self) -> Result<planner::clock::Clock> {
        let row: Option<(String, String, i64)> =
            self.cluster.query_first_any(&self.dn_session, planner::clock::Clock::QUERY).await?;
        let (local, utc, unix) = row.ok_or_else(|| CnError::internal("a DN answered the clock query with no row"))?;
        Ok(planner::clock::Clock { local, utc, unix })
    }

    /// Runs a SELECT for the CN itself (a view's check at CREATE VIEW).
    pub(crate) async fn select_into(&mut self, q: Query, sink: &mut dyn ResultSink) -> Result<()> {
        self.select(q, sink).await
    }

    /// A SELECT through a global index ([`crate::gsi::select`]): the index
    /// read and the base-table lookup share one snapshot: the
    /// transaction's, or in autocommit a TSO timestamp with a read view on
    /// each DN the statement reads, opened as the DNs become known (the
    /// index's, then the base rows'). A view opened late (a commit above
    /// the timestamp already visible) starts the statement again at a later
    /// one; nothing has been sent then. Errors: 1213 after
    /// [`crate::txn::OPEN_RETRIES`] late opens.
    async fn select_by_index(&mut self, read: IndexRead<'_>, sink: &mut dyn ResultSink) -> Result<()> {
        if let Some(t) = &self.txn {
            let source = ConnSource::Txn(t.clone());
            return self.select_by_index_in(&read, &source, None, sink).await.map(|_| ());
        }
        let mut s = self.cluster.statement_ts().await?;
        for _ in 0..crate::txn::OPEN_RETRIES {
            let snap = StmtSnapshot::new(self.cluster.clone(), self.dn_session.clone());
            let source = ConnSource::Snapshot(snap.clone());
            match self.select_by_index_in(&read, &source, Some((&snap, s)), sink).await? {
                Ok(()) => return Ok(()),
                Err(amx) => s = self.cluster.timestamp().await?.max(amx),
            }
        }
        Err(crate::txn::snapshot::opened_late())
    }

    /// [`Self::select_by_index`] on `source`; with `lazy` (the autocommit
    /// snapshot and its timestamp) each read first opens views on its DNs.
    /// `Ok(Err(amx))`: a view opened late, before anything was sent.
    async fn select_by_index_in(
        &mut self,
        read: &IndexRead<'_>,
        source: &ConnSource,
        lazy: Option<(&Arc<StmtSnapshot>, u64)>,
        sink: &mut dyn ResultSink,
    ) -> Result<std::result::Result<(), u64>> {
        use crate::gsi::select::{lookup_per_dn, with_keys, Choice, LOOKUP_LIMIT};
        let snap = self.cluster.catalog.snapshot();
        // Opens the views a read on `dns` needs (autocommit only); with
        // `deferred` when the read is one query per DN sent right after
        // (a view on one DN is then made in its query's round trip).
        let open = |dns: std::collections::BTreeSet<u32>, deferred: bool| async move {
            match lazy {
                Some((ss, s)) => ss.open_more(&dns, s, deferred).await,
                None => Ok(Ok(())),
            }
        };
        // The DNs a query reads: the one it routes to (sent there whole,
        // the flag set), or every DN.
        let (db, cluster) = (self.db.clone(), self.cluster.clone());
        let dns_of = |q: &Query| -> Result<(std::collections::BTreeSet<u32>, bool)> {
            Ok(match planner::route_query(&snap, db.as_deref(), q, cluster.any_dn())? {
                Route::SingleDn { dn, .. } => (std::collections::BTreeSet::from([dn]), true),
                Route::Distributed => ((0..cluster.dns.len() as u32).collect(), false),
            })
        };
        // The primary keys from the index, and the direct lookup of them
        // when it is possible.
        let (keys, per_dn) = match read {
            IndexRead::Planned(Choice::Covering { query, .. }) => {
                let (dns, whole) = dns_of(query)?;
                if let Err(amx) = open(dns, whole).await? {
                    return Ok(Err(amx));
                }
                return self.select_routed((**query).clone(), None, Some(source.clone()), sink).await.map(Ok);
            }
            IndexRead::Planned(Choice::Lookup { index_query, base, table, qualifier, .. }) => {
                let (dns, whole) = dns_of(index_query)?;
                if let Err(amx) = open(dns, whole).await? {
                    return Ok(Err(amx));
                }
                let mut keys = sink::CollectSink::default();
                self.select_routed((**index_query).clone(), None, Some(source.clone()), &mut keys).await?;
                let per_dn = match keys.rows.len() <= LOOKUP_LIMIT {
                    true => lookup_per_dn(&snap, db.as_deref(), base, table, qualifier, &keys.rows)?,
                    false => None,
                };
                (keys, per_dn)
            }
            IndexRead::Cached { plan, params, dn, index_sql, .. } => {
                if let Err(amx) = open(std::collections::BTreeSet::from([*dn]), true).await? {
                    return Ok(Err(amx));
                }
                let mut keys = sink::CollectSink::default();
                self.run_on_dn_in(source, *dn, index_sql, &mut keys).await?;
                let per_dn = match keys.rows.len() <= LOOKUP_LIMIT {
                    true => plan.base_per_dn(params, &keys.rows),
                    false => None,
                };
                (keys, per_dn)
            }
        };
        if let Some(per_dn) = per_dn {
            if let Err(amx) = open(per_dn.iter().map(|(dn, _)| *dn).collect(), true).await? {
                return Ok(Err(amx));
            }
            self.count(|c| &c.gsi_lookups_direct);
            if let [(dn, sql)] = per_dn.as_slice() {
                // One DN: read here, without a reader task, and end its
                // view (the statement's last read).
                return self.run_on_dn_ending(source, *dn, sql, true, sink).await.map(Ok);
            }
            return self.run_on_dns_in(source, &per_dn, sink).await.map(Ok);
        }
        let (base, table, qualifier) = match read {
            IndexRead::Planned(Choice::Lookup { base, table, qualifier, .. }) => {
                ((**base).clone(), table.clone(), qualifier.clone())
            }
            IndexRead::Planned(Choice::Covering { .. }) => unreachable!("a covering read returned above"),
            // A cached lookup the direct way cannot take (more keys than a
            // lookup carries): the statement's own choice, planned.
            IndexRead::Cached { sql, .. } => match planner::extract::parse(sql).map_err(CnError::parse)?.pop() {
                Some(Statement::Query(mut q)) => {
                    planner::names::name_as_typed(&mut q, sql);
                    match crate::gsi::select::choose(&snap, db.as_deref(), &mut q)? {
                        Some(Choice::Lookup { base, table, qualifier, .. }) => (*base, table, qualifier),
                        _ => return Err(CnError::internal("a cached global-index lookup no longer plans as one")),
                    }
                }
                _ => return Err(CnError::internal("a cached statement did not parse as a query")),
            },
        };
        let q = if keys.rows.len() > LOOKUP_LIMIT { base } else { with_keys(base, &table, &qualifier, &keys.rows)? };
        if let Err(amx) = open(dns_of(&q)?.0, false).await? {
            return Ok(Err(amx));
        }
        self.count(|c| &c.gsi_lookups_planned);
        self.select_routed(q, None, Some(source.clone()), sink).await.map(Ok)
    }

    /// A SELECT after the choice of indexes: pushed whole to one DN when the
    /// route allows, else run in DataFusion; on `source` when given.
    async fn select_routed(
        &mut self,
        mut q: Query,
        lock: Option<planner::locking::LockingRead>,
        source: Option<ConnSource>,
        sink: &mut dyn ResultSink,
    ) -> Result<()> {
        let snap = self.cluster.catalog.snapshot();
        let suffix = lock.as_ref().map_or("", |l| l.suffix.as_str());
        let route = planner::route_query(&snap, self.db.as_deref(), &q, self.cluster.any_dn())?;
        match route {
            Route::SingleDn { dn, partition: None } if planner::reads_no_table(&q) => {
                // Any DN can evaluate it: move on when one is down.
                planner::escape_strings(&mut q);
                let sql = q.to_string();
                let n = self.cluster.dns.len() as u32;
                let mut last = None;
                for k in 0..n {
                    match self.run_on_dn((dn + k) % n, &sql, sink).await {
                        Err(e @ CnError::DnUnavailable { .. }) if self.txn.is_none() => last = Some(e),
                        other => return other,
                    }
                }
                Err(last.unwrap_or_else(|| CnError::internal("no DN")))
            }
            Route::SingleDn { dn, partition } => {
                let mut names = PhysicalNames { snap: &snap, db: self.db.as_deref(), dn, partition, alias: true };
                planner::to_physical(&mut q, &mut names);
                let source = match source {
                    Some(x) => x,
                    None if lock.is_some() => self.locking_source(),
                    None => self.source(),
                };
                self.run_on_dn_in(&source, dn, &format!("{q}{suffix}"), sink).await
            }
            Route::Distributed => {
                if lock.is_none() && self.vars.get("cn_gather").map(String::as_str) != Some("0") {
                    if let Some(g) = planner::gather::plan(&snap, self.db.as_deref(), &q) {
                        if self.gather(g, source.clone(), sink).await? {
                            // No operator of the CN's held memory or
                            // spilled (a gather holds its bounded queues).
                            self.last_query = Default::default();
                            return Ok(());
                        }
                    }
                }
                name_select_items(&mut q);
                if planner::clock::uses_clock(&q) {
                    let clock = self.clock().await?;
                    planner::clock::substitute(&mut q, &clock)?;
                }
                let source = match source {
                    Some(x) => x,
                    None if lock.is_some() => self.locking_source(),
                    None => self.read_source(),
                };
                let stmt = Statement::Query(Box::new(q));
                let (db, opts) = (self.db.as_deref(), self.query_options());
                let stats = crate::executor::run(snap.clone(), source, db, stmt, lock.as_ref(), sink, opts).await?;
                self.last_query = stats;
                Ok(())
            }
        }
    }

    /// A gathered SELECT ([`planner::gather`]): its per-DN queries on
    /// `source`, else on the transaction or, in autocommit, on read views
    /// at one snapshot on the DNs it reads (none for one DN). `false`
    /// (nothing sent): a sort column of a type the CN cannot merge; the
    /// caller plans the statement.
    async fn gather(
        &self,
        g: planner::gather::Gather,
        source: Option<ConnSource>,
        sink: &mut dyn ResultSink,
    ) -> Result<bool> {
        let source = source.unwrap_or_else(|| self.read_source());
        source.open(&g.per_dn.iter().map(|(dn, _)| (*dn, 1)).collect()).await?;
        use planner::gather::Combine;
        let gathered = match &g.combine {
            Combine::Concat => self.run_on_dns_in(&source, &g.per_dn, sink).await.map(|_| true),
            Combine::Merge(m) => self.run_merged(&source, &g.per_dn, m, sink).await,
            Combine::Aggregate(a) => self.run_aggregated(&source, &g.per_dn, a, sink).await,
        }?;
        if gathered {
            self.count(|c| &c.gathered_selects);
        }
        Ok(gathered)
    }

    /// Runs the per-DN queries of partial aggregates at once and sends
    /// the one row they fold into ([`planner::gather::fold`]). `false`,
    /// before anything is sent: a partial SUM the CN cannot add exactly
    /// (a DOUBLE, or beyond 38 digits). Errors: a DN error, KILL QUERY.
    async fn run_aggregated(
        &self,
        source: &ConnSource,
        queries: &[(u32, String)],
        aggregates: &[planner::gather::Aggregate],
        sink: &mut dyn ResultSink,
    ) -> Result<bool> {
        use crate::protocol::constants::ty;
        use planner::gather::{fold, Aggregate, KeyKind};
        // May fall back to a plan on `source`: its views stay open.
        let (mut readers, defs) = self.start_readers(source, queries, false).await?;
        let mut rows = Vec::new();
        for r in readers.iter_mut() {
            while let Some(row) = self.reader_row(r).await? {
                rows.push(row);
            }
        }
        let exact = |c: &ColumnDef| {
            matches!(
                c.column_type,
                ty::NEWDECIMAL | ty::DECIMAL | ty::LONGLONG | ty::LONG | ty::INT24 | ty::SHORT | ty::TINY
            )
        };
        let sums_exact =
            aggregates.iter().zip(&defs).all(|(a, c)| !matches!(a, Aggregate::Sum | Aggregate::Count) || exact(c));
        let kinds: Vec<Option<KeyKind>> = defs.iter().map(KeyKind::of).collect();
        let Some(row) = fold(aggregates, &kinds, &rows).filter(|_| sums_exact) else { return Ok(false) };
        sink.columns(&defs).await?;
        sink.row(&row).await?;
        sink.end_rows().await?;
        Ok(true)
    }

    /// Runs SELECTs of the same columns, each sorted by `merge.keys`, on
    /// their DNs at once and sends their merged rows (each DN's read ahead
    /// by [`PREFETCH_ROWS`]), with `merge`'s DISTINCT, offset and limit.
    /// `false`, before anything is sent: a sort column's type is not one
    /// [`planner::gather::KeyKind`] compares. Errors: a DN error, KILL
    /// QUERY (1317).
    async fn run_merged(
        &self,
        source: &ConnSource,
        queries: &[(u32, String)],
        merge: &planner::gather::Merge,
        sink: &mut dyn ResultSink,
    ) -> Result<bool> {
        use planner::gather::{compare_rows, KeyKind};
        // May fall back to a plan on `source`: its views stay open.
        let (mut readers, defs) = self.start_readers(source, queries, false).await?;
        let kinds: Option<Vec<KeyKind>> = merge.keys.iter().map(|k| defs.get(k.column).and_then(KeyKind::of)).collect();
        let Some(kinds) = kinds else { return Ok(false) };
        sink.columns(&defs).await?;
        let mut heads = Vec::with_capacity(readers.len());
        for r in readers.iter_mut() {
            heads.push(self.reader_row(r).await?);
        }
        let (mut skipped, mut sent) = (0u64, 0u64);
        let mut last: Option<TextRow> = None;
        while merge.limit.is_none_or(|l| sent < l) {
            let next = (0..heads.len()).filter(|i| heads[*i].is_some()).min_by(|a, b| match (&heads[*a], &heads[*b]) {
                (Some(x), Some(y)) => compare_rows(&merge.keys, &kinds, x, y),
                _ => std::cmp::Ordering::Equal,
            });
            let Some(i) = next else { break };
            let row = heads[i].take().expect("a head row");
            heads[i] = self.reader_row(&mut readers[i]).await?;
            let repeated =
                merge.distinct && last.as_ref().is_some_and(|l| compare_rows(&merge.keys, &kinds, l, &row).is_eq());
            if !repeated {
                if skipped < merge.offset {
                    skipped += 1;
                } else {
                    sink.row(&row).await?;
                    sent += 1;
                }
            }
            last = Some(row);
        }
        sink.end_rows().await?;
        Ok(true)
    }

    /// Starts reading DN `dn`'s answer to `sql` in a task of its own: the
    /// columns come on the first channel, the rows (or an error) on the
    /// second, up to [`PREFETCH_ROWS`] ahead of the reader. The task owns
    /// its DN statement: a statement that stops waiting (an error, KILL
    /// QUERY) drops the channels and never drops the DN query in flight
    /// (mysql_async cannot be cancelled between sending a query and reading
    /// its answer: the connection would hand the answer to its next user).
    /// The task stops at its next row, or when the DN's answer ends; at
    /// KILL QUERY it kills the DN's query first ([`Cluster::killable`]).
    /// With `last_read` (the statement's last read of DN `dn` in an
    /// autocommit snapshot) the read view ends in the query's round trip,
    /// as in [`Self::run_on_dn_ending`].
    fn spawn_reader(&self, source: &ConnSource, dn: u32, sql: String, last_read: bool) -> DnReader {
        let (columns_tx, columns) = tokio::sync::oneshot::channel::<Vec<ColumnDef>>();
        let (tx, rows) = tokio::sync::mpsc::channel::<Result<TextRow>>(PREFETCH_ROWS);
        let (cluster, source, kill) = (self.cluster.clone(), source.clone(), self.kill_query.clone());
        let done = Arc::new(AtomicBool::new(false));
        let finished = done.clone();
        tokio::spawn(async move {
            let read = async {
                let d = cluster.dn(dn)?.clone();
                let mut c = source.get(dn).await?;
                let thread = c.id();
                let ending = last_read && matches!(source, ConnSource::Snapshot(_)) && matches!(c, DnConn::Shared(_));
                let sql = if ending { format!("{sql}; ROLLBACK") } else { sql };
                let stream = async {
                    let mut r = c.query_iter(sql.as_str()).await.map_err(|e| d.err(e))?;
                    let _ = columns_tx.send(r.columns().unwrap_or_default().iter().map(column_from_dn).collect());
                    while let Some(row) = next_row(&kill, &d, &mut r).await? {
                        if tx.send(Ok(row)).await.is_err() {
                            // Not read to its end: the view ends on drop.
                            return Ok(());
                        }
                    }
                    if ending {
                        // The trailing ROLLBACK's answer.
                        r.drop_result().await.map_err(|e| d.err(e))?;
                        if let DnConn::Shared(v) = &mut c {
                            v.ended();
                        }
                    }
                    Ok::<(), CnError>(())
                };
                cluster.killable(&kill, dn, thread, stream).await
            };
            if let Err(e) = read.await {
                let _ = tx.send(Err(e)).await;
            }
            finished.store(true, Ordering::Release);
        });
        DnReader { columns, rows, done }
    }

    /// Starts a reader per query ([`Self::spawn_reader`]), all at once, and
    /// waits for the first DN's column definitions, which the statement's
    /// answer takes. Errors: no query, the first DN's error, 1317.
    /// With `last_reads` (the statement reads `source` no more, and
    /// nothing falls back to another plan on it afterwards) each view
    /// that one query alone reads ends in that query's round trip.
    async fn start_readers(
        &self,
        source: &ConnSource,
        queries: &[(u32, String)],
        last_reads: bool,
    ) -> Result<(Vec<DnReader>, Vec<ColumnDef>)> {
        let alone = |dn: u32| queries.iter().filter(|(d, _)| *d == dn).count() == 1;
        let mut readers: Vec<DnReader> = queries
            .iter()
            .map(|(dn, sql)| self.spawn_reader(source, *dn, sql.clone(), last_reads && alone(*dn)))
            .collect();
        let Some(first) = readers.first_mut() else { return Err(CnError::internal("a gather with no query")) };
        let defs = self.reader_columns(first).await?;
        Ok((readers, defs))
    }

    /// The column definitions of a reader's answer; its error when the
    /// DN failed first. Errors: 1317 at KILL QUERY.
    async fn reader_columns(&self, reader: &mut DnReader) -> Result<Vec<ColumnDef>> {
        let columns = tokio::select! {
            c = &mut reader.columns => c,
            _ = self.kill_query.wait() => return Err(interrupted()),
        };
        match columns {
            Ok(defs) if !defs.is_empty() => Ok(defs),
            Ok(_) => Err(CnError::internal("a gathered query returned no result set")),
            Err(_) => match self.reader_row(reader).await? {
                Some(_) => Err(CnError::internal("a gathered query sent rows without columns")),
                None => Err(CnError::internal("a gathered query ended without columns")),
            },
        }
    }

    /// A reader's next row (`None` at its end); waiting, it answers KILL
    /// QUERY at once (1317).
    /// Errors: the DN's, 1317, or an internal error when the reading task
    /// stopped before the answer's end (a panic: never a short answer).
    async fn reader_row(&self, reader: &mut DnReader) -> Result<Option<TextRow>> {
        let row = match reader.rows.try_recv() {
            Ok(row) => Some(row),
            Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => None,
            Err(tokio::sync::mpsc::error::TryRecvError::Empty) => tokio::select! {
                row = reader.rows.recv() => row,
                _ = self.kill_query.wait() => return Err(interrupted()),
            },
        };
        match row {
            Some(row) => row.map(Some),
            None if reader.done.load(Ordering::Acquire) => Ok(None),
            None => Err(CnError::internal("the task reading a DN's answer stopped before its end")),
        }
    }

    /// Runs physical SQL on one DN and streams its result set (or OK) to the
    /// client unchanged. KILL QUERY kills the DN's query
    /// ([`Cluster::killable`]): the client gets the DN's 1317.
    pub async fn run_on_dn(&mut self, dn: u32, sql: &str, sink: &mut dyn ResultSink) -> Result<()> {
        let source = self.source();
        self.run_on_dn_in(&source, dn, sql, sink).await
    }

    /// [`Session::run_on_dn`] on a connection from `source`.
    async fn run_on_dn_in(&self, source: &ConnSource, dn: u32, sql: &str, sink: &mut dyn ResultSink) -> Result<()> {
        self.run_on_dn_ending(source, dn, sql, false, sink).await
    }

    /// [`Self::run_on_dn_in`]; with `last_read` (the statement's last read
    /// of DN `dn` in an autocommit snapshot) the read view ends in the
    /// query's round trip (`…; ROLLBACK`) rather than in one of its own
    /// after the statement. After an error the view is rolled back as
    /// usual.
    async fn run_on_dn_ending(
        &self,
        source: &ConnSource,
        dn: u32,
        sql: &str,
        last_read: bool,
        sink: &mut dyn ResultSink,
    ) -> Result<()> {
        let d = self.cluster.dn(dn)?.clone();
        let mut c = source.get(dn).await?;
        let thread = c.id();
        let ending = last_read && matches!(source, ConnSource::Snapshot(_)) && matches!(c, DnConn::Shared(_));
        let text = if ending { std::borrow::Cow::Owned(format!("{sql}; ROLLBACK")) } else { sql.into() };
        let run = async {
            let mut r = c.query_iter(&text).await.map_err(|e| d.err(e))?;
            // `None`: a result set was sent; else the OK's affected rows and id.
            let ok = match r.columns() {
                Some(cols) if !cols.is_empty() => {
                    let defs: Vec<ColumnDef> = cols.iter().map(column_from_dn).collect();
                    sink.columns(&defs).await?;
                    self.stream_rows(&d, &mut r, sink).await?;
                    None
                }
                _ => Some((r.affected_rows(), r.last_insert_id().unwrap_or(0))),
            };
            let warned = r.warnings() > 0;
            // With `ending`, also the trailing ROLLBACK's answer.
            r.drop_result().await.map_err(|e| d.err(e))?;
            if ending {
                if let DnConn::Shared(v) = &mut c {
                    v.ended();
                }
            }
            // The DN's warnings go into the session's diagnostics area
            // before the end of the result, whose packet counts them (not
            // after a trailing ROLLBACK, which cleared them on the DN).
            if warned && !ending {
                crate::dn::record_warnings(&mut c).await;
            }
            match ok {
                None => sink.end_rows().await,
                Some((a, l)) => sink.ok(a, l, "").await,
            }
        };
        self.cluster.killable(&self.kill_query, dn, thread, run).await
    }

    /// Runs SELECTs of the same columns on their DNs and sends their rows
    /// to the client as one result set with the first DN's column
    /// definitions, DN after DN. All DNs work at once, each read by a task
    /// of its own ([`Self::spawn_reader`]) up to [`PREFETCH_ROWS`] ahead of
    /// the client. Errors: a DN error (after the rows of the DNs before
    /// it), KILL QUERY (1317, at once).
    async fn run_on_dns_in(
        &self,
        source: &ConnSource,
        queries: &[(u32, String)],
        sink: &mut dyn ResultSink,
    ) -> Result<()> {
        // The statement's last reads (a gather's, a global-index lookup's).
        let (mut readers, defs) = self.start_readers(source, queries, true).await?;
        sink.columns(&defs).await?;
        for r in readers.iter_mut() {
            while let Some(row) = self.reader_row(r).await? {
                sink.row(&row).await?;
            }
        }
        sink.end_rows().await
    }

    /// Sends the rows of a DN's result set to `sink`, stopping at KILL QUERY.
    async fn stream_rows(
        &self,
        d: &crate::dn::Dn,
        r: &mut mysql_async::QueryResult<'_, '_, mysql_async::TextProtocol>,
        sink: &mut dyn ResultSink,
    ) -> Result<()> {
        while let Some(row) = next_row(&self.kill_query, d, r).await? {
            sink.row(&row).await?;
        }
        Ok(())
    }

    /// Replaces `DATABASE()`, `VERSION()`, `CONNECTION_ID()`,
    /// `LAST_INSERT_ID()`, `USER()` and `@@variables` with their values in
    /// this session, and `TSO_TIMESTAMP()` with `tso`, keeping the column
    /// names the client wrote. Returns whether a `TSO_TIMESTAMP()` was left
    /// in place for want of `tso`.
    fn substitute_session_values(&self, q: &mut Query, tso: Option<u64>) -> bool {
        name_session_items(q);
        let mut v = SessionValues { s: self, tso, wants_tso: false };
        let _ = q.visit(&mut v);
        v.wants_tso
    }

    async fn set(&mut self, sql: &str) -> Result<()> {
        let body = sql.trim().trim_end_matches(';')[3..].trim();
        let upper = body.to_ascii_uppercase();
        if upper.starts_with("NAMES") || upper.starts_with("CHARACTER SET") || upper.starts_with("CHARSET") {
            let cs =
                body.split_whitespace().nth(if upper.starts_with("CHARACTER") { 2 } else { 1 }).unwrap_or("utf8mb4");
            let cs = cs.trim_matches(|c| c == '\'' || c == '"' || c == '`').to_ascii_lowercase();
            for k in ["character_set_client", "character_set_connection", "character_set_results"] {
                self.vars.insert(k.into(), cs.clone());
            }
            return Ok(());
        }
        let tx = upper.trim_start_matches("SESSION ").trim_start_matches("GLOBAL ");
        if let Some(rest) = tx.strip_prefix("TRANSACTION") {
            let rest = rest.trim();
            if let Some(level) = rest.strip_prefix("ISOLATION LEVEL") {
                let level = level.trim().replace(' ', "-");
                let level = level.split(',').next().unwrap_or("").trim().to_string();
                if !["READ-UNCOMMITTED", "READ-COMMITTED", "REPEATABLE-READ", "SERIALIZABLE"].contains(&level.as_str())
                {
                    return Err(CnError::parse(format!("unknown isolation level near '{level}'")));
                }
                self.vars.insert("transaction_isolation".into(), level.clone());
                self.vars.insert("tx_isolation".into(), level);
            } else if rest.starts_with("READ ONLY") || rest.starts_with("READ WRITE") {
                let ro = if rest.starts_with("READ ONLY") { "1" } else { "0" };
                self.vars.insert("transaction_read_only".into(), ro.into());
            }
            return Ok(());
        }
        for assign in planner::split::split_top_level_commas(body) {
            let (name, value) = assign.split_once('=').ok_or_else(|| CnError::parse(format!("near '{assign}'")))?;
            let name = name.trim().trim_end_matches(':');
            let value = self.set_value(value.trim());
            let value = value.as_str();
            if let Some(uv) = name.strip_prefix('@').filter(|n| !n.starts_with('@')) {
                self.user_vars.insert(uv.trim_matches('`').to_ascii_lowercase(), value.to_string());
                continue;
            }
            let lname = name.to_ascii_lowercase();
            let lname = lname
                .strip_prefix("session ")
                .or_else(|| lname.strip_prefix("global "))
                .or_else(|| lname.strip_prefix("local "))
                .unwrap_or(&lname);
            let key = vars::normalize_name(lname);
            let mut val = value.trim_matches(|c| c == '\'' || c == '"').to_string();
            if vars::BOOLEAN.contains(&key.as_str()) {
                let on = matches!(val.to_ascii_uppercase().as_str(), "1" | "ON" | "TRUE");
                let off = matches!(val.to_ascii_uppercase().as_str(), "0" | "OFF" | "FALSE");
                if !on && !off {
                    return Err(CnError::mysql(
                        code::ER_WRONG_VALUE_FOR_VAR,
                        format!("Variable '{key}' can't be set to the value of '{val}'"),
                    ));
                }
                if key == "autocommit" && on && self.txn.is_some() {
                    self.commit().await?;
                }
                val = if on { "1" } else { "0" }.into();
            }
            if let Some((_, lo, hi)) = vars::INTEGER.iter().find(|(k, _, _)| *k == key) {
                let n: i128 = val.parse().map_err(|_| {
                    CnError::mysql(code::ER_WRONG_TYPE_FOR_VAR, format!("Incorrect argument type to variable '{key}'"))
                })?;
                val = n.clamp(i128::from(*lo), i128::from(*hi)).to_string();
            }
            if key == "transaction_isolation" || key == "tx_isolation" {
                self.vars.insert("transaction_isolation".into(), val.to_ascii_uppercase());
                self.vars.insert("tx_isolation".into(), val.to_ascii_uppercase());
                continue;
            }
            if !self.vars.contains_key(&key) && !KNOWN_SETTABLE.contains(&key.as_str()) {
                return Err(CnError::mysql(
                    code::ER_UNKNOWN_SYSTEM_VARIABLE,
                    format!("Unknown system variable '{key}'"),
                ));
            }
            if key == "time_zone" || key == "sql_mode" {
                // Checked and named by a DN (1298 for an unknown zone, 1231
                // for an unknown mode); the session's DN connections carry
                // them from the next statement (a transaction's branches
                // keep the state they began with).
                let default = vars::defaults().remove(&key).unwrap_or_default();
                let asked = if val.eq_ignore_ascii_case("DEFAULT") { default } else { val.clone() };
                let var = |k: &str| self.vars.get(k).cloned().unwrap_or_default();
                let (zone, mode) =
                    if key == "time_zone" { (asked, var("sql_mode")) } else { (var("time_zone"), asked) };
                let (session, zone, mode) = self.cluster.check_dn_session(&zone, &mode).await?;
                self.dn_session =
                    crate::dn::DnSession { default_week_format: self.dn_session.default_week_format, ..session };
                self.vars.insert("time_zone".into(), zone);
                self.vars.insert("sql_mode".into(), mode);
                continue;
            }
            if key == "default_week_format" {
                // The DN connections carry it from the next statement.
                self.dn_session.default_week_format = val.parse().ok().filter(|n| *n != 0);
            }
            self.vars.insert(key, val);
        }
        Ok(())
    }

    async fn kill(&mut self, sql: &str, sink: &mut dyn ResultSink) -> Result<()> {
        let words: Vec<String> = sql.split_whitespace().map(|w| w.trim_end_matches(';').to_ascii_uppercase()).collect();
        let (query_only, id) = match words.as_slice() {
            [_, q, id] if q == "QUERY" => (true, id),
            [_, c, id] if c == "CONNECTION" => (false, id),
            [_, id] => (false, id),
            _ => return Err(CnError::parse("KILL [CONNECTION | QUERY] processlist_id")),
        };
        let id: u32 = id.parse().map_err(|_| CnError::parse(format!("near '{id}'")))?;
        {
            let procs = self.cluster.processes.lock().unwrap_or_else(|e| e.into_inner());
            let p = procs
                .get(&id)
                .ok_or_else(|| CnError::mysql(code::ER_NO_SUCH_THREAD, format!("Unknown thread id: {id}")))?;
            p.kill_query.set();
            if !query_only {
                p.kill_conn.store(true, Ordering::Relaxed);
            }
        }
        sink.ok(0, 0, "").await
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.cluster.processes.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.conn_id);
    }
}

/// Variables SET accepts without reporting them (drivers set these).
const KNOWN_SETTABLE: &[&str] = &[
    "names",
    "session_track_schema",
    "session_track_system_variables",
    "session_track_state_change",
    "profiling",
    "optimizer_switch",
    "group_concat_max_len",
    "sql_big_selects",
    "long_query_time",
    "innodb_strict_mode",
    "default_week_format",
    "div_precision_increment",
    "max_execution_time",
    "max_statement_time",
    "big_tables",
    "cte_max_recursion_depth",
    "sql_log_bin",
    "time_zone",
];

fn unreachable_use() -> Result<()> {
    Err(CnError::internal("USE is handled before parsing"))
}

/// Upper-cased leading keywords of a statement, skipping comments.
pub fn leading_words(sql: &str, n: usize) -> Vec<String> {
    let mut s = sql.trim_start();
    loop {
        if let Some(rest) = s.strip_prefix("/*") {
            // MySQL executable comments /*!…*/ are left to the parser.
            if rest.starts_with('!') {
                break;
            }
            s = rest.split_once("*/").map(|x| x.1).unwrap_or("").trim_start();
        } else if s.starts_with("--") || s.starts_with('#') {
            s = s.split_once('\n').map(|x| x.1).unwrap_or("").trim_start();
        } else {
            break;
        }
    }
    s.split(|c: char| c.is_whitespace() || c == '(' || c == ';')
        .filter(|w| !w.is_empty())
        .take(n)
        .map(|w| w.to_ascii_uppercase())
        .collect()
}

fn first_words(s: &str, n: usize) -> String {
    s.split_whitespace().take(n).collect::<Vec<_>>().join(" ")
}

/// Maps a DN's column definition to ours.
pub fn column_from_dn(c: &mysql_async::Column) -> ColumnDef {
    ColumnDef {
        schema: c.schema_str().into_owned(),
        table: c.table_str().into_owned(),
        org_table: c.org_table_str().into_owned(),
        name: c.name_str().into_owned(),
        org_name: c.org_name_str().into_owned(),
        charset: c.character_set(),
        length: c.column_length(),
        column_type: c.column_type() as u8,
        flags: c.flags().bits(),
        decimals: c.decimals(),
    }
}

/// Gives every computed select item of the outer query (of its first
/// SELECT, for a set operation) still unnamed an alias equal to its text
/// as printed (those the client typed were named so already:
/// [`planner::names::name_as_typed`]). MySQL allows
/// two result columns of one name (`SELECT id, id`, `SELECT *, id`);
/// DataFusion does not, so a repeated name gets a unique alias that
/// [`crate::executor::convert::column_def`] shows without its suffix
/// ([`crate::executor::convert::DUPLICATE_NAME_MARK`]).
fn name_select_items(q: &mut Query) {
    use crate::executor::convert::DUPLICATE_NAME_MARK;
    if let Some(sel) = planner::names::naming_select(&mut q.body) {
        let wildcard =
            sel.projection.iter().any(|i| matches!(i, SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)));
        let mut seen = std::collections::HashSet::new();
        for (n, item) in sel.projection.iter_mut().enumerate() {
            let (expr, name) = match item {
                SelectItem::UnnamedExpr(e) => {
                    let name = match &*e {
                        Expr::Identifier(i) => i.value.clone(),
                        Expr::CompoundIdentifier(parts) => parts.last().map(|i| i.value.clone()).unwrap_or_default(),
                        other => planner::names::printed_name(other),
                    };
                    (e.clone(), name)
                }
                SelectItem::ExprWithAlias { expr, alias } => (expr.clone(), alias.value.clone()),
                _ => continue,
            };
            let plain = matches!(expr, Expr::Identifier(_) | Expr::CompoundIdentifier(_));
            let repeated = !seen.insert(name.to_lowercase()) || (wildcard && plain);
            if repeated {
                let alias = Ident::with_quote('`', format!("{name}{DUPLICATE_NAME_MARK}{n}"));
                *item = SelectItem::ExprWithAlias { expr, alias };
            } else if !plain && matches!(item, SelectItem::UnnamedExpr(_)) {
                *item = SelectItem::ExprWithAlias { expr, alias: Ident::with_quote('`', name) };
            }
        }
    }
}

/// Whether `e` reads a user variable (`@v`; its column is named so, not
/// by the value put in its place).
fn mentions_user_variable(e: &Expr) -> bool {
    let mut found = false;
    let _ = datafusion::sql::sqlparser::ast::visit_expressions(e, |x| {
        if matches!(x, Expr::Identifier(i) if i.value.starts_with('@')) {
            found = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    found
}

/// Takes the outer SELECT's modifiers that change no answer off `q`:
/// `SQL_NO_CACHE` (`mysqldump` sends `SELECT /*!40001 SQL_NO_CACHE */ *`;
/// MariaDB refuses it where the CN makes the query a derived table, 1234),
/// `SQL_BUFFER_RESULT`, `HIGH_PRIORITY`, `SQL_SMALL_RESULT`,
/// `SQL_BIG_RESULT` (the CN has no query cache and its own planner).
fn drop_cache_hints(q: &mut Query) {
    let SetExpr::Select(sel) = q.body.as_mut() else { return };
    let Some(m) = sel.select_modifiers.as_mut() else { return };
    m.sql_no_cache = false;
    m.sql_buffer_result = false;
    m.high_priority = false;
    m.sql_small_result = false;
    m.sql_big_result = false;
    if *m == Default::default() {
        sel.select_modifiers = None;
    }
}

/// For `SELECT SQL_CALC_FOUND_ROWS …`: takes the modifier off `q` and
/// returns the query that counts the rows `q` gives without its LIMIT
/// (`SELECT COUNT(*) FROM (q without LIMIT) AS …`); `None` for any other
/// query. MariaDB counts them while it runs the query; the CN asks again.
fn found_rows_query(q: &mut Query) -> Option<Query> {
    let SetExpr::Select(sel) = q.body.as_mut() else { return None };
    let m = sel.select_modifiers.as_mut().filter(|m| m.sql_calc_found_rows)?;
    m.sql_calc_found_rows = false;
    let mut all = q.clone();
    all.limit_clause = None;
    all.fetch = None;
    all.order_by = None;
    name_select_items(&mut all);
    let sql = format!("SELECT COUNT(*) FROM ({all}) AS `__cn_found_rows`");
    match planner::extract::parse(&sql).ok()?.pop()? {
        Statement::Query(c) => Some(*c),
        _ => None,
    }
}

/// Like [`name_select_items`], but only for items that mention a session
/// value (they are about to be replaced by literals).
fn name_session_items(q: &mut Query) {
    if let SetExpr::Select(sel) = q.body.as_mut() {
        for item in sel.projection.iter_mut() {
            if let SelectItem::UnnamedExpr(e) = item {
                let text = e.to_string();
                let lower = text.to_ascii_lowercase();
                if lower.contains("@@")
                    || mentions_user_variable(e)
                    || [
                        "database()",
                        "schema()",
                        "version()",
                        "connection_id()",
                        "last_insert_id()",
                        "found_rows()",
                        "user()",
                        "current_user",
                        "tso_timestamp()",
                    ]
                    .iter()
                    .any(|f| lower.contains(f))
                {
                    *item = SelectItem::ExprWithAlias { expr: e.clone(), alias: Ident::with_quote('`', text) };
                }
            }
        }
    }
}

struct SessionValues<'a> {
    s: &'a Session,
    tso: Option<u64>,
    /// Set when a `TSO_TIMESTAMP()` is met and `tso` is `None`.
    wants_tso: bool,
}

fn lit_str(v: &str) -> Expr {
    Expr::value(Value::SingleQuotedString(v.to_string()))
}

impl VisitorMut for SessionValues<'_> {
    type Break = ();
    fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        let replacement = match e {
            // The second pass (with a timestamp) only fills in TSO_TIMESTAMP():
            // the rest was substituted by the first.
            Expr::Function(f) if self.tso.is_some() => f
                .name
                .to_string()
                .eq_ignore_ascii_case("tso_timestamp")
                .then(|| Expr::value(Value::Number(self.tso.unwrap_or_default().to_string(), false))),
            _ if self.tso.is_some() => None,
            Expr::Function(f) if f.name.0.len() == 1 => {
                let name = f.name.to_string().to_ascii_lowercase();
                match name.as_str() {
                    "database" | "schema" => Some(match &self.s.db {
                        Some(d) => lit_str(d),
                        None => Expr::value(Value::Null),
                    }),
                    "version" => Some(lit_str(vars::SERVER_VERSION)),
                    "tso_timestamp" => {
                        self.wants_tso = true;
                        None
                    }
                    "connection_id" => Some(Expr::value(Value::Number(self.s.conn_id.to_string(), false))),
                    "last_insert_id" if matches!(&f.args, datafusion::sql::sqlparser::ast::FunctionArguments::List(l) if l.args.is_empty()) => {
                        Some(Expr::value(Value::Number(self.s.last_insert_id.to_string(), false)))
                    }
                    "found_rows" => Some(Expr::value(Value::Number(self.s.found_rows.to_string(), false))),
                    "user" | "current_user" | "session_user" | "system_user" => {
                        Some(lit_str(&format!("{}@{}", self.s.user, self.s.host)))
                    }
                    _ => None,
                }
            }
            Expr::Identifier(i) if i.value.starts_with("@@") => self.var(&i.value),
            Expr::CompoundIdentifier(p) if p.first().is_some_and(|i| i.value.starts_with("@@")) => {
                let name = p.iter().map(|i| i.value.as_str()).collect::<Vec<_>>().join(".");
                self.var(&name)
            }
            Expr::Identifier(i) if i.value.starts_with('@') => {
                let v = self.s.user_vars.get(&i.value[1..].to_ascii_lowercase()).cloned();
                Some(match v {
                    Some(v) => Parser::new(&MySqlDialect {})
                        .try_with_sql(&v)
                        .and_then(|mut p| p.parse_expr())
                        .unwrap_or_else(|_| lit_str(&v)),
                    None => Expr::value(Value::Null),
                })
            }
            _ => None,
        };
        if let Some(r) = replacement {
            *e = r;
        }
        ControlFlow::Continue(())
    }
}

impl SessionValues<'_> {
    fn var(&self, name: &str) -> Option<Expr> {
        let key = vars::normalize_name(name);
        let v = match key.as_str() {
            "last_insert_id" | "identity" => Some(self.s.last_insert_id.to_string()),
            "warning_count" => Some(self.s.warnings.len().to_string()),
            _ => self.s.vars.get(&key).cloned(),
        };
        Some(match v {
            Some(v) if vars::is_numeric(&v) => Expr::value(Value::Number(v, false)),
            Some(v) => lit_str(&v),
            // Unknown variable: leave it for the DN to report (ERR 1193).
            None => return None,
        })
    }
}
