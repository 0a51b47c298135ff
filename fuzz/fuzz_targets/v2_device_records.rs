//! The fixed-layout device API records: check-in, check-in answer, event.
#![no_main]

use fota_protocol::v2::{CheckIn, CheckInAnswer, Event};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = CheckIn::decode(data) {
        // Whatever decodes must encode back to the same bytes: the layout is canonical.
        assert_eq!(&c.encode().unwrap()[..], data);
    }
    if let Ok(a) = CheckInAnswer::decode(data) {
        assert_eq!(a.to_vec().unwrap(), data);
    }
    if let Ok(e) = Event::decode(data) {
        assert_eq!(e.to_vec().unwrap(), data);
    }
});
