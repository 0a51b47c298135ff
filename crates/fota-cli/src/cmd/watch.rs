//! `fota watch`: a live table of devices and their update progress.
//!
//! On a terminal the table is redrawn in place; otherwise (a pipe, a log file) the first
//! table is printed whole and then only rows that changed, one line each with the time, so the
//! output reads as a log. Ctrl-C ends it; `--once` prints one table and exits.

use core::time::Duration;
use std::collections::HashMap;
use std::io::Write as _;
use std::process::ExitCode;

use console::Term;
use fota_client::Client;

use super::common::{self, ConnArgs};
use super::devices::{DEVICE_HEADERS, device_row, release_names};

/// Watch devices update: version, state, download progress, last contact, assignment.
#[derive(Debug, clap::Args)]
pub(crate) struct WatchArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Only devices of this class.
    #[arg(long, value_name = "C")]
    class: Option<String>,
    /// Time between refreshes, e.g. 1s, 500ms.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Print the table once and exit (for scripts).
    #[arg(long)]
    once: bool,
    /// One JSON array of device records per refresh, one per line.
    #[arg(long)]
    json: bool,
}

type Rows = Vec<Vec<String>>;

fn fetch(client: &Client, class: Option<&str>) -> anyhow::Result<(Rows, serde_json::Value)> {
    let devices = client
        .list_devices(class)
        .map_err(|e| common::explain(client, e))?;
    let releases = release_names(client)?;
    let rows = devices.iter().map(|d| device_row(d, &releases)).collect();
    Ok((rows, serde_json::to_value(&devices)?))
}

pub(crate) fn run(args: WatchArgs) -> anyhow::Result<ExitCode> {
    let client = args.conn.client()?;
    let term = Term::stdout();
    let live = term.is_term() && !args.once && !args.json;
    let mut drawn = 0usize;
    let mut previous: HashMap<String, Vec<String>> = HashMap::new();
    let mut first = true;
    loop {
        let fetched = fetch(&client, args.class.as_deref());
        if args.once {
            let (rows, json) = fetched?;
            if args.json {
                println!("{}", serde_json::to_string(&json)?);
            } else {
                common::print_table(&DEVICE_HEADERS, &rows)?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        match fetched {
            Ok((_, json)) if args.json => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{}", serde_json::to_string(&json)?)?;
                out.flush()?;
            }
            Ok((rows, _)) if live => {
                let mut lines = common::table(&DEVICE_HEADERS, &rows);
                lines.push(format!(
                    "{} devices · {} · every {} · Ctrl-C to quit",
                    rows.len(),
                    client.server(),
                    humantime::format_duration(args.interval)
                ));
                redraw(&term, &mut drawn, &lines)?;
            }
            Ok((rows, _)) => {
                let lines = common::table(&DEVICE_HEADERS, &rows);
                let mut out = std::io::stdout().lock();
                if first {
                    for line in &lines {
                        writeln!(out, "{line}")?;
                    }
                } else {
                    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
                    for (row, line) in rows.iter().zip(lines.iter().skip(1)) {
                        if previous.get(&row[0]) != Some(&changes(row)) {
                            writeln!(out, "{stamp}  {line}")?;
                        }
                    }
                }
                out.flush()?;
                previous = rows.iter().map(|r| (r[0].clone(), changes(r))).collect();
                first = false;
            }
            // A server restart or a network blip should not end a watch: say so and retry.
            Err(e) if live => {
                redraw(&term, &mut drawn, &[format!("error: {e:#} (retrying)")])?;
            }
            Err(e) => eprintln!("error: {e:#} (retrying)"),
        }
        std::thread::sleep(args.interval);
    }
}

/// What makes a row worth a log line: everything but the last-contact age, which changes on
/// every refresh of a polling device.
fn changes(row: &[String]) -> Vec<String> {
    let seen = DEVICE_HEADERS.iter().position(|h| *h == "SEEN");
    row.iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != seen)
        .map(|(_, c)| c.clone())
        .collect()
}

/// Replaces the lines drawn last time by `lines`, each cut to the terminal width so that
/// none wraps, and the whole cut to the terminal height so that none scrolls away: lines out
/// of sight could not be cleared on the next redraw. The last line (the footer) always stays.
fn redraw(term: &Term, drawn: &mut usize, lines: &[String]) -> anyhow::Result<()> {
    let (height, width) = term.size();
    let width = usize::from(width.max(20)) - 1;
    let room = usize::from(height.max(4)) - 1;
    let mut shown: Vec<String> = lines.to_vec();
    if shown.len() > room {
        let footer = shown.pop().unwrap_or_default();
        let hidden = shown.len() - (room - 2);
        shown.truncate(room - 2);
        shown.push(format!(
            "… {hidden} more (narrow with --class, or use --once)"
        ));
        shown.push(footer);
    }
    term.clear_last_lines(*drawn)?;
    for line in &shown {
        term.write_line(&console::truncate_str(line, width, "…"))?;
    }
    *drawn = shown.len();
    Ok(())
}
