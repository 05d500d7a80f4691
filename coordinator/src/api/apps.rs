//! Apps and releases: create, secure, allocate a release, stream the
//! package in and out (with `Range`), finalize, delete.

use super::{ApiJson, json};
use crate::auth::AuthUser;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::{apps, servers};
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use custody_proto::ErrorCode;
use custody_proto::admin::Role;
use custody_proto::apps::{
    CreateApp, FinalizeRelease, PackageUploaded, ReleaseCreated, ReleaseState,
};
use futures_util::TryStreamExt;
use serde_json::json as j;
use std::sync::Arc;

/// Making an app secure needs this many live key managers.
pub const MIN_LIVE_KEY_MANAGERS: usize = 2;

async fn check_two_live(s: &AppState, tx: &mut crate::state::Tx<'_>) -> Result<()> {
    let live = servers::key_managers(&mut tx.c)
        .await?
        .iter()
        .filter(|k| s.presence.is_live(&k.id))
        .count();
    if live < MIN_LIVE_KEY_MANAGERS {
        return Err(Error::api_with(
            ErrorCode::NotEnoughKeyManagers,
            format!(
                "making an app secure needs at least {MIN_LIVE_KEY_MANAGERS} live key managers; {live} {} live",
                if live == 1 { "is" } else { "are" }
            ),
            j!({"live": live, "required": MIN_LIVE_KEY_MANAGERS}),
        ));
    }
    Ok(())
}

pub async fn create_app(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
    ApiJson(req): ApiJson<CreateApp>,
) -> Result<Response> {
    u.require(&[Role::Owner])?;
    custody_proto::ids::validate("app name", &req.name)?;
    let mut tx = s.begin().await?;
    if req.secure {
        check_two_live(&s, &mut tx).await?;
    }
    let app = apps::create_app(&mut tx.c, &req.name, req.secure).await?;
    tx.audit(
        &u.actor(),
        "app.create",
        &format!("app:{}", app.id),
        "ok",
        j!({"name": app.name, "secure": app.secure}),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, axum::Json(app)).into_response())
}

pub async fn list_apps(State(s): State<Arc<AppState>>, AuthUser(_u): AuthUser) -> Result<Response> {
    Ok(json(apps::list_apps(&s.store.read).await?))
}

pub async fn show_app(
    State(s): State<Arc<AppState>>,
    AuthUser(_u): AuthUser,
    Path(app): Path<String>,
) -> Result<Response> {
    Ok(json(
        apps::find_app(&s.store.read, &app)
            .await?
            .ok_or_else(|| Error::not_found("app"))?,
    ))
}

pub async fn secure_app(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
    Path(app): Path<String>,
) -> Result<Response> {
    u.require(&[Role::Owner])?;
    let mut tx = s.begin().await?;
    let a = apps::find_app(&mut *tx.c, &app)
        .await?
        .ok_or_else(|| Error::not_found("app"))?;
    if !a.secure {
        check_two_live(&s, &mut tx).await?;
        apps::set_secure(&mut tx.c, &a.id).await?;
        tx.audit(
            &u.actor(),
            "app.secure",
            &format!("app:{}", a.id),
            "ok",
            j!({"name": a.name}),
        )
        .await?;
    }
    let a = apps::find_app(&mut *tx.c, &a.id)
        .await?
        .ok_or_else(|| Error::not_found("app"))?;
    tx.commit().await?;
    Ok(json(a))
}

pub async fn create_release(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
    Path(app): Path<String>,
) -> Result<Response> {
    u.require(&[Role::Owner, Role::Deployer])?;
    let mut tx = s.begin().await?;
    let a = apps::find_app(&mut *tx.c, &app)
        .await?
        .ok_or_else(|| Error::not_found("app"))?;
    if !a.secure {
        return Err(Error::state(format!(
            "app {} is not secure; make it secure before pushing",
            a.name
        )));
    }
    let (mk, holders) = crate::releases::current_holders(&mut tx.c).await?;
    if !holders.iter().any(|h| s.presence.is_live(&h.id)) {
        return Err(Error::api(
            ErrorCode::NoMasterKey,
            "no live key manager holds the master key; a push needs at least one",
        ));
    }
    let id = apps::create_release(&mut tx.c, &a.id, &mk, &u.id).await?;
    tx.audit(
        &u.actor(),
        "release.create",
        &format!("release:{id}"),
        "ok",
        j!({"app": a.name, "master_key_id": mk}),
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(ReleaseCreated {
            release_id: id,
            account: s.account.clone(),
            app: a.name,
            master_key_id: mk,
            key_managers: holders.iter().map(|h| h.key()).collect(),
        }),
    )
        .into_response())
}

pub async fn list_releases(
    State(s): State<Arc<AppState>>,
    AuthUser(_u): AuthUser,
    Path(app): Path<String>,
) -> Result<Response> {
    let mut c = s.store.read.acquire().await.map_err(Error::db("acquire"))?;
    let a = apps::find_app(&mut *c, &app)
        .await?
        .ok_or_else(|| Error::not_found("app"))?;
    Ok(json(apps::list_releases(&mut c, &a.id).await?))
}

pub async fn show_release(
    State(s): State<Arc<AppState>>,
    AuthUser(_u): AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let mut c = s.store.read.acquire().await.map_err(Error::db("acquire"))?;
    Ok(json(
        apps::get_release(&mut c, &id)
            .await?
            .ok_or_else(|| Error::not_found("release"))?
            .public,
    ))
}

pub async fn upload(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response> {
    u.require(&[Role::Owner, Role::Deployer])?;
    {
        let mut c = s.store.read.acquire().await.map_err(Error::db("acquire"))?;
        let rel = apps::get_release(&mut c, &id)
            .await?
            .ok_or_else(|| Error::not_found("release"))?;
        if !matches!(
            rel.public.state,
            ReleaseState::Created | ReleaseState::Uploaded
        ) {
            return Err(Error::state(
                "the release is finalized; its package cannot change",
            ));
        }
    }
    let expected = req
        .headers()
        .get(custody_proto::SHA256_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = req
        .into_body()
        .into_data_stream()
        .map_err(std::io::Error::other);
    let stored = s
        .artifacts
        .put(Box::pin(body), expected, s.config.limits.max_package_bytes)
        .await?;
    let mut tx = s.begin().await?;
    let rel = apps::get_release(&mut tx.c, &id)
        .await?
        .ok_or_else(|| Error::not_found("release"))?;
    let ok_state = matches!(
        rel.public.state,
        ReleaseState::Created | ReleaseState::Uploaded
    );
    if ok_state {
        apps::set_package(&mut tx.c, &id, Some((&stored.sha256, stored.size))).await?;
        tx.audit(
            &u.actor(),
            "release.upload",
            &format!("release:{id}"),
            "ok",
            j!({"package_sha256": stored.sha256, "size": stored.size}),
        )
        .await?;
    }
    tx.commit().await?;
    // Drop a replaced or now-unreferenced package.
    let mut c = s
        .store
        .write
        .acquire()
        .await
        .map_err(Error::db("acquire"))?;
    for sha in [
        Some(stored.sha256.clone()),
        rel.public.package_sha256.clone(),
    ]
    .into_iter()
    .flatten()
    {
        if apps::package_refs(&mut c, &sha).await? == 0 {
            s.artifacts.delete(&sha).await?;
        }
    }
    if !ok_state {
        return Err(Error::state("the release was finalized during the upload"));
    }
    Ok(json(PackageUploaded {
        sha256: stored.sha256,
        size: stored.size,
    }))
}

/// Parses `Range: bytes=START-[END]` against `size`.
fn parse_range(h: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>> {
    let Some(v) = h.get(header::RANGE) else {
        return Ok(None);
    };
    let bad = || {
        Error::api_with(
            ErrorCode::RangeNotSatisfiable,
            "unsatisfiable or unsupported range",
            j!({"size": size}),
        )
    };
    let s = v.to_str().map_err(|_| bad())?;
    let spec = s.strip_prefix("bytes=").ok_or_else(bad)?;
    if spec.contains(',') {
        return Err(bad());
    }
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| bad())?;
        if n == 0 {
            return Err(bad());
        }
        (size.saturating_sub(n), size.saturating_sub(1))
    } else {
        let start: u64 = a.parse().map_err(|_| bad())?;
        let end = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            b.parse::<u64>()
                .map_err(|_| bad())?
                .min(size.saturating_sub(1))
        };
        (start, end)
    };
    if start >= size || end < start {
        return Err(bad());
    }
    Ok(Some((start, end)))
}

/// Bytes read from the artifact store per body chunk of a download.
const DOWNLOAD_CHUNK: usize = 256 * 1024;

/// Streams an artifact, honouring `Range`.
pub async fn serve_artifact(s: &AppState, sha: &str, headers: &HeaderMap) -> Result<Response> {
    let size = s
        .artifacts
        .size(sha)
        .await?
        .ok_or_else(|| Error::not_found("artifact"))?;
    let range = parse_range(headers, size)?;
    let (start, len, status) = match range {
        Some((a, b)) => (a, b - a + 1, StatusCode::PARTIAL_CONTENT),
        None => (0, size, StatusCode::OK),
    };
    let opened = s.artifacts.open(sha, start, Some(len)).await?;
    // 256 KiB reads: the default 4 KiB made every 4 KiB a blocking-pool
    // hop, an HTTP/2 frame and a TLS record (7.5 s of coordinator CPU to
    // serve 10 targets 100 MB each; see scripts/bench-4-flow.sh).
    let stream = tokio_util::io::ReaderStream::with_capacity(opened.reader, DOWNLOAD_CHUNK);
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(sha) {
        h.insert(custody_proto::SHA256_HEADER, v);
    }
    if range.is_some()
        && let Ok(v) =
            HeaderValue::from_str(&format!("bytes {}-{}/{}", start, start + len - 1, size))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(resp)
}

pub async fn download(
    State(s): State<Arc<AppState>>,
    AuthUser(_u): AuthUser,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let mut c = s.store.read.acquire().await.map_err(Error::db("acquire"))?;
    let rel = apps::get_release(&mut c, &id)
        .await?
        .ok_or_else(|| Error::not_found("release"))?;
    drop(c);
    let sha = rel
        .public
        .package_sha256
        .ok_or_else(|| Error::not_found("package"))?;
    serve_artifact(&s, &sha, &headers).await
}

pub async fn finalize(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<FinalizeRelease>,
) -> Result<Response> {
    u.require(&[Role::Owner, Role::Deployer])?;
    Ok(json(
        crate::releases::finalize(&s, &u.actor(), &id, req).await?,
    ))
}

pub async fn delete_release(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    u.require(&[Role::Owner])?;
    let mut tx = s.begin().await?;
    let rel = apps::get_release(&mut tx.c, &id)
        .await?
        .ok_or_else(|| Error::not_found("release"))?;
    let used: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM deployments WHERE release_id = $1")
        .bind(&id)
        .fetch_one(&mut *tx.c)
        .await
        .map_err(Error::db("count deployments"))?;
    if used > 0 {
        return Err(Error::state(
            "the release has deployments; it is kept for their record",
        ));
    }
    let open: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE kind = 'rewrap_release_key' AND state IN ('queued','leased') AND subject = $1")
        .bind(&id)
        .fetch_one(&mut *tx.c)
        .await
        .map_err(Error::db("count jobs"))?;
    if open > 0 {
        return Err(Error::state(
            "the release key is being sealed; try again when it is done",
        ));
    }
    apps::delete_release(&mut tx.c, &id).await?;
    tx.audit(
        &u.actor(),
        "release.delete",
        &format!("release:{id}"),
        "ok",
        j!({"package_sha256": rel.public.package_sha256}),
    )
    .await?;
    tx.commit().await?;
    if let Some(sha) = rel.public.package_sha256 {
        let mut c = s
            .store
            .write
            .acquire()
            .await
            .map_err(Error::db("acquire"))?;
        if apps::package_refs(&mut c, &sha).await? == 0 {
            s.artifacts.delete(&sha).await?;
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
