//! One test per chip rule and per fault kind, each pinning the exact on-flash effect: the chip's
//! rules, alignment and power here, the injected faults and the backings in [`faults`].

mod faults;

use embedded_storage::nor_flash::{NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash};

use crate::{
    ByteState, Config, Error, FailEffect, FaultPlan, OpKind, OpRecord, Outcome, SimFlash,
    WriteCheck,
};

pub(super) const CAP: usize = 64 * 1024;

pub(super) fn small() -> SimFlash {
    SimFlash::new(Config::ESP32.with_capacity(CAP)).unwrap()
}

pub(super) fn read(flash: &mut SimFlash, offset: u32, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    flash.read(offset, &mut buf).unwrap();
    buf
}

/// A byte pattern with no 0xFF bytes, so every byte is really programmed.
pub(super) fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt) & 0x7F)
        .collect()
}

/// For 0xFF flash: `v` holds every bit `new` cleared and only bits `old` had cleared or `new`
/// clears, i.e. it lies between `old` and `new` bit by bit.
pub(super) fn between(old: u8, new: u8, v: u8) -> bool {
    (v & !old) == 0 && (new & !v) == 0
}

// ---- chip semantics ---------------------------------------------------------------------------

#[test]
fn new_flash_is_erased_and_esp32_sized() {
    let flash = SimFlash::new(Config::default()).unwrap();
    assert_eq!(flash.capacity(), 4 * 1024 * 1024);
    assert_eq!(flash.sector_count(), 1024);
    assert_eq!(SimFlash::READ_SIZE, 1);
    assert_eq!(SimFlash::WRITE_SIZE, 4);
    assert_eq!(SimFlash::ERASE_SIZE, 4096);
    assert_eq!(flash.config().page_size, 256);
    assert!(flash.contents().iter().all(|&b| b == 0xFF));
    assert_eq!(flash.byte_state(0), Some(ByteState::Erased));
    assert_eq!(flash.byte_state(4 * 1024 * 1024), None);
}

#[test]
fn erase_sets_exactly_the_sectors_to_ff() {
    let mut flash = small();
    flash.preload(0, &vec![0x00; 3 * 4096]).unwrap();
    flash.erase(4096, 8192).unwrap();
    assert!(read(&mut flash, 0, 4096).iter().all(|&b| b == 0x00));
    assert!(read(&mut flash, 4096, 4096).iter().all(|&b| b == 0xFF));
    assert!(read(&mut flash, 8192, 4096).iter().all(|&b| b == 0x00));
    assert_eq!(flash.byte_state(4096), Some(ByteState::Erased));
    assert_eq!(flash.byte_state(8191), Some(ByteState::Erased));
    assert_eq!(flash.byte_state(8192), Some(ByteState::Programmed));
}

#[test]
fn program_only_clears_bits() {
    let mut flash = small();
    flash.write(0, &[0xF0, 0x0F, 0xFF, 0x5A]).unwrap();
    assert_eq!(read(&mut flash, 0, 4), [0xF0, 0x0F, 0xFF, 0x5A]);
    // Lenient mode shows the AND: bits never come back without an erase.
    flash.set_write_check(WriteCheck::Lenient);
    flash.write(0, &[0x3C, 0xFF, 0x00, 0xA5]).unwrap();
    assert_eq!(read(&mut flash, 0, 4), [0x30, 0x0F, 0x00, 0x00]);
}

#[test]
fn strict_program_over_programmed_byte_is_refused_whole() {
    let mut flash = small();
    flash.write(0x200, &[0x12, 0x34, 0x56, 0x78]).unwrap();
    let before = flash.contents().to_vec();
    let ops = flash.ops();
    // Pages 0x100.. and 0x200..: the first page is fine, the second hits 0x201.
    let mut data = vec![0xFF; 0x108];
    data[0x101] = 0x00;
    data[0] = 0x00;
    let err = flash.write(0x100, &data).unwrap_err();
    assert!(
        matches!(err, Error::ProgramNotErased { addr: 0x201 }),
        "{err:?}"
    );
    assert_eq!(err.kind(), NorFlashErrorKind::Other);
    assert_eq!(
        flash.contents(),
        &before[..],
        "nothing of the call may land"
    );
    assert_eq!(flash.ops(), ops, "a refused call issues no operation");
}

#[test]
fn programming_erased_value_over_programmed_byte_is_a_noop() {
    let mut flash = small();
    flash.write(0, &[0x00, 0x11, 0xFF, 0xFF]).unwrap();
    flash.write(0, &[0xFF, 0xFF, 0x22, 0xFF]).unwrap();
    assert_eq!(read(&mut flash, 0, 4), [0x00, 0x11, 0x22, 0xFF]);
    assert_eq!(flash.byte_state(3), Some(ByteState::Erased));
}

#[test]
fn erase_makes_bytes_programmable_again() {
    let mut flash = small();
    flash.write(0, &[0; 4]).unwrap();
    flash.erase(0, 4096).unwrap();
    flash.write(0, &[1, 2, 3, 4]).unwrap();
    assert_eq!(read(&mut flash, 0, 4), [1, 2, 3, 4]);
}

#[test]
fn lenient_mode_allows_double_programs() {
    let mut flash = SimFlash::new(
        Config::ESP32
            .with_capacity(CAP)
            .with_write_check(WriteCheck::Lenient),
    )
    .unwrap();
    flash.write(0, &[0x0F; 4]).unwrap();
    flash.write(0, &[0xF3; 4]).unwrap();
    assert_eq!(read(&mut flash, 0, 4), [0x03; 4]);
}

#[test]
fn write_is_split_at_page_boundaries_one_op_per_page() {
    let mut flash = small();
    flash.set_op_log(16);
    let before = flash.stats();
    flash.write(0x80, &pattern(600, 1)).unwrap();
    let pieces: Vec<_> = flash.op_log().map(|r| (r.kind, r.addr, r.len)).collect();
    assert_eq!(
        pieces,
        [
            (OpKind::Program, 0x80, 128),
            (OpKind::Program, 0x100, 256),
            (OpKind::Program, 0x200, 216),
        ]
    );
    assert_eq!(flash.ops(), 3);
    let diff = flash.stats().since(&before);
    assert_eq!((diff.programs, diff.program_bytes), (3, 600));
    assert_eq!(read(&mut flash, 0x80, 600), pattern(600, 1));
}

#[test]
fn erase_is_one_op_per_sector_and_counts_wear() {
    let mut flash = small();
    flash.erase(0x1000, 0x4000).unwrap();
    flash.erase(0x2000, 0x3000).unwrap();
    assert_eq!(flash.ops(), 4);
    let stats = flash.stats();
    assert_eq!(stats.erases, 4);
    assert_eq!(&stats.sector_erases[..5], &[0, 1, 2, 1, 0]);
    assert_eq!(stats.most_worn_sector(), Some((2, 2)));
    assert_eq!(stats.ops(), 4);
}

#[test]
fn reads_are_counted_but_never_numbered() {
    let mut flash = small();
    read(&mut flash, 0, 10);
    read(&mut flash, 100, 5);
    let stats = flash.stats();
    assert_eq!((stats.reads, stats.read_bytes), (2, 15));
    assert_eq!(flash.ops(), 0);
}

#[test]
fn empty_calls_succeed_without_operations() {
    let mut flash = small();
    flash.write(0x100, &[]).unwrap();
    flash.erase(0x1000, 0x1000).unwrap();
    flash.read(CAP as u32, &mut []).unwrap();
    assert_eq!(flash.ops(), 0);
}

// ---- alignment and bounds ---------------------------------------------------------------------

#[test]
fn misaligned_writes_are_errors() {
    let mut flash = small();
    for (offset, len) in [(2, 4), (0, 3), (1, 1), (4, 6)] {
        let err = flash.write(offset, &vec![0; len]).unwrap_err();
        assert!(
            matches!(
                err,
                Error::NotAligned {
                    op: OpKind::Program,
                    align: 4,
                    ..
                }
            ),
            "{offset}+{len}: {err:?}"
        );
        assert_eq!(err.kind(), NorFlashErrorKind::NotAligned);
    }
    assert!(flash.contents().iter().all(|&b| b == 0xFF));
    assert_eq!(flash.ops(), 0);
}

#[test]
fn misaligned_erases_are_errors() {
    let mut flash = small();
    for (from, to) in [(0, 100), (0x800, 0x1000), (0x1000, 0x1800)] {
        let err = flash.erase(from, to).unwrap_err();
        assert!(
            matches!(
                err,
                Error::NotAligned {
                    op: OpKind::Erase,
                    align: 4096,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.kind(), NorFlashErrorKind::NotAligned);
    }
}

#[test]
fn out_of_bounds_is_an_error_never_a_panic() {
    let mut flash = small();
    let cap = CAP as u32;
    let checks: Vec<Error> = vec![
        flash.write(cap, &[0; 4]).unwrap_err(),
        flash.write(cap - 4, &[0; 8]).unwrap_err(),
        flash.write(u32::MAX - 3, &[0; 4]).unwrap_err(),
        flash.read(cap - 1, &mut [0; 2]).unwrap_err(),
        flash.read(u32::MAX, &mut [0; 1]).unwrap_err(),
        flash.erase(cap - 4096, cap + 4096).unwrap_err(),
        flash.erase(0x2000, 0x1000).unwrap_err(),
        flash.preload(cap - 1, &[0; 2]).unwrap_err(),
    ];
    for err in checks {
        assert!(matches!(err, Error::OutOfBounds { .. }), "{err:?}");
        assert_eq!(err.kind(), NorFlashErrorKind::OutOfBounds);
    }
    // The last sector and byte are in bounds.
    flash.erase(cap - 4096, cap).unwrap();
    flash.write(cap - 4, &[0; 4]).unwrap();
    read(&mut flash, cap - 1, 1);
}

// ---- power ------------------------------------------------------------------------------------

#[test]
fn cut_before_leaves_the_op_undone_and_power_off_until_power_on() {
    let mut flash = small();
    flash.arm(FaultPlan::new(1).cut_before(2));
    let data = pattern(512, 3);
    let err = flash.write(0, &data).unwrap_err();
    assert!(err.is_power_loss());
    assert_eq!(err.kind(), NorFlashErrorKind::Other);
    assert!(!flash.is_powered());
    // Op 1 (first page) landed; op 2 (second page) did not.
    assert_eq!(&flash.contents()[..256], &data[..256]);
    assert!(flash.contents()[256..512].iter().all(|&b| b == 0xFF));
    assert_eq!(flash.byte_state(256), Some(ByteState::Erased));
    // Unpowered: everything fails, reads included, and nothing is numbered.
    assert!(flash.read(0, &mut [0; 4]).unwrap_err().is_power_loss());
    assert!(flash.write(0x1000, &[0; 4]).unwrap_err().is_power_loss());
    assert!(flash.erase(0x1000, 0x2000).unwrap_err().is_power_loss());
    assert_eq!(flash.ops(), 2);
    assert_eq!(
        flash.stats().programs,
        1,
        "a cut-before op never reached the cells"
    );
    let fired: Vec<_> = flash.fired().to_vec();
    assert_eq!(
        fired,
        [OpRecord {
            index: 2,
            kind: OpKind::Program,
            addr: 256,
            len: 256,
            outcome: Outcome::CutBefore
        }]
    );
    flash.power_on();
    assert!(flash.is_powered());
    assert_eq!(read(&mut flash, 0, 256), &data[..256]);
    flash.write(256, &data[256..]).unwrap();
    assert_eq!(read(&mut flash, 0, 512), data);
}

#[test]
fn cut_after_completes_the_op_then_reports_power_loss() {
    let mut flash = small();
    flash.preload(0, &[0u8; 3 * 4096]).unwrap();
    flash.arm(FaultPlan::new(1).cut_after(2));
    let err = flash.erase(0, 3 * 4096).unwrap_err();
    assert!(err.is_power_loss());
    assert!(flash.contents()[..2 * 4096].iter().all(|&b| b == 0xFF));
    assert!(
        flash.contents()[2 * 4096..3 * 4096]
            .iter()
            .all(|&b| b == 0x00)
    );
    assert_eq!(flash.fired()[0].outcome, Outcome::CutAfter);
    assert_eq!(flash.stats().erases, 2);
}

#[test]
fn power_off_by_the_harness_blocks_everything() {
    let mut flash = small();
    flash.power_off();
    assert!(flash.read(0, &mut [0; 1]).unwrap_err().is_power_loss());
    // A programmer tool still works on a dead board.
    flash.preload(0, &[1, 2]).unwrap();
    flash.power_on();
    assert_eq!(read(&mut flash, 0, 2), [1, 2]);
}

#[test]
fn op_numbering_goes_on_across_power_cycles() {
    let mut flash = small();
    flash.arm(FaultPlan::new(1).cut_before(2).cut_before(4));
    flash.write(0, &[0; 4]).unwrap();
    assert!(flash.write(4, &[0; 4]).unwrap_err().is_power_loss());
    flash.power_on();
    flash.write(4, &[0; 4]).unwrap(); // op 3
    assert!(flash.write(8, &[0; 4]).unwrap_err().is_power_loss()); // op 4
    let fired: Vec<u64> = flash.fired().iter().map(|r| r.index).collect();
    assert_eq!(fired, [2, 4]);
    assert_eq!(flash.plan().unwrap().pending().count(), 0);
}

#[test]
fn arming_restarts_numbering_and_disarm_keeps_counting() {
    let mut flash = small();
    flash.write(0, &[0; 4]).unwrap();
    assert_eq!(flash.ops(), 1);
    flash.arm(FaultPlan::none());
    assert_eq!(flash.ops(), 0);
    flash.write(4, &[0; 4]).unwrap();
    assert_eq!(flash.ops(), 1);
    let plan = flash.disarm().unwrap();
    assert_eq!(plan.pending().count(), 0);
    flash.write(8, &[0; 4]).unwrap();
    assert_eq!(flash.ops(), 2);
}

#[test]
fn a_later_event_on_the_same_op_replaces_the_earlier() {
    let mut flash = small();
    flash.arm(
        FaultPlan::new(1)
            .cut_before(1)
            .fail(1, FailEffect::Unchanged),
    );
    let err = flash.write(0, &[0; 4]).unwrap_err();
    assert!(matches!(err, Error::Injected { op: 1, .. }), "{err:?}");
    assert!(flash.is_powered());
}
