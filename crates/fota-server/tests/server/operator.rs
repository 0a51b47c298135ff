//! Router tests of the operator API and of cross-cutting behaviour (errors, limits, auth).

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use serde_json::json;

use crate::common::*;

#[tokio::test]
async fn token_lifecycle_and_roles() {
    let f = fixture().await;
    let viewer = token(&f, "viewer").await;
    let operator = token(&f, "operator").await;
    assert!(viewer.starts_with("fota_op_"));

    // listing needs admin; secrets never listed
    let list = get(&f.app, "/api/v2/tokens", Some(&f.admin)).await;
    assert_eq!(list.status, StatusCode::OK);
    let text = String::from_utf8_lossy(&list.body).to_string();
    assert!(!text.contains(&viewer) && !text.contains("hash"));
    assert_eq!(list.json().as_array().unwrap().len(), 3);

    assert_eq!(
        get(&f.app, "/api/v2/tokens", Some(&operator))
            .await
            .error(StatusCode::FORBIDDEN),
        "forbidden"
    );
    let made_by_viewer = post_json(
        &f.app,
        "/api/v2/tokens",
        Some(&viewer),
        &json!({"name": "x", "role": "admin"}),
    )
    .await;
    made_by_viewer.error(StatusCode::FORBIDDEN);

    // viewers read
    assert_eq!(
        get(&f.app, "/api/v2/devices", Some(&viewer)).await.status,
        StatusCode::OK
    );

    // revoke the viewer token: it stops working at once
    // Tokens made in the same millisecond list in id order, so find the viewer's by name.
    let id = list
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "viewer")
        .expect("the viewer token is listed")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = send(
        &f.app,
        req(
            Method::DELETE,
            &format!("/api/v2/tokens/{id}"),
            Some(&f.admin),
            Body::empty(),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let after = get(&f.app, "/api/v2/devices", Some(&viewer)).await;
    after.error(StatusCode::UNAUTHORIZED);
    assert!(
        after.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );
    // revoking twice / unknown
    send(
        &f.app,
        req(
            Method::DELETE,
            &format!("/api/v2/tokens/{id}"),
            Some(&f.admin),
            Body::empty(),
        ),
    )
    .await
    .error(StatusCode::NOT_FOUND);

    // audit has the changes, attributed (and, beside them, the revoked token's denied use)
    let audit = get(&f.app, "/api/v2/audit", Some(&operator)).await.json();
    let changes: Vec<&serde_json::Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] != "auth.denied")
        .collect();
    let actions: Vec<&str> = changes
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions[0], "token.revoke");
    assert!(actions.contains(&"token.create") && actions.contains(&"token.bootstrap"));
    assert_eq!(changes[0]["actor"], "token:bootstrap");
}

#[tokio::test]
async fn missing_and_bad_tokens_are_401() {
    let f = fixture().await;
    let a = get(&f.app, "/api/v2/devices", None).await;
    assert_eq!(a.error(StatusCode::UNAUTHORIZED), "unauthorized");
    assert_eq!(a.headers[header::WWW_AUTHENTICATE], "Bearer");
    get(&f.app, "/api/v2/devices", Some("fota_op_guess"))
        .await
        .error(StatusCode::UNAUTHORIZED);
    let mut r = req(Method::GET, "/api/v2/devices", None, Body::empty());
    r.headers_mut()
        .insert(header::AUTHORIZATION, "Basic dXNlcjpwYXNz".parse().unwrap());
    send(&f.app, r).await.error(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn malformed_bodies_are_400_with_our_shape() {
    let f = fixture().await;
    let t = Some(f.admin.as_str());
    for (body, code) in [
        ("{", "invalid_json"),
        ("", "invalid_json"),
        ("[]", "invalid_field"),
        ("{\"name\": \"x\"}", "invalid_field"), // missing role
        ("{\"name\": 5, \"role\": \"admin\"}", "invalid_field"), // wrong type
        ("{\"name\": \"x\", \"role\": \"root\"}", "invalid_field"), // unknown role
        (
            "{\"name\": \"x\", \"role\": \"admin\", \"extra\": 1}",
            "invalid_field",
        ),
        ("{\"name\": \"\", \"role\": \"admin\"}", "invalid_name"),
    ] {
        let a = post_raw(&f.app, "/api/v2/tokens", t, body).await;
        assert_eq!(a.error(StatusCode::BAD_REQUEST), code, "body {body:?}");
    }
    // bad query parameters
    for q in ["limit=0", "limit=abc", "limit=1001", "before=x", "nope=1"] {
        get(&f.app, &format!("/api/v2/audit?{q}"), t)
            .await
            .error(StatusCode::BAD_REQUEST);
    }
    assert_eq!(
        get(&f.app, "/api/v2/audit?limit=1", t)
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn oversize_bodies_are_413_without_reading_them() {
    let f = fixture_with(|c| c.limits.max_json_bytes = 4096, None, None).await;
    let big = format!(
        "{{\"name\": \"{}\", \"role\": \"admin\"}}",
        "x".repeat(10_000)
    );
    // declared length over the limit
    let a = post_raw(&f.app, "/api/v2/tokens", Some(&f.admin), big.clone()).await;
    assert_eq!(a.error(StatusCode::PAYLOAD_TOO_LARGE), "payload_too_large");
    // streamed without a length: cut off while reading
    let stream = futures_util::stream::iter(
        big.into_bytes()
            .chunks(1000)
            .map(|c| Ok::<_, std::io::Error>(axum::body::Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    let a = post_raw(
        &f.app,
        "/api/v2/tokens",
        Some(&f.admin),
        Body::from_stream(stream),
    )
    .await;
    assert_eq!(a.error(StatusCode::PAYLOAD_TOO_LARGE), "payload_too_large");
    // an endless body is refused after the limit: the stream below never ends
    let endless = futures_util::stream::repeat_with(|| {
        Ok::<_, std::io::Error>(axum::body::Bytes::from_static(&[b' '; 1024]))
    });
    let a = post_raw(
        &f.app,
        "/api/v2/tokens",
        Some(&f.admin),
        Body::from_stream(endless),
    )
    .await;
    a.error(StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let f = fixture().await;
    assert_eq!(
        get(&f.app, "/nope", None)
            .await
            .error(StatusCode::NOT_FOUND),
        "not_found"
    );
    let a = send(&f.app, req(Method::DELETE, "/healthz", None, Body::empty())).await;
    assert_eq!(
        a.error(StatusCode::METHOD_NOT_ALLOWED),
        "method_not_allowed"
    );
    assert_eq!(get(&f.app, "/healthz", None).await.body, "ok");
}

#[tokio::test]
async fn v2_and_legacy_need_configuration() {
    let f = fixture().await;
    let t = Some(f.admin.as_str());
    let a = post_json(
        &f.app,
        "/api/v2/devices",
        t,
        &json!({"id": "d1", "class": "c"}),
    )
    .await;
    assert_eq!(
        a.error(StatusCode::SERVICE_UNAVAILABLE),
        "v2_not_configured"
    );
    let a = post_raw(&f.app, "/api/v2/device/checkin", Some("x"), "").await;
    assert_eq!(
        a.error(StatusCode::SERVICE_UNAVAILABLE),
        "v2_not_configured"
    );
    let a = get(&f.app, "/api/inverter/fota/manifest", None).await;
    assert_eq!(a.error(StatusCode::SERVICE_UNAVAILABLE), "legacy_disabled");
    let info = get(&f.app, "/api/v2/server", t).await.json();
    assert_eq!(info["v2"], false);
    assert_eq!(info["legacy"], false);
}

#[tokio::test]
async fn openapi_and_metrics() {
    let f = fixture().await;
    let doc = get(&f.app, "/api/v2/openapi.json", None).await.json();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/api/v2/releases",
        "/api/v2/devices/{id}/rollback",
        "/api/v2/device/checkin",
        "/api/v2/device/blobs/{sha256}",
        "/api/inverter/fota/chunk",
        "/api/cloud/fota/upload",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from OpenAPI"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    get(&f.app, "/healthz", None).await;
    let m = get(&f.app, "/metrics", None).await;
    assert_eq!(m.status, StatusCode::OK);
    let text = String::from_utf8_lossy(&m.body);
    assert!(text.contains("fota_http_requests_total"));
    // Durations are bucketed (fixed memory), not kept as raw samples for a summary.
    assert!(
        text.contains("fota_http_request_seconds_bucket{"),
        "request durations must render as histogram buckets:\n{text}"
    );
}

#[tokio::test]
async fn bootstrap_token_from_env_replaces_and_generated_only_once() {
    let f = fixture().await;
    // generated tokens are only made on an empty store
    assert!(f.state.bootstrap_admin(None).await.unwrap().is_none());
    // a new FOTA_ADMIN_TOKEN replaces the old bootstrap token
    f.state.bootstrap_admin(Some("second")).await.unwrap();
    get(&f.app, "/api/v2/tokens", Some(&f.admin))
        .await
        .error(StatusCode::UNAUTHORIZED);
    assert_eq!(
        get(&f.app, "/api/v2/tokens", Some("second")).await.status,
        StatusCode::OK
    );

    let empty = tempfile::tempdir().unwrap();
    let state = fota_server::AppState::open(config(empty.path()), None)
        .await
        .unwrap();
    let shown = state
        .bootstrap_admin(None)
        .await
        .unwrap()
        .expect("first start shows a token");
    assert!(
        state.bootstrap_admin(None).await.unwrap().is_none(),
        "shown once"
    );
    let app = fota_server::router(state);
    assert_eq!(
        get(&app, "/api/v2/tokens", Some(shown.expose()))
            .await
            .status,
        StatusCode::OK
    );
}

/// The library takes the status key's passphrase from its caller: a server embedded in another
/// program must not pick up whatever `FOTA_KEY_PASSPHRASE` that process happens to carry (the
/// `fota` CLI reads the variable and passes it on). A test must not change its own process's
/// environment, so this one runs itself again with the variable set.
#[tokio::test]
async fn the_status_key_passphrase_comes_from_the_caller_never_from_the_environment() {
    const VAR: &str = "FOTA_KEY_PASSPHRASE";
    const NAME: &str =
        "operator::the_status_key_passphrase_comes_from_the_caller_never_from_the_environment";
    if std::env::var_os(VAR).is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--nocapture"])
            .env(VAR, "correct horse")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let k = keys();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root.bin");
    let status = dir.path().join("status.key");
    std::fs::write(&root, k.root_record().unwrap()).unwrap();
    fota_keys::write_signing_key(&status, &k.status, Some("correct horse")).unwrap();
    let mut cfg = config(&dir.path().join("data"));
    cfg.root = Some(root);
    cfg.status_key = Some(status);

    let err = fota_server::AppState::open(cfg.clone(), None)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("is encrypted"),
        "the key was decrypted with the environment's passphrase: {err}"
    );
    let state = fota_server::AppState::open(cfg, Some("correct horse"))
        .await
        .unwrap();
    assert!(
        state.trust().is_some(),
        "the caller's passphrase opens the key"
    );
}

/// A fuzzer once revoked the bootstrap token and locked every operator out: 42,284 of the
/// next 54,322 requests were 401.
#[tokio::test]
async fn the_last_active_admin_token_cannot_be_revoked() {
    let f = fixture().await;
    let operator = token(&f, "operator").await;
    let delete = |id: &str, t: &str| {
        send(
            &f.app,
            req(
                Method::DELETE,
                &format!("/api/v2/tokens/{id}"),
                Some(t),
                Body::empty(),
            ),
        )
    };
    let a = delete("bootstrap", &f.admin).await;
    assert_eq!(a.error(StatusCode::CONFLICT), "last_admin_token");
    assert!(
        a.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("fota server admin-token")
    );
    assert_eq!(
        get(&f.app, "/api/v2/tokens", Some(&f.admin)).await.status,
        StatusCode::OK,
        "still an admin"
    );
    // with a second admin the first may go, and then the second is the last one
    let second = token(&f, "admin").await;
    assert_eq!(
        delete("bootstrap", &second).await.status,
        StatusCode::NO_CONTENT
    );
    let tokens = get(&f.app, "/api/v2/tokens", Some(&second)).await.json();
    let second_id = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["role"] == "admin" && t["revoked_at"].is_null())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        delete(&second_id, &second)
            .await
            .error(StatusCode::CONFLICT),
        "last_admin_token"
    );
    // other roles' tokens are revoked as before
    let op_id = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["role"] == "operator")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(delete(&op_id, &second).await.status, StatusCode::NO_CONTENT);
    get(&f.app, "/api/v2/devices", Some(&operator))
        .await
        .error(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn devices_of_either_protocol_are_deleted_by_admins_only() {
    let f = v2_fixture().await;
    let operator = token(&f, "operator").await;
    provision(&f, "devA", "ecowatt-v1").await;
    let status = json!({"device_id": "Eco1", "status": "success"});
    post_json(&f.app, "/api/inverter/fota/status", None, &status).await;
    let delete = |id: &str, t: &str| {
        send(
            &f.app,
            req(
                Method::DELETE,
                &format!("/api/v2/devices/{id}"),
                Some(t),
                Body::empty(),
            ),
        )
    };
    delete("devA", &operator).await.error(StatusCode::FORBIDDEN);
    for id in ["devA", "Eco1"] {
        assert_eq!(delete(id, &f.admin).await.status, StatusCode::NO_CONTENT);
        get(&f.app, &format!("/api/v2/devices/{id}"), Some(&f.admin))
            .await
            .error(StatusCode::NOT_FOUND);
    }
    delete("devA", &f.admin).await.error(StatusCode::NOT_FOUND);
    let audit = get(&f.app, "/api/v2/audit", Some(&f.admin)).await.json();
    let deleted: Vec<(&str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "device.delete")
        .map(|r| {
            (
                r["target"].as_str().unwrap(),
                r["detail"]["protocol"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(deleted, [("device:Eco1", "legacy"), ("device:devA", "v2")]);
    // the name is free again
    provision(&f, "devA", "ecowatt-v1").await;
}

/// Separation of duties: an operator ships firmware but cannot mint a device credential (which
/// would let it speak as any device); a provisioner manages credentials but ships nothing; a
/// viewer reads; the admin does all. Each refusal names the roles that may.
#[tokio::test]
async fn operators_ship_firmware_and_provisioners_manage_credentials() {
    let f = v2_fixture().await;
    let viewer = token(&f, "viewer").await;
    let operator = token(&f, "operator").await;
    let provisioner = token(&f, "provisioner").await;
    let refused = |a: Answer, who: &str| {
        assert_eq!(a.error(StatusCode::FORBIDDEN), "forbidden", "{who}");
        a.json()["error"]["message"].as_str().unwrap().to_owned()
    };
    let new_device = |id: &str| json!({"id": id, "class": "ecowatt"});

    // Device credentials: the provisioner's (and the admin's), not the operator's or viewer's.
    for (who, t) in [("operator", &operator), ("viewer", &viewer)] {
        let msg = refused(
            post_json(&f.app, "/api/v2/devices", Some(t), &new_device("d-x")).await,
            who,
        );
        assert!(msg.contains("provisioner or admin"), "{who}: {msg}");
    }
    let made = post_json(
        &f.app,
        "/api/v2/devices",
        Some(&provisioner),
        &new_device("d1"),
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text());
    assert!(made.json()["token"].is_string());
    for path in ["/api/v2/devices/d1/rotate", "/api/v2/devices/d1/revoke"] {
        refused(
            post_json(&f.app, path, Some(&operator), &json!({})).await,
            path,
        );
    }
    let delete = |t: &str| req(Method::DELETE, "/api/v2/devices/d1", Some(t), Body::empty());
    refused(send(&f.app, delete(&operator)).await, "operator delete");
    let rotated = post_json(
        &f.app,
        "/api/v2/devices/d1/rotate",
        Some(&provisioner),
        &json!({}),
    )
    .await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text());

    // Firmware: the operator's (and the admin's), not the provisioner's.
    let b = build(&f.keys, "ecowatt", "1.0.6", 1, 20_000);
    let msg = refused(
        upload(&f, &provisioner, &b, Some("ecowatt")).await,
        "provisioner upload",
    );
    assert!(msg.contains("operator or admin"), "{msg}");
    let up = upload(&f, &operator, &b, Some("ecowatt")).await;
    assert_eq!(up.status, StatusCode::CREATED, "{}", up.text());
    let assign = format!("/api/v2/releases/{}/assign", b.id());
    let to_class = json!({"class": "ecowatt"});
    refused(
        post_json(&f.app, &assign, Some(&provisioner), &to_class).await,
        "provisioner assign",
    );
    let a = post_json(&f.app, &assign, Some(&operator), &to_class).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let order = json!({"reason": "field report"});
    refused(
        post_json(
            &f.app,
            "/api/v2/devices/d1/rollback",
            Some(&provisioner),
            &order,
        )
        .await,
        "provisioner rollback order",
    );
    let legacy = json!({"version": "1.0.0", "size": 1, "hash": hex::encode(fota_testkit::sha256(b"x")),
        "chunk_size": 1, "firmware_data": "eA=="});
    refused(
        post_json(
            &f.app,
            "/api/cloud/fota/upload",
            Some(&provisioner),
            &legacy,
        )
        .await,
        "provisioner legacy upload",
    );

    // Tokens: the admin's only; everyone reads.
    for (who, t) in [("operator", &operator), ("provisioner", &provisioner)] {
        refused(get(&f.app, "/api/v2/tokens", Some(t)).await, who);
        assert_eq!(
            get(&f.app, "/api/v2/devices", Some(t)).await.status,
            StatusCode::OK
        );
        assert_eq!(
            get(&f.app, "/api/v2/releases", Some(t)).await.status,
            StatusCode::OK
        );
    }

    // The provisioner deletes the device; the admin may do all of it too.
    assert_eq!(
        send(&f.app, delete(&provisioner)).await.status,
        StatusCode::NO_CONTENT
    );
    let by_admin = post_json(&f.app, "/api/v2/devices", Some(&f.admin), &new_device("d2")).await;
    assert_eq!(by_admin.status, StatusCode::CREATED);
}

/// A request as if from `ip` (what `serve` records for each connection).
fn from(ip: [u8; 4], mut r: axum::http::Request<Body>) -> axum::http::Request<Body> {
    r.extensions_mut()
        .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            ip, 40_000,
        ))));
    r
}

/// `GET /api/v2/devices` from `ip` with `token`.
async fn list_from(f: &Fixture, ip: [u8; 4], token: &str) -> Answer {
    let r = req(Method::GET, "/api/v2/devices", Some(token), Body::empty());
    send(&f.app, from(ip, r)).await
}

/// Guessing credentials: past `auth.failures_per_minute` failures an address gets 429 with
/// `Retry-After` for further failures, while its valid requests still pass and other addresses
/// are untouched; one credential tried from many addresses is limited too; each address's
/// failures are audited once a minute with their count, never with the secret; behind a
/// trusted proxy the client is the one `X-Forwarded-For` names.
#[tokio::test]
async fn failed_authentications_are_limited_per_address_and_audited() {
    let k = keys();
    let f = fixture_with(
        |c| {
            c.auth_failures_per_minute = 5;
            c.trusted_proxies = vec![std::net::IpAddr::from([10, 0, 0, 1])];
        },
        Some(trust(&k)),
        None,
    )
    .await;
    let guess = |n: u32| format!("fota_op_guess{n:04}");
    let attacker = [192, 0, 2, 66];
    for n in 0..5 {
        list_from(&f, attacker, &guess(n))
            .await
            .error(StatusCode::UNAUTHORIZED);
    }
    let over = list_from(&f, attacker, &guess(5)).await;
    assert_eq!(
        over.error(StatusCode::TOO_MANY_REQUESTS),
        "too_many_requests"
    );
    let wait: u64 = over.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Its valid requests are not throttled; another address is not affected.
    assert_eq!(
        list_from(&f, attacker, &f.admin).await.status,
        StatusCode::OK
    );
    list_from(&f, [192, 0, 2, 67], &guess(9))
        .await
        .error(StatusCode::UNAUTHORIZED);

    // One credential from many addresses.
    for i in 0..5u8 {
        list_from(&f, [198, 51, 100, i], "fota_op_one")
            .await
            .error(StatusCode::UNAUTHORIZED);
    }
    list_from(&f, [198, 51, 100, 77], "fota_op_one")
        .await
        .error(StatusCode::TOO_MANY_REQUESTS);

    // Device credentials count the same way.
    let checkin = req(
        Method::POST,
        "/api/v2/device/checkin",
        Some("fota_dev_x"),
        Body::empty(),
    );
    send(&f.app, from(attacker, checkin))
        .await
        .error(StatusCode::TOO_MANY_REQUESTS);

    // Behind the trusted proxy the forwarded client is the one counted.
    for n in 0..6 {
        let mut r = req(
            Method::GET,
            "/api/v2/devices",
            Some(&guess(100 + n)),
            Body::empty(),
        );
        r.headers_mut()
            .insert("x-forwarded-for", "203.0.113.5, 10.0.0.1".parse().unwrap());
        let a = send(&f.app, from([10, 0, 0, 1], r)).await;
        let want = if n < 5 {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(a.status, want, "forwarded attempt {n}");
    }
    // From an untrusted peer the header is ignored: the peer itself is the client.
    let mut r = req(
        Method::GET,
        "/api/v2/devices",
        Some(&guess(200)),
        Body::empty(),
    );
    r.headers_mut()
        .insert("x-forwarded-for", "203.0.113.5".parse().unwrap());
    send(&f.app, from([192, 0, 2, 99], r))
        .await
        .error(StatusCode::UNAUTHORIZED);

    // The audit: one entry per address for its first failure, with the route, never a secret.
    let audit = get(&f.app, "/api/v2/audit", Some(&f.admin)).await.json();
    let denied: Vec<_> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "auth.denied")
        .collect();
    let clients: std::collections::BTreeSet<_> = denied
        .iter()
        .map(|e| e["detail"]["client"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        clients.contains("192.0.2.66") && clients.contains("203.0.113.5"),
        "{clients:?}"
    );
    assert_eq!(
        denied
            .iter()
            .filter(|e| e["detail"]["client"] == "192.0.2.66")
            .count(),
        1,
        "one entry a minute per address"
    );
    let text = audit.to_string();
    assert!(
        !text.contains("fota_op_guess") && !text.contains("fota_op_one"),
        "{text}"
    );
    let routes = ["route:/api/v2/devices", "route:/api/v2/device/checkin"];
    assert!(
        denied
            .iter()
            .all(|e| routes.iter().any(|r| e["target"] == *r))
    );
}

/// A token made with an expiry works until then and answers 401 `token expired` after; it
/// stays listed with its expiry. An expiry in the past is refused when the token is made.
/// The expired token is put in the store directly, already past its expiry, so the test never
/// waits on the clock.
#[tokio::test]
async fn an_expiring_token_stops_working_at_its_expiry() {
    let f = fixture().await;
    let now = fota_testkit::unix_now() as i64 * 1000;
    let past = post_json(
        &f.app,
        "/api/v2/tokens",
        Some(&f.admin),
        &json!({"name": "late", "role": "viewer", "expires_at": now - 1}),
    )
    .await;
    assert_eq!(past.error(StatusCode::BAD_REQUEST), "invalid_field");
    let in_an_hour = now + 3_600_000;
    let made = post_json(
        &f.app,
        "/api/v2/tokens",
        Some(&f.admin),
        &json!({"name": "brief", "role": "viewer", "expires_at": in_an_hour}),
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text());
    assert_eq!(made.json()["expires_at"], in_an_hour);
    let token = made.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(
        get(&f.app, "/api/v2/devices", Some(&token)).await.status,
        StatusCode::OK
    );

    let expired = "fota_op_expired_token_of_the_test_0123456789";
    let record = fota_api::ApiToken {
        id: "expired".into(),
        name: "expired".into(),
        role: fota_api::Role::Viewer,
        created_at: now - 10_000,
        created_by: "test".into(),
        revoked_at: None,
        expires_at: Some(now - 1),
    };
    let entry = fota_api::AuditEntry {
        actor: "test".into(),
        action: "token.create".into(),
        target: "token:expired".into(),
        detail: json!({}),
    };
    let digest = fota_server::tokens::Secret::new(expired).digest();
    f.state
        .store()
        .create_api_token(&record, &digest.0, &entry)
        .await
        .unwrap();
    let after = get(&f.app, "/api/v2/devices", Some(expired)).await;
    after.error(StatusCode::UNAUTHORIZED);
    assert!(after.text().contains("token expired"), "{}", after.text());
    let list = get(&f.app, "/api/v2/tokens", Some(&f.admin)).await.json();
    let listed = |name: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} is listed"))
    };
    assert_eq!(listed("brief")["expires_at"], in_an_hour);
    assert_eq!(listed("expired")["expires_at"], now - 1);
    assert!(listed("bootstrap admin")["expires_at"].is_null());
}
