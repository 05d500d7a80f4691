//! Key-manager keys the CLI wraps release keys and secret values to, and
//! the trust-on-first-use record of the ones it has accepted.
//!
//! The coordinator hands out key managers' public keys; a coordinator that
//! slipped in a key of its own would receive every release key wrapped to
//! it. Until owner-signed membership records exist, the CLI defends with
//! trust on first use: it recomputes each key's RFC 7638 thumbprint (the
//! fingerprint `custody-agent pubkey` prints on the key manager itself),
//! shows them, and refuses any key it has not accepted before unless the
//! user passes `--accept-new-key-manager`. Accepted keys are kept in
//! `known-key-managers.toml` beside the login file (0600), per account.

use anyhow::{Context, Result};
use custody_envelope::OaepHash;
use custody_envelope::jwe::{self, Binding};
use custody_proto::apps::WrappedKey;
use custody_proto::servers::KeyManagerKey;
use rsa::RsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Smallest RSA key accepted, in bits (the coordinator's limit too).
pub const MIN_RSA_BITS: usize = 2048;

/// Why a key manager's key is not used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyManagerError {
    /// The PEM is not an RSA public key, or it is too small.
    #[error("key manager {name} ({server_id}): {reason}")]
    BadKey {
        /// Host name.
        name: String,
        /// Server id.
        server_id: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The fingerprint the coordinator claims is not the key's thumbprint.
    #[error(
        "key manager {name} ({server_id}): the coordinator says its fingerprint is {claimed} but its key's is {actual}"
    )]
    FingerprintMismatch {
        /// Host name.
        name: String,
        /// Server id.
        server_id: String,
        /// What the coordinator said.
        claimed: String,
        /// The key's RFC 7638 thumbprint.
        actual: String,
    },
    /// No OAEP hash this client can use.
    #[error("key manager {name} ({server_id}) supports no OAEP hash this client knows")]
    NoCommonHash {
        /// Host name.
        name: String,
        /// Server id.
        server_id: String,
    },
    /// A key not accepted before, and `--accept-new-key-manager` not given.
    #[error(
        "refusing key manager {name} ({server_id}) with {what} {fingerprint}: check it against `custody-agent pubkey` on that server, then re-run with --accept-new-key-manager"
    )]
    Unknown {
        /// Host name.
        name: String,
        /// Server id.
        server_id: String,
        /// The key's thumbprint.
        fingerprint: String,
        /// "a new key" or "a changed key".
        what: &'static str,
    },
}

/// A key manager's key, parsed, with its recomputed fingerprint and the
/// OAEP hash to wrap with.
#[derive(Debug, Clone)]
pub struct VerifiedKey {
    /// Server id.
    pub server_id: String,
    /// Host name.
    pub name: String,
    /// RFC 7638 thumbprint, computed here.
    pub fingerprint: String,
    /// The PEM as received.
    pub pem: String,
    /// The key.
    pub key: RsaPublicKey,
    /// The strongest OAEP hash the key manager supports.
    pub hash: OaepHash,
}

impl VerifiedKey {
    /// Parses and checks a key as the coordinator describes it.
    pub fn from_api(k: &KeyManagerKey) -> Result<VerifiedKey, KeyManagerError> {
        let bad = |reason| KeyManagerError::BadKey {
            name: k.name.clone(),
            server_id: k.server_id.clone(),
            reason,
        };
        let key = RsaPublicKey::from_public_key_pem(k.public_key_pem.trim())
            .map_err(|_| bad("its public key is not an RSA SubjectPublicKeyInfo PEM"))?;
        if key.size() * 8 < MIN_RSA_BITS {
            return Err(bad("its RSA key is smaller than 2048 bits"));
        }
        let fingerprint = jwe::thumbprint(&key);
        if fingerprint != k.fingerprint {
            return Err(KeyManagerError::FingerprintMismatch {
                name: k.name.clone(),
                server_id: k.server_id.clone(),
                claimed: k.fingerprint.clone(),
                actual: fingerprint,
            });
        }
        let hash =
            OaepHash::best_common(&k.oaep_hashes).ok_or_else(|| KeyManagerError::NoCommonHash {
                name: k.name.clone(),
                server_id: k.server_id.clone(),
            })?;
        Ok(VerifiedKey {
            server_id: k.server_id.clone(),
            name: k.name.clone(),
            fingerprint,
            pem: k.public_key_pem.clone(),
            key,
            hash,
        })
    }

    /// `wrap(P_i, plaintext)` bound to `binding`.
    pub fn wrap(&self, binding: &Binding, plaintext: &[u8]) -> Result<WrappedKey> {
        let jwe = jwe::wrap(&self.key, self.hash, binding, plaintext)
            .with_context(|| format!("wrapping to key manager {}", self.name))?;
        Ok(WrappedKey {
            server_id: self.server_id.clone(),
            jwe,
        })
    }
}

/// One accepted key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnownKey {
    /// Account the key manager serves.
    pub account: String,
    /// Server id when accepted.
    pub server_id: String,
    /// Host name when accepted.
    pub name: String,
    /// RFC 7638 thumbprint.
    pub fingerprint: String,
    /// The public key.
    pub public_key_pem: String,
    /// Unix seconds.
    pub accepted_at: i64,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    key_manager: Vec<KnownKey>,
}

/// The trust-on-first-use record.
pub struct Known {
    path: PathBuf,
    account: String,
    all: Vec<KnownKey>,
}

/// The record's path for a login file.
pub fn known_path(login_file: &Path) -> PathBuf {
    login_file.with_file_name("known-key-managers.toml")
}

impl Known {
    /// Loads the record (empty when missing) for `account`.
    pub fn load(path: PathBuf, account: &str) -> Result<Known> {
        let all = match std::fs::read_to_string(&path) {
            Ok(text) => {
                toml::from_str::<File>(&text)
                    .with_context(|| format!("{} is not valid", path.display()))?
                    .key_manager
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(Known {
            path,
            account: account.to_string(),
            all,
        })
    }

    /// The accepted entry with this fingerprint.
    pub fn get(&self, fingerprint: &str) -> Option<&KnownKey> {
        self.all
            .iter()
            .find(|k| k.account == self.account && k.fingerprint == fingerprint)
    }

    fn knows_server(&self, server_id: &str) -> bool {
        self.all
            .iter()
            .any(|k| k.account == self.account && k.server_id == server_id)
    }

    /// Shows every key on stderr, then refuses the first one not accepted
    /// before unless `accept_new`. Returns the new ones (to [`Known::add`]
    /// once the operation succeeded).
    pub fn gate(
        &self,
        keys: &[VerifiedKey],
        accept_new: bool,
    ) -> Result<Vec<VerifiedKey>, KeyManagerError> {
        let listed: Vec<(String, String, String)> = keys
            .iter()
            .map(|k| (k.name.clone(), k.server_id.clone(), k.fingerprint.clone()))
            .collect();
        let new = self.gate_listed(&listed, accept_new)?;
        Ok(new.into_iter().map(|i| keys[i].clone()).collect())
    }

    /// [`Known::gate`] for `(name, server id, fingerprint)` triples; returns
    /// the indices of the new ones.
    pub fn gate_listed(
        &self,
        listed: &[(String, String, String)],
        accept_new: bool,
    ) -> Result<Vec<usize>, KeyManagerError> {
        eprintln!("key managers (fingerprint = RFC 7638 thumbprint of the server key):");
        let mut new = Vec::new();
        for (i, (name, server_id, fingerprint)) in listed.iter().enumerate() {
            let status = if self.get(fingerprint).is_some() {
                "known"
            } else if self.knows_server(server_id) {
                new.push(i);
                "KEY CHANGED"
            } else {
                new.push(i);
                "NEW"
            };
            eprintln!("  {name:<20} {fingerprint:<44} {status:<11} {server_id}");
        }
        if !accept_new && let Some(&i) = new.first() {
            let (name, server_id, fingerprint) = &listed[i];
            return Err(KeyManagerError::Unknown {
                name: name.clone(),
                server_id: server_id.clone(),
                fingerprint: fingerprint.clone(),
                what: if self.knows_server(server_id) {
                    "a changed key"
                } else {
                    "a new key"
                },
            });
        }
        Ok(new)
    }

    /// Records accepted keys and saves the file (0600).
    pub fn add(&mut self, keys: &[VerifiedKey]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        for k in keys {
            if self.get(&k.fingerprint).is_none() {
                self.all.push(KnownKey {
                    account: self.account.clone(),
                    server_id: k.server_id.clone(),
                    name: k.name.clone(),
                    fingerprint: k.fingerprint.clone(),
                    public_key_pem: k.pem.clone(),
                    accepted_at: now,
                });
            }
        }
        let text = toml::to_string(&File {
            key_manager: self.all.clone(),
        })
        .context("serialising the known key managers")?;
        let text = format!(
            "# Key managers accepted by `custody` (trust on first use). Each\n\
             # fingerprint must match `custody-agent pubkey` on that server.\n{text}"
        );
        crate::config::write_private(&self.path, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // coordinator/tests/data/key1.pub.pem (RSA-2048, made with openssl).
    const PEM: &str = include_str!("../../coordinator/tests/data/key1.pub.pem");

    fn api(fp: &str) -> KeyManagerKey {
        KeyManagerKey {
            server_id: "srv_1".into(),
            name: "km-a".into(),
            public_key_pem: PEM.into(),
            oaep_hashes: vec![OaepHash::Sha1, OaepHash::Sha256],
            fingerprint: fp.into(),
        }
    }

    #[test]
    fn verifies_fingerprint_and_picks_the_best_hash() {
        let pk = RsaPublicKey::from_public_key_pem(PEM.trim()).unwrap();
        let fp = jwe::thumbprint(&pk);
        let v = VerifiedKey::from_api(&api(&fp)).unwrap();
        assert_eq!(v.hash, OaepHash::Sha256);
        assert!(matches!(
            VerifiedKey::from_api(&api("bogus")),
            Err(KeyManagerError::FingerprintMismatch { .. })
        ));
        let mut k = api(&fp);
        k.oaep_hashes.clear();
        assert!(matches!(
            VerifiedKey::from_api(&k),
            Err(KeyManagerError::NoCommonHash { .. })
        ));
        k.public_key_pem = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----".into();
        assert!(matches!(
            VerifiedKey::from_api(&k),
            Err(KeyManagerError::BadKey { .. })
        ));
    }

    #[test]
    fn gate_refuses_new_and_changed_keys_until_accepted() {
        let d = tempfile::tempdir().unwrap();
        let path = known_path(&d.path().join("config.toml"));
        let pk = RsaPublicKey::from_public_key_pem(PEM.trim()).unwrap();
        let v = VerifiedKey::from_api(&api(&jwe::thumbprint(&pk))).unwrap();
        let mut known = Known::load(path.clone(), "acct").unwrap();
        assert!(matches!(
            known.gate(std::slice::from_ref(&v), false),
            Err(KeyManagerError::Unknown {
                what: "a new key",
                ..
            })
        ));
        let new = known.gate(std::slice::from_ref(&v), true).unwrap();
        known.add(&new).unwrap();
        let known = Known::load(path.clone(), "acct").unwrap();
        assert!(
            known
                .gate(std::slice::from_ref(&v), false)
                .unwrap()
                .is_empty()
        );
        // Another account does not share the record.
        let other = Known::load(path.clone(), "other").unwrap();
        assert!(other.gate(std::slice::from_ref(&v), false).is_err());
        // Same server, different key: "changed".
        let mut changed = v.clone();
        changed.fingerprint = "x".repeat(43);
        assert!(matches!(
            known.gate(&[changed], false),
            Err(KeyManagerError::Unknown {
                what: "a changed key",
                ..
            })
        ));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
