//! Index maintenance in every write path, inside the statement's
//! distributed transaction (1PC when base and index rows fall on one DN).
//!
//! As in PolarDB-X, a write to a table with global indexes is executed
//! "logically": the CN reads the rows it changes with a locking read (so
//! they cannot change under it), writes the base rows, reads them back in
//! the same branch (so defaults, expressions and type conversion are the
//! DN's own), and then deletes and inserts index rows, routed by their own
//! partitioning. A unique global index is enforced by a unique key on its
//! index table: equal values land on one partition, so the DN raises 1062
//! (and a concurrent insert of the same value waits for the first's
//! commit, as on one MySQL).
//!
//! Writes that touch no column of any index (and no partition key) skip
//! all this and run as before.

use super::{all_columns, literal, partition_of, pk_in, pk_of, IndexLayout, Row};
use crate::catalog::{CatalogSnapshot, GlobalIndex, TableDef};
use crate::dml::StatementTxn;
use crate::dn::quote_ident;
use crate::error::{CnError, Result};
use crate::planner::{self, literal_text, PhysicalNames};
use crate::session::Session;
use crate::sharding::partition_for;
use datafusion::sql::sqlparser::ast::{AssignmentTarget, Expr, FromTable, Insert, OnInsert, VisitMut, VisitorMut};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

/// Rows per physical statement when a write is split by primary key.
const CHUNK: usize = 500;

/// `db`.`phys` of partition `p` of `t`.
pub(super) fn phys(t: &TableDef, p: usize) -> String {
    format!("{}.{}", quote_ident(&t.db), quote_ident(&t.partitions[p].phys_table))
}

/// `INSERT [IGNORE] INTO` partition `p` of `t` every column of `rows` (full
/// rows of `t`).
pub(super) fn insert_rows_sql(t: &TableDef, p: usize, rows: &[&Row], ignore: bool) -> String {
    let values: Vec<String> = rows
        .iter()
        .map(|r| {
            let v: Vec<String> = t.columns.iter().zip(r.iter()).map(|(c, v)| literal(c.kind, v.as_deref())).collect();
            format!("({})", v.join(", "))
        })
        .collect();
    format!(
        "INSERT {}INTO {} ({}) VALUES {}",
        if ignore { "IGNORE " } else { "" },
        phys(t, p),
        all_columns(t),
        values.join(", ")
    )
}

/// The global indexes inserts and updates must write.
fn writable(def: &TableDef) -> impl Iterator<Item = &GlobalIndex> {
    def.global_indexes.iter().filter(|g| g.state.writes())
}

/// Inserts the index rows of full base rows into the indexes `which`.
async fn insert_index_rows<'a>(
    st: &StatementTxn,
    def: &TableDef,
    which: impl Iterator<Item = &'a GlobalIndex>,
    rows: &[Row],
) -> Result<()> {
    st.exec_all(index_inserts(def, which, rows)?).await.map(|_| ())
}

/// The INSERTs of the index rows of full base rows into the indexes
/// `which`, as `(DN, SQL)`.
fn index_inserts<'a>(
    def: &TableDef,
    which: impl Iterator<Item = &'a GlobalIndex>,
    rows: &[Row],
) -> Result<Vec<(u32, String)>> {
    let mut work = Vec::new();
    for g in which {
        for (p, irs) in IndexLayout::new(def, g)?.by_partition(rows)? {
            for chunk in irs.chunks(CHUNK) {
                let refs: Vec<&Row> = chunk.iter().collect();
                work.push((g.table.partitions[p].dn, insert_rows_sql(&g.table, p, &refs, false)));
            }
        }
    }
    Ok(work)
}

/// Deletes the index rows of full base rows from the indexes `which`.
async fn delete_index_rows<'a>(
    st: &StatementTxn,
    def: &TableDef,
    which: impl Iterator<Item = &'a GlobalIndex>,
    rows: &[Row],
) -> Result<()> {
    let mut work = Vec::new();
    for g in which {
        for (p, irs) in IndexLayout::new(def, g)?.by_partition(rows)? {
            for chunk in irs.chunks(CHUNK) {
                let refs: Vec<&Row> = chunk.iter().collect();
                work.push((
                    g.table.partitions[p].dn,
                    format!("DELETE FROM {} WHERE {}", phys(&g.table, p), pk_in(&g.table, &refs)?),
                ));
            }
        }
    }
    st.exec_all(work).await.map(|_| ())
}

/// Reads full rows of partition `p` by primary key, locking them.
async fn read_back(st: &StatementTxn, def: &TableDef, p: usize, rows: &[&Row]) -> Result<Vec<Row>> {
    let mut out = Vec::new();
    for chunk in rows.chunks(CHUNK) {
        let sql = format!("SELECT {} FROM {} WHERE {} FOR UPDATE", all_columns(def), phys(def, p), pk_in(def, chunk)?);
        out.extend(st.query(def.partitions[p].dn, &sql).await?);
    }
    Ok(out)
}

/// Applies row changes `(partition, old, new)` (same primary key) beyond the
/// base UPDATE itself: moves rows whose partition key changed to their new
/// partition, and replaces the index rows that changed.
async fn apply_changes(st: &StatementTxn, def: &TableDef, changes: &[(usize, Row, Row)]) -> Result<()> {
    let mut moves = Vec::new();
    for (p, _, new) in changes {
        let np = partition_of(def, new)?;
        if np != *p {
            moves.push((def.partitions[*p].dn, format!("DELETE FROM {} WHERE {}", phys(def, *p), pk_in(def, &[new])?)));
            moves.push((def.partitions[np].dn, insert_rows_sql(def, np, &[new], false)));
        }
    }
    // A move deletes before it inserts, and on one DN statements run in order.
    for (dn, sql) in moves {
        st.exec(dn, &sql).await?;
    }
    for g in &def.global_indexes {
        let layout = IndexLayout::new(def, g)?;
        let mut old_rows = Vec::new();
        let mut new_rows = Vec::new();
        for (_, old, new) in changes {
            if layout.row(old) != layout.row(new) {
                old_rows.push(old.clone());
                new_rows.push(new.clone());
            }
        }
        delete_index_rows(st, def, std::iter::once(g), &old_rows).await?;
        if g.state.writes() {
            insert_index_rows(st, def, std::iter::once(g), &new_rows).await?;
        }
    }
    Ok(())
}

/// A key given as SQL literals, with their text for routing.
struct Key {
    lits: Vec<String>,
    texts: Vec<Option<String>>,
}

impl Key {
    fn from_exprs(exprs: &[&Expr]) -> Result<Key> {
        let texts = exprs
            .iter()
            .map(|e| {
                literal_text(e).ok_or_else(|| {
                    CnError::unsupported(format!(
                        "a non-literal key value ({e}) in a write to a table with a global index"
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Key { lits: exprs.iter().map(|e| planner::dn_text(*e)).collect(), texts })
    }
    fn from_row(t: &TableDef, cols: &[String], row: &Row) -> Result<Key> {
        let pos = super::positions(t, cols)?;
        Ok(Key {
            lits: pos.iter().map(|&i| literal(t.columns[i].kind, row[i].as_deref())).collect(),
            texts: pos.iter().map(|&i| super::text(&row[i])).collect(),
        })
    }
    fn equals(&self, cols: &[String]) -> String {
        let lhs: Vec<String> = cols.iter().map(|c| quote_ident(c)).collect();
        format!("({}) = ({})", lhs.join(", "), self.lits.join(", "))
    }
}

/// The partitions of `t` that may hold a row whose columns `cols` have the
/// values `key`: one when `cols` hold the partition key, else all.
fn partitions_by(t: &TableDef, cols: &[String], key: &Key) -> Result<Vec<usize>> {
    let keys = t.partitioning.key_columns();
    if !t.is_partitioned() {
        return Ok(vec![0]);
    }
    let vals: Option<Vec<Option<&str>>> =
        keys.iter().map(|k| cols.iter().position(|c| c == k).map(|i| key.texts[i].as_deref())).collect();
    match vals {
        Some(v) => Ok(vec![partition_for(t, &v)?]),
        None => Ok((0..t.partitions.len()).collect()),
    }
}

/// The base row with primary key `key`, locked, and its partition.
async fn lock_by_pk(st: &StatementTxn, def: &TableDef, key: &Key) -> Result<Option<(usize, Row)>> {
    for p in partitions_by(def, &def.primary_key, key)? {
        let sql = format!(
            "SELECT {} FROM {} WHERE {} FOR UPDATE",
            all_columns(def),
            phys(def, p),
            key.equals(&def.primary_key)
        );
        if let Some(r) = st.query(def.partitions[p].dn, &sql).await?.into_iter().next() {
            return Ok(Some((p, r)));
        }
    }
    Ok(None)
}

/// The base row holding index value `key` of unique index `g`, locked
/// (index row and base row). NULLs never conflict.
async fn lock_by_unique(st: &StatementTxn, def: &TableDef, g: &GlobalIndex, key: &Key) -> Result<Option<(usize, Row)>> {
    if key.texts.iter().any(Option::is_none) {
        return Ok(None);
    }
    for p in partitions_by(&g.table, &g.columns, key)? {
        let sql = format!(
            "SELECT {} FROM {} WHERE {} FOR UPDATE",
            all_columns(&g.table),
            phys(&g.table, p),
            key.equals(&g.columns)
        );
        for ir in st.query(g.table.partitions[p].dn, &sql).await? {
            let pk = Key::from_row(&g.table, &def.primary_key, &ir)?;
            if let Some(found) = lock_by_pk(st, def, &pk).await? {
                return Ok(Some(found));
            }
        }
    }
    Ok(None)
}

/// What an INSERT does with a row that conflicts with an existing one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Conflict {
    Fail,
    Ignore,
    Replace,
    Update,
}

/// INSERT (plain, IGNORE, REPLACE, ON DUPLICATE KEY UPDATE) of `rows`
/// (values for `cols`, auto-increment ids already assigned) into `def`,
/// which has global indexes. Returns MySQL's affected-row count.
pub async fn insert(
    s: &mut Session,
    def: &TableDef,
    ins: &Insert,
    cols: &[String],
    rows: Vec<Vec<Expr>>,
) -> Result<u64> {
    let plain = !ins.replace_into && ins.on.is_none() && !ins.ignore;
    if plain {
        if let Some(pk_pos) =
            def.primary_key.iter().map(|k| cols.iter().position(|c| c == k)).collect::<Option<Vec<_>>>()
        {
            let shape = InsertShape { def, cols, pk_pos: &pk_pos };
            let rs: Vec<&Vec<Expr>> = rows.iter().collect();
            if let Some(work) = shape.direct_writes(&rs)? {
                // Base and index rows known from the literals: the writes
                // of a one-DN statement are a local transaction committed
                // in one phase, as any one-DN write (1PC).
                crate::dml::run_writes(s, work).await?;
                return Ok(rows.len() as u64);
            }
        }
    }
    let st = StatementTxn::begin(s, true).await?;
    let r = insert_in(&st, def, ins, cols, rows).await;
    st.finish(s, r).await
}

async fn insert_in(
    st: &StatementTxn,
    def: &TableDef,
    ins: &Insert,
    cols: &[String],
    rows: Vec<Vec<Expr>>,
) -> Result<u64> {
    let mode = if ins.replace_into {
        Conflict::Replace
    } else if ins.on.is_some() {
        Conflict::Update
    } else if ins.ignore {
        Conflict::Ignore
    } else {
        Conflict::Fail
    };
    let pos_of =
        |names: &[String]| -> Option<Vec<usize>> { names.iter().map(|k| cols.iter().position(|c| c == k)).collect() };
    let pk_pos = pos_of(&def.primary_key)
        .ok_or_else(|| CnError::unsupported("an INSERT without the primary key into a table with a global index"))?;
    let pk_key = |r: &[Expr]| Key::from_exprs(&pk_pos.iter().map(|&i| &r[i]).collect::<Vec<_>>());
    let shape = InsertShape { def, cols, pk_pos: &pk_pos };
    if mode == Conflict::Fail {
        return shape.insert(st, rows.iter().collect()).await;
    }
    let uniques: Vec<&GlobalIndex> = writable(def).filter(|g| g.unique).collect();
    let layouts: Vec<IndexLayout> = writable(def).map(|g| IndexLayout::new(def, g)).collect::<Result<_>>()?;
    let mut affected = 0;
    for row in &rows {
        match mode {
            Conflict::Ignore => {
                // The base row first (INSERT IGNORE skips a duplicate primary
                // or local unique key), then each unique index row; a
                // duplicate there undoes what this row wrote.
                let p = shape.route(row)?;
                let sql = format!(
                    "INSERT IGNORE INTO {} ({}) VALUES {}",
                    phys(def, p),
                    shape.column_list(),
                    InsertShape::values(&[row])
                );
                if st.exec(def.partitions[p].dn, &sql).await? == 0 {
                    continue;
                }
                let full = read_back_exprs(st, def, p, &shape.pk_in(&[row])).await?;
                let mut done: Vec<&GlobalIndex> = Vec::new();
                let mut duplicate = false;
                for layout in &layouts {
                    let g = layout.index;
                    let ir = layout.row(&full);
                    let ip = layout.partition(&ir)?;
                    let n =
                        st.exec(g.table.partitions[ip].dn, &insert_rows_sql(&g.table, ip, &[&ir], g.unique)).await?;
                    if n == 0 {
                        duplicate = true;
                        break;
                    }
                    done.push(g);
                }
                if duplicate {
                    st.exec(
                        def.partitions[p].dn,
                        &format!("DELETE FROM {} WHERE {}", phys(def, p), pk_in(def, &[&full])?),
                    )
                    .await?;
                    delete_index_rows(st, def, done.into_iter(), std::slice::from_ref(&full)).await?;
                } else {
                    affected += 1;
                }
            }
            Conflict::Replace | Conflict::Update => {
                let mut found: Vec<(usize, Row)> = Vec::new();
                if let Some(x) = lock_by_pk(st, def, &pk_key(row)?).await? {
                    found.push(x);
                }
                for g in &uniques {
                    if mode == Conflict::Update && !found.is_empty() {
                        break;
                    }
                    let pos = pos_of(&g.columns).ok_or_else(|| {
                        CnError::unsupported(format!(
                            "REPLACE / ON DUPLICATE KEY UPDATE without every column of unique global index {}",
                            g.name
                        ))
                    })?;
                    let key = Key::from_exprs(&pos.iter().map(|&i| &row[i]).collect::<Vec<_>>())?;
                    if let Some((p, r)) = lock_by_unique(st, def, g, &key).await? {
                        if !found.iter().any(|(_, f)| pk_of(def, f).ok() == pk_of(def, &r).ok()) {
                            found.push((p, r));
                        }
                    }
                }
                if mode == Conflict::Replace {
                    for (p, old) in &found {
                        st.exec(
                            def.partitions[*p].dn,
                            &format!("DELETE FROM {} WHERE {}", phys(def, *p), pk_in(def, &[old])?),
                        )
                        .await?;
                    }
                    let olds: Vec<Row> = found.iter().map(|(_, r)| r.clone()).collect();
                    delete_index_rows(st, def, def.global_indexes.iter(), &olds).await?;
                    affected += found.len() as u64 + shape.insert(st, vec![row]).await?;
                } else if let Some((p, old)) = found.into_iter().next() {
                    let Some(OnInsert::DuplicateKeyUpdate(assignments)) = &ins.on else {
                        return Err(CnError::unsupported("INSERT … ON CONFLICT"));
                    };
                    let mut set = Vec::new();
                    for a in assignments {
                        let mut value = a.value.clone();
                        let _ = value.visit(&mut InsertedValues { cols, row });
                        planner::escape_strings(&mut value);
                        set.push(format!("{} = {value}", a.target));
                    }
                    let sql = format!("UPDATE {} SET {} WHERE {}", phys(def, p), set.join(", "), pk_in(def, &[&old])?);
                    if st.exec(def.partitions[p].dn, &sql).await? > 0 {
                        let new = read_back(st, def, p, &[&old]).await?;
                        let new = new.into_iter().next().ok_or_else(|| {
                            CnError::unsupported(
                                "ON DUPLICATE KEY UPDATE of a primary key column of a table with a global index",
                            )
                        })?;
                        check_pk_kept(def, &old, &new)?;
                        apply_changes(st, def, &[(p, old, new)]).await?;
                        affected += 2;
                    }
                } else {
                    affected += shape.insert(st, vec![row]).await?;
                }
            }
            Conflict::Fail => unreachable!("handled above"),
        }
    }
    Ok(affected)
}

/// The columns of an INSERT and where its key values sit.
struct InsertShape<'a> {
    def: &'a TableDef,
    cols: &'a [String],
    pk_pos: &'a [usize],
}

impl InsertShape<'_> {
    /// The base partition of a row of values.
    fn route(&self, r: &[Expr]) -> Result<usize> {
        let pos: Option<Vec<usize>> =
            self.def.partitioning.key_columns().iter().map(|k| self.cols.iter().position(|c| c == k)).collect();
        let pos = pos.ok_or_else(|| CnError::mysql(1364, "the partition key is needed to route the row"))?;
        let k = Key::from_exprs(&pos.iter().map(|&i| &r[i]).collect::<Vec<_>>())?;
        let texts: Vec<Option<&str>> = k.texts.iter().map(|v| v.as_deref()).collect();
        crate::sharding::partition_for_write(self.def, &texts, 1)
    }

    /// The INSERT's column list, quoted.
    fn column_list(&self) -> String {
        self.cols.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ")
    }

    fn values(rs: &[&Vec<Expr>]) -> String {
        rs.iter()
            .map(|r| format!("({})", r.iter().map(planner::dn_text).collect::<Vec<_>>().join(", ")))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn pk_in(&self, rs: &[&Vec<Expr>]) -> String {
        let lhs: Vec<String> = self.def.primary_key.iter().map(|c| quote_ident(c)).collect();
        let tuples: Vec<String> = rs
            .iter()
            .map(|r| {
                format!("({})", self.pk_pos.iter().map(|&i| planner::dn_text(&r[i])).collect::<Vec<_>>().join(", "))
            })
            .collect();
        format!("({}) IN ({})", lhs.join(", "), tuples.join(", "))
    }

    /// The rows as base rows (the columns the writable indexes store, the
    /// others NULL) when every such column is given as a literal: then the
    /// index rows need no read-back. MariaDB converts each literal to the
    /// same column type on both sides.
    fn literal_rows(&self, rs: &[&Vec<Expr>]) -> Option<Vec<Row>> {
        let needed: BTreeSet<&String> =
            writable(self.def).flat_map(|g| g.table.columns.iter().map(|c| &c.name)).collect();
        let pos: Vec<(usize, usize)> = needed
            .into_iter()
            .map(|n| Some((self.def.column_index(n)?, self.cols.iter().position(|c| c == n)?)))
            .collect::<Option<_>>()?;
        rs.iter()
            .map(|r| {
                let mut full: Row = vec![None; self.def.columns.len()];
                for (di, ci) in &pos {
                    full[*di] = literal_text(&r[*ci])?.map(String::into_bytes);
                }
                Some(full)
            })
            .collect()
    }

    /// The `(dn, sql)` writes of rows and their index rows when
    /// [`Self::literal_rows`] gives the index rows from the literals (each
    /// DN's base rows before its index rows), or `None`. Run together, each
    /// DN's in one multi-statement, the DNs in parallel, a row and its
    /// index row cost one round trip, on one DN or on two.
    fn direct_writes(&self, rs: &[&Vec<Expr>]) -> Result<Option<Vec<(u32, String)>>> {
        let Some(direct) = self.literal_rows(rs) else { return Ok(None) };
        let def = self.def;
        let col_list = self.column_list();
        let mut by_part: BTreeMap<usize, Vec<&Vec<Expr>>> = BTreeMap::new();
        for r in rs {
            by_part.entry(self.route(r)?).or_default().push(r);
        }
        let mut work = Vec::new();
        for (p, rs) in &by_part {
            for chunk in rs.chunks(CHUNK) {
                let sql = format!("INSERT INTO {} ({col_list}) VALUES {}", phys(def, *p), Self::values(chunk));
                work.push((def.partitions[*p].dn, sql));
            }
        }
        work.extend(index_inserts(def, writable(def), &direct)?);
        Ok(Some(work))
    }

    /// Inserts rows into their partitions and their index rows: together
    /// when [`Self::direct_writes`] has them. Otherwise the base rows go
    /// first (in parallel across DNs) and the
    /// index rows are made from the rows read back (defaults, expressions).
    /// Returns the count inserted (a plain INSERT writes every row or
    /// fails).
    async fn insert(&self, st: &StatementTxn, rs: Vec<&Vec<Expr>>) -> Result<u64> {
        let def = self.def;
        let count = rs.len() as u64;
        if let Some(work) = self.direct_writes(&rs)? {
            st.exec_all(work).await?;
            return Ok(count);
        }
        let col_list = &self.column_list();
        let mut by_part: BTreeMap<usize, Vec<&Vec<Expr>>> = BTreeMap::new();
        for r in rs {
            by_part.entry(self.route(r)?).or_default().push(r);
        }
        let runs = by_part.into_iter().map(|(p, rs)| async move {
            let mut full = Vec::new();
            let mut n = 0;
            for chunk in rs.chunks(CHUNK) {
                let sql = format!("INSERT INTO {} ({col_list}) VALUES {}", phys(def, p), Self::values(chunk));
                n += st.exec(def.partitions[p].dn, &sql).await?;
                let read =
                    format!("SELECT {} FROM {} WHERE {} FOR UPDATE", all_columns(def), phys(def, p), self.pk_in(chunk));
                full.extend(st.query(def.partitions[p].dn, &read).await?);
            }
            Ok::<_, CnError>((n, full))
        });
        let mut n = 0;
        let mut full = Vec::new();
        for r in futures::future::join_all(runs).await {
            let (k, f) = r?;
            n += k;
            full.extend(f);
        }
        insert_index_rows(st, def, writable(def), &full).await?;
        Ok(n)
    }
}

async fn read_back_exprs(st: &StatementTxn, def: &TableDef, p: usize, pk_in: &str) -> Result<Row> {
    let sql = format!("SELECT {} FROM {} WHERE {pk_in} FOR UPDATE", all_columns(def), phys(def, p));
    st.query(def.partitions[p].dn, &sql)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| CnError::internal("an inserted row is not there to read back"))
}

fn check_pk_kept(def: &TableDef, old: &Row, new: &Row) -> Result<()> {
    if pk_of(def, old)? != pk_of(def, new)? {
        return Err(CnError::unsupported("changing the primary key of a table with a global index"));
    }
    Ok(())
}

/// Replaces `VALUES(c)` in an ON DUPLICATE KEY UPDATE clause with the value
/// the row would have inserted into `c`.
struct InsertedValues<'a> {
    cols: &'a [String],
    row: &'a [Expr],
}

impl VisitorMut for InsertedValues<'_> {
    type Break = ();
    fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        if let Expr::Function(f) = e {
            if f.name.to_string().eq_ignore_ascii_case("values") {
                let arg = f.args.to_string();
                let col = arg.trim_matches(|c| c == '(' || c == ')').trim().trim_matches('`').to_ascii_lowercase();
                let v = self.cols.iter().position(|c| *c == col).map(|i| self.row[i].clone());
                *e = v.unwrap_or_else(|| Expr::value(datafusion::sql::sqlparser::ast::Value::Null));
            }
        }
        ControlFlow::Continue(())
    }
}

/// The columns an UPDATE assigns, lower-case.
pub fn assigned_columns(u: &datafusion::sql::sqlparser::ast::Update) -> Vec<String> {
    u.assignments
        .iter()
        .filter_map(|a| match &a.target {
            AssignmentTarget::ColumnName(n) => n.0.last().map(|p| p.to_string().trim_matches('`').to_ascii_lowercase()),
            AssignmentTarget::Tuple(_) => None,
        })
        .collect()
}

/// Whether an UPDATE assigning `assigned` must run logically: it changes a
/// column some global index stores, or a partition key column (the row
/// may move to another partition).
pub fn update_needs_maintenance(def: &TableDef, assigned: &[String]) -> bool {
    let keys = def.partitioning.key_columns();
    (def.is_partitioned() && assigned.iter().any(|c| keys.contains(c)))
        || def.global_indexes.iter().any(|g| g.table.columns.iter().any(|c| assigned.contains(&c.name)))
}

/// An UPDATE that [`update_needs_maintenance`], over `parts`: per
/// partition, lock the matching rows, update them by primary key, read
/// them back, then move rows to their new partition and replace changed
/// index rows. Returns the changed-row count.
pub async fn update(
    s: &mut Session,
    snap: &CatalogSnapshot,
    def: &TableDef,
    u: &datafusion::sql::sqlparser::ast::Update,
    parts: &BTreeSet<usize>,
) -> Result<u64> {
    if assigned_columns(u).iter().any(|c| def.primary_key.contains(c)) {
        return Err(CnError::unsupported(
            "UPDATE of a primary key column of a table with a global index or partitioned by its primary key",
        ));
    }
    let st = StatementTxn::begin(s, true).await?;
    let db = s.db.clone();
    let r = async {
        let mut changed = 0;
        let mut changes = Vec::new();
        for &p in parts {
            let mut pu = u.clone();
            let dn = def.partitions[p].dn;
            let mut names = PhysicalNames { snap, db: db.as_deref(), dn, partition: Some(p), alias: true };
            planner::to_physical(&mut pu, &mut names);
            let rel = pu.table.relation.to_string();
            let old = st
                .query(dn, &locking_select(def, &rel, pu.selection.as_ref(), &pu.order_by, pu.limit.as_ref()))
                .await?;
            let set = pu.assignments.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ");
            // `SET c = literal, …`: the new rows are known without reading them back.
            let literal_set: Option<Vec<(usize, Option<Vec<u8>>)>> = pu
                .assignments
                .iter()
                .map(|a| match &a.target {
                    AssignmentTarget::ColumnName(n) => {
                        let col = n.0.last()?.to_string().trim_matches('`').to_ascii_lowercase();
                        Some((def.column_index(&col)?, literal_text(&a.value)?.map(String::into_bytes)))
                    }
                    AssignmentTarget::Tuple(_) => None,
                })
                .collect();
            for chunk in old.chunks(CHUNK) {
                let refs: Vec<&Row> = chunk.iter().collect();
                changed += st.exec(dn, &format!("UPDATE {rel} SET {set} WHERE {}", pk_in(def, &refs)?)).await?;
                if let Some(set) = &literal_set {
                    for o in chunk {
                        let mut n = o.clone();
                        for (i, v) in set {
                            n[*i] = v.clone();
                        }
                        changes.push((p, o.clone(), n));
                    }
                    continue;
                }
                let mut new: BTreeMap<Row, Row> = BTreeMap::new();
                for r in read_back(&st, def, p, &refs).await? {
                    new.insert(pk_of(def, &r)?, r);
                }
                for o in chunk {
                    if let Some(n) = new.remove(&pk_of(def, o)?) {
                        changes.push((p, o.clone(), n));
                    }
                }
            }
        }
        apply_changes(&st, def, &changes).await?;
        Ok(changed)
    }
    .await;
    st.finish(s, r).await
}

/// `SELECT <every column> FROM rel [WHERE …] [ORDER BY …] [LIMIT …] FOR UPDATE`.
fn locking_select(
    def: &TableDef,
    rel: &str,
    selection: Option<&Expr>,
    order_by: &[datafusion::sql::sqlparser::ast::OrderByExpr],
    limit: Option<&Expr>,
) -> String {
    locking_select_of(&all_columns(def), rel, selection, order_by, limit)
}

/// `SELECT columns FROM rel [WHERE …] [ORDER BY …] [LIMIT …] FOR UPDATE`.
pub(crate) fn locking_select_of(
    columns: &str,
    rel: &str,
    selection: Option<&Expr>,
    order_by: &[datafusion::sql::sqlparser::ast::OrderByExpr],
    limit: Option<&Expr>,
) -> String {
    let mut sql = format!("SELECT {columns} FROM {rel}");
    if let Some(w) = selection {
        sql.push_str(&format!(" WHERE {w}"));
    }
    if !order_by.is_empty() {
        sql.push_str(&format!(" ORDER BY {}", order_by.iter().map(|o| o.to_string()).collect::<Vec<_>>().join(", ")));
    }
    if let Some(l) = limit {
        sql.push_str(&format!(" LIMIT {l}"));
    }
    sql.push_str(" FOR UPDATE");
    sql
}

/// A DELETE from a table with global indexes, over `parts`: lock the
/// matching rows, delete them by primary key, delete their index rows.
pub async fn delete(
    s: &mut Session,
    snap: &CatalogSnapshot,
    def: &TableDef,
    d: &datafusion::sql::sqlparser::ast::Delete,
    parts: &BTreeSet<usize>,
) -> Result<u64> {
    let st = StatementTxn::begin(s, true).await?;
    let db = s.db.clone();
    let r = async {
        let mut deleted = 0;
        let mut gone = Vec::new();
        for &p in parts {
            let mut pd = d.clone();
            let dn = def.partitions[p].dn;
            let mut names = PhysicalNames { snap, db: db.as_deref(), dn, partition: Some(p), alias: true };
            planner::to_physical(&mut pd, &mut names);
            let rel = match &pd.from {
                FromTable::WithFromKeyword(f) | FromTable::WithoutKeyword(f) => f[0].relation.to_string(),
            };
            let old = st
                .query(dn, &locking_select(def, &rel, pd.selection.as_ref(), &pd.order_by, pd.limit.as_ref()))
                .await?;
            for chunk in old.chunks(CHUNK) {
                let refs: Vec<&Row> = chunk.iter().collect();
                deleted += st.exec(dn, &format!("DELETE FROM {} WHERE {}", phys(def, p), pk_in(def, &refs)?)).await?;
            }
            gone.extend(old);
        }
        delete_index_rows(&st, def, def.global_indexes.iter(), &gone).await?;
        Ok(deleted)
    }
    .await;
    st.finish(s, r).await
}
