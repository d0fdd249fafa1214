//! The TPC-H differential test: the same generated data in the CN (sharded
//! over the playground's DNs, tables partitioned as in `cn::tpch::SCHEMA`)
//! and in one plain MariaDB with the same indexes; each of the 22 queries
//! must give the same column names and the same rows on both (in order
//! where the query orders them). Values are compared as the text the
//! server sends; only columns of a floating-point type on either side are
//! compared with a relative tolerance.
//!
//! EXPLAIN of Q1, Q3, Q15, Q21, Q11 and Q22 must show the partial
//! aggregate, the co-located join, the GROUP BY index hint, the semi joins,
//! the subquery's broadcast join and the anti join with orders' global
//! index pushed into the shard SQL.
//!
//! Scale factor: `TPCH_SF` (default 0.01, to keep CI short; the issue's
//! check is `TPCH_SF=0.1 cargo test -p cn --test tpch`).
//! `TPCH_QUERIES=1,6,14` runs a subset. `TPCH_MEMORY_LIMIT=2097152` runs
//! the CN's queries with that `query_memory_limit` (bytes): they must spill
//! and still give MariaDB's answers; each query's peak memory and spilled
//! bytes are printed, and Q9 (joins over all of lineitem in the CN) must
//! report spilled bytes.

mod common;

use cn::tpch::answer::{answer, difference};
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts};
use std::time::Instant;

fn sf() -> f64 {
    std::env::var("TPCH_SF").ok().and_then(|s| s.parse().ok()).unwrap_or(0.01)
}

fn memory_limit() -> Option<u64> {
    std::env::var("TPCH_MEMORY_LIMIT").ok().map(|s| s.parse().expect("TPCH_MEMORY_LIMIT: bytes"))
}

fn selected() -> Vec<usize> {
    match std::env::var("TPCH_QUERIES") {
        Ok(s) => s.split(',').filter_map(|q| q.trim().parse().ok()).collect(),
        Err(_) => (1..=22).collect(),
    }
}

/// The CN's `Cn_last_query_peak_memory` and `Cn_last_query_spilled_bytes`.
async fn last_query_memory(c: &mut Conn) -> (u64, u64) {
    let rows: Vec<(String, String)> = c.query("SHOW STATUS LIKE 'Cn_last_query%'").await.unwrap();
    let get = |k: &str| rows.iter().find(|(n, _)| n == k).map_or(0, |(_, v)| v.parse().unwrap());
    (get("Cn_last_query_peak_memory"), get("Cn_last_query_spilled_bytes"))
}

#[test]
fn tpch_queries_give_mariadbs_answers() {
    let sf = sf();
    common::block_on(async move {
        // The reference: one plain MariaDB with the same data and indexes.
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let base = dir.path().canonicalize().unwrap();
        dn_plugin::mariadb::ensure_template(&base).await.unwrap();
        let mut reference_server =
            dn_plugin::mariadb::start_mariadb(base, "reference".into(), port, 256).await.unwrap();
        let mut reference =
            Conn::new(Opts::from_url(&format!("mysql://root@127.0.0.1:{port}")).unwrap()).await.unwrap();
        reference.query_drop("CREATE DATABASE tpch_ref").await.unwrap();
        reference.query_drop("USE tpch_ref").await.unwrap();
        for ddl in cn::tpch::plain_schema() {
            reference.query_drop(ddl).await.unwrap();
        }
        let mut cn = common::fresh_db("tpch_diff").await;
        for ddl in cn::tpch::SCHEMA {
            cn.query_drop(*ddl).await.unwrap();
        }
        let load = Instant::now();
        for stmt in cn::tpch::insert_statements(sf) {
            let stmt = stmt.unwrap();
            let (a, b) = futures::join!(cn.query_drop(&stmt), reference.query_drop(&stmt));
            a.unwrap();
            b.unwrap();
        }
        eprintln!("TPC-H SF {sf} loaded into the CN and MariaDB in {:?}", load.elapsed());
        let analyze = cn::tpch::ANALYZE;
        reference.query_drop(cn::tpch::REFERENCE_SAMPLE).await.unwrap();
        reference.query_drop(analyze).await.unwrap();
        // The CN's statistics: its plans then build on the smaller inputs.
        let statuses: Vec<(String, String, String, String)> = cn.query(analyze).await.unwrap();
        assert_eq!(statuses.len(), 8, "{statuses:?}");
        assert!(statuses.iter().all(|r| r.1 == "analyze" && r.2 == "status" && r.3 == "OK"), "{statuses:?}");

        if let Some(limit) = memory_limit() {
            cn.query_drop(format!("SET query_memory_limit = {limit}")).await.unwrap();
            eprintln!("CN queries run with query_memory_limit = {limit}");
        }
        let mut failures = Vec::new();
        let mut spilled = Vec::new();
        for q in selected() {
            let sql = cn::tpch::query(q, sf);
            let expected = answer(&mut reference, &sql).await.unwrap_or_else(|e| panic!("Q{q} on MariaDB: {e}"));
            match answer(&mut cn, &sql).await {
                Ok(got) => match difference(&got, &expected) {
                    None => {
                        let (peak, bytes) = last_query_memory(&mut cn).await;
                        eprintln!(
                            "Q{q:02} same answer ({} rows): CN {:?} (peak {peak} B, spilled {bytes} B), MariaDB {:?}",
                            got.rows.len(),
                            got.took,
                            expected.took
                        );
                        if bytes > 0 {
                            spilled.push(q);
                        }
                    }
                    Some(d) => {
                        eprintln!("Q{q:02} DIFFERS: {d}");
                        failures.push(q);
                    }
                },
                Err(e) => {
                    eprintln!("Q{q:02} FAILS on the CN: {e}");
                    failures.push(q);
                }
            }
        }
        // The plans push the work down: Q1's aggregate runs partially on the
        // shards, Q3's orders-lineitem join runs on them whole.
        let q1 = common::explain(&mut cn, &cn::tpch::query(1, sf)).await;
        assert!(q1.contains(" GROUP BY `t"), "Q1 must push a partial aggregate:\n{q1}");
        let q3 = common::explain(&mut cn, &cn::tpch::query(3, sf)).await;
        assert!(q3.contains(" JOIN (`tpch_diff`.`lineitem_"), "Q3 must push the co-located join:\n{q3}");
        // Q21's EXISTS and NOT EXISTS over lineitem, correlated on the
        // orderkey, move below the join with supplier and run on the shards
        // inside the orders-lineitem query (semi-join transposition).
        let q21 = common::explain(&mut cn, &cn::tpch::query(21, sf)).await;
        assert!(
            q21.contains("AND NOT EXISTS (SELECT 1 FROM `tpch_diff`.`lineitem_")
                && q21.contains(" JOIN (`tpch_diff`.`orders_"),
            "Q21 must push its semi joins with the co-located join:\n{q21}"
        );
        // Q15's partial aggregate by l_suppkey does not let MariaDB read
        // lineitem in the order of its l_suppkey index.
        let q15 = common::explain(&mut cn, &cn::tpch::query(15, sf)).await;
        assert!(q15.contains("USE INDEX FOR GROUP BY (PRIMARY) WHERE"), "Q15's shard aggregate:\n{q15}");
        // Q11's uncorrelated scalar subquery, a plan of its own, is pushed
        // down as its outer query is: supplier joins nation on the shards.
        let q11 = common::explain(&mut cn, &cn::tpch::query(11, sf)).await;
        let supplier: Vec<&str> = q11.lines().filter(|l| l.contains("FROM `tpch_diff`.`supplier_")).collect();
        assert!(
            supplier.len() >= 2 && supplier.iter().all(|l| l.contains("JOIN (`tpch_diff`.`nation_")),
            "Q11 and its subquery must push the supplier-nation join:\n{q11}"
        );
        // Q22's NOT EXISTS over orders by o_custkey runs on the customer
        // shards against orders' global index on o_custkey (partitioned
        // like customer); the comparison with the scalar subquery's value
        // stays in the CN, above the pushed anti join.
        let q22 = common::explain(&mut cn, &cn::tpch::query(22, sf)).await;
        assert!(
            q22.matches("NOT EXISTS (SELECT 1 FROM `tpch_diff`.`orders_g_o_custkey_").count() == 16
                && !q22.contains("Anti Join"),
            "Q22 must push its anti join with orders' global index:\n{q22}"
        );
        cn.query_drop("DROP DATABASE tpch_diff").await.unwrap();
        drop(reference);
        reference_server.stop().await;
        assert!(failures.is_empty(), "TPC-H queries whose answer differs from MariaDB's: {failures:?}");
        eprintln!("queries that spilled: {spilled:?}");
        if memory_limit().is_some() && selected().contains(&9) {
            // Q9 joins all of lineitem with partsupp, orders and part in the
            // CN: it cannot run in a small limit without spilling. (Q18 did
            // until its lookup join: its 57 large orders at SF 1 are now
            // read by key.)
            assert!(spilled.contains(&9), "Q9 under the limit reports no spilled bytes: {spilled:?}");
        }
    });
}
