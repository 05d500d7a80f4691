#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `custody-agent init | pubkey | selftest` as processes, against the soft
//! keystore, a real SoftHSM2 token and a real swtpm; bad inputs give one
//! line on stderr.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use custody_envelope::OaepHash;
use custody_envelope::jwe::{self, Binding, Purpose};
use hsm_sim::{SoftHsm, Swtpm};
use rsa::pkcs8::DecodePublicKey;

fn agent(config: &Path, args: &[&str], env: &[(&str, std::ffi::OsString)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_custody-agent"));
    cmd.args(args).arg("--config").arg(config);
    // libtss2 logs to stderr on its own; keep the agent's own line visible.
    cmd.env("TSS2_LOG", "all+NONE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Asserts failure with exactly one stderr line from the agent containing `want`.
fn one_line_error(out: &Output, want: &str) {
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("custody-agent: "))
        .collect();
    assert_eq!(ours.len(), 1, "stderr: {stderr}");
    // Besides our line, only the soft keystore's start-up warning.
    let others: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("custody-agent: ") && !l.contains("keystore kind \"soft\""))
        .collect();
    assert!(others.is_empty(), "unexpected stderr lines: {others:?}");
    assert!(ours[0].contains(want), "{want:?} not in {:?}", ours[0]);
}

fn write_config(dir: &Path, keystore: &str) -> PathBuf {
    let path = dir.join("agent.toml");
    std::fs::write(
        &path,
        format!(
            "[keystore]\n{keystore}\n[state]\ndir = \"{}\"\n[log]\nlevel = \"warn\"\n",
            dir.join("state").display()
        ),
    )
    .unwrap();
    path
}

/// init, pubkey and selftest agree with each other; returns the public key.
fn check_commands(
    config: &Path,
    env: &[(&str, std::ffi::OsString)],
    alg: &str,
) -> rsa::RsaPublicKey {
    let init = ok(&agent(config, &["init"], env));
    let pem = ok(&agent(config, &["pubkey"], env));
    let public = rsa::RsaPublicKey::from_public_key_pem(&pem).unwrap();
    let thumb = jwe::thumbprint(&public);
    assert!(init.starts_with(&format!("key {thumb} rsa-")), "{init}");
    assert!(init.contains(&format!("oaep={alg}")), "{init}");
    let selftest = ok(&agent(config, &["selftest"], env));
    assert_eq!(selftest.lines().count(), 1);
    assert!(selftest.starts_with("selftest OK: "), "{selftest}");
    assert!(
        selftest.contains(&thumb) && selftest.contains(alg),
        "{selftest}"
    );
    // init again: the same key, not a new one.
    assert_eq!(ok(&agent(config, &["init"], env)), init);
    public
}

fn binding() -> Binding {
    Binding {
        purpose: Purpose::ReleaseKey,
        account: "acme".to_owned(),
        app: Some("web".to_owned()),
        release: Some("r1".to_owned()),
        deployment: None,
        name: None,
        environment: None,
    }
}

/// Replaces the encrypted-key part of a compact JWE.
fn splice_ek(jwe: &str, ek_from: &str) -> String {
    let mut a: Vec<&str> = jwe.split('.').collect();
    let b: Vec<&str> = ek_from.split('.').collect();
    a[1] = b[1];
    a.join(".")
}

#[test]
fn soft_commands_and_bad_ciphertexts() {
    let d = tempfile::tempdir().unwrap();
    let config = write_config(d.path(), "kind = \"soft\"\nkey_bits = 2048");
    let public = check_commands(&config, &[], "RSA-OAEP-256");
    let key_file = d.path().join("state/soft-key.pem");
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // A JWE wrapped to us opens through the keystore.
    let good = jwe::wrap(&public, OaepHash::Sha256, &binding(), &[1u8; 32]).unwrap();
    let file = d.path().join("good.jwe");
    std::fs::write(&file, &good).unwrap();
    let out = ok(&agent(
        &config,
        &["selftest", "--jwe", file.to_str().unwrap()],
        &[],
    ));
    assert!(out.contains("opened a RSA-OAEP-256 JWE"), "{out}");

    // Garbage in the encrypted key: the one unwrap error.
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let junk = vec![0x41u8; 256];
    parts[1] = base64_url(&junk);
    std::fs::write(&file, parts.join(".")).unwrap();
    let out = agent(&config, &["selftest", "--jwe", file.to_str().unwrap()], &[]);
    one_line_error(&out, "keystore: unwrap failed");

    // Wrapped to another key: refused by kid before the keystore is asked …
    let other = rsa::RsaPrivateKey::new(&mut custody_agent::rng::OsRng, 2048)
        .unwrap()
        .to_public_key();
    let foreign = jwe::wrap(&other, OaepHash::Sha256, &binding(), &[1u8; 32]).unwrap();
    std::fs::write(&file, &foreign).unwrap();
    let out = agent(&config, &["selftest", "--jwe", file.to_str().unwrap()], &[]);
    one_line_error(&out, "envelope was refused");
    // … and with our kid but the other key's ciphertext: the one unwrap error.
    std::fs::write(&file, splice_ek(&good, &foreign)).unwrap();
    let out = agent(&config, &["selftest", "--jwe", file.to_str().unwrap()], &[]);
    one_line_error(&out, "keystore: unwrap failed");
}

fn base64_url(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &x)| acc | (u32::from(x) << (16 - 8 * i)));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[test]
fn pkcs11_commands_and_bad_inputs() {
    let hsm = SoftHsm::start().unwrap();
    let d = tempfile::tempdir().unwrap();
    let ks = |label: &str, pin: &Path, module: &Path| {
        format!(
            "kind = \"pkcs11\"\nmodule = \"{}\"\ntoken_label = \"{label}\"\npin = {{ file = \"{}\" }}\nsessions = 2",
            module.display(),
            pin.display()
        )
    };
    let env = hsm.env();
    // Default key size (RSA-3072) here; SoftHSM2 offers OAEP with SHA-1 only.
    let config = write_config(
        d.path(),
        &ks(hsm.token_label(), hsm.pin_file(), hsm.module()),
    );
    check_commands(&config, &env, "RSA-OAEP");

    let wrong_pin = d.path().join("wrong.pin");
    std::fs::write(&wrong_pin, "0000\n").unwrap();
    std::fs::set_permissions(&wrong_pin, std::fs::Permissions::from_mode(0o600)).unwrap();
    let bad = write_config(d.path(), &ks(hsm.token_label(), &wrong_pin, hsm.module()));
    one_line_error(&agent(&bad, &["selftest"], &env), "refused the PIN");

    let bad = write_config(d.path(), &ks("no-such-token", hsm.pin_file(), hsm.module()));
    one_line_error(
        &agent(&bad, &["selftest"], &env),
        "no PKCS#11 token labelled \"no-such-token\"",
    );

    let bad = write_config(
        d.path(),
        &ks(
            hsm.token_label(),
            hsm.pin_file(),
            Path::new("/nonexistent/libp11.so"),
        ),
    );
    one_line_error(
        &agent(&bad, &["selftest"], &env),
        "cannot load PKCS#11 module /nonexistent/libp11.so",
    );

    // Still fine afterwards: the wrong PIN did not lock the token.
    let config = write_config(
        d.path(),
        &ks(hsm.token_label(), hsm.pin_file(), hsm.module()),
    );
    ok(&agent(&config, &["selftest"], &env));
}

#[test]
fn tpm_commands_and_tpm_not_running() {
    let mut tpm = Swtpm::start().unwrap();
    let d = tempfile::tempdir().unwrap();
    let config = write_config(
        d.path(),
        &format!("kind = \"tpm\"\ntcti = \"{}\"\nkey_bits = 2048", tpm.tcti()),
    );
    check_commands(&config, &[], "RSA-OAEP-256");

    tpm.stop();
    let out = agent(&config, &["selftest"], &[]);
    one_line_error(&out, "cannot reach the TPM");
}

#[test]
fn bad_config_is_one_line() {
    let d = tempfile::tempdir().unwrap();
    let config = write_config(d.path(), "kind = \"soft\"\nkey_bits = 1024");
    one_line_error(
        &agent(&config, &["init"], &[]),
        "configuration: keystore.key_bits must be 2048 or 3072",
    );
    let missing = d.path().join("nope.toml");
    one_line_error(&agent(&missing, &["init"], &[]), "cannot read config file");
}
