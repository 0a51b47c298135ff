//! Errors of flash operations and of building a flash.

use std::path::PathBuf;

use embedded_storage::nor_flash::{NorFlashError, NorFlashErrorKind};

use crate::log::OpKind;

/// Why a flash operation failed.
///
/// The variants fall in three groups, and a harness usually needs to tell them apart:
///
/// - **power**: [`Error::PowerLoss`] — a planned cut happened (or the chip is off). Not a bug;
///   the harness reboots with [`power_on`](crate::SimFlashBase::power_on).
/// - **misuse by the caller** (always a bug in the code under test): [`Error::NotAligned`],
///   [`Error::OutOfBounds`], [`Error::ProgramNotErased`].
/// - **injected device failures**: [`Error::Injected`] — the driver reports failure and power
///   stays on; the code under test must cope.
///
/// [`Error::Io`] is a failure of the image file on the host, not of the emulated chip.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The chip has no power: a planned cut fired during this call (the operation may have
    /// completed, torn, or not started — see [`FaultPlan`](crate::FaultPlan)), or power was
    /// already off. Every operation, reads included, returns this until `power_on()`.
    #[error("flash has lost power")]
    PowerLoss,

    /// Offset or length is not a multiple of the operation's alignment. Nothing was changed.
    #[error("{op} {offset:#x}+{len} is not aligned to {align} bytes")]
    NotAligned {
        /// Operation that was refused.
        op: OpKind,
        /// Start address asked for.
        offset: u32,
        /// Length asked for.
        len: usize,
        /// Required alignment of offset and length.
        align: usize,
    },

    /// The range does not lie inside the flash (or an erase has `from > to`). Nothing was
    /// changed.
    #[error("{op} {offset:#x}+{len} is out of bounds of the {capacity}-byte flash")]
    OutOfBounds {
        /// Operation that was refused.
        op: OpKind,
        /// Start address asked for.
        offset: u32,
        /// Length asked for (for an inverted erase range, `to - from` wrapped to zero).
        len: usize,
        /// Flash size in bytes.
        capacity: usize,
    },

    /// Strict mode: a write would program `addr`, which has been programmed since its last erase.
    /// The whole `write()` call was refused before any of it reached the chip.
    #[error("program of {addr:#x}, which was already programmed since its last erase")]
    ProgramNotErased {
        /// First offending byte.
        addr: u32,
    },

    /// The fault plan made operation `op` fail with power still on. Its effect on the flash is
    /// the [`FailEffect`](crate::FailEffect) the plan named.
    #[error("injected failure of op {op}: {kind} {addr:#x}+{len}")]
    Injected {
        /// Index of the failed operation since the plan was armed.
        op: u64,
        /// Program or erase.
        kind: OpKind,
        /// Start of the page or sector.
        addr: u32,
        /// Bytes the operation covered.
        len: usize,
    },

    /// Writing through to the image file failed. The in-memory chip holds the new state, the file
    /// may not: treat the run as broken.
    #[error("writing the flash image file")]
    Io(#[source] std::io::Error),
}

impl Error {
    /// True for [`Error::PowerLoss`]: the harness cut power, the code under test did nothing
    /// wrong.
    pub const fn is_power_loss(&self) -> bool {
        matches!(self, Self::PowerLoss)
    }
}

impl NorFlashError for Error {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            Self::NotAligned { .. } => NorFlashErrorKind::NotAligned,
            Self::OutOfBounds { .. } => NorFlashErrorKind::OutOfBounds,
            Self::PowerLoss
            | Self::ProgramNotErased { .. }
            | Self::Injected { .. }
            | Self::Io(_) => NorFlashErrorKind::Other,
        }
    }
}

/// Why a flash could not be built or its image file opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The [`Config`](crate::Config) does not fit the type's write and erase sizes.
    #[error("invalid flash geometry: {reason}")]
    InvalidGeometry {
        /// What is wrong.
        reason: String,
    },

    /// An image (file or buffer) does not have exactly the configured capacity.
    #[error("flash image {} is {actual} bytes, expected {expected}", path.as_ref().map_or_else(|| "(buffer)".into(), |p| p.display().to_string()))]
    SizeMismatch {
        /// The file, if the image came from one.
        path: Option<PathBuf>,
        /// Configured capacity.
        expected: usize,
        /// Size found.
        actual: usize,
    },

    /// Opening, reading or creating the image file failed.
    #[error("flash image {}", path.display())]
    Io {
        /// The image file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}
