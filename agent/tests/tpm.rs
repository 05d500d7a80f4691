#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The TPM keystore against a real swtpm (one per test).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use custody_agent::keystore::tpm::blobs::KeyFiles;
use custody_agent::keystore::tpm::{OpenedTpm, context};
use custody_agent::keystore::{KeyStore, KeyStoreError, OpenedKeyStore, TpmOp};
use custody_envelope::OaepHash;
use hsm_sim::Swtpm;
use rsa::traits::PublicKeyParts;
use tss_esapi::handles::{KeyHandle, PersistentTpmHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, RsaSchemeAlgorithm};
use tss_esapi::interface_types::dynamic_handles::Persistent;
use tss_esapi::interface_types::resource_handles::Provision;
use tss_esapi::structures::{
    Data, HashScheme, Public, PublicKeyRsa, RsaDecryptionScheme, RsaScheme,
};

#[test]
fn round_trip_threads_files_and_default_size() {
    let tpm = Swtpm::start().unwrap();
    common::run_child(
        "child_round_trip_threads_files_and_default_size",
        &[("CUSTODY_TEST_TCTI", tpm.tcti().into())],
    );
}

#[test]
#[ignore = "runs in a child process started by its parent test (it counts threads)"]
fn child_round_trip_threads_files_and_default_size() {
    let Ok(tcti) = std::env::var("CUSTODY_TEST_TCTI") else {
        return;
    };
    let state = tempfile::tempdir().unwrap();
    let config = common::tpm_config(&tcti, None);

    let before = common::thread_count();
    let opened = OpenedTpm::open(&config, state.path()).unwrap();
    assert_eq!(common::thread_count(), before, "open() started no thread");
    // swtpm has RSA-3072, so an unset key_bits picks it.
    assert_eq!(opened.public_key().size(), 384);
    assert_eq!(opened.supported_hashes(), &[OaepHash::Sha256]);

    let files = KeyFiles::new(state.path(), "server-key");
    for f in [&files.public, &files.private, &files.auth] {
        let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", f.display());
    }
    let dir_mode = std::fs::metadata(state.path().join("tpm"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
    let auth = std::fs::read(&files.auth).unwrap();
    assert_eq!(auth.len(), 32);
    assert_ne!(auth, vec![0u8; 32]);

    let ks = OpenedKeyStore::Tpm(opened).start().unwrap();
    assert_eq!(common::jwe_round_trip(ks.as_ref()), OaepHash::Sha256);
    assert_eq!(
        common::thread_count(),
        before + 1,
        "start() runs one TPM thread"
    );
    let msg = [9u8; 32];
    let ct = common::oaep_encrypt(ks.public_key(), OaepHash::Sha256, &msg);
    assert_eq!(ks.unwrap(OaepHash::Sha256, &ct).unwrap().as_slice(), msg);
    assert!(matches!(
        ks.unwrap(OaepHash::Sha1, &ct),
        Err(KeyStoreError::UnsupportedHash {
            hash: OaepHash::Sha1
        })
    ));
    assert!(matches!(
        ks.unwrap(OaepHash::Sha256, &[0x33; 384]),
        Err(KeyStoreError::Unwrap)
    ));
    assert!(matches!(
        ks.unwrap(OaepHash::Sha256, &[0x33; 12]),
        Err(KeyStoreError::Unwrap)
    ));
    let other = rsa::RsaPrivateKey::new(&mut custody_agent::rng::OsRng, 3072).unwrap();
    let ct_other = common::oaep_encrypt(&other.to_public_key(), OaepHash::Sha256, &msg);
    assert!(matches!(
        ks.unwrap(OaepHash::Sha256, &ct_other),
        Err(KeyStoreError::Unwrap)
    ));
    // Still serving after failures.
    assert_eq!(ks.unwrap(OaepHash::Sha256, &ct).unwrap().as_slice(), msg);
    drop(ks);
    assert_eq!(
        common::thread_count(),
        before,
        "the TPM thread ends with the keystore"
    );
}

/// An RSA-2048 TPM keystore on `tpm`, its key files in `state`, started.
fn started_2048(tpm: &Swtpm, state: &std::path::Path) -> std::sync::Arc<dyn KeyStore> {
    OpenedKeyStore::Tpm(
        OpenedTpm::open(&common::tpm_config(&tpm.tcti(), Some(2048)), state).unwrap(),
    )
    .start()
    .unwrap()
}

#[test]
fn survives_agent_restart_and_tpm_restart() {
    let mut tpm = Swtpm::start().unwrap();
    let state = tempfile::tempdir().unwrap();
    let ks = started_2048(&tpm, state.path());
    let public = ks.public_key().clone();
    let msg = b"deployment key for the target...";
    let ct = common::oaep_encrypt(&public, OaepHash::Sha256, msg);
    assert_eq!(ks.unwrap(OaepHash::Sha256, &ct).unwrap().as_slice(), msg);
    drop(ks);

    // Agent restart: same files, same key.
    let ks = started_2048(&tpm, state.path());
    assert_eq!(ks.public_key(), &public);
    assert_eq!(ks.unwrap(OaepHash::Sha256, &ct).unwrap().as_slice(), msg);
    drop(ks);

    // TPM restart (transients and sessions gone; seeds kept).
    tpm.restart().unwrap();
    let ks = started_2048(&tpm, state.path());
    assert_eq!(ks.public_key(), &public);
    assert_eq!(ks.unwrap(OaepHash::Sha256, &ct).unwrap().as_slice(), msg);
}

#[test]
fn a_tpm_restarted_under_a_running_keystore_is_lost_not_unwrap() {
    let mut tpm = Swtpm::start().unwrap();
    let state = tempfile::tempdir().unwrap();
    let ks = started_2048(&tpm, state.path());
    let msg = b"master key of the account.......";
    let ct = common::oaep_encrypt(ks.public_key(), OaepHash::Sha256, msg);
    assert_eq!(ks.unwrap(OaepHash::Sha256, &ct).unwrap().as_slice(), msg);

    // The connection and the loaded key die with the TPM process.
    tpm.restart().unwrap();
    match ks.unwrap(OaepHash::Sha256, &ct) {
        Err(KeyStoreError::Lost(reason)) => {
            assert!(reason.starts_with("TPM2_RSA_Decrypt: "), "{reason}");
        }
        other => panic!("expected Lost, got {other:?}"),
    }
    drop(ks);
    // Opened afresh (what the agent's restart does), it serves again.
    let ks = started_2048(&tpm, state.path());
    assert_eq!(ks.unwrap(OaepHash::Sha256, &ct).unwrap().as_slice(), msg);
}

#[test]
fn stale_transients_are_flushed_at_open() {
    let tpm = Swtpm::start().unwrap();
    let state = tempfile::tempdir().unwrap();
    let config = common::tpm_config(&tpm.tcti(), Some(2048));
    drop(OpenedTpm::open(&config, state.path()).unwrap());
    // A "crashed" process: load objects and leave them loaded (swtpm has no
    // resource manager, so they outlive the connection).
    let mut ctx = context::connect(&tpm.tcti()).unwrap();
    let s = context::start_session(&mut ctx).unwrap();
    let primary = context::create_primary(&mut ctx, s).unwrap();
    let blobs = KeyFiles::new(state.path(), "server-key").read().unwrap();
    let _key = context::load_key(&mut ctx, s, primary, &blobs).unwrap();
    std::mem::forget(ctx); // no flush on drop, connection left as a crash would
    // The TPM has 3 transient slots; without the flush, open would fail.
    let mut ctx = context::connect(&tpm.tcti()).unwrap();
    let flushed = context::flush_stale(&mut ctx).unwrap();
    assert!(flushed >= 2, "flushed {flushed}");
    drop(ctx);
    assert!(OpenedTpm::open(&config, state.path()).is_ok());
}

/// Loads the server key on a raw context, for the audit tests.
fn load_raw(
    tcti: &str,
    state: &std::path::Path,
) -> (
    tss_esapi::Context,
    tss_esapi::interface_types::session_handles::AuthSession,
    KeyHandle,
    Public,
) {
    let mut ctx = context::connect(tcti).unwrap();
    let s = context::start_session(&mut ctx).unwrap();
    let primary = context::create_primary(&mut ctx, s).unwrap();
    let blobs = KeyFiles::new(state, "server-key").read().unwrap();
    let key = context::load_key(&mut ctx, s, primary, &blobs).unwrap();
    let (public, _, _) = ctx.execute_without_session(|c| c.read_public(key)).unwrap();
    (ctx, s, key, public)
}

#[test]
fn key_attributes_and_refused_schemes() {
    let tpm = Swtpm::start().unwrap();
    let state = tempfile::tempdir().unwrap();
    let opened =
        OpenedTpm::open(&common::tpm_config(&tpm.tcti(), Some(2048)), state.path()).unwrap();
    let rsa_public = opened.public_key().clone();
    drop(opened);
    let (mut ctx, s, key, public) = load_raw(&tpm.tcti(), state.path());

    let Public::Rsa {
        object_attributes: a,
        parameters,
        name_hashing_algorithm,
        ..
    } = &public
    else {
        panic!("not RSA: {public:?}")
    };
    assert!(
        a.fixed_tpm()
            && a.fixed_parent()
            && a.sensitive_data_origin()
            && a.user_with_auth()
            && a.decrypt()
    );
    assert!(!a.sign_encrypt() && !a.restricted() && !a.admin_with_policy());
    assert_eq!(*name_hashing_algorithm, HashingAlgorithm::Sha256);
    assert_eq!(
        parameters.rsa_scheme(),
        RsaScheme::create(RsaSchemeAlgorithm::Oaep, Some(HashingAlgorithm::Sha256)).unwrap()
    );

    let msg = b"0123456789abcdef";
    let decrypt = |ctx: &mut tss_esapi::Context, scheme: RsaDecryptionScheme, ct: &[u8]| {
        let ct = PublicKeyRsa::try_from(ct.to_vec()).unwrap();
        ctx.execute_with_session(Some(s), |c| c.rsa_decrypt(key, ct, scheme, Data::default()))
    };
    // OAEP-SHA256 works on the raw context …
    let ct = common::oaep_encrypt(&rsa_public, OaepHash::Sha256, msg);
    let pt = decrypt(
        &mut ctx,
        RsaDecryptionScheme::Oaep(HashScheme::new(HashingAlgorithm::Sha256)),
        &ct,
    )
    .unwrap();
    assert_eq!(pt.value(), msg);
    // … OAEP-SHA1 is refused even for a valid SHA-1 ciphertext …
    let ct1 = common::oaep_encrypt(&rsa_public, OaepHash::Sha1, msg);
    assert!(
        decrypt(
            &mut ctx,
            RsaDecryptionScheme::Oaep(HashScheme::new(HashingAlgorithm::Sha1)),
            &ct1
        )
        .is_err()
    );
    // … PKCS#1 v1.5 is refused …
    let v15 = rsa_public
        .encrypt(&mut custody_agent::rng::OsRng, rsa::Pkcs1v15Encrypt, msg)
        .unwrap();
    assert!(decrypt(&mut ctx, RsaDecryptionScheme::RsaEs, &v15).is_err());
    // … and there is no raw RSA: TPM_ALG_NULL means "the key's scheme"
    // (OAEP-SHA256), so a textbook-RSA ciphertext does not come back.
    let raw_ct = {
        let m = rsa::BigUint::from_bytes_be(&[0x12; 200]);
        let mut v = m.modpow(rsa_public.e(), rsa_public.n()).to_bytes_be();
        while v.len() < rsa_public.size() {
            v.insert(0, 0);
        }
        v
    };
    assert!(decrypt(&mut ctx, RsaDecryptionScheme::Null, &raw_ct).is_err());

    // Cross-check with tpm2-tools: persist a copy and read it back.
    let persistent = Persistent::Persistent(PersistentTpmHandle::new(0x8100_0123).unwrap());
    ctx.execute_with_session(Some(s), |c| {
        c.evict_control(Provision::Owner, key.into(), persistent)
    })
    .unwrap();
    drop(ctx);
    let out = Command::new("tpm2_readpublic")
        .env("TPM2TOOLS_TCTI", tpm.tcti())
        .args(["-c", "0x81000123"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let attrs_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("value: fixedtpm"))
        .unwrap_or("");
    for want in [
        "fixedtpm",
        "fixedparent",
        "sensitivedataorigin",
        "userwithauth",
        "decrypt",
    ] {
        assert!(attrs_line.contains(want), "{want} missing in {text}");
    }
    for unwanted in ["sign", "restricted"] {
        assert!(
            !attrs_line.contains(unwanted),
            "{unwanted} present in {text}"
        );
    }
    assert!(
        text.contains("scheme: oaep") || text.contains("value: oaep"),
        "{text}"
    );
    assert!(text.contains("bits: 2048"), "{text}");
    let n_hex = hex::encode(rsa_public.n().to_bytes_be());
    assert!(text.contains(&n_hex), "modulus differs: {text}");
}

#[test]
fn tpm_not_running_is_unreachable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let state = tempfile::tempdir().unwrap();
    let config = common::tpm_config(&format!("swtpm:host=127.0.0.1,port={port}"), Some(2048));
    assert!(matches!(
        OpenedTpm::open(&config, state.path()),
        Err(KeyStoreError::TpmUnreachable { .. })
    ));
    assert!(!state.path().join("tpm").exists(), "nothing written");
}

#[test]
fn incomplete_or_corrupt_key_files_are_refused() {
    let tpm = Swtpm::start().unwrap();
    let state = tempfile::tempdir().unwrap();
    let config = common::tpm_config(&tpm.tcti(), Some(2048));
    drop(OpenedTpm::open(&config, state.path()).unwrap());
    let files = KeyFiles::new(state.path(), "server-key");
    let auth = std::fs::read(&files.auth).unwrap();

    // A wrong authValue: the TPM refuses the key's self-check at open.
    let mut wrong = auth.clone();
    wrong[0] ^= 1;
    std::fs::write(&files.auth, &wrong).unwrap();
    assert!(matches!(
        OpenedTpm::open(&config, state.path()),
        Err(KeyStoreError::Tpm {
            op: TpmOp::SelfCheck,
            ..
        })
    ));
    std::fs::write(&files.auth, &auth).unwrap();
    assert!(OpenedTpm::open(&config, state.path()).is_ok());

    // Missing one file: refused, never silently replaced.
    std::fs::remove_file(&files.private).unwrap();
    assert!(matches!(
        OpenedTpm::open(&config, state.path()),
        Err(KeyStoreError::CorruptState { .. })
    ));
}
