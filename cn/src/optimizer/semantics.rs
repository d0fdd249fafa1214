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
//! - `AVG([DISTINCT] x)` becomes `mysql_div(SUM([DISTINCT] x),
//!   COUNT([DISTINCT] x))`, MySQL's AVG exactly (DECIMAL with scale + 4 for
//!   exact input, rounded half up; DOUBLE for floating-point input). It also
//!   makes AVG decomposable for the partial aggregation on the shards.
//!
//! Statements that run whole on one DN are not rewritten: MariaDB computes
//! them itself.

use crate::executor::functions::{MysqlCastInt, MysqlDiv, MysqlIntDiv};
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, CastKind, DataType, DuplicateTreatment, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArgumentList, FunctionArguments, Ident, ObjectName, VisitMut, VisitorMut,
};
use std::ops::ControlFlow;

/// Applies the rewrite to any AST node (a statement, a query).
pub fn rewrite<T: VisitMut>(node: &mut T) {
    let _ = node.visit(&mut Rewriter);
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
