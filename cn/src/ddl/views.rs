//! CREATE [OR REPLACE] VIEW and DROP VIEW. A view is a row in the metadb
//! (`cn_meta.views`), nothing on the DNs; queries expand it
//! ([`crate::planner::views`]).

use crate::catalog::ViewDef;
use crate::error::{code, CnError, Result};
use crate::planner::resolve_name;
use crate::session::sink::{CollectSink, ResultSink};
use crate::session::Session;
use datafusion::sql::sqlparser::ast::{CreateView, Expr, LimitClause, ObjectName, Value};

/// Creates (or with OR REPLACE replaces) a view. The query is run once with
/// `LIMIT 0` first, so a view over a missing table or column fails as the
/// SELECT would (1146, 1054), and its column names are checked: 1060 for a
/// duplicate, 1353 when a column list has another length. 1050 when a
/// table or (without OR REPLACE) a view has the name.
pub async fn create_view(s: &mut Session, cv: CreateView, sink: &mut dyn ResultSink) -> Result<()> {
    if cv.materialized || cv.temporary || cv.to.is_some() {
        return Err(CnError::unsupported("CREATE MATERIALIZED/TEMPORARY VIEW"));
    }
    let (db, name) = resolve_name(&cv.name, s.db.as_deref())?;
    let snap = s.cluster.catalog.snapshot();
    if snap.database(&db).is_none() {
        return Err(CnError::bad_db(&db));
    }
    if snap.table(&db, &name).is_some() || (snap.view(&db, &name).is_some() && !cv.or_replace && !cv.or_alter) {
        if cv.if_not_exists && snap.view(&db, &name).is_some() {
            s.warnings.push(("Note".into(), code::ER_TABLE_EXISTS_ERROR, format!("Table '{name}' already exists")));
            return sink.ok(0, 0, "").await;
        }
        return Err(CnError::mysql(code::ER_TABLE_EXISTS_ERROR, format!("Table '{name}' already exists")));
    }
    let mut query = *cv.query;
    // Its tables are read in the view's database, wherever it is used.
    crate::planner::views::qualify(&mut query, &db);
    let mut probe = query.clone();
    probe.limit_clause = Some(LimitClause::LimitOffset {
        limit: Some(Expr::value(Value::Number("0".into(), false))),
        offset: None,
        limit_by: vec![],
    });
    let mut out = CollectSink::default();
    s.select_into(probe, &mut out).await?;
    let columns: Vec<String> = cv.columns.iter().map(|c| c.name.value.clone()).collect();
    if !columns.is_empty() && columns.len() != out.columns.len() {
        return Err(CnError::mysql(
            code::ER_VIEW_WRONG_LIST,
            "In definition of view, derived table or common table expression, SELECT list and column names list have different column counts",
        ));
    }
    let names: Vec<&str> = if columns.is_empty() {
        out.columns.iter().map(|c| c.name.as_str()).collect()
    } else {
        columns.iter().map(String::as_str).collect()
    };
    for (i, n) in names.iter().enumerate() {
        if names[..i].iter().any(|m| m.eq_ignore_ascii_case(n)) {
            return Err(CnError::mysql(code::ER_DUP_FIELDNAME, format!("Duplicate column name '{n}'")));
        }
    }
    // sqlparser prints string literals unescaped: `'a\\b'` would be stored
    // as `'a\b'` and read back as a backspace.
    crate::planner::escape_strings(&mut query);
    let view = ViewDef { db: db.clone(), name, columns, query: query.to_string() };
    s.cluster.metadb.put_view(&view).await?;
    s.cluster.refresh_catalog().await?;
    sink.ok(0, 0, "").await
}

/// DROP VIEW [IF EXISTS] v, …: 1051 for a name that is no view (a note
/// with IF EXISTS), checked for all names before any is dropped.
pub async fn drop_views(
    s: &mut Session,
    names: &[ObjectName],
    if_exists: bool,
    sink: &mut dyn ResultSink,
) -> Result<()> {
    let snap = s.cluster.catalog.snapshot();
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for n in names {
        let (db, v) = resolve_name(n, s.db.as_deref())?;
        if snap.view(&db, &v).is_some() {
            found.push((db, v));
        } else {
            missing.push(format!("{db}.{v}"));
        }
    }
    if !missing.is_empty() {
        let message = format!("Unknown table '{}'", missing.join(","));
        if !if_exists {
            return Err(CnError::mysql(code::ER_BAD_TABLE_ERROR, message));
        }
        s.warnings.push(("Note".into(), code::ER_BAD_TABLE_ERROR, message));
    }
    for (db, v) in found {
        s.cluster.metadb.drop_view(&db, &v).await?;
    }
    s.cluster.refresh_catalog().await?;
    sink.ok(0, 0, "").await
}
