//! Power cut at every flash operation of one small update (download, verify, otadata switch,
//! the bootloader's rewrite, trial, confirm), before, after and torn; after each, reboot with a
//! fresh agent from flash and run to the end, checking DESIGN §3's invariants on every boot.

use fota_agent::{PollOutcome, Running};
use fota_flash_sim::{Cut, FaultPlan, SimFlash, Tear};
use fota_protocol::esp::otadata::OtaState;
use fota_protocol::v2::EventKind;
use fota_testkit::agent::*;
use fota_testkit::invariants::{History, redownload_within};
use fota_testkit::sha256;

const CHUNK: u32 = 4096;

struct Case {
    pristine: SimFlash,
    old: Vec<u8>,
    new: Vec<u8>,
    legacy: bool,
}

fn case(legacy: bool) -> Case {
    let old = image("1.0.5", 0x6000, false);
    let new = image("1.0.6", 0x8000, false);
    Case {
        pristine: provisioned_flash(&table(), &old),
        old,
        new,
        legacy,
    }
}

fn net_for(c: &Case) -> Net {
    let net = Net::default();
    net.with(|s| {
        s.v2.releases
            .push(release("1.0.6", c.new.clone(), 2, CHUNK));
        s.v2.assign = Assign::Install(0);
        s.legacy.release = Some(("1.0.6".into(), c.new.clone(), u64::from(CHUNK)));
    });
    net
}

fn image_bytes_served(net: &Net) -> u64 {
    net.with(|s| s.v2.image_bytes_served + s.legacy.bytes_served)
}

fn rolled_back_reports(net: &Net) -> usize {
    net.with(|s| {
        s.v2.events
            .iter()
            .filter(|e| e.0 == EventKind::RolledBack)
            .count()
            + s.legacy
                .statuses
                .iter()
                .filter(|s| s.0 == "rolled_back")
                .count()
    })
}

/// Boots until the new image runs confirmed and the agent is idle, checking DESIGN §3's
/// invariants (the test kit's checker) after every boot. A cut during the trial boot is, by
/// ESP-IDF's one-strike rule, a failed trial: the bootloader goes back, the agent reports
/// `rolled_back` and rejects the release. v2 then gets it re-assigned (a new generation) and
/// must finish; legacy stays on the old image. Returns the number of boots.
fn run_to_end(dev: &mut Device, c: &Case, label: &str) -> usize {
    let net = dev.net.clone();
    let mut handled = 0;
    let mut history = History::new(dev.spec.k, &[sha256(&c.old), sha256(&c.new)]);
    for n in 1..=16 {
        let b = dev.boot();
        let Some(booted) = b.booted else {
            continue; // cut inside the bootloader
        };
        let running_slot = match booted.running {
            Running::Ota(s) => u32::from(s),
            Running::Factory => unreachable!("the EcoWatt table has no factory app"),
        };
        let confirmed = dev.slot_state(running_slot) == Some(OtaState::Valid);
        history
            .push(booted.observed(confirmed))
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        let valid_now = dev.slot_state(1) == Some(OtaState::Valid);
        let idle = matches!(b.last_poll(), Some(PollOutcome::Idle { .. }));
        if idle && booted.running == Running::Ota(1) && valid_now && !b.cut {
            assert_eq!(
                dev.slot_bytes(1, c.new.len()),
                &c.new[..],
                "{label}: image differs"
            );
            return n;
        }
        let reports = rolled_back_reports(&net);
        if idle && booted.running == Running::Ota(0) && !b.cut && reports > handled {
            if c.legacy {
                return n;
            }
            net.with(|s| s.v2.generation += 1);
            handled = reports;
        }
    }
    panic!(
        "{label}: no confirmed update after 16 boots: {:?}",
        dev.boots.last()
    );
}

fn device(c: &Case, plan: FaultPlan) -> (Device, Net) {
    let net = net_for(c);
    let mut flash = c.pristine.clone();
    flash.arm(plan);
    let spec = DeviceSpec {
        legacy: c.legacy,
        max_polls: 2,
        ..DeviceSpec::default()
    };
    (Device::new(flash, net.clone(), spec), net)
}

fn clean_ops(c: &Case) -> u64 {
    let (mut dev, net) = device(c, FaultPlan::none());
    run_to_end(&mut dev, c, "clean");
    assert_eq!(image_bytes_served(&net), c.new.len() as u64);
    let reports = net.with(|s| {
        s.v2.events
            .iter()
            .filter(|e| e.0 == EventKind::Confirmed)
            .count()
            + s.legacy
                .statuses
                .iter()
                .filter(|s| s.0 == "confirmed")
                .count()
    });
    assert_eq!(reports, 1);
    dev.flash().ops()
}

fn sweep(legacy: bool, cuts: &[Cut]) {
    let c = case(legacy);
    let total = clean_ops(&c);
    assert!(total > 100, "the update has {total} flash operations");
    for op in 1..=total {
        for &cut in cuts {
            let label = format!(
                "{} op {op}/{total} {cut:?}",
                if legacy { "legacy" } else { "v2" }
            );
            let (mut dev, net) = device(&c, FaultPlan::new(op).cut(op, cut));
            run_to_end(&mut dev, &c, &label);
            assert_eq!(dev.flash().fired().len(), 1, "{label}: the cut fired");
            // At most the one interrupted chunk is downloaded again.
            let served = image_bytes_served(&net);
            redownload_within(
                served.saturating_sub(c.new.len() as u64),
                u64::from(CHUNK),
                1,
            )
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        }
    }
}

#[test]
fn v2_cut_before_and_after_every_operation() {
    sweep(false, &[Cut::Before, Cut::After]);
}

#[test]
fn v2_torn_program_or_erase_at_every_operation() {
    sweep(
        false,
        &[Cut::Torn(Tear::AllButLast), Cut::Torn(Tear::Random)],
    );
}

#[test]
fn legacy_cut_before_and_after_every_operation() {
    sweep(true, &[Cut::Before, Cut::After, Cut::Torn(Tear::Random)]);
}

#[test]
fn seeded_random_multi_cut_runs() {
    let c = case(false);
    let total = clean_ops(&c);
    for seed in 0..40u64 {
        let plan = FaultPlan::new(seed).random_cuts(3, 1..=total + 40);
        let (mut dev, _net) = device(&c, plan);
        run_to_end(&mut dev, &c, &format!("seed {seed}"));
    }
}
