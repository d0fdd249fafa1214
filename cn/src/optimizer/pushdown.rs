//! Pushdown: the largest parts of a logical plan that the shards can
//! compute become one physical SELECT per shard.
//!
//! A DataFusion optimizer rule, run after DataFusion's own rules. It walks
//! the plan bottom up and describes each pushable subtree as a
//! [`Fragment`]: the tables it reads (with aliases), its join tree, WHERE
//! conjuncts, output expressions over the base columns, GROUP BY and HAVING,
//! and its [`Dist`]ribution (which shards hold its rows). A node is pushable
//! when its children are and:
//! - scans of logical tables (sharded, broadcast, single), with the filters
//!   DataFusion pushed into them;
//! - filters and projections whose expressions MariaDB evaluates as MySQL
//!   does ([`pushable`]);
//! - inner, left, semi and anti joins of two fragments that are co-located:
//!   both partitioned in one table group and joined on their partition keys
//!   position by position, or one side broadcast (on the inner side of an
//!   outer, semi or anti join), or on the same single DN;
//! - an aggregate whose GROUP BY covers the partition key (each group lives
//!   on one shard) or over a broadcast or single fragment: pushed whole;
//! - any other aggregate of SUM, COUNT, MIN and MAX: split in two, the
//!   partial aggregate per shard and the final one in the CN (SUM of sums,
//!   SUM of counts, MIN of minima, MAX of maxima; `AVG` arrives here
//!   already as SUM and COUNT, see [`super::semantics`]).
//!
//! Where a pushable subtree meets a node that is not pushable, it is
//! replaced by a scan of a [`PushedQuery`] (one partition per shard, the
//! SQL rendered per shard with the physical table names) under a
//! projection that restores the subtree's column names and types, so the
//! plan's schema is unchanged. A bare table scan is left to the table's own
//! scan, which already pushes filters, projections and LIMIT.
//!
//! Nothing is pushed that would change the answer: a join whose keys are
//! not the partition keys, an aggregate with DISTINCT over a
//! non-co-located group, an expression not on the list, a join of an
//! aggregated fragment — those stay in the CN.
//!
//! The approach follows PolarDB-X's "pushdown as much as possible" rules
//! (LogicalView absorbing co-located joins and partial aggregates) and the
//! partial/final aggregate split used by every MPP engine.

use crate::catalog::{statistics, Partitioning, TableDef};
use crate::dn::quote_ident;
use crate::executor::functions::{MysqlCastInt, MysqlDiv, MysqlIntArith, MysqlIntDiv};
use crate::executor::shard_scan::{ShardQuery, ShardScanExec};
use crate::executor::table::{in_list_partitions, narrow_in_list, prune, ShardedTable};
use crate::executor::truth::Conversion;
use crate::txn::ConnSource;
use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchemaRef, NullEquality, Result, ScalarValue, TableReference};
use datafusion::datasource::{provider_as_source, source_as_provider, TableType};
use datafusion::functions_aggregate::expr_fn::{max, min, sum};
use datafusion::logical_expr::expr::{AggregateFunction, InList};
use datafusion::logical_expr::{
    Aggregate, BinaryExpr, Expr, Filter, Join, JoinType, LogicalPlan, LogicalPlanBuilder, Operator, Projection,
    Subquery,
};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::sql::unparser::dialect::MySqlDialect;
use datafusion::sql::unparser::Unparser;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The optimizer rule; see the module documentation.
#[derive(Debug, Default)]
pub struct ShardPushdown {
    aliases: AtomicUsize,
    /// Only asks whether a plan pushes ([`pushes_whole`]): partitions are
    /// not pruned (the answer does not depend on them, and pruning by a
    /// lookup's thousands of keys hashes each one).
    check_only: bool,
}

impl ShardPushdown {
    pub fn new() -> Self {
        Self::default()
    }
}

/// Which shards hold a fragment's rows.
#[derive(Debug, Clone)]
enum Dist {
    /// Spread over the partitions of one table group: `keys` are the
    /// partition key columns (over base columns), `parts` the partitions
    /// that survived pruning (`None`: all).
    Partitioned { group: String, keys: Vec<Expr>, parts: Option<BTreeSet<usize>> },
    /// A full copy on every DN.
    Broadcast,
    /// All rows on one DN.
    Single(u32),
}

/// A table read by a fragment.
#[derive(Debug, Clone)]
struct FragTable {
    alias: String,
    def: Arc<TableDef>,
}

/// The FROM clause: a join tree over the fragment's tables.
#[derive(Debug, Clone)]
enum From {
    Table(usize),
    Join { left: Box<From>, right: Box<From>, left_outer: bool, on: Vec<Expr> },
}

/// A pushable subtree, as the parts of one SELECT.
#[derive(Debug, Clone)]
struct Fragment {
    tables: Vec<FragTable>,
    from: From,
    /// WHERE conjuncts, over base columns.
    filters: Vec<Expr>,
    /// `[NOT] EXISTS (SELECT 1 FROM … WHERE …)` conjuncts of semi and anti
    /// joins: (anti, the inner fragment, correlation conjuncts).
    exists: Vec<(bool, Fragment, Vec<Expr>)>,
    /// One expression per output column of the subtree, over base columns
    /// (and aggregate functions once aggregated).
    columns: Vec<Expr>,
    /// `Some` once aggregated (empty: a global aggregate).
    group_by: Option<Vec<Expr>>,
    having: Vec<Expr>,
    dist: Dist,
    source: ConnSource,
    /// Whether pushing this fragment does more than the table scan alone.
    worth: bool,
}

impl Fragment {
    /// The fragment, and those of its EXISTS conjuncts, on `source`.
    fn with_source(&self, source: &ConnSource) -> Fragment {
        let mut f = self.clone();
        f.source = source.clone();
        f.exists = self.exists.iter().map(|(anti, inner, on)| (*anti, inner.with_source(source), on.clone())).collect();
        f
    }
}

/// Functions MariaDB evaluates as the user's MySQL statement means them
/// (the statement is MySQL: the name is the user's).
const PUSHABLE_FUNCTIONS: &[&str] = &[
    // The CN's MySQL text of a value: `CAST(x AS CHAR)` on a DN.
    crate::executor::functions::MysqlText::NAME,
    // MySQL's truth value and number of a value: `(x) <> 0`, `(x) + 0e0`,
    // `(d) + 0`.
    Conversion::Truth.name(),
    Conversion::ToDouble.name(),
    Conversion::TemporalNumber.name(),
    Conversion::IntegerPrefix.name(),
    Conversion::DecimalPrefix.name(),
    "nullif",
    "date_format",
    "mysql_div",
    "mysql_int_add",
    "mysql_int_sub",
    "mysql_int_mul",
    "mysql_intdiv",
    MysqlCastInt::BITNOT,
    MysqlCastInt::BITS,
    "mysql_signed",
    "truncate",
    "timediff",
    "floor",
    "ceil",
    "date_part",
    "substr",
    "substring",
    "upper",
    "lower",
    "abs",
    "concat",
    "coalesce",
    "ifnull",
    "octet_length",
    "character_length",
    "year",
    "quarter",
    "month",
    "dayofmonth",
    "day",
    "hour",
    "minute",
    "second",
];

/// Aggregates a shard can compute.
const PUSHABLE_AGGREGATES: &[&str] = &["sum", "count", "min", "max"];

/// True when MariaDB computes `e` as MySQL means it, so it can run on the
/// shards (a scan's filters, a pushed fragment's expressions).
pub(crate) fn pushable(e: &Expr) -> bool {
    use Operator::*;
    match e {
        Expr::Column(_) => true,
        Expr::Literal(v, _) => !matches!(v, ScalarValue::List(_) | ScalarValue::Struct(_) | ScalarValue::Map(_)),
        Expr::Alias(a) => pushable(&a.expr),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            matches!(
                op,
                Eq | NotEq
                    | Lt
                    | LtEq
                    | Gt
                    | GtEq
                    | And
                    | Or
                    | Plus
                    | Minus
                    | Multiply
                    | Modulo
                    | BitwiseAnd
                    | BitwiseOr
                    | BitwiseXor
                    | BitwiseShiftLeft
                    | BitwiseShiftRight
            ) && pushable(left)
                && pushable(right)
        }
        Expr::Not(x) | Expr::IsNull(x) | Expr::IsNotNull(x) | Expr::Negative(x) => pushable(x),
        Expr::Between(b) => pushable(&b.expr) && pushable(&b.low) && pushable(&b.high),
        Expr::InList(l) => pushable(&l.expr) && l.list.iter().all(pushable),
        Expr::Like(l) => !l.case_insensitive && l.escape_char.is_none() && pushable(&l.expr) && pushable(&l.pattern),
        Expr::Case(c) => {
            c.expr.as_deref().is_none_or(pushable)
                && c.when_then_expr.iter().all(|(w, t)| pushable(w) && pushable(t))
                && c.else_expr.as_deref().is_none_or(pushable)
        }
        Expr::Cast(c) => {
            use datafusion::arrow::datatypes::DataType::*;
            matches!(c.field.data_type(), Int32 | Int64 | Decimal128(..) | Float64 | Utf8 | Date32) && pushable(&c.expr)
        }
        Expr::ScalarFunction(f) => {
            (PUSHABLE_FUNCTIONS.contains(&f.name()) || crate::executor::functions::is_shard_function(f.name()))
                && f.args.iter().all(pushable)
        }
        Expr::AggregateFunction(AggregateFunction { func, params }) => {
            PUSHABLE_AGGREGATES.contains(&func.name())
                && params.filter.is_none()
                && params.order_by.is_empty()
                && params.args.iter().all(pushable)
        }
        _ => false,
    }
}

/// `e` without the casts DataFusion's type coercion puts on a column
/// compared with a value of a wider exact type (`CAST(c_acctbal AS
/// DECIMAL(29,6)) > 5003.685765` for a DECIMAL(15,2) column): for the DN's
/// SQL only. The cast is lossless, and MariaDB compares a DECIMAL or
/// integer column with the other side as it would the cast value (exactly
/// with a number, as doubles with a string), so the answer is the same;
/// but a cast column is an expression to MariaDB's optimizer, which then
/// has no histogram for the predicate's selectivity. In TPC-H Q22 that
/// made each shard materialize its whole orders index partition for the
/// `NOT EXISTS` instead of probing it per customer (20-40 -> 10-20 ms per
/// shard at SF 1). `type_of` gives a column's type; columns it does not know keep
/// their casts.
pub(crate) fn without_widening_casts(e: Expr, type_of: &dyn Fn(&Column) -> Option<DataType>) -> Result<Expr> {
    use Operator::*;
    let strip = |x: Box<Expr>| -> Box<Expr> {
        match *x {
            Expr::Cast(c) => match c.expr.as_ref() {
                Expr::Column(col) if type_of(col).is_some_and(|t| widens(&t, c.field.data_type())) => c.expr,
                _ => Box::new(Expr::Cast(c)),
            },
            other => Box::new(other),
        }
    };
    e.transform(|x| {
        Ok(match x {
            Expr::BinaryExpr(BinaryExpr { left, op: op @ (Eq | NotEq | Lt | LtEq | Gt | GtEq), right }) => {
                Transformed::yes(Expr::BinaryExpr(BinaryExpr { left: strip(left), op, right: strip(right) }))
            }
            Expr::Between(mut b) => {
                b.expr = strip(b.expr);
                Transformed::yes(Expr::Between(b))
            }
            Expr::InList(mut l) => {
                l.expr = strip(l.expr);
                Transformed::yes(Expr::InList(l))
            }
            other => Transformed::no(other),
        })
    })
    .map(|t| t.data)
}

/// Whether every value of type `from` converts to type `to` exactly:
/// integers and decimals into a decimal with as many integer digits and at
/// least as many fractional ones, integers into a wider integer.
fn widens(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let int_digits = |t: &DataType| -> Option<i16> {
        Some(match t {
            Int8 | UInt8 => 3,
            Int16 | UInt16 => 5,
            Int32 | UInt32 => 10,
            Int64 => 19,
            UInt64 => 20,
            _ => return None,
        })
    };
    match (from, to) {
        (Decimal128(p0, s0), Decimal128(p, s)) => s0 <= s && (*p0 as i16 - *s0 as i16) <= (*p as i16 - *s as i16),
        (f, Decimal128(p, s)) => int_digits(f).is_some_and(|d| d <= *p as i16 - *s as i16),
        (Int8 | Int16 | Int32 | UInt8 | UInt16 | UInt32, Int64) => true,
        (Int8 | Int16 | UInt8 | UInt16, Int32) => true,
        _ => false,
    }
}

/// The expression as MySQL text: `mysql_div` back to `/` (MariaDB divides
/// as MySQL does).
pub(crate) fn sql(e: &Expr) -> Result<String> {
    let e = e
        .clone()
        .transform(|x| {
            Ok(match x {
                Expr::ScalarFunction(f)
                    if (f.name() == MysqlDiv::NAME
                        || f.name() == MysqlIntDiv::NAME
                        || MysqlIntArith::operator_of(f.name()).is_some())
                        && f.args.len() == 2 =>
                {
                    let op = match f.name() {
                        n if n == MysqlDiv::NAME => Operator::Divide,
                        n if n == MysqlIntDiv::NAME => Operator::IntegerDivide,
                        n => MysqlIntArith::operator_of(n).expect("checked"),
                    };
                    let mut a = f.args.into_iter();
                    let (l, r) = (a.next().expect("two"), a.next().expect("two"));
                    Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(Box::new(l), op, Box::new(r))))
                }
                // `~x` as the same bits: `x ^ 18446744073709551615`.
                Expr::ScalarFunction(f) if f.name() == MysqlCastInt::BITNOT && f.args.len() == 1 => {
                    let x = f.args.into_iter().next().expect("one");
                    Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                        Box::new(x),
                        Operator::BitwiseXor,
                        Box::new(Expr::Literal(ScalarValue::UInt64(Some(u64::MAX)), None)),
                    )))
                }
                // A bit operator's operand: MariaDB takes its bits itself.
                Expr::ScalarFunction(f) if f.name() == MysqlCastInt::BITS && f.args.len() == 1 => {
                    Transformed::yes(f.args.into_iter().next().expect("one"))
                }
                // `CAST(x AS SIGNED)` (DataFusion's MySQL unparser names Int64 so).
                Expr::ScalarFunction(f) if f.name() == MysqlCastInt::SIGNED && f.args.len() == 1 => {
                    let x = f.args.into_iter().next().expect("one");
                    Transformed::yes(Expr::Cast(datafusion::logical_expr::Cast::new(
                        Box::new(x),
                        datafusion::arrow::datatypes::DataType::Int64,
                    )))
                }
                // MySQL's text of a value is what `CAST(x AS CHAR)` gives.
                Expr::ScalarFunction(f)
                    if f.name() == crate::executor::functions::MysqlText::NAME && f.args.len() == 1 =>
                {
                    let x = f.args.into_iter().next().expect("one");
                    Transformed::yes(Expr::Cast(datafusion::logical_expr::Cast::new(
                        Box::new(x),
                        datafusion::arrow::datatypes::DataType::Utf8,
                    )))
                }
                // MySQL takes any value as a truth value, and a string
                // in numeric context as a number, itself.
                Expr::ScalarFunction(f)
                    if Conversion::of(f.name()).is_some_and(|c| c != Conversion::Number) && f.args.len() == 1 =>
                {
                    let (op, zero) = match Conversion::of(f.name()) {
                        Some(Conversion::Truth) => (Operator::NotEq, ScalarValue::Int64(Some(0))),
                        Some(Conversion::ToDouble) => (Operator::Plus, ScalarValue::Float64(Some(0.0))),
                        // Under the CAST that MariaDB reads the string for.
                        Some(Conversion::IntegerPrefix | Conversion::DecimalPrefix) => {
                            return Ok(Transformed::yes(f.args.into_iter().next().expect("one")))
                        }
                        _ => (Operator::Plus, ScalarValue::Int64(Some(0))),
                    };
                    let x = f.args.into_iter().next().expect("one");
                    Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                        Box::new(x),
                        op,
                        Box::new(Expr::Literal(zero, None)),
                    )))
                }
                Expr::Alias(a) => Transformed::yes(*a.expr),
                // The CN's zero date or datetime (a value read from a DN)
                // as MySQL's text of it.
                Expr::Literal(v, _) if zero_temporal(&v) => {
                    let text = if matches!(v, ScalarValue::Date32(_)) { "0000-00-00" } else { "0000-00-00 00:00:00" };
                    Transformed::yes(Expr::Cast(datafusion::logical_expr::Cast::new(
                        Box::new(Expr::Literal(ScalarValue::Utf8(Some(text.into())), None)),
                        v.data_type(),
                    )))
                }
                other => Transformed::no(other),
            })
        })?
        .data;
    let dialect = MySqlDialect {};
    let mut e = Unparser::new(&dialect).expr_to_sql(&e)?;
    crate::planner::escape_strings(&mut e);
    // DataFusion prints its integer division as DuckDB's `//`, and the
    // CN's `timestampdiff` takes its unit as a string.
    let _ = datafusion::sql::sqlparser::ast::VisitMut::visit(&mut e, &mut MySqlSpelling);
    Ok(e.to_string())
}

/// Whether `v` is the CN's zero date or datetime
/// ([`crate::executor::convert::ZERO_DATE_DAYS`]).
fn zero_temporal(v: &ScalarValue) -> bool {
    let n = match v {
        ScalarValue::Date32(Some(d)) => *d as i64,
        ScalarValue::TimestampMicrosecond(Some(t), _)
        | ScalarValue::TimestampMillisecond(Some(t), _)
        | ScalarValue::TimestampSecond(Some(t), _) => *t,
        _ => return false,
    };
    crate::executor::convert::is_zero_temporal(&v.data_type(), n)
}

/// Writes what the unparser prints in other dialects' or the CN's own
/// spelling as MySQL's: `a // b` (DataFusion's IntegerDivide) as `a DIV
/// b`, `timestampdiff('DAY', a, b)` as `timestampdiff(DAY, a, b)` (and
/// `timestampadd`'s unit likewise).
struct MySqlSpelling;

impl datafusion::sql::sqlparser::ast::VisitorMut for MySqlSpelling {
    type Break = ();
    fn post_visit_expr(&mut self, e: &mut datafusion::sql::sqlparser::ast::Expr) -> std::ops::ControlFlow<()> {
        use datafusion::sql::sqlparser::ast::{self as ast, BinaryOperator as B};
        match e {
            ast::Expr::BinaryOp { op, .. } if *op == B::DuckIntegerDivide => *op = B::MyIntegerDivide,
            // `timestampdiff('DAY', a, b)` back to MySQL's keyword unit.
            // `cn_extract('YEAR_MONTH', x)` back to `EXTRACT(YEAR_MONTH FROM x)`.
            ast::Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("cn_extract") => {
                use ast::{FunctionArg::Unnamed, FunctionArgExpr::Expr as Arg};
                let ast::FunctionArguments::List(list) = &f.args else { return std::ops::ControlFlow::Continue(()) };
                if let [Unnamed(Arg(ast::Expr::Value(v))), Unnamed(Arg(x))] = list.args.as_slice() {
                    if let ast::Value::SingleQuotedString(u) = &v.value {
                        *e = crate::planner::extract::extract(u, x.clone());
                    }
                }
            }
            ast::Expr::Function(f)
                if ["timestampdiff", "timestampadd"].iter().any(|n| f.name.to_string().eq_ignore_ascii_case(n)) =>
            {
                if let ast::FunctionArguments::List(list) = &mut f.args {
                    if let Some(ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(unit))) = list.args.first_mut() {
                        if let ast::Expr::Value(v) = unit {
                            if let ast::Value::SingleQuotedString(u) = &v.value {
                                *unit = ast::Expr::Identifier(ast::Ident::new(u.clone()));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        std::ops::ControlFlow::Continue(())
    }
}

/// Replaces column references of `schema` by the fragment's expressions
/// for them (`columns[i]` for field i).
fn resolve(e: &Expr, inputs: &[(&DFSchemaRef, &[Expr])]) -> Option<Expr> {
    let mut ok = true;
    let out = e
        .clone()
        .transform(|x| {
            if let Expr::Column(c) = &x {
                for (schema, cols) in inputs {
                    if let Some(i) = schema.maybe_index_of_column(c) {
                        return Ok(Transformed::yes(cols[i].clone()));
                    }
                }
                ok = false;
            }
            Ok(Transformed::no(x))
        })
        .ok()?
        .data;
    ok.then_some(out)
}

fn conjuncts(e: Expr, out: &mut Vec<Expr>) {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::And, right }) => {
            conjuncts(*left, out);
            conjuncts(*right, out);
        }
        other => out.push(other),
    }
}

fn and_all(v: &[Expr]) -> Result<String> {
    Ok(v.iter().map(|e| Ok(format!("({})", sql(e)?))).collect::<Result<Vec<_>>>()?.join(" AND "))
}

/// The literal IN lists on a partition key column among a fragment's
/// conditions, each with where its values go ([`in_list_partitions`]).
type KeyInLists = Vec<(Expr, Vec<Option<usize>>)>;

impl Fragment {
    fn aggregated(&self) -> bool {
        self.group_by.is_some()
    }

    /// Every table the fragment reads, its EXISTS fragments' too.
    fn all_tables<'a>(&'a self, out: &mut Vec<&'a FragTable>) {
        out.extend(&self.tables);
        for (_, inner, _) in &self.exists {
            inner.all_tables(out);
        }
    }

    /// Applies `f` to every condition on rows: WHERE conjuncts, join ON
    /// conditions, and those of the EXISTS fragments with their
    /// correlation.
    fn map_conditions(&mut self, f: &mut dyn FnMut(&mut Expr)) {
        fn from(x: &mut From, f: &mut dyn FnMut(&mut Expr)) {
            if let From::Join { left, right, on, .. } = x {
                from(left, f);
                from(right, f);
                on.iter_mut().for_each(&mut *f);
            }
        }
        self.filters.iter_mut().for_each(&mut *f);
        from(&mut self.from, f);
        for (_, inner, on) in &mut self.exists {
            inner.map_conditions(f);
            on.iter_mut().for_each(&mut *f);
        }
    }

    /// The conditions [`Self::map_conditions`] changes, read.
    fn conditions<'a>(&'a self, out: &mut Vec<&'a Expr>) {
        fn from<'a>(x: &'a From, out: &mut Vec<&'a Expr>) {
            if let From::Join { left, right, on, .. } = x {
                from(left, out);
                from(right, out);
                out.extend(on);
            }
        }
        out.extend(&self.filters);
        from(&self.from, out);
        for (_, inner, on) in &self.exists {
            inner.conditions(out);
            out.extend(on);
        }
    }

    /// The literal IN lists on a partition key column in the fragment's
    /// conditions (a lookup's keys, a user's list).
    fn key_in_lists(&self) -> KeyInLists {
        let mut tables = Vec::new();
        self.all_tables(&mut tables);
        let mut conditions = Vec::new();
        self.conditions(&mut conditions);
        let mut out: KeyInLists = Vec::new();
        for e in conditions {
            let _ = e.apply(|x| {
                if let Expr::InList(l) = x {
                    if let Expr::Column(c) = l.expr.as_ref() {
                        let table = c.relation.as_ref().and_then(|r| tables.iter().find(|t| t.alias == r.table()));
                        if let Some(t) = table {
                            if !out.iter().any(|(k, _)| k == x) {
                                if let Some(parts) = in_list_partitions(&t.def, &c.name, &l.list) {
                                    out.push((x.clone(), parts));
                                }
                            }
                        }
                    }
                }
                Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
            });
        }
        out
    }

    /// The fragment as partition `p` runs it: each IN list of `lists`
    /// narrowed to the values `p` can hold ([`narrow_in_list`]).
    fn for_partition(&self, lists: &KeyInLists, p: usize) -> Fragment {
        let mut f = self.clone();
        f.map_conditions(&mut |e| {
            let narrowed = e.clone().transform_up(|x| {
                let share = match (&x, lists.iter().find(|(k, _)| *k == x)) {
                    (Expr::InList(l), Some((_, parts))) => narrow_in_list(&l.list, parts, p)
                        .map(|list| Expr::InList(InList { expr: l.expr.clone(), list, negated: l.negated })),
                    _ => None,
                };
                Ok(share.map_or(Transformed::no(x), Transformed::yes))
            });
            if let Ok(t) = narrowed {
                if t.transformed {
                    *e = t.data;
                }
            }
        });
        f
    }

    /// The SELECT for one shard: `names(table)` gives a table's physical
    /// name there; the output columns are `c0`, `c1`, … for `wanted`.
    fn render(&self, wanted: &[usize], names: &dyn Fn(&TableDef) -> Option<String>) -> Result<Option<String>> {
        let mut select = Vec::new();
        for i in wanted {
            select.push(format!("{} AS `c{i}`", sql(&self.columns[*i])?));
        }
        if select.is_empty() {
            select.push("1".into());
        }
        let Some(body) = self.render_body(names)? else {
            return Ok(None);
        };
        Ok(Some(format!("SELECT {}{body}", select.join(", "))))
    }

    /// ` FROM … WHERE … GROUP BY … HAVING …`.
    fn render_body(&self, names: &dyn Fn(&TableDef) -> Option<String>) -> Result<Option<String>> {
        let Some(from) = self.render_from(&self.from, names)? else {
            return Ok(None);
        };
        let mut s = format!(" FROM {from}");
        let mut wheres: Vec<String> = Vec::new();
        if !self.filters.is_empty() {
            wheres.push(and_all(&self.filters)?);
        }
        for (anti, inner, on) in &self.exists {
            let Some(inner_body) = inner.render_body(names)? else {
                return Ok(None);
            };
            let corr = if on.is_empty() {
                String::new()
            } else {
                let joiner = if inner.filters.is_empty() { " WHERE " } else { " AND " };
                format!("{joiner}{}", and_all(on)?)
            };
            wheres.push(format!("{}EXISTS (SELECT 1{inner_body}{corr})", if *anti { "NOT " } else { "" }));
        }
        if !wheres.is_empty() {
            s.push_str(&format!(" WHERE {}", wheres.join(" AND ")));
        }
        if let Some(g) = &self.group_by {
            if !g.is_empty() {
                // MariaDB reads a number in GROUP BY as a column position
                // (`GROUP BY -43`: "Unknown column '-43'"); a constant key
                // groups nothing anyway, and `GROUP BY NULL` keeps the one
                // group (none over no rows) when all keys are constants.
                let keys: Vec<String> = g.iter().filter(|e| e.any_column_refs()).map(sql).collect::<Result<_>>()?;
                let keys = if keys.is_empty() { "NULL".to_string() } else { keys.join(", ") };
                s.push_str(&format!(" GROUP BY {keys}"));
            }
            if !self.having.is_empty() {
                s.push_str(&format!(" HAVING {}", and_all(&self.having)?));
            }
        }
        Ok(Some(s))
    }

    fn render_from(&self, f: &From, names: &dyn Fn(&TableDef) -> Option<String>) -> Result<Option<String>> {
        Ok(match f {
            From::Table(i) => {
                let t = &self.tables[*i];
                let Some(phys) = names(&t.def) else {
                    return Ok(None);
                };
                // A grouped query reads every row: MariaDB would rather read
                // them in the order of a secondary index that matches the
                // GROUP BY (no sort) than scan, and then fetches each row by
                // its primary key (TPC-H Q15's `GROUP BY l_suppkey`: 0.9 s
                // per shard against 0.1 s). Only the primary key, the scan's
                // own order, may serve the grouping.
                let hint = if self.group_by.as_ref().is_some_and(|g| !g.is_empty()) && !t.def.primary_key.is_empty() {
                    " USE INDEX FOR GROUP BY (PRIMARY)"
                } else {
                    ""
                };
                Some(format!("{}.{} AS {}{hint}", quote_ident(&t.def.db), quote_ident(&phys), quote_ident(&t.alias)))
            }
            From::Join { left, right, left_outer, on } => {
                let (Some(l), Some(r)) = (self.render_from(left, names)?, self.render_from(right, names)?) else {
                    return Ok(None);
                };
                let kind = if *left_outer { "LEFT JOIN" } else { "JOIN" };
                let cond = if on.is_empty() { "1".to_string() } else { and_all(on)? };
                Some(format!("{l} {kind} ({r}) ON {cond}"))
            }
        })
    }
}

/// Merges two distributions of joined fragments, or `None` when the rows
/// that join may sit on different shards. `pairs` are the equi-join pairs
/// (left expr, right expr) over base columns; `preserve_left_only` (left,
/// semi and anti joins) forbids a broadcast left side (its rows would be
/// repeated per shard).
fn join_dist(l: &Dist, r: &Dist, pairs: &[(Expr, Expr)], preserve_left_only: bool) -> Option<Dist> {
    match (l, r) {
        (
            Dist::Partitioned { group: g1, keys: k1, parts: p1 },
            Dist::Partitioned { group: g2, keys: k2, parts: p2 },
        ) if g1 == g2 && k1.len() == k2.len() => {
            let colocated = k1.iter().zip(k2).all(|(a, b)| pairs.iter().any(|(x, y)| x == a && y == b));
            colocated.then(|| Dist::Partitioned {
                group: g1.clone(),
                keys: k1.clone(),
                parts: match (p1, p2) {
                    (Some(a), Some(b)) => Some(a.intersection(b).copied().collect()),
                    (Some(a), None) | (None, Some(a)) => Some(a.clone()),
                    (None, None) => None,
                },
            })
        }
        (Dist::Partitioned { .. }, Dist::Broadcast) => Some(l.clone()),
        (Dist::Broadcast, Dist::Partitioned { .. }) if !preserve_left_only => Some(r.clone()),
        (Dist::Broadcast, Dist::Broadcast) => Some(Dist::Broadcast),
        (Dist::Single(a), Dist::Single(b)) if a == b => Some(l.clone()),
        (Dist::Single(_), Dist::Broadcast) => Some(l.clone()),
        (Dist::Broadcast, Dist::Single(_)) if !preserve_left_only => Some(r.clone()),
        _ => None,
    }
}

impl ShardPushdown {
    fn alias(&self) -> String {
        format!("t{}", self.aliases.fetch_add(1, Ordering::Relaxed))
    }

    /// The fragment of a table scan of a logical table.
    fn scan(&self, plan: &LogicalPlan) -> Option<Fragment> {
        let LogicalPlan::TableScan(scan) = plan else {
            return None;
        };
        if scan.fetch.is_some() {
            return None;
        }
        let provider = source_as_provider(&scan.source).ok()?;
        let table = provider.downcast_ref::<ShardedTable>()?;
        let def = table.def.clone();
        let alias = self.alias();
        let base = |name: &str| Expr::Column(Column::new(Some(TableReference::bare(alias.clone())), name));
        let columns = scan.projected_schema.fields().iter().map(|f| base(f.name())).collect();
        let table_schema = TableProvider::schema(table);
        let type_of = |c: &Column| table_schema.field_with_name(&c.name).ok().map(|f| f.data_type().clone());
        let mut filters = Vec::new();
        for f in &scan.filters {
            let e = without_widening_casts(f.clone(), &type_of)
                .ok()?
                .transform(|x| {
                    Ok(match x {
                        Expr::Column(c) => Transformed::yes(base(&c.name)),
                        other => Transformed::no(other),
                    })
                })
                .ok()?
                .data;
            if !pushable(&e) {
                return None;
            }
            conjuncts(e, &mut filters);
        }
        let dist = match &def.partitioning {
            Partitioning::Broadcast => Dist::Broadcast,
            Partitioning::Single => Dist::Single(def.partitions.first()?.dn),
            p => Dist::Partitioned {
                group: def.table_group.clone(),
                keys: p.key_columns().iter().map(|k| base(k)).collect(),
                parts: if self.check_only { None } else { prune(&def, &scan.filters) },
            },
        };
        Some(Fragment {
            tables: vec![FragTable { alias, def }],
            from: From::Table(0),
            filters,
            exists: vec![],
            columns,
            group_by: None,
            having: vec![],
            dist,
            source: table.source.clone(),
            worth: false,
        })
    }

    /// The fragment of `plan` given its children's fragments, or `None`
    /// when `plan` cannot run on the shards as a whole.
    fn combine(&self, plan: &LogicalPlan, kids: &[Fragment]) -> Option<Fragment> {
        match plan {
            LogicalPlan::TableScan(_) => self.scan(plan),
            LogicalPlan::SubqueryAlias(_) => kids.first().cloned(),
            LogicalPlan::Projection(Projection { expr, input, .. }) => {
                let f = kids.first()?;
                let cols: Option<Vec<Expr>> =
                    expr.iter().map(|e| resolve(e, &[(input.schema(), &f.columns)])).collect();
                let cols = cols?;
                if !cols.iter().all(pushable) {
                    return None;
                }
                let worth = f.worth || cols.iter().any(|c| !matches!(c, Expr::Column(_)));
                Some(Fragment { columns: cols, worth, ..f.clone() })
            }
            LogicalPlan::Filter(Filter { predicate, input, .. }) => {
                let f = kids.first()?;
                let type_of =
                    |c: &Column| input.schema().qualified_field_from_column(c).ok().map(|(_, f)| f.data_type().clone());
                let predicate = &without_widening_casts(predicate.clone(), &type_of).ok()?;
                let p = resolve(predicate, &[(input.schema(), &f.columns)])?;
                if !pushable(&p) {
                    return None;
                }
                let mut out = f.clone();
                if out.aggregated() {
                    conjuncts(p, &mut out.having);
                } else {
                    conjuncts(p, &mut out.filters);
                }
                out.worth = true;
                Some(out)
            }
            LogicalPlan::Join(j) => self.join(j, kids),
            LogicalPlan::Aggregate(a) => {
                let f = kids.first()?;
                let (groups, aggs) = self.aggregate_parts(a, f)?;
                let whole = match &f.dist {
                    Dist::Broadcast | Dist::Single(_) => true,
                    Dist::Partitioned { keys, .. } => keys.iter().all(|k| groups.contains(k)),
                };
                if !whole {
                    return None;
                }
                Some(Fragment {
                    columns: groups.iter().chain(&aggs).cloned().collect(),
                    group_by: Some(groups),
                    worth: true,
                    ..f.clone()
                })
            }
            _ => None,
        }
    }

    /// GROUP BY and aggregate expressions of `a` over the fragment's base
    /// columns, when all are pushable.
    fn aggregate_parts(&self, a: &Aggregate, f: &Fragment) -> Option<(Vec<Expr>, Vec<Expr>)> {
        if f.aggregated() {
            return None;
        }
        let input = [(a.input.schema(), f.columns.as_slice())];
        let groups: Option<Vec<Expr>> = a.group_expr.iter().map(|e| resolve(e, &input)).collect();
        let aggs: Option<Vec<Expr>> = a.aggr_expr.iter().map(|e| resolve(e, &input)).collect();
        let (groups, aggs) = (groups?, aggs?);
        if !groups.iter().all(|g| pushable(g) && !matches!(g, Expr::AggregateFunction(_)))
            || !aggs.iter().all(|x| matches!(strip_alias(x), Expr::AggregateFunction(_)) && pushable(x))
        {
            return None;
        }
        Some((groups, aggs))
    }

    fn join(&self, j: &Join, kids: &[Fragment]) -> Option<Fragment> {
        let [l, r] = kids else {
            return None;
        };
        // A NULL-safe join (`<=>`: INTERSECT, EXCEPT, a domain join) would
        // be sent as `=`.
        if l.aggregated() || r.aggregated() || j.null_aware || j.null_equality == NullEquality::NullEqualsNull {
            return None;
        }
        let inputs = [(j.left.schema(), l.columns.as_slice()), (j.right.schema(), r.columns.as_slice())];
        let mut pairs = Vec::new();
        for (a, b) in &j.on {
            pairs.push((resolve(a, &inputs[..1])?, resolve(b, &inputs[1..])?));
        }
        let mut on: Vec<Expr> = pairs.iter().map(|(a, b)| a.clone().eq(b.clone())).collect();
        if let Some(f) = &j.filter {
            let mut parts = Vec::new();
            conjuncts(f.clone(), &mut parts);
            for c in parts {
                // An equality of a left and a right column in the filter
                // co-locates as a key does: before DataFusion's
                // `extract_equijoin_predicate` has run (the optimizer's first
                // pass), a FROM list's joins carry their keys only so.
                if let Expr::BinaryExpr(BinaryExpr { left: a, op: Operator::Eq, right: b }) = &c {
                    let side = |e: &Expr, k: usize| resolve(e, &inputs[k..=k]);
                    if let Some(pair) = side(a, 0).zip(side(b, 1)).or_else(|| side(b, 0).zip(side(a, 1))) {
                        pairs.push(pair);
                    }
                }
                on.push(resolve(&c, &inputs)?);
            }
        }
        if !on.iter().all(pushable) {
            return None;
        }
        // Semi, anti and left joins keep the left side's rows as they are: a
        // broadcast left side would repeat them once per shard.
        let preserve_left_only = match j.join_type {
            JoinType::Inner => false,
            JoinType::Left | JoinType::LeftSemi | JoinType::LeftAnti => true,
            _ => return None,
        };
        let dist = join_dist(&l.dist, &r.dist, &pairs, preserve_left_only)?;
        let mut out = l.clone();
        out.dist = dist;
        out.worth = true;
        match j.join_type {
            JoinType::LeftSemi | JoinType::LeftAnti => {
                out.exists.push((j.join_type == JoinType::LeftAnti, r.clone(), on));
            }
            _ => {
                let left_outer = j.join_type == JoinType::Left;
                if left_outer && !r.exists.is_empty() {
                    return None;
                }
                let mut cond = on;
                if left_outer {
                    // A left join's right-side filters restrict the right
                    // side before the join: they go into ON.
                    cond.extend(r.filters.iter().cloned());
                } else {
                    out.filters.extend(r.filters.iter().cloned());
                    out.exists.extend(r.exists.iter().cloned());
                }
                let right = shift(&r.from, out.tables.len());
                out.tables.extend(r.tables.iter().cloned());
                out.from = From::Join { left: Box::new(out.from), right: Box::new(right), left_outer, on: cond };
                out.columns.extend(r.columns.iter().cloned());
            }
        }
        Some(out)
    }

    /// A scan of the pushed query of `f`, whose columns `c0`, `c1`, … have
    /// the types of `schema`'s fields; with a function naming column i.
    fn pushed_scan(&self, f: Fragment, schema: &DFSchemaRef) -> Result<(LogicalPlanBuilder, impl Fn(usize) -> Expr)> {
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, fl)| Field::new(format!("c{i}"), fl.data_type().clone(), true))
            .collect();
        let name = format!("__pushed_{}", self.aliases.fetch_add(1, Ordering::Relaxed));
        let provider = Arc::new(PushedQuery { fragment: f, schema: Arc::new(Schema::new(fields)) });
        let scan = LogicalPlanBuilder::scan(name.clone(), provider_as_source(provider), None)?;
        let column =
            move |i: usize| Expr::Column(Column::new(Some(TableReference::bare(name.clone())), format!("c{i}")));
        Ok((scan, column))
    }

    /// Replaces a pushable subtree by a scan of its pushed query, under a
    /// projection that restores the subtree's schema.
    fn materialize(&self, f: Fragment, schema: &DFSchemaRef) -> Result<LogicalPlan> {
        let (scan, c) = self.pushed_scan(f, schema)?;
        let exprs: Vec<Expr> =
            schema.iter().enumerate().map(|(i, (q, fl))| c(i).alias_qualified(q.cloned(), fl.name())).collect();
        scan.project(exprs)?.build()
    }

    /// The split aggregate: the partial aggregate pushed, the final one in
    /// the CN, a projection restoring the aggregate's schema.
    fn split_aggregate(&self, a: &Aggregate, f: &Fragment) -> Result<Option<LogicalPlan>> {
        let Some((groups, aggs)) = self.aggregate_parts(a, f) else {
            return Ok(None);
        };
        let mut partial = Vec::new();
        for x in &aggs {
            let Expr::AggregateFunction(af) = strip_alias(x) else {
                return Ok(None);
            };
            if af.params.distinct {
                return Ok(None);
            }
            partial.push(Expr::AggregateFunction(af.clone()));
        }
        let n_groups = groups.len();
        let pushed_cols: Vec<Expr> = groups.iter().chain(&partial).cloned().collect();
        // The partial query's column types are the aggregate's own output
        // types (count: Int64; sum: sum's type; min/max: the argument's).
        let out_schema = a.schema.clone();
        let frag = Fragment { columns: pushed_cols, group_by: Some(groups), worth: true, ..f.clone() };
        let (scan, c) = self.pushed_scan(frag, &out_schema)?;
        let final_groups: Vec<Expr> = (0..n_groups).map(&c).collect();
        let mut finals = Vec::new();
        for (k, x) in partial.iter().enumerate() {
            let Expr::AggregateFunction(af) = x else { unreachable!("checked above") };
            let col = c(n_groups + k);
            finals.push(match af.func.name() {
                "sum" | "count" => sum(col),
                "min" => min(col),
                "max" => max(col),
                _ => return Ok(None),
            });
        }
        let finals: Vec<Expr> = finals.into_iter().enumerate().map(|(k, e)| e.alias(format!("f{k}"))).collect();
        let agg = scan.aggregate(final_groups, finals)?;
        let restore: Vec<Expr> = out_schema
            .iter()
            .enumerate()
            .map(|(i, (q, fl))| {
                let src = if i < n_groups {
                    c(i)
                } else {
                    Expr::Column(Column::new_unqualified(format!("f{}", i - n_groups)))
                };
                Expr::Cast(datafusion::logical_expr::Cast::new(Box::new(src), fl.data_type().clone()))
                    .alias_qualified(q.cloned(), fl.name())
            })
            .collect();
        Ok(Some(agg.project(restore)?.build()?))
    }

    /// Rewrites `plan` bottom up; returns the new plan (marked when it
    /// changed) and, when the whole of it is pushable, its fragment (the
    /// plan is then returned unchanged).
    fn visit(&self, plan: LogicalPlan) -> Result<(Transformed<LogicalPlan>, Option<Fragment>)> {
        let inputs: Vec<LogicalPlan> = plan.inputs().into_iter().cloned().collect();
        let mut new_inputs = Vec::with_capacity(inputs.len());
        let mut frags = Vec::with_capacity(inputs.len());
        for i in inputs {
            let (p, f) = self.visit(i)?;
            new_inputs.push(p);
            frags.push(f);
        }
        self.finish(plan, new_inputs, frags)
    }

    /// The part of [`Self::visit`] after its children: kept out of the
    /// recursive frame, whose size bounds how deep a plan (a join of 60
    /// tables) can be before the worker's stack runs out.
    #[inline(never)]
    fn finish(
        &self,
        plan: LogicalPlan,
        new_inputs: Vec<Transformed<LogicalPlan>>,
        frags: Vec<Option<Fragment>>,
    ) -> Result<(Transformed<LogicalPlan>, Option<Fragment>)> {
        if frags.iter().all(Option::is_some) {
            let kids: Vec<Fragment> = frags.iter().flatten().cloned().collect();
            if let Some(f) = self.combine(&plan, &kids) {
                return Ok((Transformed::no(plan), Some(f)));
            }
            if let (LogicalPlan::Aggregate(a), [f]) = (&plan, kids.as_slice()) {
                if let Some(p) = self.split_aggregate(a, f)? {
                    return Ok((Transformed::yes(p), None));
                }
            }
        }
        // `plan` stays in the CN: its pushable children that do more than a
        // table scan become pushed queries.
        let mut changed = false;
        let mut children = Vec::with_capacity(new_inputs.len());
        for (p, f) in new_inputs.into_iter().zip(frags) {
            changed |= p.transformed;
            match f {
                Some(f) if f.worth => {
                    let schema = p.data.schema().clone();
                    children.push(self.materialize(f, &schema)?);
                    changed = true;
                }
                _ => children.push(p.data),
            }
        }
        if !changed {
            return Ok((Transformed::no(plan), None));
        }
        let exprs = plan.expressions();
        Ok((Transformed::yes(plan.with_new_exprs(exprs, children)?), None))
    }
}

/// `e` without the aliases around it.
pub(crate) fn strip_alias(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => strip_alias(&a.expr),
        other => other,
    }
}

/// A join tree with table indexes moved by `offset`.
fn shift(f: &From, offset: usize) -> From {
    match f {
        From::Table(i) => From::Table(i + offset),
        From::Join { left, right, left_outer, on } => From::Join {
            left: Box::new(shift(left, offset)),
            right: Box::new(shift(right, offset)),
            left_outer: *left_outer,
            on: on.clone(),
        },
    }
}

/// True when the shards can compute all of `plan` (co-located joins,
/// pushable expressions): one query per shard, nothing left for the CN.
///
/// Reads the plan without rewriting it: the join ordering and the lookups
/// ask this of many subtrees while planning one statement.
pub(crate) fn pushes_whole(plan: &LogicalPlan) -> bool {
    fn fragment(rule: &ShardPushdown, plan: &LogicalPlan) -> Option<Fragment> {
        let kids: Vec<Fragment> = plan.inputs().into_iter().map(|i| fragment(rule, i)).collect::<Option<_>>()?;
        rule.combine(plan, &kids)
    }
    fragment(&ShardPushdown { check_only: true, ..ShardPushdown::default() }, plan).is_some()
}

impl OptimizerRule for ShardPushdown {
    fn name(&self) -> &str {
        "cn_shard_pushdown"
    }

    fn rewrite(&self, plan: LogicalPlan, config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        // Once per statement: a plan that already reads pushed queries has
        // been through this rule.
        let mut done = false;
        plan.apply(|p| {
            if let LogicalPlan::TableScan(s) = p {
                if source_as_provider(&s.source).is_ok_and(|t| t.is::<PushedQuery>()) {
                    done = true;
                }
            }
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        })?;
        if done {
            return Ok(Transformed::no(plan));
        }
        let (new, frag) = self.visit(plan)?;
        let new = match frag {
            Some(f) if f.worth => {
                let schema = new.data.schema().clone();
                Transformed::yes(self.materialize(f, &schema)?)
            }
            _ => new,
        };
        new.transform_data(|p| self.push_subqueries(p, config))
    }
}

impl ShardPushdown {
    /// Pushes down the plans of the uncorrelated subqueries left in `plan`:
    /// DataFusion 55 runs a scalar subquery without outer references as a
    /// plan of its own (TPC-H Q11's total, Q15's maximum), which the
    /// rewrite of the outer plan does not enter. A correlated one is left:
    /// its outer references cannot be sent to the shards.
    fn push_subqueries(&self, plan: LogicalPlan, config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        plan.transform_down(|node| {
            node.map_subqueries(|sq| match sq {
                LogicalPlan::Subquery(s) if s.outer_ref_columns.is_empty() => {
                    let inner = self.rewrite(s.subquery.as_ref().clone(), config)?;
                    if !inner.transformed {
                        return Ok(Transformed::no(LogicalPlan::Subquery(s)));
                    }
                    Ok(Transformed::yes(LogicalPlan::Subquery(Subquery { subquery: Arc::new(inner.data), ..s })))
                }
                other => Ok(Transformed::no(other)),
            })
        })
    }
}

/// A pushed query as a table: its scan is one [`ShardScanExec`] partition
/// per shard holding rows of the fragment.
#[derive(Debug)]
pub struct PushedQuery {
    fragment: Fragment,
    schema: SchemaRef,
}

impl PushedQuery {
    /// The same query run on `source` (a cached plan's query, for this
    /// execution: [`crate::executor::plan_cache::rebind`]).
    pub fn with_source(&self, source: &ConnSource) -> Self {
        PushedQuery { fragment: self.fragment.with_source(source), schema: self.schema.clone() }
    }

    /// The fragment's rows from its tables' statistics (`None` when a table
    /// has none): a join of co-located tables as its largest table (joins
    /// on partition keys are mostly key to foreign key), the shards left by
    /// pruning, each WHERE conjunct but a column equality and each EXISTS
    /// at [`statistics::FILTER_SELECTIVITY`]; grouped, a tenth of that
    /// ([`statistics::GROUPS_PER_ROW`]) through its HAVING conjuncts; a
    /// global aggregate one row per shard. Heuristics in the absence of
    /// NDV and histograms, good enough to tell a 57-row input from a
    /// 6-million-row one.
    fn estimated_rows(&self) -> Option<f64> {
        let f = &self.fragment;
        let snap = f.source.cluster().catalog.snapshot();
        let mut rows: f64 = 0.0;
        for t in &f.tables {
            rows = rows.max(snap.statistics(&t.def.db, &t.def.name)?.rows as f64);
        }
        let mut shards = 1;
        if let Dist::Partitioned { parts, .. } = &f.dist {
            let total = f.tables.iter().find(|t| t.def.is_partitioned()).map_or(1, |t| t.def.partitions.len().max(1));
            shards = parts.as_ref().map_or(total, BTreeSet::len);
            rows *= shards as f64 / total as f64;
        }
        let is_join_key = |e: &Expr| {
            matches!(e, Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right })
                if matches!(strip_alias(left), Expr::Column(_)) && matches!(strip_alias(right), Expr::Column(_)))
        };
        let conjuncts = f.filters.iter().filter(|e| !is_join_key(e)).count() + f.exists.len();
        let rows = statistics::filtered(rows, conjuncts);
        Some(match &f.group_by {
            None => rows,
            Some(g) if g.is_empty() => shards as f64,
            Some(_) => statistics::filtered(rows * statistics::GROUPS_PER_ROW, f.having.len()),
        })
    }

    /// (DN, partition label, SQL) per shard, for the output columns `wanted`.
    fn queries(&self, wanted: &[usize]) -> Result<Vec<ShardQuery>> {
        let f = &self.fragment;
        let cluster = f.source.cluster();
        let mut out = Vec::new();
        match &f.dist {
            Dist::Partitioned { parts, .. } => {
                let first = f
                    .tables
                    .iter()
                    .find(|t| t.def.is_partitioned())
                    .ok_or_else(|| datafusion::error::DataFusionError::Internal("no partitioned table".into()))?;
                let all: Vec<usize> = match parts {
                    Some(p) => p.iter().copied().collect(),
                    None => (0..first.def.partitions.len()).collect(),
                };
                // Each shard gets its share of the IN lists on the key.
                let lists = f.key_in_lists();
                for p in all {
                    let place = &first.def.partitions[p];
                    let dn = place.dn;
                    let names = |t: &TableDef| phys_name(t, p, dn);
                    let shard;
                    let f = if lists.is_empty() {
                        f
                    } else {
                        shard = f.for_partition(&lists, p);
                        &shard
                    };
                    if let Some(sql) = f.render(wanted, &names)? {
                        out.push(ShardQuery { dn, partition: place.name.clone(), sql });
                    }
                }
            }
            Dist::Broadcast | Dist::Single(_) => {
                let dn = match f.dist {
                    Dist::Single(d) => d,
                    _ => cluster.any_dn(),
                };
                let names = |t: &TableDef| phys_name(t, 0, dn);
                if let Some(sql) = f.render(wanted, &names)? {
                    out.push(ShardQuery { dn, partition: format!("dn{dn}"), sql });
                }
            }
        }
        Ok(out)
    }
}

/// A table's physical name on DN `dn` for partition `p` of its group.
fn phys_name(t: &TableDef, p: usize, dn: u32) -> Option<String> {
    if t.is_partitioned() {
        t.partitions.get(p).map(|x| x.phys_table.clone())
    } else if t.is_broadcast() {
        t.partitions.iter().find(|x| x.dn == dn).map(|x| x.phys_table.clone())
    } else {
        t.partitions.first().filter(|x| x.dn == dn).map(|x| x.phys_table.clone())
    }
}

#[async_trait]
impl TableProvider for PushedQuery {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn table_type(&self) -> TableType {
        TableType::Temporary
    }
    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let wanted: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let schema = Arc::new(self.schema.project(&wanted)?);
        let queries = self.queries(&wanted)?;
        let scan = ShardScanExec::new(queries, schema, self.fragment.source.clone());
        Ok(Arc::new(scan.with_estimated_rows(self.estimated_rows())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::{cast, col, lit};

    fn typed(c: &Column) -> Option<DataType> {
        match c.name.as_str() {
            "dec" => Some(DataType::Decimal128(15, 2)),
            "i32" => Some(DataType::Int32),
            "i64" => Some(DataType::Int64),
            "f" => Some(DataType::Float64),
            "s" => Some(DataType::Utf8),
            _ => None,
        }
    }

    fn strip(e: Expr) -> String {
        sql(&without_widening_casts(e, &typed).unwrap()).unwrap()
    }

    #[test]
    fn lossless_casts_of_compared_columns_are_left_out_of_the_dn_sql() {
        let d = |p, s| DataType::Decimal128(p, s);
        let five = || lit(ScalarValue::Decimal128(Some(5_000_000), 29, 6));
        assert_eq!(strip(cast(col("dec"), d(29, 6)).gt(five())), "(`dec` > 5.000000)");
        assert_eq!(strip(five().lt_eq(cast(col("dec"), d(16, 3)))), "(5.000000 <= `dec`)");
        assert_eq!(strip(cast(col("i32"), d(20, 0)).eq(lit(3i64))), "(`i32` = 3)");
        assert_eq!(strip(cast(col("i32"), DataType::Int64).between(lit(1i64), lit(2i64))), "(`i32` BETWEEN 1 AND 2)");
        assert_eq!(strip(cast(col("i32"), DataType::Int64).in_list(vec![lit(1i64)], false)), "`i32` IN (1)");
        // Lossy or not exact: kept.
        for (e, why) in [
            (cast(col("dec"), d(10, 6)).gt(five()), "fewer integer digits"),
            (cast(col("dec"), d(29, 1)).gt(five()), "fewer fractional digits"),
            (cast(col("i64"), d(18, 0)).gt(five()), "a BIGINT needs 19 digits"),
            (cast(col("f"), d(29, 6)).gt(five()), "a DOUBLE"),
            (cast(col("s"), d(29, 6)).gt(five()), "a string"),
            (cast(col("other"), d(29, 6)).gt(five()), "an unknown column"),
            ((cast(col("dec"), d(29, 6)) + five()).gt(five()), "not compared itself"),
        ] {
            assert!(strip(e.clone()).contains("CAST"), "{why}: {}", strip(e));
        }
    }
}
