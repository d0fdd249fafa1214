//! Join order for co-location: in a comma-separated FROM list (all inner
//! joins, so any order gives the same rows), the largest set of tables
//! joined to each other on their partition keys moves to the front, in an
//! order where each joins one before it.
//!
//! DataFusion joins a FROM list left to right, taking next the first
//! remaining table connected by a join predicate (its cross-join
//! elimination). With `FROM customer, orders, lineitem` it joins customer
//! and orders (not co-located: orders is partitioned by orderkey) first,
//! and [`super::pushdown`] can then push nothing; with orders and lineitem
//! first, their co-located join runs on the shards and only its result
//! meets customer in the CN.
//!
//! Two tables are joined on their partition keys when both are hash
//! partitioned in one table group on one column and the WHERE clause has
//! the conjunct `a.key = b.key`. A heuristic: it only decides which tables
//! join first, and needs no statistics. Not applied when the SELECT has a
//! `*` (its column order follows the FROM list) or when an item is not a
//! plain logical table. With statistics, [`super::join_reorder`] then
//! chooses the join tree by cost.

use crate::catalog::{CatalogSnapshot, Partitioning, TableDef};
use crate::planner::{column_ref, resolve_name};
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, Query, SelectItem, SetExpr, TableFactor, VisitMut, VisitorMut,
};
use std::ops::ControlFlow;
use std::sync::Arc;

/// Reorders the FROM lists of every SELECT in `node` (subqueries too).
pub fn colocate<T: VisitMut>(node: &mut T, snap: &CatalogSnapshot, db: Option<&str>) {
    let _ = node.visit(&mut Reorder { snap, db });
}

struct Reorder<'a> {
    snap: &'a CatalogSnapshot,
    db: Option<&'a str>,
}

/// A FROM item: the name columns are qualified with, its table.
struct Item {
    qualifier: String,
    def: Arc<TableDef>,
}

/// A column reference: (qualifier, column), lower-cased, the qualifier
/// empty when absent.
type ColumnRef = (String, String);

/// `a = b` conjuncts between two column references.
fn column_equalities(e: &Expr, out: &mut Vec<(ColumnRef, ColumnRef)>) {
    match e {
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
            column_equalities(left, out);
            column_equalities(right, out);
        }
        Expr::BinaryOp { left, op: BinaryOperator::Eq, right } => {
            if let (Some(a), Some(b)) = (column_ref(left), column_ref(right)) {
                out.push((a, b));
            }
        }
        Expr::Nested(e) => column_equalities(e, out),
        _ => {}
    }
}

impl Reorder<'_> {
    fn item(&self, f: &TableFactor) -> Option<Item> {
        let TableFactor::Table { name, alias, args: None, .. } = f else {
            return None;
        };
        let (d, t) = resolve_name(name, self.db).ok()?;
        let def = self.snap.table(&d, &t)?.clone();
        let qualifier = alias.as_ref().map(|a| a.name.value.to_ascii_lowercase()).unwrap_or(t);
        Some(Item { qualifier, def })
    }
}

/// The FROM item a column reference belongs to.
fn owner(items: &[Item], (q, c): &ColumnRef) -> Option<usize> {
    if !q.is_empty() {
        return items.iter().position(|i| &i.qualifier == q);
    }
    let mut found = items.iter().enumerate().filter(|(_, i)| i.def.columns.iter().any(|x| &x.name == c));
    let first = found.next()?.0;
    found.next().is_none().then_some(first)
}

/// The single hash partition key column of a table, if it has one.
fn hash_key(def: &TableDef) -> Option<String> {
    match &def.partitioning {
        Partitioning::Hash { columns, .. } if columns.len() == 1 => Some(columns[0].clone()),
        _ => None,
    }
}

impl VisitorMut for Reorder<'_> {
    type Break = ();
    fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
        let SetExpr::Select(sel) = q.body.as_mut() else {
            return ControlFlow::Continue(());
        };
        if sel.from.len() < 3
            || sel.from.iter().any(|t| !t.joins.is_empty())
            || sel.projection.iter().any(|p| matches!(p, SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)))
        {
            return ControlFlow::Continue(());
        }
        let items: Option<Vec<Item>> = sel.from.iter().map(|t| self.item(&t.relation)).collect();
        let (Some(items), Some(selection)) = (items, &sel.selection) else {
            return ControlFlow::Continue(());
        };
        // Edges: equalities between the partition keys of two tables of one
        // table group.
        let mut eqs = Vec::new();
        column_equalities(selection, &mut eqs);
        let n = items.len();
        let mut adj = vec![Vec::new(); n];
        for (a, b) in &eqs {
            let (Some(i), Some(j)) = (owner(&items, a), owner(&items, b)) else {
                continue;
            };
            let (di, dj) = (&items[i].def, &items[j].def);
            if i != j
                && di.table_group == dj.table_group
                && hash_key(di).as_ref() == Some(&a.1)
                && hash_key(dj).as_ref() == Some(&b.1)
            {
                adj[i].push(j);
                adj[j].push(i);
            }
        }
        // The largest connected set, in breadth-first order from its first
        // member.
        let mut seen = vec![false; n];
        let mut best: Vec<usize> = Vec::new();
        for start in 0..n {
            if seen[start] {
                continue;
            }
            let mut order = vec![start];
            seen[start] = true;
            let mut k = 0;
            while k < order.len() {
                for &j in &adj[order[k]] {
                    if !seen[j] {
                        seen[j] = true;
                        order.push(j);
                    }
                }
                k += 1;
            }
            if order.len() > best.len() {
                best = order;
            }
        }
        if best.len() < 2 || best.iter().enumerate().all(|(k, i)| k == *i) {
            return ControlFlow::Continue(());
        }
        let mut slots: Vec<Option<_>> = std::mem::take(&mut sel.from).into_iter().map(Some).collect();
        let mut from: Vec<_> = best.iter().map(|i| slots[*i].take().expect("each index once")).collect();
        from.extend(slots.into_iter().flatten());
        sel.from = from;
        ControlFlow::Continue(())
    }
}
