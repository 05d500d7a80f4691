//! Load bench: N long-polling fake agents (real HTTPS clients, one
//! connection each) against the real coordinator binary on loopback, a
//! steady stream of deployments (prepare → wrap per target → deploy per
//! target), and the coordinator's RSS (from /proc) and job dispatch latency
//! (assignment → the agent holding the job) p50/p99.
//!
//! Runs the target size (CUSTODY_BENCH_AGENTS, default 1000) and a
//! 10-agent reference in the same command. `scripts/bench-3-coordinator.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/common/mod.rs"]
mod common;

use custody_client::{Client, ClientConfig};
use custody_proto::apps::Deployment;
use custody_proto::jobs::{JobResult, Outcome, PollResponse};
use custody_proto::servers::{
    AgentRole, EnrollRequest, EnrollResponse, JoinToken, MasterKeyStatus,
};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_custody-coordinator");

fn env_or(name: &str, d: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn rss_kib(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

struct Coordinator {
    child: Child,
    url: String,
    fp: String,
    token: String,
    _dir: tempfile::TempDir,
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn start() -> Coordinator {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = Command::new(BIN)
        .args(["init", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let field = |n: &str| {
        text.lines()
            .find(|l| l.starts_with(n))
            .unwrap()
            .split_whitespace()
            .last()
            .unwrap()
            .to_string()
    };
    let (fp, token) = (field("ca fingerprint:"), field("owner token:"));
    let mut child = Command::new(BIN)
        .args([
            "run",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--state-dir",
        ])
        .arg(&state)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.split_whitespace().nth(2).unwrap().to_string();
    Coordinator {
        child,
        url: format!("https://{addr}"),
        fp,
        token,
        _dir: dir,
    }
}

struct Figures {
    agents: usize,
    rss_empty_kib: u64,
    rss_idle_kib: u64,
    rss_peak_kib: u64,
    jobs: usize,
    p50_ms: u64,
    p99_ms: u64,
    max_ms: u64,
    wait_p50_ms: u64,
    wait_p99_ms: u64,
    deployments: usize,
    succeeded: usize,
    seconds: f64,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn pct(v: &[u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

async fn phase(n: usize, seconds: u64, rate: u64) -> Figures {
    let c = start();
    let pid = c.child.id();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_empty = rss_kib(pid, "VmRSS:");
    let owner = Client::new(ClientConfig::new(&c.url, Some(&c.fp), Some(&c.token))).unwrap();

    // Enroll n agents (16 at a time): 2 key managers, the rest targets.
    let mut agents: Vec<(String, Client)> = Vec::with_capacity(n);
    let sem = Arc::new(tokio::sync::Semaphore::new(16));
    let mut tasks = vec![];
    for i in 0..n {
        let owner = owner.clone();
        let (url, fp) = (c.url.clone(), c.fp.clone());
        let sem = sem.clone();
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire().await.unwrap();
            let jt: JoinToken = owner
                .post("/v1/servers/join-tokens", &serde_json::json!({}))
                .await
                .unwrap();
            let roles = if i < 2 {
                vec![AgentRole::KeyManager, AgentRole::Target]
            } else {
                vec![AgentRole::Target]
            };
            let anon = Client::new(ClientConfig::new(&url, Some(&fp), None)).unwrap();
            let r: EnrollResponse = anon
                .post(
                    "/v1/agent/enroll",
                    &EnrollRequest {
                        protocol: 1,
                        join_token: jt.token,
                        name: format!("agent-{i}"),
                        public_key_pem: common::key_pem(i),
                        oaep_hashes: vec![custody_proto::OaepHash::Sha256],
                        roles,
                        agent_version: "bench".into(),
                    },
                )
                .await
                .unwrap();
            let mut cfg = ClientConfig::new(&url, Some(&fp), Some(&r.credential));
            cfg.timeout = Duration::from_secs(60);
            (r.server_id, Client::new(cfg).unwrap())
        }));
    }
    for t in tasks {
        agents.push(t.await.unwrap());
    }

    // Every agent long-polls and answers; latency = now - issued_at_ms.
    let lat: Arc<Mutex<Vec<(u64, u64)>>> = Arc::new(Mutex::new(Vec::with_capacity(100_000)));
    let mut pollers = vec![];
    for (id, client) in agents.iter().cloned() {
        let lat = lat.clone();
        pollers.push(tokio::spawn(async move {
            let a = common::FakeAgent {
                id,
                credential: String::new(),
                client,
            };
            loop {
                let sent = now_ms();
                let r: Result<PollResponse, _> =
                    a.client.get("/v1/agent/jobs?wait=25&protocol=1").await;
                let Ok(r) = r else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                for job in r.jobs {
                    // Dispatch latency: from the job's assignment while this
                    // agent was waiting (or from its next poll, when it was
                    // busy with an earlier job) to the agent holding it. The
                    // second figure is assignment -> holding, which includes
                    // queueing behind the agent's own earlier jobs.
                    let now = now_ms();
                    let from = job.issued_at_ms.max(sent);
                    lat.lock().unwrap().push((
                        (now - from).max(0) as u64,
                        (now - job.issued_at_ms).max(0) as u64,
                    ));
                    let out = a.output_for(&job);
                    let _ = a
                        .client
                        .post::<_, serde_json::Value>(
                            &format!("/v1/agent/jobs/{}/result", job.id),
                            &JobResult {
                                protocol: 1,
                                idempotency_key: job.idempotency_key.clone(),
                                attempt: job.attempt,
                                outcome: Outcome::Succeeded { output: out },
                            },
                        )
                        .await;
                }
            }
        }));
    }
    for (id, _) in agents.iter().take(2) {
        let _: serde_json::Value = owner
            .put(
                &format!("/v1/servers/{id}/key-manager"),
                &serde_json::json!({"enabled": true}),
            )
            .await
            .unwrap();
    }
    for _ in 0..200 {
        let s: MasterKeyStatus = owner.get("/v1/master-key").await.unwrap();
        if s.state == "active" && s.holders.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _: serde_json::Value = owner
        .post(
            "/v1/apps",
            &serde_json::json!({"name": "app", "secure": true}),
        )
        .await
        .unwrap();
    let group = 10.min(n - 2);
    let envs = (n - 2) / group;
    for e in 0..envs {
        let _: serde_json::Value = owner
            .post(
                "/v1/apps/app/environments",
                &serde_json::json!({"name": format!("env{e}")}),
            )
            .await
            .unwrap();
        for t in 0..group {
            let id = &agents[2 + e * group + t].0;
            let _: serde_json::Value = owner
                .post(
                    &format!("/v1/apps/app/environments/env{e}/servers"),
                    &serde_json::json!({"server": id}),
                )
                .await
                .unwrap();
        }
    }
    // A release (its package is a few KiB; this bench is about dispatch).
    let tmp = tempfile::tempdir().unwrap();
    let h = common::Harness::light(&c.url, &c.fp, &c.token, tmp);
    let rel = common::push(&h, &owner, "app", &[42u8; 4096]).await;

    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_idle = rss_kib(pid, "VmRSS:");
    lat.lock().unwrap().clear();

    // Steady stream: `rate` deployments per second for `seconds`.
    let t0 = Instant::now();
    let mut ids = vec![];
    let total = (seconds * rate) as usize;
    for k in 0..total {
        let due = t0 + Duration::from_millis(k as u64 * 1000 / rate);
        tokio::time::sleep_until(due.into()).await;
        let d: Deployment = owner
            .post("/v1/deployments", &serde_json::json!({"app": "app", "release": rel, "environment": format!("env{}", k % envs)}))
            .await
            .unwrap();
        ids.push(d.id);
    }
    // Drain.
    let mut succeeded = 0;
    for _ in 0..600 {
        let all: Vec<Deployment> = owner.get("/v1/deployments").await.unwrap();
        let done: Vec<_> = all.iter().filter(|d| d.state.is_terminal()).collect();
        succeeded = done
            .iter()
            .filter(|d| d.state == custody_proto::apps::DeploymentState::Succeeded)
            .count();
        if done.len() >= ids.len().min(200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    let rss_peak = rss_kib(pid, "VmHWM:");
    let pairs = lat.lock().unwrap().clone();
    let mut v: Vec<u64> = pairs.iter().map(|p| p.0).collect();
    v.sort_unstable();
    let mut w: Vec<u64> = pairs.iter().map(|p| p.1).collect();
    w.sort_unstable();
    for p in pollers {
        p.abort();
    }
    drop(c);
    Figures {
        agents: n,
        rss_empty_kib: rss_empty,
        rss_idle_kib: rss_idle,
        rss_peak_kib: rss_peak,
        jobs: v.len(),
        p50_ms: pct(&v, 0.5),
        p99_ms: pct(&v, 0.99),
        max_ms: v.last().copied().unwrap_or(0),
        wait_p50_ms: pct(&w, 0.5),
        wait_p99_ms: pct(&w, 0.99),
        deployments: total,
        succeeded,
        seconds: secs,
    }
}

fn main() {
    let n = env_or("CUSTODY_BENCH_AGENTS", 1000) as usize;
    let seconds = env_or("CUSTODY_BENCH_SECONDS", 20);
    let rate = env_or("CUSTODY_BENCH_RATE", 5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let reference = rt.block_on(phase(10, seconds.min(10), rate));
    let target = rt.block_on(phase(n, seconds, rate));
    println!(
        "coordinator load: {rate} deployments/s (each: 1 prepare + 1 wrap and 1 deploy per target)"
    );
    println!(
        "{:>7} {:>10} {:>10} {:>10} {:>7} {:>8} {:>8} {:>8} {:>13} {:>12}",
        "agents",
        "rss_empty",
        "rss_idle",
        "rss_peak",
        "jobs",
        "p50_ms",
        "p99_ms",
        "max_ms",
        "queue_p50/p99",
        "deploys_ok"
    );
    for f in [&reference, &target] {
        println!(
            "{:>7} {:>8}Mi {:>8}Mi {:>8}Mi {:>7} {:>8} {:>8} {:>8} {:>6}/{:<6} {:>6}/{:<5} ({:.0}s)",
            f.agents,
            f.rss_empty_kib / 1024,
            f.rss_idle_kib / 1024,
            f.rss_peak_kib / 1024,
            f.jobs,
            f.p50_ms,
            f.p99_ms,
            f.max_ms,
            f.wait_p50_ms,
            f.wait_p99_ms,
            f.succeeded,
            f.deployments,
            f.seconds
        );
    }
    println!(
        "p50/p99/max: assignment (or the agent's next poll, if it was busy) -> agent holds the job; queue: assignment -> agent holds the job"
    );
    println!(
        "targets at {} agents: rss_peak <= 100 MiB: {}; p99 <= 50 ms: {}",
        target.agents,
        if target.rss_peak_kib <= 100 * 1024 {
            "met"
        } else {
            "NOT met"
        },
        if target.p99_ms <= 50 {
            "met"
        } else {
            "NOT met"
        }
    );
}
