//! What `/proc` says about a process and its threads: capabilities,
//! no-new-privs, seccomp mode, ids, its children, its core-size limit.
//! Read independently of the agent's own checks.

use std::path::Path;

use crate::error::{E2eError, Result, io};

/// One thread's `/proc/PID/task/TID/status` lines that the sandbox sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadStatus {
    /// The thread id.
    pub tid: u32,
    /// `CapEff`.
    pub cap_eff: u64,
    /// `CapPrm`.
    pub cap_prm: u64,
    /// `CapBnd`.
    pub cap_bnd: u64,
    /// `CapInh`.
    pub cap_inh: u64,
    /// `CapAmb`.
    pub cap_amb: u64,
    /// `NoNewPrivs`.
    pub no_new_privs: u32,
    /// `Seccomp` (2: filter).
    pub seccomp: u32,
    /// `Uid`: real, effective, saved, file-system.
    pub uids: Vec<u32>,
    /// `Gid`: the same four.
    pub gids: Vec<u32>,
}

impl ThreadStatus {
    /// Parses a status file.
    pub fn parse(tid: u32, text: &str) -> Result<ThreadStatus> {
        let line = |key: &str| -> Result<&str> {
            text.lines()
                .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
                .map(str::trim)
                .ok_or_else(|| E2eError::Output {
                    what: format!("/proc status of {tid} ({key})"),
                    output: text.to_owned(),
                })
        };
        let bad = |key: &str| E2eError::Output {
            what: format!("/proc status of {tid} ({key})"),
            output: text.to_owned(),
        };
        let hex = |key: &str| -> Result<u64> {
            u64::from_str_radix(line(key)?, 16).map_err(|_| bad(key))
        };
        let num = |key: &str| -> Result<u32> { line(key)?.parse().map_err(|_| bad(key)) };
        let ids = |key: &str| -> Result<Vec<u32>> {
            line(key)?
                .split_whitespace()
                .map(|v| v.parse().map_err(|_| bad(key)))
                .collect()
        };
        Ok(ThreadStatus {
            tid,
            cap_eff: hex("CapEff")?,
            cap_prm: hex("CapPrm")?,
            cap_bnd: hex("CapBnd")?,
            cap_inh: hex("CapInh")?,
            cap_amb: hex("CapAmb")?,
            no_new_privs: num("NoNewPrivs")?,
            seccomp: num("Seccomp")?,
            uids: ids("Uid")?,
            gids: ids("Gid")?,
        })
    }

    /// Everything the sandbox promises: no capability at all, no new
    /// privileges, a seccomp filter, every uid and gid the service user's.
    pub fn is_sandboxed_as(&self, uid: u32, gid: u32) -> bool {
        self.cap_eff == 0
            && self.cap_prm == 0
            && self.cap_bnd == 0
            && self.cap_inh == 0
            && self.cap_amb == 0
            && self.no_new_privs == 1
            && self.seccomp == 2
            && self.uids.len() == 4
            && self.uids.iter().all(|&u| u == uid)
            && self.gids.len() == 4
            && self.gids.iter().all(|&g| g == gid)
    }
}

/// Every thread of process `pid`.
pub fn threads(pid: u32) -> Result<Vec<ThreadStatus>> {
    let dir = format!("/proc/{pid}/task");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).map_err(io("list", &dir))? {
        let e = e.map_err(io("list", &dir))?;
        let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let path = e.path().join("status");
        match std::fs::read_to_string(&path) {
            Ok(text) => out.push(ThreadStatus::parse(tid, &text)?),
            // The thread ended between the listing and the read.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(io("read", path.display())(err)),
        }
    }
    Ok(out)
}

/// The processes whose parent is `pid`.
pub fn children(pid: u32) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").map_err(io("list", "/proc"))? {
        let Ok(e) = e else { continue };
        let Some(child) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // "PID (comm) S PPID …": the command may contain spaces and ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    Ok(out)
}

/// The soft and hard `RLIMIT_CORE` of `pid` from `/proc/PID/limits`
/// (`None`: unlimited).
pub fn core_limit(pid: u32) -> Result<(Option<u64>, Option<u64>)> {
    let path = format!("/proc/{pid}/limits");
    let text = std::fs::read_to_string(&path).map_err(io("read", &path))?;
    let line = text
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .ok_or_else(|| E2eError::Output {
            what: path.clone(),
            output: text.clone(),
        })?;
    let mut fields = line["Max core file size".len()..].split_whitespace();
    let mut value = || match fields.next() {
        Some("unlimited") => Ok(None),
        Some(v) => v.parse::<u64>().map(Some).map_err(|_| E2eError::Output {
            what: path.clone(),
            output: line.to_owned(),
        }),
        None => Err(E2eError::Output {
            what: path.clone(),
            output: line.to_owned(),
        }),
    };
    Ok((value()?, value()?))
}

/// The owner uid of `/proc/PID/status`: root for a non-dumpable process
/// (`PR_SET_DUMPABLE` 0), the process's own uid otherwise.
pub fn proc_owner(pid: u32) -> Result<u32> {
    use std::os::unix::fs::MetadataExt as _;
    let p = format!("/proc/{pid}/status");
    Ok(std::fs::metadata(Path::new(&p))
        .map_err(io("stat", &p))?
        .uid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_this_process_and_finds_its_limits() {
        let me = std::process::id();
        let t = threads(me).unwrap();
        assert!(t.iter().any(|s| s.tid == me));
        let uid = rustix::process::getuid().as_raw();
        assert!(t.iter().all(|s| s.uids.len() == 4 && s.uids[0] == uid));
        core_limit(me).unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let found = children(me).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.contains(&child.id()), "{found:?}");
    }

    #[test]
    fn a_capable_thread_is_not_sandboxed() {
        let text = "Uid:\t5\t5\t5\t5\nGid:\t6\t6\t6\t6\nCapInh:\t0000000000000000\n\
                    CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n\
                    CapBnd:\t0000000000000001\nCapAmb:\t0000000000000000\n\
                    NoNewPrivs:\t1\nSeccomp:\t2\n";
        let s = ThreadStatus::parse(1, text).unwrap();
        assert!(!s.is_sandboxed_as(5, 6));
        let ok = text.replace("CapBnd:\t0000000000000001", "CapBnd:\t0000000000000000");
        assert!(ThreadStatus::parse(1, &ok).unwrap().is_sandboxed_as(5, 6));
        assert!(!ThreadStatus::parse(1, &ok).unwrap().is_sandboxed_as(0, 6));
    }
}
