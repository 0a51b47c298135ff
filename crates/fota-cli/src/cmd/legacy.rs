//! `fota legacy`: the seed's operator side, for devices still on the legacy protocol.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use fota_protocol::esp::image::{self, VerifyOptions};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::common::{self, ConnArgs, Explain as _};

/// What legacy mode cannot protect against, in one sentence: said by `fota legacy upload
/// --help` and by the server's start-up log when the legacy API is on (docs/SERVER.md says
/// more).
pub(crate) const CANNOT_PROTECT: &str = "Every legacy device trusts whoever holds the PSK: the \
    fleet shares one key and no signature covers the image, so its holder can forge chunks and \
    answers for all of them; move devices to v2.";

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
    /// Needs the legacy API on (--legacy-psk-file or FOTA_LEGACY_PSK on the server) and an
    /// operator token. The newest upload is what legacy devices are offered. The server does
    /// not check the ESP format (the seed did not); this command warns when the image would
    /// be refused by devices.
    #[command(disable_version_flag = true, after_help = CANNOT_PROTECT)]
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
            for warning in refusals(&firmware, &version) {
                eprintln!("warning: {warning}");
            }
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

/// Why devices would refuse this upload: they check the image format and version themselves;
/// better said now than after a fleet has downloaded it.
fn refusals(firmware: &[u8], version: &str) -> Vec<String> {
    let mut refusals = Vec::new();
    match image::verify(firmware, VerifyOptions::default()) {
        Err(e) => refusals.push(format!(
            "not a valid ESP32 app image ({e}); devices will download it and refuse it"
        )),
        Ok(report) => {
            let desc = report.app_desc.and_then(|d| d.version().map(str::to_owned));
            if let Some(v) = desc.filter(|v| v != version) {
                refusals.push(format!(
                    "the image's app descriptor says version {v:?}, not {version:?}"
                ));
            }
        }
    }
    if !fota_protocol::version::is_version(version) {
        refusals.push(format!(
            "{version:?} is no version (semver or dotted numbers): it orders below every \
             version, so devices running a versioned image refuse it as a downgrade"
        ));
    }
    refusals
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image_of(version: &str) -> Vec<u8> {
        let spec = fota_protocol::esp::build::AppImageSpec::new(version);
        fota_protocol::esp::build::build_app_image(&spec).unwrap()
    }

    #[test]
    fn an_upload_devices_would_refuse_is_warned_about() {
        assert!(refusals(&image_of("1.0.7-rc1"), "1.0.7-rc1").is_empty());
        let not_an_image = refusals(b"not an image", "1.0.7");
        assert_eq!(not_an_image.len(), 1);
        assert!(not_an_image[0].contains("not a valid ESP32 app image"));
        let other_version = refusals(&image_of("1.0.7"), "1.0.8");
        assert_eq!(
            other_version,
            ["the image's app descriptor says version \"1.0.7\", not \"1.0.8\""]
        );
        // The devices' downgrade check puts a string that is no version below every version.
        let nightly = refusals(&image_of("nightly"), "nightly");
        assert_eq!(nightly.len(), 1, "{nightly:?}");
        assert!(nightly[0].contains("downgrade"), "{nightly:?}");
    }
}
