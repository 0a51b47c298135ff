//! Property tests against a plain model: a `Vec<u8>` with AND (or OR) programs, a per-byte
//! "programmed" flag, and its own page/sector splitting written independently of the crate.

use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
use fota_flash_sim::{
    ByteState, Config, Cut, EraseValue, Error, FaultPlan, SimFlash, Tear, WriteCheck,
};
use proptest::prelude::*;
use proptest::sample::Index;

const SECTOR: usize = 4096;
const PAGE: usize = 256;
const CAP: usize = 8 * SECTOR;

#[derive(Debug, Clone)]
enum Op {
    Write { offset: u32, data: Vec<u8> },
    Erase { from: u32, to: u32 },
    Read { offset: u32, len: usize },
}

/// One page program or sector erase, as the model splits calls.
#[derive(Debug, Clone)]
struct Unit {
    /// Which call of the sequence it belongs to.
    call: usize,
    erase: bool,
    addr: usize,
    data: Vec<u8>,
}

impl Unit {
    fn len(&self) -> usize {
        if self.erase { SECTOR } else { self.data.len() }
    }
}

#[derive(Debug, PartialEq)]
enum Expect {
    Ok,
    OutOfBounds,
    NotAligned,
    NotErased(u32),
}

#[derive(Clone)]
struct Model {
    cells: Vec<u8>,
    programmed: Vec<bool>,
    erased: u8,
    strict: bool,
}

impl Model {
    fn new(image: &[u8], erased: u8, strict: bool) -> Self {
        Self {
            cells: image.to_vec(),
            programmed: image.iter().map(|&b| b != erased).collect(),
            erased,
            strict,
        }
    }

    fn apply(&mut self, unit: &Unit) {
        if unit.erase {
            self.cells[unit.addr..unit.addr + SECTOR].fill(self.erased);
            self.programmed[unit.addr..unit.addr + SECTOR].fill(false);
            return;
        }
        for (i, &d) in unit.data.iter().enumerate() {
            let a = unit.addr + i;
            self.cells[a] = if self.erased == 0xFF {
                self.cells[a] & d
            } else {
                self.cells[a] | d
            };
            if d != self.erased {
                self.programmed[a] = true;
            }
        }
    }

    /// What the flash should answer, and the units the call issues (applied to the model).
    fn call(&mut self, call: usize, op: &Op) -> (Expect, Vec<Unit>) {
        let in_bounds = |offset: u32, len: usize| {
            (offset as usize)
                .checked_add(len)
                .is_some_and(|end| end <= CAP)
        };
        let mut units = Vec::new();
        match op {
            Op::Read { offset, len } => {
                if !in_bounds(*offset, *len) {
                    return (Expect::OutOfBounds, units);
                }
            }
            Op::Write { offset, data } => {
                let (start, len) = (*offset as usize, data.len());
                if !in_bounds(*offset, len) {
                    return (Expect::OutOfBounds, units);
                }
                if !start.is_multiple_of(4) || !len.is_multiple_of(4) {
                    return (Expect::NotAligned, units);
                }
                if self.strict {
                    for (i, &d) in data.iter().enumerate() {
                        if d != self.erased && self.programmed[start + i] {
                            return (Expect::NotErased((start + i) as u32), units);
                        }
                    }
                }
                let mut pos = 0;
                while pos < len {
                    let addr = start + pos;
                    let page_end = (addr / PAGE + 1) * PAGE;
                    let end = page_end.min(start + len);
                    units.push(Unit {
                        call,
                        erase: false,
                        addr,
                        data: data[pos..end - start].to_vec(),
                    });
                    pos = end - start;
                }
            }
            Op::Erase { from, to } => {
                if from > to || *to as usize > CAP {
                    return (Expect::OutOfBounds, units);
                }
                if !(*from as usize).is_multiple_of(SECTOR)
                    || !(*to as usize).is_multiple_of(SECTOR)
                {
                    return (Expect::NotAligned, units);
                }
                for addr in (*from as usize..*to as usize).step_by(SECTOR) {
                    units.push(Unit {
                        call,
                        erase: true,
                        addr,
                        data: Vec::new(),
                    });
                }
            }
        }
        for unit in &units {
            self.apply(unit);
        }
        (Expect::Ok, units)
    }
}

fn classify(result: Result<(), Error>) -> Expect {
    match result {
        Ok(()) => Expect::Ok,
        Err(Error::OutOfBounds { .. }) => Expect::OutOfBounds,
        Err(Error::NotAligned { .. }) => Expect::NotAligned,
        Err(Error::ProgramNotErased { addr }) => Expect::NotErased(addr),
        Err(other) => panic!("unexpected error {other:?}"),
    }
}

fn run(flash: &mut SimFlash, op: &Op) -> (Result<(), Error>, Vec<u8>) {
    match op {
        Op::Write { offset, data } => (flash.write(*offset, data), Vec::new()),
        Op::Erase { from, to } => (flash.erase(*from, *to), Vec::new()),
        Op::Read { offset, len } => {
            let mut buf = vec![0; *len];
            let result = flash.read(*offset, &mut buf);
            (result, buf)
        }
    }
}

fn byte() -> impl Strategy<Value = u8> {
    // Plenty of erased-value bytes, so no-op bytes inside writes get exercised.
    prop_oneof![2 => Just(0xFF), 2 => Just(0x00), 6 => any::<u8>()]
}

fn op(valid_only: bool) -> impl Strategy<Value = Op> {
    let words = 0..CAP as u32 / 4;
    let aligned_write = (words, prop::collection::vec(byte(), 0..600)).prop_map(|(w, mut data)| {
        let offset = w * 4;
        // Word-aligned length that stays in bounds: valid writes must be valid.
        data.truncate((data.len() / 4 * 4).min(CAP - offset as usize));
        Op::Write { offset, data }
    });
    let sectors = 0..=(CAP / SECTOR) as u32;
    let aligned_erase = (sectors.clone(), sectors).prop_map(|(a, b)| Op::Erase {
        from: a.min(b) * SECTOR as u32,
        to: a.max(b) * SECTOR as u32,
    });
    if valid_only {
        prop_oneof![3 => aligned_write, 1 => aligned_erase].boxed()
    } else {
        let any_write = (0..CAP as u32 + 64, prop::collection::vec(byte(), 0..600))
            .prop_map(|(offset, data)| Op::Write { offset, data });
        let any_erase = (0..CAP as u32 + 8192, 0..CAP as u32 + 8192)
            .prop_map(|(from, to)| Op::Erase { from, to });
        let read =
            (0..CAP as u32 + 64, 0..700usize).prop_map(|(offset, len)| Op::Read { offset, len });
        prop_oneof![
            6 => aligned_write,
            2 => aligned_erase,
            2 => read,
            1 => any_write,
            1 => any_erase,
        ]
        .boxed()
    }
}

fn config(strict: bool, zeros: bool) -> Config {
    Config::ESP32
        .with_capacity(CAP)
        .with_erase_value(if zeros {
            EraseValue::Zeros
        } else {
            EraseValue::Ones
        })
        .with_write_check(if strict {
            WriteCheck::Strict
        } else {
            WriteCheck::Lenient
        })
}

fn pristine(strict: bool, zeros: bool, random_start: Option<u64>) -> SimFlash {
    match random_start {
        Some(seed) => SimFlash::random(config(strict, zeros), seed).unwrap(),
        None => SimFlash::new(config(strict, zeros)).unwrap(),
    }
}

/// Bit by bit, `v` agrees with `old` wherever `old` and `new` agree.
fn between(old: u8, new: u8, v: u8) -> bool {
    (v ^ old) & !(old ^ new) == 0
}

proptest! {
    // A failure prints its minimal input; persisting it in a file next to an integration test
    // is not supported by proptest's default lookup (it wants lib.rs or main.rs).
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Any sequence of calls, valid or not, gets the same answers, the same reads, the same
    /// cells and the same number of operations as the model.
    #[test]
    fn random_calls_agree_with_the_model(
        strict in any::<bool>(),
        zeros in any::<bool>(),
        random_start in prop::option::of(any::<u64>()),
        ops in prop::collection::vec(op(false), 1..40),
    ) {
        let mut flash = pristine(strict, zeros, random_start);
        let mut model = Model::new(flash.contents(), config(strict, zeros).erase_value.byte(), strict);
        let mut units = 0;
        for (i, op) in ops.iter().enumerate() {
            let (expect, issued) = model.call(i, op);
            units += issued.len() as u64;
            let (result, read) = run(&mut flash, op);
            let ok = result.is_ok();
            prop_assert_eq!(classify(result), expect, "call {} {:?}", i, op);
            if let Op::Read { offset, len } = op
                && ok
            {
                let start = *offset as usize;
                prop_assert_eq!(&read[..], &model.cells[start..start + len]);
            }
            prop_assert!(flash.contents() == &model.cells[..], "cells differ after call {} {:?}", i, op);
            prop_assert_eq!(flash.ops(), units);
        }
        for (a, &p) in model.programmed.iter().enumerate() {
            let state = flash.byte_state(a as u32).unwrap();
            prop_assert_eq!(state == ByteState::Programmed, p, "byte {:#x}", a);
        }
    }

    /// A cut at any operation leaves every byte old or new outside the torn unit, the torn unit
    /// between them in the shape its tear names; and replaying from the interrupted unit ends in
    /// exactly the clean run's cells and tracking (strict mode included, thanks to the torn-page
    /// exception).
    #[test]
    fn a_cut_at_any_op_leaves_old_or_new_and_replays_cleanly(
        strict in any::<bool>(),
        zeros in any::<bool>(),
        random_start in prop::option::of(any::<u64>()),
        ops in prop::collection::vec(op(true), 1..25),
        at in any::<Index>(),
        kind in 0..5u8,
        seed in any::<u64>(),
    ) {
        let erased = config(strict, zeros).erase_value.byte();
        let start = pristine(strict, zeros, random_start);

        // Clean run: model units and the flash's own count must agree.
        let mut model = Model::new(start.contents(), erased, strict);
        let mut units: Vec<Unit> = Vec::new();
        let mut answers = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let (expect, issued) = model.call(i, op);
            answers.push(expect);
            units.extend(issued);
        }
        let mut clean = start.clone();
        clean.arm(FaultPlan::none());
        for op in &ops {
            let _ = run(&mut clean, op);
        }
        prop_assert_eq!(clean.ops(), units.len() as u64);
        prop_assume!(!units.is_empty());

        let i = at.index(units.len()) + 1;
        let unit = &units[i - 1];
        let cut = match kind {
            0 => Cut::Before,
            1 => Cut::After,
            2 => Cut::Torn(Tear::Random),
            3 => Cut::Torn(Tear::Scatter),
            _ => Cut::Torn(Tear::AllButLast),
        };

        let mut old = Model::new(start.contents(), erased, strict);
        units[..i - 1].iter().for_each(|u| old.apply(u));
        let mut new = old.clone();
        new.apply(unit);

        let mut flash = start.clone();
        flash.arm(FaultPlan::new(seed).cut(i as u64, cut));
        for (c, op) in ops.iter().enumerate().take(unit.call + 1) {
            let (result, _) = run(&mut flash, op);
            if c < unit.call {
                prop_assert_eq!(&classify(result), &answers[c]);
            } else {
                prop_assert!(matches!(result, Err(Error::PowerLoss)), "call {} gave {:?}", c, result);
            }
        }
        prop_assert!(!flash.is_powered());
        prop_assert_eq!(flash.fired().len(), 1);

        let cells = flash.contents();
        let range = unit.addr..unit.addr + unit.len();
        match cut {
            Cut::Before => prop_assert!(cells == &old.cells[..]),
            Cut::After => prop_assert!(cells == &new.cells[..]),
            Cut::Torn(tear) => {
                prop_assert!(cells[..range.start] == old.cells[..range.start]);
                prop_assert!(cells[range.end..] == old.cells[range.end..]);
                let (o, n, v) = (&old.cells[range.clone()], &new.cells[range.clone()], &cells[range.clone()]);
                for k in 0..v.len() {
                    prop_assert!(between(o[k], n[k], v[k]), "byte {:#x}", range.start + k);
                }
                let prefix_shaped = (0..v.len()).any(|d| v[..d] == n[..d] && v[d + 1..] == o[d + 1..]);
                match tear {
                    Tear::Random => prop_assert!(prefix_shaped),
                    Tear::AllButLast => prop_assert!(v[..v.len() - 1] == n[..n.len() - 1]),
                    _ => {}
                }
            }
        }

        // Reboot and replay: the interrupted call from the interrupted unit (or the one after
        // it for a cut-after), then the rest.
        flash.power_on();
        let resume = if cut == Cut::After { range.end } else { range.start };
        let rest = match &ops[unit.call] {
            Op::Write { offset, data } => {
                let skip = resume - *offset as usize;
                Op::Write { offset: resume as u32, data: data[skip..].to_vec() }
            }
            Op::Erase { to, .. } => Op::Erase { from: resume as u32, to: *to },
            Op::Read { .. } => unreachable!("reads issue no units"),
        };
        let (result, _) = run(&mut flash, &rest);
        prop_assert!(result.is_ok(), "replay of {:?}: {:?}", rest, result);
        for op in &ops[unit.call + 1..] {
            let _ = run(&mut flash, op);
        }
        prop_assert!(flash.contents() == clean.contents());
        for a in 0..CAP as u32 {
            prop_assert_eq!(flash.byte_state(a), clean.byte_state(a), "byte {:#x}", a);
        }
    }
}
