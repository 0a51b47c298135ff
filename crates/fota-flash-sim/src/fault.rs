//! The fault plan: which operation loses power, tears, fails, and which bits are stuck.
//!
//! Operations are numbered 1, 2, 3, … over page programs and sector erases (reads are not
//! numbered) from the moment the plan is [armed](crate::SimFlashBase::arm). Numbering goes on
//! across power cycles, so one plan can cut the update at op 40 and the recovery after it at op
//! 55. A plan is deterministic: everything random in it comes from its seed.

use core::ops::{Range, RangeInclusive};
use std::collections::BTreeMap;

use crate::log::OpKind;

/// How an interrupted program or erase leaves its page or sector.
///
/// The "unit" is the range of one operation: the bytes of one page program, or one sector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Tear {
    /// Like [`Tear::Prefix`] with the prefix length drawn from the plan's RNG in `0..len`.
    #[default]
    Random,
    /// The first `n` bytes of the unit are done (clamped to `len - 1`), byte `n` is half done
    /// (a random subset of the bits it was to change have changed, possibly none or all), and the
    /// rest is untouched.
    Prefix(usize),
    /// Every byte done except the last, which is half done: MCUboot's torn-write mode, the case
    /// that catches a trailing magic or flag word written in one go.
    AllButLast,
    /// Every byte of the unit is half done: each byte gets an independent random subset of the
    /// bits it was to change. Models an erase pulse cut short, where the whole sector is part
    /// way to erased.
    Scatter,
}

/// What a failing operation leaves on flash (power stays on either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FailEffect {
    /// The operation did not touch the cells.
    #[default]
    Unchanged,
    /// Part of the operation reached the cells, shaped like a torn one.
    Partial(Tear),
}

/// A power cut placed on one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cut {
    /// Power fails just before the operation: the flash is unchanged (MCUboot's cut).
    Before,
    /// The operation completes, then power fails before the caller sees success.
    After,
    /// Power fails in the middle: the unit is left as the [`Tear`] says.
    Torn(Tear),
}

/// Which way a stuck bit is stuck.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StuckAt {
    /// The bit cannot be programmed: a program never changes it (after any erase it reads as
    /// erased), so a read-back of programmed data finds it wrong.
    Erased,
    /// The bit cannot be erased: an erase never changes it (once programmed it stays so), so a
    /// blank check after erase finds it.
    Programmed,
}

/// Which operations a random failure applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OpFilter {
    /// Programs and erases.
    #[default]
    Any,
    /// Page programs only.
    Program,
    /// Sector erases only.
    Erase,
}

impl OpFilter {
    const fn matches(self, kind: OpKind) -> bool {
        matches!(
            (self, kind),
            (Self::Any, OpKind::Program | OpKind::Erase)
                | (Self::Program, OpKind::Program)
                | (Self::Erase, OpKind::Erase)
        )
    }
}

/// What the plan does to one numbered operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Event {
    Cut(Cut),
    Fail(FailEffect),
}

#[derive(Debug, Clone, PartialEq)]
struct RandomFail {
    probability: f64,
    region: Range<u32>,
    filter: OpFilter,
    effect: FailEffect,
}

/// Bits of one byte that are stuck.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub(crate) struct StuckMask {
    /// Bits a program never changes.
    pub(crate) no_program: u8,
    /// Bits an erase never changes.
    pub(crate) no_erase: u8,
}

/// A deterministic list of faults, armed on a flash with
/// [`SimFlashBase::arm`](crate::SimFlashBase::arm).
///
/// Build it with the chained methods. Each operation number carries at most one event; naming
/// the same number twice keeps the last. Random failures apply only to operations without an
/// event. Events fire once; stuck bits and random failures stay for as long as the plan is armed.
///
/// Exact on-flash effects (for `0xFF` flash; for `0x00` flash swap "clear" and "set"):
///
/// | fault | cells | byte tracking | call returns | power |
/// |---|---|---|---|---|
/// | [`Cut::Before`] op N | unchanged | unchanged | [`PowerLoss`](crate::Error::PowerLoss) | off |
/// | [`Cut::After`] op N | op N fully applied | as for a completed op | `PowerLoss` | off |
/// | [`Cut::Torn`] program | prefix programmed, next byte some of its bits cleared, rest untouched ([`Tear`]) | every byte the program was to change becomes [`Torn`](crate::ByteState::Torn): may be programmed once more | `PowerLoss` | off |
/// | [`Cut::Torn`] erase | prefix erased, next byte some of its programmed bits set, rest untouched ([`Tear`]) | fully erased bytes become erased; others keep their state (a half-erased byte must be erased again) | `PowerLoss` | off |
/// | fail, [`FailEffect::Unchanged`] | unchanged | unchanged | [`Injected`](crate::Error::Injected) | on |
/// | fail, [`FailEffect::Partial`] | as the torn case | as the torn case | `Injected` | on |
/// | stuck bit | see [`StuckAt`] | normal | success (read-back finds it) | on |
///
/// Ops of a multi-page `write()` or multi-sector `erase()` after the faulted one are not
/// attempted (the call returns at the fault); ops before it are complete.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlan {
    rng: SplitMix64,
    events: BTreeMap<u64, Event>,
    random_fails: Vec<RandomFail>,
    stuck: BTreeMap<u32, StuckMask>,
}

impl FaultPlan {
    /// An empty plan whose random choices derive from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: SplitMix64::new(seed),
            events: BTreeMap::new(),
            random_fails: Vec::new(),
            stuck: BTreeMap::new(),
        }
    }

    /// An empty plan: arming it only restarts the operation count (the "count a clean run"
    /// step of a sweep).
    pub fn none() -> Self {
        Self::new(0)
    }

    /// Places `cut` on operation `op` (1-based).
    #[must_use]
    pub fn cut(mut self, op: u64, cut: Cut) -> Self {
        self.events.insert(op, Event::Cut(cut));
        self
    }

    /// Power fails just before operation `op`, which does not happen.
    #[must_use]
    pub fn cut_before(self, op: u64) -> Self {
        self.cut(op, Cut::Before)
    }

    /// Operation `op` completes, then power fails before the caller sees success.
    #[must_use]
    pub fn cut_after(self, op: u64) -> Self {
        self.cut(op, Cut::After)
    }

    /// Power fails in the middle of operation `op`, leaving it as `tear` says.
    #[must_use]
    pub fn tear(self, op: u64, tear: Tear) -> Self {
        self.cut(op, Cut::Torn(tear))
    }

    /// Operation `op` fails with power on, leaving the flash as `effect` says.
    #[must_use]
    pub fn fail(mut self, op: u64, effect: FailEffect) -> Self {
        self.events.insert(op, Event::Fail(effect));
        self
    }

    /// Every operation of kind `filter` that overlaps `region` fails with `probability`
    /// (0.0–1.0, drawn from the seed), leaving the flash as `effect` says: MCUboot's bad region.
    #[must_use]
    pub fn fail_randomly(
        mut self,
        probability: f64,
        region: Range<u32>,
        filter: OpFilter,
        effect: FailEffect,
    ) -> Self {
        self.random_fails.push(RandomFail {
            probability,
            region,
            filter,
            effect,
        });
        self
    }

    /// Bit `bit` (0 = least significant) of byte `addr` is stuck as `at` says. Bits above 7 are
    /// ignored.
    #[must_use]
    pub fn stuck_bit(mut self, addr: u32, bit: u8, at: StuckAt) -> Self {
        let mask = 1u8.checked_shl(u32::from(bit)).unwrap_or(0);
        let entry = self.stuck.entry(addr).or_default();
        match at {
            StuckAt::Erased => entry.no_program |= mask,
            StuckAt::Programmed => entry.no_erase |= mask,
        }
        self
    }

    /// Adds `count` power cuts at operation numbers drawn from `within`, each of a kind drawn
    /// from {before, after, torn at random} (MCUboot's `run_perm_with_random_fails`). Numbers
    /// past the run's end simply never fire; collisions keep one event.
    #[must_use]
    pub fn random_cuts(mut self, count: usize, within: RangeInclusive<u64>) -> Self {
        let (lo, hi) = (*within.start(), *within.end());
        if lo > hi {
            return self;
        }
        for _ in 0..count {
            let op = lo + self.rng.below(hi - lo + 1);
            let cut = match self.rng.below(3) {
                0 => Cut::Before,
                1 => Cut::After,
                _ => Cut::Torn(Tear::Random),
            };
            self.events.insert(op, Event::Cut(cut));
        }
        self
    }

    /// One plan per operation number in `ops`, each placing `cut` on that number: the
    /// exhaustive sweep. Plan `i` is seeded from `seed` and `i`, so each step is reproducible
    /// on its own.
    ///
    /// ```
    /// use fota_flash_sim::{Cut, FaultPlan};
    /// let plans: Vec<_> = FaultPlan::sweep(1..=3, Cut::Before, 7).collect();
    /// assert_eq!(plans.len(), 3);
    /// assert_eq!(plans[0].0, 1);
    /// ```
    pub fn sweep(
        ops: RangeInclusive<u64>,
        cut: Cut,
        seed: u64,
    ) -> impl Iterator<Item = (u64, Self)> {
        ops.map(move |i| {
            let step_seed = SplitMix64::new(seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).next();
            (i, Self::new(step_seed).cut(i, cut))
        })
    }

    /// Operation numbers that still have an event waiting to fire.
    pub fn pending(&self) -> impl Iterator<Item = u64> + '_ {
        self.events.keys().copied()
    }

    /// Removes and returns what happens to operation `index`: its event, else a random failure.
    pub(crate) fn take_event(
        &mut self,
        index: u64,
        kind: OpKind,
        addr: u32,
        len: usize,
    ) -> Option<Event> {
        if let Some(event) = self.events.remove(&index) {
            return Some(event);
        }
        let end = u64::from(addr) + len as u64;
        for i in 0..self.random_fails.len() {
            let fail = &self.random_fails[i];
            let overlaps = u64::from(fail.region.start) < end && addr < fail.region.end && len > 0;
            if fail.filter.matches(kind) && overlaps {
                let (probability, effect) = (fail.probability, fail.effect);
                if self.rng.unit() < probability {
                    return Some(Event::Fail(effect));
                }
            }
        }
        None
    }

    /// Stuck bits of the bytes in `addr..addr + len`.
    pub(crate) fn stuck_in(
        &self,
        addr: u32,
        len: usize,
    ) -> impl Iterator<Item = (u32, StuckMask)> + '_ {
        let end = u64::from(addr) + len as u64;
        self.stuck
            .range(addr..)
            .take_while(move |&(&a, _)| u64::from(a) < end)
            .map(|(&a, &m)| (a, m))
    }

    pub(crate) fn rng(&mut self) -> &mut SplitMix64 {
        &mut self.rng
    }
}

impl Default for FaultPlan {
    fn default() -> Self {
        Self::none()
    }
}

/// SplitMix64: tiny, fast, and plenty for choosing tear points; avoids tying reproducibility
/// of recorded seeds to an external RNG crate's version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) const fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) const fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`); the modulo bias is irrelevant at these sizes.
    pub(crate) const fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        // 53 random bits fill an f64 mantissa exactly.
        (self.next() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    pub(crate) const fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }
}
