//! A signed release: checked completely against the root record before anything of it
//! becomes visible, then stored (blobs first, then the row, with its audit record).

use fota_api::{AuditEntry, Release};
use fota_protocol::esp::image::{self as esp_image, VerifyOptions};
use fota_protocol::v2::{self, Manifest, PayloadFormat};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::blobs::PendingBlob;
use crate::clock::{now_ms, unix_s};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::StoreError;
use crate::trust::Trust;

/// The parts of an upload, read and size-checked; the image is on disk, not yet published.
pub(crate) struct Upload {
    /// The class the uploader names, if any (checked as a name already).
    pub(crate) class: Option<String>,
    /// The signed manifest envelope.
    pub(crate) manifest: Vec<u8>,
    /// The chunk hash list.
    pub(crate) hashlist: Vec<u8>,
    /// The image.
    pub(crate) image: Box<dyn PendingBlob>,
}

/// What became of an upload.
pub(crate) enum Stored {
    /// A new release.
    Created(Release),
    /// This very release (the same signed manifest) was stored already; nothing changed.
    Existing(Release),
}

/// Verifies `upload` (see [`verify`]), finds its class, and stores it unless the same signed
/// manifest is stored already (an interrupted or repeated upload can simply be run again).
pub(crate) async fn store(
    state: &AppState,
    trust: &Trust,
    actor: String,
    upload: Upload,
) -> AppResult<Stored> {
    let Upload {
        class,
        manifest,
        hashlist,
        image,
    } = upload;
    let image_bytes = image.read_all().await.map_err(AppError::internal)?;
    let verified = verify(trust, &manifest, &hashlist, &image_bytes)?;
    drop(image_bytes);
    if verified.image_sha256 != image.sha256() {
        return Err(AppError::unprocessable(
            "image_mismatch",
            "image SHA-256 differs from the manifest's",
        ));
    }
    // Which class name the manifest's class id stands for.
    let candidates = match class {
        Some(c) => vec![c],
        None => state.store().list_classes().await?,
    };
    let class = candidates
        .into_iter()
        .find(|c| v2::ids::class_id(&trust.vendor_id(), c) == verified.class_id)
        .ok_or_else(|| {
            AppError::unprocessable(
                "unknown_class",
                format!(
                    "the manifest's class id {} is not a known class (name it in the `class` part)",
                    verified.class_id
                ),
            )
        })?;
    if let Some(stored) = stored_release(state, &verified.manifest_digest).await? {
        return Ok(Stored::Existing(stored));
    }
    // Hash list blob.
    let mut hl_writer = state.blobs().create().await.map_err(AppError::internal)?;
    hl_writer
        .write(&hashlist)
        .await
        .map_err(AppError::internal)?;
    let hl_blob = hl_writer.finish().await.map_err(AppError::internal)?;
    let release = Release {
        id: verified.manifest_digest[..16].to_owned(),
        class: class.clone(),
        class_id: verified.class_id.to_string(),
        sequence: verified.sequence,
        security_counter: verified.security_counter,
        version: verified.version.clone(),
        project: verified.project.clone(),
        image_sha256: image.sha256().to_owned(),
        image_size: i64::try_from(image.size()).unwrap_or(i64::MAX),
        chunk_size: verified.chunk_size,
        chunk_count: verified.chunk_count,
        hashlist_sha256: hl_blob.sha256().to_owned(),
        hashlist_size: i64::try_from(hl_blob.size()).unwrap_or(i64::MAX),
        manifest_digest: verified.manifest_digest.clone(),
        created_at: now_ms(),
        created_by: actor.clone(),
    };
    // Blobs first, then the row: a crash in between leaves only unreferenced blobs, which
    // garbage collection removes; a release row never points at a missing blob.
    image.publish().await.map_err(AppError::internal)?;
    hl_blob.publish().await.map_err(AppError::internal)?;
    let entry = AuditEntry {
        actor,
        action: "release.create".into(),
        target: format!("release:{}", release.id),
        detail: serde_json::json!({
            "class": release.class, "version": release.version, "sequence": release.sequence,
            "image_sha256": release.image_sha256, "manifest_digest": release.manifest_digest,
        }),
    };
    match state
        .store()
        .create_release(&release, &manifest, &entry)
        .await
    {
        Ok(()) => Ok(Stored::Created(release)),
        // The same manifest stored by a concurrent upload since the check above.
        Err(StoreError::Conflict(message)) => {
            match stored_release(state, &release.manifest_digest).await? {
                Some(stored) => Ok(Stored::Existing(stored)),
                None => Err(AppError::conflict("conflict", message)),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// The stored release whose signed manifest has the digest `manifest_digest` (hex), if any.
async fn stored_release(state: &AppState, manifest_digest: &str) -> AppResult<Option<Release>> {
    let id = manifest_digest.get(..16).unwrap_or(manifest_digest);
    Ok(state
        .store()
        .release(id)
        .await?
        .filter(|r| r.manifest_digest == manifest_digest))
}

/// What a verified upload says about itself.
#[derive(Debug, Clone)]
struct VerifiedRelease {
    class_id: Uuid,
    sequence: i64,
    security_counter: i64,
    version: String,
    project: String,
    image_sha256: String,
    chunk_size: i64,
    chunk_count: i64,
    manifest_digest: String,
}

fn reject(code: &'static str, message: impl Into<String>) -> AppError {
    AppError::unprocessable(code, message)
}

/// Checks an upload completely before anything of it becomes visible: the release-role
/// signatures over the raw envelope (before any field is read), vendor, target, expiry, image
/// size and SHA-256, the hash list (header, page table digest = `chunk_list_sha256`, and every
/// chunk hash against the image's actual chunks), and the ESP image with its app descriptor.
fn verify(
    trust: &Trust,
    manifest: &[u8],
    hashlist: &[u8],
    image: &[u8],
) -> AppResult<VerifiedRelease> {
    let chain = trust.chain();
    let m = Manifest::verify(chain.newest(), manifest).map_err(|e| match e {
        v2::Error::UnknownKey { .. } => reject(
            "unknown_or_revoked_key",
            format!(
                "manifest rejected: {e} (root version {})",
                chain.newest().version()
            ),
        ),
        e => reject("invalid_manifest", format!("manifest rejected: {e}")),
    })?;
    let b = m.body();
    if b.vendor_id != *chain.newest().vendor_id() {
        return Err(reject(
            "wrong_vendor",
            format!(
                "manifest vendor {} is not this server's vendor {}",
                Uuid::from_bytes(b.vendor_id),
                trust.vendor_id
            ),
        ));
    }
    if b.device_id != [0; 16] {
        return Err(reject(
            "device_specific_manifest",
            "manifests for a single device are not supported; sign it for the whole class and \
             assign it to the device",
        ));
    }
    if b.payload_format != PayloadFormat::RawEspApp {
        return Err(reject(
            "unsupported_payload",
            "only raw ESP32 app images are supported",
        ));
    }
    if m.is_expired(unix_s()) {
        return Err(reject("manifest_expired", "the manifest has expired"));
    }
    if image.len() as u64 != b.image_size {
        return Err(reject(
            "image_size_mismatch",
            format!(
                "image is {} bytes, the manifest says {}",
                image.len(),
                b.image_size
            ),
        ));
    }
    let sha: [u8; 32] = Sha256::digest(image).into();
    if sha != b.image_sha256 {
        return Err(reject(
            "image_hash_mismatch",
            "image SHA-256 differs from the manifest's",
        ));
    }
    let built = v2::hashlist::build(image, b.chunk_size)
        .map_err(|e| reject("invalid_hashlist", e.to_string()))?;
    if built.chunk_list_sha256 != b.chunk_list_sha256 {
        return Err(reject(
            "hashlist_mismatch",
            "the manifest's chunk_list_sha256 does not match the image's chunks",
        ));
    }
    if hashlist != built.blob.as_slice() {
        let layout = built.layout;
        let detail = match layout.check_header(hashlist.get(..16).unwrap_or(hashlist)) {
            Err(e) => format!("hash list header: {e}"),
            Ok(()) if hashlist.len() as u64 != layout.total_len() => format!(
                "hash list is {} bytes, {} expected",
                hashlist.len(),
                layout.total_len()
            ),
            Ok(()) => "hash list differs from the image's chunk hashes".into(),
        };
        return Err(reject("hashlist_mismatch", detail));
    }
    let report = esp_image::verify(image, VerifyOptions::default())
        .map_err(|e| reject("invalid_image", format!("not a valid ESP32 app image: {e}")))?;
    if report.image_len != Some(image.len() as u32) {
        return Err(reject(
            "image_trailing_bytes",
            format!(
                "the ESP image ends at {:?} bytes but {} were uploaded",
                report.image_len,
                image.len()
            ),
        ));
    }
    let desc = report
        .app_desc
        .ok_or_else(|| reject("invalid_image", "the image has no app descriptor"))?;
    let version = desc.version().unwrap_or_default();
    if version != b.fw_version.as_str() {
        return Err(reject(
            "version_mismatch",
            format!(
                "manifest fw_version {:?} differs from the image's app descriptor {version:?}",
                b.fw_version.as_str()
            ),
        ));
    }
    let project = desc.project_name().unwrap_or_default();
    if project != b.project_name.as_str() {
        return Err(reject(
            "project_mismatch",
            format!(
                "manifest project {:?} differs from the image's app descriptor {project:?}",
                b.project_name.as_str()
            ),
        ));
    }
    Ok(VerifiedRelease {
        class_id: Uuid::from_bytes(b.class_id),
        sequence: i64::try_from(b.sequence)
            .map_err(|_| reject("invalid_manifest", "sequence too large"))?,
        security_counter: i64::from(b.security_counter),
        version: version.to_owned(),
        project: project.to_owned(),
        image_sha256: hex::encode(sha),
        chunk_size: i64::from(b.chunk_size),
        chunk_count: i64::from(b.chunk_count),
        manifest_digest: hex::encode(m.digest()),
    })
}
