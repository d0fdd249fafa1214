//! Local `mariadbd` processes: one template data directory made by
//! `mariadb-install-db`, copied per instance (fast), each server started on
//! loopback with its own port, socket and log. The playground starts its DNs
//! and metadb with this, and tests start real servers with it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// A `mariadbd` could not be set up, started or reached.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProcessError(pub String);

impl From<std::io::Error> for ProcessError {
    fn from(e: std::io::Error) -> Self {
        ProcessError(e.to_string())
    }
}

pub type Result<T, E = ProcessError> = std::result::Result<T, E>;

/// A running `mariadbd`.
pub struct MariaDb {
    pub name: String,
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
}

impl MariaDb {
    /// `mysql://root@127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    /// Sends SIGTERM and waits for a clean shutdown (SIGKILL after 30 s).
    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if let Some(pid) = c.id() {
                let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
            }
            if tokio::time::timeout(Duration::from_secs(30), c.wait()).await.is_err() {
                let _ = c.kill().await;
            }
        }
    }

    /// SIGKILL (fault-injection tests).
    pub async fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }

    /// The process id while it runs under this handle.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            if let Some(pid) = c.id() {
                let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
            }
        }
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `n` distinct loopback ports free at the time of the call, none handed
/// out before by this process. Each comes from binding port 0; the
/// listeners are held until all `n` are chosen, since the kernel may give
/// the same port to two binds in a row once the first is closed (seen on a
/// CI machine: two DNs "started" on one port, the second `mariadbd` failed
/// to bind and both DN entries reached the first). Another process may
/// still take a port before its server binds it: [`start_mariadb`] checks
/// that the server answering is its own.
/// Errors: binding fails (no free port).
pub fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let mut held = Vec::with_capacity(n);
    let mut ports = Vec::with_capacity(n);
    while ports.len() < n {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        held.push(l);
        if !given.contains(&port) {
            given.push(port);
            ports.push(port);
        }
    }
    Ok(ports)
}

/// One port of [`free_ports`]; panics when none is free (for tests).
pub fn free_port() -> u16 {
    free_ports(1).expect("a free loopback port")[0]
}

/// Finds `mariadbd` (PATH, then /usr/sbin).
pub fn mariadbd_binary() -> Result<PathBuf> {
    for p in ["/usr/sbin/mariadbd", "/usr/bin/mariadbd", "/usr/sbin/mysqld"] {
        if Path::new(p).exists() {
            return Ok(PathBuf::from(p));
        }
    }
    Err(ProcessError("mariadbd not found: install MariaDB (apt-get install -y mariadb-server)".into()))
}

/// Creates the template data directory once (`mariadb-install-db`).
pub async fn ensure_template(base: &Path) -> Result<PathBuf> {
    let t = base.join("template");
    if t.join("mysql").is_dir() {
        return Ok(t);
    }
    let tmp = base.join("template.tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    // Its own temporary directory: a `mariadbd` starting meanwhile removes
    // stale `#sql*` files from a shared /tmp, including this one's.
    let tmpdir = base.join("template.tmpdir");
    std::fs::create_dir_all(&tmpdir)?;
    let mut cmd = Command::new("mariadb-install-db");
    cmd.env("TMPDIR", &tmpdir)
        .arg("--no-defaults")
        .arg(format!("--datadir={}", tmp.display()))
        .arg("--auth-root-authentication-method=normal")
        .arg("--skip-test-db")
        .arg("--innodb-log-file-size=16M")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if is_root() {
        cmd.arg("--user=root");
    }
    let out = cmd
        .output()
        .await
        .map_err(|e| ProcessError(format!("mariadb-install-db: {e} (is mariadb-server installed?)")))?;
    if !out.status.success() {
        return Err(ProcessError(format!("mariadb-install-db failed: {}", String::from_utf8_lossy(&out.stderr))));
    }
    std::fs::rename(&tmp, &t)?;
    Ok(t)
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dst = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &dst)?;
        } else {
            std::fs::copy(e.path(), dst)?;
        }
    }
    Ok(())
}

/// Starts a `mariadbd` on `port` with data in `base/name` (copied from the
/// template on first use) and waits until it accepts connections.
pub async fn start_mariadb(base: PathBuf, name: String, port: u16, buffer_pool_mb: u32) -> Result<MariaDb> {
    let name = name.as_str();
    let template = ensure_template(&base).await?;
    let dir = base.join(name);
    if !dir.join("mysql").is_dir() {
        let _ = std::fs::remove_dir_all(&dir);
        copy_dir(&template, &dir)?;
    }
    let dir = dir.canonicalize()?;
    // Beside the data directory (inside it, it would show as a database).
    let tmpdir = base.join(format!("{name}.tmpdir"));
    std::fs::create_dir_all(&tmpdir)?;
    let mut cmd = Command::new(mariadbd_binary()?);
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", dir.display()))
        .arg(format!("--port={port}"))
        .arg(format!("--tmpdir={}", tmpdir.display()))
        .arg(format!("--socket={}", dir.join("mysqld.sock").display()))
        .arg(format!("--pid-file={}", dir.join("mysqld.pid").display()))
        .arg(format!("--log-error={}", dir.join("mariadbd.log").display()))
        .arg("--bind-address=127.0.0.1")
        .arg("--skip-name-resolve")
        .arg("--innodb-log-file-size=16M")
        .arg(format!("--innodb-buffer-pool-size={buffer_pool_mb}M"))
        .arg("--max-connections=2000")
        .arg("--character-set-server=utf8mb4")
        .arg("--collation-server=utf8mb4_general_ci")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(false);
    if is_root() {
        cmd.arg("--user=root");
    }
    let child = cmd.spawn().map_err(|e| ProcessError(format!("starting mariadbd: {e}")))?;
    let db = MariaDb { name: name.to_string(), port, dir: dir.clone(), child: Some(child) };
    let log_tail = || {
        let log = std::fs::read_to_string(dir.join("mariadbd.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(8).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    };
    wait_ready(&db.url(), Duration::from_secs(60))
        .await
        .map_err(|e| ProcessError(format!("{name} (port {port}) did not start: {e}\n{}", log_tail())))?;
    // The server that answered may be another one that had the port first
    // (ours then fails to bind and exits): its data directory tells.
    let theirs = served_datadir(&db.url()).await?;
    if Path::new(theirs.trim_end_matches('/')) != dir {
        return Err(ProcessError(format!(
            "{name}: port {port} is taken by another server (data directory {theirs})\n{}",
            log_tail()
        )));
    }
    Ok(db)
}

/// `@@datadir` of the server at `url`.
async fn served_datadir(url: &str) -> Result<String> {
    use mysql_async::prelude::Queryable;
    let opts = mysql_async::Opts::from_url(url).map_err(|e| ProcessError(e.to_string()))?;
    let mut c = mysql_async::Conn::new(opts).await.map_err(|e| ProcessError(e.to_string()))?;
    let dir: Option<String> = c.query_first("SELECT @@datadir").await.map_err(|e| ProcessError(e.to_string()))?;
    let _ = c.disconnect().await;
    Ok(dir.unwrap_or_default())
}

/// Polls until a MySQL server at `url` answers.
pub async fn wait_ready(url: &str, limit: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        let opts = mysql_async::Opts::from_url(url).map_err(|e| ProcessError(e.to_string()))?;
        match mysql_async::Conn::new(opts).await {
            Ok(c) => {
                let _ = c.disconnect().await;
                return Ok(());
            }
            Err(e) if start.elapsed() > limit => return Err(ProcessError(e.to_string())),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
