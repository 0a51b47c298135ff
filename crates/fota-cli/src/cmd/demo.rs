//! `fota demo`: the whole system on one machine, on its embedded defaults.
//!
//! A real server (SQLite + blob folder in a work folder) on a free loopback port, a fleet's
//! keys, three emulated EcoWatt inverters on byte-faithful ESP32 flash files, and a script of
//! what an update system must survive: a power cut mid-download, a tampered chunk, an
//! operator's rollback, and a release that fails its boot check on every device. Every step
//! goes through the same code paths as production use: the operator API through
//! `fota-client`, the devices through the v2 device API over HTTP.
//!
//! The demo checks what it shows: each step states what must be true afterwards (on the
//! device's flash and in the server's records) and the command exits 1 if anything is not.

use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use fota_api::Provisioning;
use fota_client::Client;
use fota_client::api::{Device, DeviceState, Release};
use fota_client::release::{KeyFolder, ReleaseSpec, SignedRelease, sign};
use fota_emulator::device::{DeviceOptions, Protocol, Until};
use fota_emulator::flash_file::Layout;
use fota_emulator::http::Timeouts;
use fota_emulator::netfault::NetFaultSpec;
use fota_emulator::report::Report;
use fota_emulator::session::{SessionSpec, run_session};
use fota_keys::KeySet;
use fota_protocol::esp::build::{AppImageSpec, build_app_image};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::common;

const CLASS: &str = "ecowatt-inverter";
const DEVICES: [&str; 3] = ["EcoWatt001", "EcoWatt002", "EcoWatt003"];
const CHUNK_SIZE: u32 = 16 * 1024;
/// The device whose power fails mid-download, the one that sees a tampered chunk, and the one
/// the operator rolls back.
const CUT: usize = 0;
const TAMPERED: usize = 1;
const ROLLED_BACK: usize = 2;
/// The chunk the network corrupts on its way to the tampered device.
const TAMPERED_CHUNK: u32 = 3;

/// Run the whole system on one machine: a server, three emulated EcoWatt inverters, signed
/// releases, a power cut, a tampered chunk, a manual rollback, and a release that fails its
/// boot check.
///
/// Everything lives in a work folder (a temporary one, removed at the end, unless --dir or
/// --keep). Exit status 0 when every step did what it should, 1 otherwise.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Work folder (server data, keys, images, flash files); kept afterwards. Must be empty
    /// or absent [default: a new temporary folder].
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Keep the temporary work folder.
    #[arg(long)]
    keep: bool,
    /// Size of the demo's firmware images [default: 1M; 64K with --fast].
    #[arg(long, value_name = "BYTES", value_parser = super::parse_bytes)]
    image_size: Option<u32>,
    /// Pause between chunks on the devices, as the seed paces downloads so the inverter keeps
    /// doing its main job [default: 50ms; 0 with --fast].
    #[arg(long, value_name = "D", value_parser = humantime::parse_duration)]
    chunk_interval: Option<Duration>,
    /// No pacing and small images: the same script in a few seconds (tests, CI).
    #[arg(long)]
    fast: bool,
    /// Print one JSON summary on stdout (the story goes to stderr).
    #[arg(long)]
    json: bool,
    /// Serve HTTPS, with a CA and a server certificate made in the work folder (`tls/`) as
    /// `fota server tls self-signed` makes them; the operator client and every device trust
    /// that CA. The tampered chunk is then flipped by a TLS-terminating hop in front of the
    /// server, the one place a network can still change bytes.
    #[arg(long)]
    tls: bool,
}

/// One thing the demo promised, and whether it held.
#[derive(Debug, Clone, Serialize)]
struct Check {
    step: &'static str,
    device: String,
    what: String,
    ok: bool,
    detail: String,
}

#[derive(Debug, Serialize)]
struct Summary {
    ok: bool,
    server: String,
    dir: Option<String>,
    checks: Vec<Check>,
    devices: Vec<Device>,
}

/// Where the story goes: above the progress bars on a terminal, plain lines otherwise.
struct Story {
    bars: MultiProgress,
    to_stderr: bool,
}

impl Story {
    fn say(&self, line: &str) {
        self.bars.suspend(|| {
            if self.to_stderr {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
        });
    }
}

struct Demo {
    story: Story,
    checks: Vec<Check>,
    runtime: tokio::runtime::Runtime,
    client: Client,
    keys: KeyFolder,
    dir: PathBuf,
    server: String,
    /// How devices verify an `https://` server (`--tls`).
    device_tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    provisioning: Vec<Provisioning>,
    image_size: u32,
    chunk_interval: Duration,
    poll_interval: Duration,
    pause: Duration,
    sequence: u64,
}

pub(crate) fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let image_size = args
        .image_size
        .unwrap_or(if args.fast { 64 * 1024 } else { 1024 * 1024 });
    // The script cuts the power halfway through the download and tampers with chunk 3.
    let smallest = (TAMPERED_CHUNK + 1) * CHUNK_SIZE;
    if image_size < smallest {
        bail!(
            "--image-size must be at least {} (the script tampers with chunk {TAMPERED_CHUNK} of \
             {} chunks)",
            common::size(i64::from(smallest)),
            common::size(i64::from(CHUNK_SIZE))
        );
    }
    let (dir, temporary) = match &args.dir {
        Some(d) => {
            if d.exists()
                && std::fs::read_dir(d)
                    .with_context(|| format!("reading {}", d.display()))?
                    .next()
                    .is_some()
            {
                bail!("{} is not empty; give an empty or new folder", d.display());
            }
            (d.clone(), false)
        }
        None => (
            std::env::temp_dir().join(format!("fota-demo-{}", uuid::Uuid::new_v4().simple())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = run_in(&args, &dir, image_size);
    let keep = !temporary || args.keep;
    if keep {
        eprintln!("work folder kept: {}", dir.display());
    } else if let Err(e) = std::fs::remove_dir_all(&dir) {
        eprintln!("warning: could not remove {}: {e}", dir.display());
    }
    let summary = result?;
    if args.json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer(
            &mut out,
            &Summary {
                dir: keep.then(|| dir.display().to_string()),
                ..summary
            },
        )?;
        writeln!(out)?;
    }
    Ok(if summary.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn run_in(args: &DemoArgs, dir: &Path, image_size: u32) -> anyhow::Result<Summary> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let bars = MultiProgress::with_draw_target(if args.json {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    });
    let story = Story {
        bars,
        to_stderr: args.json,
    };

    // --- the server, on its embedded defaults
    let keys_dir = dir.join("keys");
    KeySet::generate(uuid::Uuid::new_v4())
        .write(&keys_dir, None)
        .with_context(|| format!("writing keys to {}", keys_dir.display()))?;
    let keys = KeyFolder::open(&keys_dir, None).context("opening the demo keys")?;
    let mut config = fota_server::Config::with_data(dir.join("server"));
    config.listen = "127.0.0.1:0".into();
    config.root = Some(keys_dir.join(fota_keys::files::ROOT_RECORD));
    config.status_key = Some(keys_dir.join(fota_keys::files::STATUS));
    let admin = format!("demo-{}", uuid::Uuid::new_v4().simple());
    let tls = if args.tls {
        let tls_dir = dir.join("tls");
        let paths = fota_keys::tls::SelfSigned::generate(&fota_keys::tls::DEFAULT_HOSTS)?
            .write_dir(&tls_dir)?;
        let [ca, cert, key] = paths;
        let reloader =
            fota_server::tls::TlsReloader::open(fota_server::tls::TlsFiles { cert, key })
                .context("loading the demo's certificate")?;
        let device_tls = fota_emulator::http::tls_config(Some(&ca))?;
        Some((ca, reloader, device_tls))
    } else {
        None
    };
    let server_tls = tls.as_ref().map(|(_, r, _)| r.clone());
    let (server, stop, serving) = runtime.block_on(async {
        // The demo's keys are not encrypted.
        let state = fota_server::AppState::open(config.clone(), None)
            .await
            .context("opening the server's data folder")?;
        state
            .bootstrap_admin(Some(&admin))
            .await
            .context("creating the admin token")?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a loopback port")?;
        let addr = listener.local_addr()?;
        // Over TLS the URL names `localhost`, which the certificate carries.
        let url = if server_tls.is_some() {
            format!("https://localhost:{}", addr.port())
        } else {
            format!("http://{addr}")
        };
        let listeners = fota_server::Listeners {
            main: listener,
            tls: server_tls,
            legacy_http: None,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = fota_server::serve_on(listeners, state, shutdown).await {
                tracing::error!(error = %e, "demo server stopped");
            }
        });
        anyhow::Ok((url, stop, serving))
    })?;
    let client = Client::with_ca_file(
        &server,
        Some(admin),
        tls.as_ref().map(|(ca, _, _)| ca.as_path()),
    )?;

    let fast = args.fast;
    let mut demo = Demo {
        story,
        checks: Vec::new(),
        runtime,
        client,
        keys,
        dir: dir.to_owned(),
        server: server.clone(),
        device_tls: tls.as_ref().map(|(_, _, d)| std::sync::Arc::clone(d)),
        provisioning: Vec::new(),
        image_size,
        chunk_interval: args.chunk_interval.unwrap_or(if fast {
            Duration::ZERO
        } else {
            Duration::from_millis(50)
        }),
        poll_interval: Duration::from_millis(if fast { 100 } else { 250 }),
        pause: if fast {
            Duration::ZERO
        } else {
            Duration::from_millis(800)
        },
        sequence: 0,
    };
    demo.story.say(&format!(
        "fota demo: update server on {server} (SQLite and blobs in {})",
        dir.join("server").display()
    ));
    let result = demo.script();
    let devices = demo.client.list_devices(None).unwrap_or_default();
    let releases = super::devices::release_names(&demo.client).unwrap_or_default();
    // A graceful stop flushes the batched last-seen times, so a kept work folder holds the
    // server's final view.
    let _ = stop.send(());
    let _ = demo
        .runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), serving).await });
    result?;
    if !args.json {
        demo.final_table(&devices, &releases);
    }
    let ok = demo.checks.iter().all(|c| c.ok);
    let failed: Vec<&Check> = demo.checks.iter().filter(|c| !c.ok).collect();
    if failed.is_empty() {
        demo.story.say(&format!(
            "all {} checks passed: every device ended where it should, and the server knows it",
            demo.checks.len()
        ));
    } else {
        for c in &failed {
            demo.story.say(&format!(
                "FAILED [{}] {}: {} ({})",
                c.step, c.device, c.what, c.detail
            ));
        }
    }
    Ok(Summary {
        ok,
        server,
        dir: None,
        checks: demo.checks,
        devices,
    })
}

impl Demo {
    fn check(&mut self, step: &'static str, device: &str, what: &str, ok: bool, detail: String) {
        let mark = if ok { " ok " } else { "FAIL" };
        self.story
            .say(&format!("    [{mark}] {device}: {what} ({detail})"));
        self.checks.push(Check {
            step,
            device: device.to_owned(),
            what: what.to_owned(),
            ok,
            detail,
        });
    }

    fn pause(&self) {
        std::thread::sleep(self.pause);
    }

    fn script(&mut self) -> anyhow::Result<()> {
        // --- images
        let images_dir = self.dir.join("images");
        std::fs::create_dir_all(&images_dir)?;
        let image = |version: &str, boot_fails: bool| -> anyhow::Result<Vec<u8>> {
            let mut spec = AppImageSpec::new(version);
            spec.size = self.image_size;
            spec.boot_fails = boot_fails;
            let bytes = build_app_image(&spec).map_err(|e| anyhow::anyhow!("{e}"))?;
            std::fs::write(images_dir.join(format!("app-{version}.bin")), &bytes)?;
            Ok(bytes)
        };
        let v105 = image("1.0.5", false)?;
        let v106 = image("1.0.6", false)?;
        let v107 = image("1.0.7", true)?;
        self.story.say(&format!(
            "built ESP32 app images 1.0.5, 1.0.6 and 1.0.7 ({} each; 1.0.7 carries the marker \
             that makes it fail its boot health check)",
            common::size(i64::from(self.image_size))
        ));

        // --- 1. provisioning and first boot
        self.step(
            "1/4",
            "three EcoWatt inverters are provisioned and boot 1.0.5",
        );
        for id in DEVICES {
            let prov = self
                .client
                .add_device(id, CLASS)
                .map_err(|e| common::explain(&self.client, e))?;
            let json = serde_json::to_vec_pretty(&prov)?;
            std::fs::write(self.dir.join(format!("{id}.json")), &json)?;
            self.provisioning.push(Provisioning::from_json(&json)?);
        }
        let runs = self.run_devices(
            (0..DEVICES.len())
                .map(|i| self.spec(i, Until::Idle, Some(&v105)))
                .collect(),
        )?;
        for (i, r) in runs.iter().enumerate() {
            self.expect_running("boot", DEVICES[i], r, "1.0.5");
        }
        self.expect_server("boot", "reported 1.0.5 to the server", |d| {
            d.fw_version.as_deref() == Some("1.0.5")
        })?;
        self.pause();

        // --- 2. release 1.0.6
        self.step(
            "2/4",
            "release 1.0.6 is signed offline, uploaded, verified by the server and assigned to \
             the class",
        );
        self.publish(&v106, "1.0.6")?;
        self.pause();
        let mut cut = self.spec(CUT, Until::Updated, None);
        cut.power_cut_after_ops = Some(self.mid_download_ops());
        let mut tampered = self.spec(TAMPERED, Until::Updated, None);
        tampered.net_fault = NetFaultSpec::parse(&format!("flip@chunk:{TAMPERED_CHUNK}"))?;
        let clean = self.spec(ROLLED_BACK, Until::Updated, None);
        let resumed = self.spec(CUT, Until::Updated, None);
        let hop = if self.device_tls.is_some() {
            "a TLS-terminating hop in front of the server"
        } else {
            "the network"
        };
        self.story.say(&format!(
            "    {} will lose power in the middle of its download; {hop} will flip a bit \
             in chunk {TAMPERED_CHUNK} on its way to {}",
            DEVICES[CUT], DEVICES[TAMPERED]
        ));
        let runs = self.run_devices(vec![cut, tampered, clean])?;
        let size = u64::from(self.image_size);
        {
            let first = &runs[CUT];
            self.check(
                "1.0.6",
                DEVICES[CUT],
                "power cut in the middle of the download",
                first.outcome == "power_cut"
                    && first.bytes_downloaded > 0
                    && first.bytes_downloaded < size,
                format!(
                    "{} after {} of {} bytes",
                    first.outcome, first.bytes_downloaded, size
                ),
            );
        }
        self.story.say(&format!(
            "    power is back on {}: it boots 1.0.5 again and resumes from its journal",
            DEVICES[CUT]
        ));
        let again = self.run_devices(vec![resumed])?.remove(0);
        let first_bytes = runs[CUT].bytes_downloaded;
        self.check(
            "1.0.6",
            DEVICES[CUT],
            "resumed where the power failed (at most one chunk fetched twice)",
            again.resumes >= 1
                && again.bytes_downloaded < size
                && first_bytes + again.bytes_downloaded <= size + u64::from(CHUNK_SIZE),
            format!(
                "{} resume(s), {} bytes after the cut, {} in all for a {} byte image",
                again.resumes,
                again.bytes_downloaded,
                first_bytes + again.bytes_downloaded,
                size
            ),
        );
        self.expect_running("1.0.6", DEVICES[CUT], &again, "1.0.6");
        {
            let t = &runs[TAMPERED];
            let fired: Vec<String> = t.net_faults.iter().map(|f| f.fault.clone()).collect();
            self.check(
                "1.0.6",
                DEVICES[TAMPERED],
                "refused the tampered chunk before writing it and fetched it again",
                !fired.is_empty() && t.chunks_redownloaded >= 1,
                format!(
                    "faults fired: [{}], chunks fetched again: {}",
                    fired.join(", "),
                    t.chunks_redownloaded
                ),
            );
            self.expect_running("1.0.6", DEVICES[TAMPERED], t, "1.0.6");
        }
        {
            let c = &runs[ROLLED_BACK];
            self.check(
                "1.0.6",
                DEVICES[ROLLED_BACK],
                "clean update, nothing fetched twice",
                c.chunks_redownloaded == 0,
                format!("chunks fetched again: {}", c.chunks_redownloaded),
            );
            self.expect_running("1.0.6", DEVICES[ROLLED_BACK], c, "1.0.6");
        }
        self.expect_server("1.0.6", "confirmed 1.0.6 on the server", |d| {
            d.state == DeviceState::Confirmed && d.fw_version.as_deref() == Some("1.0.6")
        })?;
        self.pause();

        // --- 3. manual rollback
        let target = DEVICES[ROLLED_BACK];
        self.step(
            "3/4",
            &format!("the operator orders {target} back to its previous image"),
        );
        let order = self
            .client
            .order_rollback(target, "demo: operator rollback after a field report")
            .map_err(|e| common::explain(&self.client, e))?;
        self.story
            .say(&format!("    rollback order {} is open", order.id));
        let r = self
            .run_devices(vec![self.spec(ROLLED_BACK, Until::Idle, None)])?
            .remove(0);
        self.expect_running("rollback", target, &r, "1.0.5");
        self.check(
            "rollback",
            target,
            "switched slots without downloading anything",
            r.bytes_downloaded == 0,
            format!("{} bytes downloaded", r.bytes_downloaded),
        );
        let orders = self
            .client
            .rollback_orders(target)
            .map_err(|e| common::explain(&self.client, e))?;
        let closed = orders.iter().find(|o| o.id == order.id);
        self.check(
            "rollback",
            target,
            "its report closed the order",
            closed.is_some_and(|o| o.closed_at.is_some() && o.outcome.as_deref() == Some("done")),
            format!("outcome {:?}", closed.and_then(|o| o.outcome.clone())),
        );
        // A second session: the device must not take 1.0.6 again on its own.
        let again = self
            .run_devices(vec![self.spec(ROLLED_BACK, Until::Checkins(2), None)])?
            .remove(0);
        self.check(
            "rollback",
            target,
            "does not reinstall the release it was rolled back from",
            again.bytes_downloaded == 0
                && again.running.as_ref().is_some_and(|r| r.version == "1.0.5"),
            format!(
                "{} bytes downloaded over 2 more check-ins",
                again.bytes_downloaded
            ),
        );
        self.pause();

        // --- 4. a release that fails its boot check
        self.step(
            "4/4",
            "release 1.0.7 is assigned to the class; it fails its boot health check everywhere",
        );
        let r107 = self.publish(&v107, "1.0.7")?;
        self.pause();
        let before: Vec<&str> = vec!["1.0.6", "1.0.6", "1.0.5"];
        let runs = self.run_devices(
            (0..DEVICES.len())
                .map(|i| self.spec(i, Until::Idle, None))
                .collect(),
        )?;
        for (i, r) in runs.iter().enumerate() {
            self.check(
                "1.0.7",
                DEVICES[i],
                "booted 1.0.7 on trial, failed its health check, the bootloader reverted",
                r.boots >= 2
                    && r.last_outcome.as_deref() == Some("rolled_back")
                    && r.reason == "health_check_failed",
                format!(
                    "{} boots, outcome {}, reason {}",
                    r.boots,
                    r.last_outcome.as_deref().unwrap_or("-"),
                    r.reason
                ),
            );
            self.expect_running("1.0.7", DEVICES[i], r, before[i]);
        }
        self.expect_server(
            "1.0.7",
            "reported rolled_back; 1.0.7 is not offered to it again",
            |d| {
                d.state == DeviceState::RolledBack
                    && d.suppressed_release_id.as_deref() == Some(&r107)
            },
        )?;
        Ok(())
    }

    fn step(&self, n: &str, text: &str) {
        self.story.say("");
        self.story.say(&format!("[{n}] {text}"));
    }

    /// Signs with the fleet's release key, uploads (the server verifies), assigns to the
    /// class. Returns the release id.
    fn publish(&mut self, image: &[u8], version: &str) -> anyhow::Result<String> {
        self.sequence += 1;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let spec = ReleaseSpec {
            class: CLASS.into(),
            version: version.into(),
            sequence: self.sequence,
            security_counter: None,
            chunk_size: CHUNK_SIZE,
            issued_at: now,
            expires_at: 0,
            manifest_format: Default::default(),
        };
        let signed: SignedRelease = sign(image, &spec, &self.keys)?;
        let stored = self
            .client
            .upload_release(
                signed.parts(),
                &mut &image[..],
                image.len() as u64,
                &mut |_| {},
            )
            .map_err(|e| common::explain(&self.client, e))?
            .release;
        self.client
            .assign_class(&stored.id, CLASS)
            .map_err(|e| common::explain(&self.client, e))?;
        self.story.say(&format!(
            "    release {} {version} (sequence {}, {} chunks of {}) uploaded and assigned to \
             class {CLASS}",
            stored.id,
            stored.sequence,
            (stored.image_size + stored.chunk_size - 1) / stored.chunk_size.max(1),
            common::size(stored.chunk_size)
        ));
        Ok(stored.id)
    }

    fn spec(&self, i: usize, until: Until, initial: Option<&[u8]>) -> SessionSpec {
        let prov = self.provisioning[i].clone();
        let mut options = DeviceOptions::new(DEVICES[i], Protocol::V2(prov));
        options.until = until;
        options.chunk_interval = self.chunk_interval;
        options.poll_interval = self.poll_interval;
        // A bound, so a regression ends the demo with a failed check instead of hanging it.
        options.max_checkins = 50;
        SessionSpec {
            server: self.server.clone(),
            flash: self.dir.join(format!("{}.flash.bin", DEVICES[i])),
            initial_image: initial.map(<[u8]>::to_vec),
            layout: Layout::default(),
            power_cut_after_ops: None,
            net_fault: NetFaultSpec::default(),
            options,
            timeouts: Timeouts::default(),
            tls: self.device_tls.clone(),
        }
    }

    /// Flash operations from boot to about half of the download: per chunk, one erase per
    /// 4 KiB sector, one program per 256-byte page and one journal record.
    fn mid_download_ops(&self) -> u64 {
        let chunks = u64::from(self.image_size.div_ceil(CHUNK_SIZE));
        let per_chunk = u64::from(CHUNK_SIZE / 4096 + CHUNK_SIZE / 256 + 1);
        per_chunk * (chunks / 2) + per_chunk / 2
    }

    /// Runs devices side by side; each spec is one session (one power-on until its goal, a
    /// power cut or a failure). Shows the server's view of them as progress bars meanwhile.
    fn run_devices(&self, specs: Vec<SessionSpec>) -> anyhow::Result<Vec<Report>> {
        let names: Vec<String> = specs.iter().map(|s| s.options.name.clone()).collect();
        let bars: HashMap<String, ProgressBar> = names
            .iter()
            .map(|n| {
                let bar = self
                    .story
                    .bars
                    .add(ProgressBar::new(u64::from(self.image_size)));
                bar.set_style(
                    ProgressStyle::with_template(
                        "  {prefix:11} [{bar:32}] {bytes:>9}/{total_bytes:9} {msg}",
                    )
                    .expect("static template")
                    .progress_chars("=> "),
                );
                bar.set_prefix(n.clone());
                (n.clone(), bar)
            })
            .collect();
        let done = Arc::new(AtomicBool::new(false));
        let watcher = {
            let client = self.client.clone();
            let bars = bars.clone();
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    show(&client, &bars);
                    std::thread::sleep(Duration::from_millis(100));
                }
                show(&client, &bars);
            })
        };
        let results = self.runtime.block_on(async {
            let tasks: Vec<_> = specs
                .into_iter()
                .map(|spec| tokio::spawn(async move { run_session(&spec).await }))
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await);
            }
            out
        });
        done.store(true, Ordering::Relaxed);
        let _ = watcher.join();
        // The bars go before the summaries: each summary line says how its device ended.
        for bar in bars.values() {
            bar.finish();
            self.story.bars.remove(bar);
        }
        let mut reports = Vec::new();
        for (name, r) in names.iter().zip(results) {
            let report = r
                .with_context(|| format!("{name}: device task"))?
                .with_context(|| format!("{name}: emulated device"))?;
            self.story.say(&format!(
                "    {name}: {} — running {} ({}), {} boot(s), {} check-in(s), {} downloaded",
                report.outcome,
                report.running.as_ref().map_or("?", |r| r.version.as_str()),
                report
                    .running
                    .as_ref()
                    .and_then(|r| r.state.as_deref())
                    .unwrap_or("-"),
                report.boots,
                report.checkins,
                common::size(i64::try_from(report.bytes_downloaded).unwrap_or(i64::MAX)),
            ));
            reports.push(report);
        }
        Ok(reports)
    }

    fn expect_running(&mut self, step: &'static str, device: &str, r: &Report, version: &str) {
        let running = r.running.as_ref();
        let state = running.and_then(|r| r.state.as_deref());
        self.check(
            step,
            device,
            &format!("runs {version}, confirmed (otadata VALID)"),
            r.outcome == "done"
                && running.is_some_and(|r| r.version == version)
                && matches!(state, Some("VALID") | None),
            format!(
                "{} on {} ({}), session {}",
                running.map_or("?", |r| r.version.as_str()),
                running.map_or("?", |r| r.slot.as_str()),
                state.unwrap_or("no otadata entry"),
                r.outcome
            ),
        );
    }

    fn expect_server(
        &mut self,
        step: &'static str,
        what: &str,
        ok: impl Fn(&Device) -> bool,
    ) -> anyhow::Result<()> {
        let devices = self
            .client
            .list_devices(Some(CLASS))
            .map_err(|e| common::explain(&self.client, e))?;
        for id in DEVICES {
            let d = devices.iter().find(|d| d.id == id);
            self.check(
                step,
                id,
                &format!("server: {what}"),
                d.is_some_and(&ok),
                d.map_or_else(
                    || "not listed".to_owned(),
                    |d| {
                        format!(
                            "state {}, version {}",
                            d.state,
                            d.fw_version.as_deref().unwrap_or("-")
                        )
                    },
                ),
            );
        }
        Ok(())
    }

    fn final_table(&self, devices: &[Device], releases: &HashMap<String, Release>) {
        let name = |id: Option<&str>| super::devices::release_label(releases, id);
        let rows: Vec<Vec<String>> = devices
            .iter()
            .map(|d| {
                vec![
                    d.id.clone(),
                    d.fw_version.clone().unwrap_or_else(|| "-".into()),
                    d.slot.map_or_else(|| "-".into(), |s| format!("ota_{s}")),
                    d.ota_state.clone().unwrap_or_else(|| "-".into()),
                    d.state.to_string(),
                    name(d.effective_release_id.as_deref()),
                    name(d.suppressed_release_id.as_deref()),
                ]
            })
            .collect();
        self.story.say("");
        let lines = common::table(
            &[
                "DEVICE", "VERSION", "SLOT", "OTADATA", "STATE", "OFFERED", "REFUSED",
            ],
            &rows,
        );
        for line in lines {
            self.story.say(&line);
        }
    }
}

/// One refresh of the bars from the server's device list: what `fota watch` shows.
fn show(client: &Client, bars: &HashMap<String, ProgressBar>) {
    let Ok(devices) = client.list_devices(Some(CLASS)) else {
        return;
    };
    for d in devices {
        let Some(bar) = bars.get(&d.id) else {
            continue;
        };
        let total = u64::try_from(d.progress_total).unwrap_or(0);
        let done = u64::try_from(d.progress_bytes).unwrap_or(0);
        if total > 0 {
            bar.set_length(total);
            bar.set_position(done.min(total));
        }
        bar.set_message(format!(
            "{} · {}",
            d.fw_version.as_deref().unwrap_or("?"),
            d.state
        ));
    }
}
