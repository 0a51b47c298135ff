//! One module per subcommand group, plus argument parsers they share.

pub(crate) mod assign;
pub(crate) mod audit;
mod common;
pub(crate) mod demo;
pub(crate) mod devices;
pub(crate) mod emulate;
pub(crate) mod flash;
pub(crate) mod image;
pub(crate) mod keys;
pub(crate) mod legacy;
pub(crate) mod partitions;
pub(crate) mod release;
pub(crate) mod rollback;
pub(crate) mod root;
pub(crate) mod server;
pub(crate) mod tokens;
pub(crate) mod watch;

/// Checks a device or class name as the server does (`fota_api::name`), so a bad one is a
/// usage error before anything is signed or sent.
pub(crate) fn parse_name(s: &str) -> Result<String, String> {
    if fota_api::name::is_valid(s) {
        Ok(s.to_owned())
    } else {
        Err(format!("{s:?} is not {}", fota_api::name::RULE))
    }
}

/// Parses a byte count: plain decimal, `0x` hex, or a `K`/`KiB`/`M`/`MiB` suffix (binary
/// multiples, case-insensitive).
pub(crate) fn parse_bytes(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let (num, mult) = [
        ("kib", 1024u64),
        ("k", 1024),
        ("mib", 1 << 20),
        ("m", 1 << 20),
    ]
    .iter()
    .find_map(|(suffix, m)| lower.strip_suffix(suffix).map(|n| (n.trim(), *m)))
    .unwrap_or((lower.as_str(), 1));
    let value = if let Some(hex) = num.strip_prefix("0x") {
        u64::from_str_radix(hex, 16)
    } else {
        num.parse::<u64>()
    }
    .map_err(|_| format!("'{s}' is not a byte count (use e.g. 4096, 0x1000, 64K, 1M)"))?;
    value
        .checked_mul(mult)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| format!("'{s}' is too large"))
}

#[cfg(test)]
mod tests {
    use super::{parse_bytes, parse_name};

    #[test]
    fn names() {
        assert_eq!(parse_name("EcoWatt-001_b.2"), Ok("EcoWatt-001_b.2".into()));
        assert!(parse_name("").is_err());
        assert!(parse_name("a b").is_err());
        assert!(parse_name("../x").is_err());
        assert!(parse_name(&"x".repeat(65)).is_err());
    }

    #[test]
    fn byte_counts() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("0x1000"), Ok(4096));
        assert_eq!(parse_bytes("4K"), Ok(4096));
        assert_eq!(parse_bytes("4KiB"), Ok(4096));
        assert_eq!(parse_bytes("4k"), Ok(4096));
        assert_eq!(parse_bytes("1M"), Ok(1 << 20));
        assert_eq!(parse_bytes("1MiB"), Ok(1 << 20));
        assert!(parse_bytes("1G").is_err());
        assert!(parse_bytes("").is_err());
        assert!(parse_bytes("5000M").is_err());
    }
}
