#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The key-manager job functions and the target's checks, with real soft
//! keystores: every output opens with the keys it should and the bindings
//! the other side expects; every JWE bound to something else than the job
//! says — another account, release, deployment, variable, key — is refused
//! with a typed error before anything is decrypted.

use custody_agent::config::SoftConfig;
use custody_agent::keystore::KeyStore;
use custody_agent::keystore::soft::SoftKeyStore;
use custody_agent::roles::JobError;
use custody_agent::roles::keymanager::KeyManager;
use custody_agent::roles::keymanager::keys::binding;
use custody_agent::roles::target::DeployError;
use custody_agent::roles::target::verify::{self, DeployIds};
use custody_envelope::jwe::{self, Binding};
use custody_envelope::keylist::KeyList;
use custody_envelope::{EnvelopeError, OaepHash, SymmetricKey};
use custody_proto::jobs::{JobOutput, JobPayload, SealedVariable, WrappedMasterKey};
use custody_proto::servers::KeyManagerKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};

const ACCOUNT: &str = "acc_1";
const MK_ID: &str = "mk_1";

fn soft() -> (tempfile::TempDir, SoftKeyStore) {
    let dir = tempfile::tempdir().unwrap();
    let cfg: SoftConfig = toml::from_str("key_bits = 2048").unwrap();
    let ks = SoftKeyStore::open(&cfg, dir.path()).unwrap();
    (dir, ks)
}

fn key_of(id: &str, ks: &dyn KeyStore) -> KeyManagerKey {
    KeyManagerKey {
        server_id: id.into(),
        name: id.into(),
        public_key_pem: ks.public_key().to_public_key_pem(LineEnding::LF).unwrap(),
        oaep_hashes: ks.supported_hashes().to_vec(),
        fingerprint: jwe::thumbprint(ks.public_key()),
    }
}

fn km(ks: &dyn KeyStore) -> KeyManager<'_> {
    KeyManager {
        keystore: ks,
        account: ACCOUNT,
        server_id: "srv_a",
    }
}

fn wrap(ks: &dyn KeyStore, b: &Binding, bytes: &[u8]) -> String {
    jwe::wrap(ks.public_key(), OaepHash::Sha256, b, bytes).unwrap()
}

fn open(ks: &dyn KeyStore, jwe_text: &str, b: &Binding) -> Vec<u8> {
    jwe::open_wrapped(jwe_text, ks.public_key(), b, |h, ek| ks.unwrap(h, ek))
        .unwrap()
        .to_vec()
}

fn wrapped_mk(ks: &dyn KeyStore, mk: &SymmetricKey) -> WrappedMasterKey {
    WrappedMasterKey {
        master_key_id: MK_ID.into(),
        jwe: wrap(ks, &binding::master_key(ACCOUNT), mk.as_bytes()),
    }
}

fn envelope_err(r: Result<JobOutput, JobError>) -> EnvelopeError {
    match r {
        Err(JobError::Envelope { source, .. }) => source,
        other => panic!("expected an envelope refusal, got {other:?}"),
    }
}

#[test]
fn create_and_share_wrap_mk_to_every_key_manager() {
    let (_a, ka) = soft();
    let (_b, kb) = soft();
    let (_c, kc) = soft();
    let out = km(&ka)
        .run(&JobPayload::CreateMasterKey {
            account: ACCOUNT.into(),
            master_key_id: MK_ID.into(),
            key_managers: vec![key_of("srv_a", &ka), key_of("srv_b", &kb)],
        })
        .unwrap();
    let JobOutput::CreateMasterKey {
        master_key_id,
        wrapped,
    } = out
    else {
        panic!()
    };
    assert_eq!(master_key_id, MK_ID);
    let b = binding::master_key(ACCOUNT);
    let mk_a = open(&ka, &wrapped[0].jwe, &b);
    let mk_b = open(&kb, &wrapped[1].jwe, &b);
    assert_eq!(mk_a, mk_b);
    assert_eq!(mk_a.len(), 32);
    assert_eq!(jwe::peek(&wrapped[0].jwe).unwrap().alg, "RSA-OAEP-256");

    // Share with a newcomer whose hardware only does SHA-1.
    let mut newcomer = key_of("srv_c", &kc);
    newcomer.oaep_hashes = vec![OaepHash::Sha1];
    let out = km(&kb)
        .run(&JobPayload::ShareMasterKey {
            account: ACCOUNT.into(),
            master_key: WrappedMasterKey {
                master_key_id: MK_ID.into(),
                jwe: wrapped[1].jwe.clone(),
            },
            newcomer,
        })
        .unwrap();
    let JobOutput::ShareMasterKey { wrapped: w } = out else {
        panic!()
    };
    assert_eq!(w.server_id, "srv_c");
    assert_eq!(jwe::peek(&w.jwe).unwrap().alg, "RSA-OAEP");
    assert_eq!(open(&kc, &w.jwe, &b), mk_a);

    // Not among the key managers: refused (the job would hand out a key
    // this server could not use).
    let r = km(&kc).run(&JobPayload::CreateMasterKey {
        account: ACCOUNT.into(),
        master_key_id: MK_ID.into(),
        key_managers: vec![key_of("srv_a", &ka)],
    });
    assert!(matches!(r, Err(JobError::InvalidJob(_))), "{r:?}");
    // A fingerprint that is not the key's: refused.
    let mut lying = key_of("srv_b", &kb);
    lying.fingerprint = jwe::thumbprint(ka.public_key());
    let r = km(&ka).run(&JobPayload::CreateMasterKey {
        account: ACCOUNT.into(),
        master_key_id: MK_ID.into(),
        key_managers: vec![key_of("srv_a", &ka), lying],
    });
    assert!(matches!(r, Err(JobError::InvalidJob(_))), "{r:?}");
    // Another account: refused before anything else.
    let r = km(&ka).run(&JobPayload::CreateMasterKey {
        account: "acc_other".into(),
        master_key_id: MK_ID.into(),
        key_managers: vec![key_of("srv_a", &ka)],
    });
    assert!(matches!(r, Err(JobError::WrongAccount { .. })));
    assert_eq!(r.unwrap_err().code(), "wrong_account");
}

#[test]
fn rewrap_seal_prepare_and_wrap_for_a_target() {
    let (_a, ka) = soft();
    let (_t, kt) = soft();
    let mk = SymmetricKey::generate().unwrap();
    let rk = SymmetricKey::generate().unwrap();
    let rk_b = binding::release_key(ACCOUNT, "web", "rel_1");

    // Rewrap: wrap(P_k, RK) → seal(MK, RK).
    let out = km(&ka)
        .run(&JobPayload::RewrapReleaseKey {
            account: ACCOUNT.into(),
            app: "web".into(),
            release_id: "rel_1".into(),
            master_key: wrapped_mk(&ka, &mk),
            wrapped_release_key: wrap(&ka, &rk_b, rk.as_bytes()),
        })
        .unwrap();
    let JobOutput::RewrapReleaseKey { sealed_release_key } = out else {
        panic!()
    };
    let h = jwe::peek(&sealed_release_key).unwrap();
    assert_eq!((h.alg.as_str(), h.kid.as_str()), ("dir", MK_ID));
    assert_eq!(
        jwe::open_sealed(&sealed_release_key, &mk, MK_ID, &rk_b)
            .unwrap()
            .as_slice(),
        rk.as_bytes()
    );

    // Seal a secret variable.
    let var_b = binding::secret_var(ACCOUNT, "web", "dev", "DB_PASSWORD");
    let out = km(&ka)
        .run(&JobPayload::SealSecretVariable {
            account: ACCOUNT.into(),
            app: "web".into(),
            environment: "dev".into(),
            name: "DB_PASSWORD".into(),
            master_key: wrapped_mk(&ka, &mk),
            wrapped_value: wrap(&ka, &var_b, b"hunter2"),
        })
        .unwrap();
    let JobOutput::SealSecretVariable { sealed_value } = out else {
        panic!()
    };

    // Prepare: key list under a fresh DK, DK under MK.
    let digest = [0xabu8; 32];
    let out = km(&ka)
        .run(&JobPayload::PrepareDeployment {
            account: ACCOUNT.into(),
            app: "web".into(),
            release_id: "rel_1".into(),
            deployment_id: "dep_1".into(),
            environment: "dev".into(),
            master_key: wrapped_mk(&ka, &mk),
            sealed_release_key: sealed_release_key.clone(),
            package_sha256: hex::encode(digest),
            secret_variables: vec![SealedVariable {
                name: "DB_PASSWORD".into(),
                jwe: sealed_value.clone(),
            }],
        })
        .unwrap();
    let JobOutput::PrepareDeployment {
        sealed_keylist,
        sealed_deploy_key,
    } = out
    else {
        panic!()
    };
    let dk_b = binding::deploy_key(ACCOUNT, "dep_1");
    let dk = jwe::open_sealed(&sealed_deploy_key, &mk, MK_ID, &dk_b).unwrap();
    let dk = SymmetricKey::from_slice(&dk).unwrap();

    // Wrap DK for the target, which opens everything with the target's checks.
    let out = km(&ka)
        .run(&JobPayload::WrapDeployKey {
            account: ACCOUNT.into(),
            app: "web".into(),
            release_id: "rel_1".into(),
            deployment_id: "dep_1".into(),
            master_key: wrapped_mk(&ka, &mk),
            sealed_deploy_key: sealed_deploy_key.clone(),
            target: key_of("srv_t", &kt),
        })
        .unwrap();
    let JobOutput::WrapDeployKey { wrapped_deploy_key } = out else {
        panic!()
    };
    let ids = DeployIds {
        account: ACCOUNT,
        app: "web",
        release: "rel_1",
        deployment: "dep_1",
    };
    let tdk = verify::unwrap_deploy_key(&kt, &ids, &wrapped_deploy_key).unwrap();
    assert_eq!(tdk.expose(), dk.as_bytes());
    let list: KeyList = verify::open_key_list(&tdk, &ids, &sealed_keylist).unwrap();
    assert_eq!(list.release, "rel_1");
    assert_eq!(list.release_key.as_bytes(), rk.as_bytes());
    assert_eq!(list.package_sha256, digest);
    assert_eq!(list.secrets.len(), 1);
    assert_eq!(list.secrets[0].name, "DB_PASSWORD");
    assert_eq!(list.secrets[0].value.as_str(), "hunter2");

    // The target refuses what is not bound to its deploy.
    let other_dep = DeployIds {
        deployment: "dep_2",
        ..ids.clone()
    };
    assert!(matches!(
        verify::unwrap_deploy_key(&kt, &other_dep, &wrapped_deploy_key),
        Err(DeployError::Envelope {
            source: EnvelopeError::JweBinding,
            ..
        })
    ));
    // A key wrapped to another server (here: the key manager).
    let foreign = wrap(&ka, &dk_b, dk.as_bytes());
    let e = verify::unwrap_deploy_key(&kt, &ids, &foreign).unwrap_err();
    assert!(matches!(
        e,
        DeployError::Envelope {
            source: EnvelopeError::JweKid,
            ..
        }
    ));
    assert_eq!(e.code(), "binding_mismatch");
    // A key list of another release.
    let other_rel = DeployIds {
        release: "rel_2",
        ..ids.clone()
    };
    assert!(matches!(
        verify::open_key_list(&tdk, &other_rel, &sealed_keylist),
        Err(DeployError::Envelope {
            source: EnvelopeError::JweBinding,
            ..
        })
    ));
}

#[test]
fn jwes_bound_to_something_else_are_refused_before_any_unwrap() {
    let (_a, ka) = soft();
    let (_b, kb) = soft();
    let mk = SymmetricKey::generate().unwrap();
    let rk = SymmetricKey::generate().unwrap();
    let rewrap = |release_key_binding: &Binding, mk_wrap: WrappedMasterKey| {
        km(&ka).run(&JobPayload::RewrapReleaseKey {
            account: ACCOUNT.into(),
            app: "web".into(),
            release_id: "rel_1".into(),
            master_key: mk_wrap,
            wrapped_release_key: wrap(&ka, release_key_binding, rk.as_bytes()),
        })
    };
    let right = binding::release_key(ACCOUNT, "web", "rel_1");
    // RK of another release, of another app, of another account.
    for b in [
        binding::release_key(ACCOUNT, "web", "rel_2"),
        binding::release_key(ACCOUNT, "api", "rel_1"),
        binding::release_key("acc_2", "web", "rel_1"),
        binding::secret_var(ACCOUNT, "web", "dev", "rel_1"),
    ] {
        let e = envelope_err(rewrap(&b, wrapped_mk(&ka, &mk)));
        assert!(matches!(e, EnvelopeError::JweBinding), "{b:?}: {e:?}");
    }
    // MK wrapped to another key manager.
    let e = envelope_err(rewrap(&right, wrapped_mk(&kb, &mk)));
    assert!(matches!(e, EnvelopeError::JweKid));
    // MK bound as something else (a release key wrap passed as MK).
    let as_mk = WrappedMasterKey {
        master_key_id: MK_ID.into(),
        jwe: wrap(&ka, &right, mk.as_bytes()),
    };
    let e = envelope_err(rewrap(&right, as_mk));
    assert!(matches!(e, EnvelopeError::JweBinding));
    let r = rewrap(
        &binding::release_key(ACCOUNT, "web", "rel_2"),
        wrapped_mk(&ka, &mk),
    );
    assert_eq!(r.unwrap_err().failure().code, "binding_mismatch");

    // A tampered encrypted key: the keystore's one indistinguishable error.
    let mut tampered = wrapped_mk(&ka, &mk);
    let mut parts: Vec<String> = tampered.jwe.split('.').map(str::to_owned).collect();
    let mut ek = parts[1].clone().into_bytes();
    ek[10] = if ek[10] == b'A' { b'B' } else { b'A' };
    parts[1] = String::from_utf8(ek).unwrap();
    tampered.jwe = parts.join(".");
    let r = rewrap(&right, tampered);
    assert!(matches!(r, Err(JobError::Unwrap { .. })), "{r:?}");
    let f = r.unwrap_err().failure();
    assert_eq!(f.code, "unwrap_failed");
    assert!(f.retryable, "another key manager may succeed");

    // seal(MK, RK) under another master key id, or of another release.
    let sealed = jwe::seal(&mk, MK_ID, &right, rk.as_bytes()).unwrap();
    let prepare = |sealed_release_key: String, secret: Vec<SealedVariable>| {
        km(&ka).run(&JobPayload::PrepareDeployment {
            account: ACCOUNT.into(),
            app: "web".into(),
            release_id: "rel_1".into(),
            deployment_id: "dep_1".into(),
            environment: "dev".into(),
            master_key: wrapped_mk(&ka, &mk),
            sealed_release_key,
            package_sha256: "ab".repeat(32),
            secret_variables: secret,
        })
    };
    let other_mk = jwe::seal(&mk, "mk_2", &right, rk.as_bytes()).unwrap();
    assert!(matches!(
        envelope_err(prepare(other_mk, vec![])),
        EnvelopeError::JweKid
    ));
    // A secret variable of another app, of another environment of this app
    // (a coordinator moving prod's secret into dev), or listed under another name.
    let var = jwe::seal(
        &mk,
        MK_ID,
        &binding::secret_var(ACCOUNT, "api", "dev", "X"),
        b"v",
    )
    .unwrap();
    let e = envelope_err(prepare(
        sealed.clone(),
        vec![SealedVariable {
            name: "X".into(),
            jwe: var,
        }],
    ));
    assert!(matches!(e, EnvelopeError::JweBinding));
    let var = jwe::seal(
        &mk,
        MK_ID,
        &binding::secret_var(ACCOUNT, "web", "prod", "X"),
        b"v",
    )
    .unwrap();
    let e = envelope_err(prepare(
        sealed.clone(),
        vec![SealedVariable {
            name: "X".into(),
            jwe: var,
        }],
    ));
    assert!(matches!(e, EnvelopeError::JweBinding));
    let var = jwe::seal(
        &mk,
        MK_ID,
        &binding::secret_var(ACCOUNT, "web", "dev", "X"),
        b"v",
    )
    .unwrap();
    let e = envelope_err(prepare(
        sealed.clone(),
        vec![SealedVariable {
            name: "Y".into(),
            jwe: var,
        }],
    ));
    assert!(matches!(e, EnvelopeError::JweBinding));
    // A digest that is not lower-case hex.
    let r = km(&ka).run(&JobPayload::PrepareDeployment {
        account: ACCOUNT.into(),
        app: "web".into(),
        release_id: "rel_1".into(),
        deployment_id: "dep_1".into(),
        environment: "dev".into(),
        master_key: wrapped_mk(&ka, &mk),
        sealed_release_key: sealed,
        package_sha256: "AB".repeat(32),
        secret_variables: vec![],
    });
    assert!(matches!(r, Err(JobError::InvalidJob(_))));
    // Failure messages carry no key material.
    let msg = r.unwrap_err().failure().message;
    assert!(!msg.contains(&hex::encode(mk.as_bytes())));
}
