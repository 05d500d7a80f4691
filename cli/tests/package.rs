//! `custody package …` through the built binary: round trip, inspect, and
//! refusals (wrong key, tampered, truncated) that leave no output behind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn custody(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_custody"))
        .args(args)
        .env_remove("CUSTODY_CONFIG")
        .output()
        .unwrap()
}

fn os<P: AsRef<std::ffi::OsStr> + ?Sized>(p: &P) -> &std::ffi::OsStr {
    p.as_ref()
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("key.raw"), [0x42u8; 32]).unwrap();
        std::fs::write(dir.path().join("key.hex"), format!("{}\n", "42".repeat(32))).unwrap();
        std::fs::write(dir.path().join("other.hex"), "43".repeat(32)).unwrap();
        let plain: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(dir.path().join("app.tar"), plain).unwrap();
        Fixture { dir }
    }
    fn p(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn encrypt(&self) -> PathBuf {
        let out = custody(&[
            os("package"),
            os("encrypt"),
            os("--key-file"),
            os(&self.p("key.raw")),
            os("--account"),
            os("acme"),
            os("--app"),
            os("web"),
            os("--release"),
            os("r-7"),
            os(&self.p("app.tar")),
            os(&self.p("app.pkg")),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.p("app.pkg")
    }
    fn decrypt(&self, key: &str, pkg: &Path, dest: &str) -> Output {
        custody(&[
            os("package"),
            os("decrypt"),
            os("--key-file"),
            os(&self.p(key)),
            os("--threads"),
            os("2"),
            os(pkg),
            os(&self.p(dest)),
        ])
    }
    /// Names in the directory other than the fixture's own files.
    fn leftovers(&self) -> Vec<String> {
        let fixed = [
            "key.raw",
            "key.hex",
            "other.hex",
            "app.tar",
            "app.pkg",
            "bad.pkg",
        ];
        std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !fixed.contains(&n.as_str()))
            .collect()
    }
}

fn assert_refused(out: &Output, fx: &Fixture, needle: &str) {
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "one-line error: {err}");
    assert!(err.contains(needle), "{err}");
    assert!(
        fx.leftovers().is_empty(),
        "left behind: {:?}",
        fx.leftovers()
    );
}

#[test]
fn round_trip_and_inspect() {
    let fx = Fixture::new();
    let pkg = fx.encrypt();
    let out = fx.decrypt("key.hex", &pkg, "out.tar");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(fx.p("out.tar")).unwrap(),
        std::fs::read(fx.p("app.tar")).unwrap()
    );
    let out = custody(&[os("package"), os("inspect"), os(&pkg)]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"v":1,"alg":"cobblestone-256","account":"acme","app":"web","release":"r-7"})
    );
}

#[test]
fn wrong_key_leaves_nothing() {
    let fx = Fixture::new();
    let pkg = fx.encrypt();
    let out = fx.decrypt("other.hex", &pkg, "out.tar");
    assert_refused(&out, &fx, "key commitment mismatch");
}

#[test]
fn tampered_and_truncated_leave_nothing() {
    let fx = Fixture::new();
    let pkg = fx.encrypt();
    let mut bytes = std::fs::read(&pkg).unwrap();
    let n = bytes.len();
    bytes[n - 100] ^= 0x04;
    std::fs::write(fx.p("bad.pkg"), &bytes).unwrap();
    let out = fx.decrypt("key.raw", &fx.p("bad.pkg"), "out.tar");
    assert_refused(&out, &fx, "failed authentication");

    bytes[n - 100] ^= 0x04;
    std::fs::write(fx.p("bad.pkg"), &bytes[..n - 1000]).unwrap();
    let out = fx.decrypt("key.raw", &fx.p("bad.pkg"), "out.tar");
    assert!(!out.status.success());
    assert!(fx.leftovers().is_empty());

    std::fs::write(fx.p("bad.pkg"), b"not a package at all").unwrap();
    let out = fx.decrypt("key.raw", &fx.p("bad.pkg"), "out.tar");
    assert_refused(&out, &fx, "not a Custody package");
}

#[test]
fn bad_key_file_and_binding() {
    let fx = Fixture::new();
    std::fs::write(fx.p("bad.pkg"), b"short").unwrap();
    let out = custody(&[
        os("package"),
        os("encrypt"),
        os("--key-file"),
        os(&fx.p("bad.pkg")),
        os("--account"),
        os("a"),
        os("--app"),
        os("b"),
        os("--release"),
        os("c"),
        os(&fx.p("app.tar")),
        os(&fx.p("out.pkg")),
    ]);
    assert_refused(&out, &fx, "32 raw bytes or 64 hex characters");
    let out = custody(&[
        os("package"),
        os("encrypt"),
        os("--key-file"),
        os(&fx.p("key.raw")),
        os("--account"),
        os("a\nb"),
        os("--app"),
        os("b"),
        os("--release"),
        os("c"),
        os(&fx.p("app.tar")),
        os(&fx.p("out.pkg")),
    ]);
    assert_refused(&out, &fx, "account");
}
