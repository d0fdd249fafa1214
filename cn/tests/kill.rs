//! kill -9 at every step of the transaction protocol, with every component
//! in its own process: three `mariadbd` DNs and a metadb, a sidecar agent
//! per DN (`dn-plugin serve`), one CN (`cn serve`), and the TSO (in this
//! process; it is not a victim here). For each victim (the CN, DN 1's
//! agent, DN 1's `mariadbd`), each failpoint of `cn::txn::failpoint` (OPEN
//! with the gate closed, before and after the first prepare, after all
//! prepares, after the 2PC decision, after the first commit) and each
//! commit policy (async commit, 2PC), the CN runs `kill -9` of the victim
//! at that point of a transaction that reads and then writes one row on
//! each DN; the victim is restarted, and then:
//! - `XA RECOVER` is empty on every DN within 10 s;
//! - the three rows are whole (all the new value) or absent (all the old);
//! - an acknowledged commit is present; when the CN is the victim, the
//!   transaction is present exactly when it was decided before the kill
//!   (async commit: every branch prepared; 2PC: decision row written);
//! - the cluster takes the next cross-DN transaction within 20 s (no gate
//!   left closed, no lock left held).

mod common;

use cn::txn::failpoint::{self, AFTER_DECISION, AFTER_FIRST_COMMIT, AFTER_PREPARES};
use common::{runtime, url};
use dn_plugin::mariadb::free_port;
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

const DNS: usize = 3;
/// The DN whose agent or `mariadbd` is killed (not the first: the "first
/// prepare" and "first commit" points are on DN 0's branch).
const VICTIM_DN: usize = 1;

/// A binary of this workspace next to this test's own (`cargo test
/// --workspace` builds them all); built with cargo when missing.
fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let path = dir.join(name);
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = std::process::Command::new(cargo).args(["build", "-q", "-p", name, "--bin", name]).status().unwrap();
        assert!(ok.success() && path.exists(), "could not build {name}");
    }
    path
}

struct Cluster {
    dir: tempfile::TempDir,
    topo: cn::playground::Topology,
    tso: tso::server::RunningTso,
    agent_ports: Vec<u16>,
    agents: Vec<Child>,
    cn_port: u16,
    cn: Option<Child>,
    cn_starts: usize,
}

impl Cluster {
    async fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<u16> = (0..=DNS).map(|_| free_port()).collect();
        let topo = cn::playground::Topology::start_on(dir.path(), &ports, 64).await.expect("mariadbd starts");
        let opts = tso::server::ServeOptions::new("127.0.0.1:0".parse().unwrap(), dir.path().join("tso"));
        let tso = tso::server::start(opts, std::sync::Arc::new(tso::clock::SystemClock)).await.unwrap();
        let mut c = Cluster {
            dir,
            topo,
            tso,
            agent_ports: (0..DNS).map(|_| free_port()).collect(),
            agents: Vec::new(),
            cn_port: free_port(),
            cn: None,
            cn_starts: 0,
        };
        for i in 0..DNS {
            let a = c.spawn_agent(i).await;
            c.agents.push(a);
        }
        c.start_cn(None).await;
        c
    }

    fn log(&self, name: &str) -> std::fs::File {
        std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join(name)).unwrap()
    }

    async fn spawn_agent(&self, i: usize) -> Child {
        let listen = format!("127.0.0.1:{}", self.agent_ports[i]);
        let child = Command::new(workspace_binary("dn-plugin"))
            .args(["serve", "--dn-url", &self.topo.dns[i].url(), "--listen", &listen])
            .args(["--tso", &self.tso.addr.to_string(), "--name", &format!("dn{i}")])
            .stdout(Stdio::from(self.log(&format!("agent{i}.log"))))
            .stderr(Stdio::from(self.log(&format!("agent{i}.log"))))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // Serving once it answers a status call.
        let agent = dn_plugin::remote::RemoteAgent::connect(format!("dn{i}"), &format!("http://{listen}"), 1).unwrap();
        let started = Instant::now();
        while dn_plugin::AgentApi::status(&agent).await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "agent of dn{i} did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        child
    }

    /// Starts the CN process, with `CN_FAILPOINT` set to `failpoint`.
    async fn start_cn(&mut self, failpoint: Option<String>) {
        let agents: Vec<String> =
            self.agent_ports.iter().enumerate().map(|(i, p)| format!("dn{i} = \"http://127.0.0.1:{p}\"")).collect();
        let config = format!(
            "listen = \"127.0.0.1:{}\"\nmetadb = \"{}\"\ntso = [\"{}\"]\n\n[agents]\n{}\n",
            self.cn_port,
            self.topo.metadb.url(),
            self.tso.addr,
            agents.join("\n")
        );
        let path = self.dir.path().join("cn.toml");
        std::fs::write(&path, config).unwrap();
        self.cn_starts += 1;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cn"));
        cmd.args(["serve", "--config", path.to_str().unwrap()])
            .stdout(Stdio::from(self.log("cn.log")))
            .stderr(Stdio::from(self.log("cn.log")))
            .kill_on_drop(true);
        match failpoint {
            Some(f) => cmd.env(failpoint::ENV, f),
            None => cmd.env_remove(failpoint::ENV),
        };
        self.cn = Some(cmd.spawn().unwrap());
        let started = Instant::now();
        while Conn::new(Opts::from_url(&self.cn_url(None)).unwrap()).await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "the CN did not come up:\n{}", self.tail("cn.log"));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn cn_url(&self, db: Option<&str>) -> String {
        url(([127, 0, 0, 1], self.cn_port).into(), db)
    }

    async fn cn_conn(&self, db: Option<&str>) -> Conn {
        Conn::new(Opts::from_url(&self.cn_url(db)).unwrap()).await.expect("connects to the CN")
    }

    async fn dn_conn(&self, i: usize) -> Conn {
        Conn::new(Opts::from_url(&self.topo.dns[i].url()).unwrap()).await.unwrap()
    }

    fn tail(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// `XA RECOVER` rows over all DNs (a DN that does not answer counts as
    /// not yet clean).
    async fn prepared_branches(&self) -> Option<usize> {
        let mut n = 0;
        for i in 0..DNS {
            let mut c = Conn::new(Opts::from_url(&self.topo.dns[i].url()).unwrap()).await.ok()?;
            let rows: Vec<mysql_async::Row> = c.query("XA RECOVER").await.ok()?;
            n += rows.len();
        }
        Some(n)
    }

    async fn stop(mut self) {
        if let Some(mut c) = self.cn.take() {
            let _ = c.kill().await;
        }
        for a in &mut self.agents {
            let _ = a.kill().await;
        }
        self.tso.shutdown().await;
        self.topo.stop().await;
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Victim {
    Cn,
    Agent,
    Dn,
}

/// The shell command the CN runs at the failpoint to kill `victim`.
fn kill_command(c: &Cluster, victim: Victim) -> String {
    let pid = match victim {
        Victim::Cn => return "kill -9 $PPID".into(),
        Victim::Agent => c.agents[VICTIM_DN].id().unwrap(),
        Victim::Dn => c.topo.dns[VICTIM_DN].pid().unwrap(),
    };
    format!("kill -9 {pid}")
}

/// Waits for the killed victim to be gone and starts it again (the CN
/// always restarts, without the failpoint).
async fn restart(c: &mut Cluster, victim: Victim) {
    match victim {
        Victim::Cn => {
            let mut cn = c.cn.take().unwrap();
            tokio::time::timeout(Duration::from_secs(10), cn.wait()).await.expect("the CN was killed").unwrap();
        }
        Victim::Agent => {
            tokio::time::timeout(Duration::from_secs(10), c.agents[VICTIM_DN].wait())
                .await
                .expect("the agent was killed")
                .unwrap();
            c.agents[VICTIM_DN] = c.spawn_agent(VICTIM_DN).await;
        }
        Victim::Dn => {
            c.topo.dns[VICTIM_DN].kill9().await;
            c.topo.restart_dn(VICTIM_DN, 64).await.expect("the DN restarts");
        }
    }
    // The CN armed with the failpoint may still hold it (a point not
    // reached); a fresh CN process starts clean.
    if let Some(mut cn) = c.cn.take() {
        let _ = cn.kill().await;
    }
    c.start_cn(None).await;
}

/// Rows 0.. and the DN each lives on, by asking the DNs. The INSERT was
/// acknowledged after its prepares (async commit): its branches' commits
/// may still be on their way, so a DN's rows are waited for (10 s).
async fn row_per_dn(c: &Cluster) -> Vec<i64> {
    let started = Instant::now();
    loop {
        let mut ids = vec![None; DNS];
        for (i, id) in ids.iter_mut().enumerate() {
            let mut d = c.dn_conn(i).await;
            let tables: Vec<String> =
                d.query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'k'").await.unwrap();
            for t in tables {
                let found: Option<Option<i64>> = d.query_first(format!("SELECT MIN(id) FROM k.`{t}`")).await.unwrap();
                *id = id.or(found.flatten());
            }
        }
        if ids.iter().all(Option::is_some) {
            return ids.into_iter().flatten().collect();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no row on some DN after 10 s: {ids:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn kill_9_at_every_step_leaves_transactions_whole_or_absent() {
    runtime().block_on(async {
        let mut c = Cluster::start().await;
        let mut s = c.cn_conn(None).await;
        s.query_drop("CREATE DATABASE k").await.unwrap();
        s.query_drop("CREATE TABLE k.t (id BIGINT PRIMARY KEY, v BIGINT NOT NULL) PARTITION BY KEY(id) PARTITIONS 6")
            .await
            .unwrap();
        let rows: Vec<String> = (0..24).map(|i| format!("({i}, 0)")).collect();
        s.query_drop(format!("INSERT INTO k.t VALUES {}", rows.join(","))).await.unwrap();
        drop(s);
        let ids = row_per_dn(&c).await;
        let select = format!("SELECT v FROM t WHERE id IN ({}, {}, {}) ORDER BY id", ids[0], ids[1], ids[2]);
        let update = |k: i64| format!("UPDATE t SET v = {k} WHERE id IN ({}, {}, {})", ids[0], ids[1], ids[2]);
        let (mut k, mut last) = (0i64, 0i64);
        let mut summary = Vec::new();
        for victim in [Victim::Cn, Victim::Agent, Victim::Dn] {
            for policy in ["async", "2pc"] {
                for point in failpoint::ALL {
                    if policy == "async" && point == AFTER_DECISION {
                        continue; // async commit writes no decision row
                    }
                    k += 1;
                    let what = format!("{victim:?} killed at {point}, {policy}");
                    let armed = format!("{point}=exec:{}", kill_command(&c, victim));
                    if let Some(mut cn) = c.cn.take() {
                        let _ = cn.kill().await;
                    }
                    c.start_cn(Some(armed)).await;
                    let mut s = c.cn_conn(Some("k")).await;
                    let on = if policy == "async" { "ON" } else { "OFF" };
                    s.query_drop(format!("SET cn_async_commit = {on}")).await.unwrap();
                    // A consistent read first (the snapshot's OPEN), then
                    // the write on every DN.
                    let acked = async {
                        s.query_drop("BEGIN").await?;
                        s.query_drop(&select).await?;
                        s.query_drop(update(k)).await?;
                        s.query_drop("COMMIT").await
                    }
                    .await;
                    let acked = acked.is_ok();
                    drop(s);
                    restart(&mut c, victim).await;
                    let started = Instant::now();
                    while c.prepared_branches().await != Some(0) {
                        assert!(
                            started.elapsed() < Duration::from_secs(10),
                            "{what}: XA RECOVER not empty after 10 s\n{}",
                            c.tail("cn.log")
                        );
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    let settled = started.elapsed();
                    let mut s = c.cn_conn(Some("k")).await;
                    let vs: Vec<i64> = s.query(&select).await.unwrap();
                    eprintln!("{what}: acknowledged={acked} values={vs:?} settled in {settled:?}");
                    assert!(vs == vec![k; 3] || vs == vec![last; 3], "{what}: whole or absent, got {vs:?}");
                    if acked {
                        assert_eq!(vs, vec![k; 3], "{what}: the acknowledged commit is present");
                    }
                    if victim == Victim::Cn {
                        let decided = match point {
                            AFTER_PREPARES => policy == "async",
                            AFTER_DECISION | AFTER_FIRST_COMMIT => true,
                            _ => false,
                        };
                        let expect = if decided { k } else { last };
                        assert_eq!(vs, vec![expect; 3], "{what}: present exactly when decided before the CN died");
                    }
                    // The cluster goes on: the next cross-DN transaction
                    // commits (no gate left closed, no lock left held).
                    k += 1;
                    let next = async {
                        s.query_drop("BEGIN").await?;
                        s.query_drop(update(k)).await?;
                        s.query_drop("COMMIT").await
                    };
                    match tokio::time::timeout(Duration::from_secs(20), next).await {
                        Ok(Ok(())) => last = k,
                        other => panic!("{what}: the next transaction failed: {other:?}\n{}", c.tail("cn.log")),
                    }
                    summary.push(format!("{what}: acknowledged={acked}, settled in {settled:?}"));
                }
            }
        }
        eprintln!("{}", summary.join("\n"));
        assert!(c.cn_starts > summary.len(), "a CN process per case");
        c.stop().await;
    });
}
