//! Test kit: signed keys and records, in-memory v2 and legacy servers, a minimal test
//! bootloader built on fota_protocol's boot selection, and a device runner that rebuilds the
//! agent from flash alone on every boot.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    reason = "a kit shared by test files: each uses part of it"
)]

use std::sync::{Arc, Mutex};

use ed25519_dalek::SigningKey;
use embedded_storage::nor_flash::NorFlash;
use fota_agent::{
    Agent, AgentStatus, BootInfo, Buffers, DeviceConfig, Mode, Platform, PollOutcome, Running,
    StartupOutcome, Transport, TransportError,
};
use fota_flash_sim::{Config, SimFlash};
use fota_protocol::esp::build::{AppImageSpec, build_app_image};
use fota_protocol::esp::flash::FlashBuilder;
use fota_protocol::esp::image::{VerifyOptions, verify};
use fota_protocol::esp::layouts;
use fota_protocol::esp::otadata::{
    BootIndex, OtaSelectEntry, OtaState, Otadata, OtadataOp, SECTOR_SIZE, select_boot,
};
use fota_protocol::esp::partition::{PartitionTable, TABLE_MAX_LEN, TABLE_OFFSET};
use fota_protocol::legacy::{ChunkAnswer, ManifestAnswer, RollbackStatusAnswer, paths};
use fota_protocol::v2::hashlist::{HashList, build as build_hashlist};
use fota_protocol::v2::keys::Role;
use fota_protocol::v2::{
    Action, CheckIn, CheckInAnswer, Component, EventKind, FixedStr, KeySet, ManifestBody,
    PayloadFormat, ReasonCode, RootBody, RootList, StatusBody, manifest_digest,
};

pub const VENDOR: [u8; 16] = [0x11; 16];
pub const CLASS: [u8; 16] = [0x22; 16];
pub const DEVICE: [u8; 16] = [0x33; 16];
pub const NAME: &str = "EcoWatt001";
pub const PSK: &[u8] = b"your-32-byte-secret-key-here!!";
pub const NOW: u64 = 1_800_000_000;

pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// Root keys 1, 2 (threshold 1), release key 10, status key 20.
pub fn root_record() -> Vec<u8> {
    root_with(1, &[10], &[20])
}

pub fn root_with(version: u32, release: &[u8], status: &[u8]) -> Vec<u8> {
    let set = |role, seeds: &[u8]| {
        let keys: Vec<_> = seeds
            .iter()
            .map(|&s| key(s).verifying_key().to_bytes())
            .collect();
        KeySet::new(role, 1, &keys).unwrap()
    };
    let body = RootBody {
        version,
        vendor_id: VENDOR,
        issued_at: NOW - 1000,
        expires_at: 0,
        root: set(Role::Root, &[1, 2]),
        release: set(Role::Release, release),
        status: set(Role::Status, status),
    };
    body.sign(&[&key(1)]).unwrap()
}

pub fn image(version: &str, size: u32, boot_fails: bool) -> Vec<u8> {
    let mut spec = AppImageSpec::new(version);
    spec.size = size;
    spec.boot_fails = boot_fails;
    build_app_image(&spec).unwrap()
}

/// A release as the server holds it.
#[derive(Clone)]
pub struct Release {
    pub version: String,
    pub image: Vec<u8>,
    pub body: ManifestBody,
    pub manifest: Vec<u8>,
    pub digest: [u8; 32],
    pub hashlist: HashList,
}

pub fn release(version: &str, image: Vec<u8>, sequence: u64, chunk: u32) -> Release {
    release_with(version, image, sequence, chunk, |_| {}, &[10])
}

pub fn release_with(
    version: &str,
    image: Vec<u8>,
    sequence: u64,
    chunk: u32,
    edit: impl FnOnce(&mut ManifestBody),
    signers: &[u8],
) -> Release {
    use sha2::Digest;
    let hashlist = build_hashlist(&image, chunk).unwrap();
    let mut body = ManifestBody {
        vendor_id: VENDOR,
        class_id: CLASS,
        device_id: [0; 16],
        sequence,
        security_counter: 0,
        payload_format: PayloadFormat::RawEspApp,
        component: Component::Application,
        fw_version: FixedStr::new(version).unwrap(),
        project_name: FixedStr::new("ecowatt").unwrap(),
        issued_at: NOW - 100,
        expires_at: 0,
        image_size: image.len() as u64,
        chunk_size: chunk,
        chunk_count: hashlist.layout.chunk_count(),
        image_sha256: sha2::Sha256::digest(&image).into(),
        chunk_list_sha256: hashlist.chunk_list_sha256,
        precursor_sha256: [0; 32],
    };
    edit(&mut body);
    let keys: Vec<_> = signers.iter().map(|&s| key(s)).collect();
    let refs: Vec<_> = keys.iter().collect();
    let manifest = fota_protocol::v2::envelope::MANIFEST
        .sign(&body.encode().unwrap(), &refs)
        .unwrap();
    Release {
        version: version.into(),
        digest: manifest_digest(&manifest),
        image,
        body,
        manifest,
        hashlist,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assign {
    None,
    Install(usize),
    Rollback(u64),
}

/// The v2 server.
pub struct V2Server {
    pub releases: Vec<Release>,
    pub assign: Assign,
    pub generation: u32,
    pub poll_s: u32,
    pub server_time: u64,
    pub status_key: u8,
    /// (chunk index, how many more times to corrupt it)
    pub tamper: Option<(u32, u32)>,
    pub image_bytes_served: u64,
    pub hashlist_bytes_served: u64,
    pub events: Vec<(EventKind, ReasonCode, u64)>,
    pub checkins: Vec<CheckIn>,
    /// Transport failures to inject before answering (any request).
    pub fail_requests: u32,
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
    pub release: Option<(String, Vec<u8>, u64)>,
    pub nonce: u64,
    pub rollback: Option<String>,
    pub rollback_read: bool,
    /// (chunk, replacement byte flip) served with a valid MAC: an attacker holding the PSK.
    pub evil_chunk: Option<u32>,
    pub statuses: Vec<(String, String, String)>,
    pub bytes_served: u64,
    pub replay_last_manifest: bool,
    last_manifest: Option<Vec<u8>>,
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
pub struct Server {
    pub v2: V2Server,
    pub legacy: LegacyServer,
}

/// The device's network: a handle on the shared in-memory server.
#[derive(Clone, Default)]
pub struct Net(pub Arc<Mutex<Server>>);

impl Net {
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
    pub now: u64,
    pub rng: u64,
    pub healthy: bool,
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
}

// ------------------------------------------------------------------ flash and bootloader

pub const FLASH: usize = 0x40_0000;

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

/// What the test bootloader did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Booted {
    pub running: Running,
    pub boot_fails: bool,
    /// The selected entry went NEW → PENDING_VERIFY this boot.
    pub trial: bool,
}

fn flash_write_op(
    flash: &mut SimFlash,
    otadata: u32,
    op: &OtadataOp,
) -> Result<(), fota_flash_sim::Error> {
    let at = otadata + op.sector() as u32 * SECTOR_SIZE;
    flash.erase(at, at + SECTOR_SIZE)?;
    if let OtadataOp::Write { entry, .. } = op {
        flash.write(at, &entry.encode())?;
    }
    Ok(())
}

/// ESP-IDF's second-stage bootloader with rollback enabled, reduced to what the tests need:
/// selection and its otadata rewrites (as flash operations a cut can hit), load with
/// fallback and full image verification. `None` when power fails inside it.
pub fn bootloader(flash: &mut SimFlash) -> Option<Booted> {
    let bytes = flash.contents();
    let table = PartitionTable::parse(
        &bytes[TABLE_OFFSET as usize..TABLE_OFFSET as usize + TABLE_MAX_LEN],
        FLASH as u32,
    )
    .unwrap();
    let layout = table.boot_layout();
    let od = layout.otadata.unwrap();
    let s0: [u8; 32] = bytes[od.offset as usize..][..32].try_into().unwrap();
    let s1: [u8; 32] = bytes[od.offset as usize + 0x1000..][..32]
        .try_into()
        .unwrap();
    let before = Otadata::decode(&s0, &s1);
    let sel = select_boot([&s0, &s1], &layout, true);
    for op in sel.rewrites.iter() {
        flash_write_op(flash, od.offset, op).ok()?;
    }
    let selected = sel.start;
    for index in sel.try_order(&layout).iter() {
        let part = match index {
            BootIndex::Factory => layout.factory,
            BootIndex::Ota(n) => layout.ota[n as usize],
            _ => None,
        };
        let Some(part) = part else { continue };
        let data = &flash.contents()[part.offset as usize..(part.offset + part.size) as usize];
        let Ok(report) = verify(
            data,
            VerifyOptions {
                max_len: Some(part.size),
                ..VerifyOptions::default()
            },
        ) else {
            continue;
        };
        if let Some(op) = sel.after_boot(index) {
            flash_write_op(flash, od.offset, &op).ok()?;
        }
        let running = match index {
            BootIndex::Ota(n) => Running::Ota(n as u8),
            _ => Running::Factory,
        };
        let trial = Some(index) == selected
            && matches!(index, BootIndex::Ota(n) if before.entries.iter().any(|e| e.is_valid()
                && e.slot(layout.app_count) == Some(n) && e.state == OtaState::New));
        return Some(Booted {
            running,
            boot_fails: report.app_desc.is_some_and(|d| d.boot_fails()),
            trial,
        });
    }
    panic!("no bootable image: the device is bricked");
}

// ------------------------------------------------------------------ device runner

#[derive(Clone)]
pub struct DeviceSpec {
    pub legacy: bool,
    pub k: u8,
    pub chunk_buf: usize,
    pub io_buf: usize,
    pub max_polls: usize,
    pub chunk_interval_ms: u32,
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

pub struct Device {
    pub flash: Option<SimFlash>,
    pub spec: DeviceSpec,
    pub net: Net,
    pub boots: Vec<BootLog>,
}

/// What one boot did.
#[derive(Debug, Clone)]
pub struct BootLog {
    pub booted: Option<Booted>,
    pub startup: Option<StartupOutcome>,
    pub polls: Vec<PollOutcome>,
    pub status: Option<AgentStatus>,
    pub cut: bool,
    pub slept_ms: u64,
}

impl BootLog {
    pub fn last_poll(&self) -> Option<PollOutcome> {
        self.polls.last().copied()
    }
}

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
    pub fn new(flash: SimFlash, net: Net, spec: DeviceSpec) -> Self {
        Self {
            flash: Some(flash),
            spec,
            net,
            boots: Vec::new(),
        }
    }

    pub fn flash(&self) -> &SimFlash {
        self.flash.as_ref().unwrap()
    }

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

    pub fn otadata(&self) -> Otadata {
        let c = self.flash().contents();
        let od = flash_table(self.flash()).boot_layout().otadata.unwrap();
        Otadata::from_partition(&c[od.offset as usize..(od.offset + od.size) as usize]).unwrap()
    }

    /// State of the entry selecting `slot`.
    pub fn slot_state(&self, slot: u32) -> Option<OtaState> {
        self.otadata().state_of_slot(slot, 2)
    }

    pub fn slot_bytes(&self, slot: u8, len: usize) -> &[u8] {
        let r = app_region_in(self.flash(), Running::Ota(slot));
        &self.flash().contents()[r.start..r.start + len]
    }
}

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

pub fn app_region(r: Running) -> core::ops::Range<usize> {
    match r {
        Running::Ota(0) => 0x10000..0x150000,
        Running::Ota(1) => 0x150000..0x290000,
        other => panic!("no such app {other:?} in the EcoWatt table"),
    }
}

pub fn running_of(log: &BootLog) -> Running {
    log.booted.unwrap().running
}

/// Lets `flash` go through erase and program calls directly (for setting up states).
pub fn write_raw(flash: &mut SimFlash, at: u32, data: &[u8]) {
    flash.preload(at, data).unwrap();
}

pub fn _assert_norflash<F: NorFlash>() {}
