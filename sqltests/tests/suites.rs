//! The conformance suites in CI: the CN's own suite must pass on the CN, and
//! the SQLite corpus (select1–5, evidence) runs on the CN and on plain
//! MariaDB; a record the CN fails while MariaDB passes must be listed in
//! `baseline/cn-only-failures.txt`. A new one fails the test; one that
//! starts passing is reported so the baseline can shrink. Regenerate with
//! `cargo run -p sqltests -- --compare --write-baseline
//! sqltests/baseline/cn-only-failures.txt sqltests/suites/sqlite`.

use sqltests::report;
use sqltests::runner::{collect_files, run_files, Outcome, RunOptions};
use sqltests::target::{Target, TargetKind};
use std::collections::BTreeSet;
use std::path::PathBuf;

fn suites() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("suites")
}

/// On the CN's runtime (its worker stack size: the corpus' 62-table joins
/// recurse deeply while they are planned).
#[test]
fn cn_suite_passes_and_sqlite_corpus_differs_from_mariadb_only_where_recorded() {
    cn::server::runtime_builder().worker_threads(4).build().unwrap().block_on(suites_agree())
}

async fn suites_agree() {
    let opts = RunOptions::default();
    let cn = Target::start(TargetKind::Cn, 2).await.expect("the CN playground starts (is mariadb-server installed?)");
    let own = run_files(&cn, &collect_files(&[suites().join("cn")]).unwrap(), &opts).await;
    report::print_files("CN", &own, 5);
    let failures: Vec<String> = own
        .iter()
        .flat_map(|f| {
            let path = f.path.display().to_string();
            let mut v: Vec<String> = f.error.iter().map(|e| format!("{path}: {e}")).collect();
            v.extend(f.records.iter().filter_map(|r| match &r.outcome {
                Outcome::Fail(m) => Some(format!("{path}:{}: {m}", r.line)),
                _ => None,
            }));
            v
        })
        .collect();
    assert!(!own.is_empty() && own.iter().all(|f| f.passed() > 0), "the cn suite ran");
    assert!(failures.is_empty(), "the CN's own suite failed:\n{}", failures.join("\n"));

    let corpus = collect_files(&[suites().join("sqlite")]).unwrap();
    let on_cn = run_files(&cn, &corpus, &opts).await;
    cn.stop().await;
    let mariadb = Target::start(TargetKind::Mariadb, 0).await.expect("mariadbd starts");
    let on_mariadb = run_files(&mariadb, &corpus, &opts).await;
    mariadb.stop().await;
    let rows = report::compare(&on_cn, &on_mariadb);
    report::print_comparison(&rows, 0);

    let baseline_text =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("baseline/cn-only-failures.txt"))
            .unwrap_or_default();
    let baseline: BTreeSet<&str> = baseline_text.lines().filter(|l| !l.trim().is_empty()).collect();
    let now: BTreeSet<String> = report::cn_only_keys(&rows).into_iter().collect();
    let new: Vec<&String> = now.iter().filter(|k| !baseline.contains(k.as_str())).collect();
    let fixed = baseline.iter().filter(|k| !now.contains(**k)).count();
    println!("CN-only failures: {} now, {} in the baseline, {fixed} of those now pass", now.len(), baseline.len());
    let total_passed: usize = on_cn.iter().map(|f| f.passed()).sum();
    assert!(total_passed > 5000, "the corpus ran on the CN ({total_passed} records passed)");
    assert!(new.is_empty(), "records the CN now fails where MariaDB passes (not in the baseline):\n{new:?}");
}
