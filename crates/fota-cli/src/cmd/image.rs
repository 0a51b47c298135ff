//! `fota image`.

use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ImageCommand {}

pub(crate) fn run(command: ImageCommand) -> anyhow::Result<ExitCode> {
    match command {}
}
