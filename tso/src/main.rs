//! `tso serve`: runs one member of a TSO group.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tso::clock::SystemClock;
use tso::server::{start, ServeOptions};

#[derive(Parser)]
#[command(name = "tso", about = "Timestamp oracle: a gRPC service handing out timestamps that never go backwards")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve timestamps.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:3400")]
        listen: std::net::SocketAddr,
        /// Data directory with the persisted upper bound (created when missing).
        #[arg(long)]
        data_dir: PathBuf,
        /// High availability: the metadb holding the leader lease, e.g.
        /// mysql://root@127.0.0.1:4000. Start two or more processes with it.
        #[arg(long)]
        metadb: Option<String>,
        /// The address clients reach this process at (default: --listen).
        #[arg(long)]
        advertise: Option<String>,
        /// Lease length in milliseconds (HA).
        #[arg(long, default_value_t = 3000)]
        lease_ms: u64,
        /// How far ahead of use the bound is persisted, in milliseconds.
        #[arg(long, default_value_t = 3000)]
        window_ms: u64,
    },
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".parse().expect("filter")),
        )
        .init();
    let Cmd::Serve { listen, data_dir, metadb, advertise, lease_ms, window_ms } = Cli::parse().command;
    let opts = ServeOptions {
        metadb,
        advertise,
        lease: Duration::from_millis(lease_ms.max(100)),
        window_ms,
        ..ServeOptions::new(listen, data_dir)
    };
    let running = match start(opts, Arc::new(SystemClock)).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tso: {e}");
            std::process::exit(1);
        }
    };
    println!("tso listening on {}", running.addr);
    let _ = tokio::signal::ctrl_c().await;
    running.shutdown().await;
}
