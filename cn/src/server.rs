//! The MySQL-protocol server: accepts connections (up to
//! `max-connections`), authenticates, and runs the command loop of each
//! connection in its own task. A panic while running a statement ends only
//! that connection, with an error packet.

use crate::cluster::Cluster;
use crate::error::{code, CnError, MysqlError, Result};
use crate::protocol::codec::Reader;
use crate::protocol::constants::{cap, com, status, ty};
use crate::protocol::handshake::{self, native_password_hash, verify_caching_sha2_password, verify_native_password};
use crate::protocol::packet::PacketIo;
use crate::protocol::resultset::{binary_row, eof_packet, err_packet, ok_packet, text_row, ColumnDef};
use crate::session::sink::ResultSink;
use crate::session::{vars, Session};
use async_trait::async_trait;
use futures::FutureExt;
use rand::Rng;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

type Io = PacketIo<OwnedReadHalf, OwnedWriteHalf>;

/// Accepts connections until the listener fails.
pub async fn serve(cluster: Arc<Cluster>, listener: TcpListener) -> Result<()> {
    let slots = Arc::new(Semaphore::new(cluster.config.max_connections));
    loop {
        let (sock, addr) = listener.accept().await?;
        let _ = sock.set_nodelay(true);
        let cluster = cluster.clone();
        let permit = slots.clone().try_acquire_owned();
        tokio::spawn(async move {
            let (r, w) = sock.into_split();
            let mut io = PacketIo::new(r, w);
            match permit {
                Ok(_permit) => {
                    let conn_id = cluster.next_conn_id();
                    if let Err(e) = handle(cluster, &mut io, conn_id, addr.ip().to_string()).await {
                        tracing::debug!(conn_id, error = %e, "connection ended with an error");
                    }
                }
                Err(_) => {
                    let e = CnError::mysql(code::ER_CON_COUNT_ERROR, "Too many connections").to_mysql();
                    let _ = io.write_packet(&err_packet(&e)).await;
                    let _ = io.flush().await;
                }
            }
        });
    }
}

/// Binds and serves on `addr`; returns the bound address and the task.
pub async fn start(
    cluster: Arc<Cluster>,
    addr: &str,
) -> Result<(std::net::SocketAddr, tokio::task::JoinHandle<Result<()>>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((local, tokio::spawn(serve(cluster, listener))))
}

/// A running CN: its cluster state, MySQL address and accept task.
pub type RunningCn = (Arc<Cluster>, std::net::SocketAddr, tokio::task::JoinHandle<Result<()>>);

/// Starts a CN from `config`: connects to the metadb (catalog, DNs),
/// starts the catalog poller and listens on `config.listen`.
pub async fn start_cn(config: crate::config::Config) -> Result<RunningCn> {
    let listen = config.listen.clone();
    let cluster = Cluster::connect(config).await?;
    cluster.spawn_catalog_poller();
    crate::txn::recovery::spawn_watchdog(&cluster);
    crate::txn::deadlock::spawn_detector(&cluster);
    let (addr, task) = start(cluster.clone(), &listen).await?;
    Ok((cluster, addr, task))
}

/// The warnings the DNs gave the running statement so far, for the count
/// its OK or EOF packet carries.
fn warning_count() -> u16 {
    crate::dn::dn_warning_count().min(u16::MAX as usize) as u16
}

/// Writes results to the client.
struct ConnSink<'a> {
    io: &'a mut Io,
    caps: u32,
    status: u16,
    /// More statements of a multi-statement query follow this one.
    more: bool,
    /// Binary rows (COM_STMT_EXECUTE) instead of text rows.
    binary: bool,
    cols: Vec<ColumnDef>,
    buf: Vec<u8>,
}

impl ConnSink<'_> {
    fn status(&self) -> u16 {
        if self.more {
            self.status | status::MORE_RESULTS_EXISTS
        } else {
            self.status
        }
    }
    fn deprecate_eof(&self) -> bool {
        self.caps & cap::DEPRECATE_EOF != 0
    }
}

#[async_trait]
impl ResultSink for ConnSink<'_> {
    async fn columns(&mut self, cols: &[ColumnDef]) -> Result<()> {
        self.buf.clear();
        crate::protocol::codec::put_lenenc_int(&mut self.buf, cols.len() as u64);
        self.io.write_packet(&self.buf).await?;
        for c in cols {
            self.io.write_packet(&c.encode(false)).await?;
        }
        if !self.deprecate_eof() {
            self.io.write_packet(&eof_packet(self.status(), 0)).await?;
        }
        self.cols = cols.to_vec();
        Ok(())
    }
    async fn row(&mut self, row: &[Option<Vec<u8>>]) -> Result<()> {
        self.buf.clear();
        if self.binary {
            binary_row(&self.cols, row, &mut self.buf);
        } else {
            text_row(row, &mut self.buf);
        }
        self.io.write_packet(&self.buf).await
    }
    async fn end_rows(&mut self) -> Result<()> {
        let (st, warnings) = (self.status(), warning_count());
        if self.deprecate_eof() {
            self.io.write_packet(&ok_packet(0, 0, st, warnings, "", true)).await
        } else {
            self.io.write_packet(&eof_packet(st, warnings)).await
        }
    }
    async fn ok(&mut self, affected: u64, last_insert_id: u64, info: &str) -> Result<()> {
        let st = self.status();
        self.io.write_packet(&ok_packet(affected, last_insert_id, st, warning_count(), info, false)).await
    }
    /// LOCAL INFILE request: `0xFB` then the file name; the client answers
    /// with the file in packets and an empty packet at its end.
    async fn infile_request(&mut self, name: &str) -> Result<()> {
        if self.caps & cap::LOCAL_FILES == 0 {
            return Err(CnError::mysql(
                code::ER_NOT_ALLOWED_COMMAND,
                "The used command is not allowed with this MariaDB version (the client does not allow LOCAL INFILE)",
            ));
        }
        let mut p = vec![0xfb];
        p.extend_from_slice(name.as_bytes());
        self.io.write_packet(&p).await?;
        self.io.flush().await
    }
    async fn infile_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        match self.io.read_packet().await? {
            Some(p) if !p.is_empty() => Ok(Some(p)),
            Some(_) => Ok(None),
            None => Err(CnError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the client closed the connection while sending a LOCAL INFILE",
            ))),
        }
    }
}

async fn send_err(io: &mut Io, e: &MysqlError) -> Result<()> {
    io.write_packet(&err_packet(e)).await?;
    io.flush().await
}

fn scramble() -> [u8; 20] {
    let mut r = rand::rng();
    let mut s = [0u8; 20];
    for b in s.iter_mut() {
        *b = r.random_range(0x21..0x7f);
    }
    s
}

/// A prepared statement: SQL text with `?` placeholders.
struct Prepared {
    sql: String,
    /// Byte offsets of the placeholders.
    params: Vec<usize>,
    /// Parameter types from the last execute that sent them.
    types: Vec<(u8, bool)>,
    long_data: HashMap<u16, Vec<u8>>,
}

/// Offsets of `?` placeholders outside quotes and comments.
pub(crate) fn placeholders(sql: &str) -> Vec<usize> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' | b'`' => i = crate::planner::split::skip_quoted(b, i),
            b'?' => out.push(i),
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Decodes one binary-protocol parameter into a SQL literal.
fn param_literal(r: &mut Reader<'_>, t: u8, unsigned: bool) -> Result<String> {
    Ok(match t {
        ty::TINY => {
            if unsigned {
                (r.u8()?).to_string()
            } else {
                (r.u8()? as i8).to_string()
            }
        }
        ty::SHORT | ty::YEAR => {
            if unsigned {
                r.u16()?.to_string()
            } else {
                (r.u16()? as i16).to_string()
            }
        }
        ty::LONG | ty::INT24 => {
            if unsigned {
                r.u32()?.to_string()
            } else {
                (r.u32()? as i32).to_string()
            }
        }
        ty::LONGLONG => {
            if unsigned {
                r.u64()?.to_string()
            } else {
                (r.u64()? as i64).to_string()
            }
        }
        ty::FLOAT => format!("{:?}", f32::from_le_bytes(r.take(4)?.try_into().unwrap_or_default())),
        ty::DOUBLE => format!("{:?}", f64::from_le_bytes(r.take(8)?.try_into().unwrap_or_default())),
        ty::DATE | ty::DATETIME | ty::TIMESTAMP => {
            let n = r.u8()? as usize;
            let d = r.take(n)?;
            let g = |i: usize| d.get(i).copied().unwrap_or(0) as u32;
            let year = if n >= 2 { u16::from_le_bytes([d[0], d[1]]) } else { 0 };
            let micro = if n >= 11 { u32::from_le_bytes([d[7], d[8], d[9], d[10]]) } else { 0 };
            let mut s = format!("'{year:04}-{:02}-{:02} {:02}:{:02}:{:02}", g(2), g(3), g(4), g(5), g(6));
            if micro != 0 {
                s.push_str(&format!(".{micro:06}"));
            }
            s.push('\'');
            s
        }
        ty::TIME => {
            let n = r.u8()? as usize;
            let d = r.take(n)?;
            if n == 0 {
                "'00:00:00'".into()
            } else {
                let neg = d[0] == 1;
                let days = u32::from_le_bytes([d[1], d[2], d[3], d[4]]);
                let h = days * 24 + d[5] as u32;
                format!("'{}{h:02}:{:02}:{:02}'", if neg { "-" } else { "" }, d[6], d[7])
            }
        }
        ty::NULL => "NULL".into(),
        _ => bytes_literal(r.lenenc_str()?),
    })
}

/// The SQL literal of a parameter's bytes: a quoted string when they are
/// UTF-8, else a hex literal of the same bytes (a BLOB's), never a lossy
/// string.
fn bytes_literal(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => crate::dn::quote_str(s),
        Err(_) => crate::planner::split::hex_literal(b),
    }
}

/// A COM_QUERY / COM_STMT_PREPARE text: as sent when it is UTF-8, else
/// with its non-UTF-8 literals in hex
/// ([`crate::planner::split::binary_literals_as_hex`]). Errors: 1300
/// for bytes that are not UTF-8 outside a literal.
fn query_text(body: &[u8]) -> Result<String> {
    match std::str::from_utf8(body) {
        Ok(s) => Ok(s.to_string()),
        Err(_) => crate::planner::split::binary_literals_as_hex(body)
            .map_err(|m| CnError::mysql(crate::error::code::ER_INVALID_CHARACTER_STRING, m)),
    }
}

async fn handle(cluster: Arc<Cluster>, io: &mut Io, conn_id: u32, host: String) -> Result<()> {
    let salt = scramble();
    io.seq = 0;
    let proposed = cluster.config.default_auth_plugin.as_str();
    io.write_packet(&handshake::initial_handshake(vars::SERVER_VERSION, conn_id, &salt, proposed)).await?;
    io.flush().await?;
    let Some(p) = io.read_packet().await? else {
        return Ok(());
    };
    let resp = match handshake::parse_handshake_response(&p) {
        Ok(r) => r,
        Err(e) => return send_err(io, &e.to_mysql()).await,
    };
    let mut auth = resp.auth_response.clone();
    let caps = resp.capabilities & handshake::SERVER_CAPABILITIES;
    io.max_packet = 64 << 20;
    let user = cluster.config.users.iter().find(|u| u.name == resp.user);
    let verify = |plugin: &str, auth: &[u8]| {
        user.is_some_and(|u| match plugin {
            handshake::CACHING_SHA2_PASSWORD => verify_caching_sha2_password(&u.password, &salt, auth),
            handshake::NATIVE_PASSWORD => {
                let stored = (!u.password.is_empty()).then(|| native_password_hash(&u.password));
                verify_native_password(stored.as_ref(), &salt, auth)
            }
            _ => false,
        })
    };
    // A client without CLIENT_PLUGIN_AUTH speaks mysql_native_password. A
    // client that started with the other of the two plugins is accepted
    // when its answer checks; otherwise (some send nothing, expecting a
    // switch) it is asked to switch to the proposed one, as MySQL does for
    // an account on its default plugin.
    let mut plugin = resp.auth_plugin.as_deref().unwrap_or(handshake::NATIVE_PASSWORD);
    let mut ok = verify(plugin, &auth);
    if !ok && plugin != proposed {
        io.write_packet(&handshake::auth_switch_request(&salt, proposed)).await?;
        io.flush().await?;
        let Some(a) = io.read_packet().await? else {
            return Ok(());
        };
        auth = a;
        plugin = proposed;
        ok = verify(plugin, &auth);
    }
    if !ok {
        let e = CnError::mysql(
            code::ER_ACCESS_DENIED,
            format!(
                "Access denied for user '{}'@'{host}' (using password: {})",
                resp.user,
                if auth.is_empty() || auth == [0] { "NO" } else { "YES" }
            ),
        );
        return send_err(io, &e.to_mysql()).await;
    }
    if plugin == handshake::CACHING_SHA2_PASSWORD && user.is_some_and(|u| !u.password.is_empty()) {
        // AuthMoreData: the scramble matched; the OK follows.
        io.write_packet(&handshake::FAST_AUTH_SUCCESS).await?;
    }
    let mut session = Session::new(cluster.clone(), conn_id, resp.user.clone(), host);
    if let Some(db) = &resp.database {
        if let Err(e) = session.use_db(db) {
            return send_err(io, &e.to_mysql()).await;
        }
    }
    io.write_packet(&ok_packet(0, 0, session.status_flags(), 0, "", false)).await?;
    io.flush().await?;
    let mut prepared: HashMap<u32, Prepared> = HashMap::new();
    let mut next_stmt = 1u32;
    loop {
        let Some(pkt) = io.read_packet().await? else {
            break;
        };
        if session.kill_conn.load(Ordering::Relaxed) {
            break;
        }
        let Some((&cmd, body)) = pkt.split_first() else {
            send_err(io, &CnError::mysql(code::ER_MALFORMED_PACKET, "Malformed communication packet.").to_mysql())
                .await?;
            continue;
        };
        let r = AssertUnwindSafe(command(&mut session, io, caps, cmd, body, &mut prepared, &mut next_stmt))
            .catch_unwind()
            .await;
        match r {
            Ok(Ok(Flow::Continue)) => {}
            Ok(Ok(Flow::Quit)) => break,
            Ok(Err(e)) => {
                // An I/O error to the client ends the connection.
                if matches!(e, CnError::Io(_)) {
                    return Err(e);
                }
                send_err(io, &e.to_mysql()).await?;
            }
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(conn_id, panic = %what, "panic in a connection; closing it");
                let e = CnError::internal(format!("the CN hit an internal error and closed this connection: {what}"));
                let _ = send_err(io, &e.to_mysql()).await;
                break;
            }
        }
        io.flush().await?;
        if session.kill_conn.load(Ordering::Relaxed) {
            break;
        }
    }
    session.rollback().await;
    Ok(())
}

enum Flow {
    Continue,
    Quit,
}

async fn command(
    session: &mut Session,
    io: &mut Io,
    caps: u32,
    cmd: u8,
    body: &[u8],
    prepared: &mut HashMap<u32, Prepared>,
    next_stmt: &mut u32,
) -> Result<Flow> {
    match cmd {
        com::QUIT => return Ok(Flow::Quit),
        com::PING => {
            io.write_packet(&ok_packet(0, 0, session.status_flags(), 0, "", false)).await?;
        }
        com::INIT_DB => {
            session.use_db(&String::from_utf8_lossy(body))?;
            io.write_packet(&ok_packet(0, 0, session.status_flags(), 0, "", false)).await?;
        }
        com::QUERY => {
            let sql = query_text(body)?;
            let stmts = crate::planner::split::split_statements(&sql);
            if stmts.len() > 1 && caps & cap::MULTI_STATEMENTS == 0 {
                return Err(CnError::parse("multi-statements are not enabled for this connection"));
            }
            if stmts.is_empty() {
                return Err(CnError::mysql(code::ER_EMPTY_QUERY, "Query was empty"));
            }
            let n = stmts.len();
            for (i, st) in stmts.into_iter().enumerate() {
                let status = session.status_flags();
                let mut sink =
                    ConnSink { io, caps, status, more: i + 1 < n, binary: false, cols: vec![], buf: Vec::new() };
                session.execute(st, &mut sink).await?;
            }
        }
        com::FIELD_LIST => {
            let mut r = Reader::new(body);
            let table = String::from_utf8_lossy(r.null_str().unwrap_or(body)).into_owned();
            let db = session.db.clone().ok_or_else(CnError::no_db)?;
            let snap = session.cluster.catalog.snapshot();
            let t = snap.table(&db, &table).ok_or_else(|| CnError::no_such_table(&db, &table))?;
            for c in t.visible_columns() {
                let mut d = ColumnDef::text(&c.name);
                d.schema = db.clone();
                d.table = t.name.clone();
                d.org_table = t.name.clone();
                io.write_packet(&d.encode(true)).await?;
            }
            io.write_packet(&eof_packet(session.status_flags(), 0)).await?;
        }
        com::SET_OPTION => {
            io.write_packet(&eof_packet(session.status_flags(), 0)).await?;
        }
        com::STATISTICS => {
            let n = session.cluster.processes.lock().unwrap_or_else(|e| e.into_inner()).len();
            io.write_packet(format!("Threads: {n}  Questions: 0  Uptime: 0").as_bytes()).await?;
        }
        com::RESET_CONNECTION => {
            session.rollback().await;
            session.vars = vars::defaults();
            session.dn_session = Default::default();
            session.user_vars.clear();
            session.sql_prepared.clear();
            prepared.clear();
            io.write_packet(&ok_packet(0, 0, session.status_flags(), 0, "", false)).await?;
        }
        com::STMT_PREPARE => {
            let sql = query_text(body)?;
            let params = placeholders(&sql);
            let id = *next_stmt;
            *next_stmt += 1;
            let mut p = vec![0u8];
            p.extend_from_slice(&id.to_le_bytes());
            p.extend_from_slice(&0u16.to_le_bytes()); // columns: sent with each execute
            p.extend_from_slice(&(params.len() as u16).to_le_bytes());
            p.push(0);
            p.extend_from_slice(&0u16.to_le_bytes());
            io.write_packet(&p).await?;
            if !params.is_empty() {
                for _ in &params {
                    io.write_packet(&ColumnDef::new("?", ty::VAR_STRING).encode(false)).await?;
                }
                if caps & cap::DEPRECATE_EOF == 0 {
                    io.write_packet(&eof_packet(session.status_flags(), 0)).await?;
                }
            }
            let n = params.len();
            prepared.insert(
                id,
                Prepared { sql, params, types: vec![(ty::VAR_STRING, false); n], long_data: HashMap::new() },
            );
        }
        com::STMT_SEND_LONG_DATA => {
            let mut r = Reader::new(body);
            let id = r.u32()?;
            let param = r.u16()?;
            if let Some(p) = prepared.get_mut(&id) {
                p.long_data.entry(param).or_default().extend_from_slice(r.rest());
            }
            return Ok(Flow::Continue); // no response
        }
        com::STMT_CLOSE => {
            if body.len() >= 4 {
                prepared.remove(&u32::from_le_bytes([body[0], body[1], body[2], body[3]]));
            }
            return Ok(Flow::Continue); // no response
        }
        com::STMT_RESET => {
            let mut r = Reader::new(body);
            let id = r.u32()?;
            let p = prepared.get_mut(&id).ok_or_else(|| unknown_stmt(id))?;
            p.long_data.clear();
            io.write_packet(&ok_packet(0, 0, session.status_flags(), 0, "", false)).await?;
        }
        com::STMT_EXECUTE => {
            let mut r = Reader::new(body);
            let id = r.u32()?;
            let _flags = r.u8()?;
            let _iterations = r.u32()?;
            let p = prepared.get_mut(&id).ok_or_else(|| unknown_stmt(id))?;
            let n = p.params.len();
            let mut values = Vec::with_capacity(n);
            if n > 0 {
                let nulls = r.take(n.div_ceil(8))?.to_vec();
                if r.u8()? == 1 {
                    for t in p.types.iter_mut() {
                        let tt = r.u8()?;
                        let flags = r.u8()?;
                        *t = (tt, flags & 0x80 != 0);
                    }
                }
                for i in 0..n {
                    if nulls[i / 8] & (1 << (i % 8)) != 0 {
                        values.push("NULL".to_string());
                    } else if let Some(d) = p.long_data.remove(&(i as u16)) {
                        values.push(bytes_literal(&d));
                    } else {
                        let (t, unsigned) = p.types[i];
                        values.push(param_literal(&mut r, t, unsigned)?);
                    }
                }
            }
            let mut sql = String::with_capacity(p.sql.len() + 16 * n);
            let mut last = 0;
            for (off, v) in p.params.iter().zip(&values) {
                sql.push_str(&p.sql[last..*off]);
                sql.push_str(v);
                last = off + 1;
            }
            sql.push_str(&p.sql[last..]);
            let status = session.status_flags();
            let mut sink = ConnSink { io, caps, status, more: false, binary: true, cols: vec![], buf: Vec::new() };
            session.execute(&sql, &mut sink).await?;
        }
        com::CHANGE_USER => return Err(CnError::unsupported("COM_CHANGE_USER")),
        other => {
            return Err(CnError::mysql(code::ER_UNKNOWN_COM_ERROR, format!("Unknown command {other:#04x}")));
        }
    }
    Ok(Flow::Continue)
}

fn unknown_stmt(id: u32) -> CnError {
    CnError::mysql(
        code::ER_UNKNOWN_STMT_HANDLER,
        format!("Unknown prepared statement handler ({id}) given to mysqld_stmt_execute"),
    )
}

/// Stack of each runtime worker thread, in bytes. Planning recurses over
/// the plan and its expressions (DataFusion's tree rewrites, the CN's
/// rules), and a debug build's frames are large: a 62-table join of the
/// SQLite corpus overflowed tokio's 2 MiB default. Reserved address space,
/// committed only as used.
pub const WORKER_STACK_BYTES: usize = 16 << 20;

/// The multi-threaded runtime a CN runs on (`cn`, the test harnesses):
/// tokio's defaults with [`WORKER_STACK_BYTES`] of stack per worker.
pub fn runtime_builder() -> tokio::runtime::Builder {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.enable_all().thread_stack_size(WORKER_STACK_BYTES);
    b
}

#[cfg(test)]
mod tests {
    use super::placeholders;

    #[test]
    fn placeholders_skip_quotes() {
        assert_eq!(placeholders("select ? , '?' , `?`, \"?\" -- ?\n , ?"), vec![7, 34]);
    }
}
