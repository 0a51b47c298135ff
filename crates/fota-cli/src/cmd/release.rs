//! `fota release`: sign releases (online or offline), upload them, list and show them.

use core::time::Duration;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use fota_client::api::Release;
use fota_client::release::{self, KeyFolder, ReleaseSpec};
use fota_client::{Client, ReleaseParts, Upload, bundle};
use fota_protocol::v2::ManifestFormat;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::common::{self, ConnArgs, Explain as _, OutFile};

#[derive(Debug, clap::Args)]
pub(crate) struct ReleaseArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    command: ReleaseCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ReleaseCommand {
    /// Sign an ESP32 app image as a release and upload it (or, with --offline, only sign it
    /// into a bundle file).
    ///
    /// The image must be a valid ESP32 app image whose app descriptor version equals
    /// --version; its project name goes into the manifest. The manifest is signed with
    /// K/release.key (decrypted with FOTA_KEY_PASSPHRASE) and checked against K/root.bin.
    #[command(disable_version_flag = true)]
    Create(CreateArgs),
    /// Upload a bundle made by `fota release create --offline`.
    Upload {
        /// The bundle file.
        bundle: PathBuf,
        /// The stored release as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// List releases, newest first per class.
    List {
        /// Only releases of this class.
        #[arg(long, value_name = "C")]
        class: Option<String>,
        /// The server's release records as a JSON array on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Show one release, by id or version.
    Show {
        /// Release id, or version (unique within a class).
        release: String,
        /// The class, when the version exists in several.
        #[arg(long, value_name = "C")]
        class: Option<String>,
        /// The release record as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// The ESP32 app image (`app.bin`).
    image: PathBuf,
    /// Firmware version (1-31 bytes); must equal the image's app descriptor version.
    #[arg(long, value_name = "V", value_parser = parse_version)]
    version: String,
    /// Hardware class the release is for.
    #[arg(long, value_name = "C", value_parser = super::parse_name)]
    class: String,
    /// Release sequence, above every earlier one of the class [default: the server's highest
    /// for the class + 1; required with --offline].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    sequence: Option<u64>,
    /// Anti-rollback counter [default: the image's secure_version].
    #[arg(long, value_name = "N")]
    security_counter: Option<u32>,
    /// Chunk size: a power of two from 1K to 64K.
    #[arg(long, value_name = "SIZE", default_value = "16K", value_parser = parse_chunk_size)]
    chunk_size: u32,
    /// Validity of the signed manifest, e.g. 90days [default: never expires].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    expires: Option<Duration>,
    /// Manifest layout: 3, or 2 for fleets whose agents predate format 3 (they refuse a
    /// format-3 manifest as unsupported_format; format 2 can only name an ESP32).
    #[arg(long, value_name = "N", default_value = "3", value_parser = parse_manifest_format)]
    manifest_format: ManifestFormat,
    /// Only sign: write the bundle (-o) and do not contact the server.
    #[arg(long, requires_all = ["sequence", "out"])]
    offline: bool,
    /// Write the signed release as a bundle file (for `fota release upload`).
    #[arg(short = 'o', long = "out", value_name = "release.fota")]
    out: Option<PathBuf>,
    /// Key folder made by `fota keys init` [else FOTA_KEYS, else config `keys`].
    #[arg(long, value_name = "K")]
    keys: Option<PathBuf>,
    /// The stored release as JSON on stdout.
    #[arg(long, conflicts_with = "offline")]
    json: bool,
}

/// A version no release can have is a usage error, before any key is read or request sent.
fn parse_version(s: &str) -> Result<String, String> {
    release::check_version(s)
        .map(|()| s.to_owned())
        .map_err(|e| e.to_string())
}

fn parse_manifest_format(s: &str) -> Result<ManifestFormat, String> {
    s.parse::<u16>()
        .ok()
        .and_then(ManifestFormat::from_version)
        .ok_or_else(|| format!("{s:?} is not a manifest format: 2 or 3"))
}

fn parse_chunk_size(s: &str) -> Result<u32, String> {
    let v = super::parse_bytes(s)?;
    if v.is_power_of_two() && (1024..=65536).contains(&v) {
        Ok(v)
    } else {
        Err(format!(
            "chunk size {v} is not a power of two from 1024 to 65536"
        ))
    }
}

pub(crate) fn run(args: ReleaseArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ReleaseCommand::Create(create_args) => create(&args.conn, create_args),
        ReleaseCommand::Upload { bundle, json } => {
            upload_bundle(&args.conn.client()?, &bundle, json)
        }
        ReleaseCommand::List { class, json } => {
            let client = args.conn.client()?;
            let releases = client.list_releases(class.as_deref()).explained(&client)?;
            if json {
                common::print_json(&releases)?;
            } else {
                let rows: Vec<Vec<String>> = releases
                    .iter()
                    .map(|r| {
                        vec![
                            r.id.clone(),
                            r.class.clone(),
                            r.version.clone(),
                            r.sequence.to_string(),
                            common::size(r.image_size),
                            common::when(r.created_at),
                        ]
                    })
                    .collect();
                common::print_table(
                    &["ID", "CLASS", "VERSION", "SEQUENCE", "SIZE", "CREATED"],
                    &rows,
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        ReleaseCommand::Show {
            release,
            class,
            json,
        } => {
            let client = args.conn.client()?;
            let r = client
                .find_release(&release, class.as_deref())
                .explained(&client)?;
            if json {
                common::print_json(&r)?;
            } else {
                print_release(&r);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_release(r: &Release) {
    let rows = [
        ("release", r.id.clone()),
        ("class", format!("{} ({})", r.class, r.class_id)),
        ("version", format!("{} (project {})", r.version, r.project)),
        ("sequence", r.sequence.to_string()),
        ("security", format!("counter {}", r.security_counter)),
        (
            "image",
            format!("{} bytes, sha256 {}", r.image_size, r.image_sha256),
        ),
        (
            "chunks",
            format!("{} × {} bytes", r.chunk_count, r.chunk_size),
        ),
        (
            "hash list",
            format!("{} bytes, sha256 {}", r.hashlist_size, r.hashlist_sha256),
        ),
        ("manifest", format!("sha256 {}", r.manifest_digest)),
        (
            "created",
            format!("{} by {}", common::when(r.created_at), r.created_by),
        ),
    ];
    for (k, v) in rows {
        println!("{k:<11}{v}");
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn create(conn: &ConnArgs, args: CreateArgs) -> anyhow::Result<ExitCode> {
    let dir = common::key_dir(args.keys)?;
    let keys = KeyFolder::open(&dir, common::passphrase().as_deref())
        .with_context(|| format!("opening the key folder {}", dir.display()))?;
    let image =
        std::fs::read(&args.image).with_context(|| format!("reading {}", args.image.display()))?;
    // Fail on a bad image or version before asking the server anything.
    let info = release::inspect_image(&image).with_context(|| args.image.display().to_string())?;
    if info.version != args.version {
        bail!(
            "{}",
            release::ReleaseError::VersionMismatch {
                given: args.version,
                image: info.version,
            }
        );
    }
    let client = if args.offline {
        None
    } else {
        Some(conn.client()?)
    };
    if let Some(client) = &client {
        let server = client.server_info().explained(client)?;
        if !server.v2 {
            bail!(
                "the server at {} has no root record: start it with --root {} --status-key {}",
                client.server(),
                dir.join("root.bin").display(),
                dir.join("status.key").display()
            );
        }
        let ours = keys.vendor_id().to_string();
        if server.vendor_id.as_deref() != Some(ours.as_str()) {
            bail!(
                "the server trusts vendor {} but the key folder {} is vendor {ours}; releases \
                 signed with it would be refused",
                server.vendor_id.as_deref().unwrap_or("?"),
                dir.display()
            );
        }
    }
    let sequence = match (args.sequence, &client) {
        (Some(n), _) => n,
        (None, Some(client)) => client.next_sequence(&args.class).explained(client)?,
        (None, None) => unreachable!("clap requires --sequence with --offline"),
    };
    let issued_at = unix_now();
    let expires_at = args
        .expires
        .map_or(0, |d| issued_at.saturating_add(d.as_secs().max(1)));
    let spec = ReleaseSpec {
        class: args.class,
        version: args.version,
        sequence,
        security_counter: args.security_counter,
        chunk_size: args.chunk_size,
        issued_at,
        expires_at,
        manifest_format: args.manifest_format,
    };
    let signed = release::sign(&image, &spec, &keys)?;
    eprintln!(
        "signed {} {} for class {} (sequence {}, security counter {}, {} chunks of {} bytes)",
        info.project,
        spec.version,
        spec.class,
        spec.sequence,
        signed.body.security_counter,
        signed.body.chunk_count,
        spec.chunk_size
    );
    if let Some(path) = &args.out {
        let mut out = OutFile::create(path, false)?;
        bundle::write(out.file(), &signed, &image)
            .with_context(|| format!("writing {}", path.display()))?;
        out.commit()?;
        eprintln!("wrote {}", path.display());
        if args.offline {
            // Offline: the release id is already known, so print it for scripts.
            println!("{}", signed.release_id());
        }
    }
    let Some(client) = client else {
        return Ok(ExitCode::SUCCESS);
    };
    // The image is already in memory (it had to be hashed and validated); it is streamed from
    // there behind the small parts, never copied into a request buffer.
    let stored = upload(
        &client,
        signed.parts(),
        &mut image.as_slice(),
        image.len() as u64,
    )?;
    report(&stored, args.json)
}

fn upload(
    client: &Client,
    parts: ReleaseParts<'_>,
    image: &mut dyn Read,
    len: u64,
) -> anyhow::Result<Upload> {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    bar.set_message("uploading");
    let result = client.upload_release(parts, image, len, &mut |n| bar.inc(n));
    bar.finish_and_clear();
    result.explained(client)
}

fn report(upload: &Upload, json: bool) -> anyhow::Result<ExitCode> {
    let stored = &upload.release;
    if !upload.created {
        // A repeat is a success (the server holds exactly this release), but not a new one.
        eprintln!(
            "release {} was already uploaded (the server holds this signed manifest); nothing \
             changed",
            stored.id
        );
    }
    if json {
        common::print_json(stored)?;
    } else {
        println!(
            "release {}: class {} version {} sequence {}, {} in {} chunks",
            stored.id,
            stored.class,
            stored.version,
            stored.sequence,
            common::size(stored.image_size),
            stored.chunk_count
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn upload_bundle(client: &Client, path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let (head, mut file) =
        bundle::open(path).with_context(|| format!("reading {}", path.display()))?;
    let parts = ReleaseParts {
        class: &head.class,
        manifest: &head.manifest,
        hashlist: &head.hashlist,
    };
    let stored = upload(
        client,
        parts,
        &mut std::io::BufReader::new(&mut file),
        head.image_len,
    )?;
    report(&stored, json)
}
