//! `custody keygen` through the built binary: a 0600 PKCS#8 file that
//! openssl reads, the public half printed as the agent config pins it, and
//! no silent overwrite.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

fn custody(config: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_custody"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn keygen_writes_a_private_pkcs8_key_and_prints_the_pin() {
    let d = tempfile::tempdir().unwrap();
    let config = d.path().join("custody/config.toml");
    let o = custody(&config, &["keygen"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let public = String::from_utf8(o.stdout).unwrap().trim().to_string();
    assert_eq!(public.len(), 64);
    assert!(public.bytes().all(|b| b.is_ascii_hexdigit()));
    let key = d.path().join("custody/publisher.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("publisher_keys"),
        "says where to pin it"
    );

    // openssl reads the same public key out of the file.
    let der = Command::new("openssl")
        .args(["pkey", "-pubout", "-outform", "DER", "-in"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(der.status.success());
    assert_eq!(hex::encode(&der.stdout[der.stdout.len() - 32..]), public);

    // No silent overwrite; --force replaces it with a new key.
    let o = custody(&config, &["keygen"]);
    assert!(!o.status.success());
    let e = String::from_utf8(o.stderr).unwrap();
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");
    assert!(e.contains("already exists"), "{e}");
    let o = custody(&config, &["--json", "keygen", "--force"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_ne!(v["public_key"].as_str().unwrap(), public);
    assert_eq!(v["key_id"].as_str().unwrap().len(), 43);

    // --out elsewhere.
    let other = d.path().join("ci/signing.pem");
    let o = custody(&config, &["keygen", "--out", other.to_str().unwrap()]);
    assert!(o.status.success());
    assert_eq!(
        std::fs::metadata(&other).unwrap().permissions().mode() & 0o777,
        0o600
    );
}
