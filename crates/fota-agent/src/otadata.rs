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
    storage.erase(&w, at, at + SECTOR_SIZE)?;
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
