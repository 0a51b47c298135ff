//! Server tests: router `oneshot` tests per endpoint, store tests, and end-to-end tests on
//! 127.0.0.1:0. One binary (see `autotests = false`) so the crate links once.
#![allow(
    clippy::std_instead_of_core,
    clippy::alloc_instead_of_core,
    reason = "a host-only crate: std paths say what they are, and nothing here builds for no_std"
)]

mod common;
mod e2e;
mod legacy;
mod legacy_keys;
mod limits;
mod metrics;
mod openapi;
mod operator;
mod store;
mod telemetry;
mod tls;
mod v2;
