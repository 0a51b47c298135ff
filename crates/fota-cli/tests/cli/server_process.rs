//! `fota server` as a process: the first stdout line, the bootstrap token, signals, restarts,
//! two processes over one data folder, `kill -9` in the middle of an upload, backup/restore.
#![allow(
    clippy::std_instead_of_core,
    reason = "a host-only test: core paths matter in the crates the device links, not here"
)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;

use crate::kit::{
    ADMIN_TOKEN, LEGACY_PSK, Server, copy_tree, fota_command, http, json_body, server_command,
};

/// A server over `data` with the legacy API on, and `admin` as its admin token when given
/// (else it makes one on its first start and prints it).
fn start(data: &Path, admin: Option<&str>) -> Server {
    let mut cmd = server_command(data, None);
    cmd.env("FOTA_LEGACY_PSK", LEGACY_PSK);
    if let Some(t) = admin {
        cmd.env("FOTA_ADMIN_TOKEN", t);
    }
    Server::start(cmd)
}

fn seed_upload(version: &str, fw: &[u8]) -> Vec<u8> {
    serde_json::json!({
        "version": version,
        "size": fw.len(),
        "hash": hex::encode(fota_testkit::sha256(fw)),
        "chunk_size": 1024,
        "firmware_data": base64::engine::general_purpose::STANDARD.encode(fw),
    })
    .to_string()
    .into_bytes()
}

/// The manifest without the fields that change per request.
fn manifest(addr: SocketAddr) -> serde_json::Value {
    let (status, body) = http(addr, "GET", "/api/inverter/fota/manifest", None, b"");
    let mut v = json_body(&body);
    if status == 200 {
        assert!(v["nonce"].as_u64().unwrap() > 0);
        v.as_object_mut().unwrap().remove("nonce");
        v.as_object_mut().unwrap().remove("mac");
    }
    v
}

#[test]
fn first_line_token_once_sigterm_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = start(dir.path(), None);
    let token_line = s.next_line();
    let token = token_line.rsplit(' ').next().unwrap().to_owned();
    assert!(token.starts_with("fota_op_"), "{token_line}");
    let (status, _) = http(s.addr, "GET", "/api/v2/tokens", Some(&token), b"");
    assert_eq!(status, 200);
    let fw = vec![7u8; 3000];
    let (status, body) = http(
        s.addr,
        "POST",
        "/api/cloud/fota/upload",
        Some(&token),
        &seed_upload("1.0", &fw),
    );
    assert_eq!(
        (status, json_body(&body)["total_chunks"].as_u64()),
        (200, Some(3))
    );
    let before = manifest(s.addr);
    assert!(s.term().success(), "graceful exit on SIGTERM");

    // restart: same answers, no new token printed, the old one still works
    let s = start(dir.path(), None);
    assert_eq!(manifest(s.addr), before);
    assert_eq!(
        http(s.addr, "GET", "/api/v2/tokens", Some(&token), b"").0,
        200
    );
    assert!(s.term().success());
}

#[test]
fn two_processes_over_one_data_folder() {
    let dir = tempfile::tempdir().unwrap();
    let a = start(dir.path(), Some(ADMIN_TOKEN));
    let b = start(dir.path(), Some(ADMIN_TOKEN));
    let fw: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
    assert_eq!(
        http(
            a.addr,
            "POST",
            "/api/cloud/fota/upload",
            Some(ADMIN_TOKEN),
            &seed_upload("2.0", &fw)
        )
        .0,
        200
    );
    assert_eq!(manifest(a.addr), manifest(b.addr));
    for n in 0..5 {
        let path = format!("/api/inverter/fota/chunk?chunk_number={n}");
        assert_eq!(
            http(a.addr, "GET", &path, None, b""),
            http(b.addr, "GET", &path, None, b"")
        );
    }
    // a rollback ordered through B is seen and closed through A, and B sees it closed
    let order = serde_json::json!({"device_id": "EcoWatt001", "reason": "r"}).to_string();
    assert_eq!(
        http(
            b.addr,
            "POST",
            "/api/cloud/fota/rollback",
            Some(ADMIN_TOKEN),
            order.as_bytes()
        )
        .0,
        200
    );
    let (_, rs) = http(
        a.addr,
        "GET",
        "/api/inverter/fota/rollback-status?device_id=EcoWatt001",
        None,
        b"",
    );
    assert_eq!(json_body(&rs)["rollback_required"], true);
    let status =
        serde_json::json!({"device_id": "EcoWatt001", "status": "rolled_back"}).to_string();
    http(
        a.addr,
        "POST",
        "/api/inverter/fota/status",
        None,
        status.as_bytes(),
    );
    let (_, rs) = http(
        b.addr,
        "GET",
        "/api/inverter/fota/rollback-status?device_id=EcoWatt001",
        None,
        b"",
    );
    assert_eq!(json_body(&rs)["rollback_required"], false);
    // the legacy nonce is one counter for both
    let nonce = |addr| {
        json_body(&http(addr, "GET", "/api/inverter/fota/manifest", None, b"").1)["nonce"]
            .as_u64()
            .unwrap()
    };
    let (x, y, z) = (nonce(a.addr), nonce(b.addr), nonce(a.addr));
    assert!(x < y && y < z, "{x} {y} {z}");
    a.term();
    b.term();
}

#[test]
fn kill_9_mid_upload_leaves_no_partial_release() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), Some(ADMIN_TOKEN));
    let first: Vec<u8> = vec![1u8; 4000];
    assert_eq!(
        http(
            s.addr,
            "POST",
            "/api/cloud/fota/upload",
            Some(ADMIN_TOKEN),
            &seed_upload("1.0", &first)
        )
        .0,
        200
    );
    let before = manifest(s.addr);
    // half of a second upload, then the process dies
    let body = seed_upload("2.0", &vec![2u8; 200_000]);
    let mut c = TcpStream::connect(s.addr).unwrap();
    write!(
        c,
        "POST /api/cloud/fota/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    c.write_all(&body[..body.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    s.kill9();
    drop(c);
    let s = start(dir.path(), Some(ADMIN_TOKEN));
    assert_eq!(
        manifest(s.addr),
        before,
        "the interrupted upload is not visible"
    );
    // and the server works normally afterwards
    assert_eq!(
        http(
            s.addr,
            "POST",
            "/api/cloud/fota/upload",
            Some(ADMIN_TOKEN),
            &seed_upload("3.0", &[3u8; 100])
        )
        .0,
        200
    );
    assert_eq!(manifest(s.addr)["version"], "3.0");
    s.kill9();
    // killed again right after an accepted upload: the upload survives
    let s = start(dir.path(), Some(ADMIN_TOKEN));
    assert_eq!(manifest(s.addr)["version"], "3.0");
    assert!(s.term().success());
}

#[test]
fn online_backup_and_restore() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = start(&data, Some(ADMIN_TOKEN));
    let fw: Vec<u8> = (0..9000u32).map(|i| (i % 97) as u8).collect();
    assert_eq!(
        http(
            s.addr,
            "POST",
            "/api/cloud/fota/upload",
            Some(ADMIN_TOKEN),
            &seed_upload("5.0", &fw)
        )
        .0,
        200
    );
    let before = manifest(s.addr);
    let out = dir.path().join("backup.db");
    let status = fota_command(&["server", "backup", "--data"])
        .arg(&data)
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "backup while the server runs");
    // never overwrites
    let again = fota_command(&["server", "backup", "--data"])
        .arg(&data)
        .arg("-o")
        .arg(&out)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!again.success());
    // a change after the backup is not in it
    assert_eq!(
        http(
            s.addr,
            "POST",
            "/api/cloud/fota/upload",
            Some(ADMIN_TOKEN),
            &seed_upload("6.0", &[6u8; 10])
        )
        .0,
        200
    );
    s.term();

    // restore: the backup as fota.db next to a copy of the blobs
    let restored = dir.path().join("restored");
    std::fs::create_dir_all(&restored).unwrap();
    std::fs::copy(&out, restored.join("fota.db")).unwrap();
    copy_tree(&data.join("blobs"), &restored.join("blobs"));
    let s = start(&restored, Some(ADMIN_TOKEN));
    assert_eq!(manifest(s.addr), before);
    let (status, body) = http(
        s.addr,
        "GET",
        "/api/inverter/fota/chunk?chunk_number=8",
        None,
        b"",
    );
    assert_eq!(status, 200);
    let data_b64 = json_body(&body)["data"].as_str().unwrap().to_owned();
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(data_b64)
            .unwrap(),
        &fw[8192..]
    );
    s.term();
}

#[test]
fn clients_that_hang_up_mid_answer_do_not_kill_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), Some(ADMIN_TOKEN));
    let fw = vec![5u8; 2 * 1024 * 1024];
    let mut upload = serde_json::from_slice::<serde_json::Value>(&seed_upload("1.0", &fw)).unwrap();
    upload["chunk_size"] = serde_json::json!(2 * 1024 * 1024);
    let (status, _) = http(
        s.addr,
        "POST",
        "/api/cloud/fota/upload",
        Some(ADMIN_TOKEN),
        upload.to_string().as_bytes(),
    );
    assert_eq!(status, 200);
    // ask for a ~2.7 MB answer and close without reading it: the server's writes hit a closed
    // socket (EPIPE / SIGPIPE)
    for _ in 0..30 {
        let mut c = TcpStream::connect(s.addr).unwrap();
        c.write_all(b"GET /api/inverter/fota/chunk?chunk_number=0 HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut first = [0u8; 16];
        let _ = c.read(&mut first);
        drop(c);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        http(s.addr, "GET", "/healthz", None, b"").0,
        200,
        "the server survived"
    );
    assert!(s.term().success());
}

/// `fota server` opens an encrypted status key with `FOTA_KEY_PASSPHRASE`: the CLI reads the
/// variable and hands it to the library, which never reads the environment itself.
#[test]
fn an_encrypted_status_key_is_opened_with_the_passphrase_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("K");
    let out = fota_command(&["keys", "init", "--dir"])
        .arg(&keys)
        .env("FOTA_KEY_PASSPHRASE", "correct horse")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = |passphrase: Option<&str>| {
        let mut cmd = server_command(&dir.path().join("data"), Some(&keys));
        cmd.env("FOTA_ADMIN_TOKEN", ADMIN_TOKEN);
        if let Some(p) = passphrase {
            cmd.env("FOTA_KEY_PASSPHRASE", p);
        }
        cmd
    };

    let refused = server(None).output().unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("is encrypted: set FOTA_KEY_PASSPHRASE"),
        "{err}"
    );

    let s = Server::start(server(Some("correct horse")));
    let (status, body) = http(s.addr, "GET", "/api/v2/server", Some(ADMIN_TOKEN), b"");
    assert_eq!(status, 200);
    assert_eq!(json_body(&body)["v2"], true, "the status key was loaded");
    assert!(s.term().success());
}

#[test]
fn a_short_admin_token_from_the_environment_is_refused_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = server_command(&dir.path().join("data"), None);
    cmd.env("FOTA_ADMIN_TOKEN", "change-me");
    let out = cmd.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        crate::kit::text(&out.stderr)
    );
    let err = crate::kit::text(&out.stderr);
    assert!(
        err.contains("FOTA_ADMIN_TOKEN is 9 bytes") && err.contains("at least 32"),
        "{err}"
    );
    assert!(!crate::kit::text(&out.stdout).contains("listening"));
}
