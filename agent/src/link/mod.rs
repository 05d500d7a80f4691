//! The agent's link to the coordinator: where it is ([`Endpoint`]), its
//! address resolved once before the sandbox ([`resolve`]), the pinned-CA
//! HTTPS client (`custody-client`, whose typed agent-protocol calls the
//! agent uses), and reconnect backoff ([`backoff`]).
//!
//! Outbound only: the agent never listens. `HTTPS_PROXY` / `NO_PROXY` are
//! honoured by the client; the proxy's address is resolved up front too and
//! its port joins the sandbox's allowed TCP ports.

pub mod backoff;

use std::net::{IpAddr, SocketAddr, ToSocketAddrs as _};
use std::time::Duration;

use custody_client::{Client, ClientConfig, ClientError};
use zeroize::Zeroizing;

use crate::config::{AgentConfig, CoordinatorConfig};
use crate::credential::Credential;

/// The agent's version string, sent with enrollment and heartbeats.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why the coordinator cannot be reached or addressed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The URL cannot be used.
    #[error("coordinator URL {url:?}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The host name does not resolve.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// The host.
        host: String,
        /// The resolver's error.
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("{0}")]
    Client(#[source] ClientError),
}

/// Where the coordinator is and how to recognise it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Base URL (no trailing slash).
    pub url: String,
    /// SHA-256 of the CA certificate, hex.
    pub ca_fingerprint: String,
    /// Host as written in the URL (brackets removed for IPv6).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// Splits `scheme://host[:port][/path]` into host and port.
fn host_port(url: &str) -> Option<(String, u16, bool)> {
    let (rest, default_port, tls) = if let Some(r) = url.strip_prefix("https://") {
        (r, 443, true)
    } else if let Some(r) = url.strip_prefix("http://") {
        (r, 80, false)
    } else {
        return None;
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        return Some((host.to_owned(), port, tls));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()?),
        None => (authority, default_port),
    };
    if host.is_empty() {
        return None;
    }
    Some((host.to_owned(), port, tls))
}

impl Endpoint {
    /// An endpoint from a URL and fingerprint (checked like `[coordinator]`).
    pub fn new(url: &str, ca_fingerprint: &str) -> Result<Endpoint, LinkError> {
        let bad = |reason| LinkError::Url {
            url: url.to_owned(),
            reason,
        };
        let c = CoordinatorConfig {
            url: url.to_owned(),
            ca_fingerprint: ca_fingerprint.to_owned(),
        };
        crate::config::validate_coordinator(&c).map_err(|_| {
            bad("must be https://host[:port][/path] with a 64-hex-digit CA fingerprint")
        })?;
        let (host, port, _) = host_port(url).ok_or_else(|| bad("no host and port"))?;
        if port == 0 {
            return Err(bad("port 0"));
        }
        Ok(Endpoint {
            url: url.trim_end_matches('/').to_owned(),
            ca_fingerprint: ca_fingerprint.chars().filter(|&c| c != ':').collect(),
            host,
            port,
        })
    }

    /// The configuration's `[coordinator]`, else what the agent enrolled with.
    pub fn from_config(
        config: &AgentConfig,
        credential: &Credential,
    ) -> Result<Endpoint, LinkError> {
        match &config.coordinator {
            Some(c) => Endpoint::new(&c.url, &c.ca_fingerprint),
            None => Endpoint::new(&credential.coordinator_url, &credential.ca_fingerprint),
        }
    }
}

/// Addresses resolved before the sandbox, and the TCP ports they need.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// Host names and their addresses (IP literals are not listed: nothing
    /// resolves them).
    pub hosts: Vec<(String, Vec<SocketAddr>)>,
    /// Every TCP port the client may connect to (coordinator, proxy).
    pub ports: Vec<u16>,
}

/// The proxy `custody-client` will use for `https://` URLs, from the
/// environment, as `(host, port)`.
fn proxy_from_env() -> Option<(String, u16)> {
    ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.trim().is_empty())
        .and_then(|v| {
            let v = v.trim();
            let with_scheme = if v.contains("://") {
                v.to_owned()
            } else {
                format!("http://{v}")
            };
            host_port(&with_scheme).map(|(h, p, _)| (h, p))
        })
}

fn lookup(host: &str, port: u16) -> Result<Option<Vec<SocketAddr>>, LinkError> {
    if host.parse::<IpAddr>().is_ok() {
        return Ok(None);
    }
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|source| LinkError::Resolve {
            host: host.to_owned(),
            source,
        })?
        .collect();
    if addrs.is_empty() {
        return Err(LinkError::Resolve {
            host: host.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
        });
    }
    Ok(Some(addrs))
}

/// Resolves the coordinator (and the proxy, if one is configured) now,
/// while the process may still read `/etc/hosts` and talk to a resolver.
/// Blocking (`getaddrinfo`); call before the sandbox and before any runtime.
pub fn resolve(endpoint: &Endpoint) -> Result<Resolved, LinkError> {
    let mut r = Resolved::default();
    if let Some(addrs) = lookup(&endpoint.host, endpoint.port)? {
        r.hosts.push((endpoint.host.clone(), addrs));
    }
    r.ports.push(endpoint.port);
    if let Some((host, port)) = proxy_from_env() {
        if let Some(addrs) = lookup(&host, port)? {
            r.hosts.push((host, addrs));
        }
        if !r.ports.contains(&port) {
            r.ports.push(port);
        }
    }
    Ok(r)
}

/// A client for `endpoint` using the addresses in `resolved` (no DNS after
/// this), authenticated with `token` when given. `timeout` bounds every
/// request that does not set its own.
pub fn client(
    endpoint: &Endpoint,
    resolved: &Resolved,
    token: Option<&Zeroizing<String>>,
    timeout: Duration,
) -> Result<Client, LinkError> {
    let mut cfg = ClientConfig::new(&endpoint.url, Some(&endpoint.ca_fingerprint), None);
    cfg.token = token.cloned();
    cfg.timeout = timeout;
    cfg.resolve = resolved.hosts.clone();
    Client::new(cfg).map_err(LinkError::Client)
}

/// Whether the failure is the TLS peer not matching the pinned CA.
pub fn is_pin_mismatch(e: &ClientError) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if is_certificate_error(err) {
            return true;
        }
        // A custom `io::Error` hides what it wraps from `source()`.
        cur = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner),
            None => err.source(),
        };
    }
    false
}

fn is_certificate_error(err: &(dyn std::error::Error + 'static)) -> bool {
    matches!(
        err.downcast_ref::<rustls::Error>(),
        Some(rustls::Error::InvalidCertificate(_))
    )
}

/// One line saying what went wrong, without the endpoint's details.
pub fn describe_plain(e: &ClientError) -> String {
    match e {
        ClientError::Api { error, status, .. } => {
            format!("{status} {}: {}", error.code.as_str(), error.message)
        }
        ClientError::Transport { .. } if is_pin_mismatch(e) => {
            "the coordinator's certificate does not chain to the pinned CA".to_owned()
        }
        ClientError::Transport { source, .. } if source.is_timeout() => "timed out".to_owned(),
        ClientError::Transport { source, .. } if source.is_connect() => {
            "connection failed".to_owned()
        }
        other => other.to_string(),
    }
}

/// One line saying what went wrong talking to the coordinator, for people.
pub fn describe(e: &ClientError, endpoint: &Endpoint) -> String {
    match e {
        ClientError::Api { error, status, .. } => {
            format!(
                "the coordinator refused ({status} {}): {}",
                error.code.as_str(),
                error.message
            )
        }
        ClientError::Transport { .. } if is_pin_mismatch(e) => format!(
            "the coordinator at {} presented a certificate that does not chain to the pinned CA \
             fingerprint {}",
            endpoint.url, endpoint.ca_fingerprint
        ),
        ClientError::Transport { source, .. } if source.is_timeout() => {
            format!("the coordinator at {} did not answer in time", endpoint.url)
        }
        ClientError::Transport { source, .. } if source.is_connect() => {
            format!(
                "cannot reach the coordinator at {}: connection failed",
                endpoint.url
            )
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_from_urls() {
        assert_eq!(
            host_port("https://c.example:8443/x"),
            Some(("c.example".into(), 8443, true))
        );
        assert_eq!(
            host_port("https://c.example"),
            Some(("c.example".into(), 443, true))
        );
        assert_eq!(host_port("https://[::1]:9/"), Some(("::1".into(), 9, true)));
        assert_eq!(
            host_port("http://user:pw@proxy:3128"),
            Some(("proxy".into(), 3128, false))
        );
        assert_eq!(host_port("ftp://x"), None);
        assert_eq!(host_port("https://:80"), None);
        assert_eq!(host_port("https://h:notaport"), None);
    }

    #[test]
    fn endpoint_checks_url_and_fingerprint() {
        let fp = "ab".repeat(32);
        let e = Endpoint::new("https://127.0.0.1:8443/", &fp).unwrap();
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 8443));
        assert_eq!(e.url, "https://127.0.0.1:8443");
        assert!(matches!(
            Endpoint::new("http://127.0.0.1:8443", &fp),
            Err(LinkError::Url { .. })
        ));
        assert!(matches!(
            Endpoint::new("https://127.0.0.1:8443", "abcd"),
            Err(LinkError::Url { .. })
        ));
    }

    #[test]
    fn ip_literals_need_no_resolution() {
        let e = Endpoint::new("https://127.0.0.1:8443", &"ab".repeat(32)).unwrap();
        let r = resolve(&e).unwrap();
        assert!(r.hosts.is_empty());
        assert!(r.ports.contains(&8443));
        let e = Endpoint::new("https://localhost:8443", &"ab".repeat(32)).unwrap();
        let r = resolve(&e).unwrap();
        assert_eq!(r.hosts.len(), 1);
        assert!(r.hosts[0].1.iter().all(|a| a.ip().is_loopback()));
    }
}
