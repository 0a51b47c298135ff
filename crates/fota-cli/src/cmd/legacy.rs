//! `fota legacy`: the seed's operator side, for devices still on the legacy protocol.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use fota_protocol::esp::image::{self, VerifyOptions};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::common::{self, ConnArgs, Explain as _};

#[derive(Debug, clap::Args)]
pub(crate) struct LegacyArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    command: LegacyCommand,
}

#[derive(Debug, clap::Subcommand)]
enum LegacyCommand {
    /// Upload firmware for legacy devices, as the seed's `quick_upload` did: JSON with the
    /// image in base64, its size and SHA-256, and the chunk size devices will fetch.
    ///
    /// Needs the legacy API on (FOTA_LEGACY_PSK on the server) and an operator token. The
    /// newest upload is what legacy devices are offered. The server does not check the ESP
    /// format (the seed did not); this command warns when the image would be refused by
    /// devices.
    #[command(disable_version_flag = true)]
    Upload {
        /// The firmware file.
        image: PathBuf,
        /// Version string devices compare with what they run.
        #[arg(long, value_name = "V")]
        version: String,
        /// Bytes per chunk devices fetch (decimal, 0x hex, or K suffix).
        #[arg(long, default_value = "16384", value_parser = super::parse_bytes)]
        chunk_size: u32,
        /// The server's answer {success, total_chunks} as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(args: LegacyArgs) -> anyhow::Result<ExitCode> {
    let client = args.conn.client()?;
    match args.command {
        LegacyCommand::Upload {
            image: path,
            version,
            chunk_size,
            json,
        } => {
            anyhow::ensure!(chunk_size >= 1, "--chunk-size must be at least 1");
            let firmware =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            warn_if_devices_refuse(&firmware, &version);
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{msg} {bytes} {bytes_per_sec}")
                    .expect("static template"),
            );
            bar.set_message("uploading");
            let answer = client
                .legacy_upload(&version, &firmware, u64::from(chunk_size), &mut |n| {
                    bar.inc(n)
                })
                .explained(&client);
            bar.finish_and_clear();
            let answer = answer?;
            if json {
                common::print_json(&answer)?;
            } else {
                println!(
                    "uploaded {version} ({} bytes, chunk size {chunk_size}): total_chunks {}",
                    firmware.len(),
                    answer.total_chunks
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Devices check the image format and version themselves; say so now rather than after a
/// fleet has downloaded it.
fn warn_if_devices_refuse(firmware: &[u8], version: &str) {
    match image::verify(firmware, VerifyOptions::default()) {
        Err(e) => eprintln!(
            "warning: not a valid ESP32 app image ({e}); devices will download it and refuse it"
        ),
        Ok(report) => {
            let desc = report.app_desc.and_then(|d| d.version().map(str::to_owned));
            if let Some(v) = desc.filter(|v| v != version) {
                eprintln!(
                    "warning: the image's app descriptor says version {v:?}, not {version:?}"
                );
            }
        }
    }
}
