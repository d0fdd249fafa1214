//! Protocol buffers shared by the CN, the TSO and the DN agents.
//!
//! Empty until the TSO and transaction issues define their gRPC services.
