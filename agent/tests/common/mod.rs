//! Helpers shared by the agent's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use custody_envelope::OaepHash;
use rsa::{Oaep, RsaPublicKey};

/// RSA-OAEP encryption to `public` (public-key side only).
pub fn oaep_encrypt(public: &RsaPublicKey, hash: OaepHash, msg: &[u8]) -> Vec<u8> {
    let padding = match hash {
        OaepHash::Sha256 => Oaep::new::<rsa::sha2::Sha256>(),
        OaepHash::Sha1 => Oaep::new::<sha1::Sha1>(),
    };
    public
        .encrypt(&mut custody_agent::rng::OsRng, padding, msg)
        .unwrap()
}

/// Threads in this process, from /proc/self/task.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}
