//! Global secondary index benchmark: through the CN on a playground it
//! starts itself, autocommit single-row INSERTs and `UPDATE ... SET a = ?
//! WHERE id = ?` into tables with 0, 1 and 3 global indexes (16 partitions
//! each, the indexes 16 each), and a point query by an indexed column that
//! is not the partition key, with the global index and with `IGNORE INDEX`
//! (a scan of all 16 partitions), in the same run. Every statement is a
//! text-protocol query with literal values. Prints a table and, last, one
//! JSON object. Failed statements are counted and the first one of each
//! workload is printed with its error; they are not part of the latency.
//!
//! `cargo run -p benches --release --bin gsi-bench -- --secs 5 --clients 8`

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
    /// Data nodes (2 or 3 on this machine).
    #[arg(long, default_value_t = 2)]
    dns: usize,
    /// Rows preloaded for the point query (values of `a` spread over
    /// rows / 2, so a value matches 2 rows on average).
    #[arg(long, default_value_t = 20000)]
    rows: usize,
}

/// The three tables of the write workloads: 0, 1 and 3 global indexes.
const INDEXES: [usize; 3] = [0, 1, 3];

/// Values of a, b, c in the write workloads.
const VALUE_RANGE: u64 = 1_000_000;

const PAD: &str = "padpadpadpadpadpadpadpadpadpadpadpadpadpad";

struct Figures {
    name: String,
    tps: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Statements each client ran, successful or not (client k's i-th
    /// INSERT wrote id k + i * clients).
    per_client: Vec<u64>,
    errors: u64,
    /// The first failed statement and its error.
    first_error: Option<(String, String)>,
}

impl Figures {
    fn json(&self) -> String {
        format!(
            "{{\"tps\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"errors\":{}}}",
            self.tps, self.p50_ms, self.p99_ms, self.errors
        )
    }
}

/// splitmix64: a small deterministic generator, one per client.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n.max(1)
    }
}

/// The CREATE TABLE of a table with `n` (0, 1 or 3) global indexes.
fn create_table(name: &str, n: usize) -> String {
    let indexes: String = ["a", "b", "c"][..n]
        .iter()
        .map(|c| format!(", GLOBAL INDEX g{c} ({c}) PARTITION BY KEY({c}) PARTITIONS 16"))
        .collect();
    format!(
        "CREATE TABLE {name} (id BIGINT PRIMARY KEY, a INT, b INT, c INT, pad VARCHAR(50){indexes}) \
         PARTITION BY KEY(id) PARTITIONS 16"
    )
}

/// The statement a client runs next: `(client, i, rng)` → SQL.
type Statement = dyn Fn(usize, u64, &mut Rng) -> String + Send + Sync;

/// Runs `clients` loops of the statement `stmt(client, i, rng)` (i counts
/// the client's statements from 0) for `secs` against `url`.
async fn run(name: String, url: &str, clients: usize, secs: u64, stmt: Arc<Statement>) -> Figures {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (url, stop, stmt) = (url.to_string(), stop.clone(), stmt.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(Opts::from_url(&url).unwrap()).await.unwrap();
            let mut rng = Rng(0x5eed ^ ((c as u64) << 32));
            let (mut lat, mut i, mut errors, mut first_error) = (Vec::new(), 0u64, 0u64, None);
            while !stop.load(Ordering::Relaxed) {
                let sql = stmt(c, i, &mut rng);
                i += 1;
                let t = Instant::now();
                match conn.query_drop(&sql).await {
                    Ok(()) => lat.push(t.elapsed().as_micros() as u64),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert((sql, e.to_string()));
                    }
                }
            }
            (lat, i, errors, first_error)
        }));
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut all, mut per_client, mut errors, mut first_error) = (Vec::new(), Vec::new(), 0, None);
    for t in tasks {
        let (lat, n, e, first) = t.await.unwrap();
        all.extend(lat);
        per_client.push(n);
        errors += e;
        if first_error.is_none() {
            first_error = first;
        }
    }
    all.sort_unstable();
    let f = Figures {
        name,
        tps: all.len() as f64 / secs as f64,
        p50_ms: percentile(&all, 0.5),
        p99_ms: percentile(&all, 0.99),
        per_client,
        errors,
        first_error,
    };
    println!("{:<24} {:>10.0} {:>9.2} {:>9.2} {:>7}", f.name, f.tps, f.p50_ms, f.p99_ms, f.errors);
    if let Some((sql, e)) = &f.first_error {
        println!("  ERROR: {} failed statements in {}; first: `{sql}` -> {e}", f.errors, f.name);
    }
    f
}

/// CHECK GLOBAL INDEX's summary row (its last column), or the error.
async fn check(c: &mut Conn, idx: &str, table: &str) -> String {
    let rows: Result<Vec<mysql_async::Row>, _> = c.query(format!("CHECK GLOBAL INDEX {idx} ON {table}")).await;
    match rows {
        Ok(rows) => {
            let problems = rows.len().saturating_sub(1);
            let summary = rows.last().and_then(|r| r.get::<String, _>(r.len() - 1)).unwrap_or_default();
            if problems > 0 {
                format!("{summary} ({problems} problem rows)")
            } else {
                summary
            }
        }
        Err(e) => format!("error: {e}"),
    }
}

/// EXPLAIN's rows, joined.
async fn explain(c: &mut Conn, q: &str) -> String {
    match c.query::<(String, String), _>(format!("EXPLAIN {q}")).await {
        Ok(rows) => rows.into_iter().map(|(a, b)| format!("{a}: {b}")).collect::<Vec<_>>().join("\n"),
        Err(e) => format!("error: {e}"),
    }
}

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<u16> = (0..=args.dns).map(|_| free_port()).collect();
        let pg =
            cn::playground::Playground::start(dir.path(), &ports, 128, "127.0.0.1:0".parse().unwrap(), "127.0.0.1:0")
                .await
                .expect("the playground starts");
        let cn_url = format!("mysql://root@127.0.0.1:{}/bench", pg.addr.port());
        let mut c =
            Conn::new(Opts::from_url(&format!("mysql://root@127.0.0.1:{}", pg.addr.port())).unwrap()).await.unwrap();
        c.query_drop("DROP DATABASE IF EXISTS bench").await.unwrap();
        c.query_drop("CREATE DATABASE bench").await.unwrap();
        c.query_drop("USE bench").await.unwrap();
        for n in INDEXES {
            c.query_drop(create_table(&format!("t{n}"), n)).await.unwrap();
        }
        let clients = args.clients;
        println!(
            "{} DNs, {} clients, {} s per workload, 16 partitions per table and per index",
            args.dns, clients, args.secs
        );
        println!("{:<24} {:>10} {:>9} {:>9} {:>7}", "workload", "stmt/s", "p50 ms", "p99 ms", "errors");

        // 1. Inserts: client k writes ids k, k + N, k + 2N, ...
        let mut inserts = Vec::new();
        for n in INDEXES {
            let stmt = Arc::new(move |k: usize, i: u64, r: &mut Rng| {
                let id = k as u64 + i * clients as u64;
                let (a, b, cc) = (r.below(VALUE_RANGE), r.below(VALUE_RANGE), r.below(VALUE_RANGE));
                format!("INSERT INTO t{n} (id, a, b, c, pad) VALUES ({id}, {a}, {b}, {cc}, '{PAD}')")
            });
            inserts.push(run(format!("insert, {n} global idx"), &cn_url, clients, args.secs, stmt).await);
        }

        // 2. Updates of the indexed column a, each client among the ids it
        // inserted (so the figures measure index maintenance, not lock waits).
        let mut updates = Vec::new();
        for (n, ins) in INDEXES.into_iter().zip(&inserts) {
            let written = Arc::new(ins.per_client.clone());
            let stmt = Arc::new(move |k: usize, _: u64, r: &mut Rng| {
                let id = k as u64 + r.below(written[k]) * clients as u64;
                format!("UPDATE t{n} SET a = {} WHERE id = {id}", r.below(VALUE_RANGE))
            });
            updates.push(run(format!("update a, {n} global idx"), &cn_url, clients, args.secs, stmt).await);
        }

        // 3. Point query by a on a table of its own (the definition of t1),
        // so the scan without the index reads exactly --rows rows.
        c.query_drop(create_table("tp", 1)).await.unwrap();
        let domain = (args.rows / 2).max(1) as u64;
        let mut r = Rng(42);
        for start in (0..args.rows).step_by(1000) {
            let rows: Vec<String> = (start..(start + 1000).min(args.rows))
                .map(|id| format!("({id}, {}, {}, {}, '{PAD}')", r.below(domain), r.below(domain), r.below(domain)))
                .collect();
            c.query_drop(format!("INSERT INTO tp (id, a, b, c, pad) VALUES {}", rows.join(","))).await.unwrap();
        }
        let loaded: i64 = c.query_first("SELECT COUNT(*) FROM tp").await.unwrap().unwrap();
        println!("point query table tp: {loaded} rows, a in 0..{domain}");
        let with_plan = explain(&mut c, "SELECT id, pad FROM tp WHERE a = 7").await;
        let without_plan = explain(&mut c, "SELECT id, pad FROM tp IGNORE INDEX (ga) WHERE a = 7").await;
        // The plan's gist: the index it reads and how many shards each scan asks.
        let gist = |plan: &str| {
            let lines = plan.lines().map(str::trim);
            lines.filter(|l| l.contains("global index") || l.starts_with("ShardScanExec")).collect::<Vec<_>>().join("; ")
        };
        println!("EXPLAIN with index:    {}", gist(&with_plan));
        println!("EXPLAIN without index: {}", gist(&without_plan));
        let uses_index = with_plan.contains("global index ga") && !without_plan.contains("global index");
        // Both forms give the same rows.
        let mut mismatches = 0;
        for a in (0..domain).step_by((domain as usize / 50).max(1)) {
            let q = |hint: &str| format!("SELECT id, pad FROM tp {hint} WHERE a = {a} ORDER BY id");
            let x: Vec<(i64, String)> = c.query(q("")).await.unwrap();
            let y: Vec<(i64, String)> = c.query(q("IGNORE INDEX (ga)")).await.unwrap();
            if x != y {
                mismatches += 1;
                println!("  MISMATCH for a = {a}: with index {x:?}, without {y:?}");
            }
        }
        let point = |hint: &'static str| {
            Arc::new(move |_: usize, _: u64, r: &mut Rng| {
                format!("SELECT id, pad FROM tp {hint}WHERE a = {}", r.below(domain))
            })
        };
        let with = run("point, global index".into(), &cn_url, clients, args.secs, point("")).await;
        let without = run("point, IGNORE INDEX".into(), &cn_url, clients, args.secs, point("IGNORE INDEX (ga) ")).await;

        // The indexes agree with their tables after all the writes.
        let mut checks = Vec::new();
        for (idx, table) in [("ga", "t1"), ("ga", "t3"), ("gb", "t3"), ("gc", "t3"), ("ga", "tp")] {
            let s = check(&mut c, idx, table).await;
            println!("CHECK GLOBAL INDEX {idx} ON {table}: {s}");
            checks.push(s);
        }
        let checks_ok = checks.iter().all(|s| s.starts_with("OK"));

        let speedup_p50 = without.p50_ms / with.p50_ms.max(1e-9);
        let speedup_tps = with.tps / without.tps.max(1e-9);
        let ratio = |f: &[Figures], i: usize| f[i].p50_ms / f[0].p50_ms.max(1e-9);
        println!(
            "point query speed-up with the global index: p50 {speedup_p50:.2}x, throughput {speedup_tps:.2}x (aim: at least 5x)"
        );
        println!(
            "insert p50 vs no index: 1 index {:.2}x (aim: at most 2x), 3 indexes {:.2}x; update p50: {:.2}x, {:.2}x",
            ratio(&inserts, 1),
            ratio(&inserts, 2),
            ratio(&updates, 1),
            ratio(&updates, 2)
        );
        let group = |f: &[Figures]| {
            INDEXES.iter().zip(f).map(|(n, f)| format!("\"{n}\":{}", f.json())).collect::<Vec<_>>().join(",")
        };
        let errors: u64 = inserts.iter().chain(&updates).chain([&with, &without]).map(|f| f.errors).sum();
        println!(
            "{{\"clients\":{},\"secs\":{},\"dns\":{},\"rows\":{},\"insert\":{{{}}},\"update\":{{{}}},\
             \"point\":{{\"with_index\":{},\"without_index\":{},\"speedup_p50\":{:.2},\"speedup_tps\":{:.2},\
             \"plan_uses_index\":{},\"mismatches\":{}}},\"insert_p50_ratio_1_vs_0\":{:.2},\
             \"insert_p50_ratio_3_vs_0\":{:.2},\"update_p50_ratio_1_vs_0\":{:.2},\"update_p50_ratio_3_vs_0\":{:.2},\
             \"errors\":{},\"check_ok\":{}}}",
            clients,
            args.secs,
            args.dns,
            args.rows,
            group(&inserts),
            group(&updates),
            with.json(),
            without.json(),
            speedup_p50,
            speedup_tps,
            uses_index,
            mismatches,
            ratio(&inserts, 1),
            ratio(&inserts, 2),
            ratio(&updates, 1),
            ratio(&updates, 2),
            errors,
            checks_ok
        );
        pg.stop().await;
    });
}
