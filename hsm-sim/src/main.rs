use clap::Parser;

/// Stand up SoftHSM2 tokens and swtpm TPMs for Custody's tests and demo.
#[derive(Parser)]
#[command(version)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
}
