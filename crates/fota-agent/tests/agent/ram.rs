//! RAM: size of the agent and of its futures against DESIGN §3's budget, and `Send`-ness of
//! the futures when the parts are `Send` (so `tokio::spawn` works).

use fota_agent::{Agent, BootInfo, Buffers, Running};
use fota_testkit::agent::*;

fn assert_send<T: Send>(_: &T) {}

#[test]
fn agent_and_futures_fit_the_budget_and_are_send() {
    let old = image("1.0.5", 0x8000, false);
    let flash = provisioned_flash(&table(), &old);
    let spec = DeviceSpec::default();
    let (mut chunk, mut io, mut page) = (vec![0u8; 4096], vec![0u8; 512], vec![0u8; 4096]);
    let bufs = Buffers {
        chunk: &mut chunk,
        io: &mut io,
        page: &mut page,
    };
    let plat = Plat {
        now: 0,
        rng: 1,
        healthy: true,
        slept: 0,
    };
    let mut agent = Agent::boot(
        flash,
        Net::default(),
        plat,
        config(&spec),
        BootInfo {
            running: Running::Ota(0),
        },
        bufs,
    )
    .map_err(|f| f.error)
    .unwrap();
    let agent_size = size_of_val(&agent);
    let startup = agent.startup();
    assert_send(&startup);
    let startup_size = size_of_val(&startup);
    drop(startup);
    let poll = agent.poll();
    assert_send(&poll);
    let poll_size = size_of_val(&poll);
    drop(poll);
    // The agent value holds the SimFlash handle (a host-side struct), the test transport and
    // platform; subtract them to get the agent's own state.
    let parts = size_of::<fota_flash_sim::SimFlash>() + size_of::<Net>() + size_of::<Plat>();
    let own = agent_size - parts;
    let overhead = own + startup_size.max(poll_size);
    println!("journal body {} B", fota_agent::journal::BODY_LEN);
    println!(
        "agent {agent_size} B (own state {own} B), startup future {startup_size} B, poll future {poll_size} B, overhead {overhead} B"
    );
    // DESIGN §3: v2 ≤ chunk + one 4 KiB page + 8 KiB. The caller's io buffer (512 B for v2)
    // and the agent's own RAM must fit the 8 KiB.
    assert!(
        overhead + 512 <= 8 * 1024,
        "agent + futures + io = {} B",
        overhead + 512
    );
}
