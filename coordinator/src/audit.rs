//! The hash-chained audit log and its signed checkpoints.
//!
//! Entries are appended inside the transaction of the change they record
//! ([`crate::state::Tx::audit`]); the commit signs a checkpoint (count and
//! head hash) with the coordinator's Ed25519 key. Export format and hashing
//! are in `custody_proto::audit`.

use crate::error::{Error, Result};
use crate::store::now_ms;
use custody_proto::audit::{AuditEntry, Checkpoint, GENESIS_HASH, checkpoint_message, entry_hash};
use ed25519_dalek::Signer;
use sqlx::{Row, SqliteConnection};

fn audit_err(op: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| Error::Audit(format!("{op}: {e}"))
}

/// The chain's head: how many entries there are and the last one's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Entries so far (the last entry's `seq`).
    pub count: u64,
    /// The last entry's hash (the genesis hash when empty).
    pub hash: String,
}

async fn read_head(c: &mut SqliteConnection) -> Result<Head> {
    let row = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *c)
        .await
        .map_err(audit_err("read audit head"))?;
    Ok(match row {
        Some(r) => Head {
            count: r.get::<i64, _>("seq") as u64,
            hash: r.get("hash"),
        },
        None => Head {
            count: 0,
            hash: GENESIS_HASH.to_string(),
        },
    })
}

/// `head` if known, else the table's.
async fn current(c: &mut SqliteConnection, head: Option<&Head>) -> Result<Head> {
    match head {
        Some(h) => Ok(h.clone()),
        None => read_head(c).await,
    }
}

/// Appends one entry after the head. `head` caches it for the transaction
/// `c` is in: `None` reads it from the table; on success it holds the new
/// entry, so a transaction that appends many entries reads the head once.
/// (Only writers in the same transaction may append meanwhile; a caller that
/// rolls back to a savepoint must restore or clear it.)
pub async fn append(
    c: &mut SqliteConnection,
    head: &mut Option<Head>,
    actor: &str,
    action: &str,
    object: &str,
    result: &str,
    detail: serde_json::Value,
) -> Result<()> {
    let Head { count, hash: prev } = current(c, head.as_ref()).await?;
    let mut e = AuditEntry {
        seq: count + 1,
        at_ms: now_ms(),
        actor: actor.into(),
        action: action.into(),
        object: object.into(),
        result: result.into(),
        detail,
        prev_hash: prev,
        hash: String::new(),
    };
    e.hash = entry_hash(&e);
    sqlx::query(
        "INSERT INTO audit_log (seq, at_ms, actor, action, object, result, detail, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(e.seq as i64)
    .bind(e.at_ms)
    .bind(&e.actor)
    .bind(&e.action)
    .bind(&e.object)
    .bind(&e.result)
    .bind(e.detail.to_string())
    .bind(&e.prev_hash)
    .bind(&e.hash)
    .execute(&mut *c)
    .await
    .map_err(audit_err("append audit entry"))?;
    *head = Some(Head {
        count: e.seq,
        hash: e.hash,
    });
    Ok(())
}

/// Signs and stores a checkpoint of the head (replacing older ones):
/// `head` if the caller knows it (see [`append`]), else the table's.
pub async fn checkpoint(
    c: &mut SqliteConnection,
    head: Option<&Head>,
    key: &ed25519_dalek::SigningKey,
) -> Result<()> {
    let Head {
        count,
        hash: head_hash,
    } = current(c, head).await?;
    let at_ms = now_ms();
    let sig = key.sign(&checkpoint_message(count, &head_hash, at_ms));
    sqlx::query("DELETE FROM audit_checkpoints")
        .execute(&mut *c)
        .await
        .map_err(audit_err("replace checkpoint"))?;
    sqlx::query(
        "INSERT INTO audit_checkpoints (count, head_hash, at_ms, signature) VALUES ($1, $2, $3, $4)",
    )
    .bind(count as i64)
    .bind(&head_hash)
    .bind(at_ms)
    .bind(hex::encode(sig.to_bytes()))
    .execute(&mut *c)
    .await
    .map_err(audit_err("store checkpoint"))?;
    Ok(())
}

/// Entries with `seq > after`, in order, at most `limit`.
pub async fn entries(pool: &sqlx::SqlitePool, after: u64, limit: i64) -> Result<Vec<AuditEntry>> {
    let rows = sqlx::query("SELECT * FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2")
        .bind(after as i64)
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(Error::db("read audit log"))?;
    rows.iter()
        .map(|r| {
            let detail: String = r.get("detail");
            Ok(AuditEntry {
                seq: r.get::<i64, _>("seq") as u64,
                at_ms: r.get("at_ms"),
                actor: r.get("actor"),
                action: r.get("action"),
                object: r.get("object"),
                result: r.get("result"),
                detail: serde_json::from_str(&detail)
                    .map_err(|e| Error::Internal(format!("stored audit detail: {e}")))?,
                prev_hash: r.get("prev_hash"),
                hash: r.get("hash"),
            })
        })
        .collect()
}

/// The latest checkpoint.
pub async fn latest_checkpoint(
    pool: &sqlx::SqlitePool,
    key: &ed25519_dalek::VerifyingKey,
) -> Result<Option<Checkpoint>> {
    let row = sqlx::query("SELECT * FROM audit_checkpoints ORDER BY count DESC LIMIT 1")
        .fetch_optional(pool)
        .await
        .map_err(Error::db("read checkpoint"))?;
    Ok(row.map(|r| Checkpoint {
        count: r.get::<i64, _>("count") as u64,
        head_hash: r.get("head_hash"),
        at_ms: r.get("at_ms"),
        public_key: hex::encode(key.to_bytes()),
        signature: r.get("signature"),
    }))
}

/// Loads the audit key from `path`, or makes one (0600) when `create`.
pub fn load_or_create_key(
    path: &std::path::Path,
    create: bool,
) -> Result<ed25519_dalek::SigningKey> {
    if path.exists() {
        let data =
            zeroize::Zeroizing::new(std::fs::read(path).map_err(Error::io("read audit key"))?);
        let bytes: [u8; 32] = data
            .as_slice()
            .try_into()
            .map_err(|_| Error::Internal(format!("{}: not a 32-byte key", path.display())))?;
        return Ok(ed25519_dalek::SigningKey::from_bytes(&bytes));
    }
    if !create {
        return Err(Error::Internal(format!(
            "{} is missing; run `custody-coordinator init` first",
            path.display()
        )));
    }
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut_slice()).map_err(|e| Error::Internal(format!("random: {e}")))?;
    crate::config::write_private(path, seed.as_slice())?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&seed))
}
