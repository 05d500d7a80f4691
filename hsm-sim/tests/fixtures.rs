#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The fixtures stand up real simulators and tear them down.

use std::net::{Ipv4Addr, TcpStream};
use std::process::Command;

use hsm_sim::{SoftHsm, Swtpm};

#[test]
fn softhsm_token_is_initialised_and_listed() {
    let hsm = SoftHsm::start().unwrap();
    let second = hsm.add_token("second-token").unwrap();
    assert_ne!(hsm.token().user_pin, second.user_pin);
    let out = Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", hsm.conf())
        .arg("--show-slots")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(hsm.token_label()), "{text}");
    assert!(text.contains("second-token"), "{text}");
    let pin = std::fs::read_to_string(hsm.pin_file()).unwrap();
    assert_eq!(pin.trim(), hsm.token().user_pin);
    let dir = hsm.dir().to_owned();
    drop(hsm);
    assert!(!dir.exists(), "temporary token dir removed on drop");
}

#[test]
fn softhsm_start_in_reuses_its_token() {
    let d = tempfile::tempdir().unwrap();
    let a = SoftHsm::start_in(d.path()).unwrap();
    let label = a.token_label().to_owned();
    drop(a);
    let b = SoftHsm::start_in(d.path()).unwrap();
    assert_eq!(b.token_label(), label);
}

#[test]
fn swtpm_answers_restarts_on_same_state_and_dies_on_drop() {
    let mut tpm = Swtpm::start().unwrap();
    let out = Command::new("tpm2_getrandom")
        .env("TPM2TOOLS_TCTI", tpm.tcti())
        .args(["--hex", "8"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout.len(), 16);

    let state = tpm.state_dir().to_owned();
    tpm.restart().unwrap();
    assert_eq!(tpm.state_dir(), state);
    assert!(tpm.is_running());
    let out = Command::new("tpm2_getrandom")
        .env("TPM2TOOLS_TCTI", tpm.tcti())
        .args(["--hex", "8"])
        .output()
        .unwrap();
    assert!(out.status.success());

    let port = tpm.port();
    drop(tpm);
    assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err());
    assert!(!state.exists());
}

#[test]
fn two_swtpms_run_side_by_side() {
    let a = Swtpm::start().unwrap();
    let b = Swtpm::start().unwrap();
    assert_ne!(a.port(), b.port());
}
