//! A NOR flash chip on the host, faithful to ESP32 flash and strict about misuse, with
//! deterministic fault injection.
//!
//! `fota-flash-sim` is how the project proves its device side. The device emulator runs the real
//! `no_std` agent and an emulated ESP-IDF bootloader over a [`SimFlash`]; the power-cut sweep
//! tests and the fuzzers drive the same type. It implements
//! `embedded_storage::nor_flash::{ReadNorFlash, NorFlash}` (0.3, blocking), so the agent cannot
//! tell it from esp-storage.
//!
//! What it models:
//!
//! - **Chip semantics.** Erase sets a whole sector to `0xFF` (or `0x00`, see [`EraseValue`]);
//!   programming only moves bits from erased to programmed (`new = old & data`); reads return
//!   exactly what is stored. A `write()` is split at 256-byte page boundaries and each page
//!   program is one counted operation; an `erase()` is one counted operation per 4 KiB sector.
//! - **Strict misuse checks.** Misaligned and out-of-range calls are errors. Programming a byte
//!   already programmed since its last erase is [`Error::ProgramNotErased`] (only the bytes of a
//!   torn program may be programmed once more, so a replay works). [`WriteCheck::Lenient`] turns
//!   that last check off to model sloppy drivers.
//! - **Faults** ([`FaultPlan`]): power cut before or after operation N, torn programs and
//!   erases, operations failing with power on (at N or at random in a region), stuck bits. After
//!   a cut every call returns [`Error::PowerLoss`] until the harness calls
//!   [`power_on`](SimFlashBase::power_on); the cells keep what the cut left.
//! - **Counters** ([`Stats`], per-sector erase counts) and a bounded [operation
//!   log](SimFlashBase::op_log) for reports such as `op 37: program 0x1a000+256 (power cut before)`.
//! - **Backing**: memory, or an image file written through on every operation, which
//!   `fota flash inspect` and esptool read as the device's flash.
//!
//! # What it never does
//!
//! - **Hide a fault.** In strict mode a program over programmed bytes is an error, never silently
//!   ANDed; a cut is always reported as `PowerLoss`, never as success; an operation that was not
//!   performed is never reported as done.
//! - **Panic on caller input.** Bad offsets, lengths and ranges are typed errors.
//! - **Persist its byte tracking.** Which bytes were programmed since their last erase lives in
//!   memory. A flash reopened from a file counts every byte that does not read as erased as
//!   programmed, and every byte that does as erased.
//! - **Model timing or read disturb.** Operations are instantaneous; reads never fail.
//!
//! # A power-cut sweep
//!
//! Count the operations of a clean run, then cut at each one, reboot and finish (MCUboot's
//! `run_perm_with_fails`):
//!
//! ```
//! use embedded_storage::nor_flash::NorFlash;
//! use fota_flash_sim::{Config, Cut, FaultPlan, SimFlash};
//!
//! // Stand-in for the code under test: replay-safe because it erases before writing.
//! fn update(flash: &mut SimFlash) -> Result<(), fota_flash_sim::Error> {
//!     flash.erase(0x1000, 0x2000)?;
//!     flash.write(0x1000, &[0x42; 512])
//! }
//!
//! let pristine = SimFlash::new(Config::ESP32.with_capacity(64 * 1024)).unwrap();
//! let mut clean = pristine.clone();
//! clean.arm(FaultPlan::none());
//! update(&mut clean).unwrap();
//! let total = clean.ops(); // 1 erase + 2 page programs
//! assert_eq!(total, 3);
//!
//! for (i, plan) in FaultPlan::sweep(1..=total, Cut::Before, 1) {
//!     let mut flash = pristine.clone();
//!     flash.arm(plan);
//!     let err = update(&mut flash).unwrap_err();
//!     assert!(err.is_power_loss(), "step {i}: {err}");
//!     flash.power_on(); // reboot: fresh RAM state, same cells
//!     update(&mut flash).unwrap();
//!     assert_eq!(&flash.contents()[0x1000..0x1200], &[0x42; 512][..], "FAIL at op {i} of {total}");
//! }
//! ```
//!
//! Geometry: [`SimFlash`] fixes esp-storage's sizes (`READ_SIZE` 1, `WRITE_SIZE` 4,
//! `ERASE_SIZE` 4096) as the trait's associated constants require; capacity and program page
//! size are per instance ([`Config`]). [`SimFlashBase`] takes other write and erase sizes as
//! const parameters for geometry matrices.
//!
//! Where this crate stands among the others, what each never does and which test suite is the
//! authority for what: [docs/ARCHITECTURE.md](../../../docs/ARCHITECTURE.md) in the repository.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod error;
mod fault;
mod flash;
mod log;

pub use config::{Config, EraseValue, WriteCheck};
pub use error::{Error, OpenError};
pub use fault::{Cut, FailEffect, FaultPlan, OpFilter, StuckAt, Tear};
pub use flash::{ByteState, SimFlash, SimFlashBase};
pub use log::{OpKind, OpRecord, Outcome, Stats};

#[cfg(test)]
mod tests;
