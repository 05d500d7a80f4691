//! Files to files with positional I/O (`stream::encrypt_file` /
//! `decrypt_file`): same bytes as the other paths, every thread count,
//! and refusals that report typed errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use custody_envelope::package::{self, Header};
use custody_envelope::{EnvelopeError, SymmetricKey, stream};
use std::fs::{File, OpenOptions};
use std::path::Path;

fn write(path: &Path, bytes: &[u8]) -> File {
    std::fs::write(path, bytes).unwrap();
    File::open(path).unwrap()
}

fn out(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap()
}

#[test]
fn file_round_trips_match_the_format() {
    let dir = tempfile::tempdir().unwrap();
    let key = SymmetricKey::from_bytes([9; 32]);
    let header = Header::new("acme", "web", "r9").unwrap();
    let batch = 64 * 16384;
    for len in [0, 1, 16384, 3 * batch, 3 * batch + 77, 2 * batch - 1] {
        let plain: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
        let src = write(&dir.path().join("in"), &plain);
        for threads in [1, 2, 3] {
            let pkg_path = dir.path().join("pkg");
            let pkg_file = out(&pkg_path);
            let n = stream::encrypt_file(&key, &header, &src, &pkg_file, threads).unwrap();
            assert_eq!(n, len as u64);
            let pkg = std::fs::read(&pkg_path).unwrap();
            // Readable by the whole-buffer reader, and the right size.
            let (h, p) = package::decrypt(&key, &pkg).unwrap();
            assert_eq!((h, &p[..]), (header.clone(), &plain[..]));
            // And back through the file reader.
            let dest_path = dir.path().join("out");
            let dest = out(&dest_path);
            let h = stream::decrypt_file(&key, &File::open(&pkg_path).unwrap(), &dest, threads)
                .unwrap();
            assert_eq!(h, header);
            assert_eq!(std::fs::read(&dest_path).unwrap(), plain, "len {len}");
        }
    }
}

#[test]
fn file_decrypt_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let key = SymmetricKey::from_bytes([9; 32]);
    let header = Header::new("acme", "web", "r9").unwrap();
    let plain = vec![1u8; 3 * 64 * 16384 + 10];
    let pkg = package::encrypt(&key, &header, &plain).unwrap();
    let (_, body_at) = package::parse_lead(&pkg).unwrap();
    let c0 = body_at + 56;

    let check = |bytes: &[u8], key: &SymmetricKey, want: fn(&EnvelopeError) -> bool| {
        let src = write(&dir.path().join("bad"), bytes);
        let e = stream::decrypt_file(key, &src, &out(&dir.path().join("o")), 2).unwrap_err();
        assert!(want(&e), "{e:?}");
    };
    check(&pkg, &SymmetricKey::from_bytes([8; 32]), |e| {
        matches!(e, EnvelopeError::Commitment)
    });
    let mut flipped = pkg.clone();
    flipped[c0 + 130 * 16400 + 9] ^= 1;
    check(&flipped, &key, |e| {
        matches!(e, EnvelopeError::ChunkAuthentication { index: 130 })
    });
    // Truncated to a whole number of batches: the final chunk is missing.
    check(&pkg[..c0 + 2 * 64 * 16400], &key, |e| {
        matches!(e, EnvelopeError::Truncated)
    });
    check(&pkg[..pkg.len() - 1], &key, |e| {
        matches!(e, EnvelopeError::ChunkAuthentication { .. })
    });
    let mut longer = pkg.clone();
    longer.extend_from_slice(&[0; 16]);
    check(&longer, &key, |e| {
        matches!(e, EnvelopeError::ChunkAuthentication { .. })
    });
    check(&pkg[..body_at + 10], &key, |e| {
        matches!(e, EnvelopeError::Truncated)
    });
    check(b"XUSTODY\0\0\x05hello", &key, |e| {
        matches!(e, EnvelopeError::PackageMagic)
    });
}
