//! Runs sqllogictest files record by record and keeps the outcome of each
//! (pass, fail with the runner's explanation, or skipped by a condition).

use crate::db::{ExpectedTypes, MysqlDb};
use crate::target::Target;
use anyhow::Result;
use futures::StreamExt;
use mysql_async::prelude::*;
use sqllogictest::{DefaultColumnType, QueryExpect, Record, RecordOutput};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What happened to one `statement` or `query` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// The runner's explanation: SQL, expected and actual.
    Fail(String),
    /// Skipped by `skipif`/`onlyif`.
    Skip,
}

/// One record's outcome.
#[derive(Debug, Clone)]
pub struct RecordResult {
    /// Line of the record in its file.
    pub line: u32,
    /// The record's SQL.
    pub sql: String,
    pub outcome: Outcome,
}

/// All records of one file.
#[derive(Debug, Clone)]
pub struct FileResult {
    pub path: PathBuf,
    pub records: Vec<RecordResult>,
    /// A failure outside any record (the file did not parse, the database
    /// could not be created).
    pub error: Option<String>,
    pub elapsed: Duration,
}

impl FileResult {
    pub fn count(&self, want: fn(&Outcome) -> bool) -> usize {
        self.records.iter().filter(|r| want(&r.outcome)).count()
    }
    pub fn passed(&self) -> usize {
        self.count(|o| *o == Outcome::Pass)
    }
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Fail(_))) + usize::from(self.error.is_some())
    }
    pub fn skipped(&self) -> usize {
        self.count(|o| *o == Outcome::Skip)
    }
}

/// Options of a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Labels for `skipif`/`onlyif` (e.g. `mysql`).
    pub labels: Vec<String>,
    /// Files run at once.
    pub jobs: usize,
    /// Longest time one statement may take.
    pub statement_timeout: Duration,
    /// Results with more values than this are compared by hash, unless a
    /// file sets its own `hash-threshold` (the SQLite corpus was made with 8).
    pub hash_threshold: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            labels: vec!["mysql".into()],
            jobs: 4,
            statement_timeout: Duration::from_secs(120),
            hash_threshold: 8,
        }
    }
}

/// Accepts results written a row per line (sqllogictest-rs) or a value per
/// line (the SQLite corpus).
fn row_or_value_wise(normalizer: sqllogictest::Normalizer, actual: &[Vec<String>], expected: &[String]) -> bool {
    if sqllogictest::default_validator(normalizer, actual, expected) {
        return true;
    }
    let values = actual.iter().flatten().map(normalizer);
    let values: Vec<String> = values.collect();
    values.len() == expected.len() && values.iter().zip(expected).all(|(a, e)| *a == normalizer(e))
}

/// Drops the `# comment` that SQLite's corpus puts after some `skipif` and
/// `onlyif` lines (the sqllogictest crate refuses them).
fn strip_condition_comments(script: &str) -> String {
    script
        .lines()
        .map(|l| {
            if l.starts_with("skipif") || l.starts_with("onlyif") {
                l.split('#').next().unwrap_or(l).trim_end()
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Expands directories into the `.test`/`.slt` files under them, sorted.
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
            entries.sort();
            out.extend(collect_files(&entries)?);
        } else if p.extension().is_some_and(|e| e == "test" || e == "slt") {
            out.push(p.clone());
        } else if !p.exists() {
            anyhow::bail!("{}: no such file or directory", p.display());
        }
    }
    Ok(out)
}

/// Runs `files` against `target`, each in a fresh database, `jobs` at once.
pub async fn run_files(target: &Target, files: &[PathBuf], opts: &RunOptions) -> Vec<FileResult> {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let runs = files.iter().map(|f| {
        let db = format!("slt_{}_{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
        run_file(target, f, db, opts)
    });
    futures::stream::iter(runs).buffered(opts.jobs.max(1)).collect().await
}

/// Runs one file in database `db` (created first, dropped after).
pub async fn run_file(target: &Target, path: &Path, db: String, opts: &RunOptions) -> FileResult {
    let started = Instant::now();
    let mut result = FileResult { path: path.to_path_buf(), records: Vec::new(), error: None, elapsed: Duration::ZERO };
    if let Err(e) = run_records(target, path, &db, opts, &mut result.records).await {
        result.error = Some(format!("{e:#}"));
    }
    if let Ok(mut c) = mysql_async::Conn::from_url(&target.url).await {
        let _ = c.query_drop(format!("DROP DATABASE IF EXISTS {db}")).await;
        let _ = c.disconnect().await;
    }
    result.elapsed = started.elapsed();
    result
}

async fn run_records(
    target: &Target,
    path: &Path,
    db: &str,
    opts: &RunOptions,
    out: &mut Vec<RecordResult>,
) -> Result<()> {
    let script = strip_condition_comments(&std::fs::read_to_string(path)?);
    let records = sqllogictest::parse_with_name::<DefaultColumnType>(&script, path.display().to_string())?;
    let mut admin = mysql_async::Conn::from_url(&target.url).await?;
    admin.query_drop(format!("DROP DATABASE IF EXISTS {db}")).await?;
    admin.query_drop(format!("CREATE DATABASE {db}")).await?;
    admin.disconnect().await?;
    let expected: ExpectedTypes = Default::default();
    let url = format!("{}/{db}", target.url);
    let timeout = opts.statement_timeout;
    let exp = expected.clone();
    let engine = match target.kind {
        crate::target::TargetKind::Cn => "cn",
        crate::target::TargetKind::Mariadb => "mariadb",
    };
    let mut runner = sqllogictest::Runner::new(move || {
        let url = url.clone();
        let exp = exp.clone();
        async move { MysqlDb::connect(&url, engine, exp, timeout).await }
    });
    runner.with_hash_threshold(opts.hash_threshold);
    runner.with_validator(row_or_value_wise);
    for l in &opts.labels {
        runner.add_label(l);
    }
    for record in records {
        let (line, sql) = match &record {
            Record::Statement { loc, sql, .. } | Record::Query { loc, sql, .. } => (Some(loc.line()), sql.clone()),
            Record::Halt { .. } => break,
            _ => (None, String::new()),
        };
        if let Record::Query { expected: QueryExpect::Results { types, .. }, .. } = &record {
            if let Ok(mut t) = expected.lock() {
                *t = types.clone();
            }
        }
        let r = runner.run_async(record).await;
        let Some(line) = line else { continue };
        let outcome = match r {
            Ok(RecordOutput::Nothing) => Outcome::Skip,
            Ok(_) => Outcome::Pass,
            Err(e) => Outcome::Fail(e.display(false).to_string()),
        };
        out.push(RecordResult { line, sql, outcome });
    }
    Ok(())
}
