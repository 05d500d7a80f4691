//! `custody`: the command line for people and CI.
use clap::{Parser, Subcommand};

mod approvals;
mod commands;
mod config;
mod key_managers;
mod output;
mod package;
mod progress;
mod publisher_key;
mod secret_input;

const GETTING_STARTED: &str = "\
A secure release from scratch (owner):
  custody login --url https://coordinator:8443 --ca-fingerprint FP --token TOKEN
  custody servers join-token          # one per agent: custody-agent enroll ... --join-token T
  custody servers enable-km km-1      # and a second key manager
  custody app create web --secure
  custody env create web dev
  custody env add-server web dev web-1
  custody keygen                      # pin the printed key in web-1's agent config
  custody push ./release --app web --accept-new-key-manager --wait
  custody deploy web --release REL --env dev --follow";

/// custody: push, deploy, approve, servers, audit.
#[derive(Parser)]
#[command(version, about, after_help = GETTING_STARTED)]
struct Cli {
    /// Login file (default: $XDG_CONFIG_HOME/custody/config.toml).
    #[arg(long, global = true, env = "CUSTODY_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Print listings as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Encrypt, decrypt and inspect package files offline.
    #[command(subcommand)]
    Package(package::PackageCmd),
    /// Save the coordinator URL, its CA fingerprint and your token.
    Login(commands::login::LoginArgs),
    /// Manage users (owner).
    #[command(subcommand)]
    Users(commands::users::UsersCmd),
    /// Create and revoke API tokens.
    #[command(subcommand)]
    Tokens(commands::tokens::TokensCmd),
    /// Manage approver groups.
    #[command(subcommand)]
    Groups(commands::groups::GroupsCmd),
    /// Enrolled servers, join tokens, key managers.
    #[command(subcommand)]
    Servers(commands::servers::ServersCmd),
    /// Export and verify the audit log.
    #[command(subcommand)]
    Audit(commands::audit::AuditCmd),
    /// Make a publisher signing key for `custody push`; prints the public
    /// half that targets pin.
    Keygen(commands::keygen::KeygenArgs),
    /// Create applications and make them secure.
    #[command(subcommand)]
    App(commands::apps::AppCmd),
    /// An application's environments: target servers and variables.
    #[command(subcommand)]
    Env(commands::envs::EnvCmd),
    /// Package a directory as an encrypted, signed release and upload it.
    ///
    /// Reads DIR/custody.toml, asks the coordinator for a release id, tars
    /// the files the manifest selects (deterministically) and encrypts them
    /// under a fresh release key on all cores, signs the release descriptor
    /// with your publisher key, wraps the release key to every key manager
    /// and uploads. Key managers not seen before are refused until you pass
    /// --accept-new-key-manager (compare the fingerprints shown with
    /// `custody-agent pubkey` on each). Prints the release id.
    Push(commands::push::PushArgs),
    /// An application's releases.
    #[command(subcommand)]
    Releases(commands::releases::ReleasesCmd),
    /// Deploy a release to an environment.
    Deploy(commands::deploy::DeployArgs),
    /// Deployments: list, show, follow.
    #[command(subcommand)]
    Deployments(commands::deployments::DeploymentsCmd),
    /// Deployments waiting for your approval.
    #[command(subcommand)]
    Approvals(approvals::ApprovalsCmd),
    /// Approve a deployment: signs a statement with your approval key.
    Approve(approvals::ApproveArgs),
    /// Decline a deployment, with a message for the deployer.
    Decline(approvals::DeclineArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let ctx = commands::Ctx::new(cli.config, cli.json);
    let result = match cli.command {
        Command::Package(cmd) => package::run(cmd),
        Command::Login(a) => ctx.block_on(commands::login::run(&ctx, a)),
        Command::Users(c) => ctx.block_on(commands::users::run(&ctx, c)),
        Command::Tokens(c) => ctx.block_on(commands::tokens::run(&ctx, c)),
        Command::Groups(c) => ctx.block_on(commands::groups::run(&ctx, c)),
        Command::Servers(c) => ctx.block_on(commands::servers::run(&ctx, c)),
        Command::Audit(c) => ctx.block_on(commands::audit::run(&ctx, c)),
        Command::Keygen(a) => commands::keygen::run(&ctx, a),
        Command::App(c) => ctx.block_on(commands::apps::run(&ctx, c)),
        Command::Env(c) => ctx.block_on(commands::envs::run(&ctx, c)),
        Command::Push(a) => ctx.block_on(commands::push::run(&ctx, a)),
        Command::Releases(c) => ctx.block_on(commands::releases::run(&ctx, c)),
        Command::Deploy(a) => ctx.block_on(commands::deploy::run(&ctx, a)),
        Command::Deployments(c) => ctx.block_on(commands::deployments::run(&ctx, c)),
        Command::Approvals(c) => ctx.block_on(approvals::run_approvals(&ctx, c)),
        Command::Approve(a) => ctx.block_on(approvals::run_approve(&ctx, a)),
        Command::Decline(a) => ctx.block_on(approvals::run_decline(&ctx, a)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("custody: {}", output::one_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
