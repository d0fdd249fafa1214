//! `cargo run -p sqltests -- [--target cn|mariadb] [--label mysql] [-j N]
//! [--compare] PATHS…`: runs sqllogictest files against the CN (a
//! playground it starts in a temporary directory), plain MariaDB, or both.

use clap::Parser;
use sqltests::report;
use sqltests::runner::{collect_files, run_files, RunOptions};
use sqltests::target::{Target, TargetKind};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "sqltests", about = "Run sqllogictest files against the CN and/or plain MariaDB")]
struct Args {
    /// Where to run (ignored with --compare, which runs both).
    #[arg(long, value_enum, default_value_t = TargetKind::Cn)]
    target: TargetKind,
    /// Labels for skipif/onlyif.
    #[arg(long = "label", default_value = "mysql")]
    labels: Vec<String>,
    /// Files run at once.
    #[arg(short = 'j', long, default_value_t = 4)]
    jobs: usize,
    /// Run on the CN and on MariaDB and list every record whose outcome differs.
    #[arg(long)]
    compare: bool,
    /// Use a server already running at this URL (mysql://root@127.0.0.1:3307)
    /// instead of starting one.
    #[arg(long)]
    url: Option<String>,
    /// Data nodes of the CN playground.
    #[arg(long, default_value_t = 2)]
    dns: usize,
    /// Failures printed per file.
    #[arg(long, default_value_t = 3)]
    show: usize,
    /// Results with more values are compared by MD5 hash (files may override).
    #[arg(long, default_value_t = 8)]
    hash_threshold: usize,
    /// Seconds one statement may take.
    #[arg(long, default_value_t = 120)]
    statement_timeout: u64,
    /// With --compare: write the `file:line` of every record the CN fails
    /// and MariaDB passes to this file (the baseline CI holds the CN to).
    #[arg(long)]
    write_baseline: Option<PathBuf>,
    /// Files or directories (searched for .test and .slt files).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

fn main() {
    cn::server::runtime_builder().build().expect("the tokio runtime starts").block_on(async_main())
}

async fn async_main() {
    let args = Args::parse();
    match run(args).await {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("sqltests: {e:#}");
            std::process::exit(2);
        }
    }
}

async fn start(kind: TargetKind, args: &Args) -> anyhow::Result<Target> {
    match &args.url {
        Some(u) if !args.compare => Ok(Target::external(kind, u)),
        _ => Target::start(kind, args.dns).await,
    }
}

async fn run(args: Args) -> anyhow::Result<bool> {
    let files = collect_files(&args.paths)?;
    let opts = RunOptions {
        labels: args.labels.clone(),
        jobs: args.jobs,
        statement_timeout: Duration::from_secs(args.statement_timeout),
        hash_threshold: args.hash_threshold,
    };
    if args.compare {
        let cn = start(TargetKind::Cn, &args).await?;
        let cn_results = run_files(&cn, &files, &opts).await;
        cn.stop().await;
        let mariadb = start(TargetKind::Mariadb, &args).await?;
        let m_results = run_files(&mariadb, &files, &opts).await;
        mariadb.stop().await;
        report::print_files("CN", &cn_results, 0);
        report::print_files("MariaDB", &m_results, 0);
        let rows = report::compare(&cn_results, &m_results);
        report::print_comparison(&rows, args.show);
        if let Some(path) = &args.write_baseline {
            let keys = report::cn_only_keys(&rows);
            std::fs::write(path, keys.iter().map(|k| format!("{k}\n")).collect::<String>())?;
            println!("wrote {} records to {}", keys.len(), path.display());
        }
        return Ok(rows.iter().all(|r| r.cn_only_failures.is_empty()));
    }
    let target = start(args.target, &args).await?;
    let results = run_files(&target, &files, &opts).await;
    target.stop().await;
    report::print_files(&args.target.to_string(), &results, args.show);
    report::print_summary(&args.target.to_string(), &results);
    Ok(results.iter().all(|r| r.failed() == 0))
}
