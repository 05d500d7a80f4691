//! The system calls the sandbox needs that `rustix` offers no safe wrapper
//! for: the Landlock ABI query, NSS user/group lookups, `ptrace` (only for
//! `sandbox-check`'s probe) and locked, non-dumpable anonymous memory for
//! key material. This is the one module of the sandbox allowed `unsafe`;
//! every block says why it is sound.
#![allow(unsafe_code)]

use std::ffi::{CString, c_void};
use std::io;
use std::ptr::NonNull;

use rustix::mm::{Advice, MapFlags, ProtFlags};

/// Why Landlock is not usable on this kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LandlockAbsence {
    /// `ENOSYS`: the kernel is built without Landlock.
    NotBuiltIn,
    /// `EOPNOTSUPP`: built in, but not enabled at boot (`lsm=`).
    Disabled,
}

/// The running kernel's Landlock ABI version (1, 2, …), as
/// `landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)`
/// reports it — including versions newer than the `landlock` crate knows.
pub(crate) fn landlock_abi_version() -> Result<u32, LandlockAbsence> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_ulong = 1;
    // SAFETY: with a NULL attribute pointer, size 0 and the VERSION flag the
    // kernel reads no memory and only returns the ABI version or an error.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<c_void>(),
            0 as libc::size_t,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if ret >= 1 {
        return Ok(u32::try_from(ret).unwrap_or(u32::MAX));
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(libc::EOPNOTSUPP) => Err(LandlockAbsence::Disabled),
        _ => Err(LandlockAbsence::NotBuiltIn),
    }
}

/// A user's ids as NSS reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UserIds {
    pub uid: u32,
    pub gid: u32,
}

/// Runs a `get*_r` lookup, growing the string buffer on `ERANGE`.
fn with_growing_buffer<T>(mut call: impl FnMut(&mut [u8]) -> Result<T, i32>) -> io::Result<T> {
    let mut size = 1024;
    loop {
        let mut buf = vec![0u8; size];
        match call(&mut buf) {
            Ok(v) => return Ok(v),
            Err(libc::ERANGE) if size < (1 << 20) => size *= 4,
            Err(errno) => return Err(io::Error::from_raw_os_error(errno)),
        }
    }
}

/// `getpwnam_r`: the user's uid and primary gid, `None` when no such user.
pub(crate) fn lookup_user(name: &str) -> io::Result<Option<UserIds>> {
    let cname = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    with_growing_buffer(|buf| {
        // SAFETY: `passwd` is plain old data; zero is a valid bit pattern.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call: `cname` is a
        // NUL-terminated string, `pwd` and `result` are live locals, `buf` is
        // a live buffer of the length passed. The strings `pwd` points to
        // live in `buf`, and only the integer fields are read after it.
        let rc = unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        match (rc, result.is_null()) {
            (0, true) => Ok(None),
            (0, false) => Ok(Some(UserIds {
                uid: pwd.pw_uid,
                gid: pwd.pw_gid,
            })),
            (errno, _) => Err(errno),
        }
    })
}

/// `getgrnam_r`: the group's gid, `None` when no such group.
pub(crate) fn lookup_group(name: &str) -> io::Result<Option<u32>> {
    let cname = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    with_growing_buffer(|buf| {
        // SAFETY: `group` is plain old data; zero is a valid bit pattern.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: as in `lookup_user`: valid string, live locals, a buffer of
        // the length passed; only `gr_gid` is read afterwards.
        let rc = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut grp,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        match (rc, result.is_null()) {
            (0, true) => Ok(None),
            (0, false) => Ok(Some(grp.gr_gid)),
            (errno, _) => Err(errno),
        }
    })
}

/// `getgrouplist`: every group `user` belongs to, `gid` included.
pub(crate) fn user_groups(user: &str, gid: u32) -> io::Result<Vec<u32>> {
    let cname = CString::new(user).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut count: libc::c_int = 32;
    loop {
        let capacity = usize::try_from(count).unwrap_or(0).max(1);
        let mut groups: Vec<libc::gid_t> = vec![0; capacity];
        let mut n = libc::c_int::try_from(capacity).unwrap_or(libc::c_int::MAX);
        // SAFETY: `cname` is NUL-terminated; `groups` holds `n` elements and
        // the C library writes at most `n` of them, updating `n` with the
        // number it needs.
        let rc = unsafe { libc::getgrouplist(cname.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
        let needed = usize::try_from(n).unwrap_or(0);
        if rc >= 0 {
            groups.truncate(needed);
            return Ok(groups);
        }
        if needed <= capacity || count > 65_536 {
            return Err(io::Error::other("getgrouplist failed"));
        }
        count = n;
    }
}

/// `ptrace(PTRACE_ATTACH, pid)`, detaching at once when it succeeded. Used
/// only by `sandbox-check`'s probe to show that tracing is refused.
pub(crate) fn ptrace_attach_and_detach(pid: rustix::process::Pid) -> io::Result<()> {
    let raw = pid.as_raw_nonzero().get();
    // SAFETY: PTRACE_ATTACH takes a pid and ignores the address and data
    // arguments; no memory is passed to the kernel.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_ptrace,
            libc::PTRACE_ATTACH,
            raw,
            std::ptr::null::<c_void>(),
            std::ptr::null::<c_void>(),
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above; detaching a tracee we just attached to.
    unsafe {
        libc::syscall(
            libc::SYS_ptrace,
            libc::PTRACE_DETACH,
            raw,
            std::ptr::null::<c_void>(),
            std::ptr::null::<c_void>(),
        )
    };
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
    /// `madvise(MADV_DONTDUMP | MADV_WIPEONFORK)` failed.
    #[error("excluding key material from core dumps and forks failed")]
    Advise(#[source] io::Error),
    /// `mlock` failed (`RLIMIT_MEMLOCK` too low, or no memory).
    #[error("locking key material in memory failed (RLIMIT_MEMLOCK?)")]
    Lock(#[source] io::Error),
}

/// A private anonymous mapping of whole pages, locked in RAM (`mlock`),
/// excluded from core dumps (`MADV_DONTDUMP`) and zero-filled in any forked
/// child (`MADV_WIPEONFORK`). Unmapped on drop; clearing the contents first
/// is the owner's job (see `secure_mem`).
pub(crate) struct LockedPages {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: `LockedPages` owns its mapping exclusively, like a `Box<[u8]>`;
// nothing about it is tied to the thread that created it.
unsafe impl Send for LockedPages {}
// SAFETY: shared references only allow reads through `as_slice`.
unsafe impl Sync for LockedPages {}

impl LockedPages {
    /// Maps at least `len` bytes (rounded up to whole pages, at least one).
    pub(crate) fn new(len: usize) -> Result<Self, LockedMemoryError> {
        let page = rustix::param::page_size();
        let map_len = len.max(1).div_ceil(page).saturating_mul(page);
        // SAFETY: a fresh anonymous private mapping at an address the kernel
        // chooses aliases no existing memory.
        let raw = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                map_len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        }
        .map_err(|e| LockedMemoryError::Map {
            len,
            source: e.into(),
        })?;
        let ptr = NonNull::new(raw.cast::<u8>()).ok_or(LockedMemoryError::Map {
            len,
            source: io::Error::from_raw_os_error(libc::ENOMEM),
        })?;
        let pages = LockedPages { ptr, len: map_len };
        for advice in [Advice::LinuxDontDump, Advice::LinuxWipeOnFork] {
            // SAFETY: the range is exactly our own page-aligned mapping;
            // these advices change dumping/fork behaviour, not its contents.
            unsafe { rustix::mm::madvise(raw, map_len, advice) }
                .map_err(|e| LockedMemoryError::Advise(e.into()))?;
        }
        // SAFETY: the range is exactly our own mapping; locking does not
        // change its contents.
        unsafe { rustix::mm::mlock(raw, map_len) }
            .map_err(|e| LockedMemoryError::Lock(e.into()))?;
        Ok(pages)
    }

    /// The mapped bytes (whole pages, zero-filled when new).
    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr` points to `len` readable bytes we own for our whole
        // lifetime; `&self` forbids concurrent writes through `as_mut_slice`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The mapped bytes, writable.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// The address of the first byte (for tests that look the mapping up
    /// in `/proc/PID/smaps`).
    pub(crate) fn address(&self) -> usize {
        self.ptr.as_ptr() as usize
    }
}

impl Drop for LockedPages {
    fn drop(&mut self) {
        let raw = self.ptr.as_ptr().cast::<c_void>();
        // SAFETY: the range is exactly the mapping created in `new`, which
        // nothing else references once we are dropped. Failures leave a
        // mapping behind, which is harmless and cannot be handled in drop.
        unsafe {
            let _ = rustix::mm::munlock(raw, self.len);
            let _ = rustix::mm::munmap(raw, self.len);
        }
    }
}

