//! `fota devices`: provision devices, see what they run and do, revoke or rotate their
//! credentials.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use fota_client::Client;
use fota_client::api::{Device, DeviceState, Provisioning, Release};

use super::common::{self, ConnArgs, Explain as _, OutFile};

#[derive(Debug, clap::Args)]
pub(crate) struct DevicesArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    command: DevicesCommand,
}

#[derive(Debug, clap::Subcommand)]
enum DevicesCommand {
    /// Provision a v2 device and write its provisioning file (`fota emulate --credential`
    /// reads it).
    ///
    /// The file is JSON: device_id, token (the device's bearer credential), vendor_id,
    /// class_id (UUIDv5 of vendor and class), root (the root record, standard base64), class,
    /// device_uuid. It is written mode 0600; the server keeps only the token's SHA-256, so this
    /// is the only copy (`fota devices rotate` makes a new one).
    Add {
        /// Device name (1-64 of A-Z a-z 0-9 . _ -), e.g. EcoWatt001.
        #[arg(value_parser = super::parse_name)]
        id: String,
        /// Hardware class name (same characters), e.g. ecowatt-v1.
        #[arg(long, value_name = "C", value_parser = super::parse_name)]
        class: String,
        /// Provisioning file to write [default: print it on stdout].
        #[arg(short = 'o', long = "out", value_name = "ID.json")]
        out: Option<PathBuf>,
    },
    /// List devices: version, state, progress, last contact, assignment.
    List {
        /// Only devices of this class.
        #[arg(long, value_name = "C")]
        class: Option<String>,
        /// The server's device records as a JSON array on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Show one device: what it runs, its update state and progress, open orders, recent
    /// events.
    Show {
        /// Device name.
        id: String,
        /// How many recent events to show (1-1000).
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(i64).range(1..=1000))]
        events: i64,
        /// The device record plus `events` and `rollback_orders` as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a device's credential: its requests are refused from now on.
    Revoke {
        /// Device name.
        id: String,
    },
    /// Remove a device (v2 or legacy) with its history: events, check-ins, rollback orders
    /// (admin). The audit log keeps the deletion. A v2 device's credential stops working; a
    /// legacy device that polls again is recorded anew.
    Delete {
        /// Device name.
        id: String,
    },
    /// Give a device a new credential (the old one stops working at once) and write its new
    /// provisioning file.
    ///
    /// A revoked device is refused: rotating it would re-enable it. --reactivate does that.
    Rotate {
        /// Device name.
        id: String,
        /// Also lift the device's revocation, if it is revoked.
        #[arg(long)]
        reactivate: bool,
        /// Provisioning file to write (replaced if it exists) [default: stdout].
        #[arg(short = 'o', long = "out", value_name = "ID.json")]
        out: Option<PathBuf>,
    },
}

pub(crate) fn run(args: DevicesArgs) -> anyhow::Result<ExitCode> {
    let client = args.conn.client()?;
    match args.command {
        DevicesCommand::Add { id, class, out } => {
            // Prove the output writable before the server makes a credential shown only once.
            let out = out.map(|p| OutFile::create(&p, true).map(|f| (p, f)));
            let out = out.transpose()?;
            let prov = client.add_device(&id, &class).explained(&client)?;
            write_provisioning(&prov, out)?;
            eprintln!("provisioned {id} (class {class})");
        }
        DevicesCommand::Rotate {
            id,
            reactivate,
            out,
        } => {
            let out = out.map(|p| OutFile::create(&p, true).map(|f| (p, f)));
            let out = out.transpose()?;
            let prov = match client.rotate_device(&id, reactivate) {
                Err(e) if e.code() == Some("device_revoked") => {
                    return Err(anyhow::Error::new(e).context(
                        "a rotation would re-enable the revoked device: pass --reactivate to do \
                         that",
                    ));
                }
                other => other.explained(&client)?,
            };
            write_provisioning(&prov, out)?;
            eprintln!("rotated the credential of {id}; the old one no longer works");
        }
        DevicesCommand::Delete { id } => {
            client.delete_device(&id).explained(&client)?;
            eprintln!("deleted device {id}");
        }
        DevicesCommand::Revoke { id } => {
            client.revoke_device(&id).explained(&client)?;
            eprintln!("revoked the credential of {id}");
        }
        DevicesCommand::List { class, json } => {
            let devices = client.list_devices(class.as_deref()).explained(&client)?;
            if json {
                common::print_json(&devices)?;
            } else {
                let releases = release_names(&client)?;
                let rows: Vec<Vec<String>> =
                    devices.iter().map(|d| device_row(d, &releases)).collect();
                common::print_table(&DEVICE_HEADERS, &rows)?;
            }
        }
        DevicesCommand::Show { id, events, json } => show(&client, &id, events, json)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn write_provisioning(prov: &Provisioning, out: Option<(PathBuf, OutFile)>) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(prov)? + "\n";
    match out {
        Some((path, mut file)) => {
            file.file().write_all(text.as_bytes())?;
            file.commit()?;
            eprintln!(
                "wrote {} (keep it secret: it holds the device's only credential)",
                path.display()
            );
        }
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(())
}

/// Release id → `version` (or `version (class)`), to show versions where the API has ids.
pub(crate) fn release_names(client: &Client) -> anyhow::Result<HashMap<String, Release>> {
    Ok(client
        .list_releases(None)
        .explained(client)?
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect())
}

pub(crate) fn release_label(releases: &HashMap<String, Release>, id: Option<&str>) -> String {
    match id {
        None => "-".into(),
        Some(id) => releases
            .get(id)
            .map_or_else(|| id.to_owned(), |r| r.version.clone()),
    }
}

/// Columns of device tables (`devices list`, `watch`).
pub(crate) const DEVICE_HEADERS: [&str; 7] = [
    "DEVICE", "CLASS", "VERSION", "STATE", "PROGRESS", "SEEN", "ASSIGNED",
];

/// `42% 27.0 KiB/64.0 KiB` while a download is under way, else `-`.
pub(crate) fn progress(d: &Device) -> String {
    if d.progress_total > 0 && d.state == DeviceState::Downloading {
        let pct = d.progress_bytes.clamp(0, d.progress_total) * 100 / d.progress_total;
        format!(
            "{pct}% {}/{}",
            common::size(d.progress_bytes),
            common::size(d.progress_total)
        )
    } else {
        "-".into()
    }
}

/// One row of a device table.
pub(crate) fn device_row(d: &Device, releases: &HashMap<String, Release>) -> Vec<String> {
    let mut state = d.state.to_string();
    if d.revoked_at.is_some() {
        state.push_str(" (revoked)");
    }
    if let Some(order) = &d.rollback_order {
        state.push_str(if order.delivered_at.is_some() {
            " +rollback delivered"
        } else {
            " +rollback ordered"
        });
    }
    let mut assigned = release_label(releases, d.effective_release_id.as_deref());
    if d.effective_release_id.is_some() && d.effective_release_id == d.suppressed_release_id {
        assigned.push_str(" (refused)");
    }
    vec![
        d.id.clone(),
        d.class.clone().unwrap_or_else(|| d.protocol.to_string()),
        d.fw_version.clone().unwrap_or_else(|| "-".into()),
        state,
        progress(d),
        common::ago(d.last_seen_at),
        assigned,
    ]
}

/// `check-in format 2, esp32c3, up 1h 2m, reset: power-on, 80 KiB free`.
fn telemetry_line(t: &fota_client::api::DeviceTelemetry) -> String {
    let mut parts = vec![format!("check-in format {}", t.agent_format)];
    if let Some(chip) = t
        .chip
        .clone()
        .or_else(|| t.chip_id.map(|c| format!("chip {c}")))
    {
        parts.push(chip);
    }
    if let Some(up) = t.uptime_s.and_then(|s| u64::try_from(s).ok()) {
        parts.push(format!(
            "up {}",
            humantime::format_duration(core::time::Duration::from_secs(up))
        ));
    }
    if let Some(r) = t.reset_reason {
        // esp_reset_reason_t, as esp_system.h names them.
        let name = match r {
            1 => "power-on".to_owned(),
            3 => "software".to_owned(),
            4 => "panic".to_owned(),
            5..=7 => "watchdog".to_owned(),
            8 => "deep sleep".to_owned(),
            9 => "brown-out".to_owned(),
            0 => "unknown".to_owned(),
            n => format!("code {n}"),
        };
        parts.push(format!("reset: {name}"));
    }
    if let Some(h) = t.free_heap {
        parts.push(format!("{} KiB free", h / 1024));
    }
    parts.join(", ")
}

fn show(client: &Client, id: &str, events: i64, json: bool) -> anyhow::Result<()> {
    let device = client.device(id).explained(client)?;
    let history = client
        .device_events(id, None, Some(events))
        .explained(client)?;
    let orders = client.rollback_orders(id).explained(client)?;
    if json {
        let mut value = serde_json::to_value(&device)?;
        if let Some(obj) = value.as_object_mut() {
            obj.insert("events".into(), serde_json::to_value(&history)?);
            obj.insert("rollback_orders".into(), serde_json::to_value(&orders)?);
        }
        return common::print_json(&value);
    }
    let releases = release_names(client)?;
    let dash = || "-".to_owned();
    let mut out = std::io::stdout().lock();
    let mut field = |name: &str, value: String| writeln!(out, "{name:<12}{value}");
    field(
        "device",
        format!(
            "{} ({}{})",
            device.id,
            device.protocol,
            device
                .class
                .as_deref()
                .map(|c| format!(", class {c}"))
                .unwrap_or_default()
        ),
    )?;
    if let Some(uuid) = &device.uuid {
        field("uuid", uuid.clone())?;
    }
    field(
        "state",
        match device.state_changed_at {
            Some(t) => format!(
                "{} since {} ({})",
                device.state,
                common::when(t),
                common::ago(Some(t))
            ),
            None => device.state.to_string(),
        },
    )?;
    field(
        "running",
        match &device.fw_version {
            None => dash(),
            Some(v) => {
                let mut s = v.clone();
                if let Some(seq) = device.fw_sequence {
                    s.push_str(&format!(", sequence {seq}"));
                }
                if let Some(slot) = device.slot {
                    s.push_str(&format!(", slot {slot}"));
                }
                if let Some(ota) = &device.ota_state {
                    s.push_str(&format!(", otadata {ota}"));
                }
                s
            }
        },
    )?;
    if let Some(sha) = &device.fw_sha256 {
        field("image", sha.clone())?;
    }
    field(
        "last result",
        device.last_result.clone().unwrap_or_else(dash),
    )?;
    field("last seen", common::ago(device.last_seen_at))?;
    if let Some(t) = &device.telemetry {
        field("agent", telemetry_line(t))?;
        if !t.attributes.is_empty() {
            let pairs: Vec<String> = t
                .attributes
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            field("attributes", pairs.join(" "))?;
        }
    }
    field("progress", progress(&device))?;
    let assigned = match (&device.effective_release_id, &device.assigned_release_id) {
        (None, _) => dash(),
        (Some(e), Some(a)) if e == a => format!(
            "{} (release {e}, assigned to this device)",
            release_label(&releases, Some(e))
        ),
        (Some(e), _) => format!(
            "{} (release {e}, assigned to its class)",
            release_label(&releases, Some(e))
        ),
    };
    field("assigned", assigned)?;
    if let Some(s) = &device.suppressed_release_id {
        field(
            "refused",
            format!(
                "{} (release {s}: not offered again until assigned anew)",
                release_label(&releases, Some(s))
            ),
        )?;
    }
    field(
        "rollback",
        match &device.rollback_order {
            None => dash(),
            Some(o) => format!(
                "order {} {:?} by {}, {}",
                o.id,
                o.reason,
                o.created_by,
                match o.delivered_at {
                    Some(t) => format!("delivered {}", common::ago(Some(t))),
                    None => "not yet delivered".into(),
                }
            ),
        },
    )?;
    if let Some(t) = device.revoked_at {
        field("revoked", common::when(t))?;
    }
    field("created", common::when(device.created_at))?;
    if !orders.is_empty() {
        writeln!(out, "\nrollback orders (newest first):")?;
        let rows: Vec<Vec<String>> = orders
            .iter()
            .map(|o| {
                vec![
                    o.id.clone(),
                    common::when(o.created_at),
                    o.reason.clone(),
                    o.outcome.clone().unwrap_or_else(|| {
                        if o.delivered_at.is_some() {
                            "delivered".into()
                        } else {
                            "pending".into()
                        }
                    }),
                ]
            })
            .collect();
        for line in common::table(&["ORDER", "ORDERED", "REASON", "OUTCOME"], &rows) {
            writeln!(out, "  {line}")?;
        }
    }
    if !history.is_empty() {
        writeln!(out, "\nrecent events (newest first):")?;
        let rows: Vec<Vec<String>> = history
            .iter()
            .map(|e| {
                let mut what = e.reason.clone().unwrap_or_default();
                if let (Some(done), Some(total)) = (e.bytes_done, e.bytes_total) {
                    if !what.is_empty() {
                        what.push(' ');
                    }
                    what.push_str(&format!("{}/{}", common::size(done), common::size(total)));
                }
                vec![
                    common::when(e.at),
                    e.kind.clone(),
                    release_label(&releases, e.release_id.as_deref()),
                    what,
                ]
            })
            .collect();
        for line in common::table(&["AT", "EVENT", "RELEASE", "DETAIL"], &rows) {
            writeln!(out, "  {line}")?;
        }
    }
    Ok(())
}
