//! Memory-bounded execution end to end: queries over more data than their
//! `query_memory_limit` spill and give the rows they give without a limit;
//! a query that cannot spill fails with ERR 1041 naming the operator and
//! the limit, and its session goes on; no spill file is left behind.
//!
//! Joins run as `HybridHashJoinExec` and spill their build side, `NOT IN`
//! subqueries (null-aware anti joins) too. EXPLAIN ANALYZE shows each
//! operator's `peak_mem_used`; SHOW PROCESSLIST a running query's memory;
//! KILL QUERY stops a spilling query and its spill files go.
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

/// Loads `t`; the session's statements over it then run in the executor
/// (a sort or DISTINCT over one table would be gathered from the DNs).
async fn load(c: &mut Conn) {
    c.query_drop("SET cn_gather = OFF").await.unwrap();
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

/// The numeric counters of `SHOW STATUS LIKE 'Cn_%'`.
async fn status(c: &mut Conn) -> std::collections::HashMap<String, u64> {
    let rows: Vec<(String, String)> = c.query("SHOW STATUS LIKE 'Cn%'").await.unwrap();
    rows.into_iter().filter_map(|(k, v)| Some((k, v.parse().ok()?))).collect()
}

/// No spill file of the shared CN is left.
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
            // The operator that spilled shows the memory it held.
            let spiller = plan
                .lines()
                .find(|l| metric_sum(l, "spill_count") > 0)
                .unwrap_or_else(|| panic!("{what}: no operator line with spill_count > 0:\n{plan}"));
            assert!(
                metric_sum(spiller, "peak_mem_used") > 0,
                "{what}: peak_mem_used of the spilling operator: {spiller}"
            );
            // Operators that hold nothing show none: a parent does not count
            // its children's memory.
            for l in plan.lines() {
                let op = l.trim_start();
                if op.starts_with("ProjectionExec") || op.starts_with("CoalescePartitionsExec") {
                    assert!(!l.contains("peak_mem_used"), "{what}: {l}");
                }
            }
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
            ("not in", "SELECT t.id FROM t WHERE t.g NOT IN (SELECT g FROM u WHERE id % 2 = 0)"),
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
            assert!(metric_sum(join, "peak_mem_used") > 0, "{what}: the join's peak memory: {join}");
            if what == "not in" {
                assert!(join.contains("null_aware"), "NOT IN is a null-aware anti join: {join}");
            }
            assert_no_spill_files();
        }
        // NOT IN a set holding a NULL is never TRUE: no rows, also when the
        // join spills.
        let sql = "SELECT t.id FROM t WHERE t.g NOT IN (SELECT CASE WHEN id = 7 THEN NULL ELSE g END FROM u)";
        c.query_drop(format!("SET query_memory_limit = {SMALL}")).await.unwrap();
        assert_eq!(rows(&mut c, sql).await.unwrap(), Vec::<Vec<Option<String>>>::new(), "NOT IN (…, NULL)");
        let plan = analyze(&mut c, sql).await;
        assert!(plan.contains("null_aware"), "{plan}");
        assert_no_spill_files();
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

#[test]
fn a_running_query_shows_its_memory_and_kill_query_removes_its_spill_files() {
    block_on_exclusive(async {
        let mut c = fresh_db("t_spill_kill").await;
        load(&mut c).await;
        let id: u32 = c.query_first("SELECT CONNECTION_ID()").await.unwrap().unwrap();
        c.query_drop(format!("SET query_memory_limit = {SMALL}")).await.unwrap();
        // About 900,000 rows of pairs, sorted under 1 MiB: it spills and
        // runs for seconds.
        let sql = "SELECT a.id, b.id FROM t a JOIN t b ON a.g = b.g ORDER BY a.pad, b.pad";
        let running = tokio::spawn(async move {
            let r = c.query_drop(sql).await;
            (c, r)
        });
        let mut admin = connect(Some("t_spill_kill")).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        let (used, max) = loop {
            assert!(std::time::Instant::now() < deadline, "the query never showed memory and spill files");
            let procs: Vec<Row> = admin.query("SHOW PROCESSLIST").await.unwrap();
            let row = procs.into_iter().find(|r| r.get::<u32, _>("Id") == Some(id)).expect("the session's row");
            let info: Option<String> = row.get("Info").unwrap();
            let used: u64 = row.get("Memory_used").unwrap();
            let max: u64 = row.get("Max_memory_used").unwrap();
            if info.as_deref() == Some(sql) && used > 0 && env().cluster.memory.spilled_now().1 > 0 {
                break (used, max);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        eprintln!("running: Memory_used {used}, Max_memory_used {max}");
        assert!(used <= max && max <= 2 * SMALL, "used {used}, max {max}, limit {SMALL}");
        admin.query_drop(format!("KILL QUERY {id}")).await.unwrap();
        let (mut c, r) = running.await.unwrap();
        assert_eq!(code(r.unwrap_err()), 1317, "the query is interrupted");
        // Its operators are dropped with it (tasks they spawned a moment
        // later), and their files and reservations with them.
        for _ in 0..250 {
            if env().cluster.memory.spilled_now().1 == 0 && env().cluster.memory.used() == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_no_spill_files();
        assert_eq!(env().cluster.memory.used(), 0, "every reservation was given back");
        // The session goes on; between statements it holds no memory.
        let n: i64 = c.query_first("SELECT COUNT(*) FROM t").await.unwrap().unwrap();
        assert_eq!(n, ROWS as i64);
        let procs: Vec<Row> = admin.query("SHOW PROCESSLIST").await.unwrap();
        let row = procs.into_iter().find(|r| r.get::<u32, _>("Id") == Some(id)).unwrap();
        assert_eq!(row.get::<u64, _>("Memory_used"), Some(0));
        c.query_drop("DROP DATABASE t_spill_kill").await.unwrap();
    });
}

#[test]
fn shard_scans_sharing_a_transactions_connections_spill_what_the_pool_refuses() {
    block_on_exclusive(async {
        let mut c = fresh_db("t_spill_txn").await;
        load(&mut c).await;
        // Not co-located: the CN joins. In a transaction the eight scans
        // share the branches, so one side's scans read their rows (~4 MB
        // with the pads) while the join still builds from the other.
        let sql = "SELECT a.pad, b.pad FROM t a JOIN t b ON a.id = b.id + 1";
        let mut expected = rows(&mut c, sql).await.unwrap();
        assert_eq!(expected.len(), ROWS - 1);
        c.query_drop(format!("SET query_memory_limit = {SMALL}")).await.unwrap();
        c.query_drop("BEGIN").await.unwrap();
        let mut got = rows(&mut c, sql).await.unwrap();
        expected.sort();
        got.sort();
        assert!(got == expected, "{} rows in the transaction, {} outside", got.len(), expected.len());
        let last = status(&mut c).await;
        let peak = last["Cn_last_query_peak_memory"];
        assert!(peak > 0 && peak <= 2 * SMALL, "peak {peak} near the limit {SMALL}");
        assert_no_spill_files();
        let plan = analyze(&mut c, sql).await;
        // A scan's metrics follow its last shard query line.
        let lines: Vec<&str> = plan.lines().collect();
        let mut scans = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            if l.contains("ShardScanExec") {
                let n = lines[i + 1..].iter().take_while(|q| q.trim_start().starts_with("dn")).count();
                scans.push(lines[i..=i + n].join("\n"));
            }
        }
        assert_eq!(scans.len(), 2, "{plan}");
        let spills: u64 = scans.iter().map(|l| metric_sum(l, "spill_count")).sum();
        eprintln!("{plan}");
        assert!(spills > 0, "a scan buffered more than the pool grants and spilled:\n{plan}");
        c.query_drop("COMMIT").await.unwrap();
        assert_no_spill_files();
        c.query_drop("DROP DATABASE t_spill_txn").await.unwrap();
    });
}
