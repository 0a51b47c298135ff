//! App images: the esptool golden, the builder, every check of the verifier, streaming.

use fota_protocol::esp::build::{
    self, AppImageSpec, DEFAULT_PROJECT, MAX_IMAGE_SIZE, MIN_IMAGE_SIZE, assemble, build_app_image,
    default_header,
};
use fota_protocol::esp::image::{
    self, AppDesc, BOOT_FAILS_MARKER, HashCheck, ImageError, ImagePart, ImagePrefix, ImageVerifier,
    PREFIX_LEN, VerifyOptions,
};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

/// mkelf.py defaults through `esptool elf2image` (research/device.md §3).
const GOLDEN: &[u8] = include_bytes!("../data/mkelf_1.2.3_seed0.bin");

fn opts() -> VerifyOptions {
    VerifyOptions::default()
}

#[test]
fn esptool_golden_is_valid_with_known_checksum_and_hash() {
    assert_eq!(
        hex::encode(Sha256::digest(GOLDEN)),
        "317661c69b548b17316774ff02d8bbc63105cdd7bc13bf0dbf2fb2a9a7971060"
    );
    let r = image::verify(GOLDEN, opts()).unwrap();
    assert_eq!(r.checksum, Some((0xf2, 0xf2)));
    match r.hash {
        HashCheck::Checked { stored, computed } => {
            assert_eq!(stored, computed);
            assert_eq!(
                hex::encode(stored),
                "691648e6ffd4e2fc3ccb8d32cc82738c415aba63984b4cd77d6c709d4f616db5"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r.image_len, Some(204_912));
    let addrs: Vec<u32> = r.segments().iter().map(|s| s.load_addr).collect();
    assert_eq!(
        addrs,
        vec![
            0x3f40_0020,
            0x3ffb_0000,
            0x400d_0020,
            0x3ffb_0ef0,
            0x4008_0000
        ]
    );
    let d = r.app_desc.unwrap();
    assert_eq!(d.version(), Some("1.2.3"));
    assert_eq!(d.project_name(), Some("fota_demo"));
    assert_eq!(d.secure_version, 0);
    assert!(!d.boot_fails());
    let h = r.header.unwrap();
    assert_eq!(
        (h.spi_mode_name(), h.flash_freq_name()),
        (Some("DIO"), Some("40m"))
    );
    assert_eq!(h.flash_size(), Some(0x20_0000));
    assert_eq!(h.max_chip_rev_full, 399);
}

#[test]
fn esptool_negative_vectors() {
    // Flipping a payload byte: checksum invalid (calculated 0xf3) and hash invalid.
    let mut b = GOLDEN.to_vec();
    b[0x200] ^= 0x01;
    let r = image::inspect(&b, opts());
    assert_eq!(r.checksum, Some((0xf2, 0xf3)));
    assert!(matches!(
        r.error,
        Some(ImageError::Checksum {
            stored: 0xf2,
            computed: 0xf3,
            ..
        })
    ));
    assert!(matches!(r.hash, HashCheck::Checked { stored, computed } if stored != computed));
    // Flipping the last byte: checksum valid, hash invalid.
    let mut b = GOLDEN.to_vec();
    *b.last_mut().unwrap() ^= 0x01;
    let r = image::inspect(&b, opts());
    assert!(r.checksum_valid());
    assert!(
        matches!(r.error, Some(ImageError::Hash { offset, .. }) if offset as usize == GOLDEN.len() - 32)
    );
    // Truncated.
    let r = image::verify(&GOLDEN[..GOLDEN.len() - 100], opts());
    assert!(matches!(r, Err(ImageError::Truncated { .. })));
    // Padded with 0xFF to 1 MiB: still valid, length reported.
    let mut b = GOLDEN.to_vec();
    b.resize(0x10_0000, 0xFF);
    let r = image::verify(&b, opts()).unwrap();
    assert_eq!(r.image_len, Some(204_912));
}

#[test]
fn builder_makes_smallest_valid_image() {
    for size in [
        MIN_IMAGE_SIZE,
        MIN_IMAGE_SIZE + 1,
        5000,
        0xFFFF,
        0x1_0000,
        0x1_0870,
        0x1_08A0,
        0x2_0000,
        200 * 1024 + 3,
        MAX_IMAGE_SIZE - 1,
        MAX_IMAGE_SIZE,
    ] {
        let spec = AppImageSpec {
            size,
            ..AppImageSpec::new("1.0.6")
        };
        let img = build_app_image(&spec).unwrap();
        assert_eq!(img.len() as u32, size.div_ceil(16) * 16, "size {size:#x}");
        let r = image::verify(&img, opts()).unwrap_or_else(|e| panic!("size {size:#x}: {e}"));
        let d = r.app_desc.unwrap();
        assert_eq!(d.version(), Some("1.0.6"));
        assert_eq!(d.project_name(), Some(DEFAULT_PROJECT));
        let has_irom = r.segments().iter().any(|s| s.load_addr == 0x400D_0020);
        assert_eq!(has_irom, r.segments().len() == 3);
        assert_eq!(r.header.unwrap().entry_addr, build::ENTRY_ADDR);
        // Deterministic.
        assert_eq!(build_app_image(&spec).unwrap(), img);
    }
    assert!(
        build_app_image(&AppImageSpec {
            size: MIN_IMAGE_SIZE - 1,
            ..AppImageSpec::new("1")
        })
        .is_err()
    );
    assert!(
        build_app_image(&AppImageSpec {
            size: MAX_IMAGE_SIZE + 1,
            ..AppImageSpec::new("1")
        })
        .is_err()
    );
    assert!(build_app_image(&AppImageSpec::new(&"v".repeat(32))).is_err());
}

#[test]
fn boot_fails_marker_changes_nothing_else() {
    let spec = AppImageSpec {
        secure_version: 3,
        project: "inverter".into(),
        ..AppImageSpec::new("2.0.0")
    };
    let ok = image::verify(&build_app_image(&spec).unwrap(), opts()).unwrap();
    let fails_spec = AppImageSpec {
        boot_fails: true,
        ..spec
    };
    let img = build_app_image(&fails_spec).unwrap();
    let bad = image::verify(&img, opts()).unwrap();
    let (a, b) = (ok.app_desc.unwrap(), bad.app_desc.unwrap());
    assert!(!a.boot_fails() && b.boot_fails());
    assert_eq!(
        (a.version, a.project_name, a.secure_version),
        (b.version, b.project_name, b.secure_version)
    );
    assert_eq!(&img[0xD8..0xDC], &BOOT_FAILS_MARKER.to_le_bytes());
}

#[test]
fn prefix_checks_from_the_first_chunk() {
    let img = build_app_image(&AppImageSpec::new("1.0.6")).unwrap();
    let p = ImagePrefix::parse(&img[..PREFIX_LEN], opts()).unwrap();
    assert_eq!(p.app_desc.version(), Some("1.0.6"));
    assert_eq!(p.first_segment.data_offset, 0x20);
    assert!(matches!(
        ImagePrefix::parse(&img[..PREFIX_LEN - 1], opts()),
        Err(ImageError::Truncated { .. })
    ));
    let mut b = img.clone();
    b[12] = 5; // ESP32-C3 chip id
    assert_eq!(
        ImagePrefix::parse(&b, opts()),
        Err(ImageError::ChipMismatch {
            offset: 12,
            expected: 0,
            found: 5
        })
    );
    let mut b = img.clone();
    b[0x20] ^= 1;
    assert!(matches!(
        ImagePrefix::parse(&b, opts()),
        Err(ImageError::AppDescMagic { offset: 0x20, .. })
    ));
    // A partition table or a merged flash image is not an app image.
    let table = fota_protocol::esp::layouts::ecowatt().encode(true).unwrap();
    assert!(matches!(
        ImagePrefix::parse(&table, opts()),
        Err(ImageError::BadMagic {
            offset: 0,
            found: 0xAA
        })
    ));
}

fn desc_segment(extra: usize) -> Vec<u8> {
    let mut d = AppDesc::EMPTY;
    d.set_version("t").unwrap();
    let mut v = d.encode().to_vec();
    v.resize(256 + extra, 0x5A);
    v
}

#[test]
fn each_structural_check() {
    let seg0 = desc_segment(0);
    let ok = assemble(
        default_header(),
        &[(0x3F40_0020, &seg0), (0x4008_0000, &[1, 2, 3, 4])],
    );
    image::verify(&ok, opts()).unwrap();

    let mut b = ok.clone();
    b[0] = 0xE8;
    assert!(matches!(
        image::verify(&b, opts()),
        Err(ImageError::BadMagic { .. })
    ));
    let mut b = ok.clone();
    b[1] = 17;
    assert!(matches!(
        image::verify(&b, opts()),
        Err(ImageError::SegmentCount { count: 17, .. })
    ));
    let mut b = ok.clone();
    b[23] = 2;
    assert!(matches!(
        image::verify(&b, opts()),
        Err(ImageError::HashAppendedFlag {
            offset: 23,
            value: 2
        })
    ));
    // Chip revision range.
    let rev = |r| VerifyOptions {
        chip_revision: Some(r),
        ..opts()
    };
    image::verify(&ok, rev(300)).unwrap();
    assert!(matches!(
        image::verify(&ok, rev(400)),
        Err(ImageError::ChipRevision { offset: 17, .. })
    ));
    // Segment length not a multiple of 4.
    let bad = assemble(
        default_header(),
        &[(0x3F40_0020, &seg0), (0x4008_0000, &[1, 2, 3])],
    );
    assert!(matches!(
        image::verify(&bad, opts()),
        Err(ImageError::SegmentLength {
            index: 1,
            len: 3,
            offset: 0x124
        })
    ));
    // Segment 0 too short for the descriptor.
    let bad = assemble(default_header(), &[(0x3F40_0020, &seg0[..252])]);
    assert!(matches!(
        image::verify(&bad, opts()),
        Err(ImageError::FirstSegmentTooShort { len: 252, .. })
    ));
    // Flash-mapped segment at a non-congruent offset.
    let bad = assemble(
        default_header(),
        &[(0x3F40_0020, &seg0), (0x400D_0020, &[0; 16])],
    );
    assert!(matches!(
        image::verify(&bad, opts()),
        Err(ImageError::MmuAlignment {
            index: 1,
            load_addr: 0x400D_0020,
            ..
        })
    ));
    let bad = assemble(default_header(), &[(0x3F40_0000, &seg0)]);
    assert!(matches!(
        image::verify(&bad, opts()),
        Err(ImageError::MmuAlignment { index: 0, .. })
    ));
    // Too large for the partition.
    let small = VerifyOptions {
        max_len: Some(ok.len() as u32 - 1),
        ..opts()
    };
    assert!(matches!(
        image::verify(&ok, small),
        Err(ImageError::TooLarge { .. })
    ));
    let exact = VerifyOptions {
        max_len: Some(ok.len() as u32),
        ..opts()
    };
    image::verify(&ok, exact).unwrap();
}

#[test]
fn no_hash_image_is_valid_on_checksum_alone() {
    let seg0 = desc_segment(4);
    let mut h = default_header();
    h.hash_appended = 0;
    let img = assemble(h, &[(0x3F40_0020, &seg0)]);
    assert_eq!(img.len() % 16, 0);
    let r = image::verify(&img, opts()).unwrap();
    assert_eq!(r.hash, HashCheck::NotAppended);
    assert_eq!(r.image_len, Some(img.len() as u32));
    let mut b = img.clone();
    b[0x40] ^= 0x10;
    assert!(matches!(
        image::verify(&b, opts()),
        Err(ImageError::Checksum { .. })
    ));
}

#[test]
fn truncation_names_the_part() {
    let img = build_app_image(&AppImageSpec::new("1")).unwrap();
    let cases = [
        (10, ImagePart::Header),
        (28, ImagePart::SegmentHeader(0)),
        (100, ImagePart::SegmentData(0)),
        (img.len() - 40, ImagePart::Padding),
        (img.len() - 33, ImagePart::Checksum),
        (img.len() - 1, ImagePart::Hash),
    ];
    for (len, part) in cases {
        assert_eq!(
            image::verify(&img[..len], opts()),
            Err(ImageError::Truncated {
                offset: len as u32,
                part
            }),
            "len {len}"
        );
    }
}

/// Every byte of a built image is covered when a hash is appended (the header's flash
/// parameters and the padding by the SHA-256), with one exception: clearing
/// `hash_appended` turns the image into a valid no-hash image whose old hash is trailing
/// data, which esptool accepts too; the report says "not appended".
#[test]
fn every_single_byte_corruption_is_rejected() {
    let img = build_app_image(&AppImageSpec {
        size: MIN_IMAGE_SIZE,
        ..AppImageSpec::new("9.9.9")
    })
    .unwrap();
    for pos in 0..img.len() {
        for flip in [0x01u8, 0x80] {
            let mut b = img.clone();
            b[pos] ^= flip;
            let r = image::verify(&b, opts());
            if pos == 23 && flip == 0x01 {
                assert_eq!(r.unwrap().hash, HashCheck::NotAppended);
                continue;
            }
            assert!(r.is_err(), "pos {pos:#x} ^{flip:#x}");
        }
    }
}

/// Without a hash, only the checksum protects: the padding and the header's flash
/// parameters, revisions and reserved bytes are not covered and stay valid, while every
/// segment data byte and the checksum byte are.
#[test]
fn without_hash_padding_and_flash_params_are_uncovered() {
    let seg0 = desc_segment(8);
    let mut h = default_header();
    h.hash_appended = 0;
    let img = assemble(h, &[(0x3F40_0020, &seg0)]);
    let data = 32..32 + seg0.len();
    let padding = 32 + seg0.len()..img.len() - 1;
    for pos in 0..img.len() {
        let mut b = img.clone();
        b[pos] ^= 0x01;
        let r = image::verify(&b, opts());
        if (2..=11).contains(&pos) || (14..=22).contains(&pos) || padding.contains(&pos) {
            assert!(r.is_ok(), "pos {pos} is not covered by any check");
        } else if data.contains(&pos) || pos == img.len() - 1 || [0, 1, 12, 13, 23].contains(&pos) {
            assert!(r.is_err(), "pos {pos} must be rejected");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Streaming in random pieces gives exactly the slice verdict and report.
    #[test]
    fn streaming_equals_slice(
        size in MIN_IMAGE_SIZE..0x2_2000u32,
        cuts in proptest::collection::vec(1usize..5000, 1..40),
        corrupt in proptest::option::of((any::<prop::sample::Index>(), 1u8..=255)),
        trailing in 0usize..100,
    ) {
        let mut img = build_app_image(&AppImageSpec { size, ..AppImageSpec::new("1.2.3") }).unwrap();
        if let Some((at, flip)) = corrupt {
            let i = at.index(img.len());
            img[i] ^= flip;
        }
        img.extend(core::iter::repeat_n(0xFF, trailing));
        let whole = image::inspect(&img, opts());
        let mut v = ImageVerifier::new(opts());
        let mut rest = &img[..];
        for c in cuts.iter().cycle() {
            if rest.is_empty() { break; }
            let n = (*c).min(rest.len());
            let _ = v.update(&rest[..n]);
            rest = &rest[n..];
        }
        prop_assert_eq!(v.into_report(), whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000), cut in 1usize..64) {
        let _ = image::inspect(&bytes, opts());
        let _ = ImagePrefix::parse(&bytes, opts());
        let mut v = ImageVerifier::new(VerifyOptions { max_len: Some(1000), chip_revision: Some(100), ..opts() });
        for piece in bytes.chunks(cut) {
            let _ = v.update(piece);
        }
        let _ = v.finish();
    }

    /// Plausible headers with random segment tables never panic either.
    #[test]
    fn random_segment_tables_never_panic(
        count in 0u8..20,
        segs in proptest::collection::vec((any::<u32>(), any::<u32>()), 0..20),
        tail in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let mut b = default_header().encode().to_vec();
        b[1] = count;
        for (addr, len) in segs {
            b.extend_from_slice(&addr.to_le_bytes());
            b.extend_from_slice(&(len % 0x2000).to_le_bytes());
            b.extend_from_slice(&tail);
        }
        let _ = image::inspect(&b, opts());
    }

    #[test]
    fn app_desc_round_trip(bytes in proptest::collection::vec(any::<u8>(), 256)) {
        let d = AppDesc::from_bytes(&bytes).unwrap();
        prop_assert_eq!(d.encode().to_vec(), bytes);
    }

    #[test]
    fn header_round_trip(bytes in proptest::collection::vec(any::<u8>(), 24)) {
        let h = image::ImageHeader::decode(&bytes.clone().try_into().unwrap());
        prop_assert_eq!(h.encode().to_vec(), bytes);
    }
}
