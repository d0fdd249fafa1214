//! Data-node access: one connection pool per DN, and running physical SQL
//! on a DN with errors that name it.

use crate::catalog::metadb::DnInfo;
use crate::error::{CnError, Result};
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How long [`Dn::probe`] waits for a DN to accept a connection and
/// answer a ping.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether `host` names this machine's loopback interface.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A warning as `SHOW WARNINGS` lists it: level, code, message.
pub type Warning = (String, u16, String);

/// The most warnings a statement keeps, as MariaDB's default
/// `max_error_count` (MariaDB KB, "Server System Variables").
pub const MAX_WARNINGS: usize = 64;

tokio::task_local! {
    /// The warnings the DNs gave the statement running in this task
    /// ([`record_warnings`]), for the session's diagnostics area.
    static DN_WARNINGS: std::cell::RefCell<Vec<Warning>>;
}

/// Runs `f` (a client statement) with a fresh area for the DNs' warnings;
/// its output and the warnings its DN statements gave (those run in tasks
/// of their own, as a gather's readers, are not seen).
pub async fn with_dn_warnings<F: std::future::Future>(f: F) -> (F::Output, Vec<Warning>) {
    DN_WARNINGS
        .scope(std::cell::RefCell::new(Vec::new()), async {
            let out = f.await;
            (out, DN_WARNINGS.with(|w| w.take()))
        })
        .await
}

/// How many warnings the DNs gave the running statement so far (0 outside
/// [`with_dn_warnings`]): the count its OK or EOF packet carries.
pub fn dn_warning_count() -> usize {
    DN_WARNINGS.try_with(|w| w.borrow().len()).unwrap_or(0)
}

/// After a DN statement on `c` that reported warnings: reads them (`SHOW
/// WARNINGS`, which lists the last statement's) into the running
/// statement's area, up to [`MAX_WARNINGS`]. Not reading them leaves the
/// statement's result as it is.
pub async fn record_warnings(c: &mut Conn) {
    use mysql_async::prelude::Queryable;
    if DN_WARNINGS.try_with(|_| ()).is_err() {
        return;
    }
    if let Ok(rows) = c.query::<(String, u16, String), _>("SHOW WARNINGS").await {
        let _ = DN_WARNINGS.try_with(|w| {
            let mut w = w.borrow_mut();
            let room = MAX_WARNINGS.saturating_sub(w.len());
            w.extend(rows.into_iter().take(room));
        });
    }
}

/// What every pooled DN connection runs once, when it is made.
///
/// First-committer-wins inside snapshot transactions: writing a row changed
/// after the read view fails with 1020 instead of losing an update (MariaDB
/// 10.6.18+/10.11.8+).
///
/// The CN leaves a DN's answer unread while it sends another's (a gathered
/// SELECT sends the DNs' rows one DN after the other; a hash join reads its
/// build side first): with MariaDB's default net_write_timeout of 60 s, a DN
/// dropped the connection of an answer waiting longer ("bytes remaining on
/// stream": a mariadb-dump of TPC-H SF 1 lineitem through the CN failed at
/// its third DN). 8 hours, as wait_timeout.
const CONNECTION_INIT: &str = "SET SESSION innodb_snapshot_isolation = ON, SESSION net_write_timeout = 28800";

/// The session state a CN session's DN connections carry beyond the pool's
/// defaults (`None`: the DN's own):
/// - `time_zone`, which MariaDB applies to TIMESTAMP columns (stored in UTC,
///   read and written in the session's zone), `NOW()`, `UNIX_TIMESTAMP()`
///   and `FROM_UNIXTIME()` (MySQL 8.0 reference, 7.1.15 "MySQL Server Time
///   Zone Support");
/// - `sql_mode`, the modes that change what a statement does on the DN
///   (strictness: `''` truncates a too-long string with a warning where
///   `STRICT_TRANS_TABLES` refuses it; zero dates; division by zero),
///   without those that change how SQL is read (the CN writes the DNs'
///   SQL with backslash escapes and backquoted names);
/// - `default_week_format`, the mode of `WEEK(d)` and `EXTRACT(WEEK FROM
///   d)` (MySQL 8.0 reference, 14.7, `WEEK`), other than 0.
///
/// Connections with any of them come from a pool for that state, so a
/// pooled connection never carries one session's state into another's
/// statement.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DnSession {
    pub time_zone: Option<Arc<str>>,
    pub sql_mode: Option<Arc<str>>,
    pub default_week_format: Option<u8>,
}

impl DnSession {
    /// What a connection with this state runs once, after the pool's
    /// [`CONNECTION_INIT`].
    fn setup(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(zone) = &self.time_zone {
            out.push(format!("SET SESSION time_zone = {}", quote_str(zone)));
        }
        if let Some(mode) = &self.sql_mode {
            out.push(format!("SET SESSION sql_mode = {}", quote_str(mode)));
        }
        if let Some(n) = self.default_week_format {
            out.push(format!("SET SESSION default_week_format = {n}"));
        }
        out
    }
}

/// A data node the CN sends physical SQL to.
pub struct Dn {
    pub info: DnInfo,
    /// `dn0`, `dn1`, …: the name errors and SHOW output use.
    pub name: String,
    pool: Pool,
    /// The pool's connection options, for [`Dn::probe`].
    opts: Opts,
    /// Held while one caller takes several connections (see
    /// `Cluster::acquire`).
    pub acquire_lock: tokio::sync::Mutex<()>,
    /// Pools of connections with a session state other than the DN's
    /// defaults, by state ([`DnSession`]); made on first use.
    zoned: std::sync::Mutex<HashMap<DnSession, Pool>>,
}

impl Dn {
    /// Creates the pool (connections are opened lazily, so a DN that is down
    /// does not stop the CN from starting).
    pub fn new(info: DnInfo, max_conns: usize) -> Self {
        let opts = OptsBuilder::default()
            .ip_or_hostname(info.host.clone())
            .tcp_port(info.port)
            .user(Some(info.user.clone()))
            .pass(if info.password.is_empty() { None } else { Some(info.password.clone()) })
            // A DN on this host is reached over its Unix socket (read from
            // `@@socket` after the TCP handshake; TCP stays if that fails):
            // the loopback TCP stack costs the CN about a tenth of its CPU
            // per point query. Only for loopback addresses, so a remote DN
            // is never confused with a local server at the same path.
            .prefer_socket(is_loopback(&info.host))
            .tcp_nodelay(true)
            .stmt_cache_size(0)
            .init(vec![CONNECTION_INIT])
            .pool_opts(
                PoolOpts::default()
                    .with_constraints(PoolConstraints::new(0, max_conns.max(1)).unwrap_or_default())
                    .with_inactive_connection_ttl(Duration::from_secs(60))
                    // The CN leaves no session state on a pooled connection, so skip
                    // the COM_RESET_CONNECTION round trip on every check-in.
                    .with_reset_connection(false),
            );
        let opts = Opts::from(opts);
        Dn {
            name: format!("dn{}", info.id),
            info,
            pool: Pool::new(opts.clone()),
            opts,
            acquire_lock: tokio::sync::Mutex::new(()),
            zoned: Default::default(),
        }
    }

    /// Drops the pool of connections with `session`'s state (their
    /// connections close as they come back).
    pub fn forget_pool(&self, session: &DnSession) {
        self.zoned.lock().unwrap_or_else(|e| e.into_inner()).remove(session);
    }

    /// A pooled connection for a session with `session`'s state. Errors:
    /// those of [`Dn::conn`]; a state the DN refuses is its error (1298
    /// for an unknown zone, 1231 for an unknown mode), and the state's
    /// pool is dropped.
    pub async fn conn_for(&self, session: &DnSession) -> Result<Conn> {
        if *session == DnSession::default() {
            return self.conn().await;
        }
        let pool = {
            let mut zoned = self.zoned.lock().unwrap_or_else(|e| e.into_inner());
            zoned
                .entry(session.clone())
                .or_insert_with(|| {
                    let init = std::iter::once(CONNECTION_INIT.to_string()).chain(session.setup()).collect::<Vec<_>>();
                    Pool::new(OptsBuilder::from_opts(self.opts.clone()).init(init))
                })
                .clone()
        };
        let r = self.get(&pool).await;
        if matches!(&r, Err(CnError::Dn { .. })) {
            self.forget_pool(session);
        }
        r
    }

    /// A pooled connection, or an error that names the DN.
    pub async fn conn(&self) -> Result<Conn> {
        self.get(&self.pool).await
    }

    async fn get(&self, pool: &Pool) -> Result<Conn> {
        match tokio::time::timeout(Duration::from_secs(10), pool.get_conn()).await {
            Ok(r) => r.map_err(|e| CnError::from_dn(&self.name, e)),
            Err(_) => Err(CnError::DnUnavailable { dn: self.name.clone(), message: "timed out connecting".into() }),
        }
    }

    /// Whether the DN answers now: a new connection (a pooled one may be a
    /// stale socket to a DN that has since restarted) and a ping, within
    /// [`PROBE_TIMEOUT`]. Errors: the connection's (a refused connection is
    /// an I/O error), or an I/O `TimedOut`.
    pub async fn probe(&self) -> std::result::Result<(), mysql_async::Error> {
        let answer = async {
            let mut c = Conn::new(self.opts.clone()).await?;
            mysql_async::prelude::Queryable::ping(&mut c).await?;
            c.disconnect().await
        };
        match tokio::time::timeout(PROBE_TIMEOUT, answer).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer to a ping").into()),
        }
    }

    pub fn err(&self, e: mysql_async::Error) -> CnError {
        CnError::from_dn(&self.name, e)
    }

    /// An error of this DN's agent as the client sees it: a DN error as
    /// [`Dn::err`], anything else (a late OPEN, an agent unreachable) as
    /// 1105 with the agent's message.
    pub fn agent_err(&self, e: dn_plugin::AgentError) -> CnError {
        match e {
            dn_plugin::AgentError::Db(e) => self.err(e),
            other => CnError::internal(format!("{}: {other}", self.name)),
        }
    }

    pub async fn disconnect(&self) {
        let _ = self.pool.clone().disconnect().await;
    }
}

/// The most bytes of SQL [`batch_statements`] joins into one
/// multi-statement (well under MariaDB's 16 MiB `max_allowed_packet`).
pub const BATCH_BYTES: usize = 1 << 20;

/// Groups write statements, in order, into multi-statements of at most
/// [`BATCH_BYTES`] (a longer statement goes alone), so that statements for
/// one DN cost one round trip instead of one each. MariaDB stops a
/// multi-statement at its first error, as running them one by one would.
pub fn batch_statements(stmts: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in stmts {
        match out.last_mut() {
            Some(b) if b.len() + s.len() + 2 <= BATCH_BYTES => {
                b.push_str("; ");
                b.push_str(s);
            }
            _ => out.push(s.clone()),
        }
    }
    out
}

/// Runs a multi-statement of writes (and statements without a result set:
/// SET, XA START, SAVEPOINT) and returns the affected rows summed over its
/// statements. Not for statements that return rows: the count would be
/// wrong. Errors: the first statement's error that failed (the rest did not
/// run).
pub async fn exec_summed(c: &mut Conn, sql: &str) -> std::result::Result<u64, mysql_async::Error> {
    use mysql_async::prelude::Queryable;
    let mut r = c.query_iter(sql).await?;
    let mut total = 0;
    let mut warned = false;
    loop {
        total += r.affected_rows();
        warned |= r.warnings() > 0;
        if r.is_empty() {
            break;
        }
        // Consumes the current result and reads the next one's OK packet.
        r.for_each(drop).await?;
    }
    r.drop_result().await?;
    if warned {
        record_warnings(c).await;
    }
    Ok(total)
}

/// Quotes an identifier with backticks for MySQL.
pub fn quote_ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

/// Quotes a string literal for a DN session (these run with backslash
/// escapes on, MariaDB's default sql_mode).
pub fn quote_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}
