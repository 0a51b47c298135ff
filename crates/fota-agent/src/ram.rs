//! RAM: what the agent takes, measured, against DESIGN §3's budget.
//!
//! **What the budget covers.** DESIGN §3's RAM budget is for the agent's own state, its
//! futures and its buffers, measured with a transport that holds no state: 5,392 bytes for the
//! agent plus its largest future (measured as `scripts/bench-emulator.sh` does for
//! docs/BENCHMARKS.md: the `Agent` value with a stateless transport, 2,232 bytes, plus the
//! `poll()` future, 3,160 bytes; the table below, 5,040 bytes, also leaves out the flash handle
//! and the platform). A real transport's state is not in that budget and comes on top of it:
//! with the emulator's hyper-based HTTP transport inlined into the same futures, the agent plus
//! its largest future is 14,600 bytes.
//!
//! The agent never allocates. Its RAM is the [`Agent`](crate::Agent) value, the future of the
//! call in progress ([`Agent::startup`](crate::Agent::startup) or
//! [`Agent::poll`](crate::Agent::poll); `poll` contains `startup`'s future because it runs it
//! when the caller did not), the stack of the synchronous steps inside them, and the caller's
//! [`Buffers`](crate::Buffers).
//!
//! # Measured (`tests/agent/ram.rs`, x86-64, the same in debug and release)
//!
//! | what | bytes | notes |
//! |---|---|---|
//! | agent state | 1880 | `size_of::<Agent>()` minus the flash, transport and platform values; the decoded journal is 816 bytes of it, the two assignment URLs 2 × 256 |
//! | `startup()` future | 1392 | |
//! | `poll()` future | 3160 | includes `startup()`'s; the install decision returns before the download starts, so only the release and its hash-list window are kept across the download |
//! | agent + largest future | 5040 | |
//! | v2 caller buffers | chunk + 4096 + 512 | `chunk` ≥ the manifest's chunk size (and ≥ 2.2 KiB for check-in answers), one hash-list page, `io` for request bodies |
//! | legacy caller buffers | chunk + ⌈chunk/3⌉·4 + 256 | `io` holds one JSON chunk answer (≈ 1.37 × chunk) |
//!
//! Budget check (DESIGN §3):
//!
//! | protocol | budget | used |
//! |---|---|---|
//! | v2 | chunk + one 4 KiB page + 8 KiB | chunk + 4 KiB + 5040 + 512 (= 5.4 KiB) |
//! | legacy | one JSON body + chunk + 8 KiB | JSON body + chunk + 5040 (= 4.9 KiB) |
//!
//! On the 32-bit ESP32 pointers and `usize` halve, so the numbers there are lower.
//!
//! # Transient stack (not in the numbers above)
//!
//! Synchronous steps run inside the futures but keep nothing across an `.await`:
//! verifying signed records puts a verified root record (≈ 2.4 KiB) and the signature input
//! buffer (≈ 1.1 KiB) on the stack; reading a slot back uses the image verifier (≈ 1 KiB);
//! opening the journal reads one body (726 bytes); layout discovery at boot holds a parsed
//! partition table (≈ 3 KiB). The deepest of these is below 5 KiB.
