//! What the wire-format bump changes on the device: manifests name a chip and a device
//! refuses another chip's before touching flash; format-2 manifests still install; check-ins
//! carry the device's telemetry; a resumed download says so.

use fota_agent::PollOutcome;
use fota_protocol::v2::{EventKind, ManifestFormat, ReasonCode, chip_ids};
use fota_testkit::agent::*;

fn setup(new: Vec<u8>, edit: impl FnOnce(&mut fota_protocol::v2::ManifestBody)) -> (Device, Net) {
    let old = image("1.0.5", 0x8000, false);
    let net = Net::default();
    net.with(|s| {
        s.v2.releases.push(release("1.0.5", old.clone(), 1, 4096));
        s.v2.releases
            .push(release_with("1.0.6", new, 2, 4096, edit, &[10]));
        s.v2.assign = Assign::Install(1);
    });
    let flash = provisioned_flash(&table(), &old);
    (Device::new(flash, net.clone(), DeviceSpec::default()), net)
}

fn ops(dev: &Device) -> u64 {
    let s = dev.flash().stats();
    s.programs + s.erases
}

#[test]
fn a_manifest_for_another_chip_is_refused_before_any_flash_write() {
    let (mut dev, net) = setup(image("1.0.6", 0x9000, false), |b| {
        b.chip_id = chip_ids::ESP32_C3;
    });
    let before = ops(&dev);
    let b = dev.boot();
    match b.polls.first() {
        Some(PollOutcome::Failed { reason, .. }) => assert_eq!(*reason, ReasonCode::WrongChip),
        other => panic!("expected wrong_chip, got {other:?}"),
    }
    assert_eq!(
        ops(&dev),
        before,
        "nothing written for another chip's image"
    );
    assert!(dev.slot_bytes(1, 0x1000).iter().all(|&b| b == 0xFF));
    assert!(
        net.with(|s| s
            .v2
            .events
            .iter()
            .any(|e| e.0 == EventKind::Failed && e.1 == ReasonCode::WrongChip)),
        "the refusal is reported"
    );
}

#[test]
fn a_format_2_manifest_from_an_older_release_tool_still_installs() {
    let new = image("1.0.6", 0x9000, false);
    let (mut dev, _) = setup(new.clone(), |b| b.format = ManifestFormat::V2);
    let b = dev.boot();
    assert_eq!(b.last_poll(), Some(PollOutcome::RebootRequired), "{b:?}");
    assert_eq!(dev.slot_bytes(1, new.len()), &new[..]);
}

#[test]
fn check_ins_carry_the_chip_the_uptime_and_the_platforms_attributes() {
    let (mut dev, net) = setup(image("1.0.6", 0x9000, false), |_| {});
    net.with(|s| s.v2.assign = Assign::None);
    dev.boot();
    let checkins = net.with(|s| s.v2.checkins.clone());
    let t = checkins
        .last()
        .and_then(|c| c.telemetry.clone())
        .expect("a format-2 check-in");
    assert_eq!(t.chip_id, chip_ids::ESP32);
    assert_eq!(t.attributes.get("site"), Some("test-bench"));
    assert_eq!(t.free_heap, 150_000, "what the platform said");
    assert_eq!(t.reset_reason, 1);
}

#[test]
fn a_download_continued_after_a_network_failure_reports_resumed() {
    let new = image("1.0.6", 0x9000, false);
    let (mut dev, net) = setup(new.clone(), |_| {});
    dev.spec.max_polls = 1;
    // The network dies for good after the table, the page and four chunks.
    net.with(|s| s.v2.ranges_left = Some(6));
    dev.boot();
    assert!(!net.with(|s| s.v2.events.iter().any(|e| e.0 == EventKind::Resumed)));
    net.with(|s| s.v2.ranges_left = None);
    let b = dev.boot();
    assert_eq!(b.last_poll(), Some(PollOutcome::RebootRequired), "{b:?}");
    let kinds: Vec<EventKind> = net.with(|s| s.v2.events.iter().map(|e| e.0).collect());
    let resumed = kinds.iter().position(|&k| k == EventKind::Resumed);
    let verified = kinds.iter().position(|&k| k == EventKind::Verified);
    assert!(
        matches!((resumed, verified), (Some(r), Some(v)) if r < v),
        "resumed before verified: {kinds:?}"
    );
}
