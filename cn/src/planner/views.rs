//! Views: a view's name in a query is replaced by its SELECT as a derived
//! table (MySQL's MERGE algorithm, done on the syntax tree), before routing
//! and planning. The rest of the CN then sees ordinary tables: a view over
//! one shard's rows still goes down whole, a view over a sharded table is
//! planned with its filters and aggregates pushed down like any subquery.
//!
//! A view lives only in the metadb ([`crate::catalog::ViewDef`]); its
//! query's table names are qualified with the view's database when it is
//! created ([`qualify`]), so it reads the same tables whatever the current
//! database of the session that uses it.

use super::resolve_name;
use crate::catalog::CatalogSnapshot;
use crate::error::{CnError, Result};
use datafusion::sql::sqlparser::ast::{
    Ident, ObjectName, ObjectNamePart, Query, Statement, TableAlias, TableAliasColumnDef, TableFactor, VisitMut,
    VisitorMut,
};
use std::collections::BTreeSet;
use std::ops::ControlFlow;

/// How many view references one statement may expand: more means a cycle
/// (`CREATE OR REPLACE` can close one), which MySQL reports as 1462.
const MAX_EXPANSIONS: usize = 256;

/// Replaces every view named in `q` (in FROM, joins, subqueries, and inside
/// the views themselves) by its query. Names a CTE of the statement defines
/// are left alone. Errors: 1462 for a cycle of views; a stored definition
/// that no longer parses (1064).
pub fn expand(snap: &CatalogSnapshot, db: Option<&str>, q: &mut Query) -> Result<()> {
    if snap.databases.values().all(|d| d.views.is_empty()) {
        return Ok(());
    }
    let mut ctes = BTreeSet::new();
    let _ = q.visit(&mut CteNames(&mut ctes));
    let mut v = Expander { snap, db, ctes, expansions: 0, error: None };
    let _ = q.visit(&mut v);
    match v.error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Qualifies the unqualified table names of a view's query with `db`
/// (CTE names excepted), so that the view does not depend on the database
/// of the session that reads it.
pub fn qualify(q: &mut Query, db: &str) {
    let mut ctes = BTreeSet::new();
    let _ = q.visit(&mut CteNames(&mut ctes));
    let _ = datafusion::sql::sqlparser::ast::visit_relations_mut(q, |name| {
        if let [ObjectNamePart::Identifier(t)] = name.0.as_slice() {
            if !ctes.contains(&t.value.to_ascii_lowercase()) {
                *name = ObjectName(vec![ObjectNamePart::Identifier(Ident::with_quote('`', db)), name.0[0].clone()]);
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

struct CteNames<'a>(&'a mut BTreeSet<String>);

impl VisitorMut for CteNames<'_> {
    type Break = ();
    fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                self.0.insert(cte.alias.name.value.to_ascii_lowercase());
            }
        }
        ControlFlow::Continue(())
    }
}

struct Expander<'a> {
    snap: &'a CatalogSnapshot,
    db: Option<&'a str>,
    ctes: BTreeSet<String>,
    expansions: usize,
    error: Option<CnError>,
}

impl VisitorMut for Expander<'_> {
    type Break = ();

    fn pre_visit_table_factor(&mut self, tf: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table { name, alias, args: None, .. } = tf else {
            return ControlFlow::Continue(());
        };
        if name.0.len() == 1 && self.ctes.contains(&name.to_string().trim_matches('`').to_ascii_lowercase()) {
            return ControlFlow::Continue(());
        }
        let Ok((db, t)) = resolve_name(name, self.db) else {
            return ControlFlow::Continue(());
        };
        let Some(view) = self.snap.view(&db, &t) else {
            return ControlFlow::Continue(());
        };
        self.expansions += 1;
        if self.expansions > MAX_EXPANSIONS {
            self.error = Some(CnError::mysql(
                crate::error::code::ER_VIEW_RECURSIVE,
                format!("`{db}`.`{t}` contains view recursion"),
            ));
            return ControlFlow::Break(());
        }
        let subquery = match crate::planner::extract::parse(&view.query).map(|mut s| s.pop()) {
            Ok(Some(Statement::Query(q))) => q,
            _ => {
                self.error = Some(CnError::parse(format!("the stored definition of view `{db}`.`{t}` does not parse")));
                return ControlFlow::Break(());
            }
        };
        let mut alias = alias.take().unwrap_or(TableAlias {
            explicit: true,
            name: Ident::with_quote('`', &view.name),
            columns: vec![],
            at: None,
        });
        if alias.columns.is_empty() {
            alias.columns = view
                .columns
                .iter()
                .map(|c| TableAliasColumnDef { name: Ident::with_quote('`', c), data_type: None })
                .collect();
        }
        // The visitor goes on into the new subquery: views of views expand.
        *tf = TableFactor::Derived { lateral: false, subquery, alias: Some(alias), sample: None };
        ControlFlow::Continue(())
    }
}
