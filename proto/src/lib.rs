//! Protocol buffers and gRPC services shared by the CN, the TSO and the DN
//! agents (generated from `proto/*.proto` by `build.rs`).

/// The timestamp oracle service (`proto/tso.proto`).
pub mod tso {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("tso.v1");
}

/// The DN agent as a sidecar shared by several CNs (`proto/agent.proto`).
pub mod agent {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("agent.v1");
}
