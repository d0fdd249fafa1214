//! Starting local `mariadbd` processes ([`dn_plugin::mariadb`]).

use dn_plugin::mariadb::{ensure_template, free_ports, start_mariadb};

/// Ports handed out are distinct, also across calls.
#[test]
fn free_ports_are_distinct() {
    let mut all = free_ports(20).unwrap();
    all.extend(free_ports(20).unwrap());
    let mut sorted = all.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), all.len(), "{all:?}");
}

/// A server started on a port another server already holds is an error
/// naming the port, not a handle that reaches the other server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_a_taken_port_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().to_path_buf();
    ensure_template(&base).await.unwrap();
    let port = free_ports(1).unwrap()[0];
    let mut first = start_mariadb(base.clone(), "first".into(), port, 32).await.unwrap();
    let second = start_mariadb(base.clone(), "second".into(), port, 32).await;
    let err = second.err().expect("the second server on the same port fails").to_string();
    assert!(err.contains(&format!("port {port} is taken by another server")), "{err}");
    first.stop().await;
}
