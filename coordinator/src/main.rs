//! `custody-coordinator`: parse arguments → load config → init or run.
use anyhow::Context;
use clap::{Parser, Subcommand};
use custody_coordinator::{Config, init, server, shutdown};
use std::path::PathBuf;

/// Custody coordinator.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct Source {
    /// Configuration file (TOML).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// State directory (all defaults) when no config file is given.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Listen address, overriding the config.
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Metrics listen address, overriding the config.
    #[arg(long)]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Serve plain HTTP (loopback addresses only).
    #[arg(long)]
    insecure_plain_http: bool,
}

impl Source {
    fn load(&self) -> anyhow::Result<Config> {
        let mut cfg = match (&self.config, &self.state_dir) {
            (Some(p), _) => Config::load(p)?,
            (None, Some(d)) => Config::with_state_dir(d.clone()),
            (None, None) => anyhow::bail!("give --config FILE or --state-dir DIR"),
        };
        if let Some(d) = &self.state_dir {
            cfg.state_dir = d.clone();
        }
        if let Some(l) = self.listen {
            cfg.listen = l;
        }
        if let Some(l) = self.metrics_listen {
            cfg.metrics_listen = l;
        }
        cfg.insecure_plain_http |= self.insecure_plain_http;
        cfg.validate()?;
        Ok(cfg)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Create the account, CA, server certificate and the owner's first token.
    Init {
        #[command(flatten)]
        source: Source,
        /// Name of the owner user.
        #[arg(long, default_value = "owner")]
        owner: String,
        /// DNS names / IPs for the server certificate.
        #[arg(long = "san", default_values_t = ["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()])]
        sans: Vec<String>,
    },
    /// Serve the API.
    Run {
        #[command(flatten)]
        source: Source,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        match cli.command {
            Command::Init {
                source,
                owner,
                sans,
            } => {
                let cfg = source.load()?;
                let out = init::init(&cfg, &owner, &sans).await?;
                println!("account:          {}", out.account);
                if let Some(fp) = &out.ca_fingerprint {
                    println!("ca fingerprint:   {fp}");
                }
                println!("audit public key: {}", out.audit_public_key);
                println!("owner token:      {}", out.owner_token);
                eprintln!("The owner token is shown only once; store it now.");
                Ok(())
            }
            Command::Run { source } => {
                let cfg = source.load()?;
                let running = server::start(cfg).await?;
                println!(
                    "listening on {} (metrics on {})",
                    running.addr, running.metrics_addr
                );
                shutdown::sd_notify("READY=1");
                if let Some(every) = shutdown::watchdog_interval() {
                    tokio::spawn(shutdown::watchdog(
                        running.state.store.clone(),
                        every,
                        running.state.shutdown.clone(),
                    ));
                }
                tokio::spawn(shutdown::on_signal(running.shutdown_handle()));
                if running.wait().await {
                    Ok(())
                } else {
                    anyhow::bail!("a coordinator task stopped unexpectedly (see the log above)")
                }
            }
        }
    })
}
