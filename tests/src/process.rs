//! A real child process with its stdout and stderr captured to files,
//! killed (SIGKILL) when dropped; when the dropping thread is panicking (a
//! test failed), the end of both files is printed first.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use crate::error::{E2eError, Result, io};

/// Lines of each log printed when a test fails.
const TAIL_LINES: usize = 60;

/// A running (or exited) child process.
pub struct Proc {
    name: String,
    child: Option<Child>,
    status: Option<ExitStatus>,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl std::fmt::Debug for Proc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proc")
            .field("name", &self.name)
            .field("pid", &self.pid())
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Proc {
    /// Spawns `cmd` with stdin from `/dev/null` and stdout/stderr appended
    /// to `<log_dir>/<name>.stdout` / `.stderr` (kept across restarts under
    /// the same name).
    pub fn spawn(name: &str, mut cmd: Command, log_dir: &Path) -> Result<Proc> {
        let stdout = log_dir.join(format!("{name}.stdout"));
        let stderr = log_dir.join(format!("{name}.stderr"));
        let open = |p: &Path| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(io("open", p.display()))
        };
        cmd.stdin(Stdio::null())
            .stdout(open(&stdout)?)
            .stderr(open(&stderr)?);
        let child = cmd.spawn().map_err(io("spawn", name))?;
        Ok(Proc {
            name: name.to_owned(),
            child: Some(child),
            status: None,
            stdout,
            stderr,
        })
    }

    /// The name given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id while it has not been reaped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What it wrote to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// What it wrote to stderr so far (the agents' and coordinator's log).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The end of both logs, for error messages.
    pub fn tails(&self) -> String {
        format!(
            "---- {} stdout ({}) ----\n{}\n---- {} stderr ({}) ----\n{}",
            self.name,
            self.stdout.display(),
            tail(&self.stdout(), TAIL_LINES),
            self.name,
            self.stderr.display(),
            tail(&self.stderr(), TAIL_LINES)
        )
    }

    /// Whether it is still running (reaps it when it has exited).
    pub fn is_running(&mut self) -> bool {
        self.try_status().is_none()
    }

    /// Its exit status, once it has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none()
            && let Some(child) = self.child.as_mut()
            && let Ok(Some(s)) = child.try_wait()
        {
            self.status = Some(s);
            self.child = None;
        }
        self.status
    }

    /// An error when it has exited (naming the status and the log's end).
    pub fn check_running(&mut self) -> Result<()> {
        match self.try_status() {
            None => Ok(()),
            Some(status) => Err(E2eError::Exited {
                what: self.name.clone(),
                status: status.to_string(),
                tail: self.tails(),
            }),
        }
    }

    /// Sends `sig` (SIGSTOP, SIGCONT, SIGSEGV, SIGHUP …).
    pub fn signal(&self, sig: Signal) -> Result<()> {
        let pid = self
            .pid()
            .and_then(|p| i32::try_from(p).ok())
            .and_then(Pid::from_raw)
            .ok_or_else(|| E2eError::Setup(format!("{} is not running", self.name)))?;
        rustix::process::kill_process(pid, sig).map_err(|e| E2eError::Io {
            action: "signal",
            what: self.name.clone(),
            source: e.into(),
        })
    }

    /// SIGKILL, then reaps it. Nothing when it is not running.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            if let Ok(s) = child.wait() {
                self.status = Some(s);
            }
        }
    }

    /// Waits (polling) until it exits, at most `secs`.
    pub async fn wait_exit(&mut self, secs: u64) -> Result<ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(s) = self.try_status() {
                return Ok(s);
            }
            if Instant::now() > deadline {
                return Err(E2eError::Timeout {
                    what: format!("{} to exit", self.name),
                    secs,
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM and waits up to `secs`; SIGKILL after that (and an error).
    pub async fn terminate(&mut self, secs: u64) -> Result<ExitStatus> {
        if let Some(s) = self.try_status() {
            return Ok(s);
        }
        self.signal(Signal::TERM)?;
        match self.wait_exit(secs).await {
            Ok(s) => Ok(s),
            Err(e) => {
                self.kill9();
                Err(e)
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.tails());
        }
        self.kill9();
    }
}
