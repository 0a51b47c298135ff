//! Writing one chunk into the target slot so that a cut at any instant, followed by the same
//! write again, ends with exactly the chunk on flash, and every slot sector is erased once per
//! download.
//!
//! Rules (with `W` the chunk's offset in the slot):
//!
//! - Erase every sector that intersects the chunk and **starts at or after `W`**: it holds no
//!   journaled byte, only stale data or a torn earlier attempt. A sector that starts before `W`
//!   was erased earlier in this download, and its bytes from `W` on were written since only by
//!   attempts at this same chunk.
//! - Then page by page (never crossing a 256-byte program page): read the flash back; bytes
//!   already equal are skipped; bytes whose bits can still be cleared to the wanted value (a
//!   torn attempt) are programmed; anything else (foreign data, a stuck bit) fails the write.
//!   Each program covers only bytes that differ, padded with 0xFF (which changes nothing) to
//!   the write size, so no byte is ever programmed twice except the replay of a torn one.
//! - After each program the page is read back and compared.

use embedded_storage::nor_flash::NorFlash;

use crate::error::AgentError;
use crate::flash::{PAGE, SECTOR, Storage, Writable};

/// Why a chunk write failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteError {
    /// The flash refused or lost power.
    Flash(AgentError),
    /// The slot holds bytes that cannot become the chunk without an erase the rules forbid,
    /// or a read-back after programming differed (stuck bit).
    Mismatch {
        /// Offset in the slot.
        at: u32,
    },
}

impl From<AgentError> for WriteError {
    fn from(e: AgentError) -> Self {
        Self::Flash(e)
    }
}

/// `n` rounded up to a multiple of `to`; `None` for `to` = 0 or past 4 GiB.
fn align_up(n: u32, to: u32) -> Option<u32> {
    n.checked_add(to.checked_sub(1)?)
        .and_then(|v| align_down(v, to))
}

/// `n` rounded down to a multiple of `to`; `None` for `to` = 0.
fn align_down(n: u32, to: u32) -> Option<u32> {
    n.checked_sub(n.checked_rem(to)?)
}

/// The chunk byte that goes to slot offset `pos`, when `pos` is in the chunk at `at`.
fn byte_at(data: &[u8], at: u32, pos: u32) -> Option<u8> {
    let i = usize::try_from(pos.checked_sub(at)?).ok()?;
    data.get(i).copied()
}

/// Writes `data` at `at` in the slot `w` by the rules above.
pub(crate) fn write_chunk<F: NorFlash>(
    storage: &mut Storage<F>,
    w: &Writable,
    at: u32,
    data: &[u8],
) -> Result<(), WriteError> {
    let geometry = || WriteError::Flash(AgentError::Geometry);
    let word = u32::try_from(F::WRITE_SIZE).map_err(|_| AgentError::Geometry)?;
    let len = u32::try_from(data.len()).map_err(|_| AgentError::BufferTooSmall("chunk"))?;
    let end = at.checked_add(len).ok_or(AgentError::OutOfRegion {
        region: w.region().offset(),
        offset: at,
        len,
    })?;
    let padded_end = align_up(end, word).ok_or(AgentError::Geometry)?;
    if padded_end > w.region().size() {
        return Err(AgentError::OutOfRegion {
            region: w.region().offset(),
            offset: at,
            len,
        }
        .into());
    }
    let mut sector = align_up(at, SECTOR).ok_or(AgentError::Geometry)?;
    while sector < padded_end {
        let next = sector.checked_add(SECTOR).ok_or_else(geometry)?;
        storage.erase(w, sector, next)?;
        sector = next;
    }
    let start = align_down(at, word).ok_or_else(geometry)?;
    let mut page = align_down(start, PAGE).ok_or_else(geometry)?;
    let mut flash = [0u8; PAGE as usize];
    let mut want = [0xFFu8; PAGE as usize];
    while page < padded_end {
        let page_end = page.checked_add(PAGE).ok_or_else(geometry)?;
        let lo = page.max(start);
        let hi = page_end.min(padded_end);
        let span = hi.checked_sub(lo).ok_or_else(geometry)? as usize;
        let cur = flash.get_mut(..span).ok_or_else(geometry)?;
        storage.read(w.region(), lo, cur)?;
        let out = want.get_mut(..span).ok_or_else(geometry)?;
        out.fill(0xFF);
        let mut first = None;
        let mut last = 0usize;
        for (i, (pos, (f, o))) in (lo..hi).zip(cur.iter().zip(out.iter_mut())).enumerate() {
            if pos < at || pos >= end {
                continue;
            }
            let d = byte_at(data, at, pos).unwrap_or(0xFF);
            if *f == d {
                continue;
            }
            if *f & d != d {
                return Err(WriteError::Mismatch { at: pos });
            }
            *o = d;
            first.get_or_insert(i);
            last = i;
        }
        if let Some(first) = first {
            // Whole write units around the bytes that differ.
            let unit = F::WRITE_SIZE;
            let w_lo = first
                .checked_rem(unit)
                .and_then(|r| first.checked_sub(r))
                .ok_or_else(geometry)?;
            let w_hi = last
                .checked_div(unit)
                .and_then(|n| n.checked_add(1))
                .and_then(|n| n.checked_mul(unit))
                .ok_or_else(geometry)?
                .min(span);
            let program_at = u32::try_from(w_lo)
                .ok()
                .and_then(|o| lo.checked_add(o))
                .ok_or_else(geometry)?;
            let bytes = out.get(w_lo..w_hi).ok_or_else(geometry)?;
            storage.program(w, program_at, bytes)?;
            let back = cur.get_mut(w_lo..w_hi).ok_or_else(geometry)?;
            storage.read(w.region(), program_at, back)?;
            for (pos, b) in (program_at..).zip(back.iter()) {
                if pos >= at && pos < end && Some(*b) != byte_at(data, at, pos) {
                    return Err(WriteError::Mismatch { at: pos });
                }
            }
        }
        page = page_end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flash::Region;
    use fota_flash_sim::{Config, Cut, FaultPlan, SimFlash, StuckAt, Tear};

    fn setup() -> (Storage<SimFlash>, Writable) {
        let s = Storage::new(SimFlash::new(Config::ESP32.with_capacity(0x20000)).unwrap())
            .map_err(|e| e.0)
            .unwrap();
        let w = s.writable(Region::new(0x10000, 0x10000).unwrap()).unwrap();
        (s, w)
    }

    fn data(seed: u8, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn chunks_land_and_each_sector_is_erased_once() {
        let (mut s, w) = setup();
        // Stale bytes from an older download must not matter.
        s.erase(&w, 0, 0x10000).unwrap();
        s.program(&w, 0, &[0u8; 4096]).unwrap();
        let image = data(7, 3 * 1024 + 100);
        let before = s.inner().stats();
        for (k, chunk) in image.chunks(1024).enumerate() {
            write_chunk(&mut s, &w, (k * 1024) as u32, chunk).unwrap();
        }
        let stats = s.inner().stats().since(&before);
        assert_eq!(stats.erases, 1);
        assert_eq!(
            &s.inner().contents()[0x10000..0x10000 + image.len()],
            &image[..]
        );
    }

    #[test]
    fn unaligned_legacy_chunks_write_exactly() {
        let (mut s, w) = setup();
        let image = data(3, 5000);
        for (k, chunk) in image.chunks(333).enumerate() {
            write_chunk(&mut s, &w, (k * 333) as u32, chunk).unwrap();
        }
        assert_eq!(&s.inner().contents()[0x10000..0x10000 + 5000], &image[..]);
        assert!(
            s.inner().contents()[0x10000 + 5000..0x12000]
                .iter()
                .all(|&b| b == 0xFF)
        );
    }

    #[test]
    fn a_cut_anywhere_then_the_same_write_ends_with_the_chunk() {
        let image = data(9, 8192 + 512);
        let base_ops = {
            let (mut s, w) = setup();
            for (k, c) in image.chunks(4096).enumerate() {
                write_chunk(&mut s, &w, (k * 4096) as u32, c).unwrap();
            }
            s.into_inner().ops()
        };
        for op in 1..=base_ops {
            for cut in [
                Cut::Before,
                Cut::After,
                Cut::Torn(Tear::Random),
                Cut::Torn(Tear::AllButLast),
            ] {
                let (s, w) = setup();
                let mut flash = s.into_inner();
                flash.arm(FaultPlan::new(op).cut(op, cut));
                let mut s = Storage::new(flash).map_err(|e| e.0).unwrap();
                let mut k = 0;
                let mut result = Ok(());
                for (i, c) in image.chunks(4096).enumerate() {
                    k = i;
                    result = write_chunk(&mut s, &w, (i * 4096) as u32, c);
                    if result.is_err() {
                        break;
                    }
                }
                let mut flash = s.into_inner();
                flash.power_on();
                let mut s = Storage::new(flash).map_err(|e| e.0).unwrap();
                if result.is_err() {
                    // Resume at the interrupted chunk, as the journal would.
                    for (i, c) in image.chunks(4096).enumerate().skip(k) {
                        write_chunk(&mut s, &w, (i * 4096) as u32, c)
                            .unwrap_or_else(|e| panic!("op {op} {cut:?}: {e:?}"));
                    }
                }
                assert_eq!(
                    &s.inner().contents()[0x10000..0x10000 + image.len()],
                    &image[..],
                    "op {op} {cut:?}"
                );
            }
        }
    }

    #[test]
    fn a_stuck_bit_fails_the_write() {
        let (s, w) = setup();
        let mut flash = s.into_inner();
        flash.arm(FaultPlan::new(1).stuck_bit(0x10010, 3, StuckAt::Erased));
        let mut s = Storage::new(flash).map_err(|e| e.0).unwrap();
        assert_eq!(
            write_chunk(&mut s, &w, 0, &[0u8; 1024]),
            Err(WriteError::Mismatch { at: 0x10 })
        );
    }

    #[test]
    fn foreign_bytes_in_a_sector_before_w_fail_the_write() {
        let (mut s, w) = setup();
        write_chunk(&mut s, &w, 0, &[0x11; 1024]).unwrap();
        // Something programmed where chunk 1 goes, in a sector chunk 0 already opened.
        s.program(&w, 1024, &[0x00; 16]).unwrap();
        assert_eq!(
            write_chunk(&mut s, &w, 1024, &[0x22; 1024]),
            Err(WriteError::Mismatch { at: 1024 })
        );
    }
}
