//! Releases: what the server stores and shows, and assignments.

use serde::{Deserialize, Serialize};

use crate::Millis;

/// A release as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Release {
    /// Release id.
    pub id: String,
    /// Class name.
    pub class: String,
    /// Class UUID.
    pub class_id: String,
    /// Sequence, unique and increasing per class.
    pub sequence: i64,
    /// Anti-rollback counter.
    pub security_counter: i64,
    /// Firmware version (= the image's app descriptor).
    pub version: String,
    /// Project name (= the image's app descriptor).
    pub project: String,
    /// Image SHA-256, hex: also its blob name.
    pub image_sha256: String,
    /// Image size in bytes.
    pub image_size: i64,
    /// Chunk size.
    pub chunk_size: i64,
    /// Chunk count.
    pub chunk_count: i64,
    /// Hash-list blob SHA-256, hex.
    pub hashlist_sha256: String,
    /// Hash-list size.
    pub hashlist_size: i64,
    /// SHA-256 of the signed manifest envelope, hex.
    pub manifest_digest: String,
    /// Upload time, unix ms.
    pub created_at: Millis,
    /// Uploader.
    pub created_by: String,
}

/// Whom to assign a release to: `{"devices": [...]}` or `{"class": "<the release's class>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    /// Device names (each gets an explicit assignment, which overrides its class's).
    pub devices: Option<Vec<String>>,
    /// The release's class: every device of the class follows it (explicit device
    /// assignments of the class are cleared).
    pub class: Option<String>,
}

/// Exactly one of the two forms: the other field absent (or `null`).
impl utoipa::PartialSchema for AssignRequest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Type,
        };
        let string = || ObjectBuilder::new().schema_type(Type::String);
        let null = || ObjectBuilder::new().schema_type(Type::Null);
        let devices = ObjectBuilder::new()
            .title(Some("devices"))
            .property(
                "devices",
                ArrayBuilder::new()
                    .items(string())
                    .min_items(Some(1))
                    .max_items(Some(10_000))
                    .description(Some(
                        "Device names (v2, of the release's class); each gets an explicit \
                         assignment, which overrides its class's",
                    )),
            )
            .required("devices")
            .property("class", null())
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        let class = ObjectBuilder::new()
            .title(Some("class"))
            .property(
                "class",
                string().description(Some(
                    "The release's class: every device of the class follows it (explicit \
                     device assignments of the class are cleared)",
                )),
            )
            .required("class")
            .property("devices", null())
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        OneOfBuilder::new()
            .item(devices)
            .item(class)
            .description(Some("Whom to assign a release to"))
            .into()
    }
}

impl utoipa::ToSchema for AssignRequest {}

/// Result of an assignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AssignResponse {
    /// Release.
    pub release_id: String,
    /// Devices assigned explicitly.
    pub devices: Vec<String>,
    /// Class assigned.
    pub class: Option<String>,
}
