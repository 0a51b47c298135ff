//! `fota demo` as a user runs it: the whole script (server, three devices, power cut, tampered
//! chunk, manual rollback, a release that fails its boot check) must pass every check, and the
//! work folder must hold what the demo says it made.
#![allow(clippy::std_instead_of_core, clippy::alloc_instead_of_core)]

use std::process::Command;

use serde_json::Value;

fn demo(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fota"))
        .arg("demo")
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

#[test]
fn demo_runs_the_whole_script_and_every_check_holds() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let out = demo(&["--fast", "--json", "--dir", work.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}\n{stderr}", out.status);
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["ok"], true, "{stderr}");

    let checks = summary["checks"].as_array().unwrap();
    for c in checks {
        assert_eq!(c["ok"], true, "{c}");
    }
    // Each act of the story is checked, on each device it concerns.
    let has = |step: &str, device: &str, what: &str| {
        checks.iter().any(|c| {
            c["step"] == step && c["device"] == device && c["what"].as_str().unwrap().contains(what)
        })
    };
    assert!(has("1.0.6", "EcoWatt001", "power cut in the middle"));
    assert!(has("1.0.6", "EcoWatt001", "resumed where the power failed"));
    assert!(has("1.0.6", "EcoWatt002", "refused the tampered chunk"));
    assert!(has("rollback", "EcoWatt003", "closed the order"));
    assert!(has("rollback", "EcoWatt003", "does not reinstall"));
    for d in ["EcoWatt001", "EcoWatt002", "EcoWatt003"] {
        assert!(has("1.0.7", d, "failed its health check"), "{d}");
    }

    // The server's final view: nobody runs 1.0.7, everybody reported the rollback.
    let devices = summary["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 3);
    let version = |id: &str| {
        devices.iter().find(|d| d["id"] == id).unwrap()["fw_version"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(version("EcoWatt001"), "1.0.6");
    assert_eq!(version("EcoWatt002"), "1.0.6");
    assert_eq!(version("EcoWatt003"), "1.0.5");
    for d in devices {
        assert_eq!(d["state"], "rolled_back", "{d}");
    }

    // --dir keeps the folder: keys, images, provisioning files and flash files a user can
    // inspect with `fota flash inspect`.
    assert_eq!(summary["dir"], work.to_str().unwrap());
    for f in [
        "keys/root.bin",
        "images/app-1.0.7.bin",
        "EcoWatt001.json",
        "EcoWatt001.flash.bin",
        "server/fota.db",
    ] {
        assert!(work.join(f).exists(), "{f} missing");
    }
    let inspect = Command::new(env!("CARGO_BIN_EXE_fota"))
        .args(["flash", "inspect", "--json"])
        .arg(work.join("EcoWatt003.flash.bin"))
        .output()
        .unwrap();
    assert!(inspect.status.success());
    let flash: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert!(flash.to_string().contains("1.0.5"), "{flash}");
}

#[test]
fn demo_refuses_a_folder_that_is_not_empty() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("precious.txt"), b"keep me").unwrap();
    let out = demo(&["--fast", "--dir", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    assert_eq!(
        std::fs::read(dir.path().join("precious.txt")).unwrap(),
        b"keep me"
    );
}
