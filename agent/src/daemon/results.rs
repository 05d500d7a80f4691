//! Posting a job's result until the coordinator has it.

use std::sync::Arc;

use custody_proto::jobs::{Job, Outcome};

use super::Context;
use crate::link::backoff::Backoff;

/// How many times a result is sent before giving up (the coordinator then
/// re-issues the job after its lease; key-manager jobs are harmless to
/// redo and a deploy is remembered, so nothing happens twice).
const ATTEMPTS: u32 = 8;

/// Posts `outcome` for `job`. Retries transport failures and 5xx/429 with
/// backoff; a definite answer (accepted, duplicate, or a 4xx refusal) ends
/// it. The job's `idempotency_key` and `attempt` make repeats harmless.
pub async fn post(ctx: &Arc<Context>, job: &Job, outcome: Outcome) {
    let mut backoff = Backoff::reconnect();
    for attempt in 1..=ATTEMPTS {
        let r = match &outcome {
            Outcome::Succeeded { output } => ctx.client.job_succeeded(job, output.clone()).await,
            Outcome::Failed { failure } => ctx.client.job_failed(job, failure.clone()).await,
        };
        match r {
            Ok(ack) if ack.duplicate => {
                tracing::info!(job = %job.id, "result not needed: another result was recorded first");
                return;
            }
            Ok(_) => return,
            Err(e) => {
                let status = e.status();
                let retry = status.is_none_or(|s| s >= 500 || s == 429 || s == 408);
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
