//! `fota flash`: inspect whole-flash dumps.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use fota_protocol::esp::flash::{FlashReport, inspect_flash_with};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum FlashCommand {
    /// Show the partition table, both otadata entries, which slot the bootloader would boot
    /// and why (rollback-enabled rules), and each app slot's image verdict.
    ///
    /// Exit status 1 when the partition table is invalid.
    Inspect(InspectArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct InspectArgs {
    /// Whole-flash dump (e.g. `esptool read-flash 0 ALL flash.bin`).
    file: PathBuf,
    /// Machine-readable report on stdout.
    #[arg(long)]
    json: bool,
    /// Apply the rules of a bootloader built without CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE.
    #[arg(long)]
    no_rollback: bool,
}

pub(crate) fn run(command: FlashCommand) -> anyhow::Result<ExitCode> {
    match command {
        FlashCommand::Inspect(args) => inspect(&args),
    }
}

fn inspect(args: &InspectArgs) -> anyhow::Result<ExitCode> {
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let report = inspect_flash_with(&bytes, !args.no_rollback);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_human(&report);
    }
    match &report.table.error {
        None => Ok(ExitCode::SUCCESS),
        Some(e) => {
            eprintln!("invalid partition table at 0x8000: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn print_human(r: &FlashReport) {
    println!("Flash: {} bytes", r.flash_size);
    if r.table.error.is_some() {
        println!("Partition table at {:#x}: INVALID", r.table.offset);
        return;
    }
    println!(
        "Partition table at {:#x}: valid, MD5 row {}",
        r.table.offset,
        r.table.md5.as_deref().unwrap_or("absent")
    );
    for p in &r.table.partitions {
        println!(
            "  {:<16} {:<6} {:<10} {:>#10x} {:>#10x} {}",
            p.label,
            p.ty,
            p.subtype,
            p.offset,
            p.size,
            p.flags.join(":")
        );
    }
    match &r.otadata {
        Some(od) => {
            println!("otadata at {:#x}:", od.offset);
            for e in &od.entries {
                let active = if od.active == Some(e.sector) {
                    " (active)"
                } else {
                    ""
                };
                if e.erased {
                    println!("  [{}] erased", e.sector);
                } else {
                    println!(
                        "  [{}] seq {} state {} crc {} {}{}{}",
                        e.sector,
                        e.seq,
                        e.state,
                        if e.crc_ok { "ok" } else { "BAD" },
                        if e.valid { "valid" } else { "not valid" },
                        e.slot.map(|s| format!(" -> ota_{s}")).unwrap_or_default(),
                        active
                    );
                }
            }
        }
        None => println!("otadata: none"),
    }
    if let Some(b) = &r.boot {
        println!(
            "Boot ({}): {}",
            if b.rollback_enabled {
                "rollback enabled"
            } else {
                "rollback disabled"
            },
            b.reason
        );
        for w in &b.rewrites {
            println!("  bootloader writes {w}");
        }
        println!("  try order: {}", b.try_order.join(", "));
        println!(
            "  boots: {}",
            b.boots
                .as_deref()
                .unwrap_or("nothing (no bootable image: reset loop)")
        );
    }
    println!("App partitions:");
    for a in &r.apps {
        let what = match (&a.version, &a.project) {
            (Some(v), Some(p)) => format!(
                " {p} {v} (secure_version {})",
                a.secure_version.unwrap_or(0)
            ),
            _ => String::new(),
        };
        println!(
            "  {:<16} {:<8} {:>#10x} {}{}{}{}",
            a.label,
            a.subtype,
            a.offset,
            a.status,
            what,
            a.ota_state
                .as_deref()
                .map(|s| format!(", otadata {s}"))
                .unwrap_or_default(),
            a.error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default(),
        );
    }
}
