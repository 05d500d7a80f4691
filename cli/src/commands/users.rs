//! `custody users add|list|remove`.

use super::Ctx;
use crate::output;
use anyhow::{Result, bail};
use clap::Subcommand;
use custody_proto::admin::{CreateUser, Role, User};

/// Subcommands.
#[derive(Subcommand)]
pub enum UsersCmd {
    /// Add a user with one or more roles.
    Add {
        /// User name.
        name: String,
        /// owner, deployer or approver (repeat or comma-separate).
        #[arg(long = "role", required = true, value_delimiter = ',')]
        roles: Vec<String>,
        /// Notification address.
        #[arg(long)]
        email: Option<String>,
    },
    /// List users.
    List,
    /// Remove a user (their tokens stop working).
    Remove {
        /// Name or id.
        user: String,
    },
    /// set-key, set-email (approvals).
    #[command(flatten)]
    Approval(crate::approvals::UserApprovalCmd),
}

/// Runs it.
pub async fn run(ctx: &Ctx, cmd: UsersCmd) -> Result<()> {
    let c = ctx.client()?;
    match cmd {
        UsersCmd::Approval(a) => return crate::approvals::run_user(ctx, a).await,
        UsersCmd::Add { name, roles, email } => {
            let mut rs = vec![];
            for r in roles {
                match Role::parse(r.trim()) {
                    Some(x) => rs.push(x),
                    None => bail!("unknown role {r:?}: use owner, deployer or approver"),
                }
            }
            let u: User = c
                .post(
                    "/v1/users",
                    &CreateUser {
                        name,
                        roles: rs,
                        email,
                    },
                )
                .await?;
            if ctx.json {
                output::json(&u)?;
            } else {
                println!("added user {} ({})", u.name, u.id);
            }
        }
        UsersCmd::List => {
            let us: Vec<User> = c.get("/v1/users").await?;
            if ctx.json {
                return output::json(&us);
            }
            let rows = us
                .iter()
                .map(|u| {
                    vec![
                        u.name.clone(),
                        u.roles
                            .iter()
                            .map(|r| r.as_str())
                            .collect::<Vec<_>>()
                            .join(","),
                        u.email.clone().unwrap_or_default(),
                        u.id.clone(),
                    ]
                })
                .collect::<Vec<_>>();
            output::table(&["NAME", "ROLES", "EMAIL", "ID"], &rows);
        }
        UsersCmd::Remove { user } => {
            c.delete(&format!("/v1/users/{user}")).await?;
            println!("removed user {user}");
        }
    }
    Ok(())
}
