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
use datafusion::logical_expr::expr::InList;
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

    /// The same table read on `source` (a cached plan's table, for this
    /// execution: [`super::plan_cache::rebind`]).
    pub fn with_source(&self, source: ConnSource) -> Self {
        ShardedTable { def: self.def.clone(), columns: self.columns.clone(), schema: self.schema.clone(), source }
    }
}

/// The filter as MySQL SQL with unqualified column names (a column of
/// `schema` compared with a wider value without DataFusion's cast:
/// [`crate::optimizer::pushdown::without_widening_casts`]).
fn to_sql(e: &Expr, schema: &datafusion::arrow::datatypes::Schema) -> Option<String> {
    let type_of = |c: &Column| schema.field_with_name(&c.name).ok().map(|f| f.data_type().clone());
    let e = crate::optimizer::pushdown::without_widening_casts(e.clone(), &type_of)
        .ok()?
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

/// Where each value of a literal `IN` list on `def`'s partition key column
/// `col` belongs, so that each shard's query carries only the values its
/// partition can hold (PolarDB-X sends each shard its share of an IN list
/// the same way). Item i is `Some(p)` for a value only partition `p` can
/// hold, `None` for one every partition's list keeps: NULL (it never
/// matches, but makes a non-matching `IN` NULL rather than false), or a
/// value of another type than the key's, which MySQL may still find equal
/// after conversion (as [`prune`] keeps every partition for it).
///
/// `None` when `col` is not the table's only partition key column, the
/// table has one partition, or an item is not a literal. A row of
/// partition `p` equals no value of another partition (that is what the
/// partitioning means), so `col [NOT] IN (list)` and the same with `p`'s
/// share of the list give the same answer on every row of `p`, wherever
/// the predicate stands (WHERE, ON, under NOT or OR), as long as the share
/// is not empty ([`narrow_in_list`]).
pub fn in_list_partitions(def: &TableDef, col: &str, list: &[Expr]) -> Option<Vec<Option<usize>>> {
    key_value_partitions(def, col, list.iter().map(literal_text))
}

/// [`in_list_partitions`] of a list given as its items' text: `None` for
/// an item that is not a literal, `Some(None)` for NULL. The gather
/// ([`crate::planner::gather`]) reads the statement's own list so.
pub fn key_value_partitions(
    def: &TableDef,
    col: &str,
    items: impl IntoIterator<Item = Option<Option<String>>>,
) -> Option<Vec<Option<usize>>> {
    let keys = def.partitioning.key_columns();
    if keys.len() != 1 || keys[0] != col || def.partitions.len() < 2 {
        return None;
    }
    items.into_iter().map(|v| v.map(|v| v.and_then(|v| partition_for(def, &[Some(&v)]).ok()))).collect()
}

/// Partition `p`'s share of an IN list whose items go where `parts` says
/// ([`in_list_partitions`]): its own values and those every partition
/// keeps. `None` when the share is the whole list, or empty (`IN ()` is
/// not SQL; the whole list gives the same answer there, none).
pub fn narrow_in_list<T: Clone>(list: &[T], parts: &[Option<usize>], p: usize) -> Option<Vec<T>> {
    let share: Vec<T> =
        list.iter().zip(parts).filter(|(_, q)| q.is_none_or(|q| q == p)).map(|(e, _)| e.clone()).collect();
    (!share.is_empty() && share.len() < list.len()).then_some(share)
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
                if pushable(f) && to_sql(f, &self.schema).is_some() {
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
        let where_clause = |filters: &[Expr]| {
            let preds: Vec<String> = filters.iter().filter_map(|f| to_sql(f, &self.schema)).collect();
            if preds.is_empty() {
                String::new()
            } else {
                format!(" WHERE {}", preds.join(" AND "))
            }
        };
        // Rendered once for the shards whose IN lists stay whole.
        let whole = std::cell::OnceCell::new();
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
            // From the columns' statistics when they estimate every filter
            // (an equality 1/NDV of the rows, a range its share of the
            // values), else each filter keeps DataFusion's 20 %.
            let rows = match crate::optimizer::cardinality::scan_selectivity(st, filters) {
                Some(kept) => (st.rows as f64 * kept).max(1.0),
                None => crate::catalog::statistics::filtered(st.rows as f64 * share, filters.len()),
            };
            limit.map_or(rows, |n| rows.min(n.saturating_mul(parts.len()) as f64))
        });
        // Each shard's share of the IN lists on the partition key.
        let lists: Vec<Option<Vec<Option<usize>>>> = filters
            .iter()
            .map(|f| match f {
                Expr::InList(l) => match l.expr.as_ref() {
                    Expr::Column(c) => in_list_partitions(&self.def, &c.name, &l.list),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        let where_for = |part: usize| -> String {
            let shares: Vec<Option<Vec<Expr>>> = filters
                .iter()
                .zip(&lists)
                .map(|(f, parts)| match (f, parts) {
                    (Expr::InList(l), Some(parts)) => narrow_in_list(&l.list, parts, part),
                    _ => None,
                })
                .collect();
            if shares.iter().all(Option::is_none) {
                return whole.get_or_init(|| where_clause(filters)).clone();
            }
            let shard_filters: Vec<Expr> = filters
                .iter()
                .zip(shares)
                .map(|(f, share)| match (f, share) {
                    (Expr::InList(l), Some(list)) => {
                        Expr::InList(InList { expr: l.expr.clone(), list, negated: l.negated })
                    }
                    _ => f.clone(),
                })
                .collect();
            where_clause(&shard_filters)
        };
        let queries = parts
            .into_iter()
            .map(|i| {
                let p = &self.def.partitions[i];
                ShardQuery {
                    dn: p.dn,
                    partition: p.name.clone(),
                    sql: format!(
                        "SELECT {select_list} FROM {db}.{}{}{limit_clause}",
                        quote_ident(&p.phys_table),
                        where_for(i)
                    ),
                }
            })
            .collect();
        Ok(Arc::new(ShardScanExec::new(queries, schema, self.source.clone()).with_estimated_rows(estimate)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::common::ScalarValue;

    fn table(key: &[&str]) -> TableDef {
        let columns = key.iter().map(|c| c.to_string()).collect();
        TableDef::for_test("t", &["id", "k"], Partitioning::Hash { columns, count: 4, function: "key".into() }, 4)
    }

    #[test]
    fn each_partition_gets_its_share_of_an_in_list_on_the_key() {
        let def = table(&["id"]);
        let int = |v: i32| Expr::Literal(ScalarValue::Int32(Some(v)), None);
        let null = Expr::Literal(ScalarValue::Int32(None), None);
        let text = Expr::Literal(ScalarValue::Utf8(Some("7x".into())), None);
        let mut list: Vec<Expr> = (1..=40).map(int).collect();
        list.push(null.clone());
        list.push(text.clone());
        let parts = in_list_partitions(&def, "id", &list).expect("a list on the key");
        assert_eq!(parts[40], None, "NULL stays in every share");
        assert_eq!(parts[41], None, "so does a value the key's type cannot hold");
        let mut seen = 0;
        for p in 0..4 {
            let share = narrow_in_list(&list, &parts, p).expect("40 values over 4 partitions");
            for v in &share {
                let Expr::Literal(ScalarValue::Int32(Some(x)), _) = v else { continue };
                assert_eq!(partition_for(&def, &[Some(&x.to_string())]).unwrap(), p, "{x} belongs to p{p}");
                seen += 1;
            }
            assert!(share.contains(&null) && share.contains(&text));
        }
        assert_eq!(seen, 40, "every value in exactly one share");
        // Not the key, a composite key, a non-literal: no shares.
        assert!(in_list_partitions(&def, "k", &list).is_none());
        assert!(in_list_partitions(&table(&["id", "k"]), "id", &list).is_none());
        let col = Expr::Column(Column::new_unqualified("k"));
        assert!(in_list_partitions(&def, "id", &[int(1), col]).is_none());
        // A share that would be empty, or whole, leaves the list as it is.
        let one = [int(1)];
        let parts = in_list_partitions(&def, "id", &one).unwrap();
        let home = parts[0].unwrap();
        assert!(narrow_in_list(&one, &parts, home).is_none(), "whole");
        assert!(narrow_in_list(&one, &parts, (home + 1) % 4).is_none(), "empty");
    }
}
