//! Shared by the sandbox tests: a tiny test runner (the sandbox tests use
//! `harness = false`, because libtest's threads must never be sandboxed and
//! the children re-execute this very binary), the unprivileged test user,
//! and child-process plumbing.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitCode, Stdio};

use custody_agent::sandbox::{
    LANDLOCK_ABI_NETWORK, LandlockRequirement, SandboxPlan, SeccompProfile, kernel_abi,
};

/// The kernel's Landlock ABI, 0 without Landlock.
pub fn landlock_abi() -> u32 {
    kernel_abi().unwrap_or(0)
}

#[path = "../common/test_user.rs"]
mod test_user;
pub use test_user::{TEST_USER, test_user};

/// The variable that turns a re-executed test binary into a child case.
pub const CHILD_ENV: &str = "CUSTODY_SANDBOX_TEST_CHILD";
/// The variable that carries the child's plan, as JSON.
pub const PLAN_ENV: &str = "CUSTODY_SANDBOX_TEST_PLAN";
/// A free-form argument for the child.
pub const ARG_ENV: &str = "CUSTODY_SANDBOX_TEST_ARG";

/// A test case: a name and a body that panics on failure.
pub type Case = (&'static str, fn());

/// Runs the cases (all, or those whose name contains the first non-flag
/// argument), each isolated with `catch_unwind`, and reports like libtest.
pub fn run_cases(cases: &[Case]) -> ExitCode {
    if !rustix::process::geteuid().is_root() {
        eprintln!("sandbox tests skipped: they switch to user {TEST_USER} and must run as root");
        return ExitCode::SUCCESS;
    }
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let selected: Vec<&Case> = cases
        .iter()
        .filter(|(name, _)| filter.as_deref().is_none_or(|f| name.contains(f)))
        .collect();
    println!("\nrunning {} tests", selected.len());
    let mut failed = Vec::new();
    for (name, body) in &selected {
        match std::panic::catch_unwind(body) {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(*name);
            }
        }
    }
    let passed = selected.len() - failed.len();
    if failed.is_empty() {
        println!("\ntest result: ok. {passed} passed; 0 failed\n");
        ExitCode::SUCCESS
    } else {
        println!("\nfailures: {failed:?}");
        println!(
            "test result: FAILED. {passed} passed; {} failed\n",
            failed.len()
        );
        ExitCode::FAILURE
    }
}

/// Directories for one test: a root-owned config dir with a file, a state
/// dir owned by the test user, both under a fresh temporary dir.
pub struct Dirs {
    pub root: tempfile::TempDir,
    pub config: PathBuf,
    pub config_file: PathBuf,
    pub state: PathBuf,
}

pub fn dirs() -> Dirs {
    let (uid, gid) = test_user();
    let root = tempfile::Builder::new()
        .prefix("custody-sandbox-test.")
        .tempdir()
        .unwrap();
    // The test user must traverse the temp dir to reach its state dir.
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = root.path().join("etc");
    std::fs::create_dir(&config).unwrap();
    let config_file = config.join("agent.toml");
    std::fs::write(&config_file, "# config\n").unwrap();
    std::fs::set_permissions(&config_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let state = root.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::os::unix::fs::chown(&state, Some(uid), Some(gid)).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    Dirs {
        root,
        config,
        config_file,
        state,
    }
}

/// Landlock as the plans need it (ABI 4), or what this kernel has when it
/// has less (a stock Debian bookworm kernel has ABI 2): the tests then check
/// that the rest holds and that the network rows say "not enforceable".
pub fn requirement() -> LandlockRequirement {
    LandlockRequirement {
        require: true,
        min_abi: Some(landlock_abi().min(LANDLOCK_ABI_NETWORK)),
    }
}

/// The main process's plan over `dirs`, allowing TCP to `ports`.
pub fn main_plan(dirs: &Dirs, ports: &[u16]) -> SandboxPlan {
    let mut plan = SandboxPlan::new(TEST_USER, SeccompProfile::Main)
        .read(&dirs.config)
        .read_write(&dirs.state);
    for &p in ports {
        plan = plan.tcp_connect(p);
    }
    plan.landlock = requirement();
    plan
}

/// Starts this test binary as child `case` with `plan` (and `arg`).
pub fn spawn_child(case: &str, plan: &SandboxPlan, arg: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env(CHILD_ENV, case)
        .env(PLAN_ENV, serde_json::to_string(plan).unwrap())
        .env(ARG_ENV, arg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd
}

/// Like [`spawn_child`], but started the way systemd starts the agent: as
/// the test user already (`setpriv`), with no inheritable capabilities and,
/// when `bounding_cleared`, an empty bounding set
/// (`CapabilityBoundingSet=`).
pub fn setpriv(bounding_cleared: bool, case: &str, plan: &SandboxPlan, arg: &str) -> Command {
    let inner = spawn_child(case, plan, arg);
    let mut cmd = Command::new("setpriv");
    cmd.args([
        format!("--reuid={TEST_USER}"),
        format!("--regid={TEST_USER}"),
        "--init-groups".to_owned(),
        "--inh-caps=-all".to_owned(),
    ]);
    if bounding_cleared {
        cmd.arg("--bounding-set=-all");
    }
    cmd.arg("--").arg(inner.get_program());
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    cmd
}

/// In a child: its plan and argument.
pub fn child_plan() -> (SandboxPlan, String) {
    let plan = serde_json::from_str(&std::env::var(PLAN_ENV).unwrap()).unwrap();
    (plan, std::env::var(ARG_ENV).unwrap_or_default())
}

/// Reads `key=value` lines from a child until the line `READY` (or EOF).
pub fn read_until_ready(out: &mut BufReader<ChildStdout>) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let l = line.trim();
        if l == "READY" {
            break;
        }
        if let Some((k, v)) = l.split_once('=') {
            pairs.push((k.to_owned(), v.to_owned()));
        }
    }
    pairs
}

/// The value of `key` among a child's reported pairs.
pub fn value<'a>(pairs: &'a [(String, String)], key: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("the child did not report {key}: {pairs:?}"))
}

/// The result of an I/O attempt in a child, as reported: `ok` or the errno
/// name.
pub fn outcome<T>(r: std::io::Result<T>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => match e.raw_os_error() {
            Some(libc::EACCES) => "EACCES".into(),
            Some(libc::EPERM) => "EPERM".into(),
            Some(n) => format!("errno{n}"),
            None => format!("error:{}", e.kind()),
        },
    }
}

/// Waits for a child with its stdin closed, returning its exit status.
pub fn finish(mut child: Child) -> std::process::ExitStatus {
    drop(child.stdin.take());
    child.wait().unwrap()
}

/// Whether `path` exists (for readability at call sites).
pub fn exists(path: &Path) -> bool {
    path.symlink_metadata().is_ok()
}
