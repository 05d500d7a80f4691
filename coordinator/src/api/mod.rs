//! The HTTP API under `/v1` (documented in `docs/API.md`), one file per
//! resource family, plus health endpoints and the JSON body extractor that
//! maps bad bodies to stable error codes.

mod admin;
mod agent;
mod apps;
mod audit;
mod deployments;
mod envs;
mod notify;
mod servers;

use crate::error::{Error, Result};
use crate::state::AppState;
use axum::Router;
use axum::extract::{FromRequest, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use custody_proto::ErrorCode;
use std::sync::Arc;

/// A JSON body, at most `limits.max_json_body_bytes`, refused with
/// `payload_too_large` / `malformed_json`.
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned> FromRequest<Arc<AppState>> for ApiJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self> {
        let limit = state.config.limits.max_json_body_bytes;
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| {
                Error::api(
                    ErrorCode::PayloadTooLarge,
                    format!("request body larger than {limit} bytes"),
                )
            })?;
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|e| Error::api(ErrorCode::MalformedJson, format!("invalid JSON body: {e}")))
    }
}

/// Like [`ApiJson`], but an empty body is `T::default()`.
pub struct OptionalJson<T>(pub T);

impl<T: serde::de::DeserializeOwned + Default> FromRequest<Arc<AppState>> for OptionalJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self> {
        let limit = state.config.limits.max_json_body_bytes;
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| {
                Error::api(
                    ErrorCode::PayloadTooLarge,
                    format!("request body larger than {limit} bytes"),
                )
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        serde_json::from_slice(&bytes)
            .map(OptionalJson)
            .map_err(|e| Error::api(ErrorCode::MalformedJson, format!("invalid JSON body: {e}")))
    }
}

/// JSON response helper.
pub fn json<T: serde::Serialize>(v: T) -> Response {
    axum::Json(v).into_response()
}

/// Checks an agent's protocol version.
pub fn check_protocol(got: u32) -> Result<()> {
    if got == custody_proto::PROTOCOL_VERSION {
        return Ok(());
    }
    Err(Error::api_with(
        ErrorCode::UnsupportedProtocolVersion,
        format!(
            "protocol version {got} is not supported; this coordinator speaks {}",
            custody_proto::PROTOCOL_VERSION
        ),
        serde_json::json!({"supported": [custody_proto::PROTOCOL_VERSION], "got": got}),
    ))
}

async fn count_requests(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    state.metrics.request(resp.status().as_u16());
    resp
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let db_ok = sqlx::query("SELECT 1")
        .execute(&state.store.read)
        .await
        .is_ok();
    if db_ok && !*state.shutdown.borrow() {
        "ready\n".into_response()
    } else {
        Error::api(ErrorCode::Unavailable, "not ready").into_response()
    }
}

async fn not_found() -> Error {
    Error::api(ErrorCode::NotFound, "no such endpoint")
}

/// The API router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/info", get(admin::info))
        .route("/v1/whoami", get(admin::whoami))
        .route("/v1/users", post(admin::create_user).get(admin::list_users))
        .route("/v1/users/{user}", delete(admin::remove_user))
        .route(
            "/v1/users/{user}/approval-key",
            put(admin::set_approval_key),
        )
        .route("/v1/users/{user}/email", put(admin::set_email))
        .route(
            "/v1/tokens",
            post(admin::create_token).get(admin::list_tokens),
        )
        .route("/v1/tokens/{id}", delete(admin::revoke_token))
        .route(
            "/v1/groups",
            post(admin::create_group).get(admin::list_groups),
        )
        .route("/v1/groups/{group}/members", post(admin::add_member))
        .route("/v1/servers", get(servers::list))
        .route("/v1/servers/join-tokens", post(servers::join_token))
        .route(
            "/v1/servers/{server}",
            get(servers::show).delete(servers::remove),
        )
        .route(
            "/v1/servers/{server}/key-manager",
            put(servers::set_key_manager),
        )
        .route("/v1/master-key", get(servers::master_key))
        .route("/v1/master-key/holders", get(servers::master_key_holders))
        .route("/v1/jobs", get(servers::jobs))
        .route("/v1/apps", post(apps::create_app).get(apps::list_apps))
        .route("/v1/apps/{app}", get(apps::show_app))
        .route("/v1/apps/{app}/secure", post(apps::secure_app))
        .route(
            "/v1/apps/{app}/releases",
            post(apps::create_release).get(apps::list_releases),
        )
        .route(
            "/v1/releases/{id}",
            get(apps::show_release).delete(apps::delete_release),
        )
        .route(
            "/v1/releases/{id}/package",
            put(apps::upload).get(apps::download),
        )
        .route("/v1/releases/{id}/finalize", post(apps::finalize))
        .route(
            "/v1/apps/{app}/environments",
            post(envs::create).get(envs::list),
        )
        .route("/v1/apps/{app}/environments/{env}", get(envs::show))
        .route(
            "/v1/apps/{app}/environments/{env}/servers",
            post(envs::add_server),
        )
        .route(
            "/v1/apps/{app}/environments/{env}/servers/{server}",
            delete(envs::remove_server),
        )
        .route(
            "/v1/apps/{app}/environments/{env}/approval",
            put(envs::set_approval).delete(envs::clear_approval),
        )
        .route(
            "/v1/apps/{app}/environments/{env}/variables/{name}",
            put(envs::set_variable),
        )
        .route(
            "/v1/deployments",
            post(deployments::create).get(deployments::list),
        )
        .route("/v1/deployments/{id}", get(deployments::show))
        .route("/v1/deployments/{id}/log", get(deployments::log))
        .route(
            "/v1/deployments/{id}/approvals",
            get(deployments::approvals),
        )
        .route("/v1/deployments/{id}/approve", post(deployments::approve))
        .route("/v1/deployments/{id}/decline", post(deployments::decline))
        .route("/v1/deployments/{id}/start", post(deployments::start))
        .route("/v1/deployments/{id}/cancel", post(deployments::cancel))
        .route("/v1/approvals", get(deployments::pending))
        .route(
            "/v1/webhooks",
            post(notify::create_webhook).get(notify::list_webhooks),
        )
        .route("/v1/webhooks/{id}", delete(notify::remove_webhook))
        .route("/v1/webhooks/{id}/deliveries", get(notify::deliveries))
        .route("/v1/notifications", get(notify::notifications))
        .route("/v1/audit", get(audit::export))
        .route("/v1/agent/enroll", post(agent::enroll))
        .route("/v1/agent/heartbeat", post(agent::heartbeat))
        .route("/v1/agent/jobs", get(agent::poll))
        .route("/v1/agent/jobs/{id}/result", post(agent::result))
        .route("/v1/agent/results", post(agent::results))
        .route("/v1/agent/jobs/{id}/log", post(agent::log))
        .route("/v1/agent/artifacts/{sha256}", get(agent::artifact))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

/// The `/metrics` router (its own listener).
pub fn metrics_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(s): State<Arc<AppState>>| async move {
                let (queued, leased) = crate::store::jobs::depth(&s.store.read)
                    .await
                    .unwrap_or((0, 0));
                let g = crate::metrics::Gauges {
                    queued,
                    leased,
                    live_agents: s.presence.live_count(),
                };
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    s.metrics.render(&g),
                )
            }),
        )
        .with_state(state)
}
