//! `fota partitions`: build binary partition tables from gen_esp32part CSV, and show them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use fota_protocol::esp::flash::PartitionReport;
use fota_protocol::esp::partition::{PartitionTable, TABLE_MAX_LEN, TABLE_OFFSET};
use fota_protocol::esp::{DEFAULT_FLASH_SIZE, csv, layouts};
use serde_json::json;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum PartitionsCommand {
    /// Build the 0xC00-byte binary table (as gen_esp32part.py writes it) from a CSV file or
    /// a built-in layout (`ecowatt`, `two_ota`).
    Build(BuildArgs),
    /// Verify a binary table with the bootloader's rules and list its partitions.
    ///
    /// Accepts a table file or a whole-flash dump (the table is then read at 0x8000).
    Show(ShowArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct BuildArgs {
    /// CSV file, or `ecowatt` / `two_ota`.
    layout: String,
    /// Output file.
    #[arg(short, long)]
    out: PathBuf,
    /// Leave out the MD5 row (gen_esp32part --disable-md5sum).
    #[arg(long)]
    no_md5: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ShowArgs {
    /// Table file (or whole-flash dump).
    file: PathBuf,
    /// Machine-readable output on stdout.
    #[arg(long)]
    json: bool,
    /// Flash size entries must fit in (default 4 MiB, or the dump's size).
    #[arg(long, value_parser = super::parse_bytes)]
    flash_size: Option<u32>,
}

pub(crate) fn run(command: PartitionsCommand) -> anyhow::Result<ExitCode> {
    match command {
        PartitionsCommand::Build(args) => build(&args),
        PartitionsCommand::Show(args) => show(&args),
    }
}

fn load_layout(layout: &str) -> anyhow::Result<PartitionTable> {
    if let Some((table, _)) = layouts::by_name(layout)
        && !Path::new(layout).exists()
    {
        return Ok(table);
    }
    let text = std::fs::read_to_string(layout).with_context(|| format!("reading {layout}"))?;
    csv::parse(&text).with_context(|| layout.to_string())
}

fn build(args: &BuildArgs) -> anyhow::Result<ExitCode> {
    let table = load_layout(&args.layout)?;
    let bytes = table.encode(!args.no_md5)?;
    std::fs::write(&args.out, bytes).with_context(|| format!("writing {}", args.out.display()))?;
    tracing::info!(
        path = %args.out.display(),
        partitions = table.len(),
        md5 = %hex::encode(table.computed_md5()),
        "built partition table"
    );
    Ok(ExitCode::SUCCESS)
}

fn show(args: &ShowArgs) -> anyhow::Result<ExitCode> {
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let whole_flash = bytes.len() >= TABLE_OFFSET as usize + TABLE_MAX_LEN;
    let (table_bytes, default_size) = if whole_flash {
        let at = TABLE_OFFSET as usize;
        (
            &bytes[at..at + TABLE_MAX_LEN],
            u32::try_from(bytes.len()).unwrap_or(u32::MAX),
        )
    } else {
        (&bytes[..], DEFAULT_FLASH_SIZE)
    };
    let flash_size = args.flash_size.unwrap_or(default_size);
    let parsed = PartitionTable::parse(table_bytes, flash_size);
    let (table, error) = match parsed {
        Ok(t) => (Some(t), None),
        Err(e) => (None, Some(e)),
    };
    if args.json {
        let partitions: Vec<PartitionReport> = table
            .iter()
            .flat_map(|t| t.iter().map(PartitionReport::new))
            .collect();
        println!(
            "{:#}",
            json!({
                "valid": error.is_none(),
                "error": error.map(|e| e.to_string()),
                "md5": table.as_ref().and_then(|t| t.md5()).map(hex::encode),
                "flash_size": flash_size,
                "partitions": partitions,
            })
        );
    } else if let Some(t) = &table {
        print_table(t);
    }
    match error {
        None => Ok(ExitCode::SUCCESS),
        Some(e) => {
            eprintln!("invalid partition table: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

pub(crate) fn print_table(t: &PartitionTable) {
    println!(
        "{:<16} {:<10} {:<10} {:>10} {:>10}  flags",
        "name", "type", "subtype", "offset", "size"
    );
    for p in t {
        let r = PartitionReport::new(p);
        println!(
            "{:<16} {:<10} {:<10} {:>#10x} {:>#10x}  {}",
            r.label,
            r.ty,
            r.subtype,
            r.offset,
            r.size,
            r.flags.join(":")
        );
    }
    match t.md5() {
        Some(d) => println!("MD5 row: {} (valid)", hex::encode(d)),
        None => println!("MD5 row: none"),
    }
}
