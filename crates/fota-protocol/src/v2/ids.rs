//! Host-side identifiers: class and device UUIDs derived from names (UUIDv5, RFC 9562).
//!
//! Devices receive these as raw 16-byte values in their provisioning file and in manifests;
//! only hosts derive them from names, so the derivation is here and not on the device path.

pub use uuid::Uuid;

/// The class id of hardware class `class_name` of vendor `vendor_id`:
/// `UUIDv5(namespace = vendor_id, name = class_name as UTF-8)`.
///
/// The same name always gives the same id, so the operator names classes
/// (`--class ecowatt-inverter-rev-b`) and every tool agrees on the id without a registry.
pub fn class_id(vendor_id: &Uuid, class_name: &str) -> Uuid {
    Uuid::new_v5(vendor_id, class_name.as_bytes())
}

/// The device UUID of the device named `device_id` (the operator's string id, e.g.
/// `EcoWatt001`) of vendor `vendor_id`: `UUIDv5(namespace = vendor_id, name = "device/" ‖
/// device_id)`.
///
/// The `device/` prefix keeps device names and class names apart: a device and a class with
/// the same name never get the same UUID.
pub fn device_uuid(vendor_id: &Uuid, device_id: &str) -> Uuid {
    const PREFIX: &[u8] = b"device/";
    let mut name = alloc::vec::Vec::with_capacity(PREFIX.len().saturating_add(device_id.len()));
    name.extend_from_slice(PREFIX);
    name.extend_from_slice(device_id.as_bytes());
    Uuid::new_v5(vendor_id, &name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v5_derivations() {
        let vendor = Uuid::from_u128(0x6ba7_b810_9dad_11d1_80b4_00c0_4fd4_30c8);
        let class = class_id(&vendor, "ecowatt");
        assert_eq!(class.get_version_num(), 5);
        assert_eq!(class, Uuid::new_v5(&vendor, b"ecowatt"));
        assert_eq!(
            device_uuid(&vendor, "EcoWatt001"),
            Uuid::new_v5(&vendor, b"device/EcoWatt001")
        );
        assert_ne!(class_id(&vendor, "x"), device_uuid(&vendor, "x"));
        // Known answer: UUIDv5(NAMESPACE_DNS, "python.org"), as in RFC 9562's examples and
        // Python's uuid docs.
        assert_eq!(
            class_id(&Uuid::NAMESPACE_DNS, "python.org").to_string(),
            "886313e1-3b8a-5372-9b90-0c9aee199e5d"
        );
    }
}
