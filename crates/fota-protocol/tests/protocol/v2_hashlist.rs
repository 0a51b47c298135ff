//! v2 chunk hash list: building, streaming table verification, page and chunk checks.

use crate::common::*;
use fota_protocol::v2::hashlist::{self, HASHES_PER_PAGE, HashListLayout, PAGE_LEN};
use fota_protocol::v2::{Error, FieldCheck, Manifest};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

/// What a device does: verify the table in pieces of `piece` bytes, then every page by byte
/// range, then every chunk against its page. Returns the number of chunks checked.
fn device_check(
    image: &[u8],
    blob: &[u8],
    manifest: &Manifest,
    piece: usize,
) -> Result<u32, Error> {
    let layout = HashListLayout::for_manifest(manifest)?;
    let table = layout.table_range();
    let mut digests = Vec::new();
    let mut v = layout.table_verifier(&manifest.body().chunk_list_sha256);
    v.want_page(layout.page_count() - 1);
    for part in blob[table.start as usize..table.end as usize].chunks(piece.max(1)) {
        v.update_with(part, |p, d| digests.push((p, *d)))?;
    }
    let last = v.finish()?;
    assert_eq!(digests.len(), layout.page_count() as usize);
    assert_eq!(last, Some(digests.last().unwrap().1));

    let mut checked = 0;
    for (p, digest) in digests {
        let r = layout.page_range(p).unwrap();
        let page = layout.verify_page(p, &blob[r.start as usize..r.end as usize], &digest)?;
        for i in page.chunks() {
            let off = layout.chunk_offset(i).unwrap() as usize;
            let len = layout.chunk_len(i).unwrap();
            page.verify_chunk(i, &image[off..off + len])?;
            assert_eq!(
                layout.chunk_hash_offset(i).unwrap(),
                r.start + 32 * u64::from(i - p * HASHES_PER_PAGE)
            );
            checked += 1;
        }
    }
    Ok(checked)
}

fn setup(len: usize, chunk_size: u32) -> (Vec<u8>, Vec<u8>, Manifest) {
    let img = image(len);
    let (body, list) = manifest_body(&img, chunk_size);
    let manifest = Manifest::verify(&root(), &manifest_bytes(&body)).unwrap();
    (img, list.blob, manifest)
}

#[test]
fn one_page() {
    let (img, blob, m) = setup(5000, 1024);
    let layout = HashListLayout::for_manifest(&m).unwrap();
    assert_eq!((layout.chunk_count(), layout.page_count()), (5, 1));
    assert_eq!(layout.table_range(), 0..48);
    assert_eq!(layout.page_range(0), Some(48..48 + 5 * 32));
    assert_eq!(layout.page_range(1), None);
    assert_eq!(blob.len() as u64, layout.total_len());
    assert_eq!(&blob[..16], &layout.header());
    assert_eq!(device_check(&img, &blob, &m, 7), Ok(5));
}

#[test]
fn many_pages_with_a_partial_last_page() {
    // 300 chunks: pages of 128, 128 and 44.
    let (img, blob, m) = setup(300 * 1024 - 100, 1024);
    let layout = HashListLayout::for_manifest(&m).unwrap();
    assert_eq!((layout.chunk_count(), layout.page_count()), (300, 3));
    assert_eq!(layout.page_len(0), Some(PAGE_LEN));
    assert_eq!(layout.page_len(2), Some(44 * 32));
    assert_eq!(layout.page_of(255), Some(1));
    assert_eq!(layout.page_of(256), Some(2));
    assert_eq!(layout.page_of(300), None);
    assert_eq!(layout.chunk_len(299), Some(1024 - 100));
    assert_eq!(layout.chunk_hash_offset(300), None);
    assert_eq!(device_check(&img, &blob, &m, 1), Ok(300));
    assert_eq!(device_check(&img, &blob, &m, 4096), Ok(300));
}

#[test]
fn page_boundaries() {
    for chunks in [127usize, 128, 129, 256, 257] {
        let (img, blob, m) = setup(chunks * 1024, 1024);
        let layout = HashListLayout::for_manifest(&m).unwrap();
        assert_eq!(layout.page_count() as usize, chunks.div_ceil(128));
        assert_eq!(device_check(&img, &blob, &m, 33), Ok(chunks as u32));
    }
}

#[test]
fn page_and_chunk_checks_fail_closed() {
    let (img, blob, m) = setup(200 * 1024, 1024);
    let layout = HashListLayout::for_manifest(&m).unwrap();
    let mut v = layout.table_verifier(&m.body().chunk_list_sha256);
    v.want_page(1);
    v.update(&blob[..layout.table_range().end as usize])
        .unwrap();
    let d1 = v.finish().unwrap().unwrap();
    let r1 = layout.page_range(1).unwrap();
    let page1 = &blob[r1.start as usize..r1.end as usize];

    // Page 1's bytes under page 0's number: wrong length here, and a wrong digest anyway.
    assert!(matches!(
        layout.verify_page(0, page1, &d1),
        Err(Error::PageLength { page: 0, .. })
    ));
    let mut bad = page1.to_vec();
    bad[100] ^= 1;
    assert_eq!(
        layout.verify_page(1, &bad, &d1).unwrap_err(),
        Error::PageDigestMismatch { page: 1 }
    );
    assert_eq!(
        layout.verify_page(2, page1, &d1).unwrap_err(),
        Error::PageIndex {
            page: 2,
            page_count: 2
        }
    );
    assert!(matches!(
        layout.verify_page(1, &page1[..page1.len() - 32], &d1),
        Err(Error::PageLength { .. })
    ));

    let page = layout.verify_page(1, page1, &d1).unwrap();
    assert_eq!(page.chunks(), 128..200);
    let chunk = |i: usize| &img[i * 1024..(i + 1) * 1024];
    assert_eq!(page.verify_chunk(130, chunk(130)), Ok(()));
    // A valid chunk at another index (reordering, mix-and-match) is refused.
    assert_eq!(
        page.verify_chunk(130, chunk(131)).unwrap_err(),
        Error::ChunkHashMismatch { index: 130 }
    );
    assert_eq!(
        page.verify_chunk(5, chunk(5)).unwrap_err(),
        Error::ChunkIndex { index: 5, page: 1 }
    );
    assert_eq!(
        page.verify_chunk(200, chunk(199)).unwrap_err(),
        Error::ChunkIndex {
            index: 200,
            page: 1
        }
    );
    assert_eq!(
        page.verify_chunk(130, &chunk(130)[..1000]).unwrap_err(),
        Error::ChunkLength {
            index: 130,
            expected: 1024,
            found: 1000
        }
    );
    let mut flipped = chunk(150).to_vec();
    flipped[0] ^= 0x40;
    assert_eq!(
        page.verify_chunk(150, &flipped).unwrap_err(),
        Error::ChunkHashMismatch { index: 150 }
    );
    assert_eq!(
        page.chunk_hash(150).unwrap(),
        &<[u8; 32]>::from(Sha256::digest(chunk(150)))
    );
}

#[test]
fn table_verification_failures() {
    let (_, blob, m) = setup(200 * 1024, 1024);
    let layout = HashListLayout::for_manifest(&m).unwrap();
    let table = &blob[..layout.table_range().end as usize];
    let expected = m.body().chunk_list_sha256;

    // Every byte of the header and the table is covered.
    for i in 0..table.len() {
        let mut t = table.to_vec();
        t[i] ^= 0x10;
        let mut v = layout.table_verifier(&expected);
        let r = v.update(&t).and_then(|()| v.finish().map(|_| ()));
        assert!(r.is_err(), "byte {i} corruption accepted");
    }
    let mut t = table.to_vec();
    t[4] ^= 1;
    assert_eq!(
        layout.table_verifier(&expected).update(&t).unwrap_err(),
        Error::Field {
            field: "chunk_count",
            offset: 4,
            check: FieldCheck::Inconsistent
        }
    );
    let mut t = table.to_vec();
    t[40] ^= 1;
    let mut v = layout.table_verifier(&expected);
    v.update(&t).unwrap();
    assert_eq!(v.finish().unwrap_err(), Error::TableDigestMismatch);

    let mut v = layout.table_verifier(&expected);
    v.update(&table[..20]).unwrap();
    assert!(matches!(
        v.clone().finish(),
        Err(Error::TableLength { fed: 20, .. })
    ));
    assert!(matches!(
        v.update(&blob[20..table.len() + 1]),
        Err(Error::TableLength { .. })
    ));

    // A header for another geometry.
    let other = HashListLayout::new(100 * 1024, 1024).unwrap();
    assert!(layout.check_header(&other.header()).is_err());
    assert!(layout.check_header(&blob[..10]).is_err());
    assert_eq!(layout.check_header(&blob[..16]), Ok(()));
}

#[test]
fn layout_checks_sizes() {
    assert!(HashListLayout::new(0, 1024).is_err());
    assert!(HashListLayout::new(1, 1000).is_err());
    assert!(HashListLayout::new(1, 512).is_err());
    assert!(HashListLayout::new((16 << 20) + 1, 65536).is_err());
    let max = HashListLayout::new(16 << 20, 1024).unwrap();
    assert_eq!((max.chunk_count(), max.page_count()), (16384, 128));
    assert_eq!(max.table_range().end, 16 + 128 * 32);
    assert!(hashlist::build(&[], 1024).is_err());
    assert!(hashlist::build(&[1], 3000).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn built_lists_verify(len in 1usize..600_000, shift in 10u32..=13, piece in 1usize..5000) {
        let (img, blob, m) = setup(len, 1 << shift);
        let n = len.div_ceil(1 << shift) as u32;
        prop_assert_eq!(device_check(&img, &blob, &m, piece), Ok(n));
    }

    #[test]
    fn hash_list_parsers_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..5000),
        page in any::<u32>(),
        index in any::<u32>(),
        digest in any::<[u8; 32]>(),
        image_size in 1u64..=16 << 20,
        shift in 10u32..=16,
        any_size in any::<u64>(),
        any_chunk in any::<u32>(),
    ) {
        let _ = HashListLayout::new(any_size, any_chunk);
        if let Ok(layout) = HashListLayout::new(image_size, 1 << shift) {
            let _ = layout.check_header(&bytes);
            let _ = layout.page_range(page);
            let _ = layout.chunk_hash_offset(index);
            let _ = layout.chunk_len(index);
            let mut v = layout.table_verifier(&digest);
            v.want_page(page);
            let _ = v.update(&bytes);
            let _ = v.finish();
            if let Ok(p) = layout.verify_page(page, &bytes, &digest) {
                let _ = p.verify_chunk(index, &bytes);
            }
        }
    }
}
