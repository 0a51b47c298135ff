//! The emulator's integration tests, one binary (see the README for the long runs).

mod bootloader;
mod http;
