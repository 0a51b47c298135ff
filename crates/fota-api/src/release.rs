//! Releases: what the server stores and shows, assignments, and the manifest fields of an
//! image.

use fota_protocol::v2::{self, Component, FixedStr, ManifestBody, ManifestFormat, PayloadFormat};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

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

/// The byte parts of a signed release besides the image, as the upload endpoint takes them
/// and a bundle holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleaseParts<'a> {
    /// Class name; the server checks it against the manifest's class id.
    pub class: &'a str,
    /// Signed manifest envelope.
    pub manifest: &'a [u8],
    /// Chunk hash list (`FHL1`).
    pub hashlist: &'a [u8],
}

/// The manifest fields of a release that its image does not fix.
///
/// | field | value |
/// |---|---|
/// | vendor_id | `vendor_id` |
/// | class_id | `UUIDv5(vendor_id, class)` |
/// | device_id | zero: releases are for a class; devices are chosen by assignment |
/// | payload_format, component | a raw ESP32 application image |
/// | image_size, image_sha256 | the image's |
/// | chunk_count, chunk_list_sha256 | the image's hash list in `chunk_size` chunks |
/// | precursor_sha256 | zero (not a delta) |
/// | the rest | as given here |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManifestFields<'a> {
    /// Vendor UUID (the root record's).
    pub vendor_id: uuid::Uuid,
    /// Hardware class name.
    pub class: &'a str,
    /// Sequence, ≥ 1, above every earlier release of the class.
    pub sequence: u64,
    /// Anti-rollback counter.
    pub security_counter: u32,
    /// Firmware version: 1-31 bytes without NUL (signing tools take the image's
    /// `esp_app_desc_t.version`).
    pub version: &'a str,
    /// Project name (signing tools take the image's `esp_app_desc_t.project_name`).
    pub project: &'a str,
    /// Chunk size: a power of two, 1-64 KiB.
    pub chunk_size: u32,
    /// Signing time, unix seconds.
    pub issued_at: u64,
    /// Expiry, unix seconds; 0 = never.
    pub expires_at: u64,
    /// Manifest layout: format 3 unless the fleet's agents predate it.
    pub format: ManifestFormat,
    /// The chip the image is for (signing tools take the image header's chip id).
    pub chip_id: u16,
}

/// A release before signing: its manifest body and the hash list the body commits to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsignedRelease {
    /// The manifest's fields.
    pub body: ManifestBody,
    /// The chunk hash list blob (`FHL1`).
    pub hashlist: Vec<u8>,
}

/// Builds the hash list of `image` and the manifest body describing it: the one place a
/// manifest is derived from an image. Nothing is validated beyond what the fields need (a
/// version that fits, a chunk size the hash list accepts): checking the image itself is the
/// signing tool's business.
pub fn manifest_body(
    image: &[u8],
    fields: &ManifestFields<'_>,
) -> Result<UnsignedRelease, v2::Error> {
    let hashlist = v2::hashlist::build(image, fields.chunk_size)?;
    let text = |field: &'static str, offset: usize, s: &str| {
        FixedStr::new(s).ok_or(v2::Error::Field {
            field,
            offset,
            check: v2::FieldCheck::Text,
        })
    };
    let body = ManifestBody {
        format: fields.format,
        chip_id: fields.chip_id,
        vendor_id: *fields.vendor_id.as_bytes(),
        class_id: *v2::ids::class_id(&fields.vendor_id, fields.class).as_bytes(),
        device_id: [0; 16],
        sequence: fields.sequence,
        security_counter: fields.security_counter,
        payload_format: PayloadFormat::RawEspApp,
        component: Component::Application,
        fw_version: text("fw_version", 64, fields.version)?,
        project_name: text("project_name", 96, fields.project)?,
        issued_at: fields.issued_at,
        expires_at: fields.expires_at,
        image_size: image.len() as u64,
        chunk_size: fields.chunk_size,
        chunk_count: hashlist.layout.chunk_count(),
        image_sha256: Sha256::digest(image).into(),
        chunk_list_sha256: hashlist.chunk_list_sha256,
        precursor_sha256: [0; 32],
    };
    Ok(UnsignedRelease {
        body,
        hashlist: hashlist.blob,
    })
}

/// The id the server gives a release: the first 16 hex digits of its signed manifest
/// envelope's SHA-256 (`fota_protocol::v2::manifest_digest`), so the id a device reports (by
/// digest) and the one operators see are the same thing.
pub fn release_id(manifest_digest: &[u8; 32]) -> String {
    hex::encode(&manifest_digest[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(version: &str) -> ManifestFields<'_> {
        ManifestFields {
            vendor_id: uuid::Uuid::from_u128(7),
            class: "ecowatt-v1",
            sequence: 3,
            security_counter: 1,
            version,
            project: "ecowatt",
            chunk_size: 1024,
            issued_at: 1_700_000_000,
            expires_at: 0,
            format: ManifestFormat::V3,
            chip_id: v2::chip_ids::ESP32,
        }
    }

    #[test]
    fn a_manifest_body_commits_to_the_image_and_its_hash_list() {
        let image: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let built = manifest_body(&image, &fields("1.0.6")).unwrap();
        let body = &built.body;
        assert_eq!(body.image_size, 5000);
        assert_eq!(body.chunk_count, 5);
        assert_eq!(body.image_sha256, <[u8; 32]>::from(Sha256::digest(&image)));
        let hl = v2::hashlist::build(&image, 1024).unwrap();
        assert_eq!(built.hashlist, hl.blob);
        assert_eq!(body.chunk_list_sha256, hl.chunk_list_sha256);
        assert_eq!(
            body.class_id,
            *v2::ids::class_id(&uuid::Uuid::from_u128(7), "ecowatt-v1").as_bytes()
        );
        assert_eq!(body.fw_version.as_str(), "1.0.6");
        body.check().unwrap();
    }

    #[test]
    fn a_version_that_does_not_fit_the_manifest_names_its_field() {
        let err = manifest_body(&[0xE9; 100], &fields(&"9".repeat(40))).unwrap_err();
        assert!(
            matches!(
                err,
                v2::Error::Field {
                    field: "fw_version",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn release_ids_are_the_manifest_digest_prefix() {
        let digest = v2::manifest_digest(b"any envelope bytes");
        assert_eq!(release_id(&digest), hex::encode(digest)[..16]);
    }
}
