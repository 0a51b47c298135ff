//! Root rotation on the device: a chain walked a step at a time, a revoked release key, the
//! newest root's expiry.

use fota_agent::PollOutcome;
use fota_protocol::v2::{EventKind, ReasonCode};
use fota_testkit::agent::*;
use fota_testkit::seeds::{NOW, Plan};

fn setup() -> (Device, Net) {
    let old = image("1.0.5", 0x8000, false);
    let net = Net::default();
    net.with(|s| {
        s.v2.releases.push(release("1.0.5", old.clone(), 1, 4096));
        s.v2.releases
            .push(release("1.0.6", image("1.0.6", 0x9000, false), 2, 4096));
    });
    let flash = provisioned_flash(&table(), &old);
    (Device::new(flash, net.clone(), DeviceSpec::default()), net)
}

fn failed(b: &BootLog) -> Option<ReasonCode> {
    b.polls.iter().find_map(|p| match p {
        PollOutcome::Failed { reason, .. } => Some(*reason),
        _ => None,
    })
}

fn confirmed(net: &Net) -> bool {
    net.with(|s| s.v2.events.iter().any(|e| e.0 == EventKind::Confirmed))
}

/// Boots until the device confirmed a release (or gives up after a few boots).
fn boot_until_confirmed(dev: &mut Device, net: &Net) {
    for _ in 0..6 {
        dev.boot();
        if confirmed(net) {
            return;
        }
    }
    panic!(
        "no confirmed update: {:?}",
        net.with(|s| s.v2.events.clone())
    );
}

/// Root `version` of [`Plan::SIMPLE`]'s root keys with these release and status keys,
/// expiring at `expires_at` (0: never).
fn root(version: u32, release: &[u8], status: &[u8], expires_at: u64) -> Vec<u8> {
    let plan = Plan::SIMPLE;
    let mut body = plan.root_body_with(version, plan.root, release, status);
    body.expires_at = expires_at;
    body.sign(&[&fota_testkit::seeds::signer(1)]).unwrap()
}

#[test]
fn d02_a_device_three_roots_behind_walks_the_chain_then_refuses_the_revoked_release_key() {
    let (mut dev, net) = setup();
    // v2 adds release key 11 beside 10, v3 revokes 10, v4 rotates the status key to 21; the
    // server offers 1.0.6, still signed by the revoked key 10.
    net.with(|s| {
        s.v2.roots = vec![
            root(2, &[10, 11], &[20], 0),
            root(3, &[11], &[20], 0),
            root(4, &[11], &[21], 0),
        ];
        s.v2.status_key = 21;
        s.v2.assign = Assign::Install(1);
    });
    let b = dev.boot();
    assert_eq!(failed(&b), Some(ReasonCode::UnknownOrRevokedKey), "{b:?}");
    assert!(
        dev.slot_bytes(1, 0x1000).iter().all(|&b| b == 0xFF),
        "a manifest by a revoked key writes nothing to the slot"
    );
    // Every step was kept: without the records, the device speaks from root v4.
    net.with(|s| s.v2.roots.clear());
    let b = dev.boot();
    assert_eq!(failed(&b), Some(ReasonCode::UnknownOrRevokedKey), "{b:?}");
    assert_eq!(net.with(|s| s.v2.checkins.last().unwrap().root_version), 4);
    assert_eq!(
        net.with(|s| s.v2.checkins.last().unwrap().last_result),
        ReasonCode::UnknownOrRevokedKey
    );
    // A release signed with the new key installs.
    net.with(|s| {
        let img = image("1.0.7", 0x9000, false);
        s.v2.releases
            .push(release_with("1.0.7", img, 3, 4096, |_| {}, &[11]));
        s.v2.assign = Assign::Install(2);
    });
    boot_until_confirmed(&mut dev, &net);
}

#[test]
fn a_chain_longer_than_one_answer_is_walked_over_several_check_ins() {
    let (mut dev, net) = setup();
    // Six versions; an answer carries at most four, as the server sends them.
    let chain: Vec<Vec<u8>> = (2..=7).map(|v| root(v, &[10], &[20], 0)).collect();
    net.with(|s| s.v2.roots = chain[..4].to_vec());
    dev.boot();
    assert_eq!(net.with(|s| s.v2.checkins.last().unwrap().root_version), 1);
    net.with(|s| s.v2.roots = chain[3..].to_vec());
    dev.boot();
    assert_eq!(net.with(|s| s.v2.checkins.last().unwrap().root_version), 5);
    net.with(|s| s.v2.roots.clear());
    dev.boot();
    assert_eq!(net.with(|s| s.v2.checkins.last().unwrap().root_version), 7);
}

#[test]
fn an_expired_newest_root_stops_installs_until_a_newer_root_arrives() {
    let (mut dev, net) = setup();
    // 1.0.6's manifest (issued NOW - 100) moves the offline time floor past NOW - 500.
    net.with(|s| s.v2.assign = Assign::Install(1));
    boot_until_confirmed(&mut dev, &net);
    net.with(|s| {
        s.v2.events.clear();
        s.v2.roots = vec![root(2, &[10], &[20], NOW - 500)];
        s.v2.releases
            .push(release("1.0.7", image("1.0.7", 0x9000, false), 3, 4096));
        s.v2.assign = Assign::Install(2);
    });
    let b = dev.boot();
    assert_eq!(failed(&b), Some(ReasonCode::RootExpired), "{b:?}");
    assert!(!confirmed(&net));
    // A statement signed by the server's status key cannot move that floor back: the expiry
    // holds whatever time the server claims.
    net.with(|s| s.v2.server_time = NOW - 600);
    let b = dev.boot();
    assert_eq!(failed(&b), Some(ReasonCode::RootExpired), "{b:?}");
    // Root v3, valid, lifts it.
    net.with(|s| s.v2.roots = vec![root(2, &[10], &[20], NOW - 500), root(3, &[10], &[20], 0)]);
    boot_until_confirmed(&mut dev, &net);
    assert_eq!(net.with(|s| s.v2.checkins.last().unwrap().root_version), 3);
}

#[test]
fn check_ins_carry_a_counter_that_grows_within_a_boot_and_restarts_at_zero() {
    let (mut dev, net) = setup();
    // A release the device refuses keeps it polling, several check-ins in one boot.
    net.with(|s| {
        let img = s.v2.releases[1].image.clone();
        s.v2.releases[1] = release_with("1.0.6", img, 2, 4096, |_| {}, &[99]);
        s.v2.assign = Assign::Install(1);
    });
    let first_boot = dev.boot().polls.len();
    assert!(first_boot >= 3, "{first_boot} polls");
    dev.boot();
    let counters: Vec<u64> = net.with(|s| {
        s.v2.checkins
            .iter()
            .map(|c| c.telemetry.as_ref().map_or(u64::MAX, |t| t.counter))
            .collect()
    });
    // Before a boot's first statement the counter is 0: the server applies the report and
    // restarts its watermark.
    assert_eq!(counters[0], 0, "{counters:?}");
    assert_eq!(counters[first_boot], 0, "{counters:?}");
    // After it, the statement's server time and the check-ins of this boot.
    for i in 1..first_boot {
        assert_eq!(counters[i] >> 20, NOW, "{counters:?}");
        assert!(counters[i] > counters[i - 1], "{counters:?}");
    }
}
