//! Custody's own test vectors (`tests/vectors/*.json`, also written out in
//! docs/FORMAT.md): fixed inputs → exact bytes for packages, key lists and
//! signed descriptors; committed JWEs (random IVs) that must open.
//!
//! `CUSTODY_WRITE_VECTORS=1 cargo test -p custody-envelope --test vectors`
//! rewrites the files from the current code (then review the diff: a change
//! in bytes is a format change).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use custody_envelope::descriptor::{PublisherKey, ReleaseDescriptor, SignedDescriptor};
use custody_envelope::jwe::{self, Binding, Purpose};
use custody_envelope::keylist::{KeyList, SecretVar};
use custody_envelope::package::{self, Header};
use custody_envelope::{OaepHash, SymmetricKey, stream};
use rsa::pkcs8::DecodePrivateKey;
use serde_json::{Value, json};
use std::path::PathBuf;
use zeroize::Zeroizing;

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name)
}

fn writing() -> bool {
    std::env::var_os("CUSTODY_WRITE_VECTORS").is_some()
}

fn load(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(path(name)).unwrap()).unwrap()
}

fn save(name: &str, v: &Value) {
    let mut s = serde_json::to_string_pretty(v).unwrap();
    s.push('\n');
    std::fs::write(path(name), s).unwrap();
}

fn h(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

/// Package vectors: (name, key byte, salt byte, header, plaintext).
/// (name, key byte, salt byte, [account, app, release], plaintext)
type PackageCase = (&'static str, u8, u8, [&'static str; 3], Vec<u8>);

fn package_cases() -> Vec<PackageCase> {
    vec![
        ("empty", 0x01, 0x02, ["acme", "web", "r-1"], vec![]),
        (
            "short",
            0x42,
            0x24,
            ["acme", "web", "2024.06.01-1"],
            b"hello, custody\n".to_vec(),
        ),
        (
            "two-chunks",
            0x07,
            0x70,
            ["ünïcode \"acct\"", "app/β", "r\\7"],
            (0..16384 + 5).map(|i| (i % 256) as u8).collect(),
        ),
    ]
}

#[test]
fn package_vectors() {
    let name = "package-v1.json";
    let mut computed = Vec::new();
    for (case, k, s, [account, app, release], plain) in package_cases() {
        let key = SymmetricKey::from_bytes([k; 32]);
        let salt = [s; 24];
        let header = Header::new(account, app, release).unwrap();
        let pkg = package::encrypt_with_salt(&key, &salt, &header, &plain).unwrap();
        // The streaming encryptor produces the same bytes for the same salt.
        let mut streamed = header.lead().unwrap();
        stream::encrypt_body_with_salt(&key, &salt, &header.encode(), &plain[..], &mut streamed)
            .unwrap();
        assert_eq!(streamed, pkg, "{case}");
        computed.push(json!({
            "name": case,
            "key": hex::encode([k; 32]),
            "salt": hex::encode(salt),
            "account": account, "app": app, "release": release,
            "header": String::from_utf8(header.encode()).unwrap(),
            "plaintext": hex::encode(&plain),
            "package": hex::encode(&pkg),
        }));
    }
    let computed = json!({ "format": "custody package v1 (cobblestone-256)", "vectors": computed });
    if writing() {
        save(name, &computed);
    }
    let stored = load(name);
    assert_eq!(stored, computed, "package bytes changed: a format change");
    // And the stored bytes decrypt to the stored plaintext.
    for v in stored["vectors"].as_array().unwrap() {
        let key = SymmetricKey::from_slice(&h(&v["key"])).unwrap();
        let (hdr, plain) = package::decrypt(&key, &h(&v["package"])).unwrap();
        assert_eq!(hdr.encode(), v["header"].as_str().unwrap().as_bytes());
        assert_eq!(&plain[..], &h(&v["plaintext"])[..]);
    }
}

fn keylist_fixture() -> KeyList {
    KeyList {
        release: "2024.06.01-1".into(),
        release_key: SymmetricKey::from_bytes([0x42; 32]),
        package_sha256: [0xab; 32],
        secrets: vec![
            SecretVar {
                name: "DATABASE_URL".into(),
                value: Zeroizing::new("postgres://app@db/app".into()),
            },
            SecretVar {
                name: "API_TOKEN".into(),
                value: Zeroizing::new("t0k\"en\n".into()),
            },
        ],
    }
}

fn descriptor_fixture() -> (ed25519_dalek::SigningKey, SignedDescriptor) {
    let sk = ed25519_dalek::SigningKey::from_bytes(&[0x5e; 32]);
    let header = Header::new("acme", "web", "2024.06.01-1").unwrap();
    let d = ReleaseDescriptor::new(header, &[0xab; 32], &[0xcd; 32]).unwrap();
    let signed = d.sign(&sk).unwrap();
    (sk, signed)
}

fn binding() -> Binding {
    Binding {
        purpose: Purpose::ReleaseKey,
        account: "acme".into(),
        app: Some("web".into()),
        release: Some("2024.06.01-1".into()),
        deployment: None,
        name: None,
        environment: None,
    }
}

#[test]
fn keylist_descriptor_and_jwe_vectors() {
    let name = "objects-v1.json";
    let keylist = keylist_fixture().to_json().unwrap();
    let (sk, signed) = descriptor_fixture();
    let signed_json = signed.to_json().unwrap();
    let rsa_pem = include_str!("vectors/test-rsa-2048.pem");
    let rsa_sk = rsa::RsaPrivateKey::from_pkcs8_pem(rsa_pem).unwrap();
    let rsa_pk = rsa::RsaPublicKey::from(&rsa_sk);

    if writing() {
        let sealed = jwe::seal(
            &SymmetricKey::from_bytes([0x4d; 32]),
            "mk-acme-1",
            &binding(),
            &[0x42; 32],
        )
        .unwrap();
        let wrapped = jwe::wrap(&rsa_pk, OaepHash::Sha256, &binding(), &[0x42; 32]).unwrap();
        let wrapped_sha1 = jwe::wrap(&rsa_pk, OaepHash::Sha1, &binding(), &[0x42; 32]).unwrap();
        save(
            name,
            &json!({
                "keylist": String::from_utf8(keylist.to_vec()).unwrap(),
                "descriptor": {
                    "ed25519_seed": hex::encode([0x5e; 32]),
                    "public_key": hex::encode(sk.verifying_key().as_bytes()),
                    "signed": String::from_utf8(signed_json.clone()).unwrap(),
                },
                "seal": { "key": hex::encode([0x4d; 32]), "kid": "mk-acme-1", "plaintext": hex::encode([0x42; 32]), "jwe": sealed },
                "wrap": { "rsa_key": "test-rsa-2048.pem", "thumbprint": jwe::thumbprint(&rsa_pk),
                          "plaintext": hex::encode([0x42; 32]), "jwe_rsa_oaep_256": wrapped, "jwe_rsa_oaep": wrapped_sha1 },
            }),
        );
    }
    let v = load(name);
    // Deterministic objects: exact bytes.
    assert_eq!(v["keylist"].as_str().unwrap().as_bytes(), &keylist[..]);
    assert_eq!(
        v["descriptor"]["signed"].as_str().unwrap().as_bytes(),
        &signed_json[..]
    );
    let pk: [u8; 32] = h(&v["descriptor"]["public_key"]).try_into().unwrap();
    let parsed = SignedDescriptor::from_json(&signed_json).unwrap();
    parsed
        .verify(&[PublisherKey::from_bytes(&pk).unwrap()])
        .unwrap();
    // JWEs (random IVs): the committed ones must open.
    let s = &v["seal"];
    let key = SymmetricKey::from_slice(&h(&s["key"])).unwrap();
    let pt = jwe::open_sealed(
        s["jwe"].as_str().unwrap(),
        &key,
        s["kid"].as_str().unwrap(),
        &binding(),
    )
    .unwrap();
    assert_eq!(&pt[..], &h(&s["plaintext"])[..]);
    let w = &v["wrap"];
    assert_eq!(w["thumbprint"].as_str().unwrap(), jwe::thumbprint(&rsa_pk));
    for (field, hash) in [
        ("jwe_rsa_oaep_256", OaepHash::Sha256),
        ("jwe_rsa_oaep", OaepHash::Sha1),
    ] {
        let pt = jwe::open_wrapped(w[field].as_str().unwrap(), &rsa_pk, &binding(), |hh, ek| {
            assert_eq!(hh, hash);
            #[allow(clippy::disallowed_methods)] // test-only private key
            let r = match hh {
                OaepHash::Sha256 => rsa_sk.decrypt(rsa::Oaep::new::<rsa::sha2::Sha256>(), ek),
                OaepHash::Sha1 => rsa_sk.decrypt(rsa::Oaep::new::<sha1::Sha1>(), ek),
            };
            r.map(Zeroizing::new)
        })
        .unwrap();
        assert_eq!(&pt[..], &h(&w["plaintext"])[..]);
    }
}
