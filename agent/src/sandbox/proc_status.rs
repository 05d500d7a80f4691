//! Reading a task's security state from `/proc/PID/task/TID/status`: what
//! the tests (and `sandbox-check`) look at to prove the sandbox is in force
//! in every thread.

use std::io;
use std::path::{Path, PathBuf};

/// The security-relevant fields of one task's `status` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStatus {
    /// Real, effective, saved and file-system uid.
    pub uid: [u32; 4],
    /// Real, effective, saved and file-system gid.
    pub gid: [u32; 4],
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// `CapInh`.
    pub cap_inheritable: u64,
    /// `CapPrm`.
    pub cap_permitted: u64,
    /// `CapEff`.
    pub cap_effective: u64,
    /// `CapBnd`.
    pub cap_bounding: u64,
    /// `CapAmb`.
    pub cap_ambient: u64,
    /// `NoNewPrivs`.
    pub no_new_privs: bool,
    /// `Seccomp`: 0 none, 1 strict, 2 filter.
    pub seccomp: u8,
}

/// A status file that could not be read or understood.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
    /// Reading the file or listing the tasks failed.
    #[error("reading {path} failed")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A field is missing or malformed.
    #[error("field {0} of a /proc status file is missing or malformed")]
    Field(&'static str),
}

fn field<'a>(text: &'a str, name: &'static str) -> Result<&'a str, StatusError> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
        .ok_or(StatusError::Field(name))
}

fn ids(text: &str, name: &'static str) -> Result<[u32; 4], StatusError> {
    let v: Vec<u32> = field(text, name)?
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| StatusError::Field(name))?;
    v.try_into().map_err(|_| StatusError::Field(name))
}

fn hex(text: &str, name: &'static str) -> Result<u64, StatusError> {
    u64::from_str_radix(field(text, name)?, 16).map_err(|_| StatusError::Field(name))
}

fn number<T: std::str::FromStr>(text: &str, name: &'static str) -> Result<T, StatusError> {
    field(text, name)?
        .parse()
        .map_err(|_| StatusError::Field(name))
}

impl TaskStatus {
    /// Parses the text of a `status` file.
    pub fn parse(text: &str) -> Result<Self, StatusError> {
        Ok(TaskStatus {
            uid: ids(text, "Uid")?,
            gid: ids(text, "Gid")?,
            groups: field(text, "Groups")?
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .map_err(|_| StatusError::Field("Groups"))?,
            cap_inheritable: hex(text, "CapInh")?,
            cap_permitted: hex(text, "CapPrm")?,
            cap_effective: hex(text, "CapEff")?,
            cap_bounding: hex(text, "CapBnd")?,
            cap_ambient: hex(text, "CapAmb")?,
            no_new_privs: number::<u8>(text, "NoNewPrivs")? == 1,
            seccomp: number(text, "Seccomp")?,
        })
    }

    /// Reads and parses one `status` file.
    pub fn read(path: &Path) -> Result<Self, StatusError> {
        let text = std::fs::read_to_string(path).map_err(|source| StatusError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Whether this task is fully sandboxed as `uid`: every uid and gid the
    /// service user's, no capability in any set, no_new_privs, seccomp
    /// filtering.
    pub fn is_sandboxed_as(&self, uid: u32, gid: u32) -> bool {
        self.uid.iter().all(|&u| u == uid)
            && self.gid.iter().all(|&g| g == gid)
            && self.cap_inheritable == 0
            && self.cap_permitted == 0
            && self.cap_effective == 0
            && self.cap_bounding == 0
            && self.cap_ambient == 0
            && self.no_new_privs
            && self.seccomp == 2
    }
}

/// The status of every thread of process `pid`, with its thread id.
pub fn all_tasks(pid: u32) -> Result<Vec<(u32, TaskStatus)>, StatusError> {
    let dir = PathBuf::from(format!("/proc/{pid}/task"));
    let read_err = |path: &Path| {
        let path = path.to_owned();
        move |source| StatusError::Read { path, source }
    };
    let mut tasks = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(read_err(&dir))? {
        let entry = entry.map_err(read_err(&dir))?;
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        match TaskStatus::read(&entry.path().join("status")) {
            Ok(status) => tasks.push((tid, status)),
            // The thread ended between listing and reading.
            Err(StatusError::Read { source, .. })
                if source.kind() == io::ErrorKind::NotFound
                    || source.raw_os_error() == Some(libc::ESRCH) => {}
            Err(e) => return Err(e),
        }
    }
    tasks.sort_by_key(|(tid, _)| *tid);
    Ok(tasks)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SANDBOXED: &str = "Name:\tcustody-agent\nUmask:\t0077\nState:\tS (sleeping)\n\
        Uid:\t998\t998\t998\t998\nGid:\t997\t997\t997\t997\nGroups:\t997 109 \n\
        CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n\
        CapBnd:\t0000000000000000\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\n\
        Seccomp:\t2\nSeccomp_filters:\t5\n";

    #[test]
    fn parses_a_sandboxed_task() {
        let s = TaskStatus::parse(SANDBOXED).unwrap();
        assert_eq!(s.uid, [998; 4]);
        assert_eq!(s.groups, vec![997, 109]);
        assert!(s.no_new_privs);
        assert_eq!(s.seccomp, 2);
        assert!(s.is_sandboxed_as(998, 997));
        assert!(!s.is_sandboxed_as(0, 997));
    }

    #[test]
    fn a_single_capability_or_missing_filter_is_not_sandboxed() {
        let bnd = SANDBOXED.replace("CapBnd:\t0000000000000000", "CapBnd:\t0000000000000400");
        assert!(!TaskStatus::parse(&bnd).unwrap().is_sandboxed_as(998, 997));
        let nofilter = SANDBOXED.replace("Seccomp:\t2", "Seccomp:\t0");
        assert!(
            !TaskStatus::parse(&nofilter)
                .unwrap()
                .is_sandboxed_as(998, 997)
        );
        let saved_root = SANDBOXED.replace("Uid:\t998\t998\t998", "Uid:\t998\t998\t0");
        assert!(
            !TaskStatus::parse(&saved_root)
                .unwrap()
                .is_sandboxed_as(998, 997)
        );
    }

    #[test]
    fn missing_fields_are_typed_errors() {
        let text = SANDBOXED.replace("NoNewPrivs:\t1\n", "");
        assert!(matches!(
            TaskStatus::parse(&text),
            Err(StatusError::Field("NoNewPrivs"))
        ));
        assert!(matches!(
            TaskStatus::parse("Uid:\t1\t2\n"),
            Err(StatusError::Field("Uid"))
        ));
    }

    #[test]
    fn reads_this_process() {
        let tasks = all_tasks(std::process::id()).unwrap();
        assert!(!tasks.is_empty());
        let me = TaskStatus::read(Path::new("/proc/self/status")).unwrap();
        assert_eq!(me.uid[0], rustix::process::getuid().as_raw());
    }
}
