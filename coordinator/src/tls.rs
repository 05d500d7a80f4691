//! TLS: the self-signed CA and server certificate made at `init`, loading
//! PEM files, the rustls server config (ring provider), and the CA
//! fingerprint that agents and the CLI pin.

use crate::error::{Error, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;

/// PEM files written by [`generate`].
#[derive(Debug)]
pub struct Generated {
    /// SHA-256 (hex) of the CA certificate's DER.
    pub ca_fingerprint: String,
}

/// SHA-256 (hex, lowercase) of a DER certificate: what clients pin.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

fn rc(op: &'static str) -> impl FnOnce(rcgen::Error) -> Error {
    move |e| Error::Internal(format!("{op}: {e}"))
}

/// Makes a CA and a server certificate for `names` (DNS names or IPs) and
/// writes `ca.pem`, `server.pem` (server then CA) and `server.key` (0600) in `dir`.
pub fn generate(dir: &Path, names: &[String]) -> Result<Generated> {
    let ca_key = KeyPair::generate().map_err(rc("generate CA key"))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(rc("CA params"))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Custody coordinator CA");
    ca_params.distinguished_name = dn;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(rc("sign CA"))?;
    let issuer = Issuer::new(ca_params, ca_key);

    let srv_key = KeyPair::generate().map_err(rc("generate server key"))?;
    let mut p = CertificateParams::new(names.to_vec()).map_err(rc("server params"))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Custody coordinator");
    p.distinguished_name = dn;
    p.is_ca = IsCa::NoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.use_authority_key_identifier_extension = true;
    let srv_cert = p
        .signed_by(&srv_key, &issuer)
        .map_err(rc("sign server cert"))?;

    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).map_err(Error::io("write ca.pem"))?;
    std::fs::write(
        dir.join("server.pem"),
        format!("{}{}", srv_cert.pem(), ca_cert.pem()),
    )
    .map_err(Error::io("write server.pem"))?;
    crate::config::write_private(&dir.join("server.key"), srv_key.serialize_pem().as_bytes())?;
    Ok(Generated {
        ca_fingerprint: fingerprint(ca_cert.der()),
    })
}

/// Reads every certificate of a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let data = std::fs::read(path).map_err(Error::io("read certificate file"))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut data.as_slice())
        .collect::<std::result::Result<_, _>>()
        .map_err(Error::io("parse certificate file"))?;
    if certs.is_empty() {
        return Err(Error::Internal(format!(
            "{}: no certificate found",
            path.display()
        )));
    }
    Ok(certs)
}

/// The rustls server config from a chain and a key file.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>> {
    let certs = load_certs(cert)?;
    let data = std::fs::read(key).map_err(Error::io("read key file"))?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut data.as_slice())
        .map_err(Error::io("parse key file"))?
        .ok_or_else(|| Error::Internal(format!("{}: no private key found", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("TLS versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Internal(format!("TLS certificate: {e}")))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
