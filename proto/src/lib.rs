//! Protocol buffers and gRPC services shared by the CN, the TSO and the DN
//! agents (generated from `proto/*.proto` by `build.rs`).

/// The timestamp oracle service (`proto/tso.proto`).
pub mod tso {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("tso.v1");
}
