//! (a) Unwraps per second through key-manager jobs, beside the keystore's
//! raw rate with the same number of threads.
//!
//! One coordinator, one key manager (its default job slots: the CPU count
//! for `soft`, its PKCS#11 session count for `pkcs11`). Each run: the raw
//! rate (child process, same key, same thread count), then `n` *seal secret
//! variable* jobs — each unwraps `wrap(P_k, value)` and `wrap(P_k, MK)`
//! through the keystore and seals the value under `MK`. The key manager is
//! paused (SIGSTOP) while the jobs are queued, so that what is timed — from
//! SIGCONT to the 95th-percentile job result in the coordinator's audit
//! log — is the key manager and the coordinator working through a full
//! queue, not this program submitting it. (Not to the last result: a job
//! answered to the stopped agent's poll can be lost with its timed-out
//! request and waits for its lease to run out; the run says so when the
//! last 5% straggle.)

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use custody_e2e::release::wrap_to;
use custody_e2e::{Agent, AgentOptions, Coordinator, CoordinatorOptions, Keystore};
use custody_envelope::jwe::{Binding, Purpose};
use custody_proto::apps::Environment;
use custody_proto::servers::KeyManagerKey;
use rustix::process::Signal;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::cpu;
use crate::raw::{self, Target};
use crate::stats::median;
use crate::{BenchResult, knob};

/// Seconds of work per job run at the raw rate (sets the job count).
const JOB_SECONDS: f64 = 6.0;
/// Seconds of each raw measurement.
const RAW_SECONDS: f64 = 4.0;
/// The goal: jobs reach this fraction of the raw rate.
const TARGET_RATIO: f64 = 0.8;
/// At most this many jobs per run: queueing more keeps the agent stopped
/// long enough (tens of seconds) that its open poll times out (wait +
/// 30 s); the jobs that poll was answered with then wait out their lease,
/// and the agent's reconnect backoff eats into the timed phase — with
/// batched hand-out, 2,000 jobs did that in one run of three.
const MAX_JOBS: f64 = 1000.0;
/// PUTs in flight while the queue is filled.
const SUBMIT_CONCURRENCY: usize = 16;

/// Runs (a) for one keystore kind; prints its lines; returns whether the
/// target was met.
pub async fn bench(kind: &str, runs: usize) -> BenchResult<bool> {
    let keystore = match kind {
        "soft" => Keystore::Soft,
        "pkcs11" => Keystore::SoftHsm,
        other => {
            return Err(
                format!("FLOW_BENCH_KEYSTORES: unknown kind {other:?} (soft, pkcs11)").into(),
            );
        }
    };
    // Leases long enough that jobs handed to the paused agent's open polls
    // are not re-issued while the queue fills.
    let mut c = Coordinator::start_with(&CoordinatorOptions {
        key_manager_deadline_seconds: 300,
        ..CoordinatorOptions::default()
    })
    .await?;
    let mut km = Agent::new("km-1", &AgentOptions::key_manager(keystore))?;
    km.enroll(&c).await?;
    km.start()?;
    km.wait_live(&c).await?;
    c.enable_key_manager(&km.server_id).await?;
    c.wait_holders(&[km.server_id.as_str()]).await?;
    let slots = job_slots(&km.log())?;
    let coordinator_pid = c.process().pid().ok_or("the coordinator is not running")?;
    c.create_app("bench", false).await?;
    c.environment("bench", "e", &[]).await?;
    let key = km.key(&c).await?;
    let target = match keystore {
        Keystore::SoftHsm => {
            let h = km
                .softhsm()
                .ok_or("the pkcs11 agent has no SoftHSM2 token")?;
            Target::Pkcs11 {
                conf: h.conf().to_path_buf(),
                module: h.module().to_path_buf(),
                token_label: h.token_label().to_owned(),
                pin_file: h.pin_file().to_path_buf(),
            }
        }
        _ => Target::Soft {
            key_file: km.soft_key_file(),
        },
    };
    println!(
        "\n(a) {kind} keystore, RSA-2048 ({}), {slots} thread(s) / job slot(s); raw = keystore unwrap loop in a child process, jobs = seal-secret-variable jobs (2 unwraps each) through coordinator + agent",
        key.oaep_hashes.first().map_or("?", |h| h.jwe_alg())
    );
    let mut raws = Vec::new();
    let mut via_jobs = Vec::new();
    let mut coordinator_ms = Vec::new();
    let mut n = knob("FLOW_BENCH_JOBS", 0usize);
    for run in 0..runs {
        let (t, state) = (target.clone(), km.state.clone());
        let raw_rate =
            tokio::task::spawn_blocking(move || raw::measure(&t, &state, slots, RAW_SECONDS))
                .await??;
        if n == 0 {
            n = ((raw_rate / 2.0) * JOB_SECONDS).clamp(40.0, MAX_JOBS) as usize;
        }
        let (jobs_rate, cost) = match jobs_rate(&c, coordinator_pid, &mut km, &key, run, n).await {
            Ok(r) => r,
            Err(e) => {
                // Name a coordinator or agent that died, with its log tail.
                c.process().check_running()?;
                km.process()?.check_running()?;
                return Err(e);
            }
        };
        println!(
            "  run {}: raw {raw_rate:8.1} unwraps/s   via jobs {jobs_rate:8.1} unwraps/s ({n} jobs)   ratio {:.2}   CPU per job: coordinator {:.2} ms, agent {:.2} ms",
            run + 1,
            jobs_rate / raw_rate,
            cost.coordinator_ms,
            cost.agent_ms
        );
        coordinator_ms.push(cost.coordinator_ms);
        raws.push(raw_rate);
        via_jobs.push(jobs_rate);
    }
    let (r, j) = (median(&raws), median(&via_jobs));
    let ratio = j / r;
    println!(
        "  coordinator CPU per job (median): {:.2} ms, against {:.2} ms of raw unwrapping (2 unwraps on one core at the raw rate per thread)",
        median(&coordinator_ms),
        2.0 * 1000.0 * slots as f64 / r
    );
    println!(
        "  median: raw {r:.1} unwraps/s, via jobs {j:.1} unwraps/s: {ratio:.2}x (target >= {TARGET_RATIO:.2}x): {}",
        if ratio >= TARGET_RATIO {
            "met"
        } else {
            "MISSED"
        }
    );
    Ok(ratio >= TARGET_RATIO)
}

/// `parallelism=N` from the agent's "agent running" log line.
fn job_slots(log: &str) -> BenchResult<usize> {
    log.lines()
        .filter(|l| l.contains("agent running"))
        .find_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("parallelism="))
                .and_then(|v| v.parse().ok())
        })
        .ok_or_else(|| format!("the agent's log names no parallelism:\n{log}").into())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// CPU time per job of a run, from the resume until every job was sealed
/// (the coordinator's includes answering this program's status polls).
struct Cost {
    coordinator_ms: f64,
    agent_ms: f64,
}

/// Queues `n` seal jobs while the key manager is paused, resumes it, and
/// returns unwraps per second from the resume to the 95th-percentile
/// result, and the CPU each process spent per job.
async fn jobs_rate(
    c: &Coordinator,
    coordinator_pid: u32,
    km: &mut Agent,
    key: &KeyManagerKey,
    run: usize,
    n: usize,
) -> BenchResult<(f64, Cost)> {
    let agent_pid = km.pid()?;
    let names: Vec<String> = (0..n).map(|i| format!("R{run}_{i}")).collect();
    let mut bodies = Vec::with_capacity(n);
    for name in &names {
        let binding = Binding {
            purpose: Purpose::SecretVar,
            account: c.account.clone(),
            app: Some("bench".into()),
            release: None,
            deployment: None,
            name: Some(name.clone()),
            environment: Some("e".into()),
        };
        let jwe = wrap_to(key, &binding, format!("value-{name}").as_bytes())?;
        bodies.push((
            name.clone(),
            json!({"wrapped": [{"server_id": key.server_id, "jwe": jwe}]}),
        ));
    }
    let last_seq = last_audit_seq(c).await?;
    km.signal(Signal::STOP)?;
    let stopped_at = now_ms();
    let queued = submit(c, bodies).await;
    let resumed_at = now_ms();
    println!(
        "    (run {}: {n} jobs queued in {:.1} s with the key manager stopped)",
        run + 1,
        (resumed_at - stopped_at) as f64 / 1000.0
    );
    let cpu_at_resume = (cpu::total(&[coordinator_pid]), cpu::total(&[agent_pid]));
    km.signal(Signal::CONT)?;
    queued?;
    wait_sealed(c, &names).await?;
    let cost = Cost {
        coordinator_ms: (cpu::total(&[coordinator_pid]) - cpu_at_resume.0) * 1000.0 / n as f64,
        agent_ms: (cpu::total(&[agent_pid]) - cpu_at_resume.1) * 1000.0 / n as f64,
    };
    let audit = c.audit().await?;
    let mut done_at: Vec<i64> = audit
        .iter()
        .filter(|e| seq(e) > last_seq)
        .filter(|e| {
            e["action"] == "job.result"
                && e["result"] == "ok"
                && e["detail"]["type"] == "seal_secret_variable"
        })
        .map(|e| e["at_ms"].as_i64().unwrap_or(0))
        .collect();
    if done_at.len() != n {
        return Err(format!("{} job results for {n} jobs", done_at.len()).into());
    }
    // The rate up to the 95th-percentile result: a job whose poll answer
    // reached the agent while it was stopped can be lost with the agent's
    // timed-out request and is re-issued only when its lease runs out —
    // an artefact of pausing the agent, not of the path measured.
    done_at.sort_unstable();
    let k = (n * 95).div_ceil(100).max(1);
    let secs = (done_at[k - 1] - resumed_at).max(1) as f64 / 1000.0;
    let straggler_s = (done_at[n - 1] - done_at[k - 1]) as f64 / 1000.0;
    let first_ms = done_at[0] - resumed_at;
    let k5 = (n * 5).div_ceil(100).max(1);
    let mid_secs = (done_at[k - 1] - done_at[k5 - 1]).max(1) as f64 / 1000.0;
    println!(
        "    (run {}: first result {first_ms} ms after the resume; between the 5th and 95th percentile results {:.1} unwraps/s)",
        run + 1,
        2.0 * (k - k5) as f64 / mid_secs
    );
    if straggler_s > 5.0 {
        println!(
            "    (run {}: the last 5% of results came {straggler_s:.1} s after the 95th percentile)",
            run + 1
        );
        for line in km.log().lines().filter(|l| l.contains("WARN")) {
            println!("    agent: {line}");
        }
    }
    Ok((2.0 * k as f64 / secs, cost))
}

fn seq(e: &Value) -> i64 {
    e["seq"].as_i64().unwrap_or(0)
}

async fn last_audit_seq(c: &Coordinator) -> BenchResult<i64> {
    Ok(c.audit().await?.iter().map(seq).max().unwrap_or(0))
}

/// PUTs every secret variable, `SUBMIT_CONCURRENCY` at a time.
async fn submit(c: &Coordinator, bodies: Vec<(String, Value)>) -> BenchResult<()> {
    let mut set = JoinSet::new();
    for (name, body) in bodies {
        while set.len() >= SUBMIT_CONCURRENCY {
            if let Some(r) = set.join_next().await {
                r??;
            }
        }
        let client = c.owner.clone();
        set.spawn(async move {
            client
                .put::<_, Environment>(
                    &format!("/v1/apps/bench/environments/e/variables/{name}"),
                    &body,
                )
                .await
                .map(|_| ())
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(())
}

/// Polls the environment until every one of `names` is sealed.
async fn wait_sealed(c: &Coordinator, names: &[String]) -> BenchResult<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(900);
    let wanted: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
    loop {
        let e: Environment = c.owner.get("/v1/apps/bench/environments/e").await?;
        let mut sealed = 0;
        for v in e
            .variables
            .iter()
            .filter(|v| wanted.contains(v.name.as_str()))
        {
            match v.state.as_deref() {
                Some("sealed") => sealed += 1,
                Some("failed") => return Err(format!("sealing {} failed", v.name).into()),
                _ => {}
            }
        }
        if sealed == names.len() {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("{sealed} of {} variables sealed after 900 s", names.len()).into());
        }
        // Not more often: each look reads the whole environment, and that
        // would compete with the path measured (the rate is taken from the
        // audit log's timestamps, not from when this loop notices).
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
