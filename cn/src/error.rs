//! The CN's error type. Every error carries its MySQL face: an error number and
//! a SQLSTATE, taken from the MySQL server error reference
//! (<https://dev.mysql.com/doc/mysql-errors/8.0/en/server-error-reference.html>).

use std::fmt;

/// MySQL error numbers the CN sends (subset of the server error reference).
pub mod code {
    pub const ER_CON_COUNT_ERROR: u16 = 1040;
    pub const ER_ACCESS_DENIED: u16 = 1045;
    pub const ER_NO_DB_ERROR: u16 = 1046;
    pub const ER_UNKNOWN_COM_ERROR: u16 = 1047;
    pub const ER_BAD_DB_ERROR: u16 = 1049;
    pub const ER_TABLE_EXISTS_ERROR: u16 = 1050;
    pub const ER_BAD_FIELD_ERROR: u16 = 1054;
    pub const ER_DUP_ENTRY: u16 = 1062;
    pub const ER_PARSE_ERROR: u16 = 1064;
    pub const ER_DB_CREATE_EXISTS: u16 = 1007;
    pub const ER_DB_DROP_EXISTS: u16 = 1008;
    pub const ER_NO_SUCH_TABLE: u16 = 1146;
    pub const ER_UNKNOWN_SYSTEM_VARIABLE: u16 = 1193;
    pub const ER_NOT_SUPPORTED_YET: u16 = 1235;
    pub const ER_ILLEGAL_HA: u16 = 1031;
    pub const ER_INVALID_CHARACTER_STRING: u16 = 1300;
    pub const ER_WRONG_PARAMCOUNT_TO_NATIVE_FCT: u16 = 1582;
    pub const ER_UNKNOWN_STMT_HANDLER: u16 = 1243;
    pub const ER_EMPTY_QUERY: u16 = 1065;
    pub const ER_UNSUPPORTED_PS: u16 = 1295;
    pub const ER_WRONG_ARGUMENTS: u16 = 1210;
    pub const ER_QUERY_INTERRUPTED: u16 = 1317;
    pub const ER_SUBQUERY_NO_1_ROW: u16 = 1242;
    pub const ER_OPERAND_COLUMNS: u16 = 1241;
    pub const ER_NO_SUCH_THREAD: u16 = 1094;
    pub const ER_UNKNOWN_ERROR: u16 = 1105;
    pub const ER_MALFORMED_PACKET: u16 = 1835;
    pub const ER_NET_PACKET_TOO_LARGE: u16 = 1153;
    pub const ER_WRONG_VALUE_COUNT_ON_ROW: u16 = 1136;
    pub const ER_BAD_NULL_ERROR: u16 = 1048;
    pub const ER_NO_PARTITION_FOR_GIVEN_VALUE: u16 = 1526;
    pub const ER_XA_RBROLLBACK: u16 = 1614;
    pub const ER_LOCK_DEADLOCK: u16 = 1213;
    pub const ER_ERROR_DURING_COMMIT: u16 = 1180;
    pub const ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION: u16 = 1792;
    pub const ER_WRONG_VALUE_FOR_VAR: u16 = 1231;
    pub const ER_WRONG_TYPE_FOR_VAR: u16 = 1232;
    pub const ER_SP_DOES_NOT_EXIST: u16 = 1305;
    pub const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
    pub const ER_OUT_OF_RESOURCES: u16 = 1041;
    pub const ER_DATA_OUT_OF_RANGE: u16 = 1690;
    pub const ER_WRONG_FIELD_TERMINATORS: u16 = 1083;
    pub const ER_NOT_ALLOWED_COMMAND: u16 = 1148;
    pub const ER_BAD_TABLE_ERROR: u16 = 1051;
    pub const ER_DUP_FIELDNAME: u16 = 1060;
    pub const ER_NON_UPDATABLE_TABLE: u16 = 1288;
    pub const ER_VIEW_WRONG_LIST: u16 = 1353;
    pub const ER_VIEW_RECURSIVE: u16 = 1462;
    pub const ER_UNKNOWN_TABLE: u16 = 1109;
    pub const ER_NON_UNIQ_ERROR: u16 = 1052;
    pub const ER_WRONG_USAGE: u16 = 1221;
}

/// SQLSTATE for a MySQL error number; `HY000` where MySQL gives no specific one.
pub fn sqlstate_for(code: u16) -> &'static str {
    use code::*;
    match code {
        ER_CON_COUNT_ERROR => "08004",
        ER_ACCESS_DENIED => "28000",
        ER_NO_DB_ERROR => "3D000",
        ER_UNKNOWN_COM_ERROR => "08S01",
        ER_BAD_DB_ERROR => "42000",
        ER_TABLE_EXISTS_ERROR => "42S01",
        ER_BAD_FIELD_ERROR => "42S22",
        ER_DUP_ENTRY => "23000",
        ER_PARSE_ERROR | ER_EMPTY_QUERY => "42000",
        ER_NO_SUCH_TABLE | ER_BAD_TABLE_ERROR | ER_UNKNOWN_TABLE => "42S02",
        ER_NON_UNIQ_ERROR => "23000",
        ER_DUP_FIELDNAME => "42S21",
        ER_NOT_SUPPORTED_YET | ER_WRONG_PARAMCOUNT_TO_NATIVE_FCT => "42000",
        ER_UNKNOWN_SYSTEM_VARIABLE => "HY000",
        ER_UNKNOWN_STMT_HANDLER => "HY000",
        ER_QUERY_INTERRUPTED => "70100",
        ER_MALFORMED_PACKET => "HY000",
        ER_NET_PACKET_TOO_LARGE => "08S01",
        ER_WRONG_VALUE_COUNT_ON_ROW => "21S01",
        ER_SUBQUERY_NO_1_ROW | ER_OPERAND_COLUMNS => "21000",
        ER_BAD_NULL_ERROR => "23000",
        ER_DB_CREATE_EXISTS | ER_DB_DROP_EXISTS => "HY000",
        ER_XA_RBROLLBACK => "XA100",
        ER_LOCK_DEADLOCK => "40001",
        ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION => "25006",
        ER_WRONG_VALUE_FOR_VAR | ER_WRONG_TYPE_FOR_VAR | ER_SP_DOES_NOT_EXIST => "42000",
        // Data too long, out of range, an incorrect value (MySQL 8.0
        // "Server Error Message Reference").
        1406 => "22001",
        1264 | ER_DATA_OUT_OF_RANGE => "22003",
        1292 => "22007",
        _ => "HY000",
    }
}

/// An error as the client sees it: MySQL error number, SQLSTATE and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqlError {
    pub code: u16,
    pub sqlstate: String,
    pub message: String,
}

/// The CN's error. Construct with the helpers ([`CnError::parse`],
/// [`CnError::unsupported`], …) so each error gets its MySQL number.
#[derive(Debug, thiserror::Error)]
pub enum CnError {
    /// An error with an explicit MySQL error number.
    #[error("{message}")]
    Mysql { code: u16, sqlstate: String, message: String },
    /// An error a data node returned; its code and SQLSTATE are passed through,
    /// the message names the DN.
    #[error("DN {dn}: {message}")]
    Dn { dn: String, code: u16, sqlstate: String, message: String },
    /// A data node could not be reached or the connection broke.
    #[error("DN {dn} is unavailable: {message}")]
    DnUnavailable { dn: String, message: String },
    #[error("internal error: {0}")]
    Internal(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = CnError> = std::result::Result<T, E>;

impl CnError {
    /// An error with the given MySQL number; SQLSTATE from [`sqlstate_for`].
    pub fn mysql(code: u16, message: impl Into<String>) -> Self {
        CnError::Mysql { code, sqlstate: sqlstate_for(code).to_string(), message: message.into() }
    }
    /// ERR 1064, the MySQL syntax error.
    pub fn parse(message: impl fmt::Display) -> Self {
        Self::mysql(code::ER_PARSE_ERROR, format!("You have an error in your SQL syntax: {message}"))
    }
    /// ERR 1235: valid SQL that this CN does not support (yet).
    pub fn unsupported(what: impl fmt::Display) -> Self {
        Self::mysql(code::ER_NOT_SUPPORTED_YET, format!("This version of the CN doesn't yet support '{what}'"))
    }
    pub fn internal(message: impl Into<String>) -> Self {
        CnError::Internal(message.into())
    }
    pub fn no_such_table(db: &str, table: &str) -> Self {
        Self::mysql(code::ER_NO_SUCH_TABLE, format!("Table '{db}.{table}' doesn't exist"))
    }
    pub fn bad_db(db: &str) -> Self {
        Self::mysql(code::ER_BAD_DB_ERROR, format!("Unknown database '{db}'"))
    }
    /// ERR 1213: a deadlock victim, rolled back on every DN.
    pub fn deadlock() -> Self {
        Self::mysql(code::ER_LOCK_DEADLOCK, "Deadlock found when trying to get lock; try restarting transaction")
    }
    pub fn no_db() -> Self {
        Self::mysql(code::ER_NO_DB_ERROR, "No database selected")
    }

    /// Wraps a mysql_async error from DN `dn`, keeping the server's code.
    pub fn from_dn(dn: &str, e: mysql_async::Error) -> Self {
        match e {
            mysql_async::Error::Server(s) => {
                CnError::Dn { dn: dn.to_string(), code: s.code, sqlstate: s.state, message: s.message }
            }
            mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => {
                CnError::DnUnavailable { dn: dn.to_string(), message: e.to_string() }
            }
            other => CnError::DnUnavailable { dn: dn.to_string(), message: other.to_string() },
        }
    }

    /// The error as sent to the client.
    pub fn to_mysql(&self) -> MysqlError {
        match self {
            CnError::Mysql { code, sqlstate, message } => {
                MysqlError { code: *code, sqlstate: sqlstate.clone(), message: message.clone() }
            }
            // Server errors from a DN keep their number: a duplicate key is 1062
            // whichever shard reports it.
            CnError::Dn { code, sqlstate, message, .. } => {
                MysqlError { code: *code, sqlstate: sqlstate.clone(), message: message.clone() }
            }
            CnError::DnUnavailable { .. } => {
                MysqlError { code: code::ER_UNKNOWN_ERROR, sqlstate: "HY000".into(), message: self.to_string() }
            }
            CnError::Internal(_) | CnError::Io(_) => {
                MysqlError { code: code::ER_UNKNOWN_ERROR, sqlstate: "HY000".into(), message: self.to_string() }
            }
        }
    }
}

impl From<datafusion::error::DataFusionError> for CnError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        use datafusion::error::DataFusionError as D;
        // A refused memory reservation, however deeply an operator wrapped
        // it: the pool's message names the operator and the limit.
        if let D::ResourcesExhausted(m) = e.find_root() {
            return CnError::mysql(code::ER_OUT_OF_RESOURCES, format!("Out of memory: {m}"));
        }
        // An Arrow kernel's overflow (`ABS` of BIGINT's minimum, a
        // decimal past its precision): MySQL's out-of-range error.
        if let D::ArrowError(a, _) = e.find_root() {
            use datafusion::arrow::error::ArrowError as A;
            let overflow = match a.as_ref() {
                A::ArithmeticOverflow(m) => Some(m),
                A::ComputeError(m) if m.contains("overflow") => Some(m),
                _ => None,
            };
            if let Some(m) = overflow {
                return CnError::mysql(code::ER_DATA_OUT_OF_RANGE, format!("BIGINT value is out of range: {m}"));
            }
        }
        // Something the CN cannot compute, however deeply wrapped (an
        // operator's stream wraps its expressions' errors).
        if let D::NotImplemented(m) = e.find_root() {
            return CnError::unsupported(m);
        }
        // A CnError raised inside an operator or function, wrapped by the
        // stream (as an Arrow external error) on its way out.
        let direct = matches!(&e, D::External(inner) if inner.is::<CnError>());
        let mut source: Option<&(dyn std::error::Error + 'static)> = if direct { None } else { Some(&e) };
        while let Some(x) = source {
            if let Some(cn) = x.downcast_ref::<CnError>() {
                let m = cn.to_mysql();
                return CnError::mysql(m.code, m.message);
            }
            source = x.source();
        }
        match e {
            D::External(inner) => match inner.downcast::<CnError>() {
                Ok(cn) => *cn,
                Err(other) => CnError::internal(other.to_string()),
            },
            D::SQL(e, _) => CnError::parse(e),
            D::Plan(m) => plan_error(&m),
            D::SchemaError(e, _) => plan_error(&e.to_string()),
            D::NotImplemented(m) => CnError::unsupported(m),
            D::Context(_, inner) => CnError::from(*inner),
            D::ArrowError(e, _) => CnError::internal(e.to_string()),
            D::Diagnostic(_, inner) => CnError::from(*inner),
            other => {
                let m = other.to_string();
                if m.contains("Schema error") || m.contains("No field named") {
                    plan_error(&m)
                } else {
                    CnError::internal(m)
                }
            }
        }
    }
}

/// Maps DataFusion planning messages to the nearest MySQL error.
fn plan_error(m: &str) -> CnError {
    if let Some(rest) = m.split("No field named ").nth(1) {
        // "No field named nope.\nValid fields are …" or "No field named
        // m.nope. Did you mean 'm.v'?": MySQL names the column alone.
        let name = match rest.strip_prefix('"') {
            Some(quoted) => quoted.split('"').next().unwrap_or(quoted),
            None => rest.split(char::is_whitespace).next().unwrap_or(rest).trim_end_matches('.'),
        };
        let name = name.rsplit('.').next().unwrap_or(name).trim_matches('"');
        CnError::mysql(code::ER_BAD_FIELD_ERROR, format!("Unknown column '{name}' in 'field list'"))
    } else if let Some(rest) = m.split("Invalid function '").nth(1) {
        // DataFusion's "Invalid function 'x'.\nDid you mean 'y'?": a MySQL
        // function the CN cannot plan (one that runs whole on a DN works).
        let name = rest.split('\'').next().unwrap_or(rest).to_ascii_uppercase();
        CnError::unsupported(format!("{name}() in a statement the CN computes across shards"))
    } else if m.contains("Incorrect parameter count in the call to native function") {
        let m = m.split("Incorrect").nth(1).map_or(m.to_string(), |r| format!("Incorrect{r}"));
        CnError::mysql(code::ER_WRONG_PARAMCOUNT_TO_NATIVE_FCT, m)
    } else if m.contains("not found") && m.contains("column") {
        CnError::mysql(code::ER_BAD_FIELD_ERROR, format!("Unknown column: {m}"))
    } else if m.contains("table") && m.contains("not found") {
        CnError::mysql(code::ER_NO_SUCH_TABLE, m.to_string())
    } else {
        CnError::mysql(code::ER_UNKNOWN_ERROR, m.to_string())
    }
}

impl From<mysql_async::Error> for CnError {
    fn from(e: mysql_async::Error) -> Self {
        CnError::from_dn("metadb", e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_column_names_the_column() {
        for m in [
            "Schema error: No field named nope. Valid fields are m.id, m.v.",
            "Schema error: No field named nope. Did you mean 'm.v'?.",
            "Schema error: No field named m.nope.",
            "Schema error: No field named nope.\nValid fields are t.id, t.g, t.b.",
            "Schema error: No field named m.nope. Did you mean 'm.v'?\nValid fields are m.id, m.v.",
            "Schema error: No field named \"nope\".",
        ] {
            let e = plan_error(m).to_mysql();
            assert_eq!((e.code, e.message.as_str()), (1054, "Unknown column 'nope' in 'field list'"), "{m}");
        }
    }

    #[test]
    fn functions_the_cn_cannot_plan_are_named() {
        let e = plan_error("Invalid function 'timestampdiff'.\nDid you mean 'to_timestamp'?").to_mysql();
        assert_eq!(e.code, 1235);
        assert!(e.message.contains("TIMESTAMPDIFF()"), "{}", e.message);
        let e = plan_error("Error during planning: Incorrect parameter count in the call to native function 'WEEK'")
            .to_mysql();
        assert_eq!(
            (e.code, e.message.as_str()),
            (1582, "Incorrect parameter count in the call to native function 'WEEK'")
        );
    }
}
