//! The unprivileged user sandboxed test agents switch to, created when
//! missing. Included (`#[path]`) by `flow_common` and `sandbox_common`;
//! `tests/src/service_user.rs` makes the same user for the end-to-end
//! harness and takes the same lock.

use std::process::Command;

/// The dedicated unprivileged user the tests switch to.
pub const TEST_USER: &str = "custody-test";
/// Serialises creating the test user across test threads and binaries.
pub const USERADD_LOCK: &str = "/tmp/custody-test-useradd.lock";

/// The test user's uid and gid, creating the user when missing.
pub fn test_user() -> (u32, u32) {
    let lookup = || nix::unistd::User::from_name(TEST_USER).unwrap();
    // Concurrent `useradd`s (test threads, test binaries) can each write
    // /etc/passwd and leave the user with another uid than one of them
    // looked up: check and create under one lock.
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(USERADD_LOCK)
        .or_else(|_| std::fs::File::open(USERADD_LOCK))
        .unwrap();
    lock.lock().unwrap();
    if lookup().is_none() {
        let status = Command::new("useradd")
            .args([
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                TEST_USER,
            ])
            .status()
            .expect("running useradd");
        // 9: created meanwhile by a concurrent test binary.
        assert!(
            status.success() || status.code() == Some(9),
            "useradd {TEST_USER}: {status}"
        );
    }
    let user = lookup().expect("the test user exists");
    drop(lock);
    (user.uid.as_raw(), user.gid.as_raw())
}
