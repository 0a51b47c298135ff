//! Built-in partition layouts: the CSV text and a no_std constructor for each.
//!
//! The constructors give exactly what [`crate::esp::csv`] makes of the CSV text (a test
//! checks it), and their encoding is byte-identical to `gen_esp32part`'s output (tests compare
//! against binaries it produced, MD5 rows `972dae2f…` and `bf25822c…`).

use super::partition::{AppSubtype, DataSubtype, Partition, PartitionKind, PartitionTable};

/// The EcoWatt devices' table: Arduino-ESP32 `tools/partitions/default.csv` for 4 MiB.
///
/// | name | type | subtype | offset | size |
/// |---|---|---|---|---|
/// | nvs | data | nvs | 0x9000 | 0x5000 |
/// | otadata | data | ota | 0xE000 | 0x2000 |
/// | app0 | app | ota_0 | 0x10000 | 0x140000 |
/// | app1 | app | ota_1 | 0x150000 | 0x140000 |
/// | spiffs | data | spiffs | 0x290000 | 0x160000 |
/// | coredump | data | coredump | 0x3F0000 | 0x10000 |
pub const ECOWATT_CSV: &str = "\
# Name,   Type, SubType, Offset,  Size, Flags
nvs,      data, nvs,     0x9000,  0x5000,
otadata,  data, ota,     0xe000,  0x2000,
app0,     app,  ota_0,   0x10000, 0x140000,
app1,     app,  ota_1,   0x150000,0x140000,
spiffs,   data, spiffs,  0x290000,0x160000,
coredump, data, coredump,0x3F0000,0x10000,
";

/// ESP-IDF `components/partition_table/partitions_two_ota.csv`: factory plus two OTA slots,
/// offsets left to gen_esp32part's placement.
///
/// | name | type | subtype | offset | size |
/// |---|---|---|---|---|
/// | nvs | data | nvs | 0x9000 | 0x4000 |
/// | otadata | data | ota | 0xD000 | 0x2000 |
/// | phy_init | data | phy | 0xF000 | 0x1000 |
/// | factory | app | factory | 0x10000 | 0x100000 |
/// | ota_0 | app | ota_0 | 0x110000 | 0x100000 |
/// | ota_1 | app | ota_1 | 0x210000 | 0x100000 |
pub const TWO_OTA_CSV: &str = "\
# Name,   Type, SubType, Offset,   Size, Flags
# Note: if you have increased the bootloader size, make sure to update the offsets to avoid overlap
nvs,      data, nvs,     ,        0x4000,
otadata,  data, ota,     ,        0x2000,
phy_init, data, phy,     ,        0x1000,
factory,  app,  factory, ,        1M,
ota_0,    app,  ota_0,   ,        1M,
ota_1,    app,  ota_1,   ,        1M,
";

/// Names accepted by [`by_name`].
pub const NAMES: [&str; 2] = ["ecowatt", "two_ota"];

type Row = (&'static str, PartitionKind, u32, u32);

const ECOWATT_ROWS: [Row; 6] = [
    ("nvs", PartitionKind::Data(DataSubtype::Nvs), 0x9000, 0x5000),
    (
        "otadata",
        PartitionKind::Data(DataSubtype::Ota),
        0xE000,
        0x2000,
    ),
    (
        "app0",
        PartitionKind::App(AppSubtype::Ota(0)),
        0x1_0000,
        0x14_0000,
    ),
    (
        "app1",
        PartitionKind::App(AppSubtype::Ota(1)),
        0x15_0000,
        0x14_0000,
    ),
    (
        "spiffs",
        PartitionKind::Data(DataSubtype::Spiffs),
        0x29_0000,
        0x16_0000,
    ),
    (
        "coredump",
        PartitionKind::Data(DataSubtype::Coredump),
        0x3F_0000,
        0x1_0000,
    ),
];

const TWO_OTA_ROWS: [Row; 6] = [
    ("nvs", PartitionKind::Data(DataSubtype::Nvs), 0x9000, 0x4000),
    (
        "otadata",
        PartitionKind::Data(DataSubtype::Ota),
        0xD000,
        0x2000,
    ),
    (
        "phy_init",
        PartitionKind::Data(DataSubtype::Phy),
        0xF000,
        0x1000,
    ),
    (
        "factory",
        PartitionKind::App(AppSubtype::Factory),
        0x1_0000,
        0x10_0000,
    ),
    (
        "ota_0",
        PartitionKind::App(AppSubtype::Ota(0)),
        0x11_0000,
        0x10_0000,
    ),
    (
        "ota_1",
        PartitionKind::App(AppSubtype::Ota(1)),
        0x21_0000,
        0x10_0000,
    ),
];

fn table_of(rows: &[Row]) -> PartitionTable {
    let mut table = PartitionTable::new();
    for &(label, kind, offset, size) in rows {
        // Labels are short literals and six rows fit, so neither step can fail; a failure
        // would only drop a row, which the golden-bytes tests would catch.
        if let Some(p) = Partition::new(label, kind, offset, size) {
            let _ = table.push(p);
        }
    }
    table
}

/// The EcoWatt table ([`ECOWATT_CSV`]).
pub fn ecowatt() -> PartitionTable {
    table_of(&ECOWATT_ROWS)
}

/// The ESP-IDF two-OTA table with factory ([`TWO_OTA_CSV`]).
pub fn two_ota() -> PartitionTable {
    table_of(&TWO_OTA_ROWS)
}

/// A built-in table and its CSV text by name (`ecowatt`, `two_ota`).
pub fn by_name(name: &str) -> Option<(PartitionTable, &'static str)> {
    match name {
        "ecowatt" => Some((ecowatt(), ECOWATT_CSV)),
        "two_ota" => Some((two_ota(), TWO_OTA_CSV)),
        _ => None,
    }
}
