//! `fota`: one binary for operators, servers and emulated devices.
//!
//! Conventions shared by every subcommand: outputs go to `-o/--out`; listings and reports take
//! `--json` (machine output on stdout); logs go to stderr (`RUST_LOG` filters them); settings
//! come from flag > environment > config file.
//!
//! Exit status: 0 on success, 1 when the command failed or its verdict is negative (an invalid
//! image, a bad partition table), 2 on a usage error.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// Firmware-over-the-air updates for ESP32 fleets.
#[derive(Debug, Parser)]
#[command(name = "fota", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build and inspect ESP32 app images.
    #[command(subcommand)]
    Image(cmd::image::ImageCommand),
    /// Inspect whole-flash dumps (as `esptool read_flash` makes them).
    #[command(subcommand)]
    Flash(cmd::flash::FlashCommand),
    /// Build and show ESP-IDF partition tables.
    #[command(subcommand)]
    Partitions(cmd::partitions::PartitionsCommand),
    /// Run the update server, or back up its database.
    Server(cmd::server::ServerArgs),
    /// Make and manage signing keys.
    #[command(subcommand)]
    Keys(cmd::keys::KeysCommand),
}

fn main() -> ExitCode {
    // `fota … | head` must end quietly when the reader goes away, as Unix tools do, instead of
    // panicking on the first failed print.
    sigpipe::reset();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Image(c) => cmd::image::run(c),
        Command::Flash(c) => cmd::flash::run(c),
        Command::Partitions(c) => cmd::partitions::run(c),
        Command::Server(c) => cmd::server::run(c),
        Command::Keys(c) => cmd::keys::run(c),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
