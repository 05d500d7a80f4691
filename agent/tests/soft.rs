#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The soft keystore: a 0600 PEM file, round trips, one unwrap error.

mod common;

use std::os::unix::fs::PermissionsExt;

use custody_agent::config::SoftConfig;
use custody_agent::keystore::soft::SoftKeyStore;
use custody_agent::keystore::{KeyStore, KeyStoreError};
use custody_envelope::OaepHash;

fn config(dir: &std::path::Path, bits: u32) -> SoftConfig {
    toml::from_str(&format!(
        "key_file = \"{}\"\nkey_bits = {bits}\n",
        dir.join("k.pem").display()
    ))
    .unwrap()
}

#[test]
fn creates_0600_key_and_reloads_the_same_key() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path(), 2048);
    let ks = SoftKeyStore::open(&cfg, d.path()).unwrap();
    let mode = std::fs::metadata(d.path().join("k.pem"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let again = SoftKeyStore::open(&cfg, d.path()).unwrap();
    assert_eq!(ks.public_key(), again.public_key());
    assert_eq!(ks.supported_hashes(), &[OaepHash::Sha256, OaepHash::Sha1]);
}

#[test]
fn round_trips_both_hashes_and_refuses_garbage_and_other_keys() {
    let d = tempfile::tempdir().unwrap();
    let ks = SoftKeyStore::open(&config(d.path(), 2048), d.path()).unwrap();
    assert_eq!(common::jwe_round_trip(&ks), OaepHash::Sha256);
    for hash in [OaepHash::Sha256, OaepHash::Sha1] {
        let ct = common::oaep_encrypt(ks.public_key(), hash, b"release key 32 bytes long.......");
        assert_eq!(
            ks.unwrap(hash, &ct).unwrap().as_slice(),
            b"release key 32 bytes long......."
        );
        // The other hash does not open it.
        let other = if hash == OaepHash::Sha256 {
            OaepHash::Sha1
        } else {
            OaepHash::Sha256
        };
        assert!(matches!(ks.unwrap(other, &ct), Err(KeyStoreError::Unwrap)));
    }
    let garbage = vec![0x5a; 256];
    assert!(matches!(
        ks.unwrap(OaepHash::Sha256, &garbage),
        Err(KeyStoreError::Unwrap)
    ));
    assert!(matches!(
        ks.unwrap(OaepHash::Sha256, b"short"),
        Err(KeyStoreError::Unwrap)
    ));

    let d2 = tempfile::tempdir().unwrap();
    let other = SoftKeyStore::open(&config(d2.path(), 2048), d2.path()).unwrap();
    let ct = common::oaep_encrypt(other.public_key(), OaepHash::Sha256, b"for the other key");
    assert!(matches!(
        ks.unwrap(OaepHash::Sha256, &ct),
        Err(KeyStoreError::Unwrap)
    ));
}

#[test]
fn refuses_a_world_readable_key_file_and_a_corrupt_one() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path(), 2048);
    drop(SoftKeyStore::open(&cfg, d.path()).unwrap());
    let path = d.path().join("k.pem");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(
        SoftKeyStore::open(&cfg, d.path()),
        Err(KeyStoreError::KeyFileMode { mode: 0o644, .. })
    ));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(
        &path,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    assert!(matches!(
        SoftKeyStore::open(&cfg, d.path()),
        Err(KeyStoreError::CorruptState { .. })
    ));
}
