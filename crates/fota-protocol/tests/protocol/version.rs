//! The version order: the documented examples, semver precedence as the `semver` crate
//! computes it, and the laws that make it sortable, on generated versions.

use core::cmp::Ordering;

use fota_protocol::version::{compare, is_version};
use proptest::prelude::*;

/// The module's example table, read from its source so that the documentation cannot drift:
/// `(a, b, expected)` for every row `` | `a` | `b` | `Ordering` | why | ``.
fn documented_examples() -> Vec<(&'static str, &'static str, Ordering)> {
    include_str!("../../src/version.rs")
        .lines()
        .filter_map(|line| line.strip_prefix("//! | `"))
        .filter(|row| !row.starts_with("compare"))
        .map(|row| {
            let cells: Vec<&str> = row.split("` | `").collect();
            let (a, b, expected) = (cells[0], cells[1], cells[2]);
            let expected = match expected.split('`').next().unwrap() {
                "Less" => Ordering::Less,
                "Equal" => Ordering::Equal,
                "Greater" => Ordering::Greater,
                other => panic!("row {row:?}: {other:?} is no Ordering"),
            };
            (a, b, expected)
        })
        .collect()
}

#[test]
fn every_documented_example_holds_both_ways() {
    let examples = documented_examples();
    assert!(
        examples.len() >= 15,
        "the table was not found: {examples:?}"
    );
    for (a, b, expected) in examples {
        assert_eq!(compare(a, b), expected, "compare({a:?}, {b:?})");
        assert_eq!(compare(b, a), expected.reverse(), "compare({b:?}, {a:?})");
    }
}

#[test]
fn a_release_candidate_sits_between_the_release_before_and_its_own_release() {
    // The case the legacy downgrade check used to skip: a device on 1.0.7 is not "upgraded"
    // to 1.0.7-rc1, and one on 1.0.6 is.
    assert_eq!(compare("1.0.7-rc1", "1.0.7"), Ordering::Less);
    assert_eq!(compare("1.0.7-rc1", "1.0.6"), Ordering::Greater);
    assert_eq!(compare("1.0.7-rc1", "1.0.7-rc2"), Ordering::Less);
    assert_eq!(compare("1.0.7-rc1", "1.0.7-rc1+build.9"), Ordering::Equal);
}

#[test]
fn what_is_a_version() {
    for v in [
        "1",
        "1.0",
        "1.0.7",
        "v1.0.7",
        "1.0.7-rc1",
        "1.0.7+b",
        "01.02",
        "1.0-a-b.c",
    ] {
        assert!(is_version(v), "{v:?}");
    }
    for s in [
        "",
        "v",
        "1.",
        ".1",
        "1..2",
        "1.0.7-",
        "1.0.7+",
        "1.0.7-rc..1",
        "1.0.7-rc+",
        "vv1",
        "V1.0",
        " 1.0",
        "1.0 ",
        "1.0.7-rc_1",
        "1.0.7+a+b",
        "1.x",
        "१.२",
        "nightly",
    ] {
        assert!(!is_version(s), "{s:?}");
    }
}

#[test]
fn numbers_of_any_length_compare_without_overflow() {
    let big = "18446744073709551616"; // u64::MAX + 1
    assert_eq!(
        compare(&format!("1.{big}"), "1.18446744073709551615"),
        Ordering::Greater
    );
    assert_eq!(
        compare(&format!("1.000{big}"), &format!("1.{big}")),
        Ordering::Equal
    );
    assert_eq!(
        compare(&format!("1.0.0-{big}"), "1.0.0-9"),
        Ordering::Greater
    );
}

/// A number that often collides with another one: equal, adjacent, or a digit longer.
fn number() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..3, 9u64..12, Just(99), Just(100), any::<u64>()]
}

fn identifier() -> impl Strategy<Value = String> {
    prop_oneof![
        number().prop_map(|n| n.to_string()),
        prop::sample::select(vec![
            "alpha", "beta", "rc", "rc1", "rc2", "x-y", "-", "A", "a0"
        ])
        .prop_map(str::to_owned),
    ]
}

fn identifiers() -> impl Strategy<Value = String> {
    prop::collection::vec(identifier(), 1..4).prop_map(|ids| ids.join("."))
}

/// A semantic version 2.0 string.
fn semver_string() -> impl Strategy<Value = String> {
    (
        number(),
        number(),
        number(),
        prop::option::of(identifiers()),
        prop::option::of(identifiers()),
    )
        .prop_map(|(major, minor, patch, pre, build)| {
            let mut s = format!("{major}.{minor}.{patch}");
            if let Some(pre) = pre {
                s = format!("{s}-{pre}");
            }
            if let Some(build) = build {
                s = format!("{s}+{build}");
            }
            s
        })
}

/// Anything the order must handle: semantic versions, their relaxed forms (any count of
/// numbers, leading zeros, a `v`), and short strings from the grammar's alphabet, most of which
/// are no version at all.
fn any_version_string() -> impl Strategy<Value = String> {
    prop_oneof![
        semver_string(),
        (
            prop::bool::ANY,
            prop::collection::vec((0u8..3, prop::bool::ANY), 1..5),
            prop::option::of(identifiers()),
        )
            .prop_map(|(v, numbers, pre)| {
                let numbers: Vec<String> = numbers
                    .iter()
                    .map(|(n, zero)| {
                        if *zero {
                            format!("0{n}")
                        } else {
                            n.to_string()
                        }
                    })
                    .collect();
                let mut s = format!("{}{}", if v { "v" } else { "" }, numbers.join("."));
                if let Some(pre) = pre {
                    s = format!("{s}-{pre}");
                }
                s
            }),
        "[v0-2a.+-]{0,8}",
    ]
}

proptest! {
    #[test]
    fn semantic_versions_order_as_semver_precedence(a in semver_string(), b in semver_string()) {
        let (x, y) = (semver::Version::parse(&a).unwrap(), semver::Version::parse(&b).unwrap());
        prop_assert_eq!(compare(&a, &b), x.cmp_precedence(&y));
    }

    #[test]
    fn whatever_the_semver_crate_parses_orders_as_it_says(
        a in any_version_string(),
        b in any_version_string(),
    ) {
        if let (Ok(x), Ok(y)) = (semver::Version::parse(&a), semver::Version::parse(&b)) {
            prop_assert_eq!(compare(&a, &b), x.cmp_precedence(&y));
        }
        // Everything semver accepts is a version here too.
        prop_assert!(semver::Version::parse(&a).is_err() || is_version(&a));
    }

    #[test]
    fn the_order_is_reflexive_and_antisymmetric(a in any_version_string(), b in any_version_string()) {
        prop_assert_eq!(compare(&a, &a), Ordering::Equal);
        prop_assert_eq!(compare(&a, &b), compare(&b, &a).reverse());
    }

    #[test]
    fn the_order_is_transitive(
        a in any_version_string(),
        b in any_version_string(),
        c in any_version_string(),
    ) {
        let not_after = |x: &str, y: &str| compare(x, y) != Ordering::Greater;
        for [x, y, z] in [[&a, &b, &c], [&a, &c, &b], [&b, &a, &c], [&b, &c, &a], [&c, &a, &b], [&c, &b, &a]] {
            if not_after(x, y) && not_after(y, z) {
                prop_assert!(not_after(x, z), "{:?} <= {:?} <= {:?}", x, y, z);
            }
            // Equal precedence is an equivalence: equal ones order alike against a third.
            if compare(x, y) == Ordering::Equal {
                prop_assert_eq!(compare(x, z), compare(y, z), "{:?} == {:?}, against {:?}", x, y, z);
            }
        }
    }

    #[test]
    fn no_bytes_make_it_panic(a in prop::collection::vec(any::<u8>(), 0..40), b in any::<String>()) {
        let a = String::from_utf8_lossy(&a);
        prop_assert_eq!(compare(&a, &b), compare(&b, &a).reverse());
        let _ = is_version(&a);
    }
}
