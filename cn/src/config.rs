//! CN configuration (`cn serve --config FILE`, TOML, kebab-case keys).

use serde::{Deserialize, Serialize};

/// Configuration of one CN process.
///
/// ```toml
/// listen = "127.0.0.1:3307"
/// metadb = "mysql://root@127.0.0.1:4000"
/// tso = ["127.0.0.1:3400", "127.0.0.1:3401"]
/// max-connections = 1024
/// query-memory-limit = 268435456     # bytes a query may hold; SET query_memory_limit overrides
/// memory-total = 4294967296          # bytes all queries of this CN may hold together
/// spill-dir = "/var/tmp/cn-spill"    # where operators spill; a directory per CN inside
/// spill-quota = 107374182400         # bytes of spill files this CN may hold at once
/// spill-compression = "lz4_frame"    # or "zstd", "uncompressed"
/// default-auth-plugin = "mysql_native_password"   # or "caching_sha2_password"
/// [agents]
/// dn0 = "http://127.0.0.1:3500"
/// dn1 = "http://127.0.0.1:3501"
/// [[users]]
/// name = "root"
/// password = ""
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    /// Address the MySQL protocol listens on.
    pub listen: String,
    /// URL of the metadb (a MariaDB server holding `cn_meta`).
    pub metadb: String,
    /// Members of the TSO group (`host:port`; the client finds the leader).
    /// Empty: an in-process clock, correct for a single CN only.
    pub tso: Vec<String>,
    /// Client connections accepted at once; one more gets ERR 1040.
    pub max_connections: usize,
    /// Pooled connections per DN.
    pub dn_pool_size: usize,
    /// How often the catalog version in the metadb is polled, in ms.
    pub catalog_poll_ms: u64,
    /// Accounts; an empty password means none.
    pub users: Vec<User>,
    /// The authentication plugin the handshake proposes:
    /// `mysql_native_password` (the default; every client has it) or
    /// `caching_sha2_password` (MySQL 8's default). A client that answers
    /// with the other of the two is accepted as it is; one with any other
    /// plugin is asked to switch (MySQL's `default_authentication_plugin`).
    pub default_auth_plugin: String,
    /// The shared DN agents (`dn-plugin serve`), by DN name (`dn0`, …):
    /// the gRPC URL of each. A DN without an entry gets an agent in this
    /// process, correct only while this CN is the only one. Several CNs
    /// over the same DNs must all name the same agent for every DN.
    pub agents: std::collections::BTreeMap<String, String>,
    /// The memory a query may hold (bytes) when its session leaves
    /// `query_memory_limit` at 0. Operators that outgrow it spill to
    /// `spill-dir`; one that cannot fails with ERR 1041.
    pub query_memory_limit: u64,
    /// The memory all queries of this CN may hold together (bytes): a
    /// query whose reservation would pass it spills or fails like one over
    /// its own limit, so other sessions keep their share.
    pub memory_total: u64,
    /// The directory spill files go to. Each CN makes its own directory
    /// inside (removed when the CN stops); each file is removed as soon as
    /// its operator is done, fails or is cancelled.
    pub spill_dir: std::path::PathBuf,
    /// The bytes of spill files this CN may hold at once; a spill past it
    /// fails the query with ERR 1041.
    pub spill_quota: u64,
    /// The codec of spill files (Arrow IPC buffer compression):
    /// `lz4_frame` (fast, the default), `zstd` (smaller) or `uncompressed`.
    pub spill_compression: String,
}

/// 256 MiB: the default memory limit of one query.
pub const DEFAULT_QUERY_MEMORY_LIMIT: u64 = 256 << 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct User {
    pub name: String,
    #[serde(default)]
    pub password: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:3307".into(),
            metadb: "mysql://root@127.0.0.1:4000".into(),
            tso: Vec::new(),
            max_connections: 1024,
            dn_pool_size: 256,
            catalog_poll_ms: 500,
            users: vec![User { name: "root".into(), password: String::new() }],
            default_auth_plugin: crate::protocol::handshake::NATIVE_PASSWORD.into(),
            agents: Default::default(),
            query_memory_limit: DEFAULT_QUERY_MEMORY_LIMIT,
            memory_total: 4 << 30,
            spill_dir: std::env::temp_dir().join("cn-spill"),
            spill_quota: 100 << 30,
            spill_compression: "lz4_frame".into(),
        }
    }
}

impl Config {
    /// Checks values a typo could make absurd.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_connections == 0 {
            return Err("max-connections must be at least 1".into());
        }
        if self.dn_pool_size == 0 {
            return Err("dn-pool-size must be at least 1".into());
        }
        if self.users.is_empty() {
            return Err("at least one user is needed".into());
        }
        self.listen.parse::<std::net::SocketAddr>().map_err(|e| format!("listen = {:?}: {e}", self.listen))?;
        if !self.metadb.starts_with("mysql://") {
            return Err(format!("metadb = {:?}: expected a mysql:// URL", self.metadb));
        }
        for (dn, url) in &self.agents {
            if !url.starts_with("http://") && !url.starts_with("https://") {
                return Err(format!("agents.{dn} = {url:?}: expected an http:// URL"));
            }
        }
        if self.query_memory_limit == 0 || self.memory_total == 0 {
            return Err("query-memory-limit and memory-total must be at least 1 byte".into());
        }
        if self.query_memory_limit > self.memory_total {
            return Err(format!(
                "query-memory-limit = {} is above memory-total = {}",
                self.query_memory_limit, self.memory_total
            ));
        }
        if self.spill_dir.as_os_str().is_empty() {
            return Err("spill-dir must name a directory".into());
        }
        if !["lz4_frame", "zstd", "uncompressed"].contains(&self.spill_compression.as_str()) {
            return Err(format!(
                "spill-compression = {:?}: expected lz4_frame, zstd or uncompressed",
                self.spill_compression
            ));
        }
        use crate::protocol::handshake::{CACHING_SHA2_PASSWORD, NATIVE_PASSWORD};
        if ![NATIVE_PASSWORD, CACHING_SHA2_PASSWORD].contains(&self.default_auth_plugin.as_str()) {
            return Err(format!(
                "default-auth-plugin = {:?}: expected {NATIVE_PASSWORD} or {CACHING_SHA2_PASSWORD}",
                self.default_auth_plugin
            ));
        }
        if !self.agents.is_empty() && self.tso.is_empty() {
            return Err("shared agents need a TSO shared by the CNs (tso = [...])".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates() {
        let c: Config = toml::from_str("listen = \"127.0.0.1:4001\"\nmax-connections = 5\n").unwrap();
        assert_eq!(c.max_connections, 5);
        assert!(c.validate().is_ok());
        let bad = Config { max_connections: 0, ..Config::default() };
        assert!(bad.validate().is_err());
        assert!(toml::from_str::<Config>("no-such-key = 1").is_err());
        let bad_listen = Config { listen: "nowhere".into(), ..Config::default() };
        assert!(bad_listen.validate().is_err());
        let shared: Config =
            toml::from_str("tso = [\"127.0.0.1:3400\"]\n[agents]\ndn0 = \"http://127.0.0.1:3500\"\n").unwrap();
        assert_eq!(shared.agents["dn0"], "http://127.0.0.1:3500");
        assert!(shared.validate().is_ok());
        let no_tso = Config { tso: Vec::new(), ..shared.clone() };
        assert!(no_tso.validate().is_err());
        let sha2: Config = toml::from_str("default-auth-plugin = \"caching_sha2_password\"\n").unwrap();
        assert!(sha2.validate().is_ok());
        assert!(Config { default_auth_plugin: "sha256_password".into(), ..sha2 }.validate().is_err());
    }

    #[test]
    fn memory_and_spill_settings() {
        let d = Config::default();
        assert_eq!(d.query_memory_limit, DEFAULT_QUERY_MEMORY_LIMIT);
        assert!(d.spill_dir.starts_with(std::env::temp_dir()));
        assert!(d.validate().is_ok());
        let c: Config = toml::from_str(
            "query-memory-limit = 1048576\nmemory-total = 8388608\nspill-dir = \"/tmp/x\"\nspill-quota = 1000\nspill-compression = \"zstd\"\n",
        )
        .unwrap();
        assert_eq!((c.query_memory_limit, c.memory_total, c.spill_quota), (1 << 20, 8 << 20, 1000));
        assert_eq!(c.spill_dir, std::path::PathBuf::from("/tmp/x"));
        assert!(c.validate().is_ok());
        assert!(Config { spill_compression: "gzip".into(), ..c.clone() }.validate().is_err());
        assert!(Config { query_memory_limit: 0, ..c.clone() }.validate().is_err());
        assert!(Config { memory_total: 1 << 10, ..c }.validate().is_err());
    }
}
