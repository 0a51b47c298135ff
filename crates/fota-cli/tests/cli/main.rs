//! The `fota` binary end to end, as a user and a device see it: `demo` (and the device and
//! server an earlier demo kept), the ESP32 format commands (`image`, `partitions`, `flash`), the
//! same images checked against esptool as an outside oracle, the operator commands against a
//! real `fota server`, `fota server` as a process (signals, restarts, `kill -9`, backups), and
//! all of it over TLS (`tls`).
//!
//! One test binary on purpose, as ripgrep does: each integration test file is a binary of its
//! own to link, and linking is most of what building these tests costs. Cargo's `autotests` is
//! off for that reason; a new test goes in one of these modules (or a new one declared here),
//! not in a new file directly under `tests/`.

mod kit;

mod demo;
mod esp_commands;
mod esptool_oracle;
mod operator;
mod server_process;
mod tls;
