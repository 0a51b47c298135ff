//! `fota legacy`: the seed's operator side, for devices still on the legacy protocol.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use fota_protocol::esp::image::{self, VerifyOptions};
use fota_protocol::legacy::DeviceKey;
use fota_protocol::legacy::mac::Hex64;
use fota_server::config::LEGACY_PSK_ENV;
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
    /// Print the legacy key of device ID for a server run with `--legacy-per-device-keys`
    /// (config `legacy.per_device_keys`): HKDF-SHA256 of the fleet's master PSK (no salt, info
    /// "fota-legacy" followed by the id's bytes), 32 bytes.
    ///
    /// Printed as `hex:` and 64 hex digits, the form FOTA_LEGACY_PSK takes a binary key in, so
    /// `FOTA_LEGACY_PSK=$(fota legacy device-key ID) fota emulate --id ID ...` runs that
    /// device. Build it into that device's firmware only: whoever reads it can forge answers
    /// for that one device, while the master forges them for every device. No server is
    /// contacted.
    DeviceKey {
        /// The device id, exactly as the device sends it as `device_id`.
        id: String,
        /// File holding the master PSK: its raw bytes, one trailing newline dropped [else
        /// FOTA_LEGACY_PSK, the key itself (its UTF-8 bytes, or `hex:…`)]. Never a flag: a
        /// command line is visible to every user of the machine.
        #[arg(long, value_name = "FILE")]
        legacy_psk_file: Option<PathBuf>,
    },
}

pub(crate) fn run(args: LegacyArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        LegacyCommand::DeviceKey {
            id,
            legacy_psk_file,
        } => {
            let master = master_psk(
                legacy_psk_file.as_deref(),
                common::env_setting(LEGACY_PSK_ENV),
            )?;
            println!("{}", device_key_text(&master, &id)?);
        }
        LegacyCommand::Upload {
            image: path,
            version,
            chunk_size,
            json,
        } => {
            let client = args.conn.client()?;
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

/// The master PSK: the file's raw bytes (one trailing newline dropped), else `env`, the value
/// of `FOTA_LEGACY_PSK`, read as the server reads it.
fn master_psk(file: Option<&std::path::Path>, env: Option<String>) -> anyhow::Result<Vec<u8>> {
    match (file, env) {
        (Some(path), _) => {
            let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            fota_protocol::legacy::psk_from_file(&raw)
                .with_context(|| format!("--legacy-psk-file {}", path.display()))
        }
        (None, Some(value)) => {
            fota_protocol::legacy::psk_from_value(&value).context(LEGACY_PSK_ENV)
        }
        (None, None) => {
            anyhow::bail!("give the master PSK: --legacy-psk-file FILE or {LEGACY_PSK_ENV}")
        }
    }
}

/// `hex:` and the 64 digits of device `id`'s key under `master`.
fn device_key_text(master: &[u8], id: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        fota_api::name::is_valid(id),
        "device id {id:?}: must be {} (the server refuses other ids)",
        fota_api::name::RULE
    );
    let key = DeviceKey::derive(master, id);
    Ok(format!("hex:{}", Hex64::new(key.as_bytes())))
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
    fn a_device_key_is_printed_as_the_environment_takes_it_and_works_as_a_psk() {
        let master = b"your-32-byte-secret-key-here!!";
        let text = device_key_text(master, "EcoWatt001").unwrap();
        // RFC 5869 computed independently (fota-protocol's known answer).
        assert_eq!(
            text,
            "hex:32f639ae827f7754080b5d10104b94af885121da5a67fb7f2fef29ae70624a33"
        );
        let as_psk = fota_protocol::legacy::psk_from_value(&text).unwrap();
        assert_eq!(
            as_psk,
            DeviceKey::derive(master, "EcoWatt001").as_bytes().to_vec()
        );
        assert!(device_key_text(master, "no spaces").is_err());
    }

    #[test]
    fn the_master_psk_comes_from_the_file_before_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("psk");
        std::fs::write(&file, "from-file\n").unwrap();
        let env = Some("from-env".to_owned());
        assert_eq!(master_psk(Some(&file), env.clone()).unwrap(), b"from-file");
        assert_eq!(master_psk(None, env).unwrap(), b"from-env");
        assert_eq!(
            master_psk(None, Some("hex:0aff".into())).unwrap(),
            [0x0a, 0xff]
        );
        let err = master_psk(None, None).unwrap_err().to_string();
        assert!(
            err.contains("--legacy-psk-file") && err.contains(LEGACY_PSK_ENV),
            "{err}"
        );
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
