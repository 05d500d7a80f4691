//! `custody env create|add-server|set-var|list|show`.

use super::Ctx;
use crate::key_managers::{Known, VerifiedKey, known_path};
use crate::{output, secret_input};
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use custody_client::Client;
use custody_envelope::jwe::{Binding, Purpose};
use custody_proto::apps::{AddEnvironmentServer, CreateEnvironment, Environment, SetVariable};
use custody_proto::servers::MasterKeyHolders;
use std::path::PathBuf;

/// Subcommands.
#[derive(Subcommand)]
pub enum EnvCmd {
    /// Create an environment of an application (owner).
    Create {
        /// Application name.
        app: String,
        /// Environment name, e.g. dev, stage, prod.
        env: String,
    },
    /// Add a target server to an environment (owner). Deploys to the
    /// environment install on every one of its servers.
    AddServer {
        /// Application name.
        app: String,
        /// Environment name.
        env: String,
        /// Server id or name (an agent enrolled with the target role).
        server: String,
    },
    /// Set an environment variable the install hooks see (owner).
    ///
    /// Plain: `custody env set-var APP ENV NAME VALUE`. Secret: `--secret`
    /// and the value from `--value-file` or standard input (typed with echo
    /// off, or piped), never the command line. A secret value is wrapped
    /// here to the key managers, which seal it under the master key: the
    /// coordinator never sees it, listings show only that it is set, and
    /// hook output shows it as ***.
    SetVar(SetVarArgs),
    /// List an application's environments.
    List {
        /// Application name.
        app: String,
    },
    /// Show one environment: servers and variables (never secret values).
    Show {
        /// Application name.
        app: String,
        /// Environment name.
        env: String,
    },
    /// set-approval, clear-approval, remove-server (approvals).
    #[command(flatten)]
    Approval(crate::approvals::EnvApprovalCmd),
}

/// `custody env set-var` arguments.
#[derive(clap::Args)]
pub struct SetVarArgs {
    /// Application name.
    app: String,
    /// Environment name.
    env: String,
    /// Variable name: letters, digits and '_', not starting with a digit.
    name: String,
    /// The value (plain variables only).
    value: Option<String>,
    /// Keep the value secret (read from --value-file or stdin).
    #[arg(long)]
    secret: bool,
    /// Read the secret value from this file (one trailing newline is dropped).
    #[arg(long, value_name = "FILE", requires = "secret")]
    value_file: Option<PathBuf>,
    /// Accept key-manager keys not seen before (trust on first use).
    #[arg(long)]
    accept_new_key_manager: bool,
}

fn print_env(ctx: &Ctx, e: &Environment) -> Result<()> {
    if ctx.json {
        return output::json(e);
    }
    println!("environment {} of {} ({})", e.name, e.app, e.id);
    if e.servers.is_empty() {
        println!("servers: none (add one with `custody env add-server`)");
    } else {
        println!("servers: {}", e.servers.join(", "));
    }
    if e.variables.is_empty() {
        println!("variables: none");
        return Ok(());
    }
    let rows = e
        .variables
        .iter()
        .map(|v| {
            let shown = if v.secret {
                format!("(secret, {})", v.state.as_deref().unwrap_or("set"))
            } else {
                v.value.clone().unwrap_or_default()
            };
            vec![v.name.clone(), shown]
        })
        .collect::<Vec<_>>();
    output::table(&["VARIABLE", "VALUE"], &rows);
    Ok(())
}

/// The keys of every key manager holding the master key
/// (`GET /v1/master-key/holders`), each thumbprint recomputed from its PEM,
/// checked against the trust-on-first-use record. Returns them and the newly
/// accepted ones.
async fn holder_keys(
    c: &Client,
    known: &Known,
    accept_new: bool,
) -> Result<(Vec<VerifiedKey>, Vec<VerifiedKey>)> {
    let h: MasterKeyHolders = c
        .get("/v1/master-key/holders")
        .await
        .context("asking for the key managers' keys")?;
    if h.key_managers.is_empty() {
        bail!("no key manager holds the master key yet: enable two key managers first");
    }
    let keys = h
        .key_managers
        .iter()
        .map(VerifiedKey::from_api)
        .collect::<Result<Vec<_>, _>>()?;
    let new = known.gate(&keys, accept_new)?;
    Ok((keys, new))
}

async fn set_var(ctx: &Ctx, a: SetVarArgs) -> Result<()> {
    let SetVarArgs {
        app,
        env,
        name,
        value,
        secret,
        value_file,
        accept_new_key_manager: accept_new,
    } = a;
    let c = ctx.client()?;
    let path = format!("/v1/apps/{app}/environments/{env}/variables/{name}");
    let e: Environment = if !secret {
        let Some(value) = value else {
            bail!("give the value, or --secret to read a secret value from stdin or --value-file");
        };
        c.put(
            &path,
            &SetVariable {
                value: Some(value),
                wrapped: None,
            },
        )
        .await?
    } else {
        if value.is_some() {
            bail!(
                "a secret value is not taken from the command line (shell history): use --value-file FILE or standard input"
            );
        }
        // Fail on a missing app/env before asking for the value.
        let _: Environment = c.get(&format!("/v1/apps/{app}/environments/{env}")).await?;
        let secret_value = secret_input::read(
            value_file.as_deref(),
            &format!("value of {name} in {app}/{env}"),
        )?;
        let login = ctx.login()?;
        let mut known = Known::load(known_path(&ctx.config_path()?), &login.account)?;
        let (keys, new) = holder_keys(&c, &known, accept_new).await?;
        let binding = Binding {
            purpose: Purpose::SecretVar,
            account: login.account.clone(),
            app: Some(app.clone()),
            release: None,
            deployment: None,
            name: Some(name.clone()),
            environment: Some(env.clone()),
        };
        let wrapped = keys
            .iter()
            .map(|k| k.wrap(&binding, secret_value.as_bytes()))
            .collect::<Result<Vec<_>>>()?;
        drop(secret_value);
        let e: Environment = c
            .put(
                &path,
                &SetVariable {
                    value: None,
                    wrapped: Some(wrapped),
                },
            )
            .await?;
        known.add(&new)?;
        e
    };
    if ctx.json {
        return output::json(&e);
    }
    println!(
        "set {}{name} in {app}/{env}",
        if secret { "secret " } else { "" }
    );
    Ok(())
}

/// Runs it.
pub async fn run(ctx: &Ctx, cmd: EnvCmd) -> Result<()> {
    match cmd {
        EnvCmd::Approval(a) => return crate::approvals::run_env(ctx, a).await,
        EnvCmd::Create { app, env } => {
            let e: Environment = ctx
                .client()?
                .post(
                    &format!("/v1/apps/{app}/environments"),
                    &CreateEnvironment { name: env },
                )
                .await?;
            if ctx.json {
                return output::json(&e);
            }
            println!("created environment {} of {} ({})", e.name, e.app, e.id);
        }
        EnvCmd::AddServer { app, env, server } => {
            let e: Environment = ctx
                .client()?
                .post(
                    &format!("/v1/apps/{app}/environments/{env}/servers"),
                    &AddEnvironmentServer { server },
                )
                .await?;
            if ctx.json {
                return output::json(&e);
            }
            println!("{}/{} servers: {}", e.app, e.name, e.servers.join(", "));
        }
        EnvCmd::SetVar(a) => set_var(ctx, a).await?,
        EnvCmd::List { app } => {
            let es: Vec<Environment> = ctx
                .client()?
                .get(&format!("/v1/apps/{app}/environments"))
                .await?;
            if ctx.json {
                return output::json(&es);
            }
            let rows = es
                .iter()
                .map(|e| {
                    vec![
                        e.name.clone(),
                        e.id.clone(),
                        e.servers.len().to_string(),
                        e.variables.len().to_string(),
                    ]
                })
                .collect::<Vec<_>>();
            output::table(&["NAME", "ID", "SERVERS", "VARIABLES"], &rows);
        }
        EnvCmd::Show { app, env } => {
            let e: Environment = ctx
                .client()?
                .get(&format!("/v1/apps/{app}/environments/{env}"))
                .await?;
            print_env(ctx, &e)?;
        }
    }
    Ok(())
}
