//! Release bundles: a signed release in one file, so that it can be signed where the release
//! key lives (`fota release create --offline -o release.fota`) and uploaded from elsewhere
//! (`fota release upload release.fota`).
//!
//! Layout, integers little-endian:
//!
//! | offset | size | field | meaning |
//! |---|---|---|---|
//! | 0 | 4 | magic | `FOTB` |
//! | 4 | 4 | format | u32, 1 |
//! | 8 | 4 | class_len | u32, 1..=64 |
//! | 12 | class_len | class | class name, UTF-8 |
//! | … | 4 | manifest_len | u32, ≤ the longest manifest envelope |
//! | … | manifest_len | manifest | the signed manifest envelope (`FOTM`) |
//! | … | 4 | hashlist_len | u32, ≤ 16 MiB |
//! | … | hashlist_len | hashlist | the chunk hash list (`FHL1`) |
//! | … | 8 | image_len | u64, ≤ 16 MiB |
//! | … | image_len | image | the ESP32 app image; the file ends here |
//!
//! The image comes last so an upload streams it straight from the file. The bundle carries no
//! signature of its own: the manifest inside is signed, and the server checks the class name,
//! hash list and image against it.

use std::fs::File;
use std::io::{self, Read, Seek as _, SeekFrom, Write};
use std::path::Path;

use fota_protocol::v2::envelope::{self, Envelope};
use fota_protocol::v2::manifest::MAX_IMAGE_SIZE;

use crate::release::SignedRelease;

/// First bytes of a bundle.
pub const MAGIC: [u8; 4] = *b"FOTB";
/// The format version this crate writes and reads.
pub const FORMAT: u32 = 1;
/// Longest class name.
pub const MAX_CLASS_LEN: u32 = 64;
/// Longest hash list: 32 bytes per chunk of a 16 MiB image in 1 KiB chunks, plus the table.
pub const MAX_HASHLIST_LEN: u32 = 1 << 24;

/// Why a bundle could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The file could not be read or written.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The file is not a bundle of a format this crate reads.
    #[error("not a release bundle: {0}")]
    Format(String),
}

/// Everything of a bundle but the image, which the reader is left positioned at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleHead {
    /// Class name.
    pub class: String,
    /// The signed manifest envelope.
    pub manifest: Vec<u8>,
    /// The chunk hash list.
    pub hashlist: Vec<u8>,
    /// Length of the image that follows.
    pub image_len: u64,
}

/// Writes a bundle of `release` and its `image` to `out`.
pub fn write(out: &mut dyn Write, release: &SignedRelease, image: &[u8]) -> io::Result<()> {
    let len32 = |n: usize| {
        u32::try_from(n).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "part too large"))
    };
    out.write_all(&MAGIC)?;
    out.write_all(&FORMAT.to_le_bytes())?;
    for part in [
        release.class.as_bytes(),
        &release.manifest,
        &release.hashlist,
    ] {
        out.write_all(&len32(part.len())?.to_le_bytes())?;
        out.write_all(part)?;
    }
    out.write_all(&(image.len() as u64).to_le_bytes())?;
    out.write_all(image)?;
    out.flush()
}

fn format_err(msg: impl Into<String>) -> BundleError {
    BundleError::Format(msg.into())
}

fn read_array<const N: usize>(r: &mut dyn Read, what: &str) -> Result<[u8; N], BundleError> {
    let mut buf = [0u8; N];
    r.read_exact(&mut buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => format_err(format!("truncated in {what}")),
        _ => BundleError::Io(e),
    })?;
    Ok(buf)
}

fn read_part(r: &mut dyn Read, what: &str, max: u32) -> Result<Vec<u8>, BundleError> {
    let len = u32::from_le_bytes(read_array(r, what)?);
    if len > max {
        return Err(format_err(format!("{what} of {len} bytes (at most {max})")));
    }
    let mut buf = vec![0u8; len as usize];
    r.read_exact(&mut buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => format_err(format!("truncated in {what}")),
        _ => BundleError::Io(e),
    })?;
    Ok(buf)
}

/// Reads a bundle's head from `r`, leaving `r` at the first image byte. Checks the framing and
/// that the manifest is a well-formed envelope (its signatures are the server's to check).
pub fn read_head(r: &mut dyn Read) -> Result<BundleHead, BundleError> {
    if read_array::<4>(r, "magic")? != MAGIC {
        return Err(format_err("bad magic (expected FOTB)"));
    }
    let format = u32::from_le_bytes(read_array(r, "format")?);
    if format != FORMAT {
        return Err(format_err(format!(
            "format {format}; this version reads format {FORMAT}"
        )));
    }
    let class = read_part(r, "class", MAX_CLASS_LEN)?;
    let class = String::from_utf8(class).map_err(|_| format_err("class is not UTF-8"))?;
    if class.is_empty() {
        return Err(format_err("empty class"));
    }
    let manifest = read_part(r, "manifest", envelope::MAX_ENVELOPE_LEN as u32)?;
    Envelope::parse(&envelope::MANIFEST, &manifest)
        .map_err(|e| format_err(format!("manifest: {e}")))?;
    let hashlist = read_part(r, "hashlist", MAX_HASHLIST_LEN)?;
    let image_len = u64::from_le_bytes(read_array(r, "image length")?);
    if image_len == 0 || image_len > MAX_IMAGE_SIZE {
        return Err(format_err(format!(
            "image of {image_len} bytes (1 to {MAX_IMAGE_SIZE})"
        )));
    }
    Ok(BundleHead {
        class,
        manifest,
        hashlist,
        image_len,
    })
}

/// Opens the bundle at `path`: its head, and the file positioned at the image, whose length
/// is checked against the file's.
pub fn open(path: &Path) -> Result<(BundleHead, File), BundleError> {
    let mut file = File::open(path)?;
    let head = read_head(&mut io::BufReader::new(&mut file))?;
    // The BufReader may have read past the head; seek to exactly where the image starts.
    let start = head_len(&head);
    let file_len = file.metadata()?.len();
    if file_len != start + head.image_len {
        return Err(format_err(format!(
            "the file has {file_len} bytes; its header says {}",
            start + head.image_len
        )));
    }
    file.seek(SeekFrom::Start(start))?;
    Ok((head, file))
}

fn head_len(head: &BundleHead) -> u64 {
    (4 + 4 + 4 + head.class.len() + 4 + head.manifest.len() + 4 + head.hashlist.len() + 8) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (SignedRelease, Vec<u8>) {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let manifest = envelope::MANIFEST.sign(&[1u8; 256], &[&key]).unwrap();
        let release = SignedRelease {
            class: "ecowatt-v1".into(),
            manifest,
            hashlist: b"FHL1 not really".to_vec(),
            body: dummy_body(),
        };
        (release, vec![0xE9; 5000])
    }

    fn dummy_body() -> fota_protocol::v2::ManifestBody {
        use fota_protocol::v2::{Component, FixedStr, PayloadFormat};
        fota_protocol::v2::ManifestBody {
            vendor_id: [0; 16],
            class_id: [0; 16],
            device_id: [0; 16],
            sequence: 1,
            security_counter: 0,
            payload_format: PayloadFormat::RawEspApp,
            component: Component::Application,
            fw_version: FixedStr::new("1").unwrap(),
            project_name: FixedStr::new("p").unwrap(),
            issued_at: 0,
            expires_at: 0,
            image_size: 5000,
            chunk_size: 1024,
            chunk_count: 5,
            image_sha256: [0; 32],
            chunk_list_sha256: [0; 32],
            precursor_sha256: [0; 32],
        }
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
