//! `fota tokens`: operator API tokens (admin).

use std::process::ExitCode;

use fota_client::api::Role;

use super::common::{self, ConnArgs, Explain as _};

#[derive(Debug, clap::Args)]
pub(crate) struct TokensArgs {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(subcommand)]
    command: TokensCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TokensCommand {
    /// Make a token; its secret is printed once (the server keeps only its SHA-256).
    Create {
        /// Who or what will use it.
        name: String,
        /// viewer (reads), operator (+ releases, assignments, rollback orders), provisioner (+
        /// device credentials: add, rotate, revoke, delete), admin (everything, tokens too).
        #[arg(long, value_name = "ROLE", value_parser = parse_role)]
        role: Role,
        /// The token stops working this long from now (`90days`, `12h`); never by default.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        expires: Option<core::time::Duration>,
        /// id, name, role and token as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never their secrets).
    List {
        /// The token records as a JSON array on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id; requests with it get 401 from now on.
    Revoke {
        /// Token id (from `fota tokens list`).
        id: String,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s)
        .ok_or_else(|| format!("{s:?} is not a role: viewer, operator, provisioner or admin"))
}

pub(crate) fn run(args: TokensArgs) -> anyhow::Result<ExitCode> {
    let client = args.conn.client()?;
    match args.command {
        TokensCommand::Create {
            name,
            role,
            expires,
            json,
        } => {
            let expires_at = expires
                .map(|d| {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default();
                    i64::try_from(now.saturating_add(d).as_millis())
                        .map_err(|_| anyhow::anyhow!("--expires is too far in the future"))
                })
                .transpose()?;
            let t = client
                .create_token(&name, role, expires_at)
                .explained(&client)?;
            if json {
                common::print_json(&t)?;
            } else {
                eprintln!(
                    "token {} ({}, {}); shown once, store it now:",
                    t.id,
                    t.name,
                    t.role.as_str()
                );
                println!("{}", t.token);
            }
        }
        TokensCommand::List { json } => {
            let tokens = client.list_tokens().explained(&client)?;
            if json {
                common::print_json(&tokens)?;
            } else {
                let rows: Vec<Vec<String>> = tokens
                    .iter()
                    .map(|t| {
                        vec![
                            t.id.clone(),
                            t.role.as_str().to_owned(),
                            common::when(t.created_at),
                            t.created_by.clone(),
                            t.revoked_at.map_or_else(|| "-".into(), common::when),
                            t.expires_at.map_or_else(|| "never".into(), common::when),
                            t.name.clone(),
                        ]
                    })
                    .collect();
                common::print_table(
                    &["ID", "ROLE", "CREATED", "BY", "REVOKED", "EXPIRES", "NAME"],
                    &rows,
                )?;
            }
        }
        TokensCommand::Revoke { id } => {
            client.revoke_token(&id).explained(&client)?;
            eprintln!("revoked token {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
