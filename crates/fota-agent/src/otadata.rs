//! otadata on the flash: read both entries, and carry out the write plans of
//! `fota_protocol::esp::otadata` the way ESP-IDF's `rewrite_ota_seq` does (erase the 4 KiB
//! sector, program the 32-byte entry). Each step is two flash operations, not atomic; the
//! planning module documents what a cut between them leaves.

use embedded_storage::nor_flash::NorFlash;
use fota_protocol::esp::otadata::{
    ENTRY_LEN, OtaSelectEntry, OtaState, Otadata, OtadataOp, OtadataPlan, SECTOR_SIZE,
};

use crate::error::AgentError;
use crate::flash::Storage;
use crate::layout::{Layout, Running};

/// Reads both otadata entries.
pub fn read<F: NorFlash>(storage: &mut Storage<F>, layout: &Layout) -> Result<Otadata, AgentError> {
    let mut a = [0u8; ENTRY_LEN];
    let mut b = [0u8; ENTRY_LEN];
    storage.read(layout.otadata(), 0, &mut a)?;
    storage.read(layout.otadata(), SECTOR_SIZE, &mut b)?;
    Ok(Otadata::decode(&a, &b))
}

/// Carries out `plan` in order.
pub fn apply<F: NorFlash>(
    storage: &mut Storage<F>,
    layout: &Layout,
    plan: &OtadataPlan,
) -> Result<(), AgentError> {
    for op in plan.iter() {
        apply_op(storage, layout, op)?;
    }
    Ok(())
}

/// One operation: erase the sector, then (for a write) program the entry.
pub fn apply_op<F: NorFlash>(
    storage: &mut Storage<F>,
    layout: &Layout,
    op: &OtadataOp,
) -> Result<(), AgentError> {
    let w = storage.writable(layout.otadata())?;
    let at = match op.sector() {
        0 => 0,
        1 => SECTOR_SIZE,
        _ => return Err(AgentError::Config("otadata sector")),
    };
    let end = at
        .checked_add(SECTOR_SIZE)
        .ok_or(AgentError::Config("otadata sector"))?;
    storage.erase(&w, at, end)?;
    if let OtadataOp::Write { entry, .. } = op {
        storage.program(&w, at, &entry.encode())?;
    }
    Ok(())
}

/// `esp_ota_get_state_partition` for the running app (`None` for factory or no entry).
pub fn running_state(ota: &Otadata, layout: &Layout, running: Running) -> Option<OtaState> {
    match running {
        Running::Ota(n) => ota.state_of_slot(u32::from(n), u32::from(layout.app_count())),
        Running::Factory => None,
    }
}

/// The sector and slot of the active entry, if any.
pub fn active_slot(ota: &Otadata, layout: &Layout) -> Option<(usize, u8)> {
    let (sector, slot) = ota.active_slot(u32::from(layout.app_count()))?;
    Some((sector, u8::try_from(slot).ok()?))
}

/// The active entry rewritten with `state`, same sector and sequence: how the agent re-arms a
/// trial (NEW) without going through `set_boot_partition`'s rules.
pub fn rewrite_active(ota: &Otadata, state: OtaState) -> Option<OtadataOp> {
    let sector = ota.active()?;
    let entry: OtaSelectEntry = *ota.entries.get(sector)?;
    Some(OtadataOp::Write {
        sector,
        entry: entry.rewritten(entry.seq, state),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use fota_flash_sim::{Config, SimFlash};
    use fota_protocol::esp::layouts;

    fn setup() -> (Storage<SimFlash>, Layout) {
        let flash = SimFlash::new(Config::ESP32.with_capacity(0x40_0000)).unwrap();
        let layout = Layout::from_table(&layouts::ecowatt(), 0x40_0000).unwrap();
        (Storage::new(flash).map_err(|e| e.0).unwrap(), layout)
    }

    #[test]
    fn each_write_is_one_erase_and_one_32_byte_program() {
        let (mut s, l) = setup();
        let plan = Otadata::ERASED.set_boot_partition(1, 2, true).unwrap();
        apply(&mut s, &l, &plan).unwrap();
        let stats = s.inner().stats();
        assert_eq!(
            (stats.erases, stats.programs, stats.program_bytes),
            (1, 1, 32)
        );
        let ota = read(&mut s, &l).unwrap();
        assert_eq!(active_slot(&ota, &l), Some((0, 1)));
        assert_eq!(
            running_state(&ota, &l, Running::Ota(1)),
            Some(OtaState::New)
        );
        assert_eq!(running_state(&ota, &l, Running::Ota(0)), None);
        assert_eq!(running_state(&ota, &l, Running::Factory), None);
        // Re-arming rewrites the same sector, same sequence.
        let op = rewrite_active(&ota, OtaState::Valid).unwrap();
        apply_op(&mut s, &l, &op).unwrap();
        let ota = read(&mut s, &l).unwrap();
        assert_eq!(ota.entries[0].seq, 2);
        assert_eq!(ota.entries[0].state, OtaState::Valid);
        assert!(rewrite_active(&Otadata::ERASED, OtaState::New).is_none());
    }

    #[test]
    fn otadata_writes_are_refused_when_otadata_overlaps_the_running_app() {
        let (mut s, l) = setup();
        s.protect(l.otadata());
        let plan = Otadata::ERASED.set_boot_partition(1, 2, true).unwrap();
        assert_eq!(apply(&mut s, &l, &plan), Err(AgentError::RunningSlot));
        assert_eq!(s.inner().ops(), 0);
    }
}
