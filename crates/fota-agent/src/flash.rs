//! Partition views over the whole flash: every access bounds-checked, and no way to write the
//! running image.
//!
//! [`Region`] is a plain offset + size. Reads take any region. Writes and erases take a
//! [`Writable`], which only [`Storage::writable`] makes, and it refuses every region that
//! overlaps a protected one (the running app and everything below the first partition:
//! bootloader and partition table). So the running image's bytes cannot be touched through this
//! API, whatever the caller computes.

use embedded_storage::nor_flash::NorFlash;

use crate::error::AgentError;

/// Erase unit the agent is written for (ESP32 SPI NOR).
pub const SECTOR: u32 = 0x1000;
/// Program page of ESP32 flash chips: the agent writes at most one page per program call so
/// that a torn program damages at most one page.
pub const PAGE: u32 = 0x100;

/// A byte range of the whole flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Region {
    offset: u32,
    size: u32,
}

impl Region {
    /// `size` bytes from `offset`; `None` when the end passes 4 GiB.
    pub const fn new(offset: u32, size: u32) -> Option<Self> {
        match offset.checked_add(size) {
            Some(_) => Some(Self { offset, size }),
            None => None,
        }
    }

    /// Absolute start.
    pub const fn offset(&self) -> u32 {
        self.offset
    }

    /// Length in bytes.
    pub const fn size(&self) -> u32 {
        self.size
    }

    /// Absolute end (exclusive); cannot overflow by construction ([`Self::new`] checks it,
    /// so the saturation never happens).
    pub const fn end(&self) -> u32 {
        self.offset.saturating_add(self.size)
    }

    /// Whether the two ranges share a byte.
    pub const fn overlaps(&self, other: &Region) -> bool {
        self.size != 0 && other.size != 0 && self.offset < other.end() && other.offset < self.end()
    }

    /// The sub-range `[at, at + len)`, if it lies inside.
    pub fn sub(&self, at: u32, len: u32) -> Option<Region> {
        let end = at.checked_add(len)?;
        if end > self.size {
            return None;
        }
        Region::new(self.offset.checked_add(at)?, len)
    }

    /// Whether both ends are sector-aligned.
    pub const fn sector_aligned(&self) -> bool {
        self.offset.is_multiple_of(SECTOR) && self.size.is_multiple_of(SECTOR)
    }

    /// Absolute address of `at..at+len` inside the region, or the typed error.
    fn absolute(&self, at: u32, len: usize) -> Result<u32, AgentError> {
        let err = AgentError::OutOfRegion {
            region: self.offset,
            offset: at,
            len: u32::try_from(len).unwrap_or(u32::MAX),
        };
        let len = u32::try_from(len).map_err(|_| err)?;
        let end = at.checked_add(len).ok_or(err)?;
        if end > self.size {
            return Err(err);
        }
        self.offset.checked_add(at).ok_or(err)
    }
}

/// A region [`Storage::writable`] has checked: sector-aligned and clear of every protected
/// region. There is no other way to make one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Writable {
    region: Region,
}

impl Writable {
    /// The checked region.
    pub const fn region(&self) -> Region {
        self.region
    }
}

/// Most protected regions (running app, boot area).
const MAX_PROTECTED: usize = 2;

/// The whole flash with its protected regions.
#[derive(Debug)]
pub struct Storage<F> {
    flash: F,
    protected: [Option<Region>; MAX_PROTECTED],
}

impl<F: NorFlash> Storage<F> {
    /// Wraps the whole flash. Nothing is protected until [`Self::protect`]. A geometry the
    /// agent is not written for hands the flash back with the error.
    pub fn new(flash: F) -> Result<Self, (AgentError, F)> {
        // The journal entries (16 bytes), otadata entries (32) and page-sized programs must be
        // whole write units, and sector arithmetic assumes 4 KiB.
        if F::ERASE_SIZE != SECTOR as usize
            || F::READ_SIZE != 1
            || 16usize.checked_rem(F::WRITE_SIZE) != Some(0)
        {
            return Err((AgentError::Geometry, flash));
        }
        Ok(Self {
            flash,
            protected: [None; MAX_PROTECTED],
        })
    }

    /// Flash capacity in bytes.
    pub fn capacity(&self) -> u32 {
        u32::try_from(self.flash.capacity()).unwrap_or(u32::MAX)
    }

    /// Marks `region` as never writable (the running app; the boot area).
    pub fn protect(&mut self, region: Region) {
        if let Some(slot) = self.protected.iter_mut().find(|p| p.is_none()) {
            *slot = Some(region);
        }
    }

    /// A write permit for `region`: sector-aligned, inside the flash, clear of every protected
    /// region.
    pub fn writable(&self, region: Region) -> Result<Writable, AgentError> {
        if !region.sector_aligned() || region.end() > self.capacity() {
            return Err(AgentError::OutOfRegion {
                region: region.offset,
                offset: 0,
                len: region.size,
            });
        }
        if self.protected.iter().flatten().any(|p| p.overlaps(&region)) {
            return Err(AgentError::RunningSlot);
        }
        Ok(Writable { region })
    }

    /// Reads `buf.len()` bytes at `at` inside `region`.
    pub fn read(&mut self, region: Region, at: u32, buf: &mut [u8]) -> Result<(), AgentError> {
        let addr = region.absolute(at, buf.len())?;
        self.flash.read(addr, buf)?;
        Ok(())
    }

    /// Erases the sectors `[from, to)` of a writable region (both sector-aligned).
    pub fn erase(&mut self, w: &Writable, from: u32, to: u32) -> Result<(), AgentError> {
        let len = to.checked_sub(from).ok_or(AgentError::OutOfRegion {
            region: w.region.offset,
            offset: from,
            len: 0,
        })?;
        let start = w.region.absolute(from, len as usize)?;
        if start % SECTOR != 0 || len % SECTOR != 0 {
            return Err(AgentError::OutOfRegion {
                region: w.region.offset,
                offset: from,
                len,
            });
        }
        let end = start.checked_add(len).ok_or(AgentError::OutOfRegion {
            region: w.region.offset,
            offset: from,
            len,
        })?;
        self.flash.erase(start, end)?;
        Ok(())
    }

    /// Programs `data` at `at` inside a writable region (both aligned to the write size).
    pub fn program(&mut self, w: &Writable, at: u32, data: &[u8]) -> Result<(), AgentError> {
        let addr = w.region.absolute(at, data.len())?;
        self.flash.write(addr, data)?;
        Ok(())
    }

    /// The flash, for [`crate::Agent::into_parts`].
    pub fn into_inner(self) -> F {
        self.flash
    }

    /// The flash, read-only, for tests and reports.
    pub fn inner(&self) -> &F {
        &self.flash
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fota_flash_sim::{Config, SimFlash};

    fn storage() -> Storage<SimFlash> {
        Storage::new(SimFlash::new(Config::ESP32.with_capacity(0x20000)).unwrap())
            .map_err(|e| e.0)
            .unwrap()
    }

    #[test]
    fn region_arithmetic_is_checked() {
        assert!(Region::new(u32::MAX, 1).is_none());
        let r = Region::new(0x1000, 0x2000).unwrap();
        assert_eq!(r.sub(0x1000, 0x1000), Region::new(0x2000, 0x1000));
        assert!(r.sub(0x1000, 0x1001).is_none());
        assert!(r.sub(u32::MAX, 2).is_none());
        assert!(r.overlaps(&Region::new(0x2fff, 1).unwrap()));
        assert!(!r.overlaps(&Region::new(0x3000, 1).unwrap()));
        assert!(!r.overlaps(&Region::new(0x1000, 0).unwrap()));
    }

    #[test]
    fn reads_outside_the_view_never_reach_the_flash() {
        let mut s = storage();
        let r = Region::new(0x1000, 0x1000).unwrap();
        let mut buf = [0u8; 16];
        assert!(s.read(r, 0xff0, &mut buf).is_ok());
        assert!(matches!(
            s.read(r, 0xff1, &mut buf),
            Err(AgentError::OutOfRegion { .. })
        ));
        assert!(matches!(
            s.read(r, u32::MAX, &mut buf),
            Err(AgentError::OutOfRegion { .. })
        ));
        assert_eq!(s.inner().stats().reads, 1);
    }

    #[test]
    fn the_running_slot_is_never_writable() {
        let mut s = storage();
        let running = Region::new(0x10000, 0x8000).unwrap();
        s.protect(running);
        assert_eq!(s.writable(running), Err(AgentError::RunningSlot));
        // Any overlap at all is refused, from either side.
        assert_eq!(
            s.writable(Region::new(0xF000, 0x2000).unwrap()),
            Err(AgentError::RunningSlot)
        );
        assert_eq!(
            s.writable(Region::new(0x17000, 0x2000).unwrap()),
            Err(AgentError::RunningSlot)
        );
        let other = s.writable(Region::new(0x18000, 0x8000).unwrap()).unwrap();
        s.erase(&other, 0, SECTOR).unwrap();
        s.program(&other, 0, &[0u8; 16]).unwrap();
        // A permit cannot reach past its own end either.
        assert!(s.program(&other, 0x8000 - 8, &[0u8; 16]).is_err());
        assert!(s.erase(&other, 0x7000, 0x9000).is_err());
        assert_eq!(s.inner().contents()[0x18000], 0);
        assert!(
            s.inner().contents()[0x10000..0x18000]
                .iter()
                .all(|&b| b == 0xFF)
        );
    }

    #[test]
    fn unaligned_permits_are_refused() {
        let s = storage();
        assert!(s.writable(Region::new(0x1000, 0x800).unwrap()).is_err());
        assert!(s.writable(Region::new(0x1800, 0x1000).unwrap()).is_err());
        assert!(s.writable(Region::new(0x1F000, 0x2000).unwrap()).is_err());
    }
}
