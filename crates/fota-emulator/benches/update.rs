//! Device-side benchmarks of issue 4, printed as the Markdown of docs/BENCHMARKS.md's
//! emulator section. Run through `scripts/bench-emulator.sh`, which builds the release `fota`
//! binary the fleet part starts as separate server and emulator processes.
//!
//! Environment: `FLEET` (devices in the fleet run, default 1000; 0 skips it), `FOTA_BIN`
//! (path of the release `fota`, default `target/release/fota`), `CUTS` (random power cuts in
//! the resume benchmark, default 20).
#![allow(
    missing_docs,
    unreachable_pub,
    reason = "a benchmark binary: nothing here is API"
)]

use core::time::Duration;
use std::io::BufRead as _;
use std::sync::Arc;
use std::time::Instant;

use fota_agent::{Agent, BootInfo, Buffers, DeviceConfig, Running};
use fota_emulator::device::{self, DeviceOptions, RunResult, Until};
use fota_emulator::flash_file::Layout;
use fota_emulator::http::{HttpClient, Timeouts, WireCounters};
use fota_emulator::platform::EmuPlatform;
use fota_emulator::transport::{HttpTransport, Observing, OfferLog};
use fota_flash_sim::{FaultPlan, SimFlash};
use fota_testkit::emulated::*;
use fota_testkit::server::{ADMIN, CLASS, TestServer, signed_by};
use fota_testkit::{image, sha256};
use hyper::Method;

const MIB: u32 = 1 << 20;
const CHUNK: u32 = 16 * 1024;

fn bytes(r: &RunResult) -> u64 {
    r.boots
        .iter()
        .filter_map(|b| b.status)
        .map(|s| s.bytes_downloaded)
        .sum()
}

struct Setup {
    server: TestServer,
    old: Vec<u8>,
    new: Vec<u8>,
    n: u32,
}

/// A transport that answers nothing at once: the agent's futures without a network stack's.
struct NullTransport;

impl fota_agent::Transport for NullTransport {
    async fn checkin(
        &mut self,
        _: &[u8],
        _: &mut [u8],
    ) -> Result<usize, fota_agent::TransportError> {
        Err(fota_agent::TransportError::Connect)
    }
    async fn get_range(
        &mut self,
        _: &str,
        _: u64,
        _: &mut [u8],
    ) -> Result<usize, fota_agent::TransportError> {
        Err(fota_agent::TransportError::Connect)
    }
    async fn event(&mut self, _: &[u8]) -> Result<(), fota_agent::TransportError> {
        Err(fota_agent::TransportError::Connect)
    }
    async fn legacy_get(
        &mut self,
        _: &str,
        _: &mut [u8],
    ) -> Result<usize, fota_agent::TransportError> {
        Err(fota_agent::TransportError::Connect)
    }
    async fn legacy_post(&mut self, _: &str, _: &[u8]) -> Result<(), fota_agent::TransportError> {
        Err(fota_agent::TransportError::Connect)
    }
}

impl Setup {
    async fn new(chunk: u32) -> Self {
        let server = TestServer::start().await;
        let old = image("1.0.5", MIB, false);
        let new = image("1.0.6", MIB, false);
        let (s, v) = server.legacy_upload("1.0.6", &new, u64::from(chunk)).await;
        assert!(s.is_success(), "{v}");
        let rid = server.release("1.0.6", 1, &new, chunk).await;
        server.assign_class(&rid).await;
        Self {
            server,
            old,
            new,
            n: 0,
        }
    }

    async fn device(&mut self, legacy: bool) -> DeviceOptions {
        self.n += 1;
        let name = format!("bench-{}", self.n);
        let mut o = if legacy {
            legacy_options(&name)
        } else {
            v2_options(&self.server.provision(&name).await)
        };
        o.poll_interval = Duration::from_millis(10);
        o
    }
}

async fn single(setup: &mut Setup, legacy: bool) -> (f64, Arc<WireCounters>, SimFlash, RunResult) {
    let opts = setup.device(legacy).await;
    let mut flash = new_flash(Layout::Ecowatt, &setup.old);
    flash.arm(FaultPlan::none());
    let t = Instant::now();
    let (r, wire) = run_http(&mut flash, &opts, &setup.server.url(), Until::Updated).await;
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(
        r.last_boot.as_ref().unwrap().image_sha256,
        sha256(&setup.new)
    );
    (secs, wire, flash, r)
}

/// Returns the most and the mean bytes fetched beyond a clean update (`clean` bytes).
async fn resume(
    setup: &mut Setup,
    legacy: bool,
    cuts: u64,
    download_ops: u64,
    clean: u64,
) -> (u64, f64) {
    let mut max_extra = 0u64;
    let mut sum_extra = 0u64;
    for seed in 0..cuts {
        let opts = setup.device(legacy).await;
        let mut flash = new_flash(Layout::Ecowatt, &setup.old);
        // A cut (before, after or tearing the op) at a random operation of the download.
        let plan = FaultPlan::new(seed).random_cuts(1, 20..=download_ops);
        flash.arm(plan);
        let (a, _) = run_http(&mut flash, &opts, &setup.server.url(), Until::Updated).await;
        flash.power_on();
        let (b, _) = run_http(&mut flash, &opts, &setup.server.url(), Until::Updated).await;
        assert_eq!(
            b.last_boot.as_ref().unwrap().image_sha256,
            sha256(&setup.new)
        );
        let extra = (bytes(&a) + bytes(&b)).saturating_sub(clean);
        max_extra = max_extra.max(extra);
        sum_extra += extra;
    }
    let _ = legacy;
    (max_extra, sum_extra as f64 / cuts as f64)
}

/// Bytes of the agent and of its async calls with `transport`.
fn ram<T: fota_agent::Transport>(
    flash: &mut SimFlash,
    p: &fota_api::Provisioning,
    transport: T,
) -> (usize, usize, usize) {
    let mut chunk = vec![0u8; CHUNK as usize];
    let mut io = vec![0u8; 1024];
    let mut page = vec![0u8; 4096];
    let config = DeviceConfig::new(
        *p.device_uuid.as_bytes(),
        &p.device_id,
        *p.vendor_id.as_bytes(),
        *p.class_id.as_bytes(),
        &p.root,
    );
    let agent = Agent::boot(
        &mut *flash,
        transport,
        EmuPlatform::new(Some(1), false),
        config,
        BootInfo {
            running: Running::Ota(1),
        },
        Buffers {
            chunk: &mut chunk,
            io: &mut io,
            page: &mut page,
        },
    );
    let mut agent = agent.map_err(|f| f.error).unwrap();
    let agent_size = core::mem::size_of_val(&agent);
    let startup = core::mem::size_of_val(&agent.startup());
    let poll = core::mem::size_of_val(&agent.poll());
    (agent_size, startup, poll)
}

fn rss_kib(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

async fn fleet(count: u32) -> Option<String> {
    let bin = std::env::var("FOTA_BIN").unwrap_or_else(|_| "target/release/fota".into());
    if !std::path::Path::new(&bin).exists() {
        return Some(format!("(skipped: {bin} not built)"));
    }
    let work = tempfile::tempdir().unwrap();
    let keys = fota_keys::KeySet::generate(uuid::Uuid::new_v4());
    let kdir = work.path().join("keys");
    keys.write(&kdir, None).unwrap();
    let data = work.path().join("data");
    let dir = work.path().join("fleet");
    std::fs::create_dir_all(&dir).unwrap();
    let mut server = std::process::Command::new(&bin)
        .args(["server", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .arg("--root")
        .arg(kdir.join("root.bin"))
        .arg("--status-key")
        .arg(kdir.join("status.key"))
        .env("FOTA_ADMIN_TOKEN", ADMIN)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = server.id();
    let mut line = String::new();
    std::io::BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    let mut op = HttpClient::new(&url, Some(ADMIN), Timeouts::default(), Arc::default()).unwrap();
    let mut resp = vec![0u8; 64 * 1024];
    for i in 1..=count {
        let name = fota_emulator::session::fleet_name("fleet", i);
        let body = serde_json::json!({"id": name, "class": CLASS}).to_string();
        let n = op
            .fetch(
                Method::POST,
                "/api/v2/devices",
                Some("application/json"),
                body.as_bytes(),
                &mut resp,
            )
            .await
            .unwrap();
        std::fs::write(dir.join(format!("{name}.json")), &resp[..n]).unwrap();
    }
    let old = image("1.0.5", MIB, false);
    let new = image("1.0.6", MIB, false);
    let initial = work.path().join("app-1.0.5.bin");
    std::fs::write(&initial, &old).unwrap();
    let (content_type, multipart) =
        signed_by(&keys, CLASS, "1.0.6", 1, new.clone(), CHUNK, |_| {}).upload_form(Some(CLASS));
    let n = op
        .fetch(
            Method::POST,
            "/api/v2/releases",
            Some(&content_type),
            &multipart,
            &mut resp,
        )
        .await
        .unwrap();
    let rel: serde_json::Value = serde_json::from_slice(&resp[..n]).unwrap();
    let rid = rel["id"].as_str().unwrap().to_owned();
    let assign = serde_json::json!({"class": CLASS}).to_string();
    op.fetch(
        Method::POST,
        &format!("/api/v2/releases/{rid}/assign"),
        Some("application/json"),
        assign.as_bytes(),
        &mut resp,
    )
    .await
    .unwrap();
    let rss_before = rss_kib(pid, "VmRSS:").unwrap_or(0);
    let t = Instant::now();
    let mut emulate = std::process::Command::new(&bin)
        .args(["emulate", "--server", &url, "--id", "fleet", "--count"])
        .arg(count.to_string())
        .arg("--dir")
        .arg(&dir)
        .arg("--initial-image")
        .arg(&initial)
        .args([
            "--until",
            "updated",
            "--poll-interval",
            "1s",
            "--report",
            "json",
        ])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let epid = emulate.id();
    // The report of a big fleet is larger than a pipe: read it while the fleet runs.
    let mut stdout = emulate.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut buf);
        buf
    });
    let mut peak_server = 0;
    let mut peak_emulator = 0;
    loop {
        if let Some(status) = emulate.try_wait().unwrap() {
            let _ = status;
            break;
        }
        peak_server = peak_server.max(rss_kib(pid, "VmRSS:").unwrap_or(0));
        peak_emulator = peak_emulator.max(rss_kib(epid, "VmRSS:").unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let wall = t.elapsed().as_secs_f64();
    let out = reader.join().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
    let hwm = rss_kib(pid, "VmHWM:").unwrap_or(0);
    let _ = server.kill();
    let _ = server.wait();
    Some(format!(
        "| devices | {count} (v2, 1 MiB image, 16 KiB chunks; each device: boot, check-in, download, verify, reboot, trial, confirm) |\n\
         | outcomes | {} |\n\
         | completion time (fleet report `elapsed_ms`, all devices confirmed) | {:.1} s |\n\
         | wall time of the `fota emulate` process | {wall:.1} s |\n\
         | server RSS before / peak during (sampled every 100 ms) / VmHWM | {:.1} / {:.1} / {:.1} MiB |\n\
         | emulator process peak RSS ({count} flashes of 4 MiB, each with the simulator's per-byte state) | {:.1} MiB |\n",
        report["outcomes"],
        report["elapsed_ms"].as_f64().unwrap_or(0.0) / 1000.0,
        rss_before as f64 / 1024.0,
        peak_server as f64 / 1024.0,
        hwm as f64 / 1024.0,
        peak_emulator as f64 / 1024.0,
    ))
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cuts: u64 = std::env::var("CUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let fleet_n: u32 = std::env::var("FLEET")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    rt.block_on(async {
        let mut setup = Setup::new(CHUNK).await;
        let mut big = Setup::new(64 * 1024).await;
        println!("### One device, 1 MiB image over loopback\n");
        println!("| protocol | chunk | wall time (boot → confirmed) | wire bytes received / image byte | sent | requests | connections |");
        println!("|---|---|---|---|---|---|---|");
        let mut v2_run = None;
        let mut clean = [0u64; 2];
        for legacy in [false, true] {
            let (secs, wire, flash, r) = single(&mut setup, legacy).await;
            println!(
                "| {} | 16 KiB | {:.2} s | {:.4} | {} B | {} | {} |",
                if legacy { "legacy (seed JSON + base64)" } else { "v2 (binary, ranged GETs)" },
                secs,
                wire.rx() as f64 / f64::from(MIB),
                wire.tx(),
                wire.requests.load(core::sync::atomic::Ordering::Relaxed),
                wire.connections.load(core::sync::atomic::Ordering::Relaxed),
            );
            clean[usize::from(legacy)] = bytes(&r);
            if !legacy {
                v2_run = Some((flash, r));
            }
        }
        for legacy in [false, true] {
            let (secs, wire, _, _) = single(&mut big, legacy).await;
            println!(
                "| {} | 64 KiB | {:.2} s | {:.4} | {} B | {} | {} |",
                if legacy { "legacy (seed JSON + base64)" } else { "v2 (binary, ranged GETs)" },
                secs,
                wire.rx() as f64 / f64::from(MIB),
                wire.tx(),
                wire.requests.load(core::sync::atomic::Ordering::Relaxed),
                wire.connections.load(core::sync::atomic::Ordering::Relaxed),
            );
        }
        big.server.stop().await;
        let (v2_flash, v2_result) = v2_run.unwrap();
        let stats = v2_flash.stats();
        let slot = 0x15_0000usize / 4096..(0x15_0000 + MIB as usize) / 4096;
        let slot_erases: Vec<u32> = stats.sector_erases[slot.clone()].to_vec();
        let once = slot_erases.iter().filter(|&&e| e == 1).count();
        let max = slot_erases.iter().copied().max().unwrap_or(0);
        let journal: u32 = stats.sector_erases[0x3FE000 / 4096..].iter().sum();
        let otadata: u32 = stats.sector_erases[0xE000 / 4096..0x10000 / 4096].iter().sum();
        println!("\n### Flash erases per update (v2 run above)\n");
        println!("| what | count |\n|---|---|");
        println!("| slot sectors the 1 MiB image covers | {} |", slot.len());
        println!("| of those erased exactly once | {once} (max erases of one sector: {max}) |");
        println!("| journal sector erases (coredump tail) | {journal} |");
        println!("| otadata sector erases (invalidate, switch, bootloader NEW→PENDING, confirm) | {otadata} |");
        println!("| all erases / page programs of the update | {} / {} |", stats.erases, stats.programs);
        let download_ops = stats.programs + stats.erases - 40;
        let _ = v2_result;

        println!("\n### Re-download after a power cut at a random point of the download ({cuts} cuts per protocol)\n");
        println!("| protocol | bytes fetched beyond a clean update: max | mean | in chunks: max | mean |\n|---|---|---|---|---|");
        for legacy in [false, true] {
            let base = clean[usize::from(legacy)];
            let (max, mean) = resume(&mut setup, legacy, cuts, download_ops, base).await;
            // Legacy bytes are JSON answers: one chunk costs base / chunk count of them.
            let per_chunk = base as f64 / f64::from(MIB / CHUNK);
            println!(
                "| {} (16 KiB chunks) | {max} B | {mean:.0} B | {:.2} | {:.2} |",
                if legacy { "legacy" } else { "v2" },
                max as f64 / per_chunk,
                mean / per_chunk,
            );
        }

        let p = setup.server.provision("ram").await;
        let mut flash = new_flash(Layout::Ecowatt, &setup.old);
        let client = HttpClient::new("http://127.0.0.1:9", None, Timeouts::default(), Arc::default()).unwrap();
        let http = Observing::new(HttpTransport::new(client), OfferLog::default());
        let (agent, startup, poll) = ram(&mut flash, &p, http);
        let (agent_n, startup_n, poll_n) = ram(&mut flash, &p, NullTransport);
        println!("\n### Agent RAM (x86-64; `size_of` of the values and of the futures' async state)\n");
        println!("| what | with the emulator's HTTP transport | with a transport of no state |\n|---|---|---|");
        println!("| `Agent` value | {agent} | {agent_n} |");
        println!("| `startup()` future | {startup} | {startup_n} |");
        println!("| `poll()` future | {poll} | {poll_n} |");
        println!(
            "| agent + largest future (DESIGN §3 allows 8192 besides chunk + page) | {} | {} ({}) |",
            agent + startup.max(poll),
            agent_n + startup_n.max(poll_n),
            if agent_n + startup_n.max(poll_n) <= 8192 { "within" } else { "over" }
        );
        println!("| buffers for 16 KiB chunks: chunk + hash-list page + io | {} | |", CHUNK + 4096 + 1024);

        if fleet_n > 0 {
            println!("\n### A fleet updating at once from one server process\n");
            println!("| what | value |\n|---|---|");
            if let Some(s) = fleet(fleet_n).await {
                print!("{s}");
            }
        }
        setup.server.stop().await;
    });
    let _ = device::CHUNK_BUF;
}
