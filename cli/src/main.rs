use clap::Parser;

/// custody: push, deploy, approve, servers, audit.
#[derive(Parser)]
#[command(version)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
}
