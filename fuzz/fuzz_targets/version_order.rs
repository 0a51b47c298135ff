//! The version order on any bytes: two strings (split at the first NUL) compare without
//! panicking, antisymmetrically, and each equals itself.
#![no_main]

use core::cmp::Ordering;

use fota_protocol::version::{compare, is_version};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (a, b) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let (Ok(a), Ok(b)) = (core::str::from_utf8(a), core::str::from_utf8(b)) else {
        return;
    };
    assert_eq!(compare(a, a), Ordering::Equal);
    assert_eq!(compare(a, b), compare(b, a).reverse());
    if is_version(a) && !is_version(b) {
        assert_eq!(compare(a, b), Ordering::Greater);
    }
});
