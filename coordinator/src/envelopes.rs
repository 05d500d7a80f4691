//! What the coordinator can check about envelopes without any key: the
//! JWE's protected header (`custody_envelope::jwe::peek`) must carry the
//! expected purpose and binding ids, a `wrap` must be addressed (`kid`) to
//! the intended server's key thumbprint and a `seal` under `MK` must name
//! the master key; a signed release descriptor must parse and name this
//! release and its package digest. A coordinator cannot open any of them.

use crate::error::{Error, Result};
use custody_envelope::jwe::{self, Purpose};

/// How a JWE must be encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// RSA-OAEP to a server key whose thumbprint is the `kid`.
    WrapTo,
    /// `dir` under a symmetric key whose id is the `kid`.
    Sealed,
}

/// The expectation for one JWE.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// Human name for errors.
    pub what: &'a str,
    /// Purpose.
    pub purpose: Purpose,
    /// Wrap or seal.
    pub kind: Kind,
    /// Required `kid`, when known (server thumbprint, master key id).
    pub kid: Option<&'a str>,
    /// Required binding ids (checked when given).
    pub app: Option<&'a str>,
    /// Release id.
    pub release: Option<&'a str>,
    /// Deployment id.
    pub deployment: Option<&'a str>,
    /// Variable name.
    pub name: Option<&'a str>,
    /// Environment name (secret variables).
    pub environment: Option<&'a str>,
}

impl<'a> Expect<'a> {
    /// An expectation with only purpose and kind set.
    pub fn new(what: &'a str, purpose: Purpose, kind: Kind) -> Self {
        Expect {
            what,
            purpose,
            kind,
            kid: None,
            app: None,
            release: None,
            deployment: None,
            name: None,
            environment: None,
        }
    }
    /// Requires this `kid`.
    pub fn kid(mut self, kid: &'a str) -> Self {
        self.kid = Some(kid);
        self
    }
    /// Requires this app.
    pub fn app(mut self, v: &'a str) -> Self {
        self.app = Some(v);
        self
    }
    /// Requires this release.
    pub fn release(mut self, v: &'a str) -> Self {
        self.release = Some(v);
        self
    }
    /// Requires this deployment.
    pub fn deployment(mut self, v: &'a str) -> Self {
        self.deployment = Some(v);
        self
    }
    /// Requires this variable name.
    pub fn name(mut self, v: &'a str) -> Self {
        self.name = Some(v);
        self
    }
    /// Requires this environment.
    pub fn environment(mut self, v: &'a str) -> Self {
        self.environment = Some(v);
        self
    }
}

/// Checks a JWE against `e` and the account.
pub fn check(jwe: &str, account: &str, e: Expect<'_>) -> Result<()> {
    let what = e.what;
    let h = jwe::peek(jwe).map_err(|_| Error::invalid(format!("{what} is not a Custody JWE")))?;
    let bad = |why: &str| Err(Error::invalid(format!("{what}: {why}")));
    match e.kind {
        Kind::WrapTo if !matches!(h.alg.as_str(), "RSA-OAEP-256" | "RSA-OAEP") => {
            return bad("not wrapped with RSA-OAEP");
        }
        Kind::Sealed if h.alg != "dir" => return bad("not sealed (alg dir)"),
        _ => {}
    }
    if h.binding.purpose != e.purpose {
        return bad("bound to another purpose");
    }
    if h.binding.account != account {
        return bad("bound to another account");
    }
    if let Some(k) = e.kid
        && h.kid != k
    {
        return bad(match e.kind {
            Kind::WrapTo => "wrapped to another key than the server's",
            Kind::Sealed => "sealed under another key",
        });
    }
    for (want, got, field) in [
        (e.app, &h.binding.app, "app"),
        (e.release, &h.binding.release, "release"),
        (e.deployment, &h.binding.deployment, "deployment"),
        (e.name, &h.binding.name, "variable name"),
        (e.environment, &h.binding.environment, "environment"),
    ] {
        if let Some(w) = want
            && got.as_deref() != Some(w)
        {
            return bad(&format!("bound to another {field}"));
        }
    }
    Ok(())
}

/// The fields of a signed release descriptor the coordinator checks.
#[derive(Debug, Clone)]
pub struct DescriptorFields {
    /// Account.
    pub account: String,
    /// App.
    pub app: String,
    /// Release id.
    pub release: String,
    /// Package SHA-256 (hex).
    pub package_sha256: String,
}

/// Parses a signed descriptor (its canonical JSON form). The signature is
/// checked by targets against their pinned publisher keys.
pub fn descriptor(v: &serde_json::Value) -> Result<DescriptorFields> {
    let bytes = custody_envelope::canonical::encode_value(v)
        .map_err(|_| Error::invalid("the descriptor is not canonical JSON"))?;
    let sd = custody_envelope::descriptor::SignedDescriptor::from_json(&bytes).map_err(|e| {
        Error::invalid(format!(
            "the descriptor is not a signed release descriptor: {e}"
        ))
    })?;
    let d = sd.descriptor;
    Ok(DescriptorFields {
        account: d.account,
        app: d.app,
        release: d.release,
        package_sha256: d.package_sha256,
    })
}
