//! End-to-end tests: a real metadb and two real MariaDB DNs, the CN
//! in-process, driven through mysql_async and the mariadb CLI.

mod common;

use common::*;
use mysql_async::prelude::*;
use mysql_async::Row;

#[test]
fn sharded_table_insert_route_and_scatter() {
    block_on(async {
        let mut c = fresh_db("t_shard").await;
        c.query_drop("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(20), amount DECIMAL(10,2)) PARTITION BY KEY(id) PARTITIONS 4")
            .await
            .unwrap();
        let values: Vec<String> = (1..=40).map(|i| format!("({i}, 'n{i}', {i}.50)")).collect();
        c.query_drop(format!("INSERT INTO t VALUES {}", values.join(","))).await.unwrap();
        assert_eq!(c.affected_rows(), 40);
        // Point query on the partition key: routed to one DN.
        let r: Option<(i32, String, String)> =
            c.query_first("SELECT id, name, amount FROM t WHERE id = 7").await.unwrap();
        assert_eq!(r, Some((7, "n7".into(), "7.50".into())));
        // Scatter with aggregation in DataFusion.
        let (n, s): (i64, String) = c.query_first("SELECT COUNT(*), SUM(amount) FROM t").await.unwrap().unwrap();
        assert_eq!(n, 40);
        assert_eq!(s, "840.00");
        let ids: Vec<i32> = c.query("SELECT id FROM t WHERE id > 35 ORDER BY id DESC").await.unwrap();
        assert_eq!(ids, vec![40, 39, 38, 37, 36]);
        // Rows really are spread: every physical partition holds some.
        let parts: Vec<(String, String, String, String, String, String, String)> =
            c.query("SHOW PARTITIONS FROM t").await.unwrap();
        assert_eq!(parts.len(), 4);
        let counts = || async {
            let mut counts = Vec::new();
            for (_, _, _, _, _, phys, dn) in &parts {
                let i: usize = dn.trim_start_matches("dn").parse().unwrap();
                let mut d = dn_conn(i).await;
                let n: Option<i64> = d.query_first(format!("SELECT COUNT(*) FROM t_shard.`{phys}`")).await.unwrap();
                counts.push(n.unwrap_or(0));
            }
            (counts.iter().all(|n| *n > 0), counts.iter().sum::<i64>())
        };
        eventually("every partition holds rows, 40 in all", (true, 40), counts).await;
        // UPDATE and DELETE with pruning and across shards.
        c.query_drop("UPDATE t SET name = 'seven' WHERE id = 7").await.unwrap();
        assert_eq!(c.affected_rows(), 1);
        c.query_drop("UPDATE t SET amount = amount + 1 WHERE id IN (1, 2, 3)").await.unwrap();
        assert_eq!(c.affected_rows(), 3);
        c.query_drop("DELETE FROM t WHERE id > 30").await.unwrap();
        assert_eq!(c.affected_rows(), 10);
        let (n, name): (i64, String) = c.query_first("SELECT COUNT(*), MAX(name) FROM t").await.unwrap().unwrap();
        assert_eq!((n, name.as_str()), (30, "seven"));
        // INSERT … ON DUPLICATE KEY UPDATE, IGNORE and REPLACE on the shards.
        c.query_drop("INSERT INTO t VALUES (1, 'one', 0) ON DUPLICATE KEY UPDATE name = 'dup'").await.unwrap();
        c.query_drop("INSERT IGNORE INTO t VALUES (2, 'ignored', 0)").await.unwrap();
        c.query_drop("REPLACE INTO t VALUES (3, 'replaced', 3)").await.unwrap();
        let names: Vec<String> = c.query("SELECT name FROM t WHERE id IN (1,2,3) ORDER BY id").await.unwrap();
        assert_eq!(names, vec!["dup", "n2", "replaced"]);
        // A duplicate key keeps MySQL's error code.
        assert_eq!(code(c.query_drop("INSERT INTO t VALUES (5, 'x', 0)").await.unwrap_err()), 1062);
    });
}

#[test]
fn broadcast_single_range_list_and_hidden_key() {
    block_on(async {
        let mut c = fresh_db("t_kinds").await;
        c.query_drop("CREATE TABLE b (k INT PRIMARY KEY, v VARCHAR(10)) BROADCAST").await.unwrap();
        c.query_drop("INSERT INTO b VALUES (1,'a'),(2,'b'),(3,'c')").await.unwrap();
        assert_eq!(c.affected_rows(), 3);
        for i in 0..2 {
            eventually(&format!("broadcast copy on dn{i}"), 3, || async move {
                let mut d = dn_conn(i).await;
                let phys: Vec<(String,)> = d.query("SHOW TABLES FROM t_kinds").await.unwrap();
                let n: Option<i64> =
                    d.query_first(format!("SELECT COUNT(*) FROM t_kinds.`{}`", phys[0].0)).await.unwrap();
                n.unwrap_or(0)
            })
            .await;
        }
        c.query_drop("CREATE TABLE s (k INT PRIMARY KEY) SINGLE").await.unwrap();
        c.query_drop("INSERT INTO s VALUES (1),(2)").await.unwrap();
        let n: i64 = c.query_first("SELECT COUNT(*) FROM s JOIN b ON s.k = b.k").await.unwrap().unwrap();
        assert_eq!(n, 2);
        c.query_drop(
            "CREATE TABLE r (d DATE NOT NULL, x INT, PRIMARY KEY (d)) PARTITION BY RANGE COLUMNS(d) \
             (PARTITION p2020 VALUES LESS THAN ('2021-01-01'), PARTITION pmax VALUES LESS THAN (MAXVALUE))",
        )
        .await
        .unwrap();
        c.query_drop("INSERT INTO r VALUES ('2020-05-01', 1), ('2022-01-01', 2), ('2019-01-01', 3)").await.unwrap();
        let xs: Vec<i32> = c.query("SELECT x FROM r WHERE d < '2021-01-01' ORDER BY x").await.unwrap();
        assert_eq!(xs, vec![1, 3]);
        c.query_drop("CREATE TABLE l (c INT PRIMARY KEY) PARTITION BY LIST COLUMNS(c) (PARTITION a VALUES IN (1,2), PARTITION b VALUES IN (3))")
            .await
            .unwrap();
        assert_eq!(code(c.query_drop("INSERT INTO l VALUES (9)").await.unwrap_err()), 1526);
        // No primary key: a hidden one, invisible to SELECT *.
        c.query_drop("CREATE TABLE h (a INT, b VARCHAR(5))").await.unwrap();
        c.query_drop("INSERT INTO h VALUES (1,'x'),(1,'x'),(2,'y')").await.unwrap();
        let rows: Vec<Row> = c.query("SELECT * FROM h ORDER BY a").await.unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].columns_ref().len(), 2);
        let cols: Vec<Row> = c.query("SHOW COLUMNS FROM h").await.unwrap();
        assert_eq!(cols.len(), 2);
    });
}

#[test]
fn auto_increment_is_globally_unique() {
    block_on(async {
        let mut c = fresh_db("t_ai").await;
        c.query_drop(
            "CREATE TABLE a (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, v INT) PARTITION BY KEY(id) PARTITIONS 4",
        )
        .await
        .unwrap();
        c.query_drop("INSERT INTO a (v) VALUES (1),(2),(3)").await.unwrap();
        let first = c.last_insert_id().unwrap();
        assert!(first > 0);
        let lid: u64 = c.query_first("SELECT LAST_INSERT_ID()").await.unwrap().unwrap();
        assert_eq!(lid, first);
        c.query_drop("INSERT INTO a (id, v) VALUES (5000, 9)").await.unwrap();
        c.query_drop("INSERT INTO a (v) VALUES (4)").await.unwrap();
        assert!(c.last_insert_id().unwrap() > 5000, "ids continue above an explicit one");
        let (n, d): (i64, i64) = c.query_first("SELECT COUNT(*), COUNT(DISTINCT id) FROM a").await.unwrap().unwrap();
        assert_eq!((n, d), (5, 5));
    });
}

#[test]
fn errors_carry_mysql_codes() {
    block_on(async {
        let mut c = fresh_db("t_err").await;
        assert_eq!(code(c.query_drop("SELECT * FROM nope").await.unwrap_err()), 1146);
        assert_eq!(code(c.query_drop("SELEC 1").await.unwrap_err()), 1064);
        assert_eq!(code(c.query_drop("USE no_such_db").await.unwrap_err()), 1049);
        assert_eq!(
            code(c.query_drop("CREATE TABLE x (a INT PRIMARY KEY) PARTITION BY KEY(zz)").await.unwrap_err()),
            1054
        );
        assert_eq!(
            code(c.query_drop("CREATE TABLE x (a INT PRIMARY KEY) PARTITION BY WHATEVER(a)").await.unwrap_err()),
            1064
        );
        assert_eq!(code(c.query_drop("CREATE DATABASE t_err").await.unwrap_err()), 1007);
        assert_eq!(code(c.query_drop("GRANT ALL ON *.* TO 'x'@'%'").await.unwrap_err()), 1235);
        // The connection is still usable after errors.
        let one: i64 = c.query_first("SELECT 1").await.unwrap().unwrap();
        assert_eq!(one, 1);
    });
}

#[test]
fn prepared_statements_multi_statements_and_session() {
    block_on(async {
        let mut c = fresh_db("t_ps").await;
        c.query_drop("CREATE TABLE p (id INT PRIMARY KEY, s VARCHAR(10), d DATETIME, f DOUBLE)").await.unwrap();
        c.exec_drop("INSERT INTO p VALUES (?, ?, ?, ?)", (1, "it's", "2024-01-02 03:04:05", 1.5)).await.unwrap();
        c.exec_drop("INSERT INTO p VALUES (?, ?, ?, ?)", (2, None::<String>, "2024-01-03 00:00:00", 2.25))
            .await
            .unwrap();
        let r: Option<(i32, Option<String>, mysql_async::Value, f64)> =
            c.exec_first("SELECT id, s, d, f FROM p WHERE id = ?", (1,)).await.unwrap();
        // Binary protocol: the DATETIME arrives as a binary date value.
        assert_eq!(r, Some((1, Some("it's".into()), mysql_async::Value::Date(2024, 1, 2, 3, 4, 5, 0), 1.5)));
        let all: Vec<(i32, Option<String>)> = c.exec("SELECT id, s FROM p ORDER BY id", ()).await.unwrap();
        assert_eq!(all, vec![(1, Some("it's".into())), (2, None)]);
        // Multi-statements in one COM_QUERY.
        let mut res = c.query_iter("SELECT 1; SELECT 2, 3").await.unwrap();
        let a: Vec<i64> = res.collect().await.unwrap();
        let b: Vec<(i64, i64)> = res.collect().await.unwrap();
        assert_eq!((a, b), (vec![1], vec![(2, 3)]));
        drop(res);
        let (db, ac): (String, i64) = c.query_first("SELECT DATABASE(), @@autocommit").await.unwrap().unwrap();
        assert_eq!((db.as_str(), ac), ("t_ps", 1));
        c.query_drop("SET autocommit = 0").await.unwrap();
        let ac: i64 = c.query_first("SELECT @@session.autocommit").await.unwrap().unwrap();
        assert_eq!(ac, 0);
        c.query_drop("SET autocommit = 1").await.unwrap();
        c.query_drop("SET NAMES utf8mb4").await.unwrap();
        let vars: Vec<(String, String)> = c.query("SHOW VARIABLES LIKE 'character_set_client'").await.unwrap();
        assert_eq!(vars, vec![("character_set_client".into(), "utf8mb4".into())]);
        let dbs: Vec<String> = c.query("SHOW DATABASES LIKE 't_ps'").await.unwrap();
        assert_eq!(dbs, vec!["t_ps"]);
        let n: i64 = c
            .query_first("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 't_ps'")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 1);
        let pl: Vec<Row> = c.query("SHOW PROCESSLIST").await.unwrap();
        assert!(!pl.is_empty());
        // Keys as ORMs read them (1146 before), and the grants tools ask for.
        let keys: Vec<(String, String, String, u64)> = c
            .query(
                "SELECT k.constraint_name, c.constraint_type, k.column_name, k.ordinal_position \
                 FROM information_schema.key_column_usage k JOIN information_schema.table_constraints c \
                 ON c.constraint_name = k.constraint_name AND c.table_name = k.table_name \
                 WHERE k.table_schema = 't_ps' AND k.table_name = 'p' ORDER BY k.ordinal_position",
            )
            .await
            .unwrap();
        assert_eq!(keys, vec![("PRIMARY".into(), "PRIMARY KEY".into(), "id".into(), 1)]);
        let fks: Vec<Row> = c
            .query("SELECT * FROM information_schema.referential_constraints WHERE constraint_schema = 't_ps'")
            .await
            .unwrap();
        assert!(fks.is_empty());
        let grants: Vec<String> = c.query("SHOW GRANTS").await.unwrap();
        assert!(grants.len() == 1 && grants[0].starts_with("GRANT ALL PRIVILEGES ON *.* TO `root`@"), "{grants:?}");
        // information_schema.PROCESSLIST, as monitoring tools read it: this
        // session, running this very statement, in its database.
        let me: u32 = c.query_first("SELECT CONNECTION_ID()").await.unwrap().unwrap();
        let row: Option<(u64, String, Option<String>, String, String)> = c
            .query_first(format!(
                "SELECT id, user, db, command, info FROM information_schema.PROCESSLIST WHERE id = {me}"
            ))
            .await
            .unwrap();
        let (id, user, db, command, info) = row.expect("the session is in the processlist");
        assert_eq!((id, user.as_str(), db.as_deref(), command.as_str()), (me as u64, "root", Some("t_ps"), "Query"));
        assert!(info.contains("information_schema.PROCESSLIST"), "{info}");
        // FOUND_ROWS(): the rows the last SELECT sent, or with
        // SQL_CALC_FOUND_ROWS the rows it found before its LIMIT.
        let found = "SELECT FOUND_ROWS()";
        let first: Vec<i32> = c.query("SELECT SQL_CALC_FOUND_ROWS id FROM p ORDER BY id LIMIT 1").await.unwrap();
        assert_eq!((first, c.query_first::<u64, _>(found).await.unwrap()), (vec![1], Some(2)));
        assert_eq!(c.query_first::<u64, _>(found).await.unwrap(), Some(1), "the last SELECT sent one row");
        let point: Vec<i32> = c.exec("SELECT SQL_CALC_FOUND_ROWS id FROM p WHERE id = ? LIMIT 0", (2,)).await.unwrap();
        assert_eq!((point.len(), c.query_first::<u64, _>(found).await.unwrap()), (0, Some(1)));
        let _: Vec<(i32, i32)> = c.query("SELECT a.id, b.id FROM p a JOIN p b ON a.id <= b.id").await.unwrap();
        assert_eq!(c.query_first::<u64, _>(found).await.unwrap(), Some(3));
    });
}

#[test]
fn explicit_transaction_commits_and_rolls_back_across_dns() {
    block_on(async {
        let mut c = fresh_db("t_txn").await;
        c.query_drop("CREATE TABLE acct (id INT PRIMARY KEY, bal INT) PARTITION BY KEY(id) PARTITIONS 4")
            .await
            .unwrap();
        c.query_drop("INSERT INTO acct VALUES (1,100),(2,100),(3,100),(4,100),(5,100),(6,100)").await.unwrap();
        c.query_drop("BEGIN").await.unwrap();
        c.query_drop("UPDATE acct SET bal = bal - 10 WHERE id = 1").await.unwrap();
        c.query_drop("UPDATE acct SET bal = bal + 10 WHERE id = 2").await.unwrap();
        c.query_drop("ROLLBACK").await.unwrap();
        let s: String = c.query_first("SELECT SUM(bal) FROM acct").await.unwrap().unwrap();
        assert_eq!(s, "600");
        let b1: i32 = c.query_first("SELECT bal FROM acct WHERE id = 1").await.unwrap().unwrap();
        assert_eq!(b1, 100);
        c.query_drop("START TRANSACTION").await.unwrap();
        for i in 1..=6 {
            c.query_drop(format!("UPDATE acct SET bal = bal + {} WHERE id = {i}", if i % 2 == 0 { 5 } else { -5 }))
                .await
                .unwrap();
        }
        c.query_drop("COMMIT").await.unwrap();
        let v: Vec<i32> = c.query("SELECT bal FROM acct ORDER BY id").await.unwrap();
        assert_eq!(v, vec![95, 105, 95, 105, 95, 105]);
        // Nothing is left prepared on any DN (async commit's second phase
        // may still be on its way after the OK).
        for i in 0..2 {
            eventually(&format!("prepared XA branches on dn{i}"), 0, || async move {
                let rows: Vec<Row> = dn_conn(i).await.query("XA RECOVER").await.unwrap();
                rows.len()
            })
            .await;
        }
    });
}

#[test]
fn ddl_alter_rename_truncate_and_second_cn_sees_it() {
    block_on(async {
        let mut c = fresh_db("t_ddl").await;
        c.query_drop("CREATE TABLE d (id INT PRIMARY KEY, a INT)").await.unwrap();
        c.query_drop("INSERT INTO d VALUES (1, 10), (2, 20)").await.unwrap();
        c.query_drop("ALTER TABLE d ADD COLUMN note VARCHAR(10) DEFAULT 'x'").await.unwrap();
        let notes: Vec<String> = c.query("SELECT note FROM d ORDER BY id").await.unwrap();
        assert_eq!(notes, vec!["x", "x"]);
        c.query_drop("RENAME TABLE d TO d2").await.unwrap();
        assert_eq!(code(c.query_drop("SELECT * FROM d").await.unwrap_err()), 1146);
        // A second CN, started now, sees the catalog from the metadb.
        let (addr2, _cl) = start_cn(&env().metadb_url, 16).await;
        let mut c2 =
            mysql_async::Conn::new(mysql_async::Opts::from_url(&url(addr2, Some("t_ddl"))).unwrap()).await.unwrap();
        let n: i64 = c2.query_first("SELECT COUNT(*) FROM d2").await.unwrap().unwrap();
        assert_eq!(n, 2);
        // DDL on the second CN reaches the first by catalog polling.
        c2.query_drop("CREATE TABLE made_on_cn2 (k INT PRIMARY KEY)").await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
        c.query_drop("INSERT INTO made_on_cn2 VALUES (1)").await.unwrap();
        c.query_drop("TRUNCATE TABLE d2").await.unwrap();
        let n: i64 = c.query_first("SELECT COUNT(*) FROM d2").await.unwrap().unwrap();
        assert_eq!(n, 0);
        c.query_drop("DROP TABLE d2").await.unwrap();
        let tables: Vec<String> = c.query("SHOW TABLES").await.unwrap();
        assert_eq!(tables, vec!["made_on_cn2"]);
    });
}

#[test]
fn connection_limit_and_malformed_packets() {
    block_on(async {
        let (addr, _cl) = start_cn(&env().metadb_url, 2).await;
        let o = mysql_async::Opts::from_url(&url(addr, None)).unwrap();
        let _a = mysql_async::Conn::new(o.clone()).await.unwrap();
        let _b = mysql_async::Conn::new(o.clone()).await.unwrap();
        let e = mysql_async::Conn::new(o.clone()).await.unwrap_err();
        assert_eq!(code(e), 1040);
        // Garbage instead of a handshake response: an error, server lives.
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(env().cn_addr).await.unwrap();
        let mut buf = vec![0u8; 512];
        let _ = s.read(&mut buf).await.unwrap();
        s.write_all(&[3, 0, 0, 1, 0xff, 0xff, 0xff]).await.unwrap();
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 4 && buf[4] == 0xff, "expected an ERR packet");
        let mut c = connect(None).await;
        let one: i64 = c.query_first("SELECT 1").await.unwrap().unwrap();
        assert_eq!(one, 1);
    });
}

/// `SELECT COUNT(*) FROM k` on every connection at once.
async fn count_on_each(conns: &mut [mysql_async::Conn]) -> Vec<mysql_async::Result<i64>> {
    let counts =
        conns.iter_mut().map(|c| async move { Ok(c.query_first("SELECT COUNT(*) FROM k").await?.unwrap_or(-1)) });
    futures::future::join_all(counts).await
}

#[test]
fn dn_down_gives_an_error_naming_it_and_recovers() {
    block_on_exclusive(async {
        let mut c = fresh_db("t_down").await;
        c.query_drop("CREATE TABLE k (id INT PRIMARY KEY) PARTITION BY KEY(id) PARTITIONS 2").await.unwrap();
        c.query_drop("INSERT INTO k VALUES (1),(2),(3),(4)").await.unwrap();
        // Concurrent reads leave several idle connections to dn1 in the pool.
        let mut others = Vec::new();
        for _ in 0..4 {
            others.push(connect(Some("t_down")).await);
        }
        count_on_each(&mut others).await.into_iter().for_each(|n| assert_eq!(n.unwrap(), 4));
        env().pg.lock().await.topo.dns[1].stop().await;
        let e = c.query_drop("SELECT COUNT(*) FROM k").await.unwrap_err();
        assert!(e.to_string().contains("dn1"), "error names the DN: {e}");
        let one: i64 = c.query_first("SELECT 1 + 0").await.unwrap().unwrap_or(1);
        assert_eq!(one, 1);
        env().pg.lock().await.topo.restart_dn(1, 64).await.unwrap();
        let mut ok = false;
        for _ in 0..50 {
            if let Ok(Some(n)) = c.query_first::<i64, _>("SELECT COUNT(*) FROM k").await {
                assert_eq!(n, 4);
                ok = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        assert!(ok, "the CN recovers when the DN returns");
        // And stays recovered: no pooled connection to the old dn1 process
        // fails a later statement.
        for n in count_on_each(&mut others).await {
            assert_eq!(n.expect("no stale DN connection"), 4);
        }
    });
}

/// A DN killed between an async commit's first and second `XA COMMIT`
/// holds a decided branch the CN cannot commit until the DN is back. Reads
/// of that DN wait for such branches (snapshot isolation); with the DN down
/// they used to wait with no end (this test's single-shard read and COUNT
/// timed out at 20 s; the CI hang of `dn_down_gives_an_error_naming_it_and_recovers`
/// was this wait, when its INSERT's second phase lost the race with the stop).
/// Now they end with an error naming the DN, and once it restarts recovery
/// commits the branch: the update is whole.
#[test]
fn reads_of_a_dn_that_died_before_a_second_phase_fail_naming_it_then_recover() {
    use cn::txn::failpoint::{self, Action, AFTER_FIRST_COMMIT};
    use std::time::Duration;
    block_on_exclusive(async {
        let mut c = fresh_db("t_phase2").await;
        c.query_drop("CREATE TABLE k (id INT PRIMARY KEY, v INT) PARTITION BY KEY(id) PARTITIONS 2").await.unwrap();
        c.query_drop("INSERT INTO k VALUES (1,0),(2,0),(3,0),(4,0),(5,0),(6,0)").await.unwrap();
        c.query_drop("SET cn_async_commit = ON").await.unwrap();
        failpoint::arm(AFTER_FIRST_COMMIT, Action::Exec("sleep 1".into()));
        c.query_drop("UPDATE k SET v = 1").await.expect("acknowledged once decided");
        while failpoint::armed() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The first branch (dn0's) is committed; kill dn1 before its own.
        env().pg.lock().await.topo.dns[1].kill9().await;
        let status = env().cluster.agents[1].status().await.unwrap();
        assert!(!status.decided.is_empty(), "dn1's branch is decided and not yet committed: {status:?}");
        let limit = Duration::from_secs(20);
        let mut named = 0;
        for id in 1..=6 {
            let read = c.query_first::<i32, _>(format!("SELECT v FROM k WHERE id = {id}"));
            match tokio::time::timeout(limit, read).await.expect("a read of a dead DN ends") {
                Ok(v) => assert_eq!(v, Some(1), "id {id} on dn0 is committed"),
                Err(e) => {
                    assert!(e.to_string().contains("dn1"), "error names the DN: {e}");
                    named += 1;
                }
            }
        }
        assert!(named > 0, "some row is on dn1");
        let count = c.query_drop("SELECT COUNT(*) FROM k");
        let e = tokio::time::timeout(limit, count).await.expect("a scan of a dead DN ends").unwrap_err();
        assert!(e.to_string().contains("dn1"), "error names the DN: {e}");
        env().pg.lock().await.topo.restart_dn(1, 64).await.unwrap();
        let mut sum = None;
        for _ in 0..100 {
            sum = c.query_first::<String, _>("SELECT SUM(v) FROM k").await.ok().flatten();
            if sum.as_deref() == Some("6") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(sum.as_deref(), Some("6"), "recovery commits dn1's branch: the update is whole");
    });
}

/// `ANALYZE TABLE` answers as MySQL does and records row counts; with
/// them the CN's hash join builds on the smaller input (before, it built
/// on whichever the query named first).
#[test]
fn analyze_table_gives_row_counts_and_joins_build_on_the_smaller_input() {
    block_on(async {
        let mut c = fresh_db("t_stats").await;
        for t in ["big", "small"] {
            c.query_drop(format!("CREATE TABLE {t} (id INT PRIMARY KEY, k INT) PARTITION BY KEY(id) PARTITIONS 4"))
                .await
                .unwrap();
        }
        let rows = |n: i32| (1..=n).map(|i| format!("({i},{})", i % 50)).collect::<Vec<_>>().join(",");
        c.query_drop(format!("INSERT INTO big VALUES {}", rows(3000))).await.unwrap();
        c.query_drop(format!("INSERT INTO small VALUES {}", rows(20))).await.unwrap();
        let join = "SELECT COUNT(*) FROM big JOIN small ON big.k = small.k";
        // The build side: the table the join's first shard scan reads.
        let build = |plan: &str| -> &'static str {
            let after = &plan[plan.find("HybridHashJoinExec").expect("a hybrid hash join")..];
            match (after.find("`big"), after.find("`small")) {
                (Some(b), Some(s)) if b < s => "big",
                (Some(_), Some(_)) => "small",
                _ => panic!("both tables under the join: {plan}"),
            }
        };
        assert_eq!(build(&explain(&mut c, join).await), "big", "without statistics the first table builds");
        let table_rows = "SELECT table_name, table_rows, data_length FROM information_schema.tables \
                          WHERE table_schema = 't_stats' ORDER BY table_name";
        let before: Vec<(String, Option<u64>, Option<u64>)> = c.query(table_rows).await.unwrap();
        assert_eq!(before, vec![("big".into(), None, None), ("small".into(), None, None)], "never analyzed");
        let answer: Vec<(String, String, String, String)> = c.query("ANALYZE TABLE big, small, nope").await.unwrap();
        let row = |t: &str, kind: &str, text: &str| {
            (t.to_string(), "analyze".to_string(), kind.to_string(), text.to_string())
        };
        assert_eq!(
            answer,
            vec![
                row("t_stats.big", "status", "OK"),
                row("t_stats.small", "status", "OK"),
                row("t_stats.nope", "Error", "Table 't_stats.nope' doesn't exist"),
                row("t_stats.nope", "status", "Operation failed"),
            ]
        );
        assert_eq!(build(&explain(&mut c, join).await), "small", "with statistics the smaller input builds");
        let after: Vec<(String, Option<u64>, Option<u64>)> = c.query(table_rows).await.unwrap();
        let (big, small) = (after[0].1.unwrap(), after[1].1.unwrap());
        assert!((2700..=3300).contains(&big) && (10..=30).contains(&small), "InnoDB's estimates: {after:?}");
        assert!(after[0].2.unwrap() > after[1].2.unwrap(), "{after:?}");
        let n: i64 = c.query_first(join).await.unwrap().unwrap();
        assert_eq!(n, 20 * 60, "each of small's 20 keys matches 60 rows of big");
        // Filters the columns' statistics estimate: one row of big by its
        // key (1 of 3,000 distinct), five by a range of it, build; 20 % of
        // big's shard (150 rows) would not have.
        for q in [format!("{join} WHERE big.id = 7"), format!("{join} WHERE big.id BETWEEN 1 AND 5")] {
            assert_eq!(build(&explain(&mut c, &q).await), "big", "{q}");
        }
        let n: i64 = c.query_first(format!("{join} WHERE big.id = 7")).await.unwrap().unwrap();
        assert_eq!(n, 1);
        // A filter they cannot estimate keeps the 20 %.
        assert_eq!(build(&explain(&mut c, &format!("{join} WHERE big.id * 2 = 14")).await), "small");
        let e = c.query_drop("ANALYZE TABLE").await.unwrap_err();
        assert!(e.to_string().contains("1064") || e.to_string().contains("expected ANALYZE"), "{e}");
    });
}

/// Join order from the statistics: with them, a FROM list written with
/// its filtered table last is joined filtered table first (30 rows meet
/// the third table, not 3,000), and answers as MariaDB does.
#[test]
fn joins_run_in_the_order_the_statistics_make_cheapest() {
    block_on(async {
        let mut c = fresh_db("t_order").await;
        let mut r = reference_db("t_order_reference").await;
        let ddl = [
            "CREATE TABLE fact (id INT PRIMARY KEY, a INT, b INT, v INT) PARTITION BY KEY(id) PARTITIONS 4",
            "CREATE TABLE da (id INT PRIMARY KEY, name VARCHAR(20)) PARTITION BY KEY(id) PARTITIONS 4",
            "CREATE TABLE db (id INT PRIMARY KEY, tag INT) PARTITION BY KEY(id) PARTITIONS 4",
        ];
        let fact = (1..=3000).map(|i| format!("({i},{},{},{i})", i % 300 + 1, i * 7 % 300 + 1)).collect::<Vec<_>>();
        let da = (1..=300).map(|i| format!("({i},'n{}')", i % 17)).collect::<Vec<_>>();
        let db = (1..=300).map(|i| format!("({i},{})", i % 100)).collect::<Vec<_>>();
        for (conn, sharded) in [(&mut c, true), (&mut r, false)] {
            for d in ddl {
                conn.query_drop(if sharded { d } else { &d[..d.find(" PARTITION").unwrap()] }).await.unwrap();
            }
            conn.query_drop(format!("INSERT INTO fact VALUES {}", fact.join(","))).await.unwrap();
            conn.query_drop(format!("INSERT INTO da VALUES {}", da.join(","))).await.unwrap();
            conn.query_drop(format!("INSERT INTO db VALUES {}", db.join(","))).await.unwrap();
        }
        let q = "SELECT COUNT(*), SUM(fact.v), MIN(da.name) FROM fact, da, db \
                 WHERE fact.a = da.id AND fact.b = db.id AND db.tag = 7";
        // Which join is the lower one: it is printed after the upper one.
        let joins_db_first = |plan: &str| {
            let (a, b) = (plan.find("fact.a = da.id"), plan.find("fact.b = db.id"));
            a.expect(plan) < b.expect(plan)
        };
        assert!(!joins_db_first(&explain(&mut c, q).await), "without statistics, as written");
        c.query_drop("ANALYZE TABLE fact, da, db").await.unwrap();
        assert!(joins_db_first(&explain(&mut c, q).await), "with them, db's 3 rows first");
        let cn: Vec<(i64, String, String)> = c.query(q).await.unwrap();
        let plain: Vec<(i64, String, String)> = r.query(q).await.unwrap();
        assert_eq!(cn, plain);
        assert_eq!(cn[0].0, 30, "{cn:?}");
        // The column order of `*` is the FROM list's, whatever the join order.
        let star = "SELECT * FROM fact, da, db WHERE fact.a = da.id AND fact.b = db.id AND db.tag = 7 ORDER BY fact.id";
        let cn: Vec<Row> = c.query(star).await.unwrap();
        let plain: Vec<Row> = r.query(star).await.unwrap();
        let text = |rows: &[Row]| format!("{:?}", rows.iter().map(|r| r.clone().unwrap()).collect::<Vec<_>>());
        assert_eq!(text(&cn), text(&plain));
    });
}

/// Lookup joins: a join of a small side with a large table reads the large
/// one by `IN (keys)` in its shards' SQL, and every join type that allows
/// it answers as the full read does (`cn_lookup_join = OFF`).
#[test]
fn lookup_joins_read_the_large_side_by_its_keys_and_answer_as_a_full_read() {
    block_on(async {
        let mut c = fresh_db("t_lookup").await;
        c.query_drop(
            "CREATE TABLE fact (id INT PRIMARY KEY, part INT, qty INT, LOCAL KEY part (part)) \
             PARTITION BY KEY(id) PARTITIONS 4",
        )
        .await
        .unwrap();
        c.query_drop("CREATE TABLE dim (id INT PRIMARY KEY, name VARCHAR(20)) PARTITION BY KEY(id) PARTITIONS 4")
            .await
            .unwrap();
        let facts = (1..=6000).map(|i| format!("({i},{},{})", i % 1000, i % 10)).collect::<Vec<_>>().join(",");
        c.query_drop(format!("INSERT INTO fact VALUES {facts}")).await.unwrap();
        let dims = (0..1000).map(|i| format!("({i},'n{i}')")).collect::<Vec<_>>().join(",");
        c.query_drop(format!("INSERT INTO dim VALUES {dims}")).await.unwrap();
        // `twin` is co-located with `fact` (the same partitioning), `other`
        // is not.
        c.query_drop("CREATE TABLE twin (id INT PRIMARY KEY, tag INT) PARTITION BY KEY(id) PARTITIONS 4")
            .await
            .unwrap();
        c.query_drop("CREATE TABLE other (id INT PRIMARY KEY, v INT) PARTITION BY KEY(id) PARTITIONS 3").await.unwrap();
        let twins = (1..=6000).map(|i| format!("({i},{})", i % 100)).collect::<Vec<_>>().join(",");
        c.query_drop(format!("INSERT INTO twin VALUES {twins}")).await.unwrap();
        // other has 10 times the rows: a lookup's keys are worth reading
        // into it too.
        for chunk in (1..=60_000).collect::<Vec<i32>>().chunks(10_000) {
            let rows = chunk.iter().map(|i| format!("({i},{})", i % 100)).collect::<Vec<_>>().join(",");
            c.query_drop(format!("INSERT INTO other VALUES {rows}")).await.unwrap();
        }
        c.query_drop("ANALYZE TABLE fact, dim, twin, other").await.unwrap();
        // fact's 6,000 rows pass this; a filtered dim is the small side, and
        // up to 20 of its keys (6 facts each) select at most 2 % of fact.
        c.query_drop("SET cn_lookup_min_rows = 1000").await.unwrap();
        let point = "SELECT SUM(f.qty), COUNT(*) FROM fact f JOIN dim d ON f.part = d.id WHERE d.name IN ('n7', 'n8')";
        let plan = explain(&mut c, point).await;
        let fact_sql: Vec<&str> = plan.lines().filter(|l| l.contains("FROM `t_lookup`.`fact")).collect();
        assert_eq!(fact_sql.len(), 4, "one query per shard of fact: {plan}");
        // (DataFusion writes a short IN list as ORs.)
        let by_keys = |l: &str| l.contains("`part` = 7") && l.contains("`part` = 8");
        assert!(fact_sql.iter().all(|l| by_keys(l)), "fact is read by dim's keys: {plan}");
        // The small side of an inner join is read once: its rows give the
        // keys and stand in for it in the plan.
        assert!(plan.contains("__cn_lookup_rows_0"), "dim's rows are kept: {plan}");
        assert!(!plan.contains("FROM `t_lookup`.`dim"), "dim is not read again: {plan}");
        let queries = [
            point.to_string(),
            // Q17's shape: a correlated aggregate over the large table.
            "SELECT COUNT(*), SUM(f.qty) FROM fact f JOIN dim d ON f.part = d.id \
             WHERE d.name IN ('n1', 'n2', 'n999') AND f.qty < (SELECT AVG(f2.qty) FROM fact f2 WHERE f2.part = d.id)"
                .to_string(),
            // The inner side of an outer join, of a semi and of an anti join.
            "SELECT d.id, COUNT(f.id), SUM(f.qty) FROM dim d LEFT JOIN fact f ON f.part = d.id \
             WHERE d.name LIKE 'n1_' GROUP BY d.id ORDER BY d.id"
                .to_string(),
            "SELECT COUNT(*) FROM dim d WHERE d.name LIKE 'n2_' AND d.id IN (SELECT part FROM fact WHERE qty > 7)"
                .to_string(),
            "SELECT COUNT(*) FROM dim d WHERE d.name LIKE 'n2_' \
             AND NOT EXISTS (SELECT 1 FROM fact f WHERE f.part = d.id AND f.qty > 8)"
                .to_string(),
            // No key at all: nothing to look up.
            "SELECT COUNT(*), SUM(f.qty) FROM fact f JOIN dim d ON f.part = d.id WHERE d.name = 'none'".to_string(),
            // A co-located join: pushed whole, no lookup.
            "SELECT COUNT(*), SUM(f.qty) FROM fact f JOIN twin t ON f.id = t.id WHERE t.tag = 3 AND t.id > 0"
                .to_string(),
            // TPC-H Q20's shape: the same, and an aggregate over a table
            // that is not co-located, by the same key: the keys of twin
            // read fact and other.
            "SELECT COUNT(*), SUM(f.qty) FROM fact f WHERE f.id IN (SELECT id FROM twin WHERE tag = 3 AND id > 0) \
             AND f.qty < (SELECT SUM(o.v) FROM other o WHERE o.id = f.id)"
                .to_string(),
            "SELECT COUNT(*), SUM(f.qty) FROM fact f WHERE f.part IN (SELECT id FROM dim WHERE name LIKE 'n1_')"
                .to_string(),
            // A literal list on fact's partition key, each shard its share.
            format!(
                "SELECT COUNT(*), SUM(d.id), SUM(f.qty) FROM fact f JOIN dim d ON f.part = d.id WHERE f.id IN ({}) \
                 OR f.id NOT IN ({})",
                (1..=40).map(|i| i.to_string()).collect::<Vec<_>>().join(", "),
                (1..=5990).map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
            ),
            // Too many keys (all of dim's): no lookup, dim's rows read once.
            "SELECT COUNT(*), SUM(f.qty), SUM(d.id) FROM fact f JOIN dim d ON f.part = d.id WHERE d.name LIKE 'n%'"
                .to_string(),
        ];
        let plan = explain(&mut c, &queries[10]).await;
        assert!(plan.contains("__cn_lookup_rows_") && !plan.contains("FROM `t_lookup`.`dim"), "{plan}");
        assert!(!plan.contains("`part` IN ("), "no lookup into fact: {plan}");
        let plan = explain(&mut c, &queries[6]).await;
        let fact_sql: Vec<&str> = plan.lines().filter(|l| l.contains("FROM `t_lookup`.`fact")).collect();
        assert_eq!(fact_sql.len(), 4, "one query per shard: {plan}");
        assert!(
            fact_sql.iter().all(|l| l.contains("`twin") && !l.contains(" IN (")),
            "pushed whole, no lookup: {plan}"
        );
        let plan = explain(&mut c, &queries[7]).await;
        // Each shard of fact and of other gets its share of twin's 60 keys
        // (the ids with tag 3), as the key's partitioning spreads them: no
        // key twice, none left out.
        let shares = |plan: &str, t: &str| -> Vec<Vec<i32>> {
            plan.lines()
                .filter(|l| l.contains(&format!("FROM `t_lookup`.`{t}")))
                .filter_map(|l| {
                    let list = &l[l.find("`id` IN (")? + 9..];
                    Some(list[..list.find(')')?].split(", ").map(|v| v.parse().unwrap()).collect())
                })
                .collect()
        };
        let whole = |lists: &[Vec<i32>]| {
            let mut keys = lists.concat();
            keys.sort();
            keys
        };
        for (t, shards) in [("fact", 4), ("other", 3)] {
            let lists = shares(&plan, t);
            assert_eq!(lists.len(), shards, "{t} is read by twin's keys on every shard: {plan}");
            assert!(lists.iter().all(|l| l.len() < 60), "each shard gets a share: {lists:?}");
            assert_eq!(whole(&lists), (0..60).map(|i| 3 + 100 * i).collect::<Vec<_>>(), "{t}'s shares: {lists:?}");
        }
        // A user's list on the key, in a plain scan of fact, is shared out
        // the same way.
        let ids: Vec<String> = (1..=40).map(|i| i.to_string()).collect();
        let listed = format!(
            "SELECT COUNT(*), SUM(d.id) FROM fact f JOIN dim d ON f.part = d.id WHERE f.id IN ({})",
            ids.join(", ")
        );
        let plan = explain(&mut c, &listed).await;
        let lists = shares(&plan, "fact");
        assert_eq!(lists.len(), 4, "{plan}");
        assert!(lists.iter().all(|l| l.len() < 40), "each shard gets a share: {lists:?}");
        assert_eq!(whole(&lists), (1..=40).collect::<Vec<_>>());
        // A semi join that is not co-located becomes the IN list of its
        // keys: dim is read once, for them.
        let plan = explain(&mut c, &queries[8]).await;
        assert_eq!(plan.matches("`t_lookup`.`dim").count(), 0, "the semi join became the IN list: {plan}");
        assert!(plan.contains("`part` IN (10, 11, 12, 13, 14, 15, 16, 17, 18, 19)"), "{plan}");
        // The inner sides of the left join and of the anti join are read by
        // the keys of `n10`..`n19` and `n20`..`n29`.
        for (q, keys) in [(&queries[2], "IN (10, 11, 12, 13, 14, 15, 16, 17, 18, 19)"), (&queries[4], "IN (20, 21,")] {
            let plan = explain(&mut c, q).await;
            assert!(plan.lines().any(|l| l.contains("`t_lookup`.`fact") && l.contains(keys)), "{q}: {plan}");
        }
        let mut answers = Vec::new();
        let mut key_reads = Vec::new();
        for q in &queries {
            let before = status(&mut c, "Cn_lookup_key_reads").await;
            let rows: Vec<mysql_async::Row> = c.query(q.as_str()).await.unwrap();
            key_reads.push(status(&mut c, "Cn_lookup_key_reads").await - before);
            answers.push(format!("{rows:?}"));
        }
        // Q17's and Q20's shapes make two lookups with one key read: the
        // second lookup's small side is bounded by the first one's list
        // (fact read by dim's keys, joined to the aggregate over fact; the
        // aggregate over other joined to fact read by twin's keys).
        assert_eq!((key_reads[1], key_reads[7]), (1, 1), "{key_reads:?}");
        assert_eq!((key_reads[0], key_reads[6]), (1, 0), "{key_reads:?}");
        // ANALYZE TABLE recorded each column's NDV over all shards: SHOW
        // INDEX gives the whole table's (a shard holds about 1,500 facts
        // and 780 of the parts).
        let index: Vec<mysql_async::Row> = c.query("SHOW INDEX FROM fact").await.unwrap();
        let cardinality = |key: &str| {
            let row = index.iter().find(|r| r.get::<String, _>(2).as_deref() == Some(key)).expect(key);
            row.get::<u64, _>(6).unwrap()
        };
        assert_eq!(cardinality("PRIMARY"), 6000);
        // (An estimate: each part's 6 facts spread over the shards more
        // evenly than values drawn at random, which the shards' NDVs are
        // read as, and the estimate comes out about 11 % high.)
        assert!((900..=1150).contains(&cardinality("part")), "fact's 1,000 parts: {}", cardinality("part"));
        // Keys that the statistics put well above what a lookup takes are
        // not read (half of dim's ids by their range: 500 keys where 100
        // would do); dim is then read by the plan, alongside fact.
        let many = "SELECT COUNT(*), SUM(f.qty) FROM fact f JOIN dim d ON f.part = d.id WHERE d.id < 500";
        let before = status(&mut c, "Cn_lookup_key_reads").await;
        let n: (i64, String) = c.query_first(many).await.unwrap().unwrap();
        assert_eq!(status(&mut c, "Cn_lookup_key_reads").await - before, 0, "no key read");
        // Parts 0 to 499: 6 facts each, qty the part's last digit.
        assert_eq!(n, (3000, "13500".into()));
        let plan = explain(&mut c, many).await;
        assert!(plan.contains("FROM `t_lookup`.`dim") && !plan.contains("__cn_lookup_rows"), "{plan}");
        // Sort-merge joins: DataFusion cannot run the key query's LIMITed
        // DISTINCT there; the join is then left whole, with the same answer.
        c.query_drop("SET cn_hash_join = OFF").await.unwrap();
        let rows: Vec<mysql_async::Row> = c.query(queries[1].as_str()).await.unwrap();
        assert_eq!(format!("{rows:?}"), answers[1], "sort-merge joins: {}", queries[1]);
        c.query_drop("SET cn_hash_join = ON").await.unwrap();
        c.query_drop("SET cn_lookup_join = OFF").await.unwrap();
        assert!(!explain(&mut c, point).await.contains("`part` = 7"), "OFF reads fact whole");
        for (q, with_lookup) in queries.iter().zip(&answers) {
            let rows: Vec<mysql_async::Row> = c.query(q.as_str()).await.unwrap();
            assert_eq!(&format!("{rows:?}"), with_lookup, "{q}");
        }
        let n: (i64, i64) = c.query_first(point).await.unwrap().unwrap();
        assert_eq!(n, (90, 12), "parts 7 and 8 have 6 facts each, of qty 7 and 8");
        // ids 1..=40 and 5991..=6000: parts 1..=40, 991..=999 and 0; qty
        // 1..=9 and 0 four times, then once.
        let n: (i64, String, String) = c.query_first(queries[9].as_str()).await.unwrap().unwrap();
        assert_eq!(n, (50, "9775".into(), "225".into()), "{}", queries[9]);
        // An uncorrelated scalar subquery, evaluated before the statement,
        // gets its lookup too: the filtered dim's keys read fact.
        c.query_drop("SET cn_lookup_join = ON").await.unwrap();
        let reads = status(&mut c, "Cn_lookup_key_reads").await;
        let total: i64 = c
            .query_first(format!(
                "SELECT COUNT(*) FROM dim WHERE id < ({point_sum})",
                point_sum = point.replace("SUM(f.qty), COUNT(*)", "SUM(f.qty)")
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status(&mut c, "Cn_lookup_key_reads").await - reads, 1, "the subquery's lookup read its keys");
        let all: i64 = c.query_first("SELECT COUNT(*) FROM dim WHERE id < 90").await.unwrap().unwrap();
        assert_eq!(total, all, "the subquery's value is 90");
    });
}

#[test]
fn mariadb_cli_works_unmodified() {
    block_on(async {
        let mut c = fresh_db("t_cli").await;
        c.query_drop("CREATE TABLE c (id INT PRIMARY KEY, s VARCHAR(10))").await.unwrap();
        c.query_drop("INSERT INTO c VALUES (1,'a'),(2,'b')").await.unwrap();
    });
    let port = env().cn_addr.port().to_string();
    let out = shared(|| {
        std::process::Command::new("mariadb")
            .args([
                "-h127.0.0.1",
                "-P",
                &port,
                "-uroot",
                "-N",
                "-B",
                "t_cli",
                "-e",
                "SELECT id, s FROM c ORDER BY id; SELECT COUNT(*) FROM c",
            ])
            .output()
            .expect("mariadb client installed")
    });
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\ta\n2\tb\n2\n");
}

/// A `mariadb-dump` of a plain MariaDB database loads into the CN through
/// the mariadb CLI (executable comments, SET of saved variables, LOCK
/// TABLES, ALTER TABLE … DISABLE KEYS), and `mariadb-dump` through the CN
/// (with `--routines --events`, and `--single-transaction`) gives a dump
/// that loads back: the
/// rows are the same each way.
#[test]
fn mariadb_dump_loads_into_the_cn_and_dumps_from_it() {
    // The BLOB's bytes as hex: the client's text of 0xFF and of U+FFFD
    // (a lossy load) would read alike.
    let tables = ["SELECT * FROM c ORDER BY 1", "SELECT oid, cid, amount, ts, flag, HEX(b) FROM o ORDER BY 1"];
    let dn_port = block_on(async {
        let mut r = reference_db("t_dump_src").await;
        r.query_drop(
            "CREATE TABLE c (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(40) NOT NULL, bal DECIMAL(12,2) \
             DEFAULT 0, born DATE, note TEXT, KEY k_name (name))",
        )
        .await
        .unwrap();
        r.query_drop(
            "INSERT INTO c (name, bal, born, note) VALUES ('ann', 10.5, '1990-01-02', 'it''s'), \
             ('bob', -3, NULL, 'a\\\\b'), ('Cé', 0, '2000-02-29', NULL)",
        )
        .await
        .unwrap();
        r.query_drop(
            "CREATE TABLE o (oid BIGINT PRIMARY KEY, cid INT, amount DOUBLE, ts DATETIME(3), flag TINYINT(1), b BLOB)",
        )
        .await
        .unwrap();
        r.query_drop(
            "INSERT INTO o VALUES (1, 1, 2.5, '2020-01-01 10:00:00.123', 1, X'00FF27'), (2, 3, 1e10, NULL, 0, NULL)",
        )
        .await
        .unwrap();
        for db in ["t_dump_in", "t_dump_back", "t_dump_snap"] {
            fresh_db(db).await;
        }
        env().pg.lock().await.topo.dns[0].port.to_string()
    });
    let cn_port = env().cn_addr.port().to_string();
    let dump = |port: &str, db: &str, extra: &[&str]| {
        let out = std::process::Command::new("mariadb-dump")
            .args(["-h127.0.0.1", "-P", port, "-uroot"])
            .args(extra)
            .arg(db)
            .output()
            .expect("mariadb-dump installed");
        assert!(out.status.success(), "dump of {db}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    let load = |db: &str, sql: &[u8]| {
        use std::io::Write;
        let mut child = std::process::Command::new("mariadb")
            .args(["-h127.0.0.1", "-P", &cn_port, "-uroot", "-N", "-B", db])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("mariadb client installed");
        child.stdin.take().unwrap().write_all(sql).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "load into {db}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let rows = |port: &str, db: &str, q: &str| {
        let out = std::process::Command::new("mariadb")
            .args(["-h127.0.0.1", "-P", port, "-uroot", "-N", "-B", db, "-e", q])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    shared(|| {
        // Without --hex-blob: the BLOB's bytes stand in the dump as they are.
        let mut sql = dump(&dn_port, "t_dump_src", &[]);
        assert!(sql.windows(2).any(|w| w == [b'\\', b'0']) && std::str::from_utf8(&sql).is_err());
        // The dump's settings are restored at its end, in the same session.
        sql.extend_from_slice(b"\nSELECT @@time_zone, @@unique_checks, @@sql_mode = @old_sql_mode;\n");
        let settings = load("t_dump_in", &sql);
        assert_eq!(settings.trim_end().rsplit('\n').next().unwrap(), "SYSTEM\t1\t1", "{settings}");
        for t in tables {
            let want = rows(&dn_port, "t_dump_src", t);
            assert!(want.lines().count() >= 2, "{want}");
            assert_eq!(rows(&cn_port, "t_dump_in", t), want, "{t}: loaded from MariaDB's dump");
        }
        // information_schema.PARTITIONS (mariadb-dump reads it): a row per
        // partition of the sharded table.
        let parts =
            "SELECT COUNT(*), MIN(PARTITION_METHOD), MIN(PARTITION_EXPRESSION), MAX(PARTITION_ORDINAL_POSITION) \
                     FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = 't_dump_in' AND TABLE_NAME = 'c'";
        assert_eq!(rows(&cn_port, "t_dump_in", parts), "16\tKEY\tid\t16\n");
        for (db, extra) in
            [("t_dump_back", &["--routines", "--events"][..]), ("t_dump_snap", &["--single-transaction"][..])]
        {
            let sql = dump(&cn_port, "t_dump_in", extra);
            assert!(String::from_utf8_lossy(&sql).contains("INSERT INTO `c` VALUES"));
            load(db, &sql);
            for t in tables {
                assert_eq!(rows(&cn_port, db, t), rows(&dn_port, "t_dump_src", t), "{t}: through the CN's dump");
            }
        }
    });
}

/// A prepared statement's BLOB parameter keeps its bytes (they were read
/// as UTF-8, lossily: 0xFF became U+FFFD). (Query texts with such bytes:
/// `mariadb_dump_loads_into_the_cn_and_dumps_from_it`.)
#[test]
fn binary_parameters_and_literals_keep_their_bytes() {
    block_on(async {
        let mut c = fresh_db("t_blob").await;
        c.query_drop("CREATE TABLE b (id INT PRIMARY KEY, v BLOB)").await.unwrap();
        c.exec_drop("INSERT INTO b VALUES (?, ?)", (1, vec![0u8, 0xFF, b'\'', 0xC3])).await.unwrap();
        c.exec_drop("INSERT INTO b VALUES (?, ?)", (2, "caf\u{e9}")).await.unwrap();
        let hex: Vec<(i32, String)> = c.query("SELECT id, HEX(v) FROM b ORDER BY id").await.unwrap();
        assert_eq!(hex, [(1, "00FF27C3".to_string()), (2, "636166C3A9".to_string())]);
        let v: Option<Vec<u8>> = c.exec_first("SELECT v FROM b WHERE id = ?", (1,)).await.unwrap();
        assert_eq!(v.unwrap(), [0u8, 0xFF, b'\'', 0xC3]);
    });
}

/// PyMySQL (pure Python, text protocol, client-side parameters) works
/// unmodified: `cn/tests/clients/pymysql_check.py` (`.ci/install-deps`
/// installs PyMySQL).
#[test]
fn pymysql_works_unmodified() {
    block_on(async {
        fresh_db("t_pymysql").await;
    });
    let port = env().cn_addr.port().to_string();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/pymysql_check.py");
    let out = shared(|| {
        std::process::Command::new("python3").args([script, &port, "t_pymysql"]).output().expect("python3 installed")
    });
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let want = [
        "rowcount 2",
        "columns ['id', 'name', 'price', 'at']",
        "row (1, \"O'Brien \\\\ \u{e9}\u{e8}\", Decimal('12.50'), datetime.datetime(2026, 11, 22, 10, 0))",
        "row (2, 'b', Decimal('1.00'), None)",
        "row (3, None, None, None)",
        "sum 13.50",
        "error 1054",
        "count 1",
    ];
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().collect::<Vec<_>>(), want);
}

#[test]
fn timestamps_come_from_the_tso_service() {
    block_on(async {
        let mut c = connect(None).await;
        let a: u64 = c.query_first("SELECT TSO_TIMESTAMP()").await.unwrap().unwrap();
        // Straight from the TSO with the project's client: above the CN's.
        let direct = tso::TsoClient::new(vec![env().tso_addr.clone()], tso::ClientOptions::default());
        let b = direct.get_ts().await.unwrap();
        assert!(b > a, "{b} after {a}");
        let row: Row = c.query_first("SELECT TSO_TIMESTAMP() AS t, TSO_TIMESTAMP() > 0").await.unwrap().unwrap();
        let c2: u64 = row.get(0).unwrap();
        assert!(c2 > b, "{c2} after {b}");
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        assert!(tso::physical(c2).abs_diff(now_ms) < 10_000, "physical part is wall-clock milliseconds");
    });
}

/// A connection that may send the listed files for LOAD DATA LOCAL INFILE.
async fn infile_conn(port: u16, files: &[std::path::PathBuf]) -> mysql_async::Conn {
    let opts = mysql_async::OptsBuilder::from_opts(
        mysql_async::Opts::from_url(&format!("mysql://root@127.0.0.1:{port}")).unwrap(),
    )
    .local_infile_handler(Some(mysql_async::WhiteListFsHandler::new(files.to_vec())));
    mysql_async::Conn::new(opts).await.unwrap()
}

type LoadedRow = (i32, Option<String>, Option<String>, Option<String>, Option<String>);

#[test]
fn load_data_local_infile_matches_mariadb() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("a.csv");
    let tsv = dir.path().join("b.tsv");
    let bad = dir.path().join("bad.tsv");
    // CSV: a header, CRLF lines, quoted fields with commas, doubled quotes
    // and a line break, \N, an escaped comma, non-ASCII text, a duplicate
    // key, a short line and a long one.
    let mut s = String::from("id,name,score,tag\r\n");
    for i in 1..=2500 {
        s.push_str(&format!("{i},\"n{i}, \"\"q\"\"\",{}.25,t{}\r\n", i * 3, i % 7));
    }
    s.push_str("2501,\\N,1.5,\\N\r\n2502,\"two\r\nlines\",2,x\r\n2503,a\\,b,3,y\r\n2504,größe ✓,4,z\r\n");
    s.push_str("7,duplicate,0,d\r\n2505,short\r\n2506,long,5,w,extra,more\r\n");
    std::fs::write(&csv, s).unwrap();
    // TSV with the defaults: tabs, newlines, backslash escapes.
    let mut t = String::new();
    for i in (1..=3000).step_by(3) {
        t.push_str(&format!("{i}\tnote\\t{i}\n"));
    }
    std::fs::write(&tsv, t).unwrap();
    // A bad partition key value far into the file.
    let mut b = String::new();
    for i in 1..=1500 {
        b.push_str(&format!("{}\tbad{i}\n", 5000 + i));
    }
    b.push_str("oops\tbad\n");
    std::fs::write(&bad, b).unwrap();
    let files = vec![csv.clone(), tsv.clone(), bad.clone()];
    let (csv, tsv, bad) = (csv.display(), tsv.display(), bad.display());
    let statements = [
        format!(
            "LOAD DATA LOCAL INFILE '{csv}' INTO TABLE l FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' \
             LINES TERMINATED BY '\\r\\n' IGNORE 1 LINES (id, name, score, @t) SET tag = UPPER(@t)"
        ),
        format!("LOAD DATA LOCAL INFILE '{tsv}' REPLACE INTO TABLE l (id, note)"),
        format!("LOAD DATA LOCAL INFILE '{tsv}' IGNORE INTO TABLE l (@id, note) SET id = @id + 10000"),
    ];
    block_on(async {
        let cn_port = env().cn_addr.port();
        let dn_port = env().pg.lock().await.topo.dns[0].port;
        let ddl = "CREATE TABLE l (id INT PRIMARY KEY, name VARCHAR(40), score DECIMAL(10,2) DEFAULT 7, \
                   note VARCHAR(20) DEFAULT 'n', tag VARCHAR(10))";
        let mut cn = infile_conn(cn_port, &files).await;
        let mut md = infile_conn(dn_port, &files).await;
        for (c, db, part) in [(&mut cn, "t_load", " PARTITION BY KEY(id) PARTITIONS 8"), (&mut md, "t_load_ref", "")] {
            c.query_drop(format!("DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db}; USE {db}")).await.unwrap();
            c.query_drop(format!("{ddl}{part}")).await.unwrap();
        }
        let select = "SELECT id, name, CAST(score AS CHAR), note, tag FROM l ORDER BY id";
        for st in &statements {
            cn.query_drop(st).await.unwrap();
            md.query_drop(st).await.unwrap();
            assert_eq!(cn.affected_rows(), md.affected_rows(), "{st}");
            assert_eq!(cn.info(), md.info(), "{st}");
            let (a, b): (Vec<LoadedRow>, Vec<LoadedRow>) =
                (cn.query(select).await.unwrap(), md.query(select).await.unwrap());
            assert_eq!(a.len(), b.len(), "{st}");
            assert!(a == b, "{st}: first difference {:?}", a.iter().zip(&b).find(|(x, y)| x != y));
        }
        let n: i64 = cn.query_first("SELECT COUNT(*) FROM l").await.unwrap().unwrap();
        // 2,506 CSV rows; the TSV's 1,000 ids replace 836 of them and add
        // 164; the third load adds 1,000 more.
        assert_eq!(n, 3670);

        // A failing row undoes the whole load, on both.
        let st = format!("LOAD DATA LOCAL INFILE '{bad}' REPLACE INTO TABLE l (id, name)");
        let (e1, e2) = (cn.query_drop(&st).await.unwrap_err(), md.query_drop(&st).await.unwrap_err());
        assert_eq!((code(e1), code(e2)), (1366, 1366));
        let m: i64 = cn.query_first("SELECT COUNT(*) FROM l").await.unwrap().unwrap();
        assert_eq!(m, n, "the failed load left rows behind");
        // The connection is still in step after the error.
        let one: i64 = cn.query_first("SELECT 1").await.unwrap().unwrap();
        assert_eq!(one, 1);

        // Inside a transaction: rolled back with it, or committed with it.
        let st = format!("LOAD DATA LOCAL INFILE '{tsv}' INTO TABLE l (@id, note) SET id = @id + 20000");
        cn.query_drop("BEGIN").await.unwrap();
        cn.query_drop(&st).await.unwrap();
        let inside: i64 = cn.query_first("SELECT COUNT(*) FROM l").await.unwrap().unwrap();
        assert_eq!(inside, n + 1000);
        cn.query_drop("ROLLBACK").await.unwrap();
        let after: i64 = cn.query_first("SELECT COUNT(*) FROM l").await.unwrap().unwrap();
        assert_eq!(after, n);

        // Errors before the file is asked for.
        let e = cn.query_drop(format!("LOAD DATA LOCAL INFILE '{tsv}' INTO TABLE nope")).await.unwrap_err();
        assert_eq!(code(e), 1146);
        let e = cn.query_drop(format!("LOAD DATA LOCAL INFILE '{tsv}' INTO TABLE l (id, nope)")).await.unwrap_err();
        assert_eq!(code(e), 1054);
        let e = cn.query_drop(format!("LOAD DATA INFILE '{tsv}' INTO TABLE l")).await.unwrap_err();
        assert_eq!(code(e), 1235);
    });

    // The mariadb CLI (libmariadb) sends the file, and reads the OK's info.
    let port = env().cn_addr.port().to_string();
    let sql =
        format!("LOAD DATA LOCAL INFILE '{tsv}' INTO TABLE l (@id, note) SET id = @id + 30000; SELECT COUNT(*) FROM l");
    let run = |local: &str| {
        shared(|| {
            std::process::Command::new("mariadb")
                .args(["-h127.0.0.1", "-P", &port, "-uroot", "-N", "-B", "-vv", local, "t_load", "-e", &sql])
                .output()
                .expect("mariadb client installed")
        })
    };
    let out = run("--local-infile=1");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("Records: 1000  Deleted: 0  Skipped: 0  Warnings: 0"), "{stdout}");
    assert!(stdout.contains("\n4670\n"), "{stdout}");
    // A client that does not allow local files gets 1148, and nothing is read.
    let out = run("--local-infile=0");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("1148"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The CN's `utf8mb4_general_ci` weights (`cn::collation`) are MariaDB's:
/// `utf8mb4_general_ci` holds where the CN computes inside an uncorrelated
/// subquery too (DataFusion runs one as a plan of its own): its GROUP BY,
/// COUNT(DISTINCT), join and comparisons of strings group `abc`, `ABC` and
/// `abc ` together, as MariaDB does.
#[test]
fn general_ci_holds_inside_uncorrelated_subqueries() {
    block_on(async {
        let mut c = fresh_db("t_ci_sub").await;
        c.query_drop("CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(10)) PARTITION BY KEY(id) PARTITIONS 4")
            .await
            .unwrap();
        c.query_drop("INSERT INTO t VALUES (1,'abc'),(2,'ABC'),(3,'Abc'),(4,'x'),(5,'X'),(6,'abc ')").await.unwrap();
        for (sql, want) in [
            ("SELECT (SELECT COUNT(*) FROM (SELECT s FROM t GROUP BY s) x)", 2),
            ("SELECT (SELECT COUNT(DISTINCT s) FROM t)", 2),
            ("SELECT (SELECT COUNT(*) FROM t a JOIN t b ON a.s = b.s)", 20),
            ("SELECT (SELECT COUNT(*) FROM t WHERE s > 'abc')", 2),
            ("SELECT COUNT(*) FROM t WHERE id = 1 AND 2 = (SELECT COUNT(DISTINCT s) FROM t)", 1),
        ] {
            let got: Option<i64> = c.query_first(sql).await.unwrap().unwrap();
            assert_eq!(got, Some(want), "{sql}");
        }
    });
}

/// An uncorrelated scalar subquery in WHERE or HAVING is evaluated first
/// and its value sent to the shards with the filter, as MySQL evaluates it
/// once; more than one row is ERR 1242 (SQLSTATE 21000), none is NULL.
#[test]
fn uncorrelated_scalar_subqueries_are_evaluated_first_and_pushed_as_values() {
    block_on(async {
        let mut c = fresh_db("t_scalar_sub").await;
        c.query_drop("CREATE TABLE t (id INT PRIMARY KEY, g INT, v DECIMAL(8,2)) PARTITION BY KEY(id) PARTITIONS 4")
            .await
            .unwrap();
        c.query_drop("CREATE TABLE u (id INT PRIMARY KEY, g INT) PARTITION BY KEY(g) PARTITIONS 3").await.unwrap();
        let rows: Vec<String> = (1..=40).map(|i| format!("({i}, {}, {i}.50)", i % 4)).collect();
        c.query_drop(format!("INSERT INTO t VALUES {}", rows.join(", "))).await.unwrap();
        c.query_drop("INSERT INTO u VALUES (1, 1), (2, 2), (3, 1)").await.unwrap();
        let above = "SELECT COUNT(*), SUM(v) FROM t JOIN u ON u.g = t.g WHERE t.v > (SELECT AVG(v) FROM t WHERE g = 2)";
        let plan = explain(&mut c, above).await;
        // AVG of 2.5, 6.5, …, 38.5 is 20.5: the shards get the value.
        assert!(plan.contains("`v` > 20.5"), "the value reaches the shard SQL: {plan}");
        let (n, sum): (i64, String) = c.query_first(above).await.unwrap().unwrap();
        // Rows with v > 20.5 (ids 21..=40) whose g is 1 (twice in u) or 2.
        let want: Vec<i32> = (21..=40).flat_map(|i| std::iter::repeat_n(i, [0, 2, 1, 0][(i % 4) as usize])).collect();
        assert_eq!(n, want.len() as i64);
        assert_eq!(sum, format!("{:.2}", want.iter().map(|&i| i as f64 + 0.5).sum::<f64>()));
        let having: Vec<(i32, i64)> = c
            .query("SELECT g, COUNT(*) FROM t GROUP BY g HAVING SUM(v) >= (SELECT MAX(v) * 5 FROM t WHERE id < 40) ORDER BY g")
            .await
            .unwrap();
        // SUM(v) per g: 200+5 (g=0), 190+5 (1), 200 (2), 210 (3) against 39.5 * 5 = 197.5.
        assert_eq!(having.iter().map(|r| r.0).collect::<Vec<_>>(), vec![0, 2, 3]);
        let none: i64 =
            c.query_first("SELECT COUNT(*) FROM t WHERE v > (SELECT v FROM t WHERE id = 999)").await.unwrap().unwrap();
        assert_eq!(none, 0, "no row is NULL, and nothing is greater than NULL");
        let e = c.query_drop("SELECT COUNT(*) FROM t WHERE v > (SELECT v FROM t WHERE id < 3)").await.unwrap_err();
        match e {
            mysql_async::Error::Server(s) => assert_eq!((s.code, s.state.as_str()), (1242, "21000"), "{}", s.message),
            other => panic!("{other}"),
        }
        c.query_drop("DROP DATABASE t_scalar_sub").await.unwrap();
    });
}

/// A correlated aggregate subquery over the query's own join is computed
/// as a window aggregate over that join (`cn::optimizer::winmagic`, TPC-H
/// Q17 and Q2), with MariaDB's answers, and left to the decorrelation when
/// the outer query filters the subquery's rows further, or when a SUM or
/// AVG would see a row more than once (the correlated key is not a primary
/// key). A window function over a join the CN runs gets its input sorted.
#[test]
fn correlated_aggregates_over_the_same_join_become_window_aggregates() {
    block_on(async {
        let mut c = fresh_db("t_winmagic").await;
        let p = "CREATE TABLE p (pk INT PRIMARY KEY, brand VARCHAR(10), grp INT)";
        let l = "CREATE TABLE l (id INT PRIMARY KEY, pk INT, qty DECIMAL(8,2), price DECIMAL(10,2))";
        c.query_drop(format!("{p} PARTITION BY KEY(pk) PARTITIONS 4")).await.unwrap();
        c.query_drop(format!("{l} PARTITION BY KEY(id) PARTITIONS 4")).await.unwrap();
        let p_rows: Vec<String> = (1..=12).map(|i| format!("({i}, 'b{}', {})", i % 3, i % 4)).collect();
        // Part 12 has no lineitems; some quantities are NULL.
        let l_rows: Vec<String> = (1..=200)
            .map(|i| {
                let qty = if i % 17 == 0 { "NULL".to_string() } else { format!("{}.{}", i % 9, i % 7) };
                format!("({i}, {}, {qty}, {}.25)", i % 11 + 1, i * 3)
            })
            .collect();
        let mut reference = reference_db("winmagic_reference").await;
        reference.query_drop(p).await.unwrap();
        reference.query_drop(l).await.unwrap();
        for conn in [&mut c, &mut reference] {
            conn.query_drop(format!("INSERT INTO p VALUES {}", p_rows.join(", "))).await.unwrap();
            conn.query_drop(format!("INSERT INTO l VALUES {}", l_rows.join(", "))).await.unwrap();
        }
        let rewritten = [
            // Q17's shape: AVG (SUM / COUNT) by the primary key of p.
            "SELECT SUM(price) / 7.0 AS avg_yearly FROM l, p WHERE p.pk = l.pk AND brand = 'b1' \
             AND qty < (SELECT 0.9 * AVG(qty) FROM l WHERE l.pk = p.pk)",
            // Q2's shape: MIN, rows listed.
            "SELECT p.pk, l.id, price FROM p, l WHERE p.pk = l.pk AND grp = 2 \
             AND price = (SELECT MIN(price) FROM l WHERE l.pk = p.pk) ORDER BY p.pk, l.id",
            // MIN by a column that is not p's key: rows repeat, MIN does not mind.
            "SELECT p.grp, COUNT(*) FROM p, l WHERE p.grp = l.pk AND brand <> 'b0' \
             AND qty >= (SELECT MAX(qty) FROM l WHERE l.pk = p.grp) GROUP BY p.grp ORDER BY p.grp",
            // COUNT, compared in both directions.
            "SELECT COUNT(*) FROM l, p WHERE l.pk = p.pk AND (SELECT COUNT(qty) FROM l WHERE p.pk = l.pk) > 17",
            // The same table under other aliases inside and outside.
            "SELECT COUNT(*), SUM(x.price) FROM l x JOIN p y ON x.pk = y.pk WHERE y.brand = 'b2' \
             AND x.qty > (SELECT AVG(z.qty) FROM l z WHERE z.pk = y.pk)",
        ];
        let left = [
            // The outer query keeps fewer of l's rows than the subquery reads.
            "SELECT COUNT(*), SUM(price) FROM l, p WHERE p.pk = l.pk AND l.id > 50 \
             AND qty < (SELECT AVG(qty) FROM l WHERE l.pk = p.pk)",
            // AVG by a column that is not p's key: each l row once per p row of that grp.
            "SELECT COUNT(*) FROM p, l WHERE p.grp = l.pk AND qty > (SELECT AVG(qty) FROM l WHERE l.pk = p.grp)",
            // l twice outside: which one the subquery's l would be is not known.
            "SELECT COUNT(*) FROM l a, l b, p WHERE a.pk = p.pk AND b.id = a.id \
             AND a.qty < (SELECT MAX(c.qty) FROM l c WHERE c.pk = p.pk)",
        ];
        for q in rewritten.iter().chain(&left) {
            let (ours, theirs) = (result_text(&mut c, q).await, result_text(&mut reference, q).await);
            assert_eq!(ours, theirs, "{q}");
            assert!(!ours.starts_with("error") && ours.len() > 20, "{q}: {ours}");
            let plan = explain(&mut c, q).await;
            assert_eq!(plan.contains("WindowAggr"), rewritten.contains(q), "{q}: {plan}");
        }
        // A window function of the query's own, partitioned by the join
        // key, over a join the CN runs (the hybrid hash join does not keep
        // the order DataFusion sorted its probe side in for the window).
        let own = "SELECT l.id, SUM(qty) OVER (PARTITION BY p.pk) AS s FROM l JOIN p ON l.pk = p.pk ORDER BY l.id";
        let (ours, theirs) = (result_text(&mut c, own).await, result_text(&mut reference, own).await);
        assert_eq!(ours, theirs, "{own}");
        reference.query_drop("DROP DATABASE winmagic_reference").await.unwrap();
        c.query_drop("DROP DATABASE t_winmagic").await.unwrap();
    });
}

/// `WEIGHT_STRING` of every BMP code point (surrogates excepted) and of a
/// supplementary one, read from a DN.
#[test]
fn general_ci_weights_match_mariadb() {
    let rows: Vec<(u32, Vec<u8>)> = block_on(async {
        let mut dn = dn_conn(0).await;
        dn.query(
            "SELECT seq, WEIGHT_STRING(CONVERT(CAST(UNHEX(LPAD(HEX(seq), 8, '0')) AS CHAR CHARACTER SET utf32) \
             USING utf8mb4) COLLATE utf8mb4_general_ci) FROM mysql.seq_0_to_65535 \
             WHERE seq < 55296 OR seq > 57343 \
             UNION ALL SELECT 128512, WEIGHT_STRING(_utf8mb4 X'F09F9880' COLLATE utf8mb4_general_ci)",
        )
        .await
        .unwrap()
    });
    assert_eq!(rows.len(), 63489);
    let mut wrong = Vec::new();
    for (cp, w) in rows {
        let c = char::from_u32(cp).unwrap();
        let ours = cn::collation::weight(c).to_be_bytes().to_vec();
        if ours != w {
            wrong.push(format!("U+{cp:04X}: ours {ours:02X?}, MariaDB {w:02X?}"));
        }
    }
    assert!(wrong.is_empty(), "{} code points differ: {:?}", wrong.len(), &wrong[..wrong.len().min(10)]);
}

/// GROUP_CONCAT over a sharded table (the CN groups: `g` is not the
/// partition key) gives MariaDB's answer and column name for the same rows
/// in one table: values in the ORDER BY's order, DISTINCT, SEPARATOR,
/// several values per row, rows with a NULL left out, NULL for a group
/// with none left and for no rows, DISTINCT with an ORDER BY of other
/// columns, two GROUP_CONCATs ordered differently in one query.
#[test]
fn group_concat_over_shards_matches_mariadb() {
    block_on(async {
        let mut c = fresh_db("t_group_concat").await;
        let create = "CREATE TABLE t (id INT PRIMARY KEY, g INT, s VARCHAR(10), d DECIMAL(6,2))";
        c.query_drop(format!("{create} PARTITION BY KEY(id) PARTITIONS 4")).await.unwrap();
        let rows = "(1, 1, 'b', 2.50), (2, 1, 'a', 1.00), (3, 1, NULL, 2.50), (4, 2, 'c', NULL), \
                    (5, 2, 'a', 3.25), (6, 1, 'b', 0.75), (7, 3, NULL, NULL), (8, 2, 'd', 3.25)";
        c.query_drop(format!("INSERT INTO t VALUES {rows}")).await.unwrap();
        let mut reference = reference_db("group_concat_reference").await;
        reference.query_drop(create).await.unwrap();
        reference.query_drop(format!("INSERT INTO t VALUES {rows}")).await.unwrap();
        for q in [
            "SELECT g, GROUP_CONCAT(s ORDER BY id) FROM t GROUP BY g ORDER BY g",
            "SELECT g, GROUP_CONCAT(d ORDER BY d DESC, id SEPARATOR '; ') AS ds FROM t GROUP BY g ORDER BY g",
            "SELECT g, GROUP_CONCAT(DISTINCT d) FROM t WHERE g > 1 GROUP BY g ORDER BY g",
            "SELECT g, GROUP_CONCAT(DISTINCT d ORDER BY d DESC SEPARATOR '; ') AS ds FROM t GROUP BY g ORDER BY g",
            "SELECT GROUP_CONCAT(DISTINCT s ORDER BY s DESC), GROUP_CONCAT(id ORDER BY d, id DESC) FROM t",
            "SELECT g, COUNT(*), GROUP_CONCAT(id ORDER BY s DESC, id) FROM t GROUP BY g HAVING COUNT(*) > 1 ORDER BY g",
            "SELECT g, GROUP_CONCAT(id, ':', s ORDER BY id DESC) FROM t GROUP BY g ORDER BY g",
            "SELECT GROUP_CONCAT(s ORDER BY s, id SEPARATOR '') FROM t WHERE g < 3",
            "SELECT GROUP_CONCAT(s ORDER BY id) FROM t WHERE id > 100",
        ] {
            let (ours, theirs) = (result_text(&mut c, q).await, result_text(&mut reference, q).await);
            assert_eq!(ours, theirs, "{q}");
            assert!(!ours.starts_with("error"), "{q}: {ours}");
        }
        reference.query_drop("DROP DATABASE group_concat_reference").await.unwrap();
    });
}

/// MySQL row functions DataFusion lacks (DATEDIFF, WEEK, MONTHNAME, FIELD,
/// LCASE, MOD, ADDDATE, …) in statements the CN plans across shards: pushed
/// to the shards where they apply to a table's columns, computed by the CN
/// over what it computes itself (the date functions, ISNULL, SIGN; the
/// others by a DN from the values), a clear 1235 for a function it does
/// not know; the same answers as MariaDB. Before, such a
/// statement failed to plan (1105), two panicked in a connection, and
/// `ADDDATE(d, INTERVAL n DAY)` subtracted.
#[test]
fn mysql_functions_in_statements_planned_across_shards_match_mariadb() {
    block_on(async {
        let mut c = fresh_db("t_functions").await;
        let create = "CREATE TABLE t (id INT PRIMARY KEY, g INT, s VARCHAR(20), d DATE, x DECIMAL(6,2))";
        c.query_drop(format!("{create} PARTITION BY KEY(id) PARTITIONS 4")).await.unwrap();
        let rows = "(1, 1, 'Mail', '1995-01-31', 2.50), (2, 1, 'air', '1996-02-29', -1.00), \
                    (3, 2, NULL, '1995-12-31', 0), (4, 2, 'SHIP', NULL, NULL), (5, 3, 'mail', '2000-03-01', 3.25), \
                    (6, 3, 'truck', '1999-07-04', -0.75), (7, 1, 'Air', '1994-10-10', 1.50)";
        c.query_drop(format!("INSERT INTO t VALUES {rows}")).await.unwrap();
        let mut reference = reference_db("functions_reference").await;
        reference.query_drop(create).await.unwrap();
        reference.query_drop(format!("INSERT INTO t VALUES {rows}")).await.unwrap();
        for q in [
            // Pushed to the shards (partial aggregates by the function's value).
            "SELECT DATEDIFF(d, '1995-01-01') AS v, COUNT(*) FROM t GROUP BY 1 ORDER BY 1",
            "SELECT WEEK(d) AS v, YEARWEEK(d, 3) AS w, COUNT(*) FROM t GROUP BY 1, 2 ORDER BY 1, 2",
            "SELECT MONTHNAME(d) AS m, DAYNAME(d) AS n, SUM(x) FROM t GROUP BY 1, 2 ORDER BY 1, 2",
            "SELECT FIELD(s, 'air', 'mail') AS f, COUNT(*) FROM t GROUP BY 1 ORDER BY 1",
            "SELECT LCASE(s) AS l, UCASE(s) AS u, MID(s, 2, 2) AS m, COUNT(*) FROM t GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            "SELECT MOD(id, 3) AS r, MAX(ADDDATE(d, 5)) AS a, MIN(ADDDATE(d, INTERVAL 1 MONTH)) AS b FROM t GROUP BY 1 ORDER BY 1",
            "SELECT DATE(d) AS v, MD5(s) AS h, CAST(d AS CHAR) AS c, COUNT(*) FROM t GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            "SELECT HEX(g) AS h, LOCATE('a', s) AS p, STRCMP(s, 'mail') AS c, COUNT(*) FROM t GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            "SELECT g, COUNT(*) FROM t WHERE DAYOFWEEK(d) IN (1, 2, 7) OR TO_DAYS(d) > 730000 GROUP BY g ORDER BY g",
            // Over what the CN computes (an aggregate's result): computed by the CN.
            "SELECT g, DATEDIFF(MAX(d), MIN(d)), TO_DAYS(MAX(d)), DAYOFWEEK(MIN(d)), WEEKDAY(MAX(d)) FROM t GROUP BY g ORDER BY g",
            "SELECT g, DAYOFYEAR(MAX(d)), MONTHNAME(MIN(d)), DAYNAME(MAX(d)), LAST_DAY(MAX(d)) FROM t GROUP BY g ORDER BY g",
            "SELECT g, ISNULL(MAX(s)), SIGN(SUM(x)), FROM_DAYS(TO_DAYS(MAX(d)) + 1) FROM t GROUP BY g ORDER BY g",
            "SELECT TIMESTAMPDIFF(MONTH, d, '2000-02-29') AS v, TIMESTAMPDIFF(day, '1995-01-31', d) AS w, COUNT(*) \
             FROM t GROUP BY 1, 2 ORDER BY 1, 2",
            "SELECT g, TIMESTAMPDIFF(MONTH, MIN(d), MAX(d)), TIMESTAMPDIFF(YEAR, MIN(d), MAX(d)), \
             TIMESTAMPDIFF(WEEK, MAX(d), MIN(d)), TIMESTAMPDIFF(QUARTER, MAX(d), '1994-01-31'), \
             TIMESTAMPDIFF(HOUR, MIN(d), MAX(d)) FROM t GROUP BY g ORDER BY g",
            // Math outside its domain is NULL (DataFusion's was nan, -inf,
            // or an error for SQRT of a negative DECIMAL); LOG2 is MariaDB's
            // log(x) / ln 2 to the last bit.
            "SELECT g, LN(SUM(x)), LOG(SUM(x)), LOG2(SUM(x)), LOG10(SUM(x)), LOG(SUM(x), 8), LOG(1, SUM(x) + 5), \
             SQRT(SUM(x)), ACOS(SUM(x)), ASIN(SUM(x) / 4), LOG2(COUNT(*)), LN(MIN(x) - MIN(x)) FROM t GROUP BY g ORDER BY g",
            // A DOUBLE's D decimals show as MariaDB shows them: its shortest
            // digits, then zeros.
            "SELECT g, TRUNCATE(SUM(x) * 1e0 / 7, 20), TRUNCATE(SUM(x) * 1.5e0, 2), ROUND(SUM(x) * 1e0 / 3, 4), \
             COT(SUM(x) + 1), ATAN(SUM(x), -2) FROM t GROUP BY g ORDER BY g",
            // An overflow is error 1690, as on MariaDB.
            "SELECT g, EXP(SUM(x) * 1000) FROM t GROUP BY g ORDER BY g",
            "SELECT g, POW(MIN(x), 0.5), POW(2, COUNT(*)) FROM t GROUP BY g ORDER BY g",
        ] {
            let (ours, theirs) = (result_text(&mut c, q).await, result_text(&mut reference, q).await);
            if q.contains("EXP(") || q.contains("POW(") {
                assert!(ours.contains("1690") && theirs.contains("1690"), "{q}: {ours} / {theirs}");
                continue;
            }
            assert_eq!(ours, theirs, "{q}");
            assert!(!ours.starts_with("error"), "{q}: {ours}");
        }
        // Computed by the CN (or pushed with DataFusion's types): MySQL's
        // NULL rule of GREATEST / LEAST, and a DECIMAL stays DECIMAL through
        // IFNULL and CASE, in its values and in the column's type (a BIGINT
        // column of DECIMAL text broke the client's row parsing).
        for q in [
            "SELECT id, IFNULL(x, 0), COALESCE(x, 0), CASE WHEN x IS NULL THEN 0 ELSE x END FROM t ORDER BY id",
            "SELECT id, GREATEST(x, 1), LEAST(x, 1), GREATEST(g, id, 2), LEAST(s, 'b') FROM t ORDER BY id",
            // Strings under the collation ('c' before 'Eve'), where the CN computes.
            "SELECT g, LEAST(MAX(s), 'b'), GREATEST(MIN(s), 'B', 'air '), LEAST(MIN(x), 0, g) FROM t GROUP BY g ORDER BY g",
            // A recursive CTE over no table runs on a DN.
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 4) SELECT n FROM r",
            "SELECT g, IFNULL(SUM(x), 0), GREATEST(MAX(x), 1), LEAST(MIN(d), '1995-06-01') FROM t GROUP BY g ORDER BY g",
            // Grouped by a select item's alias.
            "SELECT CASE WHEN x > 1 THEN 'hi' ELSE 'lo' END AS c, COUNT(*) FROM t GROUP BY c ORDER BY c",
            "SELECT UPPER(s) AS u, LEFT(UPPER(s), 1) AS l, SUM(x) FROM t GROUP BY u, l ORDER BY u, l",
            // ANY / SOME / ALL over the query's own table.
            "SELECT id FROM t WHERE x > ANY (SELECT x FROM t WHERE g = 1) ORDER BY id",
            "SELECT id FROM t WHERE x >= SOME (SELECT x FROM t WHERE g = 1) AND x < ALL (SELECT x FROM t WHERE g = 3) \
             ORDER BY id",
            // GROUP_CONCAT's ORDER BY under the collation ('air' before 'Mail').
            "SELECT GROUP_CONCAT(s ORDER BY s SEPARATOR '|'), GROUP_CONCAT(id ORDER BY s DESC) FROM t \
             WHERE id IN (1, 2, 4, 6)",
            // ... and its DISTINCT ('Mail' and 'mail' are one value).
            "SELECT g, CHAR_LENGTH(GROUP_CONCAT(DISTINCT s ORDER BY s)) FROM t GROUP BY g ORDER BY g",
            // MySQL's STD / STDDEV / VARIANCE are the population ones, shown
            // with the argument's decimals + 4; TRUNCATE, FLOOR, CEILING and
            // FIELD over aggregates the CN computes.
            "SELECT g, STDDEV(x), STD(id), VARIANCE(x), VAR_SAMP(x), STDDEV_SAMP(id), STDDEV_POP(x), VAR_POP(id) \
             FROM t GROUP BY g ORDER BY g",
            "SELECT g, TRUNCATE(SUM(x), 1), TRUNCATE(SUM(x), 3), TRUNCATE(SUM(x) * 10, -1), TRUNCATE(SUM(id) * 1234, -2), \
             FLOOR(SUM(x)), CEIL(MIN(x)), CEILING(-MAX(x)), FIELD(MIN(s), 'AIR', 'mail'), FIELD(COUNT(*), 1, 3) \
             FROM t GROUP BY g ORDER BY g",
            "SELECT SUM(x), g, COUNT(*) FROM t WHERE g = 1",
            // COUNT(DISTINCT of several expressions): tuples without NULL,
            // strings under the collation ('air' and 'Air' are one).
            "SELECT COUNT(DISTINCT s, g), COUNT(DISTINCT g, d), COUNT(DISTINCT g) FROM t",
            "SELECT g % 2 AS k, COUNT(DISTINCT s, x) FROM t GROUP BY k ORDER BY k",
            "SELECT g, id DIV 10 AS z, COUNT(*) FROM t GROUP BY g HAVING z = 0 AND COUNT(*) > 1 ORDER BY g",
            "SELECT g, s FROM t WHERE id IN (1, 3, 5) GROUP BY g HAVING s IS NOT NULL ORDER BY g",
            // Correlated scalar subqueries that are no aggregate, EXISTS in
            // a select item.
            "SELECT id, (SELECT s FROM t t2 WHERE t2.id = t.id + 1) AS n, (SELECT t2.x * 2 FROM t t2 \
             WHERE t2.id = t.g) AS y FROM t ORDER BY id",
            "SELECT id, EXISTS (SELECT 1 FROM t t2 WHERE t2.g = t.g AND t2.id > t.id) AS later, \
             NOT EXISTS (SELECT 1 FROM t t2 WHERE t2.x > t.x) AS top FROM t ORDER BY id",
            // ANY / SOME / ALL in select items: empty subqueries, NULLs on
            // either side, correlated or not, strings under the collation,
            // and a subquery over the query's own table.
            "SELECT id, x > ANY (SELECT x FROM t t2 WHERE t2.g = 1) AS a, x >= ALL (SELECT x FROM t t2 \
             WHERE t2.g = t.g) AS b, x <> ANY (SELECT x FROM t t2 WHERE t2.g = 2) AS c, x = ALL (SELECT x \
             FROM t t2 WHERE t2.id = t.id OR t2.id = t.id + 1) AS d, x < SOME (SELECT x FROM t t2 WHERE t2.g = 9) AS e, \
             x <= ALL (SELECT x FROM t t2 WHERE t2.g = 9) AS f FROM t ORDER BY id",
            "SELECT id, x > ANY (SELECT x FROM t WHERE g = 1) AS a, x < ALL (SELECT x + 1 FROM t WHERE g = 3) AS b FROM t \
             ORDER BY id",
            "SELECT id, g = ANY (SELECT g FROM t t2 WHERE t2.x > 1) AS i, s <> ALL (SELECT s FROM t t2 WHERE t2.g = 1) \
             AS n, s > ALL (SELECT s FROM t t2 WHERE t2.g = 1) AS m, s <= SOME (SELECT s FROM t t2 WHERE t2.g = 3) \
             AS k FROM t ORDER BY id",
            // ... and IN: correlated, over the query's own table, of an
            // expression, through a join.
            "SELECT id, x IN (SELECT x FROM t t2 WHERE t2.g = t.g AND t2.id <> t.id) AS c, x + 1 IN (SELECT x FROM t) AS p, \
             UPPER(s) NOT IN (SELECT s FROM t WHERE id <> 1) AS u FROM t ORDER BY id",
            "SELECT a.id, a.g IN (SELECT g FROM t WHERE t.id = b.id + 1) AS c FROM t a JOIN t b ON a.id = b.id ORDER BY 1",
            // Recursive CTEs over the sharded table, run by the CN.
            "WITH RECURSIVE r(n, v) AS (SELECT id, x FROM t WHERE id = 1 UNION ALL SELECT t.id, t.x FROM t \
             JOIN r ON t.id = r.n + 1 WHERE t.id < 5) SELECT n, v FROM r ORDER BY n",
            "WITH RECURSIVE r(n, s) AS (SELECT g, CAST(s AS CHAR(100)) FROM t WHERE id = 1 UNION ALL SELECT r.n + 1, \
             CONCAT(r.s, ',', t.s) FROM r JOIN t ON t.g = r.n + 1 AND t.s IS NOT NULL WHERE r.n < 3) \
             SELECT n, s FROM r ORDER BY n, s",
        ] {
            let (ours, theirs) = (result_text(&mut c, q).await, result_text(&mut reference, q).await);
            assert_eq!(ours, theirs, "{q}");
            assert!(!ours.starts_with("error"), "{q}: {ours}");
        }
        let q = "SELECT IFNULL(x, 0) AS a, CASE WHEN x IS NULL THEN 0 ELSE x END AS b FROM t ORDER BY id";
        let types = |rows: Vec<Row>| -> Vec<_> { rows[0].columns_ref().iter().map(|c| c.column_type()).collect() };
        let ours = types(c.query(q).await.unwrap());
        assert_eq!(ours, types(reference.query(q).await.unwrap()), "{q}");
        assert_eq!(ours, [mysql_async::consts::ColumnType::MYSQL_TYPE_NEWDECIMAL; 2]);
        // STDDEV / VARIANCE windows are the population ones too (values
        // compared as numbers: MariaDB rounds a window's to 4 more decimals).
        let q = "SELECT id, STDDEV(x) OVER (PARTITION BY g), VARIANCE(id) OVER (PARTITION BY g) FROM t ORDER BY id";
        let ours: Vec<(i32, Option<f64>, Option<f64>)> = c.query(q).await.unwrap();
        let theirs: Vec<(i32, Option<f64>, Option<f64>)> = reference.query(q).await.unwrap();
        let near = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => (a - b).abs() < 1e-4,
            (a, b) => a == b,
        };
        assert_eq!(ours.len(), theirs.len());
        for (o, t) in ours.iter().zip(&theirs) {
            assert!(o.0 == t.0 && near(o.1, t.1) && near(o.2, t.2), "{q}: {ours:?} against {theirs:?}");
        }
        // A scalar subquery that gives several rows for a row: MySQL's 1242.
        let q = "SELECT id, (SELECT t2.id FROM t t2 WHERE t2.g = t.g) FROM t ORDER BY id";
        let (ours, theirs) = (result_text(&mut c, q).await, result_text(&mut reference, q).await);
        assert_eq!((ours.as_str(), theirs.as_str()), ("error 1242", "error 1242"), "{q}");
        // Over what the CN computes, the functions it has no code for are
        // computed by a DN from the values (one statement per batch).
        for q in [
            "SELECT g, HEX(MAX(s)), WEEK(MAX(d)), YEARWEEK(MIN(d), 3), LOCATE('a', MAX(s)), CRC32(MAX(s)), \
             STRCMP(MAX(s), 'air'), SHA1(MAX(s)), CONV(MAX(id), 10, 2), FORMAT(SUM(x), 1), ELT(g, 'a', 'b', 'c'), \
             MAKEDATE(2000, MAX(id)) FROM t GROUP BY g ORDER BY g",
            "SELECT g, JSON_OBJECT('n', COUNT(*), 's', MAX(s)), JSON_ARRAY(MIN(x), MAX(d)), \
             JSON_EXTRACT(JSON_OBJECT('k', MAX(s)), '$.k'), JSON_VALID(MAX(s)) FROM t GROUP BY g ORDER BY g",
            "SELECT a.id, HEX(CONCAT(a.s, b.s)), WEEK(b.d, 1) FROM t a JOIN t b ON a.g = b.id ORDER BY 1",
            "SELECT g, WEEK(MAX(d)) w, COUNT(*) FROM t GROUP BY g HAVING WEEK(MAX(d)) > 8 ORDER BY g",
        ] {
            let (ours, theirs) = (result_text(&mut c, q).await, result_text(&mut reference, q).await);
            assert_eq!(ours, theirs, "{q}");
            assert!(!ours.starts_with("error"), "{q}: {ours}");
        }
        // A function the CN does not know at all: a clear 1235.
        for q in ["SELECT AES_ENCRYPT(s, 'k'), COUNT(*) FROM t GROUP BY 1"] {
            match c.query_drop(q).await {
                Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1235, "{q}: {}", e.message),
                other => panic!("{q}: expected 1235, got {other:?}"),
            }
        }
        let e = c.query_drop("SELECT WEEK(d, 1, 2), COUNT(*) FROM t GROUP BY 1").await.unwrap_err();
        assert!(matches!(&e, mysql_async::Error::Server(s) if s.code == 1582), "{e}");
        // TIME is a time of day to the CN no more: it sorts and compares as
        // MySQL's, negative and beyond 99 hours (it was text: `100:00:00`
        // sorted before `10:00:00`), and TIMEDIFF computes.
        let create = "CREATE TABLE tt (id INT PRIMARY KEY, g INT, t TIME, dt DATETIME, js VARCHAR(40))";
        c.query_drop(format!("{create} PARTITION BY KEY(id) PARTITIONS 4")).await.unwrap();
        reference.query_drop(create).await.unwrap();
        let rows = "(1, 1, '10:00:00', '2020-01-05 10:00:00', '{\"a\": 1, \"b\": \"x\"}'), \
                    (2, 1, '-01:30:00', '2019-03-01 00:00:00', '{\"a\": 2}'), (3, 2, '100:00:00', NULL, '[1, 2]'), \
                    (4, 2, '09:59:59', '2021-07-04 23:59:59', NULL), (5, 3, NULL, '2020-02-29 12:00:00', 'nope'), \
                    (6, 3, '00:00:01', '2018-12-31 00:00:01', '{\"a\": [1]}')";
        for conn in [&mut c, &mut reference] {
            conn.query_drop(format!("INSERT INTO tt VALUES {rows}")).await.unwrap();
        }
        for q in [
            "SELECT id, t FROM tt ORDER BY t, id",
            "SELECT g, MAX(t), MIN(t), TIMEDIFF(MAX(t), MIN(t)), TIMEDIFF(MAX(dt), MIN(dt)) FROM tt GROUP BY g ORDER BY g",
            "SELECT a.id, b.id FROM tt a JOIN tt b ON a.g = b.g AND a.t < b.t ORDER BY a.id, b.id",
            "SELECT g, TIMEDIFF(MIN(t), '01:00:00'), TIMEDIFF(MAX(dt), '2020-01-01 00:00:00'), TIMEDIFF(MAX(dt), MAX(t)), \
             CAST(MIN(dt) AS DATETIME), CAST(MIN(t) AS TIME) FROM tt GROUP BY g ORDER BY g",
            // JSON functions on the shards; one used as a condition.
            "SELECT id, JSON_EXTRACT(js, '$.a'), JSON_UNQUOTE(JSON_EXTRACT(js, '$.b')), JSON_LENGTH(js), JSON_VALID(js) \
             FROM tt ORDER BY id",
            "SELECT id FROM tt WHERE JSON_CONTAINS(js, '1', '$.a') OR ISNULL(t) ORDER BY id",
            // GROUP_CONCAT(DISTINCT …) without ORDER BY: in the values' order.
            "SELECT g, GROUP_CONCAT(DISTINCT id * 7), GROUP_CONCAT(DISTINCT CONCAT('v', 7 * id)) FROM tt GROUP BY g ORDER BY g",
            // WITH ROLLUP: the super-aggregate rows after their groups, as
            // MariaDB orders them; by position, alias, over a join.
            "SELECT g, YEAR(dt) AS y, COUNT(*), MIN(t) FROM tt GROUP BY g, y WITH ROLLUP",
            "SELECT g, COUNT(*), SUM(id) FROM tt GROUP BY 1 WITH ROLLUP",
            "SELECT a.g, COUNT(*) FROM tt a JOIN tt b ON a.g = b.g GROUP BY a.g WITH ROLLUP",
            "SELECT UPPER(js) AS u, COUNT(*) FROM tt GROUP BY u WITH ROLLUP",
        ] {
            let (ours, theirs) = (result_text(&mut c, q).await, result_text(&mut reference, q).await);
            assert_eq!(ours, theirs, "{q}");
            assert!(!ours.starts_with("error"), "{q}: {ours}");
        }
        reference.query_drop("DROP DATABASE functions_reference").await.unwrap();
    });
}

#[test]
fn result_columns_are_named_as_mariadb_names_them() {
    // Alone: another test's DDL moves the catalog version, and the plan
    // cache then builds the point query's plan again (a miss, not a hit).
    block_on_exclusive(async {
        let mut c = fresh_db("t_names").await;
        let create = "CREATE TABLE t (id INT PRIMARY KEY, g INT, s VARCHAR(20), x DECIMAL(6,2))";
        c.query_drop(format!("{create} PARTITION BY KEY(id) PARTITIONS 4")).await.unwrap();
        let rows = "(1, 1, 'Mail', 2.50), (2, 1, 'air', -1.00), (3, 2, NULL, 0), (4, 2, 'SHIP', NULL)";
        c.query_drop(format!("INSERT INTO t VALUES {rows}")).await.unwrap();
        let mut reference = reference_db("names_reference").await;
        reference.query_drop(create).await.unwrap();
        reference.query_drop(format!("INSERT INTO t VALUES {rows}")).await.unwrap();
        // Unaliased computed items are named by their text as typed
        // (spaces, case, comments inside), on one shard, across shards,
        // gathered, in DataFusion, the first SELECT of a UNION, and from
        // the plan cache (each query runs twice).
        for q in [
            "SELECT id+1, g  *  2, UPPER( s ) FROM t WHERE id = 1",
            "SELECT s, x*2 + 1, CONCAT(s,'-') FROM t WHERE id = 2",
            "SELECT lower(s), id /* one */ + 1 FROM t WHERE id = 4",
            "SELECT id+1, g  *  2 FROM t WHERE id IN (1, 2) ORDER BY id",
            "SELECT g, count(*), SUM(x)/COUNT( * ) FROM t GROUP BY g ORDER BY g",
            "SELECT g, count(*)+0 FROM t GROUP BY g ORDER BY count(*)+0, g",
            "SELECT *, id+1 FROM t ORDER BY id",
            "SELECT id+1 FROM t UNION SELECT g FROM t ORDER BY 1",
            "SELECT 1+1, 'abc', -  3, + 4, 1.50, NULL, true, N'n', _utf8mb4'z', _binary'b'",
            "SELECT EXISTS(SELECT 1 FROM t) , 0x41, b'1', x'42', _utf8mb4'z', N'n', concat(_latin1'a', s) \
             FROM t WHERE id > 0 ORDER BY id LIMIT 1",
            "WITH c AS (SELECT g FROM t) SELECT g*10 FROM c ORDER BY 1",
            // A derived table's and a CTE's columns are named so too, and
            // the outer query may refer to them by those names.
            "SELECT * FROM (SELECT g, MAX( x ), g+1 FROM t GROUP BY g) d ORDER BY 1",
            "SELECT d.`g+1` FROM (SELECT g, g+1 FROM t) d ORDER BY 1",
            "WITH c AS (SELECT g*2 FROM t)\nSELECT * FROM c ORDER BY 1",
        ] {
            for _ in 0..2 {
                let (ours, theirs) = (result_text(&mut c, q).await, result_text(&mut reference, q).await);
                assert_eq!(ours, theirs, "{q}");
                assert!(!ours.starts_with("error"), "{q}: {ours}");
            }
        }
        // A point query whose computed item has no literal stays cached.
        let q = "SELECT UPPER( s ) FROM t WHERE id = 2";
        assert_eq!(result_text(&mut c, q).await, result_text(&mut reference, q).await);
        let h = plan_cache_counter(&mut c, "hits").await;
        assert_eq!(result_text(&mut c, q).await, result_text(&mut reference, q).await);
        assert_eq!(plan_cache_counter(&mut c, "hits").await - h, 1);
        reference.query_drop("DROP DATABASE names_reference").await.unwrap();
    });
}

/// Zero dates (`0000-00-00`, which MariaDB stores by default) read by
/// shard scans keep their value where the CN computes: shown, sorted,
/// grouped, compared, joined and sent back to the shards as MariaDB does
/// (they were read as NULL).
#[test]
fn zero_dates_keep_their_value_where_the_cn_computes() {
    block_on(async {
        let mut c = fresh_db("t_zero_dates").await;
        let create =
            "CREATE TABLE tz (id INT PRIMARY KEY, g INT, d DATE, dt DATETIME, t6 DATETIME(6), ts TIMESTAMP NULL)";
        c.query_drop(format!("{create} PARTITION BY KEY(id) PARTITIONS 4")).await.unwrap();
        let rows = "(1, 1, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00', '0000-00-00 00:00:00'), \
                    (2, 1, '2000-01-01', '2000-01-01 10:00:00', '2000-01-01 10:00:00.5', '2000-01-01 10:00:00'), \
                    (3, 2, NULL, NULL, NULL, NULL), \
                    (4, 2, '0000-00-00', '1999-12-31 23:59:59', '0000-00-00 00:00:00', NULL), \
                    (5, 3, '1000-01-01', '0000-00-00 00:00:00', '1000-01-01', '1970-01-02 00:00:00')";
        c.query_drop(format!("INSERT INTO tz VALUES {rows}")).await.unwrap();
        let mut reference = reference_db("zero_dates_reference").await;
        reference.query_drop(create).await.unwrap();
        reference.query_drop(format!("INSERT INTO tz VALUES {rows}")).await.unwrap();
        for q in [
            "SELECT id, d, dt, t6, ts FROM tz ORDER BY d, dt, id",
            "SELECT d, COUNT(*), MIN(dt), MAX(t6) FROM tz GROUP BY d ORDER BY d",
            "SELECT MIN(d), MAX(d), MIN(dt), MIN(t6), MIN(ts) FROM tz",
            "SELECT g, MIN(d), MIN(dt) FROM tz GROUP BY g ORDER BY g",
            "SELECT id, d FROM (SELECT id, MAX(d) d FROM tz GROUP BY id + 0) q WHERE d = '0000-00-00' ORDER BY id",
            "SELECT id, d FROM (SELECT id, MAX(d) d FROM tz GROUP BY id + 0) q WHERE d < '1500-01-01' ORDER BY id",
            "SELECT id FROM tz WHERE d = '0000-00-00' ORDER BY id",
            "SELECT a.id, b.id FROM tz a JOIN tz b ON a.d = b.d ORDER BY 1, 2",
            "SELECT a.id, b.id FROM tz a JOIN tz b ON a.dt = b.t6 ORDER BY 1, 2",
            "SELECT id FROM tz WHERE d IN (SELECT MIN(d) FROM tz) ORDER BY id",
            "SELECT d FROM tz UNION SELECT dt FROM tz ORDER BY 1",
            "SELECT CONCAT(MIN(d), '|'), CAST(MIN(dt) AS CHAR) FROM tz",
            // Functions the CN computes: 0 for its parts, NULL for most
            // others, as MariaDB gives (with a warning).
            "SELECT id, YEAR(d), MONTH(d), EXTRACT(YEAR FROM d), DATE(d), d + 0, dt + 0, DATE_FORMAT(d, '%Y-%m-%d'), \
             DATE_FORMAT(d, '%W'), DATEDIFF(d, '2000-01-01'), d + INTERVAL 1 DAY, TO_DAYS(d), DAYNAME(d) \
             FROM (SELECT id, MAX(d) d, MAX(dt) dt FROM tz GROUP BY id + 0) q ORDER BY id",
            // A DATE among DATETIMEs, the zero date and 1000-01-01 too
            // (DataFusion's common type, of nanoseconds, did not reach them).
            "SELECT id, d < dt, d = t6, LEAST(d, dt), COALESCE(d, dt), CASE WHEN g = 1 THEN d ELSE dt END, d IN (dt, t6) \
             FROM (SELECT id, MAX(g) g, MAX(d) d, MAX(dt) dt, MAX(t6) t6 FROM tz GROUP BY id + 0) q ORDER BY id",
        ] {
            let (ours, theirs) = (result_text(&mut c, q).await, result_text(&mut reference, q).await);
            assert_eq!(ours, theirs, "{q}");
            assert!(!ours.starts_with("error"), "{q}: {ours}");
        }
        // Binary rows (prepared statements): the zero date as MariaDB sends it.
        let q = "SELECT d, dt FROM tz ORDER BY d, id";
        let ours: Vec<(mysql_async::Value, mysql_async::Value)> = c.exec(q, ()).await.unwrap();
        let theirs: Vec<(mysql_async::Value, mysql_async::Value)> = reference.exec(q, ()).await.unwrap();
        assert_eq!(ours, theirs);
        reference.query_drop("DROP DATABASE zero_dates_reference").await.unwrap();
    });
}

#[test]
fn partition_keys_written_in_any_spelling_land_where_mariadb_finds_them() {
    block_on(async {
        let mut c = fresh_db("t_key_spellings").await;
        let mut reference = reference_db("key_spellings_reference").await;
        // Each key type, with values written as MariaDB accepts but stores
        // otherwise: two-digit years, unpunctuated dates, short BINARY(n),
        // TIME in its short forms.
        let tables = [
            ("ky", "YEAR", "('70'), (5), ('05'), (69), ('1999'), (2000)"),
            ("kb", "BINARY(4)", "('ab'), ('a'), ('abcd'), ('')"),
            ("kt", "TIME", "('1:2:3'), ('10204'), ('1 2:3:4'), ('-1:2'), ('123'), ('12:00:00')"),
            ("kd", "DATE", "('20-01-02'), ('20200103'), ('200104'), ('2020.1.5'), ('99-12-31'), ('5-01-02')"),
            ("kdt", "DATETIME", "('99-1-2 3:4:5'), ('20200102030405'), ('990102030406'), ('2020/01/02 03:04:05')"),
        ];
        for (t, ty, values) in tables {
            let create = format!("CREATE TABLE {t} (id INT AUTO_INCREMENT PRIMARY KEY, k {ty})");
            c.query_drop(format!("{create} PARTITION BY KEY(k) PARTITIONS 8")).await.unwrap();
            reference.query_drop(&create).await.unwrap();
            for db in [&mut c, &mut reference] {
                db.query_drop(format!("INSERT INTO {t} (k) VALUES {values}")).await.unwrap();
            }
        }
        let mut queries = vec![
            "SELECT id, k FROM ky WHERE k = 1970".to_string(),
            "SELECT id, k FROM ky WHERE k = 70".into(),
            "SELECT id, k FROM ky WHERE k = '2005'".into(),
            "SELECT id, k FROM ky WHERE k IN (69, 99)".into(),
            "SELECT id, HEX(k) FROM kb WHERE k = 'ab\\0\\0'".into(),
            "SELECT id, HEX(k) FROM kb WHERE k = 'ab'".into(),
            "SELECT id, HEX(k) FROM kb WHERE k = X'61000000'".into(),
            "SELECT id, k FROM kt WHERE k = '01:02:03'".into(),
            "SELECT id, k FROM kt WHERE k = '1:2:4'".into(),
            "SELECT id, k FROM kt WHERE k = '26:03:04'".into(),
            "SELECT id, k FROM kt WHERE k = '-01:02:00'".into(),
            "SELECT id, k FROM kt WHERE k = '00:01:23'".into(),
            "SELECT id, k FROM kd WHERE k = '2020-01-02'".into(),
            "SELECT id, k FROM kd WHERE k IN ('2020-01-03', 20200104, '20-1-5')".into(),
            "SELECT id, k FROM kd WHERE k = '1999-12-31'".into(),
            "SELECT id, k FROM kd WHERE k = '0005-01-02'".into(),
            "SELECT id, k FROM kdt WHERE k = '1999-01-02 03:04:05'".into(),
            "SELECT id, k FROM kdt WHERE k = '2020-01-02 03:04:05'".into(),
            "SELECT id, k FROM kdt WHERE k = 19990102030406".into(),
        ];
        // Every row is found by its stored value, one partition read.
        for t in ["ky", "kb", "kt", "kd", "kdt"] {
            queries.push(format!("SELECT a.id, (SELECT COUNT(*) FROM {t} b WHERE b.k = a.k) FROM {t} a ORDER BY a.id"));
        }
        for q in &queries {
            let q = &if q.contains("ORDER BY") { q.clone() } else { format!("{q} ORDER BY id") };
            let (ours, theirs) = (result_text(&mut c, q).await, result_text(&mut reference, q).await);
            assert_eq!(ours, theirs, "{q}");
            assert!(!ours.starts_with("error"), "{q}: {ours}");
        }
        for t in ["ky", "kb", "kt", "kd", "kdt"] {
            let ids: Vec<(i64, String)> =
                reference.query(format!("SELECT id, QUOTE(k) FROM {t} WHERE k IS NOT NULL")).await.unwrap();
            for (id, k) in ids {
                let found: Vec<i64> = c.query(format!("SELECT id FROM {t} WHERE k = {k}")).await.unwrap();
                assert!(found.contains(&id), "{t}: row {id} with k = {k} not found by its value: {found:?}");
            }
        }
        // Values MariaDB would store changed are refused (in any sql_mode).
        for (sql, code) in [
            ("INSERT INTO ky (k) VALUES (1900)", 1264),
            ("INSERT INTO kb (k) VALUES ('abcde')", 1406),
            ("INSERT INTO kd (k) VALUES ('20210229')", 1292),
        ] {
            let err = c.query_drop(sql).await.unwrap_err();
            assert!(matches!(&err, mysql_async::Error::Server(e) if e.code == code), "{sql}: {err}");
        }
        reference.query_drop("DROP DATABASE key_spellings_reference").await.unwrap();
    });
}

#[test]
fn temporal_values_become_mysql_text_in_the_cn() {
    block_on(async {
        let mut c = fresh_db("t_temporal_text").await;
        let create = "CREATE TABLE tm (id INT PRIMARY KEY, g INT, t TIME, dt DATETIME)";
        c.query_drop(format!("{create} PARTITION BY KEY(id) PARTITIONS 4")).await.unwrap();
        let rows = "(1, 1, '10:00:00', '2000-01-01 10:00:00'), (2, 1, '-01:30:00', '2001-01-01 00:00:00'), \
                    (3, 2, '838:59:59', NULL), (4, 3, '00:00:01.5', '1999-12-31 23:59:59')";
        c.query_drop(format!("INSERT INTO tm VALUES {rows}")).await.unwrap();
        let mut reference = reference_db("temporal_text_reference").await;
        reference.query_drop(create).await.unwrap();
        reference.query_drop(format!("INSERT INTO tm VALUES {rows}")).await.unwrap();
        for q in [
            // A string function over a TIME / DATETIME the CN computes
            // (TIME past 24 hours or below zero failed Arrow's cast).
            "SELECT g, CONCAT(MIN(t), '|'), CONCAT(MAX(t), '|'), CONCAT(MAX(dt), '|'), CONCAT(DATE(MAX(dt)), '|') \
             FROM tm GROUP BY g ORDER BY g",
            "SELECT g, CONCAT(MAX(t) > '00:00:00', '') FROM tm GROUP BY g ORDER BY g",
            // UNION of a temporal and a string column: a string (DataFusion
            // cast the string to the temporal type and failed).
            "SELECT t FROM tm UNION SELECT 'x' ORDER BY 1",
            "SELECT 'x' UNION ALL SELECT t FROM tm ORDER BY 1",
            "SELECT dt, t FROM tm UNION SELECT 'never', t FROM tm ORDER BY 1, 2",
            // COALESCE / IFNULL / CASE of a temporal value and a string: a
            // string (DataFusion found no common type: 1105).
            "SELECT g, IFNULL(MAX(dt), 'never'), COALESCE(MIN(t), ''), IFNULL(MAX(dt), '2000-01-01') \
             FROM tm GROUP BY g ORDER BY g",
            "SELECT a.id, COALESCE(b.dt, 'none'), IFNULL(a.t, b.id) FROM tm a LEFT JOIN tm b ON a.g = b.id + 10 ORDER BY 1",
            "SELECT g, CASE WHEN g = 2 THEN 'none' ELSE MAX(dt) END FROM tm GROUP BY g ORDER BY g",
            "SELECT * FROM (SELECT g, CASE g WHEN 1 THEN MAX(t) WHEN 2 THEN 'two' END c FROM tm GROUP BY g) x ORDER BY c",
            // CAST(… AS CHAR) of a temporal value the CN computes (it wrote
            // `2001-01-01T00:00:00`; a TIME beyond 24 hours failed), and
            // pushed to the shards as CAST.
            "SELECT g, CAST(MAX(dt) AS CHAR), CAST(MAX(t) AS CHAR), CAST(MAX(dt) > '2000-06-01' AS CHAR) \
             FROM tm GROUP BY g ORDER BY g",
            "SELECT a.id, CAST(a.dt AS CHAR), CAST(b.t AS CHAR(20)) FROM tm a JOIN tm b ON a.g = b.id ORDER BY 1",
            "SELECT CAST(t AS CHAR) c, MAX(id) FROM tm GROUP BY c ORDER BY c",
        ] {
            let (ours, theirs) = (result_text(&mut c, q).await, result_text(&mut reference, q).await);
            assert_eq!(ours, theirs, "{q}");
            assert!(!ours.starts_with("error"), "{q}: {ours}");
        }
        // Fractional seconds shown with the column's precision, wherever
        // the CN computes (aggregates, joins, UNION, CASE, COALESCE), and
        // sent as the column's decimals.
        let create = "CREATE TABLE tf (id INT PRIMARY KEY, g INT, t3 TIME(3), d2 DATETIME(2), d6 DATETIME(6), ts TIMESTAMP(1) NULL)";
        c.query_drop(format!("{create} PARTITION BY KEY(id) PARTITIONS 4")).await.unwrap();
        let rows = "(1, 1, '10:00:00.123', '2000-01-01 10:00:00.12', '2000-01-01 10:00:00', '2000-01-01 10:00:00.5'), \
                    (2, 1, '-00:00:01.5', '2001-01-01 00:00:00.5', '2001-01-01 00:00:00.120000', NULL), \
                    (3, 2, '838:59:59', NULL, '1999-12-31 23:59:59.999999', '2020-02-02 02:02:02')";
        c.query_drop(format!("INSERT INTO tf VALUES {rows}")).await.unwrap();
        reference.query_drop(create).await.unwrap();
        reference.query_drop(format!("INSERT INTO tf VALUES {rows}")).await.unwrap();
        for q in [
            "SELECT g, MAX(t3), MIN(t3), MAX(d2), MIN(d6), MAX(ts) FROM tf GROUP BY g ORDER BY g",
            "SELECT a.id, a.t3, b.d2, a.d6 FROM tf a JOIN tf b ON a.g = b.id ORDER BY 1",
            "SELECT d2 FROM tf UNION SELECT d6 FROM tf ORDER BY 1",
            "SELECT COALESCE(d2, d6), CASE WHEN id > 1 THEN t3 END, IFNULL(t3, t3) FROM tf ORDER BY id",
        ] {
            let (ours, theirs) = (result_text(&mut c, q).await, result_text(&mut reference, q).await);
            assert_eq!(ours, theirs, "{q}");
            let decimals = |rows: Vec<Row>| -> Vec<u8> { rows[0].columns_ref().iter().map(|c| c.decimals()).collect() };
            let (ours, theirs) = (c.query(q).await.unwrap(), reference.query(q).await.unwrap());
            assert_eq!(decimals(ours), decimals(theirs), "{q}");
        }
        reference.query_drop("DROP DATABASE temporal_text_reference").await.unwrap();
    });
}

/// `Cn_plan_cache_hits` / `_misses` of the CN.
async fn plan_cache_counter(c: &mut mysql_async::Conn, name: &str) -> u64 {
    let (_, v): (String, u64) =
        c.query_first(format!("SHOW STATUS LIKE 'Cn_plan_cache_{name}'")).await.unwrap().unwrap();
    v
}

/// A result as comparable text: column names, then each row's values (or the error code).
/// MySQL's expression semantics where the CN computes each row (the
/// select items over a derived table grouped by `id + 0`, which the CN
/// aggregates) and in the conditions it plans and pushes to the shards:
/// truth values of numbers and strings, XOR, DOUBLE literals and their
/// text, REGEXP, functions a DN computes for the CN's values, DATE_FORMAT,
/// strings and dates meeting numbers, string functions over numbers and
/// dates; the same answers and column names as MariaDB.
#[test]
fn mysql_expressions_over_values_the_cn_computes_match_mariadb() {
    block_on(async {
        let mut c = fresh_db("t_expressions").await;
        let create = "CREATE TABLE t (id INT PRIMARY KEY, g INT, s VARCHAR(20), d DATE, x DECIMAL(6,2))";
        c.query_drop(format!("{create} PARTITION BY KEY(id) PARTITIONS 4")).await.unwrap();
        let rows = "(1, 1, 'Mail', '1995-01-31', 2.50), (2, 1, 'air', '1996-02-29', -1.00), \
                    (3, 2, NULL, '1995-12-31', 0), (4, 2, '12abc', NULL, NULL), (5, 3, 'mail', '2000-03-01', 3.25), \
                    (6, 3, 'truck', '1999-07-04', -0.75), (7, 1, ' 0.0', '1994-10-10', 1.50)";
        c.query_drop(format!("INSERT INTO t VALUES {rows}")).await.unwrap();
        let mut reference = reference_db("expressions_reference").await;
        reference.query_drop(create).await.unwrap();
        reference.query_drop(format!("INSERT INTO t VALUES {rows}")).await.unwrap();
        let create = "CREATE TABLE tm (id INT PRIMARY KEY, t TIME, dt DATETIME)";
        let rows = "(1, '10:00:00', '2000-01-01 10:00:00'), (2, '-01:30:00', '2001-01-01 00:00:00'), \
                    (3, '838:59:59', NULL)";
        c.query_drop(format!("{create} PARTITION BY KEY(id) PARTITIONS 2")).await.unwrap();
        c.query_drop(format!("INSERT INTO tm VALUES {rows}")).await.unwrap();
        reference.query_drop(create).await.unwrap();
        reference.query_drop(format!("INSERT INTO tm VALUES {rows}")).await.unwrap();
        let create = "CREATE TABLE tf (id INT PRIMARY KEY, f DATETIME(3))";
        let rows =
            "(1, '2019-03-15 09:10:11.123'), (2, '2020-07-01 18:00:00'), (3, NULL), (4, '2021-12-31 00:00:00.5')";
        c.query_drop(format!("{create} PARTITION BY KEY(id) PARTITIONS 2")).await.unwrap();
        c.query_drop(format!("INSERT INTO tf VALUES {rows}")).await.unwrap();
        reference.query_drop(create).await.unwrap();
        reference.query_drop(format!("INSERT INTO tf VALUES {rows}")).await.unwrap();
        let per_row = |e: &str| {
            format!(
                "SELECT id, {e} FROM (SELECT id, MAX(g) g, MAX(s) s, MAX(d) d, MAX(x) x FROM t GROUP BY id + 0) q \
                 ORDER BY id"
            )
        };
        let mut queries: Vec<String> = [
            // An INTERVAL of an expression (DataFusion plans literals only).
            "d + INTERVAL g DAY, d - INTERVAL g WEEK, INTERVAL (g * 10) DAY + d, ADDDATE(d, g), SUBDATE(d, g + 1), \
             DATE_ADD(d, INTERVAL -g DAY), CAST(d AS DATETIME) + INTERVAL g DAY",
            "d + INTERVAL g MONTH, d - INTERVAL g YEAR, d + INTERVAL g HOUR, DATE_ADD(d, INTERVAL g QUARTER), \
             TIMESTAMPADD(MINUTE, g, d), d - INTERVAL (g * 1000) MICROSECOND, s + INTERVAL g MONTH, \
             CAST(d AS DATETIME) - INTERVAL g SECOND",
            // EXTRACT of composite units (the SQL parser has none).
            "EXTRACT(YEAR_MONTH FROM d), extract(day_hour from d), EXTRACT( DAY_MICROSECOND FROM d), \
             EXTRACT(HOUR_MINUTE FROM CAST(d AS DATETIME) + INTERVAL g HOUR), EXTRACT(YEAR_MONTH FROM d) + 1",
            // INTERVALs of composite units (the SQL parser has none).
            "DATE_ADD(d, INTERVAL '1:30' HOUR_MINUTE), d - INTERVAL '1-2' YEAR_MONTH, d + INTERVAL '-1 2' day_hour, \
             DATE_SUB(d, INTERVAL 5 MINUTE_SECOND), d + INTERVAL '1.5' SECOND_MICROSECOND, \
             CAST(d AS DATETIME) + INTERVAL '2 3:4:5' DAY_SECOND",
            // DECIMALs among DOUBLEs are DOUBLEs (DataFusion's were DECIMALs of scale 15).
            "CASE WHEN g = 1 THEN x ELSE x * 1e0 END, COALESCE(x, g * 1e0), IF(g = 2, x, 1e0), \
             GREATEST(x, g / 2e0), IFNULL(x, 2e0), NULLIF(x, 2.5e0)",
            // Truth values and XOR (DataFusion's XOR was bitwise: 1 XOR 2.50 gave 3).
            "g AND x, g OR NULL, NOT x, NOT s, g XOR x, x XOR NULL, s AND 1",
            "CASE WHEN x THEN 'y' WHEN s THEN 's' ELSE 'n' END, IF(g - 1, 'a', 'b')",
            // DOUBLEs: literals with an exponent, and their text.
            "1e0 * g, g / 2e0, g * 1.5e0, x * 1e0, 0.1e0 + 0.2e0, 1e20 * g, 1e-7 * g, POW(g, 2), SQRT(g), EXP(0)",
            // REGEXP and functions a DN computes for the CN's values.
            "s REGEXP 'a', s RLIKE '^m', s NOT REGEXP 'i', REGEXP_REPLACE(s, '[aeiou]', '*'), REGEXP_SUBSTR(s, '[a-z]+')",
            "BIN(g), OCT(g + 8), SPACE(g), QUOTE(s), INSERT(s, 2, 1, 'X'), MAKE_SET(g, 'a', 'b'), BIT_COUNT(g + 4)",
            // The function INTERVAL (1064 before), beside an interval.
            "INTERVAL(g, 1, 2, 3), INTERVAL(x, -1, 0, 2.5), interval (NULL, 1), d + INTERVAL (g + 1) DAY",
            "SOUNDEX(s), TO_BASE64(s), INET_NTOA(g + 167772160), PERIOD_DIFF(200001, 199901 + g), TIME_FORMAT('10:11:12', '%H.%i')",
            // MySQL's DATE_FORMAT specifiers (DataFusion's meant chrono's).
            "DATE_FORMAT(d, '%W %M %D %j %U %u %V %v %X %x'), DATE_FORMAT(d, '%Y-%m-%d %H:%i:%s %p %r %T %f %a %b %c %e')",
            // Strings against numbers as DOUBLEs; integers against dates as dates.
            "s = 0, s < 1, x = '2.5', g = '1', d = 19950131, d > 19950101, d BETWEEN 19950101 AND 19991231, d = 950131",
            // Strings and dates in arithmetic as numbers; remainders by zero.
            "x + '1', s + 1, '3' * g, CONCAT(g) + 1, d + 0, d + 1, MOD(g, 0), g % 0",
            "COALESCE(s, x), COALESCE(x, s), IFNULL(g, 'none'), IFNULL(s, 1.5e0)",
            // NULLIF under the collation; ROUND of a DOUBLE half to even,
            // with its decimals; IN lists mixing strings and numbers;
            // LIKE over numbers and dates; CONVERT.
            "NULLIF(s, 'MAIL'), ROUND(2.5e0), ROUND(x * 1e0, 1), ROUND(g / 4e0), ROUND(x, 1), ROUND(-2.5)",
            "s IN (0, 1), s IN ('mail', 0), x IN ('2.5', 3), g IN ('1', 3), g IN (1, 'abc')",
            "x LIKE '2%', d LIKE '1995%', CONVERT(x, CHAR), CONVERT(s USING utf8mb4), CONVERT(g, SIGNED)",
            // Dates in arithmetic (but with an INTERVAL) as numbers.
            "d - d, d - 19950101, d * 2, d + INTERVAL 1 DAY, d - INTERVAL 1 MONTH",
            // String functions over numbers and dates; INSTR and POSITION
            // under the collation.
            "LENGTH(x), LOWER(d), UPPER(d), SUBSTRING(d, 6), LEFT(d, 4), REPLACE(x, '.', ','), LPAD(g, 3, 0), \
             CHAR_LENGTH(x * 1e0), INSTR(s, 'A'), POSITION('M' IN s), REVERSE(d)",
            // Functions a DN computes for the CN, of MySQL's result types:
            // DATETIME, TIME (past 24 hours), DATE or TIME or DATETIME by
            // STR_TO_DATE's format, VARBINARY.
            "UNIX_TIMESTAMP(d), FROM_UNIXTIME(g * 100000000), FROM_UNIXTIME(g * 86400, '%Y %D %M') , \
             FROM_UNIXTIME(UNIX_TIMESTAMP(d)) + INTERVAL 1 HOUR, SEC_TO_TIME(g * 100000), MAKETIME(g, 1, 2), TIME(d)",
            "STR_TO_DATE(CONCAT('2020-01-0', g), '%Y-%m-%d') + INTERVAL 1 DAY, STR_TO_DATE(CONCAT('1', g, ':05'), '%H:%i'), \
             STR_TO_DATE(CONCAT(d, ' 10'), '%Y-%m-%d %H'), UNHEX(HEX(s)), CHAR(g + 64, 66)",
            // A number against a string literal that is not of its type
            // compares DOUBLEs (the cast to INT failed on '1.5').
            "g = '1.5', g < '1.5', g IN ('1.5', 2, ' 3'), x = ' 2.5', id = ' 1', x IN ('2.50', 'abc')",
            // CAST of a string to a number reads its numeric prefix (Arrow's
            // cast failed on '12abc'); LIKE with another escape character.
            "CAST(s AS DECIMAL(6,2)), CAST(CONCAT(g, '.567xyz') AS DECIMAL(6,2)), CAST(CONCAT(' -', g, '9abc') AS SIGNED), \
             CAST(CONCAT(g, '.9') AS SIGNED), CAST(s AS UNSIGNED)",
            // LEAST / GREATEST of strings and numbers: DOUBLEs, as MariaDB
            // (the CN answered the string: LEAST('Mail', 1) was 'Mail').
            "LEAST(s, g), GREATEST(s, x), LEAST(g, x), GREATEST(s, 'b'), LEAST(d, '1995-06-01'), LEAST(s, g, x), \
             GREATEST(g, s, 'b', x), LEAST('Eve', s)",
            // `~x` (DataFusion has none) and CAST of a date to an integer
            // (its number, where the CN read the year alone).
            "~g, ~x, ~s, ~-1, ~(g - 5), ~d, g & ~1, CAST(d AS SIGNED), CAST(d AS UNSIGNED)",
            // Bit operators over BIGINT UNSIGNED bits (DataFusion's were
            // signed: `-1 & g` was -1).
            "-1 & g, (g - 5) | 8, (g - 3) ^ 3, (g - 2) << 2, (g - 2) >> 1, x & 3, s | 0, g & '3'",
            // Integer arithmetic in 64 bits, overflow an error (1690;
            // DataFusion's INT + INT wrapped at 32 bits).
            "g * 2147483647 + g * 2147483647, -g * 2147483647 - 2147483647, id - 4, CAST(g AS UNSIGNED) * 3",
            // TIMESTAMPADD, quarters, and a DATE plus hours (a DATETIME).
            "TIMESTAMPADD(DAY, 3, d), TIMESTAMPADD(QUARTER, 1, d), TIMESTAMPADD(SQL_TSI_HOUR, 2, d), \
             d + INTERVAL 90 MINUTE, d - INTERVAL 1 QUARTER, DATE_ADD(d, INTERVAL 2 QUARTER), EXTRACT(WEEK FROM d)",
            "s LIKE 'm%' ESCAPE '!', s LIKE 'M!%' ESCAPE '!', CONCAT(s, '%') LIKE '%!%' ESCAPE '!', CONCAT(s, '!') LIKE '%!' ESCAPE '!'",
            // The MOD operator (a parse error before), and BINARY x, which
            // binds to x alone (the parser cast the whole comparison).
            "g MOD 2, x MOD 2, -g mod 2, MOD(g, 2), BINARY s = 'mail', BINARY s < 'b', CAST(s AS BINARY), \
             BINARY s LIKE 'M%', s = BINARY 'MAIL'",
            "CONVERT_TZ(CAST(d AS DATETIME), '+00:00', '+08:00'), TIMESTAMP(d), TIMESTAMP(d, '01:02:03.5'), \
             MICROSECOND(TIMESTAMP(d, '00:00:01.25'))",
            // LOG(x) is ln (DataFusion's was base 10); CAST AS CHAR(n)
            // truncates; CONCAT_WS writes MySQL's text of a DOUBLE ('2',
            // not '2.0'); SUBSTRING from the end, from 0, of a negative
            // length (DataFusion's answered s whole, or failed).
            "LOG(g), LOG(2, g * 4), CAST(x AS CHAR(2)), CAST(s AS CHAR(3)), CONCAT_WS(',', g * 1e0, x, s, d), \
             SUBSTRING(s, -2), SUBSTR(s, -3, 2), SUBSTRING(s, 0), SUBSTRING(s, 2, -1), SUBSTRING(s, -9), MID(s, -4, 3), \
             SUBSTRING(s FROM 2 FOR 2), SUBSTRING(d, -5)",
            "ADDTIME(CAST(d AS DATETIME), '01:00:00.5'), SUBTIME(CAST(d AS DATETIME), '00:00:01'), TO_SECONDS(d), ORD(s)",
            // COLLATE: `_bin` compares bytes, general_ci is the CN's own.
            "s COLLATE utf8mb4_bin = 'mail', s COLLATE utf8mb4_general_ci = 'MAIL', s COLLATE utf8mb4_bin, \
             s COLLATE utf8mb4_bin < 'b', s LIKE 'M%' COLLATE utf8mb4_bin",
        ]
        .iter()
        .map(|e| per_row(e))
        .collect();
        queries.extend(
            [
                "SELECT id, MICROSECOND(f), UNIX_TIMESTAMP(CAST(f AS DATETIME)), BINARY f FROM tf ORDER BY id",
                "SELECT MAX(MICROSECOND(f)), MIN(CONVERT_TZ(f, '+00:00', '-02:00')), SUM(MICROSECOND(f)) FROM tf",
                "SELECT a.id, MICROSECOND(a.f) - MICROSECOND(b.f), TIMESTAMP(a.f, '00:00:01') FROM tf a \
                 JOIN tf b ON a.id = b.id + 1 ORDER BY 1",
                "SELECT COUNT(*) FROM t WHERE BINARY s = 'mail' OR s MOD 2",
                "SELECT id, s FROM t ORDER BY s COLLATE utf8mb4_bin, id",
                // JSON_ARRAYAGG / JSON_OBJECTAGG where the CN computes (1235).
                "SELECT g, JSON_ARRAYAGG(s ORDER BY id), JSON_ARRAYAGG(x ORDER BY id DESC), JSON_ARRAYAGG(d ORDER BY id), \
                 JSON_ARRAYAGG(x > 1 ORDER BY id) FROM t GROUP BY g ORDER BY g",
                "SELECT id, JSON_OBJECTAGG(s, x), JSON_OBJECTAGG(id, d) FROM t WHERE s IS NOT NULL GROUP BY id + 0 ORDER BY id",
                "SELECT JSON_ARRAYAGG(id), JSON_OBJECTAGG(id, g) FROM t WHERE id > 100",
                "SELECT s, COUNT(*) FROM t GROUP BY s COLLATE utf8mb4_bin ORDER BY s COLLATE utf8mb4_bin",
                "SELECT id FROM t WHERE s = 'MAIL' COLLATE utf8mb4_bin OR s COLLATE utf8mb4_general_ci = 'AIR' ORDER BY id",
                // CAST to DATETIME and TIME keeps the cast's fractional
                // digits, none when not given (the CN kept .123).
                "SELECT a.id, CAST(a.f AS DATETIME), CAST(a.f AS TIME), CAST(a.f AS DATETIME(1)), CAST(a.f AS TIME(2)), \
                 CAST('10:11:12.567' AS TIME), CAST(a.f AS DATETIME(6)) FROM tf a JOIN tf b ON a.id = b.id + 0 ORDER BY 1",
                // Conditions the shards get as `(x) <> 0`, `regexp_instr(…) > 0`.
                "SELECT g, COUNT(*) FROM t WHERE x GROUP BY g ORDER BY g",
                // `ADDDATE` of an expression, on the shards.
                "SELECT g, COUNT(*) FROM t WHERE d + INTERVAL g DAY > '1996-01-01' GROUP BY g ORDER BY g",
                "SELECT g, COUNT(*) FROM t WHERE d + INTERVAL g MONTH > '1996-01-01' GROUP BY g ORDER BY g",
                // EXTRACT of composite units: pushed, on one shard, of TIMEs.
                "SELECT EXTRACT(YEAR_MONTH FROM d) ym, COUNT(*) FROM t GROUP BY 1 ORDER BY 1",
                "SELECT extract(year_month FROM d), EXTRACT(DAY_SECOND FROM d) FROM t WHERE id = 2",
                "SELECT id FROM t WHERE EXTRACT(YEAR_MONTH FROM d) BETWEEN 199501 AND 199612 ORDER BY id",
                "SELECT id, EXTRACT(HOUR_SECOND FROM t), EXTRACT(DAY_MINUTE FROM dt), EXTRACT(MINUTE_MICROSECOND FROM t) \
                 FROM (SELECT id, MAX(t) t, MAX(dt) dt FROM tm GROUP BY id + 0) q ORDER BY id",
                "SELECT id FROM t WHERE d + INTERVAL '1-1' YEAR_MONTH > '1997-01-01' ORDER BY id",
                "SELECT d - INTERVAL '1:30' HOUR_MINUTE FROM t WHERE id = 3",
                // A UNION column of a DECIMAL and a DOUBLE is a DOUBLE.
                "SELECT x FROM t WHERE id < 4 UNION ALL SELECT g * 1.5e0 FROM t WHERE id > 4 ORDER BY 1",
                "SELECT x FROM t WHERE id < 4 UNION SELECT 2.5e0 ORDER BY 1",
                "SELECT g, COUNT(*) FROM t WHERE NOT x GROUP BY g ORDER BY g",
                "SELECT g, COUNT(*) FROM t WHERE s GROUP BY g ORDER BY g",
                "SELECT g, COUNT(*) FROM t WHERE g - 1 OR x XOR s GROUP BY g ORDER BY g",
                "SELECT g, COUNT(*) FROM t WHERE s NOT RLIKE 'a' GROUP BY g ORDER BY g",
                "SELECT g, SUM(x * 1e0), MAX(g / 3e0) FROM t GROUP BY g HAVING COUNT(*) - 2 ORDER BY g",
                "SELECT g, SUM(CASE WHEN x THEN 1 ELSE 0 END), SUM(IF(g - 1, 1, 0)) FROM t GROUP BY g ORDER BY g",
                "SELECT t.id, u.id FROM t JOIN t u ON t.g = u.id AND u.x WHERE t.s OR t.d ORDER BY 1",
                "SELECT g, COUNT(*) FROM t WHERE s = 0 GROUP BY g ORDER BY g",
                "SELECT g, COUNT(*) FROM t WHERE d BETWEEN 19950101 AND 19991231 AND s + 0 = 0 GROUP BY g ORDER BY g",
                "SELECT DATE_FORMAT(d, '%W %D') AS w, COUNT(*) FROM t GROUP BY 1 ORDER BY 1",
                "SELECT g, SUM(s + 0), MAX(LENGTH(x)) FROM t GROUP BY g ORDER BY g",
                "SELECT g, COUNT(*) FROM t WHERE s IN (0, 12) OR x LIKE '%5' GROUP BY g ORDER BY g",
                "SELECT id FROM t WHERE LEAST(s, g) = 0 AND GREATEST(s, x) > 0 ORDER BY id",
                "SELECT id FROM t WHERE (g & ~2) = 1 ORDER BY id",
                // Bit operators pushed to the shards.
                "SELECT t.id, u.id FROM t JOIN t u ON t.g = u.g WHERE t.g & 1 AND (u.g | 4) = 5 ORDER BY 1, 2",
                "SELECT id, CAST(dt AS SIGNED), CAST(t AS SIGNED), ~t FROM (SELECT id, MAX(dt) dt, MAX(t) t FROM tm \
                 GROUP BY id + 0) q ORDER BY id",
                // A CAST alone in a select list over the CN's strings.
                "SELECT CAST(s AS DECIMAL(6,2)) c FROM (SELECT id, MAX(s) s FROM t GROUP BY id + 0) q ORDER BY c",
                "SELECT g, COUNT(*) FROM t WHERE s LIKE 'M!%' ESCAPE '!' OR s LIKE '%!_%' ESCAPE '!' OR s LIKE 't%' ESCAPE '!' \
                 GROUP BY g ORDER BY g",
                // SUM and AVG of truth values; DOUBLEs and dates in
                // GROUP_CONCAT as MySQL's text.
                "SELECT g, SUM(x > 0), AVG(s = 'mail'), SUM((x > 0) + 1), SUM(g XOR id), AVG(NOT x) \
                 FROM t GROUP BY g ORDER BY g",
                "SELECT g, GROUP_CONCAT(x * 1e0 ORDER BY id), GROUP_CONCAT(DATE_FORMAT(d, '%b %D') ORDER BY id) \
                 FROM t GROUP BY g ORDER BY g",
                "SELECT g, COUNT(*) FROM t WHERE d + INTERVAL 1 YEAR > '1997-01-01' GROUP BY g ORDER BY g",
                // TIME and DATETIME in arithmetic.
                "SELECT id, t + 0, dt + 0, TIME_TO_SEC(t), t * 1 FROM (SELECT id, MAX(t) t, MAX(dt) dt FROM tm \
                 GROUP BY id + 0) q ORDER BY id",
            ]
            .map(String::from),
        );
        for q in &queries {
            let (ours, theirs) = (result_text(&mut c, q).await, result_text(&mut reference, q).await);
            assert_eq!(ours, theirs, "{q}");
            assert!(!ours.starts_with("error"), "{q}: {ours}");
        }
        // UNIX_TIMESTAMP of a DATETIME(3) is a DECIMAL of scale 3 (it read
        // as NULL where the CN merged the shards): pushed, over a join, in
        // aggregates, and computed by a DN over the CN's values.
        for q in [
            "SELECT a.id, UNIX_TIMESTAMP(a.f), UNIX_TIMESTAMP(a.f) - UNIX_TIMESTAMP(b.f) + 1 FROM tf a \
             JOIN tf b ON a.id = b.id + 0 ORDER BY 1",
            "SELECT MAX(UNIX_TIMESTAMP(f)), SUM(UNIX_TIMESTAMP(f)), COUNT(UNIX_TIMESTAMP(f)) FROM tf",
            "SELECT g, MAX(UNIX_TIMESTAMP(f)) FROM (SELECT id % 2 g, f FROM tf) x GROUP BY g ORDER BY g",
            "SELECT id, UNIX_TIMESTAMP(f), UNIX_TIMESTAMP(CAST(f AS DATETIME)) FROM (SELECT id, MAX(f) f FROM tf \
             GROUP BY id + 0) q ORDER BY id",
        ] {
            let (ours, theirs) = (result_text(&mut c, q).await, result_text(&mut reference, q).await);
            assert_eq!(ours, theirs, "{q}");
            assert!(!ours.starts_with("error"), "{q}: {ours}");
        }
        // `default_week_format` reaches the DNs: WEEK(d) and EXTRACT(WEEK)
        // where the CN computes, pushed, and on one shard.
        for conn in [&mut c, &mut reference] {
            conn.query_drop("SET default_week_format = 1").await.unwrap();
        }
        for q in [
            per_row("WEEK(d), EXTRACT(WEEK FROM d), WEEK(d, 0), YEARWEEK(d)"),
            "SELECT id, WEEK(d) FROM t WHERE WEEK(d) < 9 ORDER BY id".into(),
            "SELECT WEEK(d), EXTRACT(WEEK FROM d) FROM t WHERE id = 6".into(),
        ] {
            assert_eq!(result_text(&mut c, &q).await, result_text(&mut reference, &q).await, "{q}");
        }
        for conn in [&mut c, &mut reference] {
            conn.query_drop("SET default_week_format = 0").await.unwrap();
        }
        // A DECIMAL past the CN's 38 digits is refused where the CN
        // computes (it read as NULL), and passes through where it does not.
        c.query_drop("CREATE TABLE td (id INT PRIMARY KEY, dd DECIMAL(65,0)) PARTITION BY KEY(id) PARTITIONS 2")
            .await
            .unwrap();
        c.query_drop(format!("INSERT INTO td VALUES (1, {}), (2, 5)", "9".repeat(60))).await.unwrap();
        let q = "SELECT id, MAX(dd) FROM td GROUP BY id + 0 ORDER BY id";
        assert_eq!(result_text(&mut c, q).await, "error 1235");
        let q = "SELECT dd FROM td WHERE id = 1";
        assert!(result_text(&mut c, q).await.contains(&"9".repeat(60)));
        // Integer overflow is MySQL's error 1690 (DataFusion wrapped).
        for e in [
            "g * 9223372036854775807",
            "CAST(g AS UNSIGNED) - 2",
            "(g + 9223372036854775806) * 1",
            "-(-g - 9223372036854775807)",
            // An Arrow kernel's overflow too.
            "ABS(g - g - 9223372036854775807 - 1)",
        ] {
            let q = per_row(e);
            assert_eq!(result_text(&mut c, &q).await, "error 1690", "{q}");
            assert_eq!(result_text(&mut reference, &q).await, "error 1690", "{q}");
        }
        // The parser's marks on arithmetic operands are gone before the
        // shards' SQL is made, in joins too.
        let plan: Vec<(String, String)> =
            c.query("EXPLAIN SELECT t.id + 1, u.s FROM t JOIN t u ON u.id = t.g + 1 WHERE t.x * 2 > 0").await.unwrap();
        let text = plan.iter().map(|(_, p)| p.as_str()).collect::<Vec<_>>().join("\n");
        // (Names keep the parser's text; the expressions lose the marks.)
        let marked = |l: &&str| l.contains("SELECT") || l.contains("Join") || l.contains("on=");
        assert!(text.lines().filter(marked).all(|l| !l.contains("__cn_num")), "{text}");
        assert!(text.contains("`x` * 2"), "{text}");
    });
}

async fn result_text(c: &mut mysql_async::Conn, sql: &str) -> String {
    match c.query::<Row, _>(sql).await {
        Ok(rows) => {
            let names: Vec<String> = rows
                .first()
                .map(|r| r.columns_ref().iter().map(|c| c.name_str().to_string()).collect())
                .unwrap_or_default();
            // Whole values (the Debug form of a Value cuts long ones).
            let vals: Vec<Vec<String>> =
                rows.into_iter().map(|r| r.unwrap().into_iter().map(|v| v.as_sql(true)).collect()).collect();
            format!("{names:?} {vals:?}")
        }
        Err(e) => format!("error {}", code(e)),
    }
}

/// SQL-level prepared statements: PREPARE from a string or a user
/// variable, EXECUTE with user variables for the placeholders (strings,
/// numbers, NULL), DEALLOCATE; MySQL's errors for an unknown name (1243)
/// and a wrong number of variables (1210).
#[test]
fn sql_prepare_execute_and_deallocate_as_mysql() {
    block_on(async {
        let mut c = fresh_db("t_sql_prepare").await;
        c.query_drop("CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(20), d DATE) PARTITION BY KEY(id) PARTITIONS 4")
            .await
            .unwrap();
        c.query_drop("INSERT INTO t VALUES (1, 'it''s', '2020-01-31'), (2, '?', '2021-06-01'), (3, NULL, NULL)")
            .await
            .unwrap();
        c.query_drop("PREPARE p1 FROM 'SELECT id, s FROM t WHERE id = ? OR s = ? ORDER BY id'").await.unwrap();
        c.query_drop("SET @a = 3, @b = 'it''s'").await.unwrap();
        let rows: Vec<(i32, Option<String>)> = c.query("EXECUTE p1 USING @a, @b").await.unwrap();
        assert_eq!(rows, vec![(1, Some("it's".into())), (3, None)]);
        // A variable never set is NULL; the `?` inside a quoted string is no placeholder.
        c.query_drop("SET @q = 'SELECT id, EXTRACT(YEAR_MONTH FROM d) FROM t WHERE s = ''?'' OR id = ?'")
            .await
            .unwrap();
        c.query_drop("PREPARE `p 2` FROM @q").await.unwrap();
        let rows: Vec<(i32, Option<i64>)> = c.query("EXECUTE `p 2` USING @unset").await.unwrap();
        assert_eq!(rows, vec![(2, Some(202106))]);
        c.query_drop("SET @one = 1").await.unwrap();
        let rows: Vec<(i32, Option<i64>)> = c.query("EXECUTE `p 2` USING @one").await.unwrap();
        let mut rows = rows;
        rows.sort();
        assert_eq!(rows, vec![(1, Some(202001)), (2, Some(202106))]);
        // A write, prepared again under the same name.
        c.query_drop("PREPARE p1 FROM 'UPDATE t SET s = ? WHERE id = ?'").await.unwrap();
        c.query_drop("SET @s = 'new'").await.unwrap();
        c.query_drop("EXECUTE p1 USING @s, @a").await.unwrap();
        let s: Option<String> = c.query_first("SELECT s FROM t WHERE id = 3").await.unwrap().unwrap();
        assert_eq!(s.as_deref(), Some("new"));
        let code = |e: mysql_async::Error| match e {
            mysql_async::Error::Server(s) => s.code,
            other => panic!("{other}"),
        };
        assert_eq!(code(c.query_drop("EXECUTE p1 USING @s").await.unwrap_err()), 1210);
        c.query_drop("DEALLOCATE PREPARE p1").await.unwrap();
        assert_eq!(code(c.query_drop("EXECUTE p1 USING @s, @a").await.unwrap_err()), 1243);
        assert_eq!(code(c.query_drop("DROP PREPARE p1").await.unwrap_err()), 1243);
        assert_eq!(code(c.query_drop("PREPARE p3 FROM ''").await.unwrap_err()), 1065);
        assert_eq!(code(c.query_drop("PREPARE p3 FROM 'EXECUTE p3'").await.unwrap_err()), 1295);
        // The prepared statements are the session's.
        let mut other = connect(Some("t_sql_prepare")).await;
        assert_eq!(code(other.query_drop("EXECUTE `p 2` USING @one").await.unwrap_err()), 1243);
        c.query_drop("DROP DATABASE t_sql_prepare").await.unwrap();
    });
}

#[test]
fn create_table_like_and_limited_writes_over_several_partitions_as_mariadb() {
    block_on(async {
        let mut c = fresh_db("t_limited").await;
        let create = "CREATE TABLE t (id INT PRIMARY KEY, g INT, s VARCHAR(20), KEY k_g (g))";
        c.query_drop(format!("{create} PARTITION BY KEY(id) PARTITIONS 4")).await.unwrap();
        let rows: String = (1..=20).map(|i| format!("({i}, {}, 's{i}')", i % 3)).collect::<Vec<_>>().join(", ");
        c.query_drop(format!("INSERT INTO t VALUES {rows}")).await.unwrap();
        let mut reference = reference_db("limited_reference").await;
        reference.query_drop(create).await.unwrap();
        reference.query_drop(format!("INSERT INTO t VALUES {rows}")).await.unwrap();

        // CREATE TABLE … LIKE copies columns, indexes and partitioning
        // (it was 1064), and not the rows nor the AUTO_INCREMENT counter.
        c.query_drop("CREATE TABLE u LIKE t").await.unwrap();
        c.query_drop("CREATE TABLE IF NOT EXISTS u LIKE t").await.unwrap();
        let show = |r: Option<(String, String)>| r.unwrap().1;
        let t_ddl = show(c.query_first("SHOW CREATE TABLE t").await.unwrap());
        let u_ddl = show(c.query_first("SHOW CREATE TABLE u").await.unwrap());
        assert_eq!(u_ddl, t_ddl.replacen("`t`", "`u`", 1));
        assert!(u_ddl.contains("PARTITION BY KEY(`id`) PARTITIONS 4"), "{u_ddl}");
        let n: Option<i64> = c.query_first("SELECT COUNT(*) FROM u").await.unwrap();
        assert_eq!(n, Some(0));
        assert_eq!(code(c.query_drop("CREATE TABLE u LIKE t").await.unwrap_err()), 1050);
        assert_eq!(code(c.query_drop("CREATE TABLE v LIKE nosuch").await.unwrap_err()), 1146);

        // UPDATE and DELETE with ORDER BY … LIMIT over every partition (1235
        // before): the first rows by the order, as on one MariaDB.
        for q in [
            "UPDATE t SET s = CONCAT(s, '!') WHERE g = 1 ORDER BY id DESC LIMIT 3",
            "UPDATE t SET g = g + 10 ORDER BY s LIMIT 4",
            "DELETE FROM t WHERE g <> 2 ORDER BY g, id LIMIT 5",
            "DELETE FROM t ORDER BY id DESC LIMIT 2",
            "UPDATE t SET g = 7 WHERE id > 100 ORDER BY id LIMIT 1",
            "UPDATE t SET s = 'x\\\\y' WHERE s <> 'q\\\\r' ORDER BY id LIMIT 2",
            // A new primary key of a table partitioned by it moves the row
            // (1235 before): found by its new key, gone from the old.
            "UPDATE t SET id = id + 100, s = CONCAT(s, '>') WHERE g = 1",
            "UPDATE t SET id = 500 WHERE id = (SELECT 7)",
            "UPDATE t SET id = id WHERE g = 2",
        ] {
            let ours = c.query_iter(q).await.unwrap().affected_rows();
            let theirs = reference.query_iter(q).await.unwrap().affected_rows();
            assert_eq!(ours, theirs, "{q}");
            let all = "SELECT id, g, s FROM t ORDER BY id";
            assert_eq!(result_text(&mut c, all).await, result_text(&mut reference, all).await, "after {q}");
        }
        for q in [
            "SELECT s FROM t WHERE id = 500",
            "SELECT COUNT(*) FROM t WHERE id = 7",
            "SELECT id FROM t WHERE id > 100 ORDER BY id",
        ] {
            assert_eq!(result_text(&mut c, q).await, result_text(&mut reference, q).await, "{q}");
        }
        // Without ORDER BY, any rows: as many as the LIMIT asks.
        let n = c.query_iter("DELETE FROM t WHERE g >= 0 LIMIT 3").await.unwrap().affected_rows();
        assert_eq!(n, 3);
        let n: Option<i64> = c.query_first("SELECT COUNT(*) FROM t").await.unwrap();
        assert_eq!(n, Some(10));
        // Inside a transaction the locked keys stay the transaction's: a
        // rollback undoes the write.
        c.query_drop("BEGIN").await.unwrap();
        c.query_drop("DELETE FROM t ORDER BY id LIMIT 4").await.unwrap();
        c.query_drop("ROLLBACK").await.unwrap();
        let n: Option<i64> = c.query_first("SELECT COUNT(*) FROM t").await.unwrap();
        assert_eq!(n, Some(10));
        c.query_drop("DROP DATABASE t_limited").await.unwrap();
    });
}

/// CHECK, OPTIMIZE, REPAIR and CHECKSUM TABLE (1064 before) run on every
/// shard and answer as one MariaDB with the same rows does.
#[test]
fn table_maintenance_statements_answer_as_mariadb() {
    block_on(async {
        let mut c = fresh_db("t_maint").await;
        let mut reference = reference_db("maint_reference").await;
        let create = "CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(20), d DATETIME(3), n DECIMAL(9,2))";
        let rows: String = (1..=300)
            .map(|i| format!("({i}, 's{i}', '2024-01-{:02} 10:00:00.{i:03}', {i}.5)", i % 28 + 1))
            .collect::<Vec<_>>()
            .join(", ");
        c.query_drop(format!("{create} PARTITION BY KEY(id) PARTITIONS 4")).await.unwrap();
        c.query_drop("CREATE TABLE b (id INT PRIMARY KEY, s VARCHAR(20)) BROADCAST").await.unwrap();
        reference.query_drop(create).await.unwrap();
        reference.query_drop("CREATE TABLE b (id INT PRIMARY KEY, s VARCHAR(20))").await.unwrap();
        for conn in [&mut c, &mut reference] {
            conn.query_drop(format!("INSERT INTO t VALUES {rows}")).await.unwrap();
            conn.query_drop("INSERT INTO b VALUES (1, 'x'), (2, NULL)").await.unwrap();
        }
        // The table's checksum is the sum of its rows' CRCs: the shards'
        // add up to one MariaDB's (and a broadcast table counts once).
        for q in ["CHECKSUM TABLE t", "CHECKSUM TABLE t, b EXTENDED", "CHECKSUM TABLE b QUICK"] {
            let ours: Vec<(String, Option<u64>)> = c.query(q).await.unwrap();
            let theirs: Vec<(String, Option<u64>)> = reference.query(q).await.unwrap();
            let names = |v: &[(String, Option<u64>)]| {
                v.iter().map(|r| r.0.rsplit('.').next().unwrap().to_string()).collect::<Vec<_>>()
            };
            assert_eq!(names(&ours), names(&theirs), "{q}");
            assert_eq!(
                ours.iter().map(|r| r.1).collect::<Vec<_>>(),
                theirs.iter().map(|r| r.1).collect::<Vec<_>>(),
                "{q}"
            );
        }
        let sum: Option<(String, Option<u64>)> = c.query_first("CHECKSUM TABLE t").await.unwrap();
        assert!(sum.unwrap().1.is_some_and(|n| n > 0));
        c.query_drop("UPDATE t SET s = 'changed' WHERE id = 7").await.unwrap();
        let changed: Option<(String, Option<u64>)> = c.query_first("CHECKSUM TABLE t").await.unwrap();
        let before: Option<(String, Option<u64>)> = reference.query_first("CHECKSUM TABLE t").await.unwrap();
        assert_ne!(changed.unwrap().1, before.unwrap().1, "a changed row changes the checksum");
        let missing: Vec<(String, Option<u64>)> = c.query("CHECKSUM TABLE nosuch").await.unwrap();
        assert_eq!(missing, [("t_maint.nosuch".to_string(), None)]);
        let warning: Option<(String, u32, String)> = c.query_first("SHOW WARNINGS").await.unwrap();
        assert_eq!(warning.unwrap().1, 1146);
        // CHECK, OPTIMIZE and REPAIR: MySQL's rows for each table, the
        // shards' notes once.
        type Msg = (String, String, String, String);
        let rows_of = |v: Vec<Msg>| v.into_iter().map(|r| (r.1, r.2, r.3)).collect::<Vec<_>>();
        for q in ["CHECK TABLE t", "CHECK TABLE t, b QUICK", "OPTIMIZE TABLE t", "REPAIR TABLE b"] {
            let ours: Vec<Msg> = c.query(q).await.unwrap();
            let theirs: Vec<Msg> = reference.query(q).await.unwrap();
            assert!(ours.iter().all(|r| r.0.starts_with("t_maint.")), "{ours:?}");
            assert_eq!(rows_of(ours), rows_of(theirs), "{q}");
        }
        let missing: Vec<Msg> = c.query("CHECK TABLE nosuch").await.unwrap();
        assert_eq!(
            rows_of(missing),
            [
                ("check".into(), "Error".into(), "Table 't_maint.nosuch' doesn't exist".into()),
                ("check".into(), "status".into(), "Operation failed".into())
            ]
        );
        assert_eq!(code(c.query_drop("CHECK TABLE").await.unwrap_err()), 1064);
        assert_eq!(code(c.query_drop("CHECKSUM TABLE t (a)").await.unwrap_err()), 1064);
        // The rows are still there after OPTIMIZE.
        let n: Option<i64> = c.query_first("SELECT COUNT(*) FROM t").await.unwrap();
        assert_eq!(n, Some(300));
        c.query_drop("DROP DATABASE t_maint").await.unwrap();
    });
}

#[test]
fn multi_table_update_and_delete_as_mariadb() {
    block_on(async {
        let mut c = fresh_db("t_multi").await;
        let mut reference = reference_db("multi_reference").await;
        let tables = [
            ("CREATE TABLE t (id INT PRIMARY KEY, g INT, s VARCHAR(20))", " PARTITION BY KEY(id) PARTITIONS 4"),
            ("CREATE TABLE u (k INT, id INT, v VARCHAR(20), PRIMARY KEY (k, id))", " PARTITION BY KEY(k) PARTITIONS 3"),
        ];
        let t_rows: String = (1..=12).map(|i| format!("({i}, {}, 's{i}')", i % 4)).collect::<Vec<_>>().join(", ");
        let u_rows = "(1, 2, 'two'), (1, 3, 'three'), (2, 3, 'again'), (3, 5, 'it''s'), (4, 7, NULL), (5, 99, 'none')";
        for (create, clause) in tables {
            c.query_drop(format!("{create}{clause}")).await.unwrap();
            reference.query_drop(create).await.unwrap();
        }
        for conn in [&mut c, &mut reference] {
            conn.query_drop(format!("INSERT INTO t VALUES {t_rows}")).await.unwrap();
            conn.query_drop(format!("INSERT INTO u VALUES {u_rows}")).await.unwrap();
        }
        // (1235 before.) A row matched twice is written once; SET names
        // the other table's columns; aliases; a comma join; USING.
        for q in [
            // A subquery over a sharded table read one partition's DN (the
            // write's): SET n = (SELECT COUNT(*) …) counted one partition.
            "UPDATE t SET g = (SELECT COUNT(*) FROM u) WHERE id = 2",
            "UPDATE t SET g = (SELECT MAX(k) FROM u WHERE u.id = t.id) WHERE id < 6",
            "UPDATE t SET s = 'sub' WHERE id IN (SELECT id FROM u WHERE k > 2)",
            "UPDATE t SET g = (SELECT COUNT(*) FROM u) + g ORDER BY id DESC LIMIT 2",
            "DELETE FROM t WHERE id = 12 AND EXISTS (SELECT 1 FROM u WHERE k = 5)",
            "INSERT INTO t VALUES (13, (SELECT COUNT(*) FROM u), 'ins'), (14, 1, (SELECT MAX(v) FROM u))",
            // A backslash in a literal the CN re-reads (it would start an escape).
            "UPDATE t JOIN u ON t.id = u.id SET t.s = CONCAT(u.v, 'a\\\\b') WHERE u.v <> 'q\\\\r' AND u.k = 1",
            "UPDATE t JOIN u ON t.id = u.id SET t.s = u.v WHERE u.k < 4",
            "UPDATE t a JOIN u b ON a.id = b.id SET a.g = b.k * 10, s = CONCAT(a.s, '+')",
            "UPDATE t, u SET t.g = t.g + 1 WHERE t.id = u.k AND u.v IS NOT NULL",
            "UPDATE u JOIN t ON t.id = u.id SET u.v = t.s WHERE t.g > 10",
            // Two tables' columns in one UPDATE (1235 before); the null
            // side of an outer join is no row; u's rows move (its key).
            "UPDATE t JOIN u ON t.id = u.id SET t.g = u.k + 100, u.v = CONCAT(t.s, '/')",
            "UPDATE t a LEFT JOIN u b ON b.id = a.id SET a.s = 'l', b.v = 'r' WHERE a.id > 4",
            "UPDATE u JOIN t ON t.id = u.id SET u.k = u.k + 10, t.s = 'moved', u.v = 'mv' WHERE u.k < 3",
            "DELETE t FROM t JOIN u ON t.id = u.id WHERE u.k = 1",
            "DELETE FROM u USING u JOIN t ON u.k = t.g",
            "DELETE t, u FROM t JOIN u ON t.id = u.k",
            "DELETE t FROM t LEFT JOIN u ON u.k = t.id WHERE u.k IS NULL AND t.id > 9",
        ] {
            let ours = c.query_iter(q).await.unwrap().affected_rows();
            let theirs = reference.query_iter(q).await.unwrap().affected_rows();
            assert_eq!(ours, theirs, "{q}");
            for all in ["SELECT * FROM t ORDER BY id", "SELECT * FROM u ORDER BY k, id"] {
                assert_eq!(result_text(&mut c, all).await, result_text(&mut reference, all).await, "after {q}");
            }
        }
        // Inside a transaction a statement that fails on one of its rows
        // is undone whole (the rows written before it too), and the
        // transaction goes on.
        c.query_drop("INSERT INTO u VALUES (6, 1, 'a'), (6, 4, 'b'), (6, 6, 'c'), (6, 8, 'd'), (6, 9, 'e')")
            .await
            .unwrap();
        let before = result_text(&mut c, "SELECT * FROM t ORDER BY id").await;
        c.query_drop("BEGIN").await.unwrap();
        c.query_drop("UPDATE t SET g = -1 WHERE id = 1").await.unwrap();
        let q = "UPDATE t JOIN u ON t.id = u.id SET t.s = IF(u.v = 'd', REPEAT('y', 30), 'ok') WHERE u.k = 6";
        assert_eq!(code(c.query_drop(q).await.unwrap_err()), 1406);
        let during = result_text(&mut c, "SELECT * FROM t WHERE id <> 1 ORDER BY id").await;
        c.query_drop("COMMIT").await.unwrap();
        assert!(!during.contains("'ok'"), "{during}");
        let after = result_text(&mut c, "SELECT * FROM t ORDER BY id").await;
        assert_ne!(after, before, "the transaction's first UPDATE stays");
        assert!(after.contains("'-1'") && !after.contains("'ok'"), "{after}");
        assert_eq!(code(c.query_drop("UPDATE t JOIN u ON t.id = u.id SET id = 1").await.unwrap_err()), 1052);
        assert_eq!(code(c.query_drop("DELETE x FROM t JOIN u ON t.id = u.id").await.unwrap_err()), 1109);
        assert_eq!(code(c.query_drop("UPDATE t SET g = (SELECT MAX(id) FROM nosuch)").await.unwrap_err()), 1146);
        c.query_drop("DROP DATABASE t_multi").await.unwrap();
    });
}

/// A repeated statement the CN computes (a join it runs itself) takes its
/// optimized plan from the plan cache, reads through this execution's
/// connections (a transaction's own writes), and plans afresh after
/// `ANALYZE TABLE`; plans that read data while planning (a folded scalar
/// subquery) or ask a DN with the session's variables (time functions in
/// the session's time zone) are not kept.
#[test]
fn repeated_statements_the_cn_computes_reuse_their_optimized_plan() {
    block_on(async {
        let mut c = fresh_db("t_statement_plans").await;
        c.query_drop("CREATE TABLE a (id INT PRIMARY KEY, g INT, v INT) PARTITION BY KEY(id) PARTITIONS 4")
            .await
            .unwrap();
        c.query_drop("CREATE TABLE b (id INT PRIMARY KEY, w INT) PARTITION BY KEY(id) PARTITIONS 3").await.unwrap();
        let rows: Vec<String> = (1..=30).map(|i| format!("({i}, {}, {})", i % 4, i % 7)).collect();
        c.query_drop(format!("INSERT INTO a VALUES {}", rows.join(","))).await.unwrap();
        let rows: Vec<String> = (0..7).map(|i| format!("({i}, {})", i * 10)).collect();
        c.query_drop(format!("INSERT INTO b VALUES {}", rows.join(","))).await.unwrap();
        let mut plain = connect(Some("t_statement_plans")).await;
        plain.query_drop("SET cn_plan_cache = OFF").await.unwrap();
        // Not co-located (a.v is not a's partition key): the CN joins.
        let q = "SELECT a.g, COUNT(*), SUM(b.w) FROM a JOIN b ON a.v = b.id GROUP BY a.g ORDER BY a.g";
        let (h0, m0) = (plan_cache_counter(&mut c, "hits").await, plan_cache_counter(&mut c, "misses").await);
        let first = result_text(&mut c, q).await;
        assert_eq!(plan_cache_counter(&mut c, "misses").await - m0, 1);
        let second = result_text(&mut c, q).await;
        assert_eq!(plan_cache_counter(&mut c, "hits").await - h0, 1, "the second run is served from the cache");
        assert_eq!(first, second);
        assert_eq!(second, result_text(&mut plain, q).await);
        assert!(!second.starts_with("error"), "{second}");
        assert_eq!(plan_cache_counter(&mut plain, "hits").await, 0, "cn_plan_cache = OFF");

        // In a transaction the cached plan reads the transaction's writes.
        c.query_drop("BEGIN").await.unwrap();
        c.query_drop("INSERT INTO a VALUES (100, 0, 6), (101, 1, 6)").await.unwrap();
        let h0 = plan_cache_counter(&mut c, "hits").await;
        let mine = result_text(&mut c, q).await;
        assert_eq!(plan_cache_counter(&mut c, "hits").await - h0, 1);
        assert_ne!(mine, second, "the transaction's rows are counted");
        c.query_drop("SET cn_plan_cache = OFF").await.unwrap();
        assert_eq!(mine, result_text(&mut c, q).await);
        c.query_drop("SET cn_plan_cache = ON").await.unwrap();
        c.query_drop("ROLLBACK").await.unwrap();
        assert_eq!(result_text(&mut c, q).await, second);

        // ANALYZE TABLE moves the catalog version: planned afresh.
        c.query_drop("ANALYZE TABLE a").await.unwrap();
        let m0 = plan_cache_counter(&mut c, "misses").await;
        assert_eq!(result_text(&mut c, q).await, second);
        assert_eq!(plan_cache_counter(&mut c, "misses").await - m0, 1);

        // A scalar subquery's value is read while planning: not kept, so a
        // change to b shows in the next run.
        let sub = "SELECT COUNT(*) FROM a WHERE v * 10 > (SELECT AVG(w) FROM b)";
        let h0 = plan_cache_counter(&mut c, "hits").await;
        let before: Vec<i64> = c.query(sub).await.unwrap();
        plain.query_drop("UPDATE b SET w = w + 1000 WHERE id = 0").await.unwrap();
        let after: Vec<i64> = c.query(sub).await.unwrap();
        assert_eq!(plan_cache_counter(&mut c, "hits").await, h0);
        assert_eq!(after, plain.query::<i64, _>(sub).await.unwrap());
        assert_ne!(before, after);

        // FROM_UNIXTIME over the CN's aggregate is computed in each
        // session's time zone.
        let tz = "SELECT g, FROM_UNIXTIME(MAX(v) * 3600) FROM a GROUP BY g ORDER BY g";
        c.query_drop("SET time_zone = '+00:00'").await.unwrap();
        plain.query_drop("SET time_zone = '+05:00'").await.unwrap();
        plain.query_drop("SET cn_plan_cache = ON").await.unwrap();
        let utc = result_text(&mut c, tz).await;
        let east = result_text(&mut plain, tz).await;
        assert!(utc.contains("1970-01-01 06:00:00"), "{utc}");
        assert!(east.contains("1970-01-01 11:00:00"), "{east}");
        assert_eq!(result_text(&mut c, tz).await, utc);
        c.query_drop("DROP DATABASE t_statement_plans").await.unwrap();
    });
}

#[test]
fn point_selects_come_from_the_plan_cache_with_the_planners_answers() {
    block_on_exclusive(async {
        let mut c = fresh_db("t_plan_cache").await;
        c.query_drop("CREATE TABLE t (id INT PRIMARY KEY, k INT, c VARCHAR(20)) PARTITION BY KEY(id) PARTITIONS 8")
            .await
            .unwrap();
        let values: Vec<String> = (1..=40).map(|i| format!("({i}, {}, 'c{i}')", i % 5)).collect();
        c.query_drop(format!("INSERT INTO t VALUES {}, (41, 1, 'it''s')", values.join(","))).await.unwrap();
        let mut plain = connect(Some("t_plan_cache")).await;
        plain.query_drop("SET cn_plan_cache = OFF").await.unwrap();

        // Every key routes to its partition: the first run builds the plan,
        // the other 40 are served from it, each with the planner's answer.
        let h0 = plan_cache_counter(&mut c, "hits").await;
        for id in 1..=41 {
            let sql = format!("SELECT c FROM t WHERE id = {id}");
            let cached: Vec<String> = c.query(&sql).await.unwrap();
            assert_eq!(cached.len(), 1, "{sql}");
            assert_eq!(cached, plain.query::<String, _>(&sql).await.unwrap(), "{sql}");
        }
        assert_eq!(plan_cache_counter(&mut c, "hits").await - h0, 40);
        // The counters are the session's (MySQL's default scope), and
        // SHOW GLOBAL STATUS sums every session's.
        assert_eq!(plan_cache_counter(&mut plain, "hits").await, 0);
        let (_, global): (String, u64) =
            plain.query_first("SHOW GLOBAL STATUS LIKE 'Cn_plan_cache_hits'").await.unwrap().unwrap();
        assert!(global >= 40, "global hits {global}");

        // Statement shapes: whether the second run is served from the
        // cache, and the same answer (or error) as the planner's either way.
        let cases = [
            ("SELECT * FROM t WHERE id = 7", true),
            ("SELECT id, c FROM t AS x WHERE x.id = 9 AND k > 1", true),
            ("SELECT c FROM t WHERE id = '12'", true),
            ("SELECT COUNT(*), MAX(c) FROM t WHERE id = 3", true),
            ("SELECT c FROM t WHERE id = 41 AND c = 'it''s'", true),
            ("select c, 'lit' AS l from t where 5 = id", true),
            ("SELECT c FROM t WHERE id = 3 AND id = 4", false),
            ("SELECT c FROM t WHERE id = 3 OR id = 4 ORDER BY c", false),
            // The CN computes these two (sorted by a column not shown; a
            // semi join) and takes their optimized plans from the cache
            // (executor/plan_cache.rs).
            ("SELECT c FROM t WHERE k = 2 ORDER BY id", true),
            ("SELECT c, DATABASE() FROM t WHERE id = 3", false),
            ("SELECT c FROM t WHERE id = 3 FOR UPDATE", false),
            ("SELECT c FROM t WHERE id = 3 LOCK IN SHARE MODE", false),
            ("SELECT /* hint */ c FROM t WHERE id = 3", false),
            ("SELECT c FROM t WHERE id = 'x'", false),
            ("SELECT c FROM t WHERE id = 2 AND c IN (SELECT c FROM t WHERE id = 2)", true),
        ];
        for (sql, served) in cases {
            let expected = result_text(&mut plain, sql).await;
            assert_eq!(result_text(&mut c, sql).await, expected, "{sql}");
            let h = plan_cache_counter(&mut c, "hits").await;
            assert_eq!(result_text(&mut c, sql).await, expected, "{sql}");
            assert_eq!(plan_cache_counter(&mut c, "hits").await - h, served as u64, "{sql}");
        }

        // Prepared statements take the same plan (binary rows).
        let h = plan_cache_counter(&mut c, "hits").await;
        for id in [4, 17, 33] {
            let r: Option<String> = c.exec_first("SELECT c FROM t WHERE id = ?", (id,)).await.unwrap();
            assert_eq!(r, Some(format!("c{id}")));
        }
        assert_eq!(plan_cache_counter(&mut c, "hits").await - h, 3);

        // Inside a transaction a cached read sees the transaction's writes.
        c.query_drop("BEGIN").await.unwrap();
        c.query_drop("UPDATE t SET c = 'mine' WHERE id = 5").await.unwrap();
        let h = plan_cache_counter(&mut c, "hits").await;
        let r: Option<String> = c.query_first("SELECT c FROM t WHERE id = 5").await.unwrap();
        assert_eq!(r.as_deref(), Some("mine"));
        assert_eq!(plan_cache_counter(&mut c, "hits").await - h, 1);
        let r: Option<String> = plain.query_first("SELECT c FROM t WHERE id = 5").await.unwrap();
        assert_eq!(r.as_deref(), Some("c5"));
        c.query_drop("ROLLBACK").await.unwrap();

        // A DDL moves the catalog version: the plan is built again for the
        // new partitioning and physical tables.
        c.query_drop("DROP TABLE t").await.unwrap();
        c.query_drop("CREATE TABLE t (id INT PRIMARY KEY, c VARCHAR(20)) PARTITION BY KEY(id) PARTITIONS 3")
            .await
            .unwrap();
        let values: Vec<String> = (1..=20).map(|i| format!("({i}, 'new{i}')")).collect();
        c.query_drop(format!("INSERT INTO t VALUES {}", values.join(","))).await.unwrap();
        let m = plan_cache_counter(&mut c, "misses").await;
        for id in 1..=20 {
            let r: Option<String> = c.query_first(format!("SELECT c FROM t WHERE id = {id}")).await.unwrap();
            assert_eq!(r, Some(format!("new{id}")));
        }
        assert_eq!(plan_cache_counter(&mut c, "misses").await - m, 1);
    });
}

/// Checks the answers of `t_merge.t` (ids 1..=200, `k = id % 7`, plus 100
/// for id 50 when `bumped`, `c = 'c%03d'`) to range, aggregate,
/// DISTINCT/top-N and GROUP BY queries against the same computed here.
async fn merged_scan_answers(c: &mut mysql_async::Conn, bumped: bool) {
    let k_of = |i: i64| i % 7 + if bumped && i == 50 { 100 } else { 0 };
    let ids: Vec<(i32, String)> = c.query("SELECT id, c FROM t WHERE id BETWEEN 20 AND 119 ORDER BY id").await.unwrap();
    assert_eq!(ids, (20..=119).map(|i| (i, format!("c{i:03}"))).collect::<Vec<_>>());
    let s: i64 = c.query_first("SELECT SUM(k) FROM t WHERE id BETWEEN 20 AND 119").await.unwrap().unwrap();
    assert_eq!(s, (20..=119).map(k_of).sum::<i64>());
    let top: Vec<String> = c.query("SELECT DISTINCT c FROM t ORDER BY c DESC LIMIT 3").await.unwrap();
    assert_eq!(top, ["c200", "c199", "c198"]);
    let groups: Vec<(i64, i64)> = c.query("SELECT k, COUNT(*) FROM t GROUP BY k ORDER BY k").await.unwrap();
    let mut expected: std::collections::BTreeMap<i64, i64> = Default::default();
    (1..=200).for_each(|i| *expected.entry(k_of(i)).or_default() += 1);
    assert_eq!(groups, expected.into_iter().collect::<Vec<_>>());
}

#[test]
fn shard_scans_of_one_dn_merge_into_union_all_queries_with_the_same_answers() {
    block_on(async {
        let mut c = fresh_db("t_merge").await;
        // The executor's shard scans (these statements would be gathered).
        c.query_drop("SET cn_gather = OFF").await.unwrap();
        c.query_drop("CREATE TABLE t (id INT PRIMARY KEY, k INT, c VARCHAR(20)) PARTITION BY KEY(id) PARTITIONS 16")
            .await
            .unwrap();
        let values: Vec<String> = (1..=200).map(|i| format!("({i}, {}, 'c{i:03}')", i % 7)).collect();
        c.query_drop(format!("INSERT INTO t VALUES {}", values.join(","))).await.unwrap();
        // Autocommit: a statement snapshot has 4 views per DN, so the 8
        // partitions of each DN run as 4 queries of two partitions each.
        let plan = explain(&mut c, "SELECT SUM(k) FROM t WHERE id BETWEEN 20 AND 119").await;
        assert!(plan.contains("shards=8") && plan.contains(") UNION ALL (SELECT"), "{plan}");
        merged_scan_answers(&mut c, false).await;
        // In a transaction (one branch per DN): one query per DN, which
        // sees the transaction's own write.
        c.query_drop("BEGIN").await.unwrap();
        c.query_drop("UPDATE t SET k = k + 100 WHERE id = 50").await.unwrap();
        let plan = explain(&mut c, "SELECT SUM(k) FROM t WHERE id BETWEEN 20 AND 119").await;
        let unions = plan.matches("UNION ALL").count();
        assert!(plan.contains("shards=2") && unions > 0 && unions % 14 == 0, "{plan}");
        merged_scan_answers(&mut c, true).await;
        // A locking read locks in every partition: the suffix goes inside
        // each branch.
        let locked: Vec<i32> = c.query("SELECT id FROM t WHERE k = 3 ORDER BY id FOR UPDATE").await.unwrap();
        assert_eq!(locked, (1..=200).filter(|i| i % 7 == 3).collect::<Vec<_>>());
        let mut other = connect(Some("t_merge")).await;
        other.query_drop("SET innodb_lock_wait_timeout = 1").await.unwrap();
        for id in [3, 10, 17, 24] {
            let e = other.query_drop(format!("UPDATE t SET c = 'x' WHERE id = {id}")).await.unwrap_err();
            assert_eq!(code(e), 1205, "row {id} is locked");
        }
        c.query_drop("ROLLBACK").await.unwrap();
        other.query_drop("UPDATE t SET c = 'x' WHERE id = 3").await.unwrap();
    });
}

/// Every row of `sql`'s answer as text; sorted with `sort` (a gather's
/// order is the DNs', DataFusion's is its own).
async fn text_rows(c: &mut mysql_async::Conn, sql: &str, sort: bool) -> Vec<Vec<Option<String>>> {
    let rows: Vec<Row> = c.query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut out: Vec<Vec<Option<String>>> = rows
        .into_iter()
        .map(|r| {
            r.unwrap()
                .into_iter()
                .map(|v| match v {
                    mysql_async::Value::NULL => None,
                    mysql_async::Value::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
                    other => Some(other.as_sql(true)),
                })
                .collect()
        })
        .collect();
    if sort {
        out.sort();
    }
    out
}

/// Whether `q` is gathered, and its answer with `cn_gather` ON equals
/// the planner's (sorted unless the query orders its rows).
async fn gathered_like_planned(c: &mut mysql_async::Conn, q: &str) -> bool {
    let ordered = q.contains("ORDER BY");
    let before = status(c, "Cn_gathered_selects").await;
    let gathered = text_rows(c, q, !ordered).await;
    let was_gathered = status(c, "Cn_gathered_selects").await == before + 1;
    c.query_drop("SET cn_gather = OFF").await.unwrap();
    assert!(!explain(c, q).await.contains("Gather"), "OFF: {q} is planned");
    let planned = text_rows(c, q, !ordered).await;
    c.query_drop("SET cn_gather = ON").await.unwrap();
    let first_difference = gathered.iter().zip(&planned).find(|(g, p)| g != p);
    assert!(
        gathered.len() == planned.len() && first_difference.is_none(),
        "{q}: {} rows gathered, {} planned; first difference {first_difference:?}",
        gathered.len(),
        planned.len()
    );
    was_gathered
}

#[test]
fn filters_over_one_sharded_table_are_gathered_from_per_dn_queries_with_the_planners_answers() {
    // Alone: Cn_gathered_selects counts the CN's gathers, of every session.
    block_on_exclusive(async {
        let mut c = fresh_db("t_gather").await;
        c.query_drop(
            "CREATE TABLE t (id INT PRIMARY KEY, k INT, c VARCHAR(20), d DECIMAL(8,2), n INT NULL) \
             PARTITION BY KEY(id) PARTITIONS 16",
        )
        .await
        .unwrap();
        // 2,000 rows: each DN answers about 1,000, more than it reads ahead.
        let values: Vec<String> = (1..=2000)
            .map(|i| {
                let n = if i % 5 == 0 { "NULL".to_string() } else { (i % 3).to_string() };
                format!("({i}, {}, 'c{i:04}', {i}.25, {n})", i % 7)
            })
            .collect();
        c.query_drop(format!("INSERT INTO t VALUES {}", values.join(","))).await.unwrap();
        let queries = [
            "SELECT id, c FROM t WHERE id BETWEEN 20 AND 119",
            "SELECT * FROM t",
            "SELECT c, d * 2 AS twice, CONCAT(c, '-', k) FROM t WHERE k = 3 AND n IS NOT NULL",
            "SELECT x.id, x.n FROM t AS x WHERE x.id IN (3, 17, 1999, 4000) OR x.c = 'c0500'",
            "SELECT id FROM t WHERE id IN (3, 17, 1999, 4000)",
            "SELECT id FROM t WHERE id IN (NULL, NULL)",
            "SELECT id, d FROM t WHERE c LIKE 'c00_5' AND d > 10",
            "SELECT id FROM t WHERE k = 99",
            "SELECT id, k FROM t WHERE id IN (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, \
             NULL) OR id NOT IN (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, \
             21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 1990, 1991, 1992, 1993, 1994, 1995, 1996, 1997, 1998)",
        ];
        for q in queries {
            let plan = explain(&mut c, q).await;
            assert!(plan.contains("Gather dn0") || plan.contains("Gather dn1"), "{q}: {plan}");
            assert!(gathered_like_planned(&mut c, q).await, "{q} was gathered");
        }
        // Each partition's branch gets its share of an IN list on the key.
        let ids: Vec<String> = (1..=40).map(|i| i.to_string()).collect();
        let plan = explain(&mut c, &format!("SELECT id FROM t WHERE id IN ({})", ids.join(", "))).await;
        let lists: Vec<Vec<i32>> = plan
            .split("IN (")
            .skip(1)
            .map(|l| l[..l.find(')').unwrap()].split(", ").map(|v| v.parse().unwrap()).collect())
            .collect();
        assert!(lists.len() > 2 && lists.iter().all(|l| l.len() < 40), "{plan}");
        let mut all = lists.concat();
        all.sort();
        assert_eq!(all, (1..=40).collect::<Vec<_>>(), "{plan}");
        // Sorted, deduplicated, limited: each DN sorts, the CN merges.
        // Aggregates without GROUP BY: each partition aggregates, the CN
        // folds. Whether each is gathered, and its answer as planned.
        let merged = [
            ("SELECT id, c FROM t WHERE id BETWEEN 20 AND 1119 ORDER BY c DESC", true),
            ("SELECT c, id FROM t ORDER BY 1 LIMIT 5, 10", true),
            ("SELECT DISTINCT k FROM t ORDER BY k DESC", true),
            ("SELECT DISTINCT n, k FROM t", true),
            ("SELECT DISTINCT n FROM t WHERE id > 100 ORDER BY n LIMIT 2", true),
            ("SELECT id, d AS amount FROM t WHERE k = 2 ORDER BY amount DESC, id LIMIT 7", true),
            ("SELECT id, n FROM t ORDER BY n, id DESC LIMIT 20", true),
            ("SELECT * FROM t WHERE id IN (5, 6, 7, 8, 9, 10) ORDER BY t.id", true),
            ("SELECT id, name FROM s ORDER BY name, id", true),
            ("SELECT id, name FROM s ORDER BY name DESC, id DESC LIMIT 4", true),
            ("SELECT COUNT(*), SUM(k), MIN(c), MAX(d), COUNT(n), SUM(d) FROM t WHERE id BETWEEN 20 AND 119", true),
            ("SELECT SUM(n) AS s, MAX(id), COUNT(*) FROM t WHERE k = 99", true),
            ("SELECT MIN(name), MAX(name), COUNT(name) FROM s", true),
            ("SELECT COUNT(*) FROM t WHERE id IN (3, 17)", true),
            ("SELECT COUNT(*) FROM (SELECT DISTINCT name FROM s) x", false),
            ("SELECT AVG(k) FROM t", false),
            ("SELECT SUM(DISTINCT k) FROM t", false),
            ("SELECT SUM(k) + 1 FROM t", false),
            ("SELECT k, COUNT(*) FROM t GROUP BY k ORDER BY k", false),
            // A DOUBLE's partial sums are not added on the CN: planned.
            ("SELECT SUM(f) FROM s", false),
        ];
        c.query_drop(
            "CREATE TABLE s (id INT PRIMARY KEY, name VARCHAR(10), e ENUM('z', 'a'), tm TIME, f DOUBLE) \
             PARTITION BY KEY(id) PARTITIONS 4",
        )
        .await
        .unwrap();
        c.query_drop(
            "INSERT INTO s VALUES (1, 'b', 'a', '-01:00:00', 0.1), (2, 'A', 'z', '02:00:00', 0.2), \
             (3, 'a ', 'a', '00:00:00', 0.3), (4, 'Ä', 'z', '-10:00:00', 1e300), (5, 'c', 'a', '03:00:00', -1e300), \
             (6, 'B', 'z', '01:00:00', 7), (7, NULL, 'a', NULL, NULL), (8, 'a\t', 'z', '04:00:00', 1), \
             (9, 'ab', 'a', '05:00:00', 2)",
        )
        .await
        .unwrap();
        for (q, gathered) in merged {
            assert_eq!(gathered_like_planned(&mut c, q).await, gathered, "{q} gathered");
        }
        let plan = explain(&mut c, merged[1].0).await;
        assert!(plan.contains("MergeSort by 1, offset 5, limit 10") && plan.contains("ORDER BY 1 LIMIT 15"), "{plan}");
        assert!(explain(&mut c, merged[12].0).await.contains("Aggregate MIN, MAX, COUNT"));
        // The CN does not order ENUM (by its index) or TIME (signed) values:
        // planned.
        for q in ["SELECT id, e FROM s ORDER BY e, id", "SELECT id, tm FROM s ORDER BY tm", "SELECT MIN(e) FROM s"] {
            let before = status(&mut c, "Cn_gathered_selects").await;
            let _: Vec<Row> = c.query(q).await.unwrap();
            assert_eq!(status(&mut c, "Cn_gathered_selects").await, before, "{q} is planned");
        }
        assert_eq!(text_rows(&mut c, queries[1], false).await.len(), 2000);
        // An IN list reads only its keys' partitions; a NULL-only list one.
        let plan = explain(&mut c, queries[4]).await;
        assert!(plan.matches("SELECT").count() <= 4, "{plan}");
        assert_eq!(explain(&mut c, queries[5]).await.matches("SELECT").count(), 1);
        // Aggregates, sorts by expressions and locking reads are planned.
        for q in ["SELECT AVG(d) FROM t", "SELECT id FROM t ORDER BY id + 1 LIMIT 3", "SELECT id FROM t FOR UPDATE"] {
            let before = status(&mut c, "Cn_gathered_selects").await;
            c.query_drop(q).await.unwrap();
            assert_eq!(status(&mut c, "Cn_gathered_selects").await, before, "{q} is not gathered");
        }
        // In a transaction: the transaction's own write, at its snapshot.
        c.query_drop("BEGIN").await.unwrap();
        c.query_drop("UPDATE t SET k = k + 100 WHERE id IN (50, 51)").await.unwrap();
        let ids: Vec<i32> = c.query("SELECT id FROM t WHERE k >= 100").await.unwrap();
        assert_eq!(ids.iter().copied().collect::<std::collections::BTreeSet<_>>(), [50, 51].into());
        let mut other = connect(Some("t_gather")).await;
        other.query_drop("UPDATE t SET k = 200 WHERE id = 52").await.unwrap();
        let ids: Vec<i32> = c.query("SELECT id FROM t WHERE k >= 100").await.unwrap();
        assert_eq!(ids.iter().copied().collect::<std::collections::BTreeSet<_>>(), [50, 51].into());
        c.query_drop("ROLLBACK").await.unwrap();
        let ids: Vec<i32> = c.query("SELECT id FROM t WHERE k >= 100").await.unwrap();
        assert_eq!(ids, [52]);
        // A DN's error reaches the client, and the session goes on.
        let e = c.query_drop("SELECT id FROM t WHERE no_such_column = 1").await.unwrap_err();
        assert_eq!(code(e), 1054);
        let one: Vec<i32> = c.query("SELECT id FROM t WHERE id IN (7, 8)").await.unwrap();
        assert_eq!(one.len(), 2);
    });
}

/// KILL QUERY answers a statement waiting for its DNs within a moment,
/// gathered or routed whole to one shard, and stops its DN statements
/// there too (`KILL QUERY` on their DN connections); the session goes on,
/// and so do the others.
#[test]
fn kill_query_stops_a_select_waiting_for_its_dns() {
    block_on(async {
        let mut c = fresh_db("t_gkill").await;
        c.query_drop("CREATE TABLE t (id INT PRIMARY KEY) PARTITION BY KEY(id) PARTITIONS 4").await.unwrap();
        c.query_drop("INSERT INTO t VALUES (1), (2), (3), (4), (5), (6), (7), (8)").await.unwrap();
        let id: u32 = c.query_first("SELECT CONNECTION_ID()").await.unwrap().unwrap();
        // Every row sleeps a second and none passes: about 4 s per DN,
        // and no row to notice the kill by. The last one goes to one shard
        // whole.
        for q in [
            "SELECT id FROM t WHERE SLEEP(1) = 1",
            "SELECT id FROM t WHERE SLEEP(1) = 1 ORDER BY id",
            "SELECT id, SLEEP(4) FROM t WHERE id = 3",
        ] {
            let kill = async {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                connect(None).await.query_drop(format!("KILL QUERY {id}")).await.unwrap();
            };
            let started = std::time::Instant::now();
            let (r, ()) = futures::join!(c.query_drop(q), kill);
            let elapsed = started.elapsed();
            assert_eq!(code(r.expect_err(q)), 1317, "{q}");
            assert!(elapsed < std::time::Duration::from_millis(2500), "{q}: answered after {elapsed:?}");
            // The DNs stop too (a kill is noticed at the next row, or at
            // once in SLEEP): none runs the statement a moment later.
            let running = dn_statements_running("%SLEEP(%").await;
            assert!(running.is_empty(), "{q}: still running on the DNs: {running:?}");
        }
        let n: i64 = c.query_first("SELECT COUNT(*) FROM t").await.unwrap().unwrap();
        assert_eq!(n, 8);
        for id in 1..=8 {
            let v: Option<i32> = c.query_first(format!("SELECT id FROM t WHERE id = {id}")).await.unwrap();
            assert_eq!(v, Some(id), "a point read after the kills reads its own answer");
        }
    });
}

/// The DN statements still running on the DNs whose text contains `like`
/// (a LIKE pattern), a moment after a KILL: polled for up to a second.
async fn dn_statements_running(like: &str) -> Vec<String> {
    let mut running = Vec::new();
    for _ in 0..20 {
        running.clear();
        for d in &env().cluster.dns {
            let mut dc = d.conn().await.unwrap();
            let infos: Vec<String> = dc
                .exec(
                    "SELECT INFO FROM information_schema.PROCESSLIST WHERE INFO LIKE ? AND INFO NOT LIKE '%PROCESSLIST%'",
                    (like,),
                )
                .await
                .unwrap();
            running.extend(infos);
        }
        if running.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    running
}

/// KILL QUERY of a statement the CN computes (a join in DataFusion) whose
/// shard query waits for a row lock: the client gets 1317 at once and the
/// shard query stops waiting on its DN (it would wait out the lock wait
/// timeout, 50 s).
#[test]
fn kill_query_stops_the_shard_queries_of_a_statement_the_cn_computes() {
    block_on(async {
        let mut c = fresh_db("t_skill").await;
        c.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v INT) PARTITION BY KEY(id) PARTITIONS 4").await.unwrap();
        c.query_drop("INSERT INTO t VALUES (1, 2), (2, 3), (3, 4), (4, 1)").await.unwrap();
        let mut holder = connect(Some("t_skill")).await;
        holder.query_drop("BEGIN").await.unwrap();
        holder.query_drop("UPDATE t SET v = v WHERE id = 1").await.unwrap();
        let id: u32 = c.query_first("SELECT CONNECTION_ID()").await.unwrap().unwrap();
        // Joined on a column that is not the partition key: the CN joins,
        // and every shard scan locks what it reads.
        let q = "SELECT a.id, b.id FROM t a JOIN t b ON a.v = b.id FOR UPDATE";
        let plan: Vec<(String, String)> = c.query(format!("EXPLAIN {q}")).await.unwrap();
        assert!(plan.iter().any(|(_, p)| p.contains("ShardScanExec")), "{plan:?}");
        let kill = async {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            connect(None).await.query_drop(format!("KILL QUERY {id}")).await.unwrap();
        };
        let started = std::time::Instant::now();
        let (r, ()) = futures::join!(c.query_drop(q), kill);
        assert_eq!(code(r.expect_err(q)), 1317);
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "answered after {:?}", started.elapsed());
        let running = dn_statements_running("%FOR UPDATE%").await;
        assert!(running.is_empty(), "still waiting on the DNs: {running:?}");
        holder.query_drop("ROLLBACK").await.unwrap();
        let n: i64 = c.query_first("SELECT COUNT(*) FROM t").await.unwrap().unwrap();
        assert_eq!(n, 4);
    });
}

#[test]
fn passwords_check_with_mysql_native_password_and_caching_sha2_password() {
    use cn::config::{Config, User};
    for plugin in ["mysql_native_password", "caching_sha2_password"] {
        let addr = block_on(async {
            let config = Config {
                listen: "127.0.0.1:0".into(),
                metadb: env().metadb_url.clone(),
                tso: vec![env().tso_addr.clone()],
                users: vec![
                    User { name: "root".into(), password: String::new() },
                    User { name: "alice".into(), password: "s3cret-9".into() },
                ],
                default_auth_plugin: plugin.into(),
                ..Config::default()
            };
            let (_cluster, addr, _task) = cn::server::start_cn(config).await.expect("CN starts");
            let port = addr.port();
            let url = |user: &str| format!("mysql://{user}@127.0.0.1:{port}/");
            // mysql_async answers with the plugin the handshake proposes.
            let mut c = mysql_async::Conn::from_url(url("alice:s3cret-9")).await.expect("alice logs in");
            let n: Option<i64> = c.query_first("SELECT 1 + 1").await.unwrap();
            assert_eq!(n, Some(2), "{plugin}");
            c.disconnect().await.unwrap();
            let mut root = mysql_async::Conn::from_url(url("root")).await.expect("root without password");
            root.query_drop("SELECT 1").await.unwrap();
            for bad in ["alice:secret", "alice", "root:x", "bob:s3cret-9"] {
                let Err(e) = mysql_async::Conn::from_url(url(bad)).await else { panic!("{plugin} {bad}: logged in") };
                assert_eq!(code(e), 1045, "{plugin} {bad}");
            }
            addr
        });
        // The mariadb CLI (Connector/C) with its default, with the other
        // plugin forced, and with a plugin the CN asks it to switch from;
        // PyMySQL with its default.
        let port = addr.port().to_string();
        for auth in [None, Some("mysql_native_password"), Some("caching_sha2_password"), Some("client_ed25519")] {
            let mut args = vec!["-h127.0.0.1".to_string(), format!("-P{port}"), "-ualice".into(), "-ps3cret-9".into()];
            args.extend(auth.map(|a| format!("--default-auth={a}")));
            args.extend(["-N".into(), "-e".into(), "SELECT 40 + 2".into()]);
            let out = shared(|| std::process::Command::new("mariadb").args(&args).output().expect("mariadb CLI"));
            assert!(out.status.success(), "{plugin} {auth:?}: {}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
        }
        let out = shared(|| {
            std::process::Command::new("mariadb")
                .args(["-h127.0.0.1", &format!("-P{port}"), "-ualice", "-pwrong", "-e", "SELECT 1"])
                .output()
                .expect("mariadb CLI")
        });
        assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("1045"), "{plugin}");
        let script = format!(
            "import pymysql\nc = pymysql.connect(host='127.0.0.1', port={port}, user='alice', password='s3cret-9')\n\
             cur = c.cursor()\ncur.execute('SELECT 1 + 2')\nprint(cur.fetchone()[0])\n"
        );
        let out = shared(|| std::process::Command::new("python3").args(["-c", &script]).output().expect("python3"));
        assert!(out.status.success(), "{plugin}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3");
    }
}

/// `SET time_zone` reaches every DN connection of the session (TIMESTAMP
/// columns are stored in UTC and read and written in the session's zone;
/// `FROM_UNIXTIME` and `UNIX_TIMESTAMP` use it): writes in autocommit and in
/// a transaction, point selects, gathered and DataFusion reads match a
/// MariaDB in the same zone, while another session keeps the DNs' zone.
#[test]
fn session_time_zone_reaches_every_dn_connection() {
    block_on(async {
        let mut c = fresh_db("t_time_zone").await;
        let create = "CREATE TABLE z (id INT PRIMARY KEY, g INT, ts TIMESTAMP NULL, dt DATETIME)";
        c.query_drop(format!("{create} PARTITION BY KEY(id) PARTITIONS 4")).await.unwrap();
        let mut reference = reference_db("time_zone_reference").await;
        reference.query_drop(create).await.unwrap();
        for sql in [
            "SET time_zone = '+8:00'",
            "INSERT INTO z VALUES (1, 1, '2000-01-01 10:00:00', '2000-01-01 10:00:00'), \
             (2, 1, '2020-02-02 02:02:02', NULL), (3, 2, FROM_UNIXTIME(86400), FROM_UNIXTIME(86400))",
            "BEGIN",
            "INSERT INTO z VALUES (4, 2, '1999-12-31 23:00:00', NULL)",
            "UPDATE z SET dt = ts WHERE id = 2",
            "COMMIT",
        ] {
            c.query_drop(sql).await.unwrap();
            reference.query_drop(sql).await.unwrap();
        }
        let reads = [
            "SELECT @@time_zone, @@session.time_zone",
            "SELECT ts FROM z WHERE id = 1",
            "SELECT id, ts, dt, UNIX_TIMESTAMP(ts), UNIX_TIMESTAMP(dt), FROM_UNIXTIME(id * 3600) FROM z ORDER BY id",
            "SELECT g, MAX(ts), MIN(ts), COUNT(*) FROM z GROUP BY g ORDER BY g",
            "SELECT id FROM z WHERE ts > '2000-01-01 09:30:00' ORDER BY id",
            "SELECT a.id, b.ts FROM z a JOIN z b ON a.g = b.id ORDER BY a.id",
            "SELECT FROM_UNIXTIME(0), UNIX_TIMESTAMP('2020-01-01 00:00:00')",
            // The clock in a statement the CN computes: the session's zone,
            // one instant, MySQL's precision (DataFusion's now() is UTC
            // with nanoseconds, and it has no CURDATE()).
            "SELECT g, TIMESTAMPDIFF(MINUTE, UTC_TIMESTAMP(), NOW()), DATE(NOW()) = CURDATE(), LENGTH(NOW()), \
             LENGTH(CURRENT_TIMESTAMP(3)), CURTIME() = SUBSTR(NOW(), 12), MAX(ts) < NOW() FROM z GROUP BY g ORDER BY g",
        ];
        let mut other = connect(Some("t_time_zone")).await;
        for zone in ["'+8:00'", "'-05:00'", "'SYSTEM'", "DEFAULT"] {
            let set = format!("SET time_zone = {zone}");
            c.query_drop(&set).await.unwrap();
            reference.query_drop(&set).await.unwrap();
            for q in reads {
                let (ours, theirs) = (result_text(&mut c, q).await, result_text(&mut reference, q).await);
                assert_eq!(ours, theirs, "{set}: {q}");
            }
            // A session that never set a zone reads in the DNs' own, as
            // the reference does in SYSTEM, whatever zone the other
            // session's connections carry.
            let q = "SELECT id, ts, FROM_UNIXTIME(0) FROM z ORDER BY id";
            reference.query_drop("SET time_zone = 'SYSTEM'").await.unwrap();
            assert_eq!(result_text(&mut other, q).await, result_text(&mut reference, q).await, "{set}");
            reference.query_drop(&set).await.unwrap();
        }
        // A zone MariaDB does not know: its error, and the session's zone
        // stays.
        c.query_drop("SET time_zone = '+01:00'").await.unwrap();
        let e = c.query_drop("SET time_zone = 'Nowhere/City'").await.unwrap_err();
        assert_eq!(code(e), 1298);
        let zone: String = c.query_first("SELECT @@time_zone").await.unwrap().unwrap();
        assert_eq!(zone, "+01:00");
    });
}

/// `SET sql_mode` reaches the session's DN connections (the modes that
/// change what a statement does; those that change how SQL is read stay in
/// the CN): a legacy application's `sql_mode = ''` stores what MySQL stores
/// where the default strict mode refuses it, as a MariaDB in the same mode
/// does, while another session stays strict.
#[test]
fn session_sql_mode_reaches_every_dn_connection() {
    block_on(async {
        let mut c = fresh_db("t_sql_mode").await;
        let create = "CREATE TABLE m (id INT PRIMARY KEY, n INT, s VARCHAR(3))";
        c.query_drop(format!("{create} PARTITION BY KEY(id) PARTITIONS 4")).await.unwrap();
        let mut reference = reference_db("sql_mode_reference").await;
        reference.query_drop(create).await.unwrap();
        let mut other = connect(Some("t_sql_mode")).await;
        let steps = [
            "SELECT @@sql_mode",
            "INSERT INTO m VALUES (1, 1, 'abcdef')",
            "SET sql_mode = ''",
            "SELECT @@sql_mode, @@session.sql_mode",
            "INSERT INTO m VALUES (1, 1, 'abcdef'), (2, 2, 'xy'), (3, 3, 'long text')",
            "BEGIN",
            "INSERT INTO m VALUES (4, 4, 'abcd')",
            // The DN's warnings are the session's (SHOW WARNINGS).
            "SHOW WARNINGS",
            "UPDATE m SET s = CONCAT(s, 'zzzz') WHERE id = 2",
            "SHOW WARNINGS",
            "COMMIT",
            "SELECT n / 0, s + 0 FROM m WHERE id = 2",
            "SHOW WARNINGS",
            "SELECT id, n, s FROM m ORDER BY id",
            "SET sql_mode = 'TRADITIONAL'",
            "SELECT @@sql_mode",
            "INSERT INTO m VALUES (5, 5, 'abcd')",
            "SET sql_mode = 'PIPES_AS_CONCAT,STRICT_ALL_TABLES'",
            "SELECT @@sql_mode",
            "INSERT INTO m VALUES (6, 6, 'abcd')",
            "SET sql_mode = 'NO_SUCH_MODE'",
            "SELECT @@sql_mode",
            "SET sql_mode = DEFAULT",
            "SELECT @@sql_mode",
            "INSERT INTO m VALUES (7, 7, 'abcd')",
            "SELECT id, n, s FROM m ORDER BY id",
        ];
        for (i, q) in steps.into_iter().enumerate() {
            let (ours, theirs) = (result_text(&mut c, q).await, result_text(&mut reference, q).await);
            assert_eq!(ours, theirs, "{q}");
            if i == 4 {
                // Meanwhile a session in the default mode stays strict.
                assert_eq!(result_text(&mut other, "INSERT INTO m VALUES (9, 9, 'abcdef')").await, "error 1406");
            }
        }
        // The OK packet counts the DN's warnings.
        for conn in [&mut c, &mut reference] {
            conn.query_drop("SET sql_mode = ''").await.unwrap();
            conn.query_drop("INSERT INTO m VALUES (8, 8, 'abcdef')").await.unwrap();
        }
        assert_eq!((c.get_warnings(), reference.get_warnings()), (1, 1));
        // A partition or global index key value MariaDB would change (cut,
        // clamp) is refused even in a non-strict mode: the CN routes by the
        // value as written, and a lookup by the stored one would miss it.
        c.query_drop(
            "CREATE TABLE k (s VARCHAR(3) PRIMARY KEY, n TINYINT, d DATE, \
             GLOBAL INDEX gn(n) PARTITION BY KEY(n) PARTITIONS 4) PARTITION BY KEY(s) PARTITIONS 4",
        )
        .await
        .unwrap();
        c.query_drop("CREATE TABLE r (d DATE, v INT) PARTITION BY RANGE COLUMNS(d) (PARTITION p0 VALUES LESS THAN ('2000-01-01'), PARTITION p1 VALUES LESS THAN (MAXVALUE))").await.unwrap();
        c.query_drop("SET sql_mode = ''").await.unwrap();
        for (q, code) in [
            ("INSERT INTO k VALUES ('abcdef', 1, NULL)", "error 1406"),
            ("INSERT INTO k VALUES ('ab', 1, NULL), ('abcd', 2, NULL)", "error 1406"),
            ("INSERT INTO k VALUES ('ab', 300, NULL)", "error 1264"),
            ("INSERT INTO r VALUES ('2020-02-30', 1)", "error 1292"),
        ] {
            assert_eq!(result_text(&mut c, q).await, code, "{q}");
        }
        // Values stored as written go in, in any mode; other columns are
        // cut as MariaDB cuts them.
        c.query_drop("INSERT INTO k VALUES ('abc', 100, '2020-02-30'), ('x', -5, '2020-05-00')").await.unwrap();
        c.query_drop("INSERT INTO r VALUES ('2020-05-00', 1), ('0000-00-00', 2)").await.unwrap();
        for (q, rows) in [
            ("SELECT s, n, d FROM k WHERE s = 'abc'", r#"[["'abc'", "'100'", "'0000-00-00'"]]"#),
            ("SELECT s, n, d FROM k WHERE n = -5", r#"[["'x'", "'-5'", "'2020-05-00'"]]"#),
            ("SELECT v FROM r WHERE d = '2020-05-00'", r#"[["'1'"]]"#),
            ("SELECT v FROM r WHERE d = '0000-00-00'", r#"[["'2'"]]"#),
        ] {
            let text = result_text(&mut c, q).await;
            assert!(text.ends_with(rows), "{q}: {text}");
        }
        assert_eq!(result_text(&mut c, "SELECT COUNT(*) FROM k").await, r#"["COUNT(*)"] [["'2'"]]"#);
        c.query_drop("CHECK GLOBAL INDEX gn ON k").await.unwrap();
    });
}
