//! Approval policies of environments, approver keys, and the approval and
//! decline records of deployments.

use super::{join_list, new_id, now_ms, split_list};
use crate::error::{Error, Result};
use sqlx::{Row, SqliteConnection, sqlite::SqliteRow};

/// An environment's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRow {
    /// Approver group id.
    pub group_id: String,
    /// Approvals needed.
    pub quorum: u32,
    /// The deployer may approve their own deployment.
    pub allow_self_approval: bool,
    /// Window, seconds.
    pub window_seconds: u64,
}

/// The policy of an environment, if approvals are required.
pub async fn policy(c: &mut SqliteConnection, env_id: &str) -> Result<Option<PolicyRow>> {
    Ok(
        sqlx::query("SELECT * FROM approval_policies WHERE environment_id = $1")
            .bind(env_id)
            .fetch_optional(&mut *c)
            .await
            .map_err(Error::db("read approval policy"))?
            .map(|r| PolicyRow {
                group_id: r.get("group_id"),
                quorum: r.get::<i64, _>("quorum").clamp(1, i64::from(u32::MAX)) as u32,
                allow_self_approval: r.get("allow_self_approval"),
                window_seconds: r.get::<i64, _>("window_seconds").max(1) as u64,
            }),
    )
}

/// Sets (replaces) an environment's policy.
pub async fn set_policy(c: &mut SqliteConnection, env_id: &str, p: &PolicyRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO approval_policies (environment_id, group_id, quorum, allow_self_approval, window_seconds, updated_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (environment_id) DO UPDATE SET \
         group_id = excluded.group_id, quorum = excluded.quorum, allow_self_approval = excluded.allow_self_approval, \
         window_seconds = excluded.window_seconds, updated_at_ms = excluded.updated_at_ms",
    )
    .bind(env_id)
    .bind(&p.group_id)
    .bind(i64::from(p.quorum))
    .bind(p.allow_self_approval)
    .bind(p.window_seconds as i64)
    .bind(now_ms())
    .execute(&mut *c)
    .await
    .map_err(Error::db("set approval policy"))?;
    Ok(())
}

/// Removes an environment's policy; returns whether there was one.
pub async fn clear_policy(c: &mut SqliteConnection, env_id: &str) -> Result<bool> {
    Ok(
        sqlx::query("DELETE FROM approval_policies WHERE environment_id = $1")
            .bind(env_id)
            .execute(&mut *c)
            .await
            .map_err(Error::db("clear approval policy"))?
            .rows_affected()
            > 0,
    )
}

/// Environments whose target servers include `server`.
pub async fn envs_with_server(c: &mut SqliteConnection, server: &str) -> Result<Vec<String>> {
    Ok(
        sqlx::query("SELECT environment_id FROM environment_servers WHERE server_id = $1")
            .bind(server)
            .fetch_all(&mut *c)
            .await
            .map_err(Error::db("find environments of server"))?
            .iter()
            .map(|r| r.get("environment_id"))
            .collect(),
    )
}

/// Removes a target server from an environment; returns whether it was there.
pub async fn remove_env_server(
    c: &mut SqliteConnection,
    env_id: &str,
    server_id: &str,
) -> Result<bool> {
    Ok(
        sqlx::query("DELETE FROM environment_servers WHERE environment_id = $1 AND server_id = $2")
            .bind(env_id)
            .bind(server_id)
            .execute(&mut *c)
            .await
            .map_err(Error::db("remove environment server"))?
            .rows_affected()
            > 0,
    )
}

/// A user's approval key: (public key hex, key id).
pub async fn user_key(c: &mut SqliteConnection, user_id: &str) -> Result<Option<(String, String)>> {
    let row = sqlx::query("SELECT approval_public_key, approval_key_id FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(&mut *c)
        .await
        .map_err(Error::db("read approval key"))?;
    Ok(row.and_then(|r| {
        let pk: Option<String> = r.get("approval_public_key");
        let kid: Option<String> = r.get("approval_key_id");
        pk.zip(kid)
    }))
}

/// Registers (replaces) a user's approval key.
pub async fn set_user_key(
    c: &mut SqliteConnection,
    user_id: &str,
    public_key_hex: &str,
    key_id: &str,
) -> Result<()> {
    sqlx::query("UPDATE users SET approval_public_key = $1, approval_key_id = $2 WHERE id = $3")
        .bind(public_key_hex)
        .bind(key_id)
        .bind(user_id)
        .execute(&mut *c)
        .await
        .map_err(Error::db("set approval key"))?;
    Ok(())
}

/// The live user (other than `except`) that already holds this key.
pub async fn key_holder(
    c: &mut SqliteConnection,
    key_id: &str,
    except: &str,
) -> Result<Option<String>> {
    Ok(sqlx::query(
        "SELECT name FROM users WHERE approval_key_id = $1 AND id <> $2 AND removed_at_ms IS NULL",
    )
    .bind(key_id)
    .bind(except)
    .fetch_optional(&mut *c)
    .await
    .map_err(Error::db("find approval key holder"))?
    .map(|r| r.get("name")))
}

/// Sets or clears a user's email address.
pub async fn set_email(c: &mut SqliteConnection, user_id: &str, email: Option<&str>) -> Result<()> {
    sqlx::query("UPDATE users SET email = $1 WHERE id = $2")
        .bind(email)
        .bind(user_id)
        .execute(&mut *c)
        .await
        .map_err(Error::db("set email"))?;
    Ok(())
}

/// Member user ids of a group.
pub async fn group_members(c: &mut SqliteConnection, group_id: &str) -> Result<Vec<String>> {
    Ok(
        sqlx::query("SELECT user_id FROM group_members WHERE group_id = $1 ORDER BY user_id")
            .bind(group_id)
            .fetch_all(&mut *c)
            .await
            .map_err(Error::db("list group members"))?
            .iter()
            .map(|r| r.get("user_id"))
            .collect(),
    )
}

/// A group's name.
pub async fn group_name(c: &mut SqliteConnection, group_id: &str) -> Result<String> {
    Ok(sqlx::query("SELECT name FROM groups_ WHERE id = $1")
        .bind(group_id)
        .fetch_optional(&mut *c)
        .await
        .map_err(Error::db("read group"))?
        .map(|r| r.get("name"))
        .unwrap_or_else(|| group_id.to_string()))
}

/// One approval or decline.
#[derive(Debug, Clone)]
pub struct ApprovalRow {
    /// Id.
    pub id: String,
    /// Deployment.
    pub deployment_id: String,
    /// Approver.
    pub user_id: String,
    /// approve | decline.
    pub decision: String,
    /// Approve and deploy.
    pub deploy: bool,
    /// Signed statement (canonical JSON).
    pub statement: Option<String>,
    /// Signing key id.
    pub key_id: Option<String>,
    /// Targets named by the statement.
    pub targets: Vec<String>,
    /// Statement expiry, ms.
    pub expires_at_ms: Option<i64>,
    /// Decline message.
    pub message: Option<String>,
    /// Received, ms.
    pub created_at_ms: i64,
}

fn from_row(r: &SqliteRow) -> ApprovalRow {
    ApprovalRow {
        id: r.get("id"),
        deployment_id: r.get("deployment_id"),
        user_id: r.get("user_id"),
        decision: r.get("decision"),
        deploy: r.get("deploy"),
        statement: r.get("statement"),
        key_id: r.get("key_id"),
        targets: split_list(&r.get::<Option<String>, _>("targets").unwrap_or_default()),
        expires_at_ms: r.get("expires_at_ms"),
        message: r.get("message"),
        created_at_ms: r.get("created_at_ms"),
    }
}

/// What to record.
#[derive(Debug, Clone)]
pub struct NewApproval<'a> {
    /// Deployment.
    pub deployment_id: &'a str,
    /// Approver.
    pub user_id: &'a str,
    /// approve | decline.
    pub decision: &'a str,
    /// Approve and deploy.
    pub deploy: bool,
    /// Signed statement (canonical JSON).
    pub statement: Option<&'a str>,
    /// Signing key id.
    pub key_id: Option<&'a str>,
    /// Targets named by the statement.
    pub targets: &'a [String],
    /// Statement expiry, ms.
    pub expires_at_ms: Option<i64>,
    /// Decline message.
    pub message: Option<&'a str>,
}

/// Records an approval or decline.
pub async fn insert(c: &mut SqliteConnection, a: NewApproval<'_>) -> Result<String> {
    let id = new_id("apr");
    sqlx::query(
        "INSERT INTO approvals (id, deployment_id, user_id, decision, deploy, statement, key_id, targets, expires_at_ms, message, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&id)
    .bind(a.deployment_id)
    .bind(a.user_id)
    .bind(a.decision)
    .bind(a.deploy)
    .bind(a.statement)
    .bind(a.key_id)
    .bind(join_list(a.targets))
    .bind(a.expires_at_ms)
    .bind(a.message)
    .bind(now_ms())
    .execute(&mut *c)
    .await
    .map_err(Error::db("record approval"))?;
    Ok(id)
}

/// Every record of a deployment, oldest first.
pub async fn of_deployment(c: &mut SqliteConnection, id: &str) -> Result<Vec<ApprovalRow>> {
    Ok(
        sqlx::query("SELECT * FROM approvals WHERE deployment_id = $1 ORDER BY created_at_ms, id")
            .bind(id)
            .fetch_all(&mut *c)
            .await
            .map_err(Error::db("read approvals"))?
            .iter()
            .map(from_row)
            .collect(),
    )
}

/// Ids of deployments in `state`, oldest first.
pub async fn deployments_in(
    c: &mut SqliteConnection,
    states: &[&str],
    env_id: Option<&str>,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for s in states {
        let rows = sqlx::query(
            "SELECT id FROM deployments WHERE state = $1 AND ($2 IS NULL OR environment_id = $2) \
             ORDER BY created_at_ms, id",
        )
        .bind(s)
        .bind(env_id)
        .fetch_all(&mut *c)
        .await
        .map_err(Error::db("list deployments by state"))?;
        out.extend(rows.iter().map(|r| r.get::<String, _>("id")));
    }
    Ok(out)
}

/// Pending or approved deployments whose window ended before `now_ms`.
pub async fn overdue(c: &mut SqliteConnection, now_ms: i64) -> Result<Vec<String>> {
    Ok(sqlx::query(
        "SELECT id FROM deployments WHERE state IN ('pending_approval', 'approved') \
         AND approval_deadline_ms IS NOT NULL AND approval_deadline_ms <= $1 ORDER BY approval_deadline_ms",
    )
    .bind(now_ms)
    .fetch_all(&mut *c)
    .await
    .map_err(Error::db("find overdue deployments"))?
    .iter()
    .map(|r| r.get("id"))
    .collect())
}

/// Replaces a waiting deployment's targets (environment servers changed).
pub async fn replace_targets(c: &mut SqliteConnection, id: &str, targets: &[String]) -> Result<()> {
    sqlx::query("DELETE FROM deployment_targets WHERE deployment_id = $1")
        .bind(id)
        .execute(&mut *c)
        .await
        .map_err(Error::db("clear deployment targets"))?;
    for t in targets {
        sqlx::query(
            "INSERT INTO deployment_targets (deployment_id, server_id, state) VALUES ($1, $2, 'pending')",
        )
        .bind(id)
        .bind(t)
        .execute(&mut *c)
        .await
        .map_err(Error::db("insert deployment target"))?;
    }
    Ok(())
}
