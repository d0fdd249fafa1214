//! The logical catalog: databases, tables, columns, partitioning, placement
//! and table groups. The source of truth is the metadb ([`metadb`]); each CN
//! holds a versioned in-memory [`CatalogSnapshot`] and reloads it when the
//! metadb's catalog version moves.

pub mod metadb;
pub mod statistics;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// Name of the hidden primary-key column given to a table without one
/// (PolarDB-X uses the same name). It is `INVISIBLE` on the DNs, so
/// `SELECT *` does not show it.
pub const IMPLICIT_PK: &str = "_drds_implicit_id_";

/// The family of a column's type: what the CN needs to route, hash and
/// convert values of the column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TypeKind {
    /// TINYINT … BIGINT, BOOL, YEAR.
    Int {
        unsigned: bool,
        bytes: u8,
    },
    /// DECIMAL(precision, scale).
    Decimal {
        precision: u8,
        scale: i8,
    },
    Float,
    Double,
    /// CHAR, VARCHAR, TEXT, ENUM, SET, JSON: compared under the column's
    /// collation (utf8mb4_general_ci by default).
    String,
    /// BINARY, VARBINARY, BLOB, BIT: compared bytewise.
    Binary,
    Date,
    /// DATETIME(fsp) and TIMESTAMP(fsp).
    DateTime {
        fsp: u8,
    },
    Time,
}

/// A column of a logical table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnMeta {
    /// Lower-case name (MySQL column names are case-insensitive).
    pub name: String,
    /// The type as written in the DDL, e.g. `decimal(15,2)`.
    pub sql_type: String,
    pub kind: TypeKind,
    pub nullable: bool,
    pub auto_increment: bool,
    /// Hidden columns (the implicit primary key) are not in `SELECT *`.
    pub hidden: bool,
}

impl ColumnMeta {
    /// The fractional seconds precision (0 to 6) of a TIME, DATETIME or
    /// TIMESTAMP column (`time(3)`: 3); `None` for other types.
    pub fn fsp(&self) -> Option<u8> {
        match self.kind {
            TypeKind::DateTime { fsp } => Some(fsp),
            TypeKind::Time => Some(
                self.sql_type
                    .split_once('(')
                    .and_then(|(_, n)| n.trim_end_matches(')').trim().parse::<u8>().ok())
                    .map_or(0, |n| n.min(6)),
            ),
            _ => None,
        }
    }
}

/// How a table's rows are spread over partitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Partitioning {
    /// `PARTITION BY KEY|HASH(cols) PARTITIONS n`: partition =
    /// [`crate::sharding::hash_key`] of the key values modulo `count`.
    Hash { columns: Vec<String>, count: u32, function: String },
    /// `PARTITION BY RANGE COLUMNS(col)`: partition i holds values below
    /// `bounds[i]` (`None` = MAXVALUE) and at or above `bounds[i-1]`.
    Range { column: String, bounds: Vec<Option<String>>, names: Vec<String> },
    /// `PARTITION BY LIST COLUMNS(col)`: partition i holds `values[i]`.
    List { column: String, values: Vec<Vec<String>>, names: Vec<String> },
    /// A full copy on every DN; reads go to any one, writes to all.
    Broadcast,
    /// One physical table on one DN.
    Single,
}

impl Partitioning {
    /// Partition key columns (empty for broadcast and single tables).
    pub fn key_columns(&self) -> Vec<String> {
        match self {
            Partitioning::Hash { columns, .. } => columns.clone(),
            Partitioning::Range { column, .. } | Partitioning::List { column, .. } => {
                vec![column.clone()]
            }
            _ => vec![],
        }
    }
    /// PolarDB-X's name of the partition policy, for SHOW output.
    pub fn policy(&self) -> &'static str {
        match self {
            Partitioning::Hash { function, .. } if function == "hash" => "HASH",
            Partitioning::Hash { .. } => "KEY",
            Partitioning::Range { .. } => "RANGE COLUMNS",
            Partitioning::List { .. } => "LIST COLUMNS",
            Partitioning::Broadcast => "BROADCAST",
            Partitioning::Single => "SINGLE",
        }
    }
}

/// Where one partition of a table lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionPlacement {
    /// Partition name, `p1`, `p2`, … (or the name given in RANGE/LIST DDL).
    pub name: String,
    /// Physical table name on the DN (in the database of the same name as the
    /// logical one).
    pub phys_table: String,
    /// DN id (index into the cluster's DN list).
    pub dn: u32,
}

/// A logical table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDef {
    pub db: String,
    pub name: String,
    pub columns: Vec<ColumnMeta>,
    pub primary_key: Vec<String>,
    pub partitioning: Partitioning,
    /// One entry per partition; for a broadcast table one per DN.
    pub partitions: Vec<PartitionPlacement>,
    /// Tables with the same partitioning (function, key types, count) share
    /// a table group and the placement of partition i.
    pub table_group: String,
    /// The physical CREATE TABLE body: everything after the table name,
    /// without a partition clause; used to create partitions.
    pub physical_body: String,
    /// Bumped by every DDL on the table.
    pub version: u64,
    /// The table's global secondary indexes (none for an index table).
    #[serde(default)]
    pub global_indexes: Vec<GlobalIndex>,
}

/// The schema-change state of a global index, after F1's online schema
/// change (Rae et al., VLDB 2013) as PolarDB-X records it: a new index is
/// first maintained only by deletes, then by every write, then backfilled,
/// and read only once it is PUBLIC. Each step waits until every CN has
/// loaded the previous one, so no two CNs are more than one state apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IndexState {
    /// Deletes remove index rows; inserts do not add them.
    DeleteOnly,
    /// Every write maintains the index; the backfill has not run.
    WriteOnly,
    /// Every write maintains the index; the backfill is copying the rows
    /// that existed before.
    WriteReorg,
    /// Complete: the optimizer may read it.
    Public,
}

impl IndexState {
    /// Whether inserts and updates must write index rows.
    pub fn writes(self) -> bool {
        self >= IndexState::WriteOnly
    }
    pub fn as_str(self) -> &'static str {
        match self {
            IndexState::DeleteOnly => "DELETE_ONLY",
            IndexState::WriteOnly => "WRITE_ONLY",
            IndexState::WriteReorg => "WRITE_REORG",
            IndexState::Public => "PUBLIC",
        }
    }
}

/// A global secondary index: a table of its own, partitioned by (a prefix
/// of) the index columns, holding per base row the index columns, the
/// primary key and the covering columns (every column for a clustered
/// index), written in the same distributed transaction as the base row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalIndex {
    /// Lower-case index name, unique within its table.
    pub name: String,
    /// Index columns, in key order.
    pub columns: Vec<String>,
    /// Columns stored besides the index columns and the primary key.
    pub covering: Vec<String>,
    /// A unique index: one row per index value across all shards (NULLs
    /// excepted, as in MySQL), enforced by a unique key on each index
    /// partition, since equal values land on one partition.
    pub unique: bool,
    /// Every column of the table is stored (`CLUSTERED INDEX`).
    pub clustered: bool,
    pub state: IndexState,
    /// The index table: its columns are [`GlobalIndex::stored_columns`], its
    /// primary key the base table's, partitioned as the DDL said.
    pub table: TableDef,
}

impl GlobalIndex {
    /// The base-table columns an index row holds, in the index table's
    /// column order: index columns, then primary key, then covering.
    pub fn stored_columns(&self) -> Vec<String> {
        self.table.columns.iter().map(|c| c.name.clone()).collect()
    }
}

#[cfg(test)]
impl TableDef {
    /// For unit tests: table `d.<name>` of nullable INT `columns`, the
    /// first the primary key, partitioned by `partitioning` into
    /// `partitions` physical tables `<name>_<i>` on DNs 0 and 1 in turn.
    pub(crate) fn for_test(name: &str, columns: &[&str], partitioning: Partitioning, partitions: u32) -> TableDef {
        let column = |n: &&str| ColumnMeta {
            name: n.to_string(),
            sql_type: "int".into(),
            kind: TypeKind::Int { unsigned: false, bytes: 4 },
            nullable: true,
            auto_increment: false,
            hidden: false,
        };
        TableDef {
            db: "d".into(),
            name: name.into(),
            columns: columns.iter().map(column).collect(),
            primary_key: columns.first().map(|c| c.to_string()).into_iter().collect(),
            partitioning,
            partitions: (0..partitions)
                .map(|i| PartitionPlacement { name: format!("p{i}"), phys_table: format!("{name}_{i}"), dn: i % 2 })
                .collect(),
            table_group: "g".into(),
            physical_body: String::new(),
            version: 1,
            global_indexes: vec![],
        }
    }
}

impl TableDef {
    pub fn column(&self, name: &str) -> Option<&ColumnMeta> {
        let name = name.to_ascii_lowercase();
        self.columns.iter().find(|c| c.name == name)
    }
    pub fn column_index(&self, name: &str) -> Option<usize> {
        let name = name.to_ascii_lowercase();
        self.columns.iter().position(|c| c.name == name)
    }
    pub fn visible_columns(&self) -> impl Iterator<Item = &ColumnMeta> {
        self.columns.iter().filter(|c| !c.hidden)
    }
    pub fn is_broadcast(&self) -> bool {
        matches!(self.partitioning, Partitioning::Broadcast)
    }
    /// True when rows are split over partitions (hash, range or list).
    pub fn is_partitioned(&self) -> bool {
        !matches!(self.partitioning, Partitioning::Broadcast | Partitioning::Single)
    }
    /// The auto-increment column, if any (including the implicit key).
    pub fn auto_increment_column(&self) -> Option<&ColumnMeta> {
        self.columns.iter().find(|c| c.auto_increment)
    }
    /// The global index named `name` (case-insensitive).
    pub fn global_index(&self, name: &str) -> Option<&GlobalIndex> {
        let name = name.to_ascii_lowercase();
        self.global_indexes.iter().find(|g| g.name == name)
    }
}

/// A logical database.
#[derive(Debug, Clone, Default)]
pub struct DatabaseDef {
    pub name: String,
    pub tables: BTreeMap<String, Arc<TableDef>>,
    /// Index tables of global indexes, by their logical name (`t$g`): not
    /// in SHOW TABLES, but readable like tables by the planner.
    pub index_tables: BTreeMap<String, Arc<TableDef>>,
    /// Views, by lower-case name.
    pub views: BTreeMap<String, Arc<ViewDef>>,
    /// What `ANALYZE TABLE` recorded, by table name.
    pub statistics: BTreeMap<String, statistics::TableStats>,
}

/// A view: a stored SELECT the CN expands in place of the view's name
/// (MySQL's MERGE algorithm; PolarDB-X keeps views in its metadb the same
/// way). It exists only in the metadb, never on the DNs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewDef {
    pub db: String,
    /// Lower-case name.
    pub name: String,
    /// The column list given in `CREATE VIEW v (a, b)`, else empty.
    pub columns: Vec<String>,
    /// The SELECT as the CN prints it (sqlparser's form), with table names
    /// qualified by the view's database.
    pub query: String,
}

/// An immutable view of the catalog at one version.
#[derive(Debug, Clone, Default)]
pub struct CatalogSnapshot {
    pub version: u64,
    pub databases: BTreeMap<String, DatabaseDef>,
}

impl CatalogSnapshot {
    pub fn database(&self, db: &str) -> Option<&DatabaseDef> {
        self.databases.get(&db.to_ascii_lowercase())
    }
    /// A table, or the index table of a global index, by logical name.
    pub fn table(&self, db: &str, table: &str) -> Option<&Arc<TableDef>> {
        let d = self.database(db)?;
        let name = table.to_ascii_lowercase();
        d.tables.get(&name).or_else(|| d.index_tables.get(&name))
    }
    /// The statistics `ANALYZE TABLE` recorded for a table, if any.
    pub fn statistics(&self, db: &str, table: &str) -> Option<&statistics::TableStats> {
        self.database(db)?.statistics.get(&table.to_ascii_lowercase())
    }
    /// A user table (not an index table).
    pub fn base_table(&self, db: &str, table: &str) -> Option<&Arc<TableDef>> {
        self.database(db)?.tables.get(&table.to_ascii_lowercase())
    }
    /// A view by name.
    pub fn view(&self, db: &str, name: &str) -> Option<&Arc<ViewDef>> {
        self.database(db)?.views.get(&name.to_ascii_lowercase())
    }
    /// Whether a table (or index table) or a view has this name: tables and
    /// views share one namespace, as in MySQL (1050 for a second one).
    pub fn name_taken(&self, db: &str, name: &str) -> bool {
        self.table(db, name).is_some() || self.view(db, name).is_some()
    }
}

/// The CN's cached catalog; readers take a cheap `Arc` snapshot.
#[derive(Debug, Default)]
pub struct Catalog {
    current: RwLock<Arc<CatalogSnapshot>>,
}

impl Catalog {
    pub fn snapshot(&self) -> Arc<CatalogSnapshot> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
    /// Installs `snap` unless a newer version is installed already (a slow
    /// reload must not bring back a catalog a DDL has replaced).
    pub fn install(&self, snap: CatalogSnapshot) {
        let mut cur = self.current.write().unwrap_or_else(|e| e.into_inner());
        if snap.version >= cur.version {
            *cur = Arc::new(snap);
        }
    }
}

/// The table group a table with this partitioning belongs to: tables with
/// equal names here are co-located partition by partition.
pub fn table_group_name(p: &Partitioning, key_kinds: &[TypeKind]) -> String {
    let kinds: Vec<String> = key_kinds
        .iter()
        .map(|k| match k {
            TypeKind::Int { .. } => "int".to_string(),
            TypeKind::Decimal { precision, scale } => format!("dec{precision}_{scale}"),
            other => format!("{other:?}").to_ascii_lowercase(),
        })
        .collect();
    match p {
        Partitioning::Hash { count, function, .. } => format!("tg_{function}_{}_{count}", kinds.join("_")),
        Partitioning::Broadcast => "broadcast_tg".into(),
        Partitioning::Single => "single_tg".into(),
        Partitioning::Range { bounds, .. } => {
            format!("tg_range_{}_{}", kinds.join("_"), bounds.len())
        }
        Partitioning::List { values, .. } => {
            format!("tg_list_{}_{}", kinds.join("_"), values.len())
        }
    }
}
