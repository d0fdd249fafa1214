//! Multi-table UPDATE and DELETE (MySQL 8.0 reference, 15.2.17 and
//! 15.2.2): `UPDATE t JOIN u ON … SET t.c = u.d WHERE …`, `DELETE t
//! FROM t JOIN u ON … WHERE …`, `DELETE FROM t USING t JOIN u …`.
//!
//! The join is a query like any other: the CN runs `SELECT <target primary
//! keys>, <new values> FROM <the statement's tables> WHERE … FOR UPDATE`
//! (which locks the rows it reads, as MySQL's multi-table statements do),
//! then writes each target row by its primary key through the single-table
//! path (pruned to its partition, global indexes maintained), all in one
//! transaction: the session's, else one of its own. A row the join matches
//! more than once is written once, with its first match's values, as
//! MySQL does; the values are computed from the rows as they were before
//! the statement (MySQL does not promise an order of the assignments in a
//! multi-table UPDATE). An UPDATE may set the columns of several tables
//! (`SET t.a = 1, u.b = t.c`): one SELECT reads every target's keys and
//! values, then each target is written in turn. A target needs a primary
//! key of its own.

use super::{begin_own, end_own, execute};
use crate::catalog::{CatalogSnapshot, TableDef, IMPLICIT_PK};
use crate::error::{code, CnError, Result};
use crate::planner::resolve_name;
use crate::session::sink::CollectSink;
use crate::session::Session;
use datafusion::sql::sqlparser::ast::{
    Assignment, AssignmentTarget, BinaryOperator, Delete, Expr, FromTable, Ident, ObjectName, ObjectNamePart,
    OrderByExpr, Statement, TableFactor, TableWithJoins, Update, UpdateTableFromKind, Value,
};
use std::collections::HashSet;
use std::sync::Arc;

/// Rows written per statement of the second step (a DELETE's IN list).
const KEYS_PER_WRITE: usize = 1000;

/// A table of the statement's FROM: the name it is written by, what
/// qualifies its columns (its alias, else its name), and its definition.
struct Relation {
    factor: TableFactor,
    qualifier: String,
    def: Arc<TableDef>,
}

/// The tables of `from` (derived tables are not targets and are skipped).
fn relations(s: &Session, snap: &CatalogSnapshot, from: &[&TableWithJoins]) -> Result<Vec<Relation>> {
    let mut out = Vec::new();
    for t in from {
        for factor in std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)) {
            if let TableFactor::Table { name, alias, .. } = factor {
                let (db, table) = resolve_name(name, s.db.as_deref())?;
                let def = snap.table(&db, &table).cloned().ok_or_else(|| CnError::no_such_table(&db, &table))?;
                let qualifier = alias.as_ref().map_or(table.clone(), |a| a.name.value.to_ascii_lowercase());
                out.push(Relation { factor: factor.clone(), qualifier, def });
            }
        }
    }
    Ok(out)
}

/// What qualifies the columns of `f`: its alias, else its name.
fn qualifier(f: &TableFactor) -> String {
    match f {
        TableFactor::Table { alias: Some(a), .. } => a.name.value.clone(),
        TableFactor::Table { name, .. } => name.0.last().map(|p| p.to_string()).unwrap_or_default(),
        other => other.to_string(),
    }
}

/// The relation `qualifier` names (1109 when none does).
fn by_qualifier<'a>(rels: &'a [Relation], qualifier: &str, what: &str) -> Result<&'a Relation> {
    let q = qualifier.trim_matches('`').to_ascii_lowercase();
    rels.iter()
        .find(|r| r.qualifier == q)
        .ok_or_else(|| CnError::mysql(code::ER_UNKNOWN_TABLE, format!("Unknown table '{q}' in {what}")))
}

/// The target's primary key columns (1235 for the hidden one).
fn primary_key<'a>(r: &'a Relation, what: &str) -> Result<&'a [String]> {
    let pk = &r.def.primary_key;
    if pk.is_empty() || pk.iter().any(|c| c == IMPLICIT_PK) {
        return Err(CnError::unsupported(format!("multi-table {what} of a table without a primary key")));
    }
    Ok(pk)
}

fn ident(name: &str) -> Expr {
    Expr::Identifier(Ident::with_quote('`', name))
}

/// A value as the first step's SELECT sent it, as a literal: its text, or
/// a hex literal of bytes that are not UTF-8.
pub(super) fn literal(v: &Option<Vec<u8>>) -> Expr {
    match v {
        None => Expr::value(Value::Null),
        Some(b) => match std::str::from_utf8(b) {
            Ok(t) => Expr::value(Value::SingleQuotedString(t.to_string())),
            Err(_) => Expr::value(Value::HexStringLiteral(crate::planner::split::hex_digits(b))),
        },
    }
}

/// `k1 = v1 AND k2 = v2 …` of one row's primary key.
fn key_condition(pk: &[String], values: &[Option<Vec<u8>>]) -> Expr {
    pk.iter()
        .zip(values)
        .map(|(c, v)| Expr::BinaryOp { left: Box::new(ident(c)), op: BinaryOperator::Eq, right: Box::new(literal(v)) })
        .reduce(|a, b| Expr::BinaryOp { left: Box::new(a), op: BinaryOperator::And, right: Box::new(b) })
        .expect("a primary key has a column")
}

/// `pk IN (…)` (or `(k1, k2) IN ((…), …)`) of the keys `keys`, each the
/// values of the columns `pk` as the first step's SELECT sent them.
pub(super) fn key_in_list<'k>(pk: &[String], keys: impl Iterator<Item = &'k [Option<Vec<u8>>]>) -> Expr {
    let (target, list) = match pk {
        [one] => (ident(one), keys.map(|k| literal(&k[0])).collect()),
        _ => (
            Expr::Tuple(pk.iter().map(|c| ident(c)).collect()),
            keys.map(|k| Expr::Tuple(k.iter().map(literal).collect())).collect(),
        ),
    };
    Expr::InList { expr: Box::new(target), list, negated: false }
}

/// Runs one write of the second step through the single-table path; its
/// affected rows.
pub(super) async fn write(s: &mut Session, stmt: Statement) -> Result<u64> {
    let mut ok = CollectSink::default();
    Box::pin(execute(s, stmt, &mut ok)).await?;
    Ok(ok.affected)
}

/// The first step's `SELECT columns FROM from [WHERE w] [ORDER BY …]
/// [LIMIT …] FOR UPDATE`, as text for the CN's parser: its literals
/// escaped as for a DN (a backslash would start an escape).
pub(super) fn locking_select(
    columns: &str,
    from: &str,
    w: Option<&Expr>,
    order_by: &[OrderByExpr],
    limit: Option<&Expr>,
) -> String {
    let (mut w, mut order_by) = (w.cloned(), order_by.to_vec());
    crate::planner::escape_strings(&mut w);
    crate::planner::escape_strings(&mut order_by);
    crate::gsi::maintain::locking_select_of(columns, from, w.as_ref(), &order_by, limit)
}

/// A single-table FROM of `r`, as written (with its alias).
fn alone(r: &Relation) -> TableWithJoins {
    TableWithJoins { relation: r.factor.clone(), joins: vec![] }
}

/// The first step: `SELECT <items> FROM <from> [WHERE w] [ORDER BY …]
/// [LIMIT …] FOR UPDATE`, run through the CN.
async fn select(
    s: &mut Session,
    items: &[String],
    from: &[&TableWithJoins],
    w: Option<&Expr>,
    order_by: &[OrderByExpr],
    limit: Option<&Expr>,
) -> Result<CollectSink> {
    let from: Vec<String> = from.iter().map(|t| crate::planner::dn_text(*t)).collect();
    let sql = locking_select(&items.join(", "), &from.join(", "), w, order_by, limit);
    let mut rows = CollectSink::default();
    Box::pin(s.execute(&sql, &mut rows)).await?;
    Ok(rows)
}

/// `UPDATE <tables> SET … [WHERE …]` over more than one table.
///
/// Also a single-table UPDATE whose values or WHERE read a sharded table
/// ([`super::reads_beyond_partition`]), which may have ORDER BY and LIMIT.
pub async fn update(s: &mut Session, snap: &CatalogSnapshot, u: Update) -> Result<(u64, u64)> {
    let single = u.table.joins.is_empty() && u.from.is_none();
    if !single && (!u.order_by.is_empty() || u.limit.is_some()) {
        return Err(CnError::mysql(code::ER_WRONG_USAGE, "Incorrect usage of multi-table UPDATE and ORDER BY / LIMIT"));
    }
    let mut from: Vec<&TableWithJoins> = vec![&u.table];
    if let Some(UpdateTableFromKind::BeforeSet(f) | UpdateTableFromKind::AfterSet(f)) = &u.from {
        from.extend(f.iter());
    }
    let rels = relations(s, snap, &from)?;
    // The targets: the tables the assignments name, in their order, each
    // with its assignments.
    let mut targets: Vec<UpdateTarget> = Vec::new();
    for a in &u.assignments {
        let AssignmentTarget::ColumnName(ObjectName(parts)) = &a.target else {
            return Err(CnError::parse("tuple assignment in UPDATE"));
        };
        let names: Vec<String> = parts
            .iter()
            .map(|p| match p {
                ObjectNamePart::Identifier(i) => i.value.to_ascii_lowercase(),
                other => other.to_string(),
            })
            .collect();
        let (rel, column) = match names.as_slice() {
            [q, c] | [_, q, c] => (by_qualifier(&rels, q, "MULTI UPDATE")?, c.clone()),
            [c] => {
                let having: Vec<&Relation> = rels.iter().filter(|r| r.def.column(c).is_some()).collect();
                match having.as_slice() {
                    [one] => (*one, c.clone()),
                    [] => {
                        return Err(CnError::mysql(
                            code::ER_BAD_FIELD_ERROR,
                            format!("Unknown column '{c}' in 'field list'"),
                        ))
                    }
                    _ => {
                        return Err(CnError::mysql(
                            code::ER_NON_UNIQ_ERROR,
                            format!("Column '{c}' in field list is ambiguous"),
                        ))
                    }
                }
            }
            _ => return Err(CnError::parse("a column name in SET")),
        };
        if rel.def.column(&column).is_none() {
            return Err(CnError::mysql(code::ER_BAD_FIELD_ERROR, format!("Unknown column '{column}' in 'field list'")));
        }
        match targets.iter_mut().find(|t| std::ptr::eq(t.rel, rel)) {
            Some(t) => {
                t.columns.push(column);
                t.values.push(&a.value);
            }
            None => targets.push(UpdateTarget {
                rel,
                pk: primary_key(rel, "UPDATE")?.to_vec(),
                columns: vec![column],
                values: vec![&a.value],
                all: vec![],
            }),
        }
    }
    if targets.is_empty() {
        return Err(CnError::parse("UPDATE without SET"));
    }
    // One SELECT for all targets: each one's primary key, new values and,
    // when its row moves, all its columns.
    let mut items: Vec<String> = Vec::new();
    for t in targets.iter_mut() {
        let q = crate::dn::quote_ident(&t.rel.qualifier);
        items.extend(t.pk.iter().map(|c| format!("{q}.{}", crate::dn::quote_ident(c))));
        items.extend(t.values.iter().map(|v| format!("({})", crate::planner::dn_text(*v))));
        // A new primary key where the row's place depends on it
        // (partitioned by it, or in a global index): the row moves,
        // deleted and inserted anew with all its columns, read here too.
        let moving = t.columns.iter().any(|c| t.pk.contains(c))
            && crate::gsi::maintain::update_needs_maintenance(&t.rel.def, &t.columns);
        if moving {
            t.all = t.rel.def.visible_columns().map(|c| c.name.clone()).collect();
        }
        items.extend(t.all.iter().map(|c| format!("{q}.{}", crate::dn::quote_ident(c))));
    }
    let own = begin_own(s).await?;
    let run = async {
        let rows = select(s, &items, &from, u.selection.as_ref(), &u.order_by, u.limit.as_ref()).await?;
        let mut affected = 0;
        let mut at = 0;
        for t in &targets {
            let width = t.pk.len() + t.columns.len() + t.all.len();
            let mut seen = HashSet::new();
            for row in &rows.rows {
                let (key, rest) = row[at..at + width].split_at(t.pk.len());
                let (values, old) = rest.split_at(t.columns.len());
                // A target row an outer join left empty is no row; a row
                // the join matches again keeps its first match's values.
                if key.iter().any(Option::is_none) || !seen.insert(key.to_vec()) {
                    continue;
                }
                affected += update_row(s, &u, t, key, values, old).await?;
            }
            at += width;
        }
        Ok((affected, 0))
    }
    .await;
    end_own(s, own, run).await
}

/// A table a multi-table UPDATE writes: its relation and primary key, the
/// columns its assignments set and their values, and, when its rows move
/// ([`move_row`]), all its visible columns.
struct UpdateTarget<'a> {
    rel: &'a Relation,
    pk: Vec<String>,
    columns: Vec<String>,
    values: Vec<&'a Expr>,
    all: Vec<String>,
}

/// Writes one row of target `t` (primary key `key`) with the `values` of
/// its assignments: by its key through the single-table path, or moved
/// when its new key decides its place (`old`: all its columns). Its
/// affected rows.
async fn update_row(
    s: &mut Session,
    u: &Update,
    t: &UpdateTarget<'_>,
    key: &[Option<Vec<u8>>],
    values: &[Option<Vec<u8>>],
    old: &[Option<Vec<u8>>],
) -> Result<u64> {
    if !t.all.is_empty() {
        let mut new = old.to_vec();
        for (c, v) in t.columns.iter().zip(values) {
            if let Some(i) = t.all.iter().position(|a| a == c) {
                new[i] = v.clone();
            }
        }
        let new_key: Vec<Option<Vec<u8>>> =
            t.pk.iter().map(|k| t.all.iter().position(|a| a == k).and_then(|i| new[i].clone())).collect();
        if new_key == key && new == old {
            return Ok(0);
        }
        let name = match &t.rel.factor {
            TableFactor::Table { name, .. } => crate::planner::dn_text(name),
            other => other.to_string(),
        };
        return move_row(s, &name, &t.pk, key, &t.all, &new).await;
    }
    let one = Update {
        table: alone(t.rel),
        assignments: t
            .columns
            .iter()
            .zip(values)
            .map(|(c, v)| Assignment {
                target: AssignmentTarget::ColumnName(ObjectName::from(vec![Ident::with_quote('`', c)])),
                value: literal(v),
            })
            .collect(),
        from: None,
        selection: Some(key_condition(&t.pk, key)),
        order_by: vec![],
        limit: None,
        ..u.clone()
    };
    write(s, Statement::Update(one)).await
}

/// Moves the row of primary key `key` in table `name`: deletes it and
/// inserts `new` (the values of `columns`) in its place, each through the
/// single-table path, which routes the new row by its new key and keeps
/// the global indexes. One changed row, as MySQL counts an UPDATE's.
async fn move_row(
    s: &mut Session,
    name: &str,
    pk: &[String],
    key: &[Option<Vec<u8>>],
    columns: &[String],
    new: &[Option<Vec<u8>>],
) -> Result<u64> {
    let mut ok = CollectSink::default();
    let delete = format!("DELETE FROM {name} WHERE {}", crate::planner::dn_text(&key_condition(pk, key)));
    Box::pin(s.execute(&delete, &mut ok)).await?;
    let cols: Vec<String> = columns.iter().map(|c| crate::dn::quote_ident(c)).collect();
    let values: Vec<String> = new.iter().map(|v| crate::planner::dn_text(&literal(v))).collect();
    let insert = format!("INSERT INTO {name} ({}) VALUES ({})", cols.join(", "), values.join(", "));
    Box::pin(s.execute(&insert, &mut ok)).await?;
    Ok(1)
}

/// `DELETE t[, u] FROM <tables> [WHERE …]` or `DELETE FROM t[, u] USING
/// <tables> [WHERE …]`.
///
/// Also a single-table DELETE whose WHERE reads a sharded table
/// ([`super::reads_beyond_partition`]), which may have ORDER BY and LIMIT.
pub async fn delete(s: &mut Session, snap: &CatalogSnapshot, d: Delete) -> Result<(u64, u64)> {
    let from_tables = match &d.from {
        FromTable::WithFromKeyword(f) | FromTable::WithoutKeyword(f) => f,
    };
    let single = d.tables.is_empty() && d.using.is_none() && from_tables.len() == 1 && from_tables[0].joins.is_empty();
    if !single && (!d.order_by.is_empty() || d.limit.is_some()) {
        return Err(CnError::mysql(code::ER_WRONG_USAGE, "Incorrect usage of multi-table DELETE and ORDER BY / LIMIT"));
    }
    // The tables rows come from, and the names of the targets: `DELETE
    // FROM t USING …`, `DELETE t FROM …`, or one table's `DELETE FROM t
    // WHERE <subquery>` ([`super::reads_beyond_partition`]).
    let (source, target_names): (Vec<&TableWithJoins>, Vec<String>) = match &d.using {
        Some(using) => (using.iter().collect(), from_tables.iter().map(|t| qualifier(&t.relation)).collect()),
        None if d.tables.is_empty() => {
            (from_tables.iter().collect(), from_tables.iter().map(|t| qualifier(&t.relation)).collect())
        }
        None => (from_tables.iter().collect(), d.tables.iter().map(|n| n.to_string()).collect()),
    };
    let rels = relations(s, snap, &source)?;
    let mut targets: Vec<(&Relation, Vec<String>)> = Vec::new();
    for name in &target_names {
        // `t`, `db.t` or `t.*`: the last name part before any `.*`.
        let bare = name.trim_end_matches(".*");
        let q = bare.rsplit('.').next().unwrap_or(bare);
        let r = by_qualifier(&rels, q, "MULTI DELETE")?;
        targets.push((r, primary_key(r, "DELETE")?.to_vec()));
    }
    let mut items = Vec::new();
    for (r, pk) in &targets {
        let q = crate::dn::quote_ident(&r.qualifier);
        items.extend(pk.iter().map(|c| format!("{q}.{}", crate::dn::quote_ident(c))));
    }
    let own = begin_own(s).await?;
    let run = async {
        let rows = select(s, &items, &source, d.selection.as_ref(), &d.order_by, d.limit.as_ref()).await?;
        let mut affected = 0;
        let mut at = 0;
        for (r, pk) in &targets {
            let mut seen = HashSet::new();
            let keys: Vec<&[Option<Vec<u8>>]> = rows
                .rows
                .iter()
                .map(|row| &row[at..at + pk.len()])
                // A target row an outer join left empty is no row.
                .filter(|k| k.iter().all(Option::is_some))
                .filter(|k| seen.insert(k.to_vec()))
                .collect();
            at += pk.len();
            for chunk in keys.chunks(KEYS_PER_WRITE) {
                let one = Delete {
                    tables: vec![],
                    from: FromTable::WithFromKeyword(vec![alone(r)]),
                    using: None,
                    selection: Some(key_in_list(pk, chunk.iter().copied())),
                    order_by: vec![],
                    limit: None,
                    ..d.clone()
                };
                affected += write(s, Statement::Delete(one)).await?;
            }
        }
        Ok((affected, 0))
    }
    .await;
    end_own(s, own, run).await
}
