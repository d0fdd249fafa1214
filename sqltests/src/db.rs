//! One MySQL connection as a sqllogictest database, with SQLite's result
//! formatting (sqllogictest.c): a value is printed by the type letter the
//! test expects (`I`: integer, `R`: `%.3f`, `T`: text), NULL as `NULL`, an
//! empty string as `(empty)`, and every character outside printable ASCII
//! as `@`.

use async_trait::async_trait;
use mysql_async::prelude::*;
use sqllogictest::{DBOutput, DefaultColumnType};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An error from the server (code, SQLSTATE and message) or the client.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DbError {
    /// `ERROR <code> (<sqlstate>): <message>` for a server error.
    pub message: String,
    /// The SQLSTATE of a server error.
    pub sqlstate: Option<String>,
}

impl From<mysql_async::Error> for DbError {
    fn from(e: mysql_async::Error) -> Self {
        match e {
            mysql_async::Error::Server(s) => {
                DbError { message: format!("ERROR {} ({}): {}", s.code, s.state, s.message), sqlstate: Some(s.state) }
            }
            other => DbError { message: other.to_string(), sqlstate: None },
        }
    }
}

/// The column types the next query record expects; the runner sets it
/// before each query, because the formatting depends on them.
pub type ExpectedTypes = Arc<Mutex<Vec<DefaultColumnType>>>;

/// A connection to a MySQL endpoint (CN or MariaDB).
pub struct MysqlDb {
    conn: mysql_async::Conn,
    /// `cn` or `mariadb`: a label for `onlyif`/`skipif`.
    engine: &'static str,
    expected: ExpectedTypes,
    timeout: Duration,
}

impl MysqlDb {
    /// Connects to `url` (`mysql://root@127.0.0.1:3307/db`).
    /// `engine` (`cn` or `mariadb`) is offered to `onlyif`/`skipif` as a label.
    pub async fn connect(
        url: &str,
        engine: &'static str,
        expected: ExpectedTypes,
        timeout: Duration,
    ) -> Result<MysqlDb, DbError> {
        let opts = mysql_async::Opts::from_url(url).map_err(|e| DbError { message: e.to_string(), sqlstate: None })?;
        Ok(MysqlDb { conn: mysql_async::Conn::new(opts).await?, engine, expected, timeout })
    }

    async fn query(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DbError> {
        let mut r = self.conn.query_iter(sql).await?;
        let columns = r.columns().map(|c| c.len()).unwrap_or(0);
        if columns == 0 {
            let affected = r.affected_rows();
            r.drop_result().await?;
            return Ok(DBOutput::StatementComplete(affected));
        }
        let rows: Vec<mysql_async::Row> = r.collect().await?;
        r.drop_result().await?;
        let expected = self.expected.lock().map(|t| t.clone()).unwrap_or_default();
        let types: Vec<DefaultColumnType> =
            (0..columns).map(|i| expected.get(i).cloned().unwrap_or(DefaultColumnType::Any)).collect();
        let rows = rows
            .into_iter()
            .map(|row| row.unwrap().into_iter().zip(&types).map(|(v, t)| format_value(v, t)).collect())
            .collect();
        Ok(DBOutput::Rows { types, rows })
    }
}

/// Formats one value as SQLite's sqllogictest prints it for type `t`.
pub fn format_value(v: mysql_async::Value, t: &DefaultColumnType) -> String {
    let text = match v {
        mysql_async::Value::NULL => return "NULL".into(),
        mysql_async::Value::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
        other => other.as_sql(true).trim_matches('\'').to_string(),
    };
    match t {
        DefaultColumnType::Integer => {
            if let Ok(i) = text.parse::<i64>() {
                i.to_string()
            } else if let Ok(f) = text.trim().parse::<f64>() {
                (f.trunc() as i64).to_string()
            } else {
                text
            }
        }
        DefaultColumnType::FloatingPoint => match text.trim().parse::<f64>() {
            Ok(f) => format!("{f:.3}"),
            Err(_) => text,
        },
        _ => {
            if text.is_empty() {
                "(empty)".into()
            } else {
                text.chars().map(|c| if (' '..='~').contains(&c) { c } else { '@' }).collect()
            }
        }
    }
}

#[async_trait]
impl sqllogictest::AsyncDB for MysqlDb {
    type Error = DbError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DbError> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.query(sql)).await {
            Ok(r) => r,
            Err(_) => Err(DbError { message: format!("no answer within {timeout:?}"), sqlstate: None }),
        }
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        self.engine
    }

    async fn sleep(dur: Duration) {
        tokio::time::sleep(dur).await
    }

    fn error_sql_state(err: &DbError) -> Option<String> {
        err.sqlstate.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_async::Value;

    #[test]
    fn sqlite_formatting() {
        let b = |s: &str| Value::Bytes(s.as_bytes().to_vec());
        assert_eq!(format_value(Value::NULL, &DefaultColumnType::Integer), "NULL");
        assert_eq!(format_value(b("3.0000"), &DefaultColumnType::Integer), "3");
        assert_eq!(format_value(b("-7.9"), &DefaultColumnType::Integer), "-7");
        assert_eq!(format_value(b("2"), &DefaultColumnType::FloatingPoint), "2.000");
        assert_eq!(format_value(b("123.4567"), &DefaultColumnType::FloatingPoint), "123.457");
        assert_eq!(format_value(b(""), &DefaultColumnType::Text), "(empty)");
        assert_eq!(format_value(b("a\tb\u{e9}"), &DefaultColumnType::Text), "a@b@");
    }
}
