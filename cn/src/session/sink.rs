//! Where a statement's results go: the client connection, or a buffer.

use crate::error::Result;
use crate::protocol::resultset::{ColumnDef, TextRow};
use async_trait::async_trait;

/// Receives the results of one statement. A result set is `columns`, any
/// number of `row`s, then `end_rows`; a statement without rows calls `ok`.
#[async_trait]
pub trait ResultSink: Send {
    async fn columns(&mut self, cols: &[ColumnDef]) -> Result<()>;
    async fn row(&mut self, row: &[Option<Vec<u8>>]) -> Result<()>;
    async fn end_rows(&mut self) -> Result<()>;
    async fn ok(&mut self, affected: u64, last_insert_id: u64, info: &str) -> Result<()>;
    /// LOAD DATA LOCAL INFILE: asks the client for the file `name`; its
    /// bytes then come from [`ResultSink::infile_chunk`]. Errors: 1148 where
    /// there is no client that allows local files (the default).
    async fn infile_request(&mut self, _name: &str) -> Result<()> {
        Err(crate::error::CnError::mysql(
            crate::error::code::ER_NOT_ALLOWED_COMMAND,
            "The used command is not allowed with this MariaDB version",
        ))
    }
    /// The next piece of the requested file; `None` at its end (the client
    /// may send nothing: it refused the file).
    async fn infile_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
}

/// A sink that keeps everything in memory (tests, internal statements).
#[derive(Debug, Default)]
pub struct CollectSink {
    pub columns: Vec<ColumnDef>,
    pub rows: Vec<TextRow>,
    pub affected: u64,
    pub last_insert_id: u64,
    pub info: String,
}

#[async_trait]
impl ResultSink for CollectSink {
    async fn columns(&mut self, cols: &[ColumnDef]) -> Result<()> {
        self.columns = cols.to_vec();
        Ok(())
    }
    async fn row(&mut self, row: &[Option<Vec<u8>>]) -> Result<()> {
        self.rows.push(row.to_vec());
        Ok(())
    }
    async fn end_rows(&mut self) -> Result<()> {
        Ok(())
    }
    async fn ok(&mut self, affected: u64, last_insert_id: u64, info: &str) -> Result<()> {
        self.affected = affected;
        self.last_insert_id = last_insert_id;
        self.info = info.to_string();
        Ok(())
    }
}

/// Passes a result set on with one more row first (EXPLAIN's line for a
/// choice the CN made before DataFusion planned).
pub struct PrefixSink<'a> {
    pub inner: &'a mut dyn ResultSink,
    pub first: Option<TextRow>,
}

#[async_trait]
impl ResultSink for PrefixSink<'_> {
    async fn columns(&mut self, cols: &[ColumnDef]) -> Result<()> {
        self.inner.columns(cols).await?;
        if let Some(r) = self.first.take() {
            self.inner.row(&r).await?;
        }
        Ok(())
    }
    async fn row(&mut self, row: &[Option<Vec<u8>>]) -> Result<()> {
        self.inner.row(row).await
    }
    async fn end_rows(&mut self) -> Result<()> {
        self.inner.end_rows().await
    }
    async fn ok(&mut self, affected: u64, last_insert_id: u64, info: &str) -> Result<()> {
        self.inner.ok(affected, last_insert_id, info).await
    }
}

/// Passes everything on and counts the rows (`FOUND_ROWS()`).
pub struct CountSink<'a> {
    pub inner: &'a mut dyn ResultSink,
    pub rows: u64,
}

#[async_trait]
impl ResultSink for CountSink<'_> {
    async fn columns(&mut self, cols: &[ColumnDef]) -> Result<()> {
        self.inner.columns(cols).await
    }
    async fn row(&mut self, row: &[Option<Vec<u8>>]) -> Result<()> {
        self.rows += 1;
        self.inner.row(row).await
    }
    async fn end_rows(&mut self) -> Result<()> {
        self.inner.end_rows().await
    }
    async fn ok(&mut self, affected: u64, last_insert_id: u64, info: &str) -> Result<()> {
        self.inner.ok(affected, last_insert_id, info).await
    }
    async fn infile_request(&mut self, name: &str) -> Result<()> {
        self.inner.infile_request(name).await
    }
    async fn infile_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        self.inner.infile_chunk().await
    }
}

/// Sends a whole in-memory result set to a sink.
pub async fn send_rows(sink: &mut dyn ResultSink, cols: &[ColumnDef], rows: Vec<Vec<Option<String>>>) -> Result<()> {
    sink.columns(cols).await?;
    for r in rows {
        let r: TextRow = r.into_iter().map(|v| v.map(String::into_bytes)).collect();
        sink.row(&r).await?;
    }
    sink.end_rows().await
}
