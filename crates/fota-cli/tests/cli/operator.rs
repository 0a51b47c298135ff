//! The operator commands end to end: the `fota` binary against a real `fota server` process on
//! 127.0.0.1:0 with a fresh data folder and key folder per test.
#![allow(
    clippy::std_instead_of_core,
    reason = "a host-only test: core paths matter in the crates the device links, not here"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use base64::Engine as _;
use fota_client::api::DeviceState;
use fota_protocol::v2::{Event, EventKind, FixedStr, ReasonCode};
use serde_json::Value;

use crate::kit::{LEGACY_PSK, Server, fota_command, json, server_command, text};

const ADMIN: &str = crate::kit::ADMIN_TOKEN;

/// A server with its own data and key folders, and the environment the CLI gets.
struct Fleet {
    // Before `dir`: fields drop in order, and the server is to stop before its folder goes.
    server: Server,
    dir: tempfile::TempDir,
}

impl Fleet {
    /// Keys (unencrypted), then a server trusting them; the legacy API when `legacy`.
    fn start(legacy: bool) -> Self {
        Self::start_with(legacy, "")
    }

    /// [`Self::start`] with `server_config` as the server's config file.
    fn start_with(legacy: bool, server_config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("K");
        let out = fota_command(&["keys", "init", "--no-passphrase", "--dir"])
            .arg(&keys)
            .output()
            .unwrap();
        assert!(out.status.success(), "keys init: {}", text(&out.stderr));
        std::fs::write(dir.path().join("config.toml"), "").unwrap();
        std::fs::write(dir.path().join("server.toml"), server_config).unwrap();
        let mut cmd = server_command(&dir.path().join("data"), Some(&keys));
        cmd.arg("--config")
            .arg(dir.path().join("server.toml"))
            .env("FOTA_ADMIN_TOKEN", ADMIN);
        if legacy {
            cmd.env("FOTA_LEGACY_PSK", LEGACY_PSK);
        }
        let server = Server::start(cmd);
        Self { server, dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `fota ARGS` with this fleet's server, admin token and key folder in the environment,
    /// and an empty config file.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = fota_command(args);
        cmd.current_dir(self.dir.path())
            .env("FOTA_SERVER", &self.server.url)
            .env("FOTA_TOKEN", ADMIN)
            .env("FOTA_KEYS", self.path("K"))
            .env("FOTA_CONFIG", self.path("config.toml"));
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "fota {args:?} failed: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("fota {args:?}: {e}: {out}"))
    }

    /// Runs and expects exit status `code`; returns stderr.
    fn fails(&self, code: i32, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "fota {args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stderr)
    }

    /// `fota image build` of a 16 KiB image of `version`; returns its file name.
    fn image(&self, version: &str) -> String {
        let name = format!("app-{version}.bin");
        self.ok(&[
            "image",
            "build",
            "--version",
            version,
            "--size",
            "40K",
            "-o",
            &name,
        ]);
        name
    }

    /// A raw request to the server with `token`: (status, body).
    fn http(&self, method: &str, path: &str, token: &str, body: &[u8]) -> (u16, Vec<u8>) {
        crate::kit::http(self.server.addr, method, path, Some(token), body)
    }
}

fn provisioning(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A device event as the agent would post it.
fn post_event(
    fleet: &Fleet,
    prov: &Value,
    kind: EventKind,
    manifest_digest: [u8; 32],
    done: u64,
    total: u64,
) {
    let uuid = uuid::Uuid::parse_str(prov["device_uuid"].as_str().unwrap()).unwrap();
    let event = Event {
        kind,
        reason: ReasonCode::None,
        device_id: *uuid.as_bytes(),
        seq: 1,
        manifest_digest,
        bytes_done: done,
        bytes_total: total,
        fw_version: FixedStr::new("1.0.6").unwrap(),
        rollback_order_id: 0,
        detail: "",
    }
    .to_vec()
    .unwrap();
    let (status, body) = fleet.http(
        "POST",
        "/api/v2/device/events",
        prov["token"].as_str().unwrap(),
        &event,
    );
    assert_eq!(status, 204, "{}", text(&body));
}

#[test]
fn provision_release_assign_watch_rollback() {
    let f = Fleet::start(false);

    // The provisioning file: what the server issued, written 0600.
    f.ok(&[
        "devices",
        "add",
        "EcoWatt001",
        "--class",
        "ecowatt-v1",
        "-o",
        "EcoWatt001.json",
    ]);
    let prov = provisioning(&f.path("EcoWatt001.json"));
    assert_eq!(prov["device_id"], "EcoWatt001");
    assert_eq!(prov["class"], "ecowatt-v1");
    assert!(prov["token"].as_str().unwrap().len() >= 43);
    let root = base64::engine::general_purpose::STANDARD
        .decode(prov["root"].as_str().unwrap())
        .unwrap();
    assert_eq!(root, std::fs::read(f.path("K/root.bin")).unwrap());
    let vendor = uuid::Uuid::parse_str(prov["vendor_id"].as_str().unwrap()).unwrap();
    assert_eq!(
        prov["class_id"],
        fota_protocol::v2::ids::class_id(&vendor, "ecowatt-v1").to_string()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(f.path("EcoWatt001.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Without -o the file goes to stdout.
    let second: Value =
        serde_json::from_str(&f.ok(&["devices", "add", "EcoWatt002", "--class", "ecowatt-v1"]))
            .unwrap();
    assert_eq!(second["device_id"], "EcoWatt002");

    // Two releases; the sequence defaults to the class's highest + 1.
    let app6 = f.image("1.0.6");
    let app7 = f.image("1.0.7");
    let r6 = f.json(&[
        "release",
        "create",
        &app6,
        "--version",
        "1.0.6",
        "--class",
        "ecowatt-v1",
        "--json",
    ]);
    assert_eq!(r6["sequence"], 1);
    assert_eq!(r6["project"], "ecowatt");
    assert_eq!(r6["chunk_size"], 16384);
    assert_eq!(r6["chunk_count"], 3);
    let r7 = f.json(&[
        "release",
        "create",
        &app7,
        "--version",
        "1.0.7",
        "--class",
        "ecowatt-v1",
        "--chunk-size",
        "4K",
        "--security-counter",
        "3",
        "--expires",
        "30days",
        "--json",
    ]);
    assert_eq!(r7["sequence"], 2);
    assert_eq!(r7["security_counter"], 3);
    assert_eq!(r7["chunk_count"], 10);
    let image_sha = hex::encode(fota_testkit::sha256(&std::fs::read(f.path(&app7)).unwrap()));
    assert_eq!(r7["image_sha256"], image_sha);

    let list = f.json(&["release", "list", "--class", "ecowatt-v1", "--json"]);
    let versions: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["1.0.7", "1.0.6"], "newest first");
    let table = f.ok(&["release", "list"]);
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.contains("1.0.7") && table.contains("ecowatt-v1"));
    let shown = f.json(&["release", "show", "1.0.6", "--json"]);
    assert_eq!(shown["id"], r6["id"]);
    let shown = f.json(&["release", "show", r7["id"].as_str().unwrap(), "--json"]);
    assert_eq!(shown["version"], "1.0.7");

    // Assign by version: the class, then one device explicitly.
    let a = f.json(&["assign", "1.0.6", "--class", "ecowatt-v1", "--json"]);
    assert_eq!(a["class"], "ecowatt-v1");
    let a = f.json(&["assign", "1.0.7", "--device", "EcoWatt002", "--json"]);
    assert_eq!(a["devices"], serde_json::json!(["EcoWatt002"]));
    let devices = f.json(&["devices", "list", "--json"]);
    let effective: Vec<(&str, &str)> = devices
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["id"].as_str().unwrap(),
                d["effective_release_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        effective,
        [
            ("EcoWatt001", r6["id"].as_str().unwrap()),
            ("EcoWatt002", r7["id"].as_str().unwrap())
        ]
    );

    // The device downloads and confirms: progress, then `confirmed`, as `devices show --json`
    // and `watch` show them.
    let manifest_digest: [u8; 32] = {
        let (status, body) = f.http(
            "GET",
            &format!("/api/v2/releases/{}/manifest", r6["id"].as_str().unwrap()),
            ADMIN,
            b"",
        );
        assert_eq!(status, 200);
        fota_testkit::sha256(&body)
    };
    let total = r6["image_size"].as_u64().unwrap();
    post_event(
        &f,
        &prov,
        EventKind::Progress,
        manifest_digest,
        total / 2,
        total,
    );
    let shown = f.json(&["devices", "show", "EcoWatt001", "--json"]);
    assert_eq!(shown["state"], "downloading");
    assert_eq!(shown["progress_bytes"], total / 2);
    assert_eq!(shown["progress_total"], total);
    let watch = f.ok(&["watch", "--once"]);
    assert!(watch.starts_with("DEVICE"), "{watch}");
    assert!(watch.contains("50% 20.0 KiB/40.0 KiB"), "{watch}");
    let watch_json: Value = serde_json::from_str(&f.ok(&["watch", "--once", "--json"])).unwrap();
    assert_eq!(watch_json.as_array().unwrap().len(), 2);
    post_event(&f, &prov, EventKind::Confirmed, manifest_digest, 0, 0);
    let shown = f.json(&["devices", "show", "EcoWatt001", "--json", "--events", "5"]);
    assert_eq!(shown["state"], "confirmed");
    let kinds: Vec<&str> = shown["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["confirmed", "progress"], "newest first");
    let human = f.ok(&["devices", "show", "EcoWatt001"]);
    assert!(human.contains("state       confirmed"), "{human}");
    assert!(human.contains("recent events"), "{human}");

    // A rollback order: open on the device, listed with the device's orders.
    let order = f.json(&[
        "rollback",
        "EcoWatt001",
        "--reason",
        "battery drain on 1.0.6",
        "--json",
    ]);
    assert_eq!(order["device_id"], "EcoWatt001");
    assert_eq!(order["reason"], "battery drain on 1.0.6");
    let shown = f.json(&["devices", "show", "EcoWatt001", "--json"]);
    assert_eq!(shown["rollback_order"]["id"], order["id"]);
    assert_eq!(shown["rollback_orders"].as_array().unwrap().len(), 1);
    let orders = f.json(&["rollback", "EcoWatt001", "--list", "--json"]);
    assert_eq!(orders[0]["id"], order["id"]);
    // One open order at a time.
    let err = f.fails(1, &["rollback", "EcoWatt001", "--reason", "again"]);
    assert!(err.contains("HTTP 409"), "{err}");

    // Every change is in the audit log.
    let audit = f.json(&["audit", "--json"]);
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for action in [
        "device.create",
        "release.create",
        "release.assign",
        "rollback.order",
    ] {
        assert!(actions.contains(&action), "{action} missing: {actions:?}");
    }
}

#[test]
fn offline_bundle_uploads_later() {
    let f = Fleet::start(false);
    let app = f.image("2.0.0");
    // Signing offline never contacts a server: point it at one that does not exist.
    let out = f
        .cmd(&[
            "release",
            "create",
            &app,
            "--version",
            "2.0.0",
            "--class",
            "c1",
            "--sequence",
            "7",
            "--offline",
            "-o",
            "r.fota",
        ])
        .env("FOTA_SERVER", "http://127.0.0.1:1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_owned();
    assert_eq!(id.len(), 16, "the release id on stdout: {id:?}");
    let bundle = std::fs::read(f.path("r.fota")).unwrap();
    assert_eq!(&bundle[..4], b"FOTB");
    let image = std::fs::read(f.path(&app)).unwrap();
    assert!(bundle.ends_with(&image), "the image ends the bundle");

    let stored = f.json(&["release", "upload", "r.fota", "--json"]);
    assert_eq!(stored["id"], id.as_str());
    assert_eq!(stored["sequence"], 7);
    assert_eq!(stored["class"], "c1");
    // The same bundle again: the server already holds it, which is no failure.
    let out = f.run(&["release", "upload", "r.fota"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("already uploaded"));
    // A damaged bundle is refused before anything is sent.
    std::fs::write(f.path("bad.fota"), &bundle[..bundle.len() - 1]).unwrap();
    let err = f.fails(1, &["release", "upload", "bad.fota"]);
    assert!(err.contains("not a release bundle"), "{err}");

    // The manifest is format 3 unless asked for the first layout, for agents that predate
    // it; the server takes either.
    let has = |bundle: &[u8], header: &[u8]| bundle.windows(header.len()).any(|w| w == header);
    assert!(has(&bundle, b"FOTM\x03\x00"), "format 3 by default");
    let app = f.image("2.0.1");
    let sign = |format: &str, out: &str| {
        f.cmd(&[
            "release",
            "create",
            &app,
            "--version",
            "2.0.1",
            "--class",
            "c1",
            "--sequence",
            "8",
            "--offline",
            "-o",
            out,
            "--manifest-format",
            format,
        ])
        .output()
        .unwrap()
    };
    let out = sign("2", "old.fota");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let old = std::fs::read(f.path("old.fota")).unwrap();
    assert!(has(&old, b"FOTM\x02\x00"), "the first layout");
    let stored = f.json(&["release", "upload", "old.fota", "--json"]);
    assert_eq!(stored["sequence"], 8);
    let out = sign("4", "never.fota");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not a manifest format"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn refusals_carry_the_reason() {
    let f = Fleet::start(false);
    let app = f.image("1.0.0");

    // Usage errors are exit 2, before anything happens.
    f.fails(
        2,
        &[
            "release",
            "create",
            &app,
            "--version",
            "1.0.0",
            "--class",
            "c",
            "--offline",
        ],
    );
    f.fails(2, &["assign", "1.0.0"]);
    f.fails(
        2,
        &[
            "release",
            "create",
            &app,
            "--version",
            "1.0.0",
            "--class",
            "c",
            "--chunk-size",
            "3000",
        ],
    );
    f.fails(2, &["rollback", "d1"]);
    f.fails(2, &["devices", "add", "bad id", "--class", "c"]);
    f.fails(
        2,
        &[
            "release",
            "create",
            &app,
            "--version",
            "1.0.0",
            "--class",
            "c/x",
        ],
    );

    // The version must be the image's.
    let err = f.fails(
        1,
        &[
            "release",
            "create",
            &app,
            "--version",
            "1.0.1",
            "--class",
            "c",
        ],
    );
    assert!(
        err.contains("does not match the image's app descriptor version \"1.0.0\""),
        "{err}"
    );
    // Not an ESP32 image.
    std::fs::write(f.path("junk.bin"), [0u8; 5000]).unwrap();
    let err = f.fails(
        1,
        &[
            "release",
            "create",
            "junk.bin",
            "--version",
            "1.0.0",
            "--class",
            "c",
        ],
    );
    assert!(err.contains("not a valid ESP32 app image"), "{err}");

    // Bad token, wrong role.
    let err = f.fails(1, &["devices", "list", "--token", "fota_op_nope"]);
    assert!(
        err.contains("unknown token (HTTP 401, unauthorized)"),
        "{err}"
    );
    assert!(err.contains("check the operator token"), "{err}");
    let viewer = f.ok(&["tokens", "create", "dashboard", "--role", "viewer"]);
    let viewer = viewer.trim();
    f.ok(&["devices", "list", "--token", viewer]);
    let err = f.fails(
        1,
        &["devices", "add", "d1", "--class", "c", "--token", viewer],
    );
    assert!(err.contains("HTTP 403, forbidden"), "{err}");
    assert!(err.contains("role"), "{err}");
    let err = f.fails(
        1,
        &[
            "release",
            "create",
            &app,
            "--version",
            "1.0.0",
            "--class",
            "c",
            "--token",
            viewer,
        ],
    );
    assert!(err.contains("HTTP 403"), "{err}");

    // A sequence that is not above the class's highest.
    f.ok(&[
        "release",
        "create",
        &app,
        "--version",
        "1.0.0",
        "--class",
        "c",
        "--sequence",
        "5",
    ]);
    let app2 = f.image("1.0.2");
    let err = f.fails(
        1,
        &[
            "release",
            "create",
            &app2,
            "--version",
            "1.0.2",
            "--class",
            "c",
            "--sequence",
            "5",
        ],
    );
    assert!(err.contains("HTTP 409"), "{err}");
    assert!(err.contains("not above"), "{err}");

    // Unknown device, unknown release.
    let err = f.fails(1, &["devices", "show", "ghost"]);
    assert!(err.contains("HTTP 404, not_found"), "{err}");
    let err = f.fails(1, &["assign", "9.9.9", "--class", "c"]);
    assert!(err.contains("no release \"9.9.9\""), "{err}");
    f.ok(&["devices", "add", "d1", "--class", "c", "-o", "d1.json"]);
    let err = f.fails(1, &["assign", "1.0.0", "--device", "d1", "ghost"]);
    assert!(err.contains("HTTP 404"), "{err}");

    // No server there.
    let err = f.fails(1, &["devices", "list", "--server", "http://127.0.0.1:1"]);
    assert!(
        err.contains("is the server running at http://127.0.0.1:1"),
        "{err}"
    );
    let err = f.fails(
        1,
        &["devices", "list", "--server", "https://example.invalid"],
    );
    assert!(
        err.contains("is the server running at https://example.invalid"),
        "{err}"
    );
}

#[test]
fn encrypted_keys_need_the_passphrase() {
    let f = Fleet::start(false);
    let out = fota_command(&["keys", "init", "--dir"])
        .arg(f.path("EK"))
        .env("FOTA_KEY_PASSPHRASE", "correct horse")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let app = f.image("1.0.0");
    let args = [
        "release",
        "create",
        &app,
        "--version",
        "1.0.0",
        "--class",
        "c",
        "--sequence",
        "1",
        "--offline",
        "-o",
        "r.fota",
        "--keys",
        "EK",
    ];
    let err = f.fails(1, &args);
    assert!(err.contains("FOTA_KEY_PASSPHRASE"), "{err}");
    let out = f
        .cmd(&args)
        .env("FOTA_KEY_PASSPHRASE", "wrong")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("wrong passphrase"),
        "{}",
        text(&out.stderr)
    );
    let out = f
        .cmd(&args)
        .env("FOTA_KEY_PASSPHRASE", "correct horse")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Signed by another vendor's keys: this server refuses the upload, with its reason.
    let err = f.fails(1, &["release", "upload", "r.fota"]);
    assert!(err.contains("HTTP 422"), "{err}");
}

#[test]
fn legacy_upload_prints_total_chunks() {
    let f = Fleet::start(true);
    let app = f.image("1.0.6");
    let out = f.ok(&["legacy", "upload", &app, "--version", "1.0.6"]);
    // 40 KiB in 16 KiB chunks.
    assert!(out.contains("total_chunks 3"), "{out}");
    let answer = f.json(&[
        "legacy",
        "upload",
        &app,
        "--version",
        "1.0.6",
        "--chunk-size",
        "1000",
        "--json",
    ]);
    assert_eq!(
        answer,
        serde_json::json!({"success": true, "total_chunks": 41})
    );
    // The seed's manifest now serves it.
    let (status, body) = f.http("GET", "/api/inverter/fota/manifest", ADMIN, b"");
    assert_eq!(status, 200);
    let manifest: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(manifest["total_chunks"], 41);
    assert_eq!(manifest["version"], "1.0.6");
    // A version that is not the image's: uploaded (the seed did not check), with a warning.
    let out = f.run(&["legacy", "upload", &app, "--version", "2.0.0"]);
    assert!(out.status.success());
    assert!(
        text(&out.stderr).contains("warning"),
        "{}",
        text(&out.stderr)
    );

    // Without a PSK the server says the legacy API is off.
    let plain = Fleet::start(false);
    let app = f.path(&app);
    let err = plain.fails(
        1,
        &[
            "legacy",
            "upload",
            app.to_str().unwrap(),
            "--version",
            "1.0.6",
        ],
    );
    assert!(err.contains("legacy"), "{err}");
}

#[test]
fn tokens_and_device_credentials() {
    let f = Fleet::start(false);
    let created = f.json(&["tokens", "create", "ci", "--role", "operator", "--json"]);
    let (id, secret) = (
        created["id"].as_str().unwrap(),
        created["token"].as_str().unwrap(),
    );
    assert_eq!(created["role"], "operator");
    // An operator ships firmware but does not mint device credentials: a provisioner does.
    let err = f.fails(
        1,
        &[
            "devices", "add", "d0", "--class", "c", "--token", secret, "-o", "d0.json",
        ],
    );
    assert!(
        err.contains("HTTP 403") && err.contains("provisioner or admin"),
        "{err}"
    );
    let provisioner = f.json(&[
        "tokens",
        "create",
        "line",
        "--role",
        "provisioner",
        "--expires",
        "90days",
        "--json",
    ]);
    assert_eq!(provisioner["role"], "provisioner");
    let in_90_days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 90 * 86_400_000;
    let expires = provisioner["expires_at"].as_i64().expect("expires_at");
    assert!(
        (expires - in_90_days).abs() < 60_000,
        "{expires} vs {in_90_days}"
    );
    let provisioner = provisioner["token"].as_str().unwrap();
    f.ok(&[
        "devices",
        "add",
        "d1",
        "--class",
        "c",
        "--token",
        provisioner,
        "-o",
        "d1.json",
    ]);
    let tokens = f.json(&["tokens", "list", "--json"]);
    assert!(tokens.as_array().unwrap().iter().any(|t| t["id"] == id));
    // An operator may not manage tokens.
    f.fails(1, &["tokens", "list", "--token", secret]);
    f.ok(&["tokens", "revoke", id]);
    let err = f.fails(1, &["devices", "list", "--token", secret]);
    assert!(err.contains("HTTP 401"), "{err}");

    // Rotation replaces the file and the credential; revocation shows on the device.
    let old = provisioning(&f.path("d1.json"));
    f.ok(&["devices", "rotate", "d1", "-o", "d1.json"]);
    let new = provisioning(&f.path("d1.json"));
    assert_ne!(old["token"], new["token"]);
    assert_eq!(old["root"], new["root"]);
    let blob = format!("/api/v2/device/blobs/{}", "0".repeat(64));
    let (status, _) = f.http("GET", &blob, old["token"].as_str().unwrap(), b"");
    assert_eq!(status, 401, "the old credential is dead");
    let (status, _) = f.http("GET", &blob, new["token"].as_str().unwrap(), b"");
    assert_eq!(
        status, 403,
        "the new one is known (the blob is just not offered to it)"
    );
    f.ok(&["devices", "revoke", "d1"]);
    let shown = f.json(&["devices", "show", "d1", "--json"]);
    assert!(shown["revoked_at"].is_i64());
    let list = f.ok(&["devices", "list"]);
    assert!(list.contains("(revoked)"), "{list}");
}

#[test]
fn settings_come_from_flag_then_env_then_config_file() {
    let f = Fleet::start(false);
    let config = f.path("config.toml");
    std::fs::write(
        &config,
        format!(
            "server = \"{}\"\ntoken = \"{ADMIN}\"\nkeys = \"K\"\n",
            f.server.url
        ),
    )
    .unwrap();
    let from_file = || {
        let mut cmd = fota_command(&[]);
        cmd.current_dir(f.dir.path()).env("FOTA_CONFIG", &config);
        cmd
    };
    // Everything from the file, signing included.
    let app = f.image("1.0.0");
    let out = from_file()
        .args([
            "release",
            "create",
            &app,
            "--version",
            "1.0.0",
            "--class",
            "c",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The environment beats the file, a flag beats the environment.
    let out = from_file()
        .args(["release", "list"])
        .env("FOTA_TOKEN", "fota_op_nope")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = from_file()
        .args(["release", "list", "--token", ADMIN])
        .env("FOTA_TOKEN", "fota_op_nope")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    // A config file named by FOTA_CONFIG must exist; a broken one is an error, not ignored.
    let out = fota_command(&["release", "list"])
        .env("FOTA_CONFIG", f.path("missing.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    std::fs::write(&config, "server = [").unwrap();
    let out = from_file().args(["release", "list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("config.toml"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn oversize_upload_is_refused_before_the_body() {
    let f = Fleet::start_with(false, "[limits]\nmax_release_bytes = 100000\n");
    let big = "big.bin";
    f.ok(&[
        "image",
        "build",
        "--version",
        "3.0.0",
        "--size",
        "1M",
        "-o",
        big,
    ]);
    let err = f.fails(
        1,
        &[
            "release",
            "create",
            big,
            "--version",
            "3.0.0",
            "--class",
            "c",
        ],
    );
    assert!(err.contains("HTTP 413, payload_too_large"), "{err}");
    let small = f.image("3.0.1");
    f.ok(&[
        "release",
        "create",
        &small,
        "--version",
        "3.0.1",
        "--class",
        "c",
    ]);
}

/// The library `fota demo` and other tests use, on the same kind of server.
#[test]
fn client_library_signs_uploads_and_waits() {
    use fota_client::release::{self, KeyFolder, ReleaseSpec};

    let f = Fleet::start(false);
    let client = fota_client::Client::new(&f.server.url, Some(ADMIN.to_owned())).unwrap();
    client.health().unwrap();
    let info = client.server_info().unwrap();
    assert!(info.v2);

    let keys = KeyFolder::open(&f.path("K"), None).unwrap();
    assert_eq!(info.vendor_id, Some(keys.vendor_id().to_string()));
    let prov = client.add_device("d1", "c1").unwrap();
    let prov = serde_json::to_value(&prov).unwrap();

    let image = std::fs::read(f.path(&f.image("1.2.3"))).unwrap();
    let mut releases = Vec::new();
    for class in ["c1", "c2"] {
        let spec = ReleaseSpec {
            class: class.into(),
            version: "1.2.3".into(),
            sequence: client.next_sequence(class).unwrap(),
            security_counter: None,
            chunk_size: release::DEFAULT_CHUNK_SIZE,
            issued_at: 1_700_000_000,
            expires_at: 0,
            manifest_format: Default::default(),
        };
        let signed = release::sign(&image, &spec, &keys).unwrap();
        let mut sent = 0;
        let stored = client
            .upload_signed(&signed, &image, &mut |n| sent += n)
            .unwrap();
        assert_eq!(sent, image.len() as u64, "progress counts every image byte");
        assert!(stored.created);
        assert_eq!(stored.release.id, signed.release_id());
        // Again: the stored release, not created anew.
        let again = client.upload_signed(&signed, &image, &mut |_| {}).unwrap();
        assert!(!again.created);
        assert_eq!(again.release.id, stored.release.id);
        releases.push(stored.release);
    }
    assert_eq!(client.next_sequence("c1").unwrap(), 2);

    // A version in two classes needs the class (or the id).
    assert!(matches!(
        client.find_release("1.2.3", None),
        Err(fota_client::Error::AmbiguousRelease { .. })
    ));
    let r = client.find_release("1.2.3", Some("c1")).unwrap();
    assert_eq!(r.id, releases[0].id);
    assert_eq!(client.find_release(&r.id, None).unwrap().class, "c1");
    assert!(matches!(
        client.find_release("0.0.0", None),
        Err(fota_client::Error::NoRelease(_))
    ));

    client.assign_class(&r.id, "c1").unwrap();
    let digest = fota_testkit::sha256(&client.release_manifest(&r.id).unwrap());
    post_event(&f, &prov, EventKind::Confirmed, digest, 0, 0);
    let d = client
        .wait_for_device(
            "d1",
            Duration::from_secs(5),
            Duration::from_millis(50),
            |d| d.state == DeviceState::Confirmed,
        )
        .unwrap();
    assert_eq!(d.effective_release_id.as_deref(), Some(r.id.as_str()));
    let e = client
        .wait_for_device(
            "d1",
            Duration::from_millis(200),
            Duration::from_millis(50),
            |d| d.state == DeviceState::RolledBack,
        )
        .unwrap_err();
    assert!(matches!(e, fota_client::Error::Timeout { .. }), "{e}");

    // Errors carry the server's code.
    let e = client.device("ghost").unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(404), Some("not_found")));
    let anonymous = fota_client::Client::new(&f.server.url, None).unwrap();
    assert_eq!(
        anonymous.list_devices(None).unwrap_err().status(),
        Some(401)
    );
}

/// The way back in when no admin token works: `fota server admin-token` on the server's
/// machine, while the server runs, with nothing but the data folder.
#[test]
fn admin_token_recovers_access_without_http() {
    let f = Fleet::start(false);
    let err = f.fails(1, &["tokens", "revoke", "bootstrap"]);
    assert!(err.contains("last active admin token"), "{err}");
    let out = fota_command(&["server", "admin-token", "--data"])
        .arg(f.path("data"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let fresh = text(&out.stdout);
    let fresh = fresh.trim();
    assert!(
        fresh.starts_with("fota_op_"),
        "only the token on stdout: {fresh:?}"
    );
    assert!(text(&out.stderr).contains("shown only this once"));
    // the new token is an admin: it can now retire the old one
    f.ok(&["tokens", "revoke", "bootstrap", "--token", fresh]);
    let err = f.fails(1, &["tokens", "list"]);
    assert!(err.contains("HTTP 401"), "{err}");
    let (status, audit) = f.http("GET", "/api/v2/audit", fresh, b"");
    assert_eq!(status, 200);
    let audit: Value = serde_json::from_slice(&audit).unwrap();
    let recovered = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "token.recover")
        .expect("the recovery is audited");
    assert_eq!(recovered["actor"], "server:admin-token");
    assert!(!recovered.to_string().contains(fresh), "never the secret");
    // a data folder without a database is an error, not a new empty one
    let empty = f.path("nothing-here");
    let out = fota_command(&["server", "admin-token", "--data"])
        .arg(&empty)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("does not exist"),
        "{}",
        text(&out.stderr)
    );
    assert!(!empty.exists());
}

#[test]
fn devices_delete_removes_a_device_and_its_history() {
    let f = Fleet::start(false);
    f.ok(&["devices", "add", "d1", "--class", "c", "-o", "d1.json"]);
    let created = f.json(&["tokens", "create", "ops", "--role", "operator", "--json"]);
    let operator = created["token"].as_str().unwrap();
    let err = f.fails(1, &["devices", "delete", "d1", "--token", operator]);
    assert!(
        err.contains("HTTP 403") && err.contains("provisioner or admin"),
        "deleting needs a provisioner: {err}"
    );
    f.ok(&["devices", "delete", "d1"]);
    let err = f.fails(1, &["devices", "show", "d1"]);
    assert!(err.contains("HTTP 404"), "{err}");
    let err = f.fails(1, &["devices", "delete", "d1"]);
    assert!(err.contains("HTTP 404"), "{err}");
    // the old credential is dead with its device
    let old = provisioning(&f.path("d1.json"));
    let blob = format!("/api/v2/device/blobs/{}", "0".repeat(64));
    let (status, _) = f.http("GET", &blob, old["token"].as_str().unwrap(), b"");
    assert_eq!(status, 401);
}

/// Bytes that are no ESP32 app image (the first is not the 0xE9 magic), from a fixed seed.
fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8 | 1
        })
        .collect()
}

#[test]
fn an_emulated_device_whose_credential_was_rotated_stops_with_status_6() {
    let f = Fleet::start(false);
    f.ok(&["devices", "add", "d1", "--class", "c", "-o", "d1.json"]);
    std::fs::copy(f.path("d1.json"), f.path("old.json")).unwrap();
    f.ok(&["devices", "rotate", "d1", "-o", "d1.json"]);
    let app = f.image("1.0.0");
    let emulate = |credential: &str| {
        f.cmd(&[
            "emulate",
            "--id",
            "d1",
            "--credential",
            credential,
            "--flash",
            "d1.bin",
            "--initial-image",
            &app,
            "--until",
            "1-checkins",
            "--poll-interval",
            "100ms",
            "--report",
            "json",
        ])
        .env("RUST_LOG", "info")
        .output()
        .unwrap()
    };

    // The old credential: every check-in gets 401. None of them counts, the refusal is an
    // error line, and the run ends with its own status instead of retrying or saying `done`.
    let out = emulate("old.json");
    let report = json(&out);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{report}\n{stderr}");
    assert_eq!(report["outcome"], "refused", "{report}");
    assert_eq!(report["exit_code"], 6);
    assert_eq!(report["checkins"], 0, "refused check-ins are not check-ins");
    assert!(
        report["error"].as_str().unwrap().contains("401"),
        "{report}"
    );
    let refusal = stderr
        .lines()
        .find(|l| l.contains("401"))
        .unwrap_or_else(|| panic!("no line names the 401: {stderr}"));
    assert!(refusal.contains("ERROR"), "{refusal}");
    assert!(
        !stderr
            .lines()
            .any(|l| l.contains("INFO") && l.contains("401")),
        "the refusal is not logged as information: {stderr}"
    );

    // The current credential on the same flash file: one answered check-in, done.
    let out = emulate("d1.json");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "done");
    assert_eq!(report["checkins"], 1);
}

#[test]
fn an_initial_image_that_is_no_esp32_app_is_refused_before_the_flash_file_exists() {
    let f = Fleet::start(false);
    f.ok(&["devices", "add", "d1", "--class", "c", "-o", "d1.json"]);
    std::fs::write(f.path("random.bin"), noise(64 * 1024)).unwrap();
    let args = |image: &str| {
        [
            "emulate",
            "--id",
            "d1",
            "--credential",
            "d1.json",
            "--flash",
            "d1.bin",
            "--initial-image",
            image,
            "--until",
            "1-checkins",
            "--poll-interval",
            "100ms",
        ]
        .map(str::to_owned)
    };
    let random = args("random.bin");
    let random: Vec<&str> = random.iter().map(String::as_str).collect();
    let err = f.fails(1, &random);
    assert_eq!(
        err.matches("not a valid ESP32 app image").count(),
        1,
        "said once: {err}"
    );
    assert!(err.contains("random.bin"), "names the file: {err}");
    assert!(!f.path("d1.bin").exists(), "no flash file was made");
    // Nothing was left behind to brick the next run: a real image makes the device.
    let app = f.image("1.0.0");
    let good = args(&app);
    let good: Vec<&str> = good.iter().map(String::as_str).collect();
    f.ok(&good);
    assert!(f.path("d1.bin").exists());
}

#[test]
fn logs_written_to_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    // An unknown key is a warning: a log line, before the (failing) request.
    std::fs::write(&config, "colour = true\nserver = \"http://127.0.0.1:1\"\n").unwrap();
    let out = fota_command(&["release", "list"])
        .env("FOTA_CONFIG", &config)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(stderr.contains("unknown key `colour`"), "{stderr}");
    assert!(
        !out.stderr.contains(&0x1b),
        "no ANSI escapes on a pipe: {stderr:?}"
    );
}

/// The `Usage:` line of clap's output.
fn usage_line(output: &str) -> &str {
    output
        .lines()
        .find(|l| l.starts_with("Usage:"))
        .unwrap_or_else(|| panic!("no usage line in {output}"))
}

#[test]
fn usage_lines_do_not_show_settings_from_the_environment_as_required() {
    let dir = tempfile::tempdir().unwrap();
    let from_env = |args: &[&str]| {
        let mut cmd = fota_command(args);
        cmd.current_dir(dir.path())
            .env("FOTA_SERVER", "http://127.0.0.1:1")
            .env("FOTA_TOKEN", "fota_op_x")
            .env("FOTA_KEYS", "K")
            .env("FOTA_LEGACY_PSK", LEGACY_PSK);
        cmd.output().unwrap()
    };
    // A usage error of an offline signing: only what the command line gave and what is
    // missing, not the server, token or key folder the environment supplies.
    let out = from_env(&["release", "create", "app.bin", "--class", "c", "--offline"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    let usage = usage_line(&err);
    assert!(usage.contains("--sequence <N>"), "{usage}");
    for flag in ["--keys", "--token", "--server"] {
        assert!(!usage.contains(flag), "{flag} in {usage}");
    }
    let out = from_env(&["devices", "add", "d1"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    let usage = usage_line(&err);
    assert!(usage.contains("--class <C>"), "{usage}");
    assert!(
        !usage.contains("--token") && !usage.contains("--server"),
        "{usage}"
    );
    // The emulator: a PSK in the environment (for a server) neither shows up nor conflicts
    // with a v2 credential given on the command line.
    let out = from_env(&["emulate", "--id", "d1", "--credential", "d1.json"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(!err.contains("cannot be used with"), "{err}");
    let usage = usage_line(&err);
    assert!(usage.contains("--flash"), "{usage}");
    assert!(
        !usage.contains("--legacy-psk") && !usage.contains("--server"),
        "{usage}"
    );

    // Help: the same usage, and where each setting may come from.
    let out = from_env(&["release", "create", "--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    let usage = usage_line(&help);
    assert_eq!(
        usage,
        "Usage: fota release create [OPTIONS] --version <V> --class <C> <IMAGE>"
    );
    for source in ["FOTA_KEYS", "FOTA_TOKEN", "FOTA_SERVER", "config `keys`"] {
        assert!(help.contains(source), "{source} in {help}");
    }
    assert!(
        !help.contains("fota_op_x"),
        "the token's value is never shown"
    );
}

#[test]
fn an_empty_release_version_is_a_usage_error_said_once() {
    let f = Fleet::start(false);
    f.ok(&[
        "image",
        "build",
        "--version",
        "",
        "--size",
        "40K",
        "-o",
        "empty.bin",
    ]);
    for offline in [false, true] {
        let mut args = vec![
            "release",
            "create",
            "empty.bin",
            "--version",
            "",
            "--class",
            "c",
        ];
        if offline {
            args.extend(["--offline", "--sequence", "1", "-o", "r.fota"]);
        }
        let err = f.fails(2, &args);
        assert_eq!(err.matches("1-31 bytes").count(), 1, "{err}");
        assert!(!err.contains("offset"), "{err}");
        assert!(!f.path("r.fota").exists());
    }
    assert_eq!(
        f.json(&["release", "list", "--json"]),
        serde_json::json!([]),
        "nothing was uploaded"
    );
}

#[test]
fn re_uploading_a_bundle_the_server_holds_answers_the_stored_release() {
    let f = Fleet::start(false);
    let app = f.image("2.0.0");
    f.ok(&[
        "release",
        "create",
        &app,
        "--version",
        "2.0.0",
        "--class",
        "c1",
        "--sequence",
        "50",
        "-o",
        "r.fota",
    ]);
    let first = f.json(&["release", "show", "2.0.0", "--json"]);
    // The same bundle (the same signed manifest) again: success, the stored release, said so.
    let out = f.run(&["release", "upload", "r.fota"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(said.contains("already uploaded"), "{said}");
    assert!(said.contains(first["id"].as_str().unwrap()), "{said}");
    let again = f.json(&["release", "upload", "r.fota", "--json"]);
    assert_eq!(again, first, "the stored release, unchanged");
    let list = f.json(&["release", "list", "--json"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let audit = f.json(&["audit", "--json"]);
    let creates = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "release.create")
        .count();
    assert_eq!(creates, 1, "a repeat is not a new release");
    // Another manifest with the same sequence is still a conflict.
    let app2 = f.image("2.0.1");
    let err = f.fails(
        1,
        &[
            "release",
            "create",
            &app2,
            "--version",
            "2.0.1",
            "--class",
            "c1",
            "--sequence",
            "50",
        ],
    );
    assert!(
        err.contains("HTTP 409") && err.contains("not above"),
        "{err}"
    );
}

#[test]
fn rotating_a_revoked_device_needs_reactivate() {
    let f = Fleet::start(false);
    f.ok(&["devices", "add", "d1", "--class", "c", "-o", "d1.json"]);
    let before = provisioning(&f.path("d1.json"));
    f.ok(&["devices", "revoke", "d1"]);
    let err = f.fails(1, &["devices", "rotate", "d1", "-o", "d1.json"]);
    assert!(err.contains("HTTP 409, device_revoked"), "{err}");
    assert!(err.contains("--reactivate"), "says how: {err}");
    assert_eq!(
        provisioning(&f.path("d1.json")),
        before,
        "the file is left as it was"
    );
    let shown = f.json(&["devices", "show", "d1", "--json"]);
    assert!(shown["revoked_at"].is_i64(), "still revoked: {shown}");
    let blob = format!("/api/v2/device/blobs/{}", "0".repeat(64));
    let (status, _) = f.http("GET", &blob, before["token"].as_str().unwrap(), b"");
    assert_eq!(status, 401);

    // Asked for: a new credential, and the device is active again.
    f.ok(&["devices", "rotate", "d1", "--reactivate", "-o", "d1.json"]);
    let after = provisioning(&f.path("d1.json"));
    assert_ne!(after["token"], before["token"]);
    let shown = f.json(&["devices", "show", "d1", "--json"]);
    assert!(shown["revoked_at"].is_null(), "{shown}");
    let (status, _) = f.http("GET", &blob, after["token"].as_str().unwrap(), b"");
    assert_eq!(status, 403, "known again (the blob is just not offered)");
    // On an active device --reactivate changes nothing else.
    f.ok(&["devices", "rotate", "d1", "--reactivate", "-o", "d1.json"]);
}

#[test]
fn keys_are_rotated_revoked_shown_and_published() {
    let f = Fleet::start(false);
    let shown = f.json(&["keys", "show", "--json"]);
    assert_eq!(shown["root_version"], 1, "{shown}");
    let keys = shown["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 5, "{shown}");
    assert!(keys.iter().all(|k| k["revoked"] == false), "{shown}");
    let role_of = |k: &Value| k["role"].as_str().unwrap().to_owned();
    let mut roles: Vec<String> = keys.iter().map(role_of).collect();
    roles.dedup();
    assert_eq!(roles, ["root", "release", "status"], "{shown}");
    let old_release = keys.iter().find(|k| k["role"] == "release").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The only release key cannot be revoked: nothing could sign releases.
    let err = f.fails(1, &["keys", "revoke", &old_release, "--no-passphrase"]);
    assert!(err.contains("rotate-release"), "{err}");

    let out = f.ok(&["keys", "rotate-release", "--no-passphrase"]);
    assert!(out.contains("root record v2"), "{out}");
    let out = f.ok(&["keys", "revoke", &old_release, "--no-passphrase"]);
    assert!(out.contains("root record v3"), "{out}");
    for file in [
        "K/root-v1.bin",
        "K/root-v2.bin",
        "K/root-v3.bin",
        "K/release.key",
    ] {
        assert!(f.path(file).exists(), "{file}");
    }
    let shown = f.json(&["keys", "show", "--json"]);
    assert_eq!(shown["root_version"], 3, "{shown}");
    let keys = shown["keys"].as_array().unwrap();
    let state = |id: &str| keys.iter().find(|k| k["id"] == id).unwrap()["revoked"].clone();
    assert_eq!(state(&old_release), true, "{shown}");
    let new_release = keys
        .iter()
        .find(|k| k["role"] == "release" && k["id"] != old_release.as_str())
        .unwrap();
    assert_eq!(new_release["revoked"], false);
    assert!(
        f.path(&format!(
            "K/release-{}.key",
            new_release["id"].as_str().unwrap()
        ))
        .exists()
    );

    // One command publishes v2 then v3; the server walks devices through both.
    let out = f.ok(&["root", "publish", "K/root.bin"]);
    assert!(
        out.contains("root v2 published") && out.contains("root v3 published"),
        "{out}"
    );
    let chain = f.json(&["root", "list", "--json"]);
    assert_eq!(chain["newest"], 3, "{chain}");
    assert_eq!(
        chain["versions"][2]["release_keys"],
        serde_json::json!([new_release["id"]]),
        "{chain}"
    );
    let again = f.ok(&["root", "publish", "K/root.bin"]);
    assert!(again.contains("holds root v3 already"), "{again}");

    // Releases are signed with the new key now, and the server takes them.
    let app = f.image("1.0.6");
    let r = f.json(&[
        "release",
        "create",
        &app,
        "--version",
        "1.0.6",
        "--class",
        "ecowatt-v1",
        "--json",
    ]);
    assert_eq!(r["sequence"], 1, "{r}");
}
