//! `footprint_bench` (driven by `scripts/bench-5-footprint.sh`): resident
//! memory of idle Custody processes, on the `custody-e2e` harness — a real
//! coordinator and real sandboxed `custody-agent run` processes, one target
//! agent per keystore kind (soft, PKCS#11 on SoftHSM2, TPM on swtpm: the
//! PKCS#11 and TPM libraries are part of the footprint), each with its
//! installer child.
//!
//! After every agent is live, waits `FOOTPRINT_IDLE_SECONDS` (10) and
//! prints each process's `VmRSS` (resident, shared pages counted whole)
//! and `Pss` (shared pages divided among their users) from `/proc`, in MiB,
//! beside the target (agent ≤ 10 MiB idle RSS).

use std::process::ExitCode;
use std::time::Duration;

use custody_e2e::{Agent, AgentOptions, Coordinator, Keystore, Publisher};

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The goal for an agent process's idle RSS, MiB.
const AGENT_RSS_TARGET_MIB: f64 = 10.0;

/// A `kB` field of a `/proc` file, in MiB.
fn kib_field(path: &str, field: &str) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
}

/// (VmRSS, Pss) of `pid` in MiB.
fn memory(pid: u32) -> BenchResult<(f64, f64)> {
    let rss = kib_field(&format!("/proc/{pid}/status"), "VmRSS:")
        .ok_or_else(|| format!("no VmRSS for process {pid}"))?;
    let pss = kib_field(&format!("/proc/{pid}/smaps_rollup"), "Pss:").unwrap_or(f64::NAN);
    Ok((rss, pss))
}

fn line(what: &str, pid: u32, target: Option<f64>) -> BenchResult<f64> {
    let (rss, pss) = memory(pid)?;
    let verdict = match target {
        Some(t) if rss <= t => format!("(target <= {t:.0} MiB: met)"),
        Some(t) => format!("(target <= {t:.0} MiB: MISSED)"),
        None => String::new(),
    };
    println!("  {what:<34} RSS {rss:6.1} MiB   PSS {pss:6.1} MiB  {verdict}");
    Ok(rss)
}

async fn run() -> BenchResult<bool> {
    let idle: u64 = std::env::var("FOOTPRINT_IDLE_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let mut c = Coordinator::start().await?;
    let publisher = Publisher::from_seed(5);
    let kinds = [
        ("soft", Keystore::Soft),
        ("pkcs11 (SoftHSM2)", Keystore::SoftHsm),
        ("tpm (swtpm)", Keystore::Tpm),
    ];
    let mut agents = Vec::new();
    for (name, ks) in kinds {
        let mut a = Agent::new(
            &format!("idle-{}", agents.len() + 1),
            &AgentOptions::target(ks, &[publisher.pin()]),
        )?;
        a.enroll(&c).await?;
        a.start()?;
        a.wait_live(&c).await?;
        agents.push((name, a));
    }
    tokio::time::sleep(Duration::from_secs(idle)).await;
    println!(
        "idle resident memory after {idle} s, {} agents connected (target role, sandboxed; key-manager-only agents have no installer child):",
        agents.len()
    );
    let mut met = true;
    for (name, a) in &agents {
        let main = line(
            &format!("agent main, {name}"),
            a.pid()?,
            Some(AGENT_RSS_TARGET_MIB),
        )?;
        let inst = line(
            &format!("agent installer, {name}"),
            a.installer_pid()?,
            Some(AGENT_RSS_TARGET_MIB),
        )?;
        println!(
            "  {:<34} RSS {:6.1} MiB (both processes)",
            format!("agent total, {name}"),
            main + inst
        );
        met &= main <= AGENT_RSS_TARGET_MIB && inst <= AGENT_RSS_TARGET_MIB;
    }
    let pid = c.process().pid().ok_or("the coordinator is not running")?;
    line("coordinator (3 agents, idle)", pid, None)?;
    drop(agents);
    drop(c);
    Ok(met)
}

fn main() -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("footprint_bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match rt.block_on(custody_e2e::wait::until_interrupted(run())) {
        Ok(outcome) => outcome,
        Err(signal) => {
            eprintln!("footprint_bench: {signal}");
            return ExitCode::FAILURE;
        }
    };
    match outcome {
        Ok(met) => {
            if !met {
                eprintln!(
                    "footprint_bench: an agent process is above its RSS target (figures above)"
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("footprint_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
