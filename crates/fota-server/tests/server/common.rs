//! The server suites' fixtures, on the test kit: the kit's server under the name these tests
//! use, and the defaults they share (4 KiB chunks, class names chosen per test).

use fota_keys::KeySet;
use fota_server::config::Config;
use fota_server::trust::Trust;
pub(crate) use fota_testkit::release::{Built, form as multipart};
pub(crate) use fota_testkit::server::{
    Answer, Listening as Running, TestServer as Fixture, config, get, keys, post_json, post_raw,
    provision, req, send, state_in, token, trust, upload,
};

/// A server over a fresh temp folder with settings tweaked by `tweak`, trusting `trust`,
/// serving legacy with PSK `legacy`.
pub(crate) async fn fixture_with(
    tweak: impl FnOnce(&mut Config),
    trust: Option<Trust>,
    legacy: Option<&[u8]>,
) -> Fixture {
    Fixture::open(tweak, keys(), trust, legacy).await
}

/// Operator API only.
pub(crate) async fn fixture() -> Fixture {
    Fixture::bare().await
}

/// v2 with the server's own keys (`f.keys`), and the seed's legacy PSK.
pub(crate) async fn v2_fixture() -> Fixture {
    let k = keys();
    let t = trust(&k);
    Fixture::open(|_| {}, k, Some(t), Some(fota_testkit::seeds::PSK)).await
}

/// An ESP image of `version` (about `size` bytes) in 4 KiB chunks for `class`, signed with
/// `keys`' release key.
pub(crate) fn build(keys: &KeySet, class: &str, version: &str, sequence: u64, size: u32) -> Built {
    let image = fota_testkit::image(version, size, false);
    fota_testkit::server::signed_by(keys, class, version, sequence, image, 4096, |_| {})
}

/// The upload form of `b`, with the `class` field when given.
pub(crate) fn upload_parts(b: &Built, class: Option<&str>) -> (String, Vec<u8>) {
    b.upload_form(class)
}

/// A check-in record of `device_id` under `keys`' vendor.
pub(crate) fn checkin_record(
    keys: &KeySet,
    device_id: &str,
    nonce: [u8; 16],
    running_sha: [u8; 32],
    sequence: u64,
    rollback_ack: u64,
) -> Vec<u8> {
    fota_testkit::records::checkin_record(
        &keys.vendor_id,
        device_id,
        nonce,
        running_sha,
        sequence,
        rollback_ack,
    )
}

/// An event record of `device_id` under `keys`' vendor.
#[expect(
    clippy::too_many_arguments,
    reason = "the kit's record builder's arguments, with the key set in front"
)]
pub(crate) fn event_record(
    keys: &KeySet,
    device_id: &str,
    kind: fota_protocol::v2::EventKind,
    reason: fota_protocol::v2::ReasonCode,
    digest: [u8; 32],
    done: u64,
    total: u64,
    order: u64,
) -> Vec<u8> {
    fota_testkit::records::event_record(
        &keys.vendor_id,
        device_id,
        kind,
        reason,
        digest,
        done,
        total,
        order,
    )
}
