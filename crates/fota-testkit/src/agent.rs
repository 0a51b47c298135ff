//! The agent on the emulated ESP32 against scriptable in-memory servers: a v2 server and a
//! legacy server whose answers, faults and counters a test sets ([`Net`]), a clock and RNG
//! ([`Plat`]), and a device runner ([`Device`]) that on every boot runs the emulator's
//! bootloader (`fota_emulator::bootloader`, the only emulated bootloader) and rebuilds the
//! agent from flash alone. The agent's own suite is written on this; it reaches into every
//! flash operation of an update without a network.

use std::sync::{Arc, Mutex};

use embedded_storage::nor_flash::NorFlash;
use fota_agent::{
    Agent, AgentStatus, BootInfo, Buffers, DeviceConfig, Mode, Platform, PollOutcome, Running,
    StartupOutcome, Transport, TransportError,
};
use fota_emulator::bootloader::{self, BootloaderConfig, Efuse};
use fota_flash_sim::{Config, SimFlash};
use fota_protocol::esp::flash::FlashBuilder;
use fota_protocol::esp::layouts;
use fota_protocol::esp::otadata::{BootIndex, OtaSelectEntry, OtaState, Otadata};
use fota_protocol::esp::partition::{PartitionTable, TABLE_MAX_LEN, TABLE_OFFSET};
use fota_protocol::legacy::{ChunkAnswer, ManifestAnswer, RollbackStatusAnswer, paths};
use fota_protocol::v2::hashlist::HashList;
use fota_protocol::v2::{
    Action, CheckIn, CheckInAnswer, EventKind, ManifestBody, ReasonCode, RootList, StatusBody,
    manifest_digest,
};

use crate::invariants::Observed;
use crate::seeds::Plan;
pub use crate::seeds::{CLASS, DEVICE, NOW, PSK, VENDOR, signer as key};

/// The device's name (legacy mode's `device_id`).
pub const NAME: &str = "EcoWatt001";

/// Root keys 1, 2 (threshold 1), release key 10, status key 20: [`Plan::SIMPLE`].
pub fn root_record() -> Vec<u8> {
    Plan::SIMPLE.root_record()
}

/// A root record of `version` signed by root key 1, naming `release` and `status` seeds.
pub fn root_with(version: u32, release: &[u8], status: &[u8]) -> Vec<u8> {
    let plan = Plan::SIMPLE;
    plan.root_body_with(version, plan.root, release, status)
        .sign(&[&key(1)])
        .expect("root record")
}

pub use crate::image;

/// A release as the server holds it.
#[derive(Clone)]
pub struct Release {
    /// Firmware version.
    pub version: String,
    /// The image.
    pub image: Vec<u8>,
    /// The manifest's fields.
    pub body: ManifestBody,
    /// The signed manifest.
    pub manifest: Vec<u8>,
    /// Its digest.
    pub digest: [u8; 32],
    /// The hash list.
    pub hashlist: HashList,
}

/// `image` as `version` at `sequence`, signed by release key 10.
pub fn release(version: &str, image: Vec<u8>, sequence: u64, chunk: u32) -> Release {
    release_with(version, image, sequence, chunk, |_| {}, &[10])
}

/// `image` as `version` at `sequence` for the raw-id [`VENDOR`] and [`CLASS`], with `edit`
/// applied to the manifest, signed by `signers`.
pub fn release_with(
    version: &str,
    image: Vec<u8>,
    sequence: u64,
    chunk: u32,
    edit: impl FnOnce(&mut ManifestBody),
    signers: &[u8],
) -> Release {
    let mut fields =
        crate::release::fields(uuid::Uuid::from_bytes(VENDOR), "", version, sequence, chunk);
    fields.issued_at = NOW - 100;
    let built = crate::seeds::sign_with(signers, |keys| {
        crate::release::build(
            image,
            &fields,
            |body| {
                body.class_id = CLASS;
                edit(body);
            },
            keys,
        )
    });
    Release {
        version: version.into(),
        digest: manifest_digest(&built.manifest),
        image: built.image,
        body: built.body,
        manifest: built.manifest,
        hashlist: built.hashlist,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// What the v2 server answers a check-in with.
pub enum Assign {
    /// Nothing to do.
    None,
    /// Install `releases[i]`.
    Install(usize),
    /// Roll back, by order id.
    Rollback(u64),
}

/// The v2 server.
pub struct V2Server {
    /// Releases it holds.
    pub releases: Vec<Release>,
    /// What it assigns.
    pub assign: Assign,
    /// Assignment generation (bump it to re-offer a rejected release).
    pub generation: u32,
    /// Poll interval it asks for, seconds.
    pub poll_s: u32,
    /// Its clock, unix seconds.
    pub server_time: u64,
    /// Seed of the key that signs its status statements.
    pub status_key: u8,
    /// (chunk index, how many more times to corrupt it)
    pub tamper: Option<(u32, u32)>,
    /// Image bytes served.
    pub image_bytes_served: u64,
    /// Hash-list bytes served.
    pub hashlist_bytes_served: u64,
    /// Events received: (kind, reason, rollback order).
    pub events: Vec<(EventKind, ReasonCode, u64)>,
    /// Check-ins received.
    pub checkins: Vec<CheckIn>,
    /// Transport failures to inject before answering (any request).
    pub fail_requests: u32,
    /// Root records it hands out with answers (rotation chain).
    pub roots: Vec<Vec<u8>>,
    /// Serve a manifest that differs from the assigned one (assignment mismatch).
    pub swap_manifest: Option<usize>,
    /// Range requests still answered before the network dies (None = never dies).
    pub ranges_left: Option<u32>,
}

impl Default for V2Server {
    fn default() -> Self {
        Self {
            releases: Vec::new(),
            assign: Assign::None,
            generation: 1,
            poll_s: 60,
            server_time: NOW,
            status_key: 20,
            tamper: None,
            image_bytes_served: 0,
            hashlist_bytes_served: 0,
            events: Vec::new(),
            checkins: Vec::new(),
            fail_requests: 0,
            roots: Vec::new(),
            swap_manifest: None,
            ranges_left: None,
        }
    }
}

impl V2Server {
    fn answer(&mut self, body: &[u8]) -> Vec<u8> {
        let checkin = CheckIn::decode(body).unwrap();
        let action = match self.assign {
            Assign::None => Action::None,
            Assign::Install(i) => Action::Install {
                manifest_digest: self.releases[i].digest,
            },
            Assign::Rollback(order_id) => Action::Rollback { order_id },
        };
        let status = StatusBody {
            device_id: checkin.device_id,
            nonce: checkin.nonce,
            server_time: self.server_time,
            expires_at: self.server_time + 86_400,
            action,
            poll_interval_s: self.poll_s,
            root_version: 1,
            assignment_generation: self.generation,
        }
        .sign(&[&key(self.status_key)])
        .unwrap();
        let manifest_index = match self.assign {
            Assign::Install(i) => Some(self.swap_manifest.unwrap_or(i)),
            _ => None,
        };
        let image_url = manifest_index
            .map(|i| format!("/blobs/{i}"))
            .unwrap_or_default();
        let hashlist_url = manifest_index
            .map(|i| format!("/hashlists/{i}"))
            .unwrap_or_default();
        let roots: Vec<&[u8]> = self.roots.iter().map(Vec::as_slice).collect();
        let answer = CheckInAnswer {
            poll_hint_s: self.poll_s,
            status: &status,
            manifest: manifest_index.map(|i| self.releases[i].manifest.as_slice()),
            image_url: &image_url,
            hashlist_url: &hashlist_url,
            rollback_order_id: match self.assign {
                Assign::Rollback(o) => o,
                _ => 0,
            },
            reason: "",
            roots: RootList::new(&roots).unwrap(),
        };
        self.checkins.push(checkin);
        answer.to_vec().unwrap()
    }

    fn range(&mut self, url: &str, offset: u64, buf: &mut [u8]) -> Result<usize, TransportError> {
        if let Some(left) = self.ranges_left.as_mut() {
            if *left == 0 {
                return Err(TransportError::Timeout);
            }
            *left -= 1;
        }
        let (kind, index) = url.rsplit_once('/').ok_or(TransportError::Status(404))?;
        let index: usize = index.parse().map_err(|_| TransportError::Status(404))?;
        let release = self
            .releases
            .get(index)
            .ok_or(TransportError::Status(404))?;
        let blob = match kind {
            "/blobs" => &release.image,
            "/hashlists" => &release.hashlist.blob,
            _ => return Err(TransportError::Status(404)),
        };
        let start = usize::try_from(offset).unwrap();
        if start > blob.len() {
            return Err(TransportError::Status(416));
        }
        let n = buf.len().min(blob.len() - start);
        buf[..n].copy_from_slice(&blob[start..start + n]);
        if kind == "/blobs" {
            self.image_bytes_served += n as u64;
            let chunk = u64::from(release.body.chunk_size);
            if let Some((k, times)) = self.tamper
                && times > 0
                && offset == u64::from(k) * chunk
                && n > 0
            {
                buf[n / 2] ^= 0x5A;
                self.tamper = Some((k, times - 1));
            }
        } else {
            self.hashlist_bytes_served += n as u64;
        }
        Ok(n)
    }
}

/// The legacy server (the seed's protocol with our replay MACs).
pub struct LegacyServer {
    /// The release it offers: (version, image, chunk size).
    pub release: Option<(String, Vec<u8>, u64)>,
    /// Its replay counter.
    pub nonce: u64,
    /// A pending rollback order, with its reason.
    pub rollback: Option<String>,
    /// The device has read the pending order.
    pub rollback_read: bool,
    /// (chunk, replacement byte flip) served with a valid MAC: an attacker holding the PSK.
    pub evil_chunk: Option<u32>,
    /// Statuses posted: (status, version, reason).
    pub statuses: Vec<(String, String, String)>,
    /// Chunk data bytes served.
    pub bytes_served: u64,
    /// Answer the manifest request with the last manifest answer again (a replay).
    pub replay_last_manifest: bool,
    last_manifest: Option<Vec<u8>>,
    /// The PSK it signs with.
    pub psk: Vec<u8>,
}

impl Default for LegacyServer {
    fn default() -> Self {
        Self {
            release: None,
            nonce: 100,
            rollback: None,
            rollback_read: false,
            evil_chunk: None,
            statuses: Vec::new(),
            bytes_served: 0,
            replay_last_manifest: false,
            last_manifest: None,
            psk: PSK.to_vec(),
        }
    }
}

impl LegacyServer {
    fn get(&mut self, path_and_query: &str) -> Result<Vec<u8>, TransportError> {
        use sha2::Digest;
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let param = |k: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
                .map(str::to_owned)
        };
        let device = param("device_id").unwrap_or_default();
        match path {
            paths::MANIFEST => {
                if self.replay_last_manifest
                    && let Some(old) = &self.last_manifest
                {
                    return Ok(old.clone());
                }
                let (version, image, chunk) =
                    self.release.clone().ok_or(TransportError::Status(404))?;
                self.nonce += 1;
                let mut answer = ManifestAnswer {
                    version,
                    size: image.len() as u64,
                    hash: hex::encode(sha2::Sha256::digest(&image)),
                    chunk_size: chunk,
                    total_chunks: (image.len() as u64).div_ceil(chunk),
                    nonce: None,
                    mac: None,
                };
                answer
                    .seal(&self.psk, paths::MANIFEST, &device, self.nonce)
                    .unwrap();
                let body = serde_json::to_vec(&answer).unwrap();
                self.last_manifest = Some(body.clone());
                Ok(body)
            }
            paths::CHUNK => {
                let (_, image, chunk) = self.release.clone().ok_or(TransportError::Status(404))?;
                let n: u64 = param("chunk_number").unwrap().parse().unwrap();
                let start = (n * chunk) as usize;
                let end = (start + chunk as usize).min(image.len());
                let mut data = image[start..end].to_vec();
                if self.evil_chunk == Some(n as u32) {
                    data[0] ^= 0xFF;
                }
                self.bytes_served += data.len() as u64;
                Ok(serde_json::to_vec(&ChunkAnswer::new_signed(&self.psk, n, &data)).unwrap())
            }
            paths::ROLLBACK_STATUS => {
                self.nonce += 1;
                let required = self.rollback.is_some();
                if required {
                    self.rollback_read = true;
                }
                let mut answer = RollbackStatusAnswer {
                    rollback_required: required,
                    reason: self.rollback.clone(),
                    nonce: None,
                    mac: None,
                };
                answer
                    .seal(&self.psk, paths::ROLLBACK_STATUS, &device, self.nonce)
                    .unwrap();
                Ok(serde_json::to_vec(&answer).unwrap())
            }
            _ => Err(TransportError::Status(404)),
        }
    }

    fn post(&mut self, body: &[u8]) {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_owned();
        self.statuses.push((s("status"), s("version"), s("reason")));
        if self.rollback_read {
            self.rollback = None;
            self.rollback_read = false;
        }
    }
}

#[derive(Default)]
/// Both servers behind one network.
pub struct Server {
    /// The v2 server.
    pub v2: V2Server,
    /// The legacy server.
    pub legacy: LegacyServer,
}

/// The device's network: a handle on the shared in-memory server.
#[derive(Clone, Default)]
pub struct Net(pub Arc<Mutex<Server>>);

impl Net {
    /// Runs `f` on the servers.
    pub fn with<R>(&self, f: impl FnOnce(&mut Server) -> R) -> R {
        f(&mut self.0.lock().unwrap())
    }

    fn fail(&self) -> Result<(), TransportError> {
        self.with(|s| {
            if s.v2.fail_requests > 0 {
                s.v2.fail_requests -= 1;
                Err(TransportError::Connect)
            } else {
                Ok(())
            }
        })
    }
}

impl Transport for Net {
    async fn checkin(&mut self, body: &[u8], resp: &mut [u8]) -> Result<usize, TransportError> {
        self.fail()?;
        let answer = self.with(|s| s.v2.answer(body));
        let out = resp
            .get_mut(..answer.len())
            .ok_or(TransportError::TooLarge)?;
        out.copy_from_slice(&answer);
        Ok(answer.len())
    }

    async fn get_range(
        &mut self,
        url: &str,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, TransportError> {
        self.fail()?;
        self.with(|s| s.v2.range(url, offset, buf))
    }

    async fn event(&mut self, body: &[u8]) -> Result<(), TransportError> {
        self.fail()?;
        let e = fota_protocol::v2::Event::decode(body).unwrap();
        self.with(|s| s.v2.events.push((e.kind, e.reason, e.rollback_order_id)));
        Ok(())
    }

    async fn legacy_get(
        &mut self,
        path_and_query: &str,
        resp: &mut [u8],
    ) -> Result<usize, TransportError> {
        self.fail()?;
        let body = self.with(|s| s.legacy.get(path_and_query))?;
        let out = resp.get_mut(..body.len()).ok_or(TransportError::TooLarge)?;
        out.copy_from_slice(&body);
        Ok(body.len())
    }

    async fn legacy_post(&mut self, _path: &str, body: &[u8]) -> Result<(), TransportError> {
        self.fail()?;
        self.with(|s| s.legacy.post(body));
        Ok(())
    }
}

/// Clock, RNG and the `--boot-fails` self-test of the running image.
pub struct Plat {
    /// Milliseconds since this boot.
    pub now: u64,
    /// RNG state.
    pub rng: u64,
    /// What the self-test says.
    pub healthy: bool,
    /// Milliseconds slept.
    pub slept: u64,
}

impl Platform for Plat {
    fn now_ms(&mut self) -> u64 {
        self.now
    }

    async fn sleep_ms(&mut self, ms: u64) {
        self.now += ms;
        self.slept += ms;
    }

    fn fill_random(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.rng = self
                .rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (self.rng >> 33) as u8;
        }
    }

    fn self_test(&mut self) -> bool {
        self.healthy
    }

    fn telemetry(&mut self, telemetry: &mut fota_protocol::v2::checkin::Telemetry) {
        telemetry.reset_reason = 1;
        telemetry.free_heap = 150_000;
        // The section is empty and the entry is valid, so this cannot fail.
        let _ = telemetry.attributes.push("site", "test-bench");
    }
}

// ------------------------------------------------------------------ flash and bootloader

/// 4 MiB, the EcoWatt flash.
pub const FLASH: usize = 0x40_0000;

/// The EcoWatt partition table.
pub fn table() -> PartitionTable {
    layouts::ecowatt()
}

/// A 4 MiB flash with `table` and `image` in the factory partition, otadata blank.
pub fn factory_flash(table: &PartitionTable, image: &[u8]) -> SimFlash {
    let mut b = FlashBuilder::new(FLASH as u32, table).unwrap();
    b.write_app(BootIndex::Factory, image).unwrap();
    SimFlash::from_image(Config::ESP32.with_capacity(FLASH), b.into_bytes()).unwrap()
}

/// A 4 MiB flash with the EcoWatt table, `image` in ota_0 and one VALID entry for it.
pub fn provisioned_flash(table: &PartitionTable, image: &[u8]) -> SimFlash {
    let mut b = FlashBuilder::new(FLASH as u32, table).unwrap();
    b.write_app(BootIndex::Ota(0), image).unwrap();
    b.set_otadata(0, &OtaSelectEntry::new(1, OtaState::Valid))
        .unwrap();
    SimFlash::from_image(Config::ESP32.with_capacity(FLASH), b.into_bytes()).unwrap()
}

/// What the bootloader did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Booted {
    /// The partition that runs.
    pub running: Running,
    /// Its image carries the failing-self-test marker.
    pub boot_fails: bool,
    /// The selected entry went NEW → PENDING_VERIFY this boot.
    pub trial: bool,
    /// The running slot's otadata state after the bootloader's rewrites.
    pub state: Option<OtaState>,
    /// SHA-256 of the running image.
    pub image_sha256: [u8; 32],
}

impl Booted {
    /// This boot as the invariant checker takes it; `confirmed`: the slot was VALID when
    /// the boot ended.
    pub fn observed(&self, confirmed: bool) -> Observed {
        Observed {
            running: match self.running {
                Running::Ota(n) => BootIndex::Ota(u32::from(n)),
                Running::Factory => BootIndex::Factory,
            },
            state: self.state,
            confirmed,
            image_sha256: self.image_sha256,
        }
    }
}

/// One reset through the emulator's bootloader (ESP-IDF's, rollback enabled): `None` when
/// power fails inside it. A flash with no bootable image fails the test.
pub fn bootloader(flash: &mut SimFlash) -> Option<Booted> {
    match bootloader::boot(flash, BootloaderConfig::default(), &mut Efuse::default()) {
        Ok(b) => {
            let state = b.running_state();
            Some(Booted {
                running: match b.running {
                    BootIndex::Ota(n) => Running::Ota(u8::try_from(n).expect("slot")),
                    _ => Running::Factory,
                },
                boot_fails: b.app_desc.boot_fails(),
                // A PENDING_VERIFY entry at boot start is aborted by this boot, so one after
                // it was NEW before it.
                trial: !b.fell_back && state == Some(OtaState::PendingVerify),
                state,
                image_sha256: b.image_sha256,
            })
        }
        Err(e) if e.is_power_loss() => None,
        Err(e) => panic!("the device is bricked: {e}"),
    }
}

// ------------------------------------------------------------------ device runner

#[derive(Clone)]
/// How a device is built.
pub struct DeviceSpec {
    /// Legacy mode (the seed protocol) instead of v2.
    pub legacy: bool,
    /// Boot-attempt limit k.
    pub k: u8,
    /// Chunk buffer bytes.
    pub chunk_buf: usize,
    /// I/O buffer bytes.
    pub io_buf: usize,
    /// Polls per boot at most.
    pub max_polls: usize,
    /// Pause between chunks, ms.
    pub chunk_interval_ms: u32,
    /// The provisioned root record.
    pub root: Vec<u8>,
}

impl Default for DeviceSpec {
    fn default() -> Self {
        Self {
            legacy: false,
            k: 1,
            chunk_buf: 16 * 1024,
            io_buf: 16 * 1024 * 4 / 3 + 512,
            max_polls: 4,
            chunk_interval_ms: 0,
            root: root_record(),
        }
    }
}

/// A device: its flash (kept across boots), spec, network and boot history.
pub struct Device {
    /// The flash; `None` only inside a boot.
    pub flash: Option<SimFlash>,
    /// How it is built.
    pub spec: DeviceSpec,
    /// Its network.
    pub net: Net,
    /// Every boot so far.
    pub boots: Vec<BootLog>,
}

/// What one boot did.
#[derive(Debug, Clone)]
pub struct BootLog {
    /// What the bootloader did; `None` when cut inside it.
    pub booted: Option<Booted>,
    /// Startup outcome.
    pub startup: Option<StartupOutcome>,
    /// Poll outcomes.
    pub polls: Vec<PollOutcome>,
    /// Agent status at the end.
    pub status: Option<AgentStatus>,
    /// Power failed during this boot.
    pub cut: bool,
    /// Milliseconds slept.
    pub slept_ms: u64,
}

impl BootLog {
    /// The last poll outcome.
    pub fn last_poll(&self) -> Option<PollOutcome> {
        self.polls.last().copied()
    }
}

/// The agent settings of `spec`.
pub fn config(spec: &DeviceSpec) -> DeviceConfig<'_> {
    let mut c = DeviceConfig::new(DEVICE, NAME, VENDOR, CLASS, &spec.root);
    if spec.legacy {
        c.mode = Mode::Legacy { psk: PSK };
    }
    c.boot_attempt_limit = spec.k;
    c.chunk_interval_ms = spec.chunk_interval_ms;
    c.poll_interval_ms = 1000;
    c.health_check_deadline_ms = 30_000;
    c
}

impl Device {
    /// A device on `flash` behind `net`.
    pub fn new(flash: SimFlash, net: Net, spec: DeviceSpec) -> Self {
        Self {
            flash: Some(flash),
            spec,
            net,
            boots: Vec::new(),
        }
    }

    /// Its flash.
    pub fn flash(&self) -> &SimFlash {
        self.flash.as_ref().unwrap()
    }

    /// Its flash, mutably.
    pub fn flash_mut(&mut self) -> &mut SimFlash {
        self.flash.as_mut().unwrap()
    }

    /// One boot: bootloader, fresh agent from flash, startup, then polls until the agent
    /// is idle, wants a reboot, or power fails.
    pub fn boot(&mut self) -> BootLog {
        let mut flash = self.flash.take().unwrap();
        flash.power_on();
        let mut log = BootLog {
            booted: None,
            startup: None,
            polls: Vec::new(),
            status: None,
            cut: false,
            slept_ms: 0,
        };
        let Some(booted) = bootloader(&mut flash) else {
            log.cut = true;
            self.flash = Some(flash);
            self.boots.push(log.clone());
            return log;
        };
        log.booted = Some(booted);
        let running_region = app_region_in(&flash, booted.running);
        let running_before = flash.contents()[running_region.clone()].to_vec();
        let mut chunk = vec![0u8; self.spec.chunk_buf];
        let mut io = vec![0u8; self.spec.io_buf];
        let mut page = vec![0u8; 4096];
        let plat = Plat {
            now: 0,
            rng: 0x1234_5678 ^ self.boots.len() as u64,
            healthy: !booted.boot_fails,
            slept: 0,
        };
        let spec = self.spec.clone();
        let bufs = Buffers {
            chunk: &mut chunk,
            io: &mut io,
            page: &mut page,
        };
        let agent = Agent::boot(
            flash,
            self.net.clone(),
            plat,
            config(&spec),
            BootInfo {
                running: booted.running,
            },
            bufs,
        );
        let mut agent = match agent {
            Ok(a) => a,
            Err(f) => {
                assert!(
                    !f.flash.is_powered(),
                    "boot failed with power on: {:?}",
                    f.error
                );
                log.cut = true;
                self.flash = Some(f.flash);
                self.boots.push(log.clone());
                return log;
            }
        };
        let startup = futures_executor::block_on(agent.startup());
        log.startup = Some(startup);
        if let StartupOutcome::Ready = startup {
            for _ in 0..spec.max_polls {
                let o = futures_executor::block_on(agent.poll());
                log.polls.push(o);
                match o {
                    PollOutcome::Idle { .. } | PollOutcome::RebootRequired => break,
                    PollOutcome::Failed { error: Some(_), .. } if !agent.flash().is_powered() => {
                        break;
                    }
                    _ => {}
                }
            }
        }
        log.status = Some(agent.status());
        let (flash, _, plat) = agent.into_parts();
        log.slept_ms = plat.slept;
        log.cut = !flash.is_powered();
        // The running image's bytes are never touched, whatever happened.
        assert_eq!(
            &flash.contents()[running_region],
            &running_before[..],
            "the running slot changed"
        );
        self.flash = Some(flash);
        self.boots.push(log.clone());
        log
    }

    /// otadata as the flash holds it.
    pub fn otadata(&self) -> Otadata {
        let c = self.flash().contents();
        let od = flash_table(self.flash()).boot_layout().otadata.unwrap();
        Otadata::from_partition(&c[od.offset as usize..(od.offset + od.size) as usize]).unwrap()
    }

    /// State of the entry selecting `slot`.
    pub fn slot_state(&self, slot: u32) -> Option<OtaState> {
        self.otadata().state_of_slot(slot, 2)
    }

    /// The first `len` bytes of ota_`slot`.
    pub fn slot_bytes(&self, slot: u8, len: usize) -> &[u8] {
        let r = app_region_in(self.flash(), Running::Ota(slot));
        &self.flash().contents()[r.start..r.start + len]
    }
}

/// The partition table the flash holds.
pub fn flash_table(flash: &SimFlash) -> PartitionTable {
    let c = flash.contents();
    PartitionTable::parse(
        &c[TABLE_OFFSET as usize..TABLE_OFFSET as usize + TABLE_MAX_LEN],
        FLASH as u32,
    )
    .unwrap()
}

/// The app partition of `r` in the table the flash holds.
pub fn app_region_in(flash: &SimFlash, r: Running) -> core::ops::Range<usize> {
    let layout = flash_table(flash).boot_layout();
    let p = match r {
        Running::Ota(n) => layout.ota[usize::from(n)].unwrap(),
        Running::Factory => layout.factory.unwrap(),
    };
    p.offset as usize..(p.offset + p.size) as usize
}

/// The app partition of `r` in the EcoWatt table.
pub fn app_region(r: Running) -> core::ops::Range<usize> {
    match r {
        Running::Ota(0) => 0x10000..0x150000,
        Running::Ota(1) => 0x150000..0x290000,
        other => panic!("no such app {other:?} in the EcoWatt table"),
    }
}

/// What ran in `log`'s boot.
pub fn running_of(log: &BootLog) -> Running {
    log.booted.unwrap().running
}

/// Lets `flash` go through erase and program calls directly (for setting up states).
pub fn write_raw(flash: &mut SimFlash, at: u32, data: &[u8]) {
    flash.preload(at, data).unwrap();
}

/// Compiles only for a `NorFlash`.
pub fn assert_norflash<F: NorFlash>() {}
