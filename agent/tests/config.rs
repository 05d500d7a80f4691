#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Configuration scenarios: every bad fixture gives its own error variant;
//! the shipped examples parse; drop-ins merge in name order.

use std::path::{Path, PathBuf};

use custody_agent::config::{self, ConfigError, KeyStoreConfig, PinSource};

fn fixture(dir: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(dir)
        .join(name)
}

fn bad(name: &str) -> ConfigError {
    match config::load(Some(&fixture("bad", name))) {
        Ok(c) => panic!("{name} was accepted: {c:?}"),
        Err(e) => e,
    }
}

#[test]
fn every_bad_fixture_is_refused_with_its_variant() {
    use ConfigError as E;
    type Check = fn(&ConfigError) -> bool;
    let cases: Vec<(&str, Check)> = vec![
        (
            "unknown_section.toml",
            |e| matches!(e, E::UnknownSection { section } if section == "keystroe"),
        ),
        ("missing_keystore.toml", |e| {
            matches!(
                e,
                E::MissingSection {
                    section: "keystore"
                }
            )
        }),
        (
            "unknown_kind.toml",
            |e| matches!(e, E::UnknownKeyStoreKind { kind } if kind == "yubikey"),
        ),
        (
            "missing_kind.toml",
            |e| matches!(e, E::UnknownKeyStoreKind { kind } if kind.is_empty()),
        ),
        ("unknown_field.toml", |e| matches!(e, E::Schema { .. })),
        ("field_of_other_kind.toml", |e| {
            matches!(e, E::Schema { .. })
        }),
        ("pin_inline.toml", |e| matches!(e, E::Schema { .. })),
        ("missing_token_label.toml", |e| {
            matches!(e, E::Schema { .. })
        }),
        (
            "relative_module.toml",
            |e| matches!(e, E::RelativePath { field, .. } if field == "keystore.module"),
        ),
        (
            "relative_pin_file.toml",
            |e| matches!(e, E::RelativePath { field, .. } if field == "keystore.pin.file"),
        ),
        ("bad_credential_name.toml", |e| {
            matches!(e, E::CredentialName { .. })
        }),
        ("key_bits_4096.toml", |e| {
            matches!(e, E::KeyBits { bits: 4096, .. })
        }),
        ("zero_sessions.toml", |e| {
            matches!(e, E::Sessions { sessions: 0, .. })
        }),
        ("long_token_label.toml", |e| {
            matches!(
                e,
                E::Label {
                    field: "keystore.token_label",
                    ..
                }
            )
        }),
        ("bad_tcti.toml", |e| matches!(e, E::Tcti { .. })),
        ("bad_key_name.toml", |e| matches!(e, E::KeyName { .. })),
        ("coordinator_http.toml", |e| {
            matches!(e, E::CoordinatorUrl { .. })
        }),
        ("short_ca_fingerprint.toml", |e| {
            matches!(e, E::CaFingerprint)
        }),
        ("missing_ca_fingerprint.toml", |e| {
            matches!(e, E::Schema { .. })
        }),
        (
            "relative_state_dir.toml",
            |e| matches!(e, E::RelativePath { field, .. } if field == "state.dir"),
        ),
        (
            "relative_install_root.toml",
            |e| matches!(e, E::RelativePath { field, .. } if field == "target.install_roots"),
        ),
        ("sandbox_require_not_bool.toml", |e| {
            matches!(e, E::Schema { .. })
        }),
        ("bad_log_level.toml", |e| matches!(e, E::LogLevel { .. })),
        ("syntax_error.toml", |e| matches!(e, E::Syntax { .. })),
    ];
    let on_disk = std::fs::read_dir(fixture("bad", "")).unwrap().count();
    assert_eq!(on_disk, cases.len(), "every fixture has a case");
    for (name, expected) in cases {
        let err = bad(name);
        assert!(expected(&err), "{name}: unexpected error {err:?}");
        let msg = err.to_string();
        assert!(!msg.contains('\n'), "{name}: message is one line: {msg}");
    }
}

#[test]
fn example_configs_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let c = config::load(Some(&dir.join("agent-pkcs11.toml"))).unwrap();
    let KeyStoreConfig::Pkcs11(p) = &c.keystore else {
        panic!("pkcs11 example is {:?}", c.keystore)
    };
    assert_eq!(p.key_bits, 3072);
    assert!(matches!(&p.pin, PinSource::Credential(n) if n == "token-pin"));
    assert_eq!(c.target.install_roots, vec![PathBuf::from("/srv/app")]);
    assert!(c.coordinator.is_some());

    let c = config::load(Some(&dir.join("agent-tpm.toml"))).unwrap();
    assert!(
        matches!(&c.keystore, KeyStoreConfig::Tpm(t) if t.tcti == "device:/dev/tpmrm0" && t.key_bits.is_none())
    );
    assert!(c.sandbox.require);

    let c = config::load(Some(&dir.join("agent-soft.toml"))).unwrap();
    assert!(matches!(&c.keystore, KeyStoreConfig::Soft(s) if s.key_bits == 3072));
    assert!(!c.sandbox.require);
    assert_eq!(c.log.level, "debug");
}

#[test]
fn missing_file_is_a_read_error() {
    let err = config::load(Some(Path::new("/nonexistent/custody/agent.toml"))).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
}

#[test]
fn drop_ins_merge_in_name_order() {
    let d = tempfile::tempdir().unwrap();
    let main = d.path().join("agent.toml");
    std::fs::write(
        &main,
        "[keystore]\nkind = \"soft\"\n[log]\nlevel = \"info\"\n",
    )
    .unwrap();
    let dropins = d.path().join("agent.toml.d");
    std::fs::create_dir(&dropins).unwrap();
    std::fs::write(dropins.join("20-debug.toml"), "[log]\nlevel = \"debug\"\n").unwrap();
    std::fs::write(dropins.join("10-warn.toml"), "[log]\nlevel = \"warn\"\n").unwrap();
    std::fs::write(dropins.join("ignored.txt"), "[log]\nlevel = \"error\"\n").unwrap();
    std::fs::write(
        dropins.join("30-tpm.toml"),
        "[keystore]\nkind = \"tpm\"\ntcti = \"swtpm:host=127.0.0.1,port=2321\"\n",
    )
    .unwrap();
    let c = config::load(Some(&main)).unwrap();
    assert_eq!(c.log.level, "debug");
    assert!(matches!(c.keystore, KeyStoreConfig::Tpm(_)));
    assert_eq!(c.state.dir, PathBuf::from("/var/lib/custody"));

    // A bad drop-in is reported against the drop-in.
    std::fs::write(dropins.join("40-bad.toml"), "[log\n").unwrap();
    let err = config::load(Some(&main)).unwrap_err();
    assert!(matches!(&err, ConfigError::Syntax { path, .. } if path.ends_with("40-bad.toml")));
}
