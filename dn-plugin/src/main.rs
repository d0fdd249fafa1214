//! `dn-plugin serve`: the DN agent as a sidecar beside one MariaDB data
//! node, shared by every CN of the cluster over gRPC (`proto/agent.proto`).

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "dn-plugin", version, about = "DN agent sidecar: timestamp rules beside a MariaDB data node")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Connect to the DN, create the agent's tables, rebuild the prepared
    /// branches from XA RECOVER and the agent's log, and serve until Ctrl-C.
    Serve(ServeArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// The DN's Unix socket (connects as root without a password).
    #[arg(long, conflicts_with = "dn_url", required_unless_present = "dn_url")]
    dn_socket: Option<PathBuf>,
    /// The DN's URL (`mysql://user:password@host:port`).
    #[arg(long)]
    dn_url: Option<String>,
    /// The gRPC address to listen on.
    #[arg(long)]
    listen: SocketAddr,
    /// Members of the TSO group (`host:port`): the agent's mrt and amx start
    /// at a fresh timestamp.
    #[arg(long, required = true, value_delimiter = ',')]
    tso: Vec<String>,
    /// The DN's name in messages (`dn0`, …).
    #[arg(long, default_value = "dn")]
    name: String,
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let Cmd::Serve(args) = Cli::parse().command;
    if let Err(e) = serve(args).await {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn serve(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let url = match (&args.dn_url, &args.dn_socket) {
        (Some(u), _) => u.clone(),
        (None, Some(p)) => format!("mysql://root@localhost/?socket={}", p.display()),
        (None, None) => unreachable!("clap requires one"),
    };
    let tso = tso::TsoClient::new(args.tso.clone(), tso::ClientOptions::default());
    let start_ts = tso.get_ts().await?;
    let agent = dn_plugin::service::start_agent(&args.name, &url, start_ts).await?;
    let running = dn_plugin::service::serve(agent, args.listen).await?;
    tracing::info!(addr = %running.addr, dn = args.name, "DN agent serving");
    tokio::signal::ctrl_c().await?;
    running.shutdown().await;
    Ok(())
}
