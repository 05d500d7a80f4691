//! The pollers and the deploy worker.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use custody_proto::PROTOCOL_VERSION;
use custody_proto::jobs::{Job, JobKind, JobOutput, MAX_JOBS_PER_POLL, Outcome};
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};

use super::Context;
use super::results::{self, Report};
use crate::link::backoff::Backoff;
use crate::roles::JobError;

/// One poller: waits for room, long-polls for as many jobs as there is
/// room for, starts each in its own task, backs off when the coordinator
/// does not answer. Ends when draining starts (jobs already started run
/// to their result: see [`super::run`]).
pub async fn run(
    ctx: Arc<Context>,
    slot: usize,
    mut drain: watch::Receiver<bool>,
    deploys: mpsc::UnboundedSender<Job>,
    reports: mpsc::UnboundedSender<Report>,
) {
    let mut backoff = Backoff::reconnect();
    loop {
        if *drain.borrow() {
            return;
        }
        let first = tokio::select! {
            p = ctx.in_hand.clone().acquire_owned() => p,
            _ = drain.changed() => return,
        };
        // The semaphore is never closed.
        let Ok(first) = first else { return };
        let mut room = vec![first];
        while room.len() < MAX_JOBS_PER_POLL as usize {
            match ctx.in_hand.clone().try_acquire_owned() {
                Ok(p) => room.push(p),
                Err(_) => break,
            }
        }
        let max = u32::try_from(room.len()).unwrap_or(1);
        let polled = tokio::select! {
            r = ctx.client.poll_jobs(ctx.poll_wait, max) => r,
            _ = drain.changed() => return,
        };
        match polled {
            Ok(jobs) => {
                backoff.reset();
                ctx.set_online(true, "");
                for job in jobs {
                    tracing::debug!(slot, job = %job.id, kind = job.payload.kind().as_str(), attempt = job.attempt, "job received");
                    // More jobs than asked for would break the protocol;
                    // they still run, bounded by the keystore permits.
                    let held = room.pop();
                    let (ctx, deploys, reports) = (ctx.clone(), deploys.clone(), reports.clone());
                    tokio::spawn(async move {
                        handle(&ctx, job, &deploys, &reports, held).await;
                    });
                }
            }
            Err(e) => {
                drop(room);
                let detail = crate::link::describe_plain(&e);
                if e.status() == Some(401) {
                    tracing::error!(
                        "the coordinator refused this agent's credential (was the server removed?); \
                         enroll again with a new join token"
                    );
                }
                ctx.set_online(false, &detail);
                let delay = backoff.next_delay();
                tracing::debug!(slot, error = %detail, delay_ms = delay.as_millis() as u64, "poll failed");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = drain.changed() => return,
                }
            }
        }
    }
}

/// Runs or passes on one job. A key-manager job's result goes to the
/// reporter with the job's room in hand (`held`); the others are posted
/// here or by the deploy worker, and their room is free at once.
async fn handle(
    ctx: &Arc<Context>,
    job: Job,
    deploys: &mpsc::UnboundedSender<Job>,
    reports: &mpsc::UnboundedSender<Report>,
    held: Option<OwnedSemaphorePermit>,
) {
    if job.protocol != PROTOCOL_VERSION {
        let err = JobError::Protocol(job.protocol);
        results::post(
            &ctx.client,
            &job,
            Outcome::Failed {
                failure: err.failure(),
            },
        )
        .await;
        return;
    }
    if job.payload.kind() == JobKind::Deploy {
        if ctx.target.is_none() {
            let err = JobError::NotOffered("deploy", "no [target] install_roots are configured");
            results::post(
                &ctx.client,
                &job,
                Outcome::Failed {
                    failure: err.failure(),
                },
            )
            .await;
            return;
        }
        if let Err(mpsc::error::SendError(job)) = deploys.send(job) {
            tracing::warn!(job = %job.id, "deploy worker gone; the job will be re-delivered");
        }
        return;
    }
    let outcome = run_key_manager_job(ctx, &job).await;
    let ok = matches!(outcome, Outcome::Succeeded { .. });
    let counter = if ok {
        &ctx.stats.km_succeeded
    } else {
        &ctx.stats.km_failed
    };
    counter.fetch_add(1, Ordering::Relaxed);
    if let Err(mpsc::error::SendError(r)) = reports.send(Report { job, outcome, held }) {
        results::post(&ctx.client, &r.job, r.outcome).await;
    }
}

/// Runs a key-manager job on the next free keystore thread.
pub async fn run_key_manager_job(ctx: &Arc<Context>, job: &Job) -> Outcome {
    let kind = job.payload.kind();
    match ctx.keystore_threads.run(job.payload.clone()).await {
        Some(Ok(output)) => {
            tracing::info!(job = %job.id, kind = kind.as_str(), "key-manager job done");
            Outcome::Succeeded { output }
        }
        Some(Err(e)) => {
            tracing::warn!(job = %job.id, kind = kind.as_str(), code = e.code(), error = %e, "key-manager job failed");
            if e.keystore_lost() {
                ctx.keystore_lost(&e.to_string());
            }
            Outcome::Failed {
                failure: e.failure(),
            }
        }
        None => {
            tracing::error!(job = %job.id, "a keystore thread died running the job");
            Outcome::Failed {
                failure: JobError::InvalidJob("the agent failed internally".into()).failure(),
            }
        }
    }
}

/// Runs deploys one at a time. When draining, the deploy in progress
/// finishes; queued ones are left for the coordinator to re-deliver.
pub async fn deploy_worker(
    ctx: Arc<Context>,
    mut queue: mpsc::UnboundedReceiver<Job>,
    mut drain: watch::Receiver<bool>,
) {
    loop {
        let job = tokio::select! {
            j = queue.recv() => j,
            _ = drain.changed() => None,
        };
        let Some(job) = job else { break };
        if *drain.borrow() {
            tracing::info!(job = %job.id, "stopping: deploy left for re-delivery");
            break;
        }
        let Some(target) = ctx.target.clone() else {
            continue;
        };
        let outcome = match target.deploy(&ctx.client, &ctx.account, &job).await {
            Ok(already_installed) => {
                ctx.stats.deploys_succeeded.fetch_add(1, Ordering::Relaxed);
                Outcome::Succeeded {
                    output: JobOutput::Deploy { already_installed },
                }
            }
            Err(e) => {
                ctx.stats.deploys_failed.fetch_add(1, Ordering::Relaxed);
                if e.keystore_lost() {
                    ctx.keystore_lost(&e.to_string());
                }
                Outcome::Failed {
                    failure: e.failure(),
                }
            }
        };
        results::post(&ctx.client, &job, outcome).await;
    }
    while let Ok(job) = queue.try_recv() {
        tracing::info!(job = %job.id, "stopping: deploy left for re-delivery");
    }
}
