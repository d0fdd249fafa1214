//! The random-query differential test: generated SELECTs over sharded
//! tables through the CN and over plain copies of the same rows in one
//! MariaDB (a database on DN 0, reached directly) must give the same rows.
//!
//! Tables `t1`, `t2` (4 partitions each by `id`: one table group, so their
//! joins on `id` are pushed down whole), `t3` (broadcast) and `t4` (a single
//! table), all `(id, a INT, b VARCHAR, c DECIMAL, d DATE)` with NULLs,
//! duplicates, and strings that differ only in case, accents or trailing
//! spaces. Queries: one to three tables (inner, left and right joins on
//! integer and string columns), WHERE trees of comparisons, IN lists,
//! BETWEEN, LIKE, IS NULL, NOT/AND/OR, and IN / NOT IN / EXISTS / scalar
//! subqueries (correlated or not); SELECT lists of arithmetic, string,
//! date, CASE and NULL functions, or aggregates (COUNT, COUNT DISTINCT,
//! SUM, MIN, MAX, AVG) with GROUP BY and HAVING; DISTINCT; ORDER BY every
//! output column with LIMIT.
//!
//! Known differences the generator steers clear of (found by this test,
//! not fixed yet; each is in the notes). (A third, `GROUP BY b,
//! LENGTH(b)` grouping `'a'` with `'a '`, is fixed: see
//! `cn::executor::context`.)
//! 1. `b IN ('B', 'a ') AND b IN ('A', 'x')`: DataFusion's simplifier
//!    intersects the lists by bytes (empty) where the collation says
//!    `'a ' = 'A'`. Predicate literals are therefore pairwise unequal
//!    under the collation (the data still has every variant).
//! 2. `x.a NOT IN (SELECT …) OR …` over a join: DataFusion 55.2 fails to
//!    plan it ("HashJoinExec requires children to be co-partitioned").
//!    Over one table it runs, three-valued as MySQL's (see
//!    `cn::optimizer::semantics`), and the generator makes those.
//!
//! Rows are compared as multisets of the text the servers send. Where
//! MySQL leaves the spelling open (a string group key, DISTINCT, MIN/MAX
//! or a LIMIT among strings equal under `utf8mb4_general_ci`: the server
//! shows whichever row it read first), strings are compared by their
//! collation fold.
//!
//! The CN's tables are analyzed (`ANALYZE TABLE`), so its hash joins build
//! on whichever input its row estimates say is smaller.
//!
//! Bounded: `RQ_SECS` seconds (default 60) or `RQ_QUERIES` queries; the
//! generator's seed is `RQ_SEED` (default 1, so CI runs the same queries);
//! a failure prints the seed, the SQL and both answers.

mod common;

use cn::tpch::answer::{answer, Answer};
use common::{block_on, fresh_db, reference_db};
use mysql_async::prelude::*;
use std::time::{Duration, Instant};

const TABLES: [&str; 4] = ["t1", "t2", "t3", "t4"];
const CLAUSE: [&str; 4] = ["PARTITION BY KEY(id) PARTITIONS 4", "PARTITION BY KEY(id) PARTITIONS 4", "BROADCAST", ""];
const STRINGS: [&str; 12] = ["a", "A", "a ", "b", "B", "abc", "ABC ", "", " x", "é", "E", "zz"];

/// String literals of predicates: no two equal under the collation (see
/// the module doc, known difference 1).
const LITERALS: [&str; 7] = ["a", "B", "abc", "", " x", "é", "zz"];

/// splitmix64: deterministic for a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

fn rows_sql(r: &mut Rng, table: &str, n: usize) -> String {
    let mut values = Vec::new();
    for id in 1..=n {
        let a = if r.chance(10) { "NULL".to_string() } else { (r.below(26) as i64 - 5).to_string() };
        let b = if r.chance(10) { "NULL".to_string() } else { format!("'{}'", r.pick(&STRINGS)) };
        let c = if r.chance(10) {
            "NULL".to_string()
        } else {
            let cents = r.below(20001) as i64 - 10000;
            format!("{}{}.{:02}", if cents < 0 { "-" } else { "" }, cents.abs() / 100, cents.abs() % 100)
        };
        let d = if r.chance(10) {
            "NULL".to_string()
        } else {
            format!("DATE_ADD('2024-01-01', INTERVAL {} DAY)", r.below(60))
        };
        values.push(format!("({id}, {a}, {b}, {c}, {d})"));
    }
    format!("INSERT INTO {table} (id, a, b, c, d) VALUES {}", values.join(", "))
}

/// The generator's state for one query: the table aliases in scope, and
/// whether the answer may spell a string either way.
struct Gen<'a> {
    r: &'a mut Rng,
    aliases: Vec<String>,
    loose_spelling: bool,
    /// The predicate being generated is a whole WHERE.
    top_level: bool,
}

impl Gen<'_> {
    fn col(&mut self, kinds: &str) -> String {
        let alias = self.r.pick(&self.aliases).clone();
        let kind = kinds.as_bytes()[self.r.below(kinds.len())];
        let name = match kind {
            b'i' => *self.r.pick(&["id", "a", "a"]),
            b'a' => "a",
            b's' => "b",
            b'n' => "c",
            _ => "d",
        };
        format!("{alias}.{name}")
    }

    fn int_lit(&mut self) -> String {
        (self.r.below(26) as i64 - 5).to_string()
    }

    fn str_lit(&mut self) -> String {
        format!("'{}'", self.r.pick(&LITERALS))
    }

    /// A scalar expression and whether it is a string.
    fn scalar(&mut self) -> (String, bool) {
        let a = self.col("i");
        let c = self.col("n");
        let s = self.col("s");
        let d = self.col("d");
        let k = self.int_lit();
        match self.r.below(20) {
            0 => (a, false),
            1 => (format!("{a} + {k}"), false),
            2 => (format!("{a} * 2 - {}", self.col("i")), false),
            3 => (format!("{c} * 2"), false),
            4 => (format!("{a} / 3"), false),
            5 => (format!("{a} DIV 2"), false),
            6 => (format!("{a} % 3"), false),
            7 => (format!("COALESCE({a}, 0)"), false),
            8 => (s, true),
            9 => (format!("IFNULL({s}, 'z')"), true),
            10 => (format!("UPPER({s})"), true),
            11 => (format!("LENGTH({s})"), false),
            12 => (format!("CONCAT({s}, '-')"), true),
            13 => (format!("CASE WHEN {a} > {k} THEN 'hi' WHEN {a} IS NULL THEN NULL ELSE 'lo' END"), true),
            14 => (format!("ABS({c})"), false),
            15 => (format!("ROUND({c}, 1)"), false),
            16 => (d, false),
            17 => (format!("YEAR({d})"), false),
            18 => (format!("DATE_ADD({d}, INTERVAL {} DAY)", self.r.below(40)), false),
            _ => (format!("{c} + {a}"), false),
        }
    }

    fn predicate(&mut self, depth: usize) -> String {
        let top_level = std::mem::replace(&mut self.top_level, false);
        // A subquery as the whole WHERE, or (over one table) anywhere in it
        // (known difference 2).
        if (top_level || self.aliases.len() == 1) && self.r.chance(8) {
            return self.subquery_predicate();
        }
        let choice = if depth == 0 { self.r.below(10) } else { self.r.below(13) };
        let cmp = *self.r.pick(&["=", "<>", "<", "<=", ">", ">="]);
        match choice {
            0 => format!("{} {cmp} {}", self.col("i"), self.int_lit()),
            1 => format!("{} {cmp} {}", self.col("s"), self.str_lit()),
            2 => format!("{} IS {}NULL", self.col("ians"), if self.r.chance(50) { "NOT " } else { "" }),
            3 => format!("{} IN ({}, {}, {})", self.col("i"), self.int_lit(), self.int_lit(), self.int_lit()),
            4 => format!("{} IN ({}, {})", self.col("s"), self.str_lit(), self.str_lit()),
            5 => format!("{} BETWEEN {} AND {}", self.col("i"), self.int_lit(), self.int_lit()),
            6 => format!("{} LIKE '{}%'", self.col("s"), self.r.pick(&["a", "A", "ab", "", "é"])),
            7 => format!("{} {cmp} '2024-01-{:02}'", self.col("d"), 1 + self.r.below(28)),
            8 => format!("{} {cmp} {}.{}", self.col("n"), self.r.below(100) as i64 - 50, self.r.below(100)),
            9 => format!("{} {cmp} {}", self.col("i"), self.col("i")),
            10 => format!("NOT ({})", self.predicate(depth - 1)),
            11 => format!("({} AND {})", self.predicate(depth - 1), self.predicate(depth - 1)),
            _ => format!("({} OR {})", self.predicate(depth - 1), self.predicate(depth - 1)),
        }
    }

    fn subquery_predicate(&mut self) -> String {
        let table = *self.r.pick(&TABLES);
        let outer_int = self.col("a");
        let outer_num = self.col("n");
        let inner_cmp = *self.r.pick(&["=", "<", ">"]);
        let k = self.int_lit();
        match self.r.below(6) {
            0 => format!("{outer_int} IN (SELECT s.a FROM {table} s WHERE s.id {inner_cmp} {})", self.r.below(60)),
            1 => format!("{outer_int} NOT IN (SELECT s.a FROM {table} s WHERE s.a IS NOT NULL AND s.a > {k})"),
            2 => format!("{outer_int} NOT IN (SELECT s.a FROM {table} s WHERE s.id < {})", self.r.below(30)),
            3 => format!("EXISTS (SELECT 1 FROM {table} s WHERE s.a = {outer_int} AND s.id {inner_cmp} {k})"),
            4 => format!("NOT EXISTS (SELECT 1 FROM {table} s WHERE s.b = {})", self.col("s")),
            _ => format!("{outer_num} > (SELECT AVG(s.c) FROM {table} s WHERE s.a {inner_cmp} {k})"),
        }
    }

    fn from(&mut self) -> String {
        let t = *self.r.pick(&TABLES);
        self.aliases = vec!["x".into()];
        match self.r.below(8) {
            0..=2 => format!("{t} x"),
            3 => {
                self.aliases.push("y".into());
                "t1 x JOIN t2 y ON x.id = y.id".into()
            }
            4 => {
                self.aliases.push("y".into());
                let (l, r) = (*self.r.pick(&TABLES), *self.r.pick(&TABLES));
                let kind = *self.r.pick(&["JOIN", "LEFT JOIN", "RIGHT JOIN"]);
                format!("{l} x {kind} {r} y ON x.a = y.a")
            }
            5 => {
                self.aliases.push("y".into());
                let (l, r) = (*self.r.pick(&TABLES), *self.r.pick(&TABLES));
                let kind = *self.r.pick(&["JOIN", "LEFT JOIN"]);
                format!("{l} x {kind} {r} y ON x.b = y.b")
            }
            6 => {
                self.aliases.push("y".into());
                let r = *self.r.pick(&TABLES);
                format!("{t} x LEFT JOIN {r} y ON x.a = y.id AND y.c > 0")
            }
            _ => {
                self.aliases.extend(["y".to_string(), "z".to_string()]);
                let z = *self.r.pick(&TABLES);
                format!("t1 x JOIN t2 y ON x.id = y.id LEFT JOIN {z} z ON y.a = z.id")
            }
        }
    }

    fn query(&mut self) -> String {
        self.loose_spelling = false;
        let from = self.from();
        let filter = if self.r.chance(75) {
            let depth = self.r.below(3);
            self.top_level = true;
            format!(" WHERE {}", self.predicate(depth))
        } else {
            String::new()
        };
        if self.r.chance(40) {
            return self.aggregate(&from, &filter);
        }
        let n = 1 + self.r.below(3);
        let mut items = Vec::new();
        let mut strings = false;
        for i in 0..n {
            let (e, is_string) = self.scalar();
            strings |= is_string;
            items.push(format!("{e} AS c{i}"));
        }
        let distinct = self.r.chance(20);
        let mut sql =
            format!("SELECT {}{} FROM {from}{filter}", if distinct { "DISTINCT " } else { "" }, items.join(", "));
        if self.r.chance(30) {
            let order: Vec<String> =
                (0..n).map(|i| format!("c{i}{}", if self.r.chance(30) { " DESC" } else { "" })).collect();
            sql.push_str(&format!(" ORDER BY {} LIMIT {}", order.join(", "), 1 + self.r.below(15)));
            self.loose_spelling |= strings;
        }
        self.loose_spelling |= distinct && strings;
        sql
    }

    fn aggregate(&mut self, from: &str, filter: &str) -> String {
        let mut keys = Vec::new();
        for _ in 0..self.r.below(3) {
            let (e, is_string) = if self.r.chance(50) { (self.col("ias"), false) } else { self.scalar() };
            self.loose_spelling |= is_string || e.ends_with(".b");
            keys.push(e);
        }
        let mut items: Vec<String> = keys.iter().enumerate().map(|(i, k)| format!("{k} AS k{i}")).collect();
        for i in 0..1 + self.r.below(3) {
            let agg = match self.r.below(11) {
                0 => "COUNT(*)".to_string(),
                1 => format!("COUNT({})", self.col("ians")),
                2 => format!("COUNT(DISTINCT {})", self.col("ias")),
                3 => format!("SUM({})", self.col("i")),
                4 => format!("SUM({})", self.col("n")),
                5 | 6 => {
                    self.loose_spelling = true;
                    format!("{}({})", self.r.pick(&["MIN", "MAX"]), self.col("s"))
                }
                7 => format!("MAX({})", self.col("nd")),
                8 => format!("MIN({})", self.col("id")),
                9 => format!("AVG({})", self.col("i")),
                _ => format!("AVG({})", self.col("n")),
            };
            items.push(format!("{agg} AS v{i}"));
        }
        let mut sql = format!("SELECT {} FROM {from}{filter}", items.join(", "));
        if !keys.is_empty() {
            sql.push_str(&format!(" GROUP BY {}", keys.join(", ")));
            if self.r.chance(30) {
                sql.push_str(&format!(" HAVING COUNT(*) > {}", self.r.below(3)));
            }
        }
        sql
    }
}

/// The rows of `a` as sorted lines, strings folded when `fold`.
fn multiset(a: &Answer, fold: bool) -> Vec<String> {
    let mut rows: Vec<String> = a
        .rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|v| match v {
                    None => "NULL".to_string(),
                    Some(s) if fold => format!("'{}'", cn::collation::fold(s)),
                    Some(s) => format!("'{s}'"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    rows.sort();
    rows
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn random_selects_give_mariadbs_answers() {
    let seed: u64 = env_or("RQ_SEED", 1);
    let secs: u64 = env_or("RQ_SECS", 60);
    let max_queries: usize = env_or("RQ_QUERIES", usize::MAX);
    block_on(async move {
        let mut cn = fresh_db("rq_diff").await;
        let mut reference = reference_db("rq_reference").await;
        let mut data = Rng(seed);
        for (t, clause) in TABLES.iter().zip(CLAUSE) {
            let columns = "(id INT PRIMARY KEY, a INT, b VARCHAR(8), c DECIMAL(8,2), d DATE)";
            // t2 also has a clustered global index by `a`, partitioned as t1
            // is by `id`: joins on `t2.a = t1.id` (or t2's own id) may read it
            // instead of t2 (`cn::gsi::join`).
            let index = if *t == "t2" {
                "(id INT PRIMARY KEY, a INT, b VARCHAR(8), c DECIMAL(8,2), d DATE, \
                 CLUSTERED INDEX g_a (a) PARTITION BY KEY(a) PARTITIONS 4)"
            } else {
                columns
            };
            cn.query_drop(format!("CREATE TABLE {t} {index} {clause}")).await.unwrap();
            reference.query_drop(format!("CREATE TABLE {t} {columns}")).await.unwrap();
            let n = 40 + data.below(40);
            let insert = rows_sql(&mut data, t, n);
            cn.query_drop(&insert).await.unwrap();
            reference.query_drop(&insert).await.unwrap();
        }
        // Row counts (40 to 79 per table): joins then build on the smaller
        // input, so both sides of the join selection get exercised.
        cn.query_drop(format!("ANALYZE TABLE {}", TABLES.join(", "))).await.unwrap();
        // Lookup joins on tables this small too (those whose keys select
        // at most 2 % of the large side: none or one key here, so the
        // empty lookup is exercised as well).
        cn.query_drop("SET cn_lookup_min_rows = 0").await.unwrap();

        let mut r = Rng(seed.wrapping_mul(31).wrapping_add(7));
        let start = Instant::now();
        let (mut ran, mut skipped, mut nonempty) = (0usize, 0usize, 0usize);
        let mut failures = Vec::new();
        while start.elapsed() < Duration::from_secs(secs) && ran + skipped < max_queries && failures.len() < 5 {
            let mut g = Gen { r: &mut r, aliases: Vec::new(), loose_spelling: false, top_level: false };
            let sql = g.query();
            let loose = g.loose_spelling;
            let expected = match answer(&mut reference, &sql).await {
                Ok(a) => a,
                Err(_) => {
                    // Not valid MariaDB SQL (e.g. a type MariaDB rejects):
                    // nothing to compare.
                    skipped += 1;
                    continue;
                }
            };
            ran += 1;
            nonempty += usize::from(!expected.rows.is_empty());
            match answer(&mut cn, &sql).await {
                Err(e) => failures.push(format!("{sql}\n  CN error: {e}")),
                Ok(got) => {
                    let same = multiset(&got, false) == multiset(&expected, false)
                        || (loose && multiset(&got, true) == multiset(&expected, true));
                    if !same {
                        let show = |a: &Answer| multiset(a, false).into_iter().take(8).collect::<Vec<_>>().join(" | ");
                        failures.push(format!(
                            "{sql}\n  CN ({} rows): {}\n  MariaDB ({} rows): {}",
                            got.rows.len(),
                            show(&got),
                            expected.rows.len(),
                            show(&expected)
                        ));
                    }
                }
            }
        }
        eprintln!(
            "seed {seed}: {ran} queries compared ({nonempty} with rows), {skipped} skipped as invalid on MariaDB, {} differ, in {:?}",
            failures.len(),
            start.elapsed()
        );
        // The generated joins of t2's `a` with t1's key can read t2's index.
        let plan: Vec<(String, String)> =
            cn.query("EXPLAIN SELECT x.b, y.c FROM t2 x LEFT JOIN t1 y ON x.a = y.id").await.unwrap();
        assert!(plan.iter().any(|(_, p)| p.contains("`t2_g_a_")), "t2's index co-locates the join: {plan:?}");
        cn.query_drop("DROP DATABASE rq_diff").await.unwrap();
        reference.query_drop("DROP DATABASE rq_reference").await.unwrap();
        assert!(
            failures.is_empty(),
            "seed {seed}: queries whose answer differs from MariaDB's:\n{}",
            failures.join("\n\n")
        );
        assert!(ran >= 20 && skipped * 10 <= ran, "too few valid queries: {ran} compared, {skipped} skipped");
        assert!(nonempty * 2 >= ran, "most queries should return rows: {nonempty} of {ran}");
    });
}
