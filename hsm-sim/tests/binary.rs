#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The `hsm-sim` binary prints export lines and tears down on EOF / SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

fn start(kind: &str, dir: &std::path::Path) -> (Child, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hsm-sim"))
        .args([kind, "--dir"])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    loop {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "hsm-sim ended early: {lines:?}"
        );
        if line.starts_with("# ready") {
            break;
        }
        lines.push(line.trim().to_owned());
    }
    (child, lines)
}

fn value<'a>(lines: &'a [String], name: &str) -> &'a str {
    let prefix = format!("export {name}=");
    let line = lines.iter().find(|l| l.starts_with(&prefix)).unwrap();
    line[prefix.len()..].trim_matches('\'')
}

#[test]
fn swtpm_stops_with_its_input_and_kills_swtpm() {
    let d = tempfile::tempdir().unwrap();
    let (mut child, lines) = start("swtpm", d.path());
    assert!(value(&lines, "HSM_SIM_TCTI").starts_with("swtpm:host=127.0.0.1,port="));
    let pid = value(&lines, "HSM_SIM_SWTPM_PID").to_owned();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    drop(child.stdin.take()); // end of input
    assert!(child.wait().unwrap().success());
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z "),
        "swtpm {pid} still alive: {stat}"
    );
}

#[test]
fn softhsm_stops_on_sigterm_and_keeps_its_dir() {
    let d = tempfile::tempdir().unwrap();
    let (mut child, lines) = start("softhsm", d.path());
    let conf = value(&lines, "SOFTHSM2_CONF");
    assert!(std::path::Path::new(conf).exists());
    assert!(std::path::Path::new(value(&lines, "HSM_SIM_PIN_FILE")).exists());
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success());
    assert!(std::path::Path::new(conf).exists(), "--dir is kept");
}
