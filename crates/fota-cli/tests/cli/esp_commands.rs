//! `fota image`, `fota partitions`, `fota flash` end to end through the binary.

use std::path::Path;

use fota_protocol::esp::DEFAULT_FLASH_SIZE;
use fota_protocol::esp::flash::FlashBuilder;
use fota_protocol::esp::layouts;
use fota_protocol::esp::otadata::{BootIndex, OtaSelectEntry, OtaState};

use crate::kit::{fota, json};

const ECOWATT_BIN: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fota-protocol/tests/data/ecowatt.bin"
));
const TWO_OTA_BIN: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fota-protocol/tests/data/two_ota.bin"
));

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn image_build_then_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.bin");
    let out = fota(&[
        "image",
        "build",
        "--version",
        "1.0.6",
        "--secure-version",
        "2",
        "--size",
        "200KiB",
        "--boot-fails",
        "-o",
        path(&app),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::metadata(&app).unwrap().len(), 200 * 1024);

    let out = fota(&["image", "inspect", path(&app)]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Checksum: ") && text.contains("(valid)"),
        "{text}"
    );
    assert!(text.contains("version 1.0.6"), "{text}");

    let out = fota(&["image", "inspect", path(&app), "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let j = json(&out);
    assert_eq!(j["valid"], true);
    assert_eq!(j["app_desc"]["version"], "1.0.6");
    assert_eq!(j["app_desc"]["project"], "ecowatt");
    assert_eq!(j["app_desc"]["secure_version"], 2);
    assert_eq!(j["app_desc"]["boot_fails"], true);
    assert_eq!(j["hash"]["valid"], true);
    assert_eq!(j["image_len"], 200 * 1024);

    // Too small a partition.
    let out = fota(&["image", "inspect", path(&app), "--partition-size", "64K"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("allowed length"));

    // A flipped payload byte.
    let mut bytes = std::fs::read(&app).unwrap();
    bytes[0x400] ^= 0x40;
    let bad = dir.path().join("bad.bin");
    std::fs::write(&bad, &bytes).unwrap();
    let out = fota(&["image", "inspect", path(&bad), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let j = json(&out);
    assert_eq!(j["valid"], false);
    assert_eq!(j["error"]["check"], "checksum");
    assert_eq!(j["checksum"]["valid"], false);
    assert_eq!(j["hash"]["valid"], false);
    assert!(String::from_utf8_lossy(&out.stderr).contains("checksum"));
}

#[test]
fn image_build_rejects_sizes_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.bin");
    for size in ["4095", "0x140001", "2M", "lots"] {
        let out = fota(&[
            "image",
            "build",
            "--version",
            "1",
            "--size",
            size,
            "-o",
            path(&app),
        ]);
        assert!(!out.status.success(), "{size}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--size"),
            "{size}"
        );
    }
    for size in ["4096", "0x140000", "4K", "1M"] {
        let out = fota(&[
            "image",
            "build",
            "--version",
            "1",
            "--size",
            size,
            "-o",
            path(&app),
        ]);
        assert!(out.status.success(), "{size}");
    }
    let out = fota(&[
        "image",
        "build",
        "--version",
        &"x".repeat(40),
        "-o",
        path(&app),
    ]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn partitions_build_and_show() {
    let dir = tempfile::tempdir().unwrap();
    let out_bin = dir.path().join("t.bin");
    for (name, golden) in [("ecowatt", ECOWATT_BIN), ("two_ota", TWO_OTA_BIN)] {
        let out = fota(&["partitions", "build", name, "-o", path(&out_bin)]);
        assert!(out.status.success());
        assert_eq!(std::fs::read(&out_bin).unwrap(), golden, "{name}");
    }
    let csv = dir.path().join("layout.csv");
    std::fs::write(&csv, layouts::TWO_OTA_CSV).unwrap();
    let out = fota(&["partitions", "build", path(&csv), "-o", path(&out_bin)]);
    assert!(out.status.success());
    assert_eq!(std::fs::read(&out_bin).unwrap(), TWO_OTA_BIN);

    let out = fota(&["partitions", "show", path(&out_bin), "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let j = json(&out);
    assert_eq!(j["md5"], "bf25822c0fa6d8641bd930251e06b4c4");
    assert_eq!(j["partitions"][3]["label"], "factory");
    assert_eq!(j["partitions"][3]["offset"], 0x10000);
    let out = fota(&["partitions", "show", path(&out_bin)]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("phy_init"));

    // A CSV error names the line.
    std::fs::write(&csv, "# t\nnvs, data, nvs, 0x9000, 0x1000\n").unwrap();
    let out = fota(&["partitions", "build", path(&csv), "-o", path(&out_bin)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"));

    // A corrupt table.
    let mut bad = ECOWATT_BIN.to_vec();
    bad[0x10] ^= 1;
    std::fs::write(&out_bin, &bad).unwrap();
    let out = fota(&["partitions", "show", path(&out_bin)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MD5"));
}

#[test]
fn flash_inspect_reports_boot_choice() {
    let dir = tempfile::tempdir().unwrap();
    let img = |v: &str| fota_testkit::image(v, 0x3_0000, false);
    let mut f = FlashBuilder::new(DEFAULT_FLASH_SIZE, &layouts::ecowatt()).unwrap();
    f.write_app(BootIndex::Ota(0), &img("1.0.5"))
        .unwrap()
        .write_app(BootIndex::Ota(1), &img("1.0.6"))
        .unwrap()
        .set_otadata(0, &OtaSelectEntry::new(1, OtaState::Valid))
        .unwrap()
        .set_otadata(1, &OtaSelectEntry::new(2, OtaState::PendingVerify))
        .unwrap();
    let file = dir.path().join("flash.bin");
    std::fs::write(&file, f.as_bytes()).unwrap();

    let out = fota(&["flash", "inspect", path(&file), "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let j = json(&out);
    assert_eq!(
        j["boot"]["boots"], "ota_0",
        "unconfirmed trial is rolled back"
    );
    assert_eq!(j["boot"]["rewrites"][0], "otadata[1]: seq 2 -> ABORTED");
    assert_eq!(j["apps"][1]["version"], "1.0.6");
    assert_eq!(j["otadata"]["entries"][1]["state"], "PENDING_VERIFY");

    let out = fota(&["flash", "inspect", path(&file), "--no-rollback"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("boots: ota_1"), "{text}");

    let out = fota(&["partitions", "show", path(&file)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "show reads the table of a flash dump"
    );

    let mut bytes = f.into_bytes();
    bytes[0x8000] = 0;
    std::fs::write(&file, &bytes).unwrap();
    let out = fota(&["flash", "inspect", path(&file)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("partition table"));
}
