//! Running a manifest hook: no shell, a fixed small environment plus the
//! variables the manifest names, its own process group, a time limit, and
//! its output streamed line by line through the [`Redactor`].
//!
//! The hook is the leader of a new process group. On timeout the whole
//! group is killed (`SIGKILL`); when the hook exits, whatever it left
//! running in its group is killed too (services are started through
//! systemd, not left behind by a hook), so its output pipes close. A
//! process that left the group (`setsid`) and keeps a pipe open only stops
//! the reading of further output after a short grace period.

use std::io::Read;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use custody_envelope::manifest::Hook;
use rustix::process::{Pid, Signal, kill_process_group};

use super::error::{HookKind, HookStatus, InstallerError};
use super::redact::{LineSplitter, Redactor};
use super::{LogLine, LogStream};

/// `PATH` for hooks.
pub(crate) const HOOK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// How long output is still read after the hook and its group are gone.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// How often the hook's state is checked while no output arrives.
const POLL: Duration = Duration::from_millis(20);

/// One hook to run.
pub(crate) struct HookRun<'a> {
    pub kind: HookKind,
    pub hook: &'a Hook,
    /// The directory `working_dir` is relative to (the unpacked release for
    /// `pre_install`, the destination for `post_install`).
    pub release_dir: &'a Path,
    pub destination: &'a Path,
    pub deployment_id: &'a str,
    /// The manifest's variables that the environment sets, with values.
    pub env: Vec<(&'a str, &'a str)>,
    pub timeout: Duration,
}

/// How it went.
pub(crate) struct HookOutcome {
    pub status: HookStatus,
    pub duration: Duration,
}

fn spawn_err(kind: HookKind, reason: impl Into<String>) -> InstallerError {
    InstallerError::HookSpawn {
        hook: kind,
        reason: reason.into(),
    }
}

/// Runs the hook to its end or its time limit. Errors only when it could
/// not be started; how it ended is in the outcome.
pub(crate) fn run(
    run: &HookRun<'_>,
    redactor: &Arc<Redactor>,
    log: &mut dyn FnMut(LogLine),
) -> Result<HookOutcome, InstallerError> {
    let kind = run.kind;
    let workdir_parts: Vec<&str> = run
        .hook
        .working_dir
        .components()
        .filter_map(|c| c.as_os_str().to_str())
        .filter(|c| *c != ".")
        .collect();
    let release = super::tree::open_configured_dir(run.release_dir)
        .map_err(|e| spawn_err(kind, format!("opening the release directory: {e}")))?;
    super::tree::walk_dirs(std::os::fd::AsFd::as_fd(&release), &workdir_parts, None).map_err(
        |_| {
            spawn_err(
                kind,
                format!(
                    "working_dir {} is not a directory of the release (or is a symlink)",
                    run.hook.working_dir.display()
                ),
            )
        },
    )?;
    let Some((program, args)) = run.hook.command.split_first() else {
        return Err(spawn_err(kind, "empty command"));
    };

    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(run.release_dir.join(&run.hook.working_dir))
        .env_clear()
        .env("PATH", HOOK_PATH)
        .env("HOME", "/nonexistent")
        .env("LANG", "C.UTF-8")
        .env("CUSTODY_HOOK", kind.name())
        .env("CUSTODY_DEPLOYMENT_ID", run.deployment_id)
        .env("CUSTODY_DESTINATION", run.destination)
        .env("CUSTODY_RELEASE_DIR", run.release_dir)
        .envs(run.env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| spawn_err(kind, format!("{program}: {e}")))?;
    drop(cmd); // the variables' copies in the Command go now
    let pgid = Pid::from_child(&child);

    let (tx, rx) = mpsc::channel::<LogLine>();
    if let Some(out) = child.stdout.take() {
        reader(out, LogStream::Stdout, redactor.clone(), tx.clone());
    }
    if let Some(err) = child.stderr.take() {
        reader(err, LogStream::Stderr, redactor.clone(), tx.clone());
    }
    drop(tx);

    let deadline = started + run.timeout;
    let mut timed_out = false;
    let status = loop {
        match rx.recv_timeout(POLL) {
            Ok(line) => log(line),
            Err(mpsc::RecvTimeoutError::Timeout | mpsc::RecvTimeoutError::Disconnected) => {}
        }
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            Err(_) => break None,
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = kill_process_group(pgid, Signal::KILL);
            break child.wait().ok();
        }
    };
    let duration = started.elapsed();
    // Whatever the hook left in its group goes too, so the pipes close.
    let _ = kill_process_group(pgid, Signal::KILL);
    let drain_until = Instant::now() + DRAIN_GRACE;
    loop {
        let left = drain_until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match rx.recv_timeout(left) {
            Ok(line) => log(line),
            Err(_) => break,
        }
    }
    let status = if timed_out {
        HookStatus::TimedOut
    } else {
        match status {
            Some(s) => match (s.code(), s.signal()) {
                (Some(code), _) => HookStatus::Exited(code),
                (None, Some(sig)) => HookStatus::Signaled(sig),
                (None, None) => HookStatus::Exited(-1),
            },
            None => HookStatus::Exited(-1),
        }
    };
    Ok(HookOutcome { status, duration })
}

/// Reads one pipe on its own thread, sending redacted lines.
fn reader(
    mut pipe: impl Read + Send + 'static,
    stream: LogStream,
    redactor: Arc<Redactor>,
    tx: mpsc::Sender<LogLine>,
) {
    std::thread::spawn(move || {
        let mut splitter = LineSplitter::new(redactor.lookahead());
        let mut buf = zeroize::Zeroizing::new(vec![0u8; 8192]);
        let mut emit = |line: &[u8], truncated: bool| {
            let _ = tx.send(LogLine {
                stream,
                line: redactor.line(line, truncated),
            });
        };
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => splitter.feed(&buf[..n], &mut emit),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        splitter.finish(&mut emit);
    });
}
