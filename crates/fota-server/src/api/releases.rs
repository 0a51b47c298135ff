//! Releases (`/api/v2/releases`): signed uploads, listing, the signed manifest as uploaded,
//! and assignments to devices or a class.

use axum::Json;
use axum::Router;
use axum::extract::{Multipart, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use fota_api::{AssignRequest, AssignResponse, Duty, Release};

use super::auth::Operator;
use super::doc::{self, ReleaseId};
use super::extract::{AppJson, AppQuery, ClassFilter, check_name, v2_trust};
use crate::clock::now_ms;
use crate::domain::releases::{self, Stored};
use crate::error::{AppError, AppResult, body_rejection};
use crate::state::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v2/releases", get(list_releases))
        .route("/api/v2/releases/{id}", get(show_release))
        .route("/api/v2/releases/{id}/manifest", get(release_manifest))
        .route("/api/v2/releases/{id}/assign", post(assign_release))
}

/// Uploads stream a whole image: they get their own body limit and no request timeout.
pub(crate) fn upload_routes() -> Router<AppState> {
    Router::new().route("/api/v2/releases", post(create_release))
}

/// Multipart body of a release upload (`multipart/form-data`, parts in this order).
#[derive(Debug, utoipa::ToSchema)]
#[expect(
    dead_code,
    reason = "an OpenAPI schema only: utoipa reads the fields, the handlers never do"
)]
pub(crate) struct ReleaseUpload {
    /// Optional class name; must match the manifest's class id. Without it the class is
    /// looked up among known classes (of provisioned devices and earlier releases).
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    class: Option<String>,
    /// The signed manifest envelope (binary).
    #[schema(format = Binary, value_type = String)]
    manifest: Vec<u8>,
    /// The chunk hash list `FHL1` (binary).
    #[schema(format = Binary, value_type = String)]
    hashlist: Vec<u8>,
    /// The ESP32 app image (binary), streamed to storage.
    #[schema(format = Binary, value_type = String)]
    image: Vec<u8>,
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> AppError {
    body_rejection(e.status(), e.body_text())
}

async fn read_small_field(
    field: &mut axum::extract::multipart::Field<'_>,
    max: usize,
    what: &str,
) -> AppResult<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if out.len() + chunk.len() > max {
            return Err(AppError::PayloadTooLarge(format!(
                "{what} larger than {max} bytes"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Upload a signed release (operator): multipart parts `class` (optional, text), `manifest`,
/// `hashlist`, `image`. The server checks the signatures against its root record (release role
/// threshold), the vendor and class, the image's size and SHA-256, the hash list against the
/// manifest and the image's chunks, the ESP image format and that its app descriptor's
/// version and project equal the manifest's, and that the sequence is above the class's
/// highest. Any mismatch is a 4xx and leaves nothing behind. Uploading a release the server
/// already holds (the same signed manifest, after the same checks) answers 200 with the
/// stored release and changes nothing, so an interrupted or repeated upload can simply be
/// run again.
#[utoipa::path(post, path = "/api/v2/releases", tag = "releases", security(("bearer" = [])),
    request_body(content = ReleaseUpload, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Verified and stored", body = Release),
        (status = 200, description = "This very release (same signed manifest) is already \
            stored: nothing changed", body = Release),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 429, response = doc::TooManyFailures),
        (status = 403, response = doc::Forbidden),
        (status = 409, description = "The sequence is not above the class's highest, or the \
            version exists in the class (`conflict`)", body = crate::error::ErrorBody),
        (status = 413, response = doc::PayloadTooLarge),
        (status = 422, description = "A signature, hash, size, image format, app descriptor \
            or class that does not check out (`invalid_manifest`, `image_hash_mismatch`, \
            `unknown_class`, ...)", body = crate::error::ErrorBody),
        (status = 503, response = doc::V2UploadUnavailable)))]
pub(crate) async fn create_release(
    State(state): State<AppState>,
    op: Operator,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> AppResult<(StatusCode, Json<Release>)> {
    op.require(Duty::Release)?;
    let trust = v2_trust(&state)?;
    let mut multipart =
        multipart.map_err(|e| AppError::bad_request("invalid_multipart", e.body_text()))?;
    let max = state.config().limits.max_release_bytes;
    let mut class = None;
    let mut manifest = None;
    let mut hashlist = None;
    let mut image = None;
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "class" => {
                let bytes = read_small_field(&mut field, 256, "class").await?;
                class = Some(String::from_utf8(bytes).map_err(|_| {
                    AppError::bad_request("invalid_multipart", "class is not UTF-8")
                })?);
            }
            "manifest" => manifest = Some(read_small_field(&mut field, 4096, "manifest").await?),
            "hashlist" => {
                let limit = usize::try_from(max).unwrap_or(usize::MAX);
                hashlist = Some(read_small_field(&mut field, limit, "hashlist").await?);
            }
            "image" => {
                let mut writer = state.blobs().create().await.map_err(AppError::internal)?;
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    if writer.written() + chunk.len() as u64 > max {
                        return Err(AppError::PayloadTooLarge(format!(
                            "image larger than {max} bytes"
                        )));
                    }
                    writer.write(&chunk).await.map_err(AppError::internal)?;
                }
                image = Some(writer.finish().await.map_err(AppError::internal)?);
            }
            other => {
                return Err(AppError::bad_request(
                    "invalid_multipart",
                    format!("unexpected part {other:?}; expected class, manifest, hashlist, image"),
                ));
            }
        }
    }
    let missing = |what| AppError::bad_request("missing_part", format!("missing part {what:?}"));
    let manifest = manifest.ok_or_else(|| missing("manifest"))?;
    let hashlist = hashlist.ok_or_else(|| missing("hashlist"))?;
    let image = image.ok_or_else(|| missing("image"))?;
    if let Some(c) = &class {
        check_name("class", c)?;
    }
    let upload = releases::Upload {
        class,
        manifest,
        hashlist,
        image,
    };
    match releases::store(&state, trust, op.actor(), upload).await? {
        Stored::Created(release) => {
            ::metrics::counter!("fota_releases_created_total").increment(1);
            Ok((StatusCode::CREATED, Json(release)))
        }
        Stored::Existing(release) => Ok((StatusCode::OK, Json(release))),
    }
}

/// List releases, newest first per class (viewer).
#[utoipa::path(get, path = "/api/v2/releases", tag = "releases", security(("bearer" = [])),
    params(ClassFilter),
    responses(
        (status = 200, description = "Releases, newest first per class", body = [Release]),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 429, response = doc::TooManyFailures)))]
pub(crate) async fn list_releases(
    State(state): State<AppState>,
    op: Operator,
    AppQuery(filter): AppQuery<ClassFilter>,
) -> AppResult<Json<Vec<Release>>> {
    op.require(Duty::Read)?;
    Ok(Json(
        state.store().list_releases(filter.class.as_deref()).await?,
    ))
}

async fn get_release(state: &AppState, id: &str) -> AppResult<Release> {
    state
        .store()
        .release(id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no release {id:?}")))
}

/// Show one release (viewer).
#[utoipa::path(get, path = "/api/v2/releases/{id}", tag = "releases", security(("bearer" = [])),
    params(ReleaseId),
    responses(
        (status = 200, description = "The release", body = Release),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 429, response = doc::TooManyFailures),
        (status = 404, response = doc::NotFound)))]
pub(crate) async fn show_release(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> AppResult<Json<Release>> {
    op.require(Duty::Read)?;
    Ok(Json(get_release(&state, &id).await?))
}

/// The signed manifest envelope of a release, as uploaded (viewer).
#[utoipa::path(get, path = "/api/v2/releases/{id}/manifest", tag = "releases",
    security(("bearer" = [])), params(ReleaseId),
    responses(
        (status = 200, description = "The signed manifest envelope, byte for byte",
            content_type = "application/octet-stream", body = inline(doc::Binary)),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 429, response = doc::TooManyFailures),
        (status = 404, response = doc::NotFound)))]
pub(crate) async fn release_manifest(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> AppResult<Response> {
    op.require(Duty::Read)?;
    let manifest = state
        .store()
        .release_manifest(&id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no release {id:?}")))?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        manifest,
    )
        .into_response())
}

/// Assign a release to devices or to its class (operator).
#[utoipa::path(post, path = "/api/v2/releases/{id}/assign", tag = "releases",
    security(("bearer" = [])), params(ReleaseId), request_body = AssignRequest,
    responses(
        (status = 200, description = "Assigned; devices get it at their next check-in",
            body = AssignResponse),
        (status = 400, response = doc::BadRequest),
        (status = 401, response = doc::Unauthorized),
        (status = 429, response = doc::TooManyFailures),
        (status = 403, response = doc::Forbidden),
        (status = 404, description = "No such release, or a named device does not exist \
            (`not_found`)", body = crate::error::ErrorBody),
        (status = 409, description = "The class is not the release's, or a named device is \
            of another class (`class_mismatch`, `conflict`)", body = crate::error::ErrorBody),
        (status = 413, response = doc::PayloadTooLarge)))]
pub(crate) async fn assign_release(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
    AppJson(req): AppJson<AssignRequest>,
) -> AppResult<Json<AssignResponse>> {
    op.require(Duty::Release)?;
    // The release is looked up in the arms, so a malformed body is a 400 whether or not it
    // exists (the store answers 404 for an unknown release in the devices arm).
    match (req.devices, req.class) {
        (Some(devices), None) if !devices.is_empty() && devices.len() <= 10_000 => {
            let entry = op.audit(
                "release.assign",
                format!("release:{id}"),
                serde_json::json!({ "devices": devices }),
            );
            state.store().assign_devices(&id, &devices, &entry).await?;
            state.hot().invalidate();
            Ok(Json(AssignResponse {
                release_id: id,
                devices,
                class: None,
            }))
        }
        (None, Some(class)) => {
            let release = get_release(&state, &id).await?;
            if class != release.class {
                return Err(AppError::conflict(
                    "class_mismatch",
                    format!(
                        "release {id} is of class {:?}, not {class:?}",
                        release.class
                    ),
                ));
            }
            let entry = op.audit(
                "release.assign",
                format!("release:{id}"),
                serde_json::json!({ "class": class }),
            );
            state
                .store()
                .assign_class(&class, &id, now_ms(), &entry)
                .await?;
            state.hot().invalidate();
            Ok(Json(AssignResponse {
                release_id: id,
                devices: Vec::new(),
                class: Some(class),
            }))
        }
        _ => Err(AppError::bad_request(
            "invalid_assignment",
            "give exactly one of `devices` (1-10000 names) or `class`",
        )),
    }
}
