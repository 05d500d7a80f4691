//! Hooks run by the real, sandboxed installer child: environment limited
//! to what the manifest names, output streamed with every secret replaced
//! by `***` (also across pipe-read boundaries and in over-long lines),
//! time limits that kill the whole process group, failure semantics of
//! `pre_install` (nothing moves) and `post_install` (files stay, report
//! failed), and the `securekeys` example installed end to end. Runs as
//! root (it switches users) and skips otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod installer_common;
mod sandbox_common;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use custody_agent::installer::{
    HookKind, HookStatus, InstallOutcome, InstallerError, LogStream, MASK, child_main,
};
use custody_envelope::manifest::{MANIFEST_NAME, Manifest, list_files};
use installer_common::*;

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("installer") {
        return child_main();
    }
    run_cases(&[
        ("hook_env_and_redaction", env_and_redaction),
        ("hook_timeout_kills_the_process_group", timeouts),
        ("failed_hooks", failed_hooks),
        ("securekeys_example_installs_the_stage_secret", securekeys),
    ])
}

const API_TOKEN: &str = "tok-3f9a-NOT-A-REAL-SECRET-77c1";
const PEM: &str =
    "-----BEGIN FAKE KEY-----\nZmFrZS1rZXktbGluZS0x\nZmFrZS1rZXktbGluZS0y\n-----END FAKE KEY-----";

fn hook(kind: &str, script: &str, extra: &str) -> String {
    format!(
        "[hooks.{kind}]\ncommand = [\"/bin/sh\", \"-c\", {}]\n{extra}",
        toml_str(script)
    )
}

fn toml_str(s: &str) -> String {
    let v = toml::Value::String(s.to_owned());
    v.to_string()
}

fn env_and_redaction() {
    let d = dirs();
    let h = spawn(&settings(&d));
    let dest = d.root.join("app");
    // A long line whose secret starts 3 bytes before the 8 KiB line cap; a
    // secret written at stream offset 8181, across the installer's 8 KiB
    // pipe reads; a PEM key spanning lines.
    let script = format!(
        r#"echo "token=$API_TOKEN"
echo "on stderr $API_TOKEN" >&2
printf '%8189s' '' | tr ' ' a; printf '%s tail\n' "$API_TOKEN"
B=$(printf '%5000s' '' | tr ' ' b); C=$(printf '%3180s' '' | tr ' ' c); printf '%s\n%s%s end\n' "$B" "$C" "$API_TOKEN"
printf '%s\n' "$PEM_KEY"
echo "plain=$PLAIN"
echo "unnamed=${{UNNAMED:-unset}}"
echo "path=$PATH"
echo "home=$HOME"
echo "dest=$CUSTODY_DESTINATION"
echo "hook=$CUSTODY_HOOK"
echo "pwd=$(pwd)"
echo x > {}/escaped 2>/dev/null && echo escaped=yes || echo escaped=no
"#,
        d.outside.display()
    );
    let m = manifest(
        &dest,
        "\"**\"",
        &format!(
            "env = [\"API_TOKEN\", \"PEM_KEY\", \"PLAIN\"]\n{}",
            hook("post_install", &script, "working_dir = \"sub\"\n")
        ),
    );
    let tar = Tar::new().manifest(&m).file("sub/f", b"x").finish();
    let vars = vec![
        var("API_TOKEN", API_TOKEN, true),
        var("PEM_KEY", PEM, true),
        var("PLAIN", "visible-value", false),
        var("UNNAMED", "not-for-hooks", false),
    ];
    let (r, lines) = install(&h, &d, "dep-env", &tar, vars);
    let report = r.unwrap();
    assert!(report.succeeded(), "{report:?} {lines:?}");
    assert_eq!(report.hooks.len(), 1);
    assert_eq!(report.hooks[0].hook, HookKind::PostInstall);
    assert_eq!(report.hooks[0].status, HookStatus::Exited(0));

    let all: Vec<&str> = lines.iter().map(|l| l.line.as_str()).collect();
    for l in &all {
        for fragment in [
            API_TOKEN,
            "ZmFrZS1rZXktbGluZS0x",
            "ZmFrZS1rZXktbGluZS0y",
            "3f9a",
        ] {
            assert!(!l.contains(fragment), "a secret leaked: {l:.200}");
        }
    }
    let out = stream(&lines, LogStream::Stdout);
    let err = stream(&lines, LogStream::Stderr);
    assert!(out.contains(&format!("token={MASK}").as_str()), "{out:?}");
    assert!(
        err.contains(&format!("on stderr {MASK}").as_str()),
        "{err:?}"
    );
    let long = out.iter().find(|l| l.starts_with("aaaa")).unwrap();
    // Cut at the cap, but after the whole secret: no fragment survives.
    assert_eq!(
        *long,
        format!("{}{MASK} [line truncated]", "a".repeat(8189))
    );
    // In one 8 KiB pipe read the secret starts 11 bytes before its end.
    assert!(out.contains(&"b".repeat(5000).as_str()));
    assert!(out.contains(&format!("{}{MASK} end", "c".repeat(3180)).as_str()));
    assert_eq!(
        out.iter().filter(|l| **l == MASK).count(),
        4,
        "each line of the multi-line secret is hidden: {out:?}"
    );
    assert!(out.contains(&"plain=visible-value"));
    assert!(
        out.contains(&"unnamed=unset"),
        "variables the manifest does not name are not passed"
    );
    assert!(out.contains(&"path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
    assert!(out.contains(&"home=/nonexistent"));
    assert!(out.contains(&format!("dest={}", dest.display()).as_str()));
    assert!(out.contains(&"hook=post_install"));
    assert!(out.contains(&format!("pwd={}", dest.join("sub").display()).as_str()));
    if custody_agent::sandbox::kernel_abi().unwrap_or(0) >= 1 {
        assert!(out.contains(&"escaped=no"), "hooks are confined: {out:?}");
        assert!(!d.outside.join("escaped").exists());
    }
}

fn timeouts() {
    let d = dirs();
    let h = spawn(&settings(&d));
    let dest = d.root.join("app");
    let pidfile = dest.join("bg.pid");
    // post_install starts a background sleeper in its process group, then
    // blocks: the time limit must kill both.
    let script = format!(
        "sleep 600 & echo $! > {}; echo started; sleep 600",
        pidfile.display()
    );
    let m = manifest(
        &dest,
        "\"**\"",
        &hook("post_install", &script, "timeout_secs = 1\n"),
    );
    let tar = Tar::new().manifest(&m).file("f", b"x").finish();
    let started = std::time::Instant::now();
    let (r, lines) = install(&h, &d, "dep-timeout", &tar, vec![]);
    let report = r.unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(report.outcome, InstallOutcome::PostInstallFailed);
    assert!(!report.succeeded());
    assert_eq!(report.hooks[0].status, HookStatus::TimedOut);
    assert!(stream(&lines, LogStream::Stdout).contains(&"started"));
    let bg: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        gone(bg),
        "the background process of the hook's group was killed"
    );
    assert!(
        dest.join("f").exists(),
        "post_install failure leaves the files"
    );

    // pre_install over its limit: nothing moves.
    let dest2 = d.root.join("app2");
    let m = manifest(
        &dest2,
        "\"**\"",
        &hook("pre_install", "sleep 600", "timeout_secs = 1\n"),
    );
    let tar = Tar::new().manifest(&m).file("f", b"x").finish();
    let (r, _) = install(&h, &d, "dep-timeout-pre", &tar, vec![]);
    assert!(
        matches!(
            r,
            Err(InstallerError::HookTimedOut {
                hook: HookKind::PreInstall,
                seconds: 1
            })
        ),
        "{r:?}"
    );
    assert!(!dest2.exists());
    assert_eq!(names(&d.root), ["app"]);
}

/// Whether process `pid` has ended (absent, or a zombie not yet reaped
/// by its parent).
fn gone(pid: u32) -> bool {
    for _ in 0..100 {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(s)
                if s.rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z')) =>
            {
                return true;
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    false
}

fn failed_hooks() {
    let d = dirs();
    let h = spawn(&settings(&d));
    let dest = d.root.join("app");
    let v1 = Tar::new()
        .manifest(&manifest(&dest, "\"**\"", ""))
        .file("version", b"1\n")
        .finish();
    install(&h, &d, "v1", &v1, vec![]).0.unwrap();

    // A failing pre_install: refused, the previous version stays.
    let v2 = Tar::new()
        .manifest(&manifest(
            &dest,
            "\"**\"",
            &hook(
                "pre_install",
                "test -f version && echo checking; exit 3",
                "",
            ),
        ))
        .file("version", b"2\n")
        .finish();
    let (r, lines) = install(&h, &d, "v2", &v2, vec![]);
    assert!(
        matches!(
            r,
            Err(InstallerError::HookFailed {
                hook: HookKind::PreInstall,
                status: HookStatus::Exited(3)
            })
        ),
        "{r:?}"
    );
    assert!(
        stream(&lines, LogStream::Stdout).contains(&"checking"),
        "pre_install runs in the new release"
    );
    assert_eq!(std::fs::read(dest.join("version")).unwrap(), b"1\n");
    assert_eq!(names(&d.root), ["app"]);

    // A pre_install that cannot start: refused too.
    let v3 = Tar::new()
        .manifest(&manifest(
            &dest,
            "\"**\"",
            "[hooks.pre_install]\ncommand = [\"/nonexistent/program\"]\n",
        ))
        .file("version", b"3\n")
        .finish();
    let (r, _) = install(&h, &d, "v3", &v3, vec![]);
    assert!(
        matches!(
            r,
            Err(InstallerError::HookSpawn {
                hook: HookKind::PreInstall,
                ..
            })
        ),
        "{r:?}"
    );
    assert_eq!(std::fs::read(dest.join("version")).unwrap(), b"1\n");

    // A failing post_install: files in place, report failed.
    let v4 = Tar::new()
        .manifest(&manifest(
            &dest,
            "\"**\"",
            &hook("post_install", "echo restarting >&2; exit 1", ""),
        ))
        .file("version", b"4\n")
        .finish();
    let (r, lines) = install(&h, &d, "v4", &v4, vec![]);
    let report = r.unwrap();
    assert_eq!(report.outcome, InstallOutcome::PostInstallFailed);
    assert_eq!(report.hooks[0].status, HookStatus::Exited(1));
    assert!(report.replaced_previous);
    assert_eq!(std::fs::read(dest.join("version")).unwrap(), b"4\n");
    assert!(stream(&lines, LogStream::Stderr).contains(&"restarting"));
    assert!(
        stream(&lines, LogStream::Installer)
            .iter()
            .any(|l| l.contains("post_install failed"))
    );

    // A post_install that cannot start: files in place, report failed.
    let v5 = Tar::new()
        .manifest(&manifest(
            &dest,
            "\"**\"",
            "[hooks.post_install]\ncommand = [\"no-such-program-here\"]\n",
        ))
        .file("version", b"5\n")
        .finish();
    let report = install(&h, &d, "v5", &v5, vec![]).0.unwrap();
    assert_eq!(report.outcome, InstallOutcome::PostInstallFailed);
    assert_eq!(report.hooks[0].status, HookStatus::NotStarted);
    assert_eq!(std::fs::read(dest.join("version")).unwrap(), b"5\n");
}

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/securekeys")
}

/// Builds the package tar as `custody push` does: the manifest first, then
/// the files `list_files` picks, in its order.
fn package(dir: &Path, dest: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(dir.join(MANIFEST_NAME)).unwrap();
    // Point the example at this test's install root.
    let text = text.replace("/srv/app/securekeys", dest.to_str().unwrap());
    let m = Manifest::from_bytes(text.as_bytes()).unwrap();
    let mut tar = Tar::new().manifest(&text);
    for f in list_files(dir, &m).unwrap() {
        tar = tar.file(&f, &std::fs::read(dir.join(&f)).unwrap());
    }
    tar.finish()
}

fn securekeys() {
    let dir = example_dir();
    for stage in ["dev", "stage", "prod"] {
        let d = dirs();
        let h = spawn(&settings(&d));
        let dest = d.root.join("securekeys");
        let tar = package(&dir, &dest);
        let (r, lines) = install(&h, &d, stage, &tar, vec![var("STAGE", stage, false)]);
        let report = r.unwrap_or_else(|e| panic!("{stage}: {e}"));
        assert!(report.succeeded(), "{stage}: {report:?} {lines:?}");
        let want = std::fs::read(dir.join(format!("secret.cred.{stage}"))).unwrap();
        assert_eq!(std::fs::read(dest.join("secret.cred")).unwrap(), want);
        assert_eq!(mode(&dest.join("secret.cred")), 0o600);
        for s in ["dev", "stage", "prod"] {
            assert_eq!(mode(&dest.join(format!("secret.cred.{s}"))), 0o600);
        }
        assert_eq!(mode(&dest.join("README.md")), 0o644);
    }
    // An unknown stage fails post_install.
    let d = dirs();
    let h = spawn(&settings(&d));
    let dest = d.root.join("securekeys");
    let tar = package(&dir, &dest);
    let (r, _) = install(&h, &d, "x", &tar, vec![var("STAGE", "../etc", false)]);
    assert_eq!(r.unwrap().outcome, InstallOutcome::PostInstallFailed);
    assert!(!dest.join("secret.cred").exists());
}
