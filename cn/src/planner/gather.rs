//! Gather: a SELECT that only filters and projects the rows of one sharded
//! table runs as its shards' own SQL, one `UNION ALL` query per DN, and
//! the CN sends the DNs' answers one after the other (PolarDB-X's Gather
//! over a LogicalView whose physical tables on one DN are merged into one
//! query). Nothing of the query runs on the CN: no DataFusion plan, no
//! conversion of rows, and every expression is MariaDB's own.
//!
//! Partitions are pruned by an `IN` list or a `BETWEEN` on a one-column
//! partition key (a point on the key already routes the query to one
//! DN, [`super::route_query`]); otherwise every partition is read.
//!
//! `ORDER BY` columns of the answer, `DISTINCT` and `LIMIT` gather too
//! (PolarDB-X's MergeSort over LogicalViews): each DN sorts (and
//! deduplicates, and limits to `offset + count` rows) its partitions'
//! union, and the CN merges the DNs' sorted answers ([`Merge`]), dropping
//! a row equal to the one before under DISTINCT and applying the LIMIT.
//! The CN compares values as MariaDB does only for some types
//! ([`KeyKind`]); with another sort column the statement is planned.
//!
//! COUNT, SUM, MIN and MAX without GROUP BY gather as one partial row per
//! partition, folded on the CN ([`fold`]).

use super::{in_lists, literal_text, resolve_name, PhysicalNames};
use crate::catalog::{CatalogSnapshot, TableDef};
use crate::executor::table::{key_value_partitions, narrow_in_list};
use crate::protocol::resultset::TextRow;
use crate::sharding::partition_for;
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, GroupByExpr, Query, SelectItem, SetExpr, TableFactor, Visit, Visitor,
};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

/// Whether `q` only filters and projects the rows of its one table: no
/// aggregate or window function, GROUP BY, HAVING, DISTINCT, ORDER BY,
/// LIMIT, locking clause, CTE or subquery. Its answer over several
/// partitions is then the concatenation of the partitions' answers.
pub(crate) fn row_wise(q: &Query) -> bool {
    /// Finds an aggregate, a window function or a subquery.
    struct NotRowWise(bool);
    impl Visitor for NotRowWise {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            let found = match e {
                Expr::Function(f) => {
                    let name = f.name.to_string().to_ascii_lowercase();
                    f.over.is_some() || crate::optimizer::semantics::AGGREGATES.contains(&name.as_str())
                }
                Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => true,
                _ => false,
            };
            if found {
                self.0 = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    if q.with.is_some() || q.order_by.is_some() || q.limit_clause.is_some() || q.fetch.is_some() || !q.locks.is_empty()
    {
        return false;
    }
    let SetExpr::Select(sel) = q.body.as_ref() else { return false };
    let grouped = match &sel.group_by {
        GroupByExpr::Expressions(v, m) => !v.is_empty() || !m.is_empty(),
        GroupByExpr::All(_) => true,
    };
    if grouped || sel.having.is_some() || sel.distinct.is_some() || sel.qualify.is_some() || sel.into.is_some() {
        return false;
    }
    // FOUND_ROWS() after SQL_CALC_FOUND_ROWS counts the whole answer.
    if sel.select_modifiers.as_ref().is_some_and(|m| m.sql_calc_found_rows) {
        return false;
    }
    let mut found = NotRowWise(false);
    let _ = q.visit(&mut found);
    !found.0
}

/// A gathered SELECT: its per-DN queries, and how their answers make the
/// statement's.
#[derive(Debug, Clone, PartialEq)]
pub struct Gather {
    /// Per DN, in DN order, the physical query of its partitions.
    pub per_dn: Vec<(u32, String)>,
    pub combine: Combine,
}

/// How the DNs' answers make the statement's.
#[derive(Debug, Clone, PartialEq)]
pub enum Combine {
    /// One after the other.
    Concat,
    /// Merged by sort keys ([`Merge`]).
    Merge(Merge),
    /// One row per partition of partial aggregates, one per answer column,
    /// folded into one row (an aggregate without GROUP BY).
    Aggregate(Vec<Aggregate>),
}

/// An aggregate the CN folds from per-partition partial results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    /// `COUNT(…)`: the sum of the counts.
    Count,
    /// `SUM(…)`: the exact sum of the partial sums (DECIMAL or integer
    /// answers only), NULL when all are NULL.
    Sum,
    /// `MIN(column)`, `MAX(column)`: the least or greatest non-NULL value.
    Min,
    Max,
}

/// How the DNs' answers merge: each is sorted by `keys`; the merged rows
/// skip `offset`, stop after `limit`, and with `distinct` drop a row equal
/// (every column a key) to the one before.
#[derive(Debug, Clone, PartialEq)]
pub struct Merge {
    pub keys: Vec<SortKey>,
    pub distinct: bool,
    pub offset: u64,
    pub limit: Option<u64>,
}

impl std::fmt::Display for Combine {
    /// EXPLAIN's line: `MergeSort by 2 DESC, 1, distinct, offset 5, limit 10`, `Aggregate COUNT, SUM`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Combine::Concat => write!(f, "Concat"),
            Combine::Merge(m) => {
                let keys: Vec<String> = m.keys.iter().map(SortKey::to_string).collect();
                write!(f, "MergeSort by {}", keys.join(", "))?;
                if m.distinct {
                    write!(f, ", distinct")?;
                }
                if m.offset > 0 {
                    write!(f, ", offset {}", m.offset)?;
                }
                match m.limit {
                    Some(l) => write!(f, ", limit {l}"),
                    None => Ok(()),
                }
            }
            Combine::Aggregate(a) => {
                let names: Vec<String> = a.iter().map(|x| format!("{x:?}").to_ascii_uppercase()).collect();
                write!(f, "Aggregate {}", names.join(", "))
            }
        }
    }
}

/// One sort column: its position in the answer (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey {
    pub column: usize,
    pub descending: bool,
}

impl std::fmt::Display for SortKey {
    /// As a positional ORDER BY item: `2 DESC`, `1`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.column + 1, if self.descending { " DESC" } else { "" })
    }
}

/// The physical queries of `q` when it can be gathered: a SELECT from one
/// partitioned table (no join, no table function, no subquery, aggregate
/// or window function, GROUP BY, HAVING or locking clause) whose ORDER BY
/// items, if any, are columns of its answer. Each DN gets the query on
/// each of its partitions the WHERE clause may match, joined by `UNION
/// ALL` (`UNION` under DISTINCT) and then sorted and limited as a whole.
/// `None` when the query cannot be gathered (the caller plans it in
/// DataFusion).
pub fn plan(snap: &CatalogSnapshot, db: Option<&str>, q: &Query) -> Option<Gather> {
    if let Some(g) = plan_aggregate(snap, db, q) {
        return Some(g);
    }
    let mut core = q.clone();
    let order = core.order_by.take();
    let limit = core.limit_clause.take();
    let distinct = match core.body.as_mut() {
        SetExpr::Select(sel) => match sel.distinct.take() {
            None => false,
            Some(datafusion::sql::sqlparser::ast::Distinct::Distinct) => true,
            Some(_) => return None, // DISTINCT ON
        },
        _ => return None,
    };
    if !row_wise(&core) {
        return None;
    }
    let SetExpr::Select(sel) = core.body.as_ref() else { return None };
    let (def, qualifier) = gathered_table(snap, db, sel)?;
    let outputs = outputs(def, &sel.projection)?;
    let mut keys = match &order {
        Some(o) => sort_keys(o, &outputs, &qualifier)?,
        None => Vec::new(),
    };
    if distinct {
        // Equal rows must meet in the merge: every column is a key.
        for column in 0..outputs.len() {
            if !keys.iter().any(|k| k.column == column) {
                keys.push(SortKey { column, descending: false });
            }
        }
    }
    // The CN merges only what it orders as MariaDB does; the DN's answer
    // does not tell (an ENUM in a UNION comes back as a string).
    let mergeable = |k: &SortKey| match &outputs[k.column].column {
        Some(name) => def.column(name).is_some_and(|c| orders_as_mariadb(def, c)),
        None => false,
    };
    if !keys.iter().all(mergeable) {
        return None;
    }
    let (offset, count) = match &limit {
        Some(l) => limits(l)?,
        None => (0, None),
    };
    let combine = match !keys.is_empty() || count.is_some() {
        true => Combine::Merge(Merge { keys: keys.clone(), distinct, offset, limit: count }),
        false => Combine::Concat,
    };
    // A branch keeps DISTINCT; under a LIMIT it is sorted and limited too.
    let mut branch = q.clone();
    branch.order_by = if count.is_some() { order } else { None };
    branch.limit_clause = None;
    let mut tail = String::new();
    if !keys.is_empty() {
        let items: Vec<String> = keys.iter().map(SortKey::to_string).collect();
        tail.push_str(&format!(" ORDER BY {}", items.join(", ")));
    }
    if let Some(n) = count {
        let rows = offset.saturating_add(n);
        tail.push_str(&format!(" LIMIT {rows}"));
        if branch.order_by.is_some() || keys.is_empty() {
            branch.limit_clause = Some(datafusion::sql::sqlparser::ast::LimitClause::LimitOffset {
                limit: Some(Expr::value(datafusion::sql::sqlparser::ast::Value::Number(rows.to_string(), false))),
                offset: None,
                limit_by: vec![],
            });
        }
    }
    let by_dn = branches(snap, db, def, sel.selection.as_ref(), &branch)?;
    let union = if distinct { ") UNION (" } else { ") UNION ALL (" };
    let per_dn = by_dn
        .into_iter()
        .map(|(dn, qs)| {
            let sql = match (qs.as_slice(), tail.is_empty()) {
                ([one], true) => one.clone(),
                _ => format!("({}){tail}", qs.join(union)),
            };
            (dn, sql)
        })
        .collect();
    Some(Gather { per_dn, combine })
}

/// The table a gathered query reads: the one partitioned table of its
/// FROM clause (no join, table function or hint), with its qualifier.
fn gathered_table<'a>(
    snap: &'a CatalogSnapshot,
    db: Option<&str>,
    sel: &datafusion::sql::sqlparser::ast::Select,
) -> Option<(&'a std::sync::Arc<TableDef>, String)> {
    let [from] = sel.from.as_slice() else { return None };
    if !from.joins.is_empty() {
        return None;
    }
    let TableFactor::Table { name, alias, args: None, with_hints, .. } = &from.relation else { return None };
    if !with_hints.is_empty() {
        return None;
    }
    let (d, t) = resolve_name(name, db).ok()?;
    let def = snap.table(&d, &t)?;
    if !def.is_partitioned() {
        return None;
    }
    Some((def, alias.as_ref().map(|a| a.name.value.to_ascii_lowercase()).unwrap_or(t)))
}

/// `q` as partial aggregates per partition when every answer column is
/// `COUNT`, `SUM`, `MIN` or `MAX` (no DISTINCT, FILTER or OVER; MIN and
/// MAX of a column the CN orders as MariaDB does) over one partitioned
/// table, without GROUP BY, HAVING, ORDER BY or LIMIT: each partition
/// answers the query itself, a DN the UNION ALL of its partitions.
fn plan_aggregate(snap: &CatalogSnapshot, db: Option<&str>, q: &Query) -> Option<Gather> {
    use datafusion::sql::sqlparser::ast::{FunctionArg, FunctionArgExpr, FunctionArguments};
    if q.order_by.is_some() || q.limit_clause.is_some() {
        return None;
    }
    let SetExpr::Select(sel) = q.body.as_ref() else { return None };
    let (def, _) = gathered_table(snap, db, sel)?;
    // The aggregates' arguments in place of the answer: that query must be
    // row-wise (no nested aggregate, subquery, GROUP BY, …).
    let mut probe = q.clone();
    let mut aggregates = Vec::new();
    let mut arguments = Vec::new();
    for item in &sel.projection {
        let (SelectItem::UnnamedExpr(Expr::Function(f)) | SelectItem::ExprWithAlias { expr: Expr::Function(f), .. }) =
            item
        else {
            return None;
        };
        let FunctionArguments::List(list) = &f.args else { return None };
        if f.filter.is_some() || f.over.is_some() || list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
            return None;
        }
        let arg = match list.args.as_slice() {
            [FunctionArg::Unnamed(FunctionArgExpr::Expr(e))] => Some(e.clone()),
            [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)] => None,
            _ => return None,
        };
        let aggregate = match (f.name.to_string().to_ascii_lowercase().as_str(), &arg) {
            ("count", _) => Aggregate::Count,
            ("sum", Some(_)) => Aggregate::Sum,
            (m @ ("min" | "max"), Some(e)) => {
                let (_, c) = super::column_ref(e)?;
                if !def.column(&c).is_some_and(|c| orders_as_mariadb(def, c)) {
                    return None;
                }
                if m == "min" {
                    Aggregate::Min
                } else {
                    Aggregate::Max
                }
            }
            _ => return None,
        };
        aggregates.push(aggregate);
        arguments.push(SelectItem::UnnamedExpr(
            arg.unwrap_or(Expr::value(datafusion::sql::sqlparser::ast::Value::Number("1".into(), false))),
        ));
    }
    if let SetExpr::Select(p) = probe.body.as_mut() {
        p.projection = arguments;
    }
    if aggregates.is_empty() || !row_wise(&probe) {
        return None;
    }
    let by_dn = branches(snap, db, def, sel.selection.as_ref(), q)?;
    let per_dn = by_dn.into_iter().map(|(dn, qs)| (dn, crate::executor::shard_scan::union_all(&qs))).collect();
    Some(Gather { per_dn, combine: Combine::Aggregate(aggregates) })
}

/// Folds the per-partition rows of partial aggregates into the answer's
/// one row; `kinds` are the answer columns' comparisons (MIN, MAX).
/// `None` when a partial SUM is not an exact number the CN can add (a
/// DOUBLE, or a DECIMAL beyond 38 digits).
pub fn fold(aggregates: &[Aggregate], kinds: &[Option<KeyKind>], rows: &[TextRow]) -> Option<TextRow> {
    let mut out = Vec::with_capacity(aggregates.len());
    for (i, a) in aggregates.iter().enumerate() {
        let values = rows.iter().filter_map(|r| r.get(i).and_then(|v| v.as_deref()));
        let folded: Option<Vec<u8>> = match a {
            Aggregate::Count | Aggregate::Sum => {
                let mut total: Option<(i128, u32)> = None;
                for v in values {
                    let x = parse_decimal(std::str::from_utf8(v).ok()?)?;
                    total = Some(match total {
                        None => x,
                        Some(t) => add_decimal(t, x)?,
                    });
                }
                match (a, total) {
                    (Aggregate::Count, None) => Some(b"0".to_vec()),
                    (_, t) => t.map(|t| format_decimal(t).into_bytes()),
                }
            }
            Aggregate::Min | Aggregate::Max => {
                let kind = (*kinds.get(i)?)?;
                let mut best: Option<&[u8]> = None;
                for v in values {
                    let better = match best {
                        None => true,
                        Some(b) => {
                            let o = kind.compare(Some(v), Some(b));
                            if *a == Aggregate::Min {
                                o.is_lt()
                            } else {
                                o.is_gt()
                            }
                        }
                    };
                    if better {
                        best = Some(v);
                    }
                }
                best.map(<[u8]>::to_vec)
            }
        };
        out.push(folded);
    }
    Some(out)
}

/// A decimal's text as (digits without the point, digits after it):
/// `-12.50` is `(-1250, 2)`. `None` beyond 38 digits, or not a decimal.
fn parse_decimal(s: &str) -> Option<(i128, u32)> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut m: i128 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        m = m.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
    }
    Some((if neg { -m } else { m }, frac.len() as u32))
}

/// The exact sum of two [`parse_decimal`] values, at the larger scale.
fn add_decimal(a: (i128, u32), b: (i128, u32)) -> Option<(i128, u32)> {
    let scale = a.1.max(b.1);
    let up = |(m, s): (i128, u32)| m.checked_mul(10i128.checked_pow(scale - s)?);
    Some((up(a)?.checked_add(up(b)?)?, scale))
}

/// A [`parse_decimal`] value as MariaDB prints a DECIMAL (`-12.50`).
fn format_decimal((m, scale): (i128, u32)) -> String {
    let digits = m.unsigned_abs().to_string();
    let scale = scale as usize;
    let body = if scale == 0 {
        digits
    } else {
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (int, frac) = padded.split_at(padded.len() - scale);
        format!("{int}.{frac}")
    };
    if m < 0 {
        format!("-{body}")
    } else {
        body
    }
}

/// One column of a SELECT's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Output {
    /// The table column it shows as it is (lower-case); `None`: an expression.
    column: Option<String>,
    /// Its alias (lower-case), if it has one.
    alias: Option<String>,
}

/// The columns of the answer of `projection` over `def`. `None` for a
/// projection this module does not follow.
fn outputs(def: &TableDef, projection: &[SelectItem]) -> Option<Vec<Output>> {
    let mut out = Vec::new();
    for item in projection {
        match item {
            SelectItem::Wildcard(o) | SelectItem::QualifiedWildcard(_, o) => {
                if o.opt_exclude.is_some()
                    || o.opt_except.is_some()
                    || o.opt_replace.is_some()
                    || o.opt_rename.is_some()
                {
                    return None;
                }
                out.extend(def.visible_columns().map(|c| Output { column: Some(c.name.clone()), alias: None }));
            }
            SelectItem::UnnamedExpr(e) => {
                out.push(Output { column: super::column_ref(e).map(|(_, c)| c), alias: None })
            }
            SelectItem::ExprWithAlias { expr, alias } => out.push(Output {
                column: super::column_ref(expr).map(|(_, c)| c),
                alias: Some(alias.value.to_ascii_lowercase()),
            }),
            _ => return None,
        }
    }
    Some(out)
}

/// The answer columns an ORDER BY sorts by: positions (`ORDER BY 2`),
/// aliases of columns, or columns the answer shows. `None` for anything
/// else (an expression, a column not in the answer, NULLS FIRST/LAST).
fn sort_keys(
    order: &datafusion::sql::sqlparser::ast::OrderBy,
    outputs: &[Output],
    qualifier: &str,
) -> Option<Vec<SortKey>> {
    use datafusion::sql::sqlparser::ast::{OrderByKind, Value};
    let OrderByKind::Expressions(items) = &order.kind else { return None };
    let mut keys = Vec::new();
    for item in items {
        if item.options.nulls_first.is_some() || item.with_fill.is_some() {
            return None;
        }
        let column = match &item.expr {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) => {
                    let i = n.parse::<usize>().ok()?.checked_sub(1)?;
                    outputs.get(i)?.column.as_ref().map(|_| i)?
                }
                _ => return None,
            },
            e => {
                let (q, c) = super::column_ref(e)?;
                if !q.is_empty() && q != qualifier {
                    return None;
                }
                // MySQL reads an unqualified name as an alias first.
                let by_alias = outputs.iter().position(|o| o.alias.as_deref() == Some(&c));
                match by_alias.filter(|_| q.is_empty()) {
                    Some(i) => outputs[i].column.as_ref().map(|_| i)?,
                    None => outputs.iter().position(|o| o.column.as_deref() == Some(&c))?,
                }
            }
        };
        keys.push(SortKey { column, descending: item.options.asc == Some(false) });
    }
    Some(keys)
}

/// Whether the CN's [`KeyKind`] for column `c` orders it as MariaDB does:
/// numbers, dates and datetimes, binary strings, and character strings of
/// the default collation (`utf8mb4_general_ci`: no CHARACTER SET or
/// COLLATE anywhere in the table's definition). Not TIME (signed text),
/// ENUM and SET (ordered by their index), JSON.
fn orders_as_mariadb(def: &TableDef, c: &crate::catalog::ColumnMeta) -> bool {
    use crate::catalog::TypeKind;
    match c.kind {
        TypeKind::Int { .. } | TypeKind::Decimal { .. } | TypeKind::Float | TypeKind::Double => true,
        TypeKind::Date | TypeKind::DateTime { .. } | TypeKind::Binary => true,
        TypeKind::Time => false,
        TypeKind::String => {
            let ty = c.sql_type.to_ascii_lowercase();
            let body = def.physical_body.to_ascii_lowercase();
            let plain = ["char", "varchar", "tinytext", "text", "mediumtext", "longtext"]
                .iter()
                .any(|t| ty == *t || ty.starts_with(&format!("{t}(")));
            plain && !["collate", "charset", "character set"].iter().any(|w| ty.contains(w) || body.contains(w))
        }
    }
}

/// `(offset, count)` of a LIMIT clause with number literals.
fn limits(l: &datafusion::sql::sqlparser::ast::LimitClause) -> Option<(u64, Option<u64>)> {
    use datafusion::sql::sqlparser::ast::{LimitClause, Value};
    let number = |e: &Expr| match e {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse::<u64>().ok(),
            _ => None,
        },
        _ => None,
    };
    match l {
        LimitClause::LimitOffset { limit, offset, limit_by } if limit_by.is_empty() => {
            let offset = match offset {
                Some(o) => number(&o.value)?,
                None => 0,
            };
            let count = match limit {
                Some(e) => Some(number(e)?),
                None => None,
            };
            Some((offset, count))
        }
        LimitClause::OffsetCommaLimit { offset, limit } => Some((number(offset)?, Some(number(limit)?))),
        _ => None,
    }
}

/// Per DN, `branch` on each of its partitions of `def` that `selection`
/// may match, with physical names.
fn branches(
    snap: &CatalogSnapshot,
    db: Option<&str>,
    def: &TableDef,
    selection: Option<&Expr>,
    branch: &Query,
) -> Option<BTreeMap<u32, Vec<String>>> {
    let mut by_dn: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for p in partitions(def, selection) {
        let part = def.partitions.get(p)?;
        let mut b = branch.clone();
        share_key_lists(def, p, &mut b);
        let mut names = PhysicalNames { snap, db, dn: part.dn, partition: Some(p), alias: true };
        super::to_physical(&mut b, &mut names);
        by_dn.entry(part.dn).or_default().push(b.to_string());
    }
    Some(by_dn)
}

/// Narrows every `key [NOT] IN (literal, …)` of `q` on `def`'s one-column
/// partition key to partition `p`'s share, as the planned scans do
/// ([`crate::executor::table::in_list_partitions`], which says why the
/// answer on `p`'s rows does not change): a DN probes only the values its
/// partition holds. NULL and values of another type stay in every share;
/// a share that would be empty leaves the list whole.
fn share_key_lists(def: &TableDef, p: usize, q: &mut Query) {
    let _ = datafusion::sql::sqlparser::ast::visit_expressions_mut(q, |e| {
        if let Expr::InList { expr, list, .. } = e {
            if let Some((_, col)) = super::column_ref(expr) {
                let parts = key_value_partitions(def, &col, list.iter().map(literal_text));
                if let Some(share) = parts.and_then(|parts| narrow_in_list(list, &parts, p)) {
                    *list = share;
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

/// The partitions of `def` whose rows may pass `selection`, in order;
/// at least one (a query on it answers no rows with the right columns).
fn partitions(def: &TableDef, selection: Option<&Expr>) -> Vec<usize> {
    let all = || (0..def.partitions.len()).collect();
    let keys = def.partitioning.key_columns();
    let (Some(selection), [key]) = (selection, keys.as_slice()) else { return all() };
    let mut lists = BTreeMap::new();
    in_lists(selection, &mut lists);
    if let Some(values) = lists.get(key) {
        let mut found = BTreeSet::new();
        for v in values {
            // NULL matches no row; a value the table cannot hold (no
            // partition for it, or not of the key's type) reads everything.
            let Some(v) = v else { continue };
            match partition_for(def, &[Some(v.as_str())]) {
                Ok(p) => found.insert(p),
                Err(_) => return all(),
            };
        }
        return if found.is_empty() { vec![0] } else { found.into_iter().collect() };
    }
    match between(selection, key) {
        Some((lo, hi)) => match crate::sharding::partitions_for_range(def, lo.as_deref(), hi.as_deref()) {
            // An empty range (`BETWEEN 9 AND 1`) still answers, from one partition.
            Ok(ps) if ps.is_empty() => vec![0],
            Ok(ps) => ps,
            Err(_) => all(),
        },
        None => all(),
    }
}

/// The bounds of a top-level `key BETWEEN lo AND hi` conjunct.
fn between(e: &Expr, key: &str) -> Option<(Option<String>, Option<String>)> {
    match e {
        Expr::BinaryOp { left, op: BinaryOperator::And, right } => between(left, key).or_else(|| between(right, key)),
        Expr::Nested(inner) => between(inner, key),
        Expr::Between { expr, negated: false, low, high } => {
            let (_, col) = super::column_ref(expr)?;
            if col != key {
                return None;
            }
            Some((literal_text(low)?, literal_text(high)?))
        }
        _ => None,
    }
}

/// How the CN compares one sort column's values (text as the DN sent
/// them), by the DN's column definition: as MariaDB orders that type and
/// collation, NULL first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// Integer types (signed or not, YEAR).
    Int,
    /// DECIMAL: exact decimal text.
    Decimal,
    /// FLOAT, DOUBLE.
    Float,
    /// Binary strings, BIT, DATE, DATETIME, TIMESTAMP (fixed-width text):
    /// bytewise.
    Bytes,
    /// `utf8mb4_bin`, `utf8mb3_bin`: code points, PAD SPACE.
    PadSpaceBin,
    /// `utf8mb4_general_ci`, `utf8mb3_general_ci` ([`crate::collation`]).
    GeneralCi,
}

impl KeyKind {
    /// The comparison for a column the DN describes so; `None` for types
    /// the CN does not order as MariaDB does (TIME, ENUM, SET, JSON,
    /// GEOMETRY, other collations).
    pub fn of(c: &crate::protocol::resultset::ColumnDef) -> Option<KeyKind> {
        use crate::protocol::constants::{flag, ty};
        if c.flags & (flag::ENUM | flag::SET) != 0 {
            return None;
        }
        Some(match c.column_type {
            ty::TINY | ty::SHORT | ty::LONG | ty::LONGLONG | ty::INT24 | ty::YEAR => KeyKind::Int,
            ty::DECIMAL | ty::NEWDECIMAL => KeyKind::Decimal,
            ty::FLOAT | ty::DOUBLE => KeyKind::Float,
            ty::DATE | ty::DATETIME | ty::TIMESTAMP | ty::BIT | ty::NULL => KeyKind::Bytes,
            ty::VARCHAR | ty::VAR_STRING | ty::STRING | ty::TINY_BLOB | ty::MEDIUM_BLOB | ty::LONG_BLOB | ty::BLOB => {
                match c.charset {
                    63 => KeyKind::Bytes,
                    33 | 45 => KeyKind::GeneralCi,
                    46 | 83 => KeyKind::PadSpaceBin,
                    _ => return None,
                }
            }
            _ => return None,
        })
    }

    /// Orders two values of the column (`None` = NULL, the smallest).
    pub fn compare(self, a: Option<&[u8]>, b: Option<&[u8]>) -> Ordering {
        let (a, b) = match (a, b) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(a), Some(b)) => (a, b),
        };
        let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
        match self {
            KeyKind::Int => match (text(a).parse::<i128>(), text(b).parse::<i128>()) {
                (Ok(x), Ok(y)) => x.cmp(&y),
                _ => a.cmp(b),
            },
            KeyKind::Float => match (text(a).parse::<f64>(), text(b).parse::<f64>()) {
                (Ok(x), Ok(y)) => x.total_cmp(&y),
                _ => a.cmp(b),
            },
            KeyKind::Decimal => decimal_cmp(&text(a), &text(b)),
            KeyKind::Bytes => a.cmp(b),
            KeyKind::PadSpaceBin => pad_space_cmp(a, b),
            KeyKind::GeneralCi => {
                let (mut x, mut y) = (Vec::new(), Vec::new());
                crate::collation::sort_key(&text(a), &mut x);
                crate::collation::sort_key(&text(b), &mut y);
                x.cmp(&y)
            }
        }
    }
}

/// Orders two rows by `keys` with their columns' `kinds`.
pub fn compare_rows(keys: &[SortKey], kinds: &[KeyKind], a: &[Option<Vec<u8>>], b: &[Option<Vec<u8>>]) -> Ordering {
    for (k, kind) in keys.iter().zip(kinds) {
        let (x, y) = (a.get(k.column).and_then(|v| v.as_deref()), b.get(k.column).and_then(|v| v.as_deref()));
        let o = kind.compare(x, y);
        let o = if k.descending { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// Orders two decimal numbers as text (`-12.50`, `3`, `.5`) exactly.
fn decimal_cmp(a: &str, b: &str) -> Ordering {
    // (negative, integer digits without leading zeros, fraction without
    // trailing zeros); zero is never negative.
    fn parts(s: &str) -> (bool, &str, &str) {
        let s = s.trim();
        let (neg, s) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        let (int, frac) = (int.trim_start_matches('0'), frac.trim_end_matches('0'));
        (neg && !(int.is_empty() && frac.is_empty()), int, frac)
    }
    let (na, ia, fa) = parts(a);
    let (nb, ib, fb) = parts(b);
    let magnitude = ia.len().cmp(&ib.len()).then_with(|| ia.cmp(ib)).then_with(|| fa.cmp(fb));
    match (na, nb) {
        (false, true) => Ordering::Greater,
        (true, false) => Ordering::Less,
        (false, false) => magnitude,
        (true, true) => magnitude.reverse(),
    }
}

/// Bytewise, the shorter value padded with spaces (PAD SPACE collations).
fn pad_space_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| a.get(i).unwrap_or(&b' ').cmp(b.get(i).unwrap_or(&b' ')))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::MySqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn query(sql: &str) -> Query {
        match Parser::parse_sql(&MySqlDialect {}, sql).unwrap().pop() {
            Some(datafusion::sql::sqlparser::ast::Statement::Query(q)) => *q,
            _ => panic!("not a query: {sql}"),
        }
    }

    #[test]
    fn only_filters_and_projections_are_row_wise() {
        for sql in ["SELECT a, b + 1 FROM t WHERE c BETWEEN 1 AND 9", "SELECT * FROM t", "SELECT UPPER(c) x FROM t t1"]
        {
            assert!(row_wise(&query(sql)), "{sql}");
        }
        for sql in [
            "SELECT SUM(a) FROM t",
            "SELECT a FROM t ORDER BY a",
            "SELECT a FROM t LIMIT 3",
            "SELECT DISTINCT a FROM t",
            "SELECT a FROM t GROUP BY a",
            "SELECT a FROM t WHERE b IN (SELECT b FROM u)",
            "SELECT a, (SELECT 1) FROM t",
            "SELECT ROW_NUMBER() OVER () FROM t",
            "SELECT a FROM t FOR UPDATE",
            "WITH x AS (SELECT 1) SELECT a FROM t",
            "SELECT a FROM t UNION ALL SELECT a FROM t",
            "SELECT SQL_CALC_FOUND_ROWS a FROM t",
        ] {
            assert!(!row_wise(&query(sql)), "{sql}");
        }
    }

    #[test]
    fn decimals_and_pad_space_strings_compare_as_mariadb_orders_them() {
        let sorted = ["-10.5", "-2", "-1.25", "0", "-0.00", ".5", "0.75", "1", "1.0", "9.99", "10"];
        for w in sorted.windows(2) {
            assert_ne!(decimal_cmp(w[0], w[1]), Ordering::Greater, "{} <= {}", w[0], w[1]);
        }
        assert_eq!(decimal_cmp("0", "-0.00"), Ordering::Equal);
        assert_eq!(decimal_cmp("1", "1.000"), Ordering::Equal);
        assert_eq!(decimal_cmp("-3", "-20"), Ordering::Greater);
        assert_eq!(pad_space_cmp(b"a", b"a  "), Ordering::Equal);
        assert_eq!(pad_space_cmp(b"a\t", b"a"), Ordering::Less);
        assert_eq!(KeyKind::GeneralCi.compare(Some(b"abc"), Some(b"ABD")), Ordering::Less);
        assert_eq!(KeyKind::Int.compare(None, Some(b"-5")), Ordering::Less);
        assert_eq!(KeyKind::Int.compare(Some(b"9"), Some(b"10")), Ordering::Less);
    }

    #[test]
    fn order_by_limit_and_distinct_gather_by_answer_columns() {
        use crate::catalog::Partitioning;
        let key = Partitioning::Hash { columns: vec!["id".into()], count: 2, function: "key".into() };
        let def = TableDef::for_test("t", &["id", "k", "c"], key, 2);
        let projection = |q: &Query| match q.body.as_ref() {
            SetExpr::Select(s) => s.projection.clone(),
            _ => unreachable!(),
        };
        let outs = outputs(&def, &projection(&query("SELECT k AS x, *, c + 1 FROM t"))).unwrap();
        assert_eq!(outs.len(), 5);
        let keys = |sql: &str| {
            let q = query(sql);
            sort_keys(q.order_by.as_ref().unwrap(), &outputs(&def, &projection(&q)).unwrap(), "t")
        };
        let key = |column, descending| SortKey { column, descending };
        assert_eq!(keys("SELECT c, k FROM t ORDER BY k DESC, 1"), Some(vec![key(1, true), key(0, false)]));
        assert_eq!(keys("SELECT k AS c, c AS k FROM t ORDER BY c"), Some(vec![key(0, false)]), "aliases first");
        assert_eq!(keys("SELECT * FROM t ORDER BY t.c"), Some(vec![key(2, false)]));
        assert_eq!(keys("SELECT id FROM t ORDER BY k"), None, "not in the answer");
        assert_eq!(keys("SELECT id, k + 1 AS n FROM t ORDER BY n"), None, "an expression");
        assert_eq!(keys("SELECT id, k + 1 FROM t ORDER BY 2"), None);
        assert_eq!(limits(&query("SELECT 1 LIMIT 5, 10").limit_clause.unwrap()), Some((5, Some(10))));
        assert_eq!(limits(&query("SELECT 1 LIMIT 10 OFFSET 5").limit_clause.unwrap()), Some((5, Some(10))));
    }

    #[test]
    fn partial_sums_add_exactly_and_partial_extremes_fold() {
        let row = |v: &[Option<&str>]| v.iter().map(|x| x.map(|s| s.as_bytes().to_vec())).collect::<TextRow>();
        let rows = [
            row(&[Some("3"), Some("10.50"), Some("b"), Some("-7")]),
            row(&[Some("0"), None, None, Some("12")]),
            row(&[Some("4"), Some("-0.75"), Some("A"), Some("9")]),
        ];
        let aggregates = [Aggregate::Count, Aggregate::Sum, Aggregate::Min, Aggregate::Max];
        let kinds = [None, None, Some(KeyKind::GeneralCi), Some(KeyKind::Int)];
        assert_eq!(fold(&aggregates, &kinds, &rows), Some(row(&[Some("7"), Some("9.75"), Some("A"), Some("12")])));
        let none = [row(&[Some("0"), None, None, None])];
        assert_eq!(fold(&aggregates, &kinds, &none), Some(row(&[Some("0"), None, None, None])));
        assert_eq!(format_decimal(add_decimal((-5, 2), (1, 0)).unwrap()), "0.95");
        assert_eq!(format_decimal((-5, 3)), "-0.005");
        assert_eq!(parse_decimal("1.5e3"), None, "a DOUBLE is not added");
        assert_eq!(parse_decimal(&"9".repeat(40)), None);
    }

    #[test]
    fn range_tables_prune_by_between_and_an_empty_range_keeps_one_partition() {
        use crate::catalog::Partitioning;
        let range = Partitioning::Range {
            column: "id".into(),
            bounds: vec![Some("10".into()), Some("20".into()), None],
            names: vec!["p0".into(), "p1".into(), "p2".into()],
        };
        let def = TableDef::for_test("r", &["id"], range, 3);
        let parts = |sql: &str| {
            let q = query(sql);
            let SetExpr::Select(s) = q.body.as_ref() else { unreachable!() };
            partitions(&def, s.selection.as_ref())
        };
        assert_eq!(parts("SELECT id FROM r WHERE id BETWEEN 12 AND 25"), vec![1, 2]);
        assert_eq!(parts("SELECT id FROM r WHERE id BETWEEN 25 AND 12"), vec![0]);
        assert_eq!(parts("SELECT id FROM r WHERE id IN (3, 15)"), vec![0, 1]);
        assert_eq!(parts("SELECT id FROM r WHERE id > 3"), vec![0, 1, 2]);
    }

    #[test]
    fn between_finds_the_key_range_among_conjuncts() {
        let q = query("SELECT c FROM t WHERE k = 1 AND (id BETWEEN 5 AND 9)");
        let SetExpr::Select(s) = q.body.as_ref() else { unreachable!() };
        let sel = s.selection.as_ref().unwrap();
        assert_eq!(between(sel, "id"), Some((Some("5".into()), Some("9".into()))));
        assert_eq!(between(sel, "k"), None);
    }
}
