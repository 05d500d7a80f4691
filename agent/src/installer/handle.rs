//! The main process's side: start the child, hand it requests, relay its
//! log lines, stop it by closing the socket.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::error::InstallerError;
use super::protocol::{
    ChildSettings, FromChild, ToChildOut, WireVariableOut, parse, read_frame, write_frame,
};
use super::{InstallReport, InstallRequest, InstallerSettings, LogLine};

/// How long the child may take to sandbox itself and say so.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The running installer child. `Send + Sync`; requests are served one at
/// a time (a second caller waits). Dropping it closes the socket, which
/// stops the child, and reaps it.
pub struct InstallerHandle {
    inner: Mutex<Inner>,
    pid: u32,
    landlock_abi: u32,
}

struct Inner {
    sock: UnixStream,
    child: Child,
    gone: Option<String>,
}

impl std::fmt::Debug for InstallerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstallerHandle")
            .field("pid", &self.pid)
            .field("landlock_abi", &self.landlock_abi)
            .finish()
    }
}

impl InstallerHandle {
    /// Starts `current_exe() installer` with one end of a socket pair as
    /// its standard input, sends it `settings` and waits until it has
    /// sandboxed itself. Call before the main process sandboxes itself
    /// (it starts a process) and while it has no other thread.
    pub fn spawn(settings: &InstallerSettings) -> Result<Self, InstallerError> {
        let exe = std::env::current_exe().map_err(InstallerError::Spawn)?;
        Self::spawn_program(settings, &exe)
    }

    fn spawn_program(settings: &InstallerSettings, program: &Path) -> Result<Self, InstallerError> {
        settings.check()?;
        let (sock, theirs) = UnixStream::pair().map_err(InstallerError::Spawn)?;
        let mut cmd = Command::new(program);
        cmd.arg("installer")
            .env_clear()
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = cmd.spawn().map_err(InstallerError::Spawn)?;
        // The child's end lives in the Command: close it here, so that the
        // child's exit is seen as end of file.
        drop(cmd);
        let pid = child.id();
        let mut inner = Inner {
            sock,
            child,
            gone: None,
        };
        let child_settings = ChildSettings {
            plan: settings.plan(),
            install_roots: settings.install_roots.clone(),
            staging_dir: settings.staging_dir.clone(),
            max_total_bytes: settings.max_total_bytes,
            max_files: settings.max_files,
            max_file_bytes: settings.max_file_bytes,
            hook_timeout_secs: settings.hook_timeout.as_secs().max(1),
            log_level: settings.log_level.clone(),
        };
        let landlock_abi = match start(&mut inner, &child_settings) {
            Ok(abi) => abi,
            Err(e) => {
                stop(&mut inner);
                return Err(e);
            }
        };
        Ok(InstallerHandle {
            inner: Mutex::new(inner),
            pid,
            landlock_abi,
        })
    }

    /// The child's process id (to inspect it; the main process cannot
    /// signal it once sandboxed).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The Landlock ABI the child enforces (0: none).
    pub fn landlock_abi(&self) -> u32 {
        self.landlock_abi
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Installs one verified package, blocking until done; `on_log` gets
    /// every (redacted) line as it comes. `Ok` means the files were moved
    /// into place — check [`InstallReport::succeeded`] for `post_install`.
    pub fn install(
        &self,
        req: &InstallRequest,
        on_log: &mut dyn FnMut(LogLine),
    ) -> Result<InstallReport, InstallerError> {
        let mut inner = self.lock();
        if let Some(reason) = &inner.gone {
            return Err(InstallerError::ChildGone(reason.clone()));
        }
        let result = exchange(&mut inner, req, on_log);
        if let Err(InstallerError::ChildGone(reason)) = &result {
            inner.gone = Some(reason.clone());
        }
        result
    }
}

fn start(inner: &mut Inner, settings: &ChildSettings) -> Result<u32, InstallerError> {
    write_frame(&mut inner.sock, &ToChildOut::Start { settings })?;
    let _ = inner.sock.set_read_timeout(Some(START_TIMEOUT));
    let reply = read_reply(inner)?;
    let _ = inner.sock.set_read_timeout(None);
    match reply {
        FromChild::Ready { landlock_abi } => Ok(landlock_abi),
        FromChild::StartFailed { message } => Err(InstallerError::ChildSandbox(message)),
        other => Err(InstallerError::Protocol(format!(
            "expected ready, got {other:?}"
        ))),
    }
}

fn read_reply(inner: &mut Inner) -> Result<FromChild, InstallerError> {
    match read_frame(&mut inner.sock) {
        Ok(Some(body)) => parse(&body),
        Ok(None) => {
            let status = inner.child.try_wait().ok().flatten();
            Err(InstallerError::ChildGone(match status {
                Some(s) => format!("it exited ({s})"),
                None => "it closed the socket".into(),
            }))
        }
        Err(e) => Err(InstallerError::ChildGone(format!("reading its reply: {e}"))),
    }
}

fn exchange(
    inner: &mut Inner,
    req: &InstallRequest,
    on_log: &mut dyn FnMut(LogLine),
) -> Result<InstallReport, InstallerError> {
    let msg = ToChildOut::Install {
        deployment_id: &req.deployment_id,
        package_tar: &req.package_tar,
        variables: req
            .variables
            .iter()
            .map(|v| WireVariableOut {
                name: &v.name,
                value: v.value.as_str(),
                secret: v.secret,
            })
            .collect(),
    };
    write_frame(&mut inner.sock, &msg)?;
    loop {
        match read_reply(inner)? {
            FromChild::Log { line } => on_log(line),
            FromChild::Done { result } => return result,
            other => {
                return Err(InstallerError::Protocol(format!(
                    "unexpected {other:?} during an install"
                )));
            }
        }
    }
}

fn stop(inner: &mut Inner) {
    let _ = inner.sock.shutdown(std::net::Shutdown::Both);
    let _ = inner.child.wait();
}

impl Drop for InstallerHandle {
    fn drop(&mut self) {
        let inner = self
            .inner
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        stop(inner);
    }
}
