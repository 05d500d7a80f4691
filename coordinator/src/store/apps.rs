//! Apps, releases (and their key wraps), environments and variables.

use super::{new_id, now_ms};
use crate::error::{Error, Result};
use custody_proto::ErrorCode;
use custody_proto::apps::{App, Release, ReleaseState};
use sqlx::{Row, Sqlite, SqliteConnection, sqlite::SqliteRow};

fn app_from_row(r: &SqliteRow) -> App {
    App {
        id: r.get("id"),
        name: r.get("name"),
        secure: r.get("secure"),
        created_at: r.get::<i64, _>("created_at_ms") / 1000,
    }
}

/// Creates an app.
pub async fn create_app(c: &mut SqliteConnection, name: &str, secure: bool) -> Result<App> {
    if find_app(&mut *c, name).await?.is_some() {
        return Err(Error::api(
            ErrorCode::AlreadyExists,
            format!("app {name} already exists"),
        ));
    }
    let id = new_id("app");
    let now = now_ms();
    sqlx::query("INSERT INTO apps (id, name, secure, created_at_ms) VALUES ($1, $2, $3, $4)")
        .bind(&id)
        .bind(name)
        .bind(secure)
        .bind(now)
        .execute(&mut *c)
        .await
        .map_err(Error::db("insert app"))?;
    Ok(App {
        id,
        name: name.into(),
        secure,
        created_at: now / 1000,
    })
}

/// An app by id or name.
pub async fn find_app<'e, E>(c: E, id_or_name: &str) -> Result<Option<App>>
where
    E: sqlx::Executor<'e, Database = Sqlite>,
{
    Ok(sqlx::query("SELECT * FROM apps WHERE id = $1 OR name = $1")
        .bind(id_or_name)
        .fetch_optional(c)
        .await
        .map_err(Error::db("find app"))?
        .as_ref()
        .map(app_from_row))
}

/// Every app.
pub async fn list_apps(pool: &sqlx::SqlitePool) -> Result<Vec<App>> {
    Ok(sqlx::query("SELECT * FROM apps ORDER BY name")
        .fetch_all(pool)
        .await
        .map_err(Error::db("list apps"))?
        .iter()
        .map(app_from_row)
        .collect())
}

/// Marks an app secure.
pub async fn set_secure(c: &mut SqliteConnection, id: &str) -> Result<()> {
    sqlx::query("UPDATE apps SET secure = $1 WHERE id = $2")
        .bind(true)
        .bind(id)
        .execute(&mut *c)
        .await
        .map_err(Error::db("secure app"))?;
    Ok(())
}

/// A release row with its private columns.
#[derive(Debug, Clone)]
pub struct ReleaseRow {
    /// Public view.
    pub public: Release,
    /// App id.
    pub app_id: String,
    /// Signed descriptor JSON.
    pub descriptor: Option<String>,
    /// seal(MK, RK).
    pub sealed_release_key: Option<String>,
}

fn state_name(s: ReleaseState) -> &'static str {
    match s {
        ReleaseState::Created => "created",
        ReleaseState::Uploaded => "uploaded",
        ReleaseState::Sealing => "sealing",
        ReleaseState::Deployable => "deployable",
        ReleaseState::Undeployable => "undeployable",
    }
}

fn parse_state(s: &str) -> ReleaseState {
    match s {
        "created" => ReleaseState::Created,
        "uploaded" => ReleaseState::Uploaded,
        "sealing" => ReleaseState::Sealing,
        "deployable" => ReleaseState::Deployable,
        _ => ReleaseState::Undeployable,
    }
}

const RELEASE_SELECT: &str =
    "SELECT r.*, a.name AS app_name FROM releases r JOIN apps a ON a.id = r.app_id";

async fn release_from_row(c: &mut SqliteConnection, r: &SqliteRow) -> Result<ReleaseRow> {
    let id: String = r.get("id");
    let fps = sqlx::query(
        "SELECT s.fingerprint FROM release_key_wraps w JOIN servers s ON s.id = w.server_id \
         WHERE w.release_id = $1 ORDER BY s.fingerprint",
    )
    .bind(&id)
    .fetch_all(&mut *c)
    .await
    .map_err(Error::db("read release fingerprints"))?
    .iter()
    .map(|r| r.get("fingerprint"))
    .collect();
    Ok(ReleaseRow {
        public: Release {
            id,
            app: r.get("app_name"),
            state: parse_state(&r.get::<String, _>("state")),
            package_sha256: r.get("package_sha256"),
            package_size: r.get::<Option<i64>, _>("package_size").map(|s| s as u64),
            master_key_id: r.get("master_key_id"),
            undeployable_reason: r.get("undeployable_reason"),
            key_manager_fingerprints: fps,
            created_at: r.get::<i64, _>("created_at_ms") / 1000,
        },
        app_id: r.get("app_id"),
        descriptor: r.get("descriptor"),
        sealed_release_key: r.get("sealed_release_key"),
    })
}

/// Allocates a release.
pub async fn create_release(
    c: &mut SqliteConnection,
    app_id: &str,
    master_key_id: &str,
    created_by: &str,
) -> Result<String> {
    let id = new_id("rel");
    sqlx::query(
        "INSERT INTO releases (id, app_id, state, master_key_id, created_by, created_at_ms) \
         VALUES ($1, $2, 'created', $3, $4, $5)",
    )
    .bind(&id)
    .bind(app_id)
    .bind(master_key_id)
    .bind(created_by)
    .bind(now_ms())
    .execute(&mut *c)
    .await
    .map_err(Error::db("insert release"))?;
    Ok(id)
}

/// A release by id.
pub async fn get_release(c: &mut SqliteConnection, id: &str) -> Result<Option<ReleaseRow>> {
    let row = sqlx::query(&format!("{RELEASE_SELECT} WHERE r.id = $1"))
        .bind(id)
        .fetch_optional(&mut *c)
        .await
        .map_err(Error::db("read release"))?;
    match row {
        Some(r) => Ok(Some(release_from_row(c, &r).await?)),
        None => Ok(None),
    }
}

/// Releases of an app, newest first.
pub async fn list_releases(c: &mut SqliteConnection, app_id: &str) -> Result<Vec<Release>> {
    let rows = sqlx::query(&format!(
        "{RELEASE_SELECT} WHERE r.app_id = $1 ORDER BY r.created_at_ms DESC, r.id DESC"
    ))
    .bind(app_id)
    .fetch_all(&mut *c)
    .await
    .map_err(Error::db("list releases"))?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(release_from_row(c, r).await?.public);
    }
    Ok(out)
}

/// Sets a release's state (and reason).
pub async fn set_release_state(
    c: &mut SqliteConnection,
    id: &str,
    state: ReleaseState,
    reason: Option<&str>,
) -> Result<()> {
    sqlx::query("UPDATE releases SET state = $1, undeployable_reason = $2 WHERE id = $3")
        .bind(state_name(state))
        .bind(reason)
        .bind(id)
        .execute(&mut *c)
        .await
        .map_err(Error::db("set release state"))?;
    Ok(())
}

/// Records the uploaded package (or clears it with None).
pub async fn set_package(
    c: &mut SqliteConnection,
    id: &str,
    pkg: Option<(&str, u64)>,
) -> Result<()> {
    sqlx::query(
        "UPDATE releases SET package_sha256 = $1, package_size = $2, state = $3 WHERE id = $4",
    )
    .bind(pkg.map(|p| p.0))
    .bind(pkg.map(|p| p.1 as i64))
    .bind(if pkg.is_some() { "uploaded" } else { "created" })
    .bind(id)
    .execute(&mut *c)
    .await
    .map_err(Error::db("record package"))?;
    Ok(())
}

/// Stores the descriptor and the key wraps; state → sealing.
pub async fn finalize(
    c: &mut SqliteConnection,
    id: &str,
    descriptor: &str,
    wraps: &[custody_proto::apps::WrappedKey],
) -> Result<()> {
    sqlx::query("UPDATE releases SET descriptor = $1, state = 'sealing' WHERE id = $2")
        .bind(descriptor)
        .bind(id)
        .execute(&mut *c)
        .await
        .map_err(Error::db("finalize release"))?;
    for w in wraps {
        sqlx::query(
            "INSERT INTO release_key_wraps (release_id, server_id, jwe) VALUES ($1, $2, $3)",
        )
        .bind(id)
        .bind(&w.server_id)
        .bind(&w.jwe)
        .execute(&mut *c)
        .await
        .map_err(Error::db("store release key wrap"))?;
    }
    Ok(())
}

/// `wrap(P_server, RK)`, if any.
pub async fn release_wrap(
    c: &mut SqliteConnection,
    id: &str,
    server: &str,
) -> Result<Option<String>> {
    Ok(
        sqlx::query("SELECT jwe FROM release_key_wraps WHERE release_id = $1 AND server_id = $2")
            .bind(id)
            .bind(server)
            .fetch_optional(&mut *c)
            .await
            .map_err(Error::db("read release key wrap"))?
            .map(|r| r.get("jwe")),
    )
}

/// Stores `seal(MK, RK)`; the release becomes deployable.
pub async fn set_sealed_release_key(c: &mut SqliteConnection, id: &str, jwe: &str) -> Result<()> {
    sqlx::query("UPDATE releases SET sealed_release_key = $1, state = 'deployable' WHERE id = $2 AND state = 'sealing'")
        .bind(jwe)
        .bind(id)
        .execute(&mut *c)
        .await
        .map_err(Error::db("store sealed release key"))?;
    Ok(())
}

/// Flags every release under a lost master key undeployable.
pub async fn flag_lost(c: &mut SqliteConnection, mk: &str, reason: &str) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE releases SET state = 'undeployable', undeployable_reason = $1 WHERE master_key_id = $2 AND state <> 'undeployable'",
    )
    .bind(reason)
    .bind(mk)
    .execute(&mut *c)
    .await
    .map_err(Error::db("flag releases undeployable"))?
    .rows_affected())
}

/// Deletes a release and its wraps; returns its package digest.
pub async fn delete_release(c: &mut SqliteConnection, id: &str) -> Result<()> {
    for (q, op) in [
        (
            "DELETE FROM release_key_wraps WHERE release_id = $1",
            "delete release key wraps",
        ),
        ("DELETE FROM releases WHERE id = $1", "delete release"),
    ] {
        sqlx::query(q)
            .bind(id)
            .execute(&mut *c)
            .await
            .map_err(Error::db(op))?;
    }
    Ok(())
}

/// How many releases use a package.
pub async fn package_refs(c: &mut SqliteConnection, sha: &str) -> Result<i64> {
    Ok(
        sqlx::query("SELECT COUNT(*) AS n FROM releases WHERE package_sha256 = $1")
            .bind(sha)
            .fetch_one(&mut *c)
            .await
            .map_err(Error::db("count package references"))?
            .get("n"),
    )
}

/// Servers a release key was wrapped to.
pub async fn release_wrap_servers(c: &mut SqliteConnection, rel_id: &str) -> Result<Vec<String>> {
    Ok(
        sqlx::query("SELECT server_id FROM release_key_wraps WHERE release_id = $1")
            .bind(rel_id)
            .fetch_all(&mut *c)
            .await
            .map_err(Error::db("list release key wraps"))?
            .iter()
            .map(|r| r.get("server_id"))
            .collect(),
    )
}
