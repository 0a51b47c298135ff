//! Pieces of the OpenAPI document that handlers name in their `#[utoipa::path]`: the error
//! answers, each described once, the raw binary body, and the path parameters.

use utoipa::openapi::content::Content;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::{Ref, RefOr};

fn error_answer(description: &str) -> RefOr<Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name("ErrorBody"))),
        )
        .build()
        .into()
}

macro_rules! error_answers {
    ($($(#[$meta:meta])* $name:ident => $description:literal;)*) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, Copy)]
        pub(crate) struct $name;

        impl<'r> utoipa::ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (stringify!($name), error_answer($description))
            }
        }
    )*};
}

error_answers! {
    /// `400`.
    BadRequest => "Malformed request: body, parameter or id of the wrong syntax, type or \
        range (`invalid_json`, `invalid_field`, `invalid_query`, `invalid_name`, ...)";
    /// `401`.
    Unauthorized => "No credential, or an unknown or revoked one (`unauthorized`; the \
        answer carries `WWW-Authenticate: Bearer`)";
    /// `429` of a credential check.
    TooManyFailures => "Too many failed authentications from this client address, or with \
        this credential, in the last minute (`too_many_requests`; `Retry-After` says when the \
        window ends). Requests with a valid credential are never refused this way";
    /// `403`.
    Forbidden => "The token's role is below the one this needs (`forbidden`)";
    /// `404`.
    NotFound => "The thing named in the path or body does not exist (`not_found`)";
    /// `413`.
    PayloadTooLarge => "The body is larger than this route's limit (`payload_too_large`)";
    /// `503` of the v2 API.
    V2Unavailable => "The server was started without a root record and status key \
        (`v2_not_configured`)";
    /// `503` of the legacy API.
    LegacyUnavailable => "The legacy (seed) API is off: no PSK configured \
        (`legacy_disabled`)";
    /// `503` of the release upload.
    V2UploadUnavailable => "The server was started without a root record and status key \
        (`v2_not_configured`), or `limits.concurrent_uploads` uploads (releases and legacy \
        uploads together) are being received (`uploads_busy`; `Retry-After` says when to \
        try again; nothing of the body was read)";
    /// `503` of the legacy upload.
    LegacyUploadUnavailable => "The legacy (seed) API is off: no PSK configured \
        (`legacy_disabled`), or `limits.concurrent_uploads` uploads (releases and legacy \
        uploads together) are being received (`uploads_busy`; `Retry-After` says when to \
        try again; nothing of the body was read)";
    /// `429` of the legacy device API.
    LegacyThrottled => "More than `legacy.failures_per_minute` refused legacy requests \
        (malformed, or naming a v2 device) came from this client address in the last minute: \
        every legacy request from it is refused until the minute ends (`too_many_requests`; \
        `Retry-After` says when)";
}

/// The OpenAPI schema of a raw binary body (`type: string, format: binary`): fota-protocol
/// records, blobs, signed envelopes. `Vec<u8>` would document an array of integers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Binary;

impl utoipa::PartialSchema for Binary {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .into()
    }
}

impl utoipa::ToSchema for Binary {}

/// The device named in the path.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[expect(
    dead_code,
    reason = "an OpenAPI schema only: utoipa reads the fields, the handlers never do"
)]
pub(crate) struct DeviceId {
    /// Device name (1-64 of `A-Za-z0-9._-`).
    #[param(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    id: String,
}

/// The release named in the path.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[expect(
    dead_code,
    reason = "an OpenAPI schema only: utoipa reads the fields, the handlers never do"
)]
pub(crate) struct ReleaseId {
    /// Release id: the first 16 hex digits of its manifest digest.
    #[param(pattern = r"^[0-9a-f]{16}$")]
    id: String,
}
