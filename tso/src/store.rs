//! Durable storage of the oracle's upper bound: the physical millisecond
//! below which every timestamp handed out so far lies.
//!
//! [`FileStore`] keeps it in a data directory (one process, or the local copy
//! of an HA member); `election::MetadbStore` keeps it in the metadb's lease
//! row so that a new leader starts above its predecessor.

use crate::error::{Result, TsoError};
use async_trait::async_trait;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where the upper bound lives.
#[async_trait]
pub trait BoundStore: Send + Sync + 'static {
    /// The persisted bound in milliseconds (0 for a fresh store).
    async fn load(&self) -> Result<u64>;
    /// Durably records `bound_ms`; returns only once it would survive a crash.
    async fn save(&self, bound_ms: u64) -> Result<()>;
}

/// File holding the bound: one line `tso-bound v1 <ms> <crc32 hex>`.
pub const BOUND_FILE: &str = "tso-bound";
/// File written when a data directory is initialized: with it present, a
/// missing bound file means lost data, not a fresh start.
pub const MARKER_FILE: &str = "tso-initialized";

/// The bound in a file of a data directory, replaced atomically (write a
/// temporary file, fsync, rename, fsync the directory).
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    /// Opens `dir`, initializing it when it is missing or empty. A directory
    /// that was initialized but has no bound file, or holds a corrupt one, or
    /// holds other files only, is refused with [`TsoError::DataDir`].
    pub fn open(dir: &Path) -> Result<FileStore> {
        let err = |msg: String| TsoError::DataDir { dir: dir.to_path_buf(), msg };
        std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create: {e}")))?;
        let store = FileStore { dir: dir.to_path_buf() };
        let bound = dir.join(BOUND_FILE);
        if bound.exists() {
            store.read()?;
            return Ok(store);
        }
        let entries: Vec<String> = std::fs::read_dir(dir)
            .map_err(|e| err(format!("cannot list: {e}")))?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        if entries.iter().any(|e| e == MARKER_FILE) {
            return Err(err(format!(
                "{BOUND_FILE} is missing from an initialized directory; refusing to start, because timestamps \
                 handed out before could be handed out again. Restore the file from a backup (or, knowing \
                 that no client holds timestamps from this TSO, start on an empty directory)"
            )));
        }
        if !entries.is_empty() {
            return Err(err(format!(
                "not a TSO data directory (it holds {} but no {BOUND_FILE}); give an empty or new directory",
                entries.join(", ")
            )));
        }
        store.write_file(MARKER_FILE, "tso data directory\n")?;
        store.write_bound(0)?;
        Ok(store)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn line(bound_ms: u64) -> String {
        let body = format!("tso-bound v1 {bound_ms}");
        format!("{body} {:08x}\n", crc32fast::hash(body.as_bytes()))
    }

    fn read(&self) -> Result<u64> {
        let path = self.dir.join(BOUND_FILE);
        let corrupt = |why: &str| TsoError::DataDir {
            dir: self.dir.clone(),
            msg: format!(
                "{BOUND_FILE} is corrupt ({why}); refusing to start rather than risk handing out old \
                 timestamps. Restore it from a backup"
            ),
        };
        let text = std::fs::read_to_string(&path).map_err(|e| corrupt(&e.to_string()))?;
        let line = text.strip_suffix('\n').ok_or_else(|| corrupt("no final newline: a torn write"))?;
        let (body, crc) = line.rsplit_once(' ').ok_or_else(|| corrupt("no checksum"))?;
        let crc = u32::from_str_radix(crc, 16).map_err(|_| corrupt("bad checksum field"))?;
        if crc != crc32fast::hash(body.as_bytes()) {
            return Err(corrupt("checksum mismatch"));
        }
        body.strip_prefix("tso-bound v1 ").and_then(|ms| ms.parse().ok()).ok_or_else(|| corrupt("unknown format"))
    }

    fn write_file(&self, name: &str, contents: &str) -> Result<()> {
        let io = |e: std::io::Error| TsoError::Storage(format!("writing {}: {e}", self.dir.join(name).display()));
        let tmp = self.dir.join(format!("{name}.tmp"));
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(contents.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        std::fs::rename(&tmp, self.dir.join(name)).map_err(io)?;
        std::fs::File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io)
    }

    fn write_bound(&self, bound_ms: u64) -> Result<()> {
        self.write_file(BOUND_FILE, &Self::line(bound_ms))
    }
}

#[async_trait]
impl BoundStore for FileStore {
    async fn load(&self) -> Result<u64> {
        let s = self.clone();
        tokio::task::spawn_blocking(move || s.read()).await.map_err(|e| TsoError::Storage(e.to_string()))?
    }

    async fn save(&self, bound_ms: u64) -> Result<()> {
        let s = self.clone();
        tokio::task::spawn_blocking(move || s.write_bound(bound_ms))
            .await
            .map_err(|e| TsoError::Storage(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_and_refusals() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("tso");
        let s = FileStore::open(&dir).unwrap();
        assert_eq!(s.load().await.unwrap(), 0);
        s.save(1_700_000_003_000).await.unwrap();
        assert_eq!(FileStore::open(&dir).unwrap().load().await.unwrap(), 1_700_000_003_000);

        // A flipped digit fails the checksum.
        let text = std::fs::read_to_string(dir.join(BOUND_FILE)).unwrap();
        std::fs::write(dir.join(BOUND_FILE), text.replacen("17", "18", 1)).unwrap();
        let e = FileStore::open(&dir).unwrap_err().to_string();
        assert!(e.contains("corrupt") && e.contains("checksum"), "{e}");

        // A missing bound in an initialized directory is refused.
        std::fs::remove_file(dir.join(BOUND_FILE)).unwrap();
        let e = FileStore::open(&dir).unwrap_err().to_string();
        assert!(e.contains("missing"), "{e}");

        // A directory with foreign files is refused.
        let other = d.path().join("other");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("x"), "y").unwrap();
        assert!(FileStore::open(&other).unwrap_err().to_string().contains("not a TSO data directory"));
    }
}
