//! The plan cache for point SELECTs and global-index lookups: PolarDB-X's
//! parameterized plan cache, reduced to the statements that run whole on
//! one shard, or on one index partition and then the base rows' shards.
//!
//! A statement's literals are replaced by numbered placeholders
//! ([`parameterize`]: `SELECT c FROM t WHERE id=5` becomes
//! `SELECT c FROM t WHERE id=?0`), and that text (with the current
//! database) keys the cache. The first execution parses the parameterized
//! text ([`build`]); when it is a SELECT from one partitioned table whose
//! WHERE clause pins every partition-key column to a placeholder by
//! equality, the cache keeps a [`PointPlan`]: the physical SQL the router
//! would send, cut into pieces around the placeholders and the physical
//! table name, and which placeholders hold the partition key. Later
//! executions of the same text skip the SQL parser, the planner and the
//! SQL renderer: they hash the key literals to a partition
//! ([`crate::sharding::partition_for`]) and splice the client's literal
//! text into the template ([`PointPlan::physical_sql`]). Anything else is
//! cached as [`CachedPlan::Other`] so its parameterized text is parsed once
//! per catalog version, not per execution.
//!
//! A SELECT the optimizer answers by a lookup through a global index is
//! cached as a [`LookupPlan`]: its index query as a point template on the
//! index table, its base query as a template whose primary-key filter each
//! execution fills with the keys the index returned.
//!
//! Entries carry the catalog version they were built at; a DDL moves the
//! version and the next execution rebuilds the entry.

use crate::catalog::{CatalogSnapshot, TableDef};
use crate::planner::{column_ref, name_physical, resolve_name};
use datafusion::sql::sqlparser::ast::{
    visit_relations, BinaryOperator, Expr, Ident, Query, SelectItem, SetExpr, Statement, TableFactor, Value,
};
use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

/// Entries kept before the cache starts afresh (PolarDB-X's default plan
/// cache size is 4,000 entries).
pub const CAPACITY: usize = 4096;

/// One literal of a statement, as the client wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param<'a> {
    /// The literal's text in the statement (`5`, `'ab''c'`).
    pub raw: &'a str,
    /// Its value as the router reads it (`5`, `ab'c`).
    pub value: Cow<'a, str>,
}

/// A statement with its literals replaced by `?0`, `?1`, … in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameterized<'a> {
    pub text: String,
    pub params: Vec<Param<'a>>,
}

/// Replaces the number and single-quoted string literals of `sql` by
/// numbered placeholders. `None` for a statement the cache leaves alone:
/// one with comments, `?` placeholders, user or system variables,
/// double-quoted strings (a string or an identifier, by `sql_mode`),
/// backslash escapes, introducers or hexadecimal/bit literals (`_utf8'a'`,
/// `x'0f'`, `0x0f`), or an unterminated quote.
pub fn parameterize(sql: &str) -> Option<Parameterized<'_>> {
    let b = sql.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80;
    let mut text = String::with_capacity(sql.len() + 8);
    let mut params = Vec::new();
    let mut i = 0;
    let mut copied = 0; // sql[copied..i] is still to be copied into `text`
    while i < b.len() {
        match b[i] {
            b'\'' => {
                let start = i;
                i += 1;
                let mut doubled = false;
                loop {
                    match b.get(i)? {
                        b'\\' => return None,
                        b'\'' if b.get(i + 1) == Some(&b'\'') => {
                            doubled = true;
                            i += 2;
                        }
                        b'\'' => break,
                        _ => i += 1,
                    }
                }
                i += 1;
                let raw = &sql[start..i];
                let inner = &raw[1..raw.len() - 1];
                let value = if doubled { Cow::Owned(inner.replace("''", "'")) } else { Cow::Borrowed(inner) };
                push_param(&mut text, &mut params, &sql[copied..start], raw, value);
                copied = i;
            }
            b'`' => {
                i += 1;
                loop {
                    match b.get(i)? {
                        b'`' if b.get(i + 1) == Some(&b'`') => i += 2,
                        b'`' => break,
                        b'?' | 1 | 2 => return None,
                        _ => i += 1,
                    }
                }
                i += 1;
            }
            b'0'..=b'9' => {
                let start = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                if b.get(i) == Some(&b'.') {
                    i += 1;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                if matches!(b.get(i), Some(b'e' | b'E'))
                    && (b.get(i + 1).is_some_and(u8::is_ascii_digit)
                        || (matches!(b.get(i + 1), Some(b'+' | b'-')) && b.get(i + 2).is_some_and(u8::is_ascii_digit)))
                {
                    i += 2;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                // `1abc` is an identifier in MySQL, `0x1f` a hexadecimal literal.
                if b.get(i).is_some_and(|&c| ident(c) || c == b'\'') {
                    return None;
                }
                let raw = &sql[start..i];
                push_param(&mut text, &mut params, &sql[copied..start], raw, Cow::Borrowed(raw));
                copied = i;
            }
            c if ident(c) => {
                while i < b.len() && ident(b[i]) {
                    i += 1;
                }
                // An introducer or a typed literal: `_utf8mb4'a'`, `x'0f'`, `N'a'`.
                if matches!(b.get(i), Some(b'\'' | b'"')) {
                    return None;
                }
            }
            b'?' | b'@' | b'"' | b'#' | 1 | 2 => return None,
            b'/' if b.get(i + 1) == Some(&b'*') => return None,
            b'-' if b.get(i + 1) == Some(&b'-') => return None,
            _ => i += 1,
        }
    }
    text.push_str(&sql[copied..]);
    Some(Parameterized { text, params })
}

fn push_param<'a>(text: &mut String, params: &mut Vec<Param<'a>>, before: &str, raw: &'a str, value: Cow<'a, str>) {
    use std::fmt::Write;
    text.push_str(before);
    let _ = write!(text, "?{}", params.len());
    params.push(Param { raw, value });
}

/// A piece of a [`PointPlan`]'s physical SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// The literal of placeholder `n`, as the client wrote it.
    Param(usize),
    /// The physical table of the partition the key hashes to.
    Table,
    /// A [`LookupPlan`]'s primary-key filter.
    Keys,
}

/// A cached point SELECT: one partitioned table, its partition key pinned
/// by placeholders.
#[derive(Debug)]
pub struct PointPlan {
    table: Arc<TableDef>,
    /// For each partition-key column in order, the placeholder holding its value.
    key_params: Vec<usize>,
    pieces: Vec<Piece>,
}

impl PointPlan {
    /// The DN and the physical SQL for one execution: `None` when the
    /// literals do not name one partition as the router would read them
    /// (a key value of the wrong type, or no partition for it), which the
    /// caller answers the uncached way.
    pub fn physical_sql(&self, params: &[Param<'_>]) -> Option<(u32, String)> {
        let key: Vec<Option<&str>> = self.key_params.iter().map(|&i| Some(params.get(i)?.value.as_ref())).collect();
        let p = crate::sharding::partition_for(&self.table, &key).ok()?;
        let part = self.table.partitions.get(p)?;
        Some((part.dn, render(&self.pieces, params, &part.phys_table, "")?))
    }
}

/// A template's text for one execution: the client's literals, the
/// physical table `table` and the key filter `keys` spliced in.
fn render(pieces: &[Piece], params: &[Param<'_>], table: &str, keys: &str) -> Option<String> {
    let mut sql = String::with_capacity(128 + keys.len());
    for piece in pieces {
        match piece {
            Piece::Text(t) => sql.push_str(t),
            Piece::Param(n) => sql.push_str(params.get(*n)?.raw),
            Piece::Table => sql.push_str(table),
            Piece::Keys => sql.push_str(keys),
        }
    }
    Some(sql)
}

/// A cached SELECT through a global index ([`crate::gsi::select`]'s
/// lookup): the index query, pinned by placeholders to one index
/// partition, gives the primary keys; the base query, a template with the
/// primary-key filter left open, reads their rows, one physical query per
/// DN. Later executions skip the parser, the index choice and the planner,
/// as for a [`PointPlan`].
#[derive(Debug)]
pub struct LookupPlan {
    /// The index query: the primary keys of the matching index rows
    /// (at most [`crate::gsi::select::LOOKUP_LIMIT`] + 1).
    pub index: PointPlan,
    /// The base table, partitioned with its partition key inside its
    /// primary key ([`crate::gsi::select::direct_lookup_possible`]).
    table: Arc<TableDef>,
    /// The name the base query gives the table (its alias, else its name).
    qualifier: String,
    /// The base query (row-wise: its answer over several partitions is
    /// the concatenation of theirs) with `AND <keys>` added to its WHERE.
    base: Vec<Piece>,
}

impl LookupPlan {
    /// The lookup of `keys` (the index query's rows) as
    /// [`crate::gsi::select::lookup_per_dn`] builds it: per DN, the
    /// partitions' base queries joined by `UNION ALL`, in DN order. `None`
    /// when a key does not route here; the caller takes the planned way.
    pub fn base_per_dn(&self, params: &[Param<'_>], keys: &[crate::gsi::Row]) -> Option<Vec<(u32, String)>> {
        let by_partition = crate::gsi::select::keys_by_partition(&self.table, keys).ok()??;
        let mut queries = Vec::with_capacity(by_partition.len());
        for (p, rows) in by_partition {
            let part = self.table.partitions.get(p)?;
            let keys = crate::gsi::select::key_predicate(&self.table, &self.qualifier, &rows);
            queries.push((part.dn, render(&self.base, params, &part.phys_table, &keys)?));
        }
        Some(crate::gsi::select::union_per_dn(queries))
    }
}

/// What the cache knows about one parameterized statement.
#[derive(Debug)]
pub enum CachedPlan {
    Point(PointPlan),
    /// A lookup through a global index.
    Lookup(LookupPlan),
    /// Not a point SELECT: the statement takes the parser and planner.
    Other,
}

/// A cache entry: the plan and the catalog version it was built at.
#[derive(Debug)]
pub struct Entry {
    pub version: u64,
    pub plan: CachedPlan,
}

/// The CN-wide plan cache, keyed by current database and parameterized
/// text. Counters are reported by `SHOW STATUS LIKE 'Cn_plan_cache%'`.
#[derive(Debug, Default)]
pub struct PlanCache {
    entries: Mutex<HashMap<String, Arc<Entry>>>,
}

impl PlanCache {
    /// The cache key of a parameterized text in database `db`.
    pub fn key(db: Option<&str>, text: &str) -> String {
        format!("{}\u{0}{text}", db.unwrap_or(""))
    }

    /// The entry for `key` if it was built at catalog `version`.
    pub fn get(&self, key: &str, version: u64) -> Option<Arc<Entry>> {
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key).filter(|e| e.version == version).cloned()
    }

    /// Stores an entry; a full cache is emptied first.
    pub fn insert(&self, key: String, entry: Arc<Entry>) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= CAPACITY && !map.contains_key(&key) {
            map.clear();
        }
        map.insert(key, entry);
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Builds the entry for a parameterized `text` in database `db` at the
/// catalog `snap`. `unchanged_by_session` says whether the session's
/// substitutions (`DATABASE()`, `@@var`, …) leave a query as it is; a query
/// they would change is not cached as a point plan.
pub fn build(
    snap: &CatalogSnapshot,
    db: Option<&str>,
    text: &str,
    unchanged_by_session: impl FnOnce(&Query) -> bool,
) -> Entry {
    let plan = plan(snap, db, text, unchanged_by_session).unwrap_or(CachedPlan::Other);
    Entry { version: snap.version, plan }
}

fn plan(
    snap: &CatalogSnapshot,
    db: Option<&str>,
    text: &str,
    unchanged_by_session: impl FnOnce(&Query) -> bool,
) -> Option<CachedPlan> {
    let mut stmts = crate::planner::extract::parse(text).ok()?;
    let Some(Statement::Query(mut q)) = stmts.pop() else { return None };
    if !stmts.is_empty() || q.with.is_some() || !q.locks.is_empty() || q.for_clause.is_some() {
        return None;
    }
    // Computed items named by their text; an item with a literal is named
    // by each execution's own literal, which the template cannot splice.
    crate::planner::names::name_as_typed(&mut q, text);
    let mut relations = 0;
    let _ = visit_relations(&q, |_| {
        relations += 1;
        ControlFlow::<()>::Continue(())
    });
    let SetExpr::Select(sel) = q.body.as_ref() else { return None };
    if sel.projection.iter().any(|i| matches!(i, SelectItem::ExprWithAlias { alias, .. } if alias.value.contains('?')))
    {
        return None;
    }
    // SQL_CALC_FOUND_ROWS and the other modifiers take the planner's way.
    if relations != 1
        || sel.from.len() != 1
        || !sel.from[0].joins.is_empty()
        || sel.into.is_some()
        || sel.select_modifiers.is_some()
    {
        return None;
    }
    let TableFactor::Table { name, args: None, with_hints, index_hints, partitions, .. } = &sel.from[0].relation else {
        return None;
    };
    if !with_hints.is_empty() || !partitions.is_empty() {
        return None;
    }
    let (d, t) = resolve_name(name, db).ok()?;
    let table = snap.base_table(&d, &t)?.clone();
    if !unchanged_by_session(&q) {
        return None;
    }
    if table.is_partitioned() && index_hints.is_empty() {
        if let Some(point) = point_template(&q, table, db) {
            return Some(CachedPlan::Point(point));
        }
    }
    lookup_plan(snap, db, *q).map(CachedPlan::Lookup)
}

/// The [`PointPlan`] of `q`, a SELECT from `table` (partitioned) alone:
/// `None` unless every partition-key column is pinned by exactly one
/// `col = ?n` conjunct.
fn point_template(q: &Query, table: Arc<TableDef>, db: Option<&str>) -> Option<PointPlan> {
    let SetExpr::Select(sel) = q.body.as_ref() else { return None };
    let TableFactor::Table { name, alias, .. } = &sel.from[0].relation else { return None };
    let (d, t) = resolve_name(name, db).ok()?;
    let qualifier = alias.as_ref().map_or(t.as_str(), |a| a.name.value.as_str()).to_ascii_lowercase();
    let mut pins: Vec<(String, usize)> = Vec::new();
    pinned_columns(sel.selection.as_ref()?, &qualifier, &mut pins);
    let key_params = table
        .partitioning
        .key_columns()
        .iter()
        .map(|k| match pins.iter().filter(|(c, _)| c == k).collect::<Vec<_>>().as_slice() {
            [(_, n)] => Some(*n),
            _ => None,
        })
        .collect::<Option<Vec<usize>>>()?;
    let pieces = physical_template(q.clone(), d, t)?;
    Some(PointPlan { table, key_params, pieces })
}

/// The router's physical SQL of a single-table SELECT `q` of table `t` in
/// database `d`, cut into [`Piece`]s, with a marker for the table name.
fn physical_template(mut physical: Query, d: String, t: String) -> Option<Vec<Piece>> {
    let SetExpr::Select(sel) = physical.body.as_mut() else { return None };
    let TableFactor::Table { name, alias, .. } = &mut sel.from[0].relation else { return None };
    name_physical(name, alias, d, TABLE_MARK.into(), Some(t));
    pieces(&physical.to_string())
}

/// The [`LookupPlan`] of `q` when the optimizer reads it through a global
/// index by lookup ([`crate::gsi::select::choose_parameterized`]), the
/// index query pins one index partition, and the lookup can go straight
/// to the base partitions.
fn lookup_plan(snap: &CatalogSnapshot, db: Option<&str>, mut q: Query) -> Option<LookupPlan> {
    use crate::gsi::select::{choose_parameterized, direct_lookup_possible, Choice};
    let Choice::Lookup { index_query, base, table, qualifier, .. } = choose_parameterized(snap, db, &mut q).ok()??
    else {
        return None;
    };
    if !direct_lookup_possible(&table) || !crate::planner::gather::row_wise(&base) {
        return None;
    }
    let SetExpr::Select(sel) = index_query.body.as_ref() else { return None };
    let TableFactor::Table { name, .. } = &sel.from[0].relation else { return None };
    let (d, t) = resolve_name(name, db).ok()?;
    let index_table = snap.table(&d, &t)?.clone();
    if !index_table.is_partitioned() {
        return None;
    }
    let index = point_template(&index_query, index_table, db)?;
    // The base query with the key filter to come: `(WHERE) AND <keys>`.
    let mut base = *base;
    let SetExpr::Select(sel) = base.body.as_mut() else { return None };
    let keys = Expr::Identifier(Ident::new(KEYS_MARK));
    sel.selection = Some(match sel.selection.take() {
        Some(e) => {
            Expr::BinaryOp { left: Box::new(Expr::Nested(Box::new(e))), op: BinaryOperator::And, right: Box::new(keys) }
        }
        None => keys,
    });
    let TableFactor::Table { name, .. } = &sel.from[0].relation else { return None };
    let (d, t) = resolve_name(name, db).ok()?;
    let base = physical_template(base, d, t)?;
    Some(LookupPlan { index, table, qualifier, base })
}

/// Stands for the physical table name in a rendered template.
const TABLE_MARK: &str = "\u{1}";
/// Stands for a [`LookupPlan`]'s primary-key filter in a rendered template.
const KEYS_MARK: &str = "\u{2}";

/// `col = ?n` conjuncts of a WHERE clause whose column belongs to the
/// table (unqualified or qualified by `qualifier`): (column, n).
fn pinned_columns(e: &Expr, qualifier: &str, out: &mut Vec<(String, usize)>) {
    match e {
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
            pinned_columns(left, qualifier, out);
            pinned_columns(right, qualifier, out);
        }
        Expr::BinaryOp { left, op: BinaryOperator::Eq, right } => {
            let pin = match (column_ref(left), placeholder(right)) {
                (Some(c), Some(n)) => Some((c, n)),
                _ => column_ref(right).zip(placeholder(left)),
            };
            if let Some(((q, c), n)) = pin {
                if q.is_empty() || q == qualifier {
                    out.push((c, n));
                }
            }
        }
        Expr::Nested(e) => pinned_columns(e, qualifier, out),
        _ => {}
    }
}

/// `n` of a `?n` placeholder.
fn placeholder(e: &Expr) -> Option<usize> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Placeholder(p) => p.strip_prefix('?')?.parse().ok(),
            _ => None,
        },
        Expr::Nested(e) => placeholder(e),
        _ => None,
    }
}

/// Cuts a rendered template at its `?n` placeholders and table marks.
/// `None` when the text holds a `?` that is not a placeholder.
fn pieces(rendered: &str) -> Option<Vec<Piece>> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut chars = rendered.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '?' => {
                let mut end = i + 1;
                while let Some((j, d)) = chars.peek().copied() {
                    if !d.is_ascii_digit() {
                        break;
                    }
                    end = j + 1;
                    chars.next();
                }
                let n = rendered[i + 1..end].parse().ok()?;
                out.push(Piece::Text(std::mem::take(&mut text)));
                out.push(Piece::Param(n));
            }
            '\u{1}' => {
                out.push(Piece::Text(std::mem::take(&mut text)));
                out.push(Piece::Table);
            }
            '\u{2}' => {
                out.push(Piece::Text(std::mem::take(&mut text)));
                out.push(Piece::Keys);
            }
            c => text.push(c),
        }
    }
    out.push(Piece::Text(text));
    out.retain(|p| !matches!(p, Piece::Text(t) if t.is_empty()));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str) -> Option<(String, Vec<(String, String)>)> {
        let p = parameterize(sql)?;
        Some((p.text, p.params.iter().map(|p| (p.raw.to_string(), p.value.to_string())).collect()))
    }

    #[test]
    fn literals_become_numbered_placeholders() {
        let (text, params) = texts("SELECT c FROM sbtest1 WHERE id=5017").unwrap();
        assert_eq!(text, "SELECT c FROM sbtest1 WHERE id=?0");
        assert_eq!(params, vec![("5017".into(), "5017".into())]);
        let (text, params) = texts("select a, 'x' from `t1` where k = 'it''s' and v > 1.5e3 limit 10").unwrap();
        assert_eq!(text, "select a, ?0 from `t1` where k = ?1 and v > ?2 limit ?3");
        let values: Vec<&str> = params.iter().map(|p| p.1.as_str()).collect();
        assert_eq!(values, ["x", "it's", "1.5e3", "10"]);
        assert_eq!(params[1].0, "'it''s'");
        // Digits inside identifiers stay.
        assert_eq!(texts("SELECT c1 FROM t2 WHERE t2.c1 = 3").unwrap().0, "SELECT c1 FROM t2 WHERE t2.c1 = ?0");
    }

    #[test]
    fn statements_the_cache_leaves_alone() {
        for sql in [
            "SELECT 1 /* c */",
            "SELECT 1 -- c",
            "SELECT 1 # c",
            "SELECT ?",
            "SELECT @x",
            "SELECT @@version",
            "SELECT \"a\"",
            "SELECT 'a\\'b'",
            "SELECT _utf8mb4'a'",
            "SELECT x'0f'",
            "SELECT 0x0f",
            "SELECT 1abc FROM t",
            "SELECT 'open",
            "SELECT `a?` FROM t",
        ] {
            assert_eq!(parameterize(sql), None, "{sql}");
        }
    }

    #[test]
    fn pieces_split_at_placeholders_and_the_table_mark() {
        let p = pieces("SELECT c FROM `d`.`\u{1}` AS `t` WHERE id = ?0 LIMIT ?12").unwrap();
        assert_eq!(
            p,
            vec![
                Piece::Text("SELECT c FROM `d`.`".into()),
                Piece::Table,
                Piece::Text("` AS `t` WHERE id = ".into()),
                Piece::Param(0),
                Piece::Text(" LIMIT ".into()),
                Piece::Param(12),
            ]
        );
        assert_eq!(pieces("SELECT ? FROM t"), None);
    }
}
