//! `fota rollback`: order a device back to its previous image, or list its orders.

use std::process::ExitCode;

use super::common::{self, ConnArgs, Explain as _};

/// Order a device to roll back to the image it ran before (carried out once, closed by the
/// device's report), or list its rollback orders.
#[derive(Debug, clap::Args)]
pub(crate) struct RollbackArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Device name.
    device: String,
    /// Why (kept in the history; legacy devices are shown it).
    #[arg(long, value_name = "TEXT", required_unless_present = "list")]
    reason: Option<String>,
    /// List the device's orders, newest first, instead of ordering one.
    #[arg(long, conflicts_with = "reason")]
    list: bool,
    /// The order (or the list) as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: RollbackArgs) -> anyhow::Result<ExitCode> {
    let client = args.conn.client()?;
    if args.list {
        let orders = client.rollback_orders(&args.device).explained(&client)?;
        if args.json {
            common::print_json(&orders)?;
        } else {
            let rows: Vec<Vec<String>> = orders
                .iter()
                .map(|o| {
                    vec![
                        o.id.clone(),
                        common::when(o.created_at),
                        o.created_by.clone(),
                        o.delivered_at.map_or_else(|| "-".into(), common::when),
                        o.closed_at.map_or_else(|| "-".into(), common::when),
                        o.outcome.clone().unwrap_or_else(|| "-".into()),
                        o.reason.clone(),
                    ]
                })
                .collect();
            common::print_table(
                &[
                    "ORDER",
                    "ORDERED",
                    "BY",
                    "DELIVERED",
                    "CLOSED",
                    "OUTCOME",
                    "REASON",
                ],
                &rows,
            )?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let reason = args.reason.unwrap_or_default();
    let order = client
        .order_rollback(&args.device, &reason)
        .explained(&client)?;
    if args.json {
        common::print_json(&order)?;
    } else {
        println!(
            "rollback order {} for {}: delivered at its next check-in, closed by its report",
            order.id, order.device_id
        );
    }
    Ok(ExitCode::SUCCESS)
}
