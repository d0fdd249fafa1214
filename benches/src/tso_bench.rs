//! TSO throughput and latency: `cargo run -p benches --release --bin
//! tso-bench -- [--secs 5] [--callers 1,8,64,256]`.
//!
//! Starts a `tso` server (in this process, on its own runtime and loopback
//! gRPC, data directory in a temporary directory) and, for each caller
//! count, that many tasks calling `TsoClient::get_ts` in a loop on one
//! shared client for `--secs` seconds. Prints timestamps per second and
//! p50/p99 latency per call, then a final JSON line.

use benches::percentile;
use clap::Parser;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tso::clock::SystemClock;
use tso::server::{start, ServeOptions};
use tso::{ClientOptions, TsoClient};

#[derive(Parser)]
struct Args {
    /// Seconds per caller count.
    #[arg(long, default_value_t = 5)]
    secs: u64,
    /// Caller counts to run, comma-separated.
    #[arg(long, default_value = "1,8,64,256", value_delimiter = ',')]
    callers: Vec<usize>,
    /// Client runtime worker threads (the server gets one more runtime of 1).
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// Streams of the client (each with one request in flight).
    #[arg(long, default_value_t = 1)]
    streams: usize,
}

struct Figures {
    callers: usize,
    per_sec: f64,
    p50_us: f64,
    p99_us: f64,
}

async fn run(client: &TsoClient, callers: usize, secs: u64) -> Figures {
    let end = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(1 << 16);
                let mut last = 0;
                while Instant::now() < end {
                    let t = Instant::now();
                    let ts = c.get_ts().await.expect("timestamp");
                    lat.push(t.elapsed().as_nanos().min(u32::MAX as u128) as u32);
                    assert!(ts > last);
                    last = ts;
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("caller"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    Figures {
        callers,
        per_sec: all.len() as f64 / elapsed,
        p50_us: percentile(&all, 0.5),
        p99_us: percentile(&all, 0.99),
    }
}

fn main() {
    let args = Args::parse();
    let dir = tempfile::tempdir().expect("temp dir");
    let server_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
    let server = server_rt
        .block_on(start(ServeOptions::new("127.0.0.1:0".parse().expect("addr"), dir.path()), Arc::new(SystemClock)))
        .expect("TSO starts");
    let addr = server.addr.to_string();
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads)
        .enable_all()
        .build()
        .expect("rt");
    let figures: Vec<Figures> = client_rt.block_on(async {
        let client = TsoClient::new(vec![addr], ClientOptions { streams: args.streams, ..ClientOptions::default() });
        client.get_ts().await.expect("warm-up");
        let mut out = Vec::new();
        for &c in &args.callers {
            out.push(run(&client, c, args.secs).await);
        }
        out
    });
    println!("| callers | timestamps/s | p50 µs | p99 µs |");
    println!("|---|---|---|---|");
    for f in &figures {
        println!("| {} | {:.0} | {:.1} | {:.1} |", f.callers, f.per_sec, f.p50_us, f.p99_us);
    }
    let json: Vec<String> = figures
        .iter()
        .map(|f| {
            format!(
                "\"callers_{}\":{{\"per_sec\":{:.0},\"p50_us\":{:.1},\"p99_us\":{:.1}}}",
                f.callers, f.per_sec, f.p50_us, f.p99_us
            )
        })
        .collect();
    println!("{{\"secs\":{},{}}}", args.secs, json.join(","));
    server_rt.block_on(server.shutdown());
}
