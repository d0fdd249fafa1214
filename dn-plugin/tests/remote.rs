//! The sidecar agent over real gRPC: the agent's unit tests against a
//! [`RemoteAgent`], admissions released when their holder dies, and branch
//! ownership by live CNs.

use dn_plugin::agent::shared_tests::*;
use dn_plugin::agent::{AgentApi, CommitKind, Outcome, OWNER_GRACE};
use dn_plugin::remote::RemoteAgent;
use dn_plugin::service::{serve, RunningAgent};
use dn_plugin::Agent;
use std::sync::Arc;
use std::time::Duration;

/// A served agent whose amx starts at 100.
async fn served() -> RunningAgent {
    serve(Agent::new("dn0", 100), "127.0.0.1:0".parse().unwrap()).await.unwrap()
}

fn client(s: &RunningAgent, cn: u64) -> Arc<dyn AgentApi> {
    Arc::new(RemoteAgent::connect("dn0", &s.url(), cn).unwrap())
}

#[tokio::test]
async fn remote_open_below_amx_raises_and_above_moves_mrt() {
    let s = served().await;
    open_below_amx_raises_and_above_moves_mrt_on(&*client(&s, 1)).await;
    assert!(!s.agent.gating().await.unwrap(), "set_gating reached the served agent");
    s.shutdown().await;
}

#[tokio::test]
async fn remote_open_waits_for_a_branch_that_may_commit_below_it() {
    let s = served().await;
    open_waits_for_a_branch_that_may_commit_below_it_on(client(&s, 1)).await;
    s.shutdown().await;
}

#[tokio::test]
async fn remote_decided_branches_hold_back_direct_reads_and_raise_read_ts() {
    let s = served().await;
    decided_branches_hold_back_direct_reads_and_raise_read_ts_on(client(&s, 1)).await;
    s.shutdown().await;
}

/// A CN that dies holding a commit admission (its process gone: the
/// runtime and its connections dropped, no admission finished) does not
/// keep the gate closed, and its commit counts as applied (amx rises to
/// it); an OPEN abandoned while waiting does not keep it closed either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admissions_of_a_dead_client_are_released() {
    let s = served().await;
    let url = s.url();
    let (held_tx, held_rx) = tokio::sync::oneshot::channel();
    let (die_tx, die_rx) = std::sync::mpsc::channel::<()>();
    let dead = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        rt.block_on(async {
            let a = RemoteAgent::connect("dn0", &url, 9).unwrap();
            let adm = a.admit_commit(CommitKind::OnePhase { lower_bound: 500 }).await.unwrap();
            held_tx.send(adm.ts()).unwrap();
            let _ = die_rx.recv();
            std::mem::forget(adm); // no finish, no orderly end of the stream
            std::mem::forget(a);
        });
        drop(rt); // the "process" dies: its connections close
    });
    let t = held_rx.await.unwrap();
    assert_eq!(t, 500, "stamped at max(mrt + 1, amx, L)");
    let live = client(&s, 1);
    // The gate is closed to OPENs while the dead-to-be CN holds it; an OPEN
    // that gives up waiting leaves nothing behind.
    assert!(tokio::time::timeout(Duration::from_millis(200), live.admit_open(1000)).await.is_err());
    let waiting = {
        let live = live.clone();
        tokio::spawn(async move { live.admit_open(1000).await.map(|_| ()) })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished());
    die_tx.send(()).unwrap();
    tokio::task::spawn_blocking(move || dead.join().unwrap()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), waiting).await.expect("the gate reopened").unwrap().unwrap();
    assert_eq!(live.status().await.unwrap().amx, 500, "an unknown outcome raises amx to the commit's stamp");
    let st = s.agent.status().await.unwrap();
    assert_eq!((st.commits_in_flight, st.opens_in_flight), (0, 0));
    // Commits still get through after the abandoned OPEN.
    let c = live.admit_commit(CommitKind::Prepared { commit_ts: 600 }).await.unwrap();
    c.finish(Outcome::Applied { forget: None }).await.unwrap();
    assert_eq!(live.status().await.unwrap().amx, 600);
    s.shutdown().await;
}

/// Another CN's recovery cannot claim a branch of a CN that holds a
/// session; it can once that CN has been gone for the grace period, and a
/// claimed branch can no longer be decided.
#[tokio::test]
async fn only_branches_of_gone_cns_can_be_claimed() {
    let s = served().await;
    let (owner, other) = (client(&s, 1), client(&s, 2));
    owner.register_prepare("cn-3-100").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await; // sessions attached
    assert!(!other.claim("cn-3-100").await.unwrap(), "a live CN's branch");
    assert!(owner.claim("cn-3-101").await.unwrap(), "a branch nobody registered");
    drop(owner);
    tokio::time::sleep(OWNER_GRACE + Duration::from_millis(500)).await;
    assert!(other.claim("cn-3-100").await.unwrap(), "the owner is gone");
    assert!(matches!(other.decide("cn-3-100", 200).await, Err(dn_plugin::AgentError::NotDecidable { .. })));
    s.shutdown().await;
}
