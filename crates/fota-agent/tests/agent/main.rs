//! The agent's integration tests, in one binary (one link instead of one per file, as
//! ripgrep's tests are): each module is one area, and `common` is their kit (keys and
//! records, in-memory servers, a test bootloader, a device that boots from its flash alone).
//!
//! `tests/no_alloc.rs` stays a binary of its own: its counting `#[global_allocator]` is the
//! allocator of the whole process. Here every other test would run on it, and its count, kept
//! per thread, would rest on nothing else in the process allocating on the test's thread while
//! it counts; alone in its binary, nothing else runs there.

mod codec_golden;
mod format3;
mod legacy;
mod powercut;
mod ram;
mod robustness;
mod rotation;
mod v2;
