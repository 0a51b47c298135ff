//! Whole-flash builder and inspection.

use fota_protocol::esp::DEFAULT_FLASH_SIZE;
use fota_protocol::esp::build::{AppImageSpec, build_app_image};
use fota_protocol::esp::flash::{FlashBuildError, FlashBuilder, inspect_flash};
use fota_protocol::esp::layouts;
use fota_protocol::esp::otadata::{BootIndex, OtaSelectEntry, OtaState};

fn image(version: &str, boot_fails: bool) -> Vec<u8> {
    build_app_image(&AppImageSpec {
        size: 0x2_0000,
        boot_fails,
        ..AppImageSpec::new(version)
    })
    .unwrap()
}

#[test]
fn blank_flash_has_table_and_erased_otadata() {
    let f = FlashBuilder::new(DEFAULT_FLASH_SIZE, &layouts::ecowatt()).unwrap();
    let bytes = f.as_bytes();
    assert_eq!(bytes.len(), 0x40_0000);
    assert_eq!(
        &bytes[0x8000..0x8C00],
        &include_bytes!("../data/ecowatt.bin")[..]
    );
    assert!(bytes[0xE000..0x1_0000].iter().all(|&b| b == 0xFF));
    let r = inspect_flash(bytes);
    assert!(r.table_ok());
    assert_eq!(
        r.table.md5.as_deref(),
        Some("972dae2ff872a0142d60bad124c0666b")
    );
    let boot = r.boot.unwrap();
    assert_eq!(boot.selected.as_deref(), Some("ota_0"));
    assert_eq!(boot.boots, None, "nothing bootable on a blank flash");
    assert!(r.apps.iter().all(|a| a.status == "empty"));
}

#[test]
fn trial_image_is_reported_with_the_rewrite_and_fallback() {
    let mut f = FlashBuilder::new(DEFAULT_FLASH_SIZE, &layouts::ecowatt()).unwrap();
    f.write_app(BootIndex::Ota(0), &image("1.0.5", false))
        .unwrap()
        .write_app(BootIndex::Ota(1), &image("1.0.6", false))
        .unwrap()
        .set_otadata(0, &OtaSelectEntry::new(1, OtaState::Valid))
        .unwrap()
        .set_otadata(1, &OtaSelectEntry::new(2, OtaState::New))
        .unwrap();
    let r = inspect_flash(f.as_bytes());
    let boot = r.boot.as_ref().unwrap();
    assert_eq!(boot.boots.as_deref(), Some("ota_1"));
    assert_eq!(boot.rewrites, vec!["otadata[1]: seq 2 -> PENDING_VERIFY"]);
    let od = r.otadata.as_ref().unwrap();
    assert_eq!(od.active, Some(1));
    assert_eq!(r.apps[1].version.as_deref(), Some("1.0.6"));
    assert_eq!(r.apps[1].ota_state.as_deref(), Some("NEW"));

    // A corrupt slot 1 falls back to slot 0 without touching otadata beyond the rewrite.
    let mut bytes = f.into_bytes();
    bytes[0x15_0000 + 0x400] ^= 0xFF;
    let r = inspect_flash(&bytes);
    let boot = r.boot.as_ref().unwrap();
    assert_eq!(boot.selected.as_deref(), Some("ota_1"));
    assert_eq!(boot.boots.as_deref(), Some("ota_0"));
    assert_eq!(r.apps[1].status, "invalid");
    assert!(r.apps[1].error.as_deref().unwrap().contains("checksum"));
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["apps"][0]["status"], "valid");
    assert_eq!(json["table"]["partitions"][2]["type"], "app");
}

#[test]
fn bad_table_is_reported() {
    let mut bytes = vec![0xFFu8; 0x1_0000];
    bytes[0x8000] = 0x12;
    let r = inspect_flash(&bytes);
    assert!(!r.table_ok());
    assert!(r.boot.is_none());
    // A table that does not fit the flash.
    assert!(matches!(
        FlashBuilder::new(0x20_0000, &layouts::ecowatt()),
        Err(FlashBuildError::Table(_))
    ));
}

#[test]
fn builder_errors() {
    let mut f = FlashBuilder::new(DEFAULT_FLASH_SIZE, &layouts::ecowatt()).unwrap();
    assert!(matches!(
        f.write_app(BootIndex::Factory, &[0]),
        Err(FlashBuildError::NoSuchPartition(_))
    ));
    assert!(matches!(
        f.write_partition("nvs", &vec![0; 0x5001]),
        Err(FlashBuildError::TooLarge { .. })
    ));
    assert!(matches!(
        f.set_otadata(2, &OtaSelectEntry::ERASED),
        Err(FlashBuildError::BadSector(2))
    ));
    f.write_partition("nvs", &[1, 2, 3]).unwrap();
    assert_eq!(&f.as_bytes()[0x9000..0x9003], &[1, 2, 3]);
}
