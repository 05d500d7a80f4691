//! `custody-coordinator init`: a new account in an empty state dir — the
//! database, the audit key, a self-signed CA and server certificate (unless
//! TLS files are configured), and the owner's first API token (printed
//! once, stored only as a hash).

use crate::auth::TokenSecret;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::{Store, new_id, now_ms, users};
use custody_proto::admin::Role;
use serde_json::json;

/// What init made. Not `Debug`: it holds the owner token.
pub struct Initialised {
    /// Account id.
    pub account: String,
    /// Owner user id.
    pub owner_id: String,
    /// The owner's API token (shown once).
    pub owner_token: String,
    /// SHA-256 of the CA certificate, when one was made or configured.
    pub ca_fingerprint: Option<String>,
    /// Audit public key, hex.
    pub audit_public_key: String,
}

/// Initialises `config.state_dir`; refuses an already initialised one.
pub async fn init(config: &Config, owner: &str, names: &[String]) -> Result<Initialised> {
    custody_proto::ids::validate("owner name", owner)?;
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&config.state_dir)
            .map_err(Error::io("create state dir"))?;
    }
    let store = Store::open(&config.database_path()).await?;
    let existing: Option<String> = sqlx::query_scalar("SELECT id FROM account LIMIT 1")
        .fetch_optional(&store.read)
        .await
        .map_err(Error::db("read account"))?;
    if existing.is_some() {
        return Err(Error::state(format!(
            "{} is already initialised",
            config.state_dir.display()
        )));
    }
    let key = crate::audit::load_or_create_key(&config.state_dir.join("audit.key"), true)?;
    let ca_fingerprint = match &config.tls {
        Some(t) => {
            let certs = crate::tls::load_certs(&t.cert)?;
            certs.last().map(|c| crate::tls::fingerprint(c))
        }
        None if config.insecure_plain_http => None,
        None => Some(crate::tls::generate(&config.state_dir, names)?.ca_fingerprint),
    };
    let account = new_id("acc");
    let mut tx = store.begin().await?;
    sqlx::query("INSERT INTO account (id, created_at_ms) VALUES ($1, $2)")
        .bind(&account)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(Error::db("insert account"))?;
    let user = users::create_user(
        &mut tx,
        owner,
        &[Role::Owner, Role::Deployer, Role::Approver],
        None,
    )
    .await?;
    let token = TokenSecret::generate("cst")?;
    let token_id = users::insert_token(
        &mut tx,
        &token,
        Some(&user.id),
        None,
        Some("initial owner token"),
    )
    .await?;
    let actor = "coordinator";
    let mut head = None;
    crate::audit::append(
        &mut tx,
        &mut head,
        actor,
        "account.init",
        &format!("account:{account}"),
        "ok",
        json!({"ca_fingerprint": ca_fingerprint}),
    )
    .await?;
    crate::audit::append(
        &mut tx,
        &mut head,
        actor,
        "user.create",
        &format!("user:{}", user.id),
        "ok",
        json!({"name": user.name, "roles": user.roles}),
    )
    .await?;
    crate::audit::append(
        &mut tx,
        &mut head,
        actor,
        "token.create",
        &format!("token:{token_id}"),
        "ok",
        json!({"user": user.id, "prefix": token.prefix()}),
    )
    .await?;
    crate::audit::checkpoint(&mut tx, head.as_ref(), &key).await?;
    tx.commit().await.map_err(Error::db("commit init"))?;
    store.write.close().await;
    store.read.close().await;
    Ok(Initialised {
        account,
        owner_id: user.id,
        owner_token: token.expose().to_string(),
        ca_fingerprint,
        audit_public_key: hex::encode(key.verifying_key().to_bytes()),
    })
}
