//! The state every handler shares: the store, the blobs, the key material, the settings, and
//! the process memory that serves them (caches, the batch of contacts, the legacy rate
//! windows). It only holds and hands out; what is done with it is decided above it.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::blobs::{BlobStore, LocalBlobStore};
use crate::config::Config;
use crate::store::{SqliteStore, Store, StoreError};
use crate::tokens::{Secret, TokenKind};
use crate::trust::{LegacyKey, Trust};

mod auth_limits;
mod caches;
mod seen;
mod windows;

pub(crate) use auth_limits::{AuthFailures, RequestFailures};
pub(crate) use caches::{CachedChunk, ChunkCache, HotCache, MAX_CACHED_BLOB};
pub use seen::SeenBatcher;
pub(crate) use windows::LegacyWindows;

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
    Store(#[from] StoreError),
    /// The key material could not be loaded.
    #[error("{0}")]
    Trust(#[from] crate::trust::TrustError),
    /// A setting is invalid.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
}

/// Shared handler state. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    config: Config,
    store: Arc<dyn Store>,
    blobs: Arc<dyn BlobStore>,
    trust: Option<Trust>,
    legacy: Option<LegacyKey>,
    seen: SeenBatcher,
    legacy_windows: LegacyWindows,
    auth_failures: AuthFailures,
    legacy_failures: RequestFailures,
    upload_permits: Arc<tokio::sync::Semaphore>,
    chunk_cache: ChunkCache,
    hot: HotCache,
    metrics: PrometheusHandle,
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
        let state = Self::from_parts(config, Arc::new(store), Arc::new(blobs), trust, legacy);
        state.load_root_chain().await?;
        Ok(state)
    }

    /// Joins the root record the server was started with to the chain the store holds (see
    /// docs/SECURITY.md, "Key ceremony"): the first start stores it; a start with the next
    /// version of the stored newest appends it; a start with a stored version keeps the newer
    /// ones published since. Anything else (a gap, a record that does not verify as the next
    /// version, other bytes under a stored version, a newest root that does not list the
    /// status key) refuses to start. [`AppState::open`] calls it; so must whoever assembles a
    /// state with [`AppState::from_parts`] and serves it.
    pub async fn load_root_chain(&self) -> Result<(), StartError> {
        let Some(trust) = self.trust() else {
            return Ok(());
        };
        let stored = self.store().root_records().await?;
        let configured = trust.chain().newest().clone();
        let version = configured.version();
        let broken = |message: String| {
            StartError::Trust(crate::trust::TrustError::Root {
                path: self.0.config.root.clone().unwrap_or_default(),
                message,
            })
        };
        let stored_newest = stored.last().map_or(0, |r| r.version);
        match stored.iter().find(|r| r.version == version) {
            Some(held) if held.record != configured.as_bytes() => {
                return Err(broken(format!(
                    "root version {version} differs from the version {version} this server \
                     stored before"
                )));
            }
            Some(_) => {}
            None if stored.is_empty() || version == stored_newest.saturating_add(1) => {
                if let Some(last) = stored.last() {
                    let trusted = fota_protocol::v2::RootRecord::verify_initial(&last.record)
                        .map_err(|e| broken(format!("stored root v{}: {e}", last.version)))?;
                    fota_protocol::v2::RootRecord::verify_update(&trusted, configured.as_bytes())
                        .map_err(|e| {
                        broken(format!(
                            "root version {version} is not the next version of the stored \
                                 version {stored_newest}: {e}"
                        ))
                    })?;
                }
                self.store()
                    .add_root_record(
                        &crate::store::StoredRoot {
                            version,
                            record: configured.as_bytes().to_vec(),
                            published_at: crate::clock::now_ms(),
                            published_by: "server".into(),
                        },
                        None,
                    )
                    .await?;
            }
            None => {
                return Err(broken(format!(
                    "root version {version} cannot be joined to the stored chain (versions up to \
                     {stored_newest}): start with the stored root.bin, or publish the versions \
                     in between with `fota root publish`"
                )));
            }
        }
        let records: Vec<Vec<u8>> = self
            .store()
            .root_records()
            .await?
            .into_iter()
            .map(|r| r.record)
            .collect();
        trust.replace_chain(&records)?;
        Ok(())
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
            legacy_windows: LegacyWindows::default(),
            auth_failures: AuthFailures::default(),
            legacy_failures: RequestFailures::default(),
            upload_permits: Arc::new(tokio::sync::Semaphore::new(
                usize::try_from(config.limits.concurrent_uploads)
                    .unwrap_or(usize::MAX)
                    .min(tokio::sync::Semaphore::MAX_PERMITS),
            )),
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

    /// The legacy PSK, if the legacy API is on.
    pub(crate) fn legacy_key(&self) -> Option<&LegacyKey> {
        self.0.legacy.as_ref()
    }

    /// Contacts noted for the next batched write.
    pub(crate) fn seen(&self) -> &SeenBatcher {
        &self.0.seen
    }

    /// The legacy rate windows and audit throttles.
    pub(crate) fn legacy_windows(&self) -> &LegacyWindows {
        &self.0.legacy_windows
    }

    /// Failed authentications, for the brute-force limit.
    pub(crate) fn auth_failures(&self) -> &AuthFailures {
        &self.0.auth_failures
    }

    /// Refused legacy device requests, for the legacy limit.
    pub(crate) fn legacy_failures(&self) -> &RequestFailures {
        &self.0.legacy_failures
    }

    /// One permit per upload being received (`limits.concurrent_uploads`).
    pub(crate) fn upload_permits(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.0.upload_permits
    }

    /// Built legacy chunk answers.
    pub(crate) fn chunk_cache(&self) -> &ChunkCache {
        &self.0.chunk_cache
    }

    /// Short-lived copies of the download paths' reads.
    pub(crate) fn hot(&self) -> &HotCache {
        &self.0.hot
    }

    /// The Prometheus recorder's handle, for `/metrics`.
    pub(crate) fn metrics(&self) -> &PrometheusHandle {
        &self.0.metrics
    }

    /// Sets up the bootstrap admin token. With `token` (the CLI passes `FOTA_ADMIN_TOKEN`,
    /// taken verbatim) that token becomes the `bootstrap` admin token. Without it, a token is
    /// generated when the store has none at all, and returned so the caller can show it once;
    /// `None` otherwise.
    pub async fn bootstrap_admin(&self, token: Option<&str>) -> Result<Option<Secret>, StoreError> {
        match token {
            Some(token) => {
                let secret = Secret::new(token);
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
                let secret = crate::tokens::generate(TokenKind::Operator);
                let created = self
                    .0
                    .store
                    .ensure_bootstrap_token(&secret.digest().0, false)
                    .await?;
                Ok(created.then_some(secret))
            }
        }
    }
}
