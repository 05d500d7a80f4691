//! `custody-agent sandbox-check`: prove the sandbox, don't claim it.
//!
//! For each operation that must fail (read `/etc/shadow` and a
//! world-readable file outside the plan, write outside the plan, execute a
//! program, connect to a port other than the allowed ones, bind any port,
//! `setuid(0)`, ptrace a process of the same user) and each that must work
//! (read the plan's read paths, create files in its read-write directories,
//! connect to its ports), a fresh probe process applies the plan and tries
//! it. The table says, for each: refused, allowed, or not enforceable on this
//! kernel. The check passes only when nothing that must fail succeeded and
//! nothing that must work was refused.
//!
//! The checker itself is not sandboxed: it starts the probes (re-executing
//! the agent's binary through a [`ProbeLauncher`]), sets up what they need
//! (a listener to connect to, a world-writable directory outside the plan, a
//! process to trace), and reads their exit status.

mod probe;
mod report;

use std::ffi::OsString;
use std::io::Write as _;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use probe::{Operation, probe_main};
pub use report::{CheckReport, CheckRow, Expect, Outcome, Refusal, Verdict};

use super::{SandboxPlan, SeccompProfile, ruleset, sys};
use probe::{
    EXIT_BAD_REQUEST, EXIT_ERRNO_BASE, EXIT_FAILED_NO_ERRNO, EXIT_SANDBOX_FAILED, EXIT_SUCCEEDED,
    ProbeRequest,
};

/// How long one probe may take before it is killed and reported broken.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// How to start a probe process: `program args…`, which must end up calling
/// [`probe_main`] before any thread starts (e.g. a hidden `sandbox-probe`
/// subcommand of `custody-agent`).
#[derive(Debug, Clone)]
pub struct ProbeLauncher {
    program: PathBuf,
    args: Vec<OsString>,
}

impl ProbeLauncher {
    /// Probes run as `program args…`.
    pub fn new(
        program: impl Into<PathBuf>,
        args: impl IntoIterator<Item = impl Into<OsString>>,
    ) -> Self {
        ProbeLauncher {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
        }
    }

    /// Probes run as this very binary with `args…`.
    pub fn current_exe(
        args: impl IntoIterator<Item = impl Into<OsString>>,
    ) -> std::io::Result<Self> {
        Ok(Self::new(std::env::current_exe()?, args))
    }

    fn run(&self, request: &ProbeRequest) -> Outcome {
        let json = match serde_json::to_vec(request) {
            Ok(j) => j,
            Err(e) => return Outcome::ProbeFailed(format!("encoding the request: {e}")),
        };
        let mut child = match Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                return Outcome::ProbeFailed(format!("starting {}: {e}", self.program.display()));
            }
        };
        if let Some(mut stdin) = child.stdin.take() {
            // A probe that dies before reading reports through its status.
            let _ = stdin.write_all(&json);
        }
        match wait_with_timeout(&mut child) {
            Err(detail) => Outcome::ProbeFailed(detail),
            Ok((status, stderr)) => classify(status, &stderr),
        }
    }
}

fn wait_with_timeout(child: &mut Child) -> Result<(std::process::ExitStatus, String), String> {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut stderr = String::new();
                if let Some(mut err) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
                }
                return Ok((status, stderr));
            }
            Ok(None) if start.elapsed() > PROBE_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("the probe did not finish within {PROBE_TIMEOUT:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("waiting for the probe: {e}")),
        }
    }
}

fn classify(status: std::process::ExitStatus, stderr: &str) -> Outcome {
    if let Some(signal) = status.signal() {
        return if signal == libc::SIGSYS {
            Outcome::Refused(Refusal::Seccomp)
        } else {
            Outcome::ProbeFailed(format!("the probe was killed by signal {signal}"))
        };
    }
    match status.code() {
        Some(EXIT_SUCCEEDED) => Outcome::Succeeded,
        Some(EXIT_SANDBOX_FAILED) => Outcome::SandboxFailed(stderr.trim().to_owned()),
        Some(EXIT_BAD_REQUEST) => Outcome::ProbeFailed(
            "the probe could not read its request (is the launcher wired to probe_main?)".into(),
        ),
        Some(EXIT_FAILED_NO_ERRNO) => Outcome::FailedOther { errno: 0 },
        Some(code) if code > EXIT_ERRNO_BASE => {
            let errno = code - EXIT_ERRNO_BASE;
            if matches!(errno, libc::EACCES | libc::EPERM) {
                Outcome::Refused(Refusal::Errno(errno))
            } else {
                Outcome::FailedOther { errno }
            }
        }
        other => Outcome::ProbeFailed(format!("unexpected probe exit status {other:?}")),
    }
}

/// One row to test: an operation and what must happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// What the probe tries.
    pub operation: Operation,
    /// What must happen.
    pub expect: Expect,
}

/// What the checker sets up for the standard probes; removed on drop.
#[derive(Debug)]
pub struct Fixtures {
    outside_dir: Option<PathBuf>,
    _other_port: Option<TcpListener>,
    _allowed_ports: Vec<TcpListener>,
    traced: Option<Child>,
}

impl Drop for Fixtures {
    fn drop(&mut self) {
        if let Some(dir) = &self.outside_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some(child) = &mut self.traced {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn first_existing(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.exists())
}

/// A world-writable directory outside the plan, so that only the sandbox
/// (not file permissions) can stop the service user writing there.
fn outside_dir(plan: &SandboxPlan) -> Option<PathBuf> {
    for base in ["/tmp", "/var/tmp", "/dev/shm"] {
        let dir = Path::new(base).join(format!("custody-sandbox-check.{}", std::process::id()));
        if plan.covers(&dir) || std::fs::create_dir(&dir).is_err() {
            continue;
        }
        if std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).is_ok() {
            return Some(dir);
        }
        let _ = std::fs::remove_dir(&dir);
    }
    None
}

/// A process running as the service user, for the ptrace probe.
fn traced_process(plan: &SandboxPlan) -> Option<Child> {
    let sleep = first_existing(&["/usr/bin/sleep", "/bin/sleep"])?;
    let user = sys::lookup_user(&plan.user).ok()??;
    let mut cmd = Command::new(sleep);
    cmd.arg("60")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if rustix::process::geteuid().is_root() {
        cmd.uid(user.uid).gid(user.gid);
    } else if rustix::process::geteuid().as_raw() != user.uid {
        return None;
    }
    cmd.spawn().ok()
}

/// The standard probes for `plan`, with the fixtures they need (keep them
/// alive while the probes run).
pub fn standard_probes(plan: &SandboxPlan) -> (Vec<Probe>, Fixtures) {
    let mut probes = Vec::new();
    let refused = |operation| Probe {
        operation,
        expect: Expect::Refused,
    };
    let allowed = |operation| Probe {
        operation,
        expect: Expect::Allowed,
    };

    probes.push(refused(Operation::Read {
        path: PathBuf::from("/etc/shadow"),
    }));
    if let Some(path) = ["/etc/passwd", "/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists() && !plan.covers(p))
    {
        probes.push(refused(Operation::Read { path }));
    }
    let outside_dir = outside_dir(plan);
    if let Some(dir) = &outside_dir {
        probes.push(refused(Operation::CreateFile { dir: dir.clone() }));
    }
    if let Some(program) = first_existing(&["/usr/bin/true", "/bin/true"]) {
        let may_exec = plan.seccomp == SeccompProfile::Installer
            && plan.read_exec.iter().any(|p| program.starts_with(p));
        probes.push(Probe {
            operation: Operation::Exec { program },
            expect: if may_exec {
                Expect::Allowed
            } else {
                Expect::Refused
            },
        });
    }
    let mut other_port = None;
    for _ in 0..8 {
        if let Ok(listener) = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)) {
            match listener.local_addr() {
                Ok(addr) if !plan.tcp_connect.contains(&addr.port()) => {
                    probes.push(refused(Operation::Connect { port: addr.port() }));
                    other_port = Some(listener);
                    break;
                }
                _ => {}
            }
        }
    }
    probes.push(refused(Operation::Bind));
    probes.push(refused(Operation::SetuidRoot));
    let traced = traced_process(plan);
    if let Some(child) = &traced {
        probes.push(refused(Operation::Ptrace { pid: child.id() }));
    }

    for path in &plan.read {
        probes.push(allowed(Operation::Read { path: path.clone() }));
    }
    for dir in plan.read_write.iter().filter(|p| p.is_dir()) {
        probes.push(allowed(Operation::CreateFile { dir: dir.clone() }));
    }
    let mut allowed_ports = Vec::new();
    for &port in &plan.tcp_connect {
        // Listen there when the port is free; else something listens already.
        if let Ok(l) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            allowed_ports.push(l);
        }
        probes.push(allowed(Operation::Connect { port }));
    }
    let fixtures = Fixtures {
        outside_dir,
        _other_port: other_port,
        _allowed_ports: allowed_ports,
        traced,
    };
    (probes, fixtures)
}

/// Runs `probes` against `plan`, each in a fresh probe process.
pub fn run_probes(plan: &SandboxPlan, launcher: &ProbeLauncher, probes: &[Probe]) -> CheckReport {
    let kernel_abi = ruleset::kernel_abi();
    let rows = probes
        .iter()
        .map(|probe| {
            let request = ProbeRequest {
                plan: plan.clone(),
                operation: probe.operation.clone(),
            };
            let outcome = launcher.run(&request);
            CheckRow::new(probe.clone(), outcome, plan, kernel_abi)
        })
        .collect();
    CheckReport {
        profile: plan.seccomp,
        user: plan.user.clone(),
        kernel_abi,
        rows,
    }
}

/// The whole `sandbox-check`: the standard probes for `plan`.
pub fn run(plan: &SandboxPlan, launcher: &ProbeLauncher) -> CheckReport {
    let (probes, fixtures) = standard_probes(plan);
    let report = run_probes(plan, launcher, &probes);
    drop(fixtures);
    report
}
