//! `custody`: the command line for people and CI.
use clap::{Parser, Subcommand};

mod package;

/// custody: push, deploy, approve, servers, audit.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Encrypt, decrypt and inspect package files offline.
    #[command(subcommand)]
    Package(package::PackageCmd),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Package(cmd) => package::run(cmd),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("custody: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
