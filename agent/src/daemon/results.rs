//! Posting job results until the coordinator has them: one at a time
//! ([`post`]), or key-manager results in batches ([`reporter`]).

use std::sync::Arc;

use custody_client::Client;
use custody_proto::jobs::{BatchedResult, Job, MAX_RESULTS_PER_BATCH, Outcome};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use super::Context;
use crate::link::backoff::Backoff;

/// How many times a result is sent before giving up (the coordinator then
/// re-issues the job after its lease; key-manager jobs are harmless to
/// redo and a deploy is remembered, so nothing happens twice).
const ATTEMPTS: u32 = 8;

/// Posts `outcome` for `job` (`POST /v1/agent/jobs/{id}/result`). Retries
/// transport failures and 5xx/429/408 with backoff; a definite answer
/// (accepted, duplicate, or another 4xx refusal) ends it. The job's
/// `idempotency_key` and `attempt` make repeats harmless.
pub async fn post(client: &Client, job: &Job, outcome: Outcome) {
    let mut backoff = Backoff::reconnect();
    for attempt in 1..=ATTEMPTS {
        let r = match &outcome {
            Outcome::Succeeded { output } => client.job_succeeded(job, output.clone()).await,
            Outcome::Failed { failure } => client.job_failed(job, failure.clone()).await,
        };
        match r {
            Ok(ack) if ack.duplicate => {
                tracing::info!(job = %job.id, "result not needed: another result was recorded first");
                return;
            }
            Ok(_) => return,
            Err(e) => {
                let status = e.status();
                let retry = worth_retrying(status);
                if !retry {
                    tracing::warn!(job = %job.id, error = %crate::link::describe_plain(&e), "the coordinator refused the result");
                    return;
                }
                if attempt == ATTEMPTS {
                    tracing::warn!(job = %job.id, error = %crate::link::describe_plain(&e), "giving up posting the result; the coordinator will re-issue the job");
                    return;
                }
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}

/// Whether a failed post may succeed if sent again: no answer at all, a
/// server error, rate limiting or a request timeout. Any other answer is
/// definite.
fn worth_retrying(status: Option<u16>) -> bool {
    status.is_none_or(|s| s >= 500 || s == 429 || s == 408)
}

/// How long the reporter waits for more results before posting a batch
/// smaller than half the room in hand (at most `MAX_RESULTS_PER_BATCH`).
/// Each request costs the coordinator a transaction and a signed audit
/// checkpoint whatever its size: batches of whatever had queued (1–3
/// results at a soft keystore's rate) cost it 0.8 ms of CPU per job,
/// waiting up to 5 ms for 16 cost 0.5 ms, up to 10 ms for 32 cost 0.37 ms
/// (docs/BENCHMARKS.md). A lone job's result goes 10 ms later: little
/// beside an unwrap.
const LINGER: std::time::Duration = std::time::Duration::from_millis(10);

/// A key-manager job's outcome waiting to be reported, with the room in
/// hand the job holds until the coordinator has its result.
pub struct Report {
    /// The job.
    pub job: Job,
    /// What came of it.
    pub outcome: Outcome,
    /// Its room among the jobs in hand.
    pub held: Option<OwnedSemaphorePermit>,
}

/// Posts reports in batches: the results that queued up while one request
/// was in flight go in the next, after waiting up to [`LINGER`] for half
/// the room in hand (the other half keeps the keystore busy), so a busy
/// key manager answers many jobs per round trip and per coordinator
/// transaction. Ends when every sender is gone and the queue is empty.
pub async fn reporter(ctx: Arc<Context>, mut queue: mpsc::UnboundedReceiver<Report>) {
    let mut batch = Vec::with_capacity(MAX_RESULTS_PER_BATCH);
    let enough = (ctx.in_hand_room() / 2).clamp(1, MAX_RESULTS_PER_BATCH);
    while let Some(first) = queue.recv().await {
        batch.push(first);
        let deadline = tokio::time::Instant::now() + LINGER;
        while batch.len() < MAX_RESULTS_PER_BATCH {
            match queue.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) if batch.len() >= enough => break,
                Err(_) => match tokio::time::timeout_at(deadline, queue.recv()).await {
                    Ok(Some(r)) => batch.push(r),
                    Ok(None) | Err(_) => break,
                },
            }
        }
        post_batch(&ctx.client, &batch).await;
        for r in batch.drain(..) {
            // The coordinator has the result: the job's room is free.
            drop(r.held);
        }
    }
}

/// Posts one batch (`POST /v1/agent/results`) with [`post`]'s retry
/// policy. A coordinator without the batch endpoint (an older version:
/// 404 or 405) gets the results one by one with [`post`], in order.
async fn post_batch(client: &Client, reports: &[Report]) {
    let results: Vec<BatchedResult> = reports
        .iter()
        .map(|r| BatchedResult {
            job_id: r.job.id.clone(),
            idempotency_key: r.job.idempotency_key.clone(),
            attempt: r.job.attempt,
            outcome: r.outcome.clone(),
        })
        .collect();
    let mut backoff = Backoff::reconnect();
    for attempt in 1..=ATTEMPTS {
        match client.job_results(results.clone()).await {
            Ok(acks) => {
                for ack in acks {
                    if let Some(e) = ack.error {
                        tracing::warn!(job = %ack.job_id, code = %e.code, error = %e.message, "the coordinator refused the result");
                    } else if ack.duplicate {
                        tracing::info!(job = %ack.job_id, "result not needed: another result was recorded first");
                    }
                }
                return;
            }
            Err(e) => {
                let status = e.status();
                if matches!(status, Some(404 | 405)) {
                    for r in reports {
                        post(client, &r.job, r.outcome.clone()).await;
                    }
                    return;
                }
                let retry = worth_retrying(status);
                if !retry {
                    tracing::warn!(jobs = reports.len(), error = %crate::link::describe_plain(&e), "the coordinator refused a batch of results");
                    return;
                }
                if attempt == ATTEMPTS {
                    tracing::warn!(jobs = reports.len(), error = %crate::link::describe_plain(&e), "giving up posting results; the coordinator will re-issue the jobs");
                    return;
                }
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}

#[cfg(test)]
mod tests;
