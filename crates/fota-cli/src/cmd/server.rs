//! `fota server`: run the update server; `fota server backup`: copy its database online;
//! `fota server admin-token`: recover admin access without HTTP.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use fota_server::config::{Config, LEGACY_PSK_ENV, Overrides, PskSource};

/// Run the update server (or back up its database).
///
/// Settings come from flags, then the environment, then the config file (`--config`, or
/// `DATA/fota.toml` when present), then defaults. The first line on stdout is
/// `listening on http://ADDR` (`https://` with `--tls-cert`); with `--legacy-http-listen` the
/// next is `legacy API on http://ADDR`; on the very first start without `FOTA_ADMIN_TOKEN` a
/// line then shows the generated admin token, once.
///
/// HTTPS: `--tls-cert` and `--tls-key` (PEM), reloaded on SIGHUP without dropping connections.
/// Plain HTTP is only served on a loopback address unless `--insecure-http` is given.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct ServerArgs {
    #[command(subcommand)]
    action: Option<ServerAction>,
    /// Data folder (database `fota.db`, `blobs/`).
    #[arg(long, env = "FOTA_DATA", value_name = "DIR")]
    data: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port) [default: 127.0.0.1:8080].
    #[arg(long, env = "FOTA_LISTEN", value_name = "ADDR")]
    listen: Option<String>,
    /// Trusted root record (v2), as `fota keys init` writes it.
    #[arg(long, value_name = "root.bin", requires = "status_key")]
    root: Option<PathBuf>,
    /// The status key (v2); decrypted with FOTA_KEY_PASSPHRASE when encrypted.
    #[arg(long, value_name = "FILE", requires = "root")]
    status_key: Option<PathBuf>,
    /// File holding the legacy PSK: its raw bytes, one trailing newline dropped. Turns the
    /// legacy (seed) API on [else FOTA_LEGACY_PSK, the key itself (its UTF-8 bytes, or `hex:…`
    /// for a binary key); else config `legacy_psk_file`]. The key is never a flag: a command
    /// line is visible to every user of the machine.
    #[arg(long, value_name = "FILE")]
    legacy_psk_file: Option<PathBuf>,
    /// Config file (TOML) [default: DATA/fota.toml if present].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM, leaf first); reloaded on SIGHUP.
    #[arg(long, value_name = "CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM); reloaded on SIGHUP.
    #[arg(long, value_name = "KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Allow plain HTTP on an address other than loopback (tokens then cross the network in
    /// the clear).
    #[arg(long)]
    insecure_http: bool,
    /// Also serve the legacy (seed) device API, and nothing else, over plain HTTP on ADDR: for
    /// seed devices that cannot speak TLS (the seed's upload and rollback stay on --listen).
    #[arg(long, value_name = "ADDR")]
    legacy_http_listen: Option<String>,
    /// MAC each legacy answer with the key of the device it names, HKDF-SHA256 of the PSK and
    /// the device id (`fota legacy device-key ID` prints one), not with the PSK itself: for
    /// legacy firmware built with its own key, which names its device_id on every request
    /// (requests without one are refused). One key read out of a device then forges answers
    /// for that device alone [else config `legacy.per_device_keys`; default: the fleet key].
    #[arg(long)]
    legacy_per_device_keys: bool,
}

/// Shortest `FOTA_ADMIN_TOKEN` accepted.
const ADMIN_TOKEN_MIN: usize = 32;

#[derive(Debug, clap::Subcommand)]
enum ServerAction {
    /// TLS certificates for the server.
    #[command(subcommand)]
    Tls(TlsAction),
    /// Write a consistent copy of the database while the server runs (SQLite `VACUUM INTO`).
    ///
    /// Blobs are immutable and content-addressed: copy `DATA/blobs/` after the backup to get a
    /// matching set. Restore: stop the server, put the file at `DATA/fota.db` (removing
    /// `fota.db-wal` and `fota.db-shm`), start it.
    Backup {
        /// Data folder of the server.
        #[arg(long, env = "FOTA_DATA", value_name = "DIR", default_value = fota_server::config::DEFAULT_DATA)]
        data: PathBuf,
        /// The backup file to write (must not exist).
        #[arg(short = 'o', long = "out", value_name = "FILE")]
        out: PathBuf,
    },
    /// Make a fresh admin token directly in the server's database and print it: the way back
    /// in when no admin token works (lost, revoked, expired).
    ///
    /// Run it on the server's machine, with access to the data folder; it needs no HTTP and no
    /// other token, and works while the server runs. The token is printed once on stdout (the
    /// database keeps only its SHA-256), and the audit log records `token.recover`.
    AdminToken {
        /// Data folder of the server.
        #[arg(long, env = "FOTA_DATA", value_name = "DIR", default_value = fota_server::config::DEFAULT_DATA)]
        data: PathBuf,
        /// Name of the new token.
        #[arg(long, default_value = "recovery admin")]
        name: String,
    },
}

#[derive(Debug, clap::Subcommand)]
enum TlsAction {
    /// Write DIR/ca.pem, DIR/cert.pem and DIR/key.pem: a private CA and a server certificate
    /// it signs (for `localhost` and `127.0.0.1` unless --host is given).
    ///
    /// The CA's own key is not kept, so ca.pem vouches for this one certificate only: give it
    /// to clients (`--ca-file`, `FOTA_CA_FILE`), and cert.pem / key.pem to `fota server
    /// --tls-cert / --tls-key`. Existing files are never overwritten: the command fails and
    /// names them.
    SelfSigned {
        /// Folder to write into (created when missing).
        #[arg(short = 'o', long = "out", value_name = "DIR")]
        out: PathBuf,
        /// A DNS name or IP address the certificate is for (repeatable).
        #[arg(long = "host", value_name = "NAME")]
        hosts: Vec<String>,
    },
}

pub(crate) fn run(args: ServerArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match args.action {
        Some(ServerAction::Tls(TlsAction::SelfSigned { out, hosts })) => self_signed(&out, hosts),
        Some(ServerAction::Backup { data, out }) => runtime.block_on(backup(data, out)),
        Some(ServerAction::AdminToken { data, name }) => runtime.block_on(admin_token(data, name)),
        None => runtime.block_on(serve(args)),
    }
}

fn self_signed(out: &std::path::Path, hosts: Vec<String>) -> anyhow::Result<ExitCode> {
    use fota_keys::tls::{DEFAULT_HOSTS, SelfSigned};
    let hosts = if hosts.is_empty() {
        DEFAULT_HOSTS.iter().map(|h| (*h).to_owned()).collect()
    } else {
        hosts
    };
    let set = SelfSigned::generate(&hosts)?;
    let [ca, cert, key] = set.write_dir(out)?;
    println!("{}", ca.display());
    println!("{}", cert.display());
    println!("{}", key.display());
    eprintln!(
        "a CA (its key discarded) and a server certificate for {}; serve with \
         `fota server --tls-cert {} --tls-key {}`, trust with --ca-file {} or FOTA_CA_FILE",
        hosts.join(", "),
        cert.display(),
        key.display(),
        ca.display()
    );
    Ok(ExitCode::SUCCESS)
}

async fn backup(data: PathBuf, out: PathBuf) -> anyhow::Result<ExitCode> {
    let store = open_existing(&data).await?;
    fota_server::store::Store::backup_into(&store, &out)
        .await
        .with_context(|| format!("writing {}", out.display()))?;
    eprintln!("backup written to {}", out.display());
    Ok(ExitCode::SUCCESS)
}

async fn open_existing(data: &std::path::Path) -> anyhow::Result<fota_server::store::SqliteStore> {
    let db = data.join("fota.db");
    anyhow::ensure!(
        db.exists(),
        "{} does not exist (is --data the server's data folder?)",
        db.display()
    );
    fota_server::store::SqliteStore::open(&db)
        .await
        .with_context(|| format!("opening {}", db.display()))
}

async fn admin_token(data: PathBuf, name: String) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        !name.trim().is_empty() && name.len() <= 128,
        "--name must be 1-128 characters"
    );
    let store = open_existing(&data).await?;
    let (token, secret) = fota_server::tokens::recover_admin(&store, &name)
        .await
        .context("creating the admin token")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", secret.expose())?;
    out.flush()?;
    eprintln!(
        "admin token {} ({name}) created; it is shown only this once",
        token.id
    );
    Ok(ExitCode::SUCCESS)
}

async fn serve(args: ServerArgs) -> anyhow::Result<ExitCode> {
    // `main` restores SIGPIPE's default (die) for the pipeline-friendly subcommands; a server
    // writes to sockets whose peers vanish all the time, and must get EPIPE instead. Handling
    // the signal (and ignoring the events) keeps it from terminating the process.
    #[cfg(unix)]
    let _sigpipe = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::pipe())
        .context("handling SIGPIPE")?;
    let config = Config::resolve(Overrides {
        data: args.data,
        listen: args.listen,
        root: args.root,
        status_key: args.status_key,
        legacy_psk: legacy_psk(args.legacy_psk_file, std::env::var_os(LEGACY_PSK_ENV))?,
        config: args.config,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        insecure_http: args.insecure_http,
        legacy_http_listen: args.legacy_http_listen,
        legacy_per_device_keys: args.legacy_per_device_keys,
    })?;
    let addr = config.listen_addr()?;
    let legacy_addr = config.legacy_http_addr()?;
    let tls = config
        .tls
        .clone()
        .map(fota_server::tls::TlsReloader::open)
        .transpose()
        .context("loading the TLS certificate")?;
    // The library takes the passphrase as a value; the environment is the CLI's to read.
    let passphrase = std::env::var(fota_keys::PASSPHRASE_ENV).ok();
    let state = fota_server::AppState::open(config.clone(), passphrase.as_deref())
        .await
        .with_context(|| format!("opening data folder {}", config.data.display()))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    let legacy_listener = match legacy_addr {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("binding {a} (--legacy-http-listen)"))?,
        ),
        None => None,
    };
    let admin = std::env::var("FOTA_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    if let Some(t) = &admin
        && t.len() < ADMIN_TOKEN_MIN
    {
        // A short admin token can be guessed online; generated ones are 51 bytes.
        anyhow::bail!(
            "FOTA_ADMIN_TOKEN is {} bytes; an admin token must be at least {ADMIN_TOKEN_MIN} \
             (leave it unset to have one generated)",
            t.len()
        );
    }
    let generated = state
        .bootstrap_admin(admin.as_deref())
        .await
        .context("setting up the bootstrap admin token")?;
    let mut out = std::io::stdout().lock();
    let scheme = if tls.is_some() { "https" } else { "http" };
    writeln!(out, "listening on {scheme}://{local}")?;
    if let Some(l) = &legacy_listener {
        writeln!(out, "legacy API on http://{}", l.local_addr()?)?;
    }
    if let Some(token) = generated {
        writeln!(
            out,
            "admin token (shown once; set FOTA_ADMIN_TOKEN to choose your own): {}",
            token.expose()
        )?;
    }
    out.flush()?;
    drop(out);
    tracing::info!(
        data = %config.data.display(),
        v2 = state.trust().is_some(),
        legacy = state.legacy_enabled(),
        "server started"
    );
    for warning in startup_warnings(state.trust().is_some(), state.legacy_enabled()) {
        tracing::warn!("{warning}");
    }
    if !local.ip().is_loopback() && tls.is_none() {
        tracing::warn!(
            %local,
            "--insecure-http: plain HTTP on a network address; bearer tokens travel in the clear"
        );
    }
    if let Some(l) = &legacy_listener {
        tracing::warn!(
            addr = %l.local_addr()?,
            "legacy API over plain HTTP: its PSK-MAC'd requests and answers can be read on the way"
        );
    }
    #[cfg(unix)]
    if let Some(tls) = tls.clone() {
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("handling SIGHUP")?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                match tls.reload() {
                    Ok(()) => tracing::info!(
                        cert = %tls.files().cert.display(),
                        "TLS certificate reloaded; new connections use it"
                    ),
                    Err(e) => tracing::error!(
                        error = %e,
                        "TLS certificate not reloaded; the previous one stays in use"
                    ),
                }
            }
        });
    }
    let listeners = fota_server::Listeners {
        main: listener,
        tls,
        legacy_http: legacy_listener,
    };
    fota_server::serve_on(listeners, state, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// What the start-up log warns about: the APIs that are off, and what the legacy API cannot
/// protect against when it is on.
fn startup_warnings(v2: bool, legacy: bool) -> Vec<String> {
    let mut warnings = Vec::new();
    if legacy {
        warnings.push(format!(
            "legacy (seed) API on. {}",
            super::legacy::CANNOT_PROTECT
        ));
    }
    if !v2 {
        warnings.push(
            "no --root/--status-key: the v2 device and release API answers 503 until configured"
                .to_owned(),
        );
    }
    warnings
}

/// Where the legacy PSK comes from: `--legacy-psk-file`, else the key in `FOTA_LEGACY_PSK`
/// (the config file's `legacy_psk_file` comes after both). The environment is read here, not
/// by clap, as there is no flag for it to stand in for.
fn legacy_psk(file: Option<PathBuf>, env: Option<OsString>) -> anyhow::Result<Option<PskSource>> {
    match (file, env) {
        (Some(file), _) => Ok(Some(PskSource::File(file))),
        (None, Some(value)) => match value.into_string() {
            Ok(value) => Ok(Some(PskSource::Value(value))),
            Err(_) => anyhow::bail!(
                "{LEGACY_PSK_ENV} is not UTF-8: write a binary key as hex:…, or put it in a \
                 file for --legacy-psk-file"
            ),
        },
        (None, None) => Ok(None),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            core::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => core::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = core::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_up_log_says_what_the_legacy_api_cannot_protect_against_when_it_is_on() {
        let says = |v2, legacy| startup_warnings(v2, legacy).join("\n");
        let on = says(true, true);
        assert!(on.contains(super::super::legacy::CANNOT_PROTECT), "{on}");
        assert!(on.contains("forge chunks") && on.contains("v2"), "{on}");
        assert_eq!(says(true, false), "", "nothing to warn about");
        let neither = says(false, false);
        assert!(
            neither.contains("--root") && !neither.contains("PSK"),
            "{neither}"
        );
    }

    #[test]
    fn the_psk_file_flag_beats_the_environment() {
        let from_env = Some(OsString::from("hex:00ff"));
        assert_eq!(
            legacy_psk(Some("/k".into()), from_env.clone()).unwrap(),
            Some(PskSource::File("/k".into()))
        );
        assert_eq!(
            legacy_psk(None, from_env).unwrap(),
            Some(PskSource::Value("hex:00ff".into())),
            "taken as given: the server applies the value rules"
        );
        assert_eq!(legacy_psk(None, None).unwrap(), None);
    }

    #[cfg(unix)]
    #[test]
    fn a_psk_in_the_environment_that_is_not_utf8_is_refused_with_advice() {
        use std::os::unix::ffi::OsStringExt as _;
        let err = legacy_psk(None, Some(OsString::from_vec(vec![0xFF, 0x00]))).unwrap_err();
        let err = err.to_string();
        assert!(
            err.contains("FOTA_LEGACY_PSK") && err.contains("--legacy-psk-file"),
            "{err}"
        );
    }
}
