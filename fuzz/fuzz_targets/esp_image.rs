//! The app image verifier, whole and streamed in arbitrary pieces: both must agree.
#![no_main]

use fota_protocol::esp::image::{self, ImageVerifier, VerifyOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&step, bytes)) = data.split_first() else { return };
    let opts = VerifyOptions { max_len: Some(0x14_0000), ..VerifyOptions::default() };
    let whole = image::verify(bytes, opts);
    let mut streamed = ImageVerifier::new(opts);
    let step = usize::from(step.max(1));
    let mut failed = false;
    for piece in bytes.chunks(step) {
        if streamed.update(piece).is_err() {
            failed = true;
            break;
        }
    }
    let streamed = if failed { None } else { Some(streamed.finish()) };
    if let Some(streamed) = streamed {
        assert_eq!(whole.is_ok(), streamed.is_ok(), "slice and stream verdicts differ");
    } else {
        assert!(whole.is_err(), "stream failed early on an image the slice API accepts");
    }
    let _ = image::ImagePrefix::parse(bytes, opts);
});
