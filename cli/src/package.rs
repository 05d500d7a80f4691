//! `custody package`: offline encrypt / decrypt / inspect of package files.
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum PackageCmd {
    /// Print a package's header as JSON.
    Inspect {
        /// The package file.
        file: PathBuf,
    },
}

pub fn run(cmd: PackageCmd) -> anyhow::Result<()> {
    match cmd {
        PackageCmd::Inspect { file } => {
            anyhow::bail!("{}: package inspection is not built yet", file.display())
        }
    }
}
