//! `custody-agent`: parse args → (config, keystore, sandbox, run: see
//! `commands`). Internal subcommands first: the sandbox-check probe must
//! run before anything else happens in the process.

use std::process::ExitCode;

use clap::Parser;
use custody_agent::cli::{Cli, Command};
use custody_agent::{commands, sandbox};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::SandboxProbe => std::process::exit(sandbox::check::probe_main()),
        Command::Installer => return custody_agent::installer::child_main(),
        _ => {}
    }
    match commands::dispatch(&cli, &mut std::io::stdout().lock()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("custody-agent: {e}");
            ExitCode::FAILURE
        }
    }
}
