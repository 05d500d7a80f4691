//! The system interfaces the sandbox needs beyond `rustix`'s safe API,
//! through safe wrappers only (the agent crate forbids `unsafe`): the
//! kernel's Landlock ABI (probed through the `landlock` crate), NSS user and
//! group lookups and `ptrace` (`nix`), and locked, non-dumpable anonymous
//! memory (`memmap2`).

use std::ffi::CString;
use std::io;

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, RestrictSelf, RestrictSelfAttr,
    Ruleset, RulesetAttr, Scope,
};
use memmap2::{Advice, MmapMut};

/// The Landlock ABIs this build knows, newest first.
const KNOWN_ABIS: [ABI; 9] = [
    ABI::V9,
    ABI::V8,
    ABI::V7,
    ABI::V6,
    ABI::V5,
    ABI::V4,
    ABI::V3,
    ABI::V2,
    ABI::V1,
];

/// Whether the running kernel supports everything `abi` brought: its access
/// rights and scopes, and its `landlock_restrict_self` flags. Asked with
/// `HardRequirement`, which fails on anything unsupported; nothing is
/// restricted (no ruleset is created or enforced).
fn kernel_supports(abi: ABI) -> bool {
    let hard = || Ruleset::default().set_compatibility(CompatLevel::HardRequirement);
    let net = AccessNet::from_all(abi);
    let scopes = Scope::from_all(abi);
    let rights = hard()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| {
            if net.is_empty() {
                Ok(r)
            } else {
                r.handle_access(net)
            }
        })
        .and_then(|r| {
            if scopes.is_empty() {
                Ok(r)
            } else {
                r.scope(scopes)
            }
        })
        .is_ok();
    let flags = || RestrictSelf::default().set_compatibility(CompatLevel::HardRequirement);
    let flags_ok = if abi >= ABI::V8 {
        flags().all_threads(true).is_ok()
    } else if abi >= ABI::V7 {
        flags().log_subdomains(false).is_ok()
    } else {
        true
    };
    rights && flags_ok
}

/// The running kernel's Landlock ABI, as far as this build knows (up to 9; a
/// newer kernel reports 9), or `None` when the kernel has no usable Landlock
/// (not built in, or disabled at boot).
pub(crate) fn landlock_abi() -> Option<ABI> {
    KNOWN_ABIS.into_iter().find(|&abi| kernel_supports(abi))
}

/// A user's ids as NSS reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UserIds {
    pub uid: u32,
    pub gid: u32,
}

/// `getpwnam_r`: the user's uid and primary gid, `None` when no such user.
pub(crate) fn lookup_user(name: &str) -> io::Result<Option<UserIds>> {
    Ok(nix::unistd::User::from_name(name)?.map(|u| UserIds {
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
    }))
}

/// `getgrnam_r`: the group's gid, `None` when no such group.
pub(crate) fn lookup_group(name: &str) -> io::Result<Option<u32>> {
    Ok(nix::unistd::Group::from_name(name)?.map(|g| g.gid.as_raw()))
}

/// `getgrouplist`: every group `user` belongs to, `gid` included.
pub(crate) fn user_groups(user: &str, gid: u32) -> io::Result<Vec<u32>> {
    let cname = CString::new(user).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let groups = nix::unistd::getgrouplist(&cname, nix::unistd::Gid::from_raw(gid))?;
    Ok(groups.into_iter().map(nix::unistd::Gid::as_raw).collect())
}

/// `ptrace(PTRACE_ATTACH, pid)`, detaching again when it succeeded. Used
/// only by `sandbox-check`'s probe, to show that tracing is refused.
pub(crate) fn ptrace_attach_and_detach(pid: u32) -> io::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    let pid = nix::unistd::Pid::from_raw(pid);
    nix::sys::ptrace::attach(pid)?;
    // The tracee may not have stopped yet; it is the checker's own helper
    // process and is killed afterwards in any case.
    let _ = nix::sys::ptrace::detach(pid, None);
    Ok(())
}

/// Why locked memory could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockedMemoryError {
    /// `mmap` of the anonymous region failed.
    #[error("mapping {len} bytes for key material failed")]
    Map {
        /// The size asked for.
        len: usize,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
    /// `madvise(MADV_DONTDUMP)` or `madvise(MADV_DONTFORK)` failed.
    #[error("excluding key material from core dumps and child processes failed")]
    Advise(#[source] io::Error),
    /// `mlock` failed (`RLIMIT_MEMLOCK` too low, or no memory).
    #[error("locking key material in memory failed (RLIMIT_MEMLOCK too low?)")]
    Lock(#[source] io::Error),
}

/// A private anonymous mapping of whole pages, locked in RAM (`mlock`),
/// excluded from core dumps (`MADV_DONTDUMP`) and absent from any forked
/// child (`MADV_DONTFORK`). Unmapped (and so unlocked) on drop; clearing the
/// contents first is the owner's job (see `secure_mem`).
pub(crate) struct LockedPages {
    map: MmapMut,
}

impl LockedPages {
    /// Maps `len` bytes (at least one). The kernel maps, advises and locks
    /// whole pages; the rest of the last page stays unused.
    pub(crate) fn new(len: usize) -> Result<Self, LockedMemoryError> {
        let map = MmapMut::map_anon(len.max(1))
            .map_err(|source| LockedMemoryError::Map { len, source })?;
        map.advise(Advice::DontDump)
            .map_err(LockedMemoryError::Advise)?;
        map.advise(Advice::DontFork)
            .map_err(LockedMemoryError::Advise)?;
        map.lock().map_err(LockedMemoryError::Lock)?;
        Ok(LockedPages { map })
    }

    /// The mapped bytes (zero-filled when new).
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.map
    }

    /// The mapped bytes, writable.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.map
    }

    /// The address of the first byte (for tests that look the mapping up in
    /// `/proc/PID/smaps`).
    pub(crate) fn address(&self) -> usize {
        self.map.as_ptr() as usize
    }
}
