//! What the operator commands share: where the server, token and key folder come from (flag >
//! environment > config file > default), turning the client's errors into advice, and output
//! helpers (tables, times, sizes, files written whole or not at all).
//!
//! The config file is `$FOTA_CONFIG`, else `$XDG_CONFIG_HOME/fota/config.toml`, else
//! `~/.config/fota/config.toml`; it is optional and holds only these keys:
//!
//! ```toml
//! server = "http://127.0.0.1:8080"
//! token = "fota_op_..."
//! keys = "/home/me/fleet-keys"
//! ```

use core::time::Duration;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow};
use fota_client::{Client, Error as ClientError};
use serde::Serialize;

/// The server when nothing else names one: where `fota server` listens by default.
pub(crate) const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// How to reach the server. Global, so they may follow the subcommand anywhere.
///
/// The environment is read here, not by clap: clap counts a value from the environment as
/// given on the command line, and so would print `--token <TOKEN>` in every usage line as if
/// it were required (and make it conflict with flags it conflicts with).
#[derive(Clone, clap::Args)]
pub(crate) struct ConnArgs {
    /// Server URL [else FOTA_SERVER, else config `server`, else http://127.0.0.1:8080].
    #[arg(long, value_name = "URL", global = true)]
    server: Option<String>,
    /// Operator API token [else FOTA_TOKEN, else config `token`].
    #[arg(long, value_name = "TOKEN", global = true)]
    token: Option<String>,
    /// For an https:// server: trust the CA certificates in FILE (PEM) besides the platform's
    /// roots [else FOTA_CA_FILE, else config `ca_file`].
    #[arg(long, value_name = "FILE", global = true)]
    ca_file: Option<PathBuf>,
}

/// The CA file for `https://` servers: `flag`, else `FOTA_CA_FILE`.
pub(crate) fn ca_file(flag: Option<PathBuf>) -> Option<PathBuf> {
    flag.or_else(|| env_setting("FOTA_CA_FILE").map(PathBuf::from))
}

/// A setting's value from the environment; unset and empty are the same.
pub(crate) fn env_setting(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The optional config file.
#[derive(Default, serde::Deserialize)]
struct ConfigFile {
    server: Option<String>,
    token: Option<String>,
    keys: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    #[serde(flatten)]
    other: std::collections::BTreeMap<String, toml::Value>,
}

/// What a `Debug` shows of an operator token: that there is one.
fn redacted(token: Option<&String>) -> Option<core::fmt::Arguments<'static>> {
    token.map(|_| format_args!("[redacted]"))
}

// By hand, as every command's arguments derive `Debug`: the operator token must not reach a
// log or a panic message with them.
impl core::fmt::Debug for ConnArgs {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let Self {
            server,
            token,
            ca_file,
        } = self;
        f.debug_struct("ConnArgs")
            .field("server", server)
            .field("token", &redacted(token.as_ref()))
            .field("ca_file", ca_file)
            .finish()
    }
}

impl core::fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let Self {
            server,
            token,
            keys,
            ca_file,
            other,
        } = self;
        f.debug_struct("ConfigFile")
            .field("server", server)
            .field("token", &redacted(token.as_ref()))
            .field("keys", keys)
            .field("ca_file", ca_file)
            .field("other", &other.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn config_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("FOTA_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("fota").join("config.toml"))
}

/// Reads the config file; a missing file is an empty one, except when `FOTA_CONFIG` names it.
fn load_config() -> anyhow::Result<ConfigFile> {
    let Some(path) = config_path() else {
        return Ok(ConfigFile::default());
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && std::env::var_os("FOTA_CONFIG").is_none() =>
        {
            return Ok(ConfigFile::default());
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let config: ConfigFile =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    for key in config.other.keys() {
        tracing::warn!(
            "{}: unknown key `{key}` ignored (known: server, token, keys, ca_file)",
            path.display()
        );
    }
    #[cfg(unix)]
    if config.token.is_some() {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(&path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                "{} holds a token but others may read it: chmod 600 it",
                path.display()
            );
        }
    }
    Ok(config)
}

impl ConnArgs {
    /// A client for the configured server and token.
    pub(crate) fn client(&self) -> anyhow::Result<Client> {
        let server = self.server.clone().or_else(|| env_setting("FOTA_SERVER"));
        let token = self.token.clone().or_else(|| env_setting("FOTA_TOKEN"));
        let ca = ca_file(self.ca_file.clone());
        let (server, token, ca) = if server.is_some() && token.is_some() && ca.is_some() {
            (server, token, ca)
        } else {
            let file = load_config()?;
            (
                server.or(file.server),
                token.or(file.token),
                ca.or(file.ca_file),
            )
        };
        let server = server.unwrap_or_else(|| DEFAULT_SERVER.to_owned());
        Ok(Client::with_ca_file(&server, token, ca.as_deref())?)
    }
}

/// The key folder: `--keys`, else `FOTA_KEYS`, else the config file's `keys`.
pub(crate) fn key_dir(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let from_env = std::env::var_os("FOTA_KEYS")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    if let Some(dir) = flag.or(from_env) {
        return Ok(dir);
    }
    load_config()?.keys.ok_or_else(|| {
        anyhow!("no key folder: pass --keys K, set FOTA_KEYS, or put `keys = \"K\"` in the config file (see `fota keys init`)")
    })
}

/// The passphrase of encrypted key files, if one is set.
pub(crate) fn passphrase() -> Option<String> {
    std::env::var(fota_keys::PASSPHRASE_ENV)
        .ok()
        .filter(|p| !p.is_empty())
}

/// Adds what the operator can do about a failed request.
pub(crate) fn explain(client: &Client, err: ClientError) -> anyhow::Error {
    let hint = match &err {
        ClientError::Transport { .. }
            if core::error::Error::source(&err)
                .is_some_and(|e| e.to_string().to_lowercase().contains("certificate")) =>
        {
            Some(format!(
                "the TLS certificate of {} is not trusted: pass the CA that signed it with \
                 --ca-file (or FOTA_CA_FILE)",
                client.server()
            ))
        }
        ClientError::Transport { .. } => Some(format!(
            "is the server running at {}? (--server, FOTA_SERVER)",
            client.server()
        )),
        ClientError::Api { status: 401, .. } => Some(
            "check the operator token (--token, FOTA_TOKEN, or `token` in the config file)".into(),
        ),
        ClientError::Api { status: 403, .. } => {
            Some("the token's role does not allow this (the server says which role it needs); ask an admin for a token of that role".into())
        }
        _ => None,
    };
    match hint {
        Some(h) => anyhow::Error::new(err).context(h),
        None => anyhow::Error::new(err),
    }
}

/// `client.call(...)` with [`explain`] on failure.
pub(crate) trait Explain<T> {
    fn explained(self, client: &Client) -> anyhow::Result<T>;
}

impl<T> Explain<T> for Result<T, ClientError> {
    fn explained(self, client: &Client) -> anyhow::Result<T> {
        self.map_err(|e| explain(client, e))
    }
}

/// Prints `value` as pretty JSON on stdout.
pub(crate) fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Aligns `rows` under `headers` in columns two spaces apart; the last column is not padded.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i + 1 == widths.len() {
                s.push_str(cell);
            } else {
                s.push_str(cell);
                s.extend(core::iter::repeat_n(' ', w - cell.chars().count() + 2));
            }
        }
        s.trim_end().to_owned()
    };
    let mut out = vec![line(&mut headers.iter().copied())];
    out.extend(rows.iter().map(|r| line(&mut r.iter().map(String::as_str))));
    out
}

/// Prints a table on stdout.
pub(crate) fn print_table(headers: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for line in table(headers, rows) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// How long ago `ms` (unix ms) was, coarsely: `4s ago`, `3m ago`, `2h ago`, `5d ago`.
pub(crate) fn ago(ms: Option<i64>) -> String {
    let Some(ms) = ms else {
        return "never".into();
    };
    let s = (now_ms() - ms).max(0) / 1000;
    match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86400 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86400),
    }
}

/// `ms` (unix ms) as an RFC 3339 UTC time to the second.
pub(crate) fn when(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A byte count for people: `512 B`, `64.0 KiB`, `1.3 MiB`.
pub(crate) fn size(n: i64) -> String {
    let n = n.max(0) as f64;
    if n < 1024.0 {
        format!("{n} B")
    } else if n < 1024.0 * 1024.0 {
        format!("{:.1} KiB", n / 1024.0)
    } else {
        format!("{:.1} MiB", n / (1024.0 * 1024.0))
    }
}

/// A file that appears at its path complete or not at all: written to a temporary name next
/// to it, synced, then renamed over it. Creating it first also proves the path writable before
/// anything irreversible (a credential shown once) happens.
pub(crate) struct OutFile {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
}

impl OutFile {
    /// Creates the temporary file; `secret` makes it (and so the result) mode 0600.
    pub(crate) fn create(path: &Path, secret: bool) -> anyhow::Result<Self> {
        let name = path
            .file_name()
            .ok_or_else(|| anyhow!("{} is not a file path", path.display()))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp{}", std::process::id()));
        let tmp = path.with_file_name(tmp_name);
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        if secret {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        #[cfg(not(unix))]
        let _ = secret;
        let file = options
            .open(&tmp)
            .with_context(|| format!("cannot write next to {}", path.display()))?;
        Ok(Self {
            path: path.to_owned(),
            tmp,
            file: Some(file),
        })
    }

    /// The open temporary file.
    pub(crate) fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("file is open until commit")
    }

    /// Syncs the file and moves it into place.
    pub(crate) fn commit(mut self) -> anyhow::Result<()> {
        let file = self.file.take().expect("commit once");
        file.sync_all()
            .with_context(|| format!("writing {}", self.path.display()))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path)
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

impl Drop for OutFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_the_connection_settings_hides_the_token() {
        let args = ConnArgs {
            server: Some("http://127.0.0.1:8080".into()),
            token: Some("fota_op_do-not-print".into()),
            ca_file: None,
        };
        let file: ConfigFile =
            toml::from_str("server = \"http://h:1\"\ntoken = \"fota_op_do-not-print\"\n").unwrap();
        for debug in [format!("{args:?}"), format!("{file:?}")] {
            assert!(debug.contains("token: Some([redacted])"), "{debug}");
            assert!(!debug.contains("do-not-print"), "{debug}");
        }
        assert!(format!("{:?}", ConfigFile::default()).contains("token: None"));
    }

    #[test]
    fn tables_align() {
        let rows = vec![
            vec!["a".to_owned(), "long cell".to_owned(), "x".to_owned()],
            vec!["bbbb".to_owned(), "c".to_owned(), String::new()],
        ];
        assert_eq!(
            table(&["H1", "H2", "H3"], &rows),
            ["H1    H2         H3", "a     long cell  x", "bbbb  c"]
        );
    }

    #[test]
    fn sizes_and_ages() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(65536), "64.0 KiB");
        assert_eq!(size(3 << 20), "3.0 MiB");
        assert_eq!(ago(None), "never");
        assert_eq!(ago(Some(now_ms() - 5_000)), "5s ago");
        assert_eq!(ago(Some(now_ms() - 7_200_000)), "2h ago");
        assert_eq!(when(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn out_files_appear_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        let mut f = OutFile::create(&path, true).unwrap();
        f.file().write_all(b"{}").unwrap();
        drop(f);
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let mut f = OutFile::create(&path, true).unwrap();
        f.file().write_all(b"{}").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
