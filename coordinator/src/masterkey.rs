//! Master-key bookkeeping. The coordinator never sees `MK`; it keeps
//! `wrap(P_i, MK)` per key manager and decides when a key manager must make
//! one (none exists) or learn it (a newcomer). `MK` is lost only when an
//! owner has removed every server that held it — never because holders
//! missed heartbeats.

use crate::error::{Error, Result};
use crate::jobspec::Spec;
use crate::routing;
use crate::state::Tx;
use crate::store::{apps, jobs as jstore, new_id, servers};
use custody_proto::apps::WrappedKey;
use custody_proto::jobs::JobKind;
use custody_proto::servers::MasterKeyStatus;
use serde_json::json;

/// Queues whatever the key managers need: a "create master key" job when
/// there is no key and at least one key manager; a "share master key" job
/// for every enabled key manager that does not hold the current key.
pub async fn reconcile(tx: &mut Tx<'_>, actor: &str) -> Result<()> {
    let kms = servers::key_managers(&mut tx.c).await?;
    if kms.is_empty() {
        return Ok(());
    }
    match servers::current_master_key(&mut tx.c).await? {
        None => {
            let id = new_id("mk");
            servers::insert_master_key(&mut tx.c, &id).await?;
            tx.audit(
                actor,
                "master_key.create",
                &format!("master_key:{id}"),
                "queued",
                json!({}),
            )
            .await?;
            routing::enqueue(tx, Spec::CreateMasterKey { master_key_id: id }, actor).await?;
        }
        Some(mk) if mk.state == "active" => {
            let holders = servers::holders(&mut tx.c, &mk.id).await?;
            for km in kms.iter().filter(|k| !holders.contains(&k.id)) {
                let spec = Spec::ShareMasterKey {
                    master_key_id: mk.id.clone(),
                    newcomer: km.id.clone(),
                };
                if jstore::open_with_spec(&mut tx.c, JobKind::ShareMasterKey, &spec.to_json()?)
                    .await?
                    .is_empty()
                {
                    routing::enqueue(tx, spec, actor).await?;
                }
            }
        }
        Some(_) => {} // being created: the creator wraps it for every key manager
    }
    Ok(())
}

/// A key manager made `MK` and wrapped it.
pub async fn on_created(tx: &mut Tx<'_>, mk: &str, wrapped: &[WrappedKey], by: &str) -> Result<()> {
    let current = servers::current_master_key(&mut tx.c).await?;
    if current.as_ref().map(|m| (m.id.as_str(), m.state.as_str())) != Some((mk, "creating")) {
        return Err(Error::state("this master key is no longer being created"));
    }
    let kms = servers::key_managers(&mut tx.c).await?;
    if !wrapped.iter().any(|w| w.server_id == by) {
        return Err(Error::invalid(
            "the creating key manager must wrap the master key for itself",
        ));
    }
    let account = tx.state().account.clone();
    for w in wrapped {
        let Some(km) = kms.iter().find(|k| k.id == w.server_id) else {
            return Err(Error::invalid(format!(
                "{} is not a key manager",
                w.server_id
            )));
        };
        crate::envelopes::check(
            &w.jwe,
            &account,
            crate::envelopes::Expect::new(
                "wrapped master key",
                custody_envelope::jwe::Purpose::MasterKey,
                crate::envelopes::Kind::WrapTo,
            )
            .kid(&km.fingerprint),
        )?;
        servers::put_wrap(&mut tx.c, mk, &w.server_id, &w.jwe).await?;
    }
    servers::set_master_key_state(&mut tx.c, mk, "active").await?;
    let holders: Vec<&str> = wrapped.iter().map(|w| w.server_id.as_str()).collect();
    tx.audit(
        &format!("server:{by}"),
        "master_key.created",
        &format!("master_key:{mk}"),
        "ok",
        json!({"holders": holders}),
    )
    .await?;
    reconcile(tx, "coordinator").await
}

/// A holder wrapped `MK` for a newcomer.
pub async fn on_shared(tx: &mut Tx<'_>, mk: &str, newcomer: &str, jwe: &str) -> Result<()> {
    let current = servers::current_master_key(&mut tx.c).await?;
    let still_km = servers::key_managers(&mut tx.c)
        .await?
        .iter()
        .any(|s| s.id == newcomer);
    if current.is_some_and(|m| m.id == mk && m.state == "active") && still_km {
        servers::put_wrap(&mut tx.c, mk, newcomer, jwe).await?;
        tx.audit(
            "coordinator",
            "master_key.shared",
            &format!("master_key:{mk}"),
            "ok",
            json!({"newcomer": newcomer}),
        )
        .await?;
    }
    Ok(())
}

/// After an owner removed a server: if nobody holds the current `MK` any
/// more it is lost — its releases become undeployable, jobs that need it
/// fail — and a new one is made when key managers remain.
pub async fn on_server_removed(tx: &mut Tx<'_>, actor: &str) -> Result<()> {
    if let Some(mk) = servers::current_master_key(&mut tx.c).await?
        && mk.state == "active"
        && servers::holders(&mut tx.c, &mk.id).await?.is_empty()
    {
        servers::set_master_key_state(&mut tx.c, &mk.id, "lost").await?;
        let reason = format!(
            "master key {} was lost: every key manager that held it was removed",
            mk.id
        );
        let flagged = apps::flag_lost(&mut tx.c, &mk.id, &reason).await?;
        tx.audit(
            actor,
            "master_key.lost",
            &format!("master_key:{}", mk.id),
            "lost",
            json!({"releases_flagged": flagged}),
        )
        .await?;
        let open: Vec<_> = sqlx::query_scalar::<_, String>(
            "SELECT id FROM jobs WHERE state IN ('queued', 'leased') AND kind <> 'create_master_key' AND kind <> 'deploy'",
        )
        .fetch_all(&mut *tx.c)
        .await
        .map_err(Error::db("find jobs needing the lost key"))?;
        for id in open {
            if let Some(job) = jstore::get(&mut tx.c, &id).await? {
                routing::fail_job(tx, &job, &reason, "coordinator").await?;
            }
        }
    }
    reconcile(tx, actor).await
}

/// `GET /v1/master-key`.
pub async fn status(tx: &mut Tx<'_>) -> Result<MasterKeyStatus> {
    let current = servers::current_master_key(&mut tx.c).await?;
    let lost = servers::lost_master_keys(&mut tx.c).await?;
    let kms: Vec<String> = servers::key_managers(&mut tx.c)
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect();
    let (id, state, holders) = match current {
        Some(m) => {
            let h = servers::holders(&mut tx.c, &m.id).await?;
            (Some(m.id), m.state, h)
        }
        None => (None, "none".to_string(), vec![]),
    };
    Ok(MasterKeyStatus {
        master_key_id: id,
        state,
        waiting: kms.into_iter().filter(|k| !holders.contains(k)).collect(),
        holders,
        lost,
    })
}
