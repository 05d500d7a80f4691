//! Users, API tokens, approver groups, join tokens.

use super::{join_list, new_id, now_ms, split_list};
use crate::error::{Error, Result};
use custody_proto::ErrorCode;
use custody_proto::admin::{Group, Role, TokenInfo, User};
use sqlx::{Row, Sqlite, SqliteConnection, sqlite::SqliteRow};

/// Parses a roles column.
pub fn parse_roles(s: &str) -> Vec<Role> {
    split_list(s)
        .iter()
        .filter_map(|r| Role::parse(r))
        .collect()
}

fn roles_col(roles: &[Role]) -> String {
    let mut r: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    r.sort_unstable();
    r.dedup();
    join_list(&r)
}

fn user_from_row(r: &SqliteRow) -> User {
    User {
        id: r.get("id"),
        name: r.get("name"),
        roles: parse_roles(&r.get::<String, _>("roles")),
        email: r.get("email"),
        approval_key_id: r.get("approval_key_id"),
        created_at: r.get::<i64, _>("created_at_ms") / 1000,
    }
}

/// Inserts a user; refuses a duplicate name.
pub async fn create_user(
    c: &mut SqliteConnection,
    name: &str,
    roles: &[Role],
    email: Option<&str>,
) -> Result<User> {
    if find_user(&mut *c, name).await?.is_some() {
        return Err(Error::api(
            ErrorCode::AlreadyExists,
            format!("user {name} already exists"),
        ));
    }
    let id = new_id("usr");
    let now = now_ms();
    sqlx::query(
        "INSERT INTO users (id, name, roles, email, created_at_ms) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&id)
    .bind(name)
    .bind(roles_col(roles))
    .bind(email)
    .bind(now)
    .execute(&mut *c)
    .await
    .map_err(Error::db("insert user"))?;
    Ok(User {
        id,
        name: name.into(),
        roles: parse_roles(&roles_col(roles)),
        email: email.map(str::to_string),
        approval_key_id: None,
        created_at: now / 1000,
    })
}

/// A live (not removed) user by id or name.
pub async fn find_user<'e, E>(c: E, id_or_name: &str) -> Result<Option<User>>
where
    E: sqlx::Executor<'e, Database = Sqlite>,
{
    let row =
        sqlx::query("SELECT * FROM users WHERE (id = $1 OR name = $1) AND removed_at_ms IS NULL")
            .bind(id_or_name)
            .fetch_optional(c)
            .await
            .map_err(Error::db("find user"))?;
    Ok(row.as_ref().map(user_from_row))
}

/// Every live user.
pub async fn list_users<'e, E>(c: E) -> Result<Vec<User>>
where
    E: sqlx::Executor<'e, Database = Sqlite>,
{
    let rows = sqlx::query("SELECT * FROM users WHERE removed_at_ms IS NULL ORDER BY name")
        .fetch_all(c)
        .await
        .map_err(Error::db("list users"))?;
    Ok(rows.iter().map(user_from_row).collect())
}

/// Marks a user removed and revokes its tokens; refuses to remove the last owner.
pub async fn remove_user(c: &mut SqliteConnection, user: &User) -> Result<()> {
    if user.roles.contains(&Role::Owner) {
        let owners = list_users(&mut *c)
            .await?
            .into_iter()
            .filter(|u| u.roles.contains(&Role::Owner))
            .count();
        if owners <= 1 {
            return Err(Error::state("cannot remove the last owner"));
        }
    }
    let now = now_ms();
    sqlx::query("UPDATE users SET removed_at_ms = $1 WHERE id = $2")
        .bind(now)
        .bind(&user.id)
        .execute(&mut *c)
        .await
        .map_err(Error::db("remove user"))?;
    sqlx::query(
        "UPDATE tokens SET revoked_at_ms = $1 WHERE user_id = $2 AND revoked_at_ms IS NULL",
    )
    .bind(now)
    .bind(&user.id)
    .execute(&mut *c)
    .await
    .map_err(Error::db("revoke user tokens"))?;
    sqlx::query("DELETE FROM group_members WHERE user_id = $1")
        .bind(&user.id)
        .execute(&mut *c)
        .await
        .map_err(Error::db("remove user from groups"))?;
    Ok(())
}

/// Stores a new token (its hash) for a user or a server.
pub async fn insert_token(
    c: &mut SqliteConnection,
    secret: &crate::auth::TokenSecret,
    user_id: Option<&str>,
    server_id: Option<&str>,
    label: Option<&str>,
) -> Result<String> {
    let id = new_id("tok");
    sqlx::query(
        "INSERT INTO tokens (id, prefix, hash, user_id, server_id, label, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&id)
    .bind(secret.prefix())
    .bind(secret.hash_hex())
    .bind(user_id)
    .bind(server_id)
    .bind(label)
    .bind(now_ms())
    .execute(&mut *c)
    .await
    .map_err(Error::db("insert token"))?;
    Ok(id)
}

/// Candidate (id, hash, user_id, server_id) rows for a token prefix.
pub async fn tokens_by_prefix(
    pool: &sqlx::SqlitePool,
    prefix: &str,
) -> Result<Vec<(String, String, Option<String>, Option<String>)>> {
    let rows = sqlx::query(
        "SELECT id, hash, user_id, server_id FROM tokens WHERE prefix = $1 AND revoked_at_ms IS NULL",
    )
    .bind(prefix)
    .fetch_all(pool)
    .await
    .map_err(Error::db("look up token"))?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                r.get("id"),
                r.get("hash"),
                r.get("user_id"),
                r.get("server_id"),
            )
        })
        .collect())
}

/// Tokens of a user (or all users' when `user_id` is None).
pub async fn list_tokens(pool: &sqlx::SqlitePool, user_id: Option<&str>) -> Result<Vec<TokenInfo>> {
    let rows = sqlx::query(
        "SELECT * FROM tokens WHERE user_id IS NOT NULL AND ($1 IS NULL OR user_id = $1) ORDER BY created_at_ms",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await
    .map_err(Error::db("list tokens"))?;
    Ok(rows
        .iter()
        .map(|r| TokenInfo {
            id: r.get("id"),
            user_id: r.get("user_id"),
            label: r.get("label"),
            prefix: r.get("prefix"),
            created_at: r.get::<i64, _>("created_at_ms") / 1000,
            revoked_at: r.get::<Option<i64>, _>("revoked_at_ms").map(|t| t / 1000),
        })
        .collect())
}

/// The user a live token belongs to.
pub async fn token_owner(c: &mut SqliteConnection, token_id: &str) -> Result<Option<String>> {
    let row = sqlx::query("SELECT user_id FROM tokens WHERE id = $1 AND revoked_at_ms IS NULL")
        .bind(token_id)
        .fetch_optional(&mut *c)
        .await
        .map_err(Error::db("find token"))?;
    Ok(row.and_then(|r| r.get("user_id")))
}

/// Revokes a token.
pub async fn revoke_token(c: &mut SqliteConnection, token_id: &str) -> Result<()> {
    sqlx::query("UPDATE tokens SET revoked_at_ms = $1 WHERE id = $2 AND revoked_at_ms IS NULL")
        .bind(now_ms())
        .bind(token_id)
        .execute(&mut *c)
        .await
        .map_err(Error::db("revoke token"))?;
    Ok(())
}

/// Creates a group.
pub async fn create_group(c: &mut SqliteConnection, name: &str) -> Result<Group> {
    if find_group(&mut *c, name).await?.is_some() {
        return Err(Error::api(
            ErrorCode::AlreadyExists,
            format!("group {name} already exists"),
        ));
    }
    let id = new_id("grp");
    sqlx::query("INSERT INTO groups_ (id, name, created_at_ms) VALUES ($1, $2, $3)")
        .bind(&id)
        .bind(name)
        .bind(now_ms())
        .execute(&mut *c)
        .await
        .map_err(Error::db("insert group"))?;
    Ok(Group {
        id,
        name: name.into(),
        members: vec![],
    })
}

/// A group by id or name, with members.
pub async fn find_group(c: &mut SqliteConnection, id_or_name: &str) -> Result<Option<Group>> {
    let row = sqlx::query("SELECT id, name FROM groups_ WHERE id = $1 OR name = $1")
        .bind(id_or_name)
        .fetch_optional(&mut *c)
        .await
        .map_err(Error::db("find group"))?;
    let Some(row) = row else { return Ok(None) };
    let id: String = row.get("id");
    let members =
        sqlx::query("SELECT user_id FROM group_members WHERE group_id = $1 ORDER BY user_id")
            .bind(&id)
            .fetch_all(&mut *c)
            .await
            .map_err(Error::db("list group members"))?
            .iter()
            .map(|r| r.get("user_id"))
            .collect();
    Ok(Some(Group {
        id,
        name: row.get("name"),
        members,
    }))
}

/// Every group.
pub async fn list_groups(c: &mut SqliteConnection) -> Result<Vec<Group>> {
    let names: Vec<String> = sqlx::query("SELECT id FROM groups_ ORDER BY name")
        .fetch_all(&mut *c)
        .await
        .map_err(Error::db("list groups"))?
        .iter()
        .map(|r| r.get("id"))
        .collect();
    let mut out = Vec::new();
    for id in names {
        if let Some(g) = find_group(&mut *c, &id).await? {
            out.push(g);
        }
    }
    Ok(out)
}

/// Adds a member (idempotent).
pub async fn add_member(c: &mut SqliteConnection, group_id: &str, user_id: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO group_members (group_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(group_id)
    .bind(user_id)
    .execute(&mut *c)
    .await
    .map_err(Error::db("add group member"))?;
    Ok(())
}

/// Stores a join token's hash.
pub async fn insert_join_token(
    c: &mut SqliteConnection,
    hash: &str,
    created_by: &str,
    expires_at_ms: i64,
) -> Result<()> {
    sqlx::query("INSERT INTO join_tokens (hash, created_by, expires_at_ms) VALUES ($1, $2, $3)")
        .bind(hash)
        .bind(created_by)
        .bind(expires_at_ms)
        .execute(&mut *c)
        .await
        .map_err(Error::db("insert join token"))?;
    Ok(())
}

/// Consumes a join token: refuses unknown, used or expired ones.
pub async fn consume_join_token(
    c: &mut SqliteConnection,
    hash: &str,
    server_id: &str,
) -> Result<()> {
    let now = now_ms();
    let done = sqlx::query(
        "UPDATE join_tokens SET used_at_ms = $1, server_id = $2 \
         WHERE hash = $3 AND used_at_ms IS NULL AND expires_at_ms > $1",
    )
    .bind(now)
    .bind(server_id)
    .bind(hash)
    .execute(&mut *c)
    .await
    .map_err(Error::db("consume join token"))?;
    if done.rows_affected() != 1 {
        return Err(Error::api(
            ErrorCode::JoinTokenInvalid,
            "the join token is unknown, already used or expired",
        ));
    }
    Ok(())
}
