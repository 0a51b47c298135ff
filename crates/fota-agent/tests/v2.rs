//! v2 end to end over SimFlash: a fake server built from fota-protocol's host builders, the
//! test bootloader, and a fresh agent from flash on every boot.

mod common;

use common::*;
use fota_agent::{PollOutcome, Running, StartupOutcome};
use fota_protocol::esp::otadata::OtaState;
use fota_protocol::v2::{EventKind, ReasonCode};

fn setup(new: Vec<u8>) -> (Device, Net, Vec<u8>) {
    let old = image("1.0.5", 0x8000, false);
    let net = Net::default();
    net.with(|s| {
        s.v2.releases.push(release("1.0.5", old.clone(), 1, 4096));
        s.v2.releases.push(release("1.0.6", new, 2, 4096));
    });
    let flash = provisioned_flash(&table(), &old);
    (Device::new(flash, net.clone(), DeviceSpec::default()), net, old)
}

fn events(net: &Net) -> Vec<EventKind> {
    net.with(|s| s.v2.events.iter().map(|e| e.0).collect())
}

#[test]
fn full_update_trial_and_confirm() {
    let new = image("1.0.6", 0x9000, false);
    let (mut dev, net, _) = setup(new.clone());
    let b = dev.boot();
    assert_eq!(b.last_poll(), Some(PollOutcome::Idle { next_poll_ms: 60_000 }));
    net.with(|s| s.v2.assign = Assign::Install(1));
    let b = dev.boot();
    assert_eq!(b.last_poll(), Some(PollOutcome::RebootRequired), "{b:?}");
    assert_eq!(dev.slot_bytes(1, new.len()), &new[..]);
    assert_eq!(dev.slot_state(1), Some(OtaState::New));
    let b = dev.boot();
    assert!(b.booted.unwrap().trial);
    assert_eq!(running_of(&b), Running::Ota(1));
    assert_eq!(b.startup, Some(StartupOutcome::Ready));
    assert_eq!(dev.slot_state(1), Some(OtaState::Valid));
    let ev = events(&net);
    assert!(ev.contains(&EventKind::Verified), "{ev:?}");
    assert!(ev.contains(&EventKind::BootedOnTrial), "{ev:?}");
    assert!(ev.contains(&EventKind::Confirmed), "{ev:?}");
    // Next boot: still the new image, nothing to do.
    let b = dev.boot();
    assert_eq!(running_of(&b), Running::Ota(1));
    assert!(matches!(b.last_poll(), Some(PollOutcome::Idle { .. })));
    let served = net.with(|s| s.v2.image_bytes_served);
    assert_eq!(served, new.len() as u64);
    let status = b.status.unwrap();
    assert_eq!(status.installed_sequence, 2);
    let _ = ReasonCode::None;
}
