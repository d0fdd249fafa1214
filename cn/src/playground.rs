//! The playground: N MariaDB data nodes and a metadb as real `mariadbd`
//! processes under one data directory, a CN in this process, and TPC-H
//! loaded into database `tpch`.
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

/// A whole cluster in one process: the `mariadbd` topology, a TSO and a CN
/// serving the MySQL protocol. Used by `cn playground` and by the sqltests
/// runner.
pub struct Playground {
    pub topo: Topology,
    pub tso: tso::server::RunningTso,
    pub cluster: std::sync::Arc<crate::cluster::Cluster>,
    /// The CN's MySQL address.
    pub addr: std::net::SocketAddr,
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
        let mut topo = Topology::start_on(dir, mariadb_ports, buffer_pool_mb).await?;
        let opts = tso::server::ServeOptions::new(tso_listen, dir.join("tso"));
        let tso = match tso::server::start(opts, std::sync::Arc::new(tso::clock::SystemClock)).await {
            Ok(t) => t,
            Err(e) => {
                topo.stop().await;
                return Err(CnError::internal(format!("starting the TSO: {e}")));
            }
        };
        let config = crate::config::Config {
            listen: cn_listen.to_string(),
            metadb: topo.metadb.url(),
            tso: vec![tso.addr.to_string()],
            ..crate::config::Config::default()
        };
        match crate::server::start_cn(config).await {
            Ok((cluster, addr, server)) => Ok(Playground { topo, tso, cluster, addr, server }),
            Err(e) => {
                tso.shutdown().await;
                topo.stop().await;
                Err(e)
            }
        }
    }

    /// Stops the CN, the TSO and every `mariadbd`.
    pub async fn stop(mut self) {
        self.server.abort();
        self.tso.shutdown().await;
        self.topo.stop().await;
    }
}
