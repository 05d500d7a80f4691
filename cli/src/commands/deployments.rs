//! `custody deployments list|show`, and following a deployment live
//! (state, per-target progress and hook output) for `custody deploy --follow`.

use super::Ctx;
use crate::output;
use anyhow::{Result, bail};
use clap::Subcommand;
use custody_client::Client;
use custody_proto::apps::{Deployment, DeploymentLogLine, DeploymentState};
use custody_proto::servers::Server;
use std::collections::HashMap;
use std::time::Duration;

/// Subcommands.
#[derive(Subcommand)]
pub enum DeploymentsCmd {
    /// List recent deployments (the 200 newest).
    List {
        /// Only this application's.
        #[arg(long)]
        app: Option<String>,
        /// Only this environment's.
        #[arg(long)]
        env: Option<String>,
    },
    /// Show a deployment: state, reason, every target's state and reason.
    Show {
        /// Deployment id.
        id: String,
        /// Also print its log (hook output, secrets shown as ***).
        #[arg(long)]
        log: bool,
        /// Keep following it until it finishes (like `custody deploy --follow`).
        #[arg(long)]
        follow: bool,
    },
    /// start, cancel (approvals).
    #[command(flatten)]
    Approval(crate::approvals::DeploymentActionCmd),
}

/// Server ids → names, for output (ids stay when the listing fails).
pub struct Names(HashMap<String, String>);

impl Names {
    /// Fetches the server list.
    pub async fn fetch(c: &Client) -> Names {
        let list: Vec<Server> = c.get("/v1/servers").await.unwrap_or_default();
        Names(list.into_iter().map(|s| (s.id, s.name)).collect())
    }

    /// The name of `id`, or `id`.
    pub fn of<'a>(&'a self, id: &'a str) -> &'a str {
        self.0.get(id).map(String::as_str).unwrap_or(id)
    }
}

/// Where follow output goes: stdout, or stderr when stdout carries JSON.
#[derive(Clone, Copy)]
pub struct Out {
    to_stderr: bool,
}

impl Out {
    /// Output for `--json` (stderr) or not (stdout).
    pub fn new(json: bool) -> Out {
        Out { to_stderr: json }
    }

    fn line(self, s: &str) {
        if self.to_stderr {
            eprintln!("{s}");
        } else {
            println!("{s}");
        }
    }
}

fn print_log(out: Out, names: &Names, lines: &[DeploymentLogLine]) {
    for l in lines {
        out.line(&format!(
            "{} [{}] {}: {}",
            output::clock_ms(l.at_ms),
            names.of(&l.server_id),
            l.stream,
            l.line
        ));
    }
}

/// GET that rides out a coordinator restart or a network blip (transport
/// errors and 5xx answers, up to about half a minute) while following.
async fn get_patiently<T: serde::de::DeserializeOwned>(c: &Client, path: &str) -> Result<T> {
    let mut tries = 0;
    loop {
        match c.get(path).await {
            Ok(v) => return Ok(v),
            Err(e) if tries < 15 && e.status().is_none_or(|s| s >= 500) => {
                tries += 1;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Fetches log lines after `after`; returns them (at most 5000 per call).
async fn log_after(c: &Client, id: &str, after: i64) -> Result<Vec<DeploymentLogLine>> {
    get_patiently(c, &format!("/v1/deployments/{id}/log?after={after}")).await
}

/// Prints the whole log.
async fn print_whole_log(c: &Client, out: Out, names: &Names, id: &str) -> Result<()> {
    let mut after = 0;
    loop {
        let lines = log_after(c, id, after).await?;
        let Some(last) = lines.last() else {
            return Ok(());
        };
        after = last.seq;
        print_log(out, names, &lines);
    }
}

/// Per-target summary lines.
fn print_targets(out: Out, names: &Names, d: &Deployment) {
    for t in &d.targets {
        out.line(&format!(
            "  {:<24} {:<10} {}",
            names.of(&t.server_id),
            t.state,
            t.reason.as_deref().unwrap_or("")
        ));
    }
}

/// Follows deployment `id` until it reaches a final state, printing state
/// changes, target progress and log lines as they arrive. Returns it.
pub async fn follow(c: &Client, id: &str, out: Out) -> Result<Deployment> {
    let names = Names::fetch(c).await;
    let mut after = 0i64;
    let mut state: Option<DeploymentState> = None;
    let mut targets: HashMap<String, String> = HashMap::new();
    loop {
        let lines = log_after(c, id, after).await?;
        if let Some(last) = lines.last() {
            after = last.seq;
        }
        print_log(out, &names, &lines);
        let full_page = lines.len() >= 5000;
        let d: Deployment = get_patiently(c, &format!("/v1/deployments/{id}")).await?;
        if state != Some(d.state) {
            state = Some(d.state);
            let note = match d.state {
                DeploymentState::PendingApproval => " (waiting for approvers)",
                DeploymentState::Approved => " (waiting for someone to start it)",
                _ => "",
            };
            out.line(&format!("deployment {id}: {}{note}", d.state.as_str()));
        }
        for t in &d.targets {
            if targets.get(&t.server_id) != Some(&t.state) {
                targets.insert(t.server_id.clone(), t.state.clone());
                let why = t
                    .reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default();
                out.line(&format!(
                    "[{}] target {}{why}",
                    names.of(&t.server_id),
                    t.state
                ));
            }
        }
        if d.state.is_terminal() && !full_page {
            // Lines written just before the final state.
            loop {
                let rest = log_after(c, id, after).await?;
                let Some(last) = rest.last() else { break };
                after = last.seq;
                print_log(out, &names, &rest);
            }
            return Ok(d);
        }
        if !full_page {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Prints the final summary and turns anything but success into an error.
pub fn conclude(ctx: &Ctx, out: Out, names: &Names, d: &Deployment) -> Result<()> {
    out.line(&format!("targets of {}:", d.id));
    print_targets(out, names, d);
    if ctx.json {
        output::json(d)?;
    }
    if d.state != DeploymentState::Succeeded {
        bail!(
            "deployment {} {}: {}",
            d.id,
            d.state.as_str(),
            d.reason.as_deref().unwrap_or("no reason given")
        );
    }
    Ok(())
}

/// Runs it.
pub async fn run(ctx: &Ctx, cmd: DeploymentsCmd) -> Result<()> {
    let c = ctx.client()?;
    match cmd {
        DeploymentsCmd::Approval(a) => return crate::approvals::run_deployment(ctx, a).await,
        DeploymentsCmd::List { app, env } => {
            let ds: Vec<Deployment> = c.get("/v1/deployments").await?;
            let ds: Vec<Deployment> = ds
                .into_iter()
                .filter(|d| app.as_ref().is_none_or(|a| &d.app == a))
                .filter(|d| env.as_ref().is_none_or(|e| &d.environment == e))
                .collect();
            if ctx.json {
                return output::json(&ds);
            }
            let rows = ds
                .iter()
                .map(|d| {
                    vec![
                        d.id.clone(),
                        d.app.clone(),
                        d.release_id.clone(),
                        d.environment.clone(),
                        d.state.as_str().to_string(),
                        output::time(d.created_at),
                    ]
                })
                .collect::<Vec<_>>();
            output::table(&["ID", "APP", "RELEASE", "ENV", "STATE", "CREATED"], &rows);
        }
        DeploymentsCmd::Show {
            id, follow: true, ..
        } => {
            // Following prints the log from its start anyway.
            let out = Out::new(ctx.json);
            let d = follow(&c, &id, out).await?;
            let names = Names::fetch(&c).await;
            conclude(ctx, out, &names, &d)?;
        }
        DeploymentsCmd::Show {
            id,
            log,
            follow: false,
        } => {
            let d: Deployment = c.get(&format!("/v1/deployments/{id}")).await?;
            if ctx.json && !log {
                return output::json(&d);
            }
            let out = Out::new(ctx.json);
            let names = Names::fetch(&c).await;
            out.line(&format!(
                "deployment {} of {} release {} to {}",
                d.id, d.app, d.release_id, d.environment
            ));
            out.line(&format!("state:   {}", d.state.as_str()));
            if let Some(r) = &d.reason {
                out.line(&format!("reason:  {r}"));
            }
            out.line(&format!(
                "created: {} by {}",
                output::time(d.created_at),
                d.created_by
            ));
            out.line("targets:");
            print_targets(out, &names, &d);
            if !ctx.json {
                crate::approvals::print_approvals(&c, &d.id).await?;
            }
            if log {
                out.line("log:");
                print_whole_log(&c, out, &names, &d.id).await?;
            }
            if ctx.json {
                output::json(&d)?;
            }
        }
    }
    Ok(())
}
