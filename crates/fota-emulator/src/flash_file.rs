//! The device's flash: creating it as a factory programmer would, and opening it.
//!
//! A new flash is what `esptool write_flash` leaves on a fresh 4 MiB module: erased, the
//! partition table at 0x8000 (with its MD5 row, as `gen_esp32part` writes it), otadata with one
//! VALID entry selecting `ota_0`, and the initial image in `ota_0`. Creation goes through
//! [`SimFlash::preload`]: it is never cut and its writes are not counted, because it is the
//! factory's doing, not the device's.

use std::path::Path;

use fota_flash_sim::{Config, SimFlash};
use fota_protocol::esp::flash::{FlashBuildError, FlashBuilder};
use fota_protocol::esp::image::{self as esp_image, ImageError, VerifyOptions};
use fota_protocol::esp::layouts;
use fota_protocol::esp::otadata::{BootIndex, OtaSelectEntry, OtaState};
use fota_protocol::esp::partition::PartitionTable;

/// Size of the emulated flash (the EcoWatt modules' 4 MiB).
pub const FLASH_SIZE: usize = fota_protocol::esp::DEFAULT_FLASH_SIZE as usize;

/// A built-in partition layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// The EcoWatt table (Arduino-ESP32 `default.csv`): two 1.25 MiB OTA slots, no factory;
    /// the agent's journal lives in the last two sectors of `coredump`.
    #[default]
    Ecowatt,
    /// ESP-IDF `partitions_two_ota.csv`: factory + two 1 MiB OTA slots; the journal lives in
    /// the last two sectors of the flash, which no partition covers.
    TwoOta,
}

impl Layout {
    /// The table.
    pub fn table(self) -> PartitionTable {
        match self {
            Self::Ecowatt => layouts::ecowatt(),
            Self::TwoOta => layouts::two_ota(),
        }
    }

    /// The name `--layout` takes.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ecowatt => "ecowatt",
            Self::TwoOta => "two_ota",
        }
    }

    /// Parses a `--layout` value.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "ecowatt" => Some(Self::Ecowatt),
            "two_ota" => Some(Self::TwoOta),
            _ => None,
        }
    }
}

/// What a new flash holds.
#[derive(Debug, Clone)]
pub struct FlashSpec<'a> {
    /// The partition table.
    pub layout: Layout,
    /// The image written into `ota_0`.
    pub image: &'a [u8],
    /// `ota_seq` of the VALID entry in otadata sector 0; it must select `ota_0`
    /// (`(seq - 1) % 2 == 0`). 1 for a factory-fresh device; tests start near the top of
    /// `u32` to exercise the sequence limit.
    pub otadata_seq: u32,
}

impl<'a> FlashSpec<'a> {
    /// A factory-fresh device on `layout` running `image`.
    pub fn new(layout: Layout, image: &'a [u8]) -> Self {
        Self {
            layout,
            image,
            otadata_seq: 1,
        }
    }
}

/// Why a flash could not be created or opened. (Each message leaves its cause to `source()`,
/// so an error chain says it once.)
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlashFileError {
    /// The initial image is not one the bootloader would boot from `ota_0`.
    #[error("the initial image is not a valid ESP32 app image")]
    InvalidImage(#[source] ImageError),
    /// The image does not fit or the table is unusable.
    #[error("building the flash image")]
    Build(#[from] FlashBuildError),
    /// The image file could not be created or opened.
    #[error(transparent)]
    Open(#[from] fota_flash_sim::OpenError),
    /// Writing the contents failed.
    #[error("writing the flash")]
    Flash(#[from] fota_flash_sim::Error),
    /// The otadata sequence does not select `ota_0`.
    #[error("otadata sequence {0:#x} does not select ota_0")]
    Sequence(u32),
    /// The flash file does not exist and no initial image was given.
    #[error("{0} does not exist; give an initial image to create it")]
    Missing(String),
}

/// Checks `image` as the bootloader will when it boots `ota_0` of `layout` (ESP-IDF's
/// `esp_image_verify`, the slot's size as the limit). A factory does not program a device
/// with something it cannot boot; a flash made that way would only ever be bricked.
pub fn check_image(layout: Layout, image: &[u8]) -> Result<(), FlashFileError> {
    let max_len = layout
        .table()
        .boot_layout()
        .slot(0)
        .map(|p| p.size)
        .ok_or_else(|| FlashBuildError::NoSuchPartition("ota_0".into()))?;
    esp_image::verify(
        image,
        VerifyOptions {
            max_len: Some(max_len),
            ..VerifyOptions::default()
        },
    )
    .map(drop)
    .map_err(FlashFileError::InvalidImage)
}

/// The bytes of a new flash. The image must pass [`check_image`].
pub fn build_image(spec: &FlashSpec<'_>) -> Result<Vec<u8>, FlashFileError> {
    if spec.otadata_seq == u32::MAX || !spec.otadata_seq.wrapping_sub(1).is_multiple_of(2) {
        return Err(FlashFileError::Sequence(spec.otadata_seq));
    }
    check_image(spec.layout, spec.image)?;
    let table = spec.layout.table();
    let mut builder = FlashBuilder::new(FLASH_SIZE as u32, &table)?;
    builder
        .write_app(BootIndex::Ota(0), spec.image)?
        .set_otadata(0, &OtaSelectEntry::new(spec.otadata_seq, OtaState::Valid))?;
    Ok(builder.into_bytes())
}

/// A memory-backed flash holding a new device.
pub fn new_in_memory(spec: &FlashSpec<'_>) -> Result<SimFlash, FlashFileError> {
    Ok(SimFlash::from_image(Config::ESP32, build_image(spec)?)?)
}

/// Opens the flash file at `path`; when it does not exist and `spec` is given, creates it
/// first (uncounted, never cut). An existing file is never rewritten: it is the device. An
/// image that fails [`check_image`] is refused before the file exists.
pub fn open_or_create(
    path: &Path,
    spec: Option<&FlashSpec<'_>>,
) -> Result<(SimFlash, bool), FlashFileError> {
    if path.exists() {
        return Ok((SimFlash::open(path, Config::ESP32)?, false));
    }
    let Some(spec) = spec else {
        return Err(FlashFileError::Missing(path.display().to_string()));
    };
    let bytes = build_image(spec)?;
    let mut flash = SimFlash::create(path, Config::ESP32)?;
    flash.preload(0, &bytes)?;
    flash.sync()?;
    Ok((flash, true))
}
