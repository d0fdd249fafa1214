//! Printing results: per-file lines, the first failures, a summary table,
//! and the differences between the CN and MariaDB.

use crate::runner::{FileResult, Outcome};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Prints one line per file and up to `show` failures of each.
pub fn print_files(label: &str, results: &[FileResult], show: usize) {
    for f in results {
        println!(
            "[{label}] {}: {} passed, {} failed, {} skipped ({:.1} s)",
            f.path.display(),
            f.passed(),
            f.failed(),
            f.skipped(),
            f.elapsed.as_secs_f64()
        );
        if let Some(e) = &f.error {
            println!("  error: {e}");
        }
        for r in f.records.iter().filter(|r| matches!(r.outcome, Outcome::Fail(_))).take(show) {
            if let Outcome::Fail(msg) = &r.outcome {
                println!("  line {}: {}", r.line, indent(msg));
            }
        }
    }
}

fn indent(s: &str) -> String {
    let s: String = s.chars().take(2000).collect();
    s.lines().collect::<Vec<_>>().join("\n    ")
}

/// One file's figures on both targets, and where they differ.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub path: PathBuf,
    pub cn: (usize, usize, usize),
    pub mariadb: (usize, usize, usize),
    /// Records the CN fails and MariaDB passes: (line, SQL, CN's failure).
    pub cn_only_failures: Vec<(u32, String, String)>,
    /// Records MariaDB fails and the CN passes.
    pub mariadb_only_failures: Vec<(u32, String)>,
}

fn figures(f: &FileResult) -> (usize, usize, usize) {
    (f.passed(), f.failed(), f.skipped())
}

/// Pairs the results of the same files on the CN and on MariaDB.
pub fn compare(cn: &[FileResult], mariadb: &[FileResult]) -> Vec<Comparison> {
    let by_path: BTreeMap<&PathBuf, &FileResult> = mariadb.iter().map(|f| (&f.path, f)).collect();
    cn.iter()
        .filter_map(|c| {
            let m = by_path.get(&c.path)?;
            let m_outcomes: BTreeMap<u32, &Outcome> = m.records.iter().map(|r| (r.line, &r.outcome)).collect();
            let mut cn_only = Vec::new();
            let mut m_only = Vec::new();
            for r in &c.records {
                match (&r.outcome, m_outcomes.get(&r.line)) {
                    (Outcome::Fail(msg), Some(Outcome::Pass)) => cn_only.push((r.line, r.sql.clone(), msg.clone())),
                    (Outcome::Pass, Some(Outcome::Fail(_))) => m_only.push((r.line, r.sql.clone())),
                    _ => {}
                }
            }
            if c.error.is_some() && m.error.is_none() {
                cn_only.push((0, String::new(), c.error.clone().unwrap_or_default()));
            }
            Some(Comparison {
                path: c.path.clone(),
                cn: figures(c),
                mariadb: figures(m),
                cn_only_failures: cn_only,
                mariadb_only_failures: m_only,
            })
        })
        .collect()
}

/// Prints the differences (up to `show` per file) and the summary table.
pub fn print_comparison(rows: &[Comparison], show: usize) {
    for c in rows {
        for (line, sql, msg) in c.cn_only_failures.iter().take(show) {
            println!("DIFF {}:{line}: the CN fails where MariaDB passes\n  {}", c.path.display(), indent(msg));
            let _ = sql;
        }
        for (line, sql) in c.mariadb_only_failures.iter().take(show) {
            println!("DIFF {}:{line}: MariaDB fails where the CN passes: {}", c.path.display(), sql.replace('\n', " "));
        }
    }
    println!();
    println!("| file | CN pass | CN fail | CN skip | MariaDB pass | MariaDB fail | MariaDB skip | CN fails, MariaDB passes | MariaDB fails, CN passes |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut t = [0usize; 8];
    for c in rows {
        let v = [
            c.cn.0,
            c.cn.1,
            c.cn.2,
            c.mariadb.0,
            c.mariadb.1,
            c.mariadb.2,
            c.cn_only_failures.len(),
            c.mariadb_only_failures.len(),
        ];
        for (a, b) in t.iter_mut().zip(v) {
            *a += b;
        }
        println!("| {} | {} |", c.path.display(), v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(" | "));
    }
    println!("| total | {} |", t.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(" | "));
}

/// Prints the summary table of one target.
pub fn print_summary(label: &str, results: &[FileResult]) {
    println!();
    println!("| file ({label}) | pass | fail | skip | seconds |");
    println!("|---|---|---|---|---|");
    let (mut p, mut f, mut s, mut secs) = (0, 0, 0, 0.0);
    for r in results {
        println!(
            "| {} | {} | {} | {} | {:.1} |",
            r.path.display(),
            r.passed(),
            r.failed(),
            r.skipped(),
            r.elapsed.as_secs_f64()
        );
        p += r.passed();
        f += r.failed();
        s += r.skipped();
        secs += r.elapsed.as_secs_f64();
    }
    println!("| total | {p} | {f} | {s} | {secs:.1} |");
}

/// `file:line` keys of the records the CN fails and MariaDB passes, with
/// the file named from its `suites/` directory on (so the key is the same
/// whatever the working directory).
pub fn cn_only_keys(rows: &[Comparison]) -> Vec<String> {
    let mut keys = Vec::new();
    for c in rows {
        let p = c.path.to_string_lossy().replace('\\', "/");
        let name = p.find("suites/").map(|i| &p[i..]).unwrap_or(&p).to_string();
        for (line, _, _) in &c.cn_only_failures {
            keys.push(format!("{name}:{line}"));
        }
    }
    keys
}
