//! swtpm: a TPM 2.0 simulator as a foreground child on a free port pair.

use std::ffi::OsString;
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::error::{SimError, io};
use crate::ports;

/// How long swtpm may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Port pairs tried before giving up (another process may take a port
/// between our probe and swtpm's bind).
const PORT_ATTEMPTS: usize = 5;

/// A running swtpm. Killed on drop; its state directory survives
/// [`Swtpm::restart`] (and is deleted on drop when it was temporary).
#[derive(Debug)]
pub struct Swtpm {
    child: Option<Child>,
    port: u16,
    state: PathBuf,
    _temp: Option<TempDir>,
}

impl Swtpm {
    /// With a new temporary state directory.
    pub fn start() -> Result<Self, SimError> {
        let temp = tempfile::Builder::new()
            .prefix("hsm-sim-swtpm-")
            .tempdir()
            .map_err(io("create", std::env::temp_dir()))?;
        let mut tpm = Self::start_in(temp.path())?;
        tpm._temp = Some(temp);
        Ok(tpm)
    }

    /// With its state in `dir` (created if missing, kept on drop). A state
    /// left by an earlier run is reused: same seeds, same keys.
    pub fn start_in(dir: &Path) -> Result<Self, SimError> {
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        let state = dir.canonicalize().map_err(io("resolve", dir))?;
        let (child, port) = spawn(&state)?;
        Ok(Self {
            child: Some(child),
            port,
            state,
            _temp: None,
        })
    }

    /// The TCTI string: `swtpm:host=127.0.0.1,port=P`.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// The TPM command port (the control port is the next one).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Environment for tpm2-tools and TSS programs: `TPM2TOOLS_TCTI`, `TCTI`.
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        vec![
            ("TPM2TOOLS_TCTI", self.tcti().into()),
            ("TCTI", self.tcti().into()),
        ]
    }

    /// Kills swtpm (the TPM loses its transient objects and sessions, like a
    /// reboot; the state directory keeps its seeds and NV).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops and starts swtpm again on the same state directory (on a new
    /// port pair: see [`Swtpm::tcti`]).
    pub fn restart(&mut self) -> Result<(), SimError> {
        self.stop();
        let (child, port) = spawn(&self.state)?;
        self.child = Some(child);
        self.port = port;
        Ok(())
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(state: &Path) -> Result<(Child, u16), SimError> {
    let mut last = SimError::NoFreePorts;
    for _ in 0..PORT_ATTEMPTS {
        let port = ports::free_pair().ok_or(SimError::NoFreePorts)?;
        match spawn_on(state, port) {
            Ok(child) => return Ok((child, port)),
            // Exited at once: most likely the port was taken meanwhile.
            Err(e @ SimError::SwtpmExited { .. }) => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

fn spawn_on(state: &Path, port: u16) -> Result<Child, SimError> {
    let log = state.join("swtpm.log");
    let mut child = Command::new("swtpm")
        .arg("socket")
        .arg("--tpm2")
        .arg("--tpmstate")
        .arg(format!("dir={}", state.display()))
        .arg("--server")
        .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
        .arg("--ctrl")
        .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
        .arg("--flags")
        .arg("not-need-init,startup-clear")
        .arg("--log")
        .arg(format!("file={},level=1", log.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| SimError::Spawn {
            program: "swtpm",
            source,
        })?;
    let started = Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(5).collect();
            return Err(SimError::SwtpmExited {
                status,
                log: tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
            });
        }
        // Both ports listen once swtpm has set the TPM up.
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port + 1)).is_ok()
            && TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()
        {
            return Ok(child);
        }
        if started.elapsed() > READY_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(SimError::SwtpmTimeout {
                seconds: READY_TIMEOUT.as_secs(),
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}
