//! Wycheproof vectors through the production code paths:
//! - every AES-GCM vector with a 256-bit key, 96-bit nonce and 128-bit tag
//!   through `jwe::content`, the A256GCM layer of every JWE `wrap`/`seal`;
//! - every Cobblestone-256 vector through `chunked::open`, `stream::decrypt_body`
//!   and `stream::decrypt_body_parallel`, and valid ones re-encrypted with
//!   their salt through `chunked::seal_with_salt`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use custody_envelope::chunked::{self, PREFIX_LEN, SALT_LEN};
use custody_envelope::{EnvelopeError, SymmetricKey, jwe, stream};
use sha2::{Digest, Sha512};
use wycheproof::TestResult;

fn inflate(z: &[u8]) -> Vec<u8> {
    miniz_oxide::inflate::decompress_to_vec_zlib(z).expect("zlib")
}

#[test]
fn cobblestone256_vectors() {
    use wycheproof::chunked_encryption::{ChunkedEncryptionAead, TestFlag, TestName, TestSet};
    let set = TestSet::load(TestName::Cobblestone256).unwrap();
    let (mut valid, mut invalid, mut reencrypted) = (0usize, 0usize, 0usize);
    for group in &set.test_groups {
        assert_eq!(group.aead, ChunkedEncryptionAead::Aes256Gcm);
        for t in &group.tests {
            let ct = inflate(&t.ct);
            let key = match SymmetricKey::from_slice(&t.key) {
                Ok(k) => k,
                Err(e) => {
                    assert_eq!(t.result, TestResult::Invalid, "tc {}", t.tc_id);
                    assert!(t.flags.contains(&TestFlag::InvalidKeySize));
                    assert!(matches!(e, EnvelopeError::KeyLength { .. }));
                    invalid += 1;
                    continue;
                }
            };
            let whole = chunked::open(&key, &t.ctx, &ct);
            let mut streamed = Vec::new();
            let serial = stream::decrypt_body(&key, &t.ctx, &ct[..], &mut streamed);
            let mut par_out = Vec::new();
            let par = stream::decrypt_body_parallel(&key, &t.ctx, &ct[..], &mut par_out, 2);
            match t.result {
                TestResult::Valid | TestResult::Acceptable => {
                    let pt = whole.unwrap_or_else(|e| panic!("tc {}: {e:?}", t.tc_id));
                    serial.unwrap_or_else(|e| panic!("tc {} stream: {e:?}", t.tc_id));
                    par.unwrap_or_else(|e| panic!("tc {} parallel: {e:?}", t.tc_id));
                    assert_eq!(Some(pt.len()), t.msg_length, "tc {}", t.tc_id);
                    let digest = Sha512::digest(&pt[..]);
                    assert_eq!(
                        Some(&digest[..]),
                        t.msg_sha512.as_deref().map(|v| &v[..]),
                        "tc {}",
                        t.tc_id
                    );
                    assert_eq!(&streamed[..], &pt[..]);
                    assert_eq!(&par_out[..], &pt[..]);
                    // Encryption: same key, context and salt give the same bytes.
                    let salt: [u8; SALT_LEN] = ct[..SALT_LEN].try_into().unwrap();
                    let again = chunked::seal_with_salt(&key, &salt, &t.ctx, &pt).unwrap();
                    assert_eq!(again, ct, "tc {} re-encryption", t.tc_id);
                    let mut enc_out = Vec::new();
                    stream::encrypt_body_with_salt(&key, &salt, &t.ctx, &pt[..], &mut enc_out)
                        .unwrap();
                    assert_eq!(enc_out, ct, "tc {} streamed re-encryption", t.tc_id);
                    reencrypted += 1;
                    valid += 1;
                }
                TestResult::Invalid => {
                    let e = whole
                        .err()
                        .unwrap_or_else(|| panic!("tc {} accepted", t.tc_id));
                    assert!(serial.is_err() && par.is_err(), "tc {}", t.tc_id);
                    assert!(
                        matches!(
                            e,
                            EnvelopeError::Commitment
                                | EnvelopeError::Truncated
                                | EnvelopeError::ChunkAuthentication { .. }
                        ),
                        "tc {}: {e:?}",
                        t.tc_id
                    );
                    if t.flags.contains(&TestFlag::HeaderFailure) {
                        // Nothing may be released when the prefix fails.
                        assert!(streamed.is_empty() && par_out.is_empty());
                        assert!(matches!(
                            e,
                            EnvelopeError::Commitment | EnvelopeError::Truncated
                        ));
                    }
                    // Streaming may release at most the valid prefix.
                    let limit = t.msg_length.unwrap_or(0);
                    assert!(streamed.len() <= limit && par_out.len() <= limit);
                    if ct.len() < PREFIX_LEN {
                        assert!(matches!(e, EnvelopeError::Truncated));
                    }
                    invalid += 1;
                }
            }
        }
    }
    let total = valid + invalid;
    println!("Cobblestone-256: {valid} valid, {invalid} invalid, {reencrypted} re-encrypted");
    assert_eq!(total, set.number_of_tests, "every vector ran");
    assert!(valid > 0 && invalid > 0);
}

#[test]
fn aes_gcm_256_vectors() {
    use wycheproof::aead::{TestName, TestSet};
    let set = TestSet::load(TestName::AesGcm).unwrap();
    let (mut valid, mut invalid, mut skipped) = (0usize, 0usize, 0usize);
    for group in &set.test_groups {
        if group.key_size != 256 || group.nonce_size != 96 || group.tag_size != 128 {
            skipped += group.tests.len();
            continue;
        }
        for t in &group.tests {
            let key = SymmetricKey::from_slice(&t.key).unwrap();
            let nonce: [u8; 12] = t.nonce[..].try_into().unwrap();
            let tag: [u8; 16] = t.tag[..].try_into().unwrap();
            let opened = jwe::content::decrypt(&key, &nonce, &t.aad, &t.ct, &tag);
            match t.result {
                TestResult::Valid | TestResult::Acceptable => {
                    let pt = opened.unwrap_or_else(|e| panic!("tc {}: {e:?}", t.tc_id));
                    assert_eq!(&pt[..], &t.pt[..], "tc {}", t.tc_id);
                    let (ct, tag2) = jwe::content::encrypt(&key, &nonce, &t.aad, &t.pt).unwrap();
                    assert_eq!((&ct[..], &tag2[..]), (&t.ct[..], &t.tag[..]));
                    valid += 1;
                }
                TestResult::Invalid => {
                    assert!(
                        matches!(opened, Err(EnvelopeError::JweDecrypt)),
                        "tc {} accepted",
                        t.tc_id
                    );
                    invalid += 1;
                }
            }
        }
    }
    println!(
        "AES-256-GCM: {valid} valid, {invalid} invalid ({skipped} of other sizes not applicable)"
    );
    assert!(valid > 0 && invalid > 0);
}
