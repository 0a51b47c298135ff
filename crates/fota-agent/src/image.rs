//! Image read-back: a slot streamed from flash through the ESP image verifier and SHA-256,
//! in pieces the size of a scratch buffer, never holding the image.

use embedded_storage::nor_flash::NorFlash;
use fota_protocol::esp::image::{
    AppDesc, ImagePrefix, ImageReport, ImageVerifier, PREFIX_LEN, VerifyOptions,
};
use sha2::{Digest, Sha256};

use crate::error::AgentError;
use crate::flash::{Region, Storage};

/// What a read-back found.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scan {
    /// The verifier's report (`error` set when the image is invalid).
    pub(crate) report: ImageReport,
    /// SHA-256 of the bytes hashed.
    pub(crate) sha256: [u8; 32],
    /// Bytes hashed: the exact size asked for, or the image's own length.
    pub(crate) hashed: u32,
}

impl Scan {
    /// Valid ESP image whose own length is exactly what was hashed.
    pub(crate) fn is_valid_exact(&self) -> bool {
        self.report.is_valid() && self.report.image_len == Some(self.hashed)
    }

    /// The app descriptor, when the image got that far.
    pub(crate) fn app_desc(&self) -> Option<AppDesc> {
        self.report.app_desc
    }
}

/// Streams `region` from its start through the verifier (`max_len` = the region size) and
/// SHA-256. With `exact = Some(n)` exactly `n` bytes are hashed and fed (a valid image must
/// then be exactly `n` bytes long); with `None` the bytes of the image itself are hashed, up
/// to where the verifier stops.
pub(crate) fn scan<F: NorFlash>(
    storage: &mut Storage<F>,
    region: Region,
    exact: Option<u64>,
    scratch: &mut [u8],
) -> Result<Scan, AgentError> {
    if scratch.is_empty() {
        return Err(AgentError::BufferTooSmall("scan scratch"));
    }
    let limit = match exact {
        Some(n) => u32::try_from(n)
            .ok()
            .filter(|&n| n <= region.size())
            .ok_or(AgentError::OutOfRegion {
                region: region.offset(),
                offset: 0,
                len: u32::try_from(n).unwrap_or(u32::MAX),
            })?,
        None => region.size(),
    };
    let mut verifier = ImageVerifier::new(VerifyOptions {
        max_len: Some(region.size()),
        ..VerifyOptions::default()
    });
    let mut sha = Sha256::new();
    let mut at = 0u32;
    let mut hashed = 0u32;
    let most = u32::try_from(scratch.len()).unwrap_or(u32::MAX);
    while let Some(left) = limit.checked_sub(at).filter(|&l| l > 0) {
        if exact.is_none() && !verifier.wants_more() {
            break;
        }
        let n = left.min(most);
        let piece = scratch
            .get_mut(..n as usize)
            .ok_or(AgentError::BufferTooSmall("scan scratch"))?;
        storage.read(region, at, piece)?;
        let before = verifier.position();
        // The verdict is read from the report at the end.
        let _ = verifier.update(piece);
        // Both sums stay below `limit`, a u32: nothing saturates.
        if exact.is_some() {
            sha.update(&*piece);
            hashed = hashed.saturating_add(n);
        } else {
            let used = verifier.position().saturating_sub(before);
            sha.update(piece.get(..used as usize).unwrap_or(&[]));
            hashed = hashed.saturating_add(used);
        }
        at = at.saturating_add(n);
    }
    Ok(Scan {
        report: verifier.into_report(),
        sha256: sha.finalize().into(),
        hashed,
    })
}

/// The first bytes of the app in `region`, checked (header, segment 0, app descriptor).
pub(crate) fn prefix<F: NorFlash>(
    storage: &mut Storage<F>,
    region: Region,
) -> Result<Option<ImagePrefix>, AgentError> {
    let mut buf = [0u8; PREFIX_LEN];
    if u64::from(region.size()) < PREFIX_LEN as u64 {
        return Ok(None);
    }
    storage.read(region, 0, &mut buf)?;
    Ok(ImagePrefix::parse(
        &buf,
        VerifyOptions {
            max_len: Some(region.size()),
            ..VerifyOptions::default()
        },
    )
    .ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fota_flash_sim::{Config, SimFlash};
    use fota_protocol::esp::build::{AppImageSpec, build_app_image};

    #[test]
    fn read_back_hashes_exactly_what_is_asked() {
        let img = build_app_image(&AppImageSpec::new("1.2.3")).unwrap();
        let mut flash = SimFlash::new(Config::ESP32.with_capacity(0x40000)).unwrap();
        flash.preload(0x10000, &img).unwrap();
        let mut s = Storage::new(flash).map_err(|e| e.0).unwrap();
        let slot = Region::new(0x10000, 0x30000).unwrap();
        let mut scratch = [0u8; 700];
        let own = scan(&mut s, slot, None, &mut scratch).unwrap();
        assert!(own.report.is_valid());
        assert_eq!(own.hashed as usize, img.len());
        assert_eq!(own.sha256, <[u8; 32]>::from(Sha256::digest(&img)));
        let exact = scan(&mut s, slot, Some(img.len() as u64), &mut scratch).unwrap();
        assert!(exact.is_valid_exact());
        // One byte more than the image: trailing data is not the release.
        let over = scan(&mut s, slot, Some(img.len() as u64 + 1), &mut scratch).unwrap();
        assert!(!over.is_valid_exact());
        assert_eq!(
            prefix(&mut s, slot).unwrap().unwrap().app_desc.version(),
            Some("1.2.3")
        );
        assert!(scan(&mut s, slot, Some(0x30001), &mut scratch).is_err());
        assert!(scan(&mut s, slot, None, &mut []).is_err());
    }
}
