//! Apps, releases (and their key wraps), environments and variables.

use super::{new_id, now_ms};
use crate::error::{Error, Result};
use custody_proto::ErrorCode;
use custody_proto::apps::{App, Release, ReleaseState, Variable};
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

/// An environment row.
#[derive(Debug, Clone)]
pub struct EnvRow {
    /// Id.
    pub id: String,
    /// App id.
    pub app_id: String,
    /// Name.
    pub name: String,
}

/// Creates an environment.
pub async fn create_env(c: &mut SqliteConnection, app_id: &str, name: &str) -> Result<EnvRow> {
    if find_env(&mut *c, app_id, name).await?.is_some() {
        return Err(Error::api(
            ErrorCode::AlreadyExists,
            format!("environment {name} already exists"),
        ));
    }
    let id = new_id("env");
    sqlx::query(
        "INSERT INTO environments (id, app_id, name, created_at_ms) VALUES ($1, $2, $3, $4)",
    )
    .bind(&id)
    .bind(app_id)
    .bind(name)
    .bind(now_ms())
    .execute(&mut *c)
    .await
    .map_err(Error::db("insert environment"))?;
    Ok(EnvRow {
        id,
        app_id: app_id.into(),
        name: name.into(),
    })
}

/// An environment of an app by id or name.
pub async fn find_env(
    c: &mut SqliteConnection,
    app_id: &str,
    id_or_name: &str,
) -> Result<Option<EnvRow>> {
    Ok(
        sqlx::query("SELECT * FROM environments WHERE app_id = $1 AND (id = $2 OR name = $2)")
            .bind(app_id)
            .bind(id_or_name)
            .fetch_optional(&mut *c)
            .await
            .map_err(Error::db("find environment"))?
            .map(|r| EnvRow {
                id: r.get("id"),
                app_id: r.get("app_id"),
                name: r.get("name"),
            }),
    )
}

/// An environment by id.
pub async fn get_env(c: &mut SqliteConnection, id: &str) -> Result<Option<EnvRow>> {
    Ok(sqlx::query("SELECT * FROM environments WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *c)
        .await
        .map_err(Error::db("read environment"))?
        .map(|r| EnvRow {
            id: r.get("id"),
            app_id: r.get("app_id"),
            name: r.get("name"),
        }))
}

/// Environments of an app.
pub async fn list_envs(c: &mut SqliteConnection, app_id: &str) -> Result<Vec<EnvRow>> {
    Ok(
        sqlx::query("SELECT * FROM environments WHERE app_id = $1 ORDER BY name")
            .bind(app_id)
            .fetch_all(&mut *c)
            .await
            .map_err(Error::db("list environments"))?
            .iter()
            .map(|r| EnvRow {
                id: r.get("id"),
                app_id: r.get("app_id"),
                name: r.get("name"),
            })
            .collect(),
    )
}

/// Adds a target server (idempotent).
pub async fn add_env_server(c: &mut SqliteConnection, env_id: &str, server_id: &str) -> Result<()> {
    sqlx::query("INSERT INTO environment_servers (environment_id, server_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(env_id)
        .bind(server_id)
        .execute(&mut *c)
        .await
        .map_err(Error::db("add environment server"))?;
    Ok(())
}

/// Target servers of an environment.
pub async fn env_servers(c: &mut SqliteConnection, env_id: &str) -> Result<Vec<String>> {
    Ok(sqlx::query(
        "SELECT server_id FROM environment_servers WHERE environment_id = $1 ORDER BY server_id",
    )
    .bind(env_id)
    .fetch_all(&mut *c)
    .await
    .map_err(Error::db("list environment servers"))?
    .iter()
    .map(|r| r.get("server_id"))
    .collect())
}

/// A variable row.
#[derive(Debug, Clone)]
pub struct VarRow {
    /// Id.
    pub id: String,
    /// Environment id.
    pub environment_id: String,
    /// Name.
    pub name: String,
    /// Secret.
    pub secret: bool,
    /// Plain value.
    pub value: Option<String>,
    /// seal(MK, value).
    pub sealed: Option<String>,
    /// MK it is (to be) sealed under.
    pub master_key_id: Option<String>,
    /// plain | sealing | sealed | failed.
    pub state: String,
}

impl VarRow {
    /// Public view.
    pub fn public(&self) -> Variable {
        Variable {
            name: self.name.clone(),
            secret: self.secret,
            value: if self.secret {
                None
            } else {
                self.value.clone()
            },
            state: self.secret.then(|| self.state.clone()),
        }
    }
}

fn var_from_row(r: &SqliteRow) -> VarRow {
    VarRow {
        id: r.get("id"),
        environment_id: r.get("environment_id"),
        name: r.get("name"),
        secret: r.get("secret"),
        value: r.get("value"),
        sealed: r.get("sealed"),
        master_key_id: r.get("master_key_id"),
        state: r.get("state"),
    }
}

/// Variables of an environment.
pub async fn env_vars(c: &mut SqliteConnection, env_id: &str) -> Result<Vec<VarRow>> {
    Ok(
        sqlx::query("SELECT * FROM variables WHERE environment_id = $1 ORDER BY name")
            .bind(env_id)
            .fetch_all(&mut *c)
            .await
            .map_err(Error::db("list variables"))?
            .iter()
            .map(var_from_row)
            .collect(),
    )
}

/// A variable by id.
pub async fn get_var(c: &mut SqliteConnection, id: &str) -> Result<Option<VarRow>> {
    Ok(sqlx::query("SELECT * FROM variables WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *c)
        .await
        .map_err(Error::db("read variable"))?
        .as_ref()
        .map(var_from_row))
}

/// Replaces a variable (deleting the old row and its wraps); returns the new id.
pub async fn put_var(
    c: &mut SqliteConnection,
    env_id: &str,
    name: &str,
    plain: Option<&str>,
    secret_mk: Option<&str>,
) -> Result<String> {
    let old: Vec<String> =
        sqlx::query("SELECT id FROM variables WHERE environment_id = $1 AND name = $2")
            .bind(env_id)
            .bind(name)
            .fetch_all(&mut *c)
            .await
            .map_err(Error::db("find variable"))?
            .iter()
            .map(|r| r.get("id"))
            .collect();
    for id in old {
        sqlx::query("DELETE FROM variable_wraps WHERE variable_id = $1")
            .bind(&id)
            .execute(&mut *c)
            .await
            .map_err(Error::db("delete variable wraps"))?;
        sqlx::query("DELETE FROM variables WHERE id = $1")
            .bind(&id)
            .execute(&mut *c)
            .await
            .map_err(Error::db("delete variable"))?;
    }
    let id = new_id("var");
    sqlx::query(
        "INSERT INTO variables (id, environment_id, name, secret, value, master_key_id, state) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(env_id)
    .bind(name)
    .bind(secret_mk.is_some())
    .bind(plain)
    .bind(secret_mk)
    .bind(if secret_mk.is_some() {
        "sealing"
    } else {
        "plain"
    })
    .execute(&mut *c)
    .await
    .map_err(Error::db("insert variable"))?;
    Ok(id)
}

/// Stores `wrap(P_i, value)` of a secret variable.
pub async fn put_var_wrap(
    c: &mut SqliteConnection,
    var_id: &str,
    server: &str,
    jwe: &str,
) -> Result<()> {
    sqlx::query("INSERT INTO variable_wraps (variable_id, server_id, jwe) VALUES ($1, $2, $3)")
        .bind(var_id)
        .bind(server)
        .bind(jwe)
        .execute(&mut *c)
        .await
        .map_err(Error::db("store variable wrap"))?;
    Ok(())
}

/// `wrap(P_server, value)`.
pub async fn var_wrap(
    c: &mut SqliteConnection,
    var_id: &str,
    server: &str,
) -> Result<Option<String>> {
    Ok(
        sqlx::query("SELECT jwe FROM variable_wraps WHERE variable_id = $1 AND server_id = $2")
            .bind(var_id)
            .bind(server)
            .fetch_optional(&mut *c)
            .await
            .map_err(Error::db("read variable wrap"))?
            .map(|r| r.get("jwe")),
    )
}

/// Servers a variable was wrapped to.
pub async fn var_wrap_servers(c: &mut SqliteConnection, var_id: &str) -> Result<Vec<String>> {
    Ok(
        sqlx::query("SELECT server_id FROM variable_wraps WHERE variable_id = $1")
            .bind(var_id)
            .fetch_all(&mut *c)
            .await
            .map_err(Error::db("list variable wraps"))?
            .iter()
            .map(|r| r.get("server_id"))
            .collect(),
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

/// Stores `seal(MK, value)` and drops the wraps.
pub async fn set_var_sealed(
    c: &mut SqliteConnection,
    var_id: &str,
    jwe: Option<&str>,
) -> Result<()> {
    sqlx::query("UPDATE variables SET sealed = $1, state = $2 WHERE id = $3")
        .bind(jwe)
        .bind(if jwe.is_some() { "sealed" } else { "failed" })
        .bind(var_id)
        .execute(&mut *c)
        .await
        .map_err(Error::db("store sealed variable"))?;
    sqlx::query("DELETE FROM variable_wraps WHERE variable_id = $1")
        .bind(var_id)
        .execute(&mut *c)
        .await
        .map_err(Error::db("delete variable wraps"))?;
    Ok(())
}
