//! `fota`: one binary for operators, servers and emulated devices.
//!
//! Conventions shared by every subcommand: outputs go to `-o/--out`; listings and reports take
//! `--json` (machine output on stdout); logs go to stderr (`RUST_LOG` filters them; coloured
//! only on a terminal and without `NO_COLOR`); settings come from flag > environment > config
//! file.
//!
//! Exit status: 0 on success, 1 when the command failed or its verdict is negative (an invalid
//! image, a bad partition table, a request the server refused), 2 on a usage error.
//!
//! Operator commands (`devices`, `release`, `assign`, `rollback`, `watch`, `legacy`, `tokens`,
//! `audit`) reach the server given by `--server`/`FOTA_SERVER` with the token of
//! `--token`/`FOTA_TOKEN`, else the `server`/`token` keys of the config file (`FOTA_CONFIG`, or
//! `~/.config/fota/config.toml`); the server's refusals are shown with its reason.
//!
//! Where this crate stands among the others, what each never does and which test suite is the
//! authority for what: [docs/ARCHITECTURE.md](../../../docs/ARCHITECTURE.md) in the repository.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

/// Firmware-over-the-air updates for ESP32 fleets.
#[derive(Debug, Parser)]
#[command(
    name = "fota",
    version,
    about,
    propagate_version = true,
    after_help = "Exit status: 0 success, 1 failure (or a negative verdict), 2 usage error."
)]
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
    /// The root records a server holds; publish a rotated or revoking one.
    Root(cmd::root::RootArgs),
    /// Provision devices and see what they run and do.
    Devices(cmd::devices::DevicesArgs),
    /// Sign, upload, list and show releases.
    Release(cmd::release::ReleaseArgs),
    /// Offer a release to devices or to a class.
    Assign(cmd::assign::AssignArgs),
    /// Order a device back to its previous image.
    Rollback(cmd::rollback::RollbackArgs),
    /// Live table of devices and their update progress.
    Watch(cmd::watch::WatchArgs),
    /// Operator side of the seed's legacy protocol.
    Legacy(cmd::legacy::LegacyArgs),
    /// Operator API tokens (admin).
    Tokens(cmd::tokens::TokensArgs),
    /// Who changed what, when.
    Audit(cmd::audit::AuditArgs),
    /// Run an emulated ESP32 device (or a fleet) against a server.
    Emulate(cmd::emulate::EmulateArgs),
    /// The whole system on one machine: server, releases, three emulated devices, faults.
    Demo(cmd::demo::DemoArgs),
}

fn main() -> ExitCode {
    // `fota … | head` must end quietly when the reader goes away, as Unix tools do, instead of
    // panicking on the first failed print.
    sigpipe::reset();
    let cli = Cli::parse();
    // The demo tells its own story; the server's and devices' info logs would drown it.
    let default_filter = if matches!(cli.command, Command::Demo(_)) {
        "warn"
    } else {
        "info"
    };
    // Colour only for a person at a terminal: logs piped to a file or another program must
    // not carry escape codes. NO_COLOR (https://no-color.org) turns it off there too.
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .init();
    let result = match cli.command {
        Command::Image(c) => cmd::image::run(c),
        Command::Flash(c) => cmd::flash::run(c),
        Command::Partitions(c) => cmd::partitions::run(c),
        Command::Server(c) => cmd::server::run(c),
        Command::Keys(c) => cmd::keys::run(c),
        Command::Root(c) => cmd::root::run(c),
        Command::Devices(c) => cmd::devices::run(c),
        Command::Release(c) => cmd::release::run(c),
        Command::Assign(c) => cmd::assign::run(c),
        Command::Rollback(c) => cmd::rollback::run(c),
        Command::Watch(c) => cmd::watch::run(c),
        Command::Legacy(c) => cmd::legacy::run(c),
        Command::Tokens(c) => cmd::tokens::run(c),
        Command::Audit(c) => cmd::audit::run(c),
        Command::Emulate(c) => cmd::emulate::run(c),
        Command::Demo(c) => cmd::demo::run(c),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;
    use clap::error::ErrorKind;

    use super::Cli;

    #[test]
    fn legacy_upload_help_says_what_legacy_mode_cannot_protect_against() {
        use clap::CommandFactory as _;
        let mut cli = Cli::command();
        let upload = cli
            .find_subcommand_mut("legacy")
            .and_then(|legacy| legacy.find_subcommand_mut("upload"))
            .unwrap();
        for help in [upload.render_long_help(), upload.render_help()] {
            let help = help.to_string();
            assert!(help.contains(crate::cmd::legacy::CANNOT_PROTECT), "{help}");
        }
    }

    #[test]
    fn no_command_takes_the_legacy_psk_itself_on_its_command_line() {
        // `ps` shows a command line to every user of the machine: the key comes from a file
        // or the environment instead.
        for argv in [
            ["fota", "server", "--legacy-psk", "fleet-key"].as_slice(),
            &[
                "fota",
                "emulate",
                "--id",
                "d",
                "--flash",
                "d.bin",
                "--legacy-psk",
                "fleet-key",
            ],
        ] {
            let err = Cli::try_parse_from(argv).err().unwrap();
            assert_eq!(err.kind(), ErrorKind::UnknownArgument, "{argv:?}");
        }
        for argv in [
            ["fota", "server", "--legacy-psk-file", "psk.txt"].as_slice(),
            &[
                "fota",
                "emulate",
                "--id",
                "d",
                "--flash",
                "d.bin",
                "--legacy-psk-file",
                "psk.txt",
            ],
        ] {
            assert!(Cli::try_parse_from(argv).is_ok(), "{argv:?}");
        }
    }
}
