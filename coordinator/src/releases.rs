//! Release staging: create → upload → finalize → sealed (deployable).

use crate::envelopes::Kind;
use crate::error::{Error, Result};
use crate::jobspec::Spec;
use crate::routing;
use crate::state::{AppState, Tx};
use crate::store::{apps, servers};
use custody_envelope::jwe::Purpose;
use custody_proto::ErrorCode;
use custody_proto::apps::{FinalizeRelease, ReleaseState};
use serde_json::json;

/// The live key managers holding the current master key (the ones a push
/// needs at least one of), and that key's id.
pub async fn current_holders(
    c: &mut sqlx::SqliteConnection,
) -> Result<(String, Vec<servers::ServerRow>)> {
    let mk = servers::current_master_key(&mut *c)
        .await?
        .filter(|m| m.state == "active")
        .ok_or_else(|| {
            Error::api(
                ErrorCode::NoMasterKey,
                "no master key exists yet: enable a key manager first",
            )
        })?;
    let holders = servers::holders(&mut *c, &mk.id).await?;
    let kms = servers::key_managers(&mut *c).await?;
    Ok((
        mk.id,
        kms.into_iter()
            .filter(|k| holders.contains(&k.id))
            .collect(),
    ))
}

/// Finalize: checks digest and bindings, stores the descriptor and
/// `wrap(P_i, RK)` for every current holder, and queues the rewrap job. On
/// a digest mismatch the uploaded package is discarded.
pub async fn finalize(
    state: &AppState,
    actor: &str,
    release_id: &str,
    req: FinalizeRelease,
) -> Result<custody_proto::apps::Release> {
    let mut tx = state.begin().await?;
    let rel = apps::get_release(&mut tx.c, release_id)
        .await?
        .ok_or_else(|| Error::not_found("release"))?;
    if rel.public.state != ReleaseState::Uploaded {
        return Err(Error::state(format!(
            "release is {:?}; finalize needs an uploaded package",
            rel.public.state
        )));
    }
    let uploaded = rel.public.package_sha256.clone().unwrap_or_default();
    let fields = crate::envelopes::descriptor(&req.descriptor)?;
    let sha = fields.package_sha256.clone();
    if sha != uploaded {
        // Nothing half-stored: drop the package, back to `created`.
        apps::set_package(&mut tx.c, release_id, None).await?;
        tx.audit(
            actor,
            "release.finalize",
            &format!("release:{release_id}"),
            "digest_mismatch",
            json!({"uploaded": uploaded, "descriptor": sha}),
        )
        .await?;
        tx.commit().await?;
        let mut c = state
            .store
            .write
            .acquire()
            .await
            .map_err(Error::db("acquire"))?;
        if apps::package_refs(&mut c, &uploaded).await? == 0 {
            state.artifacts.delete(&uploaded).await?;
        }
        return Err(Error::api_with(
            ErrorCode::DigestMismatch,
            "the package's SHA-256 does not match the descriptor; the upload was discarded",
            json!({"uploaded": uploaded, "descriptor": sha}),
        ));
    }
    if fields.release != release_id
        || fields.app != rel.public.app
        || fields.account != state.account
    {
        return Err(Error::invalid(
            "the descriptor is bound to another account, app or release",
        ));
    }
    let (mk, holders) = current_holders(&mut tx.c).await?;
    if rel.public.master_key_id.as_deref() != Some(mk.as_str()) {
        return Err(Error::api(
            ErrorCode::MasterKeyLost,
            "the master key changed since the release was created; push again",
        ));
    }
    let ids: Vec<&str> = holders.iter().map(|h| h.id.as_str()).collect();
    for w in &req.wrapped_release_keys {
        let Some(km) = holders.iter().find(|h| h.id == w.server_id) else {
            return Err(Error::invalid(format!(
                "{} is not a key manager holding the master key",
                w.server_id
            )));
        };
        crate::envelopes::check(
            &w.jwe,
            &state.account,
            crate::envelopes::Expect::new("wrapped release key", Purpose::ReleaseKey, Kind::WrapTo)
                .kid(&km.fingerprint)
                .app(&rel.public.app)
                .release(release_id),
        )?;
    }
    let missing: Vec<&str> = ids
        .iter()
        .filter(|id| !req.wrapped_release_keys.iter().any(|w| &w.server_id == *id))
        .copied()
        .collect();
    if !missing.is_empty() {
        return Err(Error::api_with(
            ErrorCode::InvalidInput,
            "the release key must be wrapped to every key manager",
            json!({"missing": missing}),
        ));
    }
    let descriptor = serde_json::to_string(&req.descriptor)
        .map_err(|e| Error::Internal(format!("descriptor: {e}")))?;
    if descriptor.len() > 64 * 1024 {
        return Err(Error::invalid("the descriptor is larger than 64 KiB"));
    }
    apps::finalize(
        &mut tx.c,
        release_id,
        &descriptor,
        &req.wrapped_release_keys,
    )
    .await?;
    tx.audit(
        actor,
        "release.finalize",
        &format!("release:{release_id}"),
        "ok",
        json!({"package_sha256": sha, "key_managers": ids}),
    )
    .await?;
    routing::enqueue(
        &mut tx,
        Spec::RewrapReleaseKey {
            release_id: release_id.into(),
        },
        actor,
    )
    .await?;
    let out = apps::get_release(&mut tx.c, release_id)
        .await?
        .ok_or_else(|| Error::not_found("release"))?;
    tx.commit().await?;
    Ok(out.public)
}

/// A key manager sealed `RK` under `MK`.
pub async fn on_sealed(tx: &mut Tx<'_>, release_id: &str, jwe: &str) -> Result<()> {
    let rel = apps::get_release(&mut tx.c, release_id).await?;
    if rel.is_some_and(|r| r.public.state == ReleaseState::Sealing) {
        apps::set_sealed_release_key(&mut tx.c, release_id, jwe).await?;
        tx.audit(
            "coordinator",
            "release.sealed",
            &format!("release:{release_id}"),
            "ok",
            json!({}),
        )
        .await?;
    }
    Ok(())
}
