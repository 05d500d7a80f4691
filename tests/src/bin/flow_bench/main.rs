//! `flow_bench` (driven by `scripts/bench-4-flow.sh`): the secure flow's
//! throughput across real processes on loopback, each figure beside a
//! reference measured in the same run.
//!
//! - **(a) unwraps** — private-key unwraps per second done through
//!   key-manager jobs (*seal secret variable*: two unwraps each, `MK` and the
//!   value), coordinator + one key-manager agent running its default number
//!   of job slots, beside the same keystore's raw unwrap rate with the same
//!   number of threads, measured by a child process that opens the agent's
//!   own key (soft file or SoftHSM2 token). Target: ≥ 0.8×.
//! - **(b) deploy** — one release of `FLOW_BENCH_SIZE_MB` (100) MB deployed
//!   to 1 target and to `FLOW_BENCH_TARGETS` (10) targets: wall time, and
//!   CPU time of each target's agent processes (main + installer, from
//!   `/proc`). Target: wall(10) ≤ 1.5 × max(wall(1), 10 × cpu(1) / cores).
//!
//! Knobs (environment): `FLOW_BENCH_PART` = `a`, `b` or `all` (default);
//! `FLOW_BENCH_RUNS` (3, medians are reported); `FLOW_BENCH_KEYSTORES`
//! (`soft,pkcs11`); `FLOW_BENCH_SIZE_MB`; `FLOW_BENCH_TARGETS`.
//!
//! The harness (`custody-e2e`) finds `custody-coordinator` and
//! `custody-agent` next to this binary: build them in the same profile.

mod cpu;
mod deploy;
mod raw;
mod stats;
mod unwraps;

use std::process::ExitCode;

/// Errors at this binary's edge.
pub type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A knob from the environment, or its default.
pub fn knob<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(raw::SUBCOMMAND) {
        return match raw::child_main(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("flow_bench {}: {e}", raw::SUBCOMMAND);
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("flow_bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match runtime.block_on(custody_e2e::wait::until_interrupted(run())) {
        Ok(outcome) => outcome,
        Err(signal) => {
            eprintln!("flow_bench: {signal}");
            return ExitCode::FAILURE;
        }
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("flow_bench: a target was missed (figures above)");
            // Missing a target is a finding, not a failure of the bench.
            ExitCode::SUCCESS
        }
        Err(e) => {
            let mut line = format!("flow_bench: {e}");
            let mut cause = e.source();
            while let Some(c) = cause {
                line.push_str(&format!(": {c}"));
                cause = c.source();
            }
            eprintln!("{line}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> BenchResult<bool> {
    let part: String = knob("FLOW_BENCH_PART", "all".to_owned());
    let runs: usize = knob("FLOW_BENCH_RUNS", 3usize).max(1);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "flow_bench: {cores} cores; {runs} runs per figure, medians; load average at start {}",
        cpu::load_average()
    );
    let mut all_met = true;
    if part == "a" || part == "all" {
        let kinds: String = knob("FLOW_BENCH_KEYSTORES", "soft,pkcs11".to_owned());
        for kind in kinds.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            all_met &= unwraps::bench(kind, runs).await?;
        }
    }
    if part == "b" || part == "all" {
        let size_mb: usize = knob("FLOW_BENCH_SIZE_MB", 100usize).max(1);
        let targets: usize = knob("FLOW_BENCH_TARGETS", 10usize).max(2);
        all_met &= deploy::bench(size_mb, targets, runs, cores).await?;
    }
    println!("load average at the end: {}", cpu::load_average());
    Ok(all_met)
}
