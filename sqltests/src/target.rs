//! The endpoints a suite runs against: a CN playground (metadb, DNs, TSO
//! and CN, all real, in a temporary directory) or one plain `mariadbd`.

use anyhow::Result;
use cn::playground::Playground;
use dn_plugin::mariadb::{start_mariadb, MariaDb};

/// Which server a suite runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetKind {
    /// The CN over sharded MariaDB DNs.
    Cn,
    /// One plain MariaDB: the reference.
    Mariadb,
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TargetKind::Cn => "CN",
            TargetKind::Mariadb => "MariaDB",
        })
    }
}

enum Guard {
    Cn(Box<Playground>),
    Mariadb(Box<MariaDb>),
    External,
}

/// A running target.
pub struct Target {
    /// What it is.
    pub kind: TargetKind,
    /// `mysql://root@127.0.0.1:PORT` (no database).
    pub url: String,
    guard: Guard,
    _dir: Option<tempfile::TempDir>,
}

impl Target {
    /// Starts a fresh target in a temporary directory: for the CN, a metadb
    /// and `dns` DNs.
    pub async fn start(kind: TargetKind, dns: usize) -> Result<Target> {
        let dir = tempfile::tempdir()?;
        match kind {
            TargetKind::Cn => {
                let ports = dn_plugin::mariadb::free_ports(dns + 1)?;
                let pg = Playground::start(dir.path(), &ports, 64, "127.0.0.1:0".parse()?, "127.0.0.1:0").await?;
                let url = format!("mysql://root@127.0.0.1:{}", pg.addr.port());
                Ok(Target { kind, url, guard: Guard::Cn(Box::new(pg)), _dir: Some(dir) })
            }
            TargetKind::Mariadb => {
                let db = start_mariadb(
                    dir.path().to_path_buf(),
                    "mariadb".into(),
                    dn_plugin::mariadb::free_ports(1)?[0],
                    128,
                )
                .await?;
                Ok(Target { kind, url: db.url(), guard: Guard::Mariadb(Box::new(db)), _dir: Some(dir) })
            }
        }
    }

    /// A target already running at `url`.
    pub fn external(kind: TargetKind, url: &str) -> Target {
        Target { kind, url: url.trim_end_matches('/').to_string(), guard: Guard::External, _dir: None }
    }

    /// Stops what [`Target::start`] started.
    pub async fn stop(self) {
        match self.guard {
            Guard::Cn(pg) => pg.stop().await,
            Guard::Mariadb(mut db) => db.stop().await,
            Guard::External => {}
        }
    }
}
