//! The one order of firmware version strings: which of two versions is newer.
//!
//! Version strings come from app descriptors, legacy manifests and operators, so they are
//! whatever people wrote: semantic versions (`1.0.7-rc1`), dotted numbers (`1.2.10`, `2.1`),
//! git tags (`v1.0.6`) and sometimes words (`nightly`). [`compare`] puts every two strings in
//! an order, without allocating and without panicking on any input, so that the device's
//! legacy downgrade check, the server and the operator tools (sorting, fleet filters such as
//! `version < 1.0.6`) all agree on what "older" means.
//!
//! # The rules
//!
//! A string is a *version* when, after at most one leading `v`, it reads
//!
//! ```text
//! version = number *("." number) ["-" identifiers] ["+" identifiers]
//! number  = 1*DIGIT                       ; leading zeros allowed
//! identifiers = ident *("." ident)        ; ident = 1*(ALPHA / DIGIT / "-")
//! ```
//!
//! Every semantic version 2.0 is one (three numbers, no leading zeros, no `v`); the grammar
//! only relaxes the count of numbers and the zeros, so that dotted numbers order as well.
//!
//! 1. **Two versions** compare as semver 2.0 §11 says: the numbers left to right, numerically
//!    and of any length (`1.2.10` > `1.2.9`), a missing number counting as 0 (`1.2` ==
//!    `1.2.0`); then a release above any of its pre-releases (`1.0.7-rc1` < `1.0.7`); then
//!    the pre-release identifiers left to right: numeric ones numerically, numeric below
//!    alphanumeric, alphanumeric ones in ASCII order, and a shorter list below a longer one
//!    it begins. Build metadata (`+…`) never orders. On semantic versions this is exactly
//!    semver precedence.
//! 2. **A version is newer than any string that is not one**: an image whose version cannot
//!    be read is never taken for an upgrade of one whose version can.
//! 3. **Two strings that are not versions** compare by their bytes.
//!
//! The result is total (any two strings compare), antisymmetric (`compare(a, b)` is the
//! reverse of `compare(b, a)`) and transitive, so it sorts. `Equal` means the same
//! precedence, not the same string (`1.2`, `1.2.0`, `v1.2.0+b7`); a sort that must not
//! depend on the input order breaks ties with the bytes:
//! `compare(a, b).then_with(|| a.cmp(b))`.
//!
//! # Examples
//!
//! Each row is checked by the crate's tests.
//!
//! | a | b | `compare(a, b)` | why |
//! |---|---|---|---|
//! | `1.0.7-rc1` | `1.0.7` | `Less` | a pre-release precedes its release |
//! | `1.0.7-rc1` | `1.0.6` | `Greater` | and follows the releases before it |
//! | `1.2.10` | `1.2.9` | `Greater` | numbers compare as numbers, not as text |
//! | `1.2` | `1.2.0` | `Equal` | a missing number is 0 |
//! | `1.2.3.4` | `1.2.3` | `Greater` | any count of numbers |
//! | `01.2` | `1.2` | `Equal` | leading zeros do not count |
//! | `v1.0.6` | `1.0.6` | `Equal` | one leading `v` is ignored |
//! | `1.0.0+build.5` | `1.0.0` | `Equal` | build metadata never orders |
//! | `1.0.0-alpha` | `1.0.0-alpha.1` | `Less` | a shorter pre-release list first |
//! | `1.0.0-alpha.1` | `1.0.0-alpha.beta` | `Less` | numeric identifiers before alphanumeric |
//! | `1.0.0-beta.2` | `1.0.0-beta.11` | `Less` | numeric identifiers as numbers |
//! | `1.0.0-rc.1` | `1.0.0-beta.11` | `Greater` | alphanumeric identifiers in ASCII order |
//! | `1.2-rc1` | `1.2.0` | `Less` | pre-releases of dotted numbers too |
//! | `nightly` | `0.0.1` | `Less` | not a version: older than any version |
//! | `1.0.7-` | `1.0.6` | `Less` | an empty pre-release: no version |
//! | `vv1.0` | `0.1` | `Less` | one `v` at most: no version |
//! | `build-b` | `build-a` | `Greater` | two non-versions: by bytes |
//!
//! ```
//! use core::cmp::Ordering;
//! use fota_protocol::version::compare;
//!
//! let mut seen = ["1.0.7", "1.0.7-rc1", "nightly", "1.0.10", "1.0.6"];
//! seen.sort_by(|a, b| compare(a, b));
//! assert_eq!(seen, ["nightly", "1.0.6", "1.0.7-rc1", "1.0.7", "1.0.10"]);
//! assert_eq!(compare("1.0.7-rc1", "1.0.6"), Ordering::Greater);
//! ```

use core::cmp::Ordering;

/// Orders two version strings (see the [module documentation](self) for the rules).
pub fn compare(a: &str, b: &str) -> Ordering {
    match (Version::parse(a), Version::parse(b)) {
        (Some(x), Some(y)) => x.precedence(&y),
        (Some(_), None) => Ordering::Greater,
        (None, Some(_)) => Ordering::Less,
        (None, None) => a.as_bytes().cmp(b.as_bytes()),
    }
}

/// Whether `s` is a version in the module's grammar (else it sorts below every version).
pub fn is_version(s: &str) -> bool {
    Version::parse(s).is_some()
}

/// A string that follows the grammar, in its ordering parts: build metadata is dropped, as it
/// never orders.
#[derive(Debug, Clone, Copy)]
struct Version<'a> {
    /// The dotted numbers.
    numbers: &'a str,
    /// The pre-release identifiers, after `-`.
    pre: Option<&'a str>,
}

impl<'a> Version<'a> {
    fn parse(s: &'a str) -> Option<Self> {
        let s = s.strip_prefix('v').unwrap_or(s);
        // `+` first: build metadata may hold `-`, a pre-release never holds `+`.
        let (rest, build) = match s.split_once('+') {
            Some((rest, build)) => (rest, Some(build)),
            None => (s, None),
        };
        // Numbers never hold `-`, so the first one starts the pre-release (which may hold more).
        let (numbers, pre) = match rest.split_once('-') {
            Some((numbers, pre)) => (numbers, Some(pre)),
            None => (rest, None),
        };
        let valid = numbers.split('.').all(is_digits)
            && pre.is_none_or(is_identifiers)
            && build.is_none_or(is_identifiers);
        valid.then_some(Self { numbers, pre })
    }

    fn precedence(&self, other: &Self) -> Ordering {
        compare_numbers(self.numbers, other.numbers).then_with(|| match (self.pre, other.pre) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some(a), Some(b)) => a
                .split('.')
                .map(Identifier::new)
                .cmp(b.split('.').map(Identifier::new)),
        })
    }
}

/// Dotted numbers, left to right, the shorter list padded with zeros.
fn compare_numbers(a: &str, b: &str) -> Ordering {
    let zero = Number::new("0");
    let (mut a, mut b) = (a.split('.').map(Number::new), b.split('.').map(Number::new));
    loop {
        let (x, y) = match (a.next(), b.next()) {
            (None, None) => return Ordering::Equal,
            (x, y) => (x.unwrap_or(zero), y.unwrap_or(zero)),
        };
        match x.cmp(&y) {
            Ordering::Equal => {}
            unequal => return unequal,
        }
    }
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_identifiers(s: &str) -> bool {
    s.split('.')
        .all(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// A run of ASCII digits, compared as the number it spells, however long: kept without its
/// leading zeros, so equal numbers are equal strings and a longer string is a larger number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Number<'a>(&'a str);

impl<'a> Number<'a> {
    fn new(digits: &'a str) -> Self {
        Self(digits.trim_start_matches('0'))
    }
}

impl Ord for Number<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.cmp(other.0))
    }
}

impl PartialOrd for Number<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A pre-release identifier. The variant order is semver's: numeric identifiers first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Identifier<'a> {
    /// All digits: by value.
    Numeric(Number<'a>),
    /// Anything else: in ASCII order (`str`'s order is its bytes').
    Alphanumeric(&'a str),
}

impl<'a> Identifier<'a> {
    fn new(id: &'a str) -> Self {
        if is_digits(id) {
            Self::Numeric(Number::new(id))
        } else {
            Self::Alphanumeric(id)
        }
    }
}
