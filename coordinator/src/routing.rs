//! The job queue's moving parts: enqueue, assignment to a random live
//! eligible agent, long-poll hand-out, lease expiry with failover, and
//! result intake (first valid result wins; duplicates are logged and ignored).

use crate::error::{Error, Result};
use crate::jobspec::{self, Spec};
use crate::state::{AppState, Tx};
use crate::store::jobs::{self as jstore, JobRow, NewJob};
use crate::store::now_ms;
use custody_proto::ErrorCode;
use custody_proto::jobs::{BatchedAck, BatchedResult, Job, JobKind, JobResult, Outcome, ResultAck};
use serde_json::json;
use std::time::Duration;

/// Queues a job and tries to assign it at once.
pub async fn enqueue(tx: &mut Tx<'_>, spec: Spec, actor: &str) -> Result<String> {
    let kind = spec.kind();
    let cfg = &tx.state().config.jobs;
    let lease_s = if kind == JobKind::Deploy {
        cfg.deploy_deadline_seconds
    } else {
        cfg.key_manager_deadline_seconds
    };
    let max_attempts = cfg.max_attempts;
    let spec_json = spec.to_json()?;
    let id = jstore::insert(
        &mut tx.c,
        NewJob {
            kind,
            spec: spec_json,
            target_server: spec.target(),
            lease_ms: (lease_s * 1000) as i64,
            max_attempts,
            idempotency_key: spec.idempotency_key(),
            subject: spec.subject(),
        },
    )
    .await?;
    tx.audit(
        actor,
        "job.create",
        &format!("job:{id}"),
        "ok",
        json!({"type": kind.as_str(), "spec": spec}),
    )
    .await?;
    let job = jstore::get(&mut tx.c, &id)
        .await?
        .ok_or_else(|| Error::Internal("job vanished".into()))?;
    assign(tx, &job).await?;
    Ok(id)
}

fn random_index(n: usize) -> usize {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return 0;
    }
    (u64::from_le_bytes(b) % n as u64) as usize
}

/// Assigns a job: deploys to their target; key-manager jobs to a random
/// live eligible key manager, preferring ones not tried yet. Leaves it
/// unassigned (waiting, visible in `/v1/jobs`) when none is live.
pub async fn assign(tx: &mut Tx<'_>, job: &JobRow) -> Result<bool> {
    let spec = Spec::from_json(&job.spec)?;
    let eligible = jobspec::eligible(tx, &spec).await?;
    let pick = if job.kind == JobKind::Deploy {
        eligible.into_iter().next()
    } else {
        let live: Vec<String> = eligible
            .into_iter()
            .filter(|s| tx.state().presence.is_live(s))
            .collect();
        let fresh: Vec<&String> = live.iter().filter(|s| !job.tried.contains(s)).collect();
        if !fresh.is_empty() {
            Some(fresh[random_index(fresh.len())].clone())
        } else if !live.is_empty() {
            Some(live[random_index(live.len())].clone())
        } else {
            None
        }
    };
    match pick {
        Some(server) => {
            jstore::assign(&mut tx.c, job, &server, now_ms()).await?;
            tx.wake(&server);
            Ok(true)
        }
        None => {
            if job.assigned_server.is_some() {
                jstore::unassign(&mut tx.c, &job.id).await?;
            }
            Ok(false)
        }
    }
}

/// Fails a job for good and applies the consequences.
pub async fn fail_job(tx: &mut Tx<'_>, job: &JobRow, reason: &str, actor: &str) -> Result<()> {
    jstore::finish(&mut tx.c, &job.id, false, Some(reason), None).await?;
    tx.audit(
        actor,
        "job.failed",
        &format!("job:{}", job.id),
        "failed",
        json!({"type": job.kind.as_str(), "attempts": job.attempts, "reason": reason}),
    )
    .await?;
    tx.state()
        .metrics
        .completed(false, (now_ms() - job.created_at_ms).max(0) as u64);
    let spec = Spec::from_json(&job.spec)?;
    jobspec::on_failure(tx, &spec, reason).await
}

/// One sweep: re-issue or fail jobs whose lease ran out; assign waiting ones.
pub async fn sweep(state: &AppState) -> Result<()> {
    let now = now_ms();
    let pending: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'leased') AND \
         ((lease_expires_at_ms IS NOT NULL AND lease_expires_at_ms < $1) OR assigned_server IS NULL)",
    )
    .bind(now)
    .fetch_one(&state.store.read)
    .await
    .map_err(Error::db("check sweep"))?;
    if pending == 0 {
        return Ok(());
    }
    let mut tx = state.begin().await?;
    for job in jstore::expired(&mut tx.c, now).await? {
        let who = job.assigned_server.clone().unwrap_or_default();
        if job.attempts >= job.max_attempts {
            let reason = format!("no result after {} attempts", job.attempts);
            fail_job(&mut tx, &job, &reason, "coordinator").await?;
        } else {
            state.metrics.reassigned();
            tx.audit(
                "coordinator",
                "job.reassign",
                &format!("job:{}", job.id),
                "lease_expired",
                json!({"type": job.kind.as_str(), "from": who, "attempt": job.attempts}),
            )
            .await?;
            tracing::info!(job = %job.id, from = %who, "lease expired; re-issuing");
            assign(&mut tx, &job).await?;
        }
    }
    for job in jstore::unassigned(&mut tx.c).await? {
        assign(&mut tx, &job).await?;
    }
    tx.commit().await
}

/// Runs [`sweep`] until shutdown.
pub async fn sweeper(state: std::sync::Arc<AppState>) {
    let mut shutdown = state.shutdown.clone();
    let every = Duration::from_millis(state.config.jobs.sweep_interval_ms);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        if let Err(e) = sweep(&state).await {
            tracing::warn!(error = %e, "job sweep failed");
        }
    }
}

/// Leases up to `max` of the jobs queued for `server` in one transaction
/// and builds their payloads. A job whose inputs are gone (server removed,
/// key lost) cannot run anywhere: it fails here and is not handed out.
async fn claim(state: &AppState, server: &str, max: u32) -> Result<Vec<Job>> {
    let mut tx = state.begin().await?;
    let now = now_ms();
    let rows = jstore::claim(&mut tx.c, server, now, max).await?;
    let mut jobs = Vec::with_capacity(rows.len());
    for row in rows {
        let spec = Spec::from_json(&row.spec)?;
        let payload = match jobspec::materialize(&mut tx, &spec, server).await {
            Ok(p) => p,
            Err(Error::Api { message, .. }) => {
                fail_job(&mut tx, &row, &message, "coordinator").await?;
                continue;
            }
            Err(e) => return Err(e),
        };
        jobs.push((row, payload));
    }
    tx.commit().await?;
    Ok(jobs
        .into_iter()
        .map(|(row, payload)| {
            state
                .metrics
                .dispatched((now - row.assigned_at_ms.unwrap_or(now)).max(0) as u64);
            Job {
                protocol: custody_proto::PROTOCOL_VERSION,
                id: row.id,
                attempt: row.attempts,
                idempotency_key: row.idempotency_key,
                issued_at_ms: row.assigned_at_ms.unwrap_or(now),
                lease_expires_at_ms: now + row.lease_ms,
                payload,
            }
        })
        .collect())
}

/// Long poll: returns up to `max` (at least one) jobs for `server` as soon
/// as any is assigned, or none after `wait` (or at shutdown).
pub async fn poll(state: &AppState, server: &str, wait: Duration, max: u32) -> Result<Vec<Job>> {
    let notify = state.presence.notifier(server);
    let deadline = tokio::time::Instant::now() + wait;
    let mut shutdown = state.shutdown.clone();
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if jstore::has_queued(&state.store.read, server).await? {
            let jobs = claim(state, server, max.max(1)).await?;
            if !jobs.is_empty() {
                return Ok(jobs);
            }
        }
        if *shutdown.borrow() {
            return Ok(Vec::new());
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(deadline) => return Ok(Vec::new()),
            _ = shutdown.changed() => return Ok(Vec::new()),
        }
        state.presence.seen(server);
    }
}

/// Records a job result from `server`.
pub async fn submit(
    state: &AppState,
    server: &str,
    job_id: &str,
    res: JobResult,
) -> Result<ResultAck> {
    let mut tx = state.begin().await?;
    let ack = record(&mut tx, server, job_id, res).await?;
    tx.commit().await?;
    Ok(ack)
}

/// Records several results from `server` in one transaction (one audit
/// checkpoint). Each is recorded inside its own savepoint: a result the
/// coordinator refuses is rolled back and answered with its error, the
/// others stand. A database or audit failure fails the whole batch and
/// records none.
pub async fn submit_batch(
    state: &AppState,
    server: &str,
    results: Vec<BatchedResult>,
) -> Result<Vec<BatchedAck>> {
    let mut tx = state.begin().await?;
    let mut acks = Vec::with_capacity(results.len());
    for r in results {
        tx.savepoint().await?;
        let res = JobResult {
            protocol: custody_proto::PROTOCOL_VERSION,
            idempotency_key: r.idempotency_key,
            attempt: r.attempt,
            outcome: r.outcome,
        };
        match record(&mut tx, server, &r.job_id, res).await {
            Ok(ack) => {
                tx.keep_savepoint();
                acks.push(BatchedAck {
                    job_id: r.job_id,
                    accepted: ack.accepted,
                    duplicate: ack.duplicate,
                    error: None,
                });
            }
            Err(e @ Error::Api { .. }) => {
                tx.rollback_to_savepoint().await?;
                acks.push(BatchedAck {
                    job_id: r.job_id,
                    accepted: false,
                    duplicate: false,
                    error: Some(e.to_api()),
                });
            }
            Err(e) => return Err(e),
        }
    }
    tx.commit().await?;
    Ok(acks)
}

/// Records one result inside `tx` (which the caller commits).
async fn record(tx: &mut Tx<'_>, server: &str, job_id: &str, res: JobResult) -> Result<ResultAck> {
    let state = tx.state();
    let actor = format!("server:{server}");
    let job = jstore::get(&mut tx.c, job_id)
        .await?
        .filter(|j| j.tried.iter().any(|t| t == server))
        .ok_or_else(|| Error::not_found("job"))?;
    if res.idempotency_key != job.idempotency_key {
        return Err(Error::invalid("idempotency_key does not match the job"));
    }
    let object = format!("job:{}", job.id);
    if job.state == "done" || job.state == "failed" {
        state.metrics.duplicate();
        tracing::info!(job = %job.id, %server, attempt = res.attempt, "duplicate job result ignored");
        tx.audit(
            &actor,
            "job.result",
            &object,
            "duplicate",
            json!({"type": job.kind.as_str(), "attempt": res.attempt}),
        )
        .await?;
        return Ok(ResultAck {
            accepted: false,
            duplicate: true,
        });
    }
    let spec = Spec::from_json(&job.spec)?;
    match res.outcome {
        Outcome::Succeeded { output } => {
            if output.kind() != job.kind {
                return Err(Error::api(
                    ErrorCode::InvalidInput,
                    format!(
                        "result type {} does not match job type {}",
                        output.kind().as_str(),
                        job.kind.as_str()
                    ),
                ));
            }
            jobspec::apply(tx, &spec, server, output).await?;
            jstore::finish(&mut tx.c, &job.id, true, None, Some(server)).await?;
            tx.audit(
                &actor,
                "job.result",
                &object,
                "ok",
                json!({"type": job.kind.as_str(), "attempt": res.attempt}),
            )
            .await?;
            state
                .metrics
                .completed(true, (now_ms() - job.created_at_ms).max(0) as u64);
        }
        Outcome::Failed { failure } => {
            let message: String = failure.message.chars().take(500).collect();
            let code: String = failure.code.chars().take(64).collect();
            tx.audit(
                &actor,
                "job.result",
                &object,
                "failed",
                json!({"type": job.kind.as_str(), "attempt": res.attempt, "code": code,
                       "message": message, "retryable": failure.retryable}),
            )
            .await?;
            if job.kind.is_key_manager_job() && failure.retryable && job.attempts < job.max_attempts
            {
                state.metrics.reassigned();
                assign(tx, &job).await?;
            } else {
                fail_job(tx, &job, &format!("{code}: {message}"), &actor).await?;
            }
        }
    }
    Ok(ResultAck {
        accepted: true,
        duplicate: false,
    })
}

/// After a server is removed or stops being a key manager: its key-manager
/// jobs go elsewhere; deploys to it (if removed) fail.
pub async fn release_server_jobs(tx: &mut Tx<'_>, server: &str, removed: bool) -> Result<()> {
    for job in jstore::open_for_server(&mut tx.c, server).await? {
        if job.kind == JobKind::Deploy {
            if removed {
                fail_job(tx, &job, "the target server was removed", "coordinator").await?;
            }
        } else {
            let mut j = job.clone();
            j.assigned_server = Some(server.to_string());
            jstore::unassign(&mut tx.c, &j.id).await?;
            if let Some(fresh) = jstore::get(&mut tx.c, &j.id).await? {
                assign(tx, &fresh).await?;
            }
        }
    }
    Ok(())
}
