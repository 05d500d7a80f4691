//! The seccomp allowlists: the one place that says which system calls each
//! process may make. Anything not listed kills the whole process
//! (`SECCOMP_RET_KILL_PROCESS`); the same policy runs in tests, CI and
//! production.
//!
//! A few calls are allowed by number but refused *politely* for some
//! arguments, because well-behaved libraries probe them and cope with an
//! error (a kill there would take the agent down for nothing):
//! `clone3` → `ENOSYS` (glibc falls back to `clone`, whose flags can be
//! checked), `socket` outside `AF_UNIX`/`AF_INET`/`AF_INET6` →
//! `EAFNOSUPPORT` (glibc's `getaddrinfo` probes netlink), `ioctl` outside a
//! short list of terminal/fd requests → `ENOTTY`, `prctl` outside a short
//! list of harmless options → `EPERM`.
//!
//! # How the lists were made, and how to regenerate them
//!
//! They start from what the agent's parts plausibly call (Rust std and its
//! threads, tokio's epoll reactor and blocking pool, reqwest/rustls over TCP,
//! getaddrinfo, file I/O into staging, a PKCS#11 module such as SoftHSM2
//! loaded in-process, a TPM over `/dev/tpmrm0` or over TCP to swtpm) and, for
//! the installer, what `sh`, coreutils and `systemctl` need to run hooks.
//! Refine them from what the real processes call:
//!
//! ```text
//! # every syscall the agent's tests make, main process and children
//! strace -f -qq -c -o /tmp/syscalls.txt \
//!     cargo test -p custody-agent --test sandbox_apply --test sandbox_check
//! # or the real agent doing its jobs (end-to-end tests, demo):
//! strace -f -qq -e trace=all -o /tmp/agent.trace custody-agent run --config …
//! sed -E 's/^[0-9]+ +//; s/\(.*//' /tmp/agent.trace | sort -u
//! ```
//!
//! then add what is missing here (with the reason) and remove what nothing
//! calls. A process killed by this filter shows `SIGSYS` as its end and, in
//! the audit log, `type=SECCOMP … syscall=N`; `ausyscall N` names it.

/// `(name, number)` pairs from `libc::SYS_*`, names without the prefix.
macro_rules! syscalls {
    ($($nr:ident),* $(,)?) => {
        &[$((stringify!($nr), libc::$nr)),*]
    };
}

/// A system call, as `(SYS_name, number)`.
pub(crate) type Syscall = (&'static str, libc::c_long);

/// Allowed in both profiles, unconditionally.
#[rustfmt::skip]
pub(crate) const COMMON: &[Syscall] = syscalls![
    // basic I/O on descriptors already open or opened below
    SYS_read, SYS_write, SYS_readv, SYS_writev, SYS_pread64, SYS_pwrite64,
    SYS_preadv, SYS_pwritev, SYS_preadv2, SYS_pwritev2, SYS_lseek, SYS_close,
    SYS_close_range, SYS_dup, SYS_dup3, SYS_fcntl, SYS_flock, SYS_fsync,
    SYS_fdatasync, SYS_ftruncate, SYS_fallocate, SYS_sendfile,
    SYS_copy_file_range, SYS_pipe2,
    // files (Landlock decides which ones)
    SYS_openat, SYS_openat2, SYS_newfstatat, SYS_fstat, SYS_statx, SYS_statfs,
    SYS_fstatfs, SYS_faccessat, SYS_faccessat2, SYS_readlinkat, SYS_getdents64,
    SYS_getcwd, SYS_mkdirat, SYS_unlinkat, SYS_renameat, SYS_renameat2,
    SYS_fchmod, SYS_fchmodat, SYS_utimensat, SYS_fadvise64,
    // memory, including locking key pages (secure_mem)
    SYS_mmap, SYS_munmap, SYS_mprotect, SYS_mremap, SYS_madvise, SYS_brk,
    SYS_mlock, SYS_mlock2, SYS_munlock,
    // threads and synchronisation (clone itself: see MAIN/INSTALLER)
    SYS_clone3, SYS_futex, SYS_set_robust_list, SYS_get_robust_list, SYS_rseq,
    SYS_set_tid_address, SYS_sched_yield, SYS_sched_getaffinity, SYS_gettid,
    SYS_getpid, SYS_getppid, SYS_exit, SYS_exit_group,
    // signals (tgkill: abort(); kill: stopping the installer)
    SYS_rt_sigaction, SYS_rt_sigprocmask, SYS_rt_sigreturn, SYS_sigaltstack,
    SYS_restart_syscall, SYS_tgkill, SYS_kill, SYS_rt_sigtimedwait,
    // time
    SYS_nanosleep, SYS_clock_nanosleep, SYS_clock_gettime, SYS_clock_getres,
    SYS_gettimeofday,
    // event loops (tokio: epoll + eventfd)
    SYS_epoll_create1, SYS_epoll_ctl, SYS_epoll_pwait, SYS_epoll_pwait2,
    SYS_eventfd2, SYS_ppoll,
    // sockets: outbound only (no bind, listen, accept); Landlock limits ports
    SYS_socket, SYS_socketpair, SYS_connect, SYS_getsockopt, SYS_setsockopt,
    SYS_getsockname, SYS_getpeername, SYS_sendto, SYS_recvfrom, SYS_sendmsg,
    SYS_recvmsg, SYS_sendmmsg, SYS_recvmmsg, SYS_shutdown,
    // identity and system information (read-only)
    SYS_getuid, SYS_geteuid, SYS_getgid, SYS_getegid, SYS_getresuid,
    SYS_getresgid, SYS_getgroups, SYS_uname, SYS_sysinfo, SYS_getrusage,
    SYS_prlimit64, SYS_getrandom,
    // reaping the installer child
    SYS_wait4, SYS_waitid,
    // argument-filtered politely (see ERRNO rules)
    SYS_ioctl, SYS_prctl,
];

/// x86_64's older calls that glibc and static binaries still make.
#[cfg(target_arch = "x86_64")]
#[rustfmt::skip]
pub(crate) const COMMON_ARCH: &[Syscall] = syscalls![
    SYS_open, SYS_stat, SYS_lstat, SYS_access, SYS_readlink, SYS_pipe, SYS_dup2,
    SYS_poll, SYS_select, SYS_epoll_wait, SYS_epoll_create, SYS_unlink,
    SYS_rename, SYS_mkdir, SYS_rmdir, SYS_chmod, SYS_getdents, SYS_getrlimit,
    SYS_time, SYS_arch_prctl,
];
#[cfg(not(target_arch = "x86_64"))]
pub(crate) const COMMON_ARCH: &[Syscall] = &[];

/// The installer's additions: it runs hooks (`sh -c …`, coreutils,
/// `systemctl`), which inherit its filter.
#[rustfmt::skip]
pub(crate) const INSTALLER: &[Syscall] = syscalls![
    SYS_clone, SYS_execve, SYS_execveat, SYS_setpgid, SYS_getpgid, SYS_setsid,
    SYS_getsid, SYS_pidfd_open, SYS_pidfd_send_signal, SYS_chdir, SYS_fchdir,
    SYS_umask, SYS_symlinkat, SYS_linkat, SYS_fchown, SYS_fchownat,
    SYS_rt_sigsuspend, SYS_rt_sigqueueinfo, SYS_setitimer, SYS_getitimer,
    SYS_timerfd_create, SYS_timerfd_settime, SYS_timerfd_gettime, SYS_signalfd4,
    SYS_inotify_init1, SYS_inotify_add_watch, SYS_inotify_rm_watch,
    SYS_pselect6, SYS_times, SYS_getpriority, SYS_sched_getparam,
    SYS_sched_getscheduler, SYS_memfd_create, SYS_capget, SYS_readahead,
    SYS_getxattr, SYS_lgetxattr, SYS_fgetxattr, SYS_listxattr, SYS_llistxattr,
    SYS_flistxattr, SYS_setxattr, SYS_lsetxattr, SYS_fsetxattr, SYS_splice,
    SYS_tee, SYS_sync_file_range, SYS_membarrier,
];

/// x86_64-only installer additions.
#[cfg(target_arch = "x86_64")]
#[rustfmt::skip]
pub(crate) const INSTALLER_ARCH: &[Syscall] = syscalls![
    SYS_fork, SYS_vfork, SYS_creat, SYS_link, SYS_symlink, SYS_chown,
    SYS_lchown, SYS_alarm, SYS_pause, SYS_getpgrp, SYS_utimes, SYS_futimesat,
    SYS_eventfd, SYS_signalfd, SYS_inotify_init,
];
#[cfg(not(target_arch = "x86_64"))]
pub(crate) const INSTALLER_ARCH: &[Syscall] = &[];

/// `clone` in the main process: threads only (`CLONE_THREAD` set), so no
/// new process can be started once it is sandboxed.
pub(crate) const MAIN_CLONE_REQUIRES: u64 = libc::CLONE_THREAD as u64;

/// The `socket` domains either process may open.
pub(crate) const SOCKET_DOMAINS: &[u64] = &[
    libc::AF_UNIX as u64,
    libc::AF_INET as u64,
    libc::AF_INET6 as u64,
];

/// The `ioctl` requests allowed: terminal queries (`isatty`, window size),
/// and fd flags (`FIONBIO`, `FIOCLEX`, `FIONCLEX`, `FIONREAD`). Device
/// ioctls are not needed: the TPM device is driven by read/write.
// The constants' type differs between libc targets (c_ulong, c_int).
#[allow(clippy::unnecessary_cast)]
pub(crate) const IOCTL_REQUESTS: &[u64] = &[
    libc::TCGETS as u64,
    libc::TIOCGWINSZ as u64,
    libc::TIOCGPGRP as u64,
    libc::FIONREAD as u64,
    libc::FIONBIO as u64,
    libc::FIOCLEX as u64,
    libc::FIONCLEX as u64,
];

/// The `prctl` options allowed: thread names, and reading (never setting)
/// the process's security state; the installer's parent-death signal and
/// subreaper for hook processes.
pub(crate) const PRCTL_OPTIONS: &[u64] = &[
    libc::PR_SET_NAME as u64,
    libc::PR_GET_NAME as u64,
    libc::PR_GET_DUMPABLE as u64,
    libc::PR_GET_NO_NEW_PRIVS as u64,
    // setting it can only add a restriction (seccompiler sets it before each filter)
    libc::PR_SET_NO_NEW_PRIVS as u64,
    libc::PR_GET_SECCOMP as u64,
    libc::PR_CAPBSET_READ as u64,
    libc::PR_GET_KEEPCAPS as u64,
    libc::PR_GET_SECUREBITS as u64,
    libc::PR_SET_PDEATHSIG as u64,
    libc::PR_GET_PDEATHSIG as u64,
    libc::PR_SET_CHILD_SUBREAPER as u64,
    libc::PR_GET_CHILD_SUBREAPER as u64,
    // glibc ≥ 2.39 names anonymous mappings (PR_SET_VMA)
    0x5356_4d41,
];
