//! Torn and failing operations, stuck bits, the 0x00-erased variant, file backing, construction
//! and logs.

use embedded_storage::nor_flash::NorFlash;

use crate::{
    ByteState, Config, Cut, EraseValue, Error, FailEffect, FaultPlan, OpFilter, OpKind, OpenError,
    Outcome, SimFlash, SimFlashBase, StuckAt, Tear, WriteCheck,
};

use super::{CAP, between, pattern, read, small};

// ---- torn operations --------------------------------------------------------------------------

#[test]
fn torn_program_prefix_is_exact() {
    let mut flash = small();
    flash.arm(FaultPlan::new(9).tear(1, Tear::Prefix(10)));
    let data = pattern(256, 5);
    assert!(flash.write(0x300, &data).unwrap_err().is_power_loss());
    let cells = &flash.contents()[0x300..0x400];
    assert_eq!(&cells[..10], &data[..10]);
    assert!(between(0xFF, data[10], cells[10]));
    assert!(cells[11..].iter().all(|&b| b == 0xFF));
    assert_eq!(flash.fired()[0].outcome, Outcome::Torn);
    // Bytes outside the unit are untouched.
    assert!(flash.contents()[..0x300].iter().all(|&b| b == 0xFF));
    assert!(flash.contents()[0x400..].iter().all(|&b| b == 0xFF));
    assert!((0x300..0x400).all(|a| flash.byte_state(a) == Some(ByteState::Torn)));
}

#[test]
fn torn_program_can_be_replayed_once() {
    let mut flash = small();
    flash.arm(FaultPlan::new(9).tear(2, Tear::AllButLast));
    let data = pattern(512, 7);
    assert!(flash.write(0, &data).unwrap_err().is_power_loss());
    let cells = &flash.contents()[256..512];
    assert_eq!(&cells[..255], &data[256..511]);
    assert!(between(0xFF, data[511], cells[255]));
    flash.power_on();
    // The agent replays the torn page (not the completed first page).
    flash.write(256, &data[256..]).unwrap();
    assert_eq!(read(&mut flash, 0, 512), data);
    assert_eq!(flash.byte_state(300), Some(ByteState::Programmed));
    // The exception is spent: a third program of the same bytes is a misuse again.
    let err = flash.write(256, &data[256..260]).unwrap_err();
    assert!(
        matches!(err, Error::ProgramNotErased { addr: 256 }),
        "{err:?}"
    );
    // Replaying the page that completed before the tear is a misuse too.
    let err = flash.write(0, &data[..256]).unwrap_err();
    assert!(
        matches!(err, Error::ProgramNotErased { addr: 0 }),
        "{err:?}"
    );
}

#[test]
fn torn_program_random_is_reproducible_from_the_seed() {
    let run = |seed| {
        let mut flash = small();
        flash.arm(FaultPlan::new(seed).tear(1, Tear::Random));
        let _ = flash.write(0, &[0u8; 256]);
        flash.contents()[..256].to_vec()
    };
    assert_eq!(run(42), run(42));
    let shapes: std::collections::HashSet<_> = (0..20).map(run).collect();
    assert!(shapes.len() > 1, "different seeds tear at different points");
    // Whatever the seed: a prefix of zeros, one byte anywhere between, then 0xFF.
    for seed in 0..50 {
        let cells = run(seed);
        let shaped = (0..256).any(|d| {
            cells[..d].iter().all(|&b| b == 0) && cells[d + 1..].iter().all(|&b| b == 0xFF)
        });
        assert!(shaped, "seed {seed}: {cells:02x?}");
    }
}

#[test]
fn torn_program_scatter_half_programs_every_byte() {
    let mut flash = small();
    flash.arm(FaultPlan::new(3).tear(1, Tear::Scatter));
    let data = pattern(64, 9);
    assert!(flash.write(0, &data).unwrap_err().is_power_loss());
    for (i, &v) in flash.contents()[..64].iter().enumerate() {
        assert!(between(0xFF, data[i], v), "byte {i}");
    }
}

#[test]
fn torn_erase_prefix_is_exact_and_half_erased_bytes_need_an_erase() {
    let mut flash = small();
    let old = pattern(4096, 11);
    flash.preload(0x2000, &old).unwrap();
    flash.arm(FaultPlan::new(5).tear(1, Tear::Prefix(1000)));
    assert!(flash.erase(0x2000, 0x3000).unwrap_err().is_power_loss());
    let cells = flash.contents()[0x2000..0x3000].to_vec();
    assert!(cells[..1000].iter().all(|&b| b == 0xFF));
    assert_eq!(
        cells[1000] & old[1000],
        old[1000],
        "an erase only sets bits"
    );
    assert_eq!(&cells[1001..], &old[1001..]);
    assert_eq!(flash.byte_state(0x2000 + 999), Some(ByteState::Erased));
    assert_eq!(flash.byte_state(0x2000 + 1000), Some(ByteState::Programmed));
    assert_eq!(
        flash.stats().sector_erases[2],
        1,
        "a torn erase still wears the sector"
    );
    flash.power_on();
    // The erased prefix takes a program; the rest must be erased first.
    flash.write(0x2000, &[0; 4]).unwrap();
    let err = flash.write(0x2000 + 1000, &[0; 4]).unwrap_err();
    assert!(
        matches!(err, Error::ProgramNotErased { addr: 0x23E8 }),
        "{err:?}"
    );
}

#[test]
fn torn_erase_scatter_moves_every_byte_toward_erased_only() {
    let mut flash = small();
    let old = pattern(4096, 13);
    flash.preload(0, &old).unwrap();
    flash.arm(FaultPlan::new(77).tear(1, Tear::Scatter));
    assert!(flash.erase(0, 4096).unwrap_err().is_power_loss());
    let cells = &flash.contents()[..4096];
    let mut changed = 0;
    for (i, (&o, &v)) in old.iter().zip(cells).enumerate() {
        assert_eq!(v & o, o, "byte {i} lost a 1 bit");
        changed += usize::from(v != o);
    }
    assert!(
        changed > 1000,
        "scatter touches most bytes, touched {changed}"
    );
    assert_eq!(flash.byte_state(0), Some(ByteState::Programmed));
}

#[test]
fn multi_sector_erase_torn_in_the_middle() {
    let mut flash = small();
    flash.preload(0, &[0u8; 3 * 4096]).unwrap();
    flash.arm(FaultPlan::new(1).tear(2, Tear::Prefix(0)));
    assert!(flash.erase(0, 3 * 4096).unwrap_err().is_power_loss());
    let c = flash.contents();
    assert!(c[..4096].iter().all(|&b| b == 0xFF));
    assert!(c[4097..3 * 4096].iter().all(|&b| b == 0x00));
}

// ---- failing operations -----------------------------------------------------------------------

#[test]
fn failed_op_unchanged_keeps_power_and_data() {
    let mut flash = small();
    flash.arm(FaultPlan::new(1).fail(1, FailEffect::Unchanged));
    let err = flash.write(0x40, &[0; 8]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Injected {
                op: 1,
                kind: OpKind::Program,
                addr: 0x40,
                len: 8
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_power_loss());
    assert!(flash.is_powered());
    assert!(flash.contents().iter().all(|&b| b == 0xFF));
    assert_eq!(flash.byte_state(0x40), Some(ByteState::Erased));
    assert_eq!(flash.fired()[0].outcome, Outcome::Failed { partial: false });
    // The driver retries and succeeds.
    flash.write(0x40, &[0; 8]).unwrap();
    assert!(flash.contents()[0x40..0x48].iter().all(|&b| b == 0));
}

#[test]
fn failed_op_partial_leaves_a_replayable_torn_unit() {
    let mut flash = small();
    flash.arm(FaultPlan::new(1).fail(1, FailEffect::Partial(Tear::Prefix(2))));
    let err = flash.write(0, &[0x11, 0x22, 0x33, 0x44]).unwrap_err();
    assert!(matches!(err, Error::Injected { .. }));
    assert!(flash.is_powered());
    assert_eq!(&flash.contents()[..2], &[0x11, 0x22]);
    assert!(between(0xFF, 0x33, flash.contents()[2]));
    assert_eq!(flash.contents()[3], 0xFF);
    flash.write(0, &[0x11, 0x22, 0x33, 0x44]).unwrap();
    assert_eq!(read(&mut flash, 0, 4), [0x11, 0x22, 0x33, 0x44]);
}

#[test]
fn failed_erase_partial() {
    let mut flash = small();
    flash.preload(0, &[0u8; 4096]).unwrap();
    flash.arm(FaultPlan::new(1).fail(1, FailEffect::Partial(Tear::Prefix(100))));
    assert!(matches!(
        flash.erase(0, 4096).unwrap_err(),
        Error::Injected {
            kind: OpKind::Erase,
            ..
        }
    ));
    assert!(flash.contents()[..100].iter().all(|&b| b == 0xFF));
    assert!(flash.contents()[101..4096].iter().all(|&b| b == 0));
    flash.erase(0, 4096).unwrap();
    assert!(flash.contents()[..4096].iter().all(|&b| b == 0xFF));
}

#[test]
fn random_failures_hit_only_their_region_and_kind() {
    let mut flash = small();
    flash.arm(FaultPlan::new(1).fail_randomly(
        1.0,
        0x1000..0x2000,
        OpFilter::Program,
        FailEffect::Unchanged,
    ));
    flash.write(0, &[0; 256]).unwrap();
    flash.write(0x2000, &[0; 4]).unwrap();
    flash.erase(0x1000, 0x2000).unwrap();
    // A page program overlapping the region by one word fails.
    assert!(matches!(
        flash.write(0xFFC, &[0; 8]).unwrap_err(),
        Error::Injected { .. }
    ));
    assert!(matches!(
        flash.write(0x1800, &[0; 4]).unwrap_err(),
        Error::Injected { .. }
    ));
}

#[test]
fn random_failures_follow_the_probability_and_the_seed() {
    let run = |seed| {
        let mut flash = small();
        flash.arm(FaultPlan::new(seed).fail_randomly(
            0.5,
            0..CAP as u32,
            OpFilter::Any,
            FailEffect::Unchanged,
        ));
        (0..200u32)
            .map(|i| flash.write(i * 4, &[0; 4]).is_err())
            .collect::<Vec<_>>()
    };
    let a = run(7);
    assert_eq!(a, run(7));
    assert_ne!(a, run(8));
    let failures = a.iter().filter(|&&f| f).count();
    assert!((60..140).contains(&failures), "{failures} of 200");
    let mut never = small();
    never.arm(FaultPlan::new(1).fail_randomly(
        0.0,
        0..CAP as u32,
        OpFilter::Any,
        FailEffect::Unchanged,
    ));
    for i in 0..100u32 {
        never.write(i * 4, &[0; 4]).unwrap();
    }
}

// ---- stuck bits -------------------------------------------------------------------------------

#[test]
fn bit_stuck_erased_survives_a_program() {
    let mut flash = small();
    flash.arm(FaultPlan::new(1).stuck_bit(0x10, 0, StuckAt::Erased));
    flash.write(0x10, &[0x00; 4]).unwrap();
    assert_eq!(read(&mut flash, 0x10, 4), [0x01, 0x00, 0x00, 0x00]);
}

#[test]
fn bit_stuck_programmed_survives_an_erase() {
    let mut flash = small();
    flash.arm(FaultPlan::new(1).stuck_bit(0x11, 7, StuckAt::Programmed));
    flash.write(0x10, &[0x00; 4]).unwrap();
    flash.erase(0, 4096).unwrap();
    assert_eq!(read(&mut flash, 0x10, 4), [0xFF, 0x7F, 0xFF, 0xFF]);
    // An erased bit that is stuck against erase is unaffected until programmed.
    let mut fresh = small();
    fresh.arm(FaultPlan::new(1).stuck_bit(0, 0, StuckAt::Programmed));
    fresh.erase(0, 4096).unwrap();
    assert_eq!(fresh.contents()[0], 0xFF);
}

// ---- erased value 0x00 ------------------------------------------------------------------------

#[test]
fn zero_erased_flash_programs_by_setting_bits() {
    let config = Config::ESP32
        .with_capacity(CAP)
        .with_erase_value(EraseValue::Zeros);
    let mut flash = SimFlash::new(config).unwrap();
    assert!(flash.contents().iter().all(|&b| b == 0x00));
    flash.write(0, &[0x0F, 0x00, 0x80, 0x01]).unwrap();
    assert_eq!(read(&mut flash, 0, 4), [0x0F, 0x00, 0x80, 0x01]);
    // 0x00 is the no-op byte here.
    flash.write(0, &[0x00, 0x30, 0x00, 0x00]).unwrap();
    assert_eq!(read(&mut flash, 0, 4), [0x0F, 0x30, 0x80, 0x01]);
    assert!(matches!(
        flash.write(0, &[0xF0, 0, 0, 0]).unwrap_err(),
        Error::ProgramNotErased { addr: 0 }
    ));
    flash.set_write_check(WriteCheck::Lenient);
    flash.write(0, &[0xF0, 0, 0, 0]).unwrap();
    assert_eq!(flash.contents()[0], 0xFF, "program ORs on 0x00 flash");
    flash.erase(0, 4096).unwrap();
    assert!(flash.contents()[..4096].iter().all(|&b| b == 0x00));
}

#[test]
fn zero_erased_flash_tears_toward_the_right_values() {
    let config = Config::ESP32
        .with_capacity(CAP)
        .with_erase_value(EraseValue::Zeros);
    let mut flash = SimFlash::new(config).unwrap();
    flash.arm(
        FaultPlan::new(4)
            .tear(1, Tear::Prefix(1))
            .tear(3, Tear::Prefix(1)),
    );
    assert!(
        flash
            .write(0, &[0xAA, 0x5C, 0x33, 0x0F])
            .unwrap_err()
            .is_power_loss()
    );
    let c = flash.contents();
    assert_eq!(c[0], 0xAA);
    assert_eq!(c[1] & !0x5C, 0, "only bits the program sets may be set");
    assert_eq!(&c[2..4], &[0, 0]);
    flash.power_on();
    flash.preload(0x1000, &[0xFF; 4]).unwrap();
    flash.erase(0x1000, 0x2000).unwrap(); // op 2
    flash.preload(0x1000, &[0xFF; 4]).unwrap();
    assert!(flash.erase(0x1000, 0x2000).unwrap_err().is_power_loss()); // op 3, torn
    let c = flash.contents();
    assert_eq!(c[0x1000], 0x00);
    assert_eq!(&c[0x1002..0x1004], &[0xFF, 0xFF]);
}

// ---- file backing -----------------------------------------------------------------------------

#[test]
fn file_mode_writes_through_every_operation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flash.bin");
    let config = Config::ESP32.with_capacity(CAP);
    let mut flash = SimFlash::create(&path, config.clone()).unwrap();
    assert_eq!(flash.path(), Some(path.as_path()));
    let on_disk = || std::fs::read(&path).unwrap();
    assert_eq!(on_disk().len(), CAP);
    assert!(on_disk().iter().all(|&b| b == 0xFF));

    flash.write(0x104, &pattern(300, 2)).unwrap();
    assert_eq!(on_disk(), flash.contents(), "after a program");
    flash.erase(0, 0x1000).unwrap();
    assert_eq!(on_disk(), flash.contents(), "after an erase");
    flash.arm(
        FaultPlan::new(2)
            .tear(1, Tear::Random)
            .tear(3, Tear::Scatter),
    );
    let _ = flash.write(0, &pattern(256, 4));
    assert_eq!(on_disk(), flash.contents(), "after a torn program");
    flash.power_on();
    flash.write(0x2000, &[0; 4]).unwrap();
    flash.preload(0x3000, &[0x55; 8]).unwrap();
    let _ = flash.erase(0x2000, 0x3000);
    assert_eq!(
        on_disk(),
        flash.contents(),
        "after a torn erase and a preload"
    );

    let expected = flash.contents().to_vec();
    drop(flash);
    let mut reopened = SimFlash::open(&path, config).unwrap();
    assert_eq!(reopened.contents(), &expected[..]);
    // Tracking after reopen follows the values: programmed bytes refuse another program.
    assert_eq!(reopened.byte_state(0x3000), Some(ByteState::Programmed));
    assert_eq!(reopened.byte_state(0x4000), Some(ByteState::Erased));
    assert!(matches!(
        reopened.write(0x3000, &[0; 4]).unwrap_err(),
        Error::ProgramNotErased { addr: 0x3000 }
    ));
    reopened.write(0x4000, &[0; 4]).unwrap();
    assert_eq!(on_disk()[0x4000..0x4004], [0; 4]);
}

#[test]
fn file_mode_refuses_wrong_sizes_and_existing_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flash.bin");
    std::fs::write(&path, vec![0xFF; 4096]).unwrap();
    let config = Config::ESP32.with_capacity(CAP);
    assert!(matches!(
        SimFlash::open(&path, config.clone()).unwrap_err(),
        OpenError::SizeMismatch {
            expected: CAP,
            actual: 4096,
            ..
        }
    ));
    assert!(matches!(
        SimFlash::create(&path, config.clone()).unwrap_err(),
        OpenError::Io { .. }
    ));
    assert!(matches!(
        SimFlash::open(dir.path().join("missing.bin"), config.clone()).unwrap_err(),
        OpenError::Io { .. }
    ));
    let other = dir.path().join("new.bin");
    SimFlash::open_or_create(&other, config.clone()).unwrap();
    let flash = SimFlash::open_or_create(&other, config).unwrap();
    assert_eq!(flash.contents().len(), CAP);
}

#[test]
fn clone_of_a_file_flash_is_memory_backed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flash.bin");
    let flash = SimFlash::create(&path, Config::ESP32.with_capacity(CAP)).unwrap();
    let mut copy = flash.clone();
    assert_eq!(copy.path(), None);
    copy.write(0, &[0; 4]).unwrap();
    assert!(std::fs::read(&path).unwrap().iter().all(|&b| b == 0xFF));
    assert!(flash.contents().iter().all(|&b| b == 0xFF));
}

// ---- construction, sweeps, logs ---------------------------------------------------------------

#[test]
fn invalid_geometry_is_refused() {
    for config in [
        Config::ESP32.with_capacity(0),
        Config::ESP32.with_capacity(4096 + 1),
        Config::ESP32.with_page_size(0),
        Config::ESP32.with_page_size(6),
        Config::ESP32.with_page_size(8192),
        Config::ESP32.with_page_size(12),
    ] {
        assert!(
            matches!(
                SimFlash::new(config.clone()).unwrap_err(),
                OpenError::InvalidGeometry { .. }
            ),
            "{config:?}"
        );
    }
    assert!(matches!(
        SimFlash::from_image(Config::ESP32.with_capacity(CAP), vec![0; 10]).unwrap_err(),
        OpenError::SizeMismatch { path: None, .. }
    ));
    assert!(matches!(
        SimFlashBase::<3, 4096>::new(Config::ESP32).unwrap_err(),
        OpenError::InvalidGeometry { .. }
    ));
}

#[test]
fn other_geometries_follow_their_const_sizes() {
    type Wide = SimFlashBase<16, 2048>;
    let mut flash = Wide::new(Config::ESP32.with_capacity(16 * 2048).with_page_size(64)).unwrap();
    assert_eq!(Wide::WRITE_SIZE, 16);
    assert_eq!(Wide::ERASE_SIZE, 2048);
    assert_eq!(flash.sector_count(), 16);
    assert!(matches!(
        flash.write(4, &[0; 16]).unwrap_err(),
        Error::NotAligned { align: 16, .. }
    ));
    flash.write(48, &[0; 32]).unwrap();
    assert_eq!(flash.ops(), 2, "64-byte pages split 48..80 at 64");
    assert!(flash.erase(0, 1024).is_err());
    flash.erase(2048, 4096).unwrap();
}

#[test]
fn from_image_and_random_track_by_value() {
    let mut image = vec![0xFF; CAP];
    image[5] = 0x12;
    let flash = SimFlash::from_image(Config::ESP32.with_capacity(CAP), image).unwrap();
    assert_eq!(flash.byte_state(5), Some(ByteState::Programmed));
    assert_eq!(flash.byte_state(6), Some(ByteState::Erased));

    let a = SimFlash::random(Config::ESP32.with_capacity(CAP), 1).unwrap();
    let b = SimFlash::random(Config::ESP32.with_capacity(CAP), 1).unwrap();
    assert_eq!(a.contents(), b.contents());
    let blank = a.contents().iter().filter(|&&x| x == 0xFF).count();
    assert!(blank < CAP / 100);
}

#[test]
fn sweep_yields_one_reproducible_plan_per_op() {
    let plans: Vec<_> = FaultPlan::sweep(1..=5, Cut::Torn(Tear::Random), 3).collect();
    assert_eq!(
        plans.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    for (i, plan) in &plans {
        assert_eq!(plan.pending().collect::<Vec<_>>(), [*i]);
    }
    let again: Vec<_> = FaultPlan::sweep(1..=5, Cut::Torn(Tear::Random), 3).collect();
    assert_eq!(plans, again);
}

#[test]
fn random_cuts_are_reproducible_and_in_range() {
    let a = FaultPlan::new(11).random_cuts(5, 10..=20);
    let b = FaultPlan::new(11).random_cuts(5, 10..=20);
    assert_eq!(a, b);
    let ops: Vec<_> = a.pending().collect();
    assert!(!ops.is_empty() && ops.len() <= 5);
    assert!(ops.iter().all(|op| (10..=20).contains(op)));
    let (lo, hi) = (5, 4);
    assert_eq!(
        FaultPlan::new(1).random_cuts(3, lo..=hi).pending().count(),
        0
    );
}

#[test]
fn op_log_is_bounded_and_reads_well() {
    let mut flash = small();
    flash.set_op_log(2);
    flash.arm(FaultPlan::new(1).cut_before(3));
    flash.write(0, &[0; 4]).unwrap();
    flash.erase(0x1000, 0x2000).unwrap();
    let _ = flash.write(0xa000, &[0; 256]);
    let lines: Vec<String> = flash.op_log().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "op 2: erase 0x1000+4096 (done)",
            "op 3: program 0xa000+256 (power cut before)",
        ]
    );
    flash.set_op_log(1);
    assert_eq!(flash.op_log().len(), 1);
    flash.set_op_log(0);
    flash.write(4, &[0; 4]).unwrap_or(());
    assert_eq!(flash.op_log().len(), 0);
}

#[test]
fn stats_since_subtracts_snapshots() {
    let mut flash = small();
    flash.erase(0, 4096).unwrap();
    let before = flash.stats();
    flash.erase(0, 8192).unwrap();
    flash.write(0, &[0; 8]).unwrap();
    read(&mut flash, 0, 3);
    let diff = flash.stats().since(&before);
    assert_eq!(
        (
            diff.reads,
            diff.read_bytes,
            diff.programs,
            diff.program_bytes,
            diff.erases
        ),
        (1, 3, 1, 8, 2)
    );
    assert_eq!(&diff.sector_erases[..3], &[1, 1, 0]);
}

#[test]
fn works_through_mut_references_and_generic_code() {
    fn roundtrip<F: NorFlash>(mut flash: F) -> Vec<u8> {
        flash.erase(0, F::ERASE_SIZE as u32).ok();
        flash.write(0, &[1, 2, 3, 4]).ok();
        let mut buf = [0; 4];
        flash.read(0, &mut buf).ok();
        buf.to_vec()
    }
    let mut flash = small();
    assert_eq!(roundtrip(&mut flash), [1, 2, 3, 4]);
}

#[test]
fn error_messages_name_the_operation() {
    let mut flash = small();
    let err = flash.write(2, &[0; 4]).unwrap_err();
    assert_eq!(err.to_string(), "program 0x2+4 is not aligned to 4 bytes");
    assert_eq!(Error::PowerLoss.to_string(), "flash has lost power");
}
