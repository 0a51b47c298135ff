//! Legacy (seed) protocol end to end over SimFlash.

use fota_agent::{PollOutcome, Running, StartupOutcome};
use fota_protocol::esp::otadata::OtaState;
use fota_protocol::v2::ReasonCode;
use fota_testkit::agent::*;

fn setup(new: Vec<u8>, chunk: u64) -> (Device, Net, Vec<u8>) {
    let old = image("1.0.5", 0x8000, false);
    let net = Net::default();
    net.with(|s| s.legacy.release = Some(("1.0.5".into(), old.clone(), chunk)));
    let flash = provisioned_flash(&table(), &old);
    let spec = DeviceSpec {
        legacy: true,
        ..DeviceSpec::default()
    };
    let dev = Device::new(flash, net.clone(), spec);
    net.with(|s| s.legacy.release = Some(("1.0.6".into(), new, chunk)));
    (dev, net, old)
}

fn statuses(net: &Net) -> Vec<String> {
    net.with(|s| s.legacy.statuses.iter().map(|x| x.0.clone()).collect())
}

#[test]
fn legacy_update_trial_and_confirm() {
    let new = image("1.0.6", 0x9000, false);
    let (mut dev, net, _) = setup(new.clone(), 16384);
    let b = dev.boot();
    assert_eq!(b.last_poll(), Some(PollOutcome::RebootRequired), "{b:?}");
    assert_eq!(dev.slot_bytes(1, new.len()), &new[..]);
    let b = dev.boot();
    assert_eq!(running_of(&b), Running::Ota(1));
    assert_eq!(b.startup, Some(StartupOutcome::Ready));
    assert_eq!(dev.slot_state(1), Some(OtaState::Valid));
    let st = statuses(&net);
    assert!(st.contains(&"booted_on_trial".to_owned()), "{st:?}");
    assert!(st.contains(&"confirmed".to_owned()), "{st:?}");
    // Running what the server offers: nothing more to do.
    assert!(matches!(
        dev.boot().last_poll(),
        Some(PollOutcome::Idle { .. })
    ));
}

#[test]
fn odd_chunk_sizes_work() {
    let new = image("1.0.6", 0x9000, false);
    let (mut dev, _net, _) = setup(new.clone(), 1000);
    dev.spec.max_polls = 1;
    let b = dev.boot();
    assert_eq!(b.last_poll(), Some(PollOutcome::RebootRequired), "{b:?}");
    assert_eq!(dev.slot_bytes(1, new.len()), &new[..]);
}

#[test]
fn a_chunk_altered_with_a_valid_mac_is_caught_by_the_whole_image_hash() {
    let new = image("1.0.6", 0x9000, false);
    let (mut dev, net, _) = setup(new, 4096);
    net.with(|s| s.legacy.evil_chunk = Some(5));
    dev.spec.max_polls = 1;
    let b = dev.boot();
    assert!(
        matches!(
            b.last_poll(),
            Some(PollOutcome::Failed {
                reason: ReasonCode::ImageHashMismatch,
                ..
            })
        ),
        "{b:?}"
    );
    // otadata never pointed at it.
    assert_eq!(dev.slot_state(1), None);
    assert_eq!(dev.otadata().active(), Some(0));
    let st = net.with(|s| s.legacy.statuses.clone());
    assert!(
        st.iter()
            .any(|s| s.0 == "failed" && s.2 == "image_hash_mismatch"),
        "{st:?}"
    );
    // The same (bad) hash is not downloaded again.
    let served = net.with(|s| s.legacy.bytes_served);
    let b = dev.boot();
    assert!(
        matches!(b.last_poll(), Some(PollOutcome::Idle { .. })),
        "{b:?}"
    );
    assert_eq!(net.with(|s| s.legacy.bytes_served), served);
}

#[test]
fn a_replayed_manifest_answer_is_refused() {
    let new = image("1.0.6", 0x9000, false);
    let (mut dev, net, _) = setup(new, 4096);
    dev.spec.max_polls = 1;
    net.with(|s| s.legacy.release = Some(("1.0.5".into(), image("1.0.5", 0x8000, false), 4096)));
    assert!(matches!(
        dev.boot().last_poll(),
        Some(PollOutcome::Idle { .. })
    ));
    net.with(|s| s.legacy.replay_last_manifest = true);
    let b = dev.boot();
    assert!(
        matches!(
            b.last_poll(),
            Some(PollOutcome::Failed {
                reason: ReasonCode::StatusInvalid,
                ..
            })
        ),
        "{b:?}"
    );
}

#[test]
fn a_wrong_psk_is_refused_before_flash() {
    let new = image("1.0.6", 0x9000, false);
    let (mut dev, net, _) = setup(new, 4096);
    dev.spec.max_polls = 1;
    net.with(|s| s.legacy.psk = b"someone else's key".to_vec());
    let before = dev.flash().stats();
    let b = dev.boot();
    assert!(
        matches!(
            b.last_poll(),
            Some(PollOutcome::Failed {
                reason: ReasonCode::SignatureInvalid,
                ..
            })
        ),
        "{b:?}"
    );
    let after = dev.flash().stats();
    assert_eq!(
        (after.programs, after.erases),
        (before.programs, before.erases),
        "not even the nonce"
    );
}

/// A legacy device running an image of version `running`, its server offering one of
/// version `offered`; one poll a boot.
fn offered_to(running: &str, offered: &str) -> (Device, Net, Vec<u8>) {
    let old = image(running, 0x8000, false);
    let new = image(offered, 0x9000, false);
    let net = Net::default();
    net.with(|s| s.legacy.release = Some((offered.into(), new.clone(), 4096)));
    let spec = DeviceSpec {
        legacy: true,
        max_polls: 1,
        ..DeviceSpec::default()
    };
    let dev = Device::new(provisioned_flash(&table(), &old), net.clone(), spec);
    (dev, net, new)
}

/// The poll was refused as a downgrade before a chunk was fetched or a byte written to the
/// other slot, and the device still boots what it ran.
fn assert_refused_as_downgrade(dev: &Device, net: &Net, b: &BootLog, len: usize) {
    assert!(
        matches!(
            b.last_poll(),
            Some(PollOutcome::Failed {
                reason: ReasonCode::Downgrade,
                ..
            })
        ),
        "{b:?}"
    );
    assert_eq!(net.with(|s| s.legacy.bytes_served), 0, "no chunk fetched");
    assert!(dev.slot_bytes(1, len).iter().all(|&b| b == 0xFF));
    assert_eq!(dev.slot_state(1), None);
    assert_eq!(dev.otadata().active(), Some(0));
}

#[test]
fn a_release_candidate_of_the_running_version_is_refused_as_a_downgrade() {
    // Semver: 1.0.7-rc1 precedes 1.0.7. The numbers-only check this replaced skipped it.
    let (mut dev, net, new) = offered_to("1.0.7", "1.0.7-rc1");
    let b = dev.boot();
    assert_refused_as_downgrade(&dev, &net, &b, new.len());
}

#[test]
fn a_release_candidate_of_the_next_version_is_an_upgrade() {
    // Semver: 1.0.7-rc1 follows 1.0.6.
    let (mut dev, _net, new) = offered_to("1.0.6", "1.0.7-rc1");
    let b = dev.boot();
    assert_eq!(b.last_poll(), Some(PollOutcome::RebootRequired), "{b:?}");
    assert_eq!(dev.slot_bytes(1, new.len()), &new[..]);
    let b = dev.boot();
    assert_eq!(running_of(&b), Running::Ota(1));
    assert_eq!(b.startup, Some(StartupOutcome::Ready));
}

#[test]
fn versions_order_as_numbers_and_a_non_version_never_replaces_a_version() {
    let (mut dev, net, new) = offered_to("1.0.10", "1.0.9");
    let b = dev.boot();
    assert_refused_as_downgrade(&dev, &net, &b, new.len());
    let (mut dev, net, new) = offered_to("1.0.6", "nightly");
    let b = dev.boot();
    assert_refused_as_downgrade(&dev, &net, &b, new.len());
    // The same version again (another build of it) is not older: it installs.
    let (mut dev, _net, _) = offered_to("1.0.6", "v1.0.6");
    assert_eq!(dev.boot().last_poll(), Some(PollOutcome::RebootRequired));
}

#[test]
fn legacy_rollback_order_is_carried_out_reported_and_closed() {
    let new = image("1.0.6", 0x9000, false);
    let (mut dev, net, _) = setup(new, 16384);
    assert_eq!(dev.boot().last_poll(), Some(PollOutcome::RebootRequired));
    assert_eq!(dev.boot().startup, Some(StartupOutcome::Ready));
    net.with(|s| s.legacy.rollback = Some("bad release".into()));
    let b = dev.boot();
    assert_eq!(b.last_poll(), Some(PollOutcome::RebootRequired), "{b:?}");
    let b = dev.boot();
    assert_eq!(running_of(&b), Running::Ota(0));
    let st = statuses(&net);
    assert!(st.contains(&"rollback_done".to_owned()), "{st:?}");
    assert!(
        net.with(|s| s.legacy.rollback.is_none()),
        "the status report closed the order"
    );
    // The server still offers 1.0.6: the device does not go back to it.
    assert!(
        matches!(b.last_poll(), Some(PollOutcome::Idle { .. })),
        "{b:?}"
    );
    assert_eq!(running_of(&dev.boot()), Running::Ota(0));
}

#[test]
fn a_failed_legacy_trial_rolls_back_once() {
    let bad = image("1.0.6", 0x9000, true);
    let (mut dev, net, _) = setup(bad, 16384);
    assert_eq!(dev.boot().last_poll(), Some(PollOutcome::RebootRequired));
    let b = dev.boot();
    assert!(matches!(b.startup, Some(StartupOutcome::ResetRequired(_))));
    let b = dev.boot();
    assert_eq!(running_of(&b), Running::Ota(0));
    let st = net.with(|s| s.legacy.statuses.clone());
    assert!(
        st.iter()
            .any(|s| s.0 == "rolled_back" && s.2 == "health_check_failed"),
        "{st:?}"
    );
    assert!(matches!(b.last_poll(), Some(PollOutcome::Idle { .. })));
}

#[test]
fn legacy_is_latched_off_after_a_v2_manifest() {
    let new = image("1.0.6", 0x9000, false);
    let old = image("1.0.5", 0x8000, false);
    let net = Net::default();
    net.with(|s| {
        s.v2.releases.push(release("1.0.6", new, 2, 4096));
        s.v2.assign = Assign::Install(0);
    });
    let mut dev = Device::new(
        provisioned_flash(&table(), &old),
        net.clone(),
        DeviceSpec::default(),
    );
    assert_eq!(dev.boot().last_poll(), Some(PollOutcome::RebootRequired));
    assert_eq!(dev.boot().startup, Some(StartupOutcome::Ready));
    dev.spec.legacy = true;
    dev.spec.max_polls = 1;
    let b = dev.boot();
    assert!(
        matches!(
            b.last_poll(),
            Some(PollOutcome::Failed {
                reason: ReasonCode::UnsupportedFormat,
                ..
            })
        ),
        "{b:?}"
    );
}
