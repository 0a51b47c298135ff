//! Hash-list paging: header check, table verifier fed in arbitrary pieces, page verification.
#![no_main]

use fota_protocol::v2::hashlist::HashListLayout;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 12 {
        return;
    }
    let image_size = u64::from(u32::from_le_bytes(data[0..4].try_into().unwrap()));
    let chunk_size = 1024u32 << (data[4] % 7);
    let split = usize::from(data[5]);
    let page = u32::from(data[6]);
    let rest = &data[12..];
    let Ok(layout) = HashListLayout::new(image_size, chunk_size) else { return };
    let _ = layout.check_header(rest);
    let mut verifier = layout.table_verifier(&[0; 32]);
    verifier.want_page(page);
    let (a, b) = rest.split_at(split.min(rest.len()));
    let _ = verifier.update(a).and_then(|()| verifier.update(b));
    let _ = verifier.finish();
    if let Ok(p) = layout.verify_page(page, rest, &[0; 32]) {
        let _ = p.verify_chunk(p.chunks().start, rest);
    }
});
