//! ESP-IDF on-flash formats, correct to the byte.
//!
//! | module | format | device (no_std, no alloc) | host (`alloc`) |
//! |---|---|---|---|
//! | [`partition`] | binary partition table at 0x8000 (`esp_partition_info_t` rows, MD5 row) | parse with the bootloader's rules, encode, slot queries | |
//! | [`csv`] | `gen_esp32part` CSV | | reader with gen_esp32part's placement and validation |
//! | [`layouts`] | built-in tables (EcoWatt, ESP-IDF `partitions_two_ota.csv`) | constructors | CSV text |
//! | [`otadata`] | `esp_ota_select_entry_t`, app write planning, bootloader selection | all of it | |
//! | [`image`] | ESP32 app image (header, segments, `esp_app_desc_t`, checksum, SHA-256) | streaming verifier, first-chunk checks | |
//! | [`build`] | | | app image builder |
//! | [`flash`] | | | whole-flash inspection report, blank flash builder |
//!
//! Everything here follows ESP-IDF's C code (bootloader_support, app_update) and `esptool`,
//! and where they disagree with a comment or a document, with the code. Deviations are
//! documented where they happen; each one is a refusal of something ESP-IDF would silently
//! accept (an overflowing partition bound, a sequence number that wraps).

pub mod image;
pub mod layouts;
pub mod otadata;
pub mod partition;

#[cfg(feature = "alloc")]
pub mod build;
#[cfg(feature = "alloc")]
pub mod csv;
#[cfg(feature = "alloc")]
pub mod flash;

/// Erase unit of the SPI NOR flash on ESP32 modules (`SPI_FLASH_SEC_SIZE`).
pub const FLASH_SECTOR_SIZE: u32 = 0x1000;

/// Flash size of the EcoWatt modules (4 MiB), the default for tools.
pub const DEFAULT_FLASH_SIZE: u32 = 0x40_0000;
