//! Store tests against SQLite: order lifecycles, batching, counters, retention, backups.

use fota_api::{AuditEntry, DeviceState, Protocol, Release, RollbackOrder};
use fota_server::store::*;
use serde_json::json;

async fn open(dir: &std::path::Path) -> SqliteStore {
    SqliteStore::open(&dir.join("fota.db")).await.unwrap()
}

fn entry(action: &str) -> AuditEntry {
    AuditEntry {
        actor: "token:test".into(),
        action: action.into(),
        target: "x".into(),
        detail: json!({}),
    }
}

fn order(device: &str, id: &str) -> RollbackOrder {
    RollbackOrder {
        id: id.into(),
        device_id: device.into(),
        reason: "bad build".into(),
        created_at: now_ms(),
        created_by: "token:test".into(),
        delivered_at: None,
        closed_at: None,
        outcome: None,
    }
}

fn release(class: &str, seq: i64, version: &str) -> Release {
    Release {
        id: format!("r{seq}{class}"),
        class: class.into(),
        class_id: "00000000-0000-0000-0000-000000000000".into(),
        sequence: seq,
        security_counter: 0,
        version: version.into(),
        project: "app".into(),
        image_sha256: format!("{seq:064}"),
        image_size: 100,
        chunk_size: 16,
        chunk_count: 7,
        hashlist_sha256: format!("{:064}", seq + 1000),
        hashlist_size: 10,
        manifest_digest: "d".repeat(64),
        created_at: now_ms(),
        created_by: "token:test".into(),
    }
}

fn legacy_status(
    id: &str,
    report: &Report,
    status: &str,
    detail: serde_json::Value,
) -> LegacyStatus {
    LegacyStatus {
        device_id: id.into(),
        report: report.clone(),
        status: status.into(),
        detail,
        at: now_ms(),
    }
}

fn device(id: &str, class: &str, digest: u8) -> NewDevice {
    NewDevice {
        id: id.into(),
        uuid: format!("uuid-{id}"),
        class: class.into(),
        digest: [digest; 32],
        created_at: now_ms(),
    }
}

#[tokio::test]
async fn legacy_rollback_order_closes_only_after_the_flag_was_read() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path()).await;
    s.create_rollback_order(&order("EcoWatt001", "o1"), true, &entry("rollback.order"))
        .await
        .unwrap();
    // a device unknown before is now a legacy device with an open order
    let d = s.device("EcoWatt001").await.unwrap().unwrap();
    assert_eq!(d.protocol, Protocol::Legacy);
    assert_eq!(d.rollback_order.as_ref().unwrap().id, "o1");
    // one open order at a time
    assert!(matches!(
        s.create_rollback_order(&order("EcoWatt001", "o2"), true, &entry("rollback.order"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    // a status before the flag was read does not close it
    let report = Report {
        last_result: Some("ok".into()),
        ..Report::default()
    };
    let closed = s
        .legacy_status(&legacy_status("EcoWatt001", &report, "ok", json!({})), None)
        .await
        .unwrap();
    assert!(matches!(
        closed,
        LegacyStatusOutcome::Recorded { closed: None }
    ));
    s.mark_rollback_delivered("o1", now_ms()).await.unwrap();
    let LegacyStatusOutcome::Recorded {
        closed: Some(closed),
    } = s
        .legacy_status(
            &legacy_status("EcoWatt001", &report, "rolled_back", json!({"x": 1})),
            None,
        )
        .await
        .unwrap()
    else {
        panic!("the delivered order is closed by the report")
    };
    assert_eq!(closed.outcome.as_deref(), Some("rolled_back"));
    assert!(s.open_rollback_order("EcoWatt001").await.unwrap().is_none());
    let history = s.list_rollback_orders("EcoWatt001").await.unwrap();
    assert_eq!(history.len(), 1);
    assert!(history[0].closed_at.is_some() && history[0].delivered_at.is_some());
    // and a new order may follow
    s.create_rollback_order(&order("EcoWatt001", "o3"), true, &entry("rollback.order"))
        .await
        .unwrap();
    let events = s.list_events("EcoWatt001", None, 10).await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].detail, Some(json!({"x": 1})));
}

#[tokio::test]
async fn counters_increase_strictly_across_store_instances() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path()).await;
    let b = open(dir.path()).await;
    let mut last = 0;
    for i in 0..20 {
        let s = if i % 2 == 0 { &a } else { &b };
        let n = s.next_counter("legacy_nonce").await.unwrap();
        assert!(n > last, "{n} after {last}");
        last = n;
    }
    assert_eq!(a.next_counter("other").await.unwrap(), 1);
    // concurrent increments from both never repeat
    let mut tasks = Vec::new();
    for i in 0..40 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            s.next_counter("legacy_nonce").await.unwrap()
        }));
    }
    let mut seen = std::collections::HashSet::new();
    for t in tasks {
        assert!(seen.insert(t.await.unwrap()));
    }
    assert_eq!(seen.len(), 40);
}

#[tokio::test]
async fn releases_assignments_and_checkin_view() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path()).await;
    s.create_device(&device("d1", "cls", 1), &entry("device.create"))
        .await
        .unwrap();
    s.create_device(&device("d2", "cls", 2), &entry("device.create"))
        .await
        .unwrap();
    s.create_device(&device("o1", "other", 3), &entry("device.create"))
        .await
        .unwrap();
    assert!(matches!(
        s.create_device(&device("d1", "cls", 9), &entry("device.create"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    s.create_release(
        &release("cls", 5, "1.0.5"),
        &[1, 2, 3],
        &entry("release.create"),
    )
    .await
    .unwrap();
    // sequence must increase per class; versions are unique per class
    assert!(matches!(
        s.create_release(
            &release("cls", 5, "1.0.6"),
            &[1, 2, 3],
            &entry("release.create")
        )
        .await,
        Err(StoreError::Conflict(_))
    ));
    let mut dup = release("cls", 6, "1.0.5");
    dup.id = "dup".into();
    assert!(matches!(
        s.create_release(&dup, &[1, 2, 3], &entry("release.create"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    s.create_release(
        &release("cls", 6, "1.0.6"),
        &[1, 2, 3],
        &entry("release.create"),
    )
    .await
    .unwrap();
    s.create_release(
        &release("other", 1, "1.0.5"),
        &[1, 2, 3],
        &entry("release.create"),
    )
    .await
    .unwrap();
    assert_eq!(s.list_classes().await.unwrap(), vec!["cls", "other"]);

    // nothing assigned yet
    let v = s.checkin_view(&[1; 32]).await.unwrap().unwrap();
    assert!(v.offer.is_none() && v.rollback.is_none());
    assert!(s.checkin_view(&[7; 32]).await.unwrap().is_none());

    // class assignment reaches every device of the class
    s.assign_class("cls", "r5cls", now_ms(), &entry("release.assign"))
        .await
        .unwrap();
    assert_eq!(
        s.checkin_view(&[2; 32])
            .await
            .unwrap()
            .unwrap()
            .offer
            .unwrap()
            .sequence,
        5
    );
    // explicit device assignment overrides it
    s.assign_devices("r6cls", &["d1".into()], &entry("release.assign"))
        .await
        .unwrap();
    assert_eq!(
        s.checkin_view(&[1; 32])
            .await
            .unwrap()
            .unwrap()
            .offer
            .unwrap()
            .sequence,
        6
    );
    assert_eq!(
        s.checkin_view(&[2; 32])
            .await
            .unwrap()
            .unwrap()
            .offer
            .unwrap()
            .sequence,
        5
    );
    // wrong class / unknown device / unknown release
    assert!(matches!(
        s.assign_devices("r6cls", &["o1".into()], &entry("release.assign"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.assign_devices("r6cls", &["nope".into()], &entry("release.assign"))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.assign_class("cls", "r1other", now_ms(), &entry("release.assign"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    // blob access follows the offer
    let img6 = format!("{:064}", 6);
    let hl6 = format!("{:064}", 1006);
    assert!(s.blob_access(&[1; 32], &img6).await.unwrap().unwrap().3);
    assert!(s.blob_access(&[1; 32], &hl6).await.unwrap().unwrap().3);
    assert!(!s.blob_access(&[2; 32], &img6).await.unwrap().unwrap().3);
    assert!(!s.blob_access(&[3; 32], &img6).await.unwrap().unwrap().3);

    // a rollback order suppresses the running release
    s.record_report(
        "d1",
        Protocol::V2,
        &Report {
            fw_sha256: Some(img6.clone()),
            fw_sequence: Some(6),
            ..Report::default()
        },
        0,
        now_ms(),
    )
    .await
    .unwrap();
    s.create_rollback_order(&order("d1", "ro"), false, &entry("rollback.order"))
        .await
        .unwrap();
    let v = s.checkin_view(&[1; 32]).await.unwrap().unwrap();
    assert_eq!(v.suppressed_release_id.as_deref(), Some("r6cls"));
    assert_eq!(v.rollback.unwrap().id, "ro");
    // rollback orders for unknown v2 devices are 404
    assert!(matches!(
        s.create_rollback_order(&order("ghost", "x"), false, &entry("rollback.order"))
            .await,
        Err(StoreError::NotFound(_))
    ));
    // a new explicit assignment lifts the suppression
    s.assign_devices("r6cls", &["d1".into()], &entry("release.assign"))
        .await
        .unwrap();
    assert!(
        s.checkin_view(&[1; 32])
            .await
            .unwrap()
            .unwrap()
            .suppressed_release_id
            .is_none()
    );
    // revoke and rotate
    s.revoke_device("d1", now_ms(), &entry("device.revoke"))
        .await
        .unwrap();
    assert!(
        s.checkin_view(&[1; 32])
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    // a revoked device keeps its revocation and its old digest unless reactivation is asked
    assert!(matches!(
        s.set_device_token("d1", &[9; 32], false, &entry("device.rotate"))
            .await,
        Err(StoreError::Refused {
            code: "device_revoked",
            ..
        })
    ));
    assert!(s.checkin_view(&[9; 32]).await.unwrap().is_none());
    s.set_device_token("d1", &[9; 32], true, &entry("device.rotate"))
        .await
        .unwrap();
    assert!(s.checkin_view(&[1; 32]).await.unwrap().is_none());
    assert!(
        s.checkin_view(&[9; 32])
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );
    // every change above is in the audit log
    let audit = s.list_audit(None, 1000).await.unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.entry.action == "release.assign")
            .count(),
        3
    );
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.entry.action == "device.create")
            .count(),
        3
    );
}

#[tokio::test]
async fn seen_batches_update_last_seen_and_create_legacy_devices() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path()).await;
    s.create_device(&device("v1", "cls", 1), &entry("device.create"))
        .await
        .unwrap();
    let b = fota_server::housekeeping::SeenBatcher::default();
    b.note(Seen {
        device_id: "v1".into(),
        at: 1000,
        protocol: Protocol::V2,
        progress: None,
        create: false,
        telemetry: None,
    });
    b.note(Seen {
        device_id: "v1".into(),
        at: 900,
        protocol: Protocol::V2,
        progress: None,
        create: false,
        telemetry: None,
    });
    b.note(Seen {
        device_id: "L1".into(),
        at: 5,
        protocol: Protocol::Legacy,
        progress: Some(Progress {
            done: 16,
            total: 100,
            at: 5,
        }),
        create: true,
        telemetry: None,
    });
    b.note(Seen {
        device_id: "ghost".into(),
        at: 5,
        protocol: Protocol::V2,
        progress: None,
        create: false,
        telemetry: None,
    });
    b.flush(&s, 10_000).await.unwrap();
    assert_eq!(
        s.device("v1").await.unwrap().unwrap().last_seen_at,
        Some(1000)
    );
    let l = s.device("L1").await.unwrap().unwrap();
    assert_eq!(
        (l.protocol.as_str(), l.progress_bytes, l.progress_total),
        ("legacy", 16, 100)
    );
    assert_eq!(l.state, DeviceState::Downloading);
    assert!(
        s.device("ghost").await.unwrap().is_none(),
        "v2 contacts never create devices"
    );
    // later flushes never move last_seen backwards
    b.note(Seen {
        device_id: "v1".into(),
        at: 10,
        protocol: Protocol::V2,
        progress: None,
        create: false,
        telemetry: None,
    });
    b.flush(&s, 10_000).await.unwrap();
    assert_eq!(
        s.device("v1").await.unwrap().unwrap().last_seen_at,
        Some(1000)
    );
}

fn event(device: &str, at: Millis, kind: &str, state: &str) -> NewEvent {
    NewEvent {
        device_id: device.into(),
        at,
        kind: kind.into(),
        reason: None,
        release_id: Some("r1".into()),
        bytes_done: None,
        bytes_total: None,
        detail: None,
        new_state: Some(state.into()),
        suppress_release: None,
        close_rollback: None,
    }
}

fn progress_seen(device: &str, at: Millis, done: i64) -> Seen {
    Seen {
        device_id: device.into(),
        at,
        protocol: Protocol::V2,
        progress: Some(Progress {
            done,
            total: 1000,
            at,
        }),
        create: false,
        telemetry: None,
    }
}

/// The demo's flaky failure, made deterministic: a check-in's progress sample waits in the
/// batch while the device finishes, reports `rolled_back`, and checks in again; the flush must
/// not turn the device back into `downloading`.
#[tokio::test]
async fn a_batched_progress_taken_before_a_terminal_event_keeps_the_terminal_state() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path()).await;
    s.create_device(&device("v1", "cls", 1), &entry("device.create"))
        .await
        .unwrap();
    let b = fota_server::housekeeping::SeenBatcher::default();
    // t=1000: a check-in while downloading (sample noted, not yet written)
    b.note(progress_seen("v1", 1000, 500));
    // t=2000: the trial fails and the device reports it at once
    s.add_event(&event("v1", 2000, "rolled_back", "rolled_back"))
        .await
        .unwrap();
    // t=3000: the next check-in, idle, moves only the contact time
    b.note(Seen {
        device_id: "v1".into(),
        at: 3000,
        protocol: Protocol::V2,
        progress: None,
        create: false,
        telemetry: None,
    });
    b.flush(&s, 10_000).await.unwrap();
    let d = s.device("v1").await.unwrap().unwrap();
    assert_eq!(
        d.state,
        DeviceState::RolledBack,
        "the outcome outlives an older sample"
    );
    assert_eq!(d.progress_bytes, 0, "the stale sample is dropped whole");
    assert_eq!(d.last_seen_at, Some(3000), "the contact still counts");
    assert_eq!(d.state_changed_at, Some(2000));
}

/// The same rule straight at the store, including the case `state_changed_at` alone cannot
/// catch: an event that sets the state the device already had.
#[tokio::test]
async fn progress_older_than_the_last_state_written_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path()).await;
    s.create_device(&device("v1", "cls", 1), &entry("device.create"))
        .await
        .unwrap();
    s.add_event(&event("v1", 1000, "rolled_back", "rolled_back"))
        .await
        .unwrap();
    // a second release fails the same way; the state does not change, but it was set at 3000
    s.add_event(&event("v1", 3000, "rolled_back", "rolled_back"))
        .await
        .unwrap();
    s.apply_seen(&[progress_seen("v1", 2000, 500)], 10_000)
        .await
        .unwrap();
    let d = s.device("v1").await.unwrap().unwrap();
    assert_eq!((d.state.as_str(), d.progress_bytes), ("rolled_back", 0));
    // a sample taken at the same instant as the state is ambiguous, and dropped
    s.apply_seen(&[progress_seen("v1", 3000, 600)], 10_000)
        .await
        .unwrap();
    assert_eq!(
        s.device("v1").await.unwrap().unwrap().state,
        DeviceState::RolledBack
    );
    // a sample taken after it is a new download
    s.apply_seen(&[progress_seen("v1", 4000, 700)], 10_000)
        .await
        .unwrap();
    let d = s.device("v1").await.unwrap().unwrap();
    assert_eq!((d.state.as_str(), d.progress_bytes), ("downloading", 700));
    assert_eq!(d.state_changed_at, Some(4000));
    // and an older one cannot undo the newer one
    s.apply_seen(&[progress_seen("v1", 3500, 650)], 10_000)
        .await
        .unwrap();
    assert_eq!(s.device("v1").await.unwrap().unwrap().progress_bytes, 700);
    // the batcher keeps each sample's own time: the newest sample wins, whatever order
    let b = fota_server::housekeeping::SeenBatcher::default();
    b.note(progress_seen("v1", 6000, 900));
    b.note(progress_seen("v1", 5000, 800));
    b.flush(&s, 10_000).await.unwrap();
    assert_eq!(s.device("v1").await.unwrap().unwrap().progress_bytes, 900);
}

#[tokio::test]
async fn legacy_contacts_never_touch_v2_devices() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path()).await;
    s.create_device(&device("v1", "cls", 1), &entry("device.create"))
        .await
        .unwrap();
    let seen = Seen {
        device_id: "v1".into(),
        at: 5000,
        protocol: Protocol::Legacy,
        progress: Some(Progress {
            done: 1,
            total: 10,
            at: 5000,
        }),
        create: true,
        telemetry: None,
    };
    s.apply_seen(&[seen], 10_000).await.unwrap();
    let d = s.device("v1").await.unwrap().unwrap();
    assert_eq!(
        (d.protocol.as_str(), d.state.as_str(), d.last_seen_at),
        ("v2", "idle", None)
    );
    let report = Report {
        fw_version: Some("6.6.6".into()),
        last_result: Some("failed".into()),
        ..Report::default()
    };
    let outcome = s
        .legacy_status(
            &legacy_status("v1", &report, "failed", json!({})),
            Some(10_000),
        )
        .await
        .unwrap();
    assert!(matches!(outcome, LegacyStatusOutcome::V2Device));
    let d = s.device("v1").await.unwrap().unwrap();
    assert_eq!((d.state.as_str(), d.fw_version), ("idle", None));
    assert!(s.list_events("v1", None, 10).await.unwrap().is_empty());
    // a v2 device's open order is invisible to the legacy read
    s.create_rollback_order(&order("v1", "o1"), false, &entry("rollback.order"))
        .await
        .unwrap();
    assert!(
        s.deliver_legacy_rollback_order("v1", now_ms())
            .await
            .unwrap()
            .is_none()
    );
    let o = s.open_rollback_order("v1").await.unwrap().unwrap();
    assert_eq!(o.delivered_at, None, "and not marked delivered");
    assert!(matches!(
        s.create_rollback_order(&order("v1", "o2"), true, &entry("rollback.order"))
            .await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn legacy_devices_are_created_under_the_cap_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path()).await;
    let new = |id: &str| Seen {
        device_id: id.into(),
        at: 10,
        protocol: Protocol::Legacy,
        progress: None,
        create: true,
        telemetry: None,
    };
    let applied = s
        .apply_seen(&[new("L1"), new("L2"), new("L3")], 2)
        .await
        .unwrap();
    assert_eq!(applied.not_created.len(), 1);
    assert_eq!(s.list_devices(None).await.unwrap().len(), 2);
    // known devices keep being seen at the cap
    let seen_again = Seen {
        create: false,
        telemetry: None,
        at: 20,
        ..new("L1")
    };
    let applied = s.apply_seen(&[seen_again], 2).await.unwrap();
    assert!(applied.not_created.is_empty());
    assert_eq!(
        s.device("L1").await.unwrap().unwrap().last_seen_at,
        Some(20)
    );
    // a status report of an unknown device at the cap is not recorded
    let outcome = s
        .legacy_status(
            &legacy_status("L9", &Report::default(), "ok", json!({})),
            Some(2),
        )
        .await
        .unwrap();
    assert!(matches!(outcome, LegacyStatusOutcome::NotRecorded));
    assert!(s.device("L9").await.unwrap().is_none());
    // v2 provisioning is not bound by the legacy cap
    s.create_device(&device("v1", "cls", 1), &entry("device.create"))
        .await
        .unwrap();
    // deleting a device frees its place and takes its history along
    s.add_event(&event("L1", 30, "legacy_status", "ok"))
        .await
        .unwrap();
    s.delete_device("L1", &entry("device.delete"))
        .await
        .unwrap();
    assert!(s.device("L1").await.unwrap().is_none());
    assert!(s.list_events("L1", None, 10).await.unwrap().is_empty());
    assert!(matches!(
        s.delete_device("L1", &entry("device.delete")).await,
        Err(StoreError::NotFound(_))
    ));
    let applied = s.apply_seen(&[new("L3")], 2).await.unwrap();
    assert!(applied.not_created.is_empty());
    let audit = s.list_audit(None, 10).await.unwrap();
    assert_eq!(audit[0].entry.action, "device.delete");
}

#[tokio::test]
async fn the_last_active_admin_token_cannot_be_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path()).await;
    s.ensure_bootstrap_token(&[1; 32], true).await.unwrap();
    let refused = s
        .revoke_api_token("bootstrap", now_ms(), &entry("token.revoke"))
        .await;
    assert!(
        matches!(
            refused,
            Err(StoreError::Refused {
                code: "last_admin_token",
                ..
            })
        ),
        "{refused:?}"
    );
    let (second, _) = fota_server::tokens::recover_admin(&s, "second admin")
        .await
        .unwrap();
    s.revoke_api_token("bootstrap", now_ms(), &entry("token.revoke"))
        .await
        .unwrap();
    assert!(matches!(
        s.revoke_api_token(&second.id, now_ms(), &entry("token.revoke"))
            .await,
        Err(StoreError::Refused { .. })
    ));
    let tokens = s.list_api_tokens().await.unwrap();
    assert_eq!(
        tokens.iter().filter(|t| t.revoked_at.is_none()).count(),
        1,
        "{tokens:?}"
    );
    let actions: Vec<String> = s
        .list_audit(None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.entry.action)
        .collect();
    assert!(actions.contains(&"token.recover".to_owned()), "{actions:?}");
}

#[tokio::test]
async fn retention_prunes_only_old_records() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path()).await;
    s.create_device(&device("v1", "cls", 1), &entry("device.create"))
        .await
        .unwrap();
    for at in [100, 200, 300] {
        s.add_event(&NewEvent {
            device_id: "v1".into(),
            at,
            kind: "progress".into(),
            reason: None,
            release_id: None,
            bytes_done: Some(at),
            bytes_total: Some(1000),
            detail: None,
            new_state: Some("downloading".into()),
            suppress_release: None,
            close_rollback: None,
        })
        .await
        .unwrap();
        s.record_report(
            "v1",
            Protocol::V2,
            &Report {
                slot: Some(at),
                ..Report::default()
            },
            0,
            at,
        )
        .await
        .unwrap();
    }
    let d = s.device("v1").await.unwrap().unwrap();
    assert_eq!((d.state.as_str(), d.progress_bytes), ("downloading", 300));
    let pruned = s
        .prune(PruneBefore {
            checkins: 250,
            events: 150,
            audit: 0,
        })
        .await
        .unwrap();
    assert_eq!(
        pruned,
        Pruned {
            checkins: 2,
            events: 1,
            audit: 0
        }
    );
    assert_eq!(s.list_events("v1", None, 10).await.unwrap().len(), 2);
    assert_eq!(s.list_audit(None, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn backup_is_consistent_restorable_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path()).await;
    s.create_device(&device("v1", "cls", 1), &entry("device.create"))
        .await
        .unwrap();
    s.create_release(
        &release("cls", 1, "1.0"),
        &[1, 2, 3],
        &entry("release.create"),
    )
    .await
    .unwrap();
    let n = s.next_counter("legacy_nonce").await.unwrap();
    let out = dir.path().join("backup.db");
    s.backup_into(&out).await.unwrap();
    assert!(matches!(
        s.backup_into(&out).await,
        Err(StoreError::Conflict(_))
    ));
    // writes after the backup are not in it
    s.create_device(&device("v2", "cls", 2), &entry("device.create"))
        .await
        .unwrap();

    let restored_dir = tempfile::tempdir().unwrap();
    std::fs::copy(&out, restored_dir.path().join("fota.db")).unwrap();
    let r = open(restored_dir.path()).await;
    assert!(r.device("v1").await.unwrap().is_some());
    assert!(r.device("v2").await.unwrap().is_none());
    assert_eq!(r.list_releases(None).await.unwrap().len(), 1);
    assert!(r.checkin_view(&[1; 32]).await.unwrap().is_some());
    assert_eq!(
        r.next_counter("legacy_nonce").await.unwrap(),
        n + 1,
        "nonce survives restore"
    );
}

#[tokio::test]
async fn stores_opened_at_once_on_a_fresh_folder_all_work() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fota.db");
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let path = path.clone();
            tokio::spawn(async move { SqliteStore::open(&path).await })
        })
        .collect();
    for o in opens {
        let s = o.await.unwrap().unwrap();
        s.next_counter("x").await.unwrap();
    }
}
