//! The body of a package: C2SP chunked encryption
//! (<https://c2sp.org/chunked-encryption>) instantiated as Cobblestone-256,
//! i.e. HKDF-Expand-SHA-512 and `AEAD_AES_256_GCM`.
//!
//! ```text
//! key ‖ base nonce ‖ commitment = HKDF-Expand-SHA-512(prk = input key,
//!     info = "c2sp.org/chunked-encryption@v1+" ‖ "AEAD_AES_256_GCM" ‖ 0x00 ‖ salt ‖ context, L = 76)
//! body = salt(24) ‖ commitment(32) ‖ AES-256-GCM(key, base nonce ⊕ i, aad = "", chunk_i) …
//! ```
//! Chunks are 16 KiB of plaintext; the last is always shorter (possibly
//! empty). This module is pure: whole-buffer [`seal`] / [`open`], and the
//! index-addressed [`BodyKey`] that the streaming and parallel drivers in
//! `crate::stream` build on.

use crate::{EnvelopeError, SymmetricKey};
use aes_gcm::aead::{AeadInOut, KeyInit, inout::InOutBuf};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use hmac::{Hmac, Mac};
use sha2::Sha512;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Plaintext bytes per full chunk.
pub const CHUNK_LEN: usize = 16 * 1024;
/// AES-GCM tag length.
pub const TAG_LEN: usize = 16;
/// Ciphertext bytes per full chunk.
pub const SEALED_CHUNK_LEN: usize = CHUNK_LEN + TAG_LEN;
/// Salt length.
pub const SALT_LEN: usize = 24;
/// Key commitment length.
pub const COMMITMENT_LEN: usize = 32;
/// Salt ‖ commitment.
pub const PREFIX_LEN: usize = SALT_LEN + COMMITMENT_LEN;
/// The spec's chunk limit: 2^38 chunks (4 PiB).
pub const MAX_CHUNKS: u64 = 1 << 38;
/// The AEAD name, from the IANA AEAD registry, as it enters the HKDF info.
pub const AEAD_NAME: &str = "AEAD_AES_256_GCM";
/// The HKDF info prefix.
pub const INFO_PREFIX: &str = "c2sp.org/chunked-encryption@v1+";

const NONCE_LEN: usize = 12;
const OKM_LEN: usize = 32 + NONCE_LEN + COMMITMENT_LEN;

/// Length of the ciphertext body (prefix included) for a plaintext length.
pub fn sealed_len(plaintext_len: u64) -> u64 {
    let full = plaintext_len / CHUNK_LEN as u64;
    PREFIX_LEN as u64 + plaintext_len + (full + 1) * TAG_LEN as u64
}

/// The derived per-message AEAD key and base nonce. Shared by reference
/// between worker threads; zeroized on drop (aes-gcm `zeroize` feature).
pub struct BodyKey {
    aead: Aes256Gcm,
    base_nonce: [u8; NONCE_LEN],
}

impl std::fmt::Debug for BodyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BodyKey(..)")
    }
}

impl Drop for BodyKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.base_nonce);
    }
}

/// HKDF-Expand (RFC 5869 §2.3) with HMAC-SHA-512, for `OKM_LEN` bytes.
fn hkdf_expand_sha512(prk: &[u8], info: &[&[u8]]) -> Zeroizing<[u8; OKM_LEN]> {
    const HASH_LEN: usize = 64;
    let mut okm = Zeroizing::new([0u8; OKM_LEN]);
    let mut t = Zeroizing::new([0u8; HASH_LEN]);
    let mut t_len = 0;
    let mut filled = 0;
    let mut counter = 1u8;
    while filled < OKM_LEN {
        // HMAC accepts keys of any length: this cannot fail.
        let mut mac = match <Hmac<Sha512> as KeyInit>::new_from_slice(prk) {
            Ok(m) => m,
            Err(_) => impossible(),
        };
        mac.update(&t[..t_len]);
        for part in info {
            mac.update(part);
        }
        mac.update(&[counter]);
        let mut block = mac.finalize().into_bytes();
        t.copy_from_slice(&block);
        zeroize::Zeroize::zeroize(block.as_mut_slice());
        t_len = HASH_LEN;
        let take = (OKM_LEN - filled).min(HASH_LEN);
        okm[filled..filled + take].copy_from_slice(&t[..take]);
        filled += take;
        counter += 1;
    }
    okm
}

/// For branches that fixed sizes rule out (a 32-byte slice refused as a
/// 32-byte key). Aborting is the honest answer; it never happens.
#[cold]
fn impossible() -> ! {
    std::process::abort()
}

impl BodyKey {
    /// Derives the AEAD key, base nonce and commitment for one message.
    pub fn derive(
        input_key: &SymmetricKey,
        salt: &[u8; SALT_LEN],
        context: &[u8],
    ) -> (BodyKey, [u8; COMMITMENT_LEN]) {
        let okm = hkdf_expand_sha512(
            input_key.as_bytes(),
            &[
                INFO_PREFIX.as_bytes(),
                AEAD_NAME.as_bytes(),
                &[0],
                salt,
                context,
            ],
        );
        let aead = match Aes256Gcm::new_from_slice(&okm[..32]) {
            Ok(a) => a,
            Err(_) => impossible(),
        };
        let mut base_nonce = [0u8; NONCE_LEN];
        base_nonce.copy_from_slice(&okm[32..32 + NONCE_LEN]);
        let mut commitment = [0u8; COMMITMENT_LEN];
        commitment.copy_from_slice(&okm[32 + NONCE_LEN..]);
        (BodyKey { aead, base_nonce }, commitment)
    }

    /// Derives the key for decryption and checks the 56-byte prefix's
    /// commitment (constant time) before any chunk can be opened.
    pub fn open_prefix(
        input_key: &SymmetricKey,
        prefix: &[u8; PREFIX_LEN],
        context: &[u8],
    ) -> Result<BodyKey, EnvelopeError> {
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&prefix[..SALT_LEN]);
        let (key, commitment) = Self::derive(input_key, &salt, context);
        if bool::from(commitment.ct_eq(&prefix[SALT_LEN..])) {
            Ok(key)
        } else {
            Err(EnvelopeError::Commitment)
        }
    }

    fn nonce(&self, index: u64) -> Result<Nonce<aes_gcm::aead::consts::U12>, EnvelopeError> {
        if index >= MAX_CHUNKS {
            return Err(EnvelopeError::TooManyChunks);
        }
        let mut n = self.base_nonce;
        for (b, c) in n[4..].iter_mut().zip(index.to_be_bytes()) {
            *b ^= c;
        }
        Ok(Nonce::from(n))
    }

    /// Encrypts chunk `index` from `plaintext` into `out`, which must be
    /// exactly `plaintext.len() + TAG_LEN` bytes (ciphertext ‖ tag).
    /// `plaintext` must be `CHUNK_LEN` bytes, or shorter for the final chunk.
    pub fn seal_chunk(
        &self,
        index: u64,
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<(), EnvelopeError> {
        let nonce = self.nonce(index)?;
        let n = plaintext.len();
        if n > CHUNK_LEN || out.len() != n + TAG_LEN {
            return Err(EnvelopeError::Worker("seal_chunk: bad buffer sizes"));
        }
        let (body, tag_out) = out.split_at_mut(n);
        let buf = InOutBuf::new(plaintext, body)
            .map_err(|_| EnvelopeError::Worker("seal_chunk: bad buffer sizes"))?;
        let tag = self
            .aead
            .encrypt_inout_detached(&nonce, &[], buf)
            .map_err(|_| EnvelopeError::Worker("seal_chunk: AEAD refused the chunk"))?;
        tag_out.copy_from_slice(&tag);
        Ok(())
    }

    /// Decrypts chunk `index` (`ciphertext` = ciphertext ‖ tag) into `out`
    /// (`ciphertext.len() - TAG_LEN` bytes). On failure `out` is zeroed, so
    /// no unverified plaintext survives.
    pub fn open_chunk(
        &self,
        index: u64,
        ciphertext: &[u8],
        out: &mut [u8],
    ) -> Result<(), EnvelopeError> {
        let nonce = self.nonce(index)?;
        let Some(n) = ciphertext.len().checked_sub(TAG_LEN) else {
            return Err(EnvelopeError::Truncated);
        };
        if n > CHUNK_LEN || out.len() != n {
            return Err(EnvelopeError::Worker("open_chunk: bad buffer sizes"));
        }
        let (body, tag) = ciphertext.split_at(n);
        let tag = Tag::try_from(tag).map_err(|_| EnvelopeError::Truncated)?;
        let buf = InOutBuf::new(body, out)
            .map_err(|_| EnvelopeError::Worker("open_chunk: bad buffer sizes"))?;
        if self
            .aead
            .decrypt_inout_detached(&nonce, &[], buf, &tag)
            .is_err()
        {
            out.fill(0);
            return Err(EnvelopeError::ChunkAuthentication { index });
        }
        Ok(())
    }

    /// Encrypts a run of chunks starting at chunk `first`. Every chunk of
    /// `plaintext` is full except, when `last` is true, the final one,
    /// which is `plaintext.len() % CHUNK_LEN` bytes (possibly empty).
    /// When `last` is false, `plaintext.len()` must be a multiple of
    /// `CHUNK_LEN`. Returns the bytes written to `out`.
    pub fn seal_run(
        &self,
        first: u64,
        plaintext: &[u8],
        out: &mut [u8],
        last: bool,
    ) -> Result<usize, EnvelopeError> {
        let full = plaintext.len() / CHUNK_LEN;
        let rem = plaintext.len() % CHUNK_LEN;
        if !last && rem != 0 {
            return Err(EnvelopeError::Worker(
                "seal_run: partial chunk before the end",
            ));
        }
        let total = full * SEALED_CHUNK_LEN + if last { rem + TAG_LEN } else { 0 };
        if out.len() < total {
            return Err(EnvelopeError::Worker("seal_run: output buffer too small"));
        }
        let mut index = first;
        for (p, o) in plaintext
            .chunks_exact(CHUNK_LEN)
            .zip(out.chunks_exact_mut(SEALED_CHUNK_LEN))
        {
            self.seal_chunk(index, p, o)?;
            index += 1;
        }
        if last {
            let at = full * SEALED_CHUNK_LEN;
            self.seal_chunk(
                index,
                &plaintext[full * CHUNK_LEN..],
                &mut out[at..at + rem + TAG_LEN],
            )?;
        }
        Ok(total)
    }

    /// Decrypts a run of sealed chunks starting at chunk `first`. When
    /// `last` is false every chunk must be full; when true the run ends with
    /// the short final chunk (16..16399 bytes sealed). Returns the plaintext
    /// bytes written to `out`. On error, `out` holds no unverified bytes.
    pub fn open_run(
        &self,
        first: u64,
        ciphertext: &[u8],
        out: &mut [u8],
        last: bool,
    ) -> Result<usize, EnvelopeError> {
        let full = ciphertext.len() / SEALED_CHUNK_LEN;
        let rem = ciphertext.len() % SEALED_CHUNK_LEN;
        // A full chunk can never be the final one; a final chunk is at least a tag.
        if last && rem < TAG_LEN {
            return Err(EnvelopeError::Truncated);
        }
        if !last && rem != 0 {
            return Err(EnvelopeError::Worker(
                "open_run: partial chunk before the end",
            ));
        }
        let total = full * CHUNK_LEN + if last { rem - TAG_LEN } else { 0 };
        if out.len() < total {
            return Err(EnvelopeError::Worker("open_run: output buffer too small"));
        }
        let mut index = first;
        let mut done = 0;
        let result = (|| {
            for (c, o) in ciphertext
                .chunks_exact(SEALED_CHUNK_LEN)
                .zip(out.chunks_exact_mut(CHUNK_LEN))
            {
                self.open_chunk(index, c, o)?;
                index += 1;
                done += CHUNK_LEN;
            }
            if last {
                let at = full * CHUNK_LEN;
                self.open_chunk(
                    index,
                    &ciphertext[full * SEALED_CHUNK_LEN..],
                    &mut out[at..at + rem - TAG_LEN],
                )?;
            }
            Ok(total)
        })();
        if result.is_err() {
            out[..done].fill(0);
        }
        result
    }
}

/// Encrypts a whole message with a caller-chosen salt. The salt must never
/// repeat for one key: use [`seal`] unless you are reproducing a test vector.
pub fn seal_with_salt(
    input_key: &SymmetricKey,
    salt: &[u8; SALT_LEN],
    context: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let (key, commitment) = BodyKey::derive(input_key, salt, context);
    let len = usize::try_from(sealed_len(plaintext.len() as u64))
        .map_err(|_| EnvelopeError::TooManyChunks)?;
    let mut out = vec![0u8; len];
    out[..SALT_LEN].copy_from_slice(salt);
    out[SALT_LEN..PREFIX_LEN].copy_from_slice(&commitment);
    key.seal_run(0, plaintext, &mut out[PREFIX_LEN..], true)?;
    Ok(out)
}

/// Encrypts a whole message under a fresh random salt.
pub fn seal(
    input_key: &SymmetricKey,
    context: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let mut salt = [0u8; SALT_LEN];
    crate::rng::fill(&mut salt)?;
    seal_with_salt(input_key, &salt, context, plaintext)
}

/// Decrypts a whole message: commitment first, then the final chunk (which
/// authenticates the length), then every other chunk; returns plaintext
/// only if everything verified.
pub fn open(
    input_key: &SymmetricKey,
    context: &[u8],
    body: &[u8],
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let Some(prefix) = body.first_chunk::<PREFIX_LEN>() else {
        return Err(EnvelopeError::Truncated);
    };
    let key = BodyKey::open_prefix(input_key, prefix, context)?;
    let chunks = &body[PREFIX_LEN..];
    let full = chunks.len() / SEALED_CHUNK_LEN;
    let rem = chunks.len() % SEALED_CHUNK_LEN;
    if rem < TAG_LEN {
        return Err(EnvelopeError::Truncated);
    }
    let mut out = Zeroizing::new(vec![0u8; full * CHUNK_LEN + rem - TAG_LEN]);
    // Authenticate the length first (the final chunk at its index), so a
    // truncated or extended body is refused before anything else is
    // decrypted; then the full chunks. `out` is zeroized if either fails.
    let (sealed_full, sealed_last) = chunks.split_at(full * SEALED_CHUNK_LEN);
    let (plain_full, plain_last) = out.split_at_mut(full * CHUNK_LEN);
    key.open_chunk(full as u64, sealed_last, plain_last)?;
    key.open_run(0, sealed_full, plain_full, false)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_len_matches_chunking() {
        assert_eq!(sealed_len(0), 56 + 16);
        assert_eq!(sealed_len(16384), 56 + 16384 + 32);
        assert_eq!(sealed_len(20 * 1024), 56 + 20 * 1024 + 32);
        let k = SymmetricKey::from_bytes([1; 32]);
        for n in [0usize, 1, 16383, 16384, 16385, 3 * 16384] {
            let ct = seal(&k, b"ctx", &vec![9u8; n]).unwrap();
            assert_eq!(ct.len() as u64, sealed_len(n as u64));
            assert_eq!(&open(&k, b"ctx", &ct).unwrap()[..], &vec![9u8; n][..]);
        }
    }

    #[test]
    fn nonce_xors_big_endian_counter() {
        let (k, _) = BodyKey::derive(&SymmetricKey::from_bytes([0; 32]), &[0; 24], b"");
        let base = k.base_nonce;
        let n = k.nonce(0x01_0203_0405).unwrap();
        let mut want = base;
        want[7] ^= 0x01;
        want[8] ^= 0x02;
        want[9] ^= 0x03;
        want[10] ^= 0x04;
        want[11] ^= 0x05;
        assert_eq!(n.as_slice(), &want);
        assert!(matches!(
            k.nonce(MAX_CHUNKS),
            Err(EnvelopeError::TooManyChunks)
        ));
    }

    #[test]
    fn wrong_context_fails_commitment() {
        let k = SymmetricKey::from_bytes([3; 32]);
        let ct = seal(&k, b"a", b"hello").unwrap();
        assert!(matches!(
            open(&k, b"b", &ct),
            Err(EnvelopeError::Commitment)
        ));
    }
}
