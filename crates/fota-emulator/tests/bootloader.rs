//! The emulated bootloader against ESP-IDF's rules and research/device.md §1b's power-loss
//! table.

use embedded_storage::nor_flash::NorFlash;
use fota_emulator::bootloader::{self, BootloaderConfig, Efuse};
use fota_emulator::flash_file::{self, FlashSpec, Layout};
use fota_flash_sim::{Cut, FaultPlan, SimFlash, Tear};
use fota_protocol::esp::build::{AppImageSpec, build_app_image};
use fota_protocol::esp::otadata::{BootIndex, OtaSelectEntry, OtaState};

fn image(version: &str, secure_version: u32) -> Vec<u8> {
    let mut spec = AppImageSpec::new(version);
    spec.size = 0x2000;
    spec.secure_version = secure_version;
    build_app_image(&spec).unwrap()
}

const OTA1: u32 = 0x15_0000;
const OTADATA: u32 = 0xE000;

/// A device on 1.0.0 in ota_0 with 1.0.1 staged in ota_1 and otadata sector 1 = {seq 2, state}.
fn staged(state: OtaState) -> SimFlash {
    let old = image("1.0.0", 0);
    let mut flash = flash_file::new_in_memory(&FlashSpec::new(Layout::Ecowatt, &old)).unwrap();
    flash.preload(OTA1, &image("1.0.1", 0)).unwrap();
    flash
        .preload(OTADATA + 0x1000, &OtaSelectEntry::new(2, state).encode())
        .unwrap();
    flash
}

fn boot(flash: &mut SimFlash) -> bootloader::Boot {
    bootloader::boot(flash, BootloaderConfig::default(), &mut Efuse::default()).unwrap()
}

#[test]
fn fresh_flash_boots_ota_0_without_writing() {
    let mut flash = staged(OtaState::Invalid);
    flash.arm(FaultPlan::none());
    let b = boot(&mut flash);
    assert_eq!(b.running, BootIndex::Ota(0));
    assert_eq!(b.app_desc.version(), Some("1.0.0"));
    assert_eq!(b.otadata_ops, 0);
    assert_eq!(flash.ops(), 0);
    assert_eq!(b.running_state(), Some(OtaState::Valid));
}

#[test]
fn new_becomes_pending_verify_then_aborted() {
    let mut flash = staged(OtaState::New);
    let first = boot(&mut flash);
    assert_eq!(first.running, BootIndex::Ota(1));
    assert_eq!(first.otadata[1].state, OtaState::PendingVerify);
    assert_eq!(first.otadata_ops, 2, "erase + program");
    // Not confirmed: the next reset aborts the trial and boots the old slot.
    let second = boot(&mut flash);
    assert_eq!(second.running, BootIndex::Ota(0));
    assert_eq!(second.otadata[1].state, OtaState::Aborted);
    assert_eq!(second.app_desc.version(), Some("1.0.0"));
}

#[test]
fn a_broken_image_falls_back_without_rewriting_otadata() {
    let mut flash = staged(OtaState::Valid);
    // Flip a byte inside ota_1's image: checksum and hash fail.
    let mut bad = image("1.0.1", 0);
    bad[0x200] ^= 0x40;
    flash.erase(OTA1, OTA1 + 0x3000).unwrap();
    flash.preload(OTA1, &bad).unwrap();
    flash.arm(FaultPlan::none());
    let b = boot(&mut flash);
    assert_eq!(b.running, BootIndex::Ota(0));
    assert!(b.fell_back);
    assert_eq!(flash.ops(), 0);
    assert_eq!(
        b.otadata[1].state,
        OtaState::Valid,
        "otadata still points at ota_1"
    );
}

#[test]
fn cut_inside_the_new_to_pending_rewrite_is_a_silent_rollback() {
    // Op 1 is the erase of sector 1, op 2 the program of the PENDING_VERIFY entry.
    // A torn erase may leave the entry readable or not: either slot may boot, verified.
    for (plan, expect) in [
        (FaultPlan::none().cut_before(1), Some(BootIndex::Ota(1))),
        (FaultPlan::none().cut_after(1), Some(BootIndex::Ota(0))),
        (FaultPlan::none().cut_before(2), Some(BootIndex::Ota(0))),
        (FaultPlan::new(3).tear(1, Tear::Random), None),
        (FaultPlan::new(4).tear(2, Tear::AllButLast), None),
    ] {
        let mut flash = staged(OtaState::New);
        flash.arm(plan.clone());
        let err = bootloader::boot(
            &mut flash,
            BootloaderConfig::default(),
            &mut Efuse::default(),
        )
        .unwrap_err();
        assert!(err.is_power_loss(), "{plan:?}: {err}");
        flash.power_on();
        flash.arm(FaultPlan::none());
        let b = boot(&mut flash);
        if let Some(expect) = expect {
            assert_eq!(b.running, expect, "{plan:?}");
        }
        assert!(b.image_len > 0);
    }
}

#[test]
fn cut_after_the_whole_rewrite_boots_the_trial() {
    let mut flash = staged(OtaState::New);
    flash.arm(FaultPlan::none().cut(2, Cut::After));
    assert!(
        bootloader::boot(
            &mut flash,
            BootloaderConfig::default(),
            &mut Efuse::default()
        )
        .unwrap_err()
        .is_power_loss()
    );
    flash.power_on();
    // The entry is PENDING_VERIFY now: the reboot aborts it.
    let b = boot(&mut flash);
    assert_eq!(b.running, BootIndex::Ota(0));
    assert_eq!(b.otadata[1].state, OtaState::Aborted);
}

#[test]
fn anti_rollback_skips_images_older_than_the_efuse() {
    let old = image("1.0.0", 1);
    let mut flash = flash_file::new_in_memory(&FlashSpec::new(Layout::Ecowatt, &old)).unwrap();
    flash.preload(OTA1, &image("2.0.0", 3)).unwrap();
    flash
        .preload(
            OTADATA + 0x1000,
            &OtaSelectEntry::new(2, OtaState::Valid).encode(),
        )
        .unwrap();
    let cfg = BootloaderConfig {
        anti_rollback: true,
        ..BootloaderConfig::default()
    };
    let mut efuse = Efuse::default();
    let b = bootloader::boot(&mut flash, cfg, &mut efuse).unwrap();
    assert_eq!(b.running, BootIndex::Ota(1));
    assert_eq!(efuse.secure_version(), 3, "a VALID boot burns the eFuse");
    // Make ota_1 unbootable: ota_0 (secure version 1 < 3) must not boot either.
    flash.erase(OTA1, OTA1 + 0x1000).unwrap();
    let err = bootloader::boot(&mut flash, cfg, &mut efuse).unwrap_err();
    assert!(
        matches!(err, bootloader::BootError::NoBootableImage { .. }),
        "{err}"
    );
    efuse.raise_to(1);
    assert_eq!(efuse.secure_version(), 3, "never lowered");
}

#[test]
fn two_ota_layout_boots_ota_0_from_the_valid_entry() {
    let img = image("1.0.0", 0);
    let mut flash = flash_file::new_in_memory(&FlashSpec::new(Layout::TwoOta, &img)).unwrap();
    let b = boot(&mut flash);
    assert_eq!(b.running, BootIndex::Ota(0));
    assert_eq!(b.partition.offset, 0x11_0000);
}

#[test]
fn a_flash_file_is_never_made_from_an_image_the_bootloader_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.bin");
    let mut broken = image("1.0.0", 0);
    broken[0] = 0xE8; // not the app image magic
    let mut truncated = image("1.0.0", 0);
    truncated.truncate(truncated.len() / 2);
    for bad in [broken, truncated, vec![0xFF; 4096]] {
        let made = flash_file::open_or_create(&path, Some(&FlashSpec::new(Layout::Ecowatt, &bad)));
        assert!(
            matches!(made, Err(flash_file::FlashFileError::InvalidImage(_))),
            "{made:?}"
        );
        assert!(!path.exists(), "no file was created");
    }
    let (_, created) = flash_file::open_or_create(
        &path,
        Some(&FlashSpec::new(Layout::Ecowatt, &image("1.0.0", 0))),
    )
    .unwrap();
    assert!(created && path.exists());
}
