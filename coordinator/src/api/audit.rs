//! `GET /v1/audit`: JSON lines, entries then the latest signed checkpoint.
//! The checkpoint is read first and the export stops at its count, so the
//! two always agree.

use crate::auth::AuthUser;
use crate::error::{Error, Result};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use custody_proto::admin::Role;
use custody_proto::audit::CheckpointLine;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    after: Option<u64>,
}

const PAGE: i64 = 1000;

pub async fn export(
    State(s): State<Arc<AppState>>,
    AuthUser(u): AuthUser,
    Query(q): Query<AuditQuery>,
) -> Result<Response> {
    u.require(&[Role::Owner, Role::Approver])?;
    let cp = crate::audit::latest_checkpoint(&s.store.read, &s.audit_key.verifying_key())
        .await?
        .ok_or_else(|| Error::Internal("no audit checkpoint".into()))?;
    let end = cp.count;
    let last = serde_json::to_string(&CheckpointLine { checkpoint: cp })
        .map_err(|e| Error::Internal(format!("checkpoint: {e}")))?;
    let state = s.clone();
    let stream =
        futures_util::stream::unfold((q.after.unwrap_or(0), Some(last)), move |(after, last)| {
            let state = state.clone();
            async move {
                if after < end {
                    let limit = PAGE.min((end - after) as i64);
                    match crate::audit::entries(&state.store.read, after, limit).await {
                        Ok(es) if !es.is_empty() => {
                            let next = es.last().map(|e| e.seq).unwrap_or(end);
                            let mut out = String::new();
                            for e in &es {
                                if let Ok(l) = serde_json::to_string(e) {
                                    out.push_str(&l);
                                    out.push('\n');
                                }
                            }
                            return Some((Ok::<_, std::io::Error>(Bytes::from(out)), (next, last)));
                        }
                        Ok(_) => {}
                        Err(e) => {
                            return Some((Err(std::io::Error::other(e.to_string())), (end, None)));
                        }
                    }
                }
                last.map(|l| (Ok(Bytes::from(l + "\n")), (end, None)))
            }
        });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(resp)
}
