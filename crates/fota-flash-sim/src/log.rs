//! Counters and the diagnostic operation log.

use core::fmt;

/// Kind of a flash operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// A `read()` call (never counted as a plan operation).
    Read,
    /// One page program (a `write()` is split into one per touched page).
    Program,
    /// One sector erase (an `erase()` is split into one per sector).
    Erase,
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Read => "read",
            Self::Program => "program",
            Self::Erase => "erase",
        })
    }
}

/// What happened to one program or erase operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Completed normally.
    Done,
    /// Power was cut before it started: the flash is unchanged.
    CutBefore,
    /// It completed, then power was cut before the caller saw success.
    CutAfter,
    /// Power was cut in the middle: the page or sector is partly done.
    Torn,
    /// Failed with power on; `partial` says whether part of it reached the cells.
    Failed {
        /// Some bytes were changed.
        partial: bool,
    },
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Done => "done",
            Self::CutBefore => "power cut before",
            Self::CutAfter => "power cut after",
            Self::Torn => "torn by power cut",
            Self::Failed { partial: false } => "failed, flash unchanged",
            Self::Failed { partial: true } => "failed, partly applied",
        })
    }
}

/// One program or erase operation as the chip saw it.
///
/// `Display` gives the line a sweep report wants: `op 37: program 0x1a000+256 (power cut before)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OpRecord {
    /// 1-based index since the fault plan was armed (or since the flash was built): the number a
    /// [`FaultPlan`](crate::FaultPlan) uses to name this operation.
    pub index: u64,
    /// Program or erase.
    pub kind: OpKind,
    /// First byte of the page-program range or of the sector.
    pub addr: u32,
    /// Bytes covered.
    pub len: usize,
    /// What happened.
    pub outcome: Outcome,
}

impl fmt::Display for OpRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "op {}: {} {:#x}+{} ({})",
            self.index, self.kind, self.addr, self.len, self.outcome
        )
    }
}

/// Cumulative counters since the flash was built (or cloned from one).
///
/// Program and erase counts include every operation that reached the cells: completed, torn,
/// cut-after and failed ones, but not those cut before they started nor calls refused for
/// misuse. Take a snapshot with [`stats`](crate::SimFlashBase::stats) and subtract an older one
/// with [`Stats::since`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stats {
    /// `read()` calls that returned data.
    pub reads: u64,
    /// Bytes returned by those reads.
    pub read_bytes: u64,
    /// Page programs.
    pub programs: u64,
    /// Bytes covered by those page programs.
    pub program_bytes: u64,
    /// Sector erases.
    pub erases: u64,
    /// Erases per sector, indexed by sector number (address / erase size): the wear map.
    pub sector_erases: Vec<u32>,
}

impl Stats {
    /// Counters accumulated between `earlier` and `self` (saturating, so a mismatched pair
    /// gives zeros rather than a panic).
    #[must_use]
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            reads: self.reads.saturating_sub(earlier.reads),
            read_bytes: self.read_bytes.saturating_sub(earlier.read_bytes),
            programs: self.programs.saturating_sub(earlier.programs),
            program_bytes: self.program_bytes.saturating_sub(earlier.program_bytes),
            erases: self.erases.saturating_sub(earlier.erases),
            sector_erases: self
                .sector_erases
                .iter()
                .enumerate()
                .map(|(i, n)| n.saturating_sub(earlier.sector_erases.get(i).copied().unwrap_or(0)))
                .collect(),
        }
    }

    /// Program plus erase operations.
    pub const fn ops(&self) -> u64 {
        self.programs + self.erases
    }

    /// The most-erased sector and its count, or `None` if nothing was erased.
    pub fn most_worn_sector(&self) -> Option<(usize, u32)> {
        self.sector_erases
            .iter()
            .copied()
            .enumerate()
            .filter(|&(_, n)| n > 0)
            .max_by_key(|&(i, n)| (n, core::cmp::Reverse(i)))
    }
}
