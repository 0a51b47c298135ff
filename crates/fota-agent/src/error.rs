//! The agent's errors.

use core::fmt;

use embedded_storage::nor_flash::{NorFlashError, NorFlashErrorKind};

/// Why an agent operation failed.
///
/// Every variant says whose fault it is: the flash (`Flash`), the provisioning or the partition
/// table (`Layout`, `NoJournalRegion`, `Config`), a caller mistake (`RunningSlot`,
/// `BufferTooSmall`), or a state the journal does not allow (`Transition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AgentError {
    /// A flash read, program or erase failed. On the emulator this is also how a power cut
    /// shows (`SimFlash::is_powered()` tells the two apart).
    Flash(NorFlashErrorKind),
    /// An access fell outside its partition view. Always a bug in the agent, never allowed to
    /// reach the flash.
    OutOfRegion {
        /// Region start (absolute flash offset).
        region: u32,
        /// Offset asked for, relative to the region.
        offset: u32,
        /// Length asked for.
        len: u32,
    },
    /// A write or erase would have touched the running image (or the bootloader and the
    /// partition table). Refused before any flash operation.
    RunningSlot,
    /// The partition table at 0x8000 is missing or invalid, or lacks what the agent needs.
    Layout(LayoutError),
    /// No place for the journal: no `fota` partition, no `coredump` partition of at least two
    /// sectors, and the last two sectors of the flash belong to a partition.
    NoJournalRegion,
    /// The flash geometry is not the one the agent is written for (erase 4 KiB, write size
    /// dividing 16, byte reads).
    Geometry,
    /// A caller buffer is too small for what was asked (the field says which).
    BufferTooSmall(&'static str),
    /// The provisioning is unusable (the field says what).
    Config(&'static str),
    /// The journal does not allow this transition from its current state.
    Transition(crate::journal::TransitionError),
    /// The journal cannot advance: its sequence counter is exhausted.
    JournalFull,
}

/// What is wrong with the partition table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LayoutError {
    /// The table did not verify (magic, MD5, bounds).
    Table(fota_protocol::esp::partition::TableError),
    /// No `data/ota` partition of exactly two sectors.
    NoOtadata,
    /// Fewer than two OTA app slots, or `ota_N` not contiguous from `ota_0`.
    Slots,
    /// The running partition given in `BootInfo` does not exist in the table.
    Running,
    /// A partition the agent uses is not aligned to 4 KiB sectors.
    Alignment,
}

impl<E: NorFlashError> From<E> for AgentError {
    fn from(error: E) -> Self {
        Self::Flash(error.kind())
    }
}

impl From<crate::journal::TransitionError> for AgentError {
    fn from(error: crate::journal::TransitionError) -> Self {
        Self::Transition(error)
    }
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flash(kind) => write!(f, "flash operation failed: {kind:?}"),
            Self::OutOfRegion {
                region,
                offset,
                len,
            } => write!(
                f,
                "access {offset:#x}+{len} outside the partition view at {region:#x}"
            ),
            Self::RunningSlot => f.write_str("refused to write the running image"),
            Self::Layout(e) => write!(f, "partition table: {e:?}"),
            Self::NoJournalRegion => f.write_str("no region for the journal"),
            Self::Geometry => f.write_str("unsupported flash geometry"),
            Self::BufferTooSmall(what) => write!(f, "buffer too small: {what}"),
            Self::Config(what) => write!(f, "bad provisioning: {what}"),
            Self::Transition(e) => write!(f, "journal: {e}"),
            Self::JournalFull => f.write_str("journal sequence exhausted"),
        }
    }
}

impl core::error::Error for AgentError {}
