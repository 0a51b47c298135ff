//! Check-in format 2 on the server: what a device says about itself is kept and shown, a
//! format-1 agent is still served, and a check-in older than one applied is answered but
//! not applied.

use axum::http::StatusCode;
use fota_protocol::v2::{self, checkin::Telemetry, chip_ids};
use fota_testkit::records;

use crate::common::*;

/// Posts `c` as device `id` (token `token`); the answer must be a 200.
async fn send_checkin(f: &Fixture, token: &str, c: &v2::CheckIn) {
    let a = post_raw(
        &f.app,
        "/api/v2/device/checkin",
        Some(token),
        c.to_vec().unwrap(),
    )
    .await;
    assert_eq!(
        a.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
}

async fn device(f: &Fixture, id: &str) -> serde_json::Value {
    f.state.flush_seen().await.unwrap();
    get(&f.app, &format!("/api/v2/devices/{id}"), Some(&f.admin))
        .await
        .json()
}

#[tokio::test]
async fn a_format_2_check_in_shows_the_device_its_chip_uptime_and_attributes() {
    let f = v2_fixture().await;
    let p = provision(&f, "t1", "ecowatt").await;
    let token = p["token"].as_str().unwrap();
    let mut c = records::checkin(&f.keys.vendor_id, "t1", "1.0.0", [1; 32], 1);
    let mut t = Telemetry::new(chip_ids::ESP32_C3);
    t.counter = 5;
    t.reset_reason = 9;
    t.uptime_s = 3600;
    t.free_heap = 81_920;
    t.attributes.push("site", "A-7").unwrap();
    t.attributes.push("power_w", "1234").unwrap();
    c.telemetry = Some(t);
    send_checkin(&f, token, &c).await;

    let d = device(&f, "t1").await;
    let tel = &d["telemetry"];
    assert_eq!(tel["agent_format"], 2);
    assert_eq!(tel["chip"], "esp32c3");
    assert_eq!(tel["chip_id"], 5);
    assert_eq!(tel["reset_reason"], 9);
    assert_eq!(tel["uptime_s"], 3600);
    assert_eq!(tel["free_heap"], 81_920);
    assert_eq!(tel["attributes"]["site"], "A-7");
    assert_eq!(tel["attributes"]["power_w"], "1234");
    assert_eq!(d["fw_version"], "1.0.0");

    // The next check-in changes only what changes at every contact: batched, no report row.
    let mut next = c.clone();
    let t = next.telemetry.as_mut().unwrap();
    t.counter = 6;
    t.uptime_s = 3660;
    send_checkin(&f, token, &next).await;
    let d = device(&f, "t1").await;
    assert_eq!(d["telemetry"]["uptime_s"], 3660);
}

#[tokio::test]
async fn an_agent_of_format_1_is_still_served_and_shown_as_such() {
    let f = v2_fixture().await;
    let p = provision(&f, "old", "ecowatt").await;
    let token = p["token"].as_str().unwrap();
    let mut c = records::checkin(&f.keys.vendor_id, "old", "0.9.0", [2; 32], 1);
    c.telemetry = None;
    let body = c.to_vec().unwrap();
    assert_eq!(body.len(), v2::checkin::LEN_V1);
    send_checkin(&f, token, &c).await;
    let d = device(&f, "old").await;
    assert_eq!(d["fw_version"], "0.9.0");
    assert_eq!(d["telemetry"]["agent_format"], 1);
    assert!(d["telemetry"]["chip"].is_null());
    assert_eq!(
        d["telemetry"]["attributes"],
        serde_json::json!({}),
        "nothing reported"
    );
}

#[tokio::test]
async fn a_check_in_older_than_the_last_applied_is_answered_but_not_applied() {
    let f = v2_fixture().await;
    let p = provision(&f, "r1", "ecowatt").await;
    let token = p["token"].as_str().unwrap();
    let with = |version: &str, counter: u64, uptime: u32| {
        let mut c = records::checkin(&f.keys.vendor_id, "r1", version, [3; 32], 1);
        let mut t = Telemetry::new(chip_ids::ESP32);
        t.counter = counter;
        t.uptime_s = uptime;
        c.telemetry = Some(t);
        c
    };
    let early = with("1.0.0", 10, 100);
    send_checkin(&f, token, &early).await;
    send_checkin(&f, token, &with("1.0.1", 11, 160)).await;
    let d = device(&f, "r1").await;
    assert_eq!(d["fw_version"], "1.0.1");

    // The earlier record comes again (delayed, or replayed with the device's token): a
    // statement is signed over its nonce, but what it says is older than what is known.
    send_checkin(&f, token, &early).await;
    let d = device(&f, "r1").await;
    assert_eq!(d["fw_version"], "1.0.1", "the report is not put back");
    assert_eq!(d["telemetry"]["uptime_s"], 160, "nor the batched part");

    // An agent that keeps no counter (format 1, or counter 0) is applied as before, and the
    // next counter starts afresh.
    send_checkin(&f, token, &with("1.0.2", 0, 5)).await;
    assert_eq!(device(&f, "r1").await["fw_version"], "1.0.2");
    send_checkin(&f, token, &with("1.0.3", 1, 65)).await;
    let d = device(&f, "r1").await;
    assert_eq!(d["fw_version"], "1.0.3");
    assert_eq!(d["telemetry"]["uptime_s"], 65);
}

#[tokio::test]
async fn a_resumed_event_keeps_the_device_downloading_and_format_1_cannot_carry_one() {
    let f = v2_fixture().await;
    let p = provision(&f, "e1", "ecowatt").await;
    let token = p["token"].as_str().unwrap();
    let resumed = event_record(
        &f.keys,
        "e1",
        v2::EventKind::Resumed,
        v2::ReasonCode::None,
        [9; 32],
        16_384,
        65_536,
        0,
    );
    let a = post_raw(
        &f.app,
        "/api/v2/device/events",
        Some(token),
        resumed.clone(),
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let d = device(&f, "e1").await;
    assert_eq!(d["state"], "downloading");
    assert_eq!(d["progress_bytes"], 16_384);
    let events = get(&f.app, "/api/v2/devices/e1/events", Some(&f.admin))
        .await
        .json();
    assert_eq!(events[0]["kind"], "resumed", "{events}");

    // The same bytes labelled format 1: that format has no resumed kind.
    let mut old = resumed;
    old[4..6].copy_from_slice(&1u16.to_le_bytes());
    let a = post_raw(&f.app, "/api/v2/device/events", Some(token), old).await;
    assert_eq!(a.error(StatusCode::BAD_REQUEST), "invalid_event");
}
