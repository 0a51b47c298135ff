//! The rule device and class names follow, wherever they are typed or received: the operator
//! API, the seed's legacy API (`device_id`) and the `fota` CLI all check names with
//! [`is_valid`] and describe the rule with [`RULE`]. (The OpenAPI document states the same rule
//! as the pattern `^[A-Za-z0-9._-]{1,64}$`.)
//!
//! Names end up in URLs, file names and log lines, so they are kept to characters that need no
//! escaping anywhere.

/// Longest name, in bytes (= characters: the allowed ones are ASCII).
pub const MAX_LEN: usize = 64;

/// The rule in words, for error messages: "`x` must be {RULE}".
pub const RULE: &str = "1-64 characters of A-Z a-z 0-9 . _ -";

/// Whether `s` is a valid device or class name: 1 to [`MAX_LEN`] of `A-Z a-z 0-9 . _ -`.
pub fn is_valid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_and_need_no_escaping() {
        for good in ["EcoWatt001", "ecowatt-v1", "a", "A.b_c-9", &"x".repeat(64)] {
            assert!(is_valid(good), "{good:?}");
        }
        for bad in ["", "a b", "../x", "a/b", "é", "a\0", &"x".repeat(65)] {
            assert!(!is_valid(bad), "{bad:?}");
        }
    }
}
