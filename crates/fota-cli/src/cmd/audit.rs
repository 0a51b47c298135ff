//! `fota audit`: who changed what, when.

use std::process::ExitCode;

use super::common::{self, ConnArgs, Explain as _};

/// Show the audit log, newest first.
#[derive(Debug, clap::Args)]
pub(crate) struct AuditArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// At most this many records (1-1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=1000))]
    limit: i64,
    /// Only records older than this record id (to page back).
    #[arg(long, value_name = "ID")]
    before: Option<i64>,
    /// The records as a JSON array on stdout.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let client = args.conn.client()?;
    let records = client
        .audit(args.before, Some(args.limit))
        .explained(&client)?;
    if args.json {
        common::print_json(&records)?;
    } else {
        let rows: Vec<Vec<String>> = records
            .iter()
            .map(|r| {
                let detail = match &r.entry.detail {
                    serde_json::Value::Object(m) if m.is_empty() => String::new(),
                    v => v.to_string(),
                };
                vec![
                    r.id.to_string(),
                    common::when(r.at),
                    r.entry.actor.clone(),
                    r.entry.action.clone(),
                    r.entry.target.clone(),
                    detail,
                ]
            })
            .collect();
        common::print_table(&["ID", "AT", "ACTOR", "ACTION", "TARGET", "DETAIL"], &rows)?;
    }
    Ok(ExitCode::SUCCESS)
}
