//! `custody groups add|add-member|list`.

use super::Ctx;
use crate::output;
use anyhow::Result;
use clap::Subcommand;
use custody_proto::admin::{AddMember, CreateGroup, Group};

/// Subcommands.
#[derive(Subcommand)]
pub enum GroupsCmd {
    /// Create an approver group.
    Add {
        /// Group name.
        name: String,
    },
    /// Add an approver to a group.
    AddMember {
        /// Group name or id.
        group: String,
        /// User name or id.
        user: String,
    },
    /// List groups.
    List,
}

/// Runs it.
pub async fn run(ctx: &Ctx, cmd: GroupsCmd) -> Result<()> {
    let c = ctx.client()?;
    match cmd {
        GroupsCmd::Add { name } => {
            let g: Group = c.post("/v1/groups", &CreateGroup { name }).await?;
            if ctx.json {
                output::json(&g)?;
            } else {
                println!("added group {} ({})", g.name, g.id);
            }
        }
        GroupsCmd::AddMember { group, user } => {
            let g: Group = c
                .post(
                    &format!("/v1/groups/{group}/members"),
                    &AddMember { user: user.clone() },
                )
                .await?;
            if ctx.json {
                output::json(&g)?;
            } else {
                println!("{user} is in {} ({} members)", g.name, g.members.len());
            }
        }
        GroupsCmd::List => {
            let gs: Vec<Group> = c.get("/v1/groups").await?;
            if ctx.json {
                return output::json(&gs);
            }
            let rows = gs
                .iter()
                .map(|g| vec![g.name.clone(), g.members.join(","), g.id.clone()])
                .collect::<Vec<_>>();
            output::table(&["NAME", "MEMBERS", "ID"], &rows);
        }
    }
    Ok(())
}
