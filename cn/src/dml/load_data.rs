//! LOAD DATA LOCAL INFILE: the client streams a delimited text file; the CN
//! splits it into rows and inserts them in batches through the INSERT path
//! (so rows are routed per shard, AUTO_INCREMENT ids come from the metadb
//! sequence and global indexes are maintained), all in one distributed
//! transaction: the whole file lands or nothing does.
//!
//! Syntax and field rules follow MariaDB's `LOAD DATA INFILE`
//! (<https://mariadb.com/kb/en/load-data-infile/>): `FIELDS TERMINATED BY`
//! (default tab), `[OPTIONALLY] ENCLOSED BY` (default none), `ESCAPED BY`
//! (default `\`), `LINES STARTING BY` / `TERMINATED BY` (default newline),
//! `IGNORE n LINES`, a column list with `@variables`, and `SET col = expr`.
//! `\N` (and, with an enclosure, an unenclosed `NULL`) is NULL. With
//! LOCAL, duplicate keys are skipped as with IGNORE (MySQL: "the server has
//! no way to stop transmission of the file in the middle of the
//! operation"), unless REPLACE is given. A line with too few fields sets
//! the missing columns to their defaults (warning 1261); extra fields are
//! dropped (warning 1262).

use crate::catalog::TypeKind;
use crate::dn::{quote_ident, quote_str};
use crate::error::{code, CnError, Result};
use crate::planner::split::split_top_level_commas;
use crate::session::sink::{CollectSink, ResultSink};
use crate::session::Session;
use crate::txn::Txn;
use datafusion::sql::sqlparser::dialect::MySqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// Rows per INSERT sent through the write path.
const BATCH_ROWS: usize = 1000;
/// SQL text per INSERT at most (bytes), well under `max_allowed_packet`.
const BATCH_BYTES: usize = 1 << 20;

/// What to do with a row whose key already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duplicates {
    /// Skip it (LOCAL's default, or `IGNORE`).
    Ignore,
    /// Replace the old row (`REPLACE`).
    Replace,
}

/// Where one input field goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Column(String),
    /// A user variable (`@name`, lower-case), for `SET` expressions.
    Var(String),
}

/// How fields and lines are delimited in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pub field_term: Vec<u8>,
    pub enclosed: Option<u8>,
    pub escaped: Option<u8>,
    pub line_start: Vec<u8>,
    pub line_term: Vec<u8>,
}

impl Default for Format {
    fn default() -> Self {
        Format {
            field_term: b"\t".to_vec(),
            enclosed: None,
            escaped: Some(b'\\'),
            line_start: vec![],
            line_term: b"\n".to_vec(),
        }
    }
}

/// A parsed LOAD DATA statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadSpec {
    pub file: String,
    pub duplicates: Duplicates,
    /// `(database or None, table)` as written.
    pub table: (Option<String>, String),
    pub format: Format,
    pub ignore_lines: u64,
    /// Empty: every visible column in table order.
    pub targets: Vec<Target>,
    /// `SET col = expr`: the column (lower-case) and the expression's text.
    pub set: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A keyword or bare identifier, as written.
    Word(String),
    /// A backquoted identifier.
    Ident(String),
    /// A string literal, unescaped.
    Str(Vec<u8>),
    /// `@name`, lower-case.
    Var(String),
    Num(u64),
    Sym(u8),
}

/// Tokens with the byte offset just past each.
fn tokenize(sql: &str) -> Result<Vec<(Tok, usize)>> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let tok = match c {
            b'\'' | b'"' => {
                let end = crate::planner::split::skip_quoted(b, i);
                if end >= b.len() {
                    return Err(CnError::parse(format!("an unterminated string near '{}'", &sql[start..])));
                }
                i = end + 1;
                Tok::Str(unescape_literal(&b[start + 1..end], c))
            }
            b'`' => {
                let end = crate::planner::split::skip_quoted(b, i);
                i = (end + 1).min(b.len());
                Tok::Ident(sql[start + 1..end.min(b.len())].replace("``", "`"))
            }
            b'@' => {
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$') {
                    i += 1;
                }
                Tok::Var(sql[start + 1..i].to_ascii_lowercase())
            }
            c if c.is_ascii_digit() => {
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                Tok::Num(sql[start..i].parse().map_err(|_| CnError::parse(format!("near '{}'", &sql[start..i])))?)
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80) {
                    i += 1;
                }
                Tok::Word(sql[start..i].to_string())
            }
            c => {
                i += 1;
                Tok::Sym(c)
            }
        };
        out.push((tok, i));
    }
    Ok(out)
}

/// The bytes of a quoted literal's body: MySQL's backslash escapes and a
/// doubled quote.
fn unescape_literal(body: &[u8], quote: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'\\' if i + 1 < body.len() => {
                out.push(unescape_byte(body[i + 1]));
                i += 2;
            }
            c if c == quote && body.get(i + 1) == Some(&quote) => {
                out.push(c);
                i += 2;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

struct Toks<'a> {
    sql: &'a str,
    toks: Vec<(Tok, usize)>,
    pos: usize,
}

impl Toks<'_> {
    fn peek_word(&self, w: &str) -> bool {
        matches!(self.toks.get(self.pos), Some((Tok::Word(x), _)) if x.eq_ignore_ascii_case(w))
    }
    fn eat_word(&mut self, w: &str) -> bool {
        let yes = self.peek_word(w);
        if yes {
            self.pos += 1;
        }
        yes
    }
    fn offset(&self) -> usize {
        if self.pos == 0 {
            0
        } else {
            self.toks[self.pos - 1].1
        }
    }
    fn error(&self) -> CnError {
        let rest = self.sql[self.offset()..].trim();
        let near: String = rest.chars().take(60).collect();
        CnError::parse(format!("LOAD DATA: near '{near}'"))
    }
    fn expect_word(&mut self, w: &str) -> Result<()> {
        if self.eat_word(w) {
            Ok(())
        } else {
            Err(self.error())
        }
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).map(|t| t.0.clone());
        self.pos += 1;
        t
    }
    fn string(&mut self) -> Result<Vec<u8>> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(s),
            _ => {
                self.pos -= 1;
                Err(self.error())
            }
        }
    }
    fn name(&mut self) -> Result<String> {
        match self.next() {
            Some(Tok::Word(w)) | Some(Tok::Ident(w)) => Ok(w),
            _ => {
                self.pos -= 1;
                Err(self.error())
            }
        }
    }
    fn sym(&mut self, c: u8) -> bool {
        let yes = matches!(self.toks.get(self.pos), Some((Tok::Sym(x), _)) if *x == c);
        if yes {
            self.pos += 1;
        }
        yes
    }
}

/// Parses `LOAD DATA [LOW_PRIORITY | CONCURRENT] [LOCAL] INFILE 'file'
/// [REPLACE | IGNORE] INTO TABLE t [CHARACTER SET cs] [{FIELDS | COLUMNS}
/// …] [LINES …] [IGNORE n {LINES | ROWS}] [(col_or_@var, …)] [SET col =
/// expr, …]`. Errors: 1064 for bad syntax; 1235 for forms the CN does not
/// run (a file on the CN's host, PARTITION, fixed-width rows).
pub fn parse(sql: &str) -> Result<LoadSpec> {
    let sql = sql.trim().trim_end_matches(';');
    let mut t = Toks { sql, toks: tokenize(sql)?, pos: 0 };
    t.expect_word("LOAD")?;
    t.expect_word("DATA")?;
    let _ = t.eat_word("LOW_PRIORITY") || t.eat_word("CONCURRENT");
    if !t.eat_word("LOCAL") {
        return Err(CnError::unsupported(
            "LOAD DATA INFILE of a file on the CN's host; use LOAD DATA LOCAL INFILE (the client sends the file)",
        ));
    }
    t.expect_word("INFILE")?;
    let file = String::from_utf8_lossy(&t.string()?).into_owned();
    let duplicates = if t.eat_word("REPLACE") {
        Duplicates::Replace
    } else {
        let _ = t.eat_word("IGNORE");
        Duplicates::Ignore
    };
    t.expect_word("INTO")?;
    t.expect_word("TABLE")?;
    let first = t.name()?;
    let table = if t.sym(b'.') { (Some(first), t.name()?) } else { (None, first) };
    if t.peek_word("PARTITION") {
        return Err(CnError::unsupported("LOAD DATA … PARTITION (the CN routes each row to its partition)"));
    }
    if t.eat_word("CHARACTER") {
        t.expect_word("SET")?;
        t.name()?;
    } else if t.eat_word("CHARSET") {
        t.name()?;
    }
    let mut format = Format::default();
    if t.eat_word("FIELDS") || t.eat_word("COLUMNS") {
        loop {
            if t.eat_word("TERMINATED") {
                t.expect_word("BY")?;
                format.field_term = t.string()?;
            } else if t.peek_word("OPTIONALLY") || t.peek_word("ENCLOSED") {
                let _ = t.eat_word("OPTIONALLY");
                t.expect_word("ENCLOSED")?;
                t.expect_word("BY")?;
                format.enclosed = one_byte(t.string()?, "ENCLOSED BY")?;
            } else if t.eat_word("ESCAPED") {
                t.expect_word("BY")?;
                format.escaped = one_byte(t.string()?, "ESCAPED BY")?;
            } else {
                break;
            }
        }
    }
    if t.eat_word("LINES") {
        loop {
            if t.eat_word("STARTING") {
                t.expect_word("BY")?;
                format.line_start = t.string()?;
            } else if t.eat_word("TERMINATED") {
                t.expect_word("BY")?;
                format.line_term = t.string()?;
            } else {
                break;
            }
        }
    }
    if format.field_term.is_empty() && format.enclosed.is_none() {
        return Err(CnError::unsupported("LOAD DATA with fixed-width rows (FIELDS TERMINATED BY '' ENCLOSED BY '')"));
    }
    if format.line_term.is_empty() {
        return Err(CnError::unsupported("LOAD DATA with LINES TERMINATED BY ''"));
    }
    let mut ignore_lines = 0;
    if t.eat_word("IGNORE") {
        match t.next() {
            Some(Tok::Num(n)) => ignore_lines = n,
            _ => {
                t.pos -= 1;
                return Err(t.error());
            }
        }
        if !(t.eat_word("LINES") || t.eat_word("ROWS")) {
            return Err(t.error());
        }
    }
    let mut targets = Vec::new();
    if t.sym(b'(') && !t.sym(b')') {
        loop {
            match t.next() {
                Some(Tok::Word(w)) | Some(Tok::Ident(w)) => targets.push(Target::Column(w.to_ascii_lowercase())),
                Some(Tok::Var(v)) => targets.push(Target::Var(v)),
                _ => {
                    t.pos -= 1;
                    return Err(t.error());
                }
            }
            if t.sym(b')') {
                break;
            }
            if !t.sym(b',') {
                return Err(t.error());
            }
        }
    }
    let mut set = Vec::new();
    if t.eat_word("SET") {
        for a in split_top_level_commas(&sql[t.offset()..]) {
            let (col, expr) = a.split_once('=').ok_or_else(|| CnError::parse(format!("LOAD DATA: near '{a}'")))?;
            let col = col.trim().trim_matches('`').to_ascii_lowercase();
            let col = col.rsplit('.').next().unwrap_or(&col).trim_matches('`').to_string();
            if col.is_empty() || expr.trim().is_empty() {
                return Err(CnError::parse(format!("LOAD DATA: near '{a}'")));
            }
            set.push((col, expr.trim().to_string()));
        }
        t.pos = t.toks.len();
    }
    if t.pos < t.toks.len() {
        return Err(t.error());
    }
    Ok(LoadSpec { file, duplicates, table, format, ignore_lines, targets, set })
}

fn one_byte(s: Vec<u8>, what: &str) -> Result<Option<u8>> {
    match s.len() {
        0 => Ok(None),
        1 => Ok(Some(s[0])),
        _ => Err(CnError::mysql(code::ER_WRONG_FIELD_TERMINATORS, format!("{what} must be one character"))),
    }
}

/// One input field: its bytes, or `None` for NULL.
pub type Field = Option<Vec<u8>>;

/// Whether `pat` starts at `b[k..]`: `None` when the bytes so far are a
/// proper prefix of it and more input may follow.
fn at(b: &[u8], k: usize, pat: &[u8], eof: bool) -> Option<bool> {
    let rest = &b[k.min(b.len())..];
    if rest.len() >= pat.len() {
        Some(rest.starts_with(pat))
    } else if !eof && pat.starts_with(rest) {
        None
    } else {
        Some(false)
    }
}

/// The byte a backslash escape stands for (MySQL's string literal and
/// LOAD DATA field rules: `\0 \b \n \r \t \Z`, else the byte itself).
fn unescape_byte(c: u8) -> u8 {
    match c {
        b'0' => 0,
        b'b' => 8,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'Z' => 0x1a,
        c => c,
    }
}

/// The escape character at `b[k]`: the byte it and its successor stand
/// for and how many input bytes that took (at the end of input a lone
/// escape character is itself); `None` when more input is needed.
fn escape_at(b: &[u8], k: usize, eof: bool) -> Option<(u8, usize)> {
    match b.get(k + 1) {
        Some(&next) => Some((unescape_byte(next), 2)),
        None if eof => Some((b[k], 1)),
        None => None,
    }
}

/// How a field ended.
enum FieldEnd {
    /// A field terminator: another field follows, from this offset.
    Field(usize),
    /// A line terminator or the end of input: the record ends at this offset.
    Line(usize),
}

impl Format {
    /// The next record of `b`, and the offset after it. `None` when `b` holds
    /// no complete record yet (`eof`: no more input will come; then `None`
    /// means the input is used up).
    pub fn next_record(&self, b: &[u8], eof: bool) -> Option<(Vec<Field>, usize)> {
        let mut i = 0;
        if !self.line_start.is_empty() {
            // Everything up to the prefix is skipped (a line without it too).
            i = match b.windows(self.line_start.len()).position(|w| w == self.line_start.as_slice()) {
                Some(p) => p + self.line_start.len(),
                None => return None,
            };
        }
        if i >= b.len() {
            return None;
        }
        let mut fields = Vec::new();
        loop {
            let (field, end) = self.field(b, i, eof)?;
            fields.push(field);
            match end {
                FieldEnd::Field(next) => i = next,
                FieldEnd::Line(next) => return Some((fields, next)),
            }
        }
    }

    /// The field starting at `b[i]`, or `None` if more input is needed.
    fn field(&self, b: &[u8], i: usize, eof: bool) -> Option<(Field, FieldEnd)> {
        let term = |k: usize| -> Option<Option<FieldEnd>> {
            if k >= b.len() {
                return if eof { Some(Some(FieldEnd::Line(b.len()))) } else { None };
            }
            if at(b, k, &self.field_term, eof)? && !self.field_term.is_empty() {
                return Some(Some(FieldEnd::Field(k + self.field_term.len())));
            }
            if at(b, k, &self.line_term, eof)? {
                return Some(Some(FieldEnd::Line(k + self.line_term.len())));
            }
            Some(None)
        };
        let mut val = Vec::new();
        if let Some(q) = self.enclosed.filter(|q| b.get(i) == Some(q)) {
            let mut k = i + 1;
            loop {
                if k >= b.len() {
                    if !eof {
                        return None;
                    }
                    return Some((Some(val), FieldEnd::Line(b.len())));
                }
                let c = b[k];
                if Some(c) == self.escaped && c != q {
                    let (byte, width) = escape_at(b, k, eof)?;
                    val.push(byte);
                    k += width;
                } else if c == q {
                    if k + 1 >= b.len() && !eof {
                        return None;
                    }
                    if b.get(k + 1) == Some(&q) {
                        val.push(q);
                        k += 2;
                    } else if let Some(end) = term(k + 1)? {
                        return Some((Some(val), end));
                    } else {
                        // An enclosing character inside the field is data.
                        val.push(c);
                        k += 1;
                    }
                } else {
                    val.push(c);
                    k += 1;
                }
            }
        }
        let mut k = i;
        let mut escaped_n = false;
        loop {
            if let Some(end) = term(k)? {
                let null = (escaped_n && val == b"N") || (self.enclosed.is_some() && val == b"NULL" && k - i == 4);
                return Some((if null { None } else { Some(val) }, end));
            }
            let c = b[k];
            if Some(c) == self.escaped {
                let (byte, width) = escape_at(b, k, eof)?;
                escaped_n = width == 2 && val.is_empty() && b[k + 1] == b'N';
                val.push(byte);
                k += width;
            } else {
                escaped_n = false;
                val.push(c);
                k += 1;
            }
        }
    }
}

/// A field as an SQL literal: a quoted string, or a hex literal for bytes
/// that are not UTF-8.
fn literal(f: &Field) -> String {
    match f {
        None => "NULL".into(),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => quote_str(s),
            Err(_) => {
                let mut s = String::from("X'");
                for x in b {
                    s.push_str(&format!("{x:02x}"));
                }
                s.push('\'');
                s
            }
        },
    }
}

/// Replaces `@name` (outside quotes) in `expr` by the variable's literal
/// (NULL when the file did not set it).
fn substitute_vars(expr: &str, vars: &[(String, String)]) -> String {
    let b = expr.as_bytes();
    let mut out = String::with_capacity(expr.len());
    let (mut i, mut copied) = (0, 0);
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' | b'`' => i = crate::planner::split::skip_quoted(b, i),
            b'@' if b.get(i + 1) != Some(&b'@') && (i == 0 || b[i - 1] != b'@') => {
                let mut j = i + 1;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b'$') {
                    j += 1;
                }
                let name = expr[i + 1..j].to_ascii_lowercase();
                out.push_str(&expr[copied..i]);
                out.push_str(vars.iter().find(|(n, _)| *n == name).map_or("NULL", |(_, v)| v.as_str()));
                copied = j;
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&expr[copied.min(expr.len())..]);
    out
}

/// The value MariaDB gives a column whose field a line lacks: the type's
/// zero (`Field::reset`), not the column's DEFAULT.
fn zero_value(kind: TypeKind) -> &'static str {
    match kind {
        TypeKind::Int { .. } | TypeKind::Decimal { .. } | TypeKind::Float | TypeKind::Double => "0",
        TypeKind::String | TypeKind::Binary => "''",
        TypeKind::Date => "'0000-00-00'",
        TypeKind::DateTime { .. } => "'0000-00-00 00:00:00'",
        TypeKind::Time => "'00:00:00'",
    }
}

/// Counts of a finished load, as MySQL reports them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LoadCounts {
    /// Rows read from the file (after IGNORE n LINES).
    pub records: u64,
    /// Affected rows of the inserts (a replaced row counts twice).
    pub affected: u64,
    pub warnings: u64,
}

/// Builds the INSERT statements of a load and runs them.
struct Loader<'a> {
    spec: &'a LoadSpec,
    /// `INSERT IGNORE INTO db.t (cols) VALUES ` / `REPLACE INTO …`.
    head: String,
    /// Per target: what a line too short to reach it gives (a column's
    /// zero value, as MariaDB's `Field::reset`; NULL for a variable).
    missing: Vec<String>,
    rows: Vec<String>,
    bytes: usize,
    counts: LoadCounts,
    warnings: Vec<(String, u16, String)>,
}

impl Loader<'_> {
    fn add(&mut self, record: Vec<Field>) {
        self.counts.records += 1;
        let line = self.counts.records;
        let n = self.spec.targets.len();
        // A missing field is worth a warning when a column wanted it (a
        // variable just becomes NULL), as in MariaDB.
        if self.spec.targets[record.len().min(n)..].iter().any(|t| matches!(t, Target::Column(_))) {
            self.warn(1261, format!("Row {line} doesn't contain data for all columns"));
        } else if record.len() > n {
            self.warn(1262, format!("Row {line} was truncated; it contained more data than there were input columns"));
        }
        let mut values = Vec::with_capacity(self.missing.len());
        let mut vars = Vec::new();
        for (k, t) in self.spec.targets.iter().enumerate() {
            let v = record.get(k).map_or_else(|| self.missing[k].clone(), literal);
            match t {
                Target::Column(_) => values.push(v),
                Target::Var(name) => vars.push((name.clone(), v)),
            }
        }
        for (_, expr) in &self.spec.set {
            values.push(substitute_vars(expr, &vars));
        }
        let row = format!("({})", values.join(", "));
        self.bytes += row.len() + 2;
        self.rows.push(row);
    }

    fn warn(&mut self, code: u16, msg: String) {
        self.counts.warnings += 1;
        if self.warnings.len() < 64 {
            self.warnings.push(("Warning".into(), code, msg));
        }
    }

    fn full(&self) -> bool {
        self.rows.len() >= BATCH_ROWS || self.bytes >= BATCH_BYTES
    }

    async fn flush(&mut self, s: &mut Session) -> Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let sql = format!("{}{}", self.head, self.rows.join(", "));
        self.rows.clear();
        self.bytes = 0;
        let mut stmts = Parser::parse_sql(&MySqlDialect {}, &sql).map_err(CnError::parse)?;
        let stmt = stmts.pop().ok_or_else(|| CnError::internal("LOAD DATA built no INSERT"))?;
        let mut out = CollectSink::default();
        Box::pin(super::execute(s, stmt, &mut out)).await?;
        self.counts.affected += out.affected;
        Ok(())
    }
}

/// Runs LOAD DATA LOCAL INFILE: asks the client for the file through
/// `sink`, inserts its rows and reports `Records: n  Deleted: n  Skipped:
/// n  Warnings: n`. Errors: those of [`parse`], 1146/1054 for an unknown
/// table or column (before the file is asked for), 1148 when the client
/// does not allow local files, and any error of the inserts (the whole
/// load is undone; the rest of the file is still read, as the protocol
/// requires).
pub async fn execute(s: &mut Session, sql: &str, sink: &mut dyn ResultSink) -> Result<()> {
    let mut spec = parse(sql)?;
    let db = match &spec.table.0 {
        Some(d) => d.to_ascii_lowercase(),
        None => s.db.clone().ok_or_else(CnError::no_db)?,
    };
    let name = spec.table.1.to_ascii_lowercase();
    let snap = s.cluster.catalog.snapshot();
    if snap.database(&db).is_none() {
        return Err(CnError::bad_db(&db));
    }
    let def = snap.base_table(&db, &name).cloned().ok_or_else(|| CnError::no_such_table(&db, &name))?;
    if spec.targets.is_empty() {
        spec.targets = def.visible_columns().map(|c| Target::Column(c.name.clone())).collect();
    }
    let mut cols: Vec<&str> = spec
        .targets
        .iter()
        .filter_map(|t| match t {
            Target::Column(c) => Some(c.as_str()),
            Target::Var(_) => None,
        })
        .collect();
    cols.extend(spec.set.iter().map(|(c, _)| c.as_str()));
    for c in &cols {
        if def.column(c).is_none() {
            return Err(CnError::mysql(code::ER_BAD_FIELD_ERROR, format!("Unknown column '{c}' in 'field list'")));
        }
    }
    let verb = match spec.duplicates {
        Duplicates::Ignore => "INSERT IGNORE",
        Duplicates::Replace => "REPLACE",
    };
    let head = format!(
        "{verb} INTO {}.{} ({}) VALUES ",
        quote_ident(&db),
        quote_ident(&def.name),
        cols.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ")
    );
    let missing = spec
        .targets
        .iter()
        .map(|t| match t {
            Target::Column(c) => def.column(c).map_or("NULL", |c| zero_value(c.kind)).to_string(),
            Target::Var(_) => "NULL".to_string(),
        })
        .collect();
    sink.infile_request(&spec.file).await?;

    // One transaction for the whole file: a new one, or a savepoint in the
    // session's.
    let own = s.txn.is_none();
    let begun = match &s.txn {
        Some(t) => t.savepoint(LOAD_SAVEPOINT).await,
        None => Txn::begin(s.cluster.clone(), s.conn_id, s.txn_options(None).implicit()).await.map(|t| {
            s.txn = Some(t);
        }),
    };
    let mut loader = Loader {
        spec: &spec,
        head,
        missing,
        rows: Vec::new(),
        bytes: 0,
        counts: LoadCounts::default(),
        warnings: vec![],
    };
    let mut result = begun;
    let mut buf: Vec<u8> = Vec::new();
    let mut skip = spec.ignore_lines;
    let mut eof = false;
    while !eof {
        match sink.infile_chunk().await? {
            Some(chunk) if result.is_ok() => buf.extend_from_slice(&chunk),
            Some(_) => continue, // failed: read the rest of the file and drop it
            None => eof = true,
        }
        if result.is_err() {
            continue;
        }
        let mut used = 0;
        while let Some((record, n)) = spec.format.next_record(&buf[used..], eof) {
            used += n;
            if skip > 0 {
                skip -= 1;
                continue;
            }
            loader.add(record);
            if loader.full() {
                if let Err(e) = loader.flush(s).await {
                    result = Err(e);
                    break;
                }
            }
        }
        buf.drain(..used);
        if s.kill_query.is_set() && result.is_ok() {
            result = Err(CnError::mysql(code::ER_QUERY_INTERRUPTED, "Query execution was interrupted"));
        }
    }
    if result.is_ok() {
        result = loader.flush(s).await;
    }
    let counts = loader.counts;
    let warnings = std::mem::take(&mut loader.warnings);
    match result {
        Ok(()) => {
            if own {
                if let Some(t) = s.txn.take() {
                    let p = t.commit().await?;
                    s.note_commit(p);
                }
            } else if let Some(t) = &s.txn {
                t.release_savepoint(LOAD_SAVEPOINT).await?;
            }
        }
        Err(e) => {
            if own {
                s.rollback().await;
            } else if let Some(t) = s.txn.clone() {
                if t.rollback_to(LOAD_SAVEPOINT).await.is_err() {
                    s.rollback().await;
                }
            }
            return Err(e);
        }
    }
    let (deleted, skipped) = match spec.duplicates {
        Duplicates::Replace => (counts.affected.saturating_sub(counts.records), 0),
        Duplicates::Ignore => (0, counts.records.saturating_sub(counts.affected)),
    };
    let total_warnings = counts.warnings + skipped;
    s.warnings.extend(warnings);
    let info =
        format!("Records: {}  Deleted: {deleted}  Skipped: {skipped}  Warnings: {total_warnings}", counts.records);
    sink.ok(counts.affected, 0, &info).await
}

/// The savepoint a LOAD DATA inside an explicit transaction undoes to.
const LOAD_SAVEPOINT: &str = "__cn_load_data";

#[cfg(test)]
mod tests {
    use super::*;

    fn records(f: &Format, input: &[u8]) -> Vec<Vec<Field>> {
        let mut out = Vec::new();
        let mut i = 0;
        while let Some((r, n)) = f.next_record(&input[i..], true) {
            out.push(r);
            i += n;
        }
        out
    }

    fn s(x: &str) -> Field {
        Some(x.as_bytes().to_vec())
    }

    #[test]
    fn parses_the_full_statement() {
        let spec = parse(
            "LOAD DATA LOCAL INFILE '/tmp/a.csv' REPLACE INTO TABLE d.t CHARACTER SET utf8mb4 \
             FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '\\\\' \
             LINES STARTING BY '>' TERMINATED BY '\\r\\n' IGNORE 1 LINES (a, @skip, `b`) SET c = UPPER(@skip), d = 'x,y'",
        )
        .unwrap();
        assert_eq!(spec.file, "/tmp/a.csv");
        assert_eq!(spec.duplicates, Duplicates::Replace);
        assert_eq!(spec.table, (Some("d".into()), "t".into()));
        assert_eq!(
            spec.format,
            Format {
                field_term: b",".to_vec(),
                enclosed: Some(b'"'),
                escaped: Some(b'\\'),
                line_start: b">".to_vec(),
                line_term: b"\r\n".to_vec()
            }
        );
        assert_eq!(spec.ignore_lines, 1);
        assert_eq!(
            spec.targets,
            vec![Target::Column("a".into()), Target::Var("skip".into()), Target::Column("b".into())]
        );
        assert_eq!(spec.set, vec![("c".into(), "UPPER(@skip)".into()), ("d".into(), "'x,y'".into())]);
    }

    #[test]
    fn rejects_what_it_does_not_run() {
        assert_eq!(parse("LOAD DATA INFILE 'x' INTO TABLE t").unwrap_err().to_mysql().code, 1235);
        assert_eq!(parse("LOAD DATA LOCAL INFILE 'x' INTO TABLE t PARTITION (p0)").unwrap_err().to_mysql().code, 1235);
        assert_eq!(parse("LOAD DATA LOCAL INFILE 'x' INTO t").unwrap_err().to_mysql().code, 1064);
        assert_eq!(parse("LOAD DATA LOCAL INFILE 'x' INTO TABLE t junk").unwrap_err().to_mysql().code, 1064);
        assert_eq!(
            parse("LOAD DATA LOCAL INFILE 'x' INTO TABLE t FIELDS ENCLOSED BY 'ab'").unwrap_err().to_mysql().code,
            code::ER_WRONG_FIELD_TERMINATORS
        );
    }

    #[test]
    fn default_format_tabs_escapes_and_null() {
        let f = Format::default();
        let r = records(&f, b"1\ta\\tb\t\\N\n2\tx\\\\y\tN\n\n3");
        assert_eq!(r, vec![vec![s("1"), s("a\tb"), None], vec![s("2"), s("x\\y"), s("N")], vec![s("")], vec![s("3")],]);
    }

    #[test]
    fn csv_with_enclosures() {
        let f = Format {
            field_term: b",".to_vec(),
            enclosed: Some(b'"'),
            line_term: b"\r\n".to_vec(),
            ..Format::default()
        };
        let r = records(&f, b"1,\"a,b\",NULL,\"NULL\"\r\n2,\"say \"\"hi\"\"\",\"x\r\ny\",\"q\"z\"\r\n");
        assert_eq!(
            r,
            vec![vec![s("1"), s("a,b"), None, s("NULL")], vec![s("2"), s("say \"hi\""), s("x\r\ny"), s("q\"z")],]
        );
    }

    #[test]
    fn incomplete_records_wait_for_more_input() {
        let f = Format { field_term: b"||".to_vec(), line_term: b"\r\n".to_vec(), ..Format::default() };
        assert_eq!(f.next_record(b"1||a", false), None);
        assert_eq!(f.next_record(b"1||a|", false), None);
        assert_eq!(f.next_record(b"1||a\r", false), None);
        assert_eq!(f.next_record(b"1||a\\", false), None);
        assert_eq!(f.next_record(b"1||a\r\n2", false), Some((vec![s("1"), s("a")], 6)));
        assert_eq!(f.next_record(b"1||a\r", true), Some((vec![s("1"), s("a\r")], 5)));
        let q = Format { enclosed: Some(b'"'), ..Format::default() };
        assert_eq!(q.next_record(b"\"a\tb\"", false), None);
        assert_eq!(q.next_record(b"\"a\tb\"\n", false), Some((vec![s("a\tb")], 6)));
    }

    #[test]
    fn line_prefix_skips_lines_without_it() {
        let f = Format { line_start: b"xx".to_vec(), field_term: b",".to_vec(), ..Format::default() };
        assert_eq!(records(&f, b"xx1,a\nnothing\nyyxx2,b\n"), vec![vec![s("1"), s("a")], vec![s("2"), s("b")]]);
    }

    #[test]
    fn variables_are_substituted_outside_quotes() {
        let vars = vec![("a".to_string(), "'x'".to_string())];
        assert_eq!(substitute_vars("CONCAT(@a, '@a', @b, @@sql_mode)", &vars), "CONCAT('x', '@a', NULL, @@sql_mode)");
        assert_eq!(literal(&Some(vec![0xff, 0x01])), "X'ff01'");
        assert_eq!(literal(&s("it's")), "'it''s'");
    }
}
