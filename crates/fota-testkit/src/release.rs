//! Signed releases as the signing tools make them: the manifest body derived from the image by
//! `fota_api::release::manifest_body` (the one place a manifest is derived from an image),
//! optionally edited (a test of a refusal changes one field), signed with the given keys; and
//! the multipart upload form the server takes.

use ed25519_dalek::SigningKey;
use fota_api::multipart::Form;
use fota_api::release::{ManifestFields, manifest_body};
use fota_protocol::v2::hashlist::{HashList, HashListLayout};
use fota_protocol::v2::{self, ManifestBody};

/// The default fields of a test release: class `class` of `vendor`, `version` at `sequence`,
/// `chunk_size` chunks, project `ecowatt`, signed now, never expiring.
pub fn fields<'a>(
    vendor: uuid::Uuid,
    class: &'a str,
    version: &'a str,
    sequence: u64,
    chunk_size: u32,
) -> ManifestFields<'a> {
    ManifestFields {
        vendor_id: vendor,
        class,
        sequence,
        security_counter: 0,
        version,
        project: "ecowatt",
        chunk_size,
        issued_at: crate::unix_now().saturating_sub(60),
        expires_at: 0,
        format: v2::ManifestFormat::V3,
        chip_id: v2::chip_ids::ESP32,
    }
}

/// The manifest body and hash list of `image` under `fields`, not signed.
pub fn unsigned(image: &[u8], fields: &ManifestFields<'_>) -> (ManifestBody, HashList) {
    let u = manifest_body(image, fields).expect("manifest fields");
    let layout = HashListLayout::new(image.len() as u64, fields.chunk_size).expect("layout");
    let list = HashList {
        blob: u.hashlist,
        chunk_list_sha256: u.body.chunk_list_sha256,
        layout,
    };
    (u.body, list)
}

/// A signed release: everything an upload or an in-memory server needs.
#[derive(Debug, Clone)]
pub struct Built {
    /// The image.
    pub image: Vec<u8>,
    /// The manifest's fields.
    pub body: ManifestBody,
    /// The signed manifest envelope.
    pub manifest: Vec<u8>,
    /// The hash list the manifest commits to.
    pub hashlist: HashList,
}

impl Built {
    /// Signs `body` (as edited) over `image` with `keys`.
    pub fn sign(
        image: Vec<u8>,
        body: ManifestBody,
        hashlist: HashList,
        keys: &[&SigningKey],
    ) -> Self {
        let manifest = body.sign(keys).expect("manifest signs");
        Self {
            image,
            body,
            manifest,
            hashlist,
        }
    }

    /// The manifest digest devices report.
    pub fn digest(&self) -> [u8; 32] {
        v2::manifest_digest(&self.manifest)
    }

    /// The release id the server gives it.
    pub fn id(&self) -> String {
        fota_api::release::release_id(&self.digest())
    }

    /// The image's SHA-256, lowercase hex.
    pub fn sha256_hex(&self) -> String {
        hex::encode(crate::sha256(&self.image))
    }

    /// The firmware version.
    pub fn version(&self) -> &str {
        self.body.fw_version.as_str()
    }

    /// Signs the (edited) body again with `keys`.
    pub fn resign(&mut self, keys: &[&SigningKey]) {
        self.manifest = self.body.sign(keys).expect("manifest signs");
    }

    /// The upload form of this release, with the `class` field when given.
    pub fn upload_form(&self, class: Option<&str>) -> (String, Vec<u8>) {
        upload_form(class, &self.manifest, &self.hashlist.blob, &self.image)
    }
}

/// `image` under `fields`, edited by `edit`, signed with `keys`.
pub fn build(
    image: Vec<u8>,
    fields: &ManifestFields<'_>,
    edit: impl FnOnce(&mut ManifestBody),
    keys: &[&SigningKey],
) -> Built {
    let (mut body, hashlist) = unsigned(&image, fields);
    edit(&mut body);
    Built::sign(image, body, hashlist, keys)
}

/// The boundary of every test upload (no part of a test release contains it).
pub const BOUNDARY: &str = "fota-testkit-boundary-7d1b";

/// A release upload as `multipart/form-data`: (content type, body). Parts in the server's
/// order; `class` only when given.
pub fn upload_form(
    class: Option<&str>,
    manifest: &[u8],
    hashlist: &[u8],
    image: &[u8],
) -> (String, Vec<u8>) {
    let mut parts: Vec<(&str, &[u8])> = Vec::new();
    if let Some(c) = class {
        parts.push(("class", c.as_bytes()));
    }
    parts.extend([
        ("manifest", manifest),
        ("hashlist", hashlist),
        ("image", image),
    ]);
    form(&parts)
}

/// Any multipart form of binary parts: (content type, body).
pub fn form(parts: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let f = Form::new(BOUNDARY);
    (f.content_type(), f.encode(parts))
}
