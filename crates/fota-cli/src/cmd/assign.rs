//! `fota assign`: offer a release to devices or to a whole class.

use std::process::ExitCode;

use super::common::{self, ConnArgs, Explain as _};

/// Assign a release to devices (each gets an explicit assignment, overriding its class's) or
/// to its class (every device of the class follows it).
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["device", "class"])))]
pub(crate) struct AssignArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Release id, or version (unique within a class).
    release: String,
    /// Device names (repeat the flag or list them after it).
    #[arg(long, value_name = "ID", num_args = 1.., action = clap::ArgAction::Append)]
    device: Vec<String>,
    /// The release's class: every device of it gets the release.
    #[arg(long, value_name = "C")]
    class: Option<String>,
    /// The server's answer as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: AssignArgs) -> anyhow::Result<ExitCode> {
    let client = args.conn.client()?;
    // A version names one release per class: the class given, or else the first device's.
    let class_hint = match (&args.class, args.device.first()) {
        (Some(c), _) => Some(c.clone()),
        (None, Some(d)) => match client.find_release(&args.release, None) {
            Ok(_) => None,
            Err(fota_client::Error::AmbiguousRelease { .. }) => {
                client.device(d).explained(&client)?.class
            }
            Err(e) => return Err(common::explain(&client, e)),
        },
        (None, None) => None,
    };
    let release = client
        .find_release(&args.release, class_hint.as_deref())
        .explained(&client)?;
    let answer = match &args.class {
        Some(class) => client.assign_class(&release.id, class),
        None => client.assign_devices(&release.id, &args.device),
    }
    .explained(&client)?;
    if args.json {
        common::print_json(&answer)?;
    } else {
        let whom = match &answer.class {
            Some(c) => format!("class {c}"),
            None => format!(
                "{} device{}: {}",
                answer.devices.len(),
                if answer.devices.len() == 1 { "" } else { "s" },
                answer.devices.join(", ")
            ),
        };
        println!(
            "assigned {} {} (release {}) to {whom}",
            release.class, release.version, release.id
        );
    }
    Ok(ExitCode::SUCCESS)
}
