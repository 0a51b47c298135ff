//! The FOTA device agent: everything an ESP32 application runs to update itself, `no_std`
//! and without a heap.
//!
//! `fota-agent` decides what to write where and when. It reads the partition table, keeps its
//! state in a power-safe journal, downloads a release chunk by chunk into the slot that does
//! not run (checking each chunk before it touches flash), reads the slot back and verifies it,
//! switches otadata the way ESP-IDF does, and after the reboot runs the trial: a bounded
//! health check, then confirmation, or a reset that lets the bootloader roll back. It speaks
//! the v2 protocol (signed manifests, hash lists, ranged GETs, nonce-bound status statements)
//! and the seed's legacy JSON protocol (per-chunk HMAC, replay MACs), chosen by provisioning.
//!
//! It is generic over `embedded_storage::nor_flash::NorFlash` (the **whole** flash, as
//! ESP-IDF's partition API sees it), a [`Transport`] and a [`Platform`].
//!
//! # What it must never do
//!
//! - **Allocate.** No `alloc`, no heap; all RAM is the [`Agent`] value, its futures and the
//!   caller's [`Buffers`]. A probe crate links it without an allocator.
//! - **Panic on input.** Nothing from the network or the flash can make it panic: lengths and
//!   offsets are checked, arithmetic is checked, indexing is `get`; failures are typed. The
//!   compiler holds the crate to it: clippy's `indexing_slicing`, `arithmetic_side_effects`,
//!   `unwrap_used`, `expect_used`, `panic` and `cast_possible_truncation` are denied outside
//!   tests, with no exception.
//! - **Open sockets** or do any I/O of its own: the [`Transport`] moves bytes, the
//!   [`Platform`] sleeps and tells time.
//! - **Touch the running slot's bytes.** Writes go through a permit the flash layer refuses
//!   for any region overlapping the running app or the boot area.
//!
//! # Using it
//!
//! ```text
//! boot ─► Agent::boot(flash, transport, platform, config, BootInfo { running }, buffers)
//!      ─► agent.startup().await   Ready | ResetRequired(reason) | Error(flash)
//!      ─► loop { agent.poll().await }   Idle { next_poll_ms } | RebootRequired | Retry | Failed
//! ```
//!
//! `startup` finishes whatever the journal says was in flight (a staged image whose otadata
//! switch was cut, a trial boot, an interrupted confirmation, a manual rollback) and delivers
//! the outcome of a rollback before any poll. `poll` is one check-in cycle and may run a whole,
//! paced download; `RebootRequired` means otadata now selects something else. Every boot
//! starts from the flash alone: the agent keeps nothing in RAM that a reset must not lose.
//!
//! Before a download writes the slot, the agent makes sure the otadata switch at its end is
//! possible: when `ota_seq` has no higher value left for the target, it first renormalises
//! otadata around the running slot (`Otadata::renormalise`, power-safe and replanned from
//! otadata after any reset); when even that is impossible it refuses the release with
//! `boot_switch_impossible`. A staged release that cannot be switched is dropped the same
//! way, so the device never stays in a state that only asks for resets.
//!
//! # Time, and what a status key can do to it
//!
//! The device has no clock it can trust. Its journal keeps two floors, lower bounds on the
//! time: the *status floor*, the highest `server_time` of the status statements it accepted,
//! and the *offline floor*, the newest `issued_at` an offline key signed (root records it
//! rotated to, releases it accepted), to which the `issued_at` of the root it trusts is added
//! when it checks. A statement is fresh when its `expires_at` lies past both floors; a
//! manifest has expired when its `expires_at` does not lie past both and the statement's
//! `server_time`.
//!
//! The online status key can push the status floor forward, never back, so a leaked key could
//! make every honest statement look expired. The remedy is TUF's (§5.3.11): a root record the
//! root keys sign is kept as soon as it verifies, before anything the status key signed is
//! looked at, and when it replaces the status key set the status floor is reset, in the same
//! journal commit. The first statement of the new key is then fresh again. A rotation that
//! keeps the status key keeps the floor, and nothing resets the offline floor: no online key
//! can move it. A journal of the first layout had one floor, raised by statements only; it is
//! read as the status floor, so a device frozen by a leaked key before this layout recovers
//! the same way ([`journal`] has the layout).
//!
//! # What a rollback may activate
//!
//! The committed security counter is the highest `security_counter` of the v2 releases the
//! device confirmed (or found itself running). A trial that fails goes back to the image it
//! came from, whatever that image's release: the trial's counter was never committed, since
//! that happens at confirmation. An operator's rollback order is stricter: it never activates
//! an image whose release's counter is below the committed one, and is refused with
//! `rollback_below_counter` instead (`rollback_impossible` when there is no valid image to go
//! back to). The journal knows the release of the installed and of the previous confirmed
//! image, by SHA-256; any other image counts as counter 0: one that ran before the journal
//! existed, one only a rollback or a trial the journal did not expect ever confirmed. Legacy
//! releases carry no counter, so they count as 0 as well. With no counter committed, every
//! valid image may be rolled back to, as before.
//!
//! # On flash
//!
//! | what | where | format |
//! |---|---|---|
//! | partition table | 0x8000 | read and verified only ([`layout`]) |
//! | otadata | `data/ota` partition | ESP-IDF `esp_ota_select_entry_t`, written as ESP-IDF's app APIs do ([`otadata`]) |
//! | journal | `fota` partition, else the last two sectors of `coredump`, else of the flash | [`journal`] |
//! | new image | the OTA slot after the running one | the raw ESP32 app image, chunk by chunk |
//!
//! # RAM
//!
//! DESIGN §3's budget covers the agent's state, futures and buffers, measured with a
//! stateless transport (5,392 bytes for the agent and its largest future); a real transport's
//! state comes on top (with the emulator's hyper-based transport, 14,600 bytes in all). See
//! [`ram`] for the measured sizes.
//!
//! Where this crate stands among the others, what each never does and which test suite is the
//! authority for what: [docs/ARCHITECTURE.md](../../../docs/ARCHITECTURE.md) in the repository.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// "Never panics on input", checked by the compiler: no indexing or slicing that can panic, no
// arithmetic that can overflow, no unwrap, expect or panic, no truncating casts. Tests may.
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

mod agent;
mod config;
mod error;
pub mod flash;
mod image;
pub mod journal;
pub mod layout;
pub mod otadata;
pub mod ram;
mod status;
mod transport;
mod writer;

pub use agent::{Agent, BootFailure, PollOutcome, ResetReason, StartupOutcome};
pub use config::{Buffers, DeviceConfig, Mode};
pub use error::{AgentError, LayoutError};
pub use layout::{BootInfo, Running};
pub use status::AgentStatus;
pub use transport::{Platform, Transport, TransportError};
