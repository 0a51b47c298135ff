//! v2 end to end over SimFlash: a fake server built from fota-protocol's host builders, the
//! test bootloader, and a fresh agent from flash on every boot.

use fota_agent::{PollOutcome, Running, StartupOutcome};
use fota_protocol::esp::otadata::OtaState;
use fota_protocol::v2::{EventKind, ReasonCode};
use fota_testkit::agent::*;

fn setup(new: Vec<u8>) -> (Device, Net, Vec<u8>) {
    let old = image("1.0.5", 0x8000, false);
    let net = Net::default();
    net.with(|s| {
        s.v2.releases.push(release("1.0.5", old.clone(), 1, 4096));
        s.v2.releases.push(release("1.0.6", new, 2, 4096));
    });
    let flash = provisioned_flash(&table(), &old);
    (
        Device::new(flash, net.clone(), DeviceSpec::default()),
        net,
        old,
    )
}

fn events(net: &Net) -> Vec<EventKind> {
    net.with(|s| s.v2.events.iter().map(|e| e.0).collect())
}

#[test]
fn full_update_trial_and_confirm() {
    let new = image("1.0.6", 0x9000, false);
    let (mut dev, net, _) = setup(new.clone());
    let b = dev.boot();
    assert_eq!(
        b.last_poll(),
        Some(PollOutcome::Idle {
            next_poll_ms: 60_000
        })
    );
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

fn ops(dev: &Device) -> u64 {
    let s = dev.flash().stats();
    s.programs + s.erases
}

fn refused_before_flash(edit: impl FnOnce(&mut Net), expect: ReasonCode) {
    let new = image("1.0.6", 0x9000, false);
    let (mut dev, net, _) = setup(new);
    let mut net2 = net.clone();
    edit(&mut net2);
    let before = ops(&dev);
    let b = dev.boot();
    match b.polls.first() {
        Some(PollOutcome::Failed { reason, .. }) => assert_eq!(*reason, expect),
        other => panic!("expected {expect:?}, got {other:?}"),
    }
    assert_eq!(
        ops(&dev),
        before,
        "nothing may touch flash before the manifest is accepted"
    );
    assert!(dev.slot_bytes(1, 0x1000).iter().all(|&b| b == 0xFF));
}

#[test]
fn a_manifest_signed_by_an_unknown_key_is_refused_before_flash() {
    refused_before_flash(
        |net| {
            net.with(|s| {
                let img = s.v2.releases[1].image.clone();
                s.v2.releases[1] = release_with("1.0.6", img, 2, 4096, |_| {}, &[99]);
                s.v2.assign = Assign::Install(1);
            })
        },
        ReasonCode::UnknownOrRevokedKey,
    );
}

#[test]
fn a_bad_signature_by_the_trusted_key_is_refused_before_flash() {
    refused_before_flash(
        |net| {
            net.with(|s| {
                // The entry still names release key 10; its signature no longer verifies.
                let r = &mut s.v2.releases[1];
                let last = r.manifest.len() - 1;
                r.manifest[last] ^= 0x01;
                r.digest = fota_protocol::v2::manifest_digest(&r.manifest);
                s.v2.assign = Assign::Install(1);
            })
        },
        ReasonCode::SignatureInvalid,
    );
}

#[test]
fn wrong_class_is_refused_before_flash() {
    refused_before_flash(
        |net| {
            net.with(|s| {
                let img = s.v2.releases[1].image.clone();
                s.v2.releases[1] =
                    release_with("1.0.6", img, 2, 4096, |b| b.class_id = [9; 16], &[10]);
                s.v2.assign = Assign::Install(1);
            })
        },
        ReasonCode::WrongDeviceOrClass,
    );
}

#[test]
fn another_devices_manifest_is_refused_before_flash() {
    refused_before_flash(
        |net| {
            net.with(|s| {
                let img = s.v2.releases[1].image.clone();
                s.v2.releases[1] =
                    release_with("1.0.6", img, 2, 4096, |b| b.device_id = [7; 16], &[10]);
                s.v2.assign = Assign::Install(1);
            })
        },
        ReasonCode::WrongDeviceOrClass,
    );
}

#[test]
fn expired_manifest_is_refused_before_flash() {
    refused_before_flash(
        |net| {
            net.with(|s| {
                let img = s.v2.releases[1].image.clone();
                s.v2.releases[1] =
                    release_with("1.0.6", img, 2, 4096, |b| b.expires_at = NOW - 10, &[10]);
                s.v2.assign = Assign::Install(1);
            })
        },
        ReasonCode::Expired,
    );
}

#[test]
fn a_manifest_the_statement_does_not_assign_is_refused() {
    refused_before_flash(
        |net| {
            net.with(|s| {
                s.v2.assign = Assign::Install(1);
                s.v2.swap_manifest = Some(0);
            })
        },
        ReasonCode::AssignmentMismatch,
    );
}

/// The flash with the journal (the last 8 KiB of the EcoWatt layout) blanked: what a refused
/// status statement must leave as it was. The journal counts the refusal.
fn outside_the_journal(dev: &Device) -> Vec<u8> {
    let mut bytes = dev.flash().contents().to_vec();
    bytes[0x3F_E000..0x40_0000].fill(0);
    bytes
}

#[test]
fn a_statement_from_the_wrong_key_is_refused() {
    let (mut dev, net, _) = setup(image("1.0.6", 0x9000, false));
    net.with(|s| {
        s.v2.assign = Assign::Install(1);
        s.v2.status_key = 10;
    });
    dev.spec.max_polls = 1;
    let before = outside_the_journal(&dev);
    let b = dev.boot();
    assert!(failed_with(&b, ReasonCode::StatusInvalid), "{b:?}");
    assert!(
        outside_the_journal(&dev) == before,
        "no slot or otadata write"
    );
    // Refusals in a row are counted across resets: the third is a freshness alarm, however
    // often the device restarts in between.
    dev.boot();
    let b = dev.boot();
    assert!(failed_with(&b, ReasonCode::FreshnessUnavailable), "{b:?}");
    // A good statement ends the run.
    net.with(|s| s.v2.status_key = 20);
    let b = dev.boot();
    assert_eq!(b.last_poll(), Some(PollOutcome::RebootRequired), "{b:?}");
}

#[test]
fn an_image_larger_than_the_slot_is_refused_before_flash() {
    refused_before_flash(
        |net| {
            net.with(|s| {
                let img = s.v2.releases[1].image.clone();
                // Signed, but claims more than the 0x140000 slot holds.
                s.v2.releases[1] = release_with(
                    "1.0.6",
                    img,
                    2,
                    65536,
                    |b| {
                        b.image_size = 0x140001;
                        b.chunk_count = 0x140001u64.div_ceil(65536) as u32;
                    },
                    &[10],
                );
                s.v2.assign = Assign::Install(1);
            })
        },
        ReasonCode::TooLarge,
    );
}

/// Installs release `index` and confirms it (three boots).
fn install(dev: &mut Device, net: &Net, index: usize) {
    net.with(|s| s.v2.assign = Assign::Install(index));
    let b = dev.boot();
    assert_eq!(b.last_poll(), Some(PollOutcome::RebootRequired), "{b:?}");
    let b = dev.boot();
    assert_eq!(b.startup, Some(StartupOutcome::Ready), "{b:?}");
}

#[test]
fn a_downgrade_is_refused() {
    let new = image("1.0.6", 0x9000, false);
    let (mut dev, net, _) = setup(new);
    net.with(|s| {
        let img = image("1.0.7", 0x9000, false);
        s.v2.releases.push(release("1.0.7", img, 5, 4096));
    });
    install(&mut dev, &net, 2);
    net.with(|s| s.v2.assign = Assign::Install(1));
    let before = ops(&dev);
    let b = dev.boot();
    assert!(
        matches!(
            b.polls.first(),
            Some(PollOutcome::Failed {
                reason: ReasonCode::Downgrade,
                ..
            })
        ),
        "{b:?}"
    );
    assert_eq!(ops(&dev), before);
}

#[test]
fn a_tampered_chunk_is_refetched_and_never_written() {
    let new = image("1.0.6", 0x9000, false);
    let (mut dev, net, _) = setup(new.clone());
    net.with(|s| {
        s.v2.assign = Assign::Install(1);
        s.v2.tamper = Some((3, 1));
    });
    let b = dev.boot();
    assert_eq!(b.last_poll(), Some(PollOutcome::RebootRequired), "{b:?}");
    assert_eq!(b.status.unwrap().chunks_redownloaded, 1);
    assert_eq!(dev.slot_bytes(1, new.len()), &new[..]);
    assert_eq!(
        net.with(|s| s.v2.image_bytes_served),
        new.len() as u64 + 4096
    );
}

#[test]
fn a_chunk_that_stays_tampered_stops_the_download_before_it_reaches_flash() {
    let new = image("1.0.6", 0x9000, false);
    let (mut dev, net, _) = setup(new.clone());
    net.with(|s| {
        s.v2.assign = Assign::Install(1);
        s.v2.tamper = Some((2, 1000));
    });
    dev.spec.max_polls = 1;
    let b = dev.boot();
    assert!(
        matches!(
            b.last_poll(),
            Some(PollOutcome::Failed {
                reason: ReasonCode::ChunkHashMismatch,
                ..
            })
        ),
        "{b:?}"
    );
    assert_eq!(dev.slot_bytes(1, 0x2000), &new[..0x2000]);
    assert!(
        dev.slot_bytes(1, 0x3000)[0x2000..]
            .iter()
            .all(|&b| b == 0xFF)
    );
    assert_eq!(dev.slot_state(1), None);
    // The tampering stops: the download resumes at chunk 2 without fetching 0 and 1 again.
    net.with(|s| {
        s.v2.tamper = None;
        s.v2.image_bytes_served = 0;
    });
    let b = dev.boot();
    assert_eq!(b.last_poll(), Some(PollOutcome::RebootRequired), "{b:?}");
    assert_eq!(
        net.with(|s| s.v2.image_bytes_served),
        new.len() as u64 - 0x2000
    );
    assert_eq!(dev.slot_bytes(1, new.len()), &new[..]);
}

#[test]
fn network_failures_are_retried_and_a_download_resumes() {
    let new = image("1.0.6", 0x9000, false);
    let (mut dev, net, _) = setup(new.clone());
    net.with(|s| {
        s.v2.assign = Assign::Install(1);
        s.v2.fail_requests = 2;
    });
    dev.spec.max_polls = 1;
    // Two failures are within the retries of one request.
    let b = dev.boot();
    assert_eq!(b.last_poll(), Some(PollOutcome::RebootRequired), "{b:?}");

    let (mut dev, net, _) = setup(new.clone());
    dev.spec.max_polls = 1;
    // The network dies for good after the table, the page and four chunks.
    net.with(|s| {
        s.v2.assign = Assign::Install(1);
        s.v2.ranges_left = Some(6);
    });
    let b = dev.boot();
    assert!(
        matches!(b.last_poll(), Some(PollOutcome::Retry { .. })),
        "{b:?}"
    );
    let st = b.status.unwrap();
    assert_eq!(
        (st.pending_bytes_done, st.pending_bytes_total),
        (4 * 4096, new.len() as u64)
    );
    net.with(|s| {
        s.v2.ranges_left = None;
        s.v2.image_bytes_served = 0;
    });
    let b = dev.boot();
    assert_eq!(b.last_poll(), Some(PollOutcome::RebootRequired), "{b:?}");
    assert_eq!(
        net.with(|s| s.v2.image_bytes_served),
        new.len() as u64 - 4 * 4096
    );
    assert_eq!(b.status.unwrap().resumes, 1);
    assert_eq!(dev.slot_bytes(1, new.len()), &new[..]);
}

#[test]
fn a_trial_that_fails_its_health_check_rolls_back_and_is_not_reinstalled() {
    let bad = image("1.0.6", 0x9000, true);
    let (mut dev, net, old) = setup(bad);
    net.with(|s| s.v2.assign = Assign::Install(1));
    let b = dev.boot();
    assert_eq!(b.last_poll(), Some(PollOutcome::RebootRequired));
    let b = dev.boot();
    assert_eq!(running_of(&b), Running::Ota(1));
    assert!(
        matches!(b.startup, Some(StartupOutcome::ResetRequired(_))),
        "{b:?}"
    );
    // The bootloader aborts the unconfirmed image.
    let b = dev.boot();
    assert_eq!(running_of(&b), Running::Ota(0));
    assert_eq!(dev.slot_bytes(0, old.len()), &old[..]);
    let rolled = net.with(|s| {
        s.v2.events
            .iter()
            .find(|e| e.0 == EventKind::RolledBack)
            .copied()
    });
    assert_eq!(rolled.map(|e| e.1), Some(ReasonCode::HealthCheckFailed));
    // Reported before the next check-in.
    let first_checkin_after = net.with(|s| s.v2.checkins.len());
    assert!(first_checkin_after >= 1);
    assert!(
        matches!(b.last_poll(), Some(PollOutcome::Idle { .. })),
        "not reinstalled: {b:?}"
    );
    assert_eq!(net.with(|s| s.v2.image_bytes_served), 0x9000);
    // An explicit re-assignment (new generation) installs it again.
    net.with(|s| s.v2.generation += 1);
    let b = dev.boot();
    assert_eq!(b.last_poll(), Some(PollOutcome::RebootRequired), "{b:?}");
}

#[test]
fn k_boot_attempts_give_the_image_k_trials_then_roll_back() {
    let bad = image("1.0.6", 0x9000, true);
    let (mut dev, net, _) = setup(bad);
    dev.spec.k = 3;
    net.with(|s| s.v2.assign = Assign::Install(1));
    assert_eq!(dev.boot().last_poll(), Some(PollOutcome::RebootRequired));
    for attempt in 1..=3 {
        let b = dev.boot();
        assert_eq!(running_of(&b), Running::Ota(1), "trial {attempt}");
        assert!(matches!(b.startup, Some(StartupOutcome::ResetRequired(_))));
    }
    let b = dev.boot();
    assert_eq!(
        running_of(&b),
        Running::Ota(0),
        "never survives k + 1 boots"
    );
    let rolled = net.with(|s| s.v2.events.iter().any(|e| e.0 == EventKind::RolledBack));
    assert!(rolled);
}

#[test]
fn manual_rollback_reports_before_polling_and_does_not_loop() {
    let new = image("1.0.6", 0x9000, false);
    let (mut dev, net, _) = setup(new);
    install(&mut dev, &net, 1);
    net.with(|s| s.v2.assign = Assign::Rollback(77));
    let b = dev.boot();
    assert_eq!(running_of(&b), Running::Ota(1));
    assert_eq!(b.last_poll(), Some(PollOutcome::RebootRequired), "{b:?}");
    assert_eq!(dev.slot_state(1), Some(OtaState::Invalid));
    let checkins = net.with(|s| s.v2.checkins.len());
    let b = dev.boot();
    assert_eq!(running_of(&b), Running::Ota(0));
    let done = net.with(|s| {
        s.v2.events
            .iter()
            .find(|e| e.0 == EventKind::RollbackDone)
            .copied()
    });
    assert_eq!(done.map(|e| e.2), Some(77));
    // The order stays on the server until it hears; the same order is never acted on twice.
    let b = dev.boot();
    assert!(
        matches!(b.last_poll(), Some(PollOutcome::Idle { .. })),
        "{b:?}"
    );
    assert!(net.with(|s| s.v2.checkins.len()) > checkins);
    // The server goes back to assigning 1.0.6 (same generation): not reinstalled.
    net.with(|s| s.v2.assign = Assign::Install(1));
    let b = dev.boot();
    assert!(
        matches!(b.last_poll(), Some(PollOutcome::Idle { .. })),
        "{b:?}"
    );
    assert_eq!(running_of(&b), Running::Ota(0));
}

#[test]
fn a_rollback_with_nothing_to_return_to_is_refused() {
    let new = image("1.0.6", 0x9000, false);
    let (mut dev, net, _) = setup(new);
    net.with(|s| s.v2.assign = Assign::Rollback(5));
    let b = dev.boot();
    assert!(
        matches!(
            b.polls.first(),
            Some(PollOutcome::Failed {
                reason: ReasonCode::RollbackImpossible,
                ..
            })
        ),
        "{b:?}"
    );
    let refused = net.with(|s| {
        s.v2.events
            .iter()
            .find(|e| e.0 == EventKind::RollbackRefused)
            .copied()
    });
    assert_eq!(
        refused.map(|e| (e.1, e.2)),
        Some((ReasonCode::RollbackImpossible, 5))
    );
    assert_eq!(running_of(&dev.boot()), Running::Ota(0));
}

/// A device that ran 1.0.5 before it had a journal, with releases 1.0.6 and 1.0.7 (security
/// counters `counters`) on the server.
fn with_counters(counters: [u32; 2]) -> (Device, Net) {
    let net = Net::default();
    net.with(|s| {
        for (i, (version, counter)) in ["1.0.6", "1.0.7"].into_iter().zip(counters).enumerate() {
            let img = image(version, 0x9000, false);
            let seq = i as u64 + 2;
            s.v2.releases.push(release_with(
                version,
                img,
                seq,
                4096,
                |b| b.security_counter = counter,
                &[10],
            ));
        }
    });
    let flash = provisioned_flash(&table(), &image("1.0.5", 0x8000, false));
    (Device::new(flash, net.clone(), DeviceSpec::default()), net)
}

fn rollback_event(net: &Net) -> Option<(EventKind, ReasonCode, u64)> {
    net.with(|s| {
        s.v2.events
            .iter()
            .find(|e| matches!(e.0, EventKind::RollbackDone | EventKind::RollbackRefused))
            .copied()
    })
}

#[test]
fn a_rollback_order_to_a_release_at_the_committed_counter_is_carried_out() {
    let (mut dev, net) = with_counters([3, 3]);
    install(&mut dev, &net, 0);
    install(&mut dev, &net, 1);
    let committed = net.with(|s| s.v2.checkins.last().unwrap().installed_security_counter);
    assert_eq!(committed, 3);
    net.with(|s| s.v2.assign = Assign::Rollback(8));
    assert_eq!(dev.boot().last_poll(), Some(PollOutcome::RebootRequired));
    let b = dev.boot();
    assert_eq!(running_of(&b), Running::Ota(1), "back on 1.0.6: {b:?}");
    assert_eq!(
        rollback_event(&net),
        Some((EventKind::RollbackDone, ReasonCode::OperatorOrder, 8))
    );
}

#[test]
fn an_image_from_before_the_journal_counts_as_counter_zero_for_a_rollback_order() {
    let (mut dev, net) = with_counters([1, 1]);
    install(&mut dev, &net, 0);
    net.with(|s| s.v2.assign = Assign::Rollback(9));
    let before = ops(&dev);
    let b = dev.boot();
    assert!(
        failed_with(&b, ReasonCode::RollbackBelowCounter),
        "1.0.5 has no known release, so no counter: {b:?}"
    );
    assert_eq!(
        rollback_event(&net),
        Some((
            EventKind::RollbackRefused,
            ReasonCode::RollbackBelowCounter,
            9
        ))
    );
    assert_eq!(dev.slot_state(1), Some(OtaState::Valid));
    assert!(ops(&dev) > before, "the refusal is journaled");
    assert_eq!(running_of(&dev.boot()), Running::Ota(1));
}

#[test]
fn a_rotated_root_is_verified_persisted_and_used() {
    let new = image("1.0.6", 0x9000, false);
    let (mut dev, net, _) = setup(new);
    net.with(|s| {
        s.v2.roots = vec![root_with(2, &[10], &[21])];
        s.v2.status_key = 21;
    });
    // The rotated root arrives with the statement signed by the new status key.
    let b = dev.boot();
    assert!(
        matches!(b.last_poll(), Some(PollOutcome::Idle { .. })),
        "{b:?}"
    );
    // Later answers no longer carry it: the persisted root must be used.
    net.with(|s| s.v2.roots.clear());
    let b = dev.boot();
    assert!(
        matches!(b.last_poll(), Some(PollOutcome::Idle { .. })),
        "{b:?}"
    );
    assert_eq!(net.with(|s| s.v2.checkins.last().unwrap().root_version), 2);
    // A root not signed by the trusted root keys is ignored.
    net.with(|s| {
        let body = fota_protocol::v2::RootBody {
            version: 3,
            vendor_id: VENDOR,
            issued_at: 0,
            expires_at: 0,
            root: fota_protocol::v2::KeySet::new(
                fota_protocol::v2::Role::Root,
                1,
                &[key(50).verifying_key().to_bytes()],
            )
            .unwrap(),
            release: fota_protocol::v2::KeySet::new(
                fota_protocol::v2::Role::Release,
                1,
                &[key(51).verifying_key().to_bytes()],
            )
            .unwrap(),
            status: fota_protocol::v2::KeySet::new(
                fota_protocol::v2::Role::Status,
                1,
                &[key(52).verifying_key().to_bytes()],
            )
            .unwrap(),
        };
        s.v2.roots = vec![body.sign(&[&key(50)]).unwrap()];
        s.v2.status_key = 52;
    });
    let b = dev.boot();
    assert!(
        matches!(
            b.polls.first(),
            Some(PollOutcome::Failed {
                reason: ReasonCode::StatusInvalid,
                ..
            })
        ),
        "{b:?}"
    );
}

fn idle(b: &BootLog) -> bool {
    matches!(b.last_poll(), Some(PollOutcome::Idle { .. }))
}

#[test]
fn only_a_rotation_that_replaces_the_status_key_forgets_the_time_that_key_vouched_for() {
    let (mut dev, net, _) = setup(image("1.0.6", 0x9000, false));
    // Status key 20 leaks and vouches for a time ten years ahead.
    net.with(|s| s.v2.server_time = NOW + 10 * 365 * 86_400);
    let b = dev.boot();
    assert!(idle(&b), "{b:?}");
    net.with(|s| s.v2.server_time = NOW);
    let b = dev.boot();
    assert!(failed_with(&b, ReasonCode::Expired), "{b:?}");
    // Root v2 still trusts key 20: the rotation is kept, the time it vouched for stands (and
    // the run of stale statements, kept across the reboot, is a freshness alarm by now).
    net.with(|s| s.v2.roots = vec![root_with(2, &[10], &[20])]);
    let b = dev.boot();
    assert!(failed_with(&b, ReasonCode::FreshnessUnavailable), "{b:?}");
    assert_eq!(net.with(|s| s.v2.checkins.last().unwrap().root_version), 2);
    // Root v3 replaces key 20 with 21: honest statements count again, and an update installs.
    net.with(|s| {
        s.v2.roots = vec![root_with(3, &[10], &[21])];
        s.v2.status_key = 21;
    });
    let b = dev.boot();
    assert!(idle(&b), "{b:?}");
    install(&mut dev, &net, 1);
    assert_eq!(running_of(&dev.boot()), Running::Ota(1));
}

#[test]
fn a_statement_that_expired_before_the_trusted_root_was_signed_is_refused() {
    let (mut dev, net, _) = setup(image("1.0.6", 0x9000, false));
    // The provisioned root was signed at NOW - 1000, so this statement is stale even to a
    // device that never heard a status statement.
    net.with(|s| s.v2.server_time = NOW - 1000 - 86_400);
    dev.spec.max_polls = 1;
    let before = outside_the_journal(&dev);
    let b = dev.boot();
    assert!(failed_with(&b, ReasonCode::Expired), "{b:?}");
    assert!(outside_the_journal(&dev) == before);
    net.with(|s| s.v2.server_time = NOW);
    assert!(idle(&dev.boot()));
}

#[test]
fn a_release_the_device_accepted_still_bounds_the_time_after_the_status_key_is_replaced() {
    let (mut dev, net, _) = setup(image("1.0.6", 0x9000, false));
    install(&mut dev, &net, 1);
    // Root v2 replaces status key 20, which vouched for NOW; key 21 vouches for nothing yet,
    // but 1.0.6 was signed at NOW - 100.
    net.with(|s| {
        s.v2.assign = Assign::None;
        s.v2.roots = vec![root_with(2, &[10], &[21])];
        s.v2.status_key = 21;
        s.v2.server_time = NOW - 100 - 86_400;
    });
    let b = dev.boot();
    assert!(failed_with(&b, ReasonCode::Expired), "{b:?}");
    net.with(|s| s.v2.server_time = NOW - 99 - 86_400);
    let b = dev.boot();
    assert!(idle(&b), "{b:?}");
}

#[test]
fn two_ota_layout_from_factory_then_between_slots() {
    let old = image("1.0.5", 0x8000, false);
    let net = Net::default();
    net.with(|s| {
        s.v2.releases
            .push(release("1.0.6", image("1.0.6", 0x9000, false), 2, 4096));
        s.v2.releases
            .push(release("1.0.7", image("1.0.7", 0xA000, false), 3, 1024));
        s.v2.assign = Assign::Install(0);
    });
    let mut dev = Device::new(
        factory_flash(&fota_protocol::esp::layouts::two_ota(), &old),
        net.clone(),
        DeviceSpec::default(),
    );
    let b = dev.boot();
    assert_eq!(running_of(&b), Running::Factory);
    assert_eq!(b.last_poll(), Some(PollOutcome::RebootRequired), "{b:?}");
    let b = dev.boot();
    assert_eq!(running_of(&b), Running::Ota(0));
    assert_eq!(b.startup, Some(StartupOutcome::Ready));
    assert_eq!(dev.slot_state(0), Some(OtaState::Valid));
    net.with(|s| s.v2.assign = Assign::Install(1));
    assert_eq!(dev.boot().last_poll(), Some(PollOutcome::RebootRequired));
    let b = dev.boot();
    assert_eq!(running_of(&b), Running::Ota(1));
    assert_eq!(dev.slot_state(1), Some(OtaState::Valid));
    // Manual rollback returns to ota_0 (the other valid entry), never to factory.
    net.with(|s| s.v2.assign = Assign::Rollback(3));
    assert_eq!(dev.boot().last_poll(), Some(PollOutcome::RebootRequired));
    assert_eq!(running_of(&dev.boot()), Running::Ota(0));
}

#[test]
fn a_stale_entry_selecting_the_target_is_neutralised_before_the_target_is_written() {
    use fota_protocol::esp::otadata::OtaSelectEntry;
    // ESP-IDF #14808 and ruuvi #1280: otadata selects ota_1, whose image is broken, so the
    // bootloader fell back to ota_0 without rewriting otadata.
    let old = image("1.0.5", 0x8000, false);
    let mut flash = provisioned_flash(&table(), &old);
    flash
        .preload(0xF000, &OtaSelectEntry::new(2, OtaState::Valid).encode())
        .unwrap();
    flash.preload(0x150000, &[0xE9, 0, 0, 0]).unwrap();
    let new = image("1.0.6", 0x9000, false);
    let net = Net::default();
    net.with(|s| {
        s.v2.releases.push(release("1.0.6", new.clone(), 2, 4096));
        s.v2.assign = Assign::Install(0);
        s.v2.ranges_left = Some(4);
    });
    let mut dev = Device::new(
        flash,
        net.clone(),
        DeviceSpec {
            max_polls: 1,
            ..DeviceSpec::default()
        },
    );
    let b = dev.boot();
    assert_eq!(running_of(&b), Running::Ota(0));
    assert!(
        matches!(b.last_poll(), Some(PollOutcome::Retry { .. })),
        "{b:?}"
    );
    // Half written, and no entry can select it: the next boot is the old image again.
    let ota = dev.otadata();
    assert_ne!(ota.active_slot(2).map(|a| a.1), Some(1), "{ota:?}");
    assert_eq!(running_of(&dev.boot()), Running::Ota(0));
    net.with(|s| s.v2.ranges_left = None);
    assert_eq!(dev.boot().last_poll(), Some(PollOutcome::RebootRequired));
    let b = dev.boot();
    assert_eq!(running_of(&b), Running::Ota(1));
    assert_eq!(dev.slot_state(1), Some(OtaState::Valid));
}

#[test]
fn a_trial_the_journal_did_not_expect_is_health_checked_before_it_is_confirmed() {
    use fota_protocol::esp::otadata::OtaSelectEntry;
    // Flashed by a tool with state NEW and no journal: the bootloader makes it PENDING_VERIFY.
    for (healthy, expect) in [(true, OtaState::Valid), (false, OtaState::Aborted)] {
        let img = image("1.0.5", 0x8000, !healthy);
        let mut flash = provisioned_flash(&table(), &img);
        flash.preload(0xE000, &[0xFF; 32]).unwrap();
        flash
            .preload(0xE000, &OtaSelectEntry::new(1, OtaState::New).encode())
            .unwrap();
        // Something to fall back to for the unhealthy case.
        flash
            .preload(0x150000, &image("1.0.4", 0x8000, false))
            .unwrap();
        flash
            .preload(0xF000, &OtaSelectEntry::new(2, OtaState::Valid).encode())
            .unwrap();
        flash
            .preload(0xE000, &OtaSelectEntry::new(3, OtaState::New).encode())
            .unwrap();
        let net = Net::default();
        let mut dev = Device::new(flash, net.clone(), DeviceSpec::default());
        let b = dev.boot();
        assert!(b.booted.unwrap().trial);
        assert_eq!(running_of(&b), Running::Ota(0));
        if healthy {
            assert_eq!(b.startup, Some(StartupOutcome::Ready));
            assert_eq!(dev.slot_state(0), Some(expect));
        } else {
            assert!(matches!(b.startup, Some(StartupOutcome::ResetRequired(_))));
            let b = dev.boot();
            assert_eq!(running_of(&b), Running::Ota(1));
            assert_eq!(dev.slot_state(0), Some(expect));
        }
    }
}

#[test]
fn chunks_are_paced_and_retries_back_off_within_the_poll_interval() {
    let new = image("1.0.6", 0x9000, false);
    let (mut dev, net, _) = setup(new);
    dev.spec.chunk_interval_ms = 2000;
    net.with(|s| s.v2.assign = Assign::Install(1));
    let b = dev.boot();
    assert_eq!(b.last_poll(), Some(PollOutcome::RebootRequired));
    // 9 chunks: 8 pauses.
    assert_eq!(b.slept_ms, 8 * 2000);

    let (mut dev, net, _) = setup(image("1.0.6", 0x9000, false));
    dev.spec.max_polls = 1;
    net.with(|s| {
        s.v2.assign = Assign::Install(1);
        s.v2.fail_requests = 100;
    });
    let b = dev.boot();
    assert!(
        matches!(b.last_poll(), Some(PollOutcome::Retry { .. })),
        "{b:?}"
    );
    // max_retries = 3 attempts: two backoffs, each at most the 1 s poll interval.
    assert!(b.slept_ms > 0 && b.slept_ms <= 2 * 1000, "{}", b.slept_ms);
}

#[test]
fn a_large_hash_list_is_paged_and_its_table_streamed_again_past_eight_pages() {
    let new = image("1.0.6", 0x12_0000, false);
    let old = image("1.0.5", 0x8000, false);
    let net = Net::default();
    net.with(|s| {
        s.v2.releases.push(release("1.0.6", new.clone(), 2, 1024));
        s.v2.assign = Assign::Install(0);
    });
    let mut dev = Device::new(
        provisioned_flash(&table(), &old),
        net.clone(),
        DeviceSpec::default(),
    );
    let b = dev.boot();
    assert_eq!(b.last_poll(), Some(PollOutcome::RebootRequired), "{b:?}");
    assert_eq!(dev.slot_bytes(1, new.len()), &new[..]);
    let chunks = new.len().div_ceil(1024) as u64;
    let pages = chunks.div_ceil(128);
    assert!(pages > 8);
    let table = 16 + 32 * pages;
    // The table twice (pages 0-7, then 8-), every page once.
    assert_eq!(
        net.with(|s| s.v2.hashlist_bytes_served),
        2 * table + 32 * chunks
    );
    assert_eq!(net.with(|s| s.v2.image_bytes_served), new.len() as u64);
}

/// Sets otadata sector `sector` to `entry` (`None`: erased), as a programmer tool would.
fn put_otadata(
    dev: &mut Device,
    sector: u32,
    entry: Option<fota_protocol::esp::otadata::OtaSelectEntry>,
) {
    let od = flash_table(dev.flash())
        .boot_layout()
        .otadata
        .unwrap()
        .offset;
    let bytes = entry.map_or([0xFF; 32], |e| e.encode());
    dev.flash_mut()
        .preload(od + sector * 0x1000, &bytes)
        .unwrap();
}

fn failed_with(b: &BootLog, reason: ReasonCode) -> bool {
    b.polls
        .iter()
        .any(|p| matches!(p, PollOutcome::Failed { reason: r, .. } if *r == reason))
}

/// An update takes the last usable sequence (0xFFFFFFFE); the next one cannot advance it, so
/// the agent renormalises otadata around the running slot before downloading, and the update
/// goes through like any other.
#[test]
fn an_exhausted_otadata_sequence_is_renormalised_before_the_download() {
    use fota_protocol::esp::otadata::OtaSelectEntry;
    let new = image("1.0.6", 0x9000, false);
    let (mut dev, net, _) = setup(new);
    let newer = image("1.0.7", 0x9000, false);
    net.with(|s| s.v2.releases.push(release("1.0.7", newer.clone(), 3, 4096)));
    put_otadata(
        &mut dev,
        0,
        Some(OtaSelectEntry::new(0xFFFF_FFFD, OtaState::Valid)),
    );
    install(&mut dev, &net, 1);
    let ota = dev.otadata();
    assert_eq!(
        ota.entries[1],
        OtaSelectEntry::new(0xFFFF_FFFE, OtaState::Valid)
    );

    net.with(|s| s.v2.assign = Assign::Install(2));
    let b = dev.boot();
    assert_eq!(running_of(&b), Running::Ota(1));
    assert_eq!(b.last_poll(), Some(PollOutcome::RebootRequired), "{b:?}");
    // ota_1 is kept by the smallest sequence that selects it; the switch took the next one.
    let ota = dev.otadata();
    assert_eq!(ota.entries[0], OtaSelectEntry::new(2, OtaState::Valid));
    assert_eq!(ota.entries[1], OtaSelectEntry::new(3, OtaState::New));
    let b = dev.boot();
    assert_eq!(running_of(&b), Running::Ota(0));
    assert_eq!(b.startup, Some(StartupOutcome::Ready), "{b:?}");
    assert_eq!(dev.slot_state(0), Some(OtaState::Valid));
    assert_eq!(dev.slot_bytes(0, newer.len()), &newer[..]);
    assert_eq!(b.status.unwrap().installed_sequence, 3);
    assert!(events(&net).contains(&EventKind::Confirmed));
}

/// Installs 1.0.6 into ota_1, then downloads 1.0.7 for ota_0 up to `Staged` and its switch,
/// and undoes the switch: ota_1 selected by the last usable sequence in `state`, the other
/// sector erased. What an agent without renormalisation leaves behind after its switch failed.
fn staged_behind_exhausted_sequence(state: OtaState) -> (Device, Net, Vec<u8>) {
    use fota_protocol::esp::otadata::OtaSelectEntry;
    let new = image("1.0.6", 0x9000, false);
    let (mut dev, net, _) = setup(new);
    let newer = image("1.0.7", 0x9000, false);
    net.with(|s| s.v2.releases.push(release("1.0.7", newer.clone(), 3, 4096)));
    install(&mut dev, &net, 1);
    net.with(|s| s.v2.assign = Assign::Install(2));
    let b = dev.boot();
    assert_eq!(b.last_poll(), Some(PollOutcome::RebootRequired), "{b:?}");
    assert_eq!(
        b.status.unwrap().state,
        fota_agent::journal::StateKind::Staged
    );
    put_otadata(&mut dev, 0, None);
    put_otadata(&mut dev, 1, Some(OtaSelectEntry::new(0xFFFF_FFFE, state)));
    (dev, net, newer)
}

/// A journal left `Staged` with otadata that cannot be switched: the next boot renormalises
/// and switches instead of asking for a reset on every boot.
#[test]
fn a_staged_release_behind_an_exhausted_sequence_is_switched_after_renormalising() {
    use fota_protocol::esp::otadata::OtaSelectEntry;
    let (mut dev, _net, newer) = staged_behind_exhausted_sequence(OtaState::Valid);
    let b = dev.boot();
    assert_eq!(running_of(&b), Running::Ota(1));
    assert_eq!(
        b.startup,
        Some(StartupOutcome::ResetRequired(
            fota_agent::ResetReason::BootNewImage
        )),
        "{b:?}"
    );
    let ota = dev.otadata();
    assert_eq!(ota.entries[0], OtaSelectEntry::new(2, OtaState::Valid));
    assert_eq!(ota.entries[1], OtaSelectEntry::new(3, OtaState::New));
    let b = dev.boot();
    assert_eq!(running_of(&b), Running::Ota(0));
    assert_eq!(b.startup, Some(StartupOutcome::Ready), "{b:?}");
    assert_eq!(dev.slot_state(0), Some(OtaState::Valid));
    assert_eq!(dev.slot_bytes(0, newer.len()), &newer[..]);
}

/// Staged, the sequence exhausted, and the running entry in a state renormalisation must not
/// confirm (a torn `ota_state`): the staged release is abandoned with a failed outcome, and
/// the device settles instead of asking for a reset on every boot.
#[test]
fn a_staged_release_that_cannot_be_switched_is_abandoned_not_reset_for() {
    let torn = OtaState::from_raw(0x0000_00F2);
    let (mut dev, net, _) = staged_behind_exhausted_sequence(torn);
    let before = dev.otadata();
    let b = dev.boot();
    assert_eq!(running_of(&b), Running::Ota(1));
    assert_eq!(b.startup, Some(StartupOutcome::Ready), "{b:?}");
    assert_eq!(dev.otadata(), before, "otadata was written");
    let failed: Vec<_> = net.with(|s| {
        s.v2.events
            .iter()
            .filter(|e| e.0 == EventKind::Failed)
            .map(|e| e.1)
            .collect()
    });
    assert_eq!(failed, vec![ReasonCode::BootSwitchImpossible]);
    // Settled: no reset is asked for, now or on later boots, and 1.0.7 is not fetched again.
    let served = net.with(|s| s.v2.image_bytes_served);
    for _ in 0..3 {
        let b = dev.boot();
        assert_eq!(running_of(&b), Running::Ota(1));
        assert!(
            !b.polls.contains(&PollOutcome::RebootRequired)
                && !matches!(b.startup, Some(StartupOutcome::ResetRequired(_))),
            "{b:?}"
        );
    }
    assert_eq!(net.with(|s| s.v2.image_bytes_served), served);
}

/// Running the factory app with an exhausted sequence: renormalisation keeps an OTA slot, not
/// the factory app, selected, so the release is refused before its slot is touched, reported
/// once, and not retried.
#[test]
fn an_update_that_could_never_be_switched_is_refused_before_the_slot_is_written() {
    use fota_protocol::esp::otadata::OtaSelectEntry;
    let old = image("1.0.5", 0x8000, false);
    let net = Net::default();
    net.with(|s| {
        s.v2.releases
            .push(release("1.0.6", image("1.0.6", 0x9000, false), 2, 4096));
        s.v2.assign = Assign::Install(0);
    });
    let mut dev = Device::new(
        factory_flash(&fota_protocol::esp::layouts::two_ota(), &old),
        net.clone(),
        DeviceSpec::default(),
    );
    // otadata selects ota_1 with the last usable sequence, but ota_1 holds nothing bootable:
    // the bootloader falls back to the factory app.
    put_otadata(
        &mut dev,
        0,
        Some(OtaSelectEntry::new(0xFFFF_FFFE, OtaState::Valid)),
    );
    let b = dev.boot();
    assert_eq!(running_of(&b), Running::Factory);
    assert!(failed_with(&b, ReasonCode::BootSwitchImpossible), "{b:?}");
    assert!(
        dev.slot_bytes(0, 0x9000).iter().all(|&x| x == 0xFF),
        "the target slot was written"
    );
    assert_eq!(net.with(|s| s.v2.image_bytes_served), 0);
    let b = dev.boot();
    assert_eq!(running_of(&b), Running::Factory);
    assert!(
        matches!(b.last_poll(), Some(PollOutcome::Idle { .. })),
        "{b:?}"
    );
    let failed: Vec<_> = net.with(|s| {
        s.v2.events
            .iter()
            .filter(|e| e.0 == EventKind::Failed)
            .map(|e| e.1)
            .collect()
    });
    assert_eq!(failed, vec![ReasonCode::BootSwitchImpossible]);
}
