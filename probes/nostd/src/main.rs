//! Links the device-side crates into a freestanding binary and runs a few checks.
//!
//! Exit status 0 means every check passed; any other value names the first failed check.
#![no_std]
#![no_main]

use core::panic::PanicInfo;

use fota_protocol::codec::{Reader, Writer};
use fota_protocol::esp::{image, layouts, otadata, partition::PartitionTable};
use fota_protocol::v2::{CheckIn, CheckInAnswer, RootRecord};

#[panic_handler]
fn panic(_info: &PanicInfo<'_>) -> ! {
    exit(101)
}

// The host's prebuilt libcore references this symbol even with panic=abort.
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}

core::arch::global_asm!(
    ".globl _start",
    "_start:",
    "and rsp, -16",
    "call {entry}",
    entry = sym entry,
);

extern "C" fn entry() -> ! {
    exit(run())
}

fn exit(code: i32) -> ! {
    // SAFETY: exit_group never returns; the probe owns the whole process.
    unsafe {
        core::arch::asm!("syscall", in("rax") 231, in("rdi") code, options(noreturn));
    }
}

/// Each check returns its own non-zero code on failure.
fn run() -> i32 {
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
