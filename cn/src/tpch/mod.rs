//! TPC-H: schema (MySQL dialect, with the CN's partition clauses), data
//! generated with the `tpchgen` generators as multi-row INSERT statements
//! (loaded through a CN session, so the load takes the same INSERT path as
//! any client, or into a plain MariaDB for comparison), and the 22 queries.
//!
//! The queries (`queries/qNN.sql`) are the TPC-H 3.0.1 queries in MySQL
//! syntax with the specification's validation substitution parameters
//! (TPC-H spec. 2.4). Q15's view is a CTE. Q3, Q10, Q11 and Q18 get a
//! unique tie-breaker appended to their ORDER BY, so that their LIMITed
//! answer is deterministic and two engines can be compared row by row.

pub mod answer;

use crate::error::Result;
use crate::executor::convert::batch_to_rows;
use crate::session::sink::CollectSink;
use crate::session::Session;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use tpchgen::generators::*;
use tpchgen_arrow::*;

/// CREATE TABLE statements: lineitem and orders partitioned by orderkey (one
/// table group), part and partsupp by partkey, customer by custkey,
/// supplier by suppkey, nation and region broadcast. The local indexes on
/// the foreign keys (LOCAL: on each shard, not global) are those of the usual
/// MySQL TPC-H set-up; a plain
/// MariaDB gets the same ones ([`plain_schema`]).
///
/// orders' index on `o_custkey` is also global (`g_o_custkey`, partitioned
/// like customer): a shard of orders holds the orders of every customer, so
/// a join of customer and orders on the customer key cannot run on the
/// shards; the global index holds each customer's orders (their keys) next
/// to the customer, and a join that reads only those columns of orders
/// runs there ([`crate::gsi::join`]; TPC-H Q22's `NOT EXISTS`). Plain
/// MariaDB's one `o_custkey` index serves both purposes.
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE region (r_regionkey INT NOT NULL, r_name CHAR(25) NOT NULL, r_comment VARCHAR(152), PRIMARY KEY (r_regionkey)) BROADCAST",
    "CREATE TABLE nation (n_nationkey INT NOT NULL, n_name CHAR(25) NOT NULL, n_regionkey INT NOT NULL, n_comment VARCHAR(152), PRIMARY KEY (n_nationkey)) BROADCAST",
    "CREATE TABLE part (p_partkey INT NOT NULL, p_name VARCHAR(55) NOT NULL, p_mfgr CHAR(25) NOT NULL, p_brand CHAR(10) NOT NULL, p_type VARCHAR(25) NOT NULL, p_size INT NOT NULL, p_container CHAR(10) NOT NULL, p_retailprice DECIMAL(15,2) NOT NULL, p_comment VARCHAR(23) NOT NULL, PRIMARY KEY (p_partkey)) PARTITION BY KEY(p_partkey) PARTITIONS 16",
    "CREATE TABLE supplier (s_suppkey INT NOT NULL, s_name CHAR(25) NOT NULL, s_address VARCHAR(40) NOT NULL, s_nationkey INT NOT NULL, s_phone CHAR(15) NOT NULL, s_acctbal DECIMAL(15,2) NOT NULL, s_comment VARCHAR(101) NOT NULL, PRIMARY KEY (s_suppkey)) PARTITION BY KEY(s_suppkey) PARTITIONS 16",
    "CREATE TABLE partsupp (ps_partkey INT NOT NULL, ps_suppkey INT NOT NULL, ps_availqty INT NOT NULL, ps_supplycost DECIMAL(15,2) NOT NULL, ps_comment VARCHAR(199) NOT NULL, PRIMARY KEY (ps_partkey, ps_suppkey), LOCAL KEY ps_suppkey (ps_suppkey)) PARTITION BY KEY(ps_partkey) PARTITIONS 16",
    "CREATE TABLE customer (c_custkey INT NOT NULL, c_name VARCHAR(25) NOT NULL, c_address VARCHAR(40) NOT NULL, c_nationkey INT NOT NULL, c_phone CHAR(15) NOT NULL, c_acctbal DECIMAL(15,2) NOT NULL, c_mktsegment CHAR(10) NOT NULL, c_comment VARCHAR(117) NOT NULL, PRIMARY KEY (c_custkey)) PARTITION BY KEY(c_custkey) PARTITIONS 16",
    "CREATE TABLE orders (o_orderkey INT NOT NULL, o_custkey INT NOT NULL, o_orderstatus CHAR(1) NOT NULL, o_totalprice DECIMAL(15,2) NOT NULL, o_orderdate DATE NOT NULL, o_orderpriority CHAR(15) NOT NULL, o_clerk CHAR(15) NOT NULL, o_shippriority INT NOT NULL, o_comment VARCHAR(79) NOT NULL, PRIMARY KEY (o_orderkey), LOCAL KEY o_custkey (o_custkey), GLOBAL INDEX g_o_custkey (o_custkey) PARTITION BY KEY(o_custkey) PARTITIONS 16) PARTITION BY KEY(o_orderkey) PARTITIONS 16",
    "CREATE TABLE lineitem (l_orderkey INT NOT NULL, l_partkey INT NOT NULL, l_suppkey INT NOT NULL, l_linenumber INT NOT NULL, l_quantity DECIMAL(15,2) NOT NULL, l_extendedprice DECIMAL(15,2) NOT NULL, l_discount DECIMAL(15,2) NOT NULL, l_tax DECIMAL(15,2) NOT NULL, l_returnflag CHAR(1) NOT NULL, l_linestatus CHAR(1) NOT NULL, l_shipdate DATE NOT NULL, l_commitdate DATE NOT NULL, l_receiptdate DATE NOT NULL, l_shipinstruct CHAR(25) NOT NULL, l_shipmode CHAR(10) NOT NULL, l_comment VARCHAR(44) NOT NULL, PRIMARY KEY (l_orderkey, l_linenumber), LOCAL KEY l_part_supp (l_partkey, l_suppkey), LOCAL KEY l_suppkey (l_suppkey)) PARTITION BY KEY(l_orderkey) PARTITIONS 16",
];

/// Rows per INSERT statement while loading.
const ROWS_PER_INSERT: usize = 2000;

/// [`SCHEMA`] without the partition clauses, for one plain MariaDB.
pub fn plain_schema() -> Vec<String> {
    SCHEMA
        .iter()
        .map(|s| {
            let s = without_global_indexes(s);
            let end = s.rfind(") PARTITION BY").or_else(|| s.rfind(')')).expect("a column list");
            s[..=end].replace("LOCAL KEY", "KEY")
        })
        .collect()
}

/// `stmt` without its `, GLOBAL INDEX … PARTITIONS n` clauses.
fn without_global_indexes(stmt: &str) -> String {
    let mut s = stmt.to_string();
    while let Some(i) = s.find(", GLOBAL INDEX") {
        let after = &s[i..];
        let count = after.find(" PARTITIONS ").expect("a global index's partition count") + " PARTITIONS ".len();
        let digits = after[count..].find(|c: char| !c.is_ascii_digit()).expect("the column list's end");
        s.replace_range(i..i + count + digits, "");
    }
    s
}

/// The text of TPC-H query `n` (1..=22) for scale factor `sf` (Q11's
/// FRACTION is 0.0001 / SF). Panics for another `n`.
pub fn query(n: usize, sf: f64) -> String {
    let text = QUERIES[n - 1];
    text.replace("{fraction}", &format!("{}", 0.0001 / sf.max(0.0001)))
}

const QUERIES: [&str; 22] = [
    include_str!("queries/q01.sql"),
    include_str!("queries/q02.sql"),
    include_str!("queries/q03.sql"),
    include_str!("queries/q04.sql"),
    include_str!("queries/q05.sql"),
    include_str!("queries/q06.sql"),
    include_str!("queries/q07.sql"),
    include_str!("queries/q08.sql"),
    include_str!("queries/q09.sql"),
    include_str!("queries/q10.sql"),
    include_str!("queries/q11.sql"),
    include_str!("queries/q12.sql"),
    include_str!("queries/q13.sql"),
    include_str!("queries/q14.sql"),
    include_str!("queries/q15.sql"),
    include_str!("queries/q16.sql"),
    include_str!("queries/q17.sql"),
    include_str!("queries/q18.sql"),
    include_str!("queries/q19.sql"),
    include_str!("queries/q20.sql"),
    include_str!("queries/q21.sql"),
    include_str!("queries/q22.sql"),
];

/// Creates database `db` with the TPC-H tables, loads scale factor `sf`
/// and collects the tables' statistics. Returns the number of rows loaded.
pub async fn load(session: &mut Session, db: &str, sf: f64) -> Result<u64> {
    let mut sink = CollectSink::default();
    session.execute(&format!("CREATE DATABASE IF NOT EXISTS {db}"), &mut sink).await?;
    session.use_db(db)?;
    for ddl in SCHEMA {
        session.execute(ddl, &mut sink).await?;
    }
    let mut total = 0;
    for stmt in insert_statements(sf) {
        let mut sink = CollectSink::default();
        session.execute(&stmt?, &mut sink).await?;
        total += sink.affected;
    }
    // Row counts for the CN's join selection.
    session.execute(ANALYZE, &mut sink).await?;
    Ok(total)
}

/// `ANALYZE TABLE` of the eight TPC-H tables, with MariaDB's
/// engine-independent statistics and histograms (`PERSISTENT FOR ALL`):
/// what the CN's ANALYZE collects on every shard, so that one plain
/// MariaDB compared with the CN gets them too (run it after
/// [`REFERENCE_SAMPLE`]; the CN ignores the tail and samples so itself).
pub const ANALYZE: &str =
    "ANALYZE TABLE region, nation, part, supplier, partsupp, customer, orders, lineitem PERSISTENT FOR ALL";

/// MariaDB's automatic sample size for `ANALYZE … PERSISTENT`, as the CN
/// uses on its shards.
pub const REFERENCE_SAMPLE: &str = "SET SESSION analyze_sample_percentage = 0";

type Batches = Box<dyn Iterator<Item = std::result::Result<RecordBatch, datafusion::arrow::error::ArrowError>> + Send>;

/// The data of scale factor `sf` (nothing for `sf <= 0`) as multi-row
/// `INSERT INTO table (cols) VALUES …` statements of up to 2000 rows, table
/// by table in the order region, nation, part, supplier, partsupp,
/// customer, orders, lineitem. Generated lazily: memory stays at one
/// statement.
pub fn insert_statements(sf: f64) -> impl Iterator<Item = Result<String>> + Send {
    let tables: Vec<(&'static str, Batches)> = if sf <= 0.0 {
        Vec::new()
    } else {
        vec![
            ("region", Box::new(RegionArrow::new(RegionGenerator::new(sf, 1, 1)))),
            ("nation", Box::new(NationArrow::new(NationGenerator::new(sf, 1, 1)))),
            ("part", Box::new(PartArrow::new(PartGenerator::new(sf, 1, 1)))),
            ("supplier", Box::new(SupplierArrow::new(SupplierGenerator::new(sf, 1, 1)))),
            ("partsupp", Box::new(PartSuppArrow::new(PartSuppGenerator::new(sf, 1, 1)))),
            ("customer", Box::new(CustomerArrow::new(CustomerGenerator::new(sf, 1, 1)))),
            ("orders", Box::new(OrderArrow::new(OrderGenerator::new(sf, 1, 1)))),
            ("lineitem", Box::new(LineItemArrow::new(LineItemGenerator::new(sf, 1, 1)))),
        ]
    };
    tables.into_iter().flat_map(|(table, batches)| batches.flat_map(move |b| batch_inserts(table, b)))
}

/// One RecordBatch as INSERT statements of up to [`ROWS_PER_INSERT`] rows.
fn batch_inserts(
    table: &str,
    batch: std::result::Result<RecordBatch, datafusion::arrow::error::ArrowError>,
) -> Vec<Result<String>> {
    let batch = match batch {
        Ok(b) => b,
        Err(e) => return vec![Err(crate::error::CnError::internal(e.to_string()))],
    };
    let cols: Vec<&str> = batch.schema_ref().fields().iter().map(|f| f.name().as_str()).collect();
    let header = format!("INSERT INTO {table} ({}) VALUES ", cols.join(", "));
    let quoted: Vec<bool> = batch
        .schema_ref()
        .fields()
        .iter()
        .map(|f| matches!(f.data_type(), DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Date32))
        .collect();
    let rows = match batch_to_rows(&batch) {
        Ok(r) => r,
        Err(e) => return vec![Err(e)],
    };
    let values: Vec<String> = rows
        .into_iter()
        .map(|row| {
            let vals: Vec<String> = row
                .into_iter()
                .zip(&quoted)
                .map(|(v, q)| match v {
                    None => "NULL".to_string(),
                    Some(b) if *q => crate::dn::quote_str(&String::from_utf8_lossy(&b)),
                    Some(b) => String::from_utf8_lossy(&b).into_owned(),
                })
                .collect();
            format!("({})", vals.join(","))
        })
        .collect();
    values.chunks(ROWS_PER_INSERT).map(|c| Ok(format!("{header}{}", c.join(",")))).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn plain_schema_keeps_the_columns_and_local_keys_and_drops_partitioning() {
        let plain = super::plain_schema();
        let orders = plain.iter().find(|s| s.starts_with("CREATE TABLE orders")).expect("orders");
        assert!(orders.ends_with("PRIMARY KEY (o_orderkey), KEY o_custkey (o_custkey))"), "{orders}");
        for s in &plain {
            assert!(!s.contains("PARTITION") && !s.contains("GLOBAL") && !s.contains("LOCAL"), "{s}");
            assert!(s.ends_with("))"), "{s}");
        }
    }
}
