//! The streaming verifier that follows `esp_image_verify`, and its whole-slice forms.

use core::fmt;

use sha2::{Digest, Sha256};

use super::{
    APP_DESC_LEN, APP_DESC_OFFSET_U32, AppDesc, CHECKSUM_SEED, Chip, HASH_LEN, HEADER_LEN,
    IMAGE_MAGIC, ImageError, ImageHeader, ImagePart, MAX_SEGMENT_LEN, MAX_SEGMENTS, MMU_PAGE_SIZE,
    PREFIX_LEN, SEGMENT_HEADER_LEN, SEGMENT_HEADER_LEN_U32, SegmentInfo,
};

/// What the caller expects of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VerifyOptions {
    /// The target chip (default ESP32).
    pub chip: Chip,
    /// The chip's revision (major·100 + minor); `None` skips the revision check.
    pub chip_revision: Option<u16>,
    /// The most bytes the image may take (the partition size); `None`: no limit.
    pub max_len: Option<u32>,
}

/// Outcome of the appended-hash check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HashCheck {
    /// The header says no hash is appended.
    NotAppended,
    /// Verification did not get that far.
    Unchecked,
    /// Compared.
    Checked {
        /// Digest stored in the image.
        stored: [u8; 32],
        /// Digest of the image.
        computed: [u8; 32],
    },
}

impl HashCheck {
    /// Whether the hash was checked and matches.
    pub fn is_valid(&self) -> bool {
        matches!(self, Self::Checked { stored, computed } if stored == computed)
    }
}

/// Everything learned about an image, valid or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageReport {
    /// The header, once 24 bytes were read.
    pub header: Option<ImageHeader>,
    segments: [SegmentInfo; MAX_SEGMENTS],
    segment_count: u8,
    /// The app descriptor, once segment 0's first 256 bytes were read.
    pub app_desc: Option<AppDesc>,
    /// Stored and computed checksum, once the checksum byte was read.
    pub checksum: Option<(u8, u8)>,
    /// The hash check.
    pub hash: HashCheck,
    /// Image length (up to and including the hash), once complete.
    pub image_len: Option<u32>,
    /// The first failed check; `None` for a valid image.
    pub error: Option<ImageError>,
}

impl ImageReport {
    /// The segments whose headers were read.
    pub fn segments(&self) -> &[SegmentInfo] {
        self.segments
            .get(..usize::from(self.segment_count))
            .unwrap_or(&[])
    }

    /// Whether the image passed every check.
    pub const fn is_valid(&self) -> bool {
        self.error.is_none()
    }

    /// Whether the stored checksum matches.
    pub fn checksum_valid(&self) -> bool {
        matches!(self.checksum, Some((s, c)) if s == c)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Header,
    SegmentHeader,
    SegmentData,
    Padding,
    Checksum,
    Hash,
    Done,
}

/// Incremental image verifier: feed the image in order, in pieces of any size.
///
/// ```
/// # use fota_protocol::esp::image::{ImageVerifier, VerifyOptions};
/// # fn read(_: u32, _: &mut [u8]) {}
/// let mut v = ImageVerifier::new(VerifyOptions::default());
/// let mut buf = [0u8; 512];
/// let mut at = 0;
/// while v.wants_more() && at < 0x14_0000 {
///     read(at, &mut buf);
///     if v.update(&buf).is_err() { break; }
///     at += 512;
/// }
/// let verdict = v.finish();
/// # assert!(verdict.is_err());
/// ```
#[derive(Clone)]
pub struct ImageVerifier {
    opts: VerifyOptions,
    phase: Phase,
    pos: u32,
    buf: [u8; HEADER_LEN],
    buf_len: usize,
    report: ImageReport,
    seg_index: u8,
    seg_remaining: u32,
    desc: [u8; APP_DESC_LEN],
    desc_len: usize,
    checksum: u8,
    padded_len: u32,
    sha: Sha256,
    digest: [u8; 32],
    stored_hash: [u8; 32],
    hash_len: usize,
    fatal: bool,
}

impl fmt::Debug for ImageVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImageVerifier")
            .field("phase", &self.phase)
            .field("pos", &self.pos)
            .field("error", &self.report.error)
            .finish_non_exhaustive()
    }
}

impl ImageVerifier {
    /// A verifier expecting an image at offset 0.
    pub fn new(opts: VerifyOptions) -> Self {
        Self {
            opts,
            phase: Phase::Header,
            pos: 0,
            buf: [0; HEADER_LEN],
            buf_len: 0,
            report: ImageReport {
                header: None,
                segments: [SegmentInfo::default(); MAX_SEGMENTS],
                segment_count: 0,
                app_desc: None,
                checksum: None,
                hash: HashCheck::Unchecked,
                image_len: None,
                error: None,
            },
            seg_index: 0,
            seg_remaining: 0,
            desc: [0; APP_DESC_LEN],
            desc_len: 0,
            checksum: CHECKSUM_SEED,
            padded_len: 0,
            sha: Sha256::new(),
            digest: [0; 32],
            stored_hash: [0; 32],
            hash_len: 0,
            fatal: false,
        }
    }

    /// Whether more bytes can change the verdict: the image is not complete and no
    /// structural check failed. Bytes fed after that are ignored.
    pub fn wants_more(&self) -> bool {
        !self.fatal && self.phase != Phase::Done
    }

    /// Bytes consumed so far (never more than the image length).
    pub const fn position(&self) -> u32 {
        self.pos
    }

    /// What is known so far.
    pub const fn report(&self) -> &ImageReport {
        &self.report
    }

    /// Feeds the next bytes. Returns the first failed check as soon as it is known;
    /// checksum and hash mismatches are also returned here, once those fields are read.
    /// After a structural failure further calls return the same error.
    pub fn update(&mut self, mut data: &[u8]) -> Result<(), ImageError> {
        while !data.is_empty() && self.wants_more() {
            let used = match self.step(data) {
                Ok(n) => n,
                Err(e) => {
                    self.fail(e);
                    break;
                }
            };
            data = data.get(used..).unwrap_or(&[]);
        }
        match self.report.error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Ends the input: the report of a valid image, or the first failed check (a truncation
    /// if the image is incomplete).
    pub fn finish(mut self) -> Result<ImageReport, ImageError> {
        if self.report.error.is_none() && self.phase != Phase::Done {
            let part = self.part();
            self.fail(ImageError::Truncated {
                offset: self.pos,
                part,
            });
        }
        match self.report.error {
            Some(e) => Err(e),
            None => Ok(self.report),
        }
    }

    /// Ends the input and returns the report in both cases (`error` set when invalid,
    /// a truncation if the image is incomplete).
    pub fn into_report(self) -> ImageReport {
        let mut report = self.report;
        if report.error.is_none() && self.phase != Phase::Done {
            report.error = Some(ImageError::Truncated {
                offset: self.pos,
                part: self.part(),
            });
        }
        report
    }

    fn part(&self) -> ImagePart {
        match self.phase {
            Phase::Header => ImagePart::Header,
            Phase::SegmentHeader => ImagePart::SegmentHeader(self.seg_index),
            Phase::SegmentData => ImagePart::SegmentData(self.seg_index),
            Phase::Padding => ImagePart::Padding,
            Phase::Checksum => ImagePart::Checksum,
            Phase::Hash | Phase::Done => ImagePart::Hash,
        }
    }

    fn fail(&mut self, e: ImageError) {
        if self.report.error.is_none() {
            self.report.error = Some(e);
        }
        // Checksum and hash mismatches let the rest be read, so both verdicts are known.
        if !matches!(e, ImageError::Checksum { .. } | ImageError::Hash { .. }) {
            self.fatal = true;
        }
    }

    fn advance(&mut self, n: usize) -> Result<(), ImageError> {
        let n32 = u32::try_from(n).ok();
        self.pos = n32
            .and_then(|n| self.pos.checked_add(n))
            .ok_or(ImageError::TooLarge {
                offset: self.pos,
                max_len: u32::MAX,
            })?;
        Ok(())
    }

    /// Collects bytes into `buf` until `want` are there; returns bytes used and completion.
    fn collect(&mut self, data: &[u8], want: usize) -> (usize, bool) {
        let buf = self.buf.get_mut(..want).unwrap_or_default();
        let n = fill(buf, &mut self.buf_len, data);
        (n, self.buf_len == want)
    }

    fn step(&mut self, data: &[u8]) -> Result<usize, ImageError> {
        match self.phase {
            Phase::Header => {
                let (n, done) = self.collect(data, HEADER_LEN);
                self.hash_bytes(data.get(..n).unwrap_or(&[]));
                self.advance(n)?;
                if done {
                    self.buf_len = 0;
                    self.on_header()?;
                }
                Ok(n)
            }
            Phase::SegmentHeader => {
                let (n, done) = self.collect(data, SEGMENT_HEADER_LEN);
                self.hash_bytes(data.get(..n).unwrap_or(&[]));
                self.advance(n)?;
                if done {
                    self.buf_len = 0;
                    self.on_segment_header()?;
                }
                Ok(n)
            }
            Phase::SegmentData => {
                let take = usize::try_from(self.seg_remaining)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                let chunk = data.get(..take).unwrap_or(&[]);
                self.checksum = chunk.iter().fold(self.checksum, |c, b| c ^ b);
                self.hash_bytes(chunk);
                if self.seg_index == 0 && self.desc_len < APP_DESC_LEN {
                    fill(&mut self.desc, &mut self.desc_len, chunk);
                    if self.desc_len == APP_DESC_LEN {
                        self.on_app_desc()?;
                    }
                }
                self.advance(take)?;
                // take <= seg_remaining, so this never saturates.
                let take32 = u32::try_from(take).unwrap_or(u32::MAX);
                self.seg_remaining = self.seg_remaining.saturating_sub(take32);
                if self.seg_remaining == 0 {
                    self.next_segment()?;
                }
                Ok(take)
            }
            Phase::Padding => {
                let left = self.padded_len.saturating_sub(1).saturating_sub(self.pos);
                let take = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                self.hash_bytes(data.get(..take).unwrap_or(&[]));
                self.advance(take)?;
                if self.pos.saturating_add(1) == self.padded_len {
                    self.phase = Phase::Checksum;
                }
                Ok(take)
            }
            Phase::Checksum => {
                let Some(&stored) = data.first() else {
                    return Ok(0);
                };
                self.hash_bytes(&[stored]);
                let offset = self.pos;
                self.advance(1)?;
                self.report.checksum = Some((stored, self.checksum));
                let appended = self.report.header.is_some_and(|h| h.hash_appended == 1);
                if appended {
                    self.digest = self.sha.clone().finalize().into();
                    self.phase = Phase::Hash;
                } else {
                    self.complete()?;
                }
                if stored != self.checksum {
                    // Recorded, not returned: the hash is still read so both verdicts
                    // are known, as esptool prints them.
                    self.fail(ImageError::Checksum {
                        offset,
                        stored,
                        computed: self.checksum,
                    });
                }
                Ok(1)
            }
            Phase::Hash => {
                let take = fill(&mut self.stored_hash, &mut self.hash_len, data);
                self.advance(take)?;
                if self.hash_len == HASH_LEN {
                    self.report.hash = HashCheck::Checked {
                        stored: self.stored_hash,
                        computed: self.digest,
                    };
                    self.complete()?;
                    if self.stored_hash != self.digest {
                        self.fail(ImageError::Hash {
                            offset: self.padded_len,
                            stored: self.stored_hash,
                            computed: self.digest,
                        });
                    }
                }
                Ok(take)
            }
            Phase::Done => Ok(data.len()),
        }
    }

    fn hash_bytes(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
    }

    fn complete(&mut self) -> Result<(), ImageError> {
        self.phase = Phase::Done;
        self.report.image_len = Some(self.pos);
        if let Some(max_len) = self.opts.max_len
            && self.pos > max_len
        {
            return Err(ImageError::TooLarge {
                offset: max_len,
                max_len,
            });
        }
        Ok(())
    }

    fn on_header(&mut self) -> Result<(), ImageError> {
        let h = ImageHeader::decode(&self.buf);
        self.report.header = Some(h);
        if h.magic != IMAGE_MAGIC {
            return Err(ImageError::BadMagic {
                offset: 0,
                found: h.magic,
            });
        }
        let expected = self.opts.chip.id();
        if h.chip_id != expected {
            return Err(ImageError::ChipMismatch {
                offset: 12,
                expected,
                found: h.chip_id,
            });
        }
        if let Some(revision) = self.opts.chip_revision {
            let (min, max) = (h.min_chip_rev_full, h.max_chip_rev_full);
            if revision < min {
                return Err(ImageError::ChipRevision {
                    offset: 15,
                    revision,
                    min,
                    max,
                });
            }
            let max_set = max != 0 && max != u16::MAX;
            if max_set && revision > max {
                return Err(ImageError::ChipRevision {
                    offset: 17,
                    revision,
                    min,
                    max,
                });
            }
        }
        if h.segment_count == 0 || usize::from(h.segment_count) > MAX_SEGMENTS {
            return Err(ImageError::SegmentCount {
                offset: 1,
                count: h.segment_count,
            });
        }
        if h.hash_appended > 1 {
            return Err(ImageError::HashAppendedFlag {
                offset: 23,
                value: h.hash_appended,
            });
        }
        if h.hash_appended == 0 {
            self.report.hash = HashCheck::NotAppended;
        }
        self.phase = Phase::SegmentHeader;
        Ok(())
    }

    fn on_segment_header(&mut self) -> Result<(), ImageError> {
        let [a0, a1, a2, a3, l0, l1, l2, l3, ..] = self.buf;
        let load_addr = u32::from_le_bytes([a0, a1, a2, a3]);
        let data_len = u32::from_le_bytes([l0, l1, l2, l3]);
        let header_offset = self.pos.saturating_sub(SEGMENT_HEADER_LEN_U32);
        // The segment header was read, so its offset plus 4 is inside the image.
        let len_offset = header_offset.saturating_add(4);
        let index = self.seg_index;
        let info = SegmentInfo {
            load_addr,
            data_len,
            data_offset: self.pos,
        };
        if let Some(slot) = self.report.segments.get_mut(usize::from(index)) {
            *slot = info;
            // index < MAX_SEGMENTS, or there would be no slot.
            self.report.segment_count = index.saturating_add(1);
        }
        if data_len % 4 != 0 || data_len >= MAX_SEGMENT_LEN {
            return Err(ImageError::SegmentLength {
                offset: len_offset,
                index,
                len: data_len,
            });
        }
        if index == 0 && (data_len as usize) < APP_DESC_LEN {
            return Err(ImageError::FirstSegmentTooShort {
                offset: len_offset,
                len: data_len,
            });
        }
        if self.opts.chip.is_flash_mapped(load_addr)
            && self.pos % MMU_PAGE_SIZE != load_addr % MMU_PAGE_SIZE
        {
            return Err(ImageError::MmuAlignment {
                offset: header_offset,
                index,
                load_addr,
                data_offset: self.pos,
            });
        }
        if let Some(max_len) = self.opts.max_len
            && self
                .pos
                .checked_add(data_len)
                .is_none_or(|end| end > max_len)
        {
            return Err(ImageError::TooLarge {
                offset: max_len,
                max_len,
            });
        }
        self.seg_remaining = data_len;
        self.phase = Phase::SegmentData;
        if data_len == 0 {
            self.next_segment()?;
        }
        Ok(())
    }

    fn on_app_desc(&mut self) -> Result<(), ImageError> {
        let desc = AppDesc::from_bytes(&self.desc).unwrap_or(AppDesc::EMPTY);
        self.report.app_desc = Some(desc);
        if !desc.magic_ok() {
            return Err(ImageError::AppDescMagic {
                offset: APP_DESC_OFFSET_U32,
                found: desc.magic,
            });
        }
        Ok(())
    }

    fn next_segment(&mut self) -> Result<(), ImageError> {
        let count = self.report.header.map_or(0, |h| h.segment_count);
        self.seg_index = self.seg_index.saturating_add(1);
        if self.seg_index < count {
            self.phase = Phase::SegmentHeader;
            return Ok(());
        }
        // The checksum is the last byte of the 16-byte block that follows the data.
        self.padded_len =
            self.pos
                .checked_add(16)
                .map(|v| v & !15)
                .ok_or(ImageError::TooLarge {
                    offset: self.pos,
                    max_len: u32::MAX,
                })?;
        self.phase = if self.pos.saturating_add(1) == self.padded_len {
            Phase::Checksum
        } else {
            Phase::Padding
        };
        Ok(())
    }
}

/// Appends the start of `src` to the `*len` bytes already in `dst`, as much as fits; returns
/// the bytes taken.
fn fill(dst: &mut [u8], len: &mut usize, src: &[u8]) -> usize {
    let free = dst.get_mut(*len..).unwrap_or_default();
    let n = free.len().min(src.len());
    for (d, &s) in free.iter_mut().zip(src) {
        *d = s;
    }
    // *len + n <= dst.len(): never saturates.
    *len = len.saturating_add(n);
    n
}

/// Verifies a whole image held in memory; trailing bytes after the image are ignored.
pub fn verify(bytes: &[u8], opts: VerifyOptions) -> Result<ImageReport, ImageError> {
    let mut v = ImageVerifier::new(opts);
    // The first failure is also recorded in the verifier; `finish` reports it.
    let _ = v.update(bytes);
    v.finish()
}

/// Inspects a whole image held in memory: the report, with `error` set when invalid.
pub fn inspect(bytes: &[u8], opts: VerifyOptions) -> ImageReport {
    let mut v = ImageVerifier::new(opts);
    let _ = v.update(bytes);
    v.into_report()
}

/// The first [`PREFIX_LEN`] bytes of an image, checked: what an agent can decide from the
/// first chunk (magic, chip, segment count, hash flag, segment 0, app descriptor, version,
/// project, secure version).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImagePrefix {
    /// The image header.
    pub header: ImageHeader,
    /// Segment 0.
    pub first_segment: SegmentInfo,
    /// The app descriptor.
    pub app_desc: AppDesc,
}

impl ImagePrefix {
    /// Runs every check that the first [`PREFIX_LEN`] bytes allow (`max_len` included for
    /// segment 0). Bytes past [`PREFIX_LEN`] are not looked at.
    pub fn parse(bytes: &[u8], opts: VerifyOptions) -> Result<Self, ImageError> {
        let mut v = ImageVerifier::new(opts);
        v.update(bytes.get(..PREFIX_LEN).unwrap_or(bytes))?;
        let r = v.report;
        match (r.header, r.segments().first(), r.app_desc) {
            (Some(header), Some(&first_segment), Some(app_desc)) => Ok(Self {
                header,
                first_segment,
                app_desc,
            }),
            _ => Err(ImageError::Truncated {
                offset: v.pos,
                part: v.part(),
            }),
        }
    }
}
