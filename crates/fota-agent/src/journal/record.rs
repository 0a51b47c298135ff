//! Writing a base record: header, body, blobs and CRC streamed into the sector one program
//! page at a time.

use embedded_storage::nor_flash::NorFlash;

use super::{CRC, align16};
use crate::error::AgentError;
use crate::flash::{PAGE, SECTOR, Storage, Writable};

const WINDOW: usize = PAGE as usize;

/// Streams a base record into its sector one page at a time, computing the CRC on the way.
pub(super) struct RecordWriter {
    base: u32,
    window: [u8; WINDOW],
    filled: usize,
    written: u32,
    digest: crc::Digest<'static, u32>,
}

fn too_large() -> AgentError {
    AgentError::Config("journal record larger than a sector")
}

impl RecordWriter {
    /// A record at `base`, the start of its sector.
    pub(super) fn new(base: u32) -> Self {
        Self {
            base,
            window: [0xFF; WINDOW],
            filled: 0,
            written: 0,
            digest: CRC.digest(),
        }
    }

    /// Adds `bytes` to the record and to its CRC.
    pub(super) fn push<F: NorFlash>(
        &mut self,
        storage: &mut Storage<F>,
        w: &Writable,
        bytes: &[u8],
    ) -> Result<(), AgentError> {
        self.digest.update(bytes);
        self.raw(storage, w, bytes)
    }

    fn raw<F: NorFlash>(
        &mut self,
        storage: &mut Storage<F>,
        w: &Writable,
        mut bytes: &[u8],
    ) -> Result<(), AgentError> {
        while !bytes.is_empty() {
            let room = self
                .window
                .get_mut(self.filled..)
                .ok_or(AgentError::Config("journal record window"))?;
            let n = room.len().min(bytes.len());
            let (now, rest) = bytes.split_at(n);
            let (dst, _) = room.split_at_mut(n);
            dst.copy_from_slice(now);
            self.filled = self.filled.saturating_add(n);
            bytes = rest;
            if self.filled == WINDOW {
                self.flush(storage, w)?;
            }
        }
        Ok(())
    }

    /// Bytes of the record so far, written or in the window.
    fn total(&self) -> Result<u32, AgentError> {
        u32::try_from(self.filled)
            .ok()
            .and_then(|f| self.written.checked_add(f))
            .ok_or_else(too_large)
    }

    fn flush<F: NorFlash>(
        &mut self,
        storage: &mut Storage<F>,
        w: &Writable,
    ) -> Result<(), AgentError> {
        if self.filled == 0 {
            return Ok(());
        }
        let end = self.total()?;
        if end > SECTOR {
            return Err(too_large());
        }
        let at = self.base.checked_add(self.written).ok_or_else(too_large)?;
        let bytes = self
            .window
            .get(..self.filled)
            .ok_or(AgentError::Config("journal record window"))?;
        storage.program(w, at, bytes)?;
        self.written = end;
        self.filled = 0;
        self.window = [0xFF; WINDOW];
        Ok(())
    }

    /// Writes the CRC and the padding; returns where the entries start.
    pub(super) fn finish<F: NorFlash>(
        mut self,
        storage: &mut Storage<F>,
        w: &Writable,
    ) -> Result<u32, AgentError> {
        let crc = self.digest.clone().finalize().to_le_bytes();
        self.raw(storage, w, &crc)?;
        // Pad with erased bytes to a 16-byte boundary (programming 0xFF changes nothing).
        let total = self.total()?;
        let end = align16(total)
            .filter(|&e| e <= SECTOR)
            .ok_or_else(too_large)?;
        let pad = usize::try_from(end.saturating_sub(total)).map_err(|_| too_large())?;
        self.filled = self.filled.saturating_add(pad);
        self.flush(storage, w)?;
        Ok(end)
    }
}
