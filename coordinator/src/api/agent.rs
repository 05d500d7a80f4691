//! The agent side: enrollment, heartbeats, the job long poll, results,
//! deploy log lines, artifact download.

use super::{ApiJson, check_protocol, json};
use crate::auth::{AuthAgent, TokenSecret};
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::{now_ms, servers, users};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use custody_proto::ErrorCode;
use custody_proto::jobs::{
    JobKind, JobResult, LogBatch, MAX_JOBS_PER_POLL, MAX_RESULTS_PER_BATCH, PollResponse,
    ResultBatch, ResultBatchAck,
};
use custody_proto::servers::{EnrollRequest, EnrollResponse, Heartbeat, HeartbeatAck};
use serde::Deserialize;
use serde_json::json as j;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

fn valid_host(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

pub async fn enroll(
    State(s): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(req): ApiJson<EnrollRequest>,
) -> Result<Response> {
    check_protocol(req.protocol)?;
    s.limiter.check(Some(peer.ip()), None)?;
    if !valid_host(&req.name) {
        return Err(Error::invalid("name must be a host name"));
    }
    if req.roles.is_empty() || req.oaep_hashes.is_empty() {
        return Err(Error::invalid("roles and oaep_hashes must not be empty"));
    }
    let fingerprint = crate::keys::fingerprint_of_pem(&req.public_key_pem)?;
    let id = crate::store::new_id("srv");
    let mut tx = s.begin().await?;
    let jt = TokenSecret::from_presented(&req.join_token);
    if let Err(e) = users::consume_join_token(&mut tx.c, &jt.hash_hex(), &id).await {
        s.limiter.fail(Some(peer.ip()), None);
        s.metrics.auth_failure();
        return Err(e);
    }
    let mut roles = req.roles.clone();
    roles.sort();
    roles.dedup();
    let row = servers::ServerRow {
        id: id.clone(),
        name: req.name.clone(),
        public_key_pem: req.public_key_pem.trim().to_string() + "\n",
        fingerprint: fingerprint.clone(),
        oaep_hashes: req.oaep_hashes.clone(),
        roles,
        key_manager: false,
        enrolled_at_ms: now_ms(),
        last_seen_at_ms: None,
    };
    servers::insert(
        &mut tx.c,
        &row,
        &req.agent_version.chars().take(64).collect::<String>(),
    )
    .await?;
    let cred = TokenSecret::generate("cst")?;
    users::insert_token(&mut tx.c, &cred, None, Some(&id), Some("agent credential")).await?;
    tx.audit(
        &format!("server:{id}"),
        "server.enroll",
        &format!("server:{id}"),
        "ok",
        j!({"name": row.name, "fingerprint": fingerprint, "roles": row.roles}),
    )
    .await?;
    tx.commit().await?;
    s.presence.seen(&id);
    Ok((
        StatusCode::CREATED,
        axum::Json(EnrollResponse {
            server_id: id,
            credential: cred.expose().to_string(),
            account: s.account.clone(),
            heartbeat_interval_seconds: s.config.agents.heartbeat_interval_seconds,
        }),
    )
        .into_response())
}

pub async fn heartbeat(
    AuthAgent(_a): AuthAgent,
    ApiJson(req): ApiJson<Heartbeat>,
) -> Result<Response> {
    check_protocol(req.protocol)?;
    Ok(json(HeartbeatAck {
        server_time_ms: now_ms(),
    }))
}

#[derive(Debug, Deserialize)]
pub struct PollQuery {
    wait: Option<u64>,
    protocol: Option<u32>,
    /// Jobs the agent takes at once (default 1, at most [`MAX_JOBS_PER_POLL`]).
    max: Option<u32>,
}

pub async fn poll(
    State(s): State<Arc<AppState>>,
    AuthAgent(a): AuthAgent,
    Query(q): Query<PollQuery>,
) -> Result<Response> {
    check_protocol(q.protocol.unwrap_or(0))?;
    let wait = q
        .wait
        .unwrap_or(0)
        .min(s.config.agents.max_poll_wait_seconds);
    let max = q.max.unwrap_or(1).clamp(1, MAX_JOBS_PER_POLL);
    let jobs = crate::routing::poll(&s, &a.server_id, Duration::from_secs(wait), max).await?;
    Ok(json(PollResponse {
        protocol: custody_proto::PROTOCOL_VERSION,
        jobs,
    }))
}

pub async fn result(
    State(s): State<Arc<AppState>>,
    AuthAgent(a): AuthAgent,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<JobResult>,
) -> Result<Response> {
    check_protocol(req.protocol)?;
    Ok(json(
        crate::routing::submit(&s, &a.server_id, &id, req).await?,
    ))
}

pub async fn results(
    State(s): State<Arc<AppState>>,
    AuthAgent(a): AuthAgent,
    ApiJson(req): ApiJson<ResultBatch>,
) -> Result<Response> {
    check_protocol(req.protocol)?;
    if req.results.len() > MAX_RESULTS_PER_BATCH {
        return Err(Error::api(
            ErrorCode::PayloadTooLarge,
            format!("at most {MAX_RESULTS_PER_BATCH} results in one batch"),
        ));
    }
    let acks = crate::routing::submit_batch(&s, &a.server_id, req.results).await?;
    Ok(json(ResultBatchAck {
        protocol: custody_proto::PROTOCOL_VERSION,
        acks,
    }))
}

pub async fn log(
    State(s): State<Arc<AppState>>,
    AuthAgent(a): AuthAgent,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<LogBatch>,
) -> Result<Response> {
    check_protocol(req.protocol)?;
    if req.lines.len() > s.config.limits.max_log_lines_per_batch {
        return Err(Error::api(
            ErrorCode::PayloadTooLarge,
            "too many log lines in one batch",
        ));
    }
    let mut tx = s.begin().await?;
    let job = crate::store::jobs::get(&mut tx.c, &id)
        .await?
        .filter(|j| j.kind == JobKind::Deploy && j.target_server.as_deref() == Some(&a.server_id))
        .ok_or_else(|| Error::not_found("job"))?;
    let spec = crate::jobspec::Spec::from_json(&job.spec)?;
    let crate::jobspec::Spec::Deploy { deployment_id, .. } = spec else {
        return Err(Error::not_found("job"));
    };
    let lines: Vec<(String, String)> = req
        .lines
        .into_iter()
        .map(|l| {
            let stream = serde_json::to_value(l.stream)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            (stream, l.line.chars().take(8192).collect())
        })
        .collect();
    crate::store::deployments::append_log(&mut tx.c, &deployment_id, &a.server_id, &lines).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn artifact(
    State(s): State<Arc<AppState>>,
    AuthAgent(a): AuthAgent,
    Path(sha): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    // Only a target with a deploy job for a release with this package may fetch it.
    let allowed: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM jobs j JOIN deployments d ON d.id = j.subject \
         JOIN releases r ON r.id = d.release_id \
         WHERE j.kind = 'deploy' AND j.target_server = $1 AND r.package_sha256 = $2 LIMIT 1",
    )
    .bind(&a.server_id)
    .bind(&sha)
    .fetch_optional(&s.store.read)
    .await
    .map_err(Error::db("check artifact access"))?;
    if allowed.is_none() {
        return Err(Error::not_found("artifact"));
    }
    super::apps::serve_artifact(&s, &sha, &headers).await
}
