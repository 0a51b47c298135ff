//! The workspace's one test kit, for integration tests and benchmarks only.
//!
//! Every integration suite and benchmark builds its world from here: deterministic key seeds
//! ([`seeds`]), signed releases built the way the signing tools build them ([`release`], on
//! `fota_api::release::manifest_body`), the upload form ([`release::upload_form`], on
//! `fota_api::multipart`), DESIGN §3's invariants over a boot history ([`invariants`]), the real
//! server over a temp data folder, in-process or on 127.0.0.1:0 ([`server`]), v2 records for
//! a device ([`records`]), TLS certificate sets and an HTTPS connection ([`tls`]), and emulated devices: the agent on the emulated bootloader against
//! scriptable in-memory servers ([`agent`]), or the emulator's device runtime against the real
//! server ([`emulated`]).
//!
//! Never used by non-test code, and never by `#[cfg(test)]` unit tests: it depends on the
//! crates it tests (a unit test using it would link a second copy of its own crate). It is
//! allowed to panic: a broken fixture should stop the test that uses it, loudly.
//!
//! Where this crate stands among the others, what each never does and which test suite is the
//! authority for what: [docs/ARCHITECTURE.md](../../../docs/ARCHITECTURE.md) in the repository.
#![allow(
    clippy::std_instead_of_core,
    clippy::alloc_instead_of_core,
    reason = "a host-only kit; core paths buy nothing here"
)]

pub mod agent;
pub mod emulated;
pub mod invariants;
pub mod records;
pub mod release;
pub mod seeds;
pub mod server;
pub mod tls;

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(data).into()
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A real ESP32 application image of `version`, about `size` bytes, whose self-test fails
/// when `boot_fails` (the `fota image build --boot-fails` marker).
pub fn image(version: &str, size: u32, boot_fails: bool) -> Vec<u8> {
    let mut spec = fota_protocol::esp::build::AppImageSpec::new(version);
    spec.size = size;
    spec.boot_fails = boot_fails;
    fota_protocol::esp::build::build_app_image(&spec).expect("test image")
}
