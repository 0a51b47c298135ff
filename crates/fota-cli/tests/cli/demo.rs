//! `fota demo` as a user runs it: the whole script (server, three devices, power cut, tampered
//! chunk, manual rollback, a release that fails its boot check) must pass every check, and the
//! work folder must hold what the demo says it made.

use serde_json::Value;

use crate::kit::{Server, copy_tree, fota_command, json, server_command};

fn demo(args: &[&str]) -> std::process::Output {
    fota_command(&["demo"]).args(args).output().unwrap()
}

#[test]
fn demo_runs_the_whole_script_and_every_check_holds() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    let out = demo(&["--fast", "--json", "--dir", work.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}\n{stderr}", out.status);
    let summary = json(&out);
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
    let inspect = fota_command(&["flash", "inspect", "--json"])
        .arg(work.join("EcoWatt003.flash.bin"))
        .output()
        .unwrap();
    assert!(inspect.status.success());
    let flash = json(&inspect);
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

/// A 4 MiB flash file from the fixture's list of (u32 LE sector index, 4096 bytes) records:
/// every other sector is erased (0xFF).
fn expand_flash(sectors: &[u8]) -> Vec<u8> {
    let mut flash = vec![0xFF; 4 * 1024 * 1024];
    for record in sectors.chunks(4 + 4096) {
        let index = u32::from_le_bytes(record[..4].try_into().unwrap()) as usize;
        flash[index * 4096..(index + 1) * 4096].copy_from_slice(&record[4..]);
    }
    flash
}

/// What a device and its server look like after `fota demo --fast --dir` made by the code
/// before the workspace restructuring (tests/data/demo-kept): the device's flash file (journal,
/// otadata and both slots as that code wrote them), its provisioning file, the keys and the
/// server's data. Today's server must serve that data, today's device must boot that flash,
/// and the pair must still update. A change to the bytes the agent reads back (journal,
/// otadata) or to the stored schema breaks this test.
#[test]
fn a_device_and_server_kept_by_an_earlier_demo_boot_and_update() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/demo-kept");
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    copy_tree(&fixture, work);
    let sectors = std::fs::read(work.join("EcoWatt001.flash.sectors")).unwrap();
    std::fs::write(work.join("EcoWatt001.flash.bin"), expand_flash(&sectors)).unwrap();

    let admin = "fota_op_golden_admin_token_for_the_kept_demo";
    let mut server = server_command(&work.join("server"), Some(&work.join("keys")));
    server.env("FOTA_ADMIN_TOKEN", admin);
    let server = Server::start(server);
    let url = &server.url;
    let run = |args: &[&str]| {
        let out = fota_command(args)
            .current_dir(work)
            .env("FOTA_SERVER", url)
            .env("FOTA_TOKEN", admin)
            .env("FOTA_KEYS", work.join("keys"))
            .env("FOTA_CONFIG", work.join("no-config.toml"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "fota {args:?}: {stderr}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    std::fs::write(work.join("no-config.toml"), "").unwrap();
    let emulate_with = |until: &str, extra: &[&str]| -> Value {
        let mut args = vec![
            "emulate",
            "--id",
            "EcoWatt001",
            "--credential",
            "EcoWatt001.json",
            "--flash",
            "EcoWatt001.flash.bin",
            "--until",
            until,
            "--report",
            "json",
        ];
        args.extend_from_slice(extra);
        serde_json::from_str(&run(&args)).unwrap()
    };
    let emulate = |until: &str| emulate_with(until, &[]);

    // The server's kept view: the device runs 1.0.6, and 1.0.7 (which it rolled back) is
    // not offered to it again.
    let device: Value =
        serde_json::from_str(&run(&["devices", "show", "EcoWatt001", "--json"])).unwrap();
    assert_eq!(device["fw_version"], "1.0.6", "{device}");
    assert_eq!(device["state"], "rolled_back", "{device}");

    // The kept flash boots with today's bootloader and agent, and the device finds nothing
    // to do.
    let idle = emulate("idle");
    assert_eq!(idle["outcome"], "done", "{idle}");
    assert!(idle.to_string().contains("1.0.6"), "{idle}");

    // A new release, signed with the kept keys, installs and is confirmed.
    run(&[
        "image",
        "build",
        "--version",
        "1.0.8",
        "--size",
        "64K",
        "-o",
        "app-1.0.8.bin",
    ]);
    run(&[
        "release",
        "create",
        "app-1.0.8.bin",
        "--version",
        "1.0.8",
        "--class",
        "ecowatt-inverter",
    ]);
    run(&["assign", "1.0.8", "--device", "EcoWatt001"]);
    let updated = emulate("updated");
    assert_eq!(updated["outcome"], "done", "{updated}");
    let device: Value =
        serde_json::from_str(&run(&["devices", "show", "EcoWatt001", "--json"])).unwrap();
    assert_eq!(device["fw_version"], "1.0.8", "{device}");
    assert_eq!(device["state"], "confirmed", "{device}");

    // What the device says about itself: its chip, and the application's attributes given
    // to the emulator. They ride along the batched last-seen write (1 s here), so the view
    // is read until they are in.
    emulate_with("idle", &["--attr", "site=A-7", "--attr", "power_w=1234"]);
    let deadline = std::time::Instant::now() + core::time::Duration::from_secs(20);
    let telemetry = loop {
        let device: Value =
            serde_json::from_str(&run(&["devices", "show", "EcoWatt001", "--json"])).unwrap();
        let t = device["telemetry"].clone();
        if t["attributes"]["site"] == "A-7" || std::time::Instant::now() > deadline {
            break t;
        }
        std::thread::sleep(core::time::Duration::from_millis(200));
    };
    assert_eq!(telemetry["attributes"]["power_w"], "1234", "{telemetry}");
    assert_eq!(telemetry["agent_format"], 2, "{telemetry}");
    assert_eq!(telemetry["chip"], "esp32", "{telemetry}");
    assert_eq!(telemetry["reset_reason"], 1, "power-on: {telemetry}");
    let shown = run(&["devices", "show", "EcoWatt001"]);
    assert!(
        shown.contains("check-in format 2, esp32") && shown.contains("power_w=1234 site=A-7"),
        "{shown}"
    );
    // An attribute the check-in could not carry is a usage error, before anything runs.
    let bad = fota_command(&[
        "emulate", "--id", "x", "--flash", "x.bin", "--attr", "a b=1",
    ])
    .current_dir(work)
    .output()
    .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("attribute keys are 1 to 32 characters"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
