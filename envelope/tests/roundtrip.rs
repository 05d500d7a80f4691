//! Property round trips: packages (whole buffer, streamed, parallel, and
//! every cross combination), key lists, descriptors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use custody_envelope::descriptor::{PublisherKey, ReleaseDescriptor, SignedDescriptor};
use custody_envelope::keylist::{KeyList, SecretVar};
use custody_envelope::package::{self, Header};
use custody_envelope::{EnvelopeError, SymmetricKey, stream};
use proptest::prelude::*;
use std::io::Read;
use zeroize::Zeroizing;

/// Reads in small, uneven pieces, like a pipe.
struct Trickle<'a>(&'a [u8], usize);
impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.0.len()).min(self.1);
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

fn id() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._ü-]{1,24}"
}

/// Lengths around chunk and batch boundaries, and random ones.
fn length() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0usize),
        Just(16383),
        Just(16384),
        Just(16385),
        Just(64 * 16384),
        Just(64 * 16384 + 1),
        0usize..200_000,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn package_round_trips_every_way(len in length(), seed in any::<u8>(), key in any::<[u8; 32]>(),
                                     account in id(), app in id(), release in id(),
                                     threads in 1usize..4, piece in 1usize..70_000) {
        let plain: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(seed | 1)).collect();
        let key = SymmetricKey::from_bytes(key);
        let header = Header::new(account, app, release).unwrap();

        let whole = package::encrypt(&key, &header, &plain).unwrap();
        let mut serial = Vec::new();
        prop_assert_eq!(stream::encrypt_stream(&key, &header, Trickle(&plain, piece), &mut serial).unwrap(), len as u64);
        let mut par = Vec::new();
        prop_assert_eq!(stream::encrypt_parallel(&key, &header, Trickle(&plain, piece), &mut par, threads).unwrap(), len as u64);
        prop_assert_eq!(whole.len(), serial.len());
        prop_assert_eq!(whole.len(), par.len());

        for pkg in [&whole, &serial, &par] {
            let (h, p) = package::decrypt(&key, pkg).unwrap();
            prop_assert_eq!(&h, &header);
            prop_assert_eq!(&p[..], &plain[..]);
            let mut out = Vec::new();
            prop_assert_eq!(&stream::decrypt_stream(&key, Trickle(pkg, piece), &mut out).unwrap(), &header);
            prop_assert_eq!(&out[..], &plain[..]);
            let mut out = Vec::new();
            prop_assert_eq!(&stream::decrypt_parallel(&key, Trickle(pkg, piece), &mut out, threads).unwrap(), &header);
            prop_assert_eq!(&out[..], &plain[..]);
        }
    }

    #[test]
    fn keylist_round_trip(release in id(), key in any::<[u8; 32]>(), digest in any::<[u8; 32]>(),
                          secrets in proptest::collection::btree_map("[A-Z_][A-Z0-9_]{0,12}", "[^\u{0}]{0,40}", 0..6)) {
        let kl = KeyList {
            release: release.clone(),
            release_key: SymmetricKey::from_bytes(key),
            package_sha256: digest,
            secrets: secrets.iter().map(|(n, v)| SecretVar { name: n.clone(), value: Zeroizing::new(v.clone()) }).collect(),
        };
        let json = kl.to_json().unwrap();
        custody_envelope::canonical::validate(&json).unwrap();
        let back = KeyList::from_json(&json).unwrap();
        prop_assert_eq!(back.release, release);
        prop_assert_eq!(back.release_key.as_bytes(), &key);
        prop_assert_eq!(back.package_sha256, digest);
        let got: Vec<(String, String)> = back.secrets.iter().map(|s| (s.name.clone(), s.value.to_string())).collect();
        let want: Vec<(String, String)> = secrets.into_iter().collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn descriptor_round_trip(account in id(), app in id(), release in id(),
                             pkg in any::<[u8; 32]>(), manifest in any::<[u8; 32]>(), sk in any::<[u8; 32]>()) {
        let header = Header::new(account, app, release).unwrap();
        let d = ReleaseDescriptor::new(header, &pkg, &manifest).unwrap();
        let sk = ed25519_dalek::SigningKey::from_bytes(&sk);
        let signed = d.sign(&sk).unwrap();
        let json = signed.to_json().unwrap();
        let back = SignedDescriptor::from_json(&json).unwrap();
        prop_assert_eq!(back.verify(&[PublisherKey::new(sk.verifying_key())]).unwrap(), &d);
        prop_assert_eq!(back.descriptor.package_digest().unwrap(), pkg);
        // Any change to the bytes is refused at parse or at verify.
        let mut bad = json.clone();
        let i = (pkg[0] as usize * 7) % bad.len();
        bad[i] ^= 0x01;
        let refused = match SignedDescriptor::from_json(&bad) {
            Err(_) => true,
            Ok(s) => s.verify(&[PublisherKey::new(sk.verifying_key())]).is_err(),
        };
        prop_assert!(refused);
    }
}

#[test]
fn parallel_decrypt_stops_at_the_first_bad_batch() {
    // 3 batches; damage the second: the first batch may be released, the
    // rest never is, and the error names a chunk of batch two.
    let key = SymmetricKey::from_bytes([4; 32]);
    let header = Header::new("a", "b", "c").unwrap();
    let plain = vec![0x5au8; 3 * 64 * 16384 - 5];
    let mut pkg = package::encrypt(&key, &header, &plain).unwrap();
    let (_, body_at) = package::parse_lead(&pkg).unwrap();
    let at = body_at + 56 + 70 * 16400 + 5;
    pkg[at] ^= 1;
    for threads in [1, 2, 3] {
        let mut out = Vec::new();
        let e = stream::decrypt_parallel(&key, &pkg[..], &mut out, threads).unwrap_err();
        assert!(
            matches!(e, EnvelopeError::ChunkAuthentication { index: 70 }),
            "{e:?}"
        );
        assert!(out.len() <= 64 * 16384);
        assert!(out.iter().all(|&b| b == 0x5a));
    }
}

#[test]
fn write_errors_are_typed() {
    struct Broken;
    impl std::io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let key = SymmetricKey::from_bytes([4; 32]);
    let header = Header::new("a", "b", "c").unwrap();
    assert!(matches!(
        stream::encrypt_parallel(&key, &header, &[1u8; 100][..], Broken, 2),
        Err(EnvelopeError::Write(_))
    ));
}

#[test]
fn threaded_paths_round_trip_many_batches() {
    // Over two batches, so the stream drivers start their worker threads.
    let key = SymmetricKey::from_bytes([6; 32]);
    let header = Header::new("a", "b", "c").unwrap();
    for len in [3 * 64 * 16384 + 5] {
        let plain: Vec<u8> = (0..len).map(|i| (i % 241) as u8).collect();
        for threads in [1, 3] {
            let mut pkg = Vec::new();
            stream::encrypt_parallel(&key, &header, Trickle(&plain, 300_000), &mut pkg, threads)
                .unwrap();
            let (_, p) = package::decrypt(&key, &pkg).unwrap();
            assert!(p[..] == plain[..]);
            let mut out = Vec::new();
            stream::decrypt_parallel(&key, Trickle(&pkg, 200_000), &mut out, threads).unwrap();
            assert!(out == plain);
        }
    }
}
