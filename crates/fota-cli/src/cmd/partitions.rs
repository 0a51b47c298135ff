//! `fota partitions`.

use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum PartitionsCommand {}

pub(crate) fn run(command: PartitionsCommand) -> anyhow::Result<ExitCode> {
    match command {}
}
