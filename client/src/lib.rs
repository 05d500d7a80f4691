//! Custody's HTTPS client for the coordinator API, used by the CLI and the
//! agent.
//!
//! - TLS with rustls (ring), trusting exactly one CA: the one whose SHA-256
//!   fingerprint was pinned at login/enrollment ([`pin`]).
//! - Bearer-token auth; the token is zeroized on drop and never logged.
//! - Non-2xx answers decode into [`ClientError::Api`] carrying the API's
//!   stable [`custody_proto::ErrorCode`].
//! - `HTTPS_PROXY` / `NO_PROXY` are honoured (reqwest's environment proxies).
//! - Streamed upload from a file and streamed download to a file that
//!   resumes with `Range` where a previous attempt stopped.
#![forbid(unsafe_code)]

mod agent;
pub mod pin;
mod transfer;

use custody_proto::error::{ApiError, ErrorBody};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

pub use transfer::sha256_file;

/// What went wrong talking to the coordinator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The coordinator refused: HTTP status and its error body.
    #[error("{op}: {error}")]
    Api {
        /// What we were doing.
        op: String,
        /// HTTP status.
        status: u16,
        /// The decoded error.
        error: ApiError,
    },
    /// A non-2xx answer without the API's error body (a proxy, say).
    #[error("{op}: HTTP {status}")]
    Status {
        /// What we were doing.
        op: String,
        /// HTTP status.
        status: u16,
    },
    /// Connecting, TLS (including a pin mismatch) or transport failed.
    #[error("{op}: {source}")]
    Transport {
        /// What we were doing.
        op: String,
        /// The error.
        source: reqwest::Error,
    },
    /// The answer was not the JSON we expected.
    #[error("{op}: unexpected response: {source}")]
    Decode {
        /// What we were doing.
        op: String,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// A local file could not be read or written.
    #[error("{op}: {source}")]
    Io {
        /// What we were doing.
        op: String,
        /// The error.
        source: std::io::Error,
    },
    /// The configuration is unusable (URL, fingerprint, TLS setup).
    #[error("client configuration: {0}")]
    Config(String),
}

impl ClientError {
    /// The API error code, when the coordinator sent one.
    pub fn code(&self) -> Option<custody_proto::ErrorCode> {
        match self {
            ClientError::Api { error, .. } => Some(error.code),
            _ => None,
        }
    }

    /// The HTTP status, when there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } | ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Result alias.
pub type Result<T> = std::result::Result<T, ClientError>;

/// How to reach a coordinator.
#[derive(Clone)]
pub struct ClientConfig {
    /// Base URL, e.g. `https://coordinator:8443`. `http://` only for loopback.
    pub url: String,
    /// SHA-256 (hex) of the coordinator's CA certificate (required for https).
    pub ca_fingerprint: Option<String>,
    /// Bearer token.
    pub token: Option<Zeroizing<String>>,
    /// Per-request timeout (long polls pass their own).
    pub timeout: Duration,
    /// Host names resolved in advance: connections to them use these
    /// addresses and no DNS lookup happens (the agent resolves the
    /// coordinator before it sandboxes itself).
    pub resolve: Vec<(String, Vec<std::net::SocketAddr>)>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("url", &self.url)
            .field("ca_fingerprint", &self.ca_fingerprint)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("resolve", &self.resolve)
            .finish()
    }
}

impl ClientConfig {
    /// A config with a 60 s timeout.
    pub fn new(url: &str, ca_fingerprint: Option<&str>, token: Option<&str>) -> Self {
        ClientConfig {
            url: url.trim_end_matches('/').to_string(),
            ca_fingerprint: ca_fingerprint.map(str::to_string),
            token: token.map(|t| Zeroizing::new(t.to_string())),
            timeout: Duration::from_secs(60),
            resolve: Vec::new(),
        }
    }
}

/// The client.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<Arc<Zeroizing<String>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

fn is_loopback_url(url: &str) -> bool {
    let rest = url.strip_prefix("http://").unwrap_or("");
    let host = rest.split('/').next().unwrap_or("");
    let host = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
    host == "localhost" || host == "[::1]" || host.starts_with("127.")
}

impl Client {
    /// Builds a client. `https://` URLs need a CA fingerprint.
    pub fn new(cfg: ClientConfig) -> Result<Self> {
        let mut b = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("custody/", env!("CARGO_PKG_VERSION")));
        for (host, addrs) in &cfg.resolve {
            b = b.resolve_to_addrs(host, addrs);
        }
        if cfg.url.starts_with("https://") {
            let fp = cfg.ca_fingerprint.as_deref().ok_or_else(|| {
                ClientError::Config("an https URL needs the CA fingerprint".into())
            })?;
            b = b.use_preconfigured_tls(pin::tls_config(fp)?);
        } else if cfg.url.starts_with("http://") {
            if !is_loopback_url(&cfg.url) {
                return Err(ClientError::Config(
                    "plain http is only allowed to a loopback address".into(),
                ));
            }
            // reqwest needs a TLS config even for plain http; this one trusts nothing.
            b = b.use_preconfigured_tls(pin::trust_nothing()?);
        } else {
            return Err(ClientError::Config(format!(
                "{}: not an http(s) URL",
                cfg.url
            )));
        }
        let http = b
            .build()
            .map_err(|e| ClientError::Config(format!("building the HTTP client: {e}")))?;
        Ok(Client {
            http,
            base: cfg.url,
            token: cfg.token.map(Arc::new),
        })
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// A request builder for `path` (absolute URLs on the same base are accepted too).
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{}", self.base, path)
        };
        let mut r = self.http.request(method, url);
        if let Some(t) = &self.token {
            r = r.bearer_auth(t.as_str());
        }
        r
    }

    /// Sends a request and returns the response if 2xx, else the decoded error.
    pub async fn send(&self, op: &str, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let resp = req.send().await.map_err(|source| ClientError::Transport {
            op: op.to_string(),
            source,
        })?;
        check(op, resp).await
    }

    /// GET → JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let op = format!("GET {path}");
        let r = self
            .send(&op, self.request(reqwest::Method::GET, path))
            .await?;
        decode(&op, r).await
    }

    /// POST JSON → JSON.
    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let op = format!("POST {path}");
        let r = self
            .send(&op, self.request(reqwest::Method::POST, path).json(body))
            .await?;
        decode(&op, r).await
    }

    /// PUT JSON → JSON.
    pub async fn put<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let op = format!("PUT {path}");
        let r = self
            .send(&op, self.request(reqwest::Method::PUT, path).json(body))
            .await?;
        decode(&op, r).await
    }

    /// POST JSON, ignoring the body of a 2xx answer.
    pub async fn post_unit<B: Serialize + ?Sized>(&self, path: &str, body: &B) -> Result<()> {
        let op = format!("POST {path}");
        self.send(&op, self.request(reqwest::Method::POST, path).json(body))
            .await?;
        Ok(())
    }

    /// DELETE.
    pub async fn delete(&self, path: &str) -> Result<()> {
        let op = format!("DELETE {path}");
        self.send(&op, self.request(reqwest::Method::DELETE, path))
            .await?;
        Ok(())
    }

    /// GET → raw text (e.g. the audit export).
    pub async fn get_text(&self, path: &str) -> Result<String> {
        let op = format!("GET {path}");
        let r = self
            .send(&op, self.request(reqwest::Method::GET, path))
            .await?;
        r.text()
            .await
            .map_err(|source| ClientError::Transport { op, source })
    }
}

async fn check(op: &str, resp: reqwest::Response) -> Result<reqwest::Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let bytes = resp.bytes().await.unwrap_or_default();
    match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(b) => Err(ClientError::Api {
            op: op.to_string(),
            status: status.as_u16(),
            error: b.error,
        }),
        Err(_) => Err(ClientError::Status {
            op: op.to_string(),
            status: status.as_u16(),
        }),
    }
}

async fn decode<T: DeserializeOwned>(op: &str, r: reqwest::Response) -> Result<T> {
    let bytes = r.bytes().await.map_err(|source| ClientError::Transport {
        op: op.to_string(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| ClientError::Decode {
        op: op.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(is_loopback_url("http://127.0.0.1:8080"));
        assert!(is_loopback_url("http://localhost:1/x"));
        assert!(is_loopback_url("http://[::1]:80"));
        assert!(!is_loopback_url("http://10.0.0.1:80"));
        assert!(Client::new(ClientConfig::new("http://192.0.2.1:80", None, None)).is_err());
        assert!(Client::new(ClientConfig::new("https://x:1", None, None)).is_err());
        assert!(Client::new(ClientConfig::new("ftp://x", None, None)).is_err());
    }

    #[test]
    fn debug_never_shows_the_token() {
        let c = ClientConfig::new("https://h:1", Some("00"), Some("cst_secret"));
        assert!(!format!("{c:?}").contains("cst_secret"));
    }
}
