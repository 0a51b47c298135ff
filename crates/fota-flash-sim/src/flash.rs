//! The simulated chip.

use core::fmt;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};

use embedded_storage::nor_flash::{ErrorType, NorFlash, ReadNorFlash};

use crate::config::{Config, WriteCheck};
use crate::error::{Error, OpenError};
use crate::fault::{Cut, Event, FailEffect, FaultPlan, SplitMix64, Tear};
use crate::log::{OpKind, OpRecord, Outcome, Stats};

/// ESP32 flash as esp-storage presents it: 4-byte program words, 4 KiB erase sectors, byte reads.
/// Capacity and page size come from the [`Config`] (default: 4 MiB, 256-byte pages).
pub type SimFlash = SimFlashBase<4, 4096>;

/// What the chip knows about one byte since its last erase. Kept in memory only: a flash opened
/// from a file starts with every byte that reads as the erased value [`Erased`](Self::Erased)
/// and every other byte [`Programmed`](Self::Programmed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ByteState {
    /// Erased and not programmed since: a program may change it.
    Erased,
    /// Programmed since its last erase: in strict mode, programming it again is an error.
    Programmed,
    /// Covered by a torn or partly failed program: it may be programmed once more, so the
    /// interrupted write can be replayed; that program makes it [`Programmed`](Self::Programmed).
    Torn,
}

/// A NOR flash chip on the host: chip semantics, strict misuse checks, a fault plan, counters.
///
/// `WRITE_SIZE` and `ERASE_SIZE` are the `embedded-storage` write and erase sizes (const
/// parameters because the trait makes them associated constants); `READ_SIZE` is always 1. Use
/// [`SimFlash`] for ESP32; other values exist for geometry matrices.
///
/// # Operations
///
/// - `read` returns exactly the stored bytes. Counted in [`Stats`], never a plan operation.
/// - `write(offset, bytes)` needs offset and length aligned to `WRITE_SIZE`. It is split at
///   page boundaries ([`Config::page_size`]) and each piece is one *program operation*: every
///   byte's bits move only from erased to programmed (`new = old & data` on `0xFF` flash).
/// - `erase(from, to)` needs both ends aligned to `ERASE_SIZE`; each sector is one *erase
///   operation* that sets all its bytes to the erased value.
///
/// Misaligned or out-of-range calls return errors and change nothing; nothing here panics on
/// caller input. In [`WriteCheck::Strict`] mode a `write` that would program a byte already
/// programmed since its last erase returns [`Error::ProgramNotErased`] before any of it happens.
///
/// # Power
///
/// When a planned cut fires the call returns [`Error::PowerLoss`] and the chip stays unpowered:
/// every later call, reads included, returns `PowerLoss` until [`power_on`](Self::power_on). The
/// cells keep what they held at the cut, as a real chip does.
///
/// # Backing
///
/// Memory, or an image file holding the whole flash. In file mode every operation that changes
/// cells writes exactly the touched bytes to the file before it returns (positional writes, no
/// caching), so a process that exits at any point leaves the file as the chip would be. The file
/// is not fsynced per operation (a host crash is not a device power cut); see
/// [`sync`](Self::sync).
///
/// # Clone
///
/// A clone is always memory-backed, even when the original is file-backed: two handles writing
/// one image file would be two chips pretending to be one. It copies contents, byte tracking,
/// the armed plan with its RNG state, counters and power state (about 8 MiB for 4 MiB flash).
pub struct SimFlashBase<const WRITE_SIZE: usize, const ERASE_SIZE: usize> {
    config: Config,
    data: Vec<u8>,
    state: Vec<ByteState>,
    file: Option<ImageFile>,
    powered: bool,
    plan: Option<FaultPlan>,
    ops: u64,
    stats: Stats,
    log: OpLog,
    fired: Vec<OpRecord>,
}

struct ImageFile {
    file: File,
    path: PathBuf,
}

#[derive(Clone, Default)]
struct OpLog {
    capacity: usize,
    records: VecDeque<OpRecord>,
}

impl<const W: usize, const E: usize> SimFlashBase<W, E> {
    /// A memory-backed flash, fully erased.
    pub fn new(config: Config) -> Result<Self, OpenError> {
        config.validate(W, E)?;
        let data = vec![config.erase_value.byte(); config.capacity];
        Ok(Self::with_data(config, data, None))
    }

    /// A memory-backed flash holding `image`, which must be exactly `config.capacity` bytes.
    /// Bytes equal to the erased value count as erased, all others as programmed.
    pub fn from_image(config: Config, image: Vec<u8>) -> Result<Self, OpenError> {
        config.validate(W, E)?;
        if image.len() != config.capacity {
            return Err(OpenError::SizeMismatch {
                path: None,
                expected: config.capacity,
                actual: image.len(),
            });
        }
        Ok(Self::with_data(config, image, None))
    }

    /// A memory-backed flash full of bytes drawn from `seed`, as a chip with unknown history
    /// (bytes that happen to equal the erased value count as erased). Code must not assume
    /// fresh flash is blank.
    pub fn random(config: Config, seed: u64) -> Result<Self, OpenError> {
        config.validate(W, E)?;
        let mut rng = SplitMix64::new(seed);
        let data = (0..config.capacity).map(|_| rng.byte()).collect();
        Ok(Self::with_data(config, data, None))
    }

    /// Opens an existing image file as the chip. The file must be exactly `config.capacity`
    /// bytes; it is read whole now and written through on every change.
    pub fn open(path: impl AsRef<Path>, config: Config) -> Result<Self, OpenError> {
        config.validate(W, E)?;
        let path = path.as_ref().to_path_buf();
        let io_err = |source| OpenError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        if len != config.capacity as u64 {
            return Err(OpenError::SizeMismatch {
                path: Some(path),
                expected: config.capacity,
                actual: usize::try_from(len).unwrap_or(usize::MAX),
            });
        }
        let mut data = Vec::with_capacity(config.capacity);
        file.read_to_end(&mut data).map_err(io_err)?;
        if data.len() != config.capacity {
            // The file changed size under us between metadata() and the read.
            return Err(OpenError::SizeMismatch {
                path: Some(path),
                expected: config.capacity,
                actual: data.len(),
            });
        }
        Ok(Self::with_data(
            config,
            data,
            Some(ImageFile { file, path }),
        ))
    }

    /// Creates a new image file of `config.capacity` erased bytes and opens it as the chip.
    /// Fails if the file exists.
    pub fn create(path: impl AsRef<Path>, config: Config) -> Result<Self, OpenError> {
        config.validate(W, E)?;
        let path = path.as_ref().to_path_buf();
        let io_err = |source| OpenError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err)?;
        let data = vec![config.erase_value.byte(); config.capacity];
        file.write_all(&data).map_err(io_err)?;
        Ok(Self::with_data(
            config,
            data,
            Some(ImageFile { file, path }),
        ))
    }

    /// [`open`](Self::open) if the file exists, else [`create`](Self::create).
    pub fn open_or_create(path: impl AsRef<Path>, config: Config) -> Result<Self, OpenError> {
        let path = path.as_ref();
        if path.exists() {
            Self::open(path, config)
        } else {
            Self::create(path, config)
        }
    }

    fn with_data(config: Config, data: Vec<u8>, file: Option<ImageFile>) -> Self {
        let erased = config.erase_value.byte();
        let state = data
            .iter()
            .map(|&b| {
                if b == erased {
                    ByteState::Erased
                } else {
                    ByteState::Programmed
                }
            })
            .collect();
        let sectors = config.capacity / E;
        Self {
            config,
            data,
            state,
            file,
            powered: true,
            plan: None,
            ops: 0,
            stats: Stats {
                sector_erases: vec![0; sectors],
                ..Stats::default()
            },
            log: OpLog::default(),
            fired: Vec::new(),
        }
    }

    /// The geometry and rules this flash was built with.
    pub const fn config(&self) -> &Config {
        &self.config
    }

    /// Number of erase sectors.
    pub const fn sector_count(&self) -> usize {
        self.config.capacity / E
    }

    /// The image file, in file mode.
    pub fn path(&self) -> Option<&Path> {
        self.file.as_ref().map(|f| f.path.as_path())
    }

    /// Switches the double-program rule at run time (for example, lenient while a deliberately
    /// sloppy legacy driver runs).
    pub const fn set_write_check(&mut self, write_check: WriteCheck) {
        self.config.write_check = write_check;
    }

    /// The whole flash as stored, whatever the power state, without counting a read: the
    /// harness's view of the chip (desoldered and dumped), for invariant checks and reports.
    pub fn contents(&self) -> &[u8] {
        &self.data
    }

    /// Tracking state of byte `addr`, or `None` out of range.
    pub fn byte_state(&self, addr: u32) -> Option<ByteState> {
        self.state.get(addr as usize).copied()
    }

    /// Writes `bytes` at `offset` directly, as a programmer tool (esptool `write_flash`) would:
    /// no alignment rule, no fault plan, no counters, works without power. Bytes equal to the
    /// erased value become erased, others programmed. Written through in file mode.
    pub fn preload(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Error> {
        self.check_bounds(OpKind::Program, offset, bytes.len())?;
        let start = offset as usize;
        let erased = self.config.erase_value.byte();
        self.data[start..start + bytes.len()].copy_from_slice(bytes);
        for (s, &b) in self.state[start..].iter_mut().zip(bytes) {
            *s = if b == erased {
                ByteState::Erased
            } else {
                ByteState::Programmed
            };
        }
        self.write_through(start, bytes.len())
    }

    /// Flushes the image file to stable storage (file mode; a no-op in memory).
    pub fn sync(&self) -> Result<(), Error> {
        match &self.file {
            Some(f) => f.file.sync_data().map_err(Error::Io),
            None => Ok(()),
        }
    }

    /// True unless a cut fired (or [`power_off`](Self::power_off) ran) since the last
    /// [`power_on`](Self::power_on).
    pub const fn is_powered(&self) -> bool {
        self.powered
    }

    /// Restores power (the harness's reboot). Cells are as the cut left them; the fault plan
    /// stays armed and its operation count goes on.
    pub const fn power_on(&mut self) {
        self.powered = true;
    }

    /// Cuts power now, between operations (for cuts the harness times itself, such as during a
    /// network wait). Every call fails with [`Error::PowerLoss`] until `power_on`.
    pub const fn power_off(&mut self) {
        self.powered = false;
    }

    /// Arms `plan`, replacing any armed one, and restarts operation numbering at 1 and the list
    /// of fired faults. Arming [`FaultPlan::none`] just restarts the count.
    pub fn arm(&mut self, plan: FaultPlan) {
        self.plan = Some(plan);
        self.ops = 0;
        self.fired.clear();
    }

    /// Removes the armed plan (with what it has left: events not yet fired, RNG state).
    /// Numbering goes on.
    pub const fn disarm(&mut self) -> Option<FaultPlan> {
        self.plan.take()
    }

    /// The armed plan.
    pub const fn plan(&self) -> Option<&FaultPlan> {
        self.plan.as_ref()
    }

    /// Program and erase operations issued since the plan was armed (or the flash was built),
    /// including ones a cut stopped before they started. After a clean run, this is the `N` of
    /// a sweep over ops `1..=N`.
    pub const fn ops(&self) -> u64 {
        self.ops
    }

    /// Faults that fired since the plan was armed, in order. A sweep step whose list is empty
    /// cut beyond the end of the run.
    pub fn fired(&self) -> &[OpRecord] {
        &self.fired
    }

    /// Snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.stats.clone()
    }

    /// Keeps the last `capacity` program/erase operations in a log (0 turns it off and clears
    /// it).
    pub fn set_op_log(&mut self, capacity: usize) {
        self.log.capacity = capacity;
        while self.log.records.len() > capacity {
            self.log.records.pop_front();
        }
    }

    /// The logged operations, oldest first.
    pub fn op_log(&self) -> impl ExactSizeIterator<Item = &OpRecord> {
        self.log.records.iter()
    }

    fn check_powered(&self) -> Result<(), Error> {
        if self.powered {
            Ok(())
        } else {
            Err(Error::PowerLoss)
        }
    }

    fn check_bounds(&self, op: OpKind, offset: u32, len: usize) -> Result<(), Error> {
        let capacity = self.config.capacity;
        if len > capacity || offset as usize > capacity - len {
            return Err(Error::OutOfBounds {
                op,
                offset,
                len,
                capacity,
            });
        }
        Ok(())
    }

    fn check_aligned(op: OpKind, offset: u32, len: usize, align: usize) -> Result<(), Error> {
        if !(offset as usize).is_multiple_of(align) || !len.is_multiple_of(align) {
            return Err(Error::NotAligned {
                op,
                offset,
                len,
                align,
            });
        }
        Ok(())
    }

    fn read_impl(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Error> {
        self.check_powered()?;
        self.check_bounds(OpKind::Read, offset, bytes.len())?;
        let start = offset as usize;
        bytes.copy_from_slice(&self.data[start..start + bytes.len()]);
        self.stats.reads += 1;
        self.stats.read_bytes += bytes.len() as u64;
        Ok(())
    }

    fn write_impl(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Error> {
        self.check_powered()?;
        self.check_bounds(OpKind::Program, offset, bytes.len())?;
        Self::check_aligned(OpKind::Program, offset, bytes.len(), W)?;
        let start = offset as usize;
        if self.config.write_check == WriteCheck::Strict {
            let erased = self.config.erase_value.byte();
            let states = &self.state[start..start + bytes.len()];
            if let Some(i) = bytes
                .iter()
                .zip(states)
                .position(|(&b, &s)| b != erased && s == ByteState::Programmed)
            {
                // Refuse the whole call up front: a misuse must not be blurred by half a write.
                return Err(Error::ProgramNotErased {
                    addr: offset + i as u32,
                });
            }
        }
        let page = self.config.page_size;
        let mut pos = 0;
        while pos < bytes.len() {
            let addr = start + pos;
            let n = (page - addr % page).min(bytes.len() - pos);
            self.operation(OpKind::Program, addr, &bytes[pos..pos + n])?;
            pos += n;
        }
        Ok(())
    }

    fn erase_impl(&mut self, from: u32, to: u32) -> Result<(), Error> {
        self.check_powered()?;
        if from > to {
            return Err(Error::OutOfBounds {
                op: OpKind::Erase,
                offset: from,
                len: 0,
                capacity: self.config.capacity,
            });
        }
        let len = (to - from) as usize;
        self.check_bounds(OpKind::Erase, from, len)?;
        Self::check_aligned(OpKind::Erase, from, len, E)?;
        for sector in (from as usize..to as usize).step_by(E) {
            self.operation(OpKind::Erase, sector, &[])?;
        }
        Ok(())
    }

    /// One numbered program (of `data`) or erase (of the sector at `addr`), with the plan's say.
    fn operation(&mut self, kind: OpKind, addr: usize, data: &[u8]) -> Result<(), Error> {
        self.ops += 1;
        let index = self.ops;
        let len = if kind == OpKind::Erase { E } else { data.len() };
        // Addresses were bounds-checked against a capacity that fits u32.
        let addr32 = addr as u32;
        let event = self
            .plan
            .as_mut()
            .and_then(|p| p.take_event(index, kind, addr32, len));
        let injected = Error::Injected {
            op: index,
            kind,
            addr: addr32,
            len,
        };
        let (outcome, result) = match event {
            None => {
                self.apply(kind, addr, data, None)?;
                (Outcome::Done, Ok(()))
            }
            Some(Event::Cut(Cut::Before)) => (Outcome::CutBefore, Err(Error::PowerLoss)),
            Some(Event::Cut(Cut::After)) => {
                self.apply(kind, addr, data, None)?;
                (Outcome::CutAfter, Err(Error::PowerLoss))
            }
            Some(Event::Cut(Cut::Torn(tear))) => {
                self.apply(kind, addr, data, Some(tear))?;
                (Outcome::Torn, Err(Error::PowerLoss))
            }
            Some(Event::Fail(FailEffect::Unchanged)) => {
                (Outcome::Failed { partial: false }, Err(injected))
            }
            Some(Event::Fail(FailEffect::Partial(tear))) => {
                self.apply(kind, addr, data, Some(tear))?;
                (Outcome::Failed { partial: true }, Err(injected))
            }
        };
        if outcome != Outcome::CutBefore {
            match kind {
                OpKind::Program => {
                    self.stats.programs += 1;
                    self.stats.program_bytes += len as u64;
                }
                OpKind::Erase => {
                    self.stats.erases += 1;
                    self.stats.sector_erases[addr / E] += 1;
                }
                OpKind::Read => {}
            }
        }
        if matches!(result, Err(Error::PowerLoss)) {
            self.powered = false;
        }
        let record = OpRecord {
            index,
            kind,
            addr: addr32,
            len,
            outcome,
        };
        if outcome != Outcome::Done {
            self.fired.push(record);
        }
        if self.log.capacity > 0 {
            if self.log.records.len() == self.log.capacity {
                self.log.records.pop_front();
            }
            self.log.records.push_back(record);
        }
        result
    }

    /// Changes the cells of one operation, completely (`tear == None`) or as `tear` says, and
    /// writes the touched range through to the file.
    fn apply(
        &mut self,
        kind: OpKind,
        addr: usize,
        data: &[u8],
        tear: Option<Tear>,
    ) -> Result<(), Error> {
        let ev = self.config.erase_value;
        let len = if kind == OpKind::Erase { E } else { data.len() };
        let range = addr..addr + len;
        let old = &self.data[range.clone()];
        // What each byte holds once the operation completes, stuck bits included.
        let mut target: Vec<u8> = match kind {
            OpKind::Program => old
                .iter()
                .zip(data)
                .map(|(&o, &d)| ev.program(o, d))
                .collect(),
            _ => vec![ev.byte(); len],
        };
        let mut fallback_rng = SplitMix64::new(0);
        let rng = match self.plan.as_mut() {
            Some(plan) => {
                for (a, mask) in plan.stuck_in(addr as u32, len) {
                    let i = a as usize - addr;
                    let keep = if kind == OpKind::Program {
                        mask.no_program
                    } else {
                        mask.no_erase
                    };
                    target[i] = (target[i] & !keep) | (old[i] & keep);
                }
                plan.rng()
            }
            None => &mut fallback_rng,
        };
        // `done`: bytes fully applied; the byte after it is half done, the rest untouched.
        let done = match tear {
            None => len,
            Some(Tear::Prefix(n)) => n.min(len - 1),
            Some(Tear::AllButLast) => len - 1,
            Some(Tear::Random) => rng.below(len as u64) as usize,
            Some(Tear::Scatter) => 0,
        };
        // A half-done byte has changed a random subset of the bits it was to change.
        let mut half = |o: u8, t: u8| o ^ ((o ^ t) & rng.byte());
        let cells = &mut self.data[range.clone()];
        cells[..done].copy_from_slice(&target[..done]);
        if done < len {
            if tear == Some(Tear::Scatter) {
                for (c, &t) in cells.iter_mut().zip(&target) {
                    *c = half(*c, t);
                }
            } else {
                cells[done] = half(cells[done], target[done]);
            }
        }
        let states = &mut self.state[range];
        match kind {
            OpKind::Program => {
                let mark = if tear.is_some() {
                    ByteState::Torn
                } else {
                    ByteState::Programmed
                };
                for (s, &d) in states.iter_mut().zip(data) {
                    if ev.programmed_bits(d) != 0 {
                        *s = mark;
                    }
                }
            }
            _ => states[..done].fill(ByteState::Erased),
        }
        self.write_through(addr, len)
    }

    fn write_through(&mut self, start: usize, len: usize) -> Result<(), Error> {
        match &self.file {
            Some(f) => {
                write_at(&f.file, &self.data[start..start + len], start as u64).map_err(Error::Io)
            }
            None => Ok(()),
        }
    }
}

#[cfg(unix)]
fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt as _;
    file.write_all_at(buf, offset)
}

#[cfg(windows)]
fn write_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt as _;
    while !buf.is_empty() {
        match file.seek_write(buf, offset)? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => {
                buf = &buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

impl<const W: usize, const E: usize> Clone for SimFlashBase<W, E> {
    fn clone(&self) -> Self {
        Self {
            config: self.config.clone(),
            data: self.data.clone(),
            state: self.state.clone(),
            file: None,
            powered: self.powered,
            plan: self.plan.clone(),
            ops: self.ops,
            stats: self.stats.clone(),
            log: self.log.clone(),
            fired: self.fired.clone(),
        }
    }
}

impl<const W: usize, const E: usize> fmt::Debug for SimFlashBase<W, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFlashBase")
            .field("write_size", &W)
            .field("erase_size", &E)
            .field("config", &self.config)
            .field("path", &self.path())
            .field("powered", &self.powered)
            .field("ops", &self.ops)
            .field("plan", &self.plan)
            .finish_non_exhaustive()
    }
}

impl<const W: usize, const E: usize> ErrorType for SimFlashBase<W, E> {
    type Error = Error;
}

impl<const W: usize, const E: usize> ReadNorFlash for SimFlashBase<W, E> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Error> {
        self.read_impl(offset, bytes)
    }

    fn capacity(&self) -> usize {
        self.config.capacity
    }
}

impl<const W: usize, const E: usize> NorFlash for SimFlashBase<W, E> {
    const WRITE_SIZE: usize = W;
    const ERASE_SIZE: usize = E;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Error> {
        self.erase_impl(from, to)
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Error> {
        self.write_impl(offset, bytes)
    }
}
