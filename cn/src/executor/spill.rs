//! Spill files of the CN's own operators (the hybrid hash join, the shard
//! scans' buffers): Arrow IPC stream files in the query's DataFusion
//! `DiskManager` (the CN's spill directory, bounded by `spill-quota`),
//! compressed with the session's `spill_compression`, read back with
//! DataFusion's `SpillManager` (the format of DataFusion's own spill
//! files), and removed when the last reference to them is dropped.

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use datafusion::arrow::ipc::CompressionType;
use datafusion::common::config::SpillCompression;
use datafusion::error::Result;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::spill_file::SpillWriter;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::metrics::SpillMetrics;
use datafusion::physical_plan::spill::SpillManager;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use std::sync::Arc;

/// A spill file of the execution's disk manager (removed when dropped).
pub type SpillFile = Arc<dyn datafusion::execution::spill_file::SpillFile>;

/// A spill file being written, through the disk manager's writer (which
/// counts the bytes against the spill quota).
pub struct SpillOut {
    file: SpillFile,
    writer: StreamWriter<Box<dyn SpillWriter>>,
    batches: usize,
}

impl SpillOut {
    /// Batches written so far.
    pub fn batches(&self) -> usize {
        self.batches
    }
}

/// Creates, writes and reads back the spill files of one operator
/// partition, counting them in its `spill_count`, `spilled_rows` and
/// `spilled_bytes` (compressed bytes on disk) metrics.
pub struct Spiller {
    env: Arc<RuntimeEnv>,
    compression: Option<CompressionType>,
    metrics: SpillMetrics,
    reader: SpillManager,
}

impl Spiller {
    /// Files of batches of `schema`, in `ctx`'s disk manager and codec.
    pub fn new(ctx: &TaskContext, metrics: SpillMetrics, schema: SchemaRef) -> Self {
        let env = ctx.runtime_env();
        let compression = match ctx.session_config().options().execution.spill_compression {
            SpillCompression::Zstd => Some(CompressionType::ZSTD),
            SpillCompression::Lz4Frame => Some(CompressionType::LZ4_FRAME),
            SpillCompression::Uncompressed => None,
        };
        let reader = SpillManager::new(env.clone(), metrics.clone(), schema);
        Spiller { env, compression, metrics, reader }
    }

    /// A new file; `what` names its writer in the disk manager's errors.
    /// Errors: the spill directory or quota.
    pub fn create(&self, what: &str) -> Result<SpillOut> {
        let file = self.env.disk_manager.create_tmp_file(what)?;
        let options = IpcWriteOptions::default().try_with_compression(self.compression)?;
        let writer = StreamWriter::try_new_with_options(file.open_writer()?, self.reader.schema(), options)?;
        self.metrics.spill_file_count.add(1);
        Ok(SpillOut { file, writer, batches: 0 })
    }

    pub fn append(&self, out: &mut SpillOut, batch: &RecordBatch) -> Result<()> {
        out.writer.write(batch)?;
        out.batches += 1;
        self.metrics.spilled_rows.add(batch.num_rows());
        Ok(())
    }

    /// Closes a file for reading.
    pub fn finish(&self, mut out: SpillOut) -> Result<SpillFile> {
        out.writer.finish()?;
        out.writer.get_mut().flush()?;
        out.writer.into_inner()?.finish()?;
        self.metrics.spilled_bytes.add(out.file.size().unwrap_or(0) as usize);
        Ok(out.file)
    }

    /// The batches of a finished file (none for `None`).
    pub fn read(&self, f: &Option<SpillFile>) -> Result<SendableRecordBatchStream> {
        match f {
            Some(f) => self.reader.read_spill_as_stream(f.clone(), None),
            None => Ok(Box::pin(RecordBatchStreamAdapter::new(self.reader.schema().clone(), futures::stream::empty()))),
        }
    }
}
