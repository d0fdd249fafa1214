//! `cn`: run a CN against an existing cluster, or a whole playground.

use clap::{Parser, Subcommand};
use cn::config::Config;
use cn::playground::Playground;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "cn", version, about = "Distributed SQL compute node over MariaDB data nodes")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start N MariaDB data nodes, a metadb, a TSO and one or more CNs, load TPC-H, serve until Ctrl-C.
    Playground {
        /// Number of data nodes.
        #[arg(long, default_value_t = 4)]
        dns: usize,
        /// MySQL port of the CN (CN i listens on PORT + i).
        #[arg(long, default_value_t = 3307)]
        port: u16,
        /// Number of CNs. With more than one, every DN gets a shared agent
        /// (the code of `dn-plugin serve`, served over gRPC from this
        /// process on a free port) and all CNs use them; with one, the
        /// agents live inside the CN.
        #[arg(long, default_value_t = 1)]
        cns: usize,
        /// Where the MariaDB data directories live (reused on the next start).
        #[arg(long, default_value = "playground-data")]
        data_dir: PathBuf,
        /// TPC-H scale factor loaded into database `tpch` (0: none).
        #[arg(long, default_value_t = 0.1)]
        tpch_sf: f64,
        /// First port of the MariaDB servers (metadb; DN i gets +1+i).
        #[arg(long, default_value_t = 4000)]
        mariadb_port: u16,
        /// InnoDB buffer pool per DN, in MiB.
        #[arg(long, default_value_t = 256)]
        buffer_pool_mb: u32,
        /// gRPC port of the TSO (started in this process, data in DATA_DIR/tso).
        #[arg(long, default_value_t = 3400)]
        tso_port: u16,
    },
    /// Run one CN against an existing cluster described by a config file.
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
}

fn main() {
    cn::server::runtime_builder().build().expect("the tokio runtime starts").block_on(async_main())
}

async fn async_main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let cli = Cli::parse();
    // Tests of crashes at each step of the transaction protocol.
    if let Err(e) = cn::txn::failpoint::arm_from_env() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
    let r = match cli.command {
        Cmd::Playground { dns, port, cns, data_dir, tpch_sf, mariadb_port, buffer_pool_mb, tso_port } => {
            let opts =
                PlaygroundArgs { dns, port, cns, dir: data_dir, sf: tpch_sf, mariadb_port, buffer_pool_mb, tso_port };
            playground(opts).await
        }
        Cmd::Serve { config } => serve(config).await,
    };
    if let Err(e) = r {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Ctrl-C (SIGINT) or SIGTERM (`kill`, systemd, a container stop): either
/// stops the process cleanly, the playground's `mariadbd`s included (they
/// were left running on SIGTERM).
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn serve(path: PathBuf) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    let config: Config = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    config.validate().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let (cluster, addr, task) = cn::server::start_cn(config).await?;
    tracing::info!(%addr, "CN listening");
    tokio::select! {
        r = task => { r??; }
        _ = shutdown_signal() => {}
    }
    // No longer a live CN that schema changes wait for.
    let _ = cluster.metadb.forget_cn(cluster.cn_id).await;
    Ok(())
}

struct PlaygroundArgs {
    dns: usize,
    port: u16,
    cns: usize,
    dir: PathBuf,
    sf: f64,
    mariadb_port: u16,
    buffer_pool_mb: u32,
    tso_port: u16,
}

async fn playground(a: PlaygroundArgs) -> anyhow::Result<()> {
    let PlaygroundArgs { dns, port, cns, dir, sf, mariadb_port, buffer_pool_mb, tso_port } = a;
    if dns == 0 {
        anyhow::bail!("--dns must be at least 1");
    }
    if cns == 0 {
        anyhow::bail!("--cns must be at least 1");
    }
    println!("starting {dns} data nodes, the metadb and the TSO under {} …", dir.display());
    let ports: Vec<u16> = (0..=dns as u16).map(|i| mariadb_port + i).collect();
    let listens: Vec<String> = (0..cns as u16).map(|i| format!("127.0.0.1:{}", port + i)).collect();
    let listens: Vec<&str> = listens.iter().map(String::as_str).collect();
    let mut pg =
        Playground::start_cns(&dir, &ports, buffer_pool_mb, ([127, 0, 0, 1], tso_port).into(), &listens).await?;
    println!("TSO serving on {}", pg.tso.addr);
    for (i, a) in pg.agents.iter().enumerate() {
        println!("shared agent of dn{i} serving on {}", a.addr);
    }
    let result = async {
        if pg.cluster.catalog.snapshot().database("tpch").is_none() {
            let t = std::time::Instant::now();
            println!("loading TPC-H at scale factor {sf} into database `tpch` …");
            let mut s = cn::session::Session::new(pg.cluster.clone(), 0, "root".into(), "localhost".into());
            let rows = cn::tpch::load(&mut s, "tpch", sf).await?;
            println!("loaded {rows} rows in {:.1} s", t.elapsed().as_secs_f64());
        }
        for addr in pg.addrs() {
            println!("CN ready. Connect with:  mariadb -h127.0.0.1 -P{} -uroot tpch", addr.port());
        }
        println!("Ctrl-C stops everything.");
        anyhow::Ok(())
    }
    .await;
    let result = match result {
        Ok(()) => {
            tokio::select! {
                r = &mut pg.server => r.map_err(anyhow::Error::from).and_then(|r| r.map_err(anyhow::Error::from)),
                _ = shutdown_signal() => { println!("stopping …"); Ok(()) }
            }
        }
        Err(e) => Err(e),
    };
    pg.stop().await;
    result
}
