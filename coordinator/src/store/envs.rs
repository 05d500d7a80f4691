//! Environments, their target servers and variables (plain, and secret ones
//! with their per-key-manager wraps until sealed).

use super::{new_id, now_ms};
use crate::error::{Error, Result};
use custody_proto::ErrorCode;
use custody_proto::apps::Variable;
use sqlx::{Row, SqliteConnection, sqlite::SqliteRow};

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

/// A variable with the names of the environment and app it belongs to:
/// what a seal job is bound to (one query, not three).
#[derive(Debug, Clone)]
pub struct VarInContext {
    /// The variable.
    pub var: VarRow,
    /// Its environment's name (`None` if the environment row is gone).
    pub environment: Option<String>,
    /// Its app's name (`None` if the app row is gone).
    pub app: Option<String>,
}

/// The columns and joins that put a variable (`v`) in context (macros, so
/// the queries below are `&'static str` built at compile time).
macro_rules! in_context_columns {
    () => {
        "SELECT v.*, e.name AS environment_name, a.name AS app_name"
    };
}
macro_rules! in_context_joins {
    () => {
        "FROM variables v LEFT JOIN environments e ON e.id = v.environment_id \
         LEFT JOIN apps a ON a.id = e.app_id"
    };
}

fn in_context_from_row(r: &SqliteRow) -> VarInContext {
    VarInContext {
        var: var_from_row(r),
        environment: r.get("environment_name"),
        app: r.get("app_name"),
    }
}

/// A variable by id, with its environment's and app's names.
pub async fn var_in_context(c: &mut SqliteConnection, id: &str) -> Result<Option<VarInContext>> {
    Ok(sqlx::query(concat!(
        in_context_columns!(),
        " ",
        in_context_joins!(),
        " WHERE v.id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *c)
    .await
    .map_err(Error::db("read variable"))?
    .as_ref()
    .map(in_context_from_row))
}

/// What a seal job for `server` is built from: the variable in context,
/// and the master key and the value as wrapped to that server.
#[derive(Debug, Clone)]
pub struct SealInputs {
    /// The variable, its environment and app.
    pub var: VarInContext,
    /// `wrap(P_server, MK)` of the variable's master key, if the server has one.
    pub master_key_wrap: Option<String>,
    /// `wrap(P_server, value)`, if the value was wrapped to the server.
    pub value_wrap: Option<String>,
}

/// [`SealInputs`] for `server` in one query (a hand-out of many seal jobs
/// reads one row per job).
pub async fn seal_inputs(
    c: &mut SqliteConnection,
    id: &str,
    server: &str,
) -> Result<Option<SealInputs>> {
    Ok(sqlx::query(concat!(
        in_context_columns!(),
        ", mw.jwe AS master_key_wrap, vw.jwe AS value_wrap ",
        in_context_joins!(),
        " LEFT JOIN master_key_wraps mw ON mw.master_key_id = v.master_key_id AND mw.server_id = $2 \
         LEFT JOIN variable_wraps vw ON vw.variable_id = v.id AND vw.server_id = $2 \
         WHERE v.id = $1"
    ))
    .bind(id)
    .bind(server)
    .fetch_optional(&mut *c)
    .await
    .map_err(Error::db("read variable"))?
    .map(|r| SealInputs {
        var: in_context_from_row(&r),
        master_key_wrap: r.get("master_key_wrap"),
        value_wrap: r.get("value_wrap"),
    }))
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
