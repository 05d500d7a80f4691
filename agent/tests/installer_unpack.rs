//! The installer child, for real: started by `InstallerHandle::spawn` (this
//! binary re-executed as `… installer`), sandboxed as the `custody-test`
//! user, fed crafted package tars. Every malicious package is refused with
//! its own error variant and leaves nothing behind: no destination, no
//! temporary directory in the install root, nothing outside, no plaintext
//! in staging. Runs as root (it switches users) and skips otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod installer_common;
mod sandbox_common;

use std::os::unix::fs::MetadataExt as _;
use std::process::ExitCode;

use custody_agent::installer::{InstallOutcome, InstallerError, LogStream, child_main};
use custody_agent::sandbox::proc_status::TaskStatus;
use installer_common::*;
use tar::EntryType;

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("installer") {
        return child_main();
    }
    run_cases(&[
        ("happy_path_installs_bytes_and_modes", happy_path),
        ("reinstall_replaces_the_previous_version", reinstall),
        (
            "malicious_packages_are_refused_each_with_its_variant",
            refusals,
        ),
        ("caps_stop_a_bomb", caps),
        (
            "destination_outside_the_roots_or_through_a_symlink",
            destinations,
        ),
        ("the_child_is_sandboxed_and_stops_on_eof", child_sandboxed),
    ])
}

const SECRET_RULES: &str = "[[files]]\npattern = \"secret.*\"\nsecret = true\n\
                            [[files]]\npattern = \"bin/*\"\nmode = \"0750\"\n";

fn happy_path() {
    let d = dirs();
    let (uid, _) = test_user();
    let h = spawn(&settings(&d));
    let dest = d.root.join("apps/web");
    let long_dir = "d".repeat(120);
    let long_path = format!("docs/{long_dir}/readme.md");
    let tar = Tar::new()
        .manifest(&manifest(
            &dest,
            "\"secret.*\", \"bin/*\", \"docs/**\", \"index.html\"",
            SECRET_RULES,
        ))
        .dir("bin")
        .file("bin/run", b"#!/bin/sh\necho run\n")
        .file("index.html", b"<h1>hello</h1>\n")
        .file("secret.key", b"fake-secret-not-real\n")
        .long_name(long_path.as_bytes())
        .file("ignored-short-name", b"long name via GNU L\n")
        .pax(&[("path", b"docs/pax-name.txt"), ("mtime", b"0")])
        .file("ignored-too", b"path via PAX\n")
        .finish();
    let (r, lines) = install(&h, &d, "dep-1", &tar, vec![]);
    let report = r.unwrap_or_else(|e| panic!("install failed: {e}; log {lines:?}"));
    assert!(report.succeeded());
    assert_eq!(report.outcome, InstallOutcome::Installed);
    assert_eq!(report.destination, dest);
    assert_eq!(report.files, 5);
    assert!(!report.replaced_previous);

    let read = |p: &str| std::fs::read(dest.join(p)).unwrap();
    assert_eq!(read("bin/run"), b"#!/bin/sh\necho run\n");
    assert_eq!(read("index.html"), b"<h1>hello</h1>\n");
    assert_eq!(read("secret.key"), b"fake-secret-not-real\n");
    assert_eq!(read(&long_path), b"long name via GNU L\n");
    assert_eq!(read("docs/pax-name.txt"), b"path via PAX\n");
    assert!(!dest.join("ignored-short-name").exists());
    assert!(
        !dest.join("custody.toml").exists(),
        "the manifest is not installed"
    );

    assert_eq!(mode(&dest.join("secret.key")), 0o600);
    assert_eq!(mode(&dest.join("bin/run")), 0o750);
    assert_eq!(mode(&dest.join("index.html")), 0o644);
    assert_eq!(mode(&dest), 0o755);
    assert_eq!(mode(&dest.join("docs")), 0o755);
    assert_eq!(mode(&d.root.join("apps")), 0o755, "parents get dir_mode");
    for p in ["secret.key", "bin/run", "index.html"] {
        let owner = std::fs::metadata(dest.join(p)).unwrap().uid();
        assert_eq!(owner, uid, "{p} belongs to the service user");
    }
    assert_eq!(names(&d.root), ["apps"], "no temporary directory left");
    assert!(names(&d.staging).is_empty());
    assert!(
        stream(&lines, LogStream::Installer)
            .iter()
            .any(|l| l.contains("unpacked 5 files"))
    );
}

fn reinstall() {
    let d = dirs();
    let h = spawn(&settings(&d));
    let dest = d.root.join("app");
    let v1 = Tar::new()
        .manifest(&manifest(&dest, "\"**\"", ""))
        .file("old-only", b"v1\n")
        .file("shared", b"v1\n")
        .finish();
    let v2 = Tar::new()
        .manifest(&manifest(&dest, "\"**\"", ""))
        .file("shared", b"v2\n")
        .file("new-only", b"v2\n")
        .finish();
    install(&h, &d, "v1", &v1, vec![]).0.unwrap();
    let inode_before = std::fs::metadata(&dest).unwrap().ino();
    let report = install(&h, &d, "v2", &v2, vec![]).0.unwrap();
    assert!(report.replaced_previous);
    assert_eq!(names(&dest), ["new-only", "shared"]);
    assert_eq!(std::fs::read(dest.join("shared")).unwrap(), b"v2\n");
    assert_ne!(
        std::fs::metadata(&dest).unwrap().ino(),
        inode_before,
        "a new tree was swapped in, not the old one rewritten"
    );
    assert_eq!(names(&d.root), ["app"], "the previous version is removed");
}

/// Asserts nothing is left: no destination, nothing new in the root or
/// outside, staging empty.
fn nothing_left(d: &Dirs, case: &str, root_before: &[String]) {
    assert_eq!(names(&d.root), root_before, "{case}: install root changed");
    assert!(names(&d.outside).is_empty(), "{case}: wrote outside");
    assert!(
        names(&d.staging).is_empty(),
        "{case}: plaintext left in staging"
    );
}

type Check = fn(&InstallerError) -> bool;

fn refusals() {
    let d = dirs();
    let h = spawn(&settings(&d));
    let dest = d.root.join("app");
    let m = manifest(&dest, "\"**\"", "");
    let start = || {
        Tar::new()
            .manifest(&m)
            .file("good", b"written before the bad entry\n")
    };
    let outside_abs = d.outside.join("evil");
    let outside_abs = outside_abs.to_str().unwrap().as_bytes().to_vec();
    let long_escape = format!("{}/../../../outside/evil", "a".repeat(150));
    let cases: Vec<(&str, Vec<u8>, Check)> = vec![
        (
            "dotdot",
            start().file("../outside/evil", b"x").finish(),
            |e| matches!(e, InstallerError::ParentDir { entry } if entry == "../outside/evil"),
        ),
        (
            "absolute",
            start()
                .raw(&outside_abs, EntryType::Regular, 0o644, b"x", b"", None)
                .finish(),
            |e| matches!(e, InstallerError::AbsolutePath { .. }),
        ),
        (
            "escaping symlink",
            start()
                .raw(
                    b"link",
                    EntryType::Symlink,
                    0o777,
                    b"",
                    b"../../outside",
                    None,
                )
                .finish(),
            |e| matches!(e, InstallerError::Link { entry, kind } if entry == "link" && kind == "symlink"),
        ),
        (
            "hard link",
            start()
                .raw(b"hard", EntryType::Link, 0o644, b"", b"good", None)
                .finish(),
            |e| matches!(e, InstallerError::Link { kind, .. } if kind == "hard link"),
        ),
        (
            "character device (mknod)",
            start()
                .raw(b"null", EntryType::Char, 0o666, b"", b"", None)
                .finish(),
            |e| matches!(e, InstallerError::DeviceFile { kind, .. } if kind == "character device"),
        ),
        (
            "block device",
            start()
                .raw(b"disk", EntryType::Block, 0o660, b"", b"", None)
                .finish(),
            |e| matches!(e, InstallerError::DeviceFile { kind, .. } if kind == "block device"),
        ),
        (
            "fifo",
            start()
                .raw(b"pipe", EntryType::Fifo, 0o644, b"", b"", None)
                .finish(),
            |e| matches!(e, InstallerError::DeviceFile { kind, .. } if kind == "fifo"),
        ),
        (
            "setuid file",
            start()
                .raw(b"suid", EntryType::Regular, 0o4755, b"x", b"", None)
                .finish(),
            |e| matches!(e, InstallerError::SetIdBit { mode: 0o4755, .. }),
        ),
        (
            "setgid directory",
            start()
                .raw(b"sgid/", EntryType::Directory, 0o2755, b"", b"", None)
                .finish(),
            |e| matches!(e, InstallerError::SetIdBit { .. }),
        ),
        (
            "duplicate",
            start().file("good", b"again").finish(),
            |e| matches!(e, InstallerError::Duplicate { entry } if entry == "good"),
        ),
        (
            "file below a file",
            start().file("good/inner", b"x").finish(),
            |e| matches!(e, InstallerError::Duplicate { .. }),
        ),
        (
            "GNU long name escaping",
            start()
                .long_name(long_escape.as_bytes())
                .file("short", b"x")
                .finish(),
            |e| matches!(e, InstallerError::ParentDir { entry } if entry.len() > 100),
        ),
        (
            "PAX absolute path",
            start()
                .pax(&[("path", outside_abs.as_slice())])
                .file("short", b"x")
                .finish(),
            |e| matches!(e, InstallerError::AbsolutePath { .. }),
        ),
        (
            "PAX size disagreeing with the header",
            start()
                .pax(&[("size", b"1")])
                .file("short", b"xyz")
                .finish(),
            |e| matches!(e, InstallerError::Malformed { .. }),
        ),
        (
            "PAX xattr",
            start()
                .pax(&[("SCHILY.xattr.security.capability", b"x")])
                .file("short", b"x")
                .finish(),
            |e| matches!(e, InstallerError::UnsupportedEntry { .. }),
        ),
        (
            "no manifest first",
            Tar::new().file("good", b"x").manifest(&m).finish(),
            |e| matches!(e, InstallerError::ManifestMissing),
        ),
        (
            "manifest refused",
            Tar::new()
                .manifest(&manifest(&dest, "\"**\"", "file_mode = \"4755\"\n"))
                .finish(),
            |e| matches!(e, InstallerError::Manifest(_)),
        ),
        (
            "not selected by the manifest",
            Tar::new()
                .manifest(&manifest(&dest, "\"*.txt\"", ""))
                .file("a.txt", b"x")
                .file("b.sh", b"x")
                .finish(),
            |e| matches!(e, InstallerError::NotInManifest { entry } if entry == "b.sh"),
        ),
        (
            "truncated data",
            {
                let mut t = start()
                    .raw(b"short", EntryType::Regular, 0o644, b"abc", b"", Some(4096))
                    .finish();
                t.truncate(t.len() - 1024 - 512);
                t
            },
            |e| matches!(e, InstallerError::Malformed { .. }),
        ),
    ];
    for (case, tar, expected) in cases {
        let before = names(&d.root);
        let (r, lines) = install(&h, &d, "bad", &tar, vec![]);
        match r {
            Ok(report) => panic!("{case}: accepted: {report:?}"),
            Err(e) => assert!(
                expected(&e),
                "{case}: unexpected error {e:?}; log {lines:?}"
            ),
        }
        nothing_left(&d, case, &before);
        assert!(!dest.exists(), "{case}: the destination exists");
    }
    // The child survives refusals and still installs.
    let ok = start().finish();
    assert!(install(&h, &d, "after", &ok, vec![]).0.is_ok());
    assert_eq!(
        std::fs::read(dest.join("good")).unwrap(),
        b"written before the bad entry\n"
    );
}

fn caps() {
    let d = dirs();
    let mut s = settings(&d);
    s.max_files = 5;
    s.max_file_bytes = 1024;
    s.max_total_bytes = 2048;
    let h = spawn(&s);
    let dest = d.root.join("app");
    let m = manifest(&dest, "\"**\"", "");
    let kib = vec![b'x'; 1024];
    let cases: Vec<(&str, Vec<u8>, Check)> = vec![
        (
            "a 10 GiB entry (header only)",
            Tar::new()
                .manifest(&m)
                .raw(b"bomb", EntryType::Regular, 0o644, b"", b"", Some(10 << 30))
                .finish(),
            |e| matches!(e, InstallerError::TooLarge { what, size, max: 1024, .. } if what == "file size" && *size == 10 << 30),
        ),
        (
            "total over the cap",
            Tar::new()
                .manifest(&m)
                .file("a", &kib)
                .file("b", &kib)
                .file("c", &kib)
                .finish(),
            |e| matches!(e, InstallerError::TooLarge { entry, what, .. } if entry == "c" && what == "total size"),
        ),
        (
            "too many files",
            (0..6)
                .fold(Tar::new().manifest(&m), |t, i| {
                    t.file(&format!("f{i}"), b"x")
                })
                .finish(),
            |e| matches!(e, InstallerError::TooManyFiles { max: 5 }),
        ),
        (
            "implicit directories count",
            Tar::new().manifest(&m).file("a/b/c/d/e/f", b"x").finish(),
            |e| matches!(e, InstallerError::TooManyFiles { max: 5 }),
        ),
    ];
    for (case, tar, expected) in cases {
        let (r, lines) = install(&h, &d, "bomb", &tar, vec![]);
        match r {
            Ok(report) => panic!("{case}: accepted: {report:?}"),
            Err(e) => assert!(
                expected(&e),
                "{case}: unexpected error {e:?}; log {lines:?}"
            ),
        }
        nothing_left(&d, case, &[]);
    }
    let at_cap = Tar::new()
        .manifest(&m)
        .file("a", &kib)
        .file("b", &kib)
        .finish();
    let report = install(&h, &d, "cap", &at_cap, vec![]).0.unwrap();
    assert_eq!(report.bytes, 2048);
}

fn destinations() {
    let d = dirs();
    let h = spawn(&settings(&d));
    std::os::unix::fs::symlink(&d.outside, d.root.join("link")).unwrap();
    let before = names(&d.root);
    let outside_root = d.tmp.path().join("elsewhere/app");
    let cases: Vec<(&str, String)> = vec![
        ("outside every root", manifest(&outside_root, "\"**\"", "")),
        ("the root itself", manifest(&d.root, "\"**\"", "")),
        (
            "a sibling with the root as prefix",
            manifest(&d.tmp.path().join("root-other/app"), "\"**\"", ""),
        ),
        (
            "through a symlink below the root",
            manifest(&d.root.join("link/app"), "\"**\"", ""),
        ),
        (
            "onto a symlink",
            manifest(&d.root.join("link"), "\"**\"", ""),
        ),
    ];
    for (case, m) in cases {
        let tar = Tar::new().manifest(&m).file("f", b"x").finish();
        let (r, _) = install(&h, &d, "dest", &tar, vec![]);
        assert!(
            matches!(r, Err(InstallerError::DestinationNotAllowed { .. })),
            "{case}: {r:?}"
        );
        nothing_left(&d, case, &before);
    }
    assert!(!d.tmp.path().join("elsewhere").exists());

    // A package outside staging is refused and not deleted.
    let elsewhere = d.tmp.path().join("pkg.tar");
    std::fs::write(&elsewhere, b"not a tar").unwrap();
    let req = custody_agent::installer::InstallRequest {
        deployment_id: "x".into(),
        package_tar: elsewhere.clone(),
        variables: vec![],
    };
    let r = h.install(&req, &mut |_| {});
    assert!(
        matches!(r, Err(InstallerError::PackageNotStaged { .. })),
        "{r:?}"
    );
    assert!(elsewhere.exists());
}

fn child_sandboxed() {
    let d = dirs();
    let (uid, gid) = test_user();
    let h = spawn(&settings(&d));
    let pid = h.pid();
    let status = TaskStatus::read(
        &std::path::Path::new("/proc")
            .join(pid.to_string())
            .join("status"),
    )
    .unwrap();
    assert!(
        status.is_sandboxed_as(uid, gid),
        "the installer child is not sandboxed: {status:?}"
    );
    drop(h);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the child exits when the socket closes (and is reaped)"
    );

    // A plan that cannot be applied is reported as ChildSandbox.
    let mut s = settings(&d);
    s.landlock.min_abi = Some(64);
    match custody_agent::installer::InstallerHandle::spawn(&s) {
        Err(InstallerError::ChildSandbox(msg)) => assert!(msg.contains("Landlock"), "{msg}"),
        other => panic!("expected ChildSandbox, got {other:?}"),
    }
}
