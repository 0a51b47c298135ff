//! Process memory that only saves database reads: built legacy chunk answers and short-lived
//! copies of the reads behind the two download paths. Everything here is derived from the
//! store or from immutable blobs, so losing it (a restart, another process) costs only reads.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;

use crate::store::{LegacyRelease, Millis};

/// A cached legacy chunk answer.
#[derive(Clone)]
pub(crate) enum CachedChunk {
    /// Fleet key: the whole answer, its MAC included, the same for every device.
    Sealed(Bytes),
    /// Per-device keys: the answer up to its MAC (`{"chunk_number":N,"data":"…","mac":"`),
    /// shared by every device, and the chunk's bytes, which each request MACs with the key
    /// of the device it names.
    Open {
        /// The answer's bytes before the MAC's digits.
        head: Bytes,
        /// The chunk.
        raw: Bytes,
    },
}

impl CachedChunk {
    fn len(&self) -> usize {
        match self {
            Self::Sealed(body) => body.len(),
            Self::Open { head, raw } => head.len() + raw.len(),
        }
    }
}

/// Built legacy chunk answers, keyed by (legacy release id, chunk number).
///
/// Legacy releases never change once stored, so a cached body is valid for as long as the
/// release exists; the cache holds no state of its own.
pub(crate) struct ChunkCache {
    max_bytes: usize,
    /// The bodies and their total size.
    inner: Mutex<(ChunkMap, usize)>,
}

type ChunkMap = HashMap<(i64, u64), CachedChunk>;

impl ChunkCache {
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            inner: Mutex::new((HashMap::new(), 0)),
        }
    }

    pub(crate) fn get(&self, key: (i64, u64)) -> Option<CachedChunk> {
        let guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        guard.0.get(&key).cloned()
    }

    pub(crate) fn insert(&self, key: (i64, u64), body: CachedChunk) {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if guard.1 + body.len() > self.max_bytes {
            // Only the newest release is served, so dropping everything at once costs one
            // rebuild per chunk of that release; no LRU bookkeeping on the hot path.
            guard.0.clear();
            guard.1 = 0;
        }
        guard.1 += body.len();
        if let Some(old) = guard.0.insert(key, body) {
            guard.1 -= old.len();
        }
    }
}

/// How long a hot-path read may be reused. Changes made through this process invalidate at
/// once; changes made through another process over the same store are seen within this time.
pub(crate) const HOT_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// A blob-download grant: (device id, stored token digest, revoked, offered).
pub(crate) type Grant = (String, Vec<u8>, Option<Millis>, bool);

type GrantMap = HashMap<([u8; 32], String), (std::time::Instant, Grant)>;

/// Device id → its protocol, or `None` for no such device.
type ProtocolMap = HashMap<String, (std::time::Instant, Option<fota_api::Protocol>)>;

/// Short-lived copies of the reads behind the two download paths (legacy chunks, v2 ranged
/// blob reads), which would otherwise cost a database round trip per request. See [`HOT_TTL`].
#[derive(Default)]
pub(crate) struct HotCache {
    legacy_latest: Mutex<Option<(std::time::Instant, Option<LegacyRelease>)>>,
    grants: Mutex<GrantMap>,
    protocols: Mutex<ProtocolMap>,
    sizes: Mutex<HashMap<String, u64>>,
    blobs: Mutex<(HashMap<String, Bytes>, usize)>,
}

/// Most bytes of blob content kept in memory (whole blobs of at most [`MAX_CACHED_BLOB`]).
const BLOB_CACHE_BYTES: usize = 32 * 1024 * 1024;
/// Largest blob kept in memory.
pub(crate) const MAX_CACHED_BLOB: u64 = 4 * 1024 * 1024;

impl HotCache {
    pub(crate) fn legacy_latest(&self) -> Option<Option<LegacyRelease>> {
        let guard = self.legacy_latest.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .as_ref()
            .filter(|(at, _)| at.elapsed() < HOT_TTL)
            .map(|(_, r)| r.clone())
    }

    pub(crate) fn set_legacy_latest(&self, r: Option<LegacyRelease>) {
        *self.legacy_latest.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((std::time::Instant::now(), r));
    }

    pub(crate) fn grant(&self, digest: &[u8; 32], sha: &str) -> Option<Grant> {
        let guard = self.grants.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .get(&(*digest, sha.to_owned()))
            .filter(|(at, _)| at.elapsed() < HOT_TTL)
            .map(|(_, g)| g.clone())
    }

    pub(crate) fn set_grant(&self, digest: &[u8; 32], sha: &str, grant: Grant) {
        let mut guard = self.grants.lock().unwrap_or_else(|e| e.into_inner());
        if guard.len() >= 100_000 {
            guard.clear();
        }
        guard.insert(
            (*digest, sha.to_owned()),
            (std::time::Instant::now(), grant),
        );
    }

    /// The protocol of device `id` as read lately (`Some(None)`: no such device).
    pub(crate) fn protocol(&self, id: &str) -> Option<Option<fota_api::Protocol>> {
        let guard = self.protocols.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .get(id)
            .filter(|(at, _)| at.elapsed() < HOT_TTL)
            .map(|(_, p)| *p)
    }

    pub(crate) fn set_protocol(&self, id: &str, protocol: Option<fota_api::Protocol>) {
        let mut guard = self.protocols.lock().unwrap_or_else(|e| e.into_inner());
        if guard.len() >= 100_000 {
            guard.clear();
        }
        guard.insert(id.to_owned(), (std::time::Instant::now(), protocol));
    }

    /// Blob sizes never change (content-addressed), so they are kept without expiry.
    pub(crate) fn size(&self, sha: &str) -> Option<u64> {
        let guard = self.sizes.lock().unwrap_or_else(|e| e.into_inner());
        guard.get(sha).copied()
    }

    pub(crate) fn set_size(&self, sha: &str, size: u64) {
        let mut guard = self.sizes.lock().unwrap_or_else(|e| e.into_inner());
        if guard.len() >= 100_000 {
            guard.clear();
        }
        guard.insert(sha.to_owned(), size);
    }

    /// A whole blob's bytes, if cached. Blobs are immutable, so they need no expiry.
    pub(crate) fn blob(&self, sha: &str) -> Option<Bytes> {
        let guard = self.blobs.lock().unwrap_or_else(|e| e.into_inner());
        guard.0.get(sha).cloned()
    }

    pub(crate) fn set_blob(&self, sha: &str, bytes: Bytes) {
        let mut guard = self.blobs.lock().unwrap_or_else(|e| e.into_inner());
        if guard.1 + bytes.len() > BLOB_CACHE_BYTES {
            guard.0.clear();
            guard.1 = 0;
        }
        guard.1 += bytes.len();
        if let Some(old) = guard.0.insert(sha.to_owned(), bytes) {
            guard.1 -= old.len();
        }
    }

    /// Forgets everything that depends on operator changes (assignments, credentials,
    /// uploads): called after each such change made through this process.
    pub(crate) fn invalidate(&self) {
        *self.legacy_latest.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.grants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.protocols
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}
