//! Servers, key-manager flags and master-key bookkeeping rows.

use super::{join_list, now_ms, split_list};
use crate::error::{Error, Result};
use custody_proto::OaepHash;
use custody_proto::servers::{AgentRole, KeyManagerKey};
use sqlx::{Row, Sqlite, SqliteConnection, sqlite::SqliteRow};

/// A server row.
#[derive(Debug, Clone)]
pub struct ServerRow {
    /// Id.
    pub id: String,
    /// Host name.
    pub name: String,
    /// PEM SPKI.
    pub public_key_pem: String,
    /// RFC 7638 thumbprint.
    pub fingerprint: String,
    /// OAEP hashes.
    pub oaep_hashes: Vec<OaepHash>,
    /// Offered roles.
    pub roles: Vec<AgentRole>,
    /// Enabled as key manager.
    pub key_manager: bool,
    /// Enrolled at, ms.
    pub enrolled_at_ms: i64,
    /// Last seen (as flushed), ms.
    pub last_seen_at_ms: Option<i64>,
}

impl ServerRow {
    /// As a key description for payloads and clients.
    pub fn key(&self) -> KeyManagerKey {
        KeyManagerKey {
            server_id: self.id.clone(),
            name: self.name.clone(),
            public_key_pem: self.public_key_pem.clone(),
            oaep_hashes: self.oaep_hashes.clone(),
            fingerprint: self.fingerprint.clone(),
        }
    }
}

fn parse_hash(s: &str) -> Option<OaepHash> {
    match s {
        "sha256" => Some(OaepHash::Sha256),
        "sha1" => Some(OaepHash::Sha1),
        _ => None,
    }
}

/// Wire name of an OAEP hash.
pub fn hash_name(h: OaepHash) -> &'static str {
    match h {
        OaepHash::Sha256 => "sha256",
        OaepHash::Sha1 => "sha1",
    }
}

/// Wire name of an agent role.
pub fn role_name(r: AgentRole) -> &'static str {
    match r {
        AgentRole::KeyManager => "key_manager",
        AgentRole::Target => "target",
    }
}

fn from_row(r: &SqliteRow) -> ServerRow {
    ServerRow {
        id: r.get("id"),
        name: r.get("name"),
        public_key_pem: r.get("public_key_pem"),
        fingerprint: r.get("fingerprint"),
        oaep_hashes: split_list(&r.get::<String, _>("oaep_hashes"))
            .iter()
            .filter_map(|h| parse_hash(h))
            .collect(),
        roles: split_list(&r.get::<String, _>("roles"))
            .iter()
            .filter_map(|x| match x.as_str() {
                "key_manager" => Some(AgentRole::KeyManager),
                "target" => Some(AgentRole::Target),
                _ => None,
            })
            .collect(),
        key_manager: r.get("key_manager"),
        enrolled_at_ms: r.get("enrolled_at_ms"),
        last_seen_at_ms: r.get("last_seen_at_ms"),
    }
}

/// Inserts an enrolled server.
pub async fn insert(c: &mut SqliteConnection, s: &ServerRow, agent_version: &str) -> Result<()> {
    let hashes: Vec<&str> = s.oaep_hashes.iter().map(|h| hash_name(*h)).collect();
    let roles: Vec<&str> = s.roles.iter().map(|r| role_name(*r)).collect();
    sqlx::query(
        "INSERT INTO servers (id, name, public_key_pem, fingerprint, oaep_hashes, roles, key_manager, \
         agent_version, enrolled_at_ms, last_seen_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
    )
    .bind(&s.id)
    .bind(&s.name)
    .bind(&s.public_key_pem)
    .bind(&s.fingerprint)
    .bind(join_list(&hashes))
    .bind(join_list(&roles))
    .bind(false)
    .bind(agent_version)
    .bind(s.enrolled_at_ms)
    .execute(&mut *c)
    .await
    .map_err(Error::db("insert server"))?;
    Ok(())
}

/// An enrolled (not removed) server by id, or by name when the name is unique.
pub async fn find<'e, E>(c: E, id_or_name: &str) -> Result<Option<ServerRow>>
where
    E: sqlx::Executor<'e, Database = Sqlite>,
{
    let rows = sqlx::query(
        "SELECT * FROM servers WHERE (id = $1 OR name = $1) AND removed_at_ms IS NULL LIMIT 2",
    )
    .bind(id_or_name)
    .fetch_all(c)
    .await
    .map_err(Error::db("find server"))?;
    if let Some(r) = rows.iter().find(|r| r.get::<String, _>("id") == id_or_name) {
        return Ok(Some(from_row(r)));
    }
    if rows.len() > 1 {
        return Err(Error::invalid(format!(
            "more than one server is named {id_or_name}; use its id"
        )));
    }
    Ok(rows.first().map(from_row))
}

/// Whether a server is enrolled and not removed.
pub async fn is_enrolled(pool: &sqlx::SqlitePool, id: &str) -> Result<bool> {
    let row = sqlx::query("SELECT 1 AS one FROM servers WHERE id = $1 AND removed_at_ms IS NULL")
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(Error::db("check server"))?;
    Ok(row.is_some())
}

/// Every enrolled server.
pub async fn list<'e, E>(c: E) -> Result<Vec<ServerRow>>
where
    E: sqlx::Executor<'e, Database = Sqlite>,
{
    let rows = sqlx::query(
        "SELECT * FROM servers WHERE removed_at_ms IS NULL ORDER BY enrolled_at_ms, id",
    )
    .fetch_all(c)
    .await
    .map_err(Error::db("list servers"))?;
    Ok(rows.iter().map(from_row).collect())
}

/// Enabled key managers.
pub async fn key_managers(c: &mut SqliteConnection) -> Result<Vec<ServerRow>> {
    let rows = sqlx::query(
        "SELECT * FROM servers WHERE key_manager = $1 AND removed_at_ms IS NULL ORDER BY enrolled_at_ms, id",
    )
    .bind(true)
    .fetch_all(&mut *c)
    .await
    .map_err(Error::db("list key managers"))?;
    Ok(rows.iter().map(from_row).collect())
}

/// Sets the key-manager flag.
pub async fn set_key_manager(c: &mut SqliteConnection, id: &str, on: bool) -> Result<()> {
    sqlx::query("UPDATE servers SET key_manager = $1 WHERE id = $2")
        .bind(on)
        .bind(id)
        .execute(&mut *c)
        .await
        .map_err(Error::db("set key manager"))?;
    Ok(())
}

/// Marks a server removed; deletes its credential, environment memberships
/// and master-key wraps.
pub async fn remove(c: &mut SqliteConnection, id: &str) -> Result<()> {
    let now = now_ms();
    for (q, op) in [
        (
            "UPDATE servers SET removed_at_ms = $2, key_manager = FALSE WHERE id = $1",
            "remove server",
        ),
        (
            "UPDATE tokens SET revoked_at_ms = $2 WHERE server_id = $1 AND revoked_at_ms IS NULL",
            "revoke server credential",
        ),
        (
            "DELETE FROM environment_servers WHERE server_id = $1 AND $2 > 0",
            "remove server from environments",
        ),
        (
            "DELETE FROM master_key_wraps WHERE server_id = $1 AND $2 > 0",
            "delete server master key wraps",
        ),
    ] {
        sqlx::query(q)
            .bind(id)
            .bind(now)
            .execute(&mut *c)
            .await
            .map_err(Error::db(op))?;
    }
    Ok(())
}

/// Writes flushed last-seen times.
pub async fn flush_last_seen(c: &mut SqliteConnection, seen: &[(String, i64)]) -> Result<()> {
    for (id, t) in seen {
        sqlx::query("UPDATE servers SET last_seen_at_ms = $1 WHERE id = $2 AND (last_seen_at_ms IS NULL OR last_seen_at_ms < $1)")
            .bind(t)
            .bind(id)
            .execute(&mut *c)
            .await
            .map_err(Error::db("flush last seen"))?;
    }
    Ok(())
}

/// A master key row.
#[derive(Debug, Clone)]
pub struct MasterKeyRow {
    /// Id.
    pub id: String,
    /// creating | active | lost | failed.
    pub state: String,
}

/// The current (creating or active) master key.
pub async fn current_master_key(c: &mut SqliteConnection) -> Result<Option<MasterKeyRow>> {
    let row = sqlx::query(
        "SELECT id, state FROM master_keys WHERE state IN ('creating', 'active') ORDER BY created_at_ms DESC LIMIT 1",
    )
    .fetch_optional(&mut *c)
    .await
    .map_err(Error::db("read master key"))?;
    Ok(row.map(|r| MasterKeyRow {
        id: r.get("id"),
        state: r.get("state"),
    }))
}

/// Lost master key ids.
pub async fn lost_master_keys(c: &mut SqliteConnection) -> Result<Vec<String>> {
    Ok(
        sqlx::query("SELECT id FROM master_keys WHERE state = 'lost' ORDER BY created_at_ms")
            .fetch_all(&mut *c)
            .await
            .map_err(Error::db("read lost master keys"))?
            .iter()
            .map(|r| r.get("id"))
            .collect(),
    )
}

/// Sets a master key's state.
pub async fn set_master_key_state(c: &mut SqliteConnection, id: &str, state: &str) -> Result<()> {
    sqlx::query("UPDATE master_keys SET state = $1, lost_at_ms = CASE WHEN $1 = 'lost' THEN $2 ELSE lost_at_ms END WHERE id = $3")
        .bind(state)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *c)
        .await
        .map_err(Error::db("set master key state"))?;
    Ok(())
}

/// Inserts a master key in `creating` state.
pub async fn insert_master_key(c: &mut SqliteConnection, id: &str) -> Result<()> {
    sqlx::query("INSERT INTO master_keys (id, state, created_at_ms) VALUES ($1, 'creating', $2)")
        .bind(id)
        .bind(now_ms())
        .execute(&mut *c)
        .await
        .map_err(Error::db("insert master key"))?;
    Ok(())
}

/// Stores `wrap(P_i, MK)`.
pub async fn put_wrap(
    c: &mut SqliteConnection,
    mk: &str,
    server_id: &str,
    jwe: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO master_key_wraps (master_key_id, server_id, jwe, created_at_ms) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (master_key_id, server_id) DO NOTHING",
    )
    .bind(mk)
    .bind(server_id)
    .bind(jwe)
    .bind(now_ms())
    .execute(&mut *c)
    .await
    .map_err(Error::db("store master key wrap"))?;
    Ok(())
}

/// Servers holding a wrap of `mk`.
pub async fn holders(c: &mut SqliteConnection, mk: &str) -> Result<Vec<String>> {
    Ok(sqlx::query(
        "SELECT server_id FROM master_key_wraps WHERE master_key_id = $1 ORDER BY server_id",
    )
    .bind(mk)
    .fetch_all(&mut *c)
    .await
    .map_err(Error::db("list master key holders"))?
    .iter()
    .map(|r| r.get("server_id"))
    .collect())
}

/// `wrap(P_server, MK)`.
pub async fn wrap_for(
    c: &mut SqliteConnection,
    mk: &str,
    server_id: &str,
) -> Result<Option<String>> {
    Ok(
        sqlx::query("SELECT jwe FROM master_key_wraps WHERE master_key_id = $1 AND server_id = $2")
            .bind(mk)
            .bind(server_id)
            .fetch_optional(&mut *c)
            .await
            .map_err(Error::db("read master key wrap"))?
            .map(|r| r.get("jwe")),
    )
}
