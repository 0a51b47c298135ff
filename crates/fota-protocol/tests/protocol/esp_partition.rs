//! Partition table: goldens from gen_esp32part, the bootloader's rejection rules, the CSV
//! reader, and property tests.

use fota_protocol::esp::csv::{self, CsvErrorKind};
use fota_protocol::esp::layouts;
use fota_protocol::esp::partition::{
    AppSubtype, DataSubtype, ENTRY_LEN, MAX_PARTITIONS, Partition, PartitionKind, PartitionTable,
    TABLE_MAX_LEN, TableError,
};
use proptest::prelude::*;

const FLASH_4M: u32 = 0x40_0000;
const ECOWATT_BIN: &[u8] = include_bytes!("../data/ecowatt.bin");
const TWO_OTA_BIN: &[u8] = include_bytes!("../data/two_ota.bin");

fn md5_row_digest(bin: &[u8], entries: usize) -> String {
    let row = &bin[entries * ENTRY_LEN..(entries + 1) * ENTRY_LEN];
    assert_eq!(&row[..2], &[0xEB, 0xEB]);
    assert!(row[2..16].iter().all(|&b| b == 0xFF));
    hex::encode(&row[16..])
}

#[test]
fn ecowatt_matches_gen_esp32part_byte_for_byte() {
    let bin = layouts::ecowatt().encode(true).unwrap();
    assert_eq!(md5_row_digest(&bin, 6), "972dae2ff872a0142d60bad124c0666b");
    assert_eq!(&bin[..], ECOWATT_BIN);
    let from_csv = csv::parse(layouts::ECOWATT_CSV).unwrap();
    assert_eq!(from_csv, layouts::ecowatt());
}

#[test]
fn two_ota_matches_gen_esp32part_byte_for_byte() {
    let bin = layouts::two_ota().encode(true).unwrap();
    assert_eq!(md5_row_digest(&bin, 6), "bf25822c0fa6d8641bd930251e06b4c4");
    assert_eq!(&bin[..], TWO_OTA_BIN);
    assert_eq!(
        &bin[..12],
        &hex::decode("aa5001020090000000400000").unwrap()[..]
    );
    let from_csv = csv::parse(layouts::TWO_OTA_CSV).unwrap();
    assert_eq!(from_csv, layouts::two_ota());
}

#[test]
fn golden_tables_parse_with_bootloader_rules() {
    let t = PartitionTable::parse(ECOWATT_BIN, FLASH_4M).unwrap();
    assert_eq!(t, layouts::ecowatt().clone_with_md5());
    assert_eq!(t.len(), 6);
    let app0 = t.find_by_label("app0").unwrap();
    assert_eq!((app0.offset, app0.size), (0x1_0000, 0x14_0000));
    assert_eq!(app0.kind(), PartitionKind::App(AppSubtype::Ota(0)));
    let layout = t.boot_layout();
    assert_eq!(layout.app_count, 2);
    assert!(layout.ota_contiguous());
    assert!(layout.factory.is_none());
    assert_eq!(layout.otadata.unwrap().offset, 0xE000);
    assert_eq!(layout.slot(1).unwrap().offset, 0x15_0000);
    assert!(layout.slot(2).is_none());

    let t = PartitionTable::parse(TWO_OTA_BIN, FLASH_4M).unwrap();
    let layout = t.boot_layout();
    assert_eq!(layout.factory.unwrap().offset, 0x1_0000);
    assert_eq!(layout.otadata.unwrap().offset, 0xD000);
    assert_eq!(
        t.find_kind(PartitionKind::Data(DataSubtype::Phy))
            .unwrap()
            .label_str(),
        Some("phy_init")
    );
}

trait WithMd5 {
    fn clone_with_md5(&self) -> PartitionTable;
}

impl WithMd5 for PartitionTable {
    fn clone_with_md5(&self) -> PartitionTable {
        PartitionTable::parse(&self.encode(true).unwrap(), u32::MAX).unwrap()
    }
}

#[test]
fn bootloader_rejections() {
    let good = ECOWATT_BIN.to_vec();
    // Entry out of chip bounds: the 4 MiB table on a 2 MiB chip.
    assert!(matches!(
        PartitionTable::parse(&good, 0x20_0000),
        Err(TableError::EntryOutOfBounds { offset: 0x60, .. })
    ));
    // Bad MD5.
    let mut bad = good.clone();
    bad[6 * 32 + 20] ^= 1;
    assert!(matches!(
        PartitionTable::parse(&bad, FLASH_4M),
        Err(TableError::Md5Mismatch { offset: 0xC0, .. })
    ));
    // Two MD5 rows.
    let mut two = good.clone();
    let row = two[0xC0..0xE0].to_vec();
    two[0xE0..0x100].copy_from_slice(&row);
    assert_eq!(
        PartitionTable::parse(&two, FLASH_4M),
        Err(TableError::DuplicateMd5 { offset: 0xE0 })
    );
    // Empty first row.
    assert_eq!(
        PartitionTable::parse(&[0xFF; TABLE_MAX_LEN], FLASH_4M),
        Err(TableError::Empty)
    );
    // Other magic.
    let mut magic = good.clone();
    magic[0x20] = 0x00;
    assert_eq!(
        PartitionTable::parse(&magic, FLASH_4M),
        Err(TableError::BadMagic {
            offset: 0x20,
            magic: 0x5000
        })
    );
    // No terminator within 96 rows.
    let row = Partition::new("x", PartitionKind::Data(DataSubtype::Nvs), 0x9000, 0x1000)
        .unwrap()
        .encode();
    let full: Vec<u8> = row.iter().copied().cycle().take(TABLE_MAX_LEN).collect();
    assert_eq!(
        PartitionTable::parse(&full, FLASH_4M),
        Err(TableError::NoEndMarker)
    );
    // MD5 row optional.
    let no_md5 = layouts::ecowatt().encode(false).unwrap();
    let t = PartitionTable::parse(&no_md5, FLASH_4M).unwrap();
    assert_eq!(t.md5(), None);
    assert_eq!(t.as_slice(), layouts::ecowatt().as_slice());
    // Truncated before the end marker.
    assert_eq!(
        PartitionTable::parse(&good[..0xC0], FLASH_4M),
        Err(TableError::Truncated { offset: 0xC0 })
    );
    // Overflowing bound: offset + size wraps in 32 bits.
    let wrap = Partition::new(
        "w",
        PartitionKind::Data(DataSubtype::Fat),
        0x1000,
        0xFFFF_F000,
    )
    .unwrap();
    let t = PartitionTable::from_entries(&[wrap]).unwrap();
    assert!(matches!(
        PartitionTable::parse(&t.encode(true).unwrap(), FLASH_4M),
        Err(TableError::EntryOutOfBounds { .. })
    ));
}

#[test]
fn capacity_limits_follow_gen_esp32part() {
    let p = Partition::new("p", PartitionKind::Data(DataSubtype::Fat), 0x9000, 0x1000).unwrap();
    let t = PartitionTable::from_entries(&vec![p; 94]).unwrap();
    assert!(t.encode(true).is_ok());
    let t = PartitionTable::from_entries(&vec![p; 95]).unwrap();
    assert!(t.encode(true).is_err());
    assert!(t.encode(false).is_ok());
    assert_eq!(
        PartitionTable::from_entries(&vec![p; MAX_PARTITIONS + 1]),
        Err(TableError::TooManyPartitions {
            count: MAX_PARTITIONS + 1
        })
    );
}

#[test]
fn non_contiguous_ota_slots_are_flagged() {
    let rows = [
        Partition::new(
            "otadata",
            PartitionKind::Data(DataSubtype::Ota),
            0xD000,
            0x2000,
        )
        .unwrap(),
        Partition::new(
            "a",
            PartitionKind::App(AppSubtype::Ota(0)),
            0x1_0000,
            0x1_0000,
        )
        .unwrap(),
        Partition::new(
            "b",
            PartitionKind::App(AppSubtype::Ota(2)),
            0x2_0000,
            0x1_0000,
        )
        .unwrap(),
    ];
    let layout = PartitionTable::from_entries(&rows).unwrap().boot_layout();
    assert_eq!(layout.app_count, 2);
    assert!(!layout.ota_contiguous());
    assert!(layout.slot(1).is_none());
    assert!(layout.slot(2).is_none(), "slot 2 is beyond app_count");
}

#[test]
fn subtype_names_round_trip() {
    for raw in 0..=255u8 {
        let a = AppSubtype::from_raw(raw);
        assert_eq!(a.raw(), raw);
        if let Some(n) = a.name() {
            assert_eq!(AppSubtype::from_name(n), Some(a));
        }
        let d = DataSubtype::from_raw(raw);
        assert_eq!(d.raw(), raw);
        if let Some(n) = d.name() {
            assert_eq!(DataSubtype::from_name(n), Some(d));
        }
        for ty in [0u8, 1, 2, 3, 0x40] {
            assert_eq!(PartitionKind::from_raw(ty, raw).raw(), (ty, raw));
        }
    }
    assert_eq!(AppSubtype::from_name("OTA_15"), Some(AppSubtype::Ota(15)));
    assert_eq!(
        DataSubtype::from_name("littlefs"),
        Some(DataSubtype::Littlefs)
    );
}

// ---- CSV ----

#[test]
fn csv_auto_placement_and_suffixes() {
    let t = csv::parse(
        "# comment\n\n  nvs , data , nvs , , 24K\nphy, data, phy,,0x1000,\n\
         app, app, factory, , 1M, readonly\nfs, data, 0x99, , 0o20k , encrypted:readonly\n\
         raw, 0x40, 7, , 4096\n",
    )
    .unwrap();
    let got: Vec<(u32, u32)> = t.iter().map(|p| (p.offset, p.size)).collect();
    assert_eq!(
        got,
        vec![
            (0x9000, 0x6000),
            (0xF000, 0x1000),
            (0x1_0000, 0x10_0000),
            (0x11_0000, 0x4000),
            (0x11_4000, 0x1000),
        ]
    );
    let fs = t.find_by_label("fs").unwrap();
    assert!(fs.encrypted() && fs.readonly());
    assert_eq!((fs.ty, fs.subtype), (1, 0x99));
    assert!(t.find_by_label("app").unwrap().readonly());
    assert_eq!(t.find_by_label("raw").unwrap().ty, 0x40);
}

#[test]
fn csv_negative_size_means_end_offset() {
    let t = csv::parse("a, data, fat, 0x10000, -0x20000\n").unwrap();
    assert_eq!(t.find_by_label("a").unwrap().size, 0x1_0000);
}

#[test]
fn csv_empty_data_subtype_is_undefined() {
    let t = csv::parse("x, data, , , 0x1000\n").unwrap();
    assert_eq!(t.as_slice()[0].subtype, 0x06);
}

fn csv_err(text: &str) -> (usize, CsvErrorKind) {
    let e = csv::parse(text).unwrap_err();
    assert!(e.to_string().contains(&format!("line {}", e.line)) || e.line == 0);
    (e.line, e.kind)
}

#[test]
fn csv_validation_errors_name_the_line() {
    assert!(matches!(
        csv_err("# x\napp, app, factory, 0x11000, 1M\n"),
        (
            2,
            CsvErrorKind::OffsetAlignment {
                align: 0x1_0000,
                ..
            }
        )
    ));
    assert!(matches!(
        csv_err("d, data, fat, 0x9800, 0x1000\n"),
        (1, CsvErrorKind::OffsetAlignment { align: 0x1000, .. })
    ));
    assert!(matches!(
        csv_err("app, app, factory, 0x10000, 0x10800\n"),
        (1, CsvErrorKind::SizeAlignment { .. })
    ));
    assert!(matches!(
        csv_err("nvs, data, nvs, , 0x2000\n"),
        (1, CsvErrorKind::NvsTooSmall { size: 0x2000 })
    ));
    assert!(csv::parse("nvs, data, nvs, , 0x2000, readonly\n").is_ok());
    assert!(matches!(
        csv_err("o, data, ota, , 0x2000, readonly\n"),
        (1, CsvErrorKind::MustBeWritable)
    ));
    assert!(matches!(
        csv_err("c, data, coredump, , 64K, readonly\n"),
        (1, CsvErrorKind::MustBeWritable)
    ));
    assert!(matches!(
        csv_err("a, data, fat, , 4K\nb, data, fat, , 4K\na, data, fat, , 4K\n"),
        (3, CsvErrorKind::DuplicateName(_))
    ));
    assert!(matches!(
        csv_err("a, data, fat, 0x9000, 8K\nb, data, fat, 0xA000, 4K\n"),
        (2, CsvErrorKind::Overlap { .. })
    ));
    assert!(matches!(
        csv_err("a, data, fat, 0x8000, 4K\n"),
        (1, CsvErrorKind::Overlap { .. })
    ));
    assert!(matches!(
        csv_err("a, data, fat, 0x20000, 4K\nb, data, fat, 0x10000, 0x10000\n"),
        (2, CsvErrorKind::Overlap { .. })
    ));
    assert!(matches!(
        csv_err("o, data, ota, , 0x2000\np, data, ota, , 0x2000\n"),
        (2, CsvErrorKind::MultipleOtadata)
    ));
    assert!(matches!(
        csv_err("o, data, ota, , 0x3000\n"),
        (1, CsvErrorKind::OtadataSize { .. })
    ));
    assert!(matches!(
        csv_err("a, app, , , 1M\n"),
        (1, CsvErrorKind::EmptyField("subtype"))
    ));
    assert!(matches!(
        csv_err("a, data, fat, ,\n"),
        (1, CsvErrorKind::EmptyField("size"))
    ));
    assert!(matches!(
        csv_err("a, , fat, , 4K\n"),
        (1, CsvErrorKind::EmptyField("type"))
    ));
    assert!(matches!(
        csv_err("a, data, fat, , 4K, shiny\n"),
        (1, CsvErrorKind::UnknownFlag(_))
    ));
    assert!(matches!(
        csv_err("a, data, fat, , 010\n"),
        (1, CsvErrorKind::InvalidValue { field: "size", .. })
    ));
    assert!(matches!(
        csv_err("a, data, bogus, , 4K\n"),
        (
            1,
            CsvErrorKind::InvalidValue {
                field: "subtype",
                ..
            }
        )
    ));
    assert!(matches!(
        csv_err("a, 0x100, 0, , 4K\n"),
        (1, CsvErrorKind::OutOfRange { field: "type", .. })
    ));
    assert!(matches!(
        csv_err("a, data, fat, $OFFSET, 4K\n"),
        (1, CsvErrorKind::Variable(_))
    ));
    assert!(matches!(
        csv_err("seventeen_chars_x, data, fat, , 4K\n"),
        (1, CsvErrorKind::BadName(_))
    ));
    assert!(matches!(
        csv_err("a, data, fat, , 5G\n"),
        (1, CsvErrorKind::InvalidValue { .. })
    ));
}

#[test]
fn csv_round_trip_through_to_csv() {
    for t in [layouts::ecowatt(), layouts::two_ota()] {
        let text = csv::to_csv(&t);
        assert_eq!(csv::parse(&text).unwrap(), t, "{text}");
    }
}

// ---- properties ----

fn arb_partition() -> impl Strategy<Value = Partition> {
    (
        any::<u8>(),
        any::<u8>(),
        0u32..0x20_0000,
        0u32..0x20_0000,
        proptest::collection::vec(any::<u8>(), 16),
        any::<u32>(),
    )
        .prop_map(|(ty, subtype, offset, size, label, flags)| Partition {
            ty,
            subtype,
            offset,
            size,
            label: label.try_into().unwrap(),
            flags,
        })
}

fn arb_table() -> impl Strategy<Value = PartitionTable> {
    proptest::collection::vec(arb_partition(), 1..12)
        .prop_map(|v| PartitionTable::from_entries(&v).unwrap())
}

/// Bytes of an encoded table no check covers: MD5 row bytes 2..16, the end marker past its
/// first four bytes, and everything after it.
fn uncovered(pos: usize, entries: usize, md5: bool) -> bool {
    let md5_at = entries * ENTRY_LEN;
    let end_at = md5_at + if md5 { ENTRY_LEN } else { 0 };
    (md5 && (md5_at + 2..md5_at + 16).contains(&pos)) || pos >= end_at + 4
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn encode_parse_round_trip(t in arb_table(), md5 in any::<bool>()) {
        let bin = t.encode(md5).unwrap();
        let back = PartitionTable::parse(&bin, u32::MAX).unwrap();
        prop_assert_eq!(back.as_slice(), t.as_slice());
        prop_assert_eq!(back.md5().is_some(), md5);
        if md5 {
            prop_assert_eq!(back.md5(), Some(t.computed_md5()));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..0xD00), size in any::<u32>()) {
        let _ = PartitionTable::parse(&bytes, size);
    }

    #[test]
    fn rows_of_entries_never_panic(rows in proptest::collection::vec(
        prop_oneof![
            arb_partition().prop_map(|p| p.encode().to_vec()),
            Just(vec![0xFF; 32]),
            proptest::collection::vec(any::<u8>(), 32),
        ], 0..100), size in any::<u32>()) {
        let bytes: Vec<u8> = rows.concat();
        let _ = PartitionTable::parse(&bytes, size);
    }
}

#[test]
fn every_single_byte_corruption_of_a_golden_table_is_caught_or_uncovered() {
    for (bin, entries) in [(ECOWATT_BIN, 6), (TWO_OTA_BIN, 6)] {
        let original = PartitionTable::parse(bin, FLASH_4M).unwrap();
        for pos in 0..TABLE_MAX_LEN {
            for flip in [0x01u8, 0x80, 0xFF] {
                let mut b = bin.to_vec();
                b[pos] ^= flip;
                match PartitionTable::parse(&b, FLASH_4M) {
                    Err(_) => assert!(!uncovered(pos, entries, true), "pos {pos:#x} rejected"),
                    Ok(t) => assert!(
                        uncovered(pos, entries, true) && t == original,
                        "corruption at {pos:#x} (^{flip:#x}) accepted"
                    ),
                }
            }
        }
    }
}

#[test]
fn csv_huge_numbers_are_errors_not_overflows() {
    for text in [
        "a, data, fat, 0x7fffffffffffffffffffffffffffffff, 0x7fffffffffffffffffffffffffffffff\n",
        "a, data, fat, , 0x7fffffffffffffffffffffffffffffff\n",
        "a, data, fat, , -0x7fffffffffffffffffffffffffffffff\n",
        "a, data, fat, , 99999999999999999999999999999999999999999999\n",
        "a, data, fat, , 1mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm\n",
        "a, data, fat, -5, 4K\n",
    ] {
        assert!(csv::parse(text).is_err(), "{text}");
    }
}

fn arb_csv_row() -> impl Strategy<Value = String> {
    let data = prop_oneof![
        Just("nvs"),
        Just("phy"),
        Just("fat"),
        Just("spiffs"),
        Just("littlefs"),
        Just("coredump"),
        Just("undefined"),
        Just("0x99"),
    ];
    let app = prop_oneof![
        Just("factory"),
        Just("ota_0"),
        Just("ota_1"),
        Just("ota_7"),
        Just("test")
    ];
    prop_oneof![
        (data, 3u32..40, any::<bool>()).prop_map(|(s, k, ro)| format!(
            "data, {s}, , {}K,{}",
            k * 4,
            if ro { " readonly" } else { "" }
        )),
        (app, 1u32..20).prop_map(|(s, k)| format!("app, {s}, , 0x{:x},", k * 0x1000)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Generated CSV (auto placement) → table → gen_esp32part-style CSV → same table.
    #[test]
    fn csv_round_trip(rows in proptest::collection::vec(arb_csv_row(), 1..20), comment in any::<bool>()) {
        let mut text = String::new();
        if comment {
            text.push_str("# generated\n\n");
        }
        for (i, r) in rows.iter().enumerate() {
            text.push_str(&format!("p{i}, {r}\n"));
        }
        if let Ok(t) = csv::parse(&text) {
            let again = csv::parse(&csv::to_csv(&t)).unwrap();
            prop_assert_eq!(&again, &t);
            let bin = t.encode(true).unwrap();
            let parsed = PartitionTable::parse(&bin, u32::MAX).unwrap();
            prop_assert_eq!(parsed.as_slice(), t.as_slice());
        }
    }

    #[test]
    fn csv_never_panics(text in "[a-z0-9_, :#$\\-xkKmM\n]{0,300}") {
        let _ = csv::parse(&text);
    }
}
