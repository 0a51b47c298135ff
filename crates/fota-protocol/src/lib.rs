//! Every byte format the FOTA system reads or writes, correct to the byte.
//!
//! `fota-protocol` is the crate the server, the device agent, the emulator and the operator CLI
//! all stand on. It holds:
//!
//! - [`esp`]: the ESP-IDF on-flash formats: the binary partition table (and the `gen_esp32part`
//!   CSV it is built from), the `otadata` select entries with the bootloader's selection rules,
//!   and the ESP32 app image (header, segments, `esp_app_desc_t`, checksum, appended SHA-256)
//!   with a validator that follows `esp_image_verify`.
//! - [`v2`]: the records of our own protocol: the signed manifest envelope, the chunk hash list,
//!   the root record of trusted keys, and the fixed-layout records of the device API.
//! - [`legacy`]: the JSON records of the seed (Flask) protocol that devices in the field speak,
//!   with its per-chunk HMAC and our replay-protection MAC.
//! - [`version`]: the one order of firmware version strings (semver precedence, dotted
//!   numbers, then bytes), for downgrade checks, sorting and filters.
//!
//! Each on-flash and on-wire layout is documented as a table in the doc comment of its type.
//!
//! # What this crate must never do
//!
//! - **I/O.** It encodes, decodes and verifies bytes handed to it; callers move them.
//! - **Allocate or panic on the device path.** Without the `alloc`/`std` features the crate is
//!   `no_std` and allocation-free (a probe crate in CI proves it), and no input, however
//!   malformed, makes a decoder panic: every length and offset is checked, and failures are
//!   typed errors naming the check and the offset. Clippy enforces this outside tests: the
//!   crate denies indexing and slicing, unchecked arithmetic, truncating casts, `unwrap`,
//!   `expect` and `panic!`, in every feature combination.
//! - **Parse before it authenticates.** Signed envelopes are verified over their raw bytes
//!   before any field inside them is interpreted.
//!
//! # Features
//!
//! | feature | gives |
//! |---|---|
//! | (none) | `no_std`, no `alloc`: everything a device needs |
//! | `serde` | serde derives on the legacy JSON records (no_std-compatible) |
//! | `alloc` | owned builders, reports and the host signing helpers (image builder, CSV reader, flash reports, `sign_envelope`) |
//! | `std` (default) | `alloc` + `serde` + `std::error::Error`, UUIDv5 class and device ids |
//!
//! Where this crate stands among the others, what each never does and which test suite is the
//! authority for what: [docs/ARCHITECTURE.md](../../../docs/ARCHITECTURE.md) in the repository.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
// The no-panic promise, checked by the compiler. Tests may index and unwrap freely.
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::cast_possible_truncation
    )
)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod codec;
pub mod esp;
pub mod legacy;
pub mod v2;
pub mod version;

pub use codec::CodecError;
