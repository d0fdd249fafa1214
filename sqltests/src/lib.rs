//! The project's SQL conformance suite: a sqllogictest runner (on the
//! `sqllogictest` crate) that runs `.test`/`.slt` files against the CN or
//! against plain MariaDB, record by record, and compares the two.
//!
//! - [`target`]: start a CN playground or a plain `mariadbd` (or use a URL);
//! - [`db`]: one MySQL connection as a sqllogictest database, with SQLite's
//!   result formatting;
//! - [`runner`]: files in fresh databases, outcome per record;
//! - [`report`]: per-file lines, summary tables, CN-vs-MariaDB differences.

pub mod db;
pub mod report;
pub mod runner;
pub mod target;
