//! Global secondary indexes end to end: DDL, maintenance in every write
//! path, the optimizer's use, CHECK GLOBAL INDEX, online creation, and the
//! consistency checks under concurrent writes (with a negative control that
//! switches the DN agents' gating off).

mod common;

use common::*;
use mysql_async::prelude::*;
use mysql_async::Conn;

/// CHECK GLOBAL INDEX's summary (the last row) and the problem rows.
async fn check(c: &mut Conn, idx: &str, table: &str) -> (String, Vec<(String, String)>) {
    let rows: Vec<(String, String, String, Option<String>, String)> =
        c.query(format!("CHECK GLOBAL INDEX {idx} ON {table}")).await.unwrap();
    let (last, problems) = rows.split_last().expect("a summary row");
    (last.4.clone(), problems.iter().map(|r| (r.2.clone(), r.3.clone().unwrap_or_default())).collect())
}

async fn assert_clean(c: &mut Conn, idx: &str, table: &str) {
    let (summary, problems) = check(c, idx, table).await;
    assert!(problems.is_empty() && summary.starts_with("OK"), "{idx} on {table}: {summary} {problems:?}");
}

/// EXPLAIN's text, all rows joined.
async fn explain(c: &mut Conn, q: &str) -> String {
    let rows: Vec<(String, String)> = c.query(format!("EXPLAIN {q}")).await.unwrap();
    rows.into_iter().map(|(a, b)| format!("{a}: {b}")).collect::<Vec<_>>().join("\n")
}

/// Rows as text, sorted: answers compared regardless of order.
fn sorted(v: Vec<mysql_async::Row>) -> Vec<String> {
    let mut t: Vec<String> = v.into_iter().map(|r| format!("{:?}", r.unwrap())).collect();
    t.sort();
    t
}

/// Runs `q` and `other` and asserts that they answer the same rows, in
/// any order; returns how many.
async fn assert_same_rows(c: &mut Conn, q: &str, other: &str) -> usize {
    let with: Vec<mysql_async::Row> = c.query(q).await.unwrap();
    let without: Vec<mysql_async::Row> = c.query(other).await.unwrap();
    let n = with.len();
    assert_eq!(sorted(with), sorted(without), "{q}");
    n
}

/// The server error code of `e`, if it is one.
fn code_of(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(s) => Some(s.code),
        _ => None,
    }
}

#[test]
fn global_indexes_are_maintained_by_every_write_and_used_by_point_queries() {
    block_on(async {
        let mut c = fresh_db("g_basic").await;
        c.query_drop(
            "CREATE TABLE t (id INT PRIMARY KEY, email VARCHAR(40), seller INT NOT NULL, amount DECIMAL(10,2), note VARCHAR(20) DEFAULT 'n', \
             UNIQUE GLOBAL INDEX g_email (email) PARTITION BY KEY(email) PARTITIONS 4, \
             GLOBAL INDEX g_seller (seller) COVERING (amount) PARTITION BY KEY(seller) PARTITIONS 4, \
             LOCAL KEY l_amount (amount)) PARTITION BY KEY(id) PARTITIONS 4",
        )
        .await
        .unwrap();
        let gs: Vec<mysql_async::Row> = c.query("SHOW GLOBAL INDEX FROM t").await.unwrap();
        assert_eq!(gs.len(), 2);
        let info: Vec<(String, String, String)> = c
            .query("SELECT key_name, index_names, covering_names FROM information_schema.global_indexes WHERE `schema` = 'g_basic' ORDER BY key_name")
            .await
            .unwrap();
        assert_eq!(info[1], ("g_seller".to_string(), "seller".to_string(), "id, amount".to_string()));
        let names: Vec<String> = gs.iter().map(|r| r.get::<String, _>(3).unwrap()).collect();
        assert_eq!(names, vec!["g_email", "g_seller"]);
        assert_eq!(gs[0].get::<String, _>(10).unwrap(), "PUBLIC");
        // The local index stays on the shards; the global ones are not there.
        let keys: Vec<mysql_async::Row> = c.query("SHOW INDEX FROM t").await.unwrap();
        let key_names: Vec<String> = keys.iter().map(|r| r.get::<String, _>(2).unwrap()).collect();
        assert!(key_names.contains(&"l_amount".to_string()) && !key_names.contains(&"g_email".to_string()));

        // Multi-row INSERT: every index row lands.
        let rows: Vec<String> = (1..=40).map(|i| format!("({i}, 'u{i}@x', {}, {i}.5, DEFAULT)", i % 5)).collect();
        c.query_drop(format!("INSERT INTO t VALUES {}", rows.join(", "))).await.unwrap();
        assert_eq!(c.affected_rows(), 40);
        assert_clean(&mut c, "g_email", "t").await;
        assert_clean(&mut c, "g_seller", "t").await;

        // Unique across shards: a duplicate email under another id is 1062.
        let e = c.query_drop("INSERT INTO t VALUES (100, 'u7@x', 1, 1, 'dup')").await.unwrap_err();
        assert_eq!(code(e), 1062);
        let n: i64 = c.query_first("SELECT COUNT(*) FROM t").await.unwrap().unwrap();
        assert_eq!(n, 40, "the failed insert left its base row");

        // Point queries by index columns: same answers, EXPLAIN names the index.
        let by_email: Option<(i32, String)> =
            c.query_first("SELECT id, note FROM t WHERE email = 'u7@x'").await.unwrap();
        assert_eq!(by_email, Some((7, "n".into())));
        assert!(explain(&mut c, "SELECT id, note FROM t WHERE email = 'u7@x'").await.contains("global index g_email"));
        let covered: Vec<(i32, String)> =
            c.query("SELECT id, amount FROM t WHERE seller = 3 ORDER BY id").await.unwrap();
        assert_eq!(covered.iter().map(|r| r.0).collect::<Vec<_>>(), vec![3, 8, 13, 18, 23, 28, 33, 38]);
        assert!(explain(&mut c, "SELECT id, amount FROM t WHERE seller = 3")
            .await
            .contains("covering global index g_seller"));
        let plain: Vec<(i32, String)> =
            c.query("SELECT id, amount FROM t IGNORE INDEX (g_seller) WHERE seller = 3 ORDER BY id").await.unwrap();
        assert_eq!(plain, covered);
        assert!(!explain(&mut c, "SELECT id FROM t IGNORE INDEX (g_seller) WHERE seller = 3")
            .await
            .contains("g_seller"));
        let in_list: i64 =
            c.query_first("SELECT COUNT(*) FROM t WHERE email IN ('u1@x', 'u2@x', 'nobody')").await.unwrap().unwrap();
        assert_eq!(in_list, 2);
        let none: Option<i32> = c.query_first("SELECT id FROM t WHERE email = 'nobody'").await.unwrap();
        assert_eq!(none, None);

        // UPDATE of index and covering columns, and of a non-indexed one.
        c.query_drop("UPDATE t SET email = 'new7@x', amount = 70 WHERE id = 7").await.unwrap();
        assert_eq!(c.affected_rows(), 1);
        c.query_drop("UPDATE t SET seller = 9 WHERE seller = 4").await.unwrap();
        assert_eq!(c.affected_rows(), 8);
        c.query_drop("UPDATE t SET note = 'x' WHERE id < 5").await.unwrap();
        let e = c.query_drop("UPDATE t SET email = 'u1@x' WHERE id = 2").await.unwrap_err();
        assert_eq!(code(e), 1062);
        assert_clean(&mut c, "g_email", "t").await;
        assert_clean(&mut c, "g_seller", "t").await;
        let moved: Vec<i32> = c.query("SELECT id FROM t WHERE seller = 9 ORDER BY id").await.unwrap();
        assert_eq!(moved, vec![4, 9, 14, 19, 24, 29, 34, 39]);

        // DELETE by a non-key column and by the index.
        c.query_drop("DELETE FROM t WHERE amount > 35").await.unwrap();
        assert_eq!(c.affected_rows(), 7); // ids 35-40 and 7 (amount 70)
        c.query_drop("DELETE FROM t WHERE email = 'u1@x'").await.unwrap();
        assert_eq!(c.affected_rows(), 1);
        assert_clean(&mut c, "g_email", "t").await;
        assert_clean(&mut c, "g_seller", "t").await;

        // INSERT IGNORE skips duplicates of the primary key and of the
        // unique global index; REPLACE deletes both conflicting rows; ON
        // DUPLICATE KEY UPDATE updates the row the unique index finds.
        c.query_drop("INSERT IGNORE INTO t VALUES (2, 'other@x', 1, 1, 'i'), (200, 'u3@x', 1, 1, 'i'), (201, 'fresh@x', 1, 1, 'i')")
            .await
            .unwrap();
        assert_eq!(c.affected_rows(), 1);
        c.query_drop("REPLACE INTO t VALUES (5, 'u6@x', 2, 5, 'r')").await.unwrap();
        assert_eq!(c.affected_rows(), 3);
        let r: Vec<(i32, String)> = c.query("SELECT id, email FROM t WHERE id IN (5, 6) ORDER BY id").await.unwrap();
        assert_eq!(r, vec![(5, "u6@x".to_string())]);
        c.query_drop("INSERT INTO t VALUES (300, 'u8@x', 1, 1, 'o') ON DUPLICATE KEY UPDATE note = 'odku', seller = VALUES(seller)")
            .await
            .unwrap();
        assert_eq!(c.affected_rows(), 2);
        let r: Option<(i32, String, i32)> =
            c.query_first("SELECT id, note, seller FROM t WHERE email = 'u8@x'").await.unwrap();
        assert_eq!(r, Some((8, "odku".into(), 1)));
        assert_clean(&mut c, "g_email", "t").await;
        assert_clean(&mut c, "g_seller", "t").await;

        // Inside an explicit transaction a failed statement leaves nothing.
        c.query_drop("BEGIN").await.unwrap();
        c.query_drop("INSERT INTO t VALUES (400, 'tx@x', 1, 1, 't')").await.unwrap();
        let e = c
            .query_drop("INSERT INTO t VALUES (401, 'a401@x', 1, 1, 't'), (402, 'tx@x', 1, 1, 't')")
            .await
            .unwrap_err();
        assert_eq!(code(e), 1062);
        c.query_drop("COMMIT").await.unwrap();
        let ids: Vec<i32> = c.query("SELECT id FROM t WHERE id >= 400 ORDER BY id").await.unwrap();
        assert_eq!(ids, vec![400]);
        assert_clean(&mut c, "g_email", "t").await;

        // A damaged index is reported: a row deleted behind the CN's back
        // is missing, one inserted is an orphan.
        let parts: Vec<(String, String, String, String, String, String, String)> =
            c.query("SHOW PARTITIONS FROM `t$g_email`").await.unwrap();
        let (_, _, _, _, _, phys, dn) = &parts[0];
        let mut d = dn_conn(dn.trim_start_matches("dn").parse().unwrap()).await;
        d.query_drop(format!("DELETE FROM g_basic.`{phys}` ORDER BY id LIMIT 1")).await.unwrap();
        assert_eq!(d.affected_rows(), 1);
        d.query_drop(format!("INSERT INTO g_basic.`{phys}` VALUES ('ghost@x', 9999)")).await.unwrap();
        let (summary, problems) = check(&mut c, "g_email", "t").await;
        let kinds: Vec<&str> = problems.iter().map(|p| p.0.as_str()).collect();
        assert!(kinds.contains(&"MISSING") && kinds.contains(&"ORPHAN"), "{summary} {problems:?}");
        assert!(problems.iter().any(|p| p.1 == "9999"), "{problems:?}");
        c.query_drop("DROP TABLE t").await.unwrap();
        let e = c.query_drop("SELECT * FROM t").await.unwrap_err();
        assert_eq!(code(e), 1146);
    });
}

/// A lookup whose keys fall in several partitions reads each DN once, with
/// the answers of the same query without the index; queries whose answer
/// is not the concatenation of the partitions' (aggregates, ORDER BY …
/// LIMIT) still go through the planner.
#[test]
fn lookups_across_partitions_read_each_dn_once_with_the_answers_of_a_full_scan() {
    block_on_exclusive(async {
        let mut c = fresh_db("g_lookup").await;
        c.query_drop(
            "CREATE TABLE t (id INT PRIMARY KEY, a INT, pad VARCHAR(20), d DECIMAL(8,2), \
             GLOBAL INDEX ga (a) PARTITION BY KEY(a) PARTITIONS 4) PARTITION BY KEY(id) PARTITIONS 16",
        )
        .await
        .unwrap();
        let rows: Vec<String> = (1..=200).map(|i| format!("({i}, {}, 'p{i}', {i}.25)", i % 10)).collect();
        c.query_drop(format!("INSERT INTO t VALUES {}", rows.join(", "))).await.unwrap();
        // Keys with a quote and a backslash, in a table partitioned by them.
        c.query_drop(
            "CREATE TABLE s (k VARCHAR(20) PRIMARY KEY, a INT, v INT, \
             GLOBAL INDEX ga (a) PARTITION BY KEY(a) PARTITIONS 2) PARTITION BY KEY(k) PARTITIONS 8",
        )
        .await
        .unwrap();
        let keys: Vec<String> = (0..24).map(|i| format!("it\\'s\\\\{i}")).collect();
        let rows: Vec<String> = keys.iter().enumerate().map(|(i, k)| format!("('{k}', {}, {i})", i % 3)).collect();
        c.query_drop(format!("INSERT INTO s VALUES {}", rows.join(", "))).await.unwrap();

        let sorted = |mut v: Vec<mysql_async::Row>| {
            let mut t: Vec<Vec<mysql_async::Value>> = v.drain(..).map(|r| r.unwrap()).collect();
            t.sort_by_key(|r| format!("{r:?}"));
            t
        };
        // (query, whether the lookup is direct)
        let cases = [
            ("SELECT id, pad, a + 1 AS next, d FROM t WHERE a = 3", true),
            ("SELECT * FROM t WHERE a IN (1, 2) AND id > 50", true),
            // 80 keys: more than one DN reads ahead while another's rows are sent.
            ("SELECT id, pad FROM t WHERE a IN (1, 2, 3, 4)", true),
            ("SELECT id, UPPER(pad) FROM t x WHERE x.a = 7 AND x.d < 100", true),
            ("SELECT k, v FROM s WHERE a = 1", true),
            ("SELECT COUNT(*), SUM(d) FROM t WHERE a = 4", false),
            ("SELECT id, pad FROM t WHERE a = 5 ORDER BY id DESC LIMIT 3", false),
            ("SELECT DISTINCT LEFT(pad, 2) FROM t WHERE a = 6", false),
        ];
        for (q, direct) in cases {
            assert!(explain(&mut c, q).await.contains("global index ga"), "{q} uses the index");
            let (d0, p0) =
                (status(&mut c, "Cn_gsi_lookups_direct").await, status(&mut c, "Cn_gsi_lookups_planned").await);
            let with: Vec<mysql_async::Row> = c.query(q).await.unwrap();
            let (d1, p1) =
                (status(&mut c, "Cn_gsi_lookups_direct").await, status(&mut c, "Cn_gsi_lookups_planned").await);
            assert_eq!((d1 - d0, p1 - p0), if direct { (1, 0) } else { (0, 1) }, "{q}");
            let plain = q.replacen(" WHERE", " IGNORE INDEX (ga) WHERE", 1);
            let without: Vec<mysql_async::Row> = c.query(&plain).await.unwrap();
            assert!(!with.is_empty(), "{q} finds rows");
            if q.contains("ORDER BY") {
                let ids = |v: &[mysql_async::Row]| v.iter().map(|r| r.get::<i64, _>(0).unwrap()).collect::<Vec<_>>();
                assert_eq!(ids(&with), ids(&without), "{q}");
            } else {
                assert_eq!(sorted(with), sorted(without), "{q}");
            }
        }
        let ks: Vec<String> = c.query("SELECT k FROM s WHERE a = 1 AND v >= 0 ORDER BY k").await.unwrap();
        let mut want: Vec<String> = (0..24).filter(|i| i % 3 == 1).map(|i| format!("it's\\{i}")).collect();
        want.sort();
        assert_eq!(ks, want);

        // MariaDB's own column metadata: DECIMAL(8,2) stays a decimal of scale 2.
        let r: Vec<mysql_async::Row> = c.query("SELECT d FROM t WHERE a = 3").await.unwrap();
        let col = &r[0].columns_ref()[0];
        assert_eq!((col.column_type(), col.decimals()), (mysql_async::consts::ColumnType::MYSQL_TYPE_NEWDECIMAL, 2));

        // Inside a transaction the lookup reads its own writes, on every DN.
        c.query_drop("BEGIN").await.unwrap();
        c.query_drop("UPDATE t SET pad = 'mine' WHERE a = 3 AND id > 100").await.unwrap();
        c.query_drop("INSERT INTO t VALUES (1000, 3, 'new', 1)").await.unwrap();
        let mine: Vec<(i32, String)> = c.query("SELECT id, pad FROM t WHERE a = 3").await.unwrap();
        let mut mine: Vec<(i32, String)> = mine;
        mine.sort();
        let mut want: Vec<(i32, String)> = (1..=200)
            .filter(|i| i % 10 == 3)
            .map(|i| (i, if i > 100 { "mine".into() } else { format!("p{i}") }))
            .collect();
        want.push((1000, "new".into()));
        assert_eq!(mine, want);
        c.query_drop("ROLLBACK").await.unwrap();
        let n: i64 = c.query_first("SELECT COUNT(*) FROM t WHERE a = 3 AND pad = 'mine'").await.unwrap().unwrap();
        assert_eq!(n, 0);
        c.query_drop("DROP DATABASE g_lookup").await.unwrap();
    });
}

/// A lookup through a global index comes from the plan cache after its
/// first run: the index query and the base query spliced from templates,
/// with the same answers (and column metadata) as the planner's, for any
/// literal; more keys than a lookup carries take the planned query; a DDL
/// that drops the index drops the cached lookup with it.
#[test]
fn repeated_lookups_come_from_the_plan_cache_with_the_planners_answers() {
    block_on(async {
        let mut c = fresh_db("g_cached").await;
        c.query_drop(
            "CREATE TABLE t (id INT PRIMARY KEY, a INT, pad VARCHAR(20), \
             GLOBAL INDEX ga (a) PARTITION BY KEY(a) PARTITIONS 4) PARTITION BY KEY(id) PARTITIONS 16",
        )
        .await
        .unwrap();
        // a = 0 for 5,110 rows: more keys than a lookup carries.
        let rows: Vec<String> =
            (1..=5200).map(|i| format!("({i}, {}, 'p{i}')", if i <= 5100 { 0 } else { i % 10 })).collect();
        c.query_drop(format!("INSERT INTO t VALUES {}", rows.join(", "))).await.unwrap();
        // String primary keys with a quote and a backslash, two columns.
        c.query_drop(
            "CREATE TABLE s (k VARCHAR(20), n INT, a INT, v INT, PRIMARY KEY (k, n), \
             GLOBAL INDEX ga (a) PARTITION BY KEY(a) PARTITIONS 2) PARTITION BY KEY(k) PARTITIONS 8",
        )
        .await
        .unwrap();
        let rows: Vec<String> = (0..24).map(|i| format!("('it\\'s\\\\{i}', {i}, {}, {i})", i % 3)).collect();
        c.query_drop(format!("INSERT INTO s VALUES {}", rows.join(", "))).await.unwrap();
        let mut plain = connect(Some("g_cached")).await;
        plain.query_drop("SET cn_plan_cache = OFF").await.unwrap();

        // (query with `{}` for the literal, literals): the first run builds
        // the plan, every later one is served from it, directly.
        let cases: [(&str, &[&str]); 4] = [
            ("SELECT id, pad FROM t WHERE a = {}", &["1", "2", "'3'", "99", "5", "1"]),
            ("SELECT id, UPPER(pad) AS up FROM t AS x WHERE x.a = {} AND x.id > 5150", &["3", "4", "7"]),
            ("SELECT * FROM t FORCE INDEX (ga) WHERE {} = a", &["6", "8"]),
            ("SELECT k, n, v FROM s WHERE a = {}", &["1", "2", "0", "5"]),
        ];
        for (shape, literals) in cases {
            let (h0, d0) = (status(&mut c, "Cn_plan_cache_hits").await, status(&mut c, "Cn_gsi_lookups_direct").await);
            for lit in literals {
                let q = shape.replace("{}", lit);
                let with: Vec<mysql_async::Row> = c.query(&q).await.unwrap();
                let without: Vec<mysql_async::Row> = plain.query(&q).await.unwrap();
                if let (Some(w), Some(p)) = (with.first(), without.first()) {
                    let names = |r: &mysql_async::Row| {
                        r.columns_ref().iter().map(|c| (c.name_str().to_string(), c.column_type())).collect::<Vec<_>>()
                    };
                    assert_eq!(names(w), names(p), "{q}");
                }
                assert_eq!(sorted(with), sorted(without), "{q}");
            }
            let n = literals.len() as u64;
            assert_eq!(status(&mut c, "Cn_plan_cache_hits").await - h0, n - 1, "{shape}");
            assert_eq!(status(&mut c, "Cn_gsi_lookups_direct").await - d0, n, "{shape}");
        }
        let ks: Vec<String> = c.query("SELECT k FROM s WHERE a = 1").await.unwrap();
        assert!(ks.contains(&"it's\\1".to_string()), "{ks:?}");

        // 5,110 keys: the plan cache's lookup takes the planned query.
        let (h0, p0) = (status(&mut c, "Cn_plan_cache_hits").await, status(&mut c, "Cn_gsi_lookups_planned").await);
        let many: Vec<(i32, String)> = c.query("SELECT id, pad FROM t WHERE a = 0").await.unwrap();
        assert_eq!(many.len(), 5110);
        assert_eq!(status(&mut c, "Cn_plan_cache_hits").await - h0, 1, "served from the cache");
        assert_eq!(status(&mut c, "Cn_gsi_lookups_planned").await - p0, 1);

        // Inside a transaction the cached lookup reads its own writes.
        c.query_drop("BEGIN").await.unwrap();
        c.query_drop("INSERT INTO t VALUES (6000, 2, 'mine')").await.unwrap();
        c.query_drop("UPDATE t SET a = 9 WHERE id = 5202").await.unwrap();
        let h0 = status(&mut c, "Cn_plan_cache_hits").await;
        let mine: Vec<(i32, String)> = c.query("SELECT id, pad FROM t WHERE a = 2").await.unwrap();
        assert_eq!(status(&mut c, "Cn_plan_cache_hits").await - h0, 1);
        let mut ids: Vec<i32> = mine.iter().map(|r| r.0).collect();
        ids.sort();
        let mut want: Vec<i32> = (5101..=5200).filter(|i| i % 10 == 2 && *i != 5202).collect();
        want.push(6000);
        assert_eq!(ids, want);
        c.query_drop("ROLLBACK").await.unwrap();

        // A literal that routes nowhere takes the planner's way: its answer.
        let h0 = status(&mut c, "Cn_plan_cache_hits").await;
        let q = "SELECT id, pad FROM t WHERE a = 'x'";
        assert_eq!(result_rows(&mut c, q).await, result_rows(&mut plain, q).await);
        assert_eq!(status(&mut c, "Cn_plan_cache_hits").await, h0, "{q}");

        // Dropping the index drops the cached lookup: a scan, the same rows.
        c.query_drop("DROP INDEX ga ON t").await.unwrap();
        let d0 = status(&mut c, "Cn_gsi_lookups_direct").await;
        let q = "SELECT id, pad FROM t WHERE a = 5";
        assert_eq!(result_rows(&mut c, q).await, result_rows(&mut plain, q).await);
        assert_eq!(status(&mut c, "Cn_gsi_lookups_direct").await, d0, "no index any more");
        c.query_drop("DROP DATABASE g_cached").await.unwrap();
    });
}

/// `q`'s rows sorted as text, or its error code.
async fn result_rows(c: &mut Conn, q: &str) -> Result<Vec<String>, Option<u16>> {
    c.query::<mysql_async::Row, _>(q).await.map(sorted).map_err(|e| code_of(&e))
}

/// A lookup's last read of a DN (and a gather's read of each DN) ends its
/// read view in the same round trip (`…; ROLLBACK`). The connection goes
/// back to the pool with no snapshot left open: a read on it after a
/// write sees the write. A lookup that finds no key reads the base table
/// the same way.
#[test]
fn read_views_ended_by_their_last_query_leave_no_snapshot_open() {
    block_on(async {
        let mut c = fresh_db("g_view_end").await;
        c.query_drop(
            "CREATE TABLE t (id INT PRIMARY KEY, a INT, v INT, \
             GLOBAL INDEX ga (a) PARTITION BY KEY(a) PARTITIONS 4) PARTITION BY KEY(id) PARTITIONS 16",
        )
        .await
        .unwrap();
        let rows: Vec<String> = (1..=40).map(|i| format!("({i}, {}, 0)", i % 20)).collect();
        c.query_drop(format!("INSERT INTO t VALUES {}", rows.join(", "))).await.unwrap();
        let direct = status(&mut c, "Cn_gsi_lookups_direct").await;
        let none: Vec<(i32, i32)> = c.query("SELECT id, v FROM t WHERE a = 999").await.unwrap();
        assert!(none.is_empty());
        assert_eq!(status(&mut c, "Cn_gsi_lookups_direct").await, direct + 1, "no key: a direct lookup too");
        for i in 1..=25 {
            let k = i % 20;
            // A lookup (two keys, on one DN or two) and a gathered scan.
            let by_index: Vec<(i32, i32)> = c.query(format!("SELECT id, v FROM t WHERE a = {k}")).await.unwrap();
            let scanned: Vec<(i32, i32)> =
                c.query(format!("SELECT id, v FROM t IGNORE INDEX (ga) WHERE a = {k}")).await.unwrap();
            for (id, v) in by_index.iter().chain(&scanned) {
                assert_eq!(*v, i - 1, "round {i}: row {id}");
            }
            assert_eq!(by_index.len(), 2, "round {i}");
            c.query_drop(format!("UPDATE t SET v = {i}")).await.unwrap();
            // Point reads on pooled connections, which the reads above
            // used: none may still hold a snapshot from before the UPDATE.
            for id in 1..=40 {
                let v: Option<i32> = c.query_first(format!("SELECT v FROM t WHERE id = {id}")).await.unwrap();
                assert_eq!(v, Some(i), "round {i}: row {id} read after the UPDATE");
            }
        }
        assert!(status(&mut c, "Cn_gsi_lookups_direct").await >= direct + 26);
        c.query_drop("DROP DATABASE g_view_end").await.unwrap();
    });
}

/// A value of the indexed column held by exactly one row at every moment,
/// moved between rows (and DNs) by transactions: an autocommit lookup
/// through the index (its views opened on the DNs it reads, one after the
/// other, at one timestamp) always finds exactly one row.
#[test]
fn lookups_under_moving_values_see_one_snapshot() {
    block_on(async {
        let mut c = fresh_db("g_token").await;
        c.query_drop(
            "CREATE TABLE t (id INT PRIMARY KEY, a INT, pad VARCHAR(10), \
             GLOBAL INDEX ga (a) PARTITION BY KEY(a) PARTITIONS 4) PARTITION BY KEY(id) PARTITIONS 8",
        )
        .await
        .unwrap();
        let rows: Vec<String> =
            (1..=16).map(|i| format!("({i}, {}, 'p{i}')", if i == 1 { 7 } else { 100 + i })).collect();
        c.query_drop(format!("INSERT INTO t VALUES {}", rows.join(", "))).await.unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mover = {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut w = connect(Some("g_token")).await;
                let (mut at, mut moves) = (1, 0);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let next = at % 16 + 1;
                    let r = async {
                        w.query_drop("BEGIN").await?;
                        w.query_drop(format!("UPDATE t SET a = {} WHERE id = {at}", 100 + at)).await?;
                        w.query_drop(format!("UPDATE t SET a = 7 WHERE id = {next}")).await?;
                        w.query_drop("COMMIT").await
                    }
                    .await;
                    match r {
                        Ok(()) => {
                            at = next;
                            moves += 1;
                        }
                        Err(e) => {
                            assert!(retryable(&e), "{e}");
                            let _ = w.query_drop("ROLLBACK").await;
                        }
                    }
                }
                moves
            })
        };
        let mut reads = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(4);
        while std::time::Instant::now() < deadline {
            let found: Vec<(i32, String)> = match c.query("SELECT id, pad FROM t WHERE a = 7").await {
                Ok(v) => v,
                Err(e) if retryable(&e) => continue,
                Err(e) => panic!("{e}"),
            };
            assert_eq!(found.len(), 1, "read {reads}: the moving value shows {found:?}");
            reads += 1;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let moves = mover.await.unwrap();
        assert!(moves > 20 && reads > 20, "{moves} moves, {reads} reads");
        assert!(explain(&mut c, "SELECT id, pad FROM t WHERE a = 7").await.contains("global index ga"));
        let (d, p) = (status(&mut c, "Cn_gsi_lookups_direct").await, status(&mut c, "Cn_gsi_lookups_planned").await);
        assert!(d > 0, "direct lookups {d}, planned {p}");
        c.query_drop("DROP DATABASE g_token").await.unwrap();
    });
}

#[test]
fn online_create_and_drop_index_and_partition_key_updates() {
    block_on(async {
        let mut c = fresh_db("g_online").await;
        c.query_drop("CREATE TABLE o (id INT PRIMARY KEY, cust INT, region INT NOT NULL, v VARCHAR(10)) PARTITION BY KEY(region) PARTITIONS 4")
            .await
            .unwrap();
        let rows: Vec<String> = (1..=2500).map(|i| format!("({i}, {}, {}, 'v{i}')", i % 97, i % 7)).collect();
        c.query_drop(format!("INSERT INTO o VALUES {}", rows.join(", "))).await.unwrap();
        // AUTO mode: a plain index on a non-key column is global.
        c.query_drop("CREATE INDEX g_cust ON o (cust)").await.unwrap();
        let gs: Vec<mysql_async::Row> = c.query("SHOW GLOBAL INDEX FROM o").await.unwrap();
        assert_eq!(gs.len(), 1);
        assert_eq!(gs[0].get::<String, _>(10).unwrap(), "PUBLIC");
        assert_clean(&mut c, "g_cust", "o").await;
        let n: i64 = c.query_first("SELECT COUNT(*) FROM o WHERE cust = 5").await.unwrap().unwrap();
        assert_eq!(n, (1..=2500).filter(|i| i % 97 == 5).count() as i64);
        assert!(explain(&mut c, "SELECT v FROM o WHERE cust = 5").await.contains("g_cust"));
        // A unique index over duplicates fails and leaves nothing behind.
        let e = c.query_drop("CREATE UNIQUE GLOBAL INDEX g_bad ON o (cust)").await.unwrap_err();
        assert_eq!(code(e), 1062);
        let gs: Vec<mysql_async::Row> = c.query("SHOW GLOBAL INDEX FROM o").await.unwrap();
        assert_eq!(gs.len(), 1);
        // Updating the partition key moves the row; the index follows.
        c.query_drop("UPDATE o SET region = region + 1, cust = 1000 WHERE id = 10").await.unwrap();
        assert_eq!(c.affected_rows(), 1);
        let r: Option<(i32, i32)> = c.query_first("SELECT id, region FROM o WHERE cust = 1000").await.unwrap();
        assert_eq!(r, Some((10, 4)));
        let r: Option<(i32, String)> = c.query_first("SELECT id, v FROM o WHERE region = 4 AND id = 10").await.unwrap();
        assert_eq!(r, Some((10, "v10".into())));
        let n: i64 = c.query_first("SELECT COUNT(*) FROM o").await.unwrap().unwrap();
        assert_eq!(n, 2500);
        assert_clean(&mut c, "g_cust", "o").await;
        // A new primary key moves the row, in the index too (1235 before).
        c.query_drop("UPDATE o SET id = 100010 WHERE id = 10").await.unwrap();
        assert_eq!(c.affected_rows(), 1);
        let r: Option<(i32, i32)> = c.query_first("SELECT id, region FROM o WHERE cust = 1000").await.unwrap();
        assert_eq!(r, Some((100010, 4)));
        let n: i64 = c.query_first("SELECT COUNT(*) FROM o WHERE id = 10").await.unwrap().unwrap();
        assert_eq!(n, 0);
        assert_clean(&mut c, "g_cust", "o").await;
        // A column a global index stores cannot be dropped under it.
        let e = c.query_drop("ALTER TABLE o DROP COLUMN cust").await.unwrap_err();
        assert_eq!(code(e), 1235);
        // ALTER TABLE … DROP INDEX of a global index removes its tables.
        c.query_drop("ALTER TABLE o DROP INDEX g_cust").await.unwrap();
        let gs: Vec<mysql_async::Row> = c.query("SHOW GLOBAL INDEX FROM o").await.unwrap();
        assert!(gs.is_empty());
        c.query_drop("ALTER TABLE o ADD CLUSTERED INDEX c_cust (cust)").await.unwrap();
        assert!(explain(&mut c, "SELECT * FROM o WHERE cust = 7").await.contains("covering global index c_cust"));
        let all: Vec<(i32, i32, i32, String)> = c.query("SELECT * FROM o WHERE cust = 7 ORDER BY id").await.unwrap();
        assert_eq!(all.len(), (1..=2500).filter(|i| i % 97 == 7).count());
        c.query_drop("DROP INDEX c_cust ON o").await.unwrap();
    });
}

/// Errors a concurrent writer expects and retries: a duplicate, a deadlock
/// victim, a lock wait timeout, a write conflict under snapshot isolation.
fn retryable(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if [1062, 1213, 1205, 1020].contains(&s.code))
}

/// Writers over `acct` (partitioned by region, global index gk on k
/// covering v): inserts, deletes, updates of the index column, of the
/// partition key (rows move), of the covering column, and two-statement
/// transactions. Runs until `stop`; returns the statements that succeeded.
async fn writer(
    db: &'static str,
    seed: u64,
    next_id: std::sync::Arc<std::sync::atomic::AtomicI64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> u64 {
    use rand::{Rng, SeedableRng};
    use std::sync::atomic::Ordering;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut c = connect(Some(db)).await;
    let mut done = 0;
    while !stop.load(Ordering::Relaxed) {
        let top = next_id.load(Ordering::Relaxed);
        let id = rng.random_range(1..top.max(2));
        let (k, r, v) = (rng.random_range(0..50), rng.random_range(0..8), rng.random_range(0..1000));
        let stmts: Vec<String> = match rng.random_range(0..6) {
            0 | 1 => {
                vec![format!("INSERT INTO acct VALUES ({}, {k}, {r}, {v})", next_id.fetch_add(1, Ordering::Relaxed))]
            }
            2 => vec![format!("DELETE FROM acct WHERE id = {id}")],
            3 => vec![format!("UPDATE acct SET k = {k} WHERE id = {id}")],
            4 => vec![format!("UPDATE acct SET region = {r}, v = {v} WHERE id = {id}")],
            _ => vec![
                "BEGIN".into(),
                format!("UPDATE acct SET v = v + 1 WHERE k = {k}"),
                format!("UPDATE acct SET k = {} WHERE id = {id}", (k + 1) % 50),
                "COMMIT".into(),
            ],
        };
        let mut ok = true;
        for s in &stmts {
            if let Err(e) = c.query_drop(s).await {
                assert!(retryable(&e), "{s}: {e}");
                let _ = c.query_drop("ROLLBACK").await;
                ok = false;
                break;
            }
        }
        done += u64::from(ok);
    }
    done
}

/// Reads the table and its index in one snapshot (a READ ONLY
/// transaction's read views, no locking reads) until `stop`, counting
/// comparisons and mismatches in `stats`.
async fn checker(
    db: &'static str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stats: std::sync::Arc<[std::sync::atomic::AtomicU64; 2]>,
) {
    use std::sync::atomic::Ordering;
    let mut c = connect(Some(db)).await;
    while !stop.load(Ordering::Relaxed) {
        c.query_drop("START TRANSACTION READ ONLY").await.unwrap();
        let base: Vec<(i64, i64, i64)> = c.query("SELECT id, k, v FROM acct ORDER BY id").await.unwrap();
        let index: Vec<(i64, i64, i64)> = c.query("SELECT id, k, v FROM `acct$gk` ORDER BY id").await.unwrap();
        c.query_drop("COMMIT").await.unwrap();
        stats[0].fetch_add(1, Ordering::Relaxed);
        stats[1].fetch_add(u64::from(base != index), Ordering::Relaxed);
    }
}

/// Runs 4 writers and 2 checkers for `secs` (or, with `until_bad`, until a
/// checker saw a mismatch); returns (writes, comparisons, mismatches).
async fn run_workload(secs: u64, until_bad: bool) -> (u64, u64, u64) {
    use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
    use std::sync::Arc;
    let mut c = connect(Some("g_cons")).await;
    let top: Option<i64> = c.query_first("SELECT MAX(id) FROM acct").await.unwrap();
    let next_id = Arc::new(AtomicI64::new(top.unwrap_or(0) + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let writers: Vec<_> =
        (0..4).map(|i| tokio::spawn(writer("g_cons", i + secs * 10, next_id.clone(), stop.clone()))).collect();
    let checkers: Vec<_> = (0..2).map(|_| tokio::spawn(checker("g_cons", stop.clone(), stats.clone()))).collect();
    let start = std::time::Instant::now();
    while start.elapsed().as_secs() < secs && !(until_bad && stats[1].load(Ordering::Relaxed) > 0) {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut writes = 0;
    for w in writers {
        writes += w.await.unwrap();
    }
    for h in checkers {
        h.await.unwrap();
    }
    (writes, stats[0].load(Ordering::Relaxed), stats[1].load(Ordering::Relaxed))
}

#[test]
fn index_and_table_agree_in_every_snapshot_and_the_negative_control_sees_them_differ() {
    block_on_exclusive(async {
        let mut c = fresh_db("g_cons").await;
        c.query_drop(
            "CREATE TABLE acct (id BIGINT PRIMARY KEY, k INT NOT NULL, region INT NOT NULL, v INT, \
             GLOBAL INDEX gk (k) COVERING (v) PARTITION BY KEY(k) PARTITIONS 4) PARTITION BY KEY(region) PARTITIONS 4",
        )
        .await
        .unwrap();
        let rows: Vec<String> = (1..=200).map(|i| format!("({i}, {}, {}, {i})", i % 50, i % 8)).collect();
        c.query_drop(format!("INSERT INTO acct VALUES {}", rows.join(", "))).await.unwrap();
        // The views of one snapshot are made up to 5 ms apart on the DNs:
        // the window the agents' gate must cover.
        dn_plugin::agent::set_view_pause(std::time::Duration::from_millis(5));
        let (writes, n, bad) = run_workload(12, false).await;
        eprintln!("gating on: {writes} writes, {n} comparisons, {bad} mismatches");
        assert!(writes > 50 && n > 5, "the workload ran ({writes} writes, {n} comparisons)");
        assert_eq!(bad, 0, "a snapshot showed the table and its index differently");
        assert_clean(&mut c, "gk", "acct").await;

        // Negative control: without gating a reader's views on different
        // DNs straddle commits, and the two sides disagree.
        for a in &env().cluster.agents {
            a.set_gating(false).await.unwrap();
        }
        let (writes, n, bad) = run_workload(30, true).await;
        for a in &env().cluster.agents {
            a.set_gating(true).await.unwrap();
        }
        dn_plugin::agent::set_view_pause(std::time::Duration::ZERO);
        eprintln!("gating off: {writes} writes, {n} comparisons, {bad} mismatches");
        assert!(bad > 0 || n == 0, "the negative control saw no mismatch in {n} comparisons");
        // Every write was atomic: the index is still exact.
        assert_clean(&mut c, "gk", "acct").await;
    });
}

#[test]
fn concurrent_duplicates_never_leave_two_rows_in_a_unique_global_index() {
    block_on(async {
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::Arc;
        let mut c = fresh_db("g_dup").await;
        c.query_drop(
            "CREATE TABLE u (id INT PRIMARY KEY, email VARCHAR(20), UNIQUE GLOBAL INDEX ge (email) PARTITION BY KEY(email) PARTITIONS 4) \
             PARTITION BY KEY(id) PARTITIONS 4",
        )
        .await
        .unwrap();
        let inserted = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|k| {
                let inserted = inserted.clone();
                tokio::spawn(async move {
                    let mut c = connect(Some("g_dup")).await;
                    for i in 0..40 {
                        let id = k * 1000 + i;
                        match c.query_drop(format!("INSERT INTO u VALUES ({id}, 'e{}')", i % 20)).await {
                            Ok(()) => {
                                inserted.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => assert!(retryable(&e), "{e}"),
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let dups: Vec<(String, i64)> =
            c.query("SELECT email, COUNT(*) FROM u GROUP BY email HAVING COUNT(*) > 1").await.unwrap();
        assert!(dups.is_empty(), "duplicates: {dups:?}");
        let n: i64 = c.query_first("SELECT COUNT(*) FROM u").await.unwrap().unwrap();
        assert_eq!(n, 20);
        assert_eq!(inserted.load(Ordering::Relaxed), 20);
        assert_clean(&mut c, "ge", "u").await;
    });
}

#[test]
fn online_create_index_under_writes_ends_clean_and_kill_cancels_it() {
    // Alone: the failpoint that holds the first creation in its backfill
    // is process-wide.
    block_on_exclusive(async {
        use std::sync::atomic::{AtomicBool, AtomicI64};
        use std::sync::Arc;
        let mut c = fresh_db("g_cons2").await;
        c.query_drop("CREATE TABLE acct (id BIGINT PRIMARY KEY, k INT NOT NULL, region INT NOT NULL, v INT) PARTITION BY KEY(region) PARTITIONS 4")
            .await
            .unwrap();
        let rows: Vec<String> = (1..=3000).map(|i| format!("({i}, {}, {}, {i})", i % 50, i % 8)).collect();
        c.query_drop(format!("INSERT INTO acct VALUES {}", rows.join(", "))).await.unwrap();
        let next_id = Arc::new(AtomicI64::new(3001));
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> =
            (0..3).map(|i| tokio::spawn(writer("g_cons2", 100 + i, next_id.clone(), stop.clone()))).collect();
        // KILL QUERY cancels a creation and leaves no index behind. The
        // creation sleeps 3 s before its first backfill batch, so the KILL
        // (after 1.5 s) finds it running however fast the rest is.
        cn::txn::failpoint::arm(
            cn::txn::failpoint::GSI_BACKFILL_BATCH,
            cn::txn::failpoint::Action::Exec("sleep 3".into()),
        );
        let id: u32 = c.query_first("SELECT CONNECTION_ID()").await.unwrap().unwrap();
        let killer = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
            connect(None).await.query_drop(format!("KILL QUERY {id}")).await.unwrap();
        });
        let e = c.query_drop("CREATE GLOBAL INDEX gk ON acct (k) COVERING (v)").await.unwrap_err();
        assert_eq!(code(e), 1317);
        assert!(!cn::txn::failpoint::armed(), "the creation reached its backfill");
        killer.await.unwrap();
        let gs: Vec<mysql_async::Row> = c.query("SHOW GLOBAL INDEX FROM acct").await.unwrap();
        assert!(gs.is_empty());
        // The same creation, left to finish while the writers go on; its
        // states and the backfill's progress show in SHOW GLOBAL INDEX.
        // Each state seen is recorded with the attempt of the creation it
        // belongs to (an observation that straddles a retry is dropped).
        let watching = Arc::new(AtomicBool::new(true));
        let attempt = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let watcher = {
            let (watching, attempt) = (watching.clone(), attempt.clone());
            tokio::spawn(async move {
                let mut w = connect(Some("g_cons2")).await;
                let mut seen: Vec<(usize, String, Option<String>)> = Vec::new();
                while watching.load(std::sync::atomic::Ordering::Relaxed) {
                    let before = attempt.load(std::sync::atomic::Ordering::SeqCst);
                    let rows: Vec<mysql_async::Row> = w.query("SHOW GLOBAL INDEX FROM acct").await.unwrap();
                    if attempt.load(std::sync::atomic::Ordering::SeqCst) == before {
                        for r in rows {
                            let st = (before, r.get::<String, _>(10).unwrap(), r.get::<Option<String>, _>(11).unwrap());
                            if !seen.contains(&st) {
                                seen.push(st);
                            }
                        }
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                seen
            })
        };
        // Under the writers a step of the creation can lose a deadlock: 1213,
        // which MySQL clients retry; the failed creation leaves no index.
        let mut attempts = 0;
        loop {
            attempts += 1;
            attempt.store(attempts, std::sync::atomic::Ordering::SeqCst);
            match c.query_drop("CREATE GLOBAL INDEX gk ON acct (k) COVERING (v)").await {
                Ok(()) => break,
                Err(e) if code_of(&e) == Some(1213) && attempts < 4 => {
                    eprintln!("CREATE GLOBAL INDEX lost a deadlock (attempt {attempts}): {e}");
                    let gs: Vec<mysql_async::Row> = c.query("SHOW GLOBAL INDEX FROM acct").await.unwrap();
                    assert!(gs.is_empty(), "a failed creation leaves no index");
                }
                Err(e) => panic!("CREATE GLOBAL INDEX: {e}"),
            }
        }
        watching.store(false, std::sync::atomic::Ordering::Relaxed);
        let seen = watcher.await.unwrap();
        // Within each attempt the states come in protocol order (a retry
        // starts again from DELETE_ONLY). DELETE_ONLY and WRITE_ONLY may
        // pass between two polls: with one CN a state change waits only for
        // this CN's older statements, not for other CNs' polls.
        let order = ["DELETE_ONLY", "WRITE_ONLY", "WRITE_REORG", "PUBLIC"];
        let ranks: Vec<(usize, usize)> =
            seen.iter().map(|s| (s.0, order.iter().position(|o| *o == s.1).expect("a known state"))).collect();
        assert!(
            ranks.windows(2).all(|w| w[0].0 < w[1].0 || (w[0].0 == w[1].0 && w[0].1 <= w[1].1)),
            "states out of order: {seen:?}"
        );
        let progress = |p: &str| -> Option<(u64, u64)> {
            let (a, b) = p.split_once(" / ")?;
            Some((a.parse().ok()?, b.parse().ok()?))
        };
        assert!(
            seen.iter().any(|(_, st, p)| st == "WRITE_REORG"
                && p.as_deref().and_then(progress).is_some_and(|(d, t)| d > 0 && t >= 3000)),
            "no backfill progress seen: {seen:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut writes = 0;
        for w in writers {
            writes += w.await.unwrap();
        }
        assert!(writes > 20, "the writers ran ({writes})");
        assert_clean(&mut c, "gk", "acct").await;
    });
}

/// LOAD DATA LOCAL INFILE maintains global indexes like INSERT IGNORE and
/// REPLACE do: a line whose unique index value another row holds is skipped
/// (or replaces that row), and the index stays consistent.
#[test]
fn load_data_maintains_global_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.csv");
    let mut s = String::new();
    for i in 1..=1200 {
        s.push_str(&format!("{i},u{i}@x,{}\n", i % 10));
    }
    s.push_str("5000,u17@x,1\n"); // duplicate email under a new id
    std::fs::write(&file, s).unwrap();
    let replace = dir.path().join("replace.csv");
    std::fs::write(&replace, "6000,u18@x,2\n3,new3@x,3\n").unwrap();
    block_on(async {
        let opts = mysql_async::OptsBuilder::from_opts(mysql_async::Opts::from_url(&url(env().cn_addr, None)).unwrap())
            .local_infile_handler(Some(mysql_async::WhiteListFsHandler::new([file.clone(), replace.clone()])));
        let mut c = Conn::new(opts).await.unwrap();
        c.query_drop("DROP DATABASE IF EXISTS g_load; CREATE DATABASE g_load; USE g_load").await.unwrap();
        c.query_drop(
            "CREATE TABLE u (id INT PRIMARY KEY, email VARCHAR(40), grp INT, \
             UNIQUE GLOBAL INDEX g_email (email) PARTITION BY KEY(email) PARTITIONS 4, \
             GLOBAL INDEX g_grp (grp) PARTITION BY KEY(grp) PARTITIONS 4) PARTITION BY KEY(id) PARTITIONS 4",
        )
        .await
        .unwrap();
        c.query_drop(format!("LOAD DATA LOCAL INFILE '{}' INTO TABLE u FIELDS TERMINATED BY ','", file.display()))
            .await
            .unwrap();
        assert_eq!(c.affected_rows(), 1200);
        assert_eq!(c.info(), "Records: 1201  Deleted: 0  Skipped: 1  Warnings: 1");
        let ids: Vec<i32> = c.query("SELECT id FROM u WHERE email = 'u17@x'").await.unwrap();
        assert_eq!(ids, vec![17]);
        assert_clean(&mut c, "g_email", "u").await;
        assert_clean(&mut c, "g_grp", "u").await;

        // REPLACE: the unique index's row 18 and the primary key's row 3 go.
        c.query_drop(format!(
            "LOAD DATA LOCAL INFILE '{}' REPLACE INTO TABLE u FIELDS TERMINATED BY ','",
            replace.display()
        ))
        .await
        .unwrap();
        let n: i64 = c.query_first("SELECT COUNT(*) FROM u").await.unwrap().unwrap();
        assert_eq!(n, 1200);
        let by18: Vec<i32> = c.query("SELECT id FROM u WHERE email = 'u18@x'").await.unwrap();
        assert_eq!(by18, vec![6000]);
        let row3: Option<String> = c.query_first("SELECT email FROM u WHERE id = 3").await.unwrap();
        assert_eq!(row3.as_deref(), Some("new3@x"));
        assert_clean(&mut c, "g_email", "u").await;
        assert_clean(&mut c, "g_grp", "u").await;
    });
}

/// SHOW CREATE TABLE lists global indexes and marks the shards' keys LOCAL,
/// so that running its output again (a dump restored) builds the same table.
#[test]
fn show_create_table_round_trips_global_and_local_indexes() {
    block_on(async {
        let mut c = fresh_db("g_ddl").await;
        c.query_drop(
            "CREATE TABLE t (id INT PRIMARY KEY, a INT, b VARCHAR(10), c INT, KEY ka (a), UNIQUE KEY kb (b), \
             UNIQUE GLOBAL INDEX gc (c) COVERING (a) PARTITION BY KEY(c) PARTITIONS 4, \
             CLUSTERED INDEX gx (a, b) PARTITION BY KEY(a) PARTITIONS 2, LOCAL KEY lc (c)) \
             PARTITION BY KEY(id) PARTITIONS 4",
        )
        .await
        .unwrap();
        let (_, ddl): (String, String) = c.query_first("SHOW CREATE TABLE t").await.unwrap().unwrap();
        for part in [
            "LOCAL KEY `lc` (`c`)",
            "GLOBAL INDEX `ka` (`a`) PARTITION BY KEY(`a`) PARTITIONS 16",
            "UNIQUE GLOBAL INDEX `gc` (`c`) COVERING (`a`) PARTITION BY KEY(`c`) PARTITIONS 4",
            "CLUSTERED INDEX `gx` (`a`, `b`) PARTITION BY KEY(`a`) PARTITIONS 2",
        ] {
            assert!(ddl.contains(part), "{part} missing from {ddl}");
        }
        c.query_drop(ddl.replacen("CREATE TABLE `t`", "CREATE TABLE `t2`", 1)).await.unwrap();
        let (_, ddl2): (String, String) = c.query_first("SHOW CREATE TABLE t2").await.unwrap().unwrap();
        assert_eq!(ddl2.replacen("`t2`", "`t`", 1), ddl);
        let g1: Vec<(String, String)> = c
            .query("SELECT key_name, index_names FROM information_schema.global_indexes WHERE `schema` = 'g_ddl' AND `table` = 't' ORDER BY 1")
            .await
            .unwrap();
        let g2: Vec<(String, String)> = c
            .query("SELECT key_name, index_names FROM information_schema.global_indexes WHERE `schema` = 'g_ddl' AND `table` = 't2' ORDER BY 1")
            .await
            .unwrap();
        assert_eq!(g1.len(), 4);
        assert_eq!(g1, g2);
    });
}

/// A join on a column that is not the table's partition key runs on the
/// shards when a covering global index is partitioned by it like the other
/// side (`cn::gsi::join`), with the answers of the same rows without an
/// index; an index that does not store a column the query reads is not
/// used, and a transaction's own writes are seen through the index.
#[test]
fn a_covering_global_index_co_locates_a_join_on_its_key() {
    block_on(async {
        let mut c = fresh_db("g_join").await;
        c.query_drop("CREATE TABLE cust (id INT PRIMARY KEY, bal INT) PARTITION BY KEY(id) PARTITIONS 4")
            .await
            .unwrap();
        for t in ["ord", "ord_plain"] {
            let index = if t == "ord" { ", GLOBAL INDEX g_cid (cid) PARTITION BY KEY(cid) PARTITIONS 4" } else { "" };
            c.query_drop(format!(
                "CREATE TABLE {t} (oid INT PRIMARY KEY, cid INT NOT NULL, amt INT{index}) PARTITION BY KEY(oid) PARTITIONS 4"
            ))
            .await
            .unwrap();
            // Customers 50..=60 have no orders; orders of customer 0 have no customer.
            let rows: Vec<String> = (1..=300).map(|i| format!("({i}, {}, {})", i % 50, i * 3)).collect();
            c.query_drop(format!("INSERT INTO {t} VALUES {}", rows.join(", "))).await.unwrap();
        }
        let rows: Vec<String> = (1..=60).map(|i| format!("({i}, {})", i * 10)).collect();
        c.query_drop(format!("INSERT INTO cust VALUES {}", rows.join(", "))).await.unwrap();

        // (query over ord, whether the index serves it)
        let cases = [
            ("SELECT COUNT(*), SUM(bal) FROM cust WHERE NOT EXISTS (SELECT * FROM ord WHERE ord.cid = cust.id)", true),
            ("SELECT id FROM cust WHERE id IN (SELECT cid FROM ord WHERE cid > 3) AND bal < 400", true),
            ("SELECT c.id, COUNT(*) FROM cust c JOIN ord o ON o.cid = c.id GROUP BY c.id", true),
            ("SELECT c.id, o.oid FROM cust c LEFT JOIN ord o ON o.cid = c.id WHERE c.id > 45", true),
            // amt is not in the index.
            ("SELECT c.id, SUM(o.amt) FROM cust c JOIN ord o ON o.cid = c.id GROUP BY c.id", false),
            // A pruned scan of ord reads less than every index partition.
            ("SELECT c.id, o.oid FROM cust c JOIN ord o ON o.cid = c.id WHERE o.oid = 77", false),
        ];
        for (q, uses) in cases {
            let plan = explain(&mut c, q).await;
            assert_eq!(plan.contains("ord_g_cid"), uses, "{q}: {plan}");
            if uses {
                // One query per shard, with both tables in it.
                let pushed: Vec<&str> = plan.lines().filter(|l| l.contains("ord_g_cid")).collect();
                assert_eq!(pushed.len(), 4, "{q}: {plan}");
                assert!(pushed.iter().all(|l| l.contains("`cust")), "{q}: {plan}");
            }
            assert!(assert_same_rows(&mut c, q, &q.replace("ord", "ord_plain")).await > 0, "{q} finds rows");
        }
        // Index hints: IGNORE INDEX keeps the index out, also when the hint
        // is on the subquery's table; FORCE INDEX of another global index
        // would too; USE INDEX of this one leaves it in.
        let hinted = [
            ("SELECT c.id, COUNT(*) FROM cust c JOIN ord o IGNORE INDEX (g_cid) ON o.cid = c.id GROUP BY c.id", false),
            ("SELECT COUNT(*) FROM cust WHERE NOT EXISTS (SELECT * FROM ord IGNORE INDEX (g_cid) WHERE ord.cid = cust.id)", false),
            ("SELECT c.id, COUNT(*) FROM cust c JOIN ord o USE INDEX (g_cid) ON o.cid = c.id GROUP BY c.id", true),
            // A hint naming a local index is the DN's business.
            ("SELECT c.id, COUNT(*) FROM cust c JOIN ord o IGNORE INDEX (`PRIMARY`) ON o.cid = c.id GROUP BY c.id", true),
        ];
        for (q, uses) in hinted {
            let plan = explain(&mut c, q).await;
            assert_eq!(plan.contains("ord_g_cid"), uses, "{q}: {plan}");
            let plain =
                q.replace("ord", "ord_plain").replace(" IGNORE INDEX (g_cid)", "").replace(" USE INDEX (g_cid)", "");
            assert_same_rows(&mut c, q, &plain).await;
        }
        let (n, sum): (i64, i64) = c
            .query_first(
                "SELECT COUNT(*), SUM(bal) FROM cust WHERE NOT EXISTS (SELECT * FROM ord WHERE ord.cid = cust.id)",
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!((n, sum), (11, (50..=60).map(|i| i * 10).sum::<i64>()));

        // A transaction reads its own writes through the index, and a
        // locking read locks the table's rows, not the index's.
        c.query_drop("BEGIN").await.unwrap();
        c.query_drop("INSERT INTO ord VALUES (1000, 55, 1)").await.unwrap();
        c.query_drop("DELETE FROM ord WHERE cid = 7").await.unwrap();
        let ids: Vec<i32> = c
            .query("SELECT id FROM cust WHERE NOT EXISTS (SELECT 1 FROM ord WHERE ord.cid = cust.id) ORDER BY id")
            .await
            .unwrap();
        let mut want: Vec<i32> = (50..=60).filter(|&i| i != 55).collect();
        want.insert(0, 7);
        assert_eq!(ids, want);
        let locking = "SELECT id FROM cust WHERE NOT EXISTS (SELECT 1 FROM ord WHERE ord.cid = cust.id) FOR UPDATE";
        let mut locked: Vec<i32> = c.query(locking).await.unwrap();
        locked.sort();
        assert_eq!(locked, want);
        assert!(!explain(&mut c, locking).await.contains("ord_g_cid"));
        c.query_drop("ROLLBACK").await.unwrap();
        c.query_drop("DROP DATABASE g_join").await.unwrap();
    });
}

/// How the session's last write transaction committed.
async fn last_commit(c: &mut Conn) -> String {
    let r: Option<(String, String)> = c.query_first("SHOW STATUS LIKE 'Cn_last_commit'").await.unwrap();
    r.expect("Cn_last_commit").1
}

/// A plain INSERT into a table with a global index sends each DN its base
/// and index rows in one multi-statement: a row and its index row on one DN
/// are a local transaction committed in one phase, on two DNs an async
/// commit. A duplicate in either leaves nothing behind, also inside an
/// explicit transaction, which goes on.
#[test]
fn an_insert_whose_row_and_index_row_share_a_dn_commits_in_one_phase() {
    block_on(async {
        let mut c = fresh_db("g_1pc").await;
        // Partition p0 lives on DN 0, p1 on DN 1 (round robin), and the
        // index's one partition on DN 0.
        c.query_drop(
            "CREATE TABLE t (id INT PRIMARY KEY, a INT, b VARCHAR(10), \
             UNIQUE GLOBAL INDEX ga (a) COVERING (b) PARTITION BY KEY(a) PARTITIONS 1) \
             PARTITION BY LIST COLUMNS(id) (PARTITION p0 VALUES IN (1, 2, 3, 4), PARTITION p1 VALUES IN (5, 6, 7, 8))",
        )
        .await
        .unwrap();
        let one_phase_before = status(&mut c, "Cn_commits_one_phase").await;
        c.query_drop("INSERT INTO t VALUES (1, 10, 'x')").await.unwrap();
        assert_eq!(c.affected_rows(), 1);
        assert_eq!(last_commit(&mut c).await, "ONE_PHASE");
        assert!(status(&mut c, "Cn_commits_one_phase").await > one_phase_before);
        c.query_drop("INSERT INTO t VALUES (5, 50, 'y')").await.unwrap();
        assert_eq!(last_commit(&mut c).await, "ASYNC_COMMIT");
        c.query_drop("INSERT INTO t (id, a, b) VALUES (2, 20, 'p'), (3, 30, 'q')").await.unwrap();
        assert_eq!(c.affected_rows(), 2);
        assert_eq!(last_commit(&mut c).await, "ONE_PHASE");

        // Duplicates: of the unique index (the base row, written first in
        // the same multi-statement, is rolled back) and of the primary key.
        for dup in [
            "INSERT INTO t VALUES (4, 10, 'd')",
            "INSERT INTO t VALUES (1, 99, 'd')",
            "INSERT INTO t VALUES (6, 20, 'd')",
        ] {
            let e = c.query_drop(dup).await.unwrap_err();
            assert_eq!(code_of(&e), Some(1062), "{dup}: {e}");
        }
        // Inside a transaction a failed INSERT is undone and the transaction goes on.
        c.query_drop("BEGIN").await.unwrap();
        c.query_drop("INSERT INTO t VALUES (4, 40, 'r')").await.unwrap();
        let e = c.query_drop("INSERT INTO t VALUES (7, 10, 'd')").await.unwrap_err();
        assert_eq!(code_of(&e), Some(1062), "{e}");
        c.query_drop("INSERT INTO t VALUES (8, 80, 's')").await.unwrap();
        c.query_drop("COMMIT").await.unwrap();

        let rows: Vec<(i32, i32, String)> = c.query("SELECT id, a, b FROM t ORDER BY id").await.unwrap();
        let want: Vec<(i32, i32, String)> =
            [(1, 10, "x"), (2, 20, "p"), (3, 30, "q"), (4, 40, "r"), (5, 50, "y"), (8, 80, "s")]
                .into_iter()
                .map(|(i, a, b)| (i, a, b.to_string()))
                .collect();
        assert_eq!(rows, want);
        let by_index: Vec<(i32, String)> = c.query("SELECT id, b FROM t FORCE INDEX (ga) WHERE a = 40").await.unwrap();
        assert_eq!(by_index, vec![(4, "r".to_string())]);
        assert_clean(&mut c, "ga", "t").await;
    });
}

/// A range on a global index's first column reads the index (every index
/// partition, by its local key), then the base rows by primary key; a
/// covering index answers alone; a range wider than a lookup takes falls
/// back to the plain query. Every answer is the one without the index.
#[test]
fn a_range_on_a_global_index_column_reads_the_index() {
    block_on(async {
        let mut c = fresh_db("g_range").await;
        c.query_drop(
            "CREATE TABLE t (id INT PRIMARY KEY, a INT, b VARCHAR(10), pad VARCHAR(20), \
             GLOBAL INDEX ga (a) COVERING (b) PARTITION BY KEY(a) PARTITIONS 4) PARTITION BY KEY(id) PARTITIONS 4",
        )
        .await
        .unwrap();
        for chunk in (0..6000).collect::<Vec<i32>>().chunks(1000) {
            let rows: Vec<String> =
                chunk.iter().map(|i| format!("({i}, {}, 'b{}', 'p{i}')", i % 3000, i % 7)).collect();
            c.query_drop(format!("INSERT INTO t VALUES {}", rows.join(", "))).await.unwrap();
        }
        // (query, the index in EXPLAIN)
        let cases = [
            ("SELECT id, pad FROM t WHERE a BETWEEN 10 AND 20", true),
            ("SELECT id, pad FROM t WHERE a >= 2990 AND b = 'b3'", true),
            ("SELECT id, pad FROM t WHERE 15 > a", true),
            ("SELECT id, b FROM t WHERE a < 40 ORDER BY id LIMIT 5", true),
            ("SELECT COUNT(*), SUM(id) FROM t WHERE a > 100 AND a <= 200", true),
            // Covering: the index alone.
            ("SELECT id, a, b FROM t WHERE a < 30", true),
            // Wider than a lookup takes (5,800 keys): the plain query.
            ("SELECT id, pad FROM t WHERE a > 100", true),
            // A range on the table's partition key: the table's own business.
            ("SELECT id, pad FROM t WHERE id BETWEEN 10 AND 20", false),
            ("SELECT id, pad FROM t WHERE a <> 10 AND id < 3", false),
        ];
        for (q, uses) in cases {
            let plan = explain(&mut c, q).await;
            assert_eq!(plan.contains("global index ga"), uses, "{q}: {plan}");
            let plain = q.replace("FROM t", "FROM t IGNORE INDEX (ga)");
            assert!(assert_same_rows(&mut c, q, &plain).await > 0, "{q} finds rows");
        }
        let plan = explain(&mut c, "SELECT id, a, b FROM t WHERE a < 30").await;
        assert!(plan.contains("t_ga") && !plan.contains("lookup"), "covering: {plan}");

        // ANALYZE TABLE gives the index table statistics of its own (row
        // estimates for plans that read it); DROP INDEX forgets them.
        let stats = || env().cluster.catalog.snapshot().statistics("g_range", "t$ga").cloned();
        assert_eq!(stats(), None);
        c.query_drop("ANALYZE TABLE t").await.unwrap();
        let rows = stats().expect("the index table's statistics").rows;
        assert!((4000..=8000).contains(&rows), "InnoDB's estimate of 6,000 rows: {rows}");
        c.query_drop("DROP INDEX ga ON t").await.unwrap();
        env().cluster.refresh_catalog().await.unwrap();
        assert_eq!(stats(), None);
    });
}
