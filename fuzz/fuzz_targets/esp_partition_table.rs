//! The binary partition table as the bootloader and the agent read it from flash.
#![no_main]

use fota_protocol::esp::partition::PartitionTable;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(table) = PartitionTable::parse(data, 4 << 20) {
        let layout = table.boot_layout();
        let _ = layout.ota_contiguous();
        // A table that parses encodes to bytes that parse to the same table.
        if let Ok(bytes) = table.encode(table.md5().is_some()) {
            let again = PartitionTable::parse(&bytes, 4 << 20).expect("re-encoded table parses");
            assert_eq!(again.as_slice(), table.as_slice());
        }
    }
});
