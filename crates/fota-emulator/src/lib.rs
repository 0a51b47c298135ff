//! A whole ESP32 on the host, to prove the device side of the FOTA system without hardware.
//!
//! `fota-emulator` puts together what a real EcoWatt device is made of:
//!
//! - the **flash**: a byte-faithful 4 MiB NOR chip ([`fota_flash_sim::SimFlash`]), usually a
//!   file that `fota flash inspect` and `esptool` read ([`flash_file`]);
//! - the **second-stage bootloader**: ESP-IDF's slot selection with rollback enabled, its
//!   otadata rewrites as real flash operations, load with fallback and full image
//!   verification ([`bootloader`]);
//! - the **application**: the real `no_std` `fota-agent`, over an HTTP transport
//!   ([`http`]) with optional network faults ([`netfault`], [`proxy`]).
//!
//! It also holds the device-side test suites (end to end against the real server, the
//! power-cut sweep, network faults), because they need all three together.
//!
//! # What it must never do
//!
//! - **Keep state across a reset in RAM.** Every boot re-reads the flash; after a power cut
//!   the device starts from a fresh agent, transport and clock, as a real chip would.
//! - **Re-implement a format or the agent's logic.** Partition table, otadata rules and image
//!   verification come from `fota_protocol::esp`; every update decision is the agent's.
//! - **Hide a fault.** A power cut is reported as one (exit status 3), a brick as a brick; a
//!   network answer that breaks the device's rules is an error, never silently repaired.
//!
//! Where this crate stands among the others, what each never does and which test suite is the
//! authority for what: [docs/ARCHITECTURE.md](../../../docs/ARCHITECTURE.md) in the repository.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bootloader;
pub mod device;
pub mod flash_file;
pub mod http;
pub mod netfault;
pub mod platform;
pub mod proxy;
pub mod report;
pub mod session;
pub mod transport;
