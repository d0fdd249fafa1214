//! The optimizer's use of a global index for a single-table SELECT.
//!
//! A query whose WHERE pins the base table to one partition reads that
//! partition. Otherwise, when equalities or IN lists pin the partition key
//! of a PUBLIC global index, reading the index is cheaper than asking every
//! shard: its few partitions give the matching primary keys, and a lookup
//! by primary key reads the base rows (PolarDB-X's IndexScan + LookupJoin).
//! When the index stores every column the query uses (covering, or a
//! clustered index), the query reads the index table alone. `FORCE INDEX`
//! / `USE INDEX (g)` choose g; `IGNORE INDEX (g)` forbids it. Index hints
//! naming global indexes never reach the DNs.
//!
//! A range on the first column of a global index (`a BETWEEN 10 AND 20`,
//! `a >= 5`), when nothing pins an index, reads the index too: every index
//! partition, each by its local key on the index columns (the DN's own
//! optimizer picks a range or a scan of the narrower index table), where
//! the table would be scanned whole.
//!
//! Rule-based for now: no statistics decide between the index and a full
//! scan; the index query of a lookup reads at most [`LOOKUP_LIMIT`] + 1
//! keys, and one more than the limit falls back to the plain query.

use crate::catalog::{CatalogSnapshot, GlobalIndex, IndexState, TableDef};
use crate::dn::quote_ident;
use crate::error::{CnError, Result};
use crate::planner::{self, resolve_name, Route};
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, Query, SelectItem, SetExpr, TableFactor, TableIndexHintType, UnaryOperator, Value, Visit,
    Visitor,
};
use datafusion::sql::sqlparser::dialect::MySqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::sync::Arc;

/// Primary keys a lookup may carry to the base table before the plain
/// query is cheaper.
pub const LOOKUP_LIMIT: usize = 5000;

/// How a SELECT uses a global index.
#[derive(Debug, Clone)]
pub enum Choice {
    /// Read the index table instead of the base table.
    Covering { index: String, query: Box<Query> },
    /// Read primary keys from the index (`index_query`), then the base
    /// rows: `base` with a primary-key filter added ([`with_keys`]).
    Lookup { index: String, index_query: Box<Query>, base: Box<Query>, table: Arc<TableDef>, qualifier: String },
}

impl Choice {
    /// One line for EXPLAIN.
    pub fn describe(&self) -> String {
        match self {
            Choice::Covering { index, query } => format!("covering global index {index}: {query}"),
            Choice::Lookup { index, index_query, table, .. } => {
                format!("global index {index}: {index_query}; then lookup by primary key in {}", table.name)
            }
        }
    }
}

fn parse_expr(sql: &str) -> Result<Expr> {
    Parser::new(&MySqlDialect {}).try_with_sql(sql).and_then(|mut p| p.parse_expr()).map_err(CnError::parse)
}

fn parse_query(sql: &str) -> Result<Query> {
    let mut stmts = planner::extract::parse(sql).map_err(CnError::parse)?;
    match stmts.pop() {
        Some(datafusion::sql::sqlparser::ast::Statement::Query(q)) => Ok(*q),
        _ => Err(CnError::internal("an index query did not parse as a query")),
    }
}

/// Column names a query mentions (lower-case), and whether it selects `*`.
#[derive(Default)]
struct Columns {
    names: BTreeSet<String>,
    subquery: bool,
}

impl Visitor for Columns {
    type Break = ();
    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        match e {
            Expr::Identifier(i) => {
                self.names.insert(i.value.to_ascii_lowercase());
            }
            Expr::CompoundIdentifier(p) => {
                if let Some(l) = p.last() {
                    self.names.insert(l.value.to_ascii_lowercase());
                }
            }
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => self.subquery = true,
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

fn columns_of<T: Visit>(node: &T) -> Columns {
    let mut c = Columns::default();
    let _ = node.visit(&mut c);
    c
}

fn conjuncts(e: &Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        Expr::Nested(inner) if matches!(**inner, Expr::BinaryOp { op: BinaryOperator::And, .. }) => {
            conjuncts(inner, out)
        }
        other => out.push(other.clone()),
    }
}

/// Picks a global index for `q` (a SELECT), and strips index hints that
/// name global indexes from it. `None`: read the base table as usual.
pub fn choose(snap: &CatalogSnapshot, db: Option<&str>, q: &mut Query) -> Result<Option<Choice>> {
    choose_with(snap, db, q, false)
}

/// [`choose`] for a statement whose literals are the plan cache's `?n`
/// placeholders ([`crate::planner::plan_cache`]): a placeholder pins or
/// bounds a column as a literal does. The choice then holds for every
/// execution's literals; it is [`choose`]'s, except where literals that
/// route the base query to one partition would skip the index (both read
/// the same rows).
pub fn choose_parameterized(snap: &CatalogSnapshot, db: Option<&str>, q: &mut Query) -> Result<Option<Choice>> {
    choose_with(snap, db, q, true)
}

/// A literal, or with `placeholders` also a `?n` placeholder (either
/// negated or in parentheses).
fn is_value(e: &Expr, placeholders: bool) -> bool {
    match e {
        Expr::Value(v) if placeholders && matches!(&v.value, Value::Placeholder(_)) => true,
        Expr::UnaryOp { op: UnaryOperator::Minus, expr } | Expr::Nested(expr) if placeholders => {
            is_value(expr, placeholders)
        }
        _ => planner::literal_text(e).is_some(),
    }
}

/// Columns `(qualifier or "", column)` that conjuncts of `e` pin to
/// values: `c = v` (either way round) and `c IN (v, …)`.
fn pinned(e: &Expr, placeholders: bool, out: &mut BTreeSet<(String, String)>) {
    match e {
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
            pinned(left, placeholders, out);
            pinned(right, placeholders, out);
        }
        Expr::BinaryOp { left, op: BinaryOperator::Eq, right } => {
            if let Some(c) = planner::column_ref(left).filter(|_| is_value(right, placeholders)) {
                out.insert(c);
            } else if let Some(c) = planner::column_ref(right).filter(|_| is_value(left, placeholders)) {
                out.insert(c);
            }
        }
        Expr::InList { expr, list, negated: false } if list.iter().all(|v| is_value(v, placeholders)) => {
            if let Some(c) = planner::column_ref(expr) {
                out.insert(c);
            }
        }
        Expr::Nested(inner) => pinned(inner, placeholders, out),
        _ => {}
    }
}

fn choose_with(snap: &CatalogSnapshot, db: Option<&str>, q: &mut Query, placeholders: bool) -> Result<Option<Choice>> {
    let (def, d, qualifier, selection, forced, ignored) = {
        let SetExpr::Select(sel) = q.body.as_mut() else { return Ok(None) };
        if sel.from.len() != 1 || !sel.from[0].joins.is_empty() {
            return Ok(None);
        }
        let TableFactor::Table { name, alias, index_hints, .. } = &mut sel.from[0].relation else {
            return Ok(None);
        };
        let Ok((d, t)) = resolve_name(name, db) else { return Ok(None) };
        let Some(def) = snap.base_table(&d, &t).cloned() else { return Ok(None) };
        if def.global_indexes.is_empty() {
            return Ok(None);
        }
        // Hints: the global indexes they name are the CN's; others go on.
        let mut forced: Option<String> = None;
        let mut ignored: BTreeSet<String> = BTreeSet::new();
        index_hints.retain(|h| {
            let names: Vec<String> = h.index_names.iter().map(|i| i.value.to_ascii_lowercase()).collect();
            let global: Vec<&String> = names.iter().filter(|n| def.global_index(n).is_some()).collect();
            if global.is_empty() {
                return true;
            }
            match h.hint_type {
                TableIndexHintType::Ignore => ignored.extend(global.into_iter().cloned()),
                TableIndexHintType::Use | TableIndexHintType::Force => forced = global.first().map(|s| s.to_string()),
            }
            false
        });
        let qualifier = alias.as_ref().map(|a| a.name.value.to_ascii_lowercase()).unwrap_or_else(|| t.clone());
        let Some(selection) = sel.selection.clone() else { return Ok(None) };
        (def, d, qualifier, selection, forced, ignored)
    };
    let plain = q.clone();
    // Already one partition: the base table is as cheap as it gets.
    if forced.is_none() && matches!(planner::route_query(snap, db, &plain, 0)?, Route::SingleDn { .. }) {
        return Ok(None);
    }
    let mut pins = BTreeSet::new();
    pinned(&selection, placeholders, &mut pins);
    let pinned: BTreeSet<String> =
        pins.into_iter().filter(|(q, _)| q.is_empty() || *q == qualifier).map(|(_, c)| c).collect();
    let usable = |g: &&GlobalIndex| g.state == IndexState::Public && !ignored.contains(&g.name);
    let pins = |g: &GlobalIndex| g.table.partitioning.key_columns().iter().all(|k| pinned.contains(k));
    // A range on an index's first column: the index's partitions each read
    // the range by their local key on the index columns. Not for a column
    // of the table's own partition key (the table's partitions may prune).
    let mut ranged = BTreeSet::new();
    ranges(&selection, placeholders, &mut ranged);
    let ranged: BTreeSet<String> = ranged
        .into_iter()
        .filter(|(q, c)| (q.is_empty() || *q == qualifier) && !def.partitioning.key_columns().contains(c))
        .map(|(_, c)| c)
        .collect();
    let chosen: Option<&GlobalIndex> = match &forced {
        Some(f) => def.global_index(f).filter(|g| g.state == IndexState::Public),
        None => def
            .global_indexes
            .iter()
            .filter(usable)
            .filter(|g| pins(g))
            .max_by_key(|g| g.columns.iter().filter(|c| pinned.contains(*c)).count())
            .or_else(|| def.global_indexes.iter().filter(usable).find(|g| ranged.contains(&g.columns[0]))),
    };
    let Some(g) = chosen else { return Ok(None) };
    let stored: BTreeSet<String> = g.table.columns.iter().map(|c| c.name.clone()).collect();
    let used = columns_of(&plain);
    let star = matches!(q.body.as_ref(), SetExpr::Select(s) if s.projection.iter().any(|p| matches!(p, SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..))));
    let star_ok = !star || def.visible_columns().all(|c| stored.contains(&c.name));
    if star_ok && !used.subquery && used.names.iter().all(|n| stored.contains(n) || *n == qualifier) {
        let mut query = plain;
        if let SetExpr::Select(s) = query.body.as_mut() {
            if let TableFactor::Table { name, alias, .. } = &mut s.from[0].relation {
                *name = datafusion::sql::sqlparser::ast::ObjectName::from(vec![
                    datafusion::sql::sqlparser::ast::Ident::with_quote('`', d.as_str()),
                    datafusion::sql::sqlparser::ast::Ident::with_quote('`', g.table.name.as_str()),
                ]);
                if alias.is_none() {
                    *alias = Some(datafusion::sql::sqlparser::ast::TableAlias {
                        explicit: true,
                        name: datafusion::sql::sqlparser::ast::Ident::with_quote('`', qualifier.as_str()),
                        columns: vec![],
                        at: None,
                    });
                }
            }
        }
        return Ok(Some(Choice::Covering { index: g.name.clone(), query: Box::new(query) }));
    }
    // Lookup: the conjuncts the index can evaluate select its keys.
    let mut parts = Vec::new();
    conjuncts(&selection, &mut parts);
    let on_index: Vec<String> = parts
        .iter()
        .filter(|c| {
            let cols = columns_of(*c);
            !cols.subquery && cols.names.iter().all(|n| stored.contains(n) || *n == qualifier)
        })
        .map(|c| format!("({c})"))
        .collect();
    let keys = def.primary_key.iter().map(|k| format!("{}.{}", quote_ident(&qualifier), quote_ident(k)));
    let mut index_sql = format!(
        "SELECT {} FROM {}.{} AS {}",
        keys.collect::<Vec<_>>().join(", "),
        quote_ident(&d),
        quote_ident(&g.table.name),
        quote_ident(&qualifier)
    );
    if !on_index.is_empty() {
        index_sql.push_str(&format!(" WHERE {}", on_index.join(" AND ")));
    }
    // One key more than a lookup takes says the plain query is cheaper,
    // without reading the rest of a wide range.
    index_sql.push_str(&format!(" LIMIT {}", LOOKUP_LIMIT + 1));
    Ok(Some(Choice::Lookup {
        index: g.name.clone(),
        index_query: Box::new(parse_query(&index_sql)?),
        base: Box::new(plain),
        table: def,
        qualifier,
    }))
}

/// The columns (qualifier or "", name) that conjuncts of `e` bound by a
/// range of values: `c < v`, `c <= v`, `c > v`, `c >= v` (either way
/// round) and `c BETWEEN v AND w`, with `v`, `w` values ([`is_value`]).
fn ranges(e: &Expr, placeholders: bool, out: &mut BTreeSet<(String, String)>) {
    use BinaryOperator::*;
    let value = |e: &Expr| is_value(e, placeholders);
    match e {
        Expr::BinaryOp { left, op: And, right } => {
            ranges(left, placeholders, out);
            ranges(right, placeholders, out);
        }
        Expr::BinaryOp { left, op: Lt | LtEq | Gt | GtEq, right } => {
            if let Some(c) = planner::column_ref(left).filter(|_| value(right)) {
                out.insert(c);
            } else if let Some(c) = planner::column_ref(right).filter(|_| value(left)) {
                out.insert(c);
            }
        }
        Expr::Between { expr, negated: false, low, high } => {
            if let Some(c) = planner::column_ref(expr).filter(|_| value(low) && value(high)) {
                out.insert(c);
            }
        }
        Expr::Nested(inner) => ranges(inner, placeholders, out),
        _ => {}
    }
}

/// The filter `table`'s primary key (columns qualified by `qualifier`)
/// in `keys` (values as the index returned them): `pk = v`, `pk IN (…)`
/// or `(k1, k2) IN ((…), …)`. No keys: `pk = NULL`, false for every row.
pub fn key_predicate(table: &TableDef, qualifier: &str, keys: &[super::Row]) -> String {
    let pk: Vec<(String, crate::catalog::TypeKind)> = table
        .primary_key
        .iter()
        .map(|k| {
            let kind = table.column(k).map(|c| c.kind).unwrap_or(crate::catalog::TypeKind::String);
            (format!("{}.{}", quote_ident(qualifier), quote_ident(k)), kind)
        })
        .collect();
    match keys {
        [] => pk.iter().map(|(c, _)| format!("{c} = NULL")).collect::<Vec<_>>().join(" AND "),
        [one] => pk
            .iter()
            .zip(one)
            .map(|((c, k), v)| format!("{c} = {}", super::literal(*k, v.as_deref())))
            .collect::<Vec<_>>()
            .join(" AND "),
        many => {
            let tuples: Vec<String> = many
                .iter()
                .map(|r| {
                    let v: Vec<String> = pk.iter().zip(r).map(|((_, k), v)| super::literal(*k, v.as_deref())).collect();
                    if v.len() == 1 {
                        v.into_iter().next().unwrap_or_default()
                    } else {
                        format!("({})", v.join(", "))
                    }
                })
                .collect();
            let lhs: Vec<&str> = pk.iter().map(|(c, _)| c.as_str()).collect();
            let lhs = if lhs.len() == 1 { lhs[0].to_string() } else { format!("({})", lhs.join(", ")) };
            format!("{lhs} IN ({})", tuples.join(", "))
        }
    }
}

/// `base` restricted to the rows whose primary key is in `keys` (values as
/// the index returned them, [`key_predicate`]). No keys: a false filter
/// that still pins one partition.
pub fn with_keys(mut base: Query, table: &TableDef, qualifier: &str, keys: &[super::Row]) -> Result<Query> {
    let pred = parse_expr(&key_predicate(table, qualifier, keys))?;
    if let SetExpr::Select(s) = base.body.as_mut() {
        s.selection = Some(match s.selection.take() {
            Some(e) => Expr::BinaryOp {
                left: Box::new(Expr::Nested(Box::new(e))),
                op: BinaryOperator::And,
                right: Box::new(pred),
            },
            None => pred,
        });
    }
    Ok(base)
}

/// Whether a lookup in `table` can go straight to the partitions its keys
/// name ([`lookup_per_dn`]): the table is partitioned and its partition
/// key is part of its primary key.
pub fn direct_lookup_possible(table: &TableDef) -> bool {
    table.is_partitioned() && partition_key_positions(table).is_some()
}

/// Where each partition-key column sits in the primary key.
fn partition_key_positions(table: &TableDef) -> Option<Vec<usize>> {
    table.partitioning.key_columns().iter().map(|k| table.primary_key.iter().position(|p| p == k)).collect()
}

/// Primary keys read from an index (`keys`), by the base-table partition
/// each lives in; no keys: the partition of NULL keys, empty (any
/// partition answers "no row"). `None` when a key cannot be routed here
/// (see [`direct_lookup_possible`], or a key that is not UTF-8).
pub fn keys_by_partition(
    table: &TableDef,
    keys: &[super::Row],
) -> Result<Option<std::collections::BTreeMap<usize, Vec<super::Row>>>> {
    if !table.is_partitioned() {
        return Ok(None);
    }
    let Some(positions) = partition_key_positions(table) else { return Ok(None) };
    let mut by_partition: std::collections::BTreeMap<usize, Vec<super::Row>> = Default::default();
    if keys.is_empty() {
        match crate::sharding::partition_for(table, &vec![None; positions.len()]) {
            Ok(p) => by_partition.insert(p, Vec::new()),
            Err(_) => return Ok(None),
        };
    }
    for row in keys {
        let mut key = Vec::with_capacity(positions.len());
        for &i in &positions {
            match row.get(i) {
                Some(Some(b)) => match std::str::from_utf8(b) {
                    Ok(s) => key.push(Some(s)),
                    Err(_) => return Ok(None),
                },
                Some(None) => key.push(None),
                None => return Ok(None),
            }
        }
        by_partition.entry(crate::sharding::partition_for(table, &key)?).or_default().push(row.clone());
    }
    Ok(Some(by_partition))
}

/// The lookup of `keys` (primary keys read from the index) in the base
/// table without the CN's executor: per DN, one physical query, the
/// partitions' `base` restricted to their keys ([`with_keys`]) joined by
/// `UNION ALL`, in DN order. The answer is the concatenation of the DNs'
/// answers; no keys: one query that reads no row ([`with_keys`]' false
/// filter), for the answer's column definitions. `None` when that would
/// not be the answer (`base` is not [`planner::gather::row_wise`]) or when
/// the table's partition key is not part of its primary key; the caller
/// then runs `base` with all keys through the planner.
pub fn lookup_per_dn(
    snap: &CatalogSnapshot,
    db: Option<&str>,
    base: &Query,
    table: &TableDef,
    qualifier: &str,
    keys: &[super::Row],
) -> Result<Option<Vec<(u32, String)>>> {
    if !planner::gather::row_wise(base) {
        return Ok(None);
    }
    let Some(by_partition) = keys_by_partition(table, keys)? else { return Ok(None) };
    let mut queries = Vec::with_capacity(by_partition.len());
    for (p, rows) in by_partition {
        let Some(part) = table.partitions.get(p) else { return Ok(None) };
        let mut q = with_keys(base.clone(), table, qualifier, &rows)?;
        let mut names = planner::PhysicalNames { snap, db, dn: part.dn, partition: Some(p), alias: true };
        planner::to_physical(&mut q, &mut names);
        queries.push((part.dn, q.to_string()));
    }
    Ok(Some(union_per_dn(queries)))
}

/// Partition queries `(dn, sql)` as one `UNION ALL` query per DN, in DN
/// order (the partitions' order within a DN kept).
pub fn union_per_dn(queries: impl IntoIterator<Item = (u32, String)>) -> Vec<(u32, String)> {
    let mut by_dn: std::collections::BTreeMap<u32, Vec<String>> = Default::default();
    for (dn, q) in queries {
        by_dn.entry(dn).or_default().push(q);
    }
    by_dn.into_iter().map(|(dn, qs)| (dn, crate::executor::shard_scan::union_all(&qs))).collect()
}
