use clap::Parser;

/// Custody agent: key manager and deploy target.
#[derive(Parser)]
#[command(version)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
}
