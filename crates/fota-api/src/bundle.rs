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
//!
//! This module reads from any [`Read`] and writes to any [`Write`]; opening the file, and
//! checking its length against [`BundleHead::len`] + [`BundleHead::image_len`], is the
//! caller's.

use std::io::{self, Read, Write};

use fota_protocol::v2::envelope;
use fota_protocol::v2::manifest::MAX_IMAGE_SIZE;

use crate::release::ReleaseParts;

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
    /// The reader or writer failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The bytes are not a bundle of a format this crate reads.
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

impl BundleHead {
    /// The parts the upload endpoint takes besides the image.
    pub fn parts(&self) -> ReleaseParts<'_> {
        ReleaseParts {
            class: &self.class,
            manifest: &self.manifest,
            hashlist: &self.hashlist,
        }
    }

    /// Length in bytes of the head: where the image starts.
    #[expect(clippy::len_without_is_empty, reason = "a head is never empty")]
    pub fn len(&self) -> u64 {
        (4 + 4 + 4 + self.class.len() + 4 + self.manifest.len() + 4 + self.hashlist.len() + 8)
            as u64
    }
}

/// Writes a bundle of the signed release `parts` and its `image` to `out`.
pub fn write(out: &mut dyn Write, parts: ReleaseParts<'_>, image: &[u8]) -> io::Result<()> {
    let len32 = |n: usize| {
        u32::try_from(n).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "part too large"))
    };
    out.write_all(&MAGIC)?;
    out.write_all(&FORMAT.to_le_bytes())?;
    for part in [parts.class.as_bytes(), parts.manifest, parts.hashlist] {
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
    fota_protocol::v2::manifest::parse_envelope(&manifest)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (BundleHead, Vec<u8>) {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let manifest = envelope::MANIFEST.sign(&[1u8; 256], &[&key]).unwrap();
        let image = vec![0xE9; 5000];
        let head = BundleHead {
            class: "ecowatt-v1".into(),
            manifest,
            hashlist: b"FHL1 not really".to_vec(),
            image_len: image.len() as u64,
        };
        (head, image)
    }

    #[test]
    fn a_read_head_leaves_the_reader_at_the_image() {
        let (head, image) = sample();
        let mut bytes = Vec::new();
        write(&mut bytes, head.parts(), &image).unwrap();
        assert_eq!(bytes.len() as u64, head.len() + head.image_len);
        let mut r = io::Cursor::new(&bytes);
        assert_eq!(read_head(&mut r).unwrap(), head);
        assert_eq!(r.position(), head.len());
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, image);
    }

    #[test]
    fn a_damaged_head_is_not_a_bundle() {
        let (head, image) = sample();
        let mut bytes = Vec::new();
        write(&mut bytes, head.parts(), &image).unwrap();
        let mut manifest_damaged = bytes.clone();
        manifest_damaged[4 + 4 + 4 + head.class.len() + 4] ^= 0xFF;
        for (name, damaged) in [
            ("magic", [b"XOTB".as_slice(), &bytes[4..]].concat()),
            (
                "format",
                [&bytes[..4], &2u32.to_le_bytes(), &bytes[8..]].concat(),
            ),
            ("truncated", bytes[..20].to_vec()),
            ("manifest", manifest_damaged),
        ] {
            assert!(
                matches!(read_head(&mut &damaged[..]), Err(BundleError::Format(_))),
                "{name} accepted"
            );
        }
    }
}
