//! Global secondary indexes (GSI), after PolarDB-X: an index is a table of
//! its own ([`crate::catalog::GlobalIndex`]), partitioned by the index
//! columns and written in the same distributed transaction as the base row.
//!
//! - [`clause`]: the AUTO-mode index syntax (`GLOBAL`, `CLUSTERED`, `LOCAL`,
//!   `COVERING`, a partition clause per index).
//! - [`ddl`]: CREATE TABLE with global indexes, online CREATE INDEX (DELETE_ONLY
//!   → WRITE_ONLY → backfill → PUBLIC), DROP INDEX, SHOW GLOBAL INDEX.
//! - [`maintain`]: every write path keeps the indexes exact.
//! - [`select`]: the optimizer's use of an index (lookup or covering scan).
//! - [`join`]: a covering index read instead of its table where that lets
//!   the shards run a join whole.
//! - [`check`]: CHECK GLOBAL INDEX, a comparison of index and table in one
//!   snapshot.

pub mod check;
pub mod clause;
pub mod ddl;
pub mod join;
pub mod maintain;
pub mod select;

use crate::catalog::{GlobalIndex, TableDef, TypeKind};
use crate::dn::{quote_ident, quote_str};
use crate::error::{CnError, Result};
use std::collections::BTreeMap;

/// A row as the DN returned it (text protocol bytes, `None` = NULL), in the
/// column order of the query that read it.
pub type Row = Vec<Option<Vec<u8>>>;

/// The SQL literal of a value read from a DN, for a column of kind `kind`:
/// binary values in hex, numbers bare, everything else quoted.
pub fn literal(kind: TypeKind, v: Option<&[u8]>) -> String {
    let Some(b) = v else { return "NULL".into() };
    match kind {
        TypeKind::Binary => {
            let mut s = String::with_capacity(3 + 2 * b.len());
            s.push_str("X'");
            for x in b {
                s.push_str(&format!("{x:02x}"));
            }
            s.push('\'');
            s
        }
        TypeKind::Int { .. } | TypeKind::Decimal { .. } | TypeKind::Float | TypeKind::Double
            if !b.is_empty() && b.iter().all(|c| c.is_ascii_digit() || b"+-.eE".contains(c)) =>
        {
            String::from_utf8_lossy(b).into_owned()
        }
        _ => quote_str(&String::from_utf8_lossy(b)),
    }
}

/// A value's text, for partition routing.
pub fn text(v: &Option<Vec<u8>>) -> Option<String> {
    v.as_ref().map(|b| String::from_utf8_lossy(b).into_owned())
}

/// Every column of `def` (hidden ones included), quoted and comma-separated:
/// the select list of the reads that feed index maintenance.
pub fn all_columns(def: &TableDef) -> String {
    def.columns.iter().map(|c| quote_ident(&c.name)).collect::<Vec<_>>().join(", ")
}

/// Positions in `def.columns` of `names`. Errors: a name that is not a
/// column (a catalog inconsistency).
pub fn positions(def: &TableDef, names: &[String]) -> Result<Vec<usize>> {
    names
        .iter()
        .map(|n| def.column_index(n).ok_or_else(|| CnError::internal(format!("no column {n} in {}", def.name))))
        .collect()
}

/// The values of `names` in a full row of `def`.
pub fn project(def: &TableDef, row: &Row, names: &[String]) -> Result<Row> {
    Ok(positions(def, names)?.into_iter().map(|i| row[i].clone()).collect())
}

/// The partition of `t` for a row of it whose partition-key values sit at
/// `key` (positions in the row).
fn route(t: &TableDef, key: &[usize], row: &Row) -> Result<usize> {
    if !t.is_partitioned() {
        return Ok(0);
    }
    let key: Vec<Option<String>> = key.iter().map(|&i| text(&row[i])).collect();
    let key: Vec<Option<&str>> = key.iter().map(|v| v.as_deref()).collect();
    crate::sharding::partition_for_write(t, &key, 1)
}

/// The partition of `def` that holds a full row of it.
pub fn partition_of(def: &TableDef, row: &Row) -> Result<usize> {
    route(def, &positions(def, &def.partitioning.key_columns())?, row)
}

/// How full base rows become rows of one global index and where those go,
/// worked out once per index and statement rather than per row.
pub struct IndexLayout<'a> {
    pub index: &'a GlobalIndex,
    /// Positions in the base row of the index table's columns.
    stored: Vec<usize>,
    /// Positions in the index row of the index table's partition key.
    key: Vec<usize>,
}

impl<'a> IndexLayout<'a> {
    pub fn new(base: &TableDef, index: &'a GlobalIndex) -> Result<Self> {
        Ok(IndexLayout {
            index,
            stored: positions(base, &index.stored_columns())?,
            key: positions(&index.table, &index.table.partitioning.key_columns())?,
        })
    }

    /// The index row of a full base row (the index table's columns).
    pub fn row(&self, base_row: &Row) -> Row {
        self.stored.iter().map(|&i| base_row[i].clone()).collect()
    }

    /// The index partition of an index row.
    pub fn partition(&self, index_row: &Row) -> Result<usize> {
        route(&self.index.table, &self.key, index_row)
    }

    /// The index rows of full base rows, grouped by index partition.
    pub fn by_partition(&self, base_rows: &[Row]) -> Result<BTreeMap<usize, Vec<Row>>> {
        let mut out: BTreeMap<usize, Vec<Row>> = BTreeMap::new();
        for r in base_rows {
            let ir = self.row(r);
            out.entry(self.partition(&ir)?).or_default().push(ir);
        }
        Ok(out)
    }
}

/// `pk IN (…)` (or `(a, b) IN ((…), …)`) for full rows of `def`, with
/// unqualified column names.
pub fn pk_in(def: &TableDef, rows: &[&Row]) -> Result<String> {
    let pos = positions(def, &def.primary_key)?;
    let tuple = |r: &Row| {
        let vals: Vec<String> = pos.iter().map(|&i| literal(def.columns[i].kind, r[i].as_deref())).collect();
        if vals.len() == 1 {
            vals.into_iter().next().unwrap_or_default()
        } else {
            format!("({})", vals.join(", "))
        }
    };
    let cols: Vec<String> = def.primary_key.iter().map(|c| quote_ident(c)).collect();
    let lhs = if cols.len() == 1 { cols[0].clone() } else { format!("({})", cols.join(", ")) };
    Ok(format!("{lhs} IN ({})", rows.iter().map(|r| tuple(r)).collect::<Vec<_>>().join(", ")))
}

/// The primary-key values of a full row, as a comparable key.
pub fn pk_of(def: &TableDef, row: &Row) -> Result<Row> {
    project(def, row, &def.primary_key)
}

/// A table name as written in statement text (`t`, `db.t`, backquoted or
/// not), for [`crate::planner::resolve_name`].
pub fn table_name(text: &str) -> datafusion::sql::sqlparser::ast::ObjectName {
    use datafusion::sql::sqlparser::ast::{Ident, ObjectName};
    ObjectName::from(text.split('.').map(|p| Ident::with_quote('`', p.trim().trim_matches('`'))).collect::<Vec<_>>())
}

/// The logical name of the table of index `index` on table `table`.
pub fn index_table_name(table: &str, index: &str) -> String {
    format!("{table}${index}")
}
