//! TPC-H schema (MySQL dialect, with the CN's partition clauses) and data
//! loading with the `tpchgen` generators, through a CN session so the load
//! takes the same INSERT path as any client.

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
/// supplier by suppkey, nation and region broadcast.
pub const SCHEMA: &[&str] = &[
    "CREATE TABLE region (r_regionkey INT NOT NULL, r_name CHAR(25) NOT NULL, r_comment VARCHAR(152), PRIMARY KEY (r_regionkey)) BROADCAST",
    "CREATE TABLE nation (n_nationkey INT NOT NULL, n_name CHAR(25) NOT NULL, n_regionkey INT NOT NULL, n_comment VARCHAR(152), PRIMARY KEY (n_nationkey)) BROADCAST",
    "CREATE TABLE part (p_partkey INT NOT NULL, p_name VARCHAR(55) NOT NULL, p_mfgr CHAR(25) NOT NULL, p_brand CHAR(10) NOT NULL, p_type VARCHAR(25) NOT NULL, p_size INT NOT NULL, p_container CHAR(10) NOT NULL, p_retailprice DECIMAL(15,2) NOT NULL, p_comment VARCHAR(23) NOT NULL, PRIMARY KEY (p_partkey)) PARTITION BY KEY(p_partkey) PARTITIONS 16",
    "CREATE TABLE supplier (s_suppkey INT NOT NULL, s_name CHAR(25) NOT NULL, s_address VARCHAR(40) NOT NULL, s_nationkey INT NOT NULL, s_phone CHAR(15) NOT NULL, s_acctbal DECIMAL(15,2) NOT NULL, s_comment VARCHAR(101) NOT NULL, PRIMARY KEY (s_suppkey)) PARTITION BY KEY(s_suppkey) PARTITIONS 16",
    "CREATE TABLE partsupp (ps_partkey INT NOT NULL, ps_suppkey INT NOT NULL, ps_availqty INT NOT NULL, ps_supplycost DECIMAL(15,2) NOT NULL, ps_comment VARCHAR(199) NOT NULL, PRIMARY KEY (ps_partkey, ps_suppkey)) PARTITION BY KEY(ps_partkey) PARTITIONS 16",
    "CREATE TABLE customer (c_custkey INT NOT NULL, c_name VARCHAR(25) NOT NULL, c_address VARCHAR(40) NOT NULL, c_nationkey INT NOT NULL, c_phone CHAR(15) NOT NULL, c_acctbal DECIMAL(15,2) NOT NULL, c_mktsegment CHAR(10) NOT NULL, c_comment VARCHAR(117) NOT NULL, PRIMARY KEY (c_custkey)) PARTITION BY KEY(c_custkey) PARTITIONS 16",
    "CREATE TABLE orders (o_orderkey INT NOT NULL, o_custkey INT NOT NULL, o_orderstatus CHAR(1) NOT NULL, o_totalprice DECIMAL(15,2) NOT NULL, o_orderdate DATE NOT NULL, o_orderpriority CHAR(15) NOT NULL, o_clerk CHAR(15) NOT NULL, o_shippriority INT NOT NULL, o_comment VARCHAR(79) NOT NULL, PRIMARY KEY (o_orderkey)) PARTITION BY KEY(o_orderkey) PARTITIONS 16",
    "CREATE TABLE lineitem (l_orderkey INT NOT NULL, l_partkey INT NOT NULL, l_suppkey INT NOT NULL, l_linenumber INT NOT NULL, l_quantity DECIMAL(15,2) NOT NULL, l_extendedprice DECIMAL(15,2) NOT NULL, l_discount DECIMAL(15,2) NOT NULL, l_tax DECIMAL(15,2) NOT NULL, l_returnflag CHAR(1) NOT NULL, l_linestatus CHAR(1) NOT NULL, l_shipdate DATE NOT NULL, l_commitdate DATE NOT NULL, l_receiptdate DATE NOT NULL, l_shipinstruct CHAR(25) NOT NULL, l_shipmode CHAR(10) NOT NULL, l_comment VARCHAR(44) NOT NULL, PRIMARY KEY (l_orderkey, l_linenumber)) PARTITION BY KEY(l_orderkey) PARTITIONS 16",
];

/// Rows per INSERT statement while loading.
const ROWS_PER_INSERT: usize = 2000;

/// Creates database `db` with the TPC-H tables and loads scale factor `sf`.
/// Returns the number of rows loaded.
pub async fn load(session: &mut Session, db: &str, sf: f64) -> Result<u64> {
    let mut sink = CollectSink::default();
    session.execute(&format!("CREATE DATABASE IF NOT EXISTS {db}"), &mut sink).await?;
    session.use_db(db)?;
    for ddl in SCHEMA {
        session.execute(ddl, &mut sink).await?;
    }
    if sf <= 0.0 {
        return Ok(0);
    }
    let mut total = 0;
    total += insert_batches(session, "region", RegionArrow::new(RegionGenerator::new(sf, 1, 1))).await?;
    total += insert_batches(session, "nation", NationArrow::new(NationGenerator::new(sf, 1, 1))).await?;
    total += insert_batches(session, "part", PartArrow::new(PartGenerator::new(sf, 1, 1))).await?;
    total += insert_batches(session, "supplier", SupplierArrow::new(SupplierGenerator::new(sf, 1, 1))).await?;
    total += insert_batches(session, "partsupp", PartSuppArrow::new(PartSuppGenerator::new(sf, 1, 1))).await?;
    total += insert_batches(session, "customer", CustomerArrow::new(CustomerGenerator::new(sf, 1, 1))).await?;
    total += insert_batches(session, "orders", OrderArrow::new(OrderGenerator::new(sf, 1, 1))).await?;
    total += insert_batches(session, "lineitem", LineItemArrow::new(LineItemGenerator::new(sf, 1, 1))).await?;
    Ok(total)
}

async fn insert_batches(
    session: &mut Session,
    table: &str,
    batches: impl Iterator<Item = std::result::Result<RecordBatch, datafusion::arrow::error::ArrowError>>,
) -> Result<u64> {
    let mut n = 0u64;
    let mut pending: Vec<String> = Vec::with_capacity(ROWS_PER_INSERT);
    let mut header = String::new();
    for batch in batches {
        let batch = batch.map_err(|e| crate::error::CnError::internal(e.to_string()))?;
        if header.is_empty() {
            let cols: Vec<&str> = batch.schema_ref().fields().iter().map(|f| f.name().as_str()).collect();
            header = format!("INSERT INTO {table} ({}) VALUES ", cols.join(", "));
        }
        let quoted: Vec<bool> = batch
            .schema_ref()
            .fields()
            .iter()
            .map(|f| {
                matches!(f.data_type(), DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Date32)
            })
            .collect();
        for row in batch_to_rows(&batch)? {
            let vals: Vec<String> = row
                .into_iter()
                .zip(&quoted)
                .map(|(v, q)| match v {
                    None => "NULL".to_string(),
                    Some(b) if *q => crate::dn::quote_str(&String::from_utf8_lossy(&b)),
                    Some(b) => String::from_utf8_lossy(&b).into_owned(),
                })
                .collect();
            pending.push(format!("({})", vals.join(",")));
            if pending.len() == ROWS_PER_INSERT {
                n += flush(session, &header, &mut pending).await?;
            }
        }
    }
    n += flush(session, &header, &mut pending).await?;
    Ok(n)
}

async fn flush(session: &mut Session, header: &str, pending: &mut Vec<String>) -> Result<u64> {
    if pending.is_empty() {
        return Ok(0);
    }
    let sql = format!("{header}{}", pending.join(","));
    pending.clear();
    let mut sink = CollectSink::default();
    session.execute(&sql, &mut sink).await?;
    Ok(sink.affected)
}
