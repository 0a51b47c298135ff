//! The one error type of the v2 records.

use crate::codec::CodecError;
use crate::v2::keys::Role;

/// Why a v2 record was rejected. Each variant names the check that failed; offsets are byte
/// offsets into the record (or, for hash-list checks, into the hash-list blob).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Framing: the input was truncated, had trailing bytes, or an output buffer was too small.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The record does not start with the magic of the expected kind.
    #[error("bad magic {found:02x?} at offset 0x0, expected {expected:02x?}")]
    BadMagic {
        /// Magic the decoder wanted.
        expected: [u8; 4],
        /// Magic found in the input.
        found: [u8; 4],
    },
    /// The format version is not the one this decoder understands.
    #[error("unsupported format version {found} at offset 0x4, expected {expected}")]
    FormatVersion {
        /// Version the decoder understands.
        expected: u16,
        /// Version found in the input.
        found: u16,
    },
    /// An envelope body is longer than an envelope may carry.
    #[error("envelope body of {len} bytes exceeds the maximum of {max}")]
    BodyTooLong {
        /// Declared (or given) body length.
        len: usize,
        /// Largest body allowed.
        max: usize,
    },
    /// An envelope body does not have the exact length its kind and version require.
    #[error("body is {found} bytes, this format requires {expected}")]
    BodyLength {
        /// Length the format requires.
        expected: usize,
        /// Length found.
        found: usize,
    },
    /// The signature count is 0 or more than [`MAX_SIGNATURES`](crate::v2::envelope::MAX_SIGNATURES).
    #[error("signature count {count} at offset {offset:#x} is outside 1..=8")]
    SignatureCount {
        /// Offset of the count byte.
        offset: usize,
        /// Count found (or, when signing, keys given).
        count: usize,
    },
    /// Fewer distinct trusted keys of the role produced a valid signature than its threshold.
    #[error(
        "{role} threshold not met: {verified} valid signatures from distinct keys, {required} required"
    )]
    ThresholdNotMet {
        /// Role whose keys were required.
        role: Role,
        /// Distinct keys whose signature verified.
        verified: u8,
        /// The role's threshold.
        required: u8,
    },
    /// No signature names a trusted key of the role: the signer is unknown, or was revoked
    /// by a root rotation (a verifier holds only its current root record, so it cannot tell
    /// which).
    #[error(
        "signed only by keys that are not {role} keys of the trusted root (unknown or revoked)"
    )]
    UnknownKey {
        /// Role whose keys were required.
        role: Role,
    },
    /// A public key in a key set is not a valid Ed25519 point.
    #[error("{role} key {index} is not a valid Ed25519 public key")]
    InvalidKey {
        /// Role of the key set.
        role: Role,
        /// Index of the key in its role.
        index: usize,
    },
    /// A public key in a key set has small order: it would verify forged signatures.
    #[error("{role} key {index} is a weak (small-order) key")]
    WeakKey {
        /// Role of the key set.
        role: Role,
        /// Index of the key in its role.
        index: usize,
    },
    /// A public key appears twice in one role: it would count twice towards the threshold.
    #[error("{role} key {index} repeats an earlier key of the role")]
    DuplicateKey {
        /// Role of the key set.
        role: Role,
        /// Index of the repeated key.
        index: usize,
    },
    /// A role's threshold or key count is out of range.
    #[error(
        "{role} has threshold {threshold} with {key_count} keys; need 1 <= threshold <= key_count <= 8"
    )]
    RoleThreshold {
        /// Role of the key set.
        role: Role,
        /// Threshold found.
        threshold: usize,
        /// Number of keys found.
        key_count: usize,
    },
    /// A root update does not carry the version right after the trusted one.
    #[error("root record version {found}, expected {expected}")]
    RootVersion {
        /// trusted.version + 1.
        expected: u32,
        /// Version of the new record.
        found: u32,
    },
    /// A root update names another vendor than the trusted root.
    #[error("root record vendor id differs from the trusted root's")]
    RootVendorChanged,
    /// A field of a record fails a check.
    #[error("field `{field}` at offset {offset:#x}: {check}")]
    Field {
        /// Name of the field, as in the layout table.
        field: &'static str,
        /// Offset of the field in its record.
        offset: usize,
        /// What is wrong with it.
        check: FieldCheck,
    },
    /// The manifest's chunk count is not `ceil(image_size / chunk_size)`.
    #[error("chunk_count is {found}, image_size and chunk_size give {expected}")]
    ChunkCount {
        /// ceil(image_size / chunk_size), or `u32::MAX` when that overflows.
        expected: u32,
        /// chunk_count found.
        found: u32,
    },
    /// The status statement echoes another nonce than the one the device sent.
    #[error("status statement nonce differs from the check-in nonce")]
    NonceMismatch,
    /// The status statement (or an event) is for another device.
    #[error("status statement is for another device")]
    DeviceMismatch,
    /// The hash-list header or page-digest table does not hash to the manifest's
    /// `chunk_list_sha256`.
    #[error("hash-list table does not match the manifest's chunk_list_sha256")]
    TableDigestMismatch,
    /// The hash-list table ended early or ran past its length while streaming.
    #[error("hash-list table: {fed} bytes fed, the table is {expected} bytes")]
    TableLength {
        /// Bytes fed so far.
        fed: u64,
        /// Length of header plus page-digest table.
        expected: u64,
    },
    /// A page index is not below the page count.
    #[error("hash-list page {page} does not exist (page count {page_count})")]
    PageIndex {
        /// Page asked for.
        page: u32,
        /// Pages in the list.
        page_count: u32,
    },
    /// A fetched page does not have the page's length.
    #[error("hash-list page {page} is {found} bytes, expected {expected}")]
    PageLength {
        /// Page index.
        page: u32,
        /// Length the layout gives.
        expected: usize,
        /// Length received.
        found: usize,
    },
    /// A fetched page does not hash to its digest in the verified table.
    #[error("hash-list page {page} does not match its digest")]
    PageDigestMismatch {
        /// Page index.
        page: u32,
    },
    /// A chunk index is not covered by the page (or is beyond the chunk count).
    #[error("chunk {index} is not in hash-list page {page}")]
    ChunkIndex {
        /// Chunk index asked for.
        index: u32,
        /// Page that was checked.
        page: u32,
    },
    /// A chunk does not have the length its index gives (the last one is the remainder).
    #[error("chunk {index} is {found} bytes, expected {expected}")]
    ChunkLength {
        /// Chunk index.
        index: u32,
        /// Length from the manifest.
        expected: usize,
        /// Length received.
        found: usize,
    },
    /// A chunk does not hash to its entry in the hash list.
    #[error("chunk {index} does not match its hash")]
    ChunkHashMismatch {
        /// Chunk index.
        index: u32,
    },
}

/// What is wrong with a field named in [`Error::Field`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldCheck {
    /// A reserved field is not zero.
    #[error("reserved, must be zero")]
    ReservedNotZero,
    /// The field must not be zero (or empty).
    #[error("must not be zero or empty")]
    Zero,
    /// Not canonical NUL-padded UTF-8 of the allowed length.
    #[error("not NUL-padded UTF-8 of the allowed length")]
    Text,
    /// Not printable ASCII.
    #[error("not ASCII")]
    NotAscii,
    /// Not a power of two.
    #[error("not a power of two")]
    NotPowerOfTwo,
    /// Outside the allowed range.
    #[error("out of range")]
    OutOfRange,
    /// A value this version does not support.
    #[error("unsupported value")]
    Unsupported,
    /// A code no variant of its enum has.
    #[error("unknown code")]
    UnknownCode,
    /// Contradicts another field of the record.
    #[error("inconsistent with another field")]
    Inconsistent,
}

impl Error {
    pub(crate) const fn field(field: &'static str, offset: usize, check: FieldCheck) -> Self {
        Self::Field {
            field,
            offset,
            check,
        }
    }

    /// `len` in the integer type of its length field `field` at `offset`, or `OutOfRange`
    /// when it does not fit there.
    pub(crate) fn length<T: TryFrom<usize>>(
        len: usize,
        field: &'static str,
        offset: usize,
    ) -> Result<T, Self> {
        T::try_from(len).map_err(|_| Self::field(field, offset, FieldCheck::OutOfRange))
    }
}
