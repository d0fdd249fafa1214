//! Transaction benchmark: a transfer transaction (`BEGIN; UPDATE a; UPDATE
//! b; COMMIT`) through the CN across two DNs (async commit, and two-phase
//! commit with a TSO commit timestamp and a decision row) and on one DN
//! (one-phase commit), and the same one-DN transaction on plain MariaDB
//! (one of the DN servers, directly), in the same run. Prints a table and,
//! last, one JSON object.
//!
//! `cargo run -p benches --release --bin txn-bench -- --secs 5 --clients 8`

use benches::percentile;
use clap::Parser;
use dn_plugin::mariadb::free_port;
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// Seconds per workload.
    #[arg(long, default_value_t = 5)]
    secs: u64,
    /// Concurrent clients per workload.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Accounts per client (each client transfers among its own accounts,
    /// so the figures measure the commit path, not lock waits).
    #[arg(long, default_value_t = 16)]
    accounts: usize,
}

struct Figures {
    name: &'static str,
    tps: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Runs `clients` loops of the transfer between the id pairs `pairs(client)`
/// for `secs` against `url`, each client running `setup` first (unless
/// empty).
async fn run(
    name: &'static str,
    setup: &'static str,
    url: &str,
    table: &str,
    clients: usize,
    secs: u64,
    pairs: impl Fn(usize) -> Vec<(i64, i64)>,
) -> Figures {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (url, table, stop, pairs) = (url.to_string(), table.to_string(), stop.clone(), pairs(c));
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(Opts::from_url(&url).unwrap()).await.unwrap();
            if !setup.is_empty() {
                conn.query_drop(setup).await.unwrap();
            }
            let mut lat = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let (a, b) = pairs[i % pairs.len()];
                i += 1;
                let t = Instant::now();
                conn.query_drop("BEGIN").await.unwrap();
                conn.exec_drop(format!("UPDATE {table} SET bal = bal - 1 WHERE id = ?"), (a,)).await.unwrap();
                conn.exec_drop(format!("UPDATE {table} SET bal = bal + 1 WHERE id = ?"), (b,)).await.unwrap();
                conn.query_drop("COMMIT").await.unwrap();
                lat.push(t.elapsed().as_micros() as u64);
            }
            lat
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    Figures { name, tps: all.len() as f64 / secs as f64, p50_ms: percentile(&all, 0.5), p99_ms: percentile(&all, 0.99) }
}

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let ports = [free_port(), free_port(), free_port()];
        let pg =
            cn::playground::Playground::start(dir.path(), &ports, 128, "127.0.0.1:0".parse().unwrap(), "127.0.0.1:0")
                .await
                .expect("the playground starts");
        let cn_url = format!("mysql://root@127.0.0.1:{}/bench", pg.addr.port());
        let n = (args.clients * args.accounts) as i64;
        let mut c =
            Conn::new(Opts::from_url(&format!("mysql://root@127.0.0.1:{}", pg.addr.port())).unwrap()).await.unwrap();
        c.query_drop("DROP DATABASE IF EXISTS bench").await.unwrap();
        c.query_drop("CREATE DATABASE bench").await.unwrap();
        c.query_drop("CREATE TABLE bench.acct (id BIGINT PRIMARY KEY, bal BIGINT) PARTITION BY KEY(id) PARTITIONS 2")
            .await
            .unwrap();
        let rows: Vec<String> = (0..n).map(|i| format!("({i}, 1000000)")).collect();
        c.query_drop(format!("INSERT INTO bench.acct VALUES {}", rows.join(","))).await.unwrap();
        // Which DN holds each id: partition p lives on DN p (2 partitions, 2 DNs).
        let dn0_url = format!("mysql://root@127.0.0.1:{}", pg.topo.dns[0].port);
        let mut d0 = Conn::new(Opts::from_url(&dn0_url).unwrap()).await.unwrap();
        let phys: String = d0
            .query_first("SELECT table_name FROM information_schema.tables WHERE table_schema = 'bench'")
            .await
            .unwrap()
            .unwrap();
        let on_dn0: Vec<i64> = d0.query(format!("SELECT id FROM bench.`{phys}` ORDER BY id")).await.unwrap();
        let on_dn1: Vec<i64> = (0..n).filter(|i| !on_dn0.contains(i)).collect();
        // Plain MariaDB: the same table, unsharded, on DN 0's server.
        d0.query_drop("CREATE DATABASE IF NOT EXISTS plain").await.unwrap();
        d0.query_drop("DROP TABLE IF EXISTS plain.acct").await.unwrap();
        d0.query_drop("CREATE TABLE plain.acct (id BIGINT PRIMARY KEY, bal BIGINT)").await.unwrap();
        d0.query_drop(format!("INSERT INTO plain.acct VALUES {}", rows.join(","))).await.unwrap();
        let chunk = |v: &[i64], c: usize| -> Vec<i64> {
            let per = v.len() / args.clients;
            v[c * per..(c + 1) * per].to_vec()
        };
        let cross = |c: usize| {
            let (a, b) = (chunk(&on_dn0, c), chunk(&on_dn1, c));
            a.into_iter().zip(b).collect::<Vec<_>>()
        };
        let single = |c: usize| {
            let a = chunk(&on_dn0, c);
            a.iter().zip(a.iter().skip(1)).map(|(x, y)| (*x, *y)).collect::<Vec<_>>()
        };
        let plain_url = format!("{dn0_url}/plain");
        let figures = vec![
            run("cn_async_cross_dn", "SET cn_async_commit = ON", &cn_url, "acct", args.clients, args.secs, cross).await,
            run("cn_2pc_cross_dn", "SET cn_async_commit = OFF", &cn_url, "acct", args.clients, args.secs, cross).await,
            run("cn_1pc_single_dn", "", &cn_url, "acct", args.clients, args.secs, single).await,
            run("mariadb_single_dn", "", &plain_url, "acct", args.clients, args.secs, single).await,
        ];
        println!("{:<20} {:>10} {:>9} {:>9}", "workload", "txn/s", "p50 ms", "p99 ms");
        for f in &figures {
            println!("{:<20} {:>10.0} {:>9.2} {:>9.2}", f.name, f.tps, f.p50_ms, f.p99_ms);
        }
        let json: Vec<String> = figures
            .iter()
            .map(|f| {
                format!("\"{}\":{{\"tps\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3}}}", f.name, f.tps, f.p50_ms, f.p99_ms)
            })
            .collect();
        let ratio = |a: usize, b: usize| figures[a].p50_ms / figures[b].p50_ms.max(1e-9);
        println!(
            "{{\"clients\":{},{},\"p50_ratio_async_vs_2pc\":{:.2},\"p50_ratio_1pc_vs_mariadb\":{:.2}}}",
            args.clients,
            json.join(","),
            ratio(0, 1),
            ratio(2, 3)
        );
        pg.stop().await;
    });
}
