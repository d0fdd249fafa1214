//! A logical table as a DataFusion [`TableProvider`]: scans become one
//! physical SELECT per surviving partition, with projections, filters MariaDB
//! evaluates the same way, and LIMIT pushed into it.

use super::convert::table_schema;
use super::shard_scan::{ShardQuery, ShardScanExec};
use crate::catalog::{ColumnMeta, Partitioning, TableDef};
use crate::dn::quote_ident;
use crate::optimizer::pushdown::{pushable, sql};
use crate::sharding::{partition_for, partitions_for_range};
use crate::txn::ConnSource;
use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::Column;
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use std::collections::BTreeSet;
use std::sync::Arc;

/// A sharded (or broadcast, or single) logical table.
#[derive(Debug)]
pub struct ShardedTable {
    pub def: Arc<TableDef>,
    /// The columns SQL sees: hidden ones (the implicit key) left out.
    columns: Vec<ColumnMeta>,
    schema: SchemaRef,
    pub(crate) source: ConnSource,
}

impl ShardedTable {
    pub fn new(def: Arc<TableDef>, source: ConnSource) -> Self {
        let columns: Vec<ColumnMeta> = def.visible_columns().cloned().collect();
        let schema = table_schema(&columns);
        ShardedTable { def, columns, schema, source }
    }
}

/// The filter as MySQL SQL with unqualified column names.
fn to_sql(e: &Expr) -> Option<String> {
    let e = e
        .clone()
        .transform(|x| {
            Ok(match x {
                Expr::Column(c) => Transformed::yes(Expr::Column(Column::new_unqualified(c.name))),
                other => Transformed::no(other),
            })
        })
        .ok()?
        .data;
    sql(&e).ok()
}

/// A column referenced directly, through casts.
fn column_of(e: &Expr) -> Option<&str> {
    match e {
        Expr::Column(c) => Some(&c.name),
        Expr::Cast(c) => column_of(&c.expr),
        Expr::TryCast(c) => column_of(&c.expr),
        _ => None,
    }
}

fn literal_text(e: &Expr) -> Option<Option<String>> {
    match e {
        Expr::Literal(v, _) if v.is_null() => Some(None),
        Expr::Literal(v, _) => Some(Some(v.to_string())),
        Expr::Cast(c) => literal_text(&c.expr),
        _ => None,
    }
}

fn conjuncts<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::And, right }) => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        other => out.push(other),
    }
}

/// Partitions that may hold rows passing all `filters`; `None` = all.
/// Handles `key = v`, `key IN (…)`, and ranges on RANGE tables.
pub fn prune(def: &TableDef, filters: &[Expr]) -> Option<BTreeSet<usize>> {
    let keys = def.partitioning.key_columns();
    if keys.is_empty() {
        return None;
    }
    let mut atoms = Vec::new();
    for f in filters {
        conjuncts(f, &mut atoms);
    }
    // Equalities per key column: all needed for a multi-column key.
    let mut eq: Vec<Option<Vec<Option<String>>>> = vec![None; keys.len()];
    let (mut lo, mut hi): (Option<String>, Option<String>) = (None, None);
    for a in atoms {
        match a {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let (col, lit, op) = match (column_of(left), literal_text(right), column_of(right), literal_text(left))
                {
                    (Some(c), Some(l), _, _) => (c, l, *op),
                    (_, _, Some(c), Some(l)) => (c, l, op.swap().unwrap_or(*op)),
                    _ => continue,
                };
                let Some(k) = keys.iter().position(|k| *k == col) else {
                    continue;
                };
                match op {
                    Operator::Eq => eq[k] = Some(vec![lit]),
                    Operator::Gt | Operator::GtEq if keys.len() == 1 => lo = lit,
                    Operator::Lt | Operator::LtEq if keys.len() == 1 => hi = lit,
                    _ => {}
                }
            }
            Expr::InList(l) if !l.negated => {
                let Some(col) = column_of(&l.expr) else {
                    continue;
                };
                let Some(k) = keys.iter().position(|k| *k == col) else {
                    continue;
                };
                let vals: Option<Vec<Option<String>>> = l.list.iter().map(literal_text).collect();
                if let Some(v) = vals {
                    eq[k] = Some(v);
                }
            }
            Expr::Between(b) if !b.negated && keys.len() == 1 && column_of(&b.expr) == Some(keys[0].as_str()) => {
                if let (Some(l), Some(h)) = (literal_text(&b.low), literal_text(&b.high)) {
                    lo = l;
                    hi = h;
                }
            }
            _ => {}
        }
    }
    if eq.iter().all(|e| e.is_some()) {
        // Cartesian product of the equality sets (one set for IN on a
        // single-column key).
        let mut combos: Vec<Vec<Option<String>>> = vec![vec![]];
        for vals in eq.iter().flatten() {
            combos =
                combos.iter().flat_map(|c| vals.iter().map(move |v| [c.clone(), vec![v.clone()]].concat())).collect();
        }
        let mut set = BTreeSet::new();
        for c in combos {
            let key: Vec<Option<&str>> = c.iter().map(|v| v.as_deref()).collect();
            match partition_for(def, &key) {
                Ok(p) => {
                    set.insert(p);
                }
                Err(_) => {
                    // A value with no partition (RANGE/LIST) matches nothing;
                    // a value that is not of the key's type may still
                    // compare equal in MySQL: keep every partition.
                    if !matches!(def.partitioning, Partitioning::Range { .. } | Partitioning::List { .. }) {
                        return None;
                    }
                }
            }
        }
        return Some(set);
    }
    if matches!(def.partitioning, Partitioning::Range { .. }) && (lo.is_some() || hi.is_some()) {
        if let Ok(v) = partitions_for_range(def, lo.as_deref(), hi.as_deref()) {
            return Some(v.into_iter().collect());
        }
    }
    None
}

#[async_trait]
impl TableProvider for ShardedTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if pushable(f) && to_sql(f).is_some() {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let idx: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let schema = Arc::new(self.schema.project(&idx)?);
        let cols: Vec<String> = idx.iter().map(|i| quote_ident(&self.columns[*i].name)).collect();
        let select_list = if cols.is_empty() { "1".to_string() } else { cols.join(", ") };
        let preds: Vec<String> = filters.iter().filter_map(to_sql).collect();
        let where_clause = if preds.is_empty() { String::new() } else { format!(" WHERE {}", preds.join(" AND ")) };
        let limit_clause = limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
        let db = quote_ident(&self.def.db);
        let parts: Vec<usize> = if self.def.is_broadcast() {
            // Any one copy; spread reads over DNs.
            vec![self.source.cluster().any_dn() as usize % self.def.partitions.len().max(1)]
        } else {
            match prune(&self.def, filters) {
                Some(set) => set.into_iter().collect(),
                None => (0..self.def.partitions.len()).collect(),
            }
        };
        let estimate = self.source.cluster().catalog.snapshot().statistics(&self.def.db, &self.def.name).map(|st| {
            let share = if self.def.is_broadcast() {
                1.0
            } else {
                parts.len() as f64 / self.def.partitions.len().max(1) as f64
            };
            let rows = crate::catalog::statistics::filtered(st.rows as f64 * share, filters.len());
            limit.map_or(rows, |n| rows.min(n.saturating_mul(parts.len()) as f64))
        });
        let queries = parts
            .into_iter()
            .map(|i| {
                let p = &self.def.partitions[i];
                ShardQuery {
                    dn: p.dn,
                    partition: p.name.clone(),
                    sql: format!(
                        "SELECT {select_list} FROM {db}.{}{where_clause}{limit_clause}",
                        quote_ident(&p.phys_table)
                    ),
                }
            })
            .collect();
        Ok(Arc::new(ShardScanExec::new(queries, schema, self.source.clone()).with_estimated_rows(estimate)))
    }
}
