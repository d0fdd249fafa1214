//! DML: INSERT (multi-row, split per shard; IGNORE, REPLACE, ON DUPLICATE
//! KEY UPDATE, INSERT … SELECT), UPDATE and DELETE with partition pruning.
//! A write that touches several DNs runs as one distributed transaction
//! ([`crate::txn`]). LOAD DATA LOCAL INFILE: [`load_data`].

pub mod load_data;
mod multi_table;

use crate::catalog::{CatalogSnapshot, TableDef};
use crate::error::{code, CnError, Result};
use crate::planner::{self, literal_text, resolve_name, PhysicalNames};
use crate::session::sink::{CollectSink, ResultSink};
use crate::session::Session;
use crate::sharding::partition_for;
use crate::txn::deadlock::OwnerGuard;
use crate::txn::{Txn, ViewConn};
use datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken;
use datafusion::sql::sqlparser::ast::{
    AssignmentTarget, Expr, FromTable, Ident, ObjectName, ObjectNamePart, Parens, SetExpr, Statement, TableFactor,
    TableObject, Value, Values,
};
use mysql_async::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Runs INSERT, UPDATE or DELETE.
pub async fn execute(s: &mut Session, stmt: Statement, sink: &mut dyn ResultSink) -> Result<()> {
    let _running = s.cluster.enter_statement();
    let snap = s.cluster.catalog.snapshot();
    let (affected, last_id) = match stmt {
        Statement::Insert(ins) => insert(s, &snap, ins).await?,
        Statement::Update(u) => update(s, &snap, u).await?,
        Statement::Delete(d) => delete(s, &snap, d).await?,
        _ => return Err(CnError::internal("not DML")),
    };
    if last_id != 0 {
        s.last_insert_id = last_id;
    }
    sink.ok(affected, last_id, "").await
}

fn number(v: u64) -> Expr {
    Expr::value(Value::Number(v.to_string(), false))
}

fn physical_name(db: &str, phys: &str) -> ObjectName {
    ObjectName(vec![
        ObjectNamePart::Identifier(Ident::with_quote('`', db)),
        ObjectNamePart::Identifier(Ident::with_quote('`', phys)),
    ])
}

/// The table a statement writes (`what`: INSERT, UPDATE, DELETE). Errors:
/// 1049, 1146, and 1288 for a view (views are read-only on the CN).
fn table_of(snap: &CatalogSnapshot, s: &Session, name: &ObjectName, what: &str) -> Result<Arc<TableDef>> {
    let (db, t) = resolve_name(name, s.db.as_deref())?;
    if snap.database(&db).is_none() {
        return Err(CnError::bad_db(&db));
    }
    if snap.view(&db, &t).is_some() {
        return Err(CnError::mysql(
            code::ER_NON_UPDATABLE_TABLE,
            format!("The target table {t} of the {what} is not updatable"),
        ));
    }
    snap.table(&db, &t).cloned().ok_or_else(|| CnError::no_such_table(&db, &t))
}

async fn insert(
    s: &mut Session,
    snap: &CatalogSnapshot,
    mut ins: datafusion::sql::sqlparser::ast::Insert,
) -> Result<(u64, u64)> {
    let TableObject::TableName(name) = &ins.table else {
        return Err(CnError::unsupported("INSERT INTO TABLE FUNCTION"));
    };
    let def = table_of(snap, s, name, "INSERT")?;
    // Target columns.
    let mut cols: Vec<String> = if !ins.assignments.is_empty() {
        ins.assignments
            .iter()
            .map(|a| match &a.target {
                AssignmentTarget::ColumnName(n) => Ok(n.to_string().trim_matches('`').to_ascii_lowercase()),
                AssignmentTarget::Tuple(_) => Err(CnError::parse("tuple assignment in INSERT … SET")),
            })
            .collect::<Result<_>>()?
    } else if ins.columns.is_empty() {
        def.visible_columns().map(|c| c.name.clone()).collect()
    } else {
        ins.columns.iter().map(|c| c.to_string().trim_matches('`').to_ascii_lowercase()).collect()
    };
    for c in &cols {
        if def.column(c).is_none() {
            return Err(CnError::mysql(code::ER_BAD_FIELD_ERROR, format!("Unknown column '{c}' in 'field list'")));
        }
    }
    // Rows.
    let mut rows: Vec<Vec<Expr>> = if !ins.assignments.is_empty() {
        vec![ins.assignments.iter().map(|a| a.value.clone()).collect()]
    } else {
        let src = ins.source.take().ok_or_else(|| CnError::parse("INSERT without VALUES"))?;
        match *src.body {
            SetExpr::Values(v) if src.order_by.is_none() => v.rows.into_iter().map(|p| p.content).collect(),
            _ => {
                // INSERT … SELECT: run the SELECT, then insert its rows.
                let mut c = CollectSink::default();
                Box::pin(s.execute(&src.to_string(), &mut c)).await?;
                c.rows.iter().map(|r| r.iter().map(multi_table::literal).collect()).collect()
            }
        }
    };
    // Values with a subquery over a sharded table (`VALUES (1, (SELECT
    // COUNT(*) FROM u))`): sent with the row to its partition, the
    // subquery would read that DN alone; the CN computes the rows first.
    // One SELECT per row, so that rows do not share a UNION's types.
    if reads_beyond_partition(snap, s, rows.iter().flatten()) {
        for r in rows.iter_mut() {
            let select = format!("SELECT {}", r.iter().map(planner::dn_text).collect::<Vec<_>>().join(", "));
            let mut c = CollectSink::default();
            Box::pin(s.execute(&select, &mut c)).await?;
            if let Some(values) = c.rows.first() {
                *r = values.iter().map(multi_table::literal).collect();
            }
        }
    }
    ins.assignments.clear();
    for (i, r) in rows.iter().enumerate() {
        if r.len() != cols.len() {
            return Err(CnError::mysql(
                code::ER_WRONG_VALUE_COUNT_ON_ROW,
                format!("Column count doesn't match value count at row {}", i + 1),
            ));
        }
    }
    // AUTO_INCREMENT (and the implicit key): ids from the metadb sequence.
    let mut first_id = 0;
    if let Some(ai) = def.auto_increment_column() {
        let pos = match cols.iter().position(|c| *c == ai.name) {
            Some(p) => p,
            None => {
                cols.push(ai.name.clone());
                for r in rows.iter_mut() {
                    r.push(Expr::value(Value::Null));
                }
                cols.len() - 1
            }
        };
        let need: Vec<usize> = rows
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                matches!(literal_text(&r[pos]), Some(None))
                    || matches!(literal_text(&r[pos]), Some(Some(ref v)) if v == "0")
            })
            .map(|(i, _)| i)
            .collect();
        if !need.is_empty() {
            let start = s.cluster.next_ids(&def.db, &def.name, need.len() as u64).await?;
            first_id = start;
            for (k, i) in need.into_iter().enumerate() {
                rows[i][pos] = number(start + k as u64);
            }
        }
        let max_explicit =
            rows.iter().filter_map(|r| literal_text(&r[pos]).flatten()).filter_map(|v| v.parse::<u64>().ok()).max();
        if let Some(m) = max_explicit {
            s.cluster.observe_id(&def.db, &def.name, m).await?;
        }
    }
    // Values the CN routes by (the partition key; with global indexes every
    // column) must be literals: a DN computes the others.
    let routed: Vec<usize> = if def.global_indexes.is_empty() {
        let keys = def.partitioning.key_columns();
        cols.iter().enumerate().filter(|(_, c)| keys.contains(c)).map(|(i, _)| i).collect()
    } else {
        (0..cols.len()).collect()
    };
    if def.is_partitioned() || !def.global_indexes.is_empty() {
        evaluate_on_dn(s, &mut rows, &routed).await?;
    }
    if !def.global_indexes.is_empty() {
        let n = crate::gsi::maintain::insert(s, &def, &ins, &cols, rows).await?;
        return Ok((n, first_id));
    }
    // Route each row.
    let keys = def.partitioning.key_columns();
    let key_pos: Vec<usize> = keys
        .iter()
        .map(|k| {
            cols.iter().position(|c| c == k).ok_or_else(|| {
                CnError::mysql(
                    1364,
                    format!("Field '{k}' doesn't have a default value; the partition key is needed to route the row"),
                )
            })
        })
        .collect::<Result<_>>()?;
    let mut by_part: BTreeMap<usize, Vec<Vec<Expr>>> = BTreeMap::new();
    for (n, r) in rows.into_iter().enumerate() {
        let p = if def.is_partitioned() {
            let vals: Vec<Option<String>> = key_pos
                .iter()
                .map(|&i| {
                    literal_text(&r[i])
                        .ok_or_else(|| CnError::unsupported(format!("a non-literal partition key value ({})", r[i])))
                })
                .collect::<Result<_>>()?;
            let key: Vec<Option<&str>> = vals.iter().map(|v| v.as_deref()).collect();
            crate::sharding::partition_for_write(&def, &key, n + 1)?
        } else {
            0
        };
        by_part.entry(p).or_default().push(r);
    }
    let targets: Vec<(usize, Vec<Vec<Expr>>)> = if def.is_broadcast() {
        let all: Vec<Vec<Expr>> = by_part.into_values().flatten().collect();
        (0..def.partitions.len()).map(|p| (p, all.clone())).collect()
    } else {
        by_part.into_iter().collect()
    };
    let column_idents: Vec<ObjectName> =
        cols.iter().map(|c| ObjectName::from(vec![Ident::with_quote('`', c)])).collect();
    let mut work = Vec::new();
    for (p, rows) in targets {
        let part = &def.partitions[p];
        let mut pi = ins.clone();
        pi.table = TableObject::TableName(physical_name(&def.db, &part.phys_table));
        pi.columns = column_idents.clone();
        let mut src = datafusion::sql::sqlparser::ast::Query::clone(&empty_values_query());
        src.body = Box::new(SetExpr::Values(Values {
            explicit_row: false,
            value_keyword: false,
            rows: rows
                .into_iter()
                .map(|r| Parens {
                    opening_token: AttachedToken::empty(),
                    content: r,
                    closing_token: AttachedToken::empty(),
                })
                .collect(),
        }));
        pi.source = Some(Box::new(src));
        let mut stmt = Statement::Insert(pi);
        planner::escape_strings(&mut stmt);
        work.push((part.dn, stmt.to_string()));
    }
    let (mut affected, _) = run_writes(s, work).await?;
    if def.is_broadcast() {
        affected /= def.partitions.len().max(1) as u64;
    }
    Ok((affected, first_id))
}

/// Replaces the values in columns `which` of `rows` that are not literals
/// (`UUID()`, `1 + 1`, `CONCAT('a', 'b')`) by the values a DN computes for
/// them, all in one `SELECT` (at most one round trip per statement).
/// Errors: the DN's, e.g. 1054 for a column reference.
async fn evaluate_on_dn(s: &Session, rows: &mut [Vec<Expr>], which: &[usize]) -> Result<()> {
    let mut at = Vec::new();
    for (r, row) in rows.iter().enumerate() {
        for &i in which {
            if literal_text(&row[i]).is_none() && !is_default(&row[i]) {
                at.push((r, i));
            }
        }
    }
    if at.is_empty() {
        return Ok(());
    }
    let items: Vec<String> = at.iter().map(|&(r, i)| planner::dn_text(&rows[r][i])).collect();
    let dn = s.cluster.any_dn();
    let d = s.cluster.dn(dn)?.clone();
    let mut c = s.source().get(dn).await?;
    let row: Option<mysql_async::Row> =
        c.query_first(format!("SELECT {}", items.join(", "))).await.map_err(|e| d.err(e))?;
    let values = row.ok_or_else(|| CnError::internal("a SELECT of values returned no row"))?.unwrap();
    for ((r, i), v) in at.into_iter().zip(values) {
        rows[r][i] = match crate::txn::value_bytes(v) {
            None => Expr::value(Value::Null),
            Some(b) => Expr::value(Value::SingleQuotedString(String::from_utf8_lossy(&b).into_owned())),
        };
    }
    Ok(())
}

/// `DEFAULT` in a VALUES row.
fn is_default(e: &Expr) -> bool {
    matches!(e, Expr::Identifier(i) if i.quote_style.is_none() && i.value.eq_ignore_ascii_case("DEFAULT"))
}

fn empty_values_query() -> datafusion::sql::sqlparser::ast::Query {
    let mut stmts = datafusion::sql::sqlparser::parser::Parser::parse_sql(
        &datafusion::sql::sqlparser::dialect::MySqlDialect {},
        "VALUES (1)",
    )
    .expect("static SQL parses");
    match stmts.pop() {
        Some(Statement::Query(q)) => *q,
        _ => unreachable!("VALUES parses as a query"),
    }
}

/// Partitions a WHERE clause may touch: equalities and IN lists on the
/// partition key pin them; anything else touches all.
fn target_partitions(def: &TableDef, selection: Option<&Expr>) -> BTreeSet<usize> {
    let all: BTreeSet<usize> = (0..def.partitions.len()).collect();
    if !def.is_partitioned() {
        return all;
    }
    let Some(sel) = selection else { return all };
    let keys = def.partitioning.key_columns();
    let mut vals: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    let mut eqs = Vec::new();
    planner::equalities(sel, &mut eqs);
    for ((_, col), v) in eqs {
        vals.insert(col, vec![v]);
    }
    planner::in_lists(sel, &mut vals);
    if keys.len() == 1 {
        if let Some(vs) = vals.get(&keys[0]) {
            let mut set = BTreeSet::new();
            for v in vs {
                match partition_for(def, &[v.as_deref()]) {
                    Ok(p) => {
                        set.insert(p);
                    }
                    Err(_) => return all,
                }
            }
            return set;
        }
        return all;
    }
    let key: Option<Vec<Option<&str>>> =
        keys.iter().map(|k| vals.get(k).filter(|v| v.len() == 1).map(|v| v[0].as_deref())).collect();
    match key.map(|k| partition_for(def, &k)) {
        Some(Ok(p)) => BTreeSet::from([p]),
        _ => all,
    }
}

async fn update(
    s: &mut Session,
    snap: &CatalogSnapshot,
    u: datafusion::sql::sqlparser::ast::Update,
) -> Result<(u64, u64)> {
    if !u.table.joins.is_empty() || u.from.is_some() {
        return multi_table::update(s, snap, u).await;
    }
    let TableFactor::Table { name, .. } = &u.table.relation else {
        return Err(CnError::unsupported("UPDATE of a derived table"));
    };
    if reads_beyond_partition(snap, s, u.assignments.iter().map(|a| &a.value).chain(u.selection.as_ref())) {
        return multi_table::update(s, snap, u).await;
    }
    let def = table_of(snap, s, name, "UPDATE")?;
    let parts = target_partitions(&def, u.selection.as_ref());
    if parts.len() > 1 && u.limit.is_some() {
        let (select, limit_free) = match limited(&def, name, u.selection.as_ref(), &u.order_by, u.limit.as_ref()) {
            Some(x) => x,
            None => {
                return Err(CnError::unsupported(
                    "UPDATE … LIMIT over several partitions of a table without a primary key",
                ))
            }
        };
        let mut u = u;
        u.order_by.clear();
        u.limit = None;
        return by_selected_keys(s, select, limit_free, move |selection| {
            let mut u = u.clone();
            u.selection = Some(selection);
            Statement::Update(u)
        })
        .await;
    }
    let assigned = crate::gsi::maintain::assigned_columns(&u);
    if crate::gsi::maintain::update_needs_maintenance(&def, &assigned) {
        // A new primary key moves the row (to another partition, or
        // another place in a global index): deleted and inserted anew.
        if assigned.iter().any(|c| def.primary_key.contains(c)) {
            return multi_table::update(s, snap, u).await;
        }
        return Ok((crate::gsi::maintain::update(s, snap, &def, &u, &parts).await?, 0));
    }
    let mut work = Vec::new();
    for p in &parts {
        let mut pu = u.clone();
        let mut names =
            PhysicalNames { snap, db: s.db.as_deref(), dn: def.partitions[*p].dn, partition: Some(*p), alias: true };
        planner::to_physical(&mut pu, &mut names);
        work.push((def.partitions[*p].dn, Statement::Update(pu).to_string()));
    }
    let (mut affected, _) = run_writes(s, work).await?;
    if def.is_broadcast() {
        affected /= def.partitions.len().max(1) as u64;
    }
    Ok((affected, 0))
}

async fn delete(
    s: &mut Session,
    snap: &CatalogSnapshot,
    d: datafusion::sql::sqlparser::ast::Delete,
) -> Result<(u64, u64)> {
    let from = match &d.from {
        FromTable::WithFromKeyword(f) | FromTable::WithoutKeyword(f) => f,
    };
    if from.len() != 1 || !from[0].joins.is_empty() || d.using.is_some() || !d.tables.is_empty() {
        return multi_table::delete(s, snap, d).await;
    }
    let TableFactor::Table { name, .. } = &from[0].relation else {
        return Err(CnError::unsupported("DELETE from a derived table"));
    };
    if reads_beyond_partition(snap, s, d.selection.iter()) {
        return multi_table::delete(s, snap, d).await;
    }
    let def = table_of(snap, s, name, "DELETE")?;
    let parts = target_partitions(&def, d.selection.as_ref());
    if parts.len() > 1 && d.limit.is_some() {
        let (select, limit_free) = match limited(&def, name, d.selection.as_ref(), &d.order_by, d.limit.as_ref()) {
            Some(x) => x,
            None => {
                return Err(CnError::unsupported(
                    "DELETE … LIMIT over several partitions of a table without a primary key",
                ))
            }
        };
        let mut d = d;
        d.order_by.clear();
        d.limit = None;
        return by_selected_keys(s, select, limit_free, move |selection| {
            let mut d = d.clone();
            d.selection = Some(selection);
            Statement::Delete(d)
        })
        .await;
    }
    if !def.global_indexes.is_empty() {
        return Ok((crate::gsi::maintain::delete(s, snap, &def, &d, &parts).await?, 0));
    }
    let mut work = Vec::new();
    for p in &parts {
        let mut pd = d.clone();
        let mut names =
            PhysicalNames { snap, db: s.db.as_deref(), dn: def.partitions[*p].dn, partition: Some(*p), alias: false };
        planner::to_physical(&mut pd, &mut names);
        work.push((def.partitions[*p].dn, Statement::Delete(pd).to_string()));
    }
    let (mut affected, _) = run_writes(s, work).await?;
    if def.is_broadcast() {
        affected /= def.partitions.len().max(1) as u64;
    }
    Ok((affected, 0))
}

/// Whether `exprs` (a write's SET values and WHERE) read a table through a
/// subquery that the DNs do not each hold whole: a partitioned or single
/// table, or one the catalog does not know. Sent with the write to each
/// partition, such a subquery would read the partition's DN alone (`SET
/// n = (SELECT COUNT(*) FROM u)` counted one partition of `u`), so the
/// write runs as a multi-table one, its values read through the CN.
fn reads_beyond_partition<'e>(snap: &CatalogSnapshot, s: &Session, exprs: impl Iterator<Item = &'e Expr>) -> bool {
    let mut beyond = false;
    for e in exprs {
        let _ = datafusion::sql::sqlparser::ast::visit_relations(e, |name| {
            beyond |= match resolve_name(name, s.db.as_deref()) {
                Ok((db, t)) => snap.table(&db, &t).is_none_or(|def| !def.is_broadcast()),
                Err(_) => true,
            };
            std::ops::ControlFlow::<()>::Continue(())
        });
    }
    beyond
}

/// For `UPDATE|DELETE … [WHERE c] [ORDER BY o] LIMIT n` over several
/// partitions: the locking SELECT of the primary keys of the rows it
/// writes (`SELECT pk FROM t WHERE c ORDER BY o LIMIT n FOR UPDATE`), and
/// `c` to combine with their keys. `None` for a table without a primary
/// key of its own (the hidden one is not selectable).
fn limited(
    def: &TableDef,
    name: &ObjectName,
    selection: Option<&Expr>,
    order_by: &[datafusion::sql::sqlparser::ast::OrderByExpr],
    limit: Option<&Expr>,
) -> Option<(String, Option<Expr>)> {
    if def.primary_key.is_empty() || def.primary_key.iter().any(|c| c == crate::catalog::IMPLICIT_PK) {
        return None;
    }
    let pk: Vec<String> = def.primary_key.iter().map(|c| crate::dn::quote_ident(c)).collect();
    let sql = multi_table::locking_select(&pk.join(", "), &name.to_string(), selection, order_by, limit);
    Some((sql, selection.cloned()))
}

/// Runs a limited write over several partitions (MySQL 8.0 reference,
/// 15.2.17 and 15.2.2: the first n rows by ORDER BY, any n without it) as
/// two steps in one transaction (the session's, else one of its own): the
/// locking SELECT of the rows' primary keys through the CN, then the write
/// `make` builds for `c AND pk IN (…)`, which the partitions' keys prune.
async fn by_selected_keys(
    s: &mut Session,
    select: String,
    selection: Option<Expr>,
    make: impl Fn(Expr) -> Statement,
) -> Result<(u64, u64)> {
    let own = begin_own(s).await?;
    let run = async {
        let mut keys = CollectSink::default();
        Box::pin(s.execute(&select, &mut keys)).await?;
        if keys.rows.is_empty() {
            return Ok((0, 0));
        }
        let pk: Vec<String> = keys.columns.iter().map(|c| c.name.clone()).collect();
        let chosen = multi_table::key_in_list(&pk, keys.rows.iter().map(Vec::as_slice));
        let condition = match selection {
            Some(c) => Expr::BinaryOp {
                left: Box::new(Expr::Nested(Box::new(c))),
                op: datafusion::sql::sqlparser::ast::BinaryOperator::And,
                right: Box::new(chosen),
            },
            None => chosen,
        };
        Ok::<_, CnError>((multi_table::write(s, make(condition)).await?, 0))
    }
    .await;
    end_own(s, own, run).await
}

/// Savepoint a write of several logical steps sets inside the session's
/// transaction, so that a failed step undoes the whole statement.
const STEPS_SAVEPOINT: &str = "__cn_statement_steps";

/// Opens a transaction of the statement's own for a write of several
/// logical steps when the session has none (autocommit), else sets
/// [`STEPS_SAVEPOINT`] in the session's; whether it opened one.
async fn begin_own(s: &mut Session) -> Result<bool> {
    match &s.txn {
        Some(t) => {
            t.savepoint(STEPS_SAVEPOINT).await?;
            Ok(false)
        }
        None => {
            let opts = s.txn_options(None);
            s.txn = Some(Txn::begin(s.cluster.clone(), s.conn_id, opts).await?);
            Ok(true)
        }
    }
}

/// Ends what [`begin_own`] began with the statement's outcome `run`: its
/// own transaction committed after success and rolled back after an
/// error; in the session's, the statement's steps undone after an error
/// (as MySQL undoes a failed statement), unless the error ended the
/// transaction (a deadlock).
async fn end_own<T>(s: &mut Session, own: bool, run: Result<T>) -> Result<T> {
    match (own, &run) {
        (true, Ok(_)) => s.commit().await?,
        (true, Err(_)) => s.rollback().await,
        (false, Ok(_)) => {
            if let Some(t) = &s.txn {
                t.release_savepoint(STEPS_SAVEPOINT).await?;
            }
        }
        (false, Err(_)) => {
            if let Some(t) = &s.txn {
                t.rollback_to(STEPS_SAVEPOINT).await?;
                t.release_savepoint(STEPS_SAVEPOINT).await?;
            }
        }
    }
    run
}

/// Runs physical write statements: inside the session's transaction if one
/// is open; as one local transaction committed in one phase by the DN's
/// agent when they all go to one DN; otherwise as an implicit distributed
/// transaction. Returns summed affected rows.
pub async fn run_writes(s: &mut Session, work: Vec<(u32, String)>) -> Result<(u64, u64)> {
    let mut per_dn: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for (d, sql) in work {
        per_dn.entry(d).or_default().push(sql);
    }
    if s.txn.is_none() && per_dn.len() == 1 {
        let (dn, stmts) = per_dn.into_iter().next().expect("one DN");
        let n = write_one_dn(s, dn, &stmts).await?;
        s.note_commit(crate::txn::CommitProtocol::OnePhase);
        return Ok((n, 0));
    }
    // Inside an explicit transaction a statement that fails must leave
    // nothing behind and the transaction alive, as in MySQL. InnoDB undoes
    // a failed physical statement itself; when the logical statement runs
    // several physical ones, each branch first sets a statement savepoint.
    let statements: usize = per_dn.values().map(Vec::len).sum();
    let st = StatementTxn::begin(s, statements > 1).await?;
    let r = st.exec_per_dn(&per_dn).await.map(|n| (n, 0));
    st.finish(s, r).await
}

/// The distributed transaction one write statement runs in: the session's
/// own, or an implicit one committed when the statement ends. In an
/// explicit transaction each branch the statement writes first sets a
/// statement savepoint (when asked), so a failed statement is undone on
/// every DN and the transaction goes on, as in MySQL.
pub struct StatementTxn {
    pub txn: Arc<Txn>,
    implicit: bool,
    savepoint: bool,
    /// DNs whose branch has this statement's savepoint.
    marked: std::sync::Mutex<BTreeSet<u32>>,
    cluster: Arc<crate::cluster::Cluster>,
}

impl StatementTxn {
    /// Joins the session's transaction or begins an implicit one (READ
    /// COMMITTED, branches only on the DNs used). `savepoint`: the
    /// statement may run several physical statements.
    pub async fn begin(s: &Session, savepoint: bool) -> Result<StatementTxn> {
        let (txn, implicit) = match &s.txn {
            Some(t) => (t.clone(), false),
            None => (Txn::begin(s.cluster.clone(), s.conn_id, s.txn_options(None).implicit()).await?, true),
        };
        Ok(StatementTxn {
            txn,
            implicit,
            savepoint: savepoint && !implicit,
            marked: std::sync::Mutex::new(BTreeSet::new()),
            cluster: s.cluster.clone(),
        })
    }

    /// Runs write statements on DN `dn`'s branch in order, joined into
    /// multi-statements ([`crate::dn::batch_statements`]; a new branch
    /// starts in the first one's round trip); returns the summed affected
    /// rows.
    pub async fn exec_many(&self, dn: u32, stmts: &[String]) -> Result<u64> {
        let d = self.cluster.dn(dn)?.clone();
        let batches = crate::dn::batch_statements(stmts);
        let Some((first, rest)) = batches.split_first() else { return Ok(0) };
        let marking = self.savepoint && !self.marked.lock().unwrap_or_else(|e| e.into_inner()).contains(&dn);
        // A new branch starts in the round trip of the first statement
        // (and of the statement savepoint before it).
        let with = match marking {
            true => format!("SAVEPOINT {STATEMENT_SAVEPOINT}; {first}"),
            false => first.clone(),
        };
        let (b, ran) = match self.txn.branch_for_write_with(dn, &with).await {
            Ok(x) => x,
            Err(e) => {
                if marking && self.txn.has_branch(dn).await {
                    self.marked.lock().unwrap_or_else(|e| e.into_inner()).insert(dn);
                }
                return Err(e);
            }
        };
        let mut c = b.lock().await;
        if c.is_abandoned() {
            // Another statement's start of this branch failed meanwhile.
            return Err(CnError::mysql(
                code::ER_XA_RBROLLBACK,
                format!("the transaction's branch on dn{dn} did not start"),
            ));
        }
        let mut total = 0;
        let stmts = match ran {
            Some(n) => {
                if marking {
                    self.marked.lock().unwrap_or_else(|e| e.into_inner()).insert(dn);
                }
                total = n;
                rest
            }
            None => {
                // Checked and set under the branch's lock: no statement of
                // this one runs on the branch before its savepoint.
                if self.savepoint && !self.marked.lock().unwrap_or_else(|e| e.into_inner()).contains(&dn) {
                    c.query_drop(format!("SAVEPOINT {STATEMENT_SAVEPOINT}")).await.map_err(|e| d.err(e))?;
                    self.marked.lock().unwrap_or_else(|e| e.into_inner()).insert(dn);
                }
                &batches[..]
            }
        };
        for sql in stmts {
            total += crate::dn::exec_summed(&mut c, sql).await.map_err(|e| d.err(e))?;
        }
        Ok(total)
    }

    /// Runs `(dn, sql)` statements, each DN's in order on its branch, the
    /// DNs concurrently; returns the summed affected rows, or the first
    /// error (in DN order) once all have ended.
    pub async fn exec_all(&self, work: Vec<(u32, String)>) -> Result<u64> {
        let mut per_dn: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for (dn, sql) in work {
            per_dn.entry(dn).or_default().push(sql);
        }
        self.exec_per_dn(&per_dn).await
    }

    /// [`StatementTxn::exec_all`] of statements already grouped by DN.
    pub async fn exec_per_dn(&self, per_dn: &BTreeMap<u32, Vec<String>>) -> Result<u64> {
        let results = futures::future::join_all(per_dn.iter().map(|(dn, stmts)| self.exec_many(*dn, stmts))).await;
        let mut total = 0;
        for r in results {
            total += r?;
        }
        Ok(total)
    }

    /// [`StatementTxn::exec_many`] of one statement.
    pub async fn exec(&self, dn: u32, sql: &str) -> Result<u64> {
        self.exec_many(dn, &[sql.to_string()]).await
    }

    /// A read on DN `dn`'s branch (a locking read sees the latest rows; the
    /// branch is started without a read view if it has none).
    pub async fn query(&self, dn: u32, sql: &str) -> Result<Vec<crate::gsi::Row>> {
        let d = self.cluster.dn(dn)?.clone();
        let b = self.txn.branch_for_lock(dn).await?;
        let mut c = b.lock().await;
        let rows: Vec<mysql_async::Row> = c.query(sql).await.map_err(|e| d.err(e))?;
        Ok(rows.into_iter().map(|r| r.unwrap().into_iter().map(crate::txn::value_bytes).collect()).collect())
    }

    /// Ends the statement with its result: commits an implicit transaction;
    /// on an error undoes the statement (to its savepoint) or, for errors
    /// that end a transaction, rolls the whole transaction back.
    pub async fn finish<T>(self, s: &mut Session, r: Result<T>) -> Result<T> {
        let mut e = match r {
            Ok(v) => {
                if self.implicit {
                    let p = self.txn.commit().await?;
                    s.note_commit(p);
                }
                return Ok(v);
            }
            Err(e) => e,
        };
        if self.txn.take_victim() {
            e = CnError::deadlock();
        }
        if !self.implicit && !ends_transaction(&e) {
            let marked: Vec<u32> = self.marked.lock().unwrap_or_else(|e| e.into_inner()).iter().copied().collect();
            let undone = !self.savepoint || self.txn.rollback_branches_to(&marked, STATEMENT_SAVEPOINT).await.is_ok();
            if undone {
                return Err(e);
            }
        }
        // A deadlock, lock wait timeout, write conflict or lost DN ends the
        // whole transaction on every DN (as a deadlock does in MySQL).
        self.txn.rollback().await;
        if !self.implicit {
            s.txn = None;
        }
        Err(e)
    }
}

/// The savepoint a multi-shard statement in a transaction sets on each
/// branch it writes, to undo itself if it fails part-way.
const STATEMENT_SAVEPOINT: &str = "`__cn_statement`";

/// Whether a failed statement ends its whole transaction: a deadlock
/// (1213), lock wait timeout (1205; the CN rolls back the transaction,
/// as with `innodb_rollback_on_timeout`), a write conflict under snapshot
/// isolation (1020, which leaves the XA branch rollback-only), an XA
/// rollback (1614) or a DN that failed; other errors undo the statement.
fn ends_transaction(e: &CnError) -> bool {
    match e {
        CnError::Dn { code: c, .. } | CnError::Mysql { code: c, .. } => {
            [code::ER_LOCK_DEADLOCK, code::ER_LOCK_WAIT_TIMEOUT, 1020, code::ER_XA_RBROLLBACK].contains(c)
        }
        _ => true,
    }
}

/// An autocommit write whose statements all go to one DN: a local
/// transaction, committed in one phase by the DN's agent (stamped at least
/// at a TSO timestamp fetched while the statements run, so it never
/// commits below a transaction acknowledged before it began).
async fn write_one_dn(s: &Session, dn: u32, stmts: &[String]) -> Result<u64> {
    let d = s.cluster.dn(dn)?.clone();
    let linearizable = s.txn_options(None).linearizable;
    let mut c = ViewConn::new(s.cluster.fresh_conn(dn, &s.dn_session).await?, vec!["ROLLBACK".to_string()]);
    // A one-statement write is the cheapest deadlock victim: youngest.
    let owner = OwnerGuard::new(&s.cluster, format!("w-{dn}-{}", c.id()), u64::MAX);
    owner.add(dn, c.id());
    let run = async {
        let setup = s.txn_options(None).branch_setup();
        let mut total = 0;
        for (i, sql) in crate::dn::batch_statements(stmts).iter().enumerate() {
            // The statements ride with the transaction's start, in one
            // multi-statement: one round trip for a row and its index row.
            let text = match i {
                0 => format!("{setup}; START TRANSACTION; {sql}"),
                _ => sql.clone(),
            };
            total += crate::dn::exec_summed(&mut c, &text).await.map_err(|e| d.err(e))?;
        }
        Ok::<u64, CnError>(total)
    };
    let bound = async {
        match linearizable {
            true => s.cluster.timestamp().await,
            false => Ok(0),
        }
    };
    let (total, l) = tokio::join!(run, bound);
    let total = match total {
        Err(_) if owner.take_victim() => return Err(CnError::deadlock()),
        other => other?,
    };
    let l = l?;
    match dn_plugin::agent::commit_one_phase(&*s.cluster.agents[dn as usize], &mut c, None, l).await {
        Ok(_) => {
            c.finished();
            Ok(total)
        }
        Err(e) => Err(d.agent_err(e)),
    }
}
