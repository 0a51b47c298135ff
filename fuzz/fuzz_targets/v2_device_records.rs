//! The fixed-layout device API records: check-in (formats 1 and 2, with the attribute
//! section), check-in answer, event (formats 1 and 2).
#![no_main]

use fota_protocol::v2::{CheckIn, CheckInAnswer, Event};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = CheckIn::decode(data) {
        // Whatever decodes must encode back to the same bytes: the layout is canonical.
        assert_eq!(c.to_vec().unwrap(), data);
    }
    if let Ok(a) = CheckInAnswer::decode(data) {
        assert_eq!(a.to_vec().unwrap(), data);
    }
    if let Ok(e) = Event::decode(data) {
        // Events are written in the newest format; the layouts are the same bytes.
        let mut want = data.to_vec();
        want[4..6].copy_from_slice(&fota_protocol::v2::event::FMT_VERSION.to_le_bytes());
        assert_eq!(e.to_vec().unwrap(), want);
    }
});
