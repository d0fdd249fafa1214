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
//! - `GROUP_CONCAT(…)` becomes the CN's `mysql_group_concat`
//!   ([`group_concat_rewrite`]).
//! - A condition that is not a boolean expression (`WHERE flag`, `NOT
//!   g`, `g AND x`) becomes MySQL's truth value of it, and `a XOR b` the
//!   logical XOR ([`Truth`]).
//! - A number with an exponent (`1e0`) is a DOUBLE, as in MySQL; the
//!   others stay DECIMALs.
//! - `s [NOT] REGEXP p` becomes `REGEXP_INSTR(s, p) > 0`, which the
//!   shards (or, over the CN's values, a DN) compute with MariaDB's
//!   regular expressions.
//!
//! Statements that run whole on one DN are not rewritten: MariaDB computes
//! them itself.

use crate::executor::functions::{MysqlCastInt, MysqlDiv, MysqlIntDiv};
use crate::executor::truth::Conversion;
use crate::planner::column_ref;
use datafusion::sql::sqlparser::ast::helpers::attached_token::AttachedToken;
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, CastKind, CharacterLength, DataType, DuplicateTreatment, Expr, Function, FunctionArg,
    FunctionArgExpr, FunctionArgumentClause, FunctionArgumentList, FunctionArguments, Ident, ObjectName, UnaryOperator,
    Value, VisitMut, VisitorMut,
};
use std::ops::ControlFlow;

/// Applies the rewrite to any AST node (a statement, a query).
pub fn rewrite<T: VisitMut>(node: &mut T) {
    let _ = node.visit(&mut Collations);
    let _ = node.visit(&mut SubqueryAsAggregate::default());
    let _ = node.visit(&mut AnyAllScope::default());
    let _ = node.visit(&mut TimestampdiffUnit);
    let _ = node.visit(&mut DivPrecedence);
    let _ = node.visit(&mut ThreeValuedIn::default());
    let _ = node.visit(&mut LooseGroupBy);
    let _ = node.visit(&mut Rollup);
    let _ = node.visit(&mut Truth);
    let _ = node.visit(&mut Rewriter);
}

/// `x COLLATE c`, which DataFusion does not plan: under the CN's own
/// `utf8mb4_general_ci` (or `utf8_general_ci`) it is `x`; under a `_bin`
/// collation `CAST(x AS BINARY)`, so that it compares and sorts byte by
/// byte, which is code point order (but for trailing spaces, which the
/// `_bin` collations ignore in comparisons); a select item keeps its
/// string (the collation changes how it compares, not its value). Others
/// stay unplanned (1235).
struct Collations;

impl Collations {
    /// Strips a select item's COLLATE, but where the item may be grouped,
    /// made distinct or sorted by (by position or alias: `ordered`), whose
    /// binary value then shows as a binary string.
    fn items(body: &mut datafusion::sql::sqlparser::ast::SetExpr, ordered: bool) {
        use datafusion::sql::sqlparser::ast::{GroupByExpr, SelectItem, SetExpr};
        match body {
            SetExpr::Select(s) => {
                let grouped = match &s.group_by {
                    GroupByExpr::All(_) => true,
                    GroupByExpr::Expressions(v, _) => !v.is_empty(),
                };
                if ordered || grouped || s.distinct.is_some() {
                    return;
                }
                for item in &mut s.projection {
                    if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item {
                        if let Expr::Collate { expr, .. } = e {
                            *e = (**expr).clone();
                        }
                    }
                }
            }
            // A UNION's rows are made distinct and may be sorted.
            SetExpr::SetOperation { .. } => {}
            SetExpr::Query(q) => Self::items(&mut q.body, q.order_by.is_some()),
            _ => {}
        }
    }
}

impl VisitorMut for Collations {
    type Break = ();
    fn pre_visit_query(&mut self, q: &mut datafusion::sql::sqlparser::ast::Query) -> ControlFlow<()> {
        Self::items(&mut q.body, q.order_by.is_some());
        ControlFlow::Continue(())
    }
    fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        // A comparison or LIKE with one binary operand (`_bin`, `BINARY x`)
        // is binary (a literal's cast would be folded away before the
        // collation rule sees it): both operands become binary.
        let binary = |x: &Expr| matches!(x, Expr::Cast { data_type: DataType::Binary(None), .. });
        let as_binary = |x: &mut Box<Expr>| {
            if !binary(x) {
                **x = Expr::Cast {
                    kind: CastKind::Cast,
                    expr: x.clone(),
                    data_type: DataType::Binary(None),
                    format: None,
                    array: false,
                };
            }
        };
        match e {
            Expr::Like { expr, pattern, .. } if binary(expr) || binary(pattern) => {
                as_binary(expr);
                as_binary(pattern);
            }
            Expr::BinaryOp {
                left,
                op:
                    BinaryOperator::Eq
                    | BinaryOperator::NotEq
                    | BinaryOperator::Lt
                    | BinaryOperator::LtEq
                    | BinaryOperator::Gt
                    | BinaryOperator::GtEq
                    | BinaryOperator::Spaceship,
                right,
            } if binary(left) || binary(right) => {
                as_binary(left);
                as_binary(right);
            }
            _ => {}
        }
        if let Expr::Collate { expr, collation } = e {
            let name = collation.to_string().trim_matches('`').to_ascii_lowercase();
            if matches!(name.as_str(), "utf8mb4_general_ci" | "utf8_general_ci" | "utf8mb3_general_ci") {
                *e = (**expr).clone();
            } else if name.ends_with("_bin") || name == "binary" {
                *e = Expr::Cast {
                    kind: CastKind::Cast,
                    expr: expr.clone(),
                    data_type: DataType::Binary(None),
                    format: None,
                    array: false,
                };
            }
        }
        ControlFlow::Continue(())
    }
}

/// `x op ANY (SELECT …)`, `SOME`, `ALL` whose subquery reads a relation
/// named as one of the query's own (`WHERE sal > ANY (SELECT sal FROM e
/// WHERE dept = 1)` over `FROM e`): DataFusion 55 compares `x` inside the
/// subquery, where `e.sal` then names the inner column, so the test became
/// `sal > sal` and the answer was wrong (no row for ANY, every row for
/// `>= SOME`). The subquery becomes a derived table of a name of its own,
/// `(SELECT * FROM (…) AS __cn_any_N)`, so its column no longer shares a
/// qualifier with the outer query's. (A subquery so wrapped can no longer
/// refer to the outer query's other tables: DataFusion then answers an
/// error, not a wrong result.)
#[derive(Default)]
struct AnyAllScope {
    n: usize,
}

/// The names a FROM clause gives its relations (aliases, else table
/// names), lower-case.
fn relation_names(from: &[datafusion::sql::sqlparser::ast::TableWithJoins]) -> Vec<String> {
    relations(from).iter().map(|i| i.value.to_ascii_lowercase()).collect()
}

/// The names the relations of a FROM clause go by (alias, else the
/// table's name), as written.
fn relations(from: &[datafusion::sql::sqlparser::ast::TableWithJoins]) -> Vec<Ident> {
    use datafusion::sql::sqlparser::ast::TableFactor;
    from.iter()
        .flat_map(|t| std::iter::once(&t.relation).chain(t.joins.iter().map(|j| &j.relation)))
        .filter_map(|t| match t {
            TableFactor::Table { alias: Some(a), .. } | TableFactor::Derived { alias: Some(a), .. } => {
                Some(a.name.clone())
            }
            TableFactor::Table { name, .. } => name.0.last().and_then(|p| p.as_ident()).cloned(),
            _ => None,
        })
        .collect()
}

/// `l op r`.
fn binary(l: Expr, op: BinaryOperator, r: Expr) -> Expr {
    Expr::BinaryOp { left: Box::new(l), op, right: Box::new(r) }
}

impl VisitorMut for AnyAllScope {
    type Break = ();
    fn pre_visit_query(&mut self, q: &mut datafusion::sql::sqlparser::ast::Query) -> ControlFlow<()> {
        use datafusion::sql::sqlparser::ast::{visit_expressions_mut, SetExpr};
        let SetExpr::Select(sel) = q.body.as_mut() else {
            return ControlFlow::Continue(());
        };
        let outer = relation_names(&sel.from);
        if outer.is_empty() {
            return ControlFlow::Continue(());
        }
        let n = &mut self.n;
        let _ = visit_expressions_mut(sel.as_mut(), |e| {
            let (Expr::AnyOp { right, .. } | Expr::AllOp { right, .. }) = e else {
                return ControlFlow::<()>::Continue(());
            };
            let Expr::Subquery(sq) = right.as_mut() else { return ControlFlow::Continue(()) };
            let clash = match sq.body.as_ref() {
                SetExpr::Select(inner) => relation_names(&inner.from).iter().any(|r| outer.contains(r)),
                _ => false,
            };
            if clash {
                *n += 1;
                let text = format!("SELECT * FROM ({sq}) AS __cn_any_{n}");
                let parsed = crate::planner::extract::parse(&text);
                if let Ok(Some(datafusion::sql::sqlparser::ast::Statement::Query(wrapped))) =
                    parsed.map(|mut v| v.pop())
                {
                    *sq = wrapped;
                }
            }
            ControlFlow::Continue(())
        });
        ControlFlow::Continue(())
    }
}

/// Subqueries DataFusion 55 cannot plan where MySQL answers, made into
/// aggregate scalar subqueries, which it decorrelates:
/// - a scalar subquery whose one item is no aggregate, `(SELECT d.name
///   FROM d WHERE d.id = e.dept)` (DataFusion: "Correlated scalar subquery
///   must be aggregated"), becomes `(SELECT __cn_single_row(COUNT(*),
///   MAX(d.name)) FROM d WHERE …)`: the value of the one row, NULL for no
///   row, and MySQL's error 1242 for more than one
///   ([`crate::executor::functions::SingleRow`]). Decorrelated, the
///   aggregate is computed per correlation key before the join, so a key
///   with several rows fails the statement even when no outer row has it;
///   MySQL fails only when one does (a refusal, never another answer).
/// - `[NOT] EXISTS (SELECT … FROM … WHERE w)` in a select item (DataFusion
///   decorrelates EXISTS only in filters) becomes `[NOT] ((SELECT COUNT(*)
///   FROM … WHERE w) > 0)`.
/// - `x op ANY|ALL (SELECT …)` in a select item becomes an expression over
///   the subquery's COUNT, MIN and MAX ([`Self::quantified`]).
///
/// Only subqueries of one SELECT without GROUP BY, HAVING, DISTINCT, LIMIT,
/// ORDER BY or WITH are rewritten; the subquery of `x op ANY/ALL (…)` is
/// left alone.
#[derive(Default)]
struct SubqueryAsAggregate {
    /// The subqueries of ANY/ALL operators met (by address, stable during
    /// the walk).
    quantified: Vec<*const Expr>,
}

impl SubqueryAsAggregate {
    fn has_aggregate(e: &Expr) -> bool {
        let mut found = false;
        let _ = datafusion::sql::sqlparser::ast::visit_expressions(e, |x| {
            if let Expr::Function(f) = x {
                if f.over.is_some() || AGGREGATES.contains(&f.name.to_string().to_ascii_lowercase().as_str()) {
                    found = true;
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        });
        found
    }

    /// `q` with its one select item replaced by `item`.
    fn with_item(q: &datafusion::sql::sqlparser::ast::Query, item: Expr) -> datafusion::sql::sqlparser::ast::Query {
        use datafusion::sql::sqlparser::ast::{SelectItem, SetExpr};
        let mut q = q.clone();
        if let SetExpr::Select(sel) = q.body.as_mut() {
            sel.projection = vec![SelectItem::UnnamedExpr(item)];
        }
        q
    }

    /// `[NOT] EXISTS (…)` in the select items of `q` (not inside their
    /// own subqueries' other clauses) as a count, `x op ANY|ALL (…)` as
    /// [`Self::quantified`] and `x [NOT] IN (…)` as [`Self::membership`]
    /// make them.
    fn select_items(q: &mut datafusion::sql::sqlparser::ast::Query) {
        use datafusion::sql::sqlparser::ast::{SelectItem, SetExpr};
        let SetExpr::Select(sel) = q.body.as_mut() else { return };
        let outer = relations(&sel.from);
        for item in sel.projection.iter_mut() {
            let (SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. }) = item else { continue };
            let _ = datafusion::sql::sqlparser::ast::visit_expressions_mut(e, |x| {
                let rewritten = match &*x {
                    Expr::InSubquery { expr, subquery, negated } => Self::membership(expr, subquery, *negated, &outer),
                    other => Self::quantified(other, &outer),
                };
                if let Some(e) = rewritten {
                    *x = e;
                    return ControlFlow::Continue(());
                }
                let Expr::Exists { subquery, negated } = x else { return ControlFlow::<()>::Continue(()) };
                if ThreeValuedIn::simple(subquery).is_none() {
                    return ControlFlow::Continue(());
                }
                let any = Expr::Nested(Box::new(ThreeValuedIn::positive(subquery, count_of(None))));
                *x = if *negated { Expr::UnaryOp { op: UnaryOperator::Not, expr: Box::new(any) } } else { any };
                ControlFlow::Continue(())
            });
        }
    }
}

impl SubqueryAsAggregate {
    /// `x op ANY|SOME|ALL (SELECT y FROM … WHERE w)`, which DataFusion 55
    /// plans only as a filter, as an expression over the subquery's
    /// aggregates, the way MySQL itself evaluates it (the "max/min
    /// optimization" of its manual, "Optimizing Subqueries with the
    /// EXISTS Strategy"): with `n = COUNT(*)`, `v = COUNT(y)`,
    ///
    /// ```sql
    /// CASE WHEN n = 0 THEN <ALL>            -- ANY of nothing is FALSE, ALL TRUE
    ///      WHEN x IS NULL THEN NULL
    ///      WHEN <decided> THEN NOT <ALL>    -- x > MIN(y) for > ANY, x <= MAX(y) for > ALL, …
    ///      WHEN v < n THEN NULL             -- a NULL y leaves the rest unknown
    ///      ELSE <ALL> END
    /// ```
    ///
    /// `= ANY` is `IN` and `<> ALL` is `NOT IN` (MySQL manual,
    /// "Subqueries with ANY, IN, or SOME"): [`Self::membership`]. `None` for other
    /// expressions, for `<=>`, and for subqueries that are not one simple
    /// SELECT ([`ThreeValuedIn::simple`]).
    fn quantified(e: &Expr, outer: &[Ident]) -> Option<Expr> {
        use BinaryOperator::{Eq, Gt, GtEq, Lt, LtEq, NotEq, Or};
        let (x, op, right, all) = match e {
            Expr::AnyOp { left, compare_op, right, .. } => (left, compare_op, right, false),
            Expr::AllOp { left, compare_op, right } => (left, compare_op, right, true),
            _ => return None,
        };
        let Expr::Subquery(q) = right.as_ref() else { return None };
        if matches!((op, all), (Eq, false) | (NotEq, true)) {
            return Self::membership(x, q, all, outer);
        }
        let (_, y) = ThreeValuedIn::simple(q)?;
        let of = |item: Expr| Expr::Subquery(Box::new(Self::with_item(q, item)));
        let x = Expr::Nested(x.clone());
        let cmp = binary;
        let min = || of(call("min", vec![y.clone()], false, None));
        let max = || of(call("max", vec![y.clone()], false, None));
        let differs = || {
            let either = cmp(cmp(x.clone(), NotEq, min()), Or, cmp(x.clone(), NotEq, max()));
            Expr::Nested(Box::new(either))
        };
        let decided = match (all, op) {
            (false, Gt | GtEq) => cmp(x.clone(), op.clone(), min()),
            (false, Lt | LtEq) => cmp(x.clone(), op.clone(), max()),
            (false, NotEq) | (true, Eq) => differs(),
            (true, Gt) => cmp(x.clone(), LtEq, max()),
            (true, GtEq) => cmp(x.clone(), Lt, max()),
            (true, Lt) => cmp(x.clone(), GtEq, min()),
            (true, LtEq) => cmp(x.clone(), Gt, min()),
            _ => return None,
        };
        Some(Self::quantified_case(&x, q, &y, decided, all))
    }

    /// The CASE of [`Self::quantified`] over `x` and the subquery `q` of
    /// one item `y`, given the condition that decides the answer.
    fn quantified_case(
        x: &Expr,
        q: &datafusion::sql::sqlparser::ast::Query,
        y: &Expr,
        decided: Expr,
        all: bool,
    ) -> Expr {
        use BinaryOperator::{Eq, Lt};
        let of = |item: Expr| Expr::Subquery(Box::new(Self::with_item(q, item)));
        let cmp = binary;
        let zero = Expr::value(Value::Number("0".into(), false));
        let boolean = |b: bool| Expr::value(Value::Boolean(b));
        let null = || Expr::value(Value::Null);
        let when = |condition: Expr, result: Expr| datafusion::sql::sqlparser::ast::CaseWhen { condition, result };
        Expr::Nested(Box::new(Expr::Case {
            case_token: AttachedToken::empty(),
            end_token: AttachedToken::empty(),
            operand: None,
            conditions: vec![
                when(cmp(of(count_of(None)), Eq, zero), boolean(all)),
                when(Expr::IsNull(Box::new(x.clone())), null()),
                when(decided, boolean(!all)),
                when(cmp(of(count_of(Some(y.clone()))), Lt, of(count_of(None))), null()),
            ],
            else_result: Some(Box::new(boolean(all))),
        }))
    }

    /// `x` with every column qualified by the outer query's relation, when
    /// no name of `x` can be taken for one of the subquery's own: each
    /// column is qualified already or the outer query reads one relation
    /// (`outer`), no qualifier is a relation name of the subquery (`inner`,
    /// compared without case), and `x` holds no subquery or aggregate.
    fn outer_only(x: &Expr, outer: &[Ident], inner: &[String]) -> Option<Expr> {
        let mut x = x.clone();
        let mut safe = !aggregates_here(&x);
        let _ = datafusion::sql::sqlparser::ast::visit_expressions_mut(&mut x, |e| {
            match e {
                // A user or system variable is no column.
                Expr::Identifier(i) if i.value.starts_with('@') => {}
                Expr::Identifier(i) => match outer {
                    [r] if !inner.contains(&r.value.to_ascii_lowercase()) => {
                        *e = Expr::CompoundIdentifier(vec![r.clone(), i.clone()]);
                    }
                    _ => safe = false,
                },
                Expr::CompoundIdentifier(parts) => {
                    let q = parts.len().checked_sub(2).and_then(|k| parts.get(k));
                    if q.is_none_or(|q| inner.contains(&q.value.to_ascii_lowercase())) {
                        safe = false;
                    }
                }
                Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => safe = false,
                _ => {}
            }
            ControlFlow::<()>::Continue(())
        });
        safe.then_some(x)
    }

    /// `x [NOT] IN (SELECT y FROM … WHERE w)` in a select item (DataFusion
    /// 55 decorrelates IN only in filters): the CASE of
    /// [`Self::quantified`] whose deciding condition is that a row has
    /// `y = x`: `(SELECT COUNT(*) FROM … WHERE (w) AND y = x) > 0` when
    /// `x`'s columns can be named so that the subquery's tables cannot
    /// take them ([`Self::outer_only`]; `outer` names the outer query's
    /// relations), else
    ///
    /// ```sql
    /// (SELECT COUNT(*) FROM (SELECT y AS __cn_v FROM … WHERE w) AS __cn_in
    ///  WHERE __cn_in.__cn_v = x) > 0
    /// ```
    ///
    /// (a derived table of its own, where the outer query's names cannot be
    /// taken; a `w` that refers to the outer query is then refused by
    /// DataFusion, never answered otherwise). `None` for a row `x` or a
    /// subquery that is not one simple SELECT.
    fn membership(
        x: &Expr,
        q: &datafusion::sql::sqlparser::ast::Query,
        negated: bool,
        outer: &[Ident],
    ) -> Option<Expr> {
        use datafusion::sql::sqlparser::ast::{SelectItem, SetExpr, Statement};
        if matches!(x, Expr::Tuple(_)) {
            return None;
        }
        let (sel, y) = ThreeValuedIn::simple(q)?;
        let nested = |e: Expr| Expr::Nested(Box::new(e));
        let matching = match Self::outer_only(x, outer, &relation_names(&sel.from)) {
            Some(x) => {
                let equal = binary(nested(y.clone()), BinaryOperator::Eq, nested(x));
                let mut matching = Self::with_item(q, count_of(None));
                if let SetExpr::Select(sel) = matching.body.as_mut() {
                    sel.selection = Some(match sel.selection.take() {
                        Some(w) => binary(nested(w), BinaryOperator::And, equal),
                        None => equal,
                    });
                }
                Box::new(matching)
            }
            None => {
                let mut values = q.clone();
                if let SetExpr::Select(sel) = values.body.as_mut() {
                    sel.projection = vec![SelectItem::ExprWithAlias { expr: y.clone(), alias: Ident::new("__cn_v") }];
                }
                let text = format!("SELECT COUNT(*) FROM ({values}) AS __cn_in WHERE __cn_in.__cn_v = ({x})");
                let parsed = crate::planner::extract::parse(&text);
                let Ok(Some(Statement::Query(matching))) = parsed.map(|mut v| v.pop()) else { return None };
                matching
            }
        };
        let zero = Expr::value(Value::Number("0".into(), false));
        let member = binary(Expr::Subquery(matching), BinaryOperator::Gt, zero);
        let x = Expr::Nested(Box::new(x.clone()));
        let case = Self::quantified_case(&x, q, &y, member, false);
        Some(if negated { Expr::UnaryOp { op: UnaryOperator::Not, expr: Box::new(case) } } else { case })
    }
}

impl VisitorMut for SubqueryAsAggregate {
    type Break = ();
    fn pre_visit_query(&mut self, q: &mut datafusion::sql::sqlparser::ast::Query) -> ControlFlow<()> {
        Self::select_items(q);
        ControlFlow::Continue(())
    }
    fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        if let Expr::AnyOp { right, .. } | Expr::AllOp { right, .. } = e {
            self.quantified.push(&**right as *const Expr);
        }
        ControlFlow::Continue(())
    }
    fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        let at = &*e as *const Expr;
        let Expr::Subquery(q) = e else { return ControlFlow::Continue(()) };
        if self.quantified.contains(&at) {
            return ControlFlow::Continue(());
        }
        let Some((_, item)) = ThreeValuedIn::simple(q) else { return ControlFlow::Continue(()) };
        if Self::has_aggregate(&item) {
            return ControlFlow::Continue(());
        }
        let one = call(
            crate::executor::functions::SingleRow::NAME,
            vec![count_of(None), call("max", vec![item], false, None)],
            false,
            None,
        );
        **q = Self::with_item(q, one);
        ControlFlow::Continue(())
    }
}

/// `x [NOT] IN (SELECT e FROM … WHERE w)` inside OR, NOT or CASE of a
/// WHERE or HAVING: MySQL's answer is three-valued (NULL when no row
/// matches and `x` is NULL or the subquery gives a NULL, and the subquery
/// gives a row), while DataFusion's mark join for it says FALSE, so
/// `a NOT IN (SELECT …) OR …` kept rows MySQL drops. Such a predicate
/// becomes
///
/// ```sql
/// CASE WHEN x IN (S) THEN TRUE
///      WHEN (x IS NULL AND (SELECT COUNT(*) FROM … WHERE w) > 0)
///        OR (SELECT COUNT(*) - COUNT(e) FROM … WHERE w) > 0 THEN NULL
///      ELSE FALSE END
/// ```
///
/// (correlated or not). An IN that is a whole conjunct of a WHERE or
/// HAVING is left alone: there NULL and FALSE both drop the row, and a
/// NOT IN conjunct is DataFusion's null-aware anti join. Subqueries with
/// GROUP BY, HAVING, DISTINCT, LIMIT, ORDER BY, WITH or set operations
/// are left alone too.
#[derive(Default)]
struct ThreeValuedIn {
    /// The walk over one predicate (rewriting its IN subqueries), not over
    /// a statement (finding the predicates).
    in_predicate: bool,
    /// In a predicate walk, how deep in its subqueries the walk is (their
    /// own predicates are rewritten when the statement walk reaches them).
    depth: usize,
}

impl ThreeValuedIn {
    /// Rewrites the conjuncts of a WHERE or HAVING.
    fn predicate(e: &mut Expr) {
        match e {
            Expr::BinaryOp { left, op: BinaryOperator::And, right } => {
                Self::predicate(left);
                Self::predicate(right);
            }
            Expr::Nested(x) => Self::predicate(x),
            Expr::InSubquery { .. } => {}
            Expr::UnaryOp { op: UnaryOperator::Not, expr } if Self::is_in_subquery(expr) => {}
            other => {
                let _ = other.visit(&mut ThreeValuedIn { in_predicate: true, depth: 0 });
            }
        }
    }

    fn is_in_subquery(e: &Expr) -> bool {
        match e {
            Expr::Nested(x) => Self::is_in_subquery(x),
            e => matches!(e, Expr::InSubquery { .. }),
        }
    }

    /// The subquery's one output expression, when the subquery is the
    /// simple shape this rewrites.
    fn simple(q: &datafusion::sql::sqlparser::ast::Query) -> Option<(&datafusion::sql::sqlparser::ast::Select, Expr)> {
        use datafusion::sql::sqlparser::ast::{GroupByExpr, SelectItem, SetExpr};
        if q.with.is_some() || q.order_by.is_some() || q.limit_clause.is_some() || q.fetch.is_some() {
            return None;
        }
        let SetExpr::Select(sel) = q.body.as_ref() else {
            return None;
        };
        let grouped = match &sel.group_by {
            GroupByExpr::Expressions(v, m) => !v.is_empty() || !m.is_empty(),
            GroupByExpr::All(_) => true,
        };
        if grouped || sel.having.is_some() || sel.distinct.is_some() || sel.from.is_empty() {
            return None;
        }
        match sel.projection.as_slice() {
            [SelectItem::UnnamedExpr(e)] | [SelectItem::ExprWithAlias { expr: e, .. }] => Some((sel, e.clone())),
            _ => None,
        }
    }

    /// `(SELECT item FROM … WHERE w) > 0` from `q`: a scalar subquery,
    /// which DataFusion decorrelates when it is correlated and joins once
    /// when it is not (an uncorrelated EXISTS became a mark join without
    /// keys that DataFusion 55.2 could not always plan).
    fn positive(q: &datafusion::sql::sqlparser::ast::Query, item: Expr) -> Expr {
        Expr::BinaryOp {
            left: Box::new(Expr::Subquery(Box::new(SubqueryAsAggregate::with_item(q, item)))),
            op: BinaryOperator::Gt,
            right: Box::new(Expr::value(Value::Number("0".into(), false))),
        }
    }
}

impl VisitorMut for ThreeValuedIn {
    type Break = ();
    fn pre_visit_query(&mut self, _q: &mut datafusion::sql::sqlparser::ast::Query) -> ControlFlow<()> {
        self.depth += 1;
        ControlFlow::Continue(())
    }
    fn post_visit_query(&mut self, q: &mut datafusion::sql::sqlparser::ast::Query) -> ControlFlow<()> {
        self.depth -= 1;
        if self.in_predicate {
            return ControlFlow::Continue(());
        }
        fn selects(body: &mut datafusion::sql::sqlparser::ast::SetExpr) {
            use datafusion::sql::sqlparser::ast::SetExpr;
            match body {
                SetExpr::Select(sel) => {
                    if let Some(w) = sel.selection.as_mut() {
                        ThreeValuedIn::predicate(w);
                    }
                    if let Some(h) = sel.having.as_mut() {
                        ThreeValuedIn::predicate(h);
                    }
                }
                SetExpr::SetOperation { left, right, .. } => {
                    selects(left);
                    selects(right);
                }
                SetExpr::Query(q) => selects(&mut q.body),
                _ => {}
            }
        }
        selects(&mut q.body);
        ControlFlow::Continue(())
    }
    fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        if !self.in_predicate || self.depth != 0 {
            return ControlFlow::Continue(());
        }
        let Expr::InSubquery { expr, subquery, negated } = e else {
            return ControlFlow::Continue(());
        };
        if matches!(expr.as_ref(), Expr::Tuple(_)) {
            return ControlFlow::Continue(());
        }
        let Some((_, out)) = Self::simple(subquery) else {
            return ControlFlow::Continue(());
        };
        let any = Self::positive(subquery, count_of(None));
        let nulls = Expr::BinaryOp {
            left: Box::new(count_of(None)),
            op: BinaryOperator::Minus,
            right: Box::new(count_of(Some(out))),
        };
        let null_row = Self::positive(subquery, nulls);
        let member = Expr::InSubquery { expr: expr.clone(), subquery: subquery.clone(), negated: false };
        let unknown = Expr::BinaryOp {
            left: Box::new(Expr::Nested(Box::new(Expr::BinaryOp {
                left: Box::new(Expr::IsNull(expr.clone())),
                op: BinaryOperator::And,
                right: Box::new(any),
            }))),
            op: BinaryOperator::Or,
            right: Box::new(null_row),
        };
        let boolean = |b: bool| Expr::value(Value::Boolean(b));
        let case = Expr::Case {
            case_token: AttachedToken::empty(),
            end_token: AttachedToken::empty(),
            operand: None,
            conditions: vec![
                datafusion::sql::sqlparser::ast::CaseWhen { condition: member, result: boolean(true) },
                datafusion::sql::sqlparser::ast::CaseWhen { condition: unknown, result: Expr::value(Value::Null) },
            ],
            else_result: Some(Box::new(boolean(false))),
        };
        let three = Expr::Nested(Box::new(case));
        *e = if *negated { Expr::UnaryOp { op: UnaryOperator::Not, expr: Box::new(three) } } else { three };
        ControlFlow::Continue(())
    }
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
pub(crate) const AGGREGATES: &[&str] = &[
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

/// Whether `e` calls an aggregate function of its own query (not a window
/// function, not one inside a subquery).
fn aggregates_here(e: &Expr) -> bool {
    struct Find {
        depth: usize,
        found: bool,
    }
    impl datafusion::sql::sqlparser::ast::Visitor for Find {
        type Break = ();
        fn pre_visit_query(&mut self, _q: &datafusion::sql::sqlparser::ast::Query) -> ControlFlow<()> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _q: &datafusion::sql::sqlparser::ast::Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            if let Expr::Function(f) = e {
                if self.depth == 0
                    && f.over.is_none()
                    && AGGREGATES.contains(&f.name.to_string().to_ascii_lowercase().as_str())
                {
                    self.found = true;
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut f = Find { depth: 0, found: false };
    let _ = datafusion::sql::sqlparser::ast::Visit::visit(e, &mut f);
    f.found
}

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
    /// Select items with wrapped columns, by output name (lower-case): a
    /// HAVING column of that name becomes the item's expression.
    items: &'a [(String, Expr)],
}

impl Ungrouped<'_> {
    fn shields(&self, e: &Expr) -> bool {
        let shielded = match e {
            Expr::Function(f) => {
                f.over.is_some() || AGGREGATES.contains(&f.name.to_string().to_ascii_lowercase().as_str())
            }
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => true,
            _ => false,
        };
        shielded || (!self.texts.is_empty() && self.texts.contains(&e.to_string()))
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
        if self.shielded != 0 {
            return ControlFlow::Continue(());
        }
        if let Some((_, item)) = self.items.iter().find(|(n, _)| *n == name) {
            *e = item.clone();
        } else if !self.names.contains(&name) {
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
        // Without GROUP BY, an aggregate in a select item or HAVING makes
        // the whole input one group (`SELECT SUM(x), name FROM t`).
        let one_group = || {
            sel.having.as_ref().is_some_and(aggregates_here)
                || sel.projection.iter().any(|i| match i {
                    SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => aggregates_here(e),
                    _ => false,
                })
        };
        let rollup = modifiers.as_slice() == [datafusion::sql::sqlparser::ast::GroupByWithModifier::Rollup];
        if !(modifiers.is_empty() || rollup) || (keys.is_empty() && !one_group()) {
            return ControlFlow::Continue(());
        }
        // `GROUP BY 1`: positions refer to select items; leave those alone.
        if keys.iter().any(|k| matches!(k, Expr::Value(_))) {
            return ControlFlow::Continue(());
        }
        let names: Vec<String> = keys.iter().filter_map(|k| column_ref(k).map(|(_, c)| c)).collect();
        let mut texts: Vec<String> = keys.iter().filter(|k| column_ref(k).is_none()).map(ToString::to_string).collect();
        // `GROUP BY u` naming a select item (`UPPER(name) AS u`) groups by
        // that item's expression: it is grouped, not its columns one by one
        // (DataFusion, like MySQL, takes the alias when no FROM column has
        // the name).
        for k in keys {
            let Expr::Identifier(key) = k else { continue };
            texts.extend(sel.projection.iter().filter_map(|item| match item {
                SelectItem::ExprWithAlias { expr, alias } if alias.value.eq_ignore_ascii_case(&key.value) => {
                    Some(expr.to_string())
                }
                _ => None,
            }));
        }
        let mut wrapped_items = Vec::new();
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
            let mut ungrouped = Ungrouped { names: &names, texts: &texts, shielded: 0, wrapped: false, items: &[] };
            let _ = e.visit(&mut ungrouped);
            if let (Some(name), true, SelectItem::UnnamedExpr(e)) = (bare, ungrouped.wrapped, &*item) {
                *item = SelectItem::ExprWithAlias { expr: e.clone(), alias: name };
            }
            if let (true, SelectItem::ExprWithAlias { expr, alias }) = (ungrouped.wrapped, &*item) {
                wrapped_items.push((alias.value.to_ascii_lowercase(), expr.clone()));
            }
        }
        // HAVING too (`HAVING COUNT(*) > 1 AND name = 'a'`): a column named
        // as a wrapped select item is that item (DataFusion would take the
        // input column); another select item's alias is left alone.
        if let Some(h) = sel.having.as_mut() {
            let mut names = names.clone();
            names.extend(sel.projection.iter().filter_map(|i| match i {
                SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.to_ascii_lowercase()),
                _ => None,
            }));
            let mut having =
                Ungrouped { names: &names, texts: &texts, shielded: 0, wrapped: false, items: &wrapped_items };
            let _ = h.visit(&mut having);
        }
        ControlFlow::Continue(())
    }
}

/// `GROUP BY k1, k2 WITH ROLLUP` (see [`crate::planner::rollup`]) becomes
/// `GROUP BY ROLLUP(k1, k2)`, which DataFusion plans as grouping sets; a
/// position (`GROUP BY 1`) becomes its select item first. Without an ORDER
/// BY the rows come as MariaDB gives them: sorted by the keys (NULL first),
/// each super-aggregate row after the groups it sums, the grand total last
/// (`ORDER BY GROUPING(k1), k1, GROUPING(k2), k2`). MariaDB refuses ORDER BY
/// with ROLLUP (1221); MySQL 8.0 takes it, and so does the CN.
struct Rollup;

impl VisitorMut for Rollup {
    type Break = ();
    fn pre_visit_query(&mut self, q: &mut datafusion::sql::sqlparser::ast::Query) -> ControlFlow<()> {
        use datafusion::sql::sqlparser::ast::{
            GroupByExpr, GroupByWithModifier, OrderBy, OrderByExpr, OrderByKind, OrderByOptions, SelectItem, SetExpr,
            Value,
        };
        let SetExpr::Select(sel) = q.body.as_mut() else { return ControlFlow::Continue(()) };
        let GroupByExpr::Expressions(keys, modifiers) = &mut sel.group_by else { return ControlFlow::Continue(()) };
        if modifiers.as_slice() != [GroupByWithModifier::Rollup] {
            return ControlFlow::Continue(());
        }
        let item = |n: &str| {
            let i = n.parse::<usize>().ok()?.checked_sub(1)?;
            match sel.projection.get(i)? {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => Some(e.clone()),
                _ => None,
            }
        };
        // A select item's alias: that item (DataFusion resolves aliases in
        // GROUP BY, not inside ROLLUP).
        let aliased = |name: &Ident| {
            sel.projection.iter().find_map(|i| match i {
                SelectItem::ExprWithAlias { expr, alias } if alias.value.eq_ignore_ascii_case(&name.value) => {
                    Some(expr.clone())
                }
                _ => None,
            })
        };
        let resolved: Vec<Expr> = keys
            .iter()
            .map(|k| match k {
                Expr::Value(v) => match &v.value {
                    Value::Number(n, _) => item(n).unwrap_or_else(|| k.clone()),
                    _ => k.clone(),
                },
                Expr::Identifier(name) => aliased(name).unwrap_or_else(|| k.clone()),
                _ => k.clone(),
            })
            .collect();
        modifiers.clear();
        *keys = vec![Expr::Rollup(resolved.iter().map(|k| vec![k.clone()]).collect())];
        if q.order_by.is_none() {
            let by = |expr: Expr| OrderByExpr {
                expr,
                options: OrderByOptions { asc: Some(true), nulls_first: Some(true) },
                with_fill: None,
            };
            let exprs = resolved
                .into_iter()
                .flat_map(|k| [by(call("grouping", vec![k.clone()], false, None)), by(k)])
                .collect();
            q.order_by = Some(OrderBy { kind: OrderByKind::Expressions(exprs), interpolate: None });
        }
        ControlFlow::Continue(())
    }
}

/// MySQL takes any value as a truth value (any nonzero number, a string
/// by its numeric prefix); DataFusion's filters, `AND`, `OR` and `NOT`
/// take booleans only, and it reads `XOR` as the bitwise operator. A
/// condition of WHERE, HAVING, JOIN … ON, a searched CASE's WHEN or IF's
/// first argument, an operand of AND, OR, NOT or XOR anywhere, that is not
/// a boolean expression by its form ([`is_boolean`]: a comparison, IN,
/// LIKE, IS NULL, …) becomes `__cn_truth(x)`
/// ([`crate::executor::truth::Conversion::Truth`]; a function answering MySQL's
/// 1/0 truth as an integer, [`crate::executor::functions::is_integer_shard_function`],
/// `(call) <> 0`). `a XOR b` becomes `truth(a) <> truth(b)`, which is
/// NULL when either is, as MySQL's.
struct Truth;

/// Whether `e` is a boolean by its form, whatever its operands' types.
fn is_boolean(e: &Expr) -> bool {
    use BinaryOperator::*;
    match e {
        Expr::BinaryOp { op, .. } => {
            matches!(op, Eq | NotEq | Lt | LtEq | Gt | GtEq | Spaceship | And | Or | Xor)
        }
        Expr::UnaryOp { op: UnaryOperator::Not, .. }
        | Expr::IsNull(_)
        | Expr::IsNotNull(_)
        | Expr::IsTrue(_)
        | Expr::IsFalse(_)
        | Expr::IsNotTrue(_)
        | Expr::IsNotFalse(_)
        | Expr::IsUnknown(_)
        | Expr::IsNotUnknown(_)
        | Expr::IsDistinctFrom(..)
        | Expr::IsNotDistinctFrom(..)
        | Expr::InList { .. }
        | Expr::InSubquery { .. }
        | Expr::Between { .. }
        | Expr::Like { .. }
        | Expr::ILike { .. }
        | Expr::SimilarTo { .. }
        | Expr::RLike { .. }
        | Expr::Exists { .. }
        | Expr::AnyOp { .. }
        | Expr::AllOp { .. } => true,
        Expr::Value(v) => matches!(v.value, Value::Boolean(_)),
        Expr::Nested(x) => is_boolean(x),
        // A CASE of truth values (the three-valued IN of `ThreeValuedIn`).
        Expr::Case { conditions, else_result, .. } => {
            let truth = |e: &Expr| is_boolean(e) || matches!(e, Expr::Value(v) if v.value == Value::Null);
            conditions.iter().all(|c| truth(&c.result)) && else_result.as_deref().is_none_or(truth)
        }
        Expr::Function(f) => f.name.to_string().eq_ignore_ascii_case(Conversion::Truth.name()),
        _ => false,
    }
}

impl Truth {
    /// Makes the condition `e` a boolean: through AND, OR, NOT and
    /// brackets, each operand that is not one by its form.
    fn condition(e: &mut Expr) {
        match e {
            Expr::BinaryOp { left, op: BinaryOperator::And | BinaryOperator::Or, right } => {
                Self::condition(left);
                Self::condition(right);
            }
            Expr::BinaryOp { left, op: BinaryOperator::Xor, right } => {
                Self::condition(left);
                Self::condition(right);
                let (l, r) = (std::mem::replace(left.as_mut(), Expr::value(Value::Null)), (**right).clone());
                *e = Expr::Nested(Box::new(binary(l, BinaryOperator::NotEq, r)));
            }
            Expr::UnaryOp { op: UnaryOperator::Not, expr } | Expr::Nested(expr) => Self::condition(expr),
            Expr::Function(f)
                if crate::executor::functions::is_integer_shard_function(&f.name.to_string().to_ascii_lowercase()) =>
            {
                *e = Expr::Nested(Box::new(Expr::BinaryOp {
                    left: Box::new(e.clone()),
                    op: BinaryOperator::NotEq,
                    right: Box::new(Expr::value(Value::Number("0".into(), false))),
                }));
            }
            e if !is_boolean(e) => {
                *e = call(Conversion::Truth.name(), vec![e.clone()], false, None);
            }
            _ => {}
        }
    }
}

impl VisitorMut for Truth {
    type Break = ();
    fn pre_visit_query(&mut self, q: &mut datafusion::sql::sqlparser::ast::Query) -> ControlFlow<()> {
        use datafusion::sql::sqlparser::ast::{JoinConstraint, JoinOperator, SetExpr};
        let SetExpr::Select(sel) = q.body.as_mut() else { return ControlFlow::Continue(()) };
        for c in [sel.selection.as_mut(), sel.having.as_mut()].into_iter().flatten() {
            Self::condition(c);
        }
        for t in sel.from.iter_mut() {
            for j in t.joins.iter_mut() {
                let (JoinOperator::Join(JoinConstraint::On(c))
                | JoinOperator::Inner(JoinConstraint::On(c))
                | JoinOperator::Left(JoinConstraint::On(c))
                | JoinOperator::LeftOuter(JoinConstraint::On(c))
                | JoinOperator::Right(JoinConstraint::On(c))
                | JoinOperator::RightOuter(JoinConstraint::On(c))) = &mut j.join_operator
                else {
                    continue;
                };
                Self::condition(c);
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        match e {
            Expr::BinaryOp { op: BinaryOperator::And | BinaryOperator::Or | BinaryOperator::Xor, .. }
            | Expr::UnaryOp { op: UnaryOperator::Not, .. } => Self::condition(e),
            Expr::Case { operand: None, conditions, .. } => {
                conditions.iter_mut().for_each(|c| Self::condition(&mut c.condition));
            }
            Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("if") => {
                if let FunctionArguments::List(list) = &mut f.args {
                    if let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(c))) = list.args.first_mut() {
                        Self::condition(c);
                    }
                }
            }
            _ => {}
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
    Box::new(Expr::value(Value::Null))
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

/// `TIMESTAMPDIFF(unit, a, b)` → `timestampdiff('UNIT', a, b)`: the unit is
/// a keyword the parser reads as a column, which the other passes (and
/// DataFusion) would look up; as a string it reaches the CN's
/// `timestampdiff` ([`crate::executor::functions::ShardFunction`]), and
/// pushdown writes it back as the keyword. Runs first.
struct TimestampdiffUnit;

impl VisitorMut for TimestampdiffUnit {
    type Break = ();
    fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        let Expr::Function(f) = e else { return ControlFlow::Continue(()) };
        if !f.name.to_string().eq_ignore_ascii_case("timestampdiff") {
            return ControlFlow::Continue(());
        }
        let FunctionArguments::List(list) = &mut f.args else { return ControlFlow::Continue(()) };
        if list.args.len() != 3 {
            return ControlFlow::Continue(());
        }
        if let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(unit))) = list.args.first_mut() {
            let u = match unit {
                Expr::Identifier(id) => id.value.to_ascii_uppercase(),
                _ => return ControlFlow::Continue(()),
            };
            if crate::executor::functions::TIMESTAMPDIFF_UNITS.contains(&u.as_str()) {
                *unit = Expr::Value(Value::SingleQuotedString(u).into());
            }
        }
        ControlFlow::Continue(())
    }
}

/// `COUNT(arg)`, `COUNT(*)` for `None`.
fn count_of(arg: Option<Expr>) -> Expr {
    let arg = match arg {
        Some(e) => FunctionArgExpr::Expr(e),
        None => FunctionArgExpr::Wildcard,
    };
    let mut f = match call("count", vec![], false, None) {
        Expr::Function(f) => f,
        _ => unreachable!("call makes a function"),
    };
    if let FunctionArguments::List(l) = &mut f.args {
        l.args = vec![FunctionArg::Unnamed(arg)];
    }
    Expr::Function(f)
}

/// `CASE WHEN a IS NULL OR b IS NULL … THEN NULL ELSE value END` over
/// `args` (MySQL functions that are NULL when any argument is).
fn null_if_any_null(args: &[&Expr], value: Expr) -> Expr {
    let is_null = |e: &Expr| Expr::IsNull(Box::new(e.clone()));
    let any_null = args.iter().skip(1).fold(is_null(args[0]), |acc, e| Expr::BinaryOp {
        left: Box::new(acc),
        op: BinaryOperator::Or,
        right: Box::new(is_null(e)),
    });
    Expr::Case {
        case_token: AttachedToken::empty(),
        end_token: AttachedToken::empty(),
        operand: None,
        conditions: vec![datafusion::sql::sqlparser::ast::CaseWhen {
            condition: any_null,
            result: Expr::value(Value::Null),
        }],
        else_result: Some(Box::new(value)),
    }
}

/// `name(d, INTERVAL n field)` (`DATE_ADD`, `ADDDATE`, …), rewritten as
/// [`mysql_function_rewrite`] rewrites that call.
fn interval_call(name: &str, d: &Expr, n: &Expr, field: datafusion::sql::sqlparser::ast::DateTimeField) -> Expr {
    let interval = Expr::Interval(datafusion::sql::sqlparser::ast::Interval {
        value: Box::new(n.clone()),
        leading_field: Some(field),
        leading_precision: None,
        last_field: None,
        fractional_seconds_precision: None,
    });
    let call = call(name, vec![d.clone(), interval], false, None);
    match &call {
        Expr::Function(g) => mysql_function_rewrite(g).unwrap_or(call),
        _ => call,
    }
}

/// `d ± INTERVAL n unit` where `n` is not a literal (a column, an
/// expression), which DataFusion cannot plan: for DAY and WEEK
/// `ADDDATE(d, ±n)` or `ADDDATE(d, ±(n * 7))`, for the other single units
/// `TIMESTAMPADD(unit, ±n, d)` (MySQL 8.0 reference, 14.7: the same
/// value and type as `DATE_ADD`), both
/// [`crate::executor::functions::ShardFunction`]s: MariaDB computes them,
/// on the shards or, over values the CN computed, on a DN
/// ([`crate::executor::dn_eval`]). `None` for anything else (composite
/// units such as `DAY_HOUR`).
fn interval_of_expression(d: &Expr, op: &BinaryOperator, i: &Expr) -> Option<Expr> {
    use datafusion::sql::sqlparser::ast::DateTimeField;
    let Expr::Interval(iv) = i else { return None };
    let literal = |e: &Expr| match e {
        Expr::Value(_) => true,
        Expr::UnaryOp { op: UnaryOperator::Minus | UnaryOperator::Plus, expr } => matches!(**expr, Expr::Value(_)),
        _ => false,
    };
    if literal(&iv.value) || iv.last_field.is_some() {
        return None;
    }
    let n = Expr::Nested(iv.value.clone());
    let signed = |n: Expr| match op {
        BinaryOperator::Plus => Some(n),
        BinaryOperator::Minus => Some(Expr::UnaryOp { op: UnaryOperator::Minus, expr: Box::new(n) }),
        _ => None,
    };
    let unit = match iv.leading_field {
        Some(DateTimeField::Day) => return Some(call("adddate", vec![d.clone(), signed(n)?], false, None)),
        Some(DateTimeField::Week(None)) => {
            let days = Expr::Nested(Box::new(Expr::BinaryOp {
                left: Box::new(n),
                op: BinaryOperator::Multiply,
                right: Box::new(Expr::value(Value::Number("7".into(), false))),
            }));
            return Some(call("adddate", vec![d.clone(), signed(days)?], false, None));
        }
        Some(DateTimeField::Year) => "YEAR",
        Some(DateTimeField::Quarter) => "QUARTER",
        Some(DateTimeField::Month) => "MONTH",
        Some(DateTimeField::Hour) => "HOUR",
        Some(DateTimeField::Minute) => "MINUTE",
        Some(DateTimeField::Second) => "SECOND",
        Some(DateTimeField::Microsecond) => "MICROSECOND",
        _ => return None,
    };
    let unit = Expr::value(Value::SingleQuotedString(unit.into()));
    Some(call("timestampadd", vec![unit, signed(n)?, d.clone()], false, None))
}

/// A composite-unit INTERVAL of a literal (`INTERVAL '1:30' HOUR_MINUTE`)
/// as an interval of one unit ([`crate::planner::extract::interval_value`]:
/// `INTERVAL 5400 SECOND`; microseconds as an expression, which the date
/// arithmetic around it makes `TIMESTAMPADD`). `None` for a value that is
/// no literal, or that MySQL reads as NULL.
fn composite_interval(iv: &datafusion::sql::sqlparser::ast::Interval) -> Option<Expr> {
    let unit = crate::planner::extract::composite_unit(iv.leading_field.as_ref()?)?;
    let text = match iv.value.as_ref() {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::Number(s, _) => s.clone(),
            _ => return None,
        },
        Expr::UnaryOp { op: UnaryOperator::Minus, expr } => match expr.as_ref() {
            Expr::Value(v) => match &v.value {
                Value::Number(s, _) => format!("-{s}"),
                _ => return None,
            },
            _ => return None,
        },
        _ => return None,
    };
    let (n, field) = crate::planner::extract::interval_value(unit, &text)?;
    let number = Expr::value(Value::Number(n.unsigned_abs().to_string(), false));
    let mut value = match n < 0 {
        true => Expr::UnaryOp { op: UnaryOperator::Minus, expr: Box::new(number) },
        false => number,
    };
    if field == datafusion::sql::sqlparser::ast::DateTimeField::Microsecond {
        // Not a literal to [`interval_of_expression`]: MariaDB's
        // `TIMESTAMPADD(MICROSECOND, …)`, a DATETIME(6) as MySQL's.
        value = Expr::Nested(Box::new(value));
    }
    Some(Expr::Interval(datafusion::sql::sqlparser::ast::Interval {
        value: Box::new(value),
        leading_field: Some(field),
        leading_precision: None,
        last_field: None,
        fractional_seconds_precision: None,
    }))
}

/// `INTERVAL n QUARTER` as `INTERVAL n * 3 MONTH` (DataFusion has no
/// quarters); any other expression as it is.
fn quarters_as_months(i: &Expr) -> Expr {
    use datafusion::sql::sqlparser::ast::DateTimeField;
    match i {
        Expr::Interval(iv) if iv.leading_field == Some(DateTimeField::Quarter) && iv.last_field.is_none() => {
            let three = Expr::Value(Value::Number("3".into(), false).into());
            let months = Expr::BinaryOp {
                left: Box::new(Expr::Nested(iv.value.clone())),
                op: BinaryOperator::Multiply,
                right: Box::new(three),
            };
            let months = match &*iv.value {
                Expr::Value(v) => match &v.value {
                    Value::Number(n, _) => n
                        .parse::<i64>()
                        .ok()
                        .and_then(|n| n.checked_mul(3))
                        .map_or(months, |m| Expr::Value(Value::Number(m.to_string(), false).into())),
                    _ => months,
                },
                _ => months,
            };
            Expr::Interval(datafusion::sql::sqlparser::ast::Interval {
                value: Box::new(months),
                leading_field: Some(DateTimeField::Month),
                ..iv.clone()
            })
        }
        other => other.clone(),
    }
}

/// Whether `e` is a call of the function `name`.
fn is_call(e: &Expr, name: &str) -> bool {
    matches!(e, Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case(name))
}

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

/// `COUNT(DISTINCT a, b, …)` (DataFusion takes one argument) →
/// `COUNT(DISTINCT CASE WHEN a IS NULL OR b IS NULL … THEN NULL ELSE
/// CONCAT(RTRIM(CAST(a AS CHAR)), X'01', RTRIM(CAST(b AS CHAR)), …) END)`:
/// MySQL counts the distinct tuples without a NULL; the text of each value
/// identifies it within its column, without trailing spaces (PAD SPACE),
/// and the collation rule counts the strings under `utf8mb4_general_ci`.
fn count_distinct_rewrite(f: &Function) -> Option<Expr> {
    if !f.name.to_string().eq_ignore_ascii_case("count") || f.over.is_some() || f.filter.is_some() {
        return None;
    }
    let (list, args) = listed_args(f)?;
    if !matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct)) || args.len() < 2 {
        return None;
    }
    let text = |e: &Expr| {
        let cast = Expr::Cast {
            kind: CastKind::Cast,
            expr: Box::new(e.clone()),
            data_type: DataType::Char(None),
            format: None,
            array: false,
        };
        call("rtrim", vec![cast], false, None)
    };
    let mut parts = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            parts.push(Expr::value(Value::SingleQuotedString("\u{1}".into())));
        }
        parts.push(text(a));
    }
    let tuple = null_if_any_null(&args, call(crate::executor::functions::MysqlConcat::NAME, parts, false, None));
    Some(call("count", vec![tuple], true, None))
}

/// The plain argument expressions of `f` (no named arguments, clauses,
/// FILTER or OVER); `None` otherwise.
fn plain_args(f: &Function) -> Option<Vec<&Expr>> {
    let (list, args) = listed_args(f)?;
    (list.clauses.is_empty() && list.duplicate_treatment.is_none()).then_some(args)
}

/// The argument list of a call without FILTER, OVER or WITHIN GROUP whose
/// arguments are all plain expressions, and those expressions (its
/// DISTINCT and clauses are the caller's to read).
fn listed_args(f: &Function) -> Option<(&FunctionArgumentList, Vec<&Expr>)> {
    if f.filter.is_some() || f.over.is_some() || !f.within_group.is_empty() {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    let args = list
        .args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    Some((list, args))
}

/// `GROUP_CONCAT([DISTINCT] e1 [, e2 …] [ORDER BY k1 [ASC|DESC] …]
/// [SEPARATOR 's'])` → `mysql_group_concat('s', spec, value, k1, …)`
/// ([`crate::executor::group_concat`]): `value` is `e1` alone or MySQL's
/// CONCAT of the values (a row with a NULL value is left out), `spec` says
/// DISTINCT and each key's direction; the separator is ',' when none is
/// given. `None` for what it does not carry (a LIMIT clause, OVER,
/// FILTER, NULLS FIRST/LAST), which DataFusion then refuses.
/// `JSON_ARRAYAGG(x [ORDER BY …])` and `JSON_OBJECTAGG(k, v)`, which
/// DataFusion lacks, as MariaDB defines them: a GROUP_CONCAT of each
/// value's JSON text ([`crate::executor::functions::MysqlJsonValue`]; a
/// key its text as a JSON string) between brackets or braces, `,` or `, `
/// apart (`[1,2]`, `{"a":1, "b":2}`); NULL over no rows.
fn json_aggregate_rewrite(f: &Function) -> Option<Expr> {
    use crate::executor::functions::{MysqlConcat, MysqlJsonValue};
    let name = f.name.to_string().to_ascii_lowercase();
    if name != "json_arrayagg" && name != "json_objectagg" {
        return None;
    }
    let (list, values) = listed_args(f)?;
    let text = |s: &str| Expr::Value(Value::SingleQuotedString(s.into()).into());
    let json = |x: Expr| call(MysqlJsonValue::NAME, vec![x], false, None);
    let (item, separator, open, close) = match (name.as_str(), values.as_slice()) {
        ("json_arrayagg", [x]) => (json((*x).clone()), ",", "[", "]"),
        ("json_objectagg", [k, v]) => {
            let key = json(Expr::Cast {
                kind: CastKind::Cast,
                expr: Box::new((*k).clone()),
                data_type: DataType::Char(None),
                format: None,
                array: false,
            });
            (call(MysqlConcat::NAME, vec![key, text(":"), json((*v).clone())], false, None), ", ", "{", "}")
        }
        _ => return None,
    };
    let mut clauses: Vec<FunctionArgumentClause> =
        list.clauses.iter().filter(|c| matches!(c, FunctionArgumentClause::OrderBy(_))).cloned().collect();
    clauses.push(FunctionArgumentClause::Separator(Value::SingleQuotedString(separator.into()).into()));
    let mut g = f.clone();
    g.name = ObjectName::from(vec![Ident::new("GROUP_CONCAT")]);
    g.args = FunctionArguments::List(FunctionArgumentList {
        duplicate_treatment: list.duplicate_treatment,
        args: vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(item))],
        clauses,
    });
    let values = group_concat_rewrite(&g)?;
    Some(call(MysqlConcat::NAME, vec![text(open), values, text(close)], false, None))
}

fn group_concat_rewrite(f: &Function) -> Option<Expr> {
    if !f.name.to_string().eq_ignore_ascii_case("group_concat") {
        return None;
    }
    let (list, values) = listed_args(f)?;
    let mut values: Vec<Expr> = values.into_iter().cloned().collect();
    if values.is_empty() {
        return None;
    }
    let text = |s: String| Expr::Value(Value::SingleQuotedString(s).into());
    let mut separator = text(",".into());
    let distinct = matches!(list.duplicate_treatment, Some(DuplicateTreatment::Distinct));
    let mut spec = String::from(if distinct { "D" } else { "-" });
    let mut keys = Vec::new();
    for c in &list.clauses {
        match c {
            FunctionArgumentClause::Separator(v) => separator = Expr::Value(v.clone()),
            FunctionArgumentClause::OrderBy(items) => {
                for o in items {
                    if o.options.nulls_first.is_some() || o.with_fill.is_some() {
                        return None;
                    }
                    spec.push(if o.options.asc == Some(false) { 'D' } else { 'A' });
                    keys.push(o.expr.clone());
                }
            }
            _ => return None,
        }
    }
    let value = if values.len() == 1 {
        values.remove(0)
    } else {
        call(crate::executor::functions::MysqlConcat::NAME, values, false, None)
    };
    let mut args = vec![separator, text(spec), value];
    args.extend(keys);
    Some(call(crate::executor::group_concat::MysqlGroupConcat::NAME, args, false, None))
}

/// MySQL functions DataFusion lacks or computes differently, as
/// expressions it computes as MySQL does (MySQL 8.0 reference, 14.7 and
/// 14.8):
/// - `DATE_ADD(d, INTERVAL n unit)`, `ADDDATE(…)` → `d + INTERVAL n unit`;
///   `DATE_SUB`, `SUBDATE` → `d - INTERVAL …`; a string literal `d` is read
///   as a DATE (10 characters) or DATETIME;
/// - `ADDDATE(d, n)`, `SUBDATE(d, n)` (days) → `d ± INTERVAL n DAY`;
/// - `LENGTH(s)` → `octet_length(s)`: MySQL's LENGTH counts bytes;
/// - `IF(c, a, b)` → `CASE WHEN c THEN a ELSE b END`;
/// - the synonyms `LCASE` → `lower`, `UCASE` → `upper`, `MID` →
///   `substring`, `MOD(a, b)` → `a % b`;
/// - `IFNULL(a, b)` → `COALESCE(a, b)`: DataFusion's `ifnull` made
///   `IFNULL(dec_col, 0)` a DOUBLE, where MySQL keeps the DECIMAL (`100.50`,
///   not `100.5`);
/// - `GREATEST(a, b, …)`, `LEAST(…)` → `CASE WHEN a IS NULL OR b IS NULL …
///   THEN NULL ELSE (CASE WHEN a >= b THEN a ELSE b END) END`: MySQL's
///   answer is NULL when an argument is (MySQL 8.0 reference, "Comparison
///   Functions and Operators"), DataFusion's skips NULLs; and strings
///   compare under the collation.
fn mysql_function_rewrite(f: &Function) -> Option<Expr> {
    let name = f.name.to_string().to_ascii_lowercase();
    let args = plain_args(f)?;
    match (name.as_str(), args.as_slice()) {
        ("date_add" | "adddate" | "date_sub" | "subdate", [d, i @ Expr::Interval(_)]) => {
            let op = if name == "date_add" || name == "adddate" { BinaryOperator::Plus } else { BinaryOperator::Minus };
            let d = match d {
                Expr::Value(v) => match &v.value {
                    Value::SingleQuotedString(s) => Expr::Cast {
                        kind: CastKind::Cast,
                        expr: Box::new((*d).clone()),
                        data_type: if s.trim().len() <= 10 {
                            DataType::Date
                        } else {
                            DataType::Timestamp(Some(6), datafusion::sql::sqlparser::ast::TimezoneInfo::None)
                        },
                        format: None,
                        array: false,
                    },
                    _ => (*d).clone(),
                },
                _ => (*d).clone(),
            };
            if let Some(e) = interval_of_expression(&d, &op, i) {
                return Some(e);
            }
            let i = quarters_as_months(i);
            Some(Expr::Nested(Box::new(Expr::BinaryOp { left: Box::new(d), op, right: Box::new(i) })))
        }
        ("adddate" | "subdate", [d, n]) => {
            // As `ADDDATE(d, INTERVAL n DAY)`, which the arm above rewrites.
            Some(interval_call(&name, d, n, datafusion::sql::sqlparser::ast::DateTimeField::Day))
        }
        // `TIMESTAMPADD(unit, n, d)` as `DATE_ADD(d, INTERVAL n unit)`,
        // which MySQL defines it as (MySQL 8.0 reference, 14.7).
        ("timestampadd", [Expr::Identifier(unit), n, d]) => {
            use datafusion::sql::sqlparser::ast::DateTimeField as F;
            let u = unit.value.to_ascii_uppercase();
            let field = match u.strip_prefix("SQL_TSI_").unwrap_or(&u) {
                "MICROSECOND" => F::Microsecond,
                "SECOND" => F::Second,
                "MINUTE" => F::Minute,
                "HOUR" => F::Hour,
                "DAY" => F::Day,
                "WEEK" => F::Week(None),
                "MONTH" => F::Month,
                "QUARTER" => F::Quarter,
                "YEAR" => F::Year,
                _ => return None,
            };
            Some(interval_call("date_add", d, n, field))
        }
        // MySQL's LOG(x) is the natural logarithm (DataFusion's, base 10).
        ("log", [x]) => Some(call("ln", vec![(*x).clone()], false, None)),
        ("length", [s]) => Some(call("octet_length", vec![(*s).clone()], false, None)),
        ("lcase", [s]) => Some(call("lower", vec![(*s).clone()], false, None)),
        ("ucase", [s]) => Some(call("upper", vec![(*s).clone()], false, None)),
        ("mid", [s, p, l]) => Some(call("substring", vec![(*s).clone(), (*p).clone(), (*l).clone()], false, None)),
        ("mod", [a, b]) => Some(Expr::Nested(Box::new(Expr::BinaryOp {
            left: Box::new((*a).clone()),
            op: BinaryOperator::Modulo,
            right: Box::new((*b).clone()),
        }))),

        // MySQL's STD, STDDEV and VARIANCE are the population ones
        // (DataFusion's `stddev` is the sample's), shown with the decimals
        // of their argument plus 4.
        ("std" | "stddev" | "stddev_pop" | "stddev_samp" | "variance" | "var_pop" | "var_samp", [x]) => {
            let agg = match name.as_str() {
                "std" | "stddev" | "stddev_pop" => "stddev_pop",
                "variance" | "var_pop" => "var_pop",
                other => other,
            };
            let v = call(agg, vec![(*x).clone()], false, None);
            let sum = call("sum", vec![(*x).clone()], false, None);
            Some(call(crate::executor::functions::MysqlFixedDecimals::NAME, vec![v, sum], false, None))
        }
        ("ifnull", [a, b]) => Some(call("coalesce", vec![(*a).clone(), (*b).clone()], false, None)),
        ("greatest" | "least", [first, rest @ ..]) if !rest.is_empty() => {
            // The best argument by pairwise comparisons, which compare
            // strings under the collation as every CN comparison does
            // (DataFusion's GREATEST compares bytes: LEAST('Eve', 'c') was
            // 'Eve'); each step doubles the expression, so up to 5
            // arguments.
            let op = if name == "greatest" { BinaryOperator::GtEq } else { BinaryOperator::LtEq };
            // Each argument marked with the call's group: where strings
            // meet numbers, the analyzer makes them all DOUBLEs, which
            // MariaDB compares and answers (LEAST('Mail', 1) is 0).
            let group = crate::optimizer::coercion::next_order_group();
            let mark = |x: &Expr| {
                call(
                    crate::optimizer::coercion::ORDER_ARG,
                    vec![x.clone(), Expr::value(Value::Number(group.to_string(), false))],
                    false,
                    None,
                )
            };
            let pick = |x: Expr, y: Expr| {
                Expr::Nested(Box::new(Expr::Case {
                    case_token: AttachedToken::empty(),
                    end_token: AttachedToken::empty(),
                    operand: None,
                    conditions: vec![datafusion::sql::sqlparser::ast::CaseWhen {
                        condition: Expr::BinaryOp {
                            left: Box::new(x.clone()),
                            op: op.clone(),
                            right: Box::new(y.clone()),
                        },
                        result: x,
                    }],
                    else_result: Some(Box::new(y)),
                }))
            };
            let best = if rest.len() <= 4 {
                rest.iter().fold(mark(first), |acc, e| pick(acc, mark(e)))
            } else {
                Expr::Function(f.clone())
            };
            Some(null_if_any_null(&args, best))
        }
        // `NULLIF(a, b)`: `a = b` under the collation ('Mail' and 'mail'
        // are equal), which DataFusion's `nullif` compared byte by byte.
        ("nullif", [a, b]) => Some(Expr::Case {
            case_token: AttachedToken::empty(),
            end_token: AttachedToken::empty(),
            operand: None,
            conditions: vec![datafusion::sql::sqlparser::ast::CaseWhen {
                condition: binary((*a).clone(), BinaryOperator::Eq, (*b).clone()),
                result: Expr::value(Value::Null),
            }],
            else_result: Some(Box::new((*a).clone())),
        }),
        ("if", [c, a, b]) => Some(Expr::Case {
            case_token: AttachedToken::empty(),
            end_token: AttachedToken::empty(),
            operand: None,
            conditions: vec![datafusion::sql::sqlparser::ast::CaseWhen {
                condition: (*c).clone(),
                result: (*a).clone(),
            }],
            else_result: Some(Box::new((*b).clone())),
        }),
        _ => None,
    }
}

/// `b'101'` as `X'05'`: the bits, padded on the left to whole bytes
/// (MySQL's bit-value literal; `b''` is the empty string). `None` when
/// `bits` holds anything but `0` and `1`.
fn bit_literal_as_hex(bits: &str) -> Option<Expr> {
    if !bits.bytes().all(|c| c == b'0' || c == b'1') {
        return None;
    }
    let padded = format!("{}{bits}", "0".repeat((8 - bits.len() % 8) % 8));
    let bytes: Vec<u8> =
        padded.as_bytes().chunks(8).map(|byte| byte.iter().fold(0u8, |acc, &b| (acc << 1) | (b - b'0'))).collect();
    Some(Expr::Value(Value::HexStringLiteral(crate::planner::split::hex_digits(&bytes)).into()))
}

/// Whether an arithmetic operand is a number by its form (a numeric
/// literal, an interval, another arithmetic operation, a COUNT, SUM or
/// AVG): the others get the [`crate::executor::truth::Conversion::Number`] mark,
/// which the analyzer takes off again ([`crate::optimizer::coercion`]).
fn is_number(e: &Expr) -> bool {
    use BinaryOperator::*;
    match e {
        Expr::Value(v) => matches!(v.value, Value::Number(..) | Value::Null),
        Expr::Interval(_) => true,
        Expr::Nested(x) | Expr::UnaryOp { op: UnaryOperator::Minus | UnaryOperator::Plus, expr: x } => is_number(x),
        Expr::BinaryOp { op, .. } => matches!(op, Plus | Minus | Multiply | Divide | Modulo | MyIntegerDivide),
        Expr::Function(f) => {
            let name = f.name.to_string();
            [MysqlDiv::NAME, MysqlIntDiv::NAME, Conversion::Number.name(), "count", "sum", "avg"]
                .iter()
                .any(|n| name.eq_ignore_ascii_case(n))
        }
        _ => false,
    }
}

impl VisitorMut for Rewriter {
    type Break = ();
    fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
        // MySQL computes with a string operand's number (`s + 1`), which
        // DataFusion refuses to plan: the operand is marked, and the
        // analyzer decides (`crate::optimizer::coercion`).
        if let Expr::BinaryOp {
            left,
            op: BinaryOperator::Plus | BinaryOperator::Minus | BinaryOperator::Multiply | BinaryOperator::Modulo,
            right,
        } = e
        {
            // With an INTERVAL it is date arithmetic (`d + INTERVAL 1 DAY`).
            let interval = matches!(**left, Expr::Interval(_)) || matches!(**right, Expr::Interval(_));
            for x in [left, right].into_iter().filter(|_| !interval) {
                if !is_number(x) {
                    **x = call(Conversion::Number.name(), vec![(**x).clone()], false, None);
                }
            }
        }
        // `CONVERT(x, type)` is `CAST(x AS type)` (the match below then
        // sees the CAST); `CONVERT(x USING cs)` is `x`: the CN's strings
        // are all utf8mb4.
        if let Expr::Convert { is_try: false, expr, data_type, charset, target_before_value: false, styles } = e {
            if styles.is_empty() {
                match (data_type.take(), charset.is_some()) {
                    (Some(data_type), false) => {
                        *e = Expr::Cast {
                            kind: CastKind::Cast,
                            expr: expr.clone(),
                            data_type,
                            format: None,
                            array: false,
                        }
                    }
                    (None, true) => *e = (**expr).clone(),
                    (t, _) => *data_type = t,
                }
            }
        }
        // `SUM(x > 0)` counts truths (DataFusion sums no booleans): a
        // truth value as SUM's or AVG's argument is `CASE WHEN x THEN 1
        // WHEN NOT x THEN 0 END`.
        if let Expr::Function(f) = e {
            let name = f.name.to_string();
            if name.eq_ignore_ascii_case("sum") || name.eq_ignore_ascii_case("avg") {
                if let FunctionArguments::List(list) = &mut f.args {
                    if let [FunctionArg::Unnamed(FunctionArgExpr::Expr(x))] = list.args.as_mut_slice() {
                        if is_boolean(x) {
                            let when = |condition: Expr, n: &str| datafusion::sql::sqlparser::ast::CaseWhen {
                                condition,
                                result: Expr::value(Value::Number(n.into(), false)),
                            };
                            let not = Expr::UnaryOp {
                                op: UnaryOperator::Not,
                                expr: Box::new(Expr::Nested(Box::new(x.clone()))),
                            };
                            *x = Expr::Case {
                                case_token: AttachedToken::empty(),
                                end_token: AttachedToken::empty(),
                                operand: None,
                                conditions: vec![when(x.clone(), "1"), when(not, "0")],
                                else_result: None,
                            };
                        }
                    }
                }
            }
        }
        let new = match e {
            Expr::BinaryOp { left, op: BinaryOperator::Divide, right } => {
                Some(call(MysqlDiv::NAME, vec![(**left).clone(), (**right).clone()], false, None))
            }
            Expr::BinaryOp { left, op: BinaryOperator::MyIntegerDivide, right } => {
                Some(call(MysqlIntDiv::NAME, vec![(**left).clone(), (**right).clone()], false, None))
            }
            // MySQL's bit-value literal `b'101'`: the same bytes as a
            // hexadecimal literal (DataFusion plans those, not these).
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedByteStringLiteral(bits) => bit_literal_as_hex(bits),
                // `N'…'`: the national character set is utf8 (utf8mb4 here).
                Value::NationalStringLiteral(s) => Some(Expr::value(Value::SingleQuotedString(s.clone()))),
                // A number with an exponent is a DOUBLE in MySQL (the CN
                // parses the others as DECIMALs, as MySQL does).
                Value::Number(n, _) if n.contains(['e', 'E']) => Some(Expr::Cast {
                    kind: CastKind::Cast,
                    expr: Box::new(Expr::Value(v.clone())),
                    data_type: DataType::Double(datafusion::sql::sqlparser::ast::ExactNumberInfo::None),
                    format: None,
                    array: false,
                }),
                _ => None,
            },
            // `SUBSTRING(s, p[, n])` as a call of `substr`, which the CN
            // registers for any argument type (DataFusion's planner built
            // its own `substr` for the syntax, refusing a DATE).
            Expr::Substring { expr, substring_from, substring_for, .. } => {
                let args = std::iter::once((**expr).clone())
                    .chain(substring_from.as_deref().cloned())
                    .chain(substring_for.as_deref().cloned())
                    .collect();
                Some(call("substr", args, false, None))
            }
            // `POSITION(a IN s)` is `LOCATE(a, s)`: under the collation
            // (DataFusion's `strpos` told `a` from `A`).
            Expr::Position { expr, r#in } => {
                Some(call("locate", vec![(**expr).clone(), (**r#in).clone()], false, None))
            }
            // `s [NOT] REGEXP p` (and RLIKE): MariaDB's own regular
            // expressions (PCRE, under the string's collation), which a
            // shard or a DN computes: `REGEXP_INSTR(s, p) > 0`.
            Expr::RLike { negated, expr, pattern, .. } => {
                let found = binary(
                    call("regexp_instr", vec![(**expr).clone(), (**pattern).clone()], false, None),
                    BinaryOperator::Gt,
                    Expr::value(Value::Number("0".into(), false)),
                );
                let found = Expr::Nested(Box::new(found));
                Some(if *negated { Expr::UnaryOp { op: UnaryOperator::Not, expr: Box::new(found) } } else { found })
            }
            // A character set introducer (`_utf8mb4'z'`): the CN's strings
            // are all utf8mb4; `_binary'…'` gives the bytes.
            Expr::Prefixed { prefix, value } if prefix.value.starts_with('_') => match value.as_ref() {
                Expr::Value(v) => match &v.value {
                    Value::SingleQuotedString(s) | Value::DoubleQuotedString(s)
                        if prefix.value.eq_ignore_ascii_case("_binary") =>
                    {
                        let hex = crate::planner::split::hex_digits(s.as_bytes());
                        Some(Expr::Value(Value::HexStringLiteral(hex).into()))
                    }
                    Value::SingleQuotedString(_) | Value::DoubleQuotedString(_) | Value::HexStringLiteral(_) => {
                        Some((**value).clone())
                    }
                    _ => None,
                },
                _ => None,
            },
            // MySQL's unary plus does nothing, to any type; DataFusion's
            // accepts only numbers (`+ col` of a VARCHAR failed).
            Expr::UnaryOp { op: UnaryOperator::Plus, expr } => Some((**expr).clone()),
            // MySQL's bit operators take the 64 bits of their operands as
            // a BIGINT UNSIGNED (DataFusion's, of signed integers, gave
            // `-1 & x` as -1 and `x | 8` of a negative x negative).
            Expr::BinaryOp { left, op, right }
                if matches!(
                    op,
                    BinaryOperator::BitwiseAnd
                        | BinaryOperator::BitwiseOr
                        | BinaryOperator::BitwiseXor
                        | BinaryOperator::PGBitwiseShiftLeft
                        | BinaryOperator::PGBitwiseShiftRight
                ) && !is_call(left, MysqlCastInt::BITS) =>
            {
                let bits = |x: &Expr| call(MysqlCastInt::BITS, vec![x.clone()], false, None);
                Some(Expr::BinaryOp { left: Box::new(bits(left)), op: op.clone(), right: Box::new(bits(right)) })
            }
            // `EXTRACT(WEEK FROM d)` is MariaDB's `WEEK(d)`, of the
            // session's `default_week_format` (DataFusion's is the ISO week).
            Expr::Extract { field: datafusion::sql::sqlparser::ast::DateTimeField::Week(None), expr, .. } => {
                Some(call("week", vec![(**expr).clone()], false, None))
            }
            // `INTERVAL '1:30' HOUR_MINUTE` and the other composite units
            // (DataFusion has none): an interval of one unit.
            Expr::Interval(iv)
                if iv.leading_field.as_ref().and_then(crate::planner::extract::composite_unit).is_some() =>
            {
                composite_interval(iv)
            }
            // `EXTRACT(YEAR_MONTH FROM d)` and the other composite units
            // (DataFusion has none): the shard function `cn_extract`.
            Expr::Extract { field, expr, .. } if crate::planner::extract::composite_unit(field).is_some() => {
                crate::planner::extract::composite_unit(field).map(|unit| {
                    let unit = Expr::value(Value::SingleQuotedString(unit.into()));
                    call("cn_extract", vec![unit, (**expr).clone()], false, None)
                })
            }
            // `d ± INTERVAL g DAY` (or `INTERVAL g DAY + d`) of an expression `g`.
            Expr::BinaryOp { left, op, right } if matches!(**left, Expr::Interval(_)) => {
                (*op == BinaryOperator::Plus).then(|| interval_of_expression(right, op, left)).flatten()
            }
            Expr::BinaryOp { left, op, right } => interval_of_expression(left, op, right),
            // `INTERVAL n QUARTER` (DataFusion has no quarters).
            Expr::Interval(iv) if iv.leading_field == Some(datafusion::sql::sqlparser::ast::DateTimeField::Quarter) => {
                Some(quarters_as_months(e))
            }
            // MySQL's `~x` (DataFusion has no bitwise NOT).
            Expr::UnaryOp { op: UnaryOperator::BitwiseNot, expr } => {
                Some(call(MysqlCastInt::BITNOT, vec![(**expr).clone()], false, None))
            }
            // MySQL's STD, STDDEV and VARIANCE windows are the population
            // ones too (see `mysql_function_rewrite` for the aggregates).
            Expr::Function(f)
                if f.over.is_some()
                    && ["std", "stddev", "variance"].contains(&f.name.to_string().to_ascii_lowercase().as_str()) =>
            {
                let pop = if f.name.to_string().eq_ignore_ascii_case("variance") { "var_pop" } else { "stddev_pop" };
                let mut g = f.clone();
                g.name = ObjectName::from(vec![Ident::new(pop)]);
                Some(Expr::Function(g))
            }
            Expr::Function(f) => avg_rewrite(f)
                .or_else(|| group_concat_rewrite(f))
                .or_else(|| json_aggregate_rewrite(f))
                .or_else(|| count_distinct_rewrite(f))
                .or_else(|| mysql_function_rewrite(f)),
            // DataFusion plans neither DATETIME nor TIME(n): the same
            // values as TIMESTAMP(6) (the CN's DATETIME columns) and TIME,
            // cut to the cast's fractional digits (none when not given:
            // MariaDB's `CAST(dt AS DATETIME)` drops `.999`).
            Expr::Cast {
                kind,
                expr,
                data_type: data_type @ (DataType::Datetime(_) | DataType::Time(..)),
                format: None,
                array: false,
            } => {
                use datafusion::sql::sqlparser::ast::TimezoneInfo;
                let (to, p) = match data_type {
                    DataType::Datetime(p) => (DataType::Timestamp(Some(6), TimezoneInfo::None), *p),
                    DataType::Time(p, _) => (DataType::Time(None, TimezoneInfo::None), *p),
                    _ => return ControlFlow::Continue(()),
                };
                let cast =
                    Expr::Cast { kind: kind.clone(), expr: expr.clone(), data_type: to, format: None, array: false };
                let digits = Expr::value(Value::Number(p.unwrap_or(0).min(6).to_string(), false));
                Some(call(crate::executor::functions::MysqlFsp::NAME, vec![cast, digits], false, None))
            }
            // `CAST(x AS CHAR(n))`: the first n characters (DataFusion
            // ignored the length).
            Expr::Cast {
                expr,
                data_type:
                    DataType::Char(Some(CharacterLength::IntegerLength { length, .. }))
                    | DataType::Character(Some(CharacterLength::IntegerLength { length, .. })),
                format: None,
                array: false,
                ..
            } => {
                let text = Expr::Cast {
                    kind: CastKind::Cast,
                    expr: expr.clone(),
                    data_type: DataType::Char(None),
                    format: None,
                    array: false,
                };
                Some(call("left", vec![text, Expr::value(Value::Number(length.to_string(), false))], false, None))
            }
            // `CAST(x AS BINARY)`, `BINARY x`: DataFusion plans no BINARY
            // type; the shard function `binary(x)`, which MariaDB reads
            // back as the same cast.
            Expr::Cast { expr, data_type: DataType::Binary(None), format: None, array: false, .. } => {
                Some(call("binary", vec![(**expr).clone()], false, None))
            }
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
    fn bit_literals_become_hexadecimal_ones() {
        let hex = |bits| bit_literal_as_hex(bits).map(|e| e.to_string());
        assert_eq!(hex("1").as_deref(), Some("X'01'"));
        assert_eq!(hex("0100000101000010").as_deref(), Some("X'4142'"));
        assert_eq!(hex("101000001").as_deref(), Some("X'0141'"));
        assert_eq!(hex("").as_deref(), Some("X''"));
        assert_eq!(hex("12"), None);
    }

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
            ("SELECT a DIV (b + c) = 2 AND x", "SELECT ((mysql_intdiv(a, ((b + c))) = 2) AND __cn_truth(x))"),
            ("SELECT a + b * c - d", "SELECT ((a + (b * c)) - d)"),
            ("SELECT - a + + 34 DIV a IS NULL", "SELECT (-a + mysql_intdiv(34, a)) IS NULL"),
            (
                "SELECT a DIV b NOT IN (1, c DIV 2 + 1)",
                "SELECT mysql_intdiv(a, b) NOT IN (1, (mysql_intdiv(c, 2) + 1))",
            ),
            ("SELECT a DIV b BETWEEN 1 AND 2 OR x", "SELECT (mysql_intdiv(a, b) BETWEEN 1 AND 2 OR __cn_truth(x))"),
        ] {
            let mut s = Parser::parse_sql(&MySqlDialect {}, sql).unwrap().remove(0);
            rewrite(&mut s);
            let _ = s.visit(&mut Bracket);
            // Without the arithmetic operands' marks (`is_number`).
            let printed = s.to_string();
            let unmarked = printed.split("__cn_num(").enumerate().fold(String::new(), |mut out, (i, part)| {
                if i == 0 {
                    out.push_str(part);
                } else {
                    // The mark's argument is an identifier here: drop its `)`.
                    let end = part.find(')').expect("closed");
                    out.push_str(&part[..end]);
                    out.push_str(&part[end + 1..]);
                }
                out
            });
            assert_eq!(unmarked, want, "{sql}");
        }
    }

    #[test]
    fn in_subqueries_inside_or_become_three_valued_and_whole_conjuncts_stay() {
        let rewritten = |sql: &str| {
            let mut s = Parser::parse_sql(&MySqlDialect {}, sql).unwrap().remove(0);
            rewrite(&mut s);
            s.to_string()
        };
        let s = rewritten("SELECT id FROM t WHERE a NOT IN (SELECT b FROM s WHERE s.k = t.k) OR c > 1");
        assert!(s.contains("NOT (CASE WHEN a IN (SELECT b FROM s WHERE s.k = t.k) THEN true"), "{s}");
        assert!(s.contains("(SELECT count(*) - count(b) FROM s WHERE s.k = t.k) > 0 THEN NULL ELSE false END"), "{s}");
        assert!(s.contains("a IS NULL AND (SELECT count(*) FROM s WHERE s.k = t.k) > 0"), "{s}");
        for unchanged in [
            "SELECT id FROM t WHERE a NOT IN (SELECT b FROM s) AND c > 1",
            "SELECT id FROM t WHERE NOT (a IN (SELECT b FROM s))",
            "SELECT id FROM t WHERE a IN (SELECT b FROM s GROUP BY b) OR c > 1",
        ] {
            assert_eq!(rewritten(unchanged), unchanged);
        }
        // A subquery's own WHERE gets its turn.
        let s = rewritten("SELECT id FROM t WHERE EXISTS (SELECT 1 FROM s WHERE s.a IN (SELECT b FROM u) OR s.c)");
        assert!(s.contains("CASE WHEN s.a IN (SELECT b FROM u) THEN true"), "{s}");
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
            "SELECT COALESCE(55, first_value(t.c1), first_value(c0)) AS x, c2, __cn_num(t.c2) + 1, count(c0), \
             __cn_num(c3) + __cn_num(c4) FROM t GROUP BY t.c2, __cn_num(c3) + __cn_num(c4)"
        );
        // Grouped by a select item's alias: that item is grouped whole.
        let mut s = Parser::parse_sql(
            &MySqlDialect {},
            "SELECT UPPER(c0) AS u, CASE WHEN c1 > 1 THEN 'a' END AS k, c2, COUNT(*) FROM t GROUP BY u, K",
        )
        .unwrap()
        .remove(0);
        rewrite(&mut s);
        assert_eq!(
            s.to_string(),
            "SELECT UPPER(c0) AS u, CASE WHEN c1 > 1 THEN 'a' END AS k, first_value(c2) AS c2, COUNT(*) \
             FROM t GROUP BY u, K"
        );
    }

    #[test]
    fn any_and_all_over_a_relation_of_the_outer_query_get_a_scope_of_their_own() {
        let mut s = Parser::parse_sql(
            &MySqlDialect {},
            "SELECT name FROM e WHERE sal > ANY (SELECT sal FROM e WHERE dept = 1) \
             AND sal <= ALL (SELECT sal FROM d) AND sal < SOME (SELECT MAX(sal) FROM e AS x)",
        )
        .unwrap()
        .remove(0);
        rewrite(&mut s);
        assert_eq!(
            s.to_string(),
            "SELECT name FROM e WHERE sal > ANY(SELECT * FROM (SELECT sal FROM e WHERE dept = 1) AS __cn_any_1) \
             AND sal <= ALL(SELECT sal FROM d) AND sal < SOME(SELECT MAX(sal) FROM e AS x)"
        );
    }

    #[test]
    fn row_subqueries_and_exists_items_become_aggregate_subqueries() {
        let mut s = Parser::parse_sql(
            &MySqlDialect {},
            "SELECT (SELECT d.n FROM d WHERE d.id = e.d) AS n, NOT EXISTS (SELECT 1 FROM d WHERE d.id = e.d), \
             (SELECT MAX(n) FROM d), (SELECT n FROM d LIMIT 1) FROM e \
             WHERE EXISTS (SELECT 1 FROM d) AND e.x > ANY (SELECT x FROM d)",
        )
        .unwrap()
        .remove(0);
        rewrite(&mut s);
        assert_eq!(
            s.to_string(),
            "SELECT (SELECT __cn_single_row(count(*), max(d.n)) FROM d WHERE d.id = e.d) AS n, \
             NOT ((SELECT count(*) FROM d WHERE d.id = e.d) > 0), (SELECT MAX(n) FROM d), \
             (SELECT n FROM d LIMIT 1) FROM e WHERE EXISTS (SELECT 1 FROM d) AND e.x > ANY(SELECT x FROM d)"
        );
    }

    #[test]
    fn division_and_avg_become_mysql_div() {
        let mut s = Parser::parse_sql(
            &MySqlDialect {},
            "SELECT a / (b / 2), avg(d) OVER (PARTITION BY e), a DIV b, CAST(a AS SIGNED) FROM t",
        )
        .unwrap()
        .remove(0);
        rewrite(&mut s);
        assert_eq!(
            s.to_string(),
            "SELECT mysql_div(a, (mysql_div(b, 2))), \
             mysql_div(sum(d) OVER (PARTITION BY e), count(d) OVER (PARTITION BY e)), mysql_intdiv(a, b), mysql_signed(a) FROM t"
        );
        // An aggregate without GROUP BY makes one group: a column beside it
        // takes one row's value.
        let mut s = Parser::parse_sql(&MySqlDialect {}, "SELECT AVG(DISTINCT c), a FROM t").unwrap().remove(0);
        rewrite(&mut s);
        assert_eq!(s.to_string(), "SELECT mysql_div(sum(DISTINCT c), count(DISTINCT c)), first_value(a) AS a FROM t");
    }
}
