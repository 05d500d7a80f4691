//! The audit log's export format and its hash chain.
//!
//! `GET /v1/audit` answers JSON lines: one [`AuditEntry`] per line in
//! sequence order, then one line `{"checkpoint": Checkpoint}`. Each entry's
//! `hash` is [`entry_hash`] of its body and the previous entry's hash (the
//! first entry's `prev_hash` is [`GENESIS_HASH`]); the checkpoint signs
//! [`checkpoint_message`] (entry count and head hash) with the coordinator's
//! Ed25519 key, so editing, deleting, reordering and truncation are caught.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `prev_hash` of the first entry: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Domain separation for entry hashes.
const ENTRY_DOMAIN: &[u8] = b"custody-audit-entry-v1\n";
/// Domain separation for checkpoint signatures.
const CHECKPOINT_DOMAIN: &str = "custody-audit-checkpoint-v1";

/// One audit entry. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// 1, 2, 3 … without gaps.
    pub seq: u64,
    /// Unix milliseconds.
    pub at_ms: i64,
    /// `user:ID`, `server:ID` or `coordinator`.
    pub actor: String,
    /// What happened (`user.create`, `job.result`, `deployment.state` …).
    pub action: String,
    /// Which object (`deployment:dep_…`).
    pub object: String,
    /// `ok`, `refused`, `failed`, `duplicate` ….
    pub result: String,
    /// Action-specific detail (ids, states, counts; never a secret).
    pub detail: serde_json::Value,
    /// The previous entry's `hash`.
    pub prev_hash: String,
    /// [`entry_hash`] of this entry.
    pub hash: String,
}

/// The fields an entry's hash covers, in a fixed order.
#[derive(Serialize)]
struct HashedBody<'a> {
    seq: u64,
    at_ms: i64,
    actor: &'a str,
    action: &'a str,
    object: &'a str,
    result: &'a str,
    detail: &'a serde_json::Value,
    prev_hash: &'a str,
}

/// SHA-256 (hex) over the domain tag and the canonical JSON of every field
/// but `hash`. `serde_json` keeps object keys sorted, so a parsed and
/// re-serialised `detail` hashes the same.
pub fn entry_hash(e: &AuditEntry) -> String {
    let body = HashedBody {
        seq: e.seq,
        at_ms: e.at_ms,
        actor: &e.actor,
        action: &e.action,
        object: &e.object,
        result: &e.result,
        detail: &e.detail,
        prev_hash: &e.prev_hash,
    };
    let mut h = Sha256::new();
    h.update(ENTRY_DOMAIN);
    // Serialising plain strings, integers and a Value cannot fail.
    h.update(serde_json::to_vec(&body).unwrap_or_default());
    hex::encode(h.finalize())
}

/// A signed statement of the log's length and head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Number of entries (the head's `seq`).
    pub count: u64,
    /// The head entry's `hash` ([`GENESIS_HASH`] when empty).
    pub head_hash: String,
    /// Unix milliseconds when signed.
    pub at_ms: i64,
    /// Ed25519 public key, hex.
    pub public_key: String,
    /// Ed25519 signature over [`checkpoint_message`], hex.
    pub signature: String,
}

/// The bytes a checkpoint signature covers.
pub fn checkpoint_message(count: u64, head_hash: &str, at_ms: i64) -> Vec<u8> {
    format!("{CHECKPOINT_DOMAIN}\n{count}\n{head_hash}\n{at_ms}\n").into_bytes()
}

/// The last line of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointLine {
    /// The latest checkpoint.
    pub checkpoint: Checkpoint,
}

/// Why a chain does not verify. Signature checks are the caller's (the
/// CLI holds the pinned key); this covers the structure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// Entry `seq` is not the one expected at its position (deleted or reordered entries).
    #[error(
        "entry at position {position}: sequence {found}, expected {expected} (an entry was deleted, inserted or reordered)"
    )]
    Sequence {
        /// 1-based line number of the entry.
        position: u64,
        /// Its seq.
        found: u64,
        /// The seq that should be there.
        expected: u64,
    },
    /// The entry's `prev_hash` is not the previous entry's `hash`.
    #[error("entry {seq}: prev_hash does not match the previous entry")]
    Link {
        /// The broken entry.
        seq: u64,
    },
    /// The entry's `hash` does not match its content (edited).
    #[error("entry {seq}: content does not match its hash (edited)")]
    Hash {
        /// The broken entry.
        seq: u64,
    },
}

/// Checks that `entries` form a chain from `prev` (the hash before the first
/// of them, [`GENESIS_HASH`] for a full export) with consecutive `seq`
/// starting at `first_seq`. Returns the head hash.
pub fn verify_chain(
    entries: &[AuditEntry],
    first_seq: u64,
    prev: &str,
) -> Result<String, ChainError> {
    let mut prev = prev.to_string();
    for (i, e) in entries.iter().enumerate() {
        let expected = first_seq + i as u64;
        if e.seq != expected {
            return Err(ChainError::Sequence {
                position: i as u64 + 1,
                found: e.seq,
                expected,
            });
        }
        if e.prev_hash != prev {
            return Err(ChainError::Link { seq: e.seq });
        }
        if entry_hash(e) != e.hash {
            return Err(ChainError::Hash { seq: e.seq });
        }
        prev.clone_from(&e.hash);
    }
    Ok(prev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<AuditEntry> {
        let mut prev = GENESIS_HASH.to_string();
        (1..=n)
            .map(|seq| {
                let mut e = AuditEntry {
                    seq,
                    at_ms: 1_700_000_000_000 + seq as i64,
                    actor: "user:usr_1".into(),
                    action: "app.create".into(),
                    object: format!("app:a{seq}"),
                    result: "ok".into(),
                    detail: serde_json::json!({"b": 1, "a": [seq]}),
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                e.hash = entry_hash(&e);
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    #[test]
    fn intact_chain_verifies_and_survives_reserialisation() {
        let c = chain(4);
        let text: Vec<String> = c
            .iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect();
        let back: Vec<AuditEntry> = text
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(verify_chain(&back, 1, GENESIS_HASH).unwrap(), c[3].hash);
    }

    #[test]
    fn edits_deletions_and_reorders_are_named() {
        let mut c = chain(4);
        c[2].result = "failed".into();
        assert_eq!(
            verify_chain(&c, 1, GENESIS_HASH),
            Err(ChainError::Hash { seq: 3 })
        );

        let mut c = chain(4);
        c.remove(1);
        assert_eq!(
            verify_chain(&c, 1, GENESIS_HASH),
            Err(ChainError::Sequence {
                position: 2,
                found: 3,
                expected: 2
            })
        );

        let mut c = chain(4);
        c.swap(1, 2);
        assert!(matches!(
            verify_chain(&c, 1, GENESIS_HASH),
            Err(ChainError::Sequence { position: 2, .. })
        ));
    }
}
