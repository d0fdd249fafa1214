//! A deferred OPEN ([`dn_plugin::agent::open_deferred`]) on a real
//! `mariadbd`: the gate stays closed from the admission until the START
//! sent with the first query has answered, the view is made at that
//! moment (before the commit that waited), and the query's answer comes
//! back in the same round trip.

use dn_plugin::agent::{open_deferred, Agent, AgentApi, AgentError, CommitKind, Outcome};
use dn_plugin::mariadb::{ensure_template, free_port, start_mariadb};
use mysql_async::prelude::*;
use mysql_async::Conn;
use std::time::Duration;

/// The values of `t` read through `r`, the answer of a deferred query.
async fn values(r: &mut mysql_async::QueryResult<'_, 'static, mysql_async::TextProtocol>) -> Vec<i64> {
    r.collect::<i64>().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_view_is_made_by_its_first_query_inside_the_gate() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().to_path_buf();
    ensure_template(&base).await.unwrap();
    let mut dn = start_mariadb(base.clone(), "dn0".into(), free_port(), 32).await.unwrap();
    let opts = mysql_async::Opts::from_url(&dn.url()).unwrap();
    let mut w = Conn::new(opts.clone()).await.unwrap();
    w.query_drop(
        "CREATE DATABASE d; CREATE TABLE d.t (v BIGINT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO d.t VALUES (1)",
    )
    .await
    .unwrap();
    let agent = Agent::new("dn0", 100);

    // A snapshot below a commit already applied: RAISE, nothing held.
    match open_deferred(&agent, 50).await {
        Err(AgentError::Raise { snapshot: 50, amx: 100 }) => {}
        Err(e) => panic!("expected RAISE, got {e:?}"),
        Ok(_) => panic!("expected RAISE, got an admission"),
    }

    // Admitted at 200: a commit waits at the gate until the view is made.
    let mut reader = Conn::new(opts.clone()).await.unwrap();
    let open = open_deferred(&agent, 200).await.unwrap();
    let commit = {
        let agent = agent.clone();
        let opts = opts.clone();
        tokio::spawn(async move {
            let a = agent.admit_commit(CommitKind::OnePhase { lower_bound: 0 }).await.unwrap();
            let mut c = Conn::new(opts).await.unwrap();
            c.query_drop("INSERT INTO d.t VALUES (2)").await.unwrap();
            let ts = a.ts();
            a.finish(Outcome::Applied { forget: None }).await.unwrap();
            ts
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!commit.is_finished(), "a commit got through the gate while a deferred OPEN held it");
    let mut r = open.query_iter(&mut reader, "SELECT v FROM d.t ORDER BY v").await.unwrap();
    assert_eq!(values(&mut r).await, vec![1], "the view shows the state before the waiting commit");
    drop(r);
    let ts = tokio::time::timeout(Duration::from_secs(10), commit).await.expect("the gate reopened").unwrap();
    assert!(ts > 200, "the commit is stamped above the snapshot ({ts})");
    // The view stays: the same connection still reads the snapshot, a new one the commit.
    let seen: Vec<i64> = reader.query("SELECT v FROM d.t ORDER BY v").await.unwrap();
    assert_eq!(seen, vec![1]);
    let now: Vec<i64> = w.query("SELECT v FROM d.t ORDER BY v").await.unwrap();
    assert_eq!(now, vec![1, 2]);
    reader.query_drop("ROLLBACK").await.unwrap();

    // A failing query still reopens the gate; a deferred OPEN dropped unused too.
    let open = open_deferred(&agent, agent.status().await.unwrap().amx).await.unwrap();
    assert!(open.query_iter(&mut reader, "SELECT nonsense FROM d.t").await.is_err());
    reader.query_drop("ROLLBACK").await.unwrap();
    drop(open_deferred(&agent, agent.status().await.unwrap().amx).await.unwrap());
    let a = tokio::time::timeout(Duration::from_secs(5), agent.admit_commit(CommitKind::OnePhase { lower_bound: 0 }))
        .await
        .expect("the gate is open")
        .unwrap();
    a.finish(Outcome::Applied { forget: None }).await.unwrap();

    dn.stop().await;
}
