//! Links the device-side crates into a freestanding binary and runs a few checks.
//!
//! Exit status 0 means every check passed; any other value names the first failed check.
#![no_std]
#![no_main]

use core::panic::PanicInfo;

use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use fota_agent::{
    Agent, BootInfo, Buffers, DeviceConfig, Mode, Platform, PollOutcome, Running, StartupOutcome,
    Transport, TransportError,
};
use fota_protocol::codec::{Reader, Writer};
use fota_protocol::esp::partition::{
    AppSubtype, DataSubtype, Partition, PartitionKind, TABLE_OFFSET,
};
use fota_protocol::esp::{image, layouts, otadata, partition::PartitionTable};
use fota_protocol::v2::{CheckIn, CheckInAnswer, RootRecord};

#[panic_handler]
fn panic(_info: &PanicInfo<'_>) -> ! {
    exit(101)
}

// The host's prebuilt libcore references this symbol even with panic=abort.
#[cfg(target_arch = "x86_64")]
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}

#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".globl _start",
    "_start:",
    "and rsp, -16",
    "call {entry}",
    entry = sym entry,
);

// On the embedded target (riscv32imc-unknown-none-elf in CI) the probe is linked, not run:
// the link is the check, with nothing to provide std or an allocator.
#[cfg(not(target_arch = "x86_64"))]
#[unsafe(no_mangle)]
extern "C" fn _start() -> ! {
    entry()
}

extern "C" fn entry() -> ! {
    exit(run())
}

#[cfg(target_arch = "x86_64")]
fn exit(code: i32) -> ! {
    // SAFETY: exit_group never returns; the probe owns the whole process.
    unsafe {
        core::arch::asm!("syscall", in("rax") 231, in("rdi") code, options(noreturn));
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn exit(_code: i32) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

/// A small flash in RAM: table at 0x8000, otadata, two 8 KiB slots, the journal in the last two
/// sectors (no partition covers them).
const FLASH_SIZE: usize = 0x11000;

struct RamFlash {
    mem: [u8; FLASH_SIZE],
}

#[derive(Debug)]
struct FlashError(NorFlashErrorKind);

impl NorFlashError for FlashError {
    fn kind(&self) -> NorFlashErrorKind {
        self.0
    }
}

impl ErrorType for RamFlash {
    type Error = FlashError;
}

impl RamFlash {
    fn range(&mut self, offset: u32, len: usize) -> Result<&mut [u8], FlashError> {
        let start = offset as usize;
        self.mem
            .get_mut(
                start
                    ..start
                        .checked_add(len)
                        .ok_or(FlashError(NorFlashErrorKind::OutOfBounds))?,
            )
            .ok_or(FlashError(NorFlashErrorKind::OutOfBounds))
    }
}

impl ReadNorFlash for RamFlash {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        bytes.copy_from_slice(self.range(offset, bytes.len())?);
        Ok(())
    }
    fn capacity(&self) -> usize {
        FLASH_SIZE
    }
}

impl NorFlash for RamFlash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = 4096;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        let len = to
            .checked_sub(from)
            .ok_or(FlashError(NorFlashErrorKind::OutOfBounds))?;
        self.range(from, len as usize)?.fill(0xFF);
        Ok(())
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        for (cell, b) in self.range(offset, bytes.len())?.iter_mut().zip(bytes) {
            *cell &= *b;
        }
        Ok(())
    }
}

/// A network that is down.
struct NoNet;

impl Transport for NoNet {
    async fn checkin(&mut self, _: &[u8], _: &mut [u8]) -> Result<usize, TransportError> {
        Err(TransportError::Connect)
    }
    async fn get_range(&mut self, _: &str, _: u64, _: &mut [u8]) -> Result<usize, TransportError> {
        Err(TransportError::Connect)
    }
    async fn event(&mut self, _: &[u8]) -> Result<(), TransportError> {
        Err(TransportError::Connect)
    }
    async fn legacy_get(&mut self, _: &str, _: &mut [u8]) -> Result<usize, TransportError> {
        Err(TransportError::Connect)
    }
    async fn legacy_post(&mut self, _: &str, _: &[u8]) -> Result<(), TransportError> {
        Err(TransportError::Connect)
    }
}

struct Plat;

impl Platform for Plat {
    fn now_ms(&mut self) -> u64 {
        0
    }
    async fn sleep_ms(&mut self, _: u64) {}
    fn fill_random(&mut self, buf: &mut [u8]) {
        buf.fill(0x5A);
    }
    fn self_test(&mut self) -> bool {
        true
    }
    // Exercises the attribute section without a heap, as firmware fills it.
    fn telemetry(&mut self, telemetry: &mut fota_protocol::v2::checkin::Telemetry) {
        telemetry.reset_reason = 1;
        let _ = telemetry.attributes.push("probe", "nostd");
    }
}

/// A busy-polling executor for futures that never wait on anything external.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// Boots an agent over the RAM flash and runs startup and one poll against a dead network:
/// the poll must come back as a retry. Linking this proves the agent needs neither std nor
/// alloc.
fn agent_check() -> i32 {
    let mut flash = RamFlash {
        mem: [0xFF; FLASH_SIZE],
    };
    let rows = [
        Partition::new(
            "otadata",
            PartitionKind::Data(DataSubtype::Ota),
            0x9000,
            0x2000,
        ),
        Partition::new(
            "app0",
            PartitionKind::App(AppSubtype::Ota(0)),
            0xB000,
            0x2000,
        ),
        Partition::new(
            "app1",
            PartitionKind::App(AppSubtype::Ota(1)),
            0xD000,
            0x2000,
        ),
    ];
    let mut table = PartitionTable::new();
    for row in rows {
        let Some(row) = row else { return 110 };
        if table.push(row).is_err() {
            return 111;
        }
    }
    let Ok(encoded) = table.encode(true) else {
        return 112;
    };
    let at = TABLE_OFFSET as usize;
    flash.mem[at..at + encoded.len()].copy_from_slice(&encoded);
    let mut chunk = [0u8; 4096];
    let mut io = [0u8; 1024];
    let mut page = [0u8; 4096];
    let bufs = Buffers {
        chunk: &mut chunk,
        io: &mut io,
        page: &mut page,
    };
    let mut config = DeviceConfig::new([1; 16], "probe", [2; 16], [3; 16], &[]);
    // Opaque to the optimiser, so the v2 paths are linked as well as the legacy ones.
    config.mode = core::hint::black_box(Mode::Legacy { psk: b"probe-key" });
    config.max_retries = 1;
    let boot = BootInfo {
        running: Running::Ota(0),
    };
    let Ok(mut agent) = Agent::boot(flash, NoNet, Plat, config, boot, bufs) else {
        return 113;
    };
    if block_on(agent.startup()) != StartupOutcome::Ready {
        return 114;
    }
    match block_on(agent.poll()) {
        PollOutcome::Retry { .. } => 0,
        _ => 115,
    }
}

/// Each check returns its own non-zero code on failure.
fn run() -> i32 {
    let code = agent_check();
    if code != 0 {
        return code;
    }
    let mut buf = [0u8; 8];
    let mut w = Writer::new(&mut buf);
    if w.u32(0x4743_989a).is_err() {
        return 1;
    }
    if Reader::new(&buf[..4]).u32() != Ok(0x4743_989a) {
        return 2;
    }
    // The otadata CRC's known answer (seq 1).
    if otadata::seq_crc(1) != 0x4743_989a {
        return 3;
    }
    // The EcoWatt table survives an encode/parse round trip without std or alloc.
    let table = layouts::ecowatt();
    let Ok(bytes) = table.encode(true) else {
        return 4;
    };
    let Ok(parsed) = PartitionTable::parse(&bytes, 4 << 20) else {
        return 4;
    };
    if parsed.boot_layout().app_count != 2 {
        return 5;
    }
    // Blank otadata: the bootloader boots ota_0.
    let blank = [0xffu8; 32];
    let selection = otadata::select_boot([&blank, &blank], &parsed.boot_layout(), true);
    if selection.start.is_none() {
        return 6;
    }
    // The streaming image verifier rejects garbage with a typed error, never a panic.
    let mut verifier = image::ImageVerifier::new(image::VerifyOptions::default());
    let _ = verifier.update(&[0xe9, 1, 2, 3]);
    if verifier.finish().is_ok() {
        return 7;
    }
    // v2 parsers reject truncated input.
    if CheckIn::decode(&[0; 8]).is_ok() || CheckInAnswer::decode(&[0; 8]).is_ok() {
        return 8;
    }
    if RootRecord::verify_initial(&[0; 64]).is_ok() {
        return 9;
    }
    0
}
