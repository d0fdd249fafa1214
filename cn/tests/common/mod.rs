//! Test harness: one playground (real `mariadbd` processes: a metadb and
//! two DNs; a TSO and a CN in-process on free ports) per test binary, and
//! more CNs on demand. Tests share it and each works in its own database.

#![allow(dead_code)]

use cn::cluster::Cluster;
use cn::config::Config;
use cn::playground::Playground;
use dn_plugin::mariadb::free_port;
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts};
use std::sync::{Arc, OnceLock};
use tokio::runtime::Runtime;
use tokio::sync::Mutex;

pub struct Env {
    /// Metadb, two DNs, the TSO and the shared CN.
    pub pg: Mutex<Playground>,
    /// The TSO the CNs take timestamps from (in-process gRPC server).
    pub tso_addr: String,
    pub cn_addr: std::net::SocketAddr,
    pub cluster: Arc<Cluster>,
    pub metadb_url: String,
}

pub fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| cn::server::runtime_builder().worker_threads(4).build().unwrap())
}

/// Starts one more CN on a free port against the shared metadb and TSO.
pub async fn start_cn(metadb_url: &str, max_connections: usize) -> (std::net::SocketAddr, Arc<Cluster>) {
    let config = Config {
        listen: "127.0.0.1:0".into(),
        metadb: metadb_url.to_string(),
        tso: vec![env().tso_addr.clone()],
        max_connections,
        ..Config::default()
    };
    let (cluster, addr, _task) = cn::server::start_cn(config).await.expect("CN connects to the metadb");
    (addr, cluster)
}

pub fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        runtime().block_on(async {
            let dir = binary_scoped_dir();
            let ports = [free_port(), free_port(), free_port()];
            let pg = Playground::start(&dir, &ports, 64, "127.0.0.1:0".parse().unwrap(), "127.0.0.1:0")
                .await
                .expect("MariaDB, the TSO and the CN start (is mariadb-server installed?)");
            Env {
                tso_addr: pg.tso.addr.to_string(),
                cn_addr: pg.addr,
                cluster: pg.cluster.clone(),
                metadb_url: pg.topo.metadb.url(),
                pg: Mutex::new(pg),
            }
        })
    })
}

/// A temporary directory for a cluster that lives as long as the test
/// binary (held by a `static`, so never dropped). A watcher process waits
/// for this process to end (however it ends), then SIGKILLs the processes
/// whose command line names the directory (the `mariadbd`s started with
/// `--datadir=DIR/...`, restarted ones included) and removes it. Without
/// it every run left its DNs running and ~300 MB of data in /tmp.
#[expect(clippy::zombie_processes, reason = "the watcher outlives this process by design")]
pub fn binary_scoped_dir() -> std::path::PathBuf {
    let dir = tempfile::tempdir().unwrap().keep();
    let script = r#"while kill -0 "$1" 2>/dev/null; do sleep 0.5; done
for p in /proc/[0-9]*; do
  pid=${p#/proc/}
  [ "$pid" = "$$" ] && continue
  case "$(tr '\0' ' ' < "$p/cmdline" 2>/dev/null)" in *"$2"*) kill -9 "$pid" 2>/dev/null;; esac
done
sleep 0.5
rm -rf "$2""#;
    std::process::Command::new("sh")
        .args(["-c", script, "watcher", &std::process::id().to_string()])
        .arg(&dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("sh starts");
    dir
}

/// Tests that stop a DN take this exclusively; the others share it.
fn gate() -> &'static tokio::sync::RwLock<()> {
    static GATE: OnceLock<tokio::sync::RwLock<()>> = OnceLock::new();
    GATE.get_or_init(|| tokio::sync::RwLock::new(()))
}

/// Runs a test body on the shared runtime (starting the cluster first).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    env();
    runtime().block_on(async {
        let _g = gate().read().await;
        f.await
    })
}

/// Runs a blocking test body (an external client such as the `mariadb`
/// CLI talking to the shared CN) while no exclusive test runs: one may
/// stop a DN.
pub fn shared<T>(f: impl FnOnce() -> T) -> T {
    env();
    let _g = runtime().block_on(gate().read());
    f()
}

/// Like [`block_on`], with no other test running meanwhile.
pub fn block_on_exclusive<F: std::future::Future>(f: F) -> F::Output {
    env();
    runtime().block_on(async {
        let _g = gate().write().await;
        f.await
    })
}

pub fn url(addr: std::net::SocketAddr, db: Option<&str>) -> String {
    format!("mysql://root@127.0.0.1:{}/{}", addr.port(), db.unwrap_or(""))
}

/// A client connection to the shared CN.
pub async fn connect(db: Option<&str>) -> Conn {
    Conn::new(Opts::from_url(&url(env().cn_addr, db)).unwrap()).await.expect("connects to the CN")
}

/// EXPLAIN's text (logical and physical plan, with the shard SQL), the
/// plan column of every row.
pub async fn explain(c: &mut Conn, sql: &str) -> String {
    let rows: Vec<(String, String)> = c.query(format!("EXPLAIN {sql}")).await.unwrap();
    rows.into_iter().map(|(_, p)| p).collect::<Vec<_>>().join("\n")
}

/// `SHOW STATUS` counter `name` of the CN.
pub async fn status(c: &mut Conn, name: &str) -> u64 {
    let r: Option<(String, String)> = c.query_first(format!("SHOW STATUS LIKE '{name}'")).await.unwrap();
    r.expect("the counter exists").1.parse().unwrap()
}

/// A fresh database on the CN, dropped first if it exists.
pub async fn fresh_db(name: &str) -> Conn {
    recreate(connect(None).await, name).await
}

/// A connection to DN 0's MariaDB itself, in database `name` created
/// anew: the plain MariaDB whose answers the CN's are compared with.
pub async fn reference_db(name: &str) -> Conn {
    recreate(dn_conn(0).await, name).await
}

async fn recreate(mut c: Conn, name: &str) -> Conn {
    c.query_drop(format!("DROP DATABASE IF EXISTS {name}")).await.unwrap();
    c.query_drop(format!("CREATE DATABASE {name}")).await.unwrap();
    c.query_drop(format!("USE {name}")).await.unwrap();
    c
}

/// MySQL error code of a failed statement.
pub fn code(e: mysql_async::Error) -> u16 {
    match e {
        mysql_async::Error::Server(s) => s.code,
        other => panic!("expected a server error, got {other}"),
    }
}

/// Calls `read` until it returns `want`, for up to 10 s: what a DN shows
/// directly after a write through the CN, whose branches commit after the
/// client's OK under async commit. Panics with the last value otherwise.
pub async fn eventually<T, F, Fut>(what: &str, want: T, mut read: F)
where
    T: PartialEq + std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let started = std::time::Instant::now();
    loop {
        let got = read().await;
        if got == want {
            return;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "{what}: {got:?} after 10 s, not {want:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Connection to DN `i` directly.
pub async fn dn_conn(i: usize) -> Conn {
    let port = env().pg.lock().await.topo.dns[i].port;
    Conn::new(Opts::from_url(&format!("mysql://root@127.0.0.1:{port}")).unwrap()).await.unwrap()
}
