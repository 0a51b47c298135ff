//! `fota` over TLS as users run it: `fota server tls self-signed`, the server's refusal of
//! plain HTTP off loopback, a SIGHUP certificate reload seen by new connections while an old
//! one stays up, operator commands and `fota emulate` with `--ca-file` / `FOTA_CA_FILE`, and
//! `fota demo --tls`. The test kit's HTTPS connection looks at the certificates served.

use core::time::Duration;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

use axum::http::{Method, StatusCode};
use fota_testkit::tls::{HttpsConn, client_config};

use crate::kit::{ADMIN_TOKEN as ADMIN, Server, fota_command, text};

/// `fota ARGS` in `dir`, logging at `info` (some checks read the log).
fn fota(args: &[&str], dir: &Path) -> Command {
    let mut cmd = fota_command(args);
    cmd.current_dir(dir).env("RUST_LOG", "info");
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run fota")
}

fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{:?}: {}\n{}",
        cmd,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn self_signed(dir: &Path, out: &str) {
    ok(&mut fota(&["server", "tls", "self-signed", "-o", out], dir));
}

fn tls_server(dir: &Path, tls: &str, keys: Option<&Path>) -> Server {
    let mut cmd = fota(
        &[
            "server",
            "--listen",
            "127.0.0.1:0",
            "--data",
            "data",
            "--tls-cert",
            &format!("{tls}/cert.pem"),
            "--tls-key",
            &format!("{tls}/key.pem"),
        ],
        dir,
    );
    if let Some(k) = keys {
        cmd.arg("--root")
            .arg(k.join("root.bin"))
            .arg("--status-key")
            .arg(k.join("status.key"));
    }
    cmd.env("FOTA_ADMIN_TOKEN", ADMIN);
    Server::start(cmd)
}

#[test]
fn self_signed_writes_a_ca_and_a_server_pair_and_never_overwrites_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(&mut fota(
        &[
            "server",
            "tls",
            "self-signed",
            "-o",
            "tls",
            "--host",
            "fota.test",
            "--host",
            "::1",
        ],
        dir.path(),
    ));
    assert_eq!(out.lines().count(), 3, "{out}");
    for name in ["ca.pem", "cert.pem", "key.pem"] {
        assert!(dir.path().join("tls").join(name).exists(), "{name}");
    }
    let before = std::fs::read(dir.path().join("tls/cert.pem")).unwrap();
    let again = run(&mut fota(
        &["server", "tls", "self-signed", "-o", "tls"],
        dir.path(),
    ));
    assert!(!again.status.success());
    let err = text(&again.stderr);
    assert!(
        err.contains("already exist") && err.contains("cert.pem"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("tls/cert.pem")).unwrap(),
        before
    );
}

#[test]
fn plain_http_off_loopback_is_refused_without_insecure_http() {
    let dir = tempfile::tempdir().unwrap();
    // The address is checked before anything binds, so nothing listens on the network here.
    let out = run(&mut fota(
        &["server", "--listen", "0.0.0.0:0", "--data", "data"],
        dir.path(),
    ));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("refusing plain HTTP on 0.0.0.0:0")
            && err.contains("--insecure-http")
            && err.contains("--tls-cert"),
        "{err}"
    );
    // half a TLS pair is a usage error
    let out = run(&mut fota(
        &["server", "--data", "data", "--tls-cert", "c.pem"],
        dir.path(),
    ));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--tls-key"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn sighup_reloads_the_pair_for_new_connections_while_an_old_one_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    self_signed(dir.path(), "a");
    self_signed(dir.path(), "b");
    let server = tls_server(dir.path(), "a", None);
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let ca_a = dir.path().join("a/ca.pem");
    let ca_b = dir.path().join("b/ca.pem");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut old = HttpsConn::connect(server.addr, "localhost", client_config(&[&ca_a]))
            .await
            .expect("the first pair serves");
        assert_eq!(
            old.request(Method::GET, "/healthz", &[], b"").await.status,
            StatusCode::OK
        );
        for name in ["cert.pem", "key.pem"] {
            std::fs::copy(
                dir.path().join("b").join(name),
                dir.path().join("a").join(name),
            )
            .unwrap();
        }
        server.hup();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut new = loop {
            match HttpsConn::connect(server.addr, "localhost", client_config(&[&ca_b])).await {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("the new pair never served: {e}"),
            }
        };
        assert_ne!(new.server_cert, old.server_cert);
        assert_eq!(
            new.request(Method::GET, "/healthz", &[], b"").await.status,
            StatusCode::OK
        );
        // the connection from before the reload is still up
        assert_eq!(
            old.request(Method::GET, "/healthz", &[], b"").await.status,
            StatusCode::OK
        );

        // a broken pair: logged, and the current one keeps serving
        std::fs::write(dir.path().join("a/key.pem"), b"garbage\n").unwrap();
        server.hup();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut after = HttpsConn::connect(server.addr, "localhost", client_config(&[&ca_b]))
            .await
            .expect("the last good pair still serves");
        assert_eq!(
            after
                .request(Method::GET, "/healthz", &[], b"")
                .await
                .status,
            StatusCode::OK
        );
        assert_eq!(
            old.request(Method::GET, "/healthz", &[], b"").await.status,
            StatusCode::OK
        );
    });
}

#[test]
fn operator_commands_and_emulate_take_the_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&mut fota(
        &["keys", "init", "--no-passphrase", "--dir", "keys"],
        d,
    ));
    self_signed(d, "tls");
    let server = tls_server(d, "tls", Some(&d.join("keys")));
    let url = format!("https://localhost:{}", server.addr.port());
    let op = |args: &[&str]| {
        let mut cmd = fota(args, d);
        cmd.args(["--server", &url, "--token", ADMIN]);
        cmd
    };

    // without the CA: refused, with the hint
    let out = run(&mut op(&["devices", "list"]));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("--ca-file") && err.contains("UnknownIssuer"),
        "{err}"
    );
    // with it, by flag and by environment
    ok(&mut op(&[
        "devices",
        "add",
        "tls1",
        "--class",
        "c",
        "-o",
        "tls1.json",
        "--ca-file",
        "tls/ca.pem",
    ]));
    let list = ok(op(&["devices", "list", "--json"]).env("FOTA_CA_FILE", d.join("tls/ca.pem")));
    assert!(list.contains("tls1"), "{list}");

    std::fs::write(
        d.join("app.bin"),
        fota_testkit::image("1.0.0", 64 * 1024, false),
    )
    .unwrap();
    let emulate = |ca: Option<&str>| {
        let mut cmd = fota(
            &[
                "emulate",
                "--server",
                &url,
                "--id",
                "tls1",
                "--credential",
                "tls1.json",
                "--flash",
                "tls1.bin",
                "--initial-image",
                "app.bin",
                "--until",
                "1-checkins",
                "--poll-interval",
                "50ms",
                "--report",
                "json",
            ],
            d,
        );
        if let Some(ca) = ca {
            cmd.args(["--ca-file", ca]);
        }
        run(&mut cmd)
    };
    // without the CA the device cannot reach the server: its poll fails on the network,
    // and no request is ever sent
    let out = emulate(None);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["reason"], "network", "{report}");
    assert_eq!(report["wire"]["requests"], 0, "{report}");
    let shown = ok(&mut op(&[
        "devices",
        "show",
        "tls1",
        "--json",
        "--ca-file",
        "tls/ca.pem",
    ]));
    let device: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert!(device["last_seen_at"].is_null(), "{device}");

    let out = emulate(Some("tls/ca.pem"));
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "done", "{report}");
    assert!(report["wire"]["requests"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["reason"], "none", "{report}");
    let shown = ok(&mut op(&[
        "devices",
        "show",
        "tls1",
        "--json",
        "--ca-file",
        "tls/ca.pem",
    ]));
    let device: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert!(device["last_seen_at"].is_i64(), "{device}");
    assert_eq!(device["fw_version"], "1.0.0", "{device}");
    drop(server);
}

#[test]
fn the_demo_runs_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&mut fota(
        &["demo", "--fast", "--tls", "--json", "--dir", "work"],
        dir.path(),
    ));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", text(&out.stdout), text(&out.stderr)));
    assert!(out.status.success(), "{summary}\n{}", text(&out.stderr));
    assert_eq!(summary["ok"], true, "{summary}");
    assert!(
        summary["server"]
            .as_str()
            .unwrap()
            .starts_with("https://localhost:"),
        "{summary}"
    );
    assert!(dir.path().join("work/tls/ca.pem").exists());
    let story = text(&out.stderr);
    assert!(story.contains("TLS-terminating hop"), "{story}");
}
