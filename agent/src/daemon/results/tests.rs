//! [`post_batch`] against a coordinator played by a small HTTP/1.1 server
//! on loopback, through a real [`Client`]: the fallback to single posts
//! when the batch endpoint is missing (an older coordinator), no fallback
//! on a definite refusal, and a retry after a server error.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use custody_client::{Client, ClientConfig};
use custody_proto::PROTOCOL_VERSION;
use custody_proto::error::{ApiError, ErrorBody, ErrorCode};
use custody_proto::jobs::{
    BatchedAck, BatchedResult, Job, JobFailure, JobOutput, JobPayload, JobResult, Outcome,
    ResultAck, ResultBatch, ResultBatchAck, WrappedMasterKey,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::{Report, post_batch};

const BATCH_PATH: &str = "/v1/agent/results";

/// One request the coordinator received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    body: Vec<u8>,
}

/// What the coordinator answers, and what it saw.
struct Script {
    /// Statuses for `POST /v1/agent/results`, one per request in turn.
    batch: Mutex<VecDeque<u16>>,
    seen: Mutex<Vec<Seen>>,
}

impl Script {
    fn answer(&self, seen: &Seen) -> (u16, Vec<u8>) {
        self.seen.lock().unwrap().push(seen.clone());
        if seen.method != "POST" {
            return (405, Vec::new());
        }
        if seen.path == BATCH_PATH {
            let status = self
                .batch
                .lock()
                .unwrap()
                .pop_front()
                .expect("more batch requests than the test scripted");
            return match status {
                200 => {
                    let batch: ResultBatch = serde_json::from_slice(&seen.body).unwrap();
                    let acks = batch
                        .results
                        .iter()
                        .map(|r| BatchedAck {
                            job_id: r.job_id.clone(),
                            accepted: true,
                            duplicate: false,
                            error: None,
                        })
                        .collect();
                    let ack = ResultBatchAck {
                        protocol: PROTOCOL_VERSION,
                        acks,
                    };
                    (200, serde_json::to_vec(&ack).unwrap())
                }
                // An older coordinator's router: no route (404) or no such
                // method on the path (405), without the API's error body.
                404 | 405 => (status, Vec::new()),
                400 => (400, error_body(ErrorCode::InvalidInput)),
                503 => (503, error_body(ErrorCode::Unavailable)),
                other => panic!("unscripted status {other}"),
            };
        }
        let is_single = seen
            .path
            .strip_prefix("/v1/agent/jobs/")
            .and_then(|rest| rest.strip_suffix("/result"))
            .is_some_and(|id| !id.is_empty() && !id.contains('/'));
        if is_single {
            let ack = ResultAck {
                accepted: true,
                duplicate: false,
            };
            return (200, serde_json::to_vec(&ack).unwrap());
        }
        (404, Vec::new())
    }
}

fn error_body(code: ErrorCode) -> Vec<u8> {
    serde_json::to_vec(&ErrorBody {
        error: ApiError {
            code,
            message: "scripted".into(),
            details: None,
        },
    })
    .unwrap()
}

/// Serves requests on one connection until the client closes it
/// (the client keeps connections alive between requests).
async fn serve(stream: TcpStream, script: Arc<Script>) -> std::io::Result<()> {
    let mut conn = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if conn.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut words = line.split_whitespace();
        let method = words.next().unwrap_or_default().to_string();
        let path = words.next().unwrap_or_default().to_string();
        let mut len = 0usize;
        loop {
            let mut header = String::new();
            if conn.read_line(&mut header).await? == 0 {
                return Ok(());
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                len = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0u8; len];
        conn.read_exact(&mut body).await?;
        let (status, answer) = script.answer(&Seen { method, path, body });
        let head = format!(
            "HTTP/1.1 {status} Scripted\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            answer.len()
        );
        let out = conn.get_mut();
        out.write_all(head.as_bytes()).await?;
        out.write_all(&answer).await?;
        out.flush().await?;
    }
}

/// Starts the coordinator on 127.0.0.1 and a client for it.
async fn coordinator(batch: &[u16]) -> (Client, Arc<Script>) {
    let script = Arc::new(Script {
        batch: Mutex::new(batch.iter().copied().collect()),
        seen: Mutex::new(Vec::new()),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = script.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, serving.clone()));
        }
    });
    let client = Client::new(ClientConfig::new(
        &format!("http://{addr}"),
        None,
        Some("agent-token"),
    ))
    .unwrap();
    (client, script)
}

/// Three key-manager reports with distinct ids, keys, attempts and
/// outcomes (two successes, one failure).
fn reports() -> Vec<Report> {
    (1..=3u32)
        .map(|n| {
            let job = Job {
                protocol: PROTOCOL_VERSION,
                id: format!("job_{n:04}"),
                attempt: n,
                idempotency_key: format!("key-{n}"),
                issued_at_ms: 1_700_000_000_000,
                lease_expires_at_ms: 1_700_000_060_000,
                payload: JobPayload::RewrapReleaseKey {
                    account: "acct_1".into(),
                    app: "shop".into(),
                    release_id: format!("rel_{n}"),
                    master_key: WrappedMasterKey {
                        master_key_id: "mk_1".into(),
                        jwe: "wrapped-mk".into(),
                    },
                    wrapped_release_key: format!("wrapped-rk-{n}"),
                },
            };
            let outcome = if n == 2 {
                Outcome::Failed {
                    failure: JobFailure {
                        code: "unwrap_failed".into(),
                        message: "the keystore could not unwrap".into(),
                        retryable: true,
                    },
                }
            } else {
                Outcome::Succeeded {
                    output: JobOutput::RewrapReleaseKey {
                        sealed_release_key: format!("sealed-rk-{n}"),
                    },
                }
            };
            Report {
                job,
                outcome,
                held: None,
            }
        })
        .collect()
}

/// Checks that `seen` is one batch request carrying every report.
fn assert_batch(seen: &Seen, reports: &[Report]) {
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        ("POST", BATCH_PATH)
    );
    let batch: ResultBatch = serde_json::from_slice(&seen.body).unwrap();
    let want: Vec<BatchedResult> = reports
        .iter()
        .map(|r| BatchedResult {
            job_id: r.job.id.clone(),
            idempotency_key: r.job.idempotency_key.clone(),
            attempt: r.job.attempt,
            outcome: r.outcome.clone(),
        })
        .collect();
    assert_eq!(batch.protocol, PROTOCOL_VERSION);
    assert_eq!(batch.results, want);
}

fn seen(script: &Script) -> Vec<Seen> {
    script.seen.lock().unwrap().clone()
}

/// An older coordinator without the batch endpoint answers it with
/// `status`: every result then goes singly, in order, to its job's path.
async fn falls_back_to_single_posts_on(status: u16) {
    let (client, script) = coordinator(&[status]).await;
    let reports = reports();
    post_batch(&client, &reports).await;

    let seen = seen(&script);
    assert_eq!(seen.len(), 1 + reports.len(), "requests: {seen:?}");
    assert_batch(&seen[0], &reports);
    for (req, r) in seen[1..].iter().zip(&reports) {
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, format!("/v1/agent/jobs/{}/result", r.job.id));
        let body: JobResult = serde_json::from_slice(&req.body).unwrap();
        let want = JobResult {
            protocol: PROTOCOL_VERSION,
            idempotency_key: r.job.idempotency_key.clone(),
            attempt: r.job.attempt,
            outcome: r.outcome.clone(),
        };
        assert_eq!(body, want);
    }
}

#[tokio::test]
async fn batch_endpoint_missing_404_falls_back_to_single_posts_in_order() {
    falls_back_to_single_posts_on(404).await;
}

#[tokio::test]
async fn batch_endpoint_method_not_allowed_405_falls_back_to_single_posts_in_order() {
    falls_back_to_single_posts_on(405).await;
}

#[tokio::test]
async fn batch_refused_with_400_is_not_retried_nor_posted_singly() {
    let (client, script) = coordinator(&[400]).await;
    let reports = reports();
    post_batch(&client, &reports).await;

    let seen = seen(&script);
    assert_eq!(seen.len(), 1, "requests: {seen:?}");
    assert_batch(&seen[0], &reports);
}

/// One backoff delay (0.5–1 s with `Backoff::reconnect`).
#[tokio::test]
async fn batch_answered_503_is_sent_again_and_not_posted_singly() {
    let (client, script) = coordinator(&[503, 200]).await;
    let reports = reports();
    post_batch(&client, &reports).await;

    let seen = seen(&script);
    assert_eq!(seen.len(), 2, "requests: {seen:?}");
    assert_batch(&seen[0], &reports);
    assert_batch(&seen[1], &reports);
}
