//! The CN's optimizer: rewrites that give a statement MySQL's semantics
//! where the CN computes ([`semantics`]), and the pushdown of co-located
//! joins, aggregates and expressions into one SELECT per shard
//! ([`pushdown`]), helped by a FROM order that joins co-located tables
//! first ([`join_order`]).

pub mod join_order;
pub mod pushdown;
pub mod semantics;
