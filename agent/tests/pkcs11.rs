#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The PKCS#11 keystore against a real SoftHSM2 token (one per test; see
//! `common::run_in_child`).

mod common;

use std::sync::Arc;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use custody_agent::keystore::pkcs11::OpenedPkcs11;
use custody_agent::keystore::{KeyStore, KeyStoreError, OpenedKeyStore};
use custody_envelope::OaepHash;
use hsm_sim::SoftHsm;

/// Parent side: a fresh token, then the child of the same name.
macro_rules! with_token {
    ($parent:ident, $child:ident) => {
        #[test]
        fn $parent() {
            let hsm = SoftHsm::start().unwrap();
            common::run_in_child(stringify!($child), &hsm);
        }
    };
}

/// Opens an independent raw session on the child's token, logged in.
fn raw_session() -> (Pkcs11, Session) {
    let (module, label, pin_file, _) = common::child_env().unwrap();
    let ctx = Pkcs11::new(module).unwrap();
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => panic!("{e}"),
    }
    let slot = ctx
        .get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label() == label)
        .unwrap();
    let session = ctx.open_rw_session(slot).unwrap();
    let pin = std::fs::read_to_string(pin_file).unwrap();
    match session.login(UserType::User, Some(&AuthPin::from(pin.trim().to_owned()))) {
        Ok(()) | Err(Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => panic!("{e}"),
    }
    (ctx, session)
}

fn find_private(session: &Session, label: &str) -> ObjectHandle {
    let found = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .unwrap();
    assert_eq!(found.len(), 1);
    found[0]
}

with_token!(round_trip_and_reload, child_round_trip_and_reload);

#[test]
#[ignore = "runs in a child process started by its parent test"]
fn child_round_trip_and_reload() {
    if common::child_env().is_none() {
        return;
    }
    let config = common::pkcs11_config(2048, 2);
    let before = common::thread_count();
    let opened = OpenedPkcs11::open(&config).unwrap();
    assert_eq!(common::thread_count(), before, "open() started no thread");
    // SoftHSM2 2.6 does OAEP with SHA-1 only; detection must say so.
    assert_eq!(opened.supported_hashes(), &[OaepHash::Sha1]);
    let public = opened.public_key().clone();
    assert_eq!(rsa::traits::PublicKeyParts::size(&public), 256);
    let ks = opened.start().unwrap();
    assert_eq!(common::thread_count(), before, "PKCS#11 needs no thread");
    assert_eq!(common::jwe_round_trip(&ks), OaepHash::Sha1);

    let msg = [7u8; 32];
    let ct = common::oaep_encrypt(&public, OaepHash::Sha1, &msg);
    assert_eq!(ks.unwrap(OaepHash::Sha1, &ct).unwrap().as_slice(), msg);
    assert!(matches!(
        ks.unwrap(OaepHash::Sha256, &ct),
        Err(KeyStoreError::UnsupportedHash {
            hash: OaepHash::Sha256
        })
    ));
    // Garbage and wrong-length ciphertexts: the one unwrap error.
    assert!(matches!(
        ks.unwrap(OaepHash::Sha1, &[0x42; 256]),
        Err(KeyStoreError::Unwrap)
    ));
    assert!(matches!(
        ks.unwrap(OaepHash::Sha1, &[0x42; 17]),
        Err(KeyStoreError::Unwrap)
    ));
    // A ciphertext for another key.
    let other = rsa::RsaPrivateKey::new(&mut custody_agent::rng::OsRng, 2048).unwrap();
    let ct_other = common::oaep_encrypt(&other.to_public_key(), OaepHash::Sha1, &msg);
    assert!(matches!(
        ks.unwrap(OaepHash::Sha1, &ct_other),
        Err(KeyStoreError::Unwrap)
    ));
    drop(ks);

    // The agent restarts: same key, still unwraps the old ciphertext.
    let again = custody_agent::keystore::open(
        &custody_agent::config::KeyStoreConfig::Pkcs11(config),
        std::path::Path::new("/nonexistent"),
    )
    .unwrap();
    assert_eq!(again.public_key(), &public);
    let ks = again.start().unwrap();
    assert_eq!(ks.unwrap(OaepHash::Sha1, &ct).unwrap().as_slice(), msg);
}

with_token!(pool_serves_threads, child_pool_serves_threads);

#[test]
#[ignore = "runs in a child process started by its parent test"]
fn child_pool_serves_threads() {
    if common::child_env().is_none() {
        return;
    }
    let opened =
        OpenedKeyStore::Pkcs11(OpenedPkcs11::open(&common::pkcs11_config(2048, 3)).unwrap());
    let ks: Arc<dyn KeyStore> = opened.start().unwrap();
    let handles: Vec<_> = (0..6u8)
        .map(|i| {
            let ks = Arc::clone(&ks);
            std::thread::spawn(move || {
                for j in 0..5u8 {
                    let msg = [i, j, 1, 2, 3];
                    let ct = common::oaep_encrypt(ks.public_key(), OaepHash::Sha1, &msg);
                    assert_eq!(ks.unwrap(OaepHash::Sha1, &ct).unwrap().as_slice(), msg);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

with_token!(
    lost_login_is_lost_not_unwrap,
    child_lost_login_is_lost_not_unwrap
);

#[test]
#[ignore = "runs in a child process started by its parent test"]
fn child_lost_login_is_lost_not_unwrap() {
    if common::child_env().is_none() {
        return;
    }
    let ks = OpenedKeyStore::Pkcs11(OpenedPkcs11::open(&common::pkcs11_config(2048, 2)).unwrap())
        .start()
        .unwrap();
    let msg = b"release key for the key manager.";
    let ct = common::oaep_encrypt(ks.public_key(), OaepHash::Sha1, msg);
    assert_eq!(ks.unwrap(OaepHash::Sha1, &ct).unwrap().as_slice(), msg);
    // A bad ciphertext is the one opaque `Unwrap`, never `Lost`.
    assert!(matches!(
        ks.unwrap(OaepHash::Sha1, &[0x33; 256]),
        Err(KeyStoreError::Unwrap)
    ));

    // Logging out any session logs out the whole process (as a token
    // reset does): the keystore's sessions can no longer use the key.
    let (_ctx, raw) = raw_session();
    raw.logout().unwrap();
    for _ in 0..3 {
        match ks.unwrap(OaepHash::Sha1, &ct) {
            Err(KeyStoreError::Lost(reason)) => {
                // SoftHSM2 forgets the private key's handle at logout.
                assert!(
                    reason.starts_with("C_DecryptInit: ")
                        && (reason.ends_with("ObjectHandleInvalid")
                            || reason.ends_with("UserNotLoggedIn")),
                    "{reason}"
                );
            }
            other => panic!("expected Lost, got {other:?}"),
        }
    }
    assert!(matches!(
        ks.unwrap(OaepHash::Sha1, &[0x33; 256]),
        Err(KeyStoreError::Lost(_))
    ));
}

with_token!(attribute_audit, child_attribute_audit);

#[test]
#[ignore = "runs in a child process started by its parent test"]
fn child_attribute_audit() {
    if common::child_env().is_none() {
        return;
    }
    let config = common::pkcs11_config(2048, 1);
    let opened = OpenedPkcs11::open(&config).unwrap();
    let public = opened.public_key().clone();
    let (_ctx, s) = raw_session();
    let key = find_private(&s, &config.key_label);

    let flags = s
        .get_attributes(
            key,
            &[
                AttributeType::Sensitive,
                AttributeType::AlwaysSensitive,
                AttributeType::NeverExtractable,
                AttributeType::Local,
                AttributeType::Extractable,
                AttributeType::Token,
                AttributeType::Private,
                AttributeType::Decrypt,
                AttributeType::Sign,
                AttributeType::Unwrap,
                AttributeType::Modifiable,
                AttributeType::AllowedMechanisms,
            ],
        )
        .unwrap();
    let mut seen = 0;
    for a in &flags {
        match a {
            Attribute::Sensitive(v)
            | Attribute::AlwaysSensitive(v)
            | Attribute::NeverExtractable(v)
            | Attribute::Local(v)
            | Attribute::Token(v)
            | Attribute::Private(v)
            | Attribute::Decrypt(v) => {
                assert!(*v, "{a:?}");
                seen += 1;
            }
            Attribute::Extractable(v)
            | Attribute::Sign(v)
            | Attribute::Unwrap(v)
            | Attribute::Modifiable(v) => {
                assert!(!*v, "{a:?}");
                seen += 1;
            }
            Attribute::AllowedMechanisms(m) => {
                assert_eq!(m, &vec![cryptoki::mechanism::MechanismType::RSA_PKCS_OAEP]);
                seen += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, 12);

    // The private exponent and primes cannot be read.
    let info = s
        .get_attribute_info(
            key,
            &[AttributeType::PrivateExponent, AttributeType::Prime1],
        )
        .unwrap();
    assert!(
        info.iter().all(|i| matches!(i, AttributeInfo::Sensitive)),
        "{info:?}"
    );

    // C_WrapKey of it fails, even with a wrapping key made for the purpose.
    let wrapping = s
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Token(false),
                Attribute::ValueLen(32.into()),
                Attribute::Wrap(true),
                Attribute::Encrypt(true),
            ],
        )
        .unwrap();
    assert!(
        s.wrap_key(&Mechanism::AesKeyWrapPad, wrapping, key)
            .is_err()
    );

    // EXTRACTABLE cannot be switched on.
    assert!(
        s.update_attributes(key, &[Attribute::Extractable(true)])
            .is_err()
    );
    let still = s
        .get_attributes(key, &[AttributeType::Extractable])
        .unwrap();
    assert_eq!(still, vec![Attribute::Extractable(false)]);

    // Raw RSA and PKCS#1 v1.5 decryption are refused by the key itself.
    let raw_ct = {
        use rsa::traits::PublicKeyParts;
        let m = rsa::BigUint::from_bytes_be(&[0x12; 200]);
        let c = m.modpow(public.e(), public.n());
        let mut v = c.to_bytes_be();
        while v.len() < public.size() {
            v.insert(0, 0);
        }
        v
    };
    assert!(s.decrypt(&Mechanism::RsaX509, key, &raw_ct).is_err());
    let v15 = public
        .encrypt(
            &mut custody_agent::rng::OsRng,
            rsa::Pkcs1v15Encrypt,
            b"secret",
        )
        .unwrap();
    assert!(s.decrypt(&Mechanism::RsaPkcs, key, &v15).is_err());
    // … while OAEP through the same raw session works (the refusals above
    // are about the mechanism, not the session).
    let ct = common::oaep_encrypt(&public, OaepHash::Sha1, b"secret");
    let pt = s
        .decrypt(
            &custody_agent::keystore::pkcs11::oaep_mechanism(OaepHash::Sha1),
            key,
            &ct,
        )
        .unwrap();
    assert_eq!(pt, b"secret");
}

with_token!(bad_pin_and_label, child_bad_pin_and_label);

#[test]
#[ignore = "runs in a child process started by its parent test"]
fn child_bad_pin_and_label() {
    let Some((_, _, _, dir)) = common::child_env() else {
        return;
    };
    let good = common::pkcs11_config(2048, 1);

    let wrong_pin = std::path::Path::new(&dir).join("wrong.pin");
    std::fs::write(&wrong_pin, "not-the-pin\n").unwrap();
    std::fs::set_permissions(
        &wrong_pin,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let mut bad = good.clone();
    bad.pin = custody_agent::config::PinSource::File(wrong_pin);
    assert!(matches!(
        OpenedPkcs11::open(&bad),
        Err(KeyStoreError::PinIncorrect)
    ));
    // One refusal did not lock the token: the right PIN still logs in
    // (raw_session panics otherwise) and no low-count flag is raised.
    let (ctx, _s) = raw_session();
    let slot = ctx
        .get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .find(|sl| ctx.get_token_info(*sl).unwrap().label() == good.token_label)
        .unwrap();
    let info = ctx.get_token_info(slot).unwrap();
    assert!(!info.user_pin_locked() && !info.user_pin_final_try());

    let mut bad = good.clone();
    bad.token_label = "no-such-token".to_owned();
    assert!(matches!(
        OpenedPkcs11::open(&bad),
        Err(KeyStoreError::TokenNotFound { label }) if label == "no-such-token"
    ));

    let opened = OpenedPkcs11::open(&good).unwrap();
    assert_eq!(opened.supported_hashes(), &[OaepHash::Sha1]);
}

#[test]
fn missing_module_is_a_load_error() {
    let d = tempfile::tempdir().unwrap();
    let pin = d.path().join("pin");
    std::fs::write(&pin, "1234").unwrap();
    std::fs::set_permissions(&pin, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let config: custody_agent::config::Pkcs11Config = toml::from_str(&format!(
        "module = \"/nonexistent/libpkcs11.so\"\ntoken_label = \"t\"\npin = {{ file = \"{}\" }}\n",
        pin.display()
    ))
    .unwrap();
    assert!(matches!(
        OpenedPkcs11::open(&config),
        Err(KeyStoreError::LoadModule { .. })
    ));
}
