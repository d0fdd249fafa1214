//! TPC-H benchmark: the 22 queries (`cn::tpch`, validation parameters) on
//! the same generated data in one plain MariaDB and through the CN on a
//! playground of `--dns` DNs it starts itself, in the same run:
//!
//! - `mariadb`: one `mariadbd` with the same indexes and a buffer pool as
//!   large as the DNs' together (`--buffer-pool-mb`), after `ANALYZE TABLE
//!   … PERSISTENT FOR ALL` with the automatic sample size (run through the
//!   CN too, which collects the same on each shard, and its row counts);
//! - `cn_16mb`: through the CN with `query_memory_limit = --limit` (16 MiB);
//! - `cn_16mb_smj`: the same limit with `cn_hash_join = OFF`, so the CN's
//!   equality joins are DataFusion's sort-merge joins instead of the
//!   hybrid hash join;
//! - `cn_unlimited`: through the CN with the CN-wide total (4 GiB) as the
//!   query limit, so nothing spills.
//!
//! First every query runs once on MariaDB and once through the CN, untimed
//! (the warm-up, see [`warm_up`]; `--no-warmup` skips it). Then each
//! configuration runs all queries in turn (`--runs` times each, and more,
//! up to 20, while a query's runs took less than `--min-secs` together;
//! the best time counts; a query that failed is not run again), the CN
//! ones in one session each. Per CN query the figures are the time, and `Cn_last_query_peak_memory` and
//! `Cn_last_query_spilled_bytes` from `SHOW STATUS` (the query's memory pool
//! peak and the bytes its operators spilled). Every CN answer is compared
//! with MariaDB's (`cn::tpch::answer::difference`); a different answer is
//! reported, not hidden. Per configuration the process's peak RSS (VmHWM of
//! this process, which runs the CN; reset through `/proc/self/clear_refs`
//! before each configuration, in the order listed, so the unlimited run comes
//! last). A query that runs longer than `--timeout` seconds is stopped
//! (MariaDB's `max_statement_time`, `KILL QUERY` on the CN) and counted as
//! the timeout. Prints a table and, last, one JSON object.
//!
//! Loading goes through the CN's INSERT path (and into MariaDB) with
//! `--load-clients` connections each; redo flushing is relaxed on every
//! server for the load (`innodb_flush_log_at_trx_commit = 0`, a 512 MiB
//! redo log), which changes nothing the read-only queries do.
//!
//! `cargo run -p benches --release --bin tpch-bench -- --sf 1`

use clap::Parser;
use cn::tpch::answer::{answer, difference, Answer};
use dn_plugin::mariadb::free_port;
use futures::StreamExt;
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, Pool};
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// TPC-H scale factor.
    #[arg(long, default_value_t = 1.0)]
    sf: f64,
    /// Data nodes of the CN's playground.
    #[arg(long, default_value_t = 4)]
    dns: usize,
    /// InnoDB buffer pool in MiB of the plain MariaDB; each DN gets this
    /// divided by --dns.
    #[arg(long, default_value_t = 2048)]
    buffer_pool_mb: u32,
    /// The CN's limited `query_memory_limit` in bytes.
    #[arg(long, default_value_t = 16 << 20)]
    limit: u64,
    /// Seconds after which a query is stopped and counted as a timeout.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
    /// Runs of each query per configuration; the best counts.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// More runs (up to 20) of a query while its runs so far took less than
    /// this many seconds together: the best of three 40 ms runs is mostly
    /// noise. Both sides get the same rule.
    #[arg(long, default_value_t = 0.0)]
    min_secs: f64,
    /// Queries to run, e.g. `1,6,14` (default: all 22).
    #[arg(long, value_delimiter = ',')]
    queries: Vec<usize>,
    /// Skip the warm-up pass (each query once on MariaDB and once through
    /// the CN, untimed, before the timed runs).
    #[arg(long)]
    no_warmup: bool,
    /// Queries whose `EXPLAIN ANALYZE` through the CN (no memory limit) is
    /// printed after the table, e.g. `2,22`: where the time went.
    #[arg(long, value_delimiter = ',')]
    explain: Vec<usize>,
    /// Concurrent loading connections per server.
    #[arg(long, default_value_t = 4)]
    load_clients: usize,
    /// After loading, print both servers' addresses and keep them up until
    /// Ctrl-C instead of running the queries: the same pair of servers,
    /// for timing and profiling by hand.
    #[arg(long)]
    serve: bool,
}

/// The CN-wide memory total of a default config (4 GiB): as a query limit
/// it means "no limit".
const UNLIMITED: u64 = 4 << 30;

/// One query's figures in one configuration.
#[derive(Clone, Default)]
struct Run {
    secs: Option<f64>,
    /// Why it has no time: the error or "timeout".
    failed: Option<String>,
    /// The CN's figures (MariaDB has none).
    peak_bytes: u64,
    spilled_bytes: u64,
    /// The answer differs from MariaDB's (the first difference).
    differs: Option<String>,
}

impl Run {
    fn cell(&self) -> String {
        match (&self.secs, &self.failed) {
            (Some(s), _) if self.differs.is_some() => format!("{s:.2}!"),
            (Some(s), _) => format!("{s:.2}"),
            (None, Some(f)) if f == "timeout" => "timeout".into(),
            _ => "error".into(),
        }
    }
    fn json(&self) -> String {
        let secs = self.secs.map(|s| format!("{s:.3}")).unwrap_or_else(|| "null".into());
        let failed = self.failed.as_ref().map(|f| format!("{f:?}")).unwrap_or_else(|| "null".into());
        format!(
            "{{\"secs\":{secs},\"peak_bytes\":{},\"spilled_bytes\":{},\"same_answer\":{},\"failed\":{failed}}}",
            self.peak_bytes,
            self.spilled_bytes,
            self.differs.is_none()
        )
    }
}

/// A configuration's name, its runs by query, and the peak RSS.
struct Config {
    name: &'static str,
    runs: Vec<Run>,
    peak_rss: u64,
}

impl Config {
    fn total(&self) -> f64 {
        self.runs.iter().filter_map(|r| r.secs).sum()
    }
    fn complete(&self) -> usize {
        self.runs.iter().filter(|r| r.secs.is_some() && r.differs.is_none()).count()
    }
}

/// `VmHWM` of this process in bytes (0 where /proc has none).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Resets `VmHWM` to the current RSS (Linux ≥ 4.0, proc(5) "clear_refs").
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Runs every statement on a pool of `clients` connections to `url`.
async fn load(url: &str, clients: usize, db: &str, schema: Vec<String>, sf: f64) -> u64 {
    let mut c = Conn::new(Opts::from_url(url).unwrap()).await.unwrap();
    c.query_drop(format!("DROP DATABASE IF EXISTS {db}")).await.unwrap();
    c.query_drop(format!("CREATE DATABASE {db}")).await.unwrap();
    c.query_drop(format!("USE {db}")).await.unwrap();
    for ddl in schema {
        c.query_drop(ddl).await.unwrap();
    }
    drop(c);
    let pool = Pool::new(Opts::from_url(&format!("{url}/{db}")).unwrap());
    let loaded = futures::stream::iter(cn::tpch::insert_statements(sf))
        .map(|stmt| {
            let pool = pool.clone();
            async move {
                let mut c = pool.get_conn().await.unwrap();
                let r = c.query_iter(stmt.unwrap()).await.unwrap();
                r.affected_rows()
            }
        })
        .buffer_unordered(clients)
        .fold(0u64, |a, b| async move { a + b })
        .await;
    pool.disconnect().await.unwrap();
    loaded
}

/// Relaxes redo flushing on the server at `url` for the load.
async fn fast_load(url: &str) {
    let mut c = Conn::new(Opts::from_url(url).unwrap()).await.unwrap();
    c.query_drop("SET GLOBAL innodb_flush_log_at_trx_commit = 0").await.unwrap();
    // Dynamic from MariaDB 10.9; an older server keeps its redo log size.
    let _ = c.query_drop("SET GLOBAL innodb_log_file_size = 536870912").await;
}

/// The value of one `SHOW STATUS` variable as a number.
async fn status(c: &mut Conn, name: &str) -> u64 {
    let row: Option<(String, String)> = c.query_first(format!("SHOW STATUS LIKE '{name}'")).await.unwrap();
    row.and_then(|(_, v)| v.parse().ok()).unwrap_or(0)
}

/// Runs `sql` on `c`; a query that runs `timeout` is stopped: MariaDB's
/// `max_statement_time` (set by the caller) ends it with an error, on the
/// CN (`cn_kill` is its URL) it gets `KILL QUERY` a little later. Returns
/// the answer, or the error ("timeout" for a stopped query) and whether `c`
/// is still usable.
async fn timed(c: &mut Conn, sql: &str, timeout: Duration, cn_kill: Option<&str>) -> Result<Answer, (String, bool)> {
    let id = c.id();
    match tokio::time::timeout(timeout + Duration::from_secs(5), answer(c, sql)).await {
        Ok(Ok(a)) => Ok(a),
        Ok(Err(e)) if e.to_string().contains("max_statement_time") => Err(("timeout".into(), true)),
        Ok(Err(e)) => Err((e.to_string(), true)),
        Err(_) => {
            if let Some(url) = cn_kill {
                let mut k = Conn::new(Opts::from_url(url).unwrap()).await.unwrap();
                let _ = k.query_drop(format!("KILL QUERY {id}")).await;
            }
            Err(("timeout".into(), false))
        }
    }
}

/// One configuration's session: the URL and the statements that set it up.
struct Target<'a> {
    name: &'static str,
    url: String,
    setup: Vec<String>,
    /// The CN's URL for `KILL QUERY`; `None` for MariaDB.
    cn_kill: Option<&'a str>,
}

impl Target<'_> {
    async fn connect(&self) -> Conn {
        let mut c = Conn::new(Opts::from_url(&self.url).unwrap()).await.unwrap();
        for s in &self.setup {
            c.query_drop(s).await.unwrap();
        }
        c
    }
}

/// Runs each query once on `target`, untimed: the warm-up. Without it the
/// first configuration pays for the queries' first runs (pages not yet in
/// a buffer pool, among others): on the SF 1 playground just started,
/// TPC-H Q2 took 1.5 s on its first run and 0.23 s on each later one,
/// under any memory limit or join, and Q20 7.0 and 0.55 s; in the
/// benchmark the first CN configuration (`cn_16mb`) looked that much
/// slower than the others on the small queries.
async fn warm_up(target: &Target<'_>, args: &Args, queries: &[usize]) {
    let start = Instant::now();
    let mut c = target.connect().await;
    for &q in queries {
        let sql = cn::tpch::query(q, args.sf);
        if let Err((e, usable)) = timed(&mut c, &sql, Duration::from_secs(args.timeout), target.cn_kill).await {
            eprintln!("warm-up {:<14} Q{q:02} failed: {e}", target.name);
            if !usable {
                c = target.connect().await;
            }
        }
    }
    eprintln!("warm-up {:<14} {:.1} s", target.name, start.elapsed().as_secs_f64());
}

/// Runs of one query at most when `--min-secs` asks for more than `--runs`.
const MAX_RUNS: usize = 20;

/// Runs the queries on `target`, `args.runs` times each (more by
/// `--min-secs`), comparing each
/// answer with `reference` (MariaDB's answers; none when these are).
async fn run_all(
    target: &Target<'_>,
    args: &Args,
    queries: &[usize],
    reference: Option<&[Option<Answer>]>,
) -> (Vec<Run>, Vec<Option<Answer>>) {
    let name = target.name;
    let mut c = target.connect().await;
    let mut runs = Vec::new();
    let mut answers = Vec::new();
    for (i, &q) in queries.iter().enumerate() {
        let sql = cn::tpch::query(q, args.sf);
        let mut best = Run::default();
        let mut kept = None;
        let mut spent = 0.0;
        for n in 0.. {
            let enough = n >= args.runs && (spent >= args.min_secs || n >= MAX_RUNS);
            if enough || (n > 0 && best.secs.is_none()) {
                break;
            }
            let mut this = Run::default();
            match timed(&mut c, &sql, Duration::from_secs(args.timeout), target.cn_kill).await {
                Ok(a) => {
                    this.secs = Some(a.took.as_secs_f64());
                    spent += a.took.as_secs_f64();
                    if let Some(Some(expected)) = reference.map(|r| &r[i]) {
                        this.differs = difference(&a, expected);
                    }
                    if target.cn_kill.is_some() {
                        this.peak_bytes = status(&mut c, "Cn_last_query_peak_memory").await;
                        this.spilled_bytes = status(&mut c, "Cn_last_query_spilled_bytes").await;
                    }
                    kept = Some(a);
                }
                Err((e, usable)) => {
                    this.failed = Some(e);
                    if !usable {
                        c = target.connect().await;
                    }
                }
            }
            let better = match (this.secs, best.secs) {
                (Some(a), Some(b)) => a < b,
                (Some(_), None) => true,
                (None, _) => best.secs.is_none() && best.failed.is_none(),
            };
            if better {
                best = this;
            }
        }
        eprintln!(
            "{name:<14} Q{q:02} {:>9}  peak {:>6.1} MiB  spilled {:>7.1} MiB{}",
            best.cell(),
            best.peak_bytes as f64 / (1 << 20) as f64,
            best.spilled_bytes as f64 / (1 << 20) as f64,
            best.differs.as_ref().map(|d| format!("  DIFFERS: {d}")).unwrap_or_default()
        );
        if let Some(f) = &best.failed {
            eprintln!("               Q{q:02} failed: {f}");
        }
        runs.push(best);
        answers.push(kept);
    }
    (runs, answers)
}

fn main() {
    let args = Args::parse();
    let queries: Vec<usize> = if args.queries.is_empty() { (1..=22).collect() } else { args.queries.clone() };
    let rt = cn::server::runtime_builder().build().unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<u16> = (0..=args.dns).map(|_| free_port()).collect();
        let per_dn = (args.buffer_pool_mb / args.dns.max(1) as u32).max(16);
        let pg = cn::playground::Playground::start(
            dir.path(),
            &ports,
            per_dn,
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:0",
        )
        .await
        .expect("the playground starts");
        let ref_dir = dir.path().join("reference");
        let ref_port = free_port();
        let mut reference_server =
            dn_plugin::mariadb::start_mariadb(ref_dir, "reference".into(), ref_port, args.buffer_pool_mb)
                .await
                .expect("the reference MariaDB starts");
        let ref_url = format!("mysql://root@127.0.0.1:{ref_port}");
        let cn_url = format!("mysql://root@127.0.0.1:{}", pg.addr.port());
        for url in pg.topo.dns.iter().map(|d| d.url()).chain([ref_url.clone()]) {
            fast_load(&url).await;
        }
        println!(
            "TPC-H SF {}: CN on {} DNs ({} MiB buffer pool each) vs one MariaDB ({} MiB buffer pool)",
            args.sf, args.dns, per_dn, args.buffer_pool_mb
        );

        let start = Instant::now();
        let schema: Vec<String> = cn::tpch::SCHEMA.iter().map(|s| s.to_string()).collect();
        let (cn_rows, ref_rows) = futures::join!(
            load(&cn_url, args.load_clients, "tpch", schema, args.sf),
            load(&ref_url, args.load_clients, "tpch", cn::tpch::plain_schema(), args.sf)
        );
        assert_eq!(cn_rows, ref_rows, "both servers loaded the same rows");
        let mut r = Conn::new(Opts::from_url(&format!("{ref_url}/tpch")).unwrap()).await.unwrap();
        let analyze = cn::tpch::ANALYZE;
        r.query_drop(cn::tpch::REFERENCE_SAMPLE).await.unwrap();
        r.query_drop(analyze).await.unwrap();
        // The CN's statistics (row counts its join selection uses).
        let mut c = Conn::new(Opts::from_url(&format!("{cn_url}/tpch")).unwrap()).await.unwrap();
        c.query_drop(analyze).await.unwrap();
        drop(c);
        println!("loaded {cn_rows} rows into each in {:.0} s", start.elapsed().as_secs_f64());

        drop(r);
        if args.serve {
            println!("serving: CN {cn_url}/tpch, MariaDB {ref_url}/tpch; Ctrl-C stops both");
            let _ = tokio::signal::ctrl_c().await;
            reference_server.stop().await;
            pg.stop().await;
            return;
        }
        let mariadb = Target {
            name: "mariadb",
            url: format!("{ref_url}/tpch"),
            setup: vec![format!("SET SESSION max_statement_time = {}", args.timeout)],
            cn_kill: None,
        };
        let cn_target = |name, limit, hash_join: bool| Target {
            name,
            url: format!("{cn_url}/tpch"),
            setup: vec![
                format!("SET query_memory_limit = {limit}"),
                format!("SET cn_hash_join = {}", if hash_join { "ON" } else { "OFF" }),
            ],
            cn_kill: Some(&cn_url),
        };
        if !args.no_warmup {
            warm_up(&mariadb, &args, &queries).await;
            warm_up(&cn_target("cn_unlimited", UNLIMITED, true), &args, &queries).await;
        }
        let (mariadb_runs, expected) = run_all(&mariadb, &args, &queries, None).await;
        let mut configs = vec![Config { name: "mariadb", runs: mariadb_runs, peak_rss: 0 }];

        for (name, limit, hash_join) in
            [("cn_16mb", args.limit, true), ("cn_16mb_smj", args.limit, false), ("cn_unlimited", UNLIMITED, true)]
        {
            let target = cn_target(name, limit, hash_join);
            reset_peak_rss();
            let (runs, _) = run_all(&target, &args, &queries, Some(&expected)).await;
            configs.push(Config { name, runs, peak_rss: peak_rss() });
        }

        // The table.
        println!();
        print!("{:<5}", "query");
        for c in &configs {
            print!(" {:>12}", c.name);
        }
        println!(" {:>9} {:>11} {:>11}", "ratio", "peak MiB", "spill MiB");
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        for (i, q) in queries.iter().enumerate() {
            print!("Q{q:02}  ");
            for c in &configs {
                print!(" {:>12}", c.runs[i].cell());
            }
            // MariaDB's time over the unlimited CN's (> 1: the CN is faster),
            // and the 16 MiB run's memory figures.
            let ratio = match (configs[0].runs[i].secs, configs[3].runs[i].secs) {
                (Some(m), Some(c)) if c > 0.0 => format!("{:.2}", m / c),
                _ => "-".into(),
            };
            let limited = &configs[1].runs[i];
            println!(" {:>9} {:>11.1} {:>11.1}", ratio, mib(limited.peak_bytes), mib(limited.spilled_bytes));
        }
        print!("total");
        for c in &configs {
            print!(" {:>12.2}", c.total());
        }
        println!();
        print!("done ");
        for c in &configs {
            print!(" {:>12}", format!("{}/{}", c.complete(), queries.len()));
        }
        println!();
        print!("RSS  ");
        for c in &configs {
            print!(" {:>12}", if c.peak_rss == 0 { "-".to_string() } else { format!("{:.0} MiB", mib(c.peak_rss)) });
        }
        println!("  (peak RSS of the CN process)");
        println!("! = the answer differs from MariaDB's; ratio = MariaDB time / unlimited CN time");

        let json_configs: Vec<String> = configs
            .iter()
            .map(|c| {
                let per_query: Vec<String> =
                    queries.iter().zip(&c.runs).map(|(q, r)| format!("\"q{q}\":{}", r.json())).collect();
                format!(
                    "\"{}\":{{\"total_secs\":{:.3},\"complete\":{},\"peak_rss_bytes\":{},\"queries\":{{{}}}}}",
                    c.name,
                    c.total(),
                    c.complete(),
                    c.peak_rss,
                    per_query.join(",")
                )
            })
            .collect();
        println!(
            "{{\"sf\":{},\"dns\":{},\"limit_bytes\":{},\"configs\":{{{}}}}}",
            args.sf,
            args.dns,
            args.limit,
            json_configs.join(",")
        );

        if !args.explain.is_empty() {
            let mut c = Conn::new(Opts::from_url(&format!("{cn_url}/tpch")).unwrap()).await.unwrap();
            c.query_drop(format!("SET query_memory_limit = {UNLIMITED}")).await.unwrap();
            for &q in &args.explain {
                let rows: Vec<mysql_async::Row> =
                    c.query(format!("EXPLAIN ANALYZE {}", cn::tpch::query(q, args.sf))).await.unwrap();
                println!("EXPLAIN ANALYZE Q{q:02}:");
                for r in rows {
                    let cells: Vec<String> = r
                        .unwrap()
                        .into_iter()
                        .map(|v| match v {
                            mysql_async::Value::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
                            other => format!("{other:?}"),
                        })
                        .collect();
                    println!("  {}", cells.join(": "));
                }
            }
        }

        reference_server.stop().await;
        pg.stop().await;
    });
}
