//! Content-addressed blob storage: images and hash lists, named by their SHA-256.
//!
//! A blob is written to a temporary file while its SHA-256 is computed, fsynced, and only
//! after the caller has validated it renamed to `blobs/<aa>/<sha256hex>` (then the folder is
//! fsynced). A crash at any point leaves either no blob or a complete one; leftovers in
//! `blobs/tmp/` and blobs no release references are removed by garbage collection after a
//! grace period (never at once: another server process may be mid-upload on the same folder).

use std::io::{self, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};

/// A blob name: lowercase hex SHA-256. Anything else is rejected before it touches a path.
pub fn is_blob_name(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Where blobs live. One implementation now (a local folder); S3-compatible storage later.
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Starts writing a new blob.
    async fn create(&self) -> io::Result<Box<dyn BlobWriter>>;
    /// Size of a stored blob, `None` if absent.
    async fn size(&self, name: &str) -> io::Result<Option<u64>>;
    /// `len` bytes from `offset` as a stream of chunks.
    async fn read_range(
        &self,
        name: &str,
        offset: u64,
        len: u64,
    ) -> io::Result<BoxStream<'static, io::Result<Bytes>>>;
    /// `len` bytes from `offset` into memory (for small reads: legacy chunks, hash lists).
    async fn read_at(&self, name: &str, offset: u64, len: usize) -> io::Result<Vec<u8>>;
    /// Removes blobs not in `keep` and temporary files, if older than `grace`. Returns how
    /// many files were removed.
    async fn collect_garbage(
        &self,
        keep: &std::collections::HashSet<String>,
        grace: Duration,
    ) -> io::Result<usize>;
}

/// A blob being written.
#[async_trait::async_trait]
pub trait BlobWriter: Send {
    /// Appends bytes.
    async fn write(&mut self, data: &[u8]) -> io::Result<()>;
    /// Bytes written so far.
    fn written(&self) -> u64;
    /// Ends writing: the data is on disk (fsynced) but not yet visible under its name.
    async fn finish(self: Box<Self>) -> io::Result<Box<dyn PendingBlob>>;
}

/// A complete blob not yet published. Dropping it deletes it.
#[async_trait::async_trait]
pub trait PendingBlob: Send + Sync {
    /// Its SHA-256, lowercase hex.
    fn sha256(&self) -> &str;
    /// Its size.
    fn size(&self) -> u64;
    /// Reads it whole (for validation; callers bound the size).
    async fn read_all(&self) -> io::Result<Vec<u8>>;
    /// Makes it visible under its name.
    async fn publish(self: Box<Self>) -> io::Result<()>;
}

/// Blobs in a local folder (`DATA/blobs`).
#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    root: PathBuf,
}

impl LocalBlobStore {
    /// Uses (and creates) the folder `root`.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(root.join("tmp"))?;
        Ok(Self { root })
    }

    fn path_of(&self, name: &str) -> io::Result<PathBuf> {
        if !is_blob_name(name) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad blob name"));
        }
        Ok(self.root.join(&name[..2]).join(name))
    }
}

async fn fsync_dir(dir: &Path) -> io::Result<()> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all())
        .await
        .map_err(io::Error::other)?
}

#[async_trait::async_trait]
impl BlobStore for LocalBlobStore {
    async fn create(&self) -> io::Result<Box<dyn BlobWriter>> {
        let mut raw = [0u8; 16];
        rand::fill(&mut raw);
        let path = self.root.join("tmp").join(hex::encode(raw));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await?;
        Ok(Box::new(LocalWriter {
            file: Some(tokio::io::BufWriter::with_capacity(256 * 1024, file)),
            guard: TempGuard(Some(path)),
            hasher: Sha256::new(),
            written: 0,
            root: self.root.clone(),
        }))
    }

    async fn size(&self, name: &str) -> io::Result<Option<u64>> {
        match tokio::fs::metadata(self.path_of(name)?).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn read_range(
        &self,
        name: &str,
        offset: u64,
        len: u64,
    ) -> io::Result<BoxStream<'static, io::Result<Bytes>>> {
        let mut file = tokio::fs::File::open(self.path_of(name)?).await?;
        file.seek(SeekFrom::Start(offset)).await?;
        let reader = file.take(len);
        Ok(tokio_util::io::ReaderStream::with_capacity(reader, 64 * 1024).boxed())
    }

    async fn read_at(&self, name: &str, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        // One trip to the blocking pool for open + positional read, instead of one per step.
        let path = self.path_of(name)?;
        tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt as _;
            let file = std::fs::File::open(path)?;
            let mut buf = vec![0u8; len];
            file.read_exact_at(&mut buf, offset)?;
            Ok(buf)
        })
        .await
        .map_err(io::Error::other)?
    }

    async fn collect_garbage(
        &self,
        keep: &std::collections::HashSet<String>,
        grace: Duration,
    ) -> io::Result<usize> {
        let root = self.root.clone();
        let keep = keep.clone();
        tokio::task::spawn_blocking(move || gc_blocking(&root, &keep, grace))
            .await
            .map_err(io::Error::other)?
    }
}

fn gc_blocking(
    root: &Path,
    keep: &std::collections::HashSet<String>,
    grace: Duration,
) -> io::Result<usize> {
    let now = SystemTime::now();
    let old_enough = |meta: &std::fs::Metadata| {
        meta.modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age >= grace)
    };
    let mut removed = 0;
    for dir in std::fs::read_dir(root)? {
        let dir = dir?;
        let dir_name = dir.file_name();
        let dir_name = dir_name.to_string_lossy();
        if !dir.file_type()?.is_dir() {
            continue;
        }
        let is_tmp = dir_name == "tmp";
        let is_fanout = dir_name.len() == 2 && is_blob_name(&format!("{dir_name:0<64}"));
        if !(is_tmp || is_fanout) {
            continue;
        }
        for entry in std::fs::read_dir(dir.path())? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let referenced = !is_tmp && keep.contains(&name);
            if referenced || !old_enough(&entry.metadata()?) {
                continue;
            }
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(removed)
}

/// Removes a temporary file unless disarmed.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

struct LocalWriter {
    file: Option<tokio::io::BufWriter<tokio::fs::File>>,
    guard: TempGuard,
    hasher: Sha256,
    written: u64,
    root: PathBuf,
}

#[async_trait::async_trait]
impl BlobWriter for LocalWriter {
    async fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("writer finished"))?;
        file.write_all(data).await?;
        self.hasher.update(data);
        self.written += data.len() as u64;
        Ok(())
    }

    fn written(&self) -> u64 {
        self.written
    }

    async fn finish(mut self: Box<Self>) -> io::Result<Box<dyn PendingBlob>> {
        let mut file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("writer finished"))?;
        file.flush().await?;
        file.get_mut().sync_all().await?;
        let sha256 = hex::encode(self.hasher.clone().finalize());
        Ok(Box::new(LocalPending {
            guard: TempGuard(self.guard.0.take()),
            sha256,
            size: self.written,
            root: self.root.clone(),
        }))
    }
}

struct LocalPending {
    guard: TempGuard,
    sha256: String,
    size: u64,
    root: PathBuf,
}

#[async_trait::async_trait]
impl PendingBlob for LocalPending {
    fn sha256(&self) -> &str {
        &self.sha256
    }

    fn size(&self) -> u64 {
        self.size
    }

    async fn read_all(&self) -> io::Result<Vec<u8>> {
        let path = self
            .guard
            .0
            .as_ref()
            .ok_or_else(|| io::Error::other("blob gone"))?;
        tokio::fs::read(path).await
    }

    async fn publish(mut self: Box<Self>) -> io::Result<()> {
        let dir = self.root.join(&self.sha256[..2]);
        tokio::fs::create_dir_all(&dir).await?;
        let target = dir.join(&self.sha256);
        let temp = self
            .guard
            .0
            .take()
            .ok_or_else(|| io::Error::other("blob gone"))?;
        let renamed = tokio::fs::rename(&temp, &target).await;
        if renamed.is_err() {
            let _ = tokio::fs::remove_file(&temp).await;
        }
        renamed?;
        fsync_dir(&dir).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn write_publish_read_and_collect() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).unwrap();
        let mut w = store.create().await.unwrap();
        w.write(b"hello ").await.unwrap();
        w.write(b"world").await.unwrap();
        let pending = w.finish().await.unwrap();
        let name = pending.sha256().to_owned();
        assert_eq!(name, hex::encode(Sha256::digest(b"hello world")));
        assert_eq!(
            store.size(&name).await.unwrap(),
            None,
            "not visible before publish"
        );
        assert_eq!(pending.read_all().await.unwrap(), b"hello world");
        pending.publish().await.unwrap();
        assert_eq!(store.size(&name).await.unwrap(), Some(11));
        assert_eq!(store.read_at(&name, 6, 5).await.unwrap(), b"world");
        let parts: Vec<_> = store
            .read_range(&name, 2, 3)
            .await
            .unwrap()
            .collect::<Vec<_>>()
            .await;
        assert_eq!(parts.len(), 1);
        assert_eq!(&parts[0].as_ref().unwrap()[..], b"llo");

        // referenced blobs stay, unreferenced ones go only after the grace period
        let keep = std::collections::HashSet::from([name.clone()]);
        assert_eq!(
            store.collect_garbage(&keep, Duration::ZERO).await.unwrap(),
            0
        );
        let none = std::collections::HashSet::new();
        assert_eq!(
            store
                .collect_garbage(&none, Duration::from_secs(3600))
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            store.collect_garbage(&none, Duration::ZERO).await.unwrap(),
            1
        );
        assert_eq!(store.size(&name).await.unwrap(), None);
    }

    #[tokio::test]
    async fn dropped_writers_and_pending_blobs_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::open(dir.path()).unwrap();
        let mut w = store.create().await.unwrap();
        w.write(b"abc").await.unwrap();
        drop(w);
        let mut w = store.create().await.unwrap();
        w.write(b"abc").await.unwrap();
        let pending = w.finish().await.unwrap();
        drop(pending);
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn blob_names() {
        assert!(is_blob_name(&"a".repeat(64)));
        assert!(!is_blob_name(&"A".repeat(64)));
        assert!(!is_blob_name("../../etc/passwd"));
        assert!(!is_blob_name(&"a".repeat(63)));
    }
}
