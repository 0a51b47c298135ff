//! Power cuts across a whole update (research/device.md §7): the real agent on the emulated
//! bootloader and flash, the real server in-process (no sockets), a 64 KiB image in 4 KiB
//! chunks on the EcoWatt layout.
//!
//! A clean run counts the flash operations N of the whole update: invalidating otadata,
//! download, journal, read-back, the otadata switch, the reboot's bootloader rewrite, the trial
//! boot and the confirmation. Then each step cuts at one operation (before it, after it, or
//! tearing it), powers the device back on with fresh RAM (a new agent, transport and clock),
//! runs it to the end, and checks DESIGN §3's invariants on the whole boot history.
//!
//! The default run sweeps every operation with a cut before it and tears every operation (and,
//! for the update after otadata's last usable sequence, cuts before and after every operation);
//! cuts after each operation and the torn-write variants run with
//! `cargo test -p fota-emulator --locked -- --ignored`.

use fota_agent::PollOutcome;
use fota_emulator::device::{DeviceOptions, Ended, RunResult, Until};
use fota_emulator::flash_file::{self, FlashSpec, Layout};
use fota_flash_sim::{Cut, FaultPlan, OpKind, SimFlash, Tear};
use fota_protocol::esp::otadata::{BootIndex, OtaSelectEntry, OtaState};
use fota_protocol::v2::ReasonCode;

use fota_testkit::emulated::*;
use fota_testkit::invariants::{History, Observed};
use fota_testkit::server::*;
use fota_testkit::{image, sha256};

const IMAGE: u32 = 0x1_0000;
const CHUNK: u32 = 4096;

/// A server offering 1.0.6 to the class, and the pristine device flash on 1.0.5.
struct Sweep {
    server: TestServer,
    pristine: SimFlash,
    old: Vec<u8>,
    new: Vec<u8>,
    /// The OTA slot the update writes; the other one runs `old` until it is confirmed.
    new_slot: u32,
    layout: Layout,
    devices: u32,
    legacy: bool,
}

impl Sweep {
    async fn new(layout: Layout, legacy: bool) -> Self {
        let server = TestServer::in_process().await;
        let old = image("1.0.5", IMAGE, false);
        let new = image("1.0.6", IMAGE, false);
        if legacy {
            let (s, v) = server.legacy_upload("1.0.6", &new, u64::from(CHUNK)).await;
            assert!(s.is_success(), "{v}");
        } else {
            let rid = server.release("1.0.6", 1, &new, CHUNK).await;
            server.assign_class(&rid).await;
        }
        let pristine = flash_file::new_in_memory(&FlashSpec::new(layout, &old)).unwrap();
        Self {
            server,
            pristine,
            old,
            new,
            new_slot: 1,
            layout,
            devices: 0,
            legacy,
        }
    }

    /// The next update after one that took otadata's last usable sequence: the pristine flash
    /// runs 1.0.6 confirmed in ota_1 at seq 0xFFFFFFFE, and the server offers 1.0.7, which
    /// goes to ota_0 only after otadata is renormalised.
    async fn exhausted() -> Self {
        let mut s = Self::new(Layout::Ecowatt, false).await;
        let (mut flash, _, _) = updated_to_last_sequence(&mut s).await;
        let newer = image("1.0.7", IMAGE, false);
        let rid = s.server.release("1.0.7", 2, &newer, CHUNK).await;
        s.server.assign_class(&rid).await;
        flash.arm(FaultPlan::none());
        s.pristine = flash;
        s.old = core::mem::replace(&mut s.new, newer);
        s.new_slot = 0;
        s
    }

    /// A fresh device identity: the server's view of each sweep step starts clean too.
    async fn options(&mut self) -> DeviceOptions {
        self.devices += 1;
        let name = format!("sweep-{:05}", self.devices);
        let mut o = if self.legacy {
            legacy_options(&name)
        } else {
            let p = self.server.provision(&name).await;
            v2_options(&p)
        };
        o.poll_interval = core::time::Duration::ZERO;
        o.max_checkins = 12;
        o
    }

    fn slot_range(&self, slot: u32) -> core::ops::Range<usize> {
        let table = self.layout.table();
        let p = table.boot_layout().ota[slot as usize].unwrap();
        p.offset as usize..(p.offset + p.size) as usize
    }

    /// Runs power-on periods until the device reaches the goal; each cut is followed by a
    /// fresh power-on. Returns every run.
    async fn run_to_end(&self, flash: &mut SimFlash, opts: &DeviceOptions) -> Vec<RunResult> {
        let mut runs = Vec::new();
        for _ in 0..32 {
            let r = run_local(flash, opts, &self.server.app, Until::Updated).await;
            let ended = r.ended.clone();
            runs.push(r);
            match ended {
                Ended::PowerCut => flash.power_on(),
                _ => return runs,
            }
        }
        panic!("still cutting after 32 power-ons");
    }

    /// DESIGN §3's invariants over the history of one step. `what` names the step.
    fn check(&self, what: &str, flash: &SimFlash, runs: &[RunResult], interruptions: usize) {
        let last = runs.last().unwrap();
        let boots: Vec<_> = runs.iter().flat_map(|r| r.boots.iter()).collect();
        let new_slot = BootIndex::Ota(self.new_slot);
        // This harness sees each boot's start only: a boot counts as confirmed when it found
        // its slot VALID, and the last one by the flash as the run left it.
        let mut history = History::new(1, &[sha256(&self.old), sha256(&self.new)]);
        for (i, b) in boots.iter().enumerate() {
            let confirmed = if i + 1 == boots.len() {
                last.last_boot.as_ref().unwrap().running_state_now(flash) == Some(OtaState::Valid)
            } else {
                b.state == Some(OtaState::Valid)
            };
            history
                .push(Observed {
                    running: b.running,
                    state: b.state,
                    confirmed,
                    image_sha256: b.image_sha256,
                })
                .unwrap_or_else(|e| panic!("{what}: {e}"));
        }
        let mut rolled_back = boots
            .windows(2)
            .any(|w| w[0].running == new_slot && w[1].running != new_slot);
        // A trial can also end before the agent ran in it: a cut right after the bootloader's
        // NEW → PENDING_VERIFY rewrite leaves no boot of the new slot in the history, and the
        // next boot aborts the entry. The agent's rolled_back report is then the evidence.
        rolled_back |= boots
            .iter()
            .filter_map(|b| b.status)
            .any(|s| s.last_outcome == Some(fota_protocol::v2::EventKind::RolledBack));
        // A legacy server keeps offering the release the device rolled back from; the device
        // rightly never takes it again, so "updated" is never reached: idle is the end.
        let settled = matches!(&last.ended, Ended::Error(m) if m.starts_with("no goal"))
            && self.legacy
            && rolled_back
            && matches!(last.last_poll(), Some(PollOutcome::Idle { .. }));
        assert!(
            last.ended == Ended::Done || settled,
            "{what}: did not finish: {last:?}"
        );
        // The device boots a complete, verified, confirmed image: the new one, or the old one
        // when the power failed during the trial boot (ESP-IDF's one strike: any reset before
        // the confirmation rolls back, and the agent reports it). After a rollback whose
        // release is not rejected (a confirmation cut short), the update may run again.
        let boot = last.last_boot.as_ref().unwrap();
        let final_sha = boot.image_sha256;
        assert!(
            final_sha == sha256(&self.new) || (rolled_back && final_sha == sha256(&self.old)),
            "{what}: final image is neither the new one nor, after a rollback, the old one"
        );
        assert_eq!(
            boot.running_state_now(flash),
            Some(OtaState::Valid),
            "{what}: final state"
        );
        if rolled_back && final_sha == sha256(&self.old) {
            let reported = boots
                .iter()
                .filter_map(|b| b.status)
                .any(|s| s.last_outcome == Some(fota_protocol::v2::EventKind::RolledBack));
            assert!(reported, "{what}: rollback not reported");
        }
        // The old image's bytes (the other slot, running until the new one was confirmed)
        // never changed.
        let old_slot = 1 - self.new_slot;
        let r0 = self.slot_range(old_slot);
        assert_eq!(
            &flash.contents()[r0.start..r0.start + self.old.len()],
            &self.old[..],
            "{what}: ota_{old_slot} was written"
        );
        // A resumed download re-fetches at most one chunk per interruption (unless the trial
        // was lost and the device rightly fetched the release again).
        if !rolled_back && !self.legacy {
            let bytes: u64 = boots
                .iter()
                .filter_map(|b| b.status)
                .map(|s| s.bytes_downloaded)
                .sum();
            let allowed = u64::from(IMAGE) + u64::from(CHUNK) * interruptions as u64 + 4096 * 2;
            assert!(
                bytes <= allowed,
                "{what}: downloaded {bytes} bytes, allowed {allowed}"
            );
        }
        let failed_bad = boots.iter().flat_map(|b| b.polls.iter()).any(|p| {
            matches!(
                p,
                PollOutcome::Failed {
                    reason: ReasonCode::ImageHashMismatch | ReasonCode::ImageInvalid,
                    ..
                }
            )
        });
        assert!(!failed_bad, "{what}: a resumed download verified badly");
    }

    async fn clean_ops(&mut self) -> u64 {
        let mut flash = self.pristine.clone();
        flash.arm(FaultPlan::none());
        let opts = self.options().await;
        let runs = self.run_to_end(&mut flash, &opts).await;
        self.check("clean run", &flash, &runs, 0);
        flash.ops()
    }

    async fn step(&mut self, what: &str, plan: FaultPlan) {
        let mut flash = self.pristine.clone();
        flash.arm(plan);
        let opts = self.options().await;
        let runs = self.run_to_end(&mut flash, &opts).await;
        let cuts = flash.fired().len();
        self.check(what, &flash, &runs, cuts);
    }

    async fn sweep(&mut self, cuts: &[Cut], stride: u64) {
        let total = self.clean_ops().await;
        assert!(total > 250, "the whole update is {total} operations");
        self.sweep_ops(1..=total, total, cuts, stride).await;
    }

    async fn sweep_ops(
        &mut self,
        ops: core::ops::RangeInclusive<u64>,
        total: u64,
        cuts: &[Cut],
        stride: u64,
    ) {
        for &cut in cuts {
            for (i, plan) in FaultPlan::sweep(ops.clone(), cut, 0x5eed) {
                if !(i - ops.start()).is_multiple_of(stride) {
                    continue;
                }
                self.step(&format!("{cut:?} at op {i} of {total}"), plan)
                    .await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_cut_before_every_operation_v2() {
    let mut s = Sweep::new(Layout::Ecowatt, false).await;
    s.sweep(&[Cut::Before], 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_tear_every_operation_v2() {
    let mut s = Sweep::new(Layout::Ecowatt, false).await;
    s.sweep(&[Cut::Torn(Tear::Random)], 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_legacy_every_third_operation() {
    let mut s = Sweep::new(Layout::Ecowatt, true).await;
    s.sweep(&[Cut::Before, Cut::After, Cut::Torn(Tear::Random)], 3)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "full matrix: cargo test -p fota-emulator --locked -- --ignored"]
async fn sweep_full_matrix_v2() {
    let mut s = Sweep::new(Layout::Ecowatt, false).await;
    s.sweep(
        &[
            Cut::After,
            Cut::Torn(Tear::AllButLast),
            Cut::Torn(Tear::Scatter),
            Cut::Torn(Tear::Prefix(0)),
        ],
        1,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "full matrix: cargo test -p fota-emulator --locked -- --ignored"]
async fn sweep_full_matrix_legacy() {
    let mut s = Sweep::new(Layout::Ecowatt, true).await;
    s.sweep(
        &[
            Cut::Before,
            Cut::After,
            Cut::Torn(Tear::Random),
            Cut::Torn(Tear::AllButLast),
        ],
        1,
    )
    .await;
}

async fn random_multi_cuts(runs: u64, legacy: bool) {
    let mut s = Sweep::new(Layout::Ecowatt, legacy).await;
    let total = s.clean_ops().await;
    for seed in 0..runs {
        // Up to 4 cuts anywhere in the update and in its recoveries (numbering goes on
        // across power-ons, so later cuts land in the resume, the bootloader's rewrites and
        // the confirmation).
        let plan = FaultPlan::new(seed).random_cuts(1 + (seed % 4) as usize, 1..=total + 60);
        s.step(&format!("random cuts, seed {seed}"), plan).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_multi_cuts_200_seeds_v2() {
    random_multi_cuts(200, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ota_layout_with_cuts() {
    let mut s = Sweep::new(Layout::TwoOta, false).await;
    // Slot ranges differ (factory first): the checker's ota_0 is 0x110000 here.
    s.sweep(&[Cut::Before], 7).await;
}

/// otadata near the top of u32: an update takes the last usable sequence (0xFFFFFFFE).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otadata_sequence_near_wrap_around() {
    let mut s = Sweep::new(Layout::Ecowatt, false).await;
    let (_, _, runs) = updated_to_last_sequence(&mut s).await;
    let boot = runs.last().unwrap().last_boot.clone().unwrap();
    assert_eq!(boot.otadata[1].seq, 0xFFFF_FFFE);
}

async fn updated_to_last_sequence(s: &mut Sweep) -> (SimFlash, DeviceOptions, Vec<RunResult>) {
    let spec = FlashSpec {
        otadata_seq: 0xFFFF_FFFD,
        ..FlashSpec::new(Layout::Ecowatt, &s.old)
    };
    let mut flash = flash_file::new_in_memory(&spec).unwrap();
    let opts = s.options().await;
    let runs = s.run_to_end(&mut flash, &opts).await;
    s.check("update to seq 0xfffffffe", &flash, &runs, 0);
    (flash, opts, runs)
}

/// The flash operations on otadata (0xE000..0x10000 on the EcoWatt layout) and on ota_0
/// (0x10000..0x150000) of a run, as (kind, address) and op index.
fn otadata_and_slot_ops(flash: &SimFlash) -> (Vec<(OpKind, u32)>, Vec<u64>, Option<u64>) {
    let mut otadata = Vec::new();
    let mut at = Vec::new();
    let mut first_slot_op = None;
    for r in flash.op_log() {
        if (0xE000..0x1_0000).contains(&r.addr) {
            otadata.push((r.kind, r.addr));
            at.push(r.index);
        } else if (0x1_0000..0x15_0000).contains(&r.addr) && first_slot_op.is_none() {
            first_slot_op = Some(r.index);
        }
    }
    (otadata, at, first_slot_op)
}

/// The next update after 0xFFFFFFFE cannot take a higher sequence for ota_0. The agent
/// renormalises otadata before it downloads (ota_1 kept selected by seq 2, VALID: the fresh
/// entry written into the inactive sector, then the old active sector erased), then updates as
/// usual: the switch takes seq 3, the trial boot confirms 1.0.7. No reset loop, no failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otadata_sequence_exhausted_is_renormalised_and_the_update_completes() {
    let s = Sweep::exhausted().await;
    let mut flash = s.pristine.clone();
    flash.arm(FaultPlan::none());
    flash.set_op_log(4096);
    let mut s = s;
    let opts = s.options().await;
    let r = run_local(&mut flash, &opts, &s.server.app, Until::Updated).await;
    assert_eq!(r.ended, Ended::Done, "{r:?}");
    assert_eq!(r.boots.len(), 2, "one switch, one reboot: {r:?}");
    assert_eq!(r.boots[0].running, BootIndex::Ota(1));
    assert_eq!(r.boots[0].polls.last(), Some(&PollOutcome::RebootRequired));
    assert_eq!(r.boots[1].running, BootIndex::Ota(0));
    assert_eq!(r.boots[1].state, Some(OtaState::PendingVerify));
    assert_eq!(running_version(&r), "1.0.7");
    let failed = r
        .boots
        .iter()
        .flat_map(|b| b.polls.iter())
        .any(|p| matches!(p, PollOutcome::Failed { .. }));
    assert!(!failed, "{r:?}");
    let b = r.last_boot.as_ref().unwrap();
    assert_eq!(b.running_state_now(&flash), Some(OtaState::Valid));
    assert_eq!(b.image_sha256, sha256(&s.new));
    // ota_1 (1.0.6) kept by the smallest sequence that selects it, 1.0.7 by the next one.
    let od = fota_emulator::bootloader::otadata_now(&flash, &b.table.boot_layout());
    assert_eq!(od[0], OtaSelectEntry::new(2, OtaState::Valid));
    assert_eq!(od[1], OtaSelectEntry::new(3, OtaState::Valid));
    // Every otadata write, in order: the download's invalidation of sector 0 (it selected
    // ota_0), the renormalisation, the switch (NEW), the bootloader's NEW → PENDING_VERIFY and
    // the confirmation. The renormalisation is done before the slot is first written.
    let (ops, at, first_slot_op) = otadata_and_slot_ops(&flash);
    use OpKind::{Erase, Program};
    assert_eq!(
        ops,
        vec![
            (Erase, 0xE000),
            (Erase, 0xE000),
            (Program, 0xE000),
            (Erase, 0xF000),
            (Erase, 0xF000),
            (Program, 0xF000),
            (Erase, 0xF000),
            (Program, 0xF000),
            (Erase, 0xF000),
            (Program, 0xF000),
        ]
    );
    assert!(at[3] < first_slot_op.unwrap(), "{at:?} {first_slot_op:?}");
}

/// Power cuts across that update: a cut before and after every flash operation (the
/// renormalisation's three among them), a reboot with fresh RAM, run to the end; DESIGN §3's
/// invariants on each history. The renormalisation's operations and the ones around them
/// are also torn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_exhausted_sequence_cut_before_and_after_every_operation() {
    let mut s = Sweep::exhausted().await;
    let total = s.clean_ops().await;
    assert!(total > 250, "the whole update is {total} operations");
    s.sweep_ops(1..=total, total, &[Cut::Before, Cut::After], 1)
        .await;
    s.sweep_ops(
        1..=12,
        total,
        &[
            Cut::Torn(Tear::Random),
            Cut::Torn(Tear::AllButLast),
            Cut::Torn(Tear::Scatter),
            Cut::Torn(Tear::Prefix(0)),
        ],
        1,
    )
    .await;
}

/// An image exactly as large as the slot installs; one byte more is refused before
/// anything touches flash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_exactly_slot_sized_and_one_byte_over() {
    let s = Sweep::new(Layout::Ecowatt, false).await;
    let slot = fota_protocol::esp::build::MAX_IMAGE_SIZE;
    let full = image("1.0.7", slot, false);
    assert_eq!(full.len(), slot as usize);
    let rid = s.server.release("1.0.7", 2, &full, 16384).await;
    s.server.assign_class(&rid).await;
    let p = s.server.provision("exact").await;
    let mut flash = s.pristine.clone();
    let r = run_local(&mut flash, &v2_options(&p), &s.server.app, Until::Updated).await;
    assert_eq!(r.ended, Ended::Done, "{r:?}");
    assert_eq!(
        r.last_boot.as_ref().unwrap().image_sha256,
        sha256(&full),
        "slot-sized image"
    );

    let mut over = full.clone();
    over.push(0xFF);
    let (status, v) = s.server.try_release("1.0.8", 3, &over, 16384, |_| {}).await;
    if status.is_success() {
        s.server.assign_class(v["id"].as_str().unwrap()).await;
        flash.arm(FaultPlan::none());
        let r = run_local(
            &mut flash,
            &v2_options(&p),
            &s.server.app,
            Until::Checkins(2),
        )
        .await;
        assert_eq!(running_version(&r), "1.0.7");
        assert_eq!(flash.ops(), 0, "refused before any flash operation");
        let too_large = r.boots[0].polls.iter().any(|p| {
            matches!(
                p,
                PollOutcome::Failed {
                    reason: ReasonCode::TooLarge,
                    ..
                }
            )
        });
        assert!(too_large, "{:?}", r.boots[0].polls);
    } else {
        // The server refuses an image that fits no slot already at upload.
        assert!(status.is_client_error(), "{status} {v}");
    }
}

/// Replays one sweep step and prints its boot history and the flash operations around it:
/// `OP=305 cargo test -p fota-emulator --test emulator replay_one_step -- --ignored --nocapture`.
/// `AFTER=1` cuts after the operation instead of before it; `EXHAUSTED=1` replays the update
/// after otadata's last usable sequence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "diagnostic: needs OP=N"]
async fn replay_one_step() {
    // `-- --ignored` runs the full matrices too; without OP there is no step to replay.
    let Some(op) = std::env::var("OP").ok() else {
        eprintln!("replay_one_step: skipped, set OP=N to replay the cut at operation N");
        return;
    };
    let op: u64 = op.parse().expect("OP is an operation number");
    let mut s = if std::env::var_os("EXHAUSTED").is_some() {
        Sweep::exhausted().await
    } else {
        Sweep::new(Layout::Ecowatt, false).await
    };
    let mut flash = s.pristine.clone();
    flash.set_op_log(400);
    flash.arm(if std::env::var_os("AFTER").is_some() {
        FaultPlan::none().cut_after(op)
    } else {
        FaultPlan::none().cut_before(op)
    });
    let opts = s.options().await;
    let runs = s.run_to_end(&mut flash, &opts).await;
    for r in &runs {
        eprintln!("RUN ended {:?}", r.ended);
        for b in &r.boots {
            eprintln!(
                "  boot {} {} state {:?} fell_back {} startup {:?} polls {:?} last {:?}/{:?} js {:?}",
                b.running,
                b.version,
                b.state,
                b.fell_back,
                b.startup,
                b.polls,
                b.status.map(|s| s.last_outcome),
                b.status.map(|s| s.last_reason),
                b.status.map(|s| s.state)
            );
        }
    }
    for r in flash.op_log().skip(290) {
        eprintln!("{r}");
    }
}
