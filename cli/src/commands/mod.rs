//! One module per command family; [`Ctx`] holds the global options and
//! builds the API client from the login file.

pub mod apps;
pub mod audit;
pub mod deploy;
pub mod deployments;
pub mod envs;
pub mod groups;
pub mod keygen;
pub mod login;
pub mod push;
pub mod releases;
pub mod servers;
pub mod tokens;
pub mod users;

use crate::config;
use anyhow::{Context, Result};
use custody_client::{Client, ClientConfig};
use std::path::PathBuf;

/// Global options.
pub struct Ctx {
    config: Option<PathBuf>,
    /// `--json`.
    pub json: bool,
}

impl Ctx {
    /// From the parsed flags.
    pub fn new(config: Option<PathBuf>, json: bool) -> Self {
        Ctx { config, json }
    }

    /// The login file path.
    pub fn config_path(&self) -> Result<PathBuf> {
        match &self.config {
            Some(p) => Ok(p.clone()),
            None => config::default_path(),
        }
    }

    /// The saved login.
    pub fn login(&self) -> Result<config::Login> {
        config::load(&self.config_path()?)
    }

    /// A client for the saved login.
    pub fn client(&self) -> Result<Client> {
        let l = self.login()?;
        Client::new(ClientConfig::new(
            &l.url,
            Some(&l.ca_fingerprint),
            Some(&l.token),
        ))
        .context("setting up the connection")
    }

    /// Runs an async command on a small runtime.
    pub fn block_on<F: std::future::Future<Output = Result<()>>>(&self, f: F) -> Result<()> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the runtime")?
            .block_on(f)
    }
}
