//! otadata: CRC known answers, entry codec, selection, app write planning and the
//! bootloader's boot choice.

use fota_protocol::esp::layouts;
use fota_protocol::esp::otadata::{
    BootIndex, BootReason, OtaSelectEntry, OtaState, Otadata, OtadataOp, OtadataPlan, PlanError,
    RollbackCandidate, SEQ_EMPTY, select_boot, seq_crc,
};
use fota_protocol::esp::partition::BootLayout;
use proptest::prelude::*;

#[test]
fn crc_known_answers() {
    let expected = [
        0x4743_989A,
        0x55F6_3774,
        0xED4A_5011,
        0x709D_68A8,
        0xC821_0FCD,
    ];
    for (seq, crc) in (1..=5).zip(expected) {
        assert_eq!(seq_crc(seq), crc, "seq {seq}");
    }
    assert_eq!(
        fota_protocol::esp::otadata::OTADATA_CRC.checksum(b"123456789"),
        0xD202_D277
    );
}

#[test]
fn example_entry_bytes() {
    let bytes = hex::decode(format!("01000000{}020000009a984347", "ff".repeat(20))).unwrap();
    let e = OtaSelectEntry::from_bytes(&bytes).unwrap();
    assert_eq!(e, OtaSelectEntry::new(1, OtaState::Valid));
    assert!(e.is_valid() && e.crc_ok());
    assert_eq!(e.encode().to_vec(), bytes);
    assert_eq!(e.slot(2), Some(0));
}

#[test]
fn validity_rules() {
    assert!(!OtaSelectEntry::ERASED.is_valid());
    assert!(OtaSelectEntry::ERASED.is_invalid());
    for (state, valid) in [
        (OtaState::New, true),
        (OtaState::PendingVerify, true),
        (OtaState::Valid, true),
        (OtaState::Invalid, false),
        (OtaState::Aborted, false),
        (OtaState::Undefined, true),
        (OtaState::from_raw(0x1234), true),
    ] {
        assert_eq!(OtaSelectEntry::new(7, state).is_valid(), valid, "{state}");
    }
    let mut bad_crc = OtaSelectEntry::new(7, OtaState::Valid);
    bad_crc.crc ^= 1;
    assert!(!bad_crc.is_valid());
    assert!(
        !bad_crc.is_invalid(),
        "a CRC-bad entry is neither valid nor invalid"
    );
    assert_eq!(OtaState::from_raw(9).raw(), 9);
    assert_eq!(OtaState::from_raw(u32::MAX), OtaState::Undefined);
}

fn od(a: OtaSelectEntry, b: OtaSelectEntry) -> Otadata {
    Otadata { entries: [a, b] }
}

fn e(seq: u32, state: OtaState) -> OtaSelectEntry {
    OtaSelectEntry::new(seq, state)
}

#[test]
fn active_entry_selection() {
    use OtaState::*;
    assert_eq!(od(e(1, Valid), e(2, Valid)).active(), Some(1));
    assert_eq!(od(e(3, Valid), e(2, Valid)).active(), Some(0));
    assert_eq!(
        od(e(2, Valid), e(2, Valid)).active(),
        Some(0),
        "tie → sector 0"
    );
    assert_eq!(od(e(1, Valid), e(2, Aborted)).active(), Some(0));
    assert_eq!(od(OtaSelectEntry::ERASED, e(5, New)).active(), Some(1));
    assert_eq!(Otadata::ERASED.active(), None);
    assert_eq!(
        od(e(0xFFFF_FFFE, Valid), e(1, Valid)).active_slot(2),
        Some((0, 1))
    );
    // seq 0 with a good CRC maps through the wrapping subtraction.
    assert_eq!(e(0, Valid).slot(2), Some(1));
    assert_eq!(e(0, Valid).slot(3), Some(0));
    assert_eq!(e(0, Valid).slot(0), None);
}

#[test]
fn state_of_slot_ignores_invalid_marks_but_needs_crc() {
    let d = od(e(1, OtaState::Aborted), e(2, OtaState::Valid));
    assert_eq!(d.state_of_slot(0, 2), Some(OtaState::Aborted));
    assert_eq!(d.state_of_slot(1, 2), Some(OtaState::Valid));
    let mut bad = e(1, OtaState::Valid);
    bad.crc = 0;
    assert_eq!(od(bad, OtaSelectEntry::ERASED).state_of_slot(0, 2), None);
}

fn single_write(plan: fota_protocol::esp::otadata::OtadataPlan) -> (usize, OtaSelectEntry) {
    let ops: Vec<_> = plan.iter().copied().collect();
    match ops.as_slice() {
        [OtadataOp::Write { sector, entry }] => (*sector, *entry),
        other => panic!("expected one write, got {other:?}"),
    }
}

#[test]
fn set_boot_partition_plans() {
    use OtaState::*;
    // Fresh otadata: sector 0, seq = slot + 1.
    let (s, en) = single_write(Otadata::ERASED.set_boot_partition(1, 2, true).unwrap());
    assert_eq!((s, en.seq, en.state), (0, 2, New));
    assert!(en.crc_ok());
    // Other sector, current + 1 for two slots.
    let d = od(e(1, Valid), OtaSelectEntry::ERASED);
    let (s, en) = single_write(d.set_boot_partition(1, 2, true).unwrap());
    assert_eq!((s, en.seq, en.state), (1, 2, New));
    let (s, en) = single_write(d.set_boot_partition(1, 2, false).unwrap());
    assert_eq!((s, en.seq, en.state), (1, 2, Undefined));
    // Same slot: rewrite the active sector with the same seq.
    let d = od(e(4, Valid), e(3, Valid));
    let (s, en) = single_write(d.set_boot_partition(1, 2, true).unwrap());
    assert_eq!((s, en.seq, en.state), (0, 4, New));
    // Three slots: smallest seq >= current mapping to the slot.
    let d = od(e(5, Valid), OtaSelectEntry::ERASED); // slot 1
    let (s, en) = single_write(d.set_boot_partition(0, 3, true).unwrap());
    assert_eq!((s, en.seq), (1, 7));
    let (_, en) = single_write(d.set_boot_partition(2, 3, true).unwrap());
    assert_eq!(en.seq, 6);
    // Label bytes of the rewritten sector are kept.
    let mut labelled = e(1, Valid);
    labelled.label = [0x11; 20];
    let d = od(e(2, Valid), labelled);
    let (_, en) = single_write(d.set_boot_partition(0, 2, true).unwrap());
    assert_eq!(en.label, [0x11; 20]);
    // Errors.
    assert_eq!(
        Otadata::ERASED.set_boot_partition(2, 2, true),
        Err(PlanError::SlotOutOfRange {
            slot: 2,
            app_count: 2
        })
    );
    assert_eq!(
        Otadata::ERASED.set_boot_partition(0, 0, true),
        Err(PlanError::NoOtaSlots)
    );
    // Factory: both sectors erased.
    let ops: Vec<_> = d.set_boot_factory().iter().copied().collect();
    assert_eq!(
        ops,
        vec![
            OtadataOp::Erase { sector: 0 },
            OtadataOp::Erase { sector: 1 }
        ]
    );
}

#[test]
fn sequence_near_wrap_is_refused_not_wrapped() {
    // 0xFFFFFFFE selects slot 1 of 2; the next for slot 0 would be 0xFFFFFFFF (empty).
    let d = od(e(0xFFFF_FFFE, OtaState::Valid), OtaSelectEntry::ERASED);
    assert_eq!(
        d.set_boot_partition(0, 2, true),
        Err(PlanError::SequenceExhausted {
            current: 0xFFFF_FFFE
        })
    );
    // 0xFFFFFFFD (slot 0) → 0xFFFFFFFE for slot 1 is still fine.
    let d = od(e(0xFFFF_FFFD, OtaState::Valid), OtaSelectEntry::ERASED);
    let (_, en) = single_write(d.set_boot_partition(1, 2, true).unwrap());
    assert_eq!(en.seq, 0xFFFF_FFFE);
    // Same-slot rewrite at the top still works.
    let d = od(e(0xFFFF_FFFE, OtaState::New), OtaSelectEntry::ERASED);
    let (_, en) = single_write(d.set_boot_partition(1, 2, true).unwrap());
    assert_eq!(en.seq, 0xFFFF_FFFE);
}

#[test]
fn renormalise_keeps_the_running_slot_with_the_smallest_sequence() {
    use OtaState::*;
    // After an update to 0xFFFFFFFE (ota_1), the switch back to ota_0 is exhausted.
    let d = od(e(0xFFFF_FFFD, Valid), e(0xFFFF_FFFE, Valid));
    assert!(matches!(
        d.set_boot_partition(0, 2, true),
        Err(PlanError::SequenceExhausted { .. })
    ));
    let plan = d.renormalise(1, 2).unwrap();
    let ops: Vec<_> = plan.iter().copied().collect();
    assert_eq!(
        ops,
        vec![
            OtadataOp::Write {
                sector: 0,
                entry: e(2, Valid)
            },
            OtadataOp::Erase { sector: 1 },
        ]
    );
    let mut entries = d.entries;
    plan.apply(&mut entries);
    let after = Otadata { entries };
    assert_eq!(after.active_slot(2), Some((0, 1)));
    // The switch fits again: the other sector, next sequence.
    let (s, en) = single_write(after.set_boot_partition(0, 2, true).unwrap());
    assert_eq!((s, en.seq, en.state), (1, 3, New));
    // Already minimal: nothing to write.
    assert!(after.renormalise(1, 2).unwrap().is_empty());

    // The inactive sector already erased (the download's invalidation ran first); active in
    // sector 0 this time.
    let d = od(e(0xFFFF_FFFE, Valid), OtaSelectEntry::ERASED);
    let ops: Vec<_> = d.renormalise(1, 2).unwrap().iter().copied().collect();
    assert_eq!(
        ops,
        vec![
            OtadataOp::Write {
                sector: 1,
                entry: e(2, Valid)
            },
            OtadataOp::Erase { sector: 0 },
        ]
    );
    // Three slots: 0xFFFFFFFE selects ota_1 ((seq - 1) % 3), which is seq 2 at the bottom.
    // UNDEFINED (written without rollback) counts as confirmed.
    let d = od(e(0xFFFF_FFFE, Undefined), OtaSelectEntry::ERASED);
    assert_eq!(d.active_slot(3), Some((0, 1)));
    let ops: Vec<_> = d.renormalise(1, 3).unwrap().iter().copied().collect();
    assert_eq!(
        ops,
        vec![
            OtadataOp::Write {
                sector: 1,
                entry: e(2, Valid)
            },
            OtadataOp::Erase { sector: 0 },
        ]
    );
}

#[test]
fn renormalise_refuses_what_it_cannot_do_safely() {
    use OtaState::*;
    // A trial is not confirmed: rewriting it VALID would confirm it unchecked.
    for state in [New, PendingVerify, OtaState::from_raw(0x55)] {
        let d = od(OtaSelectEntry::ERASED, e(0xFFFF_FFFE, state));
        assert_eq!(
            d.renormalise(1, 2),
            Err(PlanError::NotConfirmed { state }),
            "{state}"
        );
    }
    assert_eq!(
        Otadata::ERASED.renormalise(0, 2),
        Err(PlanError::NoActiveEntry)
    );
    let d = od(e(0xFFFF_FFFE, Valid), OtaSelectEntry::ERASED);
    assert_eq!(
        d.renormalise(2, 2),
        Err(PlanError::SlotOutOfRange {
            slot: 2,
            app_count: 2
        })
    );
    assert_eq!(d.renormalise(0, 0), Err(PlanError::NoOtaSlots));
    // The active entry selects another slot (the bootloader fell back from it): its state
    // does not matter, the running slot's fresh entry is written and the stale one erased.
    let d = od(e(0xFFFF_FFFE, PendingVerify), e(1, Valid));
    let ops: Vec<_> = d.renormalise(0, 2).unwrap().iter().copied().collect();
    assert_eq!(
        ops,
        vec![
            OtadataOp::Write {
                sector: 1,
                entry: e(1, Valid)
            },
            OtadataOp::Erase { sector: 0 },
        ]
    );
}

#[test]
fn mark_valid_and_invalid() {
    let d = od(e(1, OtaState::Valid), e(2, OtaState::PendingVerify));
    let (s, en) = single_write(d.mark_valid(2).unwrap());
    assert_eq!((s, en.seq, en.state), (1, 2, OtaState::Valid));
    let confirmed = od(e(1, OtaState::Valid), e(2, OtaState::Valid));
    assert!(confirmed.mark_valid(2).unwrap().is_empty());
    assert_eq!(Otadata::ERASED.mark_valid(2), Err(PlanError::NoActiveEntry));

    assert_eq!(
        d.rollback_candidate(2, false),
        Some(RollbackCandidate::Ota(0))
    );
    assert!(d.check_rollback_is_possible(2, false, |c| c == RollbackCandidate::Ota(0)));
    assert!(!d.check_rollback_is_possible(2, false, |_| false));
    let (s, en) = single_write(d.mark_invalid(2, true).unwrap());
    assert_eq!((s, en.seq, en.state), (1, 2, OtaState::Invalid));
    assert_eq!(
        d.mark_invalid(2, false),
        Err(PlanError::RollbackNotPossible)
    );

    let lonely = od(OtaSelectEntry::ERASED, e(1, OtaState::PendingVerify));
    assert_eq!(lonely.rollback_candidate(2, false), None);
    assert_eq!(
        lonely.rollback_candidate(2, true),
        Some(RollbackCandidate::Factory)
    );
}

#[test]
fn invalidate_inactive_sector() {
    // Running ota_1 (seq 2); inactive seq 1 selects ota_0 → erase it.
    let d = od(e(1, OtaState::Valid), e(2, OtaState::Valid));
    let ops: Vec<_> = d
        .invalidate_inactive(2, BootIndex::Ota(1))
        .iter()
        .copied()
        .collect();
    assert_eq!(ops, vec![OtadataOp::Erase { sector: 0 }]);
    // After a fallback the running slot is ota_0: the inactive entry names it, keep it.
    assert!(d.invalidate_inactive(2, BootIndex::Ota(0)).is_empty());
    // Inactive already empty.
    let d = od(OtaSelectEntry::ERASED, e(2, OtaState::Valid));
    assert!(d.invalidate_inactive(2, BootIndex::Ota(1)).is_empty());
    assert!(
        Otadata::ERASED
            .invalidate_inactive(2, BootIndex::Factory)
            .is_empty()
    );
}

fn ecowatt() -> BootLayout {
    layouts::ecowatt().boot_layout()
}

fn two_ota() -> BootLayout {
    layouts::two_ota().boot_layout()
}

fn sel(
    a: OtaSelectEntry,
    b: OtaSelectEntry,
    layout: &BootLayout,
    rollback: bool,
) -> fota_protocol::esp::otadata::BootSelection {
    select_boot([&a.encode(), &b.encode()], layout, rollback)
}

#[test]
fn bootloader_rollback_flow() {
    use OtaState::*;
    let l = ecowatt();
    // NEW is selected once and rewritten to PENDING_VERIFY.
    let s = sel(e(1, Valid), e(2, New), &l, true);
    assert_eq!(s.start, Some(BootIndex::Ota(1)));
    let ops: Vec<_> = s.rewrites.iter().copied().collect();
    assert_eq!(
        ops,
        vec![OtadataOp::Write {
            sector: 1,
            entry: e(2, PendingVerify)
        }]
    );
    // Next reset: PENDING_VERIFY → ABORTED, the old slot boots.
    let s = sel(e(1, Valid), e(2, PendingVerify), &l, true);
    assert_eq!(s.start, Some(BootIndex::Ota(0)));
    let ops: Vec<_> = s.rewrites.iter().copied().collect();
    assert_eq!(
        ops,
        vec![OtadataOp::Write {
            sector: 1,
            entry: e(2, Aborted)
        }]
    );
    assert!(s.to_string().contains("ABORTED"), "{s}");
    // Without rollback the same otadata boots the trial slot and writes nothing.
    let s = sel(e(1, Valid), e(2, PendingVerify), &l, false);
    assert_eq!(s.start, Some(BootIndex::Ota(1)));
    assert!(s.rewrites.is_empty());
    // Both pending: both aborted, nothing selectable → ota_0 on a factory-less table.
    let s = sel(e(1, PendingVerify), e(2, PendingVerify), &l, true);
    assert_eq!(s.rewrites.len(), 2);
    assert_eq!(s.start, Some(BootIndex::Ota(0)));
    assert!(!s.initial_contents);
    // The ABORTED rewrite keeps a bad CRC as read.
    let mut torn = e(2, PendingVerify);
    torn.crc = 0x1234;
    let s = sel(e(1, Valid), torn, &l, true);
    let ops: Vec<_> = s.rewrites.iter().copied().collect();
    match ops.as_slice() {
        [OtadataOp::Write { entry, .. }] => assert_eq!(entry.crc, 0x1234),
        other => panic!("{other:?}"),
    }
}

#[test]
fn bootloader_defaults_and_initial_contents() {
    let l = ecowatt();
    let s = sel(OtaSelectEntry::ERASED, OtaSelectEntry::ERASED, &l, true);
    assert_eq!(s.start, Some(BootIndex::Ota(0)));
    assert!(s.initial_contents);
    assert_eq!(
        s.after_boot(BootIndex::Ota(1)),
        Some(OtadataOp::Write {
            sector: 0,
            entry: e(2, OtaState::Valid)
        })
    );
    let order: Vec<_> = s.try_order(&l).iter().collect();
    assert_eq!(order, vec![BootIndex::Ota(0), BootIndex::Ota(1)]);

    // With factory: factory, no sequence write.
    let f = two_ota();
    let s = sel(OtaSelectEntry::ERASED, OtaSelectEntry::ERASED, &f, true);
    assert_eq!(s.start, Some(BootIndex::Factory));
    assert!(!s.initial_contents);
    assert_eq!(s.after_boot(BootIndex::Ota(0)), None);
    let order: Vec<_> = s.try_order(&f).iter().collect();
    assert_eq!(
        order,
        vec![BootIndex::Factory, BootIndex::Ota(0), BootIndex::Ota(1)]
    );

    // One CRC-bad entry and one empty: not "both invalid", no valid entry either.
    let mut bad = e(3, OtaState::Valid);
    bad.crc ^= 0xFF;
    let s = sel(bad, OtaSelectEntry::ERASED, &l, true);
    assert_eq!(s.reason, BootReason::NoValidEntry);
    assert_eq!(s.start, Some(BootIndex::Factory));
    assert!(!s.initial_contents);
    let order: Vec<_> = s.try_order(&l).iter().collect();
    assert_eq!(order, vec![BootIndex::Ota(0), BootIndex::Ota(1)]);

    // INVALID + erased with no factory: ota_0, but not "initial contents" (CRC is good).
    let s = sel(e(1, OtaState::Invalid), OtaSelectEntry::ERASED, &l, true);
    assert_eq!(s.start, Some(BootIndex::Ota(0)));
    assert!(!s.initial_contents);
}

#[test]
fn fallback_order_goes_down_then_up() {
    let f = two_ota();
    let s = sel(e(1, OtaState::Valid), e(2, OtaState::Valid), &f, true);
    assert_eq!(s.start, Some(BootIndex::Ota(1)));
    let order: Vec<_> = s.try_order(&f).iter().collect();
    assert_eq!(
        order,
        vec![BootIndex::Ota(1), BootIndex::Ota(0), BootIndex::Factory]
    );
    let s = sel(e(1, OtaState::Valid), OtaSelectEntry::ERASED, &f, true);
    let order: Vec<_> = s.try_order(&f).iter().collect();
    assert_eq!(
        order,
        vec![BootIndex::Ota(0), BootIndex::Factory, BootIndex::Ota(1)]
    );
}

#[test]
fn no_otadata_partition_or_too_small() {
    let mut l = ecowatt();
    l.otadata = None;
    let s = sel(e(1, OtaState::Valid), e(2, OtaState::Valid), &l, true);
    assert_eq!(s.reason, BootReason::NoOtadataPartition);
    assert_eq!(s.start, Some(BootIndex::Factory));
    let mut l = ecowatt();
    if let Some(p) = l.otadata.as_mut() {
        p.size = 0x1000;
    }
    let s = sel(e(1, OtaState::Valid), e(2, OtaState::Valid), &l, true);
    assert_eq!(s.start, None);
    assert_eq!(s.try_order(&l).iter().count(), 0);
}

fn arb_entry() -> impl Strategy<Value = OtaSelectEntry> {
    prop_oneof![
        Just(OtaSelectEntry::ERASED),
        (1u32..8, 0u32..6).prop_map(|(s, st)| e(s, OtaState::from_raw(st))),
        (any::<u32>(), any::<u32>()).prop_map(|(s, st)| e(s, OtaState::from_raw(st))),
        proptest::collection::vec(any::<u8>(), 32)
            .prop_map(|b| OtaSelectEntry::from_bytes(&b).unwrap()),
    ]
}

/// Every pair of entries the flash holds while `plan` runs, one flash operation at a time: a
/// write is an erase, then a program; a cut can also tear either. A torn erase sets some bits
/// of the old entry, a torn program leaves some bits of the new one unprogrammed; `noise`
/// says which.
fn flash_states(
    start: [OtaSelectEntry; 2],
    plan: &OtadataPlan,
    noise: &[u8; 32],
) -> Vec<[OtaSelectEntry; 2]> {
    let torn = |entry: &OtaSelectEntry| {
        let mut b = entry.encode();
        for (byte, n) in b.iter_mut().zip(noise) {
            *byte |= n;
        }
        OtaSelectEntry::decode(&b)
    };
    let mut states = vec![start];
    let mut now = start;
    for op in plan.iter() {
        let s = op.sector();
        let mut t = now;
        t[s] = torn(&now[s]);
        states.push(t);
        now[s] = OtaSelectEntry::ERASED;
        states.push(now);
        if let OtadataOp::Write { entry, .. } = op {
            let mut t = now;
            t[s] = torn(entry);
            states.push(t);
            now[s] = *entry;
            states.push(now);
        }
    }
    states
}

/// Tear noise: any bits, or only the `ota_state` bytes (the field no CRC covers, so the entry
/// can stay valid with a junk state).
fn arb_noise() -> impl Strategy<Value = [u8; 32]> {
    (any::<[u8; 32]>(), any::<bool>()).prop_map(|(mut n, state_only)| {
        if state_only {
            for (i, b) in n.iter_mut().enumerate() {
                if !(24..28).contains(&i) {
                    *b = 0;
                }
            }
        }
        n
    })
}

/// The agent's case: the active entry is confirmed, selects the running slot, and has a
/// sequence the switch cannot advance past; the other entry is anything below it.
fn arb_exhausted() -> impl Strategy<Value = (Otadata, u32, u32)> {
    (
        2u32..=16,
        0u32..16,
        any::<usize>(),
        arb_entry(),
        any::<bool>(),
    )
        .prop_filter_map(
            "active must select a slot below app_count and the switch must be exhausted",
            |(n, back, active, other, undefined)| {
                // The highest sequences: every slot's is within n of the top.
                let seq = 0xFFFF_FFFE - (back % n);
                let state = if undefined {
                    OtaState::Undefined
                } else {
                    OtaState::Valid
                };
                let a = active % 2;
                let mut entries = [other; 2];
                entries[a] = e(seq, state);
                let d = Otadata { entries };
                let (sector, slot) = d.active_slot(n)?;
                let exhausted = (0..n).any(|t| {
                    matches!(
                        d.set_boot_partition(t, n, true),
                        Err(PlanError::SequenceExhausted { .. })
                    )
                });
                (sector == a && exhausted).then_some((d, slot, n))
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Renormalising while the sequence is exhausted: after every flash operation of the plan
    /// (and with it torn), the bootloader still picks the running slot; at the end the entry
    /// is the smallest that selects it, VALID, and every switch fits again.
    #[test]
    fn renormalise_boots_the_running_slot_at_every_instant(
        (d, slot, n) in arb_exhausted(),
        noise in arb_noise(),
    ) {
        let plan = d.renormalise(slot, n).unwrap();
        prop_assert_eq!(plan.len(), 2);
        for (i, state) in flash_states(d.entries, &plan, &noise).iter().enumerate() {
            let now = Otadata { entries: *state };
            prop_assert_eq!(
                now.active_slot(n).map(|(_, s)| s),
                Some(slot),
                "state {} {:?}", i, state
            );
            if n == 2 {
                // The emulated bootloader's own rules (PENDING_VERIFY → ABORTED first).
                let s = sel(state[0], state[1], &ecowatt(), true);
                prop_assert_eq!(s.start, Some(BootIndex::Ota(slot)), "state {} {:?}", i, state);
            }
        }
        let mut entries = d.entries;
        plan.apply(&mut entries);
        let after = Otadata { entries };
        let (sector, s) = after.active_slot(n).unwrap();
        prop_assert_eq!(s, slot);
        prop_assert_eq!(after.entries[sector], e(slot + 1, OtaState::Valid));
        prop_assert_eq!(after.entries[1 - sector], OtaSelectEntry::ERASED);
        for t in 0..n {
            prop_assert!(after.set_boot_partition(t, n, true).is_ok(), "slot {}", t);
        }
        prop_assert!(after.renormalise(slot, n).unwrap().is_empty());
    }

    /// Any otadata: a plan, when there is one, never makes the bootloader pick a third slot
    /// on the way (only what it picked before, or `slot`), and ends selecting `slot`. Erase
    /// tears of the inactive entry are left out when that entry has a good CRC and a higher
    /// sequence than the active one: reviving it is the risk of any otadata erase, and the
    /// exhausted case above has no such entry.
    #[test]
    fn renormalise_never_selects_a_third_slot(
        a in arb_entry(),
        b in arb_entry(),
        n in 1u32..=16,
        slot in 0u32..16,
        noise in arb_noise(),
    ) {
        let d = od(a, b);
        let Ok(plan) = d.renormalise(slot, n) else { return Ok(()) };
        let (active, before) = d.active_slot(n).unwrap();
        let inactive = d.entries[1 - active];
        let revivable = inactive.crc_ok() && inactive.seq > d.entries[active].seq;
        let states = flash_states(d.entries, &plan, &noise);
        for (i, state) in states.iter().enumerate() {
            if i == 1 && revivable {
                continue;
            }
            let picked = Otadata { entries: *state }.active_slot(n).map(|(_, s)| s);
            prop_assert!(
                picked == Some(before) || picked == Some(slot),
                "state {} {:?} picks {:?}", i, state, picked
            );
        }
        let last = Otadata { entries: *states.last().unwrap() };
        prop_assert_eq!(last.active_slot(n).map(|(_, s)| s), Some(slot));
    }

    #[test]
    fn entry_round_trip(bytes in proptest::collection::vec(any::<u8>(), 32)) {
        let e = OtaSelectEntry::from_bytes(&bytes).unwrap();
        prop_assert_eq!(e.encode().to_vec(), bytes);
    }

    /// Every single-byte corruption of a valid entry makes it not valid, except in
    /// `ota_state` and `seq_label`, which no CRC covers: there validity follows the state.
    #[test]
    fn single_byte_corruption(seq in 0u32..0xFFFF_FFFF, state in 0u32..3, pos in 0usize..32, flip in 1u8..=255) {
        let entry = e(seq, OtaState::from_raw(state));
        prop_assert!(entry.is_valid());
        let mut b = entry.encode();
        b[pos] ^= flip;
        let c = OtaSelectEntry::decode(&b);
        if (4..28).contains(&pos) {
            prop_assert_eq!(c.is_valid(), c.state.is_selectable());
        } else {
            prop_assert!(!c.is_valid(), "pos {} flip {:#x}", pos, flip);
        }
    }

    #[test]
    fn planning_and_selection_never_panic(a in arb_entry(), b in arb_entry(), slot in 0u32..20, n in 0u32..20, rb in any::<bool>()) {
        let d = od(a, b);
        let _ = d.active_slot(n);
        if let Ok(plan) = d.set_boot_partition(slot, n, rb) {
            // The planned write makes the target slot the active one.
            let mut entries = d.entries;
            plan.apply(&mut entries);
            let after = Otadata { entries };
            prop_assert_eq!(after.active_slot(n).map(|(_, s)| s), Some(slot));
        }
        let _ = d.mark_valid(n);
        let _ = d.mark_invalid(n, true);
        let _ = d.invalidate_inactive(n, BootIndex::Ota(slot));
        for layout in [ecowatt(), two_ota()] {
            let s = sel(a, b, &layout, rb);
            let _ = s.to_string();
            for i in s.try_order(&layout).iter() {
                let _ = s.after_boot(i);
            }
        }
    }

    /// With rollback, a boot never leaves a PENDING_VERIFY entry that was there before.
    #[test]
    fn pending_never_survives_a_boot(a in arb_entry(), b in arb_entry()) {
        let l = ecowatt();
        let s = sel(a, b, &l, true);
        let mut entries = [a, b];
        s.rewrites.apply(&mut entries);
        for (before, after) in [a, b].iter().zip(entries) {
            if before.state == OtaState::PendingVerify {
                prop_assert_eq!(after.state, OtaState::Aborted);
            }
        }
        if let Some(BootIndex::Ota(k)) = s.start {
            prop_assert!(k < l.app_count);
        }
    }
}

#[test]
fn erased_constant_matches_flash() {
    assert_eq!(OtaSelectEntry::ERASED.encode(), [0xFF; 32]);
    assert_eq!(OtaSelectEntry::ERASED.seq, SEQ_EMPTY);
}
