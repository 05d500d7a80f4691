//! The `custody` command line as a real process, with its own login file.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use tokio::io::AsyncWriteExt as _;

use crate::bins;
use crate::coordinator::Coordinator;
use crate::error::{E2eError, Result, io};

/// `custody` logged in to one coordinator (its login file, publisher key
/// and known key managers live in a temporary directory of its own).
pub struct Cli {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl std::fmt::Debug for Cli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cli").field("config", &self.config).finish()
    }
}

impl Cli {
    /// `custody login` with the owner's token of `c`.
    pub async fn login(c: &Coordinator) -> Result<Cli> {
        Self::login_with(c, &c.owner_token).await
    }

    /// `custody login` with `token`.
    pub async fn login_with(c: &Coordinator, token: &str) -> Result<Cli> {
        let dir = tempfile::Builder::new()
            .prefix("custody-e2e-cli.")
            .tempdir()
            .map_err(io("create", "a temporary directory"))?;
        let config = dir.path().join("custody/config.toml");
        let cli = Cli { dir, config };
        cli.ok(&[
            "login",
            "--url",
            &c.url,
            "--ca-fingerprint",
            &c.ca_fingerprint,
            "--token",
            token,
        ])
        .await?;
        Ok(cli)
    }

    /// The directory of its login file (`publisher.key` is made beside it).
    pub fn config_dir(&self) -> PathBuf {
        self.config
            .parent()
            .map_or_else(|| self.dir.path().to_path_buf(), Path::to_path_buf)
    }

    /// A scratch directory that lives as long as this value.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `custody --config LOGIN ARGS`, feeding `stdin` when given.
    pub async fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<Output> {
        let mut cmd = tokio::process::Command::new(bins::binary(bins::CLI)?);
        cmd.arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("CUSTODY_TOKEN")
            .env_remove("CUSTODY_CONFIG")
            .env_remove("CUSTODY_PUBLISHER_KEY")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let what = format!("custody {}", args.join(" "));
        let mut child = cmd.spawn().map_err(io("spawn", &what))?;
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(data).await.map_err(io("write to", &what))?;
        }
        child.wait_with_output().await.map_err(io("run", &what))
    }

    /// Runs a command that must succeed; returns its stdout.
    pub async fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args, None).await?;
        if !out.status.success() {
            return Err(E2eError::Command {
                command: format!("custody {}", args.join(" ")),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs a command that must fail with one `custody: …` error line on
    /// stderr and a non-zero exit; returns that line.
    pub async fn fails(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args, None).await?;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("custody: "))
            .collect();
        if out.status.success() || errors.len() != 1 {
            return Err(E2eError::Output {
                what: format!(
                    "custody {} (expected one error line and a non-zero exit, got {})",
                    args.join(" "),
                    out.status
                ),
                output: stderr,
            });
        }
        Ok(errors[0].to_owned())
    }
}
