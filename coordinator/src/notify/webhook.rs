//! Webhook secrets (derived, never stored), payload signatures and the
//! HTTP client that posts them.
//!
//! secret(id) = base64url(HMAC-SHA256(STATE_DIR/webhook.key,
//! `"custody-webhook-secret-v1\0"` ‖ id)); signature header
//! `custody-signature: t=UNIX_SECONDS,v1=HEX(HMAC-SHA256(secret, "UNIX_SECONDS." ‖ body))`.

use crate::error::{Error, Result};
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::path::Path;
use std::time::Duration;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

const SECRET_CONTEXT: &[u8] = b"custody-webhook-secret-v1\0";

/// The key webhook secrets are derived from. Not `Debug`.
pub struct WebhookKey(Zeroizing<[u8; 32]>);

impl WebhookKey {
    /// Loads `path` (32 bytes), or makes it (0600) when missing.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        if path.exists() {
            let data = Zeroizing::new(std::fs::read(path).map_err(Error::io("read webhook key"))?);
            let bytes: [u8; 32] = data
                .as_slice()
                .try_into()
                .map_err(|_| Error::Internal(format!("{}: not a 32-byte key", path.display())))?;
            return Ok(WebhookKey(Zeroizing::new(bytes)));
        }
        let mut k = Zeroizing::new([0u8; 32]);
        getrandom::fill(k.as_mut_slice()).map_err(|e| Error::Internal(format!("random: {e}")))?;
        crate::config::write_private(path, k.as_slice())?;
        Ok(WebhookKey(k))
    }

    /// The secret of webhook `id` (base64url text; its ASCII bytes are the
    /// HMAC key receivers use).
    pub fn secret(&self, id: &str) -> Result<Zeroizing<String>> {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(self.0.as_slice())
            .map_err(|_| Error::Internal("webhook key length".into()))?;
        mac.update(SECRET_CONTEXT);
        mac.update(id.as_bytes());
        let out = Zeroizing::new(mac.finalize().into_bytes().to_vec());
        Ok(Zeroizing::new(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(out.as_slice()),
        ))
    }
}

/// The `custody-signature` header value for `body` sent at `t` (Unix seconds).
pub fn signature_header(secret: &str, t: i64, body: &[u8]) -> Result<String> {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret.as_bytes())
        .map_err(|_| Error::Internal("webhook secret length".into()))?;
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!(
        "t={t},v1={}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

/// Checks a `custody-signature` header (what a receiver does; constant-time
/// compare). Exposed for tests and receivers written in Rust.
pub fn verify_signature(secret: &str, header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", x)) => t = x.parse::<i64>().ok(),
            Some(("v1", x)) => v1 = hex::decode(x).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let Ok(mut mac) = <HmacSha256 as KeyInit>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&v1).is_ok()
}

/// The HTTP client for webhooks: trusts the CA file's roots (rustls with
/// ring); plain `http` is allowed only to loopback URLs (checked when a
/// webhook is added).
pub fn http_client(ca_file: &Path, timeout: Duration) -> Result<reqwest::Client> {
    let mut roots = rustls::RootCertStore::empty();
    match std::fs::read(ca_file) {
        Ok(pem) => {
            let mut rd = std::io::Cursor::new(pem);
            for c in rustls_pemfile::certs(&mut rd).flatten() {
                let _ = roots.add(c);
            }
        }
        Err(e) => {
            tracing::warn!(file = %ca_file.display(), error = %e, "no CA file: https webhooks will fail");
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("webhook TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("custody-coordinator/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::Internal(format!("webhook HTTP client: {e}")))
}

/// Checks a webhook URL: `https://…`, or `http://` to a loopback host.
pub fn check_url(url: &str) -> Result<()> {
    let parsed = reqwest::Url::parse(url).map_err(|_| Error::invalid("url is not a URL"))?;
    if url.len() > 2000 {
        return Err(Error::invalid("url is longer than 2000 characters"));
    }
    let host = parsed.host_str().unwrap_or("");
    if host.is_empty() || !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(Error::invalid("url needs a host and no user info"));
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if crate::config::is_loopback_host(host) => Ok(()),
        _ => Err(Error::invalid(
            "webhook urls are https, or http to a loopback address",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_per_webhook_and_signatures_verify() {
        let k = WebhookKey(Zeroizing::new([5u8; 32]));
        let a = k.secret("whk_a").unwrap();
        let b = k.secret("whk_b").unwrap();
        assert_ne!(*a, *b);
        assert_eq!(*a, *k.secret("whk_a").unwrap());
        let h = signature_header(&a, 1_700_000_000, b"{\"x\":1}").unwrap();
        assert!(h.starts_with("t=1700000000,v1="));
        assert!(verify_signature(&a, &h, b"{\"x\":1}"));
        assert!(!verify_signature(&b, &h, b"{\"x\":1}"));
        assert!(!verify_signature(&a, &h, b"{\"x\":2}"));
        let other_time = h.replace("t=1700000000", "t=1700000001");
        assert!(!verify_signature(&a, &other_time, b"{\"x\":1}"));
        assert!(!verify_signature(&a, "garbage", b""));
    }

    #[test]
    fn urls() {
        assert!(check_url("https://hooks.example.com/x").is_ok());
        assert!(check_url("http://127.0.0.1:9/x").is_ok());
        assert!(check_url("http://localhost/x").is_ok());
        assert!(check_url("http://10.0.0.1/x").is_err());
        assert!(check_url("ftp://example.com").is_err());
        assert!(check_url("https://u:p@example.com").is_err());
        assert!(check_url("nonsense").is_err());
    }
}
