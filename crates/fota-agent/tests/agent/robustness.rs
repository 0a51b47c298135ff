//! Nothing from the network or the flash makes the agent panic: random answers, random
//! ranges, random JSON, random journal and otadata sectors.

use fota_agent::{Agent, BootInfo, Buffers, Running, Transport, TransportError};
use fota_flash_sim::SimFlash;
use fota_testkit::agent::*;
use proptest::prelude::*;

/// A transport that answers with whatever bytes it was given, cut to the caller's buffer.
#[derive(Clone)]
struct Garbage {
    answers: Vec<Vec<u8>>,
    next: usize,
}

impl Garbage {
    fn take(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        let Some(a) = self.answers.get(self.next % self.answers.len().max(1)) else {
            return Err(TransportError::Connect);
        };
        self.next += 1;
        let n = a.len().min(buf.len());
        buf[..n].copy_from_slice(&a[..n]);
        Ok(n)
    }
}

impl Transport for Garbage {
    async fn checkin(&mut self, _: &[u8], resp: &mut [u8]) -> Result<usize, TransportError> {
        self.take(resp)
    }
    async fn get_range(
        &mut self,
        _: &str,
        _: u64,
        buf: &mut [u8],
    ) -> Result<usize, TransportError> {
        self.take(buf)
    }
    async fn event(&mut self, _: &[u8]) -> Result<(), TransportError> {
        Ok(())
    }
    async fn legacy_get(&mut self, _: &str, resp: &mut [u8]) -> Result<usize, TransportError> {
        self.take(resp)
    }
    async fn legacy_post(&mut self, _: &str, _: &[u8]) -> Result<(), TransportError> {
        Ok(())
    }
}

fn run(flash: SimFlash, net: Garbage, legacy: bool) {
    let spec = DeviceSpec {
        legacy,
        ..DeviceSpec::default()
    };
    let (mut chunk, mut io, mut page) = (vec![0u8; 8192], vec![0u8; 12000], vec![0u8; 4096]);
    let bufs = Buffers {
        chunk: &mut chunk,
        io: &mut io,
        page: &mut page,
    };
    let plat = Plat {
        now: 0,
        rng: 3,
        healthy: true,
        slept: 0,
    };
    if let Ok(mut agent) = Agent::boot(
        flash,
        net,
        plat,
        config(&spec),
        BootInfo {
            running: Running::Ota(0),
        },
        bufs,
    ) {
        let _ = futures_executor::block_on(agent.startup());
        for _ in 0..2 {
            let _ = futures_executor::block_on(agent.poll());
        }
    }
}

fn base_flash() -> SimFlash {
    provisioned_flash(&table(), &image("1.0.5", 0x4000, false))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_answers_never_panic(answers in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..600), 1..6), legacy in any::<bool>()) {
        run(base_flash(), Garbage { answers, next: 0 }, legacy);
    }

    #[test]
    fn mutated_real_answers_never_panic(flips in proptest::collection::vec((0usize..4000, any::<u8>()), 1..8)) {
        // A real check-in answer with a manifest, bytes flipped.
        let net = Net::default();
        net.with(|s| {
            s.v2.releases.push(release("1.0.6", image("1.0.6", 0x4000, false), 2, 4096));
            s.v2.assign = Assign::Install(0);
        });
        let mut n = net.clone();
        let mut resp = vec![0u8; 8192];
        let len = futures_executor::block_on(n.checkin(&fota_protocol::v2::CheckIn {
            legacy_latched_off: false, device_id: DEVICE, nonce: [0; 16], root_version: 1,
            installed_sequence: 0, installed_security_counter: 0,
            running_fw_version: fota_protocol::v2::FixedStr::new("1.0.5").unwrap(),
            running_image_sha256: [0; 32], running_slot: 0, running_ota_state: 2,
            agent_state: fota_protocol::v2::AgentState::Idle, last_result: fota_protocol::v2::ReasonCode::None,
            pending_bytes_done: 0, pending_bytes_total: 0, pending_manifest_digest: [0; 32],
            rollback_order_id: 0, boot_count: 0, telemetry: None,
        }.to_vec().unwrap(), &mut resp)).unwrap();
        resp.truncate(len);
        for (at, x) in flips {
            let i = at % resp.len();
            resp[i] ^= x;
        }
        run(base_flash(), Garbage { answers: vec![resp], next: 0 }, false);
    }

    #[test]
    fn random_journal_and_otadata_never_panic(
        journal in proptest::collection::vec(any::<u8>(), 0x2000),
        otadata in proptest::collection::vec(any::<u8>(), 64),
        keep_header in any::<bool>(),
    ) {
        let mut flash = base_flash();
        let mut j = journal.clone();
        if keep_header {
            // Plausible headers, so the CRC and body decoders are reached.
            j[..4].copy_from_slice(b"FAJ1");
            j[0x1000..0x1004].copy_from_slice(b"FAJ1");
        }
        flash.preload(0x3FE000, &j).unwrap();
        flash.preload(0xE000, &otadata[..32]).unwrap();
        flash.preload(0xF000, &otadata[32..]).unwrap();
        let net = Net::default();
        net.with(|s| {
            s.v2.releases.push(release("1.0.6", image("1.0.6", 0x4000, false), 2, 4096));
            s.v2.assign = Assign::Install(0);
        });
        let spec = DeviceSpec::default();
        let (mut chunk, mut io, mut page) = (vec![0u8; 8192], vec![0u8; 2048], vec![0u8; 4096]);
        let bufs = Buffers { chunk: &mut chunk, io: &mut io, page: &mut page };
        let plat = Plat { now: 0, rng: 3, healthy: true, slept: 0 };
        if let Ok(mut agent) = Agent::boot(flash, net, plat, config(&spec), BootInfo { running: Running::Ota(0) }, bufs) {
            let _ = futures_executor::block_on(agent.startup());
            let _ = futures_executor::block_on(agent.poll());
        }
    }
}
