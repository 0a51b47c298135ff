use super::body::{Field, at};
use super::*;
use crate::error::AgentError;
use crate::flash::{Region, Storage};
use fota_flash_sim::{Config, Cut, FaultPlan, SimFlash, Tear};
use fota_protocol::v2::{EventKind, FixedStr, ReasonCode};
use proptest::prelude::*;

const REGION: Region = match Region::new(0x2000, 0x2000) {
    Some(r) => r,
    None => panic!(),
};

fn storage() -> Storage<SimFlash> {
    Storage::new(SimFlash::new(Config::ESP32.with_capacity(0x4000)).unwrap())
        .map_err(|e| e.0)
        .unwrap()
}

fn reopen(s: Storage<SimFlash>) -> (Storage<SimFlash>, Journal) {
    let mut flash = s.into_inner();
    flash.power_on();
    let mut s = Storage::new(flash).map_err(|e| e.0).unwrap();
    let j = Journal::open(&mut s, REGION).unwrap();
    (s, j)
}

fn pending(chunks: u32) -> Pending {
    Pending {
        protocol: Protocol::V2,
        id: [7; 32],
        target_slot: 1,
        from_slot: 0,
        image_size: u64::from(chunks) * 4096,
        chunk_size: 4096,
        chunk_count: chunks,
        image_sha256: [8; 32],
        chunk_list_sha256: [9; 32],
        sequence: 3,
        security_counter: 1,
        fw_version: FixedStr::new("1.0.6").unwrap(),
        project: FixedStr::new("ecowatt").unwrap(),
        generation: 2,
        chunks_done: 0,
        last_digest8: [0; 8],
    }
}

fn downloading(chunks: u32) -> JournalState {
    JournalState {
        state: UpdateState::Downloading(pending(chunks)),
        ..JournalState::default()
    }
}

#[test]
fn body_round_trips_and_has_the_documented_length() {
    let mut s = downloading(5);
    s.report = Some(Report {
        kind: EventKind::RolledBack,
        reason: ReasonCode::HealthCheckFailed,
        id: [1; 32],
        fw_version: FixedStr::new("1.0.7").unwrap(),
        order_id: 9,
    });
    s.reject(Rejected {
        id: [2; 32],
        generation: 4,
        reason: 15,
    });
    s.legacy_nonce = 77;
    let bytes = s.encode();
    assert_eq!(bytes.len(), BODY_LEN);
    assert_eq!(JournalState::decode(&bytes), Some(s));
    assert_eq!(JournalState::decode(&[0u8; BODY_LEN]), None);
    assert_eq!(JournalState::decode(&bytes[1..]), None);
}

/// The rows of the body table in body.rs's documentation: (offset, size, field).
fn documented_body_rows() -> Vec<(usize, usize, String)> {
    let source = include_str!("body.rs");
    let table = source
        .split("//! | offset | size | field | meaning |")
        .nth(1)
        .expect("the body table");
    table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with("//! | "))
        .map(|l| {
            let cells: Vec<&str> = l
                .trim_start_matches("//! ")
                .split('|')
                .map(str::trim)
                .collect();
            (
                cells[1].parse().unwrap(),
                cells[2].parse().unwrap(),
                cells[3].to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_body_table_in_the_docs_is_the_layout_the_code_uses() {
    let rows = documented_body_rows();
    let code: Vec<(usize, usize, String)> = at::ALL
        .iter()
        .map(|(name, f)| (usize::from(f.at), usize::from(f.len), (*name).to_owned()))
        .collect();
    assert_eq!(rows, code);
    // The fields tile the body: each starts where the one before ends, and the last ends at
    // BODY_LEN.
    let mut end = 0;
    for (_, f) in at::ALL {
        assert_eq!(f.at, end);
        end = f.end();
    }
    assert_eq!(usize::from(end), BODY_LEN);
}

#[test]
fn each_body_field_is_written_where_the_table_says() {
    let release = |b: u8| Release {
        id: [b; 32],
        sequence: u64::from(b) << 40,
        security_counter: u32::from(b) << 8,
        secure_version: u32::from(b) << 16,
        fw_version: FixedStr::new("9.8.7").unwrap(),
        image_sha256: [b ^ 0xFF; 32],
        generation: u32::from(b) << 24,
    };
    let p = Pending {
        chunks_done: 3,
        last_digest8: [0xD8; 8],
        ..pending(9)
    };
    let mut state = JournalState {
        state: UpdateState::Trial {
            pending: Some(p),
            attempts: 0x42,
            health_failed: true,
        },
        legacy_disabled: true,
        installed: release(0x31),
        previous: release(0x32),
        rollback_from: 0xFF,
        last_order_id: 0x0102_0304_0506_0708,
        report: Some(Report {
            kind: EventKind::Failed,
            reason: ReasonCode::Downgrade,
            id: [0x61; 32],
            fw_version: FixedStr::new("1.2").unwrap(),
            order_id: 0x1112_1314_1516_1718,
        }),
        highest_seq_seen: 0x2122_2324_2526_2728,
        committed_security_counter: 0x3132_3334,
        committed_secure_version: 0x4142_4344,
        status_floor: 0x5152_5354_5556_5758,
        offline_floor: 0,
        legacy_nonce: 0x6162_6364_6566_6768,
        rejected: heapless::Vec::new(),
        resumes: 0x7172_7374,
        rechunks: 0x8182_8384,
        bad_statements: 0,
    };
    for i in 0..3u8 {
        state.reject(Rejected {
            id: [0xA0 + i; 32],
            generation: 0x0100 + u32::from(i),
            reason: 20 + i,
        });
    }
    let bytes = state.encode();
    let field = |f: Field| &bytes[f.range()];
    assert_eq!(field(at::VERSION), [1]);
    assert_eq!(field(at::STATE), [3]);
    assert_eq!(field(at::TRIAL_ATTEMPTS), [0x42]);
    assert_eq!(field(at::TRIAL_HEALTH_FAILED), [1]);
    assert_eq!(field(at::ROLLBACK_ORDER), [0; 8]);
    assert_eq!(field(at::LEGACY_DISABLED), [1]);
    let installed = field(at::INSTALLED);
    assert_eq!(&installed[..32], &[0x31; 32]);
    assert_eq!(&installed[32..40], &(0x31u64 << 40).to_le_bytes());
    assert_eq!(&installed[48..53], b"9.8.7");
    assert_eq!(&installed[112..], &(0x31u32 << 24).to_le_bytes());
    assert_eq!(field(at::PREVIOUS)[0], 0x32);
    assert_eq!(field(at::HAS_PENDING), [1]);
    let pending = field(at::PENDING);
    assert_eq!(pending[0], 0, "v2");
    assert_eq!(&pending[1..33], &[7; 32]);
    assert_eq!(&pending[195..199], &3u32.to_le_bytes());
    assert_eq!(&pending[199..], &[0xD8; 8]);
    assert_eq!(field(at::ROLLBACK_FROM), [0xFF]);
    assert_eq!(
        field(at::LAST_ORDER),
        0x0102_0304_0506_0708u64.to_le_bytes()
    );
    assert_eq!(field(at::HAS_REPORT), [1]);
    let report = field(at::REPORT);
    assert_eq!(report[0], EventKind::Failed.code());
    assert_eq!(report[1], ReasonCode::Downgrade.code());
    assert_eq!(&report[66..], &0x1112_1314_1516_1718u64.to_le_bytes());
    assert_eq!(
        field(at::HIGHEST_SEQUENCE),
        0x2122_2324_2526_2728u64.to_le_bytes()
    );
    assert_eq!(
        field(at::COMMITTED_SECURITY_COUNTER),
        0x3132_3334u32.to_le_bytes()
    );
    assert_eq!(
        field(at::COMMITTED_SECURE_VERSION),
        0x4142_4344u32.to_le_bytes()
    );
    assert_eq!(
        field(at::STATUS_FLOOR),
        0x5152_5354_5556_5758u64.to_le_bytes()
    );
    assert_eq!(
        field(at::LEGACY_NONCE),
        0x6162_6364_6566_6768u64.to_le_bytes()
    );
    assert_eq!(field(at::REJECTED_COUNT), [3]);
    let rejected = field(at::REJECTED);
    assert_eq!(&rejected[37..69], &[0xA1; 32]);
    assert_eq!(&rejected[69..73], &0x0101u32.to_le_bytes());
    assert_eq!(rejected[73], 21);
    assert!(rejected[3 * 37..].iter().all(|&b| b == 0), "unused slot");
    assert_eq!(field(at::RESUMES), 0x7172_7374u32.to_le_bytes());
    assert_eq!(field(at::RECHUNKS), 0x8182_8384u32.to_le_bytes());
    assert_eq!(JournalState::decode(&bytes), Some(state));
}

/// Download and staged bodies always name their release: without it they are not bodies this
/// agent writes. A release beside an idle or rolling-back state is not kept.
#[test]
fn a_body_whose_state_lacks_its_release_is_refused() {
    for tag in [1u8, 2] {
        let mut bytes = JournalState::default().encode();
        bytes[at::STATE.range().start] = tag;
        assert_eq!(JournalState::decode(&bytes), None, "state {tag}");
    }
    let mut bytes = downloading(3).encode();
    bytes[at::STATE.range().start] = 0;
    assert_eq!(JournalState::decode(&bytes), Some(JournalState::default()));
}

/// Sector 0 of a journal as the first layout's agent wrote it: one commit of
/// [`first_layout_state`] with its floor at 1_800_000_000, then a time-floor entry of
/// 1_800_007_200.
const FIRST_LAYOUT: &str = concat!(
    "46414a3101000000d6020000000000000100000000000000000000000170707070707070707070707070707070707070",
    "7070707070707070707070707003000000000000000500000000000000312e302e370000000000000000000000000000",
    "000000000000000000000000007171717171717171717171717171717171717171717171717171717171717171030000",
    "006060606060606060606060606060606060606060606060606060606060606060020000000000000000000000000000",
    "00312e302e36000000000000000000000000000000000000000000000000000000616161616161616161616161616161",
    "616161616161616161616161616161616103000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000004000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000300000000000000050000000000000000d2496b000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "00000000000000000000000000000000000000000000c6f01e5fffffffffffff0000002020ee496b0000000083fa7eac",
);

fn first_layout_state() -> JournalState {
    let release = |v: &str, b: u8, sequence: u64, security_counter: u32| Release {
        id: [b; 32],
        sequence,
        security_counter,
        secure_version: 0,
        fw_version: FixedStr::new(v).unwrap(),
        image_sha256: [b + 1; 32],
        generation: 3,
    };
    JournalState {
        legacy_disabled: true,
        installed: release("1.0.7", 0x70, 3, 5),
        previous: release("1.0.6", 0x60, 2, 0),
        last_order_id: 4,
        highest_seq_seen: 3,
        committed_security_counter: 5,
        status_floor: 1_800_000_000,
        ..JournalState::default()
    }
}

#[test]
fn a_journal_of_the_first_layout_reads_its_single_floor_as_the_status_floor() {
    let mut flash = SimFlash::new(Config::ESP32.with_capacity(0x4000)).unwrap();
    flash
        .preload(REGION.offset(), &hex::decode(FIRST_LAYOUT).unwrap())
        .unwrap();
    let mut s = Storage::new(flash).map_err(|e| e.0).unwrap();
    let j = Journal::open(&mut s, REGION).unwrap();
    assert_eq!(j.seq(), 1);
    assert_eq!(
        j.state(),
        &JournalState {
            status_floor: 1_800_007_200,
            offline_floor: 0,
            ..first_layout_state()
        }
    );
}

#[test]
fn bases_stay_in_the_first_layout_and_the_offline_floor_entry_comes_first() {
    let mut s = storage();
    let mut j = Journal::open(&mut s, REGION).unwrap();
    j.commit(&mut s, &first_layout_state(), Blob::Keep, Blob::Keep)
        .unwrap();
    j.append(&mut s, Entry::StatusFloor(1_800_007_200)).unwrap();
    let first = hex::decode(FIRST_LAYOUT).unwrap();
    let sector = |s: &Storage<SimFlash>, n: u32| -> Vec<u8> {
        let at = (REGION.offset() + n * SECTOR) as usize;
        s.inner().contents()[at..at + SECTOR as usize].to_vec()
    };
    let written = sector(&s, 0);
    assert_eq!(&written[..first.len()], &first[..], "byte for byte");
    assert!(written[first.len()..].iter().all(|&b| b == 0xFF));

    // With an offline floor, the base is the same but for its seq and CRC, and the entry
    // sits where the entries start, where an older agent's log ends.
    let next = JournalState {
        offline_floor: 1_790_000_000,
        ..j.state().clone()
    };
    j.commit(&mut s, &next, Blob::Keep, Blob::Keep).unwrap();
    let written = sector(&s, 1);
    let body = HEADER_LEN..HEADER_LEN + BODY_LEN;
    assert_eq!(&written[..8], b"FAJ1\x02\0\0\0");
    assert_eq!(&written[8..HEADER_LEN], &first[8..HEADER_LEN]);
    assert_eq!(written[body.clone()], next.encode());
    assert_eq!(
        JournalState::decode(&written[body]),
        Some(JournalState {
            offline_floor: 0,
            ..next.clone()
        })
    );
    let entries = 752;
    let entry: [u8; ENTRY_LEN] = written[entries..entries + ENTRY_LEN].try_into().unwrap();
    assert_eq!(
        Entry::decode(2, &entry),
        Some(Entry::OfflineFloor(1_790_000_000))
    );
    let (_, j) = reopen(s);
    assert_eq!(j.state(), &next);
}

#[test]
fn a_run_of_bad_statements_survives_a_reset_and_a_commit() {
    let mut s = storage();
    let mut j = Journal::open(&mut s, REGION).unwrap();
    j.commit(&mut s, &first_layout_state(), Blob::Keep, Blob::Keep)
        .unwrap();
    j.append(&mut s, Entry::BadStatements(2)).unwrap();
    let (mut s, mut j) = reopen(s);
    assert_eq!(j.state().bad_statements, 2, "kept across the reset");
    // A commit folds the log into a new base: the count goes with it, in an entry written
    // before the base (after the offline floor's), as the offline floor is.
    let next = JournalState {
        offline_floor: 1_790_000_000,
        ..j.state().clone()
    };
    j.commit(&mut s, &next, Blob::Keep, Blob::Keep).unwrap();
    let (mut s, mut j) = reopen(s);
    assert_eq!(j.state().bad_statements, 2);
    assert_eq!(j.state().offline_floor, 1_790_000_000);
    j.append(&mut s, Entry::BadStatements(0)).unwrap();
    let (_, j) = reopen(s);
    assert_eq!(j.state().bad_statements, 0, "a good statement ends the run");
    assert_eq!(
        Entry::decode(7, &Entry::BadStatements(3).encode(7).unwrap()),
        Some(Entry::BadStatements(3))
    );
}

#[test]
fn fresh_flash_reads_as_default_and_commits_survive_reopen() {
    let mut s = storage();
    let mut j = Journal::open(&mut s, REGION).unwrap();
    assert_eq!(j.state(), &JournalState::default());
    assert_eq!(j.seq(), 0);
    let next = downloading(10);
    j.commit(&mut s, &next, Blob::New(b"manifest bytes"), Blob::Keep)
        .unwrap();
    let (mut s, j) = reopen(s);
    assert_eq!(j.state(), &next);
    assert_eq!(j.seq(), 1);
    let mut buf = [0u8; 64];
    assert_eq!(
        j.read_manifest(&mut s, &mut buf).unwrap(),
        Some(&b"manifest bytes"[..])
    );
    assert_eq!(j.read_root(&mut s, &mut buf).unwrap(), None);
}

#[test]
fn blobs_are_kept_replaced_and_dropped() {
    let mut s = storage();
    let mut j = Journal::open(&mut s, REGION).unwrap();
    let root = [0x5Au8; 1395];
    let manifest = [0xA5u8; 841];
    j.commit(
        &mut s,
        &downloading(3),
        Blob::New(&manifest),
        Blob::New(&root),
    )
    .unwrap();
    j.commit(&mut s, &downloading(3), Blob::Keep, Blob::Keep)
        .unwrap();
    let (mut s, mut j) = reopen(s);
    let mut buf = [0u8; 2048];
    assert_eq!(
        j.read_manifest(&mut s, &mut buf).unwrap(),
        Some(&manifest[..])
    );
    assert_eq!(j.read_root(&mut s, &mut buf).unwrap(), Some(&root[..]));
    let idle = JournalState::default();
    j.commit(&mut s, &idle, Blob::Drop, Blob::Keep).unwrap();
    let (mut s, j) = reopen(s);
    assert_eq!(j.read_manifest(&mut s, &mut buf).unwrap(), None);
    assert_eq!(j.read_root(&mut s, &mut buf).unwrap(), Some(&root[..]));
    assert_eq!(j.seq(), 3);
}

#[test]
fn progress_entries_fold_into_the_state_and_compact_when_full() {
    let mut s = storage();
    let mut j = Journal::open(&mut s, REGION).unwrap();
    j.commit(
        &mut s,
        &downloading(1000),
        Blob::New(&[1u8; 841]),
        Blob::Keep,
    )
    .unwrap();
    for k in 1..=400u32 {
        j.append(
            &mut s,
            Entry::Progress {
                chunks_done: k,
                digest8: [k as u8; 8],
            },
        )
        .unwrap();
    }
    let (commits, appends) = j.counts();
    assert!(commits > 2, "a full log compacts: {commits}");
    assert_eq!(commits + appends, 401);
    let (_, j) = reopen(s);
    let p = *j.state().pending().unwrap();
    assert_eq!(p.chunks_done, 400);
    assert_eq!(p.last_digest8, [144; 8]);
}

#[test]
fn a_torn_entry_ends_the_log_and_forces_a_compaction() {
    let mut s = storage();
    let mut j = Journal::open(&mut s, REGION).unwrap();
    j.commit(&mut s, &downloading(10), Blob::Keep, Blob::Keep)
        .unwrap();
    j.append(
        &mut s,
        Entry::Progress {
            chunks_done: 1,
            digest8: [1; 8],
        },
    )
    .unwrap();
    let mut flash = s.into_inner();
    flash.arm(FaultPlan::new(3).tear(1, Tear::AllButLast));
    let mut s = Storage::new(flash).map_err(|e| e.0).unwrap();
    assert!(
        j.append(
            &mut s,
            Entry::Progress {
                chunks_done: 2,
                digest8: [2; 8]
            }
        )
        .is_err()
    );
    let (mut s, mut j) = reopen(s);
    assert_eq!(j.state().pending().unwrap().chunks_done, 1);
    let seq = j.seq();
    j.append(
        &mut s,
        Entry::Progress {
            chunks_done: 2,
            digest8: [2; 8],
        },
    )
    .unwrap();
    assert_eq!(
        j.seq(),
        seq + 1,
        "the append after a torn entry is a commit"
    );
    let (_, j) = reopen(s);
    assert_eq!(j.state().pending().unwrap().chunks_done, 2);
}

#[test]
fn transitions_outside_the_lifecycle_are_typed_errors() {
    let mut s = storage();
    let mut j = Journal::open(&mut s, REGION).unwrap();
    let confirming = JournalState {
        state: UpdateState::Confirming { pending: None },
        ..JournalState::default()
    };
    assert_eq!(
        j.commit(&mut s, &confirming, Blob::Keep, Blob::Keep),
        Err(AgentError::Transition(TransitionError {
            from: StateKind::Idle,
            to: StateKind::Confirming
        }))
    );
    // Progress outside a download is refused too.
    assert!(
        j.append(
            &mut s,
            Entry::Progress {
                chunks_done: 1,
                digest8: [0; 8]
            }
        )
        .is_err()
    );
    assert_eq!(s.inner().ops(), 0, "a refused transition writes nothing");
}

#[test]
fn rejected_list_keeps_the_newest_four_and_honours_generations() {
    let mut st = JournalState::default();
    for i in 0..6u8 {
        st.reject(Rejected {
            id: [i; 32],
            generation: 1,
            reason: 15,
        });
    }
    assert_eq!(st.rejected.len(), 4);
    assert!(st.is_rejected(&[0; 32], 1).is_none());
    assert!(st.is_rejected(&[5; 32], 1).is_some());
    assert!(st.is_rejected(&[5; 32], 0).is_some());
    assert!(
        st.is_rejected(&[5; 32], 2).is_none(),
        "a new assignment generation lifts it"
    );
}

/// One step of a journal write sequence.
#[derive(Debug, Clone)]
enum Op {
    /// Lifecycle state, blob choice, and new floors: (status floor, which may go down as a
    /// rotation resets it; offline floor raised to).
    Commit(u8, u8, Option<(u64, u64)>),
    Progress,
    Nonce(u64),
    Floor(u64),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        (
            0u8..6,
            0u8..3,
            proptest::option::of((any::<u64>(), any::<u64>()))
        )
            .prop_map(|(s, b, f)| Op::Commit(s, b, f)),
        Just(Op::Progress),
        Just(Op::Progress),
        Just(Op::Progress),
        any::<u64>().prop_map(Op::Nonce),
        any::<u64>().prop_map(Op::Floor),
    ]
}

/// The state an op leads to from `cur`, or `None` when the op is not allowed there.
fn target(cur: &JournalState, op: &Op) -> Option<(JournalState, Option<Entry>, u8)> {
    match op {
        Op::Commit(which, blob, floors) => {
            let mut next = cur.clone();
            if let Some((status, offline)) = *floors {
                next.status_floor = status;
                next.offline_floor = cur.offline_floor.max(offline);
            }
            // A state that names a release keeps the one in flight, or starts one.
            let p = cur.pending().copied().unwrap_or(pending(40));
            next.state = match which {
                0 => UpdateState::Idle,
                1 => UpdateState::Downloading(p),
                2 => UpdateState::Staged(p),
                3 => UpdateState::Trial {
                    pending: Some(p),
                    attempts: 1,
                    health_failed: false,
                },
                4 => UpdateState::Confirming { pending: Some(p) },
                _ => UpdateState::RollingBack { order_id: 5 },
            };
            cur.state.may_become(&next.state).ok()?;
            next.resumes = cur.resumes.wrapping_add(1);
            Some((next, None, *blob))
        }
        Op::Progress => {
            let UpdateState::Downloading(p) = cur.state else {
                return None;
            };
            if p.chunks_done >= p.chunk_count {
                return None;
            }
            let e = Entry::Progress {
                chunks_done: p.chunks_done + 1,
                digest8: [p.chunks_done as u8; 8],
            };
            let mut next = cur.clone();
            next.apply(&e).then_some(())?;
            Some((next, Some(e), 0))
        }
        Op::Nonce(n) => {
            let e = Entry::LegacyNonce(*n);
            let mut next = cur.clone();
            next.apply(&e);
            Some((next, Some(e), 0))
        }
        Op::Floor(t) => {
            let e = Entry::StatusFloor(*t);
            let mut next = cur.clone();
            next.apply(&e);
            Some((next, Some(e), 0))
        }
    }
}

fn run(
    j: &mut Journal,
    s: &mut Storage<SimFlash>,
    op: &Op,
) -> Option<Result<JournalState, AgentError>> {
    let (next, entry, blob) = target(j.state(), op)?;
    let manifest = [0x33u8; 600];
    let result = match entry {
        Some(e) => j.append(s, e),
        None => {
            let b = match blob {
                0 => Blob::Keep,
                1 => Blob::New(&manifest),
                _ => Blob::Drop,
            };
            j.commit(s, &next, b, Blob::Keep)
        }
    };
    Some(result.map(|()| next))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// A cut at any operation of any journal write sequence (before, after, torn program or
    /// erase) leaves the state before or after the interrupted write readable, never
    /// garbage; the sequence then goes on from what was read.
    #[test]
    fn a_cut_anywhere_leaves_the_old_or_the_new_state(
        ops in proptest::collection::vec(op_strategy(), 1..60),
        cut_at in 1u64..400,
        kind in 0u8..4,
        seed in any::<u64>(),
    ) {
        let cut = match kind {
            0 => Cut::Before,
            1 => Cut::After,
            2 => Cut::Torn(Tear::Random),
            _ => Cut::Torn(Tear::AllButLast),
        };
        let mut flash = SimFlash::new(Config::ESP32.with_capacity(0x4000)).unwrap();
        flash.arm(FaultPlan::new(seed).cut(cut_at, cut));
        let mut s = Storage::new(flash).map_err(|e| e.0).unwrap();
        let mut j = Journal::open(&mut s, REGION).unwrap();
        let mut cut_seen = false;
        for op in &ops {
            let before = j.state().clone();
            let Some(result) = run(&mut j, &mut s, op) else { continue };
            match result {
                Ok(after) => prop_assert_eq!(j.state(), &after),
                Err(_) => {
                    prop_assert!(!cut_seen);
                    cut_seen = true;
                    let after = target(&before, op).unwrap().0;
                    let (s2, j2) = reopen(s);
                    s = s2;
                    j = j2;
                    prop_assert!(
                        j.state() == &before || j.state() == &after,
                        "after a cut in {:?}: {:?}", op, j.state()
                    );
                }
            }
        }
        // Whatever happened, the journal still reads back as what is in RAM.
        let expected = j.state().clone();
        let (_, j) = reopen(s);
        prop_assert_eq!(j.state(), &expected);
    }
}
