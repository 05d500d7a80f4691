//! A 3-chunk package (two full chunks and a short final one): every
//! truncation length and every single-bit flip of the whole file is
//! refused with a typed error, and no plaintext reaches the destination.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use custody_envelope::package::{self, Header};
use custody_envelope::{EnvelopeError, SymmetricKey, stream};

const PLAIN_LEN: usize = 2 * 16384 + 7;

fn fixture() -> (SymmetricKey, Vec<u8>, Vec<u8>) {
    let key = SymmetricKey::from_bytes([0x11; 32]);
    let plain: Vec<u8> = (0..PLAIN_LEN).map(|i| (i * 31 % 251) as u8).collect();
    let header = Header::new("acme", "web", "rel-3").unwrap();
    let pkg = package::encrypt(&key, &header, &plain).unwrap();
    (key, plain, pkg)
}

/// The error kinds a damaged package may produce (never a panic, never Ok).
fn typed(e: &EnvelopeError) -> bool {
    matches!(
        e,
        EnvelopeError::PackageMagic
            | EnvelopeError::HeaderLength { .. }
            | EnvelopeError::Header(_)
            | EnvelopeError::Canonical(_)
            | EnvelopeError::UnsupportedVersion(_)
            | EnvelopeError::UnsupportedAlgorithm
            | EnvelopeError::Identifier(_)
            | EnvelopeError::Commitment
            | EnvelopeError::Truncated
            | EnvelopeError::ChunkAuthentication { .. }
    )
}

fn check_refused(key: &SymmetricKey, bad: &[u8], what: &str) {
    let e = package::decrypt(key, bad).expect_err(what);
    assert!(typed(&e), "{what}: {e:?}");
    let mut dest = Vec::new();
    let e = stream::decrypt_stream(key, bad, &mut dest).expect_err(what);
    assert!(typed(&e), "{what} (stream): {e:?}");
    assert!(dest.is_empty(), "{what}: plaintext reached the destination");
}

#[test]
fn fixture_is_three_chunks_and_opens() {
    let (key, plain, pkg) = fixture();
    let (_, body_at) = package::parse_lead(&pkg).unwrap();
    assert_eq!(pkg.len() - body_at, 56 + 2 * (16384 + 16) + 7 + 16);
    let (_, got) = package::decrypt(&key, &pkg).unwrap();
    assert_eq!(&got[..], &plain[..]);
}

#[test]
fn every_truncation_is_refused() {
    let (key, _, pkg) = fixture();
    let (_, body_at) = package::parse_lead(&pkg).unwrap();
    // Whole-buffer path: every length (it authenticates the final chunk
    // first, so each refusal is cheap).
    for len in 0..pkg.len() {
        let e = package::decrypt(&key, &pkg[..len]).expect_err("truncation accepted");
        assert!(typed(&e), "truncated to {len}: {e:?}");
    }
    // Streaming path (writes to a destination): typed error and nothing
    // written, for the lengths `stream_lengths` picks.
    let (lens, exhaustive) = stream_lengths(&key, &pkg, body_at);
    println!(
        "streamed {} of {} truncation lengths (exhaustive: {exhaustive})",
        lens.len(),
        pkg.len()
    );
    let workers = 2;
    std::thread::scope(|s| {
        for w in 0..workers {
            let (key, pkg, lens) = (&key, &pkg, &lens);
            s.spawn(move || {
                for &len in lens.iter().skip(w).step_by(workers) {
                    check_refused(key, &pkg[..len], &format!("truncated to {len}"));
                }
            });
        }
    });
    // Extension: one more byte, and the final chunk appended again.
    let mut longer = pkg.clone();
    longer.push(0);
    check_refused(&key, &longer, "one trailing byte");
    let mut spliced = pkg.clone();
    spliced.extend_from_slice(&pkg[pkg.len() - 23..]);
    check_refused(&key, &spliced, "final chunk appended twice");
}

/// Seconds a test may spend on one exhaustive sweep before it samples.
const BUDGET_SECS: u64 = 20;

/// Bytes whose damage (or truncation point) exercises a boundary: the
/// lead, header, salt and commitment, each chunk's first 32 and last 48
/// bytes (tags and boundaries), the final chunk — plus one byte in 61.
fn interesting(i: usize, body_at: usize) -> bool {
    let c0 = body_at + 56;
    if i < c0 || i >= c0 + 2 * 16400 {
        return true;
    }
    let off = (i - c0) % 16400;
    !(32..16400 - 48).contains(&off) || i.is_multiple_of(61)
}

/// Mean time of `f` over a few runs.
fn time_of(mut f: impl FnMut()) -> std::time::Duration {
    let t = std::time::Instant::now();
    for _ in 0..5 {
        f();
    }
    t.elapsed() / 5
}

/// Every truncation length when this build decrypts fast enough (an
/// optimized build: `cargo test --release`, or the dev-profile opt-level
/// override for this crate); in an unoptimized build, where aes-gcm's
/// generic code runs ~100x slower, the `interesting` lengths.
fn stream_lengths(key: &SymmetricKey, pkg: &[u8], body_at: usize) -> (Vec<usize>, bool) {
    let per = time_of(|| {
        let mut sink = Vec::new();
        assert!(stream::decrypt_stream(key, &pkg[..pkg.len() - 30], &mut sink).is_err());
    });
    println!("one streamed refusal: {per:?}");
    if per * (pkg.len() as u32) / 2 < std::time::Duration::from_secs(BUDGET_SECS) {
        return ((0..pkg.len()).collect(), true);
    }
    (
        (0..pkg.len())
            .filter(|&i| interesting(i, body_at))
            .collect(),
        false,
    )
}

/// Which bits to flip: every bit of the file when this build decrypts fast
/// enough (see [`stream_lengths`]), else every bit of the `interesting`
/// bytes. The test prints which it did.
fn bits_to_flip(key: &SymmetricKey, pkg: &[u8], body_at: usize) -> (Vec<usize>, bool) {
    // Worst case: a flip in the second full chunk (final and first chunk
    // decrypt before the damage is found).
    let mut probe = pkg.to_vec();
    probe[body_at + 56 + 16400 + 100] ^= 1;
    let per = time_of(|| assert!(package::decrypt(key, &probe).is_err()));
    println!("one whole-buffer refusal: {per:?}");
    let bits = pkg.len() * 8;
    if per * (bits as u32) / 2 < std::time::Duration::from_secs(BUDGET_SECS) {
        return ((0..bits).collect(), true);
    }
    let bytes = (0..pkg.len()).filter(|&i| interesting(i, body_at));
    (
        bytes.flat_map(|i| (0..8).map(move |b| i * 8 + b)).collect(),
        false,
    )
}

#[test]
fn every_bit_flip_is_refused() {
    let (key, _, pkg) = fixture();
    let (_, body_at) = package::parse_lead(&pkg).unwrap();
    let (bits, exhaustive) = bits_to_flip(&key, &pkg, body_at);
    println!(
        "flipping {} of {} bits (exhaustive: {exhaustive})",
        bits.len(),
        pkg.len() * 8
    );
    let workers = 2;
    std::thread::scope(|s| {
        for w in 0..workers {
            let (key, pkg, bits) = (&key, &pkg, &bits);
            s.spawn(move || {
                let mut bad = pkg.clone();
                for &bit in bits.iter().skip(w).step_by(workers) {
                    bad[bit / 8] ^= 1 << (bit % 8);
                    let e = package::decrypt(key, &bad).expect_err("flip accepted");
                    assert!(typed(&e), "bit {bit}: {e:?}");
                    bad[bit / 8] ^= 1 << (bit % 8);
                }
            });
        }
    });
    // The streaming decryptor on flips in every region (header, salt,
    // commitment, each chunk, each tag): typed error, empty destination.
    let offsets = [
        0,
        9,
        20,
        body_at,
        body_at + 30,
        body_at + 56,
        body_at + 56 + 16384 + 3,
        body_at + 56 + 16400 + 16390,
        pkg.len() - 20,
        pkg.len() - 1,
    ];
    for at in offsets {
        let mut bad = pkg.clone();
        bad[at] ^= 0x80;
        check_refused(&key, &bad, &format!("flip at byte {at}"));
    }
}

#[test]
fn reordered_chunks_and_wrong_key_or_header() {
    let (key, _, pkg) = fixture();
    let (_, body_at) = package::parse_lead(&pkg).unwrap();
    let c0 = body_at + 56;
    let mut swapped = pkg.clone();
    let (a, b) = swapped[c0..c0 + 2 * 16400].split_at_mut(16400);
    a.swap_with_slice(b);
    let e = package::decrypt(&key, &swapped).unwrap_err();
    assert!(matches!(e, EnvelopeError::ChunkAuthentication { index: 0 }));

    let e = package::decrypt(&SymmetricKey::from_bytes([0x12; 32]), &pkg).unwrap_err();
    assert!(matches!(e, EnvelopeError::Commitment));

    // The same body under another release's header.
    let other = Header::new("acme", "web", "rel-4").unwrap();
    let mut moved = other.lead().unwrap();
    moved.extend_from_slice(&pkg[body_at..]);
    let e = package::decrypt(&key, &moved).unwrap_err();
    assert!(matches!(e, EnvelopeError::Commitment));
}
