//! Session and system variables: the values `SELECT @@x` and
//! `SHOW VARIABLES` report, and what `SET` may change.

use std::collections::BTreeMap;

/// The version string clients see in the handshake and `VERSION()`.
pub const SERVER_VERSION: &str = concat!("8.0.35-cn-", env!("CARGO_PKG_VERSION"));

/// Defaults of the variables a session starts with (MySQL 8.0 names and
/// defaults, MySQL reference manual "Server System Variables").
pub fn defaults() -> BTreeMap<String, String> {
    [
        ("autocommit", "1"),
        // CN: stamp one-phase commits at least at the transaction's start
        // timestamp (TiDB's tidb_guarantee_linearizability); 0 trades
        // real-time order across DNs for one TSO call less per autocommit
        // write.
        ("cn_linearizable_commit", "1"),
        // CN: commit a transaction that wrote on several DNs with async
        // commit (answered once every branch is prepared, committed at
        // max(L, max min_commit_ts) with no TSO call and no decision row);
        // 0 selects classic 2PC with a TSO commit timestamp and a decision
        // row in the metadb.
        ("cn_async_commit", "1"),
        // CN: the bytes a query run on the CN may hold before its operators
        // spill (PolarDB-X's per-query memory limit); 0 = the CN's
        // `query-memory-limit`.
        ("query_memory_limit", "0"),
        // CN: equality joins the CN runs are hybrid hash joins (ON) or
        // DataFusion's sort-merge joins (OFF), both memory-bounded; OFF is
        // there to compare the two under the same limit (benches/).
        ("cn_hash_join", "1"),
        // CN: a join whose one side is small and whose other side reads at
        // least `cn_lookup_min_rows` rows (estimated from ANALYZE TABLE)
        // reads the large side by key lookups in the shards (PolarDB-X's
        // BKA join); OFF reads it whole.
        ("cn_lookup_join", "1"),
        ("cn_lookup_min_rows", "100000"),
        // CN: point SELECTs by the partition key skip the parser and planner
        // after their first run (the plan cache, keyed by the statement with
        // its literals replaced by placeholders); OFF plans every statement.
        ("cn_plan_cache", "1"),
        // CN: a SELECT that only filters and projects one sharded table runs
        // whole on its DNs, one UNION ALL query per DN, the answers sent one
        // after the other (planner::gather); OFF plans it in DataFusion.
        ("cn_gather", "1"),
        ("auto_increment_increment", "1"),
        ("auto_increment_offset", "1"),
        ("character_set_client", "utf8mb4"),
        ("character_set_connection", "utf8mb4"),
        ("character_set_database", "utf8mb4"),
        ("character_set_results", "utf8mb4"),
        ("character_set_server", "utf8mb4"),
        ("collation_connection", "utf8mb4_general_ci"),
        ("collation_database", "utf8mb4_general_ci"),
        ("collation_server", "utf8mb4_general_ci"),
        ("interactive_timeout", "28800"),
        ("license", "Apache-2.0"),
        ("lower_case_table_names", "1"),
        ("max_allowed_packet", "67108864"),
        ("net_buffer_length", "16384"),
        ("net_write_timeout", "60"),
        ("performance_schema", "0"),
        ("query_cache_size", "0"),
        ("query_cache_type", "OFF"),
        ("sql_auto_is_null", "0"),
        // Accepted and shown, not acted on (dumps save and restore them):
        // the DNs check keys whatever they say.
        ("foreign_key_checks", "1"),
        ("unique_checks", "1"),
        ("sql_notes", "1"),
        ("sql_quote_show_create", "1"),
        ("sql_safe_updates", "0"),
        ("sql_mode", DN_SQL_MODE),
        ("sql_select_limit", "18446744073709551615"),
        ("system_time_zone", "UTC"),
        ("time_zone", "SYSTEM"),
        ("transaction_isolation", "REPEATABLE-READ"),
        ("tx_isolation", "REPEATABLE-READ"),
        ("transaction_read_only", "0"),
        ("tx_read_only", "0"),
        ("version", SERVER_VERSION),
        ("version_comment", "distributed SQL compute node (CN)"),
        ("wait_timeout", "28800"),
        ("max_connections", "1024"),
        ("init_connect", ""),
        ("have_ssl", "DISABLED"),
        ("default_storage_engine", "InnoDB"),
        ("innodb_lock_wait_timeout", "50"),
        ("lock_wait_timeout", "31536000"),
        ("warning_count", "0"),
        ("error_count", "0"),
        ("hostname", "localhost"),
        ("port", "3307"),
        ("socket", ""),
        ("protocol_version", "10"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Variables that take ON/OFF (stored as `1`/`0`); other values get 1231.
pub const BOOLEAN: &[&str] = &[
    "autocommit",
    "cn_linearizable_commit",
    "cn_async_commit",
    "cn_hash_join",
    "cn_lookup_join",
    "cn_plan_cache",
    "cn_gather",
    "foreign_key_checks",
    "unique_checks",
    "sql_notes",
    "sql_quote_show_create",
    "sql_safe_updates",
];

/// Integer variables with their range (MySQL clamps a value outside it;
/// anything not an integer gets 1232). `query_memory_limit` is in bytes.
pub const INTEGER: &[(&str, u64, u64)] = &[
    ("innodb_lock_wait_timeout", 1, 1_073_741_824),
    ("query_memory_limit", 0, u64::MAX),
    ("cn_lookup_min_rows", 0, u64::MAX),
    // MySQL 8.0 reference, 7.1.8: the WEEK() mode when none is given.
    ("default_week_format", 0, 7),
];

/// Strips `@@`, `@@session.`, `@@global.`, `@@local.` and lower-cases.
pub fn normalize_name(name: &str) -> String {
    let n = name.trim().trim_start_matches("@@").to_ascii_lowercase();
    for p in ["session.", "global.", "local."] {
        if let Some(rest) = n.strip_prefix(p) {
            return rest.to_string();
        }
    }
    n
}

/// True when the variable's value is a number (so `SELECT @@x` types it as
/// an integer, as MySQL does).
pub fn is_numeric(v: &str) -> bool {
    !v.is_empty() && v.parse::<i128>().is_ok()
}

/// The `sql_mode` of the DNs' pooled connections: MariaDB 10.11's default
/// (MariaDB Knowledge Base, "SQL_MODE"), also the CN sessions' default.
pub const DN_SQL_MODE: &str =
    "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION";

/// Modes that change how MySQL reads SQL text rather than what a statement
/// does: the CN parses the client's SQL itself and writes the DNs' SQL with
/// backslash escapes, backquoted names and `CONCAT`, so these stay out of
/// the DNs' sessions.
const READING_MODES: &[&str] = &[
    "ANSI_QUOTES",
    "NO_BACKSLASH_ESCAPES",
    "PIPES_AS_CONCAT",
    "IGNORE_SPACE",
    "ANSI",
    "ORACLE",
    "MSSQL",
    "DB2",
    "POSTGRESQL",
    "MAXDB",
];

/// The part of a session's `sql_mode` (as MariaDB names it) its DN
/// connections carry: every mode but [`READING_MODES`].
pub fn dn_sql_mode(mode: &str) -> String {
    mode.split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty() && !READING_MODES.iter().any(|r| r.eq_ignore_ascii_case(m)))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_that_change_how_sql_is_read_stay_in_the_cn() {
        assert_eq!(dn_sql_mode("PIPES_AS_CONCAT,ANSI_QUOTES,STRICT_ALL_TABLES"), "STRICT_ALL_TABLES");
        assert_eq!(dn_sql_mode(""), "");
        assert_eq!(dn_sql_mode(DN_SQL_MODE), DN_SQL_MODE);
        assert_eq!(dn_sql_mode("NO_BACKSLASH_ESCAPES"), "");
    }
}
