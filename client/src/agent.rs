//! Typed calls of the agent job protocol (`docs/API.md`, "Agent job
//! protocol") on top of [`Client`], for `custody-agent` and tests.

use crate::{Client, ClientError, Result};
use custody_proto::PROTOCOL_VERSION;
use custody_proto::jobs::{
    ArtifactLocation, BatchedAck, BatchedResult, Job, JobFailure, JobOutput, JobResult, LogBatch,
    LogLine, Outcome, PollResponse, ResultAck, ResultBatch, ResultBatchAck,
};
use custody_proto::servers::{EnrollRequest, EnrollResponse, Heartbeat, HeartbeatAck};
use std::path::Path;
use std::time::Duration;

impl Client {
    /// `POST /v1/agent/enroll` (this client needs no token).
    pub async fn enroll(&self, req: &EnrollRequest) -> Result<EnrollResponse> {
        self.post("/v1/agent/enroll", req).await
    }

    /// `POST /v1/agent/heartbeat`.
    pub async fn heartbeat(&self, agent_version: &str) -> Result<HeartbeatAck> {
        self.post(
            "/v1/agent/heartbeat",
            &Heartbeat {
                protocol: PROTOCOL_VERSION,
                agent_version: agent_version.to_string(),
            },
        )
        .await
    }

    /// Long poll: waits up to `wait` for a job (the request timeout is
    /// stretched to cover the wait).
    pub async fn poll_job(&self, wait: Duration) -> Result<Option<Job>> {
        Ok(self.poll_jobs(wait, 1).await?.into_iter().next())
    }

    /// Long poll for up to `max` jobs at once (the coordinator caps it);
    /// answers with the jobs queued when the first one is, or none after
    /// `wait`.
    pub async fn poll_jobs(&self, wait: Duration, max: u32) -> Result<Vec<Job>> {
        let path = format!(
            "/v1/agent/jobs?wait={}&max={max}&protocol={PROTOCOL_VERSION}",
            wait.as_secs()
        );
        let op = format!("GET {path}");
        let req = self
            .request(reqwest::Method::GET, &path)
            .timeout(wait + Duration::from_secs(30));
        let r = self.send(&op, req).await?;
        let bytes = r.bytes().await.map_err(|source| ClientError::Transport {
            op: op.clone(),
            source,
        })?;
        let p: PollResponse =
            serde_json::from_slice(&bytes).map_err(|source| ClientError::Decode { op, source })?;
        Ok(p.jobs)
    }

    /// Reports a job's output.
    pub async fn job_succeeded(&self, job: &Job, output: JobOutput) -> Result<ResultAck> {
        self.job_result(job, Outcome::Succeeded { output }).await
    }

    /// Reports a job's failure.
    pub async fn job_failed(&self, job: &Job, failure: JobFailure) -> Result<ResultAck> {
        self.job_result(job, Outcome::Failed { failure }).await
    }

    async fn job_result(&self, job: &Job, outcome: Outcome) -> Result<ResultAck> {
        self.post(
            &format!("/v1/agent/jobs/{}/result", job.id),
            &JobResult {
                protocol: PROTOCOL_VERSION,
                idempotency_key: job.idempotency_key.clone(),
                attempt: job.attempt,
                outcome,
            },
        )
        .await
    }

    /// `POST /v1/agent/results`: several jobs' results in one request
    /// (at most `MAX_RESULTS_PER_BATCH`); one ack per result, in order.
    pub async fn job_results(&self, results: Vec<BatchedResult>) -> Result<Vec<BatchedAck>> {
        let ack: ResultBatchAck = self
            .post(
                "/v1/agent/results",
                &ResultBatch {
                    protocol: PROTOCOL_VERSION,
                    results,
                },
            )
            .await?;
        Ok(ack.acks)
    }

    /// Streams deploy log lines (secrets already redacted).
    pub async fn job_log(&self, job: &Job, lines: Vec<LogLine>) -> Result<()> {
        self.post_unit(
            &format!("/v1/agent/jobs/{}/log", job.id),
            &LogBatch {
                protocol: PROTOCOL_VERSION,
                lines,
            },
        )
        .await
    }

    /// Downloads a deploy job's package to `dest`, resuming a partial file,
    /// and checks its size and SHA-256. Returns the digest.
    pub async fn download_artifact(&self, a: &ArtifactLocation, dest: &Path) -> Result<String> {
        let size = self.download_to(&a.url, dest).await?;
        let op = format!("check {}", dest.display());
        let sha = crate::sha256_file(dest)
            .await
            .map_err(|source| ClientError::Io {
                op: op.clone(),
                source,
            })?;
        if size != a.size || !sha.eq_ignore_ascii_case(&a.sha256) {
            let _ = tokio::fs::remove_file(dest).await;
            return Err(ClientError::Io {
                op,
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "the downloaded package does not have the expected size and SHA-256",
                ),
            });
        }
        Ok(sha)
    }
}
