//! Safe unpacking through the whole pipeline. Each package is crafted by
//! the test — a raw tar the `custody` CLI would never build, encrypted and
//! signed with custody-envelope by the publisher key the target pins,
//! uploaded through the API — so it passes every cryptographic check and
//! reaches the target's installer, which must refuse it: `..` paths, an
//! absolute path, an escaping symbolic link, a device file, a set-user-id
//! file, a header claiming a terabyte, and more entries than allowed. The
//! escape targets lie inside the install root (writable by the agent's
//! user and allowed by its Landlock rules), so only the unpacker stands in
//! the way; afterwards nothing is written there, no destination exists and
//! the staging dir is empty. Soft keystores: the keys are not the point.

use std::path::Path;

use custody_e2e::{Cluster, ClusterOptions, release};
use custody_proto::apps::DeploymentState;
use tar::{EntryType, Header};

/// A header written verbatim: the tar crate refuses `..` and absolute
/// names, the attacker does not.
fn raw(name: &str, kind: EntryType, mode: u32, size: u64) -> Header {
    let mut h = Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    let field = &mut h.as_old_mut().name;
    assert!(name.len() < field.len(), "{name}");
    field[..name.len()].copy_from_slice(name.as_bytes());
    h.set_cksum();
    h
}

fn with_link(mut h: Header, target: &str) -> Header {
    let field = &mut h.as_old_mut().linkname;
    field[..target.len()].copy_from_slice(target.as_bytes());
    h.set_cksum();
    h
}

/// The manifest and a harmless file, then `evil` (header, data).
fn package(manifest: &str, evil: Entries) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut entries = vec![
        (
            raw(
                "custody.toml",
                EntryType::Regular,
                0o644,
                manifest.len() as u64,
            ),
            manifest.as_bytes().to_vec(),
        ),
        (
            raw("ok.txt", EntryType::Regular, 0o644, 3),
            b"ok\n".to_vec(),
        ),
    ];
    entries.extend(evil);
    for (h, data) in entries {
        b.append(&h, data.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

/// Tar entries: header and data.
type Entries = Vec<(Header, Vec<u8>)>;

fn file(name: &str, data: &[u8]) -> (Header, Vec<u8>) {
    (
        raw(name, EntryType::Regular, 0o644, data.len() as u64),
        data.to_vec(),
    )
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = custody_e2e::files::walk(dir)
        .iter()
        .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
        .collect();
    // Directories too (walk lists files only).
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            v.push(format!("{}/", e.file_name().to_string_lossy()));
        }
    }
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crafted_packages_are_refused_and_nothing_is_written_outside_staging() {
    let mut cl = Cluster::start(&ClusterOptions {
        target_toml: "max_total_bytes = 1048576\nmax_file_bytes = 524288\nmax_files = 50\n".into(),
        ..ClusterOptions::default()
    })
    .await
    .unwrap();
    let (root, target_id) = {
        let t = cl.target().unwrap();
        (t.install_root.clone(), t.server_id.clone())
    };
    // A directory the agent's user may write, outside the destination:
    // what an escape would reach.
    let outside = root.join("outside");
    std::fs::create_dir(&outside).unwrap();
    let t = &mut cl.targets[0];
    t.stop().await.unwrap();
    t.start_live(&cl.c).await.unwrap(); // hands `outside` to the service user
    let c = &cl.c;
    c.create_app("web", true).await.unwrap();
    c.environment("web", "dev", &[&target_id]).await.unwrap();
    let dest = root.join("web/app");
    let manifest = format!(
        "version = 1\ndestination = \"{}\"\ninclude = [\"**\"]\n",
        dest.display()
    );
    let before = listing(&root);

    let abs = root.join("abs-owned.txt");
    let cases: Vec<(&str, Entries, &str)> = vec![
        (
            "parent",
            vec![file("../escape.txt", b"escaped\n")],
            "`..` in the path",
        ),
        (
            "parent-deep",
            vec![file("a/../../../outside/deep.txt", b"escaped\n")],
            "`..` in the path",
        ),
        (
            "absolute",
            vec![file(abs.to_str().unwrap(), b"escaped\n")],
            "absolute path",
        ),
        (
            "symlink",
            vec![
                (
                    with_link(
                        raw("link", EntryType::Symlink, 0o777, 0),
                        outside.to_str().unwrap(),
                    ),
                    Vec::new(),
                ),
                file("link/owned.txt", b"through the link\n"),
            ],
            "links are not allowed",
        ),
        (
            "relative-symlink",
            vec![
                (
                    with_link(raw("up", EntryType::Symlink, 0o777, 0), "../.."),
                    Vec::new(),
                ),
                file("up/outside/owned.txt", b"through the link\n"),
            ],
            "links are not allowed",
        ),
        (
            "hardlink",
            vec![(
                with_link(
                    raw("hard", EntryType::Link, 0o644, 0),
                    "../../abs-owned.txt",
                ),
                Vec::new(),
            )],
            "links are not allowed",
        ),
        (
            "device",
            vec![{
                let mut h = raw("null2", EntryType::Char, 0o666, 0);
                h.set_device_major(1).unwrap();
                h.set_device_minor(3).unwrap();
                h.set_cksum();
                (h, Vec::new())
            }],
            "device and FIFO files are not allowed",
        ),
        (
            "setuid",
            vec![(
                raw("tool", EntryType::Regular, 0o4755, 4),
                b"#!\n\n".to_vec(),
            )],
            "set-user-id, set-group-id or sticky bit",
        ),
        (
            "bomb-size",
            // A terabyte claimed by a header, no data behind it.
            vec![(
                raw("big.bin", EntryType::Regular, 0o644, 1 << 40),
                Vec::new(),
            )],
            "over the limit of",
        ),
        (
            "bomb-count",
            (0..200)
                .map(|i| file(&format!("many/{i}.txt"), b""))
                .collect(),
            "more than 50 entries",
        ),
    ];

    let mut deployments = Vec::new();
    for (name, evil, expected) in cases {
        let tar = package(&manifest, evil);
        let r = release::push(c, "web", &tar, manifest.as_bytes(), &cl.publisher)
            .await
            .unwrap();
        let d = c.deploy("web", &r.release_id, "dev").await.unwrap();
        deployments.push((name, d.id, expected));
    }
    for (name, id, expected) in &deployments {
        let done = c.finished(id).await.unwrap();
        assert_eq!(done.state, DeploymentState::Failed, "{name}: {done:?}");
        let reason = done.targets[0].reason.clone().unwrap_or_default();
        assert!(
            reason.contains("unsafe_package") && reason.contains(expected),
            "{name}: {reason}"
        );
    }

    // Nothing written anywhere in the install root; staging empty.
    assert_eq!(listing(&root), before);
    assert!(!abs.exists() && !dest.exists());
    assert!(std::fs::read_dir(&outside).unwrap().next().is_none());
    let t = cl.target().unwrap();
    assert!(t.staging_entries().is_empty(), "{:?}", t.staging_entries());

    // The same pipeline installs a clean package (the refusals were the
    // packages', not the set-up's).
    let clean = package(&manifest, vec![file("index.html", b"fine\n")]);
    let r = release::push(c, "web", &clean, manifest.as_bytes(), &cl.publisher)
        .await
        .unwrap();
    let d = c.deploy("web", &r.release_id, "dev").await.unwrap();
    let done = c.finished(&d.id).await.unwrap();
    assert_eq!(done.state, DeploymentState::Succeeded, "{done:?}");
    assert_eq!(std::fs::read(dest.join("index.html")).unwrap(), b"fine\n");
    t.check_sandboxed().unwrap();
}
