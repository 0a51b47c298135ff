//! Proves the agent's update path allocates nothing: a counting global allocator counts every
//! allocation made while the agent runs (boot, startup, a poll that downloads, verifies and
//! stages a whole image). The in-memory server behind the transport allocates freely, so
//! counting pauses while it answers. Alone in its binary so no other test's allocations mix in.
#![allow(
    unsafe_code,
    reason = "a global allocator is unsafe by definition; this file is the only place the package allows it"
)]

use core::alloc::{GlobalAlloc, Layout};
use core::cell::Cell;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::task::{Context, Poll, Waker};
use std::alloc::System;

use embedded_storage::nor_flash::{ErrorType, NorFlash, ReadNorFlash};
use fota_agent::{
    Agent, BootInfo, Buffers, PollOutcome, StartupOutcome, Transport, TransportError,
};
use fota_flash_sim::SimFlash;
use fota_testkit::agent::*;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Counting is off while the guard lives (the test's own server and flash model).
struct Pause(bool);

impl Pause {
    fn new() -> Self {
        Self(COUNTING.with(|c| c.replace(false)))
    }
}

impl Drop for Pause {
    fn drop(&mut self) {
        COUNTING.with(|c| c.set(self.0));
    }
}

struct Quiet(Net);

impl Transport for Quiet {
    async fn checkin(&mut self, body: &[u8], resp: &mut [u8]) -> Result<usize, TransportError> {
        let _p = Pause::new();
        self.0.checkin(body, resp).await
    }
    async fn get_range(
        &mut self,
        url: &str,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, TransportError> {
        let _p = Pause::new();
        self.0.get_range(url, offset, buf).await
    }
    async fn event(&mut self, body: &[u8]) -> Result<(), TransportError> {
        let _p = Pause::new();
        self.0.event(body).await
    }
    async fn legacy_get(
        &mut self,
        path_and_query: &str,
        resp: &mut [u8],
    ) -> Result<usize, TransportError> {
        let _p = Pause::new();
        self.0.legacy_get(path_and_query, resp).await
    }
    async fn legacy_post(&mut self, path: &str, body: &[u8]) -> Result<(), TransportError> {
        let _p = Pause::new();
        self.0.legacy_post(path, body).await
    }
}

/// The flash model is the test's; its bookkeeping is not the agent's.
struct QuietFlash(SimFlash);

impl ErrorType for QuietFlash {
    type Error = fota_flash_sim::Error;
}

impl ReadNorFlash for QuietFlash {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let _p = Pause::new();
        self.0.read(offset, bytes)
    }
    fn capacity(&self) -> usize {
        self.0.capacity()
    }
}

impl NorFlash for QuietFlash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = 4096;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        let _p = Pause::new();
        self.0.erase(from, to)
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let _p = Pause::new();
        self.0.write(offset, bytes)
    }
}

/// A busy-polling executor that allocates nothing (the test transport never pends).
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = core::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn run(legacy: bool) -> usize {
    let old = image("1.0.5", 0x8000, false);
    let new = image("1.0.6", 0xC000, false);
    let net = Net::default();
    net.with(|s| {
        s.v2.releases.push(release("1.0.6", new.clone(), 2, 4096));
        s.v2.assign = Assign::Install(0);
        s.legacy.release = Some(("1.0.6".into(), new.clone(), 4096));
    });
    let mut flash = provisioned_flash(&table(), &old);
    let booted = bootloader(&mut flash).unwrap();
    let spec = DeviceSpec {
        legacy,
        ..DeviceSpec::default()
    };
    let (mut chunk, mut io, mut page) = (vec![0u8; 16384], vec![0u8; 22 * 1024], vec![0u8; 4096]);
    let plat = Plat {
        now: 0,
        rng: 7,
        healthy: true,
        slept: 0,
    };
    let cfg = config(&spec);
    ALLOCATIONS.store(0, Ordering::SeqCst);
    COUNTING.with(|c| c.set(true));
    let bufs = Buffers {
        chunk: &mut chunk,
        io: &mut io,
        page: &mut page,
    };
    let agent = Agent::boot(
        QuietFlash(flash),
        Quiet(net.clone()),
        plat,
        cfg,
        BootInfo {
            running: booted.running,
        },
        bufs,
    );
    let Ok(mut agent) = agent else {
        panic!("boot failed")
    };
    let startup = block_on(agent.startup());
    let outcome = block_on(agent.poll());
    COUNTING.with(|c| c.set(false));
    assert_eq!(startup, StartupOutcome::Ready);
    assert_eq!(outcome, PollOutcome::RebootRequired);
    let (flash, _, _) = agent.into_parts();
    assert_eq!(
        &flash.0.contents()[0x150000..0x150000 + new.len()],
        &new[..]
    );
    ALLOCATIONS.load(Ordering::SeqCst)
}

#[test]
fn the_update_path_allocates_nothing() {
    // The counter works: an allocation while counting is seen.
    ALLOCATIONS.store(0, Ordering::SeqCst);
    COUNTING.with(|c| c.set(true));
    let v: Vec<u8> = Vec::with_capacity(16);
    COUNTING.with(|c| c.set(false));
    drop(v);
    assert_eq!(ALLOCATIONS.load(Ordering::SeqCst), 1);

    assert_eq!(run(false), 0, "v2 update path allocated");
    assert_eq!(run(true), 0, "legacy update path allocated");
}
