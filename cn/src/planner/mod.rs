//! Statement routing: decides whether a SELECT runs whole on one DN or
//! through DataFusion, and rewrites logical table names to physical ones.

pub mod clock;
pub mod extract;
pub mod gather;
pub mod locking;
pub mod names;
pub mod plan_cache;
pub mod rollup;
pub mod split;
pub mod views;

use crate::catalog::{CatalogSnapshot, TableDef};
use crate::error::{CnError, Result};
use datafusion::sql::sqlparser::ast::{
    visit_relations, BinaryOperator, Expr, Ident, ObjectName, ObjectNamePart, Query, SetExpr, TableAlias, TableFactor,
    Value, ValueWithSpan, VisitMut, VisitorMut,
};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::sync::Arc;

/// Where a SELECT runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The whole statement runs on one DN. Requires: every partitioned table
    /// reference pinned by the WHERE clause to partition `p` of one table
    /// group, single tables on the same DN, broadcast tables anywhere.
    SingleDn { dn: u32, partition: Option<usize> },
    /// Runs in DataFusion with one shard scan per partition. Used for
    /// everything a single DN cannot answer alone.
    Distributed,
}

/// True when the query references no table at all (`SELECT 1`).
pub fn reads_no_table(q: &Query) -> bool {
    // A top-level CTE's name is no table: `WITH RECURSIVE r(n) AS (SELECT 1
    // UNION ALL SELECT n + 1 FROM r …) SELECT …` reads none.
    let ctes = cte_names(q);
    let mut any = false;
    let _ = visit_relations(q, |name| {
        if matches!(name.0.as_slice(), [ObjectNamePart::Identifier(i)] if ctes.contains(&i.value.to_ascii_lowercase()))
        {
            return ControlFlow::Continue(());
        }
        any = true;
        ControlFlow::<()>::Break(())
    });
    !any
}

/// Splits `db.table` / `table` into (db, table), lower-cased.
pub fn resolve_name(name: &ObjectName, default_db: Option<&str>) -> Result<(String, String)> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => Ok(i.value.to_ascii_lowercase()),
            other => Err(CnError::unsupported(format!("table name {other}"))),
        })
        .collect::<Result<_>>()?;
    match parts.as_slice() {
        [t] => Ok((default_db.ok_or_else(CnError::no_db)?.to_ascii_lowercase(), t.clone())),
        [d, t] => Ok((d.clone(), t.clone())),
        _ => Err(CnError::parse(format!("bad table name {name}"))),
    }
}

/// A table reference in the FROM clause: its alias (or name) and table.
struct TableUse {
    qualifier: String,
    def: Arc<TableDef>,
}

fn cte_names(q: &Query) -> BTreeSet<String> {
    q.with
        .as_ref()
        .map(|w| w.cte_tables.iter().map(|c| c.alias.name.value.to_ascii_lowercase()).collect())
        .unwrap_or_default()
}

/// Every logical table the query references, or `None` when it reads
/// `information_schema`, or a CTE and a table (DataFusion handles those).
fn referenced_tables(snap: &CatalogSnapshot, db: Option<&str>, q: &Query) -> Result<Option<Vec<(String, String)>>> {
    let ctes = cte_names(q);
    let mut out = Vec::new();
    let mut err = None;
    let (mut special, mut cte) = (false, false);
    let _ = visit_relations(q, |name| {
        if matches!(name.0.as_slice(), [ObjectNamePart::Identifier(i)] if ctes.contains(&i.value.to_ascii_lowercase()))
        {
            cte = true;
            return ControlFlow::Continue(());
        }
        match resolve_name(name, db) {
            Ok((d, t)) => {
                if d == "information_schema" {
                    special = true;
                } else if snap.table(&d, &t).is_none() {
                    if snap.database(&d).is_none() {
                        err = Some(CnError::bad_db(&d));
                    } else {
                        err = Some(CnError::no_such_table(&d, &t));
                    }
                    return ControlFlow::Break(());
                } else {
                    out.push((d, t));
                }
            }
            Err(e) => {
                err = Some(e);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    });
    if let Some(e) = err {
        return Err(e);
    }
    // CTEs over no table at all run whole on a DN; over tables, DataFusion
    // plans them.
    Ok(if special || (cte && !out.is_empty()) { None } else { Some(out) })
}

/// Literal text of a value expression: `Some(None)` for NULL, `None` when
/// the expression is not a literal.
pub fn literal_text(e: &Expr) -> Option<Option<String>> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => Some(Some(n.clone())),
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Some(Some(s.clone())),
            Value::Boolean(b) => Some(Some(if *b { "1" } else { "0" }.into())),
            Value::Null => Some(None),
            _ => None,
        },
        Expr::UnaryOp { op: datafusion::sql::sqlparser::ast::UnaryOperator::Minus, expr } => {
            literal_text(expr)?.map(|s| Some(format!("-{s}")))
        }
        Expr::Nested(e) => literal_text(e),
        _ => None,
    }
}

/// Column references `(qualifier or "", column)`, lower-cased.
pub(crate) fn column_ref(e: &Expr) -> Option<(String, String)> {
    match e {
        Expr::Identifier(i) => Some((String::new(), i.value.to_ascii_lowercase())),
        Expr::CompoundIdentifier(p) if p.len() >= 2 => {
            Some((p[p.len() - 2].value.to_ascii_lowercase(), p[p.len() - 1].value.to_ascii_lowercase()))
        }
        Expr::Nested(e) => column_ref(e),
        _ => None,
    }
}

/// `col IN (literal, …)` conjuncts of a WHERE clause: column (lower-case,
/// qualifier dropped) → values (`None` = NULL).
pub fn in_lists(e: &Expr, out: &mut BTreeMap<String, Vec<Option<String>>>) {
    match e {
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
            in_lists(left, out);
            in_lists(right, out);
        }
        Expr::InList { expr, list, negated: false } => {
            let Some((_, col)) = column_ref(expr) else { return };
            let vals: Option<Vec<Option<String>>> = list.iter().map(literal_text).collect();
            if let Some(v) = vals {
                out.insert(col, v);
            }
        }
        Expr::Nested(e) => in_lists(e, out),
        _ => {}
    }
}

/// `col = literal` conjuncts of a WHERE clause.
pub fn equalities(e: &Expr, out: &mut Vec<((String, String), Option<String>)>) {
    match e {
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
            equalities(left, out);
            equalities(right, out);
        }
        Expr::BinaryOp { left, op: BinaryOperator::Eq, right } => {
            if let (Some(c), Some(v)) = (column_ref(left), literal_text(right)) {
                out.push((c, v));
            } else if let (Some(c), Some(v)) = (column_ref(right), literal_text(left)) {
                out.push((c, v));
            }
        }
        Expr::InList { expr, list, negated: false } if list.len() == 1 => {
            if let (Some(c), Some(v)) = (column_ref(expr), literal_text(&list[0])) {
                out.push((c, v));
            }
        }
        Expr::Nested(e) => equalities(e, out),
        _ => {}
    }
}

/// Table uses of the top-level FROM clause of a simple SELECT.
fn from_uses(snap: &CatalogSnapshot, db: Option<&str>, q: &Query) -> Option<Vec<TableUse>> {
    let SetExpr::Select(sel) = q.body.as_ref() else {
        return None;
    };
    let mut uses = Vec::new();
    for twj in &sel.from {
        let factors = std::iter::once(&twj.relation).chain(twj.joins.iter().map(|j| &j.relation));
        for f in factors {
            let TableFactor::Table { name, alias, .. } = f else {
                return None;
            };
            let (d, t) = resolve_name(name, db).ok()?;
            let def = snap.table(&d, &t)?.clone();
            let qualifier = alias.as_ref().map(|a| a.name.value.to_ascii_lowercase()).unwrap_or(t);
            uses.push(TableUse { qualifier, def });
        }
    }
    Some(uses)
}

/// Decides where a SELECT runs.
pub fn route_query(snap: &CatalogSnapshot, db: Option<&str>, q: &Query, any_dn: u32) -> Result<Route> {
    let Some(tables) = referenced_tables(snap, db, q)? else {
        return Ok(Route::Distributed);
    };
    if tables.is_empty() {
        return Ok(Route::SingleDn { dn: any_dn, partition: None });
    }
    let defs: Vec<Arc<TableDef>> = tables.iter().filter_map(|(d, t)| snap.table(d, t).cloned()).collect();
    let partitioned: Vec<&Arc<TableDef>> = defs.iter().filter(|t| t.is_partitioned()).collect();
    let single_dns: BTreeSet<u32> = defs
        .iter()
        .filter(|t| matches!(t.partitioning, crate::catalog::Partitioning::Single))
        .map(|t| t.partitions[0].dn)
        .collect();
    if single_dns.len() > 1 {
        return Ok(Route::Distributed);
    }
    if partitioned.is_empty() {
        return Ok(Route::SingleDn { dn: single_dns.into_iter().next().unwrap_or(any_dn), partition: None });
    }
    // Every partitioned reference must sit in the top-level FROM clause and
    // be pinned to the same partition of one table group.
    let groups: BTreeSet<&str> = partitioned.iter().map(|t| t.table_group.as_str()).collect();
    if groups.len() != 1 {
        return Ok(Route::Distributed);
    }
    let Some(uses) = from_uses(snap, db, q) else {
        return Ok(Route::Distributed);
    };
    let part_uses: Vec<&TableUse> = uses.iter().filter(|u| u.def.is_partitioned()).collect();
    if part_uses.len() != partitioned.len() {
        return Ok(Route::Distributed); // some partitioned table sits in a subquery
    }
    let SetExpr::Select(sel) = q.body.as_ref() else {
        return Ok(Route::Distributed);
    };
    let Some(selection) = &sel.selection else {
        return Ok(Route::Distributed);
    };
    let mut eqs = Vec::new();
    equalities(selection, &mut eqs);
    let mut partition = None;
    for u in &part_uses {
        let keys = u.def.partitioning.key_columns();
        let mut vals: BTreeMap<&str, Option<String>> = BTreeMap::new();
        for ((qual, col), v) in &eqs {
            let mine = if qual.is_empty() { part_uses.len() == 1 } else { *qual == u.qualifier };
            if mine && keys.contains(col) {
                vals.insert(col.as_str(), v.clone());
            }
        }
        if vals.len() != keys.len() {
            return Ok(Route::Distributed);
        }
        let key: Vec<Option<&str>> = keys.iter().map(|k| vals[k.as_str()].as_deref()).collect();
        let Ok(p) = crate::sharding::partition_for(&u.def, &key) else {
            return Ok(Route::Distributed);
        };
        if partition.is_some_and(|x| x != p) {
            return Ok(Route::Distributed);
        }
        partition = Some(p);
    }
    let p = partition.expect("at least one partitioned table");
    let dn = part_uses[0].def.partitions[p].dn;
    if single_dns.iter().any(|d| *d != dn) {
        return Ok(Route::Distributed);
    }
    Ok(Route::SingleDn { dn, partition: Some(p) })
}

/// Rewrites logical table names to physical ones for a statement that runs
/// on DN `dn`: partitioned tables take partition `partition`, broadcast
/// tables the copy on `dn`. Each table keeps its logical name as alias so
/// qualified column references still resolve.
pub struct PhysicalNames<'a> {
    pub snap: &'a CatalogSnapshot,
    pub db: Option<&'a str>,
    pub dn: u32,
    pub partition: Option<usize>,
    /// Add the logical name as alias (SELECT, UPDATE); DELETE cannot alias
    /// on MariaDB 10.11.
    pub alias: bool,
}

impl PhysicalNames<'_> {
    fn physical(&self, name: &ObjectName) -> Option<(String, String, String)> {
        let (d, t) = resolve_name(name, self.db).ok()?;
        let def = self.snap.table(&d, &t)?;
        let phys = if def.is_partitioned() {
            &def.partitions.get(self.partition?)?.phys_table
        } else if def.is_broadcast() {
            &def.partitions.iter().find(|p| p.dn == self.dn)?.phys_table
        } else {
            &def.partitions[0].phys_table
        };
        Some((d, phys.clone(), t))
    }
}

impl VisitorMut for PhysicalNames<'_> {
    type Break = ();
    fn pre_visit_table_factor(&mut self, f: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table { name, alias, .. } = f {
            if let Some((d, phys, logical)) = self.physical(name) {
                name_physical(name, alias, d, phys, self.alias.then_some(logical));
            }
        }
        ControlFlow::Continue(())
    }
    fn pre_visit_value(&mut self, v: &mut ValueWithSpan) -> ControlFlow<()> {
        escape_value(v);
        ControlFlow::Continue(())
    }
}

/// Points a table reference at `` `db`.`phys` ``, giving it `logical` as
/// alias when it has none: how [`PhysicalNames`] (and the plan cache's
/// templates, [`plan_cache`]) render a physical table.
pub(crate) fn name_physical(
    name: &mut ObjectName,
    alias: &mut Option<TableAlias>,
    db: String,
    phys: String,
    logical: Option<String>,
) {
    *name = ObjectName::from(vec![Ident::with_quote('`', db), Ident::with_quote('`', phys)]);
    if let (None, Some(logical)) = (&alias, logical) {
        *alias = Some(TableAlias { explicit: true, name: Ident::with_quote('`', logical), columns: vec![], at: None });
    }
}

/// Applies [`PhysicalNames`] to any AST node; string literals are escaped
/// for the DN as by [`escape_strings`].
pub fn to_physical<T: VisitMut>(node: &mut T, names: &mut PhysicalNames<'_>) {
    let _ = node.visit(names);
}

/// Makes every string literal in `node` print as MariaDB must read it.
/// sqlparser keeps a literal unescaped (`'a\\b'` holds `a\b`) but prints it
/// with only its quotes doubled, so a DN would read the backslash as the
/// start of an escape (`\b`: a backspace). A literal holding a backslash or
/// NUL is replaced by its text quoted with [`crate::dn::quote_str`]. Apply
/// to the copy of a statement about to be sent to a DN, last: the
/// replacement is no longer a string literal to the CN.
pub fn escape_strings<T: VisitMut>(node: &mut T) {
    struct Escape;
    impl VisitorMut for Escape {
        type Break = ();
        fn pre_visit_value(&mut self, v: &mut ValueWithSpan) -> ControlFlow<()> {
            escape_value(v);
            ControlFlow::Continue(())
        }
    }
    let _ = node.visit(&mut Escape);
}

/// A node's SQL text for a DN: a copy, with [`escape_strings`] applied.
pub fn dn_text<T: VisitMut + Clone + std::fmt::Display>(node: &T) -> String {
    let mut n = node.clone();
    escape_strings(&mut n);
    n.to_string()
}

fn escape_value(v: &mut ValueWithSpan) {
    if let Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) = &v.value {
        if s.contains(['\\', '\0']) {
            v.value = Value::Placeholder(crate::dn::quote_str(s));
        }
    }
}
