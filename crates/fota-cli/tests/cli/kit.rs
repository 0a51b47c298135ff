//! What the tests share: the `fota` binary run with none of the caller's `FOTA_*` settings, its
//! output as text or JSON, a `fota server` process on a free port, raw HTTP to it, and copying a
//! folder.
#![allow(
    clippy::std_instead_of_core,
    reason = "a host-only test: core paths matter in the crates the device links, not here"
)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

/// The admin token the tests start servers with (`FOTA_ADMIN_TOKEN` must be 32 bytes or more).
pub(crate) const ADMIN_TOKEN: &str = "fota_op_cli_test_admin_token_0123456789";

/// The seed's legacy pre-shared key, for servers that keep the legacy API on.
pub(crate) const LEGACY_PSK: &str = "your-32-byte-secret-key-here!!";

/// Every environment variable `fota` reads a setting from: a test sets the ones it means.
const SETTINGS: [&str; 10] = [
    "FOTA_SERVER",
    "FOTA_TOKEN",
    "FOTA_KEYS",
    "FOTA_KEY_PASSPHRASE",
    "FOTA_CONFIG",
    "FOTA_ADMIN_TOKEN",
    "FOTA_LEGACY_PSK",
    "FOTA_DATA",
    "FOTA_LISTEN",
    "FOTA_CA_FILE",
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

/// `fota server` on a free port of 127.0.0.1 over the data folder `data`, trusting the root key
/// and signing status with the status key of the key folder `keys` (as `fota keys init` made
/// it) when given; the caller adds the rest of its flags and environment, then
/// [`Server::start`]s it.
pub(crate) fn server_command(data: &Path, keys: Option<&Path>) -> Command {
    let mut cmd = fota_command(&["server", "--listen", "127.0.0.1:0", "--data"]);
    cmd.arg(data);
    if let Some(keys) = keys {
        cmd.arg("--root")
            .arg(keys.join("root.bin"))
            .arg("--status-key")
            .arg(keys.join("status.key"));
    }
    cmd
}

/// A running `fota server`, killed when dropped.
pub(crate) struct Server {
    child: Child,
    stdout: BufReader<ChildStdout>,
    pub(crate) addr: SocketAddr,
    /// `http://ADDR` (or `https://`), as the server's first line names it.
    pub(crate) url: String,
}

impl Server {
    /// Spawns `cmd` (a [`server_command`]) and waits for its first line, `listening on
    /// http://ADDR` (or `https://ADDR`). Its stderr is dropped; its stdout stays open for [`Self::next_line`].
    pub(crate) fn start(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let url = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line: {first:?}"))
            .to_owned();
        let addr = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .unwrap_or_else(|| panic!("first line: {first:?}"))
            .parse()
            .unwrap();
        Self {
            child,
            stdout,
            addr,
            url,
        }
    }

    /// The next line the server prints, trimmed.
    pub(crate) fn next_line(&mut self) -> String {
        let mut l = String::new();
        self.stdout.read_line(&mut l).unwrap();
        l.trim().to_owned()
    }

    /// SIGTERM, then the exit status.
    pub(crate) fn term(mut self) -> ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap()
    }

    /// SIGHUP (the server reloads its TLS pair).
    pub(crate) fn hup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGKILL, and waits for it to take.
    pub(crate) fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // After `term` or `kill9` the child is reaped and this does nothing.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request on its own connection, with a bearer `token` when given: (status, body).
pub(crate) fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = text(&raw[..split]);
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, raw[split + 4..].to_vec())
}

/// Copies the folder `from` to `to`, subfolders included.
pub(crate) fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
