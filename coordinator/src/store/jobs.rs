//! The durable job queue: `queued` → (assigned) → `leased` → `done` | `failed`.

use super::{join_list, new_id, now_ms, split_list};
use crate::error::{Error, Result};
use custody_proto::jobs::JobKind;
use sqlx::{Row, SqliteConnection, sqlite::SqliteRow};

/// A job row.
#[derive(Debug, Clone)]
pub struct JobRow {
    /// Id.
    pub id: String,
    /// Type.
    pub kind: JobKind,
    /// What the payload is built from (JSON of `jobspec::Spec`).
    pub spec: String,
    /// queued | leased | done | failed.
    pub state: String,
    /// Deploy jobs: the only server that may run it.
    pub target_server: Option<String>,
    /// Current assignee.
    pub assigned_server: Option<String>,
    /// Every server it was handed to.
    pub tried: Vec<String>,
    /// Hand-outs so far.
    pub attempts: u32,
    /// Hand-outs allowed.
    pub max_attempts: u32,
    /// Lease length, ms.
    pub lease_ms: i64,
    /// When assigned, ms.
    pub assigned_at_ms: Option<i64>,
    /// Lease end, ms.
    pub lease_expires_at_ms: Option<i64>,
    /// Same for every attempt.
    pub idempotency_key: String,
    /// Created, ms.
    pub created_at_ms: i64,
}

fn from_row(r: &SqliteRow) -> Result<JobRow> {
    let kind: String = r.get("kind");
    Ok(JobRow {
        id: r.get("id"),
        kind: JobKind::parse(&kind)
            .ok_or_else(|| Error::Internal(format!("stored job kind {kind}")))?,
        spec: r.get("spec"),
        state: r.get("state"),
        target_server: r.get("target_server"),
        assigned_server: r.get("assigned_server"),
        tried: split_list(&r.get::<String, _>("tried")),
        attempts: r.get::<i64, _>("attempts") as u32,
        max_attempts: r.get::<i64, _>("max_attempts") as u32,
        lease_ms: r.get("lease_ms"),
        assigned_at_ms: r.get("assigned_at_ms"),
        lease_expires_at_ms: r.get("lease_expires_at_ms"),
        idempotency_key: r.get("idempotency_key"),
        created_at_ms: r.get("created_at_ms"),
    })
}

/// A new job to insert.
pub struct NewJob<'a> {
    /// Type.
    pub kind: JobKind,
    /// Spec JSON.
    pub spec: String,
    /// Deploy jobs: the target.
    pub target_server: Option<&'a str>,
    /// Lease length, ms.
    pub lease_ms: i64,
    /// Hand-outs allowed.
    pub max_attempts: u32,
    /// Idempotency key; default the job id.
    pub idempotency_key: Option<String>,
    /// The object it works on.
    pub subject: &'a str,
}

/// Inserts a queued, unassigned job.
pub async fn insert(c: &mut SqliteConnection, j: NewJob<'_>) -> Result<String> {
    let id = new_id("job");
    let key = j.idempotency_key.unwrap_or_else(|| id.clone());
    sqlx::query(
        "INSERT INTO jobs (id, kind, spec, state, target_server, tried, attempts, max_attempts, lease_ms, \
         idempotency_key, created_at_ms, subject) VALUES ($1, $2, $3, 'queued', $4, '', 0, $5, $6, $7, $8, $9)",
    )
    .bind(&id)
    .bind(j.kind.as_str())
    .bind(&j.spec)
    .bind(j.target_server)
    .bind(i64::from(j.max_attempts))
    .bind(j.lease_ms)
    .bind(&key)
    .bind(now_ms())
    .bind(j.subject)
    .execute(&mut *c)
    .await
    .map_err(Error::db("insert job"))?;
    Ok(id)
}

/// A job by id.
pub async fn get(c: &mut SqliteConnection, id: &str) -> Result<Option<JobRow>> {
    sqlx::query("SELECT * FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *c)
        .await
        .map_err(Error::db("read job"))?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Hands a job to `server` (queued, lease from now).
pub async fn assign(c: &mut SqliteConnection, job: &JobRow, server: &str, now: i64) -> Result<()> {
    let mut tried = job.tried.clone();
    if !tried.iter().any(|t| t == server) {
        tried.push(server.to_string());
    }
    sqlx::query(
        "UPDATE jobs SET state = 'queued', assigned_server = $1, tried = $2, attempts = attempts + 1, \
         assigned_at_ms = $3, lease_expires_at_ms = $4 WHERE id = $5",
    )
    .bind(server)
    .bind(join_list(&tried))
    .bind(now)
    .bind(now + job.lease_ms)
    .bind(&job.id)
    .execute(&mut *c)
    .await
    .map_err(Error::db("assign job"))?;
    Ok(())
}

/// Takes the oldest `max` jobs queued for `server` and leases them, oldest
/// first.
pub async fn claim(
    c: &mut SqliteConnection,
    server: &str,
    now: i64,
    max: u32,
) -> Result<Vec<JobRow>> {
    let mut rows = sqlx::query(
        "UPDATE jobs SET state = 'leased', lease_expires_at_ms = $1 + lease_ms WHERE id IN \
         (SELECT id FROM jobs WHERE assigned_server = $2 AND state = 'queued' ORDER BY created_at_ms, id LIMIT $3) \
         RETURNING *",
    )
    .bind(now)
    .bind(server)
    .bind(i64::from(max))
    .fetch_all(&mut *c)
    .await
    .map_err(Error::db("claim jobs"))?
    .iter()
    .map(from_row)
    .collect::<Result<Vec<_>>>()?;
    // RETURNING follows no ORDER BY: restore queue order.
    rows.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
    Ok(rows)
}

/// Whether `server` has a job waiting (cheap pre-check before a write).
pub async fn has_queued(pool: &sqlx::SqlitePool, server: &str) -> Result<bool> {
    Ok(sqlx::query(
        "SELECT 1 AS one FROM jobs WHERE assigned_server = $1 AND state = 'queued' LIMIT 1",
    )
    .bind(server)
    .fetch_optional(pool)
    .await
    .map_err(Error::db("check queued jobs"))?
    .is_some())
}

/// Marks a job finished.
pub async fn finish(
    c: &mut SqliteConnection,
    id: &str,
    ok: bool,
    error: Option<&str>,
    done_by: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE jobs SET state = $1, error = $2, done_by = $3, finished_at_ms = $4, lease_expires_at_ms = NULL WHERE id = $5",
    )
    .bind(if ok { "done" } else { "failed" })
    .bind(error)
    .bind(done_by)
    .bind(now_ms())
    .bind(id)
    .execute(&mut *c)
    .await
    .map_err(Error::db("finish job"))?;
    Ok(())
}

/// Puts a job back in the unassigned queue.
pub async fn unassign(c: &mut SqliteConnection, id: &str) -> Result<()> {
    sqlx::query(
        "UPDATE jobs SET state = 'queued', assigned_server = NULL, lease_expires_at_ms = NULL WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *c)
    .await
    .map_err(Error::db("unassign job"))?;
    Ok(())
}

/// Open jobs whose lease ran out.
pub async fn expired(c: &mut SqliteConnection, now: i64) -> Result<Vec<JobRow>> {
    sqlx::query(
        "SELECT * FROM jobs WHERE state IN ('queued', 'leased') AND lease_expires_at_ms IS NOT NULL \
         AND lease_expires_at_ms < $1 ORDER BY created_at_ms LIMIT 500",
    )
    .bind(now)
    .fetch_all(&mut *c)
    .await
    .map_err(Error::db("find expired jobs"))?
    .iter()
    .map(from_row)
    .collect()
}

/// Queued jobs nobody holds.
pub async fn unassigned(c: &mut SqliteConnection) -> Result<Vec<JobRow>> {
    sqlx::query(
        "SELECT * FROM jobs WHERE state = 'queued' AND assigned_server IS NULL ORDER BY created_at_ms LIMIT 500",
    )
    .fetch_all(&mut *c)
    .await
    .map_err(Error::db("find unassigned jobs"))?
    .iter()
    .map(from_row)
    .collect()
}

/// Open jobs of a kind with exactly this spec.
pub async fn open_with_spec(
    c: &mut SqliteConnection,
    kind: JobKind,
    spec: &str,
) -> Result<Vec<JobRow>> {
    sqlx::query(
        "SELECT * FROM jobs WHERE kind = $1 AND spec = $2 AND state IN ('queued', 'leased')",
    )
    .bind(kind.as_str())
    .bind(spec)
    .fetch_all(&mut *c)
    .await
    .map_err(Error::db("find open jobs"))?
    .iter()
    .map(from_row)
    .collect()
}

/// Open jobs that `server` holds or is the target of.
pub async fn open_for_server(c: &mut SqliteConnection, server: &str) -> Result<Vec<JobRow>> {
    sqlx::query(
        "SELECT * FROM jobs WHERE state IN ('queued', 'leased') AND (assigned_server = $1 OR target_server = $1)",
    )
    .bind(server)
    .fetch_all(&mut *c)
    .await
    .map_err(Error::db("find server jobs"))?
    .iter()
    .map(from_row)
    .collect()
}

/// (queued, leased) counts.
pub async fn depth(pool: &sqlx::SqlitePool) -> Result<(i64, i64)> {
    let r = sqlx::query(
        "SELECT SUM(CASE WHEN state = 'queued' THEN 1 ELSE 0 END) AS q, \
         SUM(CASE WHEN state = 'leased' THEN 1 ELSE 0 END) AS l FROM jobs WHERE state IN ('queued', 'leased')",
    )
    .fetch_one(pool)
    .await
    .map_err(Error::db("count jobs"))?;
    Ok((
        r.get::<Option<i64>, _>("q").unwrap_or(0),
        r.get::<Option<i64>, _>("l").unwrap_or(0),
    ))
}

/// Jobs (any state) of a kind, newest first — for listings and tests.
pub async fn list(
    pool: &sqlx::SqlitePool,
    limit: i64,
) -> Result<Vec<(JobRow, Option<String>, Option<String>)>> {
    let rows = sqlx::query("SELECT * FROM jobs ORDER BY created_at_ms DESC, id DESC LIMIT $1")
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(Error::db("list jobs"))?;
    rows.iter()
        .map(|r| Ok((from_row(r)?, r.get("done_by"), r.get("error"))))
        .collect()
}
