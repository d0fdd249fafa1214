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
    /// Start N MariaDB data nodes, a metadb and a CN, load TPC-H, serve until Ctrl-C.
    Playground {
        /// Number of data nodes.
        #[arg(long, default_value_t = 4)]
        dns: usize,
        /// MySQL port of the CN.
        #[arg(long, default_value_t = 3307)]
        port: u16,
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

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let cli = Cli::parse();
    let r = match cli.command {
        Cmd::Playground { dns, port, data_dir, tpch_sf, mariadb_port, buffer_pool_mb, tso_port } => {
            playground(dns, port, data_dir, tpch_sf, mariadb_port, buffer_pool_mb, tso_port).await
        }
        Cmd::Serve { config } => serve(config).await,
    };
    if let Err(e) = r {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn serve(path: PathBuf) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    let config: Config = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    config.validate().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let (_cluster, addr, task) = cn::server::start_cn(config).await?;
    tracing::info!(%addr, "CN listening");
    tokio::select! {
        r = task => { r??; }
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}

async fn playground(
    dns: usize,
    port: u16,
    dir: PathBuf,
    sf: f64,
    mariadb_port: u16,
    buffer_pool_mb: u32,
    tso_port: u16,
) -> anyhow::Result<()> {
    if dns == 0 {
        anyhow::bail!("--dns must be at least 1");
    }
    println!("starting {dns} data nodes, the metadb and the TSO under {} …", dir.display());
    let ports: Vec<u16> = (0..=dns as u16).map(|i| mariadb_port + i).collect();
    let mut pg = Playground::start(
        &dir,
        &ports,
        buffer_pool_mb,
        ([127, 0, 0, 1], tso_port).into(),
        &format!("127.0.0.1:{port}"),
    )
    .await?;
    println!("TSO serving on {}", pg.tso.addr);
    let result = async {
        if pg.cluster.catalog.snapshot().database("tpch").is_none() {
            let t = std::time::Instant::now();
            println!("loading TPC-H at scale factor {sf} into database `tpch` …");
            let mut s = cn::session::Session::new(pg.cluster.clone(), 0, "root".into(), "localhost".into());
            let rows = cn::tpch::load(&mut s, "tpch", sf).await?;
            println!("loaded {rows} rows in {:.1} s", t.elapsed().as_secs_f64());
        }
        println!(
            "CN ready. Connect with:\n  mariadb -h127.0.0.1 -P{} -uroot tpch\nCtrl-C stops everything.",
            pg.addr.port()
        );
        anyhow::Ok(())
    }
    .await;
    let result = match result {
        Ok(()) => {
            tokio::select! {
                r = &mut pg.server => r.map_err(anyhow::Error::from).and_then(|r| r.map_err(anyhow::Error::from)),
                _ = tokio::signal::ctrl_c() => { println!("stopping …"); Ok(()) }
            }
        }
        Err(e) => Err(e),
    };
    pg.stop().await;
    result
}
