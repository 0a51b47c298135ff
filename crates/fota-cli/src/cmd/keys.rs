//! `fota keys`: make the key folder of a fleet.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use fota_keys::{self as keys, KeySet};

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
}

pub(crate) fn run(command: KeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Init {
            dir,
            no_passphrase,
            vendor_id,
        } => init(dir, no_passphrase, vendor_id),
    }
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
