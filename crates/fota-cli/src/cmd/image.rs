//! `fota image`: build synthetic ESP32 app images and verify images like the bootloader.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use fota_protocol::esp::build::{
    AppImageSpec, DEFAULT_PROJECT, MAX_IMAGE_SIZE, MIN_IMAGE_SIZE, build_app_image,
};
use fota_protocol::esp::image::{self, HashCheck, ImageReport, VerifyOptions};
use serde_json::{Value, json};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ImageCommand {
    /// Build a valid ESP32 app image with deterministic content.
    ///
    /// The image is the smallest valid one of at least --size bytes (rounded up to 16),
    /// with an appended SHA-256; `esptool image-info` calls it valid.
    #[command(disable_version_flag = true)]
    Build(BuildArgs),
    /// Verify an app image as the ESP-IDF bootloader does and show what it holds.
    ///
    /// Exit status 0 exactly when the image is valid. Bytes after the image (a 0xFF-padded
    /// slot dump) are ignored.
    Inspect(InspectArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct BuildArgs {
    /// App version written into esp_app_desc_t (at most 31 bytes).
    #[arg(long)]
    version: String,
    /// Project name written into esp_app_desc_t.
    #[arg(long, default_value = DEFAULT_PROJECT)]
    project: String,
    /// Anti-rollback secure version.
    #[arg(long, default_value_t = 0)]
    secure_version: u32,
    /// Minimum image size: 4096, 0x1000, 64K, 1M (4 KiB to 0x140000).
    #[arg(long, default_value = "64K", value_parser = parse_image_size)]
    size: u32,
    /// Mark the image so the emulator's boot of it fails (it never confirms itself).
    #[arg(long)]
    boot_fails: bool,
    /// Output file.
    #[arg(short, long)]
    out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub(crate) struct InspectArgs {
    /// Image file (or a slot dump).
    file: PathBuf,
    /// Machine-readable report on stdout.
    #[arg(long)]
    json: bool,
    /// Partition size the image must fit in (e.g. 0x140000, 1280K).
    #[arg(long, value_parser = super::parse_bytes)]
    partition_size: Option<u32>,
}

fn parse_image_size(s: &str) -> Result<u32, String> {
    let v = super::parse_bytes(s)?;
    if (MIN_IMAGE_SIZE..=MAX_IMAGE_SIZE).contains(&v) {
        Ok(v)
    } else {
        Err(format!(
            "image size {v:#x} ({v} bytes) is outside {MIN_IMAGE_SIZE:#x}..={MAX_IMAGE_SIZE:#x} (4 KiB to one EcoWatt app slot)"
        ))
    }
}

pub(crate) fn run(command: ImageCommand) -> anyhow::Result<ExitCode> {
    match command {
        ImageCommand::Build(args) => build(args),
        ImageCommand::Inspect(args) => inspect(args),
    }
}

fn build(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let spec = AppImageSpec {
        version: args.version,
        project: args.project,
        secure_version: args.secure_version,
        size: args.size,
        boot_fails: args.boot_fails,
    };
    let bytes = build_app_image(&spec)?;
    // The builder's output is checked by the same validator the agent runs.
    if let Err(e) = image::verify(&bytes, VerifyOptions::default()) {
        bail!("internal error: built image does not verify: {e}");
    }
    std::fs::write(&args.out, &bytes).with_context(|| format!("writing {}", args.out.display()))?;
    tracing::info!(
        path = %args.out.display(),
        len = bytes.len(),
        version = %spec.version,
        "built app image"
    );
    Ok(ExitCode::SUCCESS)
}

fn hex32(d: &[u8; 32]) -> String {
    hex::encode(d)
}

pub(crate) fn report_json(r: &ImageReport) -> Value {
    let header = r.header.map(|h| {
        json!({
            "magic": h.magic,
            "segment_count": h.segment_count,
            "spi_mode": h.spi_mode_name().map_or_else(|| h.spi_mode.to_string(), str::to_string),
            "flash_freq": h.flash_freq_name(),
            "flash_size": h.flash_size(),
            "entry_addr": format!("{:#010x}", h.entry_addr),
            "wp_pin": h.wp_pin,
            "chip_id": h.chip_id,
            "min_chip_rev_full": h.min_chip_rev_full,
            "max_chip_rev_full": h.max_chip_rev_full,
            "hash_appended": h.hash_appended,
        })
    });
    let segments: Vec<Value> = r
        .segments()
        .iter()
        .enumerate()
        .map(|(i, s)| {
            json!({
                "index": i,
                "load_addr": format!("{:#010x}", s.load_addr),
                "len": s.data_len,
                "file_offset": s.data_offset,
                "region": s.region().name(),
            })
        })
        .collect();
    let app = r.app_desc.map(|d| {
        json!({
            "magic_ok": d.magic_ok(),
            "version": d.version(),
            "project": d.project_name(),
            "secure_version": d.secure_version,
            "time": d.time(),
            "date": d.date(),
            "idf_ver": d.idf_ver(),
            "elf_sha256": hex32(&d.app_elf_sha256),
            "mmu_page_size": d.mmu_page_size,
            "spi_flash_mode": d.spi_flash_mode,
            "boot_fails": d.boot_fails(),
        })
    });
    let checksum = r.checksum.map(|(stored, computed)| {
        json!({ "stored": stored, "computed": computed, "valid": stored == computed })
    });
    let hash = match r.hash {
        HashCheck::NotAppended => json!({ "appended": false }),
        HashCheck::Checked { stored, computed } => json!({
            "appended": true,
            "stored": hex32(&stored),
            "computed": hex32(&computed),
            "valid": stored == computed,
        }),
        _ => json!({ "appended": true, "valid": null }),
    };
    json!({
        "valid": r.is_valid(),
        "error": r.error.map(|e| json!({
            "check": e.check(),
            "offset": e.offset(),
            "message": e.to_string(),
        })),
        "image_len": r.image_len,
        "header": header,
        "segments": segments,
        "app_desc": app,
        "checksum": checksum,
        "hash": hash,
    })
}

fn print_human(path: &std::path::Path, len: usize, r: &ImageReport) {
    println!("Image: {} ({len} bytes)", path.display());
    if let Some(h) = r.header {
        println!(
            "Header: magic {:#04x}, {} segments, {} {} {}, entry {:#010x}, chip id {}, chip rev {}..={}",
            h.magic,
            h.segment_count,
            h.spi_mode_name().unwrap_or("?"),
            h.flash_freq_name().unwrap_or("?"),
            h.flash_size()
                .map_or_else(|| "?".into(), |s| format!("{}MB", s >> 20)),
            h.entry_addr,
            h.chip_id,
            h.min_chip_rev_full,
            h.max_chip_rev_full,
        );
    }
    if !r.segments().is_empty() {
        println!("Segments:");
        for (i, s) in r.segments().iter().enumerate() {
            println!(
                "  {i:2}  len {:#08x}  load {:#010x}  file {:#08x}  {}",
                s.data_len,
                s.load_addr,
                s.data_offset,
                s.region().name()
            );
        }
    }
    if let Some(d) = r.app_desc {
        println!(
            "App: project {}, version {}, secure_version {}, built {} {}, IDF {}{}",
            d.project_name().unwrap_or("?"),
            d.version().unwrap_or("?"),
            d.secure_version,
            d.date().unwrap_or("?"),
            d.time().unwrap_or("?"),
            d.idf_ver().unwrap_or("?"),
            if d.boot_fails() {
                ", boot-fails marker set"
            } else {
                ""
            },
        );
    }
    match r.checksum {
        Some((s, c)) if s == c => println!("Checksum: {s:#04x} (valid)"),
        Some((s, c)) => println!("Checksum: {s:#04x} (invalid - calculated {c:#04x})"),
        None => println!("Checksum: not reached"),
    }
    match r.hash {
        HashCheck::NotAppended => println!("Validation hash: not appended (no hash)"),
        HashCheck::Checked { stored, computed } if stored == computed => {
            println!("Validation hash: {} (valid)", hex32(&computed));
        }
        HashCheck::Checked { computed, .. } => {
            println!("Validation hash: {} (invalid)", hex32(&computed));
        }
        _ => println!("Validation hash: not reached"),
    }
    if let Some(n) = r.image_len {
        println!("Image length: {n} bytes");
    }
    println!(
        "Verdict: {}",
        if r.is_valid() { "valid" } else { "INVALID" }
    );
}

fn inspect(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let opts = VerifyOptions {
        max_len: args.partition_size,
        ..VerifyOptions::default()
    };
    let report = image::inspect(&bytes, opts);
    if args.json {
        println!("{:#}", report_json(&report));
    } else {
        print_human(&args.file, bytes.len(), &report);
    }
    match report.error {
        None => Ok(ExitCode::SUCCESS),
        Some(e) => {
            eprintln!("invalid image: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
