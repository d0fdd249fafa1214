//! MySQL's clock functions in a statement the CN computes. `NOW()`,
//! `CURDATE()`, `UTC_TIMESTAMP()`, … give the time the statement began, one
//! value for the whole statement, in the session's time zone (MySQL 8.0
//! reference, 14.7 "Date and Time Functions": "NOW() returns a constant
//! time that indicates the time at which the statement began to execute").
//! DataFusion's `now()` is UTC with nanoseconds and has no `CURDATE()`, so
//! before DataFusion plans a statement that calls one, the CN reads the
//! time once from a DN in the session's zone ([`Clock::QUERY`]) and writes
//! each call as a literal of MySQL's type and precision.

use crate::error::{CnError, Result};
use datafusion::sql::sqlparser::ast::{Expr, FunctionArguments, Query, Visit, VisitMut, Visitor, VisitorMut};
use datafusion::sql::sqlparser::dialect::MySqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use std::ops::ControlFlow;

/// The statement's time, as a DN in the session's zone gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clock {
    /// `NOW(6)`: `YYYY-MM-DD HH:MM:SS.ffffff` in the session's zone.
    pub local: String,
    /// `UTC_TIMESTAMP(6)`, the same instant in UTC.
    pub utc: String,
    /// `UNIX_TIMESTAMP()`: whole seconds since 1970-01-01 UTC.
    pub unix: i64,
}

impl Clock {
    /// What a DN answers with the three values, in this order.
    pub const QUERY: &'static str = "SELECT NOW(6), UTC_TIMESTAMP(6), UNIX_TIMESTAMP()";
}

/// What a clock function gives.
#[derive(Clone, Copy)]
enum Kind {
    Datetime { utc: bool },
    Date { utc: bool },
    Time { utc: bool },
    Unix,
}

/// The clock function `name` (lower-case) called with `args` arguments.
fn kind(name: &str, args: usize) -> Option<Kind> {
    Some(match name {
        "now" | "current_timestamp" | "localtime" | "localtimestamp" | "sysdate" => Kind::Datetime { utc: false },
        "utc_timestamp" => Kind::Datetime { utc: true },
        "curdate" | "current_date" if args == 0 => Kind::Date { utc: false },
        "utc_date" if args == 0 => Kind::Date { utc: true },
        "curtime" | "current_time" => Kind::Time { utc: false },
        "utc_time" => Kind::Time { utc: true },
        "unix_timestamp" if args == 0 => Kind::Unix,
        _ => return None,
    })
}

/// The clock function an expression calls, with its fractional-second
/// precision (0 to 6; `NOW(3)`); `None` for anything else.
fn clock_call(e: &Expr) -> Option<(Kind, usize)> {
    let Expr::Function(f) = e else { return None };
    if f.name.0.len() != 1 {
        return None;
    }
    let name = f.name.to_string().to_ascii_lowercase();
    let args = match &f.args {
        FunctionArguments::None => Vec::new(),
        FunctionArguments::List(l) => l.args.iter().map(ToString::to_string).collect(),
        FunctionArguments::Subquery(_) => return None,
    };
    let kind = kind(&name, args.len())?;
    let fsp = match args.as_slice() {
        [] => 0,
        [n] if !matches!(kind, Kind::Unix | Kind::Date { .. }) => n.parse::<usize>().ok().filter(|n| *n <= 6)?,
        _ => return None,
    };
    Some((kind, fsp))
}

/// Whether `q` calls a clock function.
pub fn uses_clock(q: &Query) -> bool {
    struct Find;
    impl Visitor for Find {
        type Break = ();
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
            match clock_call(e) {
                Some(_) => ControlFlow::Break(()),
                None => ControlFlow::Continue(()),
            }
        }
    }
    q.visit(&mut Find).is_break()
}

/// `stamp` (`YYYY-MM-DD HH:MM:SS.ffffff`) cut to `fsp` fractional digits.
fn with_fsp(stamp: &str, fsp: usize) -> &str {
    let whole = stamp.split('.').next().unwrap_or(stamp);
    if fsp == 0 {
        whole
    } else {
        &stamp[..(whole.len() + 1 + fsp).min(stamp.len())]
    }
}

/// The literal a clock call stands for at `clock`.
fn literal(kind: Kind, fsp: usize, clock: &Clock) -> String {
    let stamp = |utc: bool| if utc { clock.utc.as_str() } else { clock.local.as_str() };
    match kind {
        Kind::Datetime { utc } => format!("TIMESTAMP '{}'", with_fsp(stamp(utc), fsp)),
        Kind::Date { utc } => format!("DATE '{}'", stamp(utc).split(' ').next().unwrap_or_default()),
        Kind::Time { utc } => {
            let t = with_fsp(stamp(utc), fsp);
            format!("TIME '{}'", t.split_once(' ').map_or(t, |x| x.1))
        }
        Kind::Unix => clock.unix.to_string(),
    }
}

/// Replaces every clock call in `q` by its value at `clock`. Errors: a
/// value that does not parse back (a DN's answer in another form).
pub fn substitute(q: &mut Query, clock: &Clock) -> Result<()> {
    struct Sub<'a>(&'a Clock, Option<CnError>);
    impl VisitorMut for Sub<'_> {
        type Break = ();
        fn post_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<()> {
            if let Some((kind, fsp)) = clock_call(e) {
                let sql = literal(kind, fsp, self.0);
                match Parser::new(&MySqlDialect {}).try_with_sql(&sql).and_then(|mut p| p.parse_expr()) {
                    Ok(v) => *e = v,
                    Err(err) => {
                        self.1 = Some(CnError::internal(format!("the clock's value {sql}: {err}")));
                        return ControlFlow::Break(());
                    }
                }
            }
            ControlFlow::Continue(())
        }
    }
    let mut s = Sub(clock, None);
    let _ = q.visit(&mut s);
    s.1.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::ast::Statement;

    fn query(sql: &str) -> Query {
        match Parser::parse_sql(&MySqlDialect {}, sql).unwrap().remove(0) {
            Statement::Query(q) => *q,
            _ => panic!("not a query"),
        }
    }

    #[test]
    fn clock_calls_become_literals_of_their_type_and_precision() {
        let clock = Clock {
            local: "2026-12-06 12:39:35.906785".into(),
            utc: "2026-12-06 04:39:35.906785".into(),
            unix: 1_796_531_975,
        };
        let mut q = query(
            "SELECT NOW(), CURRENT_TIMESTAMP, NOW(3), CURDATE(), CURRENT_DATE, CURTIME(6), UTC_TIMESTAMP(), \
             UTC_DATE(), UNIX_TIMESTAMP(), UNIX_TIMESTAMP(d), DATE(d) FROM t WHERE d < SYSDATE()",
        );
        assert!(uses_clock(&q));
        substitute(&mut q, &clock).unwrap();
        assert_eq!(
            q.to_string(),
            "SELECT TIMESTAMP '2026-12-06 12:39:35', TIMESTAMP '2026-12-06 12:39:35', \
             TIMESTAMP '2026-12-06 12:39:35.906', DATE '2026-12-06', DATE '2026-12-06', TIME '12:39:35.906785', \
             TIMESTAMP '2026-12-06 04:39:35', DATE '2026-12-06', 1796531975, UNIX_TIMESTAMP(d), DATE(d) FROM t \
             WHERE d < TIMESTAMP '2026-12-06 12:39:35'"
        );
        assert!(!uses_clock(&q));
        assert!(!uses_clock(&query("SELECT UNIX_TIMESTAMP(d), NOW(7) FROM t")));
    }
}
