//! otadata sectors as read from flash, through the bootloader's selection and the app-side
//! write planning, over both built-in layouts.
#![no_main]

use fota_protocol::esp::{layouts, otadata};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 65 {
        return;
    }
    let s0: &[u8; 32] = data[0..32].try_into().unwrap();
    let s1: &[u8; 32] = data[32..64].try_into().unwrap();
    let rollback = data[64] & 1 == 1;
    let slot = data[64] >> 1;
    for table in [layouts::ecowatt(), layouts::two_ota()] {
        let layout = table.boot_layout();
        let selection = otadata::select_boot([s0, s1], &layout, rollback);
        let _ = selection.to_string();
        let ota = otadata::Otadata::decode(s0, s1);
        let _ = ota.active_slot(layout.app_count);
        let _ = ota.set_boot_partition(u32::from(slot), layout.app_count, rollback);
        let _ = ota.mark_valid(layout.app_count);
        let _ = ota.mark_invalid(layout.app_count, rollback);
        let _ = ota.invalidate_inactive(layout.app_count, otadata::BootIndex::Ota(u32::from(slot)));
    }
});
