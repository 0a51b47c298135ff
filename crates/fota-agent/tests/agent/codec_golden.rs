//! The bytes the agent writes to flash, pinned against golden files (tests/data, README there):
//! journal records for every lifecycle state with every field set and every entry kind, and
//! otadata and journal as the agent leaves them after each of its otadata writes (switch,
//! confirmation, trial re-arm, rollback order, renormalisation, reselection after a fallback).
//!
//! Devices in the field hold these bytes, and an agent of another version may read them after
//! a trial falls back, so no change inside the agent may alter them. The golden files were
//! made once and are never regenerated: a difference is a change of format, not of the test.

use std::path::PathBuf;

use fota_agent::flash::{Region, Storage};
use fota_agent::journal::{
    Blob, Entry, Journal, JournalState, Pending, Protocol, Rejected, Release, Report, UpdateState,
};
use fota_agent::{Agent, BootInfo, Buffers, PollOutcome, ResetReason, Running, StartupOutcome};
use fota_flash_sim::{Config, SimFlash};
use fota_protocol::esp::flash::FlashBuilder;
use fota_protocol::esp::otadata::{BootIndex, OtaSelectEntry, OtaState, Otadata};
use fota_protocol::v2::{EventKind, FixedStr, ReasonCode};
use fota_testkit::agent::*;

// ------------------------------------------------------------------ golden files

/// The kit's release, in the manifest format the golden files were made with (format 2):
/// the journal keeps the manifest envelope as received, so its bytes are the test's input,
/// not the agent's format. Format-3 manifests are journaled the same way (the blob's length
/// is in the header) and are covered by the power-cut sweeps and the v2 tests.
fn release(
    version: &str,
    image: Vec<u8>,
    sequence: u64,
    chunk: u32,
) -> fota_testkit::agent::Release {
    release_with(
        version,
        image,
        sequence,
        chunk,
        |b| b.format = fota_protocol::v2::ManifestFormat::V2,
        &[10],
    )
}

/// Set to `write-missing` to create golden files that do not exist yet; existing files are
/// never overwritten, whatever the variable says.
const WRITE_MISSING: &str = "FOTA_AGENT_GOLDEN";

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// `bytes` must equal the golden file `name`.
fn golden(name: &str, bytes: &[u8]) {
    let path = data_dir().join(name);
    match std::fs::read(&path) {
        Ok(want) => {
            if want != bytes {
                let at = want
                    .iter()
                    .zip(bytes)
                    .position(|(a, b)| a != b)
                    .unwrap_or(want.len().min(bytes.len()));
                panic!(
                    "{name}: the agent wrote other bytes than the golden file (first difference \
                     at byte {at:#x}: golden {:02x?}, written {:02x?}; lengths {} and {})",
                    want.get(at),
                    bytes.get(at),
                    want.len(),
                    bytes.len()
                );
            }
        }
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && std::env::var(WRITE_MISSING).as_deref() == Ok("write-missing") =>
        {
            std::fs::create_dir_all(data_dir()).unwrap();
            std::fs::write(&path, bytes).unwrap();
        }
        Err(e) => panic!("{name}: {e} (tests/data/README.md says how golden files are made)"),
    }
}

// ------------------------------------------------------------------ journal records

/// The journal's two sectors on a small flash of its own.
const REGION: Region = match Region::new(0x2000, 0x2000) {
    Some(r) => r,
    None => panic!(),
};

fn journal_flash() -> Storage<SimFlash> {
    Storage::new(SimFlash::new(Config::ESP32.with_capacity(0x4000)).unwrap())
        .map_err(|e| e.0)
        .unwrap()
}

fn region_bytes(s: &Storage<SimFlash>) -> Vec<u8> {
    let at = REGION.offset() as usize;
    s.inner().contents()[at..at + REGION.size() as usize].to_vec()
}

fn fixed(s: &str) -> FixedStr {
    FixedStr::new(s).unwrap()
}

fn release_record(b: u8, version: &str) -> Release {
    Release {
        id: [b; 32],
        sequence: 0x0102_0304_0506_0700 | u64::from(b),
        security_counter: 0x1000 + u32::from(b),
        secure_version: 0x2000 + u32::from(b),
        fw_version: fixed(version),
        image_sha256: [b ^ 0xFF; 32],
        generation: 0x3000 + u32::from(b),
    }
}

fn pending(protocol: Protocol) -> Pending {
    Pending {
        protocol,
        id: [0x51; 32],
        target_slot: 1,
        from_slot: 0xFF,
        image_size: 0x0001_2345,
        chunk_size: 4096,
        chunk_count: 19,
        image_sha256: [0x52; 32],
        chunk_list_sha256: [0x53; 32],
        sequence: 0x0A0B_0C0D_0E0F_1011,
        security_counter: 0x0607_0809,
        fw_version: fixed("2.4.6-rc.1"),
        project: fixed("ecowatt-inverter"),
        generation: 0x1122_3344,
        chunks_done: 7,
        last_digest8: [1, 2, 3, 4, 5, 6, 7, 8],
    }
}

/// A state with every field that is not the lifecycle's set to something other than its
/// default.
fn everything(state: UpdateState) -> JournalState {
    let mut rejected = heapless::Vec::new();
    for i in 0..4u8 {
        rejected
            .push(Rejected {
                id: [0xA0 + i; 32],
                generation: 0x0100_0000 + u32::from(i),
                reason: ReasonCode::HealthCheckFailed.code() + i,
            })
            .unwrap();
    }
    JournalState {
        state,
        legacy_disabled: true,
        installed: release_record(0x31, "2.4.5"),
        previous: release_record(0x32, "2.4.4"),
        rollback_from: 1,
        last_order_id: 0x7766_5544_3322_1100,
        report: Some(Report {
            kind: EventKind::RollbackDone,
            reason: ReasonCode::OperatorOrder,
            id: [0x61; 32],
            fw_version: fixed("2.4.3"),
            order_id: 0x0F0E_0D0C_0B0A_0908,
        }),
        highest_seq_seen: 0x1111_2222_3333_4444,
        committed_security_counter: 0x5555_6666,
        committed_secure_version: 0x7777_8888,
        status_floor: 1_800_003_600,
        offline_floor: 1_799_990_000,
        legacy_nonce: 0x0123_4567_89AB_CDEF,
        rejected,
        resumes: 0x0000_BEEF,
        rechunks: 0x0000_CAFE,
        // Zero writes no entry: the golden files predate the bad-statements entry.
        bad_statements: 0,
    }
}

/// Commits each state in turn (each must be a lifecycle transition from the one before), then
/// appends `entries`; the region must equal the golden file, and a fresh open must read back
/// what the journal holds in RAM, blobs included.
fn journal_case(name: &str, commits: &[(JournalState, Blob<'_>, Blob<'_>)], entries: &[Entry]) {
    let mut s = journal_flash();
    let mut j = Journal::open(&mut s, REGION).unwrap();
    for (state, manifest, root) in commits {
        j.commit(&mut s, state, *manifest, *root).unwrap();
    }
    for entry in entries {
        j.append(&mut s, *entry).unwrap();
    }
    golden(name, &region_bytes(&s));

    let mut manifest = vec![0u8; 4096];
    let mut root = vec![0u8; 4096];
    let want_manifest = j
        .read_manifest(&mut s, &mut manifest)
        .unwrap()
        .map(<[u8]>::to_vec);
    let want_root = j.read_root(&mut s, &mut root).unwrap().map(<[u8]>::to_vec);
    let mut flash = s.into_inner();
    flash.power_on();
    let mut s = Storage::new(flash).map_err(|e| e.0).unwrap();
    let again = Journal::open(&mut s, REGION).unwrap();
    assert_eq!(again.state(), j.state(), "{name} reads back");
    assert_eq!(again.seq(), j.seq(), "{name}");
    assert_eq!(
        again
            .read_manifest(&mut s, &mut manifest)
            .unwrap()
            .map(<[u8]>::to_vec),
        want_manifest,
        "{name}"
    );
    assert_eq!(
        again
            .read_root(&mut s, &mut root)
            .unwrap()
            .map(<[u8]>::to_vec),
        want_root,
        "{name}"
    );
}

fn manifest_blob() -> Vec<u8> {
    release("2.4.6", image("2.4.6", 0x9000, false), 9, 4096).manifest
}

#[test]
fn an_idle_base_with_every_field_set_and_its_entries_keep_their_bytes() {
    let root = root_with(2, &[10, 11], &[21]);
    journal_case(
        "journal-idle.bin",
        &[(everything(UpdateState::Idle), Blob::Drop, Blob::New(&root))],
        &[
            Entry::LegacyNonce(0x0123_4567_89AB_CDF0),
            Entry::StatusFloor(1_800_007_200),
            Entry::ReportDelivered,
        ],
    );
}

#[test]
fn a_v2_download_base_and_its_progress_entries_keep_their_bytes() {
    let manifest = manifest_blob();
    let digest = |k: u8| [k, k ^ 0x5A, 0xC3, k, 0x3C, !k, 0x99, k.wrapping_mul(7)];
    journal_case(
        "journal-downloading-v2.bin",
        &[(
            everything(UpdateState::Downloading(pending(Protocol::V2))),
            Blob::New(&manifest),
            Blob::Keep,
        )],
        &[
            Entry::Progress {
                chunks_done: 8,
                digest8: digest(8),
            },
            Entry::Progress {
                chunks_done: 9,
                digest8: digest(9),
            },
            Entry::StatusFloor(1_800_010_800),
            Entry::Progress {
                chunks_done: 10,
                digest8: digest(10),
            },
        ],
    );
}

#[test]
fn a_legacy_download_base_and_its_nonce_entries_keep_their_bytes() {
    let mut state = everything(UpdateState::Downloading(pending(Protocol::Legacy)));
    state.legacy_disabled = false;
    journal_case(
        "journal-downloading-legacy.bin",
        &[(state, Blob::Drop, Blob::Drop)],
        &[
            Entry::LegacyNonce(0x0123_4567_89AB_CDF1),
            Entry::Progress {
                chunks_done: 8,
                digest8: [0xEE; 8],
            },
            Entry::LegacyNonce(0x0123_4567_89AB_CDF3),
        ],
    );
}

#[test]
fn a_staged_base_that_keeps_both_blobs_keeps_its_bytes() {
    let manifest = manifest_blob();
    let root = root_with(2, &[10], &[20, 21]);
    let mut staged = pending(Protocol::V2);
    staged.chunks_done = staged.chunk_count;
    journal_case(
        "journal-staged.bin",
        &[
            (
                everything(UpdateState::Downloading(pending(Protocol::V2))),
                Blob::New(&manifest),
                Blob::New(&root),
            ),
            (
                everything(UpdateState::Staged(staged)),
                Blob::Keep,
                Blob::Keep,
            ),
        ],
        &[Entry::ReportDelivered],
    );
}

#[test]
fn trial_bases_with_and_without_a_pending_release_keep_their_bytes() {
    let trial = |pending| UpdateState::Trial {
        pending,
        attempts: 3,
        health_failed: true,
    };
    journal_case(
        "journal-trial.bin",
        &[
            (
                everything(UpdateState::Staged(pending(Protocol::V2))),
                Blob::Drop,
                Blob::Drop,
            ),
            (
                everything(trial(Some(pending(Protocol::V2)))),
                Blob::Keep,
                Blob::Keep,
            ),
        ],
        &[Entry::StatusFloor(1_800_014_400)],
    );
    // A trial the journal did not expect (it names no release), and no offline floor, so no
    // entry before the base.
    let unexpected = JournalState {
        offline_floor: 0,
        ..everything(trial(None))
    };
    journal_case(
        "journal-trial-unexpected.bin",
        &[(unexpected, Blob::Drop, Blob::Drop)],
        &[],
    );
}

#[test]
fn confirming_bases_with_and_without_a_pending_release_keep_their_bytes() {
    let trial = |pending| UpdateState::Trial {
        pending,
        attempts: 1,
        health_failed: false,
    };
    for (name, pending) in [
        ("journal-confirming.bin", Some(pending(Protocol::Legacy))),
        ("journal-confirming-unexpected.bin", None),
    ] {
        journal_case(
            name,
            &[
                (everything(trial(pending)), Blob::Drop, Blob::Drop),
                (
                    everything(UpdateState::Confirming { pending }),
                    Blob::Keep,
                    Blob::Keep,
                ),
            ],
            &[],
        );
    }
}

#[test]
fn a_rolling_back_base_keeps_its_bytes() {
    let mut state = everything(UpdateState::RollingBack {
        order_id: 0x0807_0605_0403_0201,
    });
    state.rollback_from = 0xFF;
    journal_case(
        "journal-rolling-back.bin",
        &[(state, Blob::Drop, Blob::Drop)],
        &[Entry::LegacyNonce(0x0123_4567_89AB_CDF9)],
    );
}

#[test]
fn a_full_log_compacts_into_the_same_bytes() {
    let manifest = manifest_blob();
    let mut state = everything(UpdateState::Downloading(pending(Protocol::V2)));
    if let UpdateState::Downloading(p) = &mut state.state {
        p.chunks_done = 0;
        p.chunk_count = 400;
        p.image_size = 400 * 4096;
    }
    let entries: Vec<Entry> = (1..=300u32)
        .map(|k| Entry::Progress {
            chunks_done: k,
            digest8: (k.wrapping_mul(0x9E37_79B9))
                .to_le_bytes()
                .repeat(2)
                .try_into()
                .unwrap(),
        })
        .collect();
    journal_case(
        "journal-compacted.bin",
        &[(state, Blob::New(&manifest), Blob::Keep)],
        &entries,
    );
}

// ------------------------------------------------------------------ the agent's otadata writes

const OTADATA: core::ops::Range<usize> = 0xE000..0x10000;
/// The EcoWatt table's journal: the last two sectors of `coredump`.
const JOURNAL: core::ops::Range<usize> = 0x3FE000..0x400000;

/// Boots a fresh agent on `flash` as running `running` (no bootloader: the test plays its
/// part by hand, so only the agent's own writes are pinned), runs startup, then polls until
/// it is idle or wants a reboot.
fn run_agent(
    flash: SimFlash,
    net: &Net,
    spec: &DeviceSpec,
    running: Running,
    healthy: bool,
) -> (SimFlash, StartupOutcome, Option<PollOutcome>) {
    let mut chunk = vec![0u8; spec.chunk_buf];
    let mut io = vec![0u8; spec.io_buf];
    let mut page = vec![0u8; 4096];
    let plat = Plat {
        now: 0,
        rng: 0x00C0_FFEE,
        healthy,
        slept: 0,
    };
    let bufs = Buffers {
        chunk: &mut chunk,
        io: &mut io,
        page: &mut page,
    };
    let mut agent = Agent::boot(
        flash,
        net.clone(),
        plat,
        config(spec),
        BootInfo { running },
        bufs,
    )
    .map_err(|f| f.error)
    .unwrap();
    let startup = futures_executor::block_on(agent.startup());
    let mut last = None;
    if startup == StartupOutcome::Ready {
        for _ in 0..spec.max_polls {
            let o = futures_executor::block_on(agent.poll());
            last = Some(o);
            if matches!(o, PollOutcome::Idle { .. } | PollOutcome::RebootRequired) {
                break;
            }
        }
    }
    let (flash, _, _) = agent.into_parts();
    assert!(flash.is_powered());
    (flash, startup, last)
}

fn otadata_of(flash: &SimFlash) -> Otadata {
    Otadata::from_partition(&flash.contents()[OTADATA]).unwrap()
}

/// Writes `entry` (or erases) otadata sector `sector` directly, as the bootloader would.
fn put_otadata(flash: &mut SimFlash, sector: usize, entry: Option<OtaSelectEntry>) {
    let at = OTADATA.start + sector * 0x1000;
    flash.preload(at as u32, &[0xFF; 0x1000]).unwrap();
    if let Some(e) = entry {
        flash.preload(at as u32, &e.encode()).unwrap();
    }
}

/// The bootloader's part of a trial boot, by the emulated ESP-IDF bootloader: the NEW entry
/// selecting `slot` becomes PENDING_VERIFY, same sector, same sequence.
fn bootloader_starts_trial(flash: &mut SimFlash, slot: u8) {
    let booted = bootloader(flash).expect("power stays on");
    assert_eq!(booted.running, Running::Ota(slot));
    assert!(booted.trial, "{booted:?}");
}

fn golden_flash(name: &str, flash: &SimFlash) {
    golden(&format!("{name}.otadata.bin"), &flash.contents()[OTADATA]);
    golden(&format!("{name}.journal.bin"), &flash.contents()[JOURNAL]);
}

fn v2_net(assign: Assign) -> Net {
    let net = Net::default();
    net.with(|s| {
        s.v2.releases
            .push(release("1.0.6", image("1.0.6", 0x9000, false), 2, 4096));
        s.v2.assign = assign;
    });
    net
}

/// A v2 update from ota_0, the trial on ota_1 and its confirmation, an operator's rollback
/// back to ota_0, and the trial of a second device that fails its health check with k = 2.
#[test]
fn the_otadata_and_journal_an_update_and_a_rollback_leave_keep_their_bytes() {
    let old = image("1.0.5", 0x8000, false);
    let net = v2_net(Assign::Install(0));
    let spec = DeviceSpec::default();

    // Download, verify, switch: ota_1 selected NEW.
    let flash = provisioned_flash(&table(), &old);
    let (mut flash, startup, poll) = run_agent(flash, &net, &spec, Running::Ota(0), true);
    assert_eq!(startup, StartupOutcome::Ready);
    assert_eq!(poll, Some(PollOutcome::RebootRequired));
    golden_flash("agent-1-switched", &flash);
    let switched = flash.clone();

    // Trial boot: health check, confirmation, ota_1 VALID.
    bootloader_starts_trial(&mut flash, 1);
    let (flash, startup, _) = run_agent(flash, &net, &spec, Running::Ota(1), true);
    assert_eq!(startup, StartupOutcome::Ready);
    assert_eq!(
        otadata_of(&flash).state_of_slot(1, 2),
        Some(OtaState::Valid)
    );
    golden_flash("agent-2-confirmed", &flash);

    // An operator's rollback order: ota_1's entry INVALID, the journal rolling back.
    net.with(|s| s.v2.assign = Assign::Rollback(0x0000_0000_0000_0107));
    let (flash, startup, poll) = run_agent(flash, &net, &spec, Running::Ota(1), true);
    assert_eq!(startup, StartupOutcome::Ready);
    assert_eq!(poll, Some(PollOutcome::RebootRequired));
    assert_eq!(
        otadata_of(&flash).state_of_slot(1, 2),
        Some(OtaState::Invalid)
    );
    golden_flash("agent-3-rollback-marked", &flash);

    // Back on ota_0 (the bootloader skips the INVALID entry): the rollback is done.
    let (flash, startup, _) = run_agent(flash, &net, &spec, Running::Ota(0), true);
    assert_eq!(startup, StartupOutcome::Ready);
    golden_flash("agent-4-rollback-done", &flash);

    // Another device with k = 2 whose new image fails its self-test: the entry is re-armed
    // NEW before the health check, and the failure is journaled.
    let mut flash = switched;
    bootloader_starts_trial(&mut flash, 1);
    let spec = DeviceSpec {
        k: 2,
        ..DeviceSpec::default()
    };
    let (flash, startup, _) = run_agent(flash, &net, &spec, Running::Ota(1), false);
    assert_eq!(
        startup,
        StartupOutcome::ResetRequired(ResetReason::HealthCheckFailed)
    );
    assert_eq!(otadata_of(&flash).state_of_slot(1, 2), Some(OtaState::New));
    golden_flash("agent-5-rearmed", &flash);
}

/// ota_1 runs, selected by the last usable sequence: before downloading for ota_0 the agent
/// renormalises otadata, then switches with the next sequence.
#[test]
fn the_otadata_a_renormalisation_leaves_keeps_its_bytes() {
    let running = image("1.0.5", 0x8000, false);
    let mut b = FlashBuilder::new(FLASH as u32, &table()).unwrap();
    b.write_app(BootIndex::Ota(1), &running).unwrap();
    b.set_otadata(0, &OtaSelectEntry::new(0xFFFF_FFFE, OtaState::Valid))
        .unwrap();
    let flash = SimFlash::from_image(Config::ESP32.with_capacity(FLASH), b.into_bytes()).unwrap();
    let net = v2_net(Assign::Install(0));
    let (flash, startup, poll) =
        run_agent(flash, &net, &DeviceSpec::default(), Running::Ota(1), true);
    assert_eq!(startup, StartupOutcome::Ready);
    assert_eq!(poll, Some(PollOutcome::RebootRequired));
    let ota = otadata_of(&flash);
    assert_eq!(ota.entries[1], OtaSelectEntry::new(2, OtaState::Valid));
    assert_eq!(ota.entries[0], OtaSelectEntry::new(3, OtaState::New));
    golden_flash("agent-6-renormalised", &flash);
}

/// otadata selects ota_1, which holds nothing bootable, so the bootloader fell back to ota_0:
/// before downloading into ota_1 the agent selects the running slot again (VALID), drops the
/// stale entry, and switches at the end.
#[test]
fn the_otadata_a_reselection_after_a_fallback_leaves_keeps_its_bytes() {
    let old = image("1.0.5", 0x8000, false);
    let mut flash = provisioned_flash(&table(), &old);
    put_otadata(&mut flash, 1, Some(OtaSelectEntry::new(2, OtaState::New)));
    let net = v2_net(Assign::Install(0));
    let (flash, startup, poll) =
        run_agent(flash, &net, &DeviceSpec::default(), Running::Ota(0), true);
    assert_eq!(startup, StartupOutcome::Ready);
    assert_eq!(poll, Some(PollOutcome::RebootRequired));
    let ota = otadata_of(&flash);
    assert_eq!(ota.entries[0], OtaSelectEntry::new(3, OtaState::Valid));
    assert_eq!(ota.entries[1], OtaSelectEntry::new(4, OtaState::New));
    golden_flash("agent-7-reselected", &flash);
}

/// A legacy update: its journal (legacy pending release, nonce entries) and the switch.
#[test]
fn the_otadata_and_journal_a_legacy_update_leaves_keep_their_bytes() {
    let old = image("1.0.5", 0x8000, false);
    let net = Net::default();
    net.with(|s| {
        s.legacy.release = Some(("1.0.6".into(), image("1.0.6", 0x9000, false), 4096));
    });
    let spec = DeviceSpec {
        legacy: true,
        ..DeviceSpec::default()
    };
    let flash = provisioned_flash(&table(), &old);
    let (flash, startup, poll) = run_agent(flash, &net, &spec, Running::Ota(0), true);
    assert_eq!(startup, StartupOutcome::Ready);
    assert_eq!(poll, Some(PollOutcome::RebootRequired));
    golden_flash("agent-8-legacy-switched", &flash);
}
