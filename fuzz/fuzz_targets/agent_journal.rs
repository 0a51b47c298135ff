//! The agent's journal as it reads it back from flash after any reset: two sectors of
//! arbitrary bytes (torn writes, a core dump over them, foreign data) must decode to a state
//! or to "no journal", never panic, and a commit after opening must leave a readable journal,
//! also one that moves the time floors (the offline floor rides in an entry written before
//! the base, and a root rotation lowers the status floor).
#![no_main]

use fota_agent::flash::Storage;
use fota_agent::journal::{Blob, Journal, JournalState};
use fota_agent::layout::Layout;
use std::collections::BTreeMap;

use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};
use fota_protocol::esp::layouts;
use libfuzzer_sys::fuzz_target;

const JOURNAL: u32 = 0x3FE000; // last two sectors of coredump on the EcoWatt table

/// A 4 MiB NOR flash that only materialises the sectors it is given or asked to change, so
/// each run costs microseconds rather than a 4 MiB copy. NOR-AND programming, no strictness:
/// the journal's own power-safety is proven against fota-flash-sim in its tests.
#[derive(Default)]
struct SparseFlash(BTreeMap<u32, Box<[u8; 4096]>>);

impl SparseFlash {
    fn sector(&mut self, addr: u32) -> &mut [u8; 4096] {
        self.0.entry(addr / 4096).or_insert_with(|| Box::new([0xff; 4096]))
    }
    fn preload(&mut self, at: u32, data: &[u8]) {
        for (i, b) in data.iter().enumerate() {
            let a = at + i as u32;
            self.sector(a)[(a % 4096) as usize] = *b;
        }
    }
}

impl ErrorType for SparseFlash {
    type Error = NorFlashErrorKind;
}

impl ReadNorFlash for SparseFlash {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        if offset as usize + bytes.len() > self.capacity() {
            return Err(NorFlashErrorKind::OutOfBounds);
        }
        for (i, b) in bytes.iter_mut().enumerate() {
            let a = offset + i as u32;
            *b = self.0.get(&(a / 4096)).map_or(0xff, |s| s[(a % 4096) as usize]);
        }
        Ok(())
    }
    fn capacity(&self) -> usize {
        4 << 20
    }
}

impl NorFlash for SparseFlash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = 4096;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        if from % 4096 != 0 || to % 4096 != 0 || to as usize > self.capacity() || from > to {
            return Err(NorFlashErrorKind::NotAligned);
        }
        for s in (from..to).step_by(4096) {
            *self.sector(s) = [0xff; 4096];
        }
        Ok(())
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        if offset % 4 != 0 || bytes.len() % 4 != 0 {
            return Err(NorFlashErrorKind::NotAligned);
        }
        if offset as usize + bytes.len() > self.capacity() {
            return Err(NorFlashErrorKind::OutOfBounds);
        }
        for (i, b) in bytes.iter().enumerate() {
            let a = offset + i as u32;
            self.sector(a)[(a % 4096) as usize] &= *b;
        }
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = JournalState::decode(data);

    let mut flash = SparseFlash::default();
    flash.preload(0x8000, &layouts::ecowatt().encode(true).unwrap());
    flash.preload(JOURNAL, &data[..data.len().min(0x2000)]);

    let Ok(mut storage) = Storage::new(flash) else { return };
    let mut scratch = [0u8; 0xC00];
    let layout = Layout::discover(&mut storage, &mut scratch).expect("built-in table");
    assert_eq!(layout.journal().offset(), JOURNAL);
    if let Ok(mut journal) = Journal::open(&mut storage, layout.journal()) {
        let mut state = journal.state().clone();
        if journal.commit(&mut storage, &state, Blob::Keep, Blob::Keep).is_ok() {
            let again = Journal::open(&mut storage, layout.journal()).expect("committed journal reads back");
            assert_eq!(again.state(), &state);
        }
        let floor = |at: usize| data.get(at..at + 8).map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()));
        state.status_floor = floor(0);
        state.offline_floor = state.offline_floor.max(floor(8));
        if journal.commit(&mut storage, &state, Blob::Keep, Blob::Keep).is_ok() {
            let again = Journal::open(&mut storage, layout.journal()).expect("committed journal reads back");
            assert_eq!(again.state(), &state);
        }
    }
});
