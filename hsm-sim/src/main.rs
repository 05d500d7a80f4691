//! `hsm-sim softhsm --dir D` / `hsm-sim swtpm --dir D`: stand up a
//! simulator, print shell `export` lines, keep it running until SIGTERM,
//! SIGINT or end of standard input, then tear it down.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use hsm_sim::{SoftHsm, Swtpm};
use tokio::io::AsyncReadExt;

/// Stand up SoftHSM2 tokens and swtpm TPMs for Custody's tests and demo.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    sim: Sim,
}

#[derive(Subcommand)]
enum Sim {
    /// A SoftHSM2 configuration and token in DIR (kept, reused next time).
    Softhsm {
        /// Directory for the configuration, tokens and PIN file.
        #[arg(long)]
        dir: PathBuf,
    },
    /// A swtpm TPM 2.0 with its state in DIR (kept, reused next time).
    Swtpm {
        /// State directory.
        #[arg(long)]
        dir: PathBuf,
    },
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Keep the fixture alive until told to stop; its Drop tears it down.
    let _fixture: Box<dyn std::any::Any> = match cli.sim {
        Sim::Softhsm { dir } => {
            let hsm = SoftHsm::start_in(&dir).context("starting SoftHSM2")?;
            println!(
                "export SOFTHSM2_CONF={}",
                quote(&hsm.conf().display().to_string())
            );
            println!(
                "export HSM_SIM_MODULE={}",
                quote(&hsm.module().display().to_string())
            );
            println!("export HSM_SIM_TOKEN_LABEL={}", quote(hsm.token_label()));
            println!(
                "export HSM_SIM_PIN_FILE={}",
                quote(&hsm.pin_file().display().to_string())
            );
            Box::new(hsm)
        }
        Sim::Swtpm { dir } => {
            let tpm = Swtpm::start_in(&dir).context("starting swtpm")?;
            println!("export HSM_SIM_TCTI={}", quote(&tpm.tcti()));
            println!("export TPM2TOOLS_TCTI={}", quote(&tpm.tcti()));
            if let Some(pid) = tpm.pid() {
                println!("export HSM_SIM_SWTPM_PID={pid}");
            }
            Box::new(tpm)
        }
    };
    println!("# ready; stop with SIGTERM, SIGINT or end of input");
    use std::io::Write;
    std::io::stdout().flush().context("flushing stdout")?;
    wait_for_stop()
}

fn wait_for_stop() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("starting the signal runtime")?;
    rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
        let stdin_eof = async {
            let mut stdin = tokio::io::stdin();
            let mut buf = [0u8; 256];
            while let Ok(n) = stdin.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        };
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
            () = stdin_eof => {},
        }
        Ok(())
    })
}
