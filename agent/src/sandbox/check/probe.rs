//! The probe process of `sandbox-check`: applies the plan it is given, tries
//! one operation, and says through its exit status what happened. Run as a
//! fresh process per operation, so that a seccomp kill ends only that probe.

use std::io::Read as _;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::super::{SandboxPlan, apply, sys};

/// One operation a probe tries after applying the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Operation {
    /// Open a file or directory for reading.
    Read {
        /// What to open.
        path: PathBuf,
    },
    /// Create (then remove) a new file in a directory.
    CreateFile {
        /// Where.
        dir: PathBuf,
    },
    /// Replace the probe with a program (`execve`).
    Exec {
        /// The program, run without arguments.
        program: PathBuf,
    },
    /// Connect to TCP `127.0.0.1:port`.
    Connect {
        /// The port.
        port: u16,
    },
    /// Bind a TCP socket to `127.0.0.1`, any port.
    Bind,
    /// `setuid(0)`.
    SetuidRoot,
    /// `ptrace(PTRACE_ATTACH)` another process of the service user.
    Ptrace {
        /// The process to attach to.
        pid: u32,
    },
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Operation::Read { path } => write!(f, "open {} for reading", path.display()),
            Operation::CreateFile { dir } => write!(f, "create a file in {}", dir.display()),
            Operation::Exec { program } => write!(f, "execute {}", program.display()),
            Operation::Connect { port } => write!(f, "connect to TCP 127.0.0.1:{port}"),
            Operation::Bind => write!(f, "bind a TCP port on 127.0.0.1"),
            Operation::SetuidRoot => write!(f, "setuid(0)"),
            Operation::Ptrace { pid } => write!(f, "ptrace-attach pid {pid} (same user)"),
        }
    }
}

/// What the checker sends a probe on its standard input.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProbeRequest {
    pub plan: SandboxPlan,
    pub operation: Operation,
}

/// Exit status: the operation succeeded.
pub(crate) const EXIT_SUCCEEDED: i32 = 0;
/// Exit status: the request on stdin could not be read.
pub(crate) const EXIT_BAD_REQUEST: i32 = 2;
/// Exit status: `apply` failed (its message is on stderr).
pub(crate) const EXIT_SANDBOX_FAILED: i32 = 3;
/// Exit status: the operation failed without an OS error code.
pub(crate) const EXIT_FAILED_NO_ERRNO: i32 = 99;
/// Exit status base: the operation failed with `errno` = status − base.
pub(crate) const EXIT_ERRNO_BASE: i32 = 100;

fn errno_exit(e: &std::io::Error) -> i32 {
    match e.raw_os_error() {
        Some(n) if (1..=154).contains(&n) => EXIT_ERRNO_BASE + n,
        _ => EXIT_FAILED_NO_ERRNO,
    }
}

fn attempt(operation: &Operation) -> std::io::Result<()> {
    let loopback = |port| SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    match operation {
        Operation::Read { path } => std::fs::File::open(path).map(drop),
        Operation::CreateFile { dir } => {
            let path = dir.join(format!(".custody-sandbox-probe-{}", std::process::id()));
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?;
            std::fs::remove_file(&path)
        }
        // Returns only when execve failed.
        Operation::Exec { program } => Err(std::process::Command::new(program).exec()),
        Operation::Connect { port } => TcpStream::connect(loopback(*port)).map(drop),
        Operation::Bind => TcpListener::bind(loopback(0)).map(drop),
        Operation::SetuidRoot => {
            rustix::thread::set_thread_uid(rustix::process::Uid::ROOT).map_err(std::io::Error::from)
        }
        Operation::Ptrace { pid } => sys::ptrace_attach_and_detach(*pid),
    }
}

/// The probe process's whole life: read the request from stdin, apply its
/// plan, try its operation; returns the exit status to end with. The agent's
/// CLI calls this from a hidden subcommand (see [`super::ProbeLauncher`]).
/// Must be called before any thread starts.
pub fn probe_main() -> i32 {
    let mut input = String::new();
    if std::io::stdin().read_to_string(&mut input).is_err() {
        return EXIT_BAD_REQUEST;
    }
    let Ok(request) = serde_json::from_str::<ProbeRequest>(&input) else {
        return EXIT_BAD_REQUEST;
    };
    if let Err(e) = apply(&request.plan) {
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        eprintln!("{message}");
        return EXIT_SANDBOX_FAILED;
    }
    match attempt(&request.operation) {
        Ok(()) => EXIT_SUCCEEDED,
        Err(e) => errno_exit(&e),
    }
}
