//! The gen_esp32part CSV reader (operators hand it files; it must never panic).
#![no_main]

use fota_protocol::esp::csv;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(table) = csv::parse(text) {
            let _ = table.encode(true);
        }
    }
});
