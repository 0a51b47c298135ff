//! esptool 5.6.0 as an outside oracle for app images.
//!
//! Finds esptool through `FOTA_ESPTOOL` (path to the executable), else `.venv/bin/esptool`
//! at the repository root. Without it the test prints "skipped" and passes, unless
//! `FOTA_REQUIRE_ORACLES=1`, when it fails. With it:
//!
//! - every image `fota image build` makes is called valid by `esptool image-info` (both the
//!   "Checksum" and the "Validation hash" lines say "(valid)"), with matching app fields;
//! - images made by `tests/oracle/mkelf.py` + `esptool elf2image`, and corrupted copies of
//!   them, get the same verdict from `fota image inspect` as from esptool;
//! - the mkelf defaults reproduce the golden image of research/device.md §3.
//!
//! esptool exits 0 even for an invalid image, so its verdict is read from its output:
//! valid = exit 0, a "Checksum: … (valid)" line, and no "Validation hash" line saying
//! "(invalid)" (the line is absent when no hash is appended).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::kit::{fota, json};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Oracle {
    esptool: PathBuf,
    python: PathBuf,
}

fn oracle() -> Option<Oracle> {
    let esptool = std::env::var_os("FOTA_ESPTOOL")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/esptool"));
    if !esptool.is_file() {
        assert!(
            std::env::var("FOTA_REQUIRE_ORACLES").as_deref() != Ok("1"),
            "FOTA_REQUIRE_ORACLES=1 but esptool was not found at {}",
            esptool.display()
        );
        eprintln!(
            "skipped: esptool not found (set FOTA_ESPTOOL or create .venv with esptool==5.6.0)"
        );
        return None;
    }
    // mkelf.py needs only the standard library; prefer the venv's own interpreter.
    let python = esptool
        .parent()
        .map(|d| d.join("python"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("python3"));
    Some(Oracle { esptool, python })
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("spawn")
}

impl Oracle {
    fn image_info(&self, file: &Path) -> (bool, String) {
        let out = run(Command::new(&self.esptool)
            .args(["--chip", "esp32", "image-info"])
            .arg(file));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let checksum_ok = text
            .lines()
            .any(|l| l.starts_with("Checksum:") && l.ends_with("(valid)"));
        let hash_bad = text
            .lines()
            .any(|l| l.starts_with("Validation hash:") && !l.ends_with("(valid)"));
        (out.status.success() && checksum_ok && !hash_bad, text)
    }

    fn elf2image(&self, dir: &Path, name: &str, mkelf_args: &[&str]) -> PathBuf {
        let elf = dir.join(format!("{name}.elf"));
        let bin = dir.join(format!("{name}.bin"));
        let out = run(Command::new(&self.python)
            .arg(repo_root().join("tests/oracle/mkelf.py"))
            .arg(&elf)
            .args(mkelf_args));
        assert!(
            out.status.success(),
            "mkelf: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = run(Command::new(&self.esptool)
            .args([
                "--chip",
                "esp32",
                "elf2image",
                "--flash-mode",
                "dio",
                "--flash-freq",
                "40m",
                "--flash-size",
                "2MB",
                "--elf-sha256-offset",
                "0xb0",
                "--flash-mmu-page-size",
                "64KB",
                "--min-rev-full",
                "0",
                "--max-rev-full",
                "399",
                "-o",
            ])
            .arg(&bin)
            .arg(&elf));
        assert!(
            out.status.success(),
            "elf2image: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        bin
    }
}

fn ours(file: &Path) -> bool {
    fota(&["image", "inspect", file.to_str().unwrap()])
        .status
        .success()
}

#[test]
fn esptool_agrees_with_fota() {
    let Some(o) = oracle() else { return };
    let dir = tempfile::tempdir().unwrap();

    // 1. Everything we build is valid for esptool, with the app fields we asked for.
    let builds: [&[&str]; 7] = [
        &["--version", "1.0.0", "--size", "4096"],
        &["--version", "1.0.1", "--size", "5000"],
        &["--version", "1.0.2", "--size", "64K"],
        &["--version", "1.0.3", "--size", "0x10900", "--boot-fails"],
        &[
            "--version",
            "1.0.4",
            "--size",
            "200K",
            "--secure-version",
            "7",
        ],
        &[
            "--version",
            "2.0.0-rc.1",
            "--size",
            "0x140000",
            "--project",
            "inverter-fw",
        ],
        &["--version", "1.0.6", "--size", "777777"],
    ];
    for (i, args) in builds.iter().enumerate() {
        let file = dir.path().join(format!("built{i}.bin"));
        let mut all = vec!["image", "build", "-o", file.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = fota(&all);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (valid, text) = o.image_info(&file);
        assert!(valid, "esptool rejects our image {args:?}:\n{text}");
        let version = args[1];
        assert!(text.contains(&format!("App version: {version}")), "{text}");
        if let Some(p) = args.iter().position(|a| *a == "--secure-version") {
            assert!(
                text.contains(&format!("Secure version: {}", args[p + 1])),
                "{text}"
            );
        }
        if let Some(p) = args.iter().position(|a| *a == "--project") {
            assert!(
                text.contains(&format!("Project name: {}", args[p + 1])),
                "{text}"
            );
        }
        assert!(ours(&file));
    }

    // 2. The golden of research/device.md §3.
    let golden = o.elf2image(
        dir.path(),
        "golden",
        &[
            "--version",
            "1.2.3",
            "--project",
            "fota_demo",
            "--secure-version",
            "0",
            "--seed",
            "seed0",
            "--size-kb",
            "200",
        ],
    );
    let bytes = std::fs::read(&golden).unwrap();
    assert_eq!(
        hex::encode(fota_testkit::sha256(&bytes)),
        "317661c69b548b17316774ff02d8bbc63105cdd7bc13bf0dbf2fb2a9a7971060"
    );
    let out = fota(&["image", "inspect", golden.to_str().unwrap(), "--json"]);
    assert!(out.status.success());
    let j = json(&out);
    assert_eq!(j["checksum"]["stored"], 0xf2);
    assert_eq!(
        j["hash"]["stored"],
        "691648e6ffd4e2fc3ccb8d32cc82738c415aba63984b4cd77d6c709d4f616db5"
    );
    assert_eq!(j["image_len"], 204_912);

    // 3. Same verdict as esptool on elf2image images and corrupted copies.
    let variants: [(&str, &[&str]); 3] = [
        ("default", &[]),
        (
            "secure3",
            &[
                "--version",
                "2.0.0",
                "--secure-version",
                "3",
                "--seed",
                "seed2",
            ],
        ),
        (
            "small",
            &["--version", "0.1", "--size-kb", "40", "--seed", "s"],
        ),
    ];
    // One thread per variant: each esptool run is a Python start-up, mostly waiting.
    let compared: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = variants
            .iter()
            .map(|&(name, args)| {
                let (o, dir) = (&o, dir.path());
                scope.spawn(move || compare_variant(o, dir, name, args))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    eprintln!("esptool oracle: {compared} verdicts compared");
}

/// Builds one mkelf variant and compares verdicts on it and its corrupted copies.
fn compare_variant(o: &Oracle, dir: &Path, name: &str, args: &[&str]) -> usize {
    let mut compared = 0;
    let bin = o.elf2image(dir, name, args);
    let orig = std::fs::read(&bin).unwrap();
    let n = orig.len();
    type Mutation = Box<dyn Fn(&mut Vec<u8>)>;
    let mutations: Vec<(&str, Mutation)> = vec![
        ("original", Box::new(|_| {})),
        ("flip payload", Box::new(|b| b[0x200] ^= 0x01)),
        ("flip last", Box::new(|b| *b.last_mut().unwrap() ^= 0x01)),
        ("flip spi mode", Box::new(|b| b[2] ^= 0x01)),
        ("flip chip id", Box::new(|b| b[12] ^= 0x02)),
        ("clear hash flag", Box::new(|b| b[23] ^= 0x01)),
        ("bad hash flag", Box::new(|b| b[23] = 0x07)),
        ("flip seg count", Box::new(|b| b[1] ^= 0x01)),
        ("too many segs", Box::new(|b| b[1] = 0x11)),
        ("flip seg len", Box::new(|b| b[28] ^= 0x04)),
        ("flip checksum", Box::new(move |b| b[n - 33] ^= 0x80)),
        ("flip padding", Box::new(move |b| b[n - 34] ^= 0x01)),
        ("truncate 100", Box::new(move |b| b.truncate(n - 100))),
        ("truncate in hash", Box::new(move |b| b.truncate(n - 5))),
        ("truncate 1000", Box::new(|b| b.truncate(1000))),
        ("pad 1 MiB", Box::new(|b| b.resize(0x10_0000, 0xFF))),
    ];
    for (what, m) in mutations {
        let mut b = orig.clone();
        m(&mut b);
        let file = dir.join(format!("{name}-{}.bin", what.replace(' ', "_")));
        std::fs::write(&file, &b).unwrap();
        let (theirs, text) = o.image_info(&file);
        let mine = ours(&file);
        assert_eq!(
            mine, theirs,
            "{name}/{what}: fota says {mine}, esptool:\n{text}"
        );
        if matches!(what, "original" | "pad 1 MiB" | "clear hash flag") {
            assert!(mine, "{name}/{what} must be valid");
        }
        compared += 1;
    }
    // A spread of single-byte flips across the whole image.
    for k in 0..6 {
        let pos = (n / 6) * k + 37;
        let mut b = orig.clone();
        b[pos] ^= 0x10;
        let file = dir.join(format!("{name}-flip{pos}.bin"));
        std::fs::write(&file, &b).unwrap();
        let (theirs, text) = o.image_info(&file);
        assert_eq!(ours(&file), theirs, "{name}/flip at {pos}:\n{text}");
        compared += 1;
    }
    compared
}
