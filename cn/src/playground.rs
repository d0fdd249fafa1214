//! The playground: N MariaDB data nodes and a metadb as real `mariadbd`
//! processes under one data directory, a TSO and one or more CNs in this
//! process, and TPC-H loaded into database `tpch`. With several CNs every
//! DN gets a shared agent served over gRPC on a free port, in this process
//! but by exactly the code `dn-plugin serve` runs
//! ([`dn_plugin::service::start_agent`] and [`dn_plugin::service::serve`]),
//! and every CN reaches the agents over gRPC; with one CN the agents are
//! in the CN's process.
//!
//! Layout of the data directory: `template/` (made once by
//! `mariadb-install-db`), `metadb/`, `dn0/`, `dn1/`, … (copies of the
//! template), each with its `mariadbd.log`.

use crate::catalog::metadb::{DnInfo, MetaDb};
use crate::error::{CnError, Result};
pub use dn_plugin::mariadb::{ensure_template, start_mariadb, wait_ready, MariaDb};
use std::path::Path;

impl From<dn_plugin::mariadb::ProcessError> for CnError {
    fn from(e: dn_plugin::mariadb::ProcessError) -> Self {
        CnError::internal(e.0)
    }
}

/// Data nodes and metadb of a playground.
pub struct Topology {
    pub metadb: MariaDb,
    pub dns: Vec<MariaDb>,
}

impl Topology {
    /// Starts the metadb on `base_port` and DN i on `base_port + 1 + i`,
    /// and records the DNs in the metadb.
    pub async fn start(base: &Path, dns: usize, base_port: u16, buffer_pool_mb: u32) -> Result<Topology> {
        let ports: Vec<u16> = (0..=dns as u16).map(|i| base_port + i).collect();
        Self::start_on(base, &ports, buffer_pool_mb).await
    }

    /// Like [`Topology::start`] with explicit ports: `ports[0]` for the
    /// metadb, `ports[1 + i]` for DN i.
    pub async fn start_on(base: &Path, ports: &[u16], buffer_pool_mb: u32) -> Result<Topology> {
        std::fs::create_dir_all(base)?;
        let base = base.canonicalize()?;
        ensure_template(&base).await?;
        let mut starts = vec![start_mariadb(base.clone(), "metadb".into(), ports[0], 64)];
        for (i, port) in ports[1..].iter().enumerate() {
            starts.push(start_mariadb(base.clone(), format!("dn{i}"), *port, buffer_pool_mb));
        }
        let mut started = futures::future::try_join_all(starts).await?;
        let metadb = started.remove(0);
        let topo = Topology { metadb, dns: started };
        let pool = mysql_async::Pool::new(
            mysql_async::Opts::from_url(&topo.metadb.url()).map_err(|e| CnError::internal(e.to_string()))?,
        );
        let meta = MetaDb::new(pool.clone());
        meta.bootstrap().await?;
        let infos: Vec<DnInfo> = topo
            .dns
            .iter()
            .enumerate()
            .map(|(i, d)| DnInfo {
                id: i as u32,
                host: "127.0.0.1".into(),
                port: d.port,
                user: "root".into(),
                password: String::new(),
            })
            .collect();
        meta.register_dns(&infos).await?;
        let _ = pool.disconnect().await;
        Ok(topo)
    }

    /// Restarts a stopped or killed DN on its port and data directory.
    pub async fn restart_dn(&mut self, i: usize, buffer_pool_mb: u32) -> Result<()> {
        let d = &self.dns[i];
        let base = d.dir.parent().map(Path::to_path_buf).unwrap_or_default();
        let port = d.port;
        self.dns[i] = start_mariadb(base, format!("dn{i}"), port, buffer_pool_mb).await?;
        Ok(())
    }

    pub async fn stop(&mut self) {
        for d in self.dns.iter_mut() {
            d.stop().await;
        }
        self.metadb.stop().await;
    }
}

/// A whole cluster in one process: the `mariadbd` topology, a TSO and one
/// or more CNs serving the MySQL protocol (with shared agents when more
/// than one). Used by `cn playground`, the sqltests runner and tests.
pub struct Playground {
    pub topo: Topology,
    pub tso: tso::server::RunningTso,
    /// CN 0.
    pub cluster: std::sync::Arc<crate::cluster::Cluster>,
    /// CN 0's MySQL address.
    pub addr: std::net::SocketAddr,
    pub server: tokio::task::JoinHandle<Result<()>>,
    /// CNs 1, 2, … (empty with one CN).
    pub more_cns: Vec<CnHandle>,
    /// The shared agents, one per DN in DN order (empty with one CN).
    pub agents: Vec<dn_plugin::service::RunningAgent>,
}

/// One CN of a playground.
pub struct CnHandle {
    /// Its shared state (catalog, DNs, agents, transactions).
    pub cluster: std::sync::Arc<crate::cluster::Cluster>,
    /// Its MySQL address.
    pub addr: std::net::SocketAddr,
    /// Its accept loop; aborting it stops the CN.
    pub server: tokio::task::JoinHandle<Result<()>>,
}

impl Playground {
    /// Starts the metadb on `mariadb_ports[0]` and a DN on each further port
    /// (data under `dir`), a TSO on `tso_listen` (data in `dir/tso`) and a CN
    /// on `cn_listen` (`127.0.0.1:0` picks free ports).
    pub async fn start(
        dir: &Path,
        mariadb_ports: &[u16],
        buffer_pool_mb: u32,
        tso_listen: std::net::SocketAddr,
        cn_listen: &str,
    ) -> Result<Playground> {
        Self::start_cns(dir, mariadb_ports, buffer_pool_mb, tso_listen, &[cn_listen]).await
    }

    /// Like [`Playground::start`] with a CN on each of `cn_listens`; with
    /// more than one, a shared agent per DN on a free port of 127.0.0.1
    /// (see the module doc). Errors: a process or service did not start
    /// (everything started is stopped).
    pub async fn start_cns(
        dir: &Path,
        mariadb_ports: &[u16],
        buffer_pool_mb: u32,
        tso_listen: std::net::SocketAddr,
        cn_listens: &[&str],
    ) -> Result<Playground> {
        if cn_listens.is_empty() {
            return Err(CnError::internal("a playground needs at least one CN"));
        }
        let mut topo = Topology::start_on(dir, mariadb_ports, buffer_pool_mb).await?;
        let opts = tso::server::ServeOptions::new(tso_listen, dir.join("tso"));
        let tso = match tso::server::start(opts, std::sync::Arc::new(tso::clock::SystemClock)).await {
            Ok(t) => t,
            Err(e) => {
                topo.stop().await;
                return Err(CnError::internal(format!("starting the TSO: {e}")));
            }
        };
        let mut agents = Vec::new();
        let mut cns: Vec<CnHandle> = Vec::new();
        let started = async {
            if cn_listens.len() > 1 {
                let client = tso::TsoClient::new(vec![tso.addr.to_string()], tso::ClientOptions::default());
                let start_ts = client.get_ts().await.map_err(|e| CnError::internal(e.to_string()))?;
                for (i, d) in topo.dns.iter().enumerate() {
                    let name = format!("dn{i}");
                    let agent = dn_plugin::service::start_agent(&name, &d.url(), start_ts)
                        .await
                        .map_err(|e| CnError::internal(e.to_string()))?;
                    let served = dn_plugin::service::serve(agent, ([127, 0, 0, 1], 0).into())
                        .await
                        .map_err(|e| CnError::internal(e.to_string()))?;
                    agents.push(served);
                }
            }
            for listen in cn_listens {
                let config = crate::config::Config {
                    listen: listen.to_string(),
                    metadb: topo.metadb.url(),
                    tso: vec![tso.addr.to_string()],
                    agents: agents.iter().enumerate().map(|(i, a)| (format!("dn{i}"), a.url())).collect(),
                    ..crate::config::Config::default()
                };
                let (cluster, addr, server) = crate::server::start_cn(config).await?;
                cns.push(CnHandle { cluster, addr, server });
            }
            Ok::<(), CnError>(())
        }
        .await;
        if let Err(e) = started {
            for c in cns {
                c.server.abort();
            }
            for a in agents {
                a.shutdown().await;
            }
            tso.shutdown().await;
            topo.stop().await;
            return Err(e);
        }
        let first = cns.remove(0);
        Ok(Playground {
            topo,
            tso,
            cluster: first.cluster,
            addr: first.addr,
            server: first.server,
            more_cns: cns,
            agents,
        })
    }

    /// The MySQL addresses of every CN, CN 0 first.
    pub fn addrs(&self) -> Vec<std::net::SocketAddr> {
        std::iter::once(self.addr).chain(self.more_cns.iter().map(|c| c.addr)).collect()
    }

    /// Stops the CNs, the shared agents, the TSO and every `mariadbd`.
    pub async fn stop(mut self) {
        self.server.abort();
        let _ = self.cluster.metadb.forget_cn(self.cluster.cn_id).await;
        for c in self.more_cns {
            c.server.abort();
            let _ = c.cluster.metadb.forget_cn(c.cluster.cn_id).await;
        }
        for a in self.agents {
            a.shutdown().await;
        }
        self.tso.shutdown().await;
        self.topo.stop().await;
    }
}
