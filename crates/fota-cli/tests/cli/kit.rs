//! What the tests share: the `fota` binary run with none of the caller's `FOTA_*` settings, and
//! its output as text or JSON.

use std::process::{Command, Output};

use serde_json::Value;

/// Every environment variable `fota` reads a setting from: a test sets the ones it means.
const SETTINGS: [&str; 9] = [
    "FOTA_SERVER",
    "FOTA_TOKEN",
    "FOTA_KEYS",
    "FOTA_KEY_PASSPHRASE",
    "FOTA_CONFIG",
    "FOTA_ADMIN_TOKEN",
    "FOTA_LEGACY_PSK",
    "FOTA_DATA",
    "FOTA_LISTEN",
];

/// `fota ARGS`, not yet run: logs at `warn`, and none of the [`SETTINGS`] of the environment
/// the tests run in.
pub(crate) fn fota_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fota"));
    cmd.args(args).env("RUST_LOG", "warn");
    for var in SETTINGS {
        cmd.env_remove(var);
    }
    cmd
}

/// [`fota_command`] run to its end.
pub(crate) fn fota(args: &[&str]) -> Output {
    fota_command(args).output().expect("run fota")
}

/// Output bytes as text.
pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A command's stdout as JSON; a panic shows its stdout and stderr when it is not.
pub(crate) fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", text(&out.stdout), text(&out.stderr)))
}

/// An HTTP body as JSON; a panic shows the body when it is not.
pub(crate) fn json_body(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("{e}: {}", text(body)))
}
