//! `fota keys`: make the key folder of a fleet, rotate and revoke its keys, show it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use fota_keys::{self as keys, Change, KeyFolder, KeySet};
use fota_protocol::v2::Role;

use super::common;

/// What every change to a key folder takes.
#[derive(Debug, clap::Args)]
pub(crate) struct ChangeArgs {
    /// The key folder [default: FOTA_KEYS, else the config file's `keys`].
    #[arg(long, value_name = "K")]
    keys: Option<PathBuf>,
    /// The new root record expires this long from now (`365days`); by default it keeps the
    /// current record's lifetime (never, when the current one never expires).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    expires: Option<core::time::Duration>,
    /// The new root record never expires.
    #[arg(long, conflicts_with = "expires")]
    no_expiry: bool,
    /// Write new private keys unencrypted (mode 0600) even without FOTA_KEY_PASSPHRASE.
    #[arg(long)]
    no_passphrase: bool,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum KeysCommand {
    /// Make a fleet's keys: 3 root keys (threshold 2), a release key, a status key, a vendor
    /// id, and the root record `root.bin` signed by the root keys.
    ///
    /// Private keys are PKCS#8 PEM, encrypted with FOTA_KEY_PASSPHRASE (scrypt + AES-256-CBC),
    /// or plain with --no-passphrase (mode 0600). Existing files are never overwritten. Keep the
    /// root keys and the release key offline; only `root.bin` and `status.key` go to the server.
    Init {
        /// Folder to create the keys in.
        #[arg(long, value_name = "K")]
        dir: PathBuf,
        /// Write private keys unencrypted (files mode 0600).
        #[arg(long)]
        no_passphrase: bool,
        /// Vendor UUID [default: a random UUIDv4].
        #[arg(long, value_name = "UUID")]
        vendor_id: Option<uuid::Uuid>,
    },
    /// Add a new release key (root record v+1 lists old and new). `fota release create` signs
    /// with the new one from now on; releases signed by the old one stay valid until
    /// `fota keys revoke OLD`.
    RotateRelease(ChangeArgs),
    /// Add a new status key (root record v+1 lists old and new): publish it (`fota root
    /// publish`), restart the server with `--status-key K/status-KEYID.key`, then revoke the
    /// old key and publish again.
    RotateStatus(ChangeArgs),
    /// Replace the three root keys (threshold 2) with new ones; root record v+1 is signed by
    /// two old and two new root keys.
    RotateRoot(ChangeArgs),
    /// Remove a key from the root record (v+1). After `fota root publish`, the server refuses
    /// uploads signed by it and stops offering releases signed only by it; devices refuse
    /// them (`unknown_or_revoked_key`).
    Revoke {
        /// The key id (16 hex digits, from `fota keys show`).
        key_id: String,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// The folder's root record chain and keys.
    Show {
        /// The key folder [default: FOTA_KEYS, else the config file's `keys`].
        #[arg(long, value_name = "K")]
        keys: Option<PathBuf>,
        /// One JSON object: root version, expiry, and `keys` with `{id, role, revoked}` each.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(command: KeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Init {
            dir,
            no_passphrase,
            vendor_id,
        } => init(dir, no_passphrase, vendor_id),
        KeysCommand::RotateRelease(args) => change(args, Change::RotateRelease),
        KeysCommand::RotateStatus(args) => change(args, Change::RotateStatus),
        KeysCommand::RotateRoot(args) => change(args, Change::RotateRoot),
        KeysCommand::Revoke {
            key_id,
            change: args,
        } => {
            let id = parse_key_id(&key_id)?;
            change(args, Change::Revoke(id))
        }
        KeysCommand::Show { keys, json } => show(keys, json),
    }
}

fn parse_key_id(s: &str) -> anyhow::Result<[u8; 8]> {
    let bytes = hex::decode(s.trim())
        .ok()
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .ok_or_else(|| {
            anyhow::anyhow!("{s:?} is not a key id (16 hex digits, see `fota keys show`)")
        })?;
    Ok(bytes)
}

fn change(args: ChangeArgs, change: Change) -> anyhow::Result<ExitCode> {
    let dir = common::key_dir(args.keys)?;
    let passphrase = common::passphrase();
    anyhow::ensure!(
        passphrase.is_some() || args.no_passphrase,
        "set {} (new keys are encrypted with it, and it opens encrypted keys), or pass \
         --no-passphrase",
        keys::PASSPHRASE_ENV
    );
    let mut folder =
        KeyFolder::open(&dir).with_context(|| format!("key folder {}", dir.display()))?;
    let expires_at = if args.no_expiry {
        Some(0)
    } else {
        args.expires.map(|d| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .saturating_add(d)
                .as_secs()
        })
    };
    let applied = folder
        .apply(change, expires_at, passphrase.as_deref())
        .with_context(|| format!("changing {}", dir.display()))?;
    for (role, id, path) in &applied.new_keys {
        println!("new {role} key {} in {}", hex::encode(id), path.display());
    }
    for path in &applied.written {
        println!("wrote {}", path.display());
    }
    println!(
        "root record v{}: publish it with `fota root publish {}`",
        applied.version,
        dir.join(keys::files::ROOT_RECORD).display()
    );
    if change == Change::RotateStatus
        && let Some((_, id, path)) = applied.new_keys.first()
    {
        println!(
            "after publishing, restart the server with --status-key {}, then `fota keys revoke` \
             the old status key and publish again (new status key {})",
            path.display(),
            hex::encode(id)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn show(keys: Option<PathBuf>, json: bool) -> anyhow::Result<ExitCode> {
    let dir = common::key_dir(keys)?;
    let folder = KeyFolder::open(&dir).with_context(|| format!("key folder {}", dir.display()))?;
    let newest = folder.newest();
    let body = newest.body();
    let entries = folder.keys();
    if json {
        let keys: Vec<serde_json::Value> = entries
            .iter()
            .map(|k| {
                serde_json::json!({
                    "id": hex::encode(k.id),
                    "role": k.role.as_str(),
                    "revoked": k.revoked,
                    "since": k.since,
                    "file": k.file.as_ref().map(|p| p.display().to_string()),
                })
            })
            .collect();
        common::print_json(&serde_json::json!({
            "vendor_id": uuid::Uuid::from_bytes(*newest.vendor_id()).to_string(),
            "root_version": newest.version(),
            "issued_at": body.issued_at,
            "expires_at": (body.expires_at != 0).then_some(body.expires_at),
            "thresholds": {
                "root": body.root.threshold(),
                "release": body.release.threshold(),
                "status": body.status.threshold(),
            },
            "keys": keys,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let expiry = |s: u64| {
        if s == 0 {
            "never".to_owned()
        } else {
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + core::time::Duration::from_secs(s),
            )
            .to_string()
        }
    };
    println!(
        "vendor id:    {}",
        uuid::Uuid::from_bytes(*newest.vendor_id())
    );
    println!(
        "root version: {} (of {} in the folder)",
        newest.version(),
        folder.chain().len()
    );
    println!("issued:       {}", expiry(body.issued_at));
    println!("expires:      {}", expiry(body.expires_at));
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|k| {
            let threshold = match k.role {
                Role::Root => body.root.threshold(),
                Role::Release => body.release.threshold(),
                Role::Status => body.status.threshold(),
            };
            vec![
                hex::encode(k.id),
                k.role.as_str().to_owned(),
                if k.revoked {
                    "revoked".into()
                } else {
                    format!("trusted ({threshold} needed)")
                },
                format!("v{}", k.since),
                k.file
                    .as_ref()
                    .and_then(|p| p.file_name())
                    .map_or_else(|| "-".into(), |n| n.to_string_lossy().into_owned()),
            ]
        })
        .collect();
    common::print_table(&["KEY ID", "ROLE", "STATE", "SINCE", "FILE"], &rows)?;
    Ok(ExitCode::SUCCESS)
}

fn init(
    dir: PathBuf,
    no_passphrase: bool,
    vendor_id: Option<uuid::Uuid>,
) -> anyhow::Result<ExitCode> {
    let passphrase = if no_passphrase {
        eprintln!(
            "warning: writing unencrypted private keys (mode 0600) to {}; anyone who can read \
             them can sign releases",
            dir.display()
        );
        None
    } else {
        let pass = std::env::var(keys::PASSPHRASE_ENV).with_context(|| {
            format!(
                "set {} to encrypt the keys, or pass --no-passphrase",
                keys::PASSPHRASE_ENV
            )
        })?;
        anyhow::ensure!(!pass.is_empty(), "{} is empty", keys::PASSPHRASE_ENV);
        Some(pass)
    };
    let vendor_id = vendor_id.unwrap_or_else(uuid::Uuid::new_v4);
    let set = KeySet::generate(vendor_id);
    let written = set
        .write(&dir, passphrase.as_deref())
        .with_context(|| format!("writing keys to {}", dir.display()))?;
    println!("vendor id: {vendor_id}");
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
