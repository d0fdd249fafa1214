//! The CN's optimizer: rewrites that give a statement MySQL's semantics
//! where the CN computes ([`semantics`]), and the pushdown of co-located
//! joins, aggregates and expressions into one SELECT per shard
//! ([`pushdown`]), helped by a FROM order that joins co-located tables
//! first ([`join_order`]) and by the join tree of least estimated cost
//! ([`join_reorder`], from the statistics of [`cardinality`]), and the unnesting of the correlated scalar
//! subqueries DataFusion leaves in place ([`decorrelate`]) or computes
//! as a window aggregate over the query's own join ([`winmagic`]), and the
//! joins and `EXISTS` moved next to the tables they correlate with
//! ([`join_transpose`]); last, the
//! `utf8mb4_general_ci` collation for the string comparisons left to the CN
//! ([`collation`]).

pub mod cardinality;
pub mod coercion;
pub mod collation;
pub mod decorrelate;
pub mod join_order;
pub mod join_reorder;
pub mod join_transpose;
pub mod lookup;
pub mod pushdown;
pub mod semantics;
pub mod text_types;
pub mod winmagic;
