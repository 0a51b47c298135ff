//! The emulator's integration tests, one binary (see the README for the long runs).

mod bootloader;
mod http;
mod legacy_keys;
mod net_faults;
mod power_cut;
mod refusals;
mod rotation;
mod seed_guide;
mod threats;
mod tls;
