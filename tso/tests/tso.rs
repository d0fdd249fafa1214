//! End-to-end tests of the TSO: real gRPC servers (in-process and as `tso`
//! processes), a real metadb `mariadbd` for the HA lease, the real client.

use dn_plugin::mariadb::free_port;
use proto::tso::tso_client::TsoClient as GrpcClient;
use proto::tso::{GetLeaderRequest, TimestampRequest};
use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tso::clock::SystemClock;
use tso::server::{start, ServeOptions};
use tso::{ClientOptions, TsoClient, TsoError};

/// A `tso serve` process.
struct Proc {
    child: Child,
    addr: String,
}

impl Proc {
    fn spawn(data_dir: &std::path::Path, metadb: Option<&str>) -> Proc {
        Self::spawn_on(free_port(), data_dir, metadb)
    }

    fn spawn_on(port: u16, data_dir: &std::path::Path, metadb: Option<&str>) -> Proc {
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tso"));
        cmd.args(["serve", "--listen", &addr, "--data-dir"]).arg(data_dir);
        if let Some(m) = metadb {
            cmd.args(["--metadb", m, "--lease-ms", "1500"]);
        }
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        Proc { child, addr }
    }

    fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn grpc(addr: &str) -> GrpcClient<tonic::transport::Channel> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match GrpcClient::connect(format!("http://{addr}")).await {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("{addr} never listened: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Waits until the process at `addr` says it leads (or until `limit`).
async fn wait_leader(addr: &str, limit: Duration) -> bool {
    let mut c = grpc(addr).await;
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if c.get_leader(GetLeaderRequest {}).await.map(|r| r.into_inner().is_leader).unwrap_or(false) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_get_unique_increasing_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        start(ServeOptions::new("127.0.0.1:0".parse().unwrap(), dir.path()), Arc::new(SystemClock)).await.unwrap();
    let client = TsoClient::new(vec![server.addr.to_string()], ClientOptions::default());
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move {
                let mut seen = Vec::with_capacity(500);
                for _ in 0..500 {
                    let ts = c.get_ts().await.unwrap();
                    if let Some(&last) = seen.last() {
                        assert!(ts > last, "a caller got {ts} after {last}");
                    }
                    seen.push(ts);
                }
                seen
            })
        })
        .collect();
    let mut all = HashSet::new();
    for t in tasks {
        for ts in t.await.unwrap() {
            assert!(all.insert(ts), "timestamp {ts} handed out twice");
        }
    }
    assert_eq!(all.len(), 64 * 500);
    // A range is contiguous and above everything before it.
    let max = *all.iter().max().unwrap();
    let first = client.get_range(1000).await.unwrap();
    assert!(first > max);
    assert!(client.get_ts().await.unwrap() >= first + 1000);
    assert_eq!(client.get_range(0).await, Err(TsoError::InvalidCount(0)));
    // The server refuses a bad count on its own, too.
    let mut raw = grpc(&server.addr.to_string()).await;
    let e = raw.get_timestamps(TimestampRequest { count: 0 }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    let e = raw.get_timestamps(TimestampRequest { count: 10_000_000 }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_and_restart_never_goes_backwards() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let client = TsoClient::new(
        vec![addr.clone()],
        ClientOptions { timeout: Duration::from_secs(20), ..ClientOptions::default() },
    );
    let mut highest = 0;
    for round in 0..3 {
        let mut p = Proc::spawn_on(port, dir.path(), None);
        // Keep asking while the process is killed under the client.
        let deadline = Instant::now() + Duration::from_millis(300);
        while Instant::now() < deadline {
            let ts = client.get_range(100).await.unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert!(ts > highest, "round {round}: {ts} after {highest}");
            highest = ts + 99;
        }
        p.kill9();
    }
    // A fresh client (no memory of what it saw) also starts above.
    let _p = Proc::spawn_on(port, dir.path(), None);
    let fresh = TsoClient::new(vec![addr], ClientOptions { timeout: Duration::from_secs(20), ..Default::default() });
    assert!(fresh.get_ts().await.unwrap() > highest);
}

/// Runs `tso serve` on `dir`, expects it to exit with an error, returns stderr.
fn serve_fails(dir: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tso"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(!out.status.success(), "tso serve started on {}", dir.display());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_corrupt_or_lost_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("tso");
    let server = start(ServeOptions::new("127.0.0.1:0".parse().unwrap(), &d), Arc::new(SystemClock)).await.unwrap();
    server.shutdown().await;
    let bound = d.join(tso::store::BOUND_FILE);
    std::fs::write(&bound, "tso-bound v1 12 00000000\n").unwrap();
    let err = serve_fails(&d);
    assert!(err.contains("corrupt") && err.contains("refusing to start"), "{err}");
    std::fs::remove_file(&bound).unwrap();
    assert!(serve_fails(&d).contains("missing"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_takes_over_when_the_leader_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let metadb = dn_plugin::mariadb::start_mariadb(dir.path().to_path_buf(), "metadb".into(), free_port(), 32)
        .await
        .expect("mariadbd starts (is mariadb-server installed?)");
    let url = metadb.url();
    let mut a = Proc::spawn(&dir.path().join("tso-a"), Some(&url));
    assert!(wait_leader(&a.addr, Duration::from_secs(20)).await, "the first process leads");
    let mut b = Proc::spawn(&dir.path().join("tso-b"), Some(&url));
    let mut raw_b = grpc(&b.addr).await;

    // The standby refuses timestamps and names the leader.
    let e = raw_b.get_timestamps(TimestampRequest { count: 1 }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut leader = String::new();
    while Instant::now() < deadline && leader.is_empty() {
        leader = raw_b.get_leader(GetLeaderRequest {}).await.unwrap().into_inner().leader;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(leader, a.addr);

    // The client is given the standby first: it must find the leader itself.
    let client = TsoClient::new(
        vec![b.addr.clone(), a.addr.clone()],
        ClientOptions { timeout: Duration::from_secs(15), ..ClientOptions::default() },
    );
    let mut last = 0;
    for _ in 0..100 {
        let ts = client.get_ts().await.unwrap();
        assert!(ts > last);
        last = ts;
    }
    a.kill9();
    let killed = Instant::now();
    let ts = client.get_ts().await.expect("the standby takes over");
    let took = killed.elapsed();
    assert!(ts > last, "{ts} after {last}: the new leader went backwards");
    assert!(took < Duration::from_secs(10), "takeover took {took:?}");
    assert!(wait_leader(&b.addr, Duration::from_secs(1)).await);
    eprintln!("takeover after kill -9 of the leader: {took:?}");

    // The old leader comes back as a standby; killing the new one hands over again.
    let port_a: u16 = a.addr.rsplit(':').next().unwrap().parse().unwrap();
    let _a2 = Proc::spawn_on(port_a, &dir.path().join("tso-a"), Some(&url));
    let before = client.get_ts().await.unwrap();
    b.kill9();
    let after = client.get_ts().await.expect("the restarted process takes over");
    assert!(after > before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_without_a_reachable_leader_times_out_with_a_typed_error() {
    let client = TsoClient::new(
        vec![format!("127.0.0.1:{}", free_port())],
        ClientOptions { timeout: Duration::from_millis(300), ..ClientOptions::default() },
    );
    let started = Instant::now();
    assert_eq!(client.get_ts().await, Err(TsoError::Timeout(Duration::from_millis(300))));
    assert!(started.elapsed() < Duration::from_secs(2));
}
