//! RAM: what the agent takes, measured, against DESIGN §3's budget.
//!
//! The agent never allocates. Its RAM is the [`Agent`](crate::Agent) value, the future of the
//! call in progress ([`Agent::startup`](crate::Agent::startup) or
//! [`Agent::poll`](crate::Agent::poll)), the stack of the synchronous steps inside them, and
//! the caller's [`Buffers`](crate::Buffers). The numbers below are `size_of` on x86-64 with the
//! emulator's types (`tests/ram.rs` measures and checks them; a 32-bit target is smaller).
//!
//! See `tests/ram.rs` for the measurement.
