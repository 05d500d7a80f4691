//! Streamed package transfer: upload from a file, download to a file with
//! `Range` resume, and file hashing.

use crate::{Client, ClientError, Result};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn io(op: &str) -> impl FnOnce(std::io::Error) -> ClientError + '_ {
    move |source| ClientError::Io {
        op: op.to_string(),
        source,
    }
}

/// SHA-256 (hex) of a whole file, streamed.
pub async fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = tokio::fs::File::open(path).await?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

impl Client {
    /// Streams `file` as the body of a PUT to `path`, sending its SHA-256 so
    /// the server refuses a corrupted upload.
    pub async fn upload_file<T: DeserializeOwned>(
        &self,
        path: &str,
        file: &Path,
        sha256: &str,
    ) -> Result<T> {
        let op = format!("upload {}", file.display());
        let f = tokio::fs::File::open(file).await.map_err(io(&op))?;
        let len = f.metadata().await.map_err(io(&op))?.len();
        let body =
            reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(f, 64 * 1024));
        let req = self
            .request(reqwest::Method::PUT, path)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, len)
            .header(custody_proto::SHA256_HEADER, sha256)
            .timeout(std::time::Duration::from_secs(24 * 3600))
            .body(body);
        let r = self.send(&op, req).await?;
        let bytes = r.bytes().await.map_err(|source| ClientError::Transport {
            op: op.clone(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|source| ClientError::Decode { op, source })
    }

    /// Downloads `path` into `dest`. If `dest` already holds a prefix (an
    /// interrupted earlier attempt), asks only for the rest with `Range`.
    /// Returns the file's final size.
    pub async fn download_to(&self, path: &str, dest: &Path) -> Result<u64> {
        let op = format!("download to {}", dest.display());
        let have = match tokio::fs::metadata(dest).await {
            Ok(m) => m.len(),
            Err(_) => 0,
        };
        let mut req = self
            .request(reqwest::Method::GET, path)
            .timeout(std::time::Duration::from_secs(24 * 3600));
        if have > 0 {
            req = req.header(reqwest::header::RANGE, format!("bytes={have}-"));
        }
        let resp = match self.send(&op, req).await {
            Ok(r) => r,
            Err(ClientError::Api { status: 416, .. }) if have > 0 => return Ok(have),
            Err(e) => return Err(e),
        };
        let partial = resp.status() == reqwest::StatusCode::PARTIAL_CONTENT;
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(partial)
            .truncate(!partial)
            .open(dest)
            .await
            .map_err(io(&op))?;
        // Body chunks are HTTP/2 frames (16 KiB): gather them, so a file
        // write (a blocking-pool hop in tokio) moves 256 KiB, not 16.
        let mut f = tokio::io::BufWriter::with_capacity(256 * 1024, file);
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|source| ClientError::Transport {
                op: op.clone(),
                source,
            })?;
            f.write_all(&chunk).await.map_err(io(&op))?;
        }
        // Not synced: a file a crash cut short is resumed and checked
        // against its digest by the caller, who fetches it again if need be.
        f.flush().await.map_err(io(&op))?;
        Ok(tokio::fs::metadata(dest).await.map_err(io(&op))?.len())
    }
}
