#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Wycheproof RSA-OAEP decryption vectors through each keystore's decrypt
//! path: SHA-1 (2048) through SoftHSM2, SHA-256 (2048, 3072) through the
//! soft keystore, SHA-256 (2048) through the TPM. Valid vectors must give
//! the message; invalid ones the one `KeyStoreError::Unwrap`. Vectors with
//! a non-empty OAEP label are skipped and counted: Custody always uses the
//! empty label, SoftHSM2 ignores labels and a TPM label must end in a zero
//! byte. Each file must run vectors, or the test fails.

mod common;

use custody_agent::keystore::{KeyStore, KeyStoreError};
use custody_envelope::OaepHash;
use wycheproof::TestResult;
use wycheproof::rsa_oaep::{TestName, TestSet};
use zeroize::Zeroizing;

#[derive(Debug, Default)]
struct Count {
    valid: usize,
    invalid: usize,
    acceptable: usize,
    skipped_label: usize,
}

/// Runs every vector of `name` through `decrypt` (one call per group to
/// `key_for` first). Returns the counts.
fn run<K>(
    name: TestName,
    mut key_for: impl FnMut(&wycheproof::rsa_oaep::TestGroup) -> K,
    mut decrypt: impl FnMut(&mut K, &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyStoreError>,
) -> Count {
    let set = TestSet::load(name).unwrap();
    let mut count = Count::default();
    for group in &set.test_groups {
        let mut key = key_for(group);
        for t in &group.tests {
            if !t.label.is_empty() {
                count.skipped_label += 1;
                continue;
            }
            let got = decrypt(&mut key, &t.ct);
            match t.result {
                TestResult::Valid => {
                    let pt =
                        got.unwrap_or_else(|e| panic!("tc {} ({}): {e:?}", t.tc_id, t.comment));
                    assert_eq!(pt.as_slice(), &t.pt[..], "tc {}", t.tc_id);
                    count.valid += 1;
                }
                TestResult::Invalid => {
                    assert!(
                        matches!(got, Err(KeyStoreError::Unwrap)),
                        "tc {} ({}) must fail with Unwrap, got {:?}",
                        t.tc_id,
                        t.comment,
                        got.map(|p| p.len())
                    );
                    count.invalid += 1;
                }
                TestResult::Acceptable => {
                    if let Ok(pt) = got {
                        assert_eq!(pt.as_slice(), &t.pt[..], "tc {}", t.tc_id);
                    }
                    count.acceptable += 1;
                }
            }
        }
    }
    println!("{name:?}: {count:?}");
    assert!(
        count.valid > 0 && count.invalid > 0,
        "{name:?} ran no vectors: {count:?}"
    );
    count
}

fn strip(b: &[u8]) -> &[u8] {
    let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    &b[first..]
}

fn public_of(g: &wycheproof::rsa_oaep::TestGroup) -> rsa::RsaPublicKey {
    rsa::RsaPublicKey::new(
        rsa::BigUint::from_bytes_be(strip(&g.key.n)),
        rsa::BigUint::from_bytes_be(strip(&g.key.e)),
    )
    .unwrap()
}

// ---- soft keystore: SHA-256, 2048 and 3072 ----

fn soft_file(name: TestName) -> Count {
    let dir = tempfile::tempdir().unwrap();
    run(
        name,
        |g| {
            use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
            let key = rsa::RsaPrivateKey::from_pkcs8_der(&g.pkcs8).unwrap();
            let pem = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
            let path = dir.path().join(format!("{}.pem", g.key_size));
            let _ = std::fs::remove_file(&path);
            std::fs::write(&path, pem.as_bytes()).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
            let cfg: custody_agent::config::SoftConfig =
                toml::from_str(&format!("key_file = \"{}\"", path.display())).unwrap();
            custody_agent::keystore::soft::SoftKeyStore::open(&cfg, dir.path()).unwrap()
        },
        |ks, ct| ks.unwrap(OaepHash::Sha256, ct),
    )
}

#[test]
fn soft_sha256_2048() {
    soft_file(TestName::Rsa2048Sha256Mgf1Sha256);
}

#[test]
fn soft_sha256_3072() {
    soft_file(TestName::Rsa3072Sha256Mgf1Sha256);
}

// ---- SoftHSM2: SHA-1, 2048 (session objects) ----

#[test]
fn softhsm_sha1_2048() {
    let hsm = hsm_sim::SoftHsm::start().unwrap();
    common::run_in_child("child_softhsm_sha1_2048", &hsm);
}

#[test]
#[ignore = "runs in a child process started by its parent test"]
fn child_softhsm_sha1_2048() {
    use cryptoki::object::{Attribute, KeyType, ObjectClass};
    if common::child_env().is_none() {
        return;
    }
    // Open the agent's keystore (module, token, login), then import each
    // vector key as a session object next to the server key.
    let config = common::pkcs11_config(2048, 1);
    let _opened = custody_agent::keystore::pkcs11::OpenedPkcs11::open(&config).unwrap();
    let (module, label, pin_file, _) = common::child_env().unwrap();
    let ctx = cryptoki::context::Pkcs11::new(module).unwrap();
    let slot = ctx
        .get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label() == label)
        .unwrap();
    let session = ctx.open_rw_session(slot).unwrap();
    let pin = std::fs::read_to_string(pin_file).unwrap();
    let _ = session.login(
        cryptoki::session::UserType::User,
        Some(&cryptoki::types::AuthPin::from(pin.trim().to_owned())),
    );
    run(
        TestName::Rsa2048Sha1Mgf1Sha1,
        |g| {
            let k = &g.key;
            let handle = session
                .create_object(&[
                    Attribute::Class(ObjectClass::PRIVATE_KEY),
                    Attribute::KeyType(KeyType::RSA),
                    Attribute::Token(false),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Decrypt(true),
                    Attribute::Modulus(strip(&k.n).to_vec()),
                    Attribute::PublicExponent(strip(&k.e).to_vec()),
                    Attribute::PrivateExponent(strip(&k.d).to_vec()),
                    Attribute::Prime1(strip(&k.p).to_vec()),
                    Attribute::Prime2(strip(&k.q).to_vec()),
                    Attribute::Exponent1(strip(&k.d1).to_vec()),
                    Attribute::Exponent2(strip(&k.d2).to_vec()),
                    Attribute::Coefficient(strip(&k.c).to_vec()),
                ])
                .unwrap();
            (handle, public_of(g))
        },
        |(handle, public), ct| {
            custody_agent::keystore::pkcs11::decrypt::oaep_decrypt(
                &session,
                *handle,
                public,
                OaepHash::Sha1,
                ct,
            )
        },
    );
}

// ---- TPM: SHA-256, 2048 (LoadExternal) ----

#[test]
fn tpm_sha256_2048() {
    use custody_agent::keystore::tpm::{context, decrypt};
    use rsa::traits::PublicKeyParts;
    use tss_esapi::attributes::ObjectAttributesBuilder;
    use tss_esapi::interface_types::algorithm::{
        HashingAlgorithm, PublicAlgorithm, RsaSchemeAlgorithm,
    };
    use tss_esapi::interface_types::key_bits::RsaKeyBits;
    use tss_esapi::interface_types::resource_handles::Hierarchy;
    use tss_esapi::structures::{
        Auth, Digest, PrivateKeyRsa, PublicBuilder, PublicKeyRsa, PublicRsaParametersBuilder,
        RsaExponent, RsaScheme, Sensitive,
    };

    let tpm = hsm_sim::Swtpm::start().unwrap();
    let mut ctx = context::connect(&tpm.tcti()).unwrap();
    let session = context::start_session(&mut ctx).unwrap();
    let ctx = std::cell::RefCell::new(ctx);
    let mut loaded = None;
    run(
        TestName::Rsa2048Sha256Mgf1Sha256,
        |g| {
            let k = &g.key;
            let e = u32::from_be_bytes({
                let e = strip(&k.e);
                let mut b = [0u8; 4];
                b[4 - e.len()..].copy_from_slice(e);
                b
            });
            let attributes = ObjectAttributesBuilder::new()
                .with_user_with_auth(true)
                .with_decrypt(true)
                .with_sign_encrypt(false)
                .with_restricted(false)
                .build()
                .unwrap();
            let public = PublicBuilder::new()
                .with_public_algorithm(PublicAlgorithm::Rsa)
                .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
                .with_object_attributes(attributes)
                .with_rsa_parameters(
                    PublicRsaParametersBuilder::new()
                        .with_scheme(
                            RsaScheme::create(
                                RsaSchemeAlgorithm::Oaep,
                                Some(HashingAlgorithm::Sha256),
                            )
                            .unwrap(),
                        )
                        .with_key_bits(RsaKeyBits::Rsa2048)
                        .with_exponent(RsaExponent::create(e).unwrap())
                        .with_is_decryption_key(true)
                        .with_restricted(false)
                        .build()
                        .unwrap(),
                )
                .with_rsa_unique_identifier(PublicKeyRsa::try_from(strip(&k.n).to_vec()).unwrap())
                .build()
                .unwrap();
            let sensitive = Sensitive::Rsa {
                auth_value: Auth::default(),
                seed_value: Digest::default(),
                sensitive: PrivateKeyRsa::try_from(strip(&k.p).to_vec()).unwrap(),
            };
            let mut c = ctx.borrow_mut();
            // Keep one vector key loaded at a time (the TPM has few slots).
            if let Some(old) = loaded.take() {
                c.flush_context(tss_esapi::handles::KeyHandle::into(old))
                    .unwrap();
            }
            let handle = c
                .execute_without_session(|c| c.load_external(sensitive, public, Hierarchy::Null))
                .unwrap();
            loaded = Some(handle);
            (handle, public_of(g).size())
        },
        |(handle, size), ct| {
            decrypt::oaep_sha256_decrypt(&mut ctx.borrow_mut(), session, *handle, *size, ct)
        },
    );
}
