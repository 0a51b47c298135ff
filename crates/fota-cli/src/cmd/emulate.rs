//! `fota emulate`: run an emulated EcoWatt device (or a fleet) against a server.

use core::time::Duration;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use fota_api::Provisioning;
use fota_emulator::device::{DeviceOptions, Protocol, Until};
use fota_emulator::flash_file::{self, Layout};
use fota_emulator::http::Timeouts;
use fota_emulator::netfault::NetFaultSpec;
use fota_emulator::report;
use fota_emulator::session::{self, FleetSpec, SessionSpec};
use fota_server::config::LEGACY_PSK_ENV;

use super::common;

/// Exit status: 0 the `--until` goal was reached; 1 an argument or file was unusable (an
/// `--initial-image` that is no ESP32 app image among them); 2 a usage error; 3 the power was
/// cut (`--power-cut-after-ops`; the flash file holds what the cut left: run again to
/// continue); 4 no bootable image (bricked); 5 the device could not start or gave up; 6 the
/// server refused the device's credential (HTTP 401: unknown, rotated or revoked). A fleet
/// exits with the worst status of its devices.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 goal reached, 1 unusable argument or file, 2 usage, \
3 power cut, 4 bricked, 5 failed, 6 credential refused (HTTP 401: rotated or revoked; \
use the current provisioning file).\n\
The --net-fault grammar and the --report json keys are in crates/fota-emulator/README.md."
)]
pub(crate) struct EmulateArgs {
    /// Server base URL [else FOTA_SERVER, else http://127.0.0.1:8080].
    // The environment is read in `run`, not by clap, which would count it as given on the
    // command line (see `common::ConnArgs`).
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// For an https:// server: trust the CA certificates in FILE (PEM) besides the platform's
    /// roots [else FOTA_CA_FILE].
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Device id (`EcoWatt001`); with --count, the prefix of the fleet's names.
    #[arg(long)]
    id: String,
    /// The flash file: the device. Created from --initial-image when it does not exist.
    #[arg(long, required_unless_present = "count")]
    flash: Option<PathBuf>,
    /// Provisioning file from `fota devices add` (v2).
    #[arg(long, value_name = "ID.json", conflicts_with = "legacy_psk_file")]
    credential: Option<PathBuf>,
    /// Speak the seed's legacy protocol with the pre-shared key in FILE (its raw bytes, one
    /// trailing newline dropped) [else FOTA_LEGACY_PSK, the key itself (its UTF-8 bytes, or
    /// `hex:…` for a binary key), when no --credential is given]. The key is never a flag: a
    /// command line is visible to every user of the machine.
    #[arg(long, value_name = "FILE")]
    legacy_psk_file: Option<PathBuf>,
    /// Legacy firmware built for a server run with --legacy-per-device-keys: the key given is
    /// the fleet's master, and the device (each device of a fleet) verifies answers with its
    /// own key derived from it and its id, never with the master. A device given its own key
    /// (`fota legacy device-key ID`) needs no flag.
    #[arg(long, conflicts_with = "credential")]
    legacy_per_device_key: bool,
    /// Image for ota_0 when the flash file is created (never cut, not counted).
    #[arg(long, value_name = "app.bin")]
    initial_image: Option<PathBuf>,
    /// Cut the power in the middle of the erase/program operation after N operations of
    /// this run, then exit with status 3.
    #[arg(long, value_name = "N")]
    power_cut_after_ops: Option<u64>,
    /// Network faults (grammar in the emulator's README), e.g. `drop@chunk:3`.
    #[arg(long, value_name = "SPEC")]
    net_fault: Option<String>,
    /// Pause between chunks.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    chunk_interval: Duration,
    /// Poll interval when the server gives none; also the longest wait between check-ins.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    poll_interval: Duration,
    /// `updated` (the offered release runs, confirmed), `idle` (a check-in found nothing to
    /// do), or `N-checkins` (check-ins the server refused do not count).
    #[arg(long, default_value = "updated", value_parser = parse_until)]
    until: Until,
    /// Print one JSON object on stdout (logs stay on stderr).
    #[arg(long, value_name = "json", value_parser = ["json"])]
    report: Option<String>,
    /// Trial boots an unconfirmed image gets before the bootloader rolls it back.
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..))]
    boot_attempts: u8,
    /// Partition layout of a new flash file.
    #[arg(long, default_value = "ecowatt", value_parser = ["ecowatt", "two_ota"])]
    layout: String,
    /// An application attribute each check-in reports, KEY=VALUE (repeatable; keys of
    /// A-Z a-z 0-9 _ . - up to 32 characters, values up to 64 bytes, 256 bytes in all).
    #[arg(long = "attr", value_name = "KEY=VALUE", value_parser = parse_attr)]
    attributes: Vec<(String, String)>,
    /// Fleet: run N devices named ID-0001… in this process.
    #[arg(long, value_name = "N", requires = "dir")]
    count: Option<u32>,
    /// Fleet folder: DIR/NAME.bin flash files and, in v2, DIR/NAME.json provisioning files.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// One `--attr`, checked as the check-in's attribute section will check it.
fn parse_attr(s: &str) -> Result<(String, String), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected KEY=VALUE"))?;
    fota_protocol::v2::checkin::Attributes::EMPTY
        .clone()
        .push(key, value)
        .map_err(|e| format!("{s:?}: {e}"))?;
    Ok((key.to_owned(), value.to_owned()))
}

fn parse_until(s: &str) -> Result<Until, String> {
    Until::parse(s).ok_or_else(|| format!("{s:?}: expected updated, idle or N-checkins"))
}

pub(crate) fn run(args: EmulateArgs) -> anyhow::Result<ExitCode> {
    let server = args
        .server
        .clone()
        .or_else(|| common::env_setting("FOTA_SERVER"))
        .unwrap_or_else(|| common::DEFAULT_SERVER.to_owned());
    let protocol = protocol(&args, common::env_setting(LEGACY_PSK_ENV))?;
    if let Protocol::V2(p) = &protocol
        && args.count.is_none()
        && p.device_id != args.id
    {
        bail!(
            "--id {} does not match the credential's device_id {}",
            args.id,
            p.device_id
        );
    }
    let layout = Layout::from_name(&args.layout).unwrap_or_default();
    // Checked even when the flash file exists (and the image is not needed): a file that is
    // no app image is a mistake worth hearing about at once, not a device bricked later.
    let initial_image = match &args.initial_image {
        Some(path) => {
            let image =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            flash_file::check_image(layout, &image)
                .with_context(|| format!("--initial-image {}", path.display()))?;
            Some(image)
        }
        None => None,
    };
    let server_is_https = server.starts_with("https://");
    let net_fault = NetFaultSpec::parse(args.net_fault.as_deref().unwrap_or(""))?;
    let mut options = DeviceOptions::new(&args.id, protocol);
    options.boot_attempts = args.boot_attempts;
    options.chunk_interval = args.chunk_interval;
    options.poll_interval = args.poll_interval;
    options.until = args.until;
    let mut all = fota_protocol::v2::checkin::Attributes::EMPTY;
    for (key, value) in &args.attributes {
        all.push(key, value)
            .map_err(|e| anyhow::anyhow!("--attr {key}={value}: {e}"))?;
    }
    options.attributes = args.attributes.clone();
    let spec = SessionSpec {
        server,
        flash: args.flash.clone().unwrap_or_default(),
        initial_image,
        layout,
        power_cut_after_ops: args.power_cut_after_ops,
        net_fault,
        options,
        timeouts: Timeouts::default(),
        tls: if server_is_https {
            let ca = common::ca_file(args.ca_file.clone());
            Some(fota_emulator::http::tls_config(ca.as_deref()).context("--ca-file")?)
        } else {
            None
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let json = args.report.is_some();
    let code = if let Some(count) = args.count {
        let fleet = FleetSpec {
            device: spec,
            count,
            dir: args.dir.clone().unwrap_or_default(),
            prefix: args.id.clone(),
        };
        let report = runtime.block_on(session::run_fleet(&fleet))?;
        if json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            eprintln!(
                "{} devices in {} ms: {:?}",
                report.devices, report.elapsed_ms, report.outcomes
            );
        }
        report.exit_code()
    } else {
        let report = runtime.block_on(session::run_session(&spec))?;
        if json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            let running = report.running.as_ref();
            eprintln!(
                "{}: {} running {} on {} ({}); {} boots, {} check-ins, {} bytes downloaded",
                report.device_id,
                report.outcome,
                running.map_or("?", |r| r.version.as_str()),
                running.map_or("?", |r| r.slot.as_str()),
                running.and_then(|r| r.state.as_deref()).unwrap_or("-"),
                report.boots,
                report.checkins,
                report.bytes_downloaded,
            );
            if let Some(error) = &report.error {
                eprintln!("{}: {error}", report.device_id);
            }
        }
        if report.exit_code == report::exit::BRICKED {
            eprintln!(
                "{} holds no bootable image; every run boots from it: remove it to make the \
                 device anew from --initial-image",
                spec.flash.display()
            );
        }
        report.exit_code
    };
    Ok(ExitCode::from(code))
}

/// The device's protocol and secret: `--credential` (v2), else `--legacy-psk-file`, else the
/// key in `FOTA_LEGACY_PSK` (`env_psk`; read only when no other source is given, so a
/// malformed one does not stop a v2 run), else a fleet's placeholder.
fn protocol(args: &EmulateArgs, env_psk: Option<String>) -> anyhow::Result<Protocol> {
    if let Some(path) = &args.credential {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        return Ok(Protocol::V2(
            Provisioning::from_json(&bytes)
                .with_context(|| format!("reading {}", path.display()))?,
        ));
    }
    let psk = match (&args.legacy_psk_file, env_psk) {
        (Some(path), _) => {
            let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            fota_protocol::legacy::psk_from_file(&raw)
                .with_context(|| format!("--legacy-psk-file {}", path.display()))?
        }
        (None, Some(key)) => fota_protocol::legacy::psk_from_value(&key).context(LEGACY_PSK_ENV)?,
        (None, None) if args.count.is_some() => return Ok(Protocol::V2(placeholder())),
        (None, None) => bail!(
            "give --credential ID.json (v2), or --legacy-psk-file FILE or {LEGACY_PSK_ENV} \
             (legacy)"
        ),
    };
    Ok(Protocol::Legacy {
        psk,
        per_device_key: args.legacy_per_device_key,
    })
}

/// Fleet devices read their own provisioning files; this stands in until they do.
fn placeholder() -> Provisioning {
    Provisioning {
        device_id: String::new(),
        token: String::new(),
        vendor_id: uuid::Uuid::nil(),
        class_id: uuid::Uuid::nil(),
        root: Vec::new(),
        class: None,
        device_uuid: uuid::Uuid::nil(),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[derive(clap::Parser)]
    struct Emulate {
        #[command(flatten)]
        args: EmulateArgs,
    }

    fn parse(argv: &[&str]) -> Result<EmulateArgs, clap::Error> {
        let argv = ["emulate", "--id", "EcoWatt001", "--flash", "d.bin"]
            .into_iter()
            .chain(argv.iter().copied());
        Emulate::try_parse_from(argv).map(|e| e.args)
    }

    fn psk_of(protocol: Protocol) -> Vec<u8> {
        match protocol {
            Protocol::Legacy { psk, .. } => psk,
            Protocol::V2(_) => panic!("v2, not legacy"),
        }
    }

    #[test]
    fn the_psk_comes_from_a_file_or_the_environment_never_the_command_line() {
        let err = parse(&["--legacy-psk", "fleet-key"]).err().unwrap();
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("psk");
        // The file's raw bytes, one trailing newline dropped (editors add one).
        std::fs::write(&file, b"fleet key\n\n").unwrap();
        let file = file.to_str().unwrap();
        let args = parse(&["--legacy-psk-file", file]).unwrap();
        assert_eq!(psk_of(protocol(&args, None).unwrap()), b"fleet key\n");
        let from_env = Some("hex:00ff".to_owned());
        assert_eq!(
            psk_of(protocol(&args, from_env.clone()).unwrap()),
            b"fleet key\n",
            "the file beats the environment"
        );
        // The environment's value: its UTF-8 bytes, or the bytes `hex:` spells.
        let args = parse(&[]).unwrap();
        assert_eq!(psk_of(protocol(&args, from_env).unwrap()), [0x00, 0xFF]);
        let as_is = Some("your-32-byte-secret-key-here!!".to_owned());
        assert_eq!(
            psk_of(protocol(&args, as_is).unwrap()),
            b"your-32-byte-secret-key-here!!"
        );
        let err = protocol(&args, Some("hex:zz".into())).unwrap_err();
        assert!(format!("{err:#}").contains("FOTA_LEGACY_PSK"), "{err:#}");
        let err = protocol(&args, None).unwrap_err().to_string();
        assert!(
            err.contains("--legacy-psk-file") && err.contains("FOTA_LEGACY_PSK"),
            "{err}"
        );
    }

    #[test]
    fn a_credential_excludes_the_psk_file_and_ignores_the_environment() {
        let err = parse(&["--credential", "d.json", "--legacy-psk-file", "psk"])
            .err()
            .unwrap();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);

        let dir = tempfile::tempdir().unwrap();
        let credential = dir.path().join("EcoWatt001.json");
        let provisioning = Provisioning {
            device_id: "EcoWatt001".into(),
            ..placeholder()
        };
        std::fs::write(&credential, serde_json::to_vec(&provisioning).unwrap()).unwrap();
        let args = parse(&["--credential", credential.to_str().unwrap()]).unwrap();
        // A PSK in the environment (for a server on this machine) is no one's business here,
        // even a malformed one.
        let malformed = Some("hex:zz".to_owned());
        assert!(
            matches!(protocol(&args, malformed).unwrap(), Protocol::V2(p) if p == provisioning)
        );
    }
}
