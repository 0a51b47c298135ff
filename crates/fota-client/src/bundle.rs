//! Release bundles on disk: [`write()`] and [`open`] put `fota_api::bundle`'s format (a signed
//! release in one file, `release.fota`) into files, so that signing (offline, where the
//! release key lives) and uploading can happen on different machines.

use std::fs::File;
use std::io::{self, Seek as _, SeekFrom, Write};
use std::path::Path;

pub use fota_api::bundle::{
    BundleError, BundleHead, FORMAT, MAGIC, MAX_CLASS_LEN, MAX_HASHLIST_LEN, read_head,
};

use crate::release::SignedRelease;

/// Writes a bundle of `release` and its `image` to `out`.
pub fn write(out: &mut dyn Write, release: &SignedRelease, image: &[u8]) -> io::Result<()> {
    fota_api::bundle::write(out, release.parts(), image)
}

/// Opens the bundle at `path`: its head, and the file positioned at the image, whose length
/// is checked against the file's.
pub fn open(path: &Path) -> Result<(BundleHead, File), BundleError> {
    let mut file = File::open(path)?;
    let head = read_head(&mut io::BufReader::new(&mut file))?;
    // The BufReader may have read past the head; seek to exactly where the image starts.
    let start = head.len();
    let file_len = file.metadata()?.len();
    if file_len != start + head.image_len {
        return Err(BundleError::Format(format!(
            "the file has {file_len} bytes; its header says {}",
            start + head.image_len
        )));
    }
    file.seek(SeekFrom::Start(start))?;
    Ok((head, file))
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    fn sample() -> (SignedRelease, Vec<u8>) {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let manifest = fota_protocol::v2::envelope::MANIFEST
            .sign(&[1u8; 256], &[&key])
            .unwrap();
        let image = vec![0xE9; 5000];
        let unsigned = fota_api::release::manifest_body(
            &image,
            &fota_api::release::ManifestFields {
                vendor_id: uuid::Uuid::nil(),
                class: "ecowatt-v1",
                sequence: 1,
                security_counter: 0,
                version: "1",
                project: "p",
                chunk_size: 1024,
                issued_at: 0,
                expires_at: 0,
                format: fota_protocol::v2::ManifestFormat::V3,
                chip_id: fota_protocol::v2::chip_ids::ESP32,
            },
        )
        .unwrap();
        let release = SignedRelease {
            class: "ecowatt-v1".into(),
            manifest,
            hashlist: b"FHL1 not really".to_vec(),
            body: unsigned.body,
        };
        (release, image)
    }

    #[test]
    fn round_trip_leaves_the_file_at_the_image() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.fota");
        let (release, image) = sample();
        let mut f = File::create(&path).unwrap();
        write(&mut f, &release, &image).unwrap();
        drop(f);
        let (head, mut file) = open(&path).unwrap();
        assert_eq!(head.class, release.class);
        assert_eq!(head.manifest, release.manifest);
        assert_eq!(head.hashlist, release.hashlist);
        assert_eq!(head.image_len, image.len() as u64);
        let mut rest = Vec::new();
        file.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, image);
    }

    #[test]
    fn rejects_damage() {
        let (release, image) = sample();
        let mut bytes = Vec::new();
        write(&mut bytes, &release, &image).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.fota");

        // Truncated image, extra bytes, bad magic, a truncated head.
        for (name, damaged) in [
            ("short", bytes[..bytes.len() - 1].to_vec()),
            ("long", [bytes.as_slice(), b"x"].concat()),
            ("magic", [b"XOTB".as_slice(), &bytes[4..]].concat()),
            ("head", bytes[..20].to_vec()),
        ] {
            std::fs::write(&path, &damaged).unwrap();
            assert!(
                matches!(open(&path), Err(BundleError::Format(_))),
                "{name} accepted"
            );
        }
    }
}
