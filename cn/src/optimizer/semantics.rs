//! MySQL semantics for what the CN computes itself: a rewrite of the
//! statement (before DataFusion plans it) into functions that compute as
//! MySQL does.
//!
//! - `a / b` becomes `mysql_div(a, b)`
//!   ([`crate::executor::functions::MysqlDiv`]): DECIMAL with the dividend's
//!   scale + 4, rounded half up; NULL on division by zero.
//! - `a DIV b` becomes `mysql_intdiv(a, b)`
//!   ([`crate::executor::functions::MysqlIntDiv`]): DataFusion has no DIV.
//! - `CAST(x AS SIGNED|UNSIGNED [INTEGER])` becomes `mysql_signed(x)` or
//!   `mysql_unsigned(x)` ([`crate::executor::functions::MysqlCastInt`]):
//!   DataFusion's parser has no such types, and MySQL rounds where an
//!   Arrow cast truncates.
//! - `+x` becomes `x`: MySQL's unary plus is a no-op on any type.
//! - Operator trees holding `DIV` are rebuilt with MySQL's precedences
//!   ([`DivPrecedence`]: sqlparser's MySQL dialect misparses them).
//! - `AVG([DISTINCT] x)` becomes `mysql_div(SUM([DISTINCT] x),
//!   COUNT([DISTINCT] x))`, MySQL's AVG exactly (DECIMAL with scale + 4 for
//!   exact input, rounded half up; DOUBLE for floating-point input). It also
//!   makes AVG decomposable for the partial aggregation on the shards.
//!
//! Statements that run whole on one DN are not rewritten: MariaDB computes
//! them itself.

use crate::executor::functions::{MysqlCastInt, MysqlDiv, MysqlIntDiv};
use crate::planner::column_ref;
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, CastKind, DataType, DuplicateTreatment, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArgumentList, FunctionArguments, Ident, ObjectName, UnaryOperator, VisitMut, VisitorMut,
};
use std::ops::ControlFlow;

/// Applies the rewrite to any AST node (a statement, a query).
pub fn rewrite<T: VisitMut>(node: &mut T) {
    let _ = node.visit(&mut DivPrecedence);
    let _ = node.visit(&mut LooseGroupBy);
    let _ = node.visit(&mut Rewriter);
}

/// MySQL without ONLY_FULL_GROUP_BY (MariaDB's default `sql_mode`) lets a
/// grouped SELECT name a column that is neither grouped nor aggregated, and
/// takes its value from any row of the group; DataFusion refuses the query.
/// Such a column in a select item becomes `first_value(col)`, one row's
/// value, which is what MySQL gives. Columns inside aggregates, inside
/// subqueries, and in expressions the GROUP BY lists are left alone; a
/// column counts as grouped when a GROUP BY column has its name.
struct LooseGroupBy;

/// Aggregate functions: a column under one is aggregated.
const AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "group_concat",
    "first_value",
    "last_value",
    "bit_and",
    "bit_or",
    "bit_xor",
    "std",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "json_arrayagg",
    "json_objectagg",
    "any_value",
];

/// Wraps the ungrouped, unaggregated columns of one select item.
struct Ungrouped<'a> {
    /// Lower-case names of the GROUP BY columns.
    names: &'a [String],
    /// The GROUP BY expressions as text.
    texts: &'a [String],
    /// Depth inside aggregates, subqueries and grouped expressions.
    shielded: usize,
    /// Whether a column was wrapped.
    wrapped: bool,
}

impl Ungrouped<'_> {
    fn shields(&self, e: &Expr) -> bool {
        match e {
            Expr::Function(f) => {
                f.over.is_some() || AGGREGATES.contains(&f.name.to_string().to_ascii_lowercase().as_str())
            }
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => true,
            other => !self.texts.is_empty() && self.texts.contains(&other.to_string()),
        }
    }
}

impl VisitorMut for Ungrouped<'_> {
    type Break = ();
    fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        if self.shields(e) {
            self.shielded += 1;
        }
        ControlFlow::Continue(())
    }
    fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        if self.shields(e) {
            self.shielded -= 1;
            return ControlFlow::Continue(());
        }
        let Some((_, name)) = column_ref(e) else {
            return ControlFlow::Continue(());
        };
        if self.shielded == 0 && !self.names.contains(&name) {
            *e = call("first_value", vec![e.clone()], false, None);
            self.wrapped = true;
        }
        ControlFlow::Continue(())
    }
}

impl VisitorMut for LooseGroupBy {
    type Break = ();
    fn pre_visit_query(&mut self, q: &mut datafusion::sql::sqlparser::ast::Query) -> ControlFlow<()> {
        use datafusion::sql::sqlparser::ast::{GroupByExpr, SelectItem, SetExpr};
        let SetExpr::Select(sel) = q.body.as_mut() else {
            return ControlFlow::Continue(());
        };
        let GroupByExpr::Expressions(keys, modifiers) = &sel.group_by else {
            return ControlFlow::Continue(());
        };
        if keys.is_empty() || !modifiers.is_empty() {
            return ControlFlow::Continue(());
        }
        // `GROUP BY 1`: positions refer to select items; leave those alone.
        if keys.iter().any(|k| matches!(k, Expr::Value(_))) {
            return ControlFlow::Continue(());
        }
        let names: Vec<String> = keys.iter().filter_map(|k| column_ref(k).map(|(_, c)| c)).collect();
        let texts: Vec<String> = keys.iter().filter(|k| column_ref(k).is_none()).map(ToString::to_string).collect();
        for item in sel.projection.iter_mut() {
            let e = match item {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
                _ => continue,
            };
            // A bare column keeps its output name.
            let bare = match e {
                Expr::Identifier(i) => Some(i.clone()),
                Expr::CompoundIdentifier(p) => p.last().cloned(),
                _ => None,
            };
            let mut ungrouped = Ungrouped { names: &names, texts: &texts, shielded: 0, wrapped: false };
            let _ = e.visit(&mut ungrouped);
            if let (Some(name), true, SelectItem::UnnamedExpr(e)) = (bare, ungrouped.wrapped, &*item) {
                *item = SelectItem::ExprWithAlias { expr: e.clone(), alias: name };
            }
        }
        ControlFlow::Continue(())
    }
}

/// Repairs the trees sqlparser 0.62 builds around MySQL's `DIV`: its MySQL
/// dialect parses everything after `DIV` as the right operand, so
/// `34 DIV -c1 + c2` came out as `34 DIV (-c1 + c2)`, where MySQL reads
/// `(34 DIV -c1) + c2` (DIV binds like `*`). The DN re-parses the printed
/// text correctly; only what the CN computes was wrong. An operator tree
/// holding a DIV is flattened into its operands and operators in text
/// order (in-order; parentheses are `Nested` operands) and rebuilt by
/// precedence climbing with MySQL's precedences (MySQL 8.0 reference,
/// 15.4.1 "Operator Precedence"), all left-associative. Trees with other
/// operators are left alone.
struct DivPrecedence;

/// MySQL's binding strength of the binary operators this repair handles.
fn mysql_precedence(op: &BinaryOperator) -> Option<u8> {
    use BinaryOperator::*;
    Some(match op {
        Multiply | Divide | Modulo | MyIntegerDivide => 8,
        Plus | Minus => 7,
        BitwiseAnd => 5,
        BitwiseOr => 4,
        Eq | NotEq | Lt | LtEq | Gt | GtEq | Spaceship => 3,
        And => 2,
        Xor => 1,
        Or => 0,
        _ => return None,
    })
}

/// One element of an operator tree in text order.
enum Item {
    Operand(Expr),
    Infix(BinaryOperator),
    /// `IS [NOT] NULL`, `[NOT] IN (…)`, `[NOT] BETWEEN … AND …`: applied to
    /// everything to their left that binds tighter (comparison level).
    Postfix(Expr),
}

/// The precedence of the postfix predicates (MySQL: with comparisons).
const POSTFIX_PRECEDENCE: u8 = 3;

/// A placeholder for the operand a postfix predicate applies to.
fn hole() -> Box<Expr> {
    Box::new(Expr::value(datafusion::sql::sqlparser::ast::Value::Null))
}

/// The items of a tree of handled operators, in text order; `false` when
/// it has a binary operator this repair does not know.
fn flatten(e: Expr, items: &mut Vec<Item>) -> bool {
    match e {
        Expr::BinaryOp { left, op, right } if mysql_precedence(&op).is_some() => {
            flatten(*left, items) && {
                items.push(Item::Infix(op));
                flatten(*right, items)
            }
        }
        Expr::BinaryOp { .. } => false,
        Expr::IsNull(x) => flatten(*x, items) && push(items, Expr::IsNull(hole())),
        Expr::IsNotNull(x) => flatten(*x, items) && push(items, Expr::IsNotNull(hole())),
        Expr::InList { expr, list, negated } => {
            flatten(*expr, items) && push(items, Expr::InList { expr: hole(), list, negated })
        }
        Expr::Between { expr, negated, low, high } => {
            flatten(*expr, items) && push(items, Expr::Between { expr: hole(), negated, low, high })
        }
        other => {
            items.push(Item::Operand(other));
            true
        }
    }
}

fn push(items: &mut Vec<Item>, postfix: Expr) -> bool {
    items.push(Item::Postfix(postfix));
    true
}

/// Precedence climbing from `items[*i]`: the expression whose operators all
/// bind at least `min`.
fn climb(items: &mut [Option<Item>], i: &mut usize, min: u8) -> Expr {
    let Some(Some(Item::Operand(first))) = items.get_mut(*i).map(Option::take) else {
        unreachable!("a flattened tree starts with an operand and alternates");
    };
    *i += 1;
    let mut left = first;
    loop {
        match items.get(*i) {
            Some(Some(Item::Infix(op))) => {
                let p = mysql_precedence(op).expect("flattened operators are known");
                if p < min {
                    break;
                }
                let op = op.clone();
                *i += 1;
                let right = climb(items, i, p + 1);
                left = Expr::BinaryOp { left: Box::new(left), op, right: Box::new(right) };
            }
            Some(Some(Item::Postfix(_))) => {
                if POSTFIX_PRECEDENCE < min {
                    break;
                }
                let Some(Item::Postfix(mut p)) = items[*i].take() else { unreachable!() };
                *i += 1;
                match &mut p {
                    Expr::IsNull(x) | Expr::IsNotNull(x) => **x = left,
                    Expr::InList { expr, .. } | Expr::Between { expr, .. } => **expr = left,
                    _ => unreachable!("only these are flattened as postfix"),
                }
                left = p;
            }
            _ => break,
        }
    }
    left
}

/// True when the operator tree of `e` (not its operands) has a DIV.
fn has_div(e: &Expr) -> bool {
    match e {
        Expr::BinaryOp { left, op, right } => *op == BinaryOperator::MyIntegerDivide || has_div(left) || has_div(right),
        Expr::IsNull(x) | Expr::IsNotNull(x) => has_div(x),
        Expr::InList { expr, .. } | Expr::Between { expr, .. } => has_div(expr),
        _ => false,
    }
}

impl VisitorMut for DivPrecedence {
    type Break = ();
    fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        if !has_div(e) {
            return ControlFlow::Continue(());
        }
        let original = e.clone();
        let mut items = Vec::new();
        if !flatten(std::mem::replace(e, *hole()), &mut items) {
            *e = original;
            return ControlFlow::Continue(());
        }
        let mut items: Vec<Option<Item>> = items.into_iter().map(Some).collect();
        let mut i = 0;
        *e = climb(&mut items, &mut i, 0);
        ControlFlow::Continue(())
    }
}

struct Rewriter;

fn call(
    name: &str,
    args: Vec<Expr>,
    distinct: bool,
    over: Option<datafusion::sql::sqlparser::ast::WindowType>,
) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: distinct.then_some(DuplicateTreatment::Distinct),
            args: args.into_iter().map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e))).collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over,
        within_group: vec![],
    })
}

/// `AVG([DISTINCT] x) [OVER …]` → `mysql_div(SUM(…), COUNT(…))`, or `None`
/// when `f` is something else (or an AVG with clauses this does not carry).
fn avg_rewrite(f: &Function) -> Option<Expr> {
    if !f.name.to_string().eq_ignore_ascii_case("avg") || f.filter.is_some() || !f.within_group.is_empty() {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    let [FunctionArg::Unnamed(FunctionArgExpr::Expr(x))] = list.args.as_slice() else {
        return None;
    };
    if !list.clauses.is_empty() {
        return None;
    }
    let distinct = matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct));
    let sum = call("sum", vec![x.clone()], distinct, f.over.clone());
    let count = call("count", vec![x.clone()], distinct, f.over.clone());
    Some(call(MysqlDiv::NAME, vec![sum, count], false, None))
}

impl VisitorMut for Rewriter {
    type Break = ();
    fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        let new = match e {
            Expr::BinaryOp { left, op: BinaryOperator::Divide, right } => {
                Some(call(MysqlDiv::NAME, vec![(**left).clone(), (**right).clone()], false, None))
            }
            Expr::BinaryOp { left, op: BinaryOperator::MyIntegerDivide, right } => {
                Some(call(MysqlIntDiv::NAME, vec![(**left).clone(), (**right).clone()], false, None))
            }
            // MySQL's unary plus does nothing, to any type; DataFusion's
            // accepts only numbers (`+ col` of a VARCHAR failed).
            Expr::UnaryOp { op: UnaryOperator::Plus, expr } => Some((**expr).clone()),
            Expr::Function(f) => avg_rewrite(f),
            Expr::Cast { kind: CastKind::Cast, expr, data_type, format: None, array: false } => {
                let unsigned = match data_type {
                    DataType::Signed | DataType::SignedInteger => false,
                    DataType::Unsigned | DataType::UnsignedInteger => true,
                    _ => return ControlFlow::Continue(()),
                };
                let name = if unsigned { MysqlCastInt::UNSIGNED } else { MysqlCastInt::SIGNED };
                Some(call(name, vec![(**expr).clone()], false, None))
            }
            _ => None,
        };
        if let Some(n) = new {
            *e = n;
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::MySqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    #[test]
    fn div_binds_like_multiplication() {
        // Every operator node in brackets, to see the tree.
        struct Bracket;
        impl VisitorMut for Bracket {
            type Break = ();
            fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
                if let Expr::BinaryOp { .. } = e {
                    *e = Expr::Nested(Box::new(e.clone()));
                }
                ControlFlow::Continue(())
            }
        }
        for (sql, want) in [
            ("SELECT 34 DIV - c1 + c2", "SELECT (mysql_intdiv(34, -c1) + c2)"),
            ("SELECT a - b DIV c + d", "SELECT ((a - mysql_intdiv(b, c)) + d)"),
            ("SELECT a DIV b DIV c * d", "SELECT (mysql_intdiv(mysql_intdiv(a, b), c) * d)"),
            ("SELECT a DIV (b + c) = 2 AND x", "SELECT ((mysql_intdiv(a, ((b + c))) = 2) AND x)"),
            ("SELECT a + b * c - d", "SELECT ((a + (b * c)) - d)"),
            ("SELECT - a + + 34 DIV a IS NULL", "SELECT (-a + mysql_intdiv(34, a)) IS NULL"),
            (
                "SELECT a DIV b NOT IN (1, c DIV 2 + 1)",
                "SELECT mysql_intdiv(a, b) NOT IN (1, (mysql_intdiv(c, 2) + 1))",
            ),
            ("SELECT a DIV b BETWEEN 1 AND 2 OR x", "SELECT (mysql_intdiv(a, b) BETWEEN 1 AND 2 OR x)"),
        ] {
            let mut s = Parser::parse_sql(&MySqlDialect {}, sql).unwrap().remove(0);
            rewrite(&mut s);
            let _ = s.visit(&mut Bracket);
            assert_eq!(s.to_string(), want, "{sql}");
        }
    }

    #[test]
    fn ungrouped_columns_take_one_value_of_the_group() {
        let mut s = Parser::parse_sql(
            &MySqlDialect {},
            "SELECT COALESCE(55, t.c1, c0) AS x, c2, t.c2 + 1, count(c0), c3 + c4 FROM t GROUP BY t.c2, c3 + c4",
        )
        .unwrap()
        .remove(0);
        rewrite(&mut s);
        assert_eq!(
            s.to_string(),
            "SELECT COALESCE(55, first_value(t.c1), first_value(c0)) AS x, c2, t.c2 + 1, count(c0), c3 + c4 \
             FROM t GROUP BY t.c2, c3 + c4"
        );
    }

    #[test]
    fn division_and_avg_become_mysql_div() {
        let mut s = Parser::parse_sql(
            &MySqlDialect {},
            "SELECT a / (b / 2), AVG(DISTINCT c), avg(d) OVER (PARTITION BY e), a DIV b, CAST(a AS SIGNED) FROM t",
        )
        .unwrap()
        .remove(0);
        rewrite(&mut s);
        assert_eq!(
            s.to_string(),
            "SELECT mysql_div(a, (mysql_div(b, 2))), mysql_div(sum(DISTINCT c), count(DISTINCT c)), \
             mysql_div(sum(d) OVER (PARTITION BY e), count(d) OVER (PARTITION BY e)), mysql_intdiv(a, b), mysql_signed(a) FROM t"
        );
    }
}
