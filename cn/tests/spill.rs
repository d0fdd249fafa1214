//! Memory-bounded execution end to end: queries over more data than their
//! `query_memory_limit` spill and give the rows they give without a limit;
//! a query that cannot spill fails with ERR 1041 naming the operator and
//! the limit, and its session goes on; no spill file is left behind.
//!
//! Joins run as `HybridHashJoinExec` and spill their build side.
//!
//! The tests run one at a time (`block_on_exclusive`): they read the shared
//! CN's spill directory, which other queries would write to.

mod common;

use common::*;
use mysql_async::prelude::*;
use mysql_async::{Conn, Row, Value};

/// Rows of the test table; with a ~100-byte pad each this is several MiB,
/// far more than the limits below.
const ROWS: usize = 30_000;

/// A limit much smaller than the data.
const SMALL: u64 = 1 << 20;

fn pad(i: usize) -> String {
    // Deterministic, mostly distinct, not in id order.
    let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("{:016x}-{}", h, "x".repeat(80 + (h % 17) as usize))
}

async fn load(c: &mut Conn) {
    c.query_drop("CREATE TABLE t (id INT PRIMARY KEY, g INT, pad VARCHAR(200)) PARTITION BY KEY(id) PARTITIONS 4")
        .await
        .unwrap();
    for chunk in (0..ROWS).collect::<Vec<_>>().chunks(2000) {
        let values: Vec<String> = chunk.iter().map(|&i| format!("({i}, {}, '{}')", i % 1000, pad(i))).collect();
        c.query_drop(format!("INSERT INTO t VALUES {}", values.join(","))).await.unwrap();
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::NULL => None,
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        other => Some(other.as_sql(true)),
    }
}

async fn rows(c: &mut Conn, sql: &str) -> Result<Vec<Vec<Option<String>>>, mysql_async::Error> {
    let rows: Vec<Row> = c.query(sql).await?;
    Ok(rows.into_iter().map(|r| r.unwrap().iter().map(text).collect()).collect())
}

/// EXPLAIN ANALYZE's physical plan with its metrics.
async fn analyze(c: &mut Conn, sql: &str) -> String {
    let rows: Vec<(String, String)> = c.query(format!("EXPLAIN ANALYZE {sql}")).await.unwrap();
    rows.into_iter().map(|(_, p)| p).collect::<Vec<_>>().join("\n")
}

/// The sum of every `name=N` metric in an EXPLAIN ANALYZE text.
fn metric_sum(plan: &str, name: &str) -> u64 {
    plan.split(&format!("{name}="))
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            digits.parse::<u64>().ok()
        })
        .sum()
}

/// No spill file of the shared CN is left.
/// `SHOW STATUS LIKE 'Cn_%'` as numbers.
async fn status(c: &mut Conn) -> std::collections::HashMap<String, u64> {
    let rows: Vec<(String, String)> = c.query("SHOW STATUS LIKE 'Cn%'").await.unwrap();
    rows.into_iter().map(|(k, v)| (k, v.parse().unwrap())).collect()
}

fn assert_no_spill_files() {
    let memory = &env().cluster.memory;
    assert_eq!(memory.spilled_now(), (0, 0), "spill files still held");
    for d in memory.spill_dirs() {
        let left: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().path()).collect();
        assert!(left.is_empty(), "spill files left in {}: {left:?}", d.display());
    }
}

#[test]
fn sort_and_aggregation_over_more_than_the_limit_spill_and_agree() {
    block_on_exclusive(async {
        let mut c = fresh_db("t_spill").await;
        load(&mut c).await;
        let queries = [
            ("sort", "SELECT id, pad FROM t ORDER BY pad, id", true),
            ("group by", "SELECT pad, COUNT(*) AS n, SUM(g) AS s FROM t GROUP BY pad", false),
            ("distinct", "SELECT DISTINCT pad FROM t", false),
            ("group by two keys", "SELECT g, pad, MAX(id) AS m FROM t GROUP BY g, pad ORDER BY g, pad", true),
        ];
        for (what, sql, ordered) in queries {
            c.query_drop("SET query_memory_limit = 0").await.unwrap();
            let mut expected = rows(&mut c, sql).await.unwrap();
            assert_eq!(expected.len(), ROWS, "{what}: every row (or group) comes back");
            c.query_drop(format!("SET query_memory_limit = {SMALL}")).await.unwrap();
            let mut got = rows(&mut c, sql).await.unwrap_or_else(|e| panic!("{what} with a {SMALL}-byte limit: {e}"));
            if !ordered {
                expected.sort();
                got.sort();
            }
            assert!(got == expected, "{what}: the rows differ with a {SMALL}-byte limit");
            let last = status(&mut c).await;
            assert!(last["Cn_last_query_spill_files"] > 0, "{what}: SHOW STATUS counts its spills: {last:?}");
            assert!(last["Cn_last_query_spilled_bytes"] > 0, "{what}: {last:?}");
            let peak = last["Cn_last_query_peak_memory"];
            // DataFusion's aggregation grows some reservations without asking
            // (merging its spilled runs), so the peak may pass the limit a little.
            assert!(peak > 0 && peak <= 2 * SMALL, "{what}: peak {peak} near the limit {SMALL}");
            eprintln!("{what}: peak {peak} bytes, limit {SMALL}");
            assert!(last["Cn_spilled_bytes"] >= last["Cn_last_query_spilled_bytes"], "{last:?}");
            assert_no_spill_files();
            let plan = analyze(&mut c, sql).await;
            let spills = metric_sum(&plan, "spill_count");
            eprintln!("{what}: {spills} spills\n{plan}");
            assert!(spills > 0, "{what} must spill under a {SMALL}-byte limit:\n{plan}");
            assert_no_spill_files();
        }
        let limit: u64 = c.query_first("SELECT @@query_memory_limit").await.unwrap().unwrap();
        assert_eq!(limit, SMALL);
        assert_eq!(code(c.query_drop("SET query_memory_limit = 'lots'").await.unwrap_err()), 1232);
        c.query_drop("DROP DATABASE t_spill").await.unwrap();
    });
}

#[test]
fn a_query_that_cannot_spill_fails_with_1041_and_the_session_goes_on() {
    block_on_exclusive(async {
        let mut c = fresh_db("t_nospill").await;
        load(&mut c).await;
        let before = env().cluster.memory.out_of_memory.load(std::sync::atomic::Ordering::Relaxed);
        c.query_drop(format!("SET query_memory_limit = {SMALL}")).await.unwrap();
        let sql = "SELECT COUNT(DISTINCT pad), COUNT(DISTINCT g) FROM t";
        let e = c.query_drop(sql).await.unwrap_err();
        let mysql_async::Error::Server(e) = e else { panic!("expected a server error, got {e}") };
        eprintln!("{e:?}");
        assert_eq!((e.code, e.state.as_str()), (1041, "HY000"), "{}", e.message);
        assert!(e.message.contains(&format!("memory limit of {SMALL} bytes")), "names the limit: {}", e.message);
        assert!(e.message.contains("Aggregate"), "names the operator: {}", e.message);
        assert_eq!(env().cluster.memory.out_of_memory.load(std::sync::atomic::Ordering::Relaxed), before + 1);
        assert_no_spill_files();
        // The session goes on, and with the default limit the query runs.
        let one: i64 = c.query_first("SELECT COUNT(*) FROM t").await.unwrap().unwrap();
        assert_eq!(one, ROWS as i64);
        c.query_drop("SET query_memory_limit = 0").await.unwrap();
        let (a, b): (i64, i64) = c.query_first(sql).await.unwrap().unwrap();
        assert_eq!((a, b), (ROWS as i64, 1000));
        assert_eq!(env().cluster.memory.used(), 0, "every reservation was given back");
        c.query_drop("DROP DATABASE t_nospill").await.unwrap();
    });
}

#[test]
fn joins_over_more_than_the_limit_spill_and_agree() {
    block_on_exclusive(async {
        let mut c = fresh_db("t_spill_join").await;
        load(&mut c).await;
        // u joins t on g, which shards neither: the CN joins them, t (the
        // larger, ~4 MB) on the build side.
        c.query_drop("CREATE TABLE u (id INT PRIMARY KEY, g INT, w VARCHAR(20)) PARTITION BY KEY(id) PARTITIONS 2")
            .await
            .unwrap();
        let values: Vec<String> = (0..3000).map(|i| format!("({i}, {}, 'w{i}')", i % 1200)).collect();
        c.query_drop(format!("INSERT INTO u VALUES {}", values.join(","))).await.unwrap();
        let queries = [
            ("inner", "SELECT t.id, u.id FROM t JOIN u ON t.g = u.g"),
            (
                "left with a residual filter",
                "SELECT t.id, u.id FROM t LEFT JOIN u ON t.g = u.g AND t.id % 3 <> u.id % 3",
            ),
            ("right", "SELECT t.id, u.id FROM t RIGHT JOIN u ON t.g = u.g + 100"),
            ("semi", "SELECT t.id FROM t WHERE t.g IN (SELECT g FROM u WHERE id % 2 = 0)"),
            ("anti", "SELECT t.id FROM t WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.g = t.g AND u.id % 2 = 0)"),
        ];
        for (what, sql) in queries {
            c.query_drop("SET query_memory_limit = 0").await.unwrap();
            let mut expected = rows(&mut c, sql).await.unwrap();
            assert!(!expected.is_empty(), "{what}: some rows");
            c.query_drop(format!("SET query_memory_limit = {SMALL}")).await.unwrap();
            let mut got = rows(&mut c, sql).await.unwrap_or_else(|e| panic!("{what} with a {SMALL}-byte limit: {e}"));
            expected.sort();
            got.sort();
            assert!(
                got == expected,
                "{what}: {} rows with a {SMALL}-byte limit, {} without",
                got.len(),
                expected.len()
            );
            assert_no_spill_files();
            let plan = analyze(&mut c, sql).await;
            let join = plan
                .lines()
                .find(|l| l.contains("HybridHashJoinExec"))
                .unwrap_or_else(|| panic!("{what}: no HybridHashJoinExec:\n{plan}"));
            let spills = metric_sum(join, "spill_count");
            eprintln!("{what}: {expected_len} rows, {spills} join spill files: {join}", expected_len = expected.len());
            assert!(spills > 0, "{what}: the join must spill under a {SMALL}-byte limit:\n{plan}");
            assert_no_spill_files();
        }
        // cn_hash_join = OFF: the same join as DataFusion's sort-merge join,
        // same rows.
        c.query_drop("SET query_memory_limit = 0").await.unwrap();
        let sql = queries[0].1;
        let mut expected = rows(&mut c, sql).await.unwrap();
        c.query_drop("SET cn_hash_join = OFF").await.unwrap();
        let plan = analyze(&mut c, sql).await;
        assert!(plan.contains("SortMergeJoin") && !plan.contains("HashJoinExec"), "a sort-merge join:\n{plan}");
        let mut got = rows(&mut c, sql).await.unwrap();
        expected.sort();
        got.sort();
        assert!(got == expected, "sort-merge join: {} rows, hash join {}", got.len(), expected.len());
        c.query_drop("SET cn_hash_join = ON").await.unwrap();
        c.query_drop("DROP DATABASE t_spill_join").await.unwrap();
    });
}
