//! Links the device-side crates into a freestanding binary and runs a few checks.
//!
//! Exit status 0 means every check passed; any other value names the first failed check.
#![no_std]
#![no_main]

use core::panic::PanicInfo;

use fota_protocol::codec::{Reader, Writer};

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
    0
}
