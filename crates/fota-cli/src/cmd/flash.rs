//! `fota flash`.

use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum FlashCommand {}

pub(crate) fn run(command: FlashCommand) -> anyhow::Result<ExitCode> {
    match command {}
}
