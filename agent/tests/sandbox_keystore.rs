//! The keystores keep working under the main process's sandbox, and their
//! threads are sandboxed too: a child opens a real SoftHSM2 token (PKCS#11
//! module in-process) or a real swtpm TPM (over TCP), applies the main plan
//! — the order the agent uses: open without threads, restrict, then start
//! the workers — and unwraps a JWE-wrapped key. The seccomp allowlist is
//! exercised by the real PKCS#11 module and TPM stack.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod sandbox_common;

use std::io::{BufReader, Write as _};
use std::path::Path;
use std::process::ExitCode;

use custody_agent::keystore::{self, KeyStoreConfig};
use custody_agent::sandbox::proc_status::all_tasks;
use custody_agent::sandbox::{SandboxPlan, apply, tpm_tcti_library_paths};
use sandbox_common::*;

fn main() -> ExitCode {
    if let Ok(case) = std::env::var(CHILD_ENV) {
        return child(&case);
    }
    run_cases(&[
        ("pkcs11_keystore_unwraps_under_the_sandbox", pkcs11),
        ("tpm_keystore_unwraps_under_the_sandbox", tpm),
    ])
}

fn child(case: &str) -> ExitCode {
    let (plan, arg) = child_plan();
    let config = match case {
        "pkcs11" => KeyStoreConfig::Pkcs11(common::pkcs11_config(2048, 2)),
        "tpm" => KeyStoreConfig::Tpm(common::tpm_config(&arg, None)),
        other => panic!("unknown child case {other}"),
    };
    let state = plan.read_write[0].clone();
    // Acquire (no thread), restrict, then start the workers.
    let opened = keystore::open(&config, &state).unwrap();
    apply(&plan).unwrap();
    let ks = opened.start().unwrap();
    let hash = common::jwe_round_trip(ks.as_ref());
    println!("unwrapped={hash:?}");
    println!("READY");
    std::io::stdout().flush().unwrap();
    let mut sink = Vec::new();
    let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    ExitCode::SUCCESS
}

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_tree(&entry.unwrap().path(), uid, gid);
        }
    }
}

/// Runs the child as systemd would start the agent (already the service
/// user, empty bounding set: the keystore's files are then the service
/// user's, as in production), checks every thread (the keystore's workers
/// included) is sandboxed, and that the unwrap worked.
fn run(case: &str, plan: &SandboxPlan, arg: &str, env: &[(&str, std::ffi::OsString)]) {
    let (uid, gid) = test_user();
    let mut cmd = setpriv(true, case, plan, arg);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let r = read_until_ready(&mut out);
    let tasks = all_tasks(child.id()).unwrap();
    let status = finish(child);
    assert!(status.success(), "{case}: {status} {r:?}");
    assert!(!value(&r, "unwrapped").is_empty());
    for (tid, s) in tasks {
        assert!(s.is_sandboxed_as(uid, gid), "thread {tid}: {s:?}");
    }
}

fn pkcs11() {
    let (uid, gid) = test_user();
    let d = dirs();
    let hsm = hsm_sim::SoftHsm::start().unwrap();
    // SoftHSM2 rewrites its token files (token.lock) on login and use.
    chown_tree(hsm.dir(), uid, gid);
    let plan = main_plan(&d, &[]).read_write(hsm.dir());
    let env = [
        ("SOFTHSM2_CONF", hsm.conf().into()),
        ("CUSTODY_TEST_PKCS11_MODULE", hsm.module().into()),
        ("CUSTODY_TEST_PKCS11_TOKEN", hsm.token_label().into()),
        ("CUSTODY_TEST_PKCS11_PIN_FILE", hsm.pin_file().into()),
        ("CUSTODY_TEST_PKCS11_DIR", hsm.dir().into()),
    ];
    run("pkcs11", &plan, "", &env);
}

fn tpm() {
    let d = dirs();
    let tpm = hsm_sim::Swtpm::start().unwrap();
    // The TPM command port and the control port next to it. The TSS loads
    // its TCTI library again for each context the workers create at start.
    let mut plan = main_plan(&d, &[tpm.port(), tpm.port() + 1]);
    for lib in tpm_tcti_library_paths() {
        plan = plan.read(lib);
    }
    run("tpm", &plan, &tpm.tcti(), &[]);
}
