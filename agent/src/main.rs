//! `custody-agent`: parse args → load config → open the keystore → run.

use std::process::ExitCode;

use clap::Parser;
use custody_agent::cli::Cli;
use custody_agent::commands::{self, CommandError};
use custody_agent::{config, keystore, logging};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("custody-agent: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<(), CommandError> {
    let config = config::load(cli.config.as_deref())?;
    logging::init(&config.log);
    let opened = keystore::open(&config.keystore, &config.state.dir)?;
    // (The sandbox goes here, between acquiring and starting.)
    commands::run(&cli.command, opened, &mut std::io::stdout().lock())
}
