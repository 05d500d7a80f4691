//! (b) One large release deployed to 1 target and to N targets: wall time
//! and each target's CPU time.
//!
//! Two key managers and N targets, all `soft` keystores (so that what is
//! measured is coordination, download, verification, decryption and
//! installation, not an HSM), every agent sandboxed as in production. The
//! targets run on one machine and the release's manifest names one
//! destination, so they all install to the same path: each target's install
//! root is a different ancestor of it (`r1`, `r1/r2`, …), where it unpacks
//! its own copy before renaming it into place — every target still
//! downloads, verifies, decrypts, unpacks and installs the whole release.
//! The destination exists before the timed runs (a warm-up deploy), so
//! every install replaces it atomically.
//!
//! Wall time: from creating the deployment to its final state, polled every
//! 50 ms. CPU time per target: user + system time of the agent's main
//! process and its installer child over the same interval (`/proc`).

use std::path::Path;
use std::time::{Duration, Instant};

use custody_e2e::release::{self, Publisher};
use custody_e2e::{Agent, AgentOptions, Coordinator, CoordinatorOptions, Keystore, service_user};
use custody_proto::apps::DeploymentState;

use crate::BenchResult;
use crate::cpu;
use crate::stats::median;

/// The goal's slack: wall(N) ≤ SLACK × max(wall(1), N × cpu(1) / cores).
const SLACK: f64 = 1.5;

/// One timed deployment.
struct Sample {
    wall: f64,
    /// CPU seconds of each target in the environment.
    target_cpu: Vec<f64>,
    /// CPU seconds of the coordinator and of the key managers.
    coordinator_cpu: f64,
    key_manager_cpu: f64,
}

/// Runs (b); prints its lines; returns whether the target was met.
pub async fn bench(size_mb: usize, n: usize, runs: usize, cores: usize) -> BenchResult<bool> {
    let c = Coordinator::start_with(&CoordinatorOptions {
        deploy_deadline_seconds: 900,
        ..CoordinatorOptions::default()
    })
    .await?;
    let publisher = Publisher::from_seed(11);
    let shared = tempfile::Builder::new()
        .prefix("custody-flow-bench.")
        .tempdir()?;
    std::fs::set_permissions(
        shared.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    let (uid, gid) = service_user::service_ids()?;
    // Nested install roots, one per target; the destination is below all.
    let mut roots = Vec::with_capacity(n);
    let mut dir = shared.path().to_path_buf();
    for i in 1..=n {
        dir = dir.join(format!("r{i}"));
        std::fs::create_dir(&dir)?;
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid))?;
        roots.push(dir.clone());
    }
    let destination = dir.join("app");

    let mut kms = Vec::new();
    for i in 1..=2 {
        let mut a = Agent::new(
            &format!("km-{i}"),
            &AgentOptions::key_manager(Keystore::Soft),
        )?;
        a.enroll(&c).await?;
        a.start()?;
        kms.push(a);
    }
    let mut targets = Vec::new();
    for (i, root) in roots.iter().enumerate() {
        let a = Agent::new(
            &format!("target-{}", i + 1),
            &AgentOptions::target(Keystore::Soft, &[publisher.pin()]),
        )?;
        set_install_root(&a, root)?;
        targets.push(a);
    }
    for a in &mut targets {
        a.enroll(&c).await?;
        a.start()?;
    }
    for a in kms.iter_mut().chain(targets.iter_mut()) {
        a.wait_live(&c).await?;
    }
    for a in &kms {
        c.enable_key_manager(&a.server_id).await?;
    }
    let km_ids: Vec<&str> = kms.iter().map(|a| a.server_id.as_str()).collect();
    c.wait_holders(&km_ids).await?;

    c.create_app("big", true).await?;
    let all: Vec<&str> = targets.iter().map(|a| a.server_id.as_str()).collect();
    c.environment("big", "one", &all[..1]).await?;
    c.environment("big", "many", &all).await?;
    let blob = pseudo_random(size_mb * 1024 * 1024);
    let (tar, manifest) =
        release::app_package(&destination, &[("blob.bin", blob.as_slice())], None)?;
    drop(blob);
    let t = Instant::now();
    let pushed = release::push(&c, "big", &tar, manifest.as_bytes(), &publisher).await?;
    drop(tar);
    println!(
        "\n(b) a {size_mb} MB release ({} bytes encrypted; pushed in {:.1} s) to 1 and to {n} targets; 2 key managers; every agent on a soft keystore (coordination is measured, not an HSM), sandboxed; {cores} cores",
        pushed.package.len(),
        t.elapsed().as_secs_f64()
    );
    drop(pushed.package);

    // Warm-up: creates the destination, so every timed install replaces it.
    let mut coordinator = c;
    let warm = deploy_once(
        &mut coordinator,
        &pushed.release_id,
        "one",
        &targets[..1],
        &kms,
    )
    .await?;
    println!("  warm-up to 1 target: {:.2} s", warm.wall);

    let (mut one, mut many) = (Vec::new(), Vec::new());
    for run in 1..=runs {
        let s1 = deploy_once(
            &mut coordinator,
            &pushed.release_id,
            "one",
            &targets[..1],
            &kms,
        )
        .await?;
        let sn = deploy_once(&mut coordinator, &pushed.release_id, "many", &targets, &kms).await?;
        println!(
            "  run {run}: 1 target {:.2} s wall, {:.2} s CPU | {n} targets {:.2} s wall, CPU per target median {:.2} s (min {:.2}, max {:.2}); coordinator CPU {:.2} s / {:.2} s, key managers {:.2} s / {:.2} s",
            s1.wall,
            s1.target_cpu[0],
            sn.wall,
            median(&sn.target_cpu),
            sn.target_cpu.iter().copied().fold(f64::INFINITY, f64::min),
            sn.target_cpu.iter().copied().fold(0.0, f64::max),
            s1.coordinator_cpu,
            sn.coordinator_cpu,
            s1.key_manager_cpu,
            sn.key_manager_cpu,
        );
        one.push(s1);
        many.push(sn);
    }
    let wall1 = median(&one.iter().map(|s| s.wall).collect::<Vec<_>>());
    let cpu1 = median(&one.iter().map(|s| s.target_cpu[0]).collect::<Vec<_>>());
    let walln = median(&many.iter().map(|s| s.wall).collect::<Vec<_>>());
    let cpun = median(
        &many
            .iter()
            .map(|s| median(&s.target_cpu))
            .collect::<Vec<_>>(),
    );
    let floor = wall1.max(n as f64 * cpu1 / cores as f64);
    let bound = SLACK * floor;
    let met = walln <= bound;
    println!(
        "  median: wall(1) {wall1:.2} s, cpu(1) {cpu1:.2} s; wall({n}) {walln:.2} s, cpu per target {cpun:.2} s"
    );
    println!(
        "  machine limit max(wall(1), {n} x cpu(1) / {cores} cores) = {floor:.2} s; target wall({n}) <= {SLACK} x that = {bound:.2} s: {} (wall({n}) is {:.2}x the limit)",
        if met { "met" } else { "MISSED" },
        walln / floor
    );
    drop(targets);
    drop(kms);
    drop(coordinator);
    Ok(met)
}

/// Points the agent's `[target] install_roots` at `root` (before it runs).
fn set_install_root(a: &Agent, root: &Path) -> BenchResult<()> {
    let text = std::fs::read_to_string(&a.config)?;
    let own = format!("install_roots = [\"{}\"]", a.install_root.display());
    if !text.contains(&own) {
        return Err(format!("{}: no {own} line to replace", a.config.display()).into());
    }
    let shared = format!("install_roots = [\"{}\"]", root.display());
    std::fs::write(&a.config, text.replace(&own, &shared))?;
    Ok(())
}

/// The agent's processes: main, and the installer for a target.
fn pids(a: &Agent) -> BenchResult<Vec<u32>> {
    let mut p = vec![a.pid()?];
    if let Ok(i) = a.installer_pid() {
        p.push(i);
    }
    Ok(p)
}

async fn deploy_once(
    c: &mut Coordinator,
    release_id: &str,
    env: &str,
    targets: &[Agent],
    kms: &[Agent],
) -> BenchResult<Sample> {
    let target_pids = targets.iter().map(pids).collect::<BenchResult<Vec<_>>>()?;
    let km_pids: Vec<u32> = kms.iter().map(Agent::pid).collect::<Result<_, _>>()?;
    let coord_pid = c.process().pid().ok_or("the coordinator is not running")?;
    let before: Vec<f64> = target_pids.iter().map(|p| cpu::total(p)).collect();
    let (c0, k0) = (cpu::total(&[coord_pid]), cpu::total(&km_pids));
    let start = Instant::now();
    let d = c.deploy("big", release_id, env).await?;
    let end = loop {
        let now = c.deployment(&d.id).await?;
        if now.state.is_terminal() {
            break now;
        }
        if start.elapsed() > Duration::from_secs(900) {
            return Err(format!("deployment {} still {:?} after 900 s", d.id, now.state).into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let wall = start.elapsed().as_secs_f64();
    if end.state != DeploymentState::Succeeded {
        return Err(format!(
            "deployment {} ended {:?}: {:?}",
            d.id, end.state, end.reason
        )
        .into());
    }
    let target_cpu = target_pids
        .iter()
        .zip(&before)
        .map(|(p, b)| cpu::total(p) - b)
        .collect();
    Ok(Sample {
        wall,
        target_cpu,
        coordinator_cpu: cpu::total(&[coord_pid]) - c0,
        key_manager_cpu: cpu::total(&km_pids) - k0,
    })
}

/// `len` pseudo-random bytes (xorshift64*): incompressible enough for a
/// package that is encrypted anyway, and fast to make.
fn pseudo_random(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}
