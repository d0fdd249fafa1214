//! `dn-plugin serve` as a process, beside a real `mariadbd` and a real TSO:
//! it bootstraps `cn_agent` over the DN's Unix socket, starts above the
//! TSO's timestamps, registers the CN branches left prepared (with their
//! logged `min_commit_ts`) and only those, serves them over gRPC, and stops
//! cleanly on SIGINT.

use dn_plugin::agent::AgentApi;
use dn_plugin::mariadb::{ensure_template, free_port, start_mariadb};
use dn_plugin::remote::RemoteAgent;
use mysql_async::prelude::*;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_rebuilds_the_prepared_branches_and_serves_them() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().to_path_buf();
    ensure_template(&base).await.unwrap();
    let mut dn = start_mariadb(base.clone(), "dn0".into(), free_port(), 32).await.unwrap();
    let opts = tso::server::ServeOptions::new("127.0.0.1:0".parse().unwrap(), base.join("tso"));
    let tso = tso::server::start(opts, std::sync::Arc::new(tso::clock::SystemClock)).await.unwrap();
    let before = tso::TsoClient::new(vec![tso.addr.to_string()], tso::ClientOptions::default()).get_ts().await.unwrap();

    // Branches left prepared with their log rows: one of a crashed CN, one
    // of someone else (not a CN XA id: never registered).
    let mut c = mysql_async::Conn::new(mysql_async::Opts::from_url(&dn.url()).unwrap()).await.unwrap();
    dn_plugin::agent::bootstrap(&mut c).await.unwrap();
    let cn_xid = format!("cn-7-{before}");
    for xid in [cn_xid.as_str(), "other-1"] {
        let mut b = mysql_async::Conn::new(mysql_async::Opts::from_url(&dn.url()).unwrap()).await.unwrap();
        b.query_drop(format!("XA START '{xid}'")).await.unwrap();
        b.query_drop(format!(
            "INSERT INTO cn_agent.prepared (xid, min_commit_ts, lower_bound, async_commit, participants) \
             VALUES ('{xid}', 777, 0, 1, '0')"
        ))
        .await
        .unwrap();
        b.query_drop(format!("XA END '{xid}'; XA PREPARE '{xid}'")).await.unwrap();
        b.disconnect().await.unwrap();
    }

    let listen = format!("127.0.0.1:{}", free_port());
    let socket = dn.dir.join("mysqld.sock");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_dn-plugin"))
        .args(["serve", "--dn-socket", socket.to_str().unwrap(), "--listen", &listen])
        .args(["--tso", &tso.addr.to_string(), "--name", "dn0"])
        .spawn()
        .unwrap();
    let agent = RemoteAgent::connect("dn0", &format!("http://{listen}"), 1).unwrap();
    let started = Instant::now();
    let st = loop {
        match agent.status().await {
            Ok(st) => break st,
            Err(e) => {
                assert!(started.elapsed() < Duration::from_secs(20), "dn-plugin serve did not come up: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(st.prepared, vec![(cn_xid.clone(), 777)], "the CN branch, with its logged min_commit_ts");
    assert_eq!(st.decided, vec![(cn_xid.clone(), 0)], "reads without a view wait for it too");
    assert!(st.amx > before && st.mrt > before, "the agent starts above every earlier timestamp");

    // SIGINT stops it cleanly.
    let pid = child.id().unwrap().to_string();
    tokio::process::Command::new("kill").args(["-INT", &pid]).status().await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "dn-plugin serve exited with {status}");

    c.query_drop(format!("XA ROLLBACK '{cn_xid}'; XA ROLLBACK 'other-1'")).await.unwrap();
    c.disconnect().await.unwrap();
    tso.shutdown().await;
    dn.stop().await;
}
