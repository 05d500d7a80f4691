//! JWE `wrap` / `seal`: round trips, refusals of wrong purpose, id and
//! kid, tampering, and that no key operation happens before the checks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use custody_envelope::jwe::{self, Binding, OpenError, Purpose};
use custody_envelope::rng::OsRng;
use custody_envelope::{EnvelopeError, OaepHash, SymmetricKey};
use proptest::prelude::*;
use rsa::{Oaep, RsaPrivateKey, RsaPublicKey};
use std::sync::OnceLock;
use zeroize::Zeroizing;

/// Test-only RSA keys (the private half stands in for the HSM).
fn keys() -> &'static (RsaPrivateKey, RsaPrivateKey) {
    static K: OnceLock<(RsaPrivateKey, RsaPrivateKey)> = OnceLock::new();
    K.get_or_init(|| {
        (
            RsaPrivateKey::new(&mut OsRng, 2048).unwrap(),
            RsaPrivateKey::new(&mut OsRng, 2048).unwrap(),
        )
    })
}

/// The "keystore": RSA-OAEP decryption with the test private key.
#[allow(clippy::disallowed_methods)]
fn soft_unwrap(
    sk: &RsaPrivateKey,
    hash: OaepHash,
    ek: &[u8],
) -> Result<Zeroizing<Vec<u8>>, rsa::Error> {
    let padding = match hash {
        OaepHash::Sha256 => Oaep::new::<rsa::sha2::Sha256>(),
        OaepHash::Sha1 => Oaep::new::<sha1::Sha1>(),
    };
    sk.decrypt(padding, ek).map(Zeroizing::new)
}

fn binding() -> Binding {
    Binding {
        purpose: Purpose::ReleaseKey,
        account: "acme".into(),
        app: Some("web".into()),
        release: Some("rel-1".into()),
        deployment: None,
        name: None,
        environment: None,
    }
}

fn wrong_bindings() -> Vec<Binding> {
    let b = binding();
    vec![
        Binding {
            purpose: Purpose::MasterKey,
            ..b.clone()
        },
        Binding {
            account: "other".into(),
            ..b.clone()
        },
        Binding {
            app: Some("api".into()),
            ..b.clone()
        },
        Binding {
            release: Some("rel-2".into()),
            ..b.clone()
        },
        Binding {
            release: None,
            ..b.clone()
        },
        Binding {
            deployment: Some("d-1".into()),
            ..b.clone()
        },
        Binding {
            name: Some("DB_PASSWORD".into()),
            ..b
        },
    ]
}

#[test]
fn wrap_round_trip_both_hashes() {
    let (sk, _) = keys();
    let pk = RsaPublicKey::from(sk);
    for hash in OaepHash::PREFERENCE {
        let jwe = jwe::wrap(&pk, hash, &binding(), b"release key bytes").unwrap();
        let h = jwe::peek(&jwe).unwrap();
        assert_eq!(h.alg, hash.jwe_alg());
        assert_eq!(h.kid, jwe::thumbprint(&pk));
        assert_eq!(h.binding, binding());
        let mut seen = None;
        let pt = jwe::open_wrapped(&jwe, &pk, &binding(), |hh, ek| {
            seen = Some(hh);
            soft_unwrap(sk, hh, ek)
        })
        .unwrap();
        assert_eq!(seen, Some(hash));
        assert_eq!(&pt[..], b"release key bytes");
    }
}

#[test]
fn wrap_refusals_happen_before_unwrap() {
    let (sk, other) = keys();
    let pk = RsaPublicKey::from(sk);
    let other_pk = RsaPublicKey::from(other);
    let jwe = jwe::wrap(&pk, OaepHash::Sha256, &binding(), b"k").unwrap();
    let never = |_: OaepHash, _: &[u8]| -> Result<Zeroizing<Vec<u8>>, rsa::Error> {
        panic!("unwrap must not be called")
    };
    for wrong in wrong_bindings() {
        assert!(matches!(
            jwe::open_wrapped(&jwe, &pk, &wrong, never),
            Err(OpenError::Envelope(EnvelopeError::JweBinding))
        ));
    }
    assert!(matches!(
        jwe::open_wrapped(&jwe, &other_pk, &binding(), never),
        Err(OpenError::Envelope(EnvelopeError::JweKid))
    ));
    // A sealed JWE is not a wrapped one.
    let sealed = jwe::seal(&SymmetricKey::from_bytes([1; 32]), "k1", &binding(), b"x").unwrap();
    assert!(matches!(
        jwe::open_wrapped(&sealed, &pk, &binding(), never),
        Err(OpenError::Envelope(EnvelopeError::JweAlgorithm))
    ));
    // The keystore's own error passes through.
    let r = jwe::open_wrapped(&jwe, &pk, &binding(), |_, _| {
        Err::<Zeroizing<Vec<u8>>, _>("hsm")
    });
    assert!(matches!(r, Err(OpenError::Unwrap("hsm"))));
}

#[test]
fn wrap_tampering_is_detected() {
    let (sk, _) = keys();
    let pk = RsaPublicKey::from(sk);
    let jwe = jwe::wrap(&pk, OaepHash::Sha256, &binding(), b"secret").unwrap();
    let parts: Vec<&str> = jwe.split('.').collect();
    // Flip a character in the ciphertext, the tag and the IV.
    for (i, part) in parts.iter().enumerate().skip(2) {
        let mut p = part.as_bytes().to_vec();
        p[0] = if p[0] == b'A' { b'B' } else { b'A' };
        let mut v: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
        v[i] = String::from_utf8(p).unwrap();
        let bad = v.join(".");
        let r = jwe::open_wrapped(&bad, &pk, &binding(), |h, ek| soft_unwrap(sk, h, ek));
        assert!(
            matches!(
                r,
                Err(OpenError::Envelope(
                    EnvelopeError::JweDecrypt | EnvelopeError::JweMalformed(_)
                ))
            ),
            "part {i}"
        );
    }
    // A header rewritten to another binding no longer authenticates.
    let mut h = jwe::peek(&jwe).unwrap();
    h.binding.release = Some("rel-2".into());
    let forged_hdr = base64_url(&h.encode().unwrap());
    let forged = [forged_hdr.as_str(), parts[1], parts[2], parts[3], parts[4]].join(".");
    let mut b2 = binding();
    b2.release = Some("rel-2".into());
    assert!(matches!(
        jwe::open_wrapped(&forged, &pk, &b2, |h, ek| soft_unwrap(sk, h, ek)),
        Err(OpenError::Envelope(EnvelopeError::JweDecrypt))
    ));
}

fn base64_url(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

#[test]
fn seal_refusals() {
    let key = SymmetricKey::from_bytes([7; 32]);
    let jwe = jwe::seal(&key, "mk-1", &binding(), b"payload").unwrap();
    assert_eq!(
        &jwe::open_sealed(&jwe, &key, "mk-1", &binding()).unwrap()[..],
        b"payload"
    );
    assert!(jwe.split('.').nth(1) == Some(""));
    for wrong in wrong_bindings() {
        assert!(matches!(
            jwe::open_sealed(&jwe, &key, "mk-1", &wrong),
            Err(EnvelopeError::JweBinding)
        ));
    }
    assert!(matches!(
        jwe::open_sealed(&jwe, &key, "mk-2", &binding()),
        Err(EnvelopeError::JweKid)
    ));
    assert!(matches!(
        jwe::open_sealed(&jwe, &SymmetricKey::from_bytes([8; 32]), "mk-1", &binding()),
        Err(EnvelopeError::JweDecrypt)
    ));
}

#[test]
fn parser_limits() {
    let key = SymmetricKey::from_bytes([7; 32]);
    type Check = fn(&EnvelopeError) -> bool;
    let cases: Vec<(String, Check)> = vec![
        ("a.b.c".into(), |e| {
            matches!(e, EnvelopeError::JweMalformed(_))
        }),
        ("a.b.c.d.e.f".into(), |e| {
            matches!(e, EnvelopeError::JweMalformed(_))
        }),
        (format!("{}.x.x.x.x", "A".repeat(5000)), |e| {
            matches!(e, EnvelopeError::JweTooLarge(_))
        }),
        ("A".repeat(3 * 1024 * 1024), |e| {
            matches!(e, EnvelopeError::JweTooLarge(_))
        }),
        (
            "eyJ.x.AAAAAAAAAAAAAAAA.x.AAAAAAAAAAAAAAAAAAAAAA".into(),
            |e| matches!(e, EnvelopeError::JweMalformed(_)),
        ),
    ];
    for (s, want) in cases {
        let e = jwe::open_sealed(&s, &key, "k", &binding()).unwrap_err();
        assert!(want(&e), "{e:?}");
        assert!(jwe::peek(&s).is_err());
    }
    let big = vec![0u8; jwe::MAX_PLAINTEXT_LEN + 1];
    assert!(matches!(
        jwe::seal(&key, "k", &binding(), &big),
        Err(EnvelopeError::JweTooLarge(_))
    ));
    assert!(matches!(
        jwe::seal(&key, "bad\nid", &binding(), b"x"),
        Err(EnvelopeError::Identifier("kid"))
    ));
}

#[test]
fn thumbprint_follows_rfc7638() {
    // RFC 7638 §3.1 example key.
    use base64::Engine;
    let d = |s: &str| {
        rsa::BigUint::from_bytes_be(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .unwrap(),
        )
    };
    let n = d(concat!(
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP",
        "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY",
        "368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0f",
        "M4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ));
    let pk = RsaPublicKey::new(n, d("AQAB")).unwrap();
    assert_eq!(
        jwe::thumbprint(&pk),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn seal_round_trip(key in any::<[u8; 32]>(), pt in proptest::collection::vec(any::<u8>(), 0..2048),
                       account in "[a-z0-9-]{1,20}", release in proptest::option::of("[a-z0-9.-]{1,20}")) {
        let key = SymmetricKey::from_bytes(key);
        let b = Binding { purpose: Purpose::KeyList, account, app: None, release, deployment: Some("d".into()), name: None, environment: None };
        let jwe = jwe::seal(&key, "dk-1", &b, &pt).unwrap();
        prop_assert_eq!(&jwe::open_sealed(&jwe, &key, "dk-1", &b).unwrap()[..], &pt[..]);
    }

    #[test]
    fn wrap_round_trip(pt in proptest::collection::vec(any::<u8>(), 0..512), sha1 in any::<bool>()) {
        let (sk, _) = keys();
        let pk = RsaPublicKey::from(sk);
        let hash = if sha1 { OaepHash::Sha1 } else { OaepHash::Sha256 };
        let b = Binding { purpose: Purpose::SecretVar, account: "a".into(), app: Some("p".into()), release: None, deployment: None, name: Some("DB_URL".into()), environment: None };
        let jwe = jwe::wrap(&pk, hash, &b, &pt).unwrap();
        let got = jwe::open_wrapped(&jwe, &pk, &b, |h, ek| soft_unwrap(sk, h, ek)).unwrap();
        prop_assert_eq!(&got[..], &pt[..]);
    }
}
