//! The provisioning file of a v2 device.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The provisioning file of a device: `fota devices add -o ID.json` writes it (the server's
/// answer to provisioning and to a credential rotation, byte for byte), the emulator and
/// devices read it. Shown once: the server keeps only the token's SHA-256.
///
/// As written: `{device_id, token, vendor_id, class_id, root, class, device_uuid}`, UUIDs
/// hyphenated, the root record in standard padded base64. As read ([`Self::from_json`] and
/// `Deserialize`), more is accepted, so that files written by hand or by older tools work:
/// UUIDs in any form `uuid` parses (hyphenated or 32 hex digits, surrounding white space
/// ignored), the root record as hex or base64, and `class` and `device_uuid` may be missing (a
/// missing `device_uuid` is derived as the server derives it: UUIDv5(vendor_id, "device/" +
/// device_id)).
///
/// `Debug` shows the token as `[redacted]`.
// The document describes what the server writes, in the words it always used.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(
    description = "The provisioning file of a device (`fota devices add -o ID.json` \
    writes it; the emulator\nand devices read it). Shown once: the server keeps only the \
    token's SHA-256."
)]
#[serde(try_from = "ProvisioningFile")]
pub struct Provisioning {
    /// Device name.
    pub device_id: String,
    /// Device bearer token.
    pub token: String,
    /// Vendor UUID (from the root record).
    #[schema(value_type = String)]
    pub vendor_id: Uuid,
    /// Class UUID = UUIDv5(vendor_id, class).
    #[schema(value_type = String)]
    pub class_id: Uuid,
    /// Root record (`root.bin`), base64.
    #[serde(serialize_with = "base64_standard")]
    #[schema(value_type = String)]
    pub root: Vec<u8>,
    /// Class name.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = true)]
    pub class: Option<String>,
    /// Device UUID = UUIDv5(vendor_id, "device/" + device_id).
    #[schema(value_type = String)]
    pub device_uuid: Uuid,
}

// By hand: the token is the device's credential, and a `{:?}` of the file (an emulator's
// options, an error context) must not put it in a log. Destructured, so a new field is not
// forgotten here.
impl core::fmt::Debug for Provisioning {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let Self {
            device_id,
            token: _,
            vendor_id,
            class_id,
            root,
            class,
            device_uuid,
        } = self;
        f.debug_struct("Provisioning")
            .field("device_id", device_id)
            .field("token", &format_args!("[redacted]"))
            .field("vendor_id", vendor_id)
            .field("class_id", class_id)
            .field("root", root)
            .field("class", class)
            .field("device_uuid", device_uuid)
            .finish()
    }
}

/// Why a provisioning file is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProvisioningError {
    /// Not the expected JSON.
    #[error("provisioning file: {0}")]
    Json(#[from] serde_json::Error),
    /// A field does not decode.
    #[error("provisioning file: field {field}: {message}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl Provisioning {
    /// Parses the JSON of a provisioning file (see the type's docs for what is accepted).
    pub fn from_json(bytes: &[u8]) -> Result<Self, ProvisioningError> {
        let file: ProvisioningFile = serde_json::from_slice(bytes)?;
        Self::try_from(file)
    }
}

/// The file's fields as text, before decoding.
#[derive(Deserialize)]
struct ProvisioningFile {
    device_id: String,
    token: String,
    vendor_id: String,
    class_id: String,
    root: String,
    #[serde(default)]
    class: Option<String>,
    #[serde(default)]
    device_uuid: Option<String>,
}

fn uuid_field(field: &'static str, s: &str) -> Result<Uuid, ProvisioningError> {
    Uuid::parse_str(s.trim()).map_err(|e| ProvisioningError::Field {
        field,
        message: e.to_string(),
    })
}

impl TryFrom<ProvisioningFile> for Provisioning {
    type Error = ProvisioningError;

    fn try_from(file: ProvisioningFile) -> Result<Self, Self::Error> {
        let vendor_id = uuid_field("vendor_id", &file.vendor_id)?;
        let class_id = uuid_field("class_id", &file.class_id)?;
        let device_uuid = match &file.device_uuid {
            Some(d) => uuid_field("device_uuid", d)?,
            None => fota_protocol::v2::ids::device_uuid(&vendor_id, &file.device_id),
        };
        let text = file.root.trim();
        let root = hex::decode(text)
            .ok()
            .or_else(|| base64::engine::general_purpose::STANDARD.decode(text).ok())
            .ok_or_else(|| ProvisioningError::Field {
                field: "root",
                message: "neither hex nor base64".into(),
            })?;
        Ok(Self {
            device_id: file.device_id,
            token: file.token,
            vendor_id,
            class_id,
            root,
            class: file.class,
            device_uuid,
        })
    }
}

fn base64_standard<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written() -> Provisioning {
        let vendor = Uuid::from_u128(0x1234_5678_9abc_def0_1122_3344_5566_7788);
        Provisioning {
            device_id: "EcoWatt001".into(),
            token: "fota_dev_secret".into(),
            vendor_id: vendor,
            class_id: fota_protocol::v2::ids::class_id(&vendor, "ecowatt-v1"),
            root: vec![0xFB, 0xFF, 0x00, 0x7E, 0x42],
            class: Some("ecowatt-v1".into()),
            device_uuid: fota_protocol::v2::ids::device_uuid(&vendor, "EcoWatt001"),
        }
    }

    #[test]
    fn the_file_is_written_as_the_server_has_always_written_it() {
        let p = written();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(
            json,
            format!(
                "{{\"device_id\":\"EcoWatt001\",\"token\":\"fota_dev_secret\",\
                 \"vendor_id\":\"12345678-9abc-def0-1122-334455667788\",\"class_id\":\"{}\",\
                 \"root\":\"+/8AfkI=\",\"class\":\"ecowatt-v1\",\"device_uuid\":\"{}\"}}",
                p.class_id.hyphenated(),
                p.device_uuid.hyphenated()
            )
        );
        assert_eq!(Provisioning::from_json(json.as_bytes()).unwrap(), p);
        assert_eq!(serde_json::from_str::<Provisioning>(&json).unwrap(), p);
    }

    #[test]
    fn hand_written_files_with_hex_simple_uuids_and_missing_fields_are_read() {
        let p = written();
        let json = serde_json::json!({
            "device_id": "EcoWatt001",
            "token": "fota_dev_secret",
            "vendor_id": format!(" {} ", p.vendor_id.simple()),
            "class_id": p.class_id.simple().to_string(),
            "root": "fbff007e42",
        });
        let read = Provisioning::from_json(json.to_string().as_bytes()).unwrap();
        assert_eq!(read.root, p.root);
        assert_eq!(read.vendor_id, p.vendor_id);
        assert_eq!(
            read.device_uuid, p.device_uuid,
            "derived as the server does"
        );
        assert_eq!(read.class, None);
    }

    #[test]
    fn debug_shows_everything_but_the_token() {
        let debug = format!("{:?}", written());
        assert!(debug.contains("token: [redacted]"), "{debug}");
        assert!(!debug.contains("fota_dev_secret"), "{debug}");
        assert!(debug.contains("EcoWatt001"), "{debug}");
    }

    #[test]
    fn a_field_that_does_not_decode_is_named() {
        let mut json = serde_json::to_value(written()).unwrap();
        json["root"] = "not base64 or hex!".into();
        let err = Provisioning::from_json(json.to_string().as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "provisioning file: field root: neither hex nor base64"
        );
        json["root"] = "AAAA".into();
        json["class_id"] = "nope".into();
        let err = Provisioning::from_json(json.to_string().as_bytes()).unwrap_err();
        assert!(
            matches!(
                err,
                ProvisioningError::Field {
                    field: "class_id",
                    ..
                }
            ),
            "{err}"
        );
    }
}
