//! The state every handler shares: store, blobs, keys, settings and small caches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::blobs::{BlobStore, LocalBlobStore};
use crate::config::Config;
use crate::housekeeping::SeenBatcher;
use crate::store::{SqliteStore, Store};
use crate::trust::{LegacyKey, Trust};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The data folder could not be created.
    #[error("data folder {path}: {source}")]
    DataDir {
        /// The folder.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The key material could not be loaded.
    #[error("{0}")]
    Trust(#[from] crate::trust::TrustError),
    /// A setting is invalid.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
}

/// Shared handler state. Cheap to clone.
#[derive(Clone)]
pub struct AppState(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) blobs: Arc<dyn BlobStore>,
    pub(crate) trust: Option<Trust>,
    pub(crate) legacy: Option<LegacyKey>,
    pub(crate) seen: SeenBatcher,
    pub(crate) legacy_guard: crate::legacy_guard::LegacyGuard,
    pub(crate) chunk_cache: ChunkCache,
    pub(crate) hot: HotCache,
    pub(crate) metrics: PrometheusHandle,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("data", &self.0.config.data)
            .field("v2", &self.0.trust.is_some())
            .field("legacy", &self.0.legacy.is_some())
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Opens the data folder (database with migrations, blob folder) and loads the keys the
    /// settings name. An encrypted status key is decrypted with `key_passphrase`; the library
    /// never looks for one in the environment (the `fota` CLI passes `FOTA_KEY_PASSPHRASE`).
    pub async fn open(config: Config, key_passphrase: Option<&str>) -> Result<Self, StartError> {
        config.validate()?;
        std::fs::create_dir_all(&config.data).map_err(|source| StartError::DataDir {
            path: config.data.clone(),
            source,
        })?;
        let blobs =
            LocalBlobStore::open(config.blob_dir()).map_err(|source| StartError::DataDir {
                path: config.blob_dir(),
                source,
            })?;
        let store = SqliteStore::open(&config.db_path()).await?;
        let trust = Trust::load(&config, key_passphrase)?;
        let legacy = LegacyKey::load(&config)?;
        Ok(Self::from_parts(
            config,
            Arc::new(store),
            Arc::new(blobs),
            trust,
            legacy,
        ))
    }

    /// Assembles a state from parts (tests, other stores).
    pub fn from_parts(
        config: Config,
        store: Arc<dyn Store>,
        blobs: Arc<dyn BlobStore>,
        trust: Option<Trust>,
        legacy: Option<LegacyKey>,
    ) -> Self {
        Self(Arc::new(Inner {
            seen: SeenBatcher::default(),
            legacy_guard: Default::default(),
            chunk_cache: ChunkCache::new(64 * 1024 * 1024),
            hot: HotCache::default(),
            metrics: crate::metrics::handle(),
            config,
            store,
            blobs,
            trust,
            legacy,
        }))
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.0.config
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.0.store
    }

    /// The blob store.
    pub fn blobs(&self) -> &Arc<dyn BlobStore> {
        &self.0.blobs
    }

    /// The v2 key material, if configured.
    pub fn trust(&self) -> Option<&Trust> {
        self.0.trust.as_ref()
    }

    /// Whether the legacy API is on.
    pub fn legacy_enabled(&self) -> bool {
        self.0.legacy.is_some()
    }

    /// Sets up the bootstrap admin token. With `from_env` (`FOTA_ADMIN_TOKEN`, taken verbatim)
    /// that token becomes the `bootstrap` admin token. Without it, a token is generated when the
    /// store has none at all, and returned so the caller can show it once; `None` otherwise.
    pub async fn bootstrap_admin(
        &self,
        from_env: Option<&str>,
    ) -> Result<Option<crate::tokens::Secret>, crate::store::StoreError> {
        match from_env {
            Some(token) => {
                let secret = crate::tokens::Secret::new(token);
                self.0
                    .store
                    .ensure_bootstrap_token(&secret.digest().0, true)
                    .await?;
                // A revoked token stays revoked, even when named again: it may have been
                // revoked because it leaked. Say how to get back in instead.
                let found = self.0.store.api_token_by_digest(&secret.digest().0).await?;
                if found.is_some_and(|f| f.token.revoked_at.is_some()) {
                    tracing::warn!(
                        "FOTA_ADMIN_TOKEN names a revoked token, which stays revoked; make a \
                         fresh admin token with `fota server admin-token --data DIR` on this \
                         machine"
                    );
                }
                Ok(None)
            }
            None => {
                let secret = crate::tokens::generate(crate::tokens::TokenKind::Operator);
                let created = self
                    .0
                    .store
                    .ensure_bootstrap_token(&secret.digest().0, false)
                    .await?;
                Ok(created.then_some(secret))
            }
        }
    }

    /// Writes batched last-seen times now (also done periodically and at shutdown).
    pub async fn flush_seen(&self) -> Result<(), crate::store::StoreError> {
        let applied = self
            .0
            .seen
            .flush(self.0.store.as_ref(), self.0.config.legacy.max_devices)
            .await?;
        for id in &applied.not_created {
            crate::legacy_guard::not_recorded(
                self,
                id,
                None,
                crate::legacy_guard::NotRecorded::MaxDevices,
            )
            .await;
        }
        Ok(())
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

type ChunkMap = HashMap<(i64, u64), Bytes>;

impl ChunkCache {
    fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            inner: Mutex::new((HashMap::new(), 0)),
        }
    }

    pub(crate) fn get(&self, key: (i64, u64)) -> Option<Bytes> {
        let guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        guard.0.get(&key).cloned()
    }

    pub(crate) fn insert(&self, key: (i64, u64), body: Bytes) {
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
pub(crate) type Grant = (String, Vec<u8>, Option<crate::store::Millis>, bool);

type GrantMap = HashMap<([u8; 32], String), (std::time::Instant, Grant)>;

/// Device id → its protocol, or `None` for no such device.
type ProtocolMap = HashMap<String, (std::time::Instant, Option<fota_api::Protocol>)>;

/// Short-lived copies of the reads behind the two download paths (legacy chunks, v2 ranged
/// blob reads), which would otherwise cost a database round trip per request. See [`HOT_TTL`].
#[derive(Default)]
pub(crate) struct HotCache {
    legacy_latest: Mutex<Option<(std::time::Instant, Option<crate::store::LegacyRelease>)>>,
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
    pub(crate) fn legacy_latest(&self) -> Option<Option<crate::store::LegacyRelease>> {
        let guard = self.legacy_latest.lock().unwrap_or_else(|e| e.into_inner());
        guard
            .as_ref()
            .filter(|(at, _)| at.elapsed() < HOT_TTL)
            .map(|(_, r)| r.clone())
    }

    pub(crate) fn set_legacy_latest(&self, r: Option<crate::store::LegacyRelease>) {
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
