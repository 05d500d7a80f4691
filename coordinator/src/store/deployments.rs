//! Deployments, their targets and their log lines.

use super::{new_id, now_ms};
use crate::error::{Error, Result};
use custody_proto::apps::{Deployment, DeploymentLogLine, DeploymentState, TargetStatus};
use sqlx::{Row, SqliteConnection, sqlite::SqliteRow};

/// A deployment row with its private columns.
#[derive(Debug, Clone)]
pub struct DeploymentRow {
    /// Id.
    pub id: String,
    /// App id.
    pub app_id: String,
    /// App name.
    pub app: String,
    /// Release id.
    pub release_id: String,
    /// Environment id.
    pub environment_id: String,
    /// Environment name.
    pub environment: String,
    /// State.
    pub state: DeploymentState,
    /// Reason.
    pub reason: Option<String>,
    /// seal(DK, keylist).
    pub sealed_keylist: Option<String>,
    /// seal(MK, DK).
    pub sealed_deploy_key: Option<String>,
    /// Deployer.
    pub created_by: String,
    /// Created, ms.
    pub created_at_ms: i64,
    /// The approval policy it was created under (None: no approval needed).
    pub approval: Option<DeploymentPolicy>,
}

/// The approval policy a deployment was created under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentPolicy {
    /// Approver group id.
    pub group_id: String,
    /// Approvals needed.
    pub quorum: u32,
    /// The deployer may approve their own deployment.
    pub allow_self_approval: bool,
    /// Window, seconds.
    pub window_seconds: u64,
    /// Canceled if not started by then, ms.
    pub deadline_ms: i64,
}

const SELECT: &str = "SELECT d.*, a.name AS app_name, e.name AS env_name FROM deployments d \
    JOIN apps a ON a.id = d.app_id JOIN environments e ON e.id = d.environment_id";

fn from_row(r: &SqliteRow) -> Result<DeploymentRow> {
    let state: String = r.get("state");
    Ok(DeploymentRow {
        id: r.get("id"),
        app_id: r.get("app_id"),
        app: r.get("app_name"),
        release_id: r.get("release_id"),
        environment_id: r.get("environment_id"),
        environment: r.get("env_name"),
        state: DeploymentState::parse(&state)
            .ok_or_else(|| Error::Internal(format!("stored deployment state {state}")))?,
        reason: r.get("reason"),
        sealed_keylist: r.get("sealed_keylist"),
        sealed_deploy_key: r.get("sealed_deploy_key"),
        created_by: r.get("created_by"),
        created_at_ms: r.get("created_at_ms"),
        approval: r
            .get::<Option<String>, _>("approval_group_id")
            .map(|group_id| DeploymentPolicy {
                group_id,
                quorum: r
                    .get::<Option<i64>, _>("approval_quorum")
                    .unwrap_or(1)
                    .clamp(1, i64::from(u32::MAX)) as u32,
                allow_self_approval: r
                    .get::<Option<bool>, _>("allow_self_approval")
                    .unwrap_or(false),
                window_seconds: r
                    .get::<Option<i64>, _>("approval_window_seconds")
                    .unwrap_or(0)
                    .max(0) as u64,
                deadline_ms: r.get::<Option<i64>, _>("approval_deadline_ms").unwrap_or(0),
            }),
    })
}

/// What a new deployment is.
#[derive(Debug, Clone)]
pub struct NewDeployment<'a> {
    /// App id.
    pub app_id: &'a str,
    /// Release id.
    pub release_id: &'a str,
    /// Environment id.
    pub env_id: &'a str,
    /// First state.
    pub state: DeploymentState,
    /// Deployer.
    pub created_by: &'a str,
    /// Target servers.
    pub targets: &'a [String],
    /// Policy snapshot (deadline filled in from the window).
    pub approval: Option<DeploymentPolicy>,
}

/// Inserts a deployment and its targets.
pub async fn insert(c: &mut SqliteConnection, n: NewDeployment<'_>) -> Result<String> {
    let id = new_id("dep");
    let now = now_ms();
    let p = n.approval.as_ref();
    sqlx::query(
        "INSERT INTO deployments (id, app_id, release_id, environment_id, state, created_by, created_at_ms, updated_at_ms, \
         approval_group_id, approval_quorum, allow_self_approval, approval_window_seconds, approval_deadline_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&id)
    .bind(n.app_id)
    .bind(n.release_id)
    .bind(n.env_id)
    .bind(n.state.as_str())
    .bind(n.created_by)
    .bind(now)
    .bind(p.map(|p| p.group_id.clone()))
    .bind(p.map(|p| i64::from(p.quorum)))
    .bind(p.map(|p| p.allow_self_approval))
    .bind(p.map(|p| p.window_seconds as i64))
    .bind(p.map(|p| now.saturating_add((p.window_seconds as i64).saturating_mul(1000))))
    .execute(&mut *c)
    .await
    .map_err(Error::db("insert deployment"))?;
    for t in n.targets {
        sqlx::query("INSERT INTO deployment_targets (deployment_id, server_id, state) VALUES ($1, $2, 'pending')")
            .bind(&id)
            .bind(t)
            .execute(&mut *c)
            .await
            .map_err(Error::db("insert deployment target"))?;
    }
    Ok(id)
}

/// A deployment by id.
pub async fn get(c: &mut SqliteConnection, id: &str) -> Result<Option<DeploymentRow>> {
    sqlx::query(&format!("{SELECT} WHERE d.id = $1"))
        .bind(id)
        .fetch_optional(&mut *c)
        .await
        .map_err(Error::db("read deployment"))?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Recent deployments, newest first.
pub async fn list(c: &mut SqliteConnection, limit: i64) -> Result<Vec<DeploymentRow>> {
    sqlx::query(&format!(
        "{SELECT} ORDER BY d.created_at_ms DESC, d.id DESC LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(&mut *c)
    .await
    .map_err(Error::db("list deployments"))?
    .iter()
    .map(from_row)
    .collect()
}

/// Target rows: (server, state, reason, wrapped DK).
pub async fn targets(
    c: &mut SqliteConnection,
    id: &str,
) -> Result<Vec<(TargetStatus, Option<String>)>> {
    Ok(
        sqlx::query("SELECT * FROM deployment_targets WHERE deployment_id = $1 ORDER BY server_id")
            .bind(id)
            .fetch_all(&mut *c)
            .await
            .map_err(Error::db("read deployment targets"))?
            .iter()
            .map(|r| {
                (
                    TargetStatus {
                        server_id: r.get("server_id"),
                        state: r.get("state"),
                        reason: r.get("reason"),
                    },
                    r.get("wrapped_deploy_key"),
                )
            })
            .collect(),
    )
}

/// Public view without the approval summary (`crate::approvals::public`
/// adds it).
pub async fn public(c: &mut SqliteConnection, d: &DeploymentRow) -> Result<Deployment> {
    Ok(Deployment {
        id: d.id.clone(),
        app: d.app.clone(),
        release_id: d.release_id.clone(),
        environment: d.environment.clone(),
        state: d.state,
        created_by: d.created_by.clone(),
        created_at: d.created_at_ms / 1000,
        reason: d.reason.clone(),
        targets: targets(c, &d.id).await?.into_iter().map(|t| t.0).collect(),
        approval: None,
    })
}

/// Sets state and reason.
pub async fn set_state(
    c: &mut SqliteConnection,
    id: &str,
    state: DeploymentState,
    reason: Option<&str>,
) -> Result<()> {
    sqlx::query("UPDATE deployments SET state = $1, reason = COALESCE($2, reason), updated_at_ms = $3 WHERE id = $4")
        .bind(state.as_str())
        .bind(reason)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *c)
        .await
        .map_err(Error::db("set deployment state"))?;
    Ok(())
}

/// Stores the prepared key material.
pub async fn set_prepared(
    c: &mut SqliteConnection,
    id: &str,
    keylist: &str,
    dk: &str,
) -> Result<()> {
    sqlx::query("UPDATE deployments SET sealed_keylist = $1, sealed_deploy_key = $2, updated_at_ms = $3 WHERE id = $4")
        .bind(keylist)
        .bind(dk)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *c)
        .await
        .map_err(Error::db("store prepared deployment"))?;
    Ok(())
}

/// Sets one target's state (and optionally reason / wrapped DK).
pub async fn set_target(
    c: &mut SqliteConnection,
    id: &str,
    server: &str,
    state: &str,
    reason: Option<&str>,
    wrapped_dk: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE deployment_targets SET state = $1, reason = COALESCE($2, reason), \
         wrapped_deploy_key = COALESCE($3, wrapped_deploy_key) WHERE deployment_id = $4 AND server_id = $5",
    )
    .bind(state)
    .bind(reason)
    .bind(wrapped_dk)
    .bind(id)
    .bind(server)
    .execute(&mut *c)
    .await
    .map_err(Error::db("set deployment target"))?;
    Ok(())
}

/// Appends log lines; returns how many were stored.
pub async fn append_log(
    c: &mut SqliteConnection,
    id: &str,
    server: &str,
    lines: &[(String, String)],
) -> Result<usize> {
    let next: i64 = sqlx::query(
        "SELECT COALESCE(MAX(seq), 0) AS m FROM deployment_logs WHERE deployment_id = $1",
    )
    .bind(id)
    .fetch_one(&mut *c)
    .await
    .map_err(Error::db("read log head"))?
    .get("m");
    let now = now_ms();
    for (i, (stream, line)) in lines.iter().enumerate() {
        sqlx::query(
            "INSERT INTO deployment_logs (deployment_id, seq, server_id, stream, line, at_ms) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(next + 1 + i as i64)
        .bind(server)
        .bind(stream)
        .bind(line)
        .bind(now)
        .execute(&mut *c)
        .await
        .map_err(Error::db("append log line"))?;
    }
    Ok(lines.len())
}

/// Log lines after `after`.
pub async fn log(pool: &sqlx::SqlitePool, id: &str, after: i64) -> Result<Vec<DeploymentLogLine>> {
    Ok(sqlx::query("SELECT * FROM deployment_logs WHERE deployment_id = $1 AND seq > $2 ORDER BY seq LIMIT 5000")
        .bind(id)
        .bind(after)
        .fetch_all(pool)
        .await
        .map_err(Error::db("read log"))?
        .iter()
        .map(|r| DeploymentLogLine {
            server_id: r.get("server_id"),
            seq: r.get("seq"),
            stream: r.get("stream"),
            line: r.get("line"),
            at_ms: r.get("at_ms"),
        })
        .collect())
}
