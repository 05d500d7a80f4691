//! Streaming the package to the coordinator with a progress bar.

use crate::progress::Bar;
use anyhow::{Context, Result};
use custody_client::{Client, ClientError};
use custody_proto::apps::PackageUploaded;
use futures_util::TryStreamExt;
use std::path::Path;
use std::time::Duration;

/// `PUT /v1/releases/{id}/package`, with the SHA-256 header so the
/// coordinator refuses (and discards) a corrupted upload.
pub async fn upload(
    c: &Client,
    release_id: &str,
    file: &Path,
    sha256_hex: &str,
    size: u64,
) -> Result<PackageUploaded> {
    let op = format!("uploading the package of {release_id}");
    let f = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("opening {}", file.display()))?;
    let bar = Bar::new("uploading", size);
    let counter = bar.clone();
    let stream = tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024).inspect_ok(move |b| {
        counter.inc(b.len() as u64);
    });
    let req = c
        .request(
            reqwest::Method::PUT,
            &format!("/v1/releases/{release_id}/package"),
        )
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .header(reqwest::header::CONTENT_LENGTH, size)
        .header(custody_proto::SHA256_HEADER, sha256_hex)
        .timeout(Duration::from_secs(24 * 3600))
        .body(reqwest::Body::wrap_stream(stream));
    let resp = c.send(&op, req).await;
    bar.finish();
    let bytes = resp?
        .bytes()
        .await
        .map_err(|source| ClientError::Transport {
            op: op.clone(),
            source,
        })?;
    let up: PackageUploaded =
        serde_json::from_slice(&bytes).map_err(|source| ClientError::Decode { op, source })?;
    Ok(up)
}
