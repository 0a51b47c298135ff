//! `fota root`: the root records a server holds, and publishing the next ones.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use fota_protocol::v2::RootRecord;

use super::common::{self, ConnArgs, Explain as _};

#[derive(Debug, clap::Args)]
pub(crate) struct RootArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    command: RootCommand,
}

#[derive(Debug, clap::Subcommand)]
enum RootCommand {
    /// Upload a root record made by `fota keys rotate-*` or `fota keys revoke` (admin).
    ///
    /// The server takes only the next version of the one it holds. Given `K/root.bin` several
    /// versions ahead, the versions in between are published first from the `root-vN.bin`
    /// files beside it, so the server keeps the whole chain for devices to walk.
    Publish {
        /// The record (`K/root.bin`, or `K/root-vN.bin`).
        file: PathBuf,
        /// The server's chain as JSON on stdout afterwards.
        #[arg(long)]
        json: bool,
    },
    /// The versions the server holds (viewer).
    List {
        /// As JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(args: RootArgs) -> anyhow::Result<ExitCode> {
    let client = args.conn.client()?;
    match args.command {
        RootCommand::Publish { file, json } => {
            let target = read_record(&file)?;
            let held = client.roots().explained(&client)?.newest;
            if target.version() <= held {
                // Still sent: the server says whether it holds this very record.
                let (_, chain) = client.publish_root(target.as_bytes()).explained(&client)?;
                println!(
                    "the server holds root v{} already (newest v{})",
                    target.version(),
                    chain.newest
                );
                return finish(&chain, json);
            }
            let dir = file.parent().unwrap_or(Path::new("."));
            let mut last = None;
            for version in held.saturating_add(1)..=target.version() {
                let bytes = if version == target.version() {
                    target.as_bytes().to_vec()
                } else {
                    let path = dir.join(fota_keys::folder::root_file_name(version));
                    std::fs::read(&path).with_context(|| {
                        format!(
                            "the server holds root v{held}; v{version} must be published before \
                             v{} and is not in {}",
                            target.version(),
                            path.display()
                        )
                    })?
                };
                let (created, chain) = client.publish_root(&bytes).explained(&client)?;
                println!(
                    "root v{version} {}",
                    if created {
                        "published"
                    } else {
                        "was held already"
                    }
                );
                last = Some(chain);
            }
            match last {
                Some(chain) => finish(&chain, json),
                None => Ok(ExitCode::SUCCESS),
            }
        }
        RootCommand::List { json } => {
            let chain = client.roots().explained(&client)?;
            finish(&chain, json)
        }
    }
}

fn read_record(path: &Path) -> anyhow::Result<RootRecord> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    RootRecord::verify_initial(&bytes)
        .map_err(|e| anyhow::anyhow!("{} is not a valid root record: {e}", path.display()))
}

fn finish(chain: &fota_client::api::RootChainInfo, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        common::print_json(chain)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = chain
        .versions
        .iter()
        .map(|v| {
            vec![
                format!("v{}", v.version),
                if v.expires_at == 0 {
                    "never".into()
                } else {
                    humantime::format_rfc3339_seconds(
                        std::time::UNIX_EPOCH + core::time::Duration::from_secs(v.expires_at),
                    )
                    .to_string()
                },
                v.release_keys.join(","),
                v.status_keys.join(","),
                v.published_by.clone(),
            ]
        })
        .collect();
    common::print_table(
        &["VERSION", "EXPIRES", "RELEASE KEYS", "STATUS KEYS", "BY"],
        &rows,
    )?;
    println!("the server signs with status key {}", chain.status_key);
    Ok(ExitCode::SUCCESS)
}
