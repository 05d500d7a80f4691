//! The installer's `[target]` settings: every bad fixture in
//! `fixtures/config/bad_target/` is refused with its own variant, the
//! defaults hold, and `InstallerSettings::from_config` builds the child's
//! sandbox plan from them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use custody_agent::config::{self, ConfigError};
use custody_agent::installer::{InstallerError, InstallerSettings};
use custody_agent::sandbox::SeccompProfile;

fn bad(name: &str) -> ConfigError {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config/bad_target")
        .join(name);
    match config::load(Some(&path)) {
        Ok(c) => panic!("{name} was accepted: {c:?}"),
        Err(e) => e,
    }
}

#[test]
fn every_bad_target_fixture_is_refused_with_its_variant() {
    use ConfigError as E;
    type Check = fn(&ConfigError) -> bool;
    let cases: Vec<(&str, Check)> = vec![
        (
            "install_root_slash.toml",
            |e| matches!(e, E::InstallRoot { reason, .. } if reason.contains("`/`")),
        ),
        (
            "install_root_dotdot.toml",
            |e| matches!(e, E::InstallRoot { reason, .. } if reason.contains("..")),
        ),
        ("target_zero_max_files.toml", |e| {
            matches!(
                e,
                E::TargetLimit {
                    field: "max_files",
                    ..
                }
            )
        }),
        ("target_zero_max_total_bytes.toml", |e| {
            matches!(
                e,
                E::TargetLimit {
                    field: "max_total_bytes",
                    ..
                }
            )
        }),
        (
            "target_zero_max_file_bytes.toml",
            |e| matches!(e, E::TargetLimit { field: "max_file_bytes", reason } if reason.contains("at least")),
        ),
        (
            "target_file_cap_over_total.toml",
            |e| matches!(e, E::TargetLimit { field: "max_file_bytes", reason } if reason.contains("exceed")),
        ),
        ("target_hook_timeout_zero.toml", |e| {
            matches!(
                e,
                E::TargetLimit {
                    field: "hook_timeout_secs",
                    ..
                }
            )
        }),
        ("target_hook_timeout_too_long.toml", |e| {
            matches!(
                e,
                E::TargetLimit {
                    field: "hook_timeout_secs",
                    ..
                }
            )
        }),
        ("target_negative_max_files.toml", |e| {
            matches!(e, E::Schema { .. })
        }),
    ];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config/bad_target");
    assert_eq!(
        std::fs::read_dir(dir).unwrap().count(),
        cases.len(),
        "every fixture has a case"
    );
    for (name, expected) in cases {
        let err = bad(name);
        assert!(expected(&err), "{name}: unexpected error {err:?}");
        assert!(!err.to_string().contains('\n'));
    }
}

#[test]
fn defaults_and_settings() {
    let c = config::load_str(
        "[keystore]\nkind = \"soft\"\n[state]\ndir = \"/var/lib/custody\"\n\
         [target]\ninstall_roots = [\"/srv/app/\", \"/opt/./releases\"]\n",
    )
    .unwrap();
    assert_eq!(c.target.max_total_bytes, 4 << 30);
    assert_eq!(c.target.max_files, 100_000);
    assert_eq!(c.target.max_file_bytes, 1 << 30);
    assert_eq!(c.target.hook_timeout_secs, 300);

    let s = InstallerSettings::from_config(&c).unwrap();
    assert_eq!(
        s.install_roots,
        [PathBuf::from("/srv/app"), PathBuf::from("/opt/releases")]
    );
    assert_eq!(s.staging_dir, Path::new("/var/lib/custody/staging"));
    assert_eq!(s.hook_timeout, Duration::from_secs(300));
    assert!(s.landlock.require);

    let plan = s.plan();
    assert_eq!(plan.seccomp, SeccompProfile::Installer);
    assert_ne!(plan.user, "root");
    assert!(plan.read_write.contains(&PathBuf::from("/srv/app")));
    assert!(plan.read_write.contains(&PathBuf::from("/opt/releases")));
    assert!(
        plan.read_write
            .contains(&PathBuf::from("/var/lib/custody/staging"))
    );
    assert!(plan.read_exec.iter().any(|p| p == Path::new("/usr")));
    assert!(plan.tcp_connect.is_empty(), "no network for the installer");
    assert!(!plan.covers(Path::new("/var/lib/custody/credential.json")));

    let none = config::load_str("[keystore]\nkind = \"soft\"\n").unwrap();
    assert!(matches!(
        InstallerSettings::from_config(&none),
        Err(InstallerError::Settings(_))
    ));
}
