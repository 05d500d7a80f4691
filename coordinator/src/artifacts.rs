//! Package storage behind a small trait, and the local-directory store.
//!
//! The local store is content-addressed by SHA-256: an upload streams into
//! a temporary file while hashing, and is renamed to `sha256/AB/ABCD…` only
//! after its size and digest check out. Nothing is buffered whole. An
//! S3-compatible store can implement the same trait.

use crate::error::{Error, Result};
use bytes::Bytes;
use custody_proto::ErrorCode;
use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, StreamExt};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use tokio::io::{AsyncRead, AsyncSeekExt, AsyncWriteExt};

/// What a finished upload is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// SHA-256 hex.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
}

/// A readable range of an artifact.
pub struct Opened {
    /// Whole size.
    pub size: u64,
    /// The bytes from the requested start to end.
    pub reader: Box<dyn AsyncRead + Send + Unpin>,
}

/// Package storage.
pub trait ArtifactStore: Send + Sync {
    /// Streams `body` in; refuses bodies over `max` bytes and, when
    /// `expected` is given, ones whose SHA-256 differs. Nothing is kept on refusal.
    fn put<'a>(
        &'a self,
        body: BoxStream<'a, std::io::Result<Bytes>>,
        expected: Option<String>,
        max: u64,
    ) -> BoxFuture<'a, Result<Stored>>;

    /// Opens `sha256` at byte `start`, `len` bytes (to the end when None).
    fn open<'a>(
        &'a self,
        sha256: &'a str,
        start: u64,
        len: Option<u64>,
    ) -> BoxFuture<'a, Result<Opened>>;

    /// Size, if stored.
    fn size<'a>(&'a self, sha256: &'a str) -> BoxFuture<'a, Result<Option<u64>>>;

    /// Deletes `sha256` (no error if absent).
    fn delete<'a>(&'a self, sha256: &'a str) -> BoxFuture<'a, Result<()>>;
}

/// The local directory store.
pub struct LocalDirStore {
    root: PathBuf,
}

fn valid_sha(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl LocalDirStore {
    /// Creates the directories (0700).
    pub fn new(root: PathBuf) -> Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        for d in [root.clone(), root.join("sha256"), root.join("tmp")] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&d)
                .map_err(Error::io("create artifact dir"))?;
        }
        // Leftovers of uploads interrupted by a crash.
        if let Ok(rd) = std::fs::read_dir(root.join("tmp")) {
            for e in rd.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(LocalDirStore { root })
    }

    fn path(&self, sha: &str) -> Result<PathBuf> {
        if !valid_sha(sha) {
            return Err(Error::invalid("not a SHA-256 hex digest"));
        }
        Ok(self.root.join("sha256").join(&sha[..2]).join(sha))
    }

    async fn put_inner(
        &self,
        mut body: BoxStream<'_, std::io::Result<Bytes>>,
        expected: Option<String>,
        max: u64,
        tmp: &std::path::Path,
    ) -> Result<Stored> {
        let mut f = tokio::fs::File::create(tmp)
            .await
            .map_err(Error::io("create upload file"))?;
        let mut h = Sha256::new();
        let mut size: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                Error::api(ErrorCode::InvalidInput, format!("upload interrupted: {e}"))
            })?;
            size += chunk.len() as u64;
            if size > max {
                return Err(Error::api(
                    ErrorCode::PayloadTooLarge,
                    format!("package larger than the limit of {max} bytes"),
                ));
            }
            h.update(&chunk);
            f.write_all(&chunk)
                .await
                .map_err(Error::io("write upload"))?;
        }
        f.sync_all().await.map_err(Error::io("sync upload"))?;
        drop(f);
        let sha256 = hex::encode(h.finalize());
        if let Some(exp) = expected
            && !exp.eq_ignore_ascii_case(&sha256)
        {
            return Err(Error::api_with(
                ErrorCode::DigestMismatch,
                "the uploaded package's SHA-256 does not match the one the client sent",
                serde_json::json!({"expected": exp, "actual": sha256}),
            ));
        }
        let dest = self.path(&sha256)?;
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(Error::io("create artifact shard"))?;
        }
        tokio::fs::rename(tmp, &dest)
            .await
            .map_err(Error::io("store artifact"))?;
        Ok(Stored { sha256, size })
    }
}

impl ArtifactStore for LocalDirStore {
    fn put<'a>(
        &'a self,
        body: BoxStream<'a, std::io::Result<Bytes>>,
        expected: Option<String>,
        max: u64,
    ) -> BoxFuture<'a, Result<Stored>> {
        Box::pin(async move {
            let tmp = self.root.join("tmp").join(crate::store::new_id("up"));
            let r = self.put_inner(body, expected, max, &tmp).await;
            if r.is_err() {
                let _ = tokio::fs::remove_file(&tmp).await;
            }
            r
        })
    }

    fn open<'a>(
        &'a self,
        sha256: &'a str,
        start: u64,
        len: Option<u64>,
    ) -> BoxFuture<'a, Result<Opened>> {
        Box::pin(async move {
            let p = self.path(sha256)?;
            let mut f = tokio::fs::File::open(&p)
                .await
                .map_err(|_| Error::not_found("artifact"))?;
            let size = f
                .metadata()
                .await
                .map_err(Error::io("stat artifact"))?
                .len();
            f.seek(std::io::SeekFrom::Start(start))
                .await
                .map_err(Error::io("seek artifact"))?;
            let take = len.unwrap_or(size.saturating_sub(start));
            Ok(Opened {
                size,
                reader: Box::new(tokio::io::AsyncReadExt::take(f, take)),
            })
        })
    }

    fn size<'a>(&'a self, sha256: &'a str) -> BoxFuture<'a, Result<Option<u64>>> {
        Box::pin(async move {
            let p = self.path(sha256)?;
            Ok(tokio::fs::metadata(&p).await.ok().map(|m| m.len()))
        })
    }

    fn delete<'a>(&'a self, sha256: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let p = self.path(sha256)?;
            match tokio::fs::remove_file(&p).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::Io {
                    op: "delete artifact",
                    source: e,
                }),
            }
        })
    }
}
