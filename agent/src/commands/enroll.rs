//! `enroll`: create or load the server key, register it with the
//! coordinator using a one-time join token, store the credential.

use std::io::Write;

use custody_proto::PROTOCOL_VERSION;
use custody_proto::servers::{AgentRole, EnrollRequest};
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use zeroize::Zeroizing;

use crate::config::AgentConfig;
use crate::credential::{Credential, CredentialError};
use crate::keystore::{self, KeyStoreError};
use crate::link::{self, AGENT_VERSION, Endpoint, LinkError};

/// What `enroll` was asked.
#[derive(Debug, Clone)]
pub struct EnrollArgs {
    /// Coordinator base URL.
    pub coordinator: String,
    /// CA fingerprint to pin.
    pub ca_fingerprint: String,
    /// The one-time join token. Secret.
    pub join_token: Zeroizing<String>,
    /// Roles offered; `None`: key manager, plus target when install roots
    /// are configured.
    pub roles: Option<Vec<AgentRole>>,
    /// Name for people; default the host name.
    pub name: Option<String>,
}

/// Why enrollment failed. One line each.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrollError {
    /// The agent already holds a credential.
    #[error(
        "already enrolled as {server_id} ({path} exists); remove it to enroll again with a new \
         join token"
    )]
    AlreadyEnrolled {
        /// The existing server id.
        server_id: String,
        /// The credential file.
        path: std::path::PathBuf,
    },
    /// The configuration names another coordinator than the arguments.
    #[error("the configuration's [coordinator] {field} differs from the one given to enroll")]
    ConfigMismatch {
        /// `url` or `ca_fingerprint`.
        field: &'static str,
    },
    /// The URL or fingerprint is unusable, or the host does not resolve.
    #[error("{0}")]
    Link(#[from] LinkError),
    /// The keystore failed.
    #[error("keystore: {0}")]
    KeyStore(#[from] KeyStoreError),
    /// The public key could not be encoded.
    #[error("cannot encode the public key")]
    EncodePublicKey,
    /// The join token was refused.
    #[error("the coordinator refused the join token: it is unknown, already used or expired")]
    JoinToken,
    /// The coordinator could not be reached or refused otherwise.
    #[error("enrollment failed: {0}")]
    Coordinator(String),
    /// The async runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    /// The credential could not be stored (or the old one read).
    #[error("{0}")]
    Credential(#[from] CredentialError),
    /// Writing the report failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// The host name, for people.
fn host_name() -> String {
    let uts = rustix::system::uname();
    let name = uts.nodename().to_string_lossy().into_owned();
    if name.is_empty() {
        "custody-agent".to_owned()
    } else {
        name
    }
}

/// Runs enrollment.
pub fn enroll(
    config: &AgentConfig,
    args: &EnrollArgs,
    out: &mut dyn Write,
) -> Result<(), EnrollError> {
    let cred_path = config.state.credential_path();
    match Credential::load(&cred_path) {
        Ok(c) => {
            return Err(EnrollError::AlreadyEnrolled {
                server_id: c.server_id,
                path: cred_path,
            });
        }
        Err(CredentialError::Missing { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let endpoint = Endpoint::new(&args.coordinator, &args.ca_fingerprint)?;
    if let Some(c) = &config.coordinator {
        let configured = Endpoint::new(&c.url, &c.ca_fingerprint)?;
        if configured.url != endpoint.url {
            return Err(EnrollError::ConfigMismatch { field: "url" });
        }
        if !configured
            .ca_fingerprint
            .eq_ignore_ascii_case(&endpoint.ca_fingerprint)
        {
            return Err(EnrollError::ConfigMismatch {
                field: "ca_fingerprint",
            });
        }
    }
    let resolved = link::resolve(&endpoint)?;

    // The key: created on first use, loaded afterwards.
    crate::keystore::ensure_private_dir(&config.state.dir)?;
    let opened = keystore::open(&config.keystore, &config.state.dir)?;
    let public_key_pem = opened
        .public_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|_| EnrollError::EncodePublicKey)?;
    let fingerprint = super::fingerprint(opened.public_key());
    let roles = args.roles.clone().unwrap_or_else(|| {
        let mut r = vec![AgentRole::KeyManager];
        if !config.target.install_roots.is_empty() {
            r.push(AgentRole::Target);
        }
        r
    });
    let request = EnrollRequest {
        protocol: PROTOCOL_VERSION,
        join_token: args.join_token.as_str().to_owned(),
        name: args.name.clone().unwrap_or_else(host_name),
        public_key_pem,
        oaep_hashes: opened.supported_hashes().to_vec(),
        roles,
        agent_version: AGENT_VERSION.to_owned(),
    };
    drop(opened);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(EnrollError::Runtime)?;
    let client = link::client(
        &endpoint,
        &resolved,
        None,
        std::time::Duration::from_secs(30),
    )?;
    let answer = rt.block_on(client.enroll(&request));
    let mut request = request;
    zeroize::Zeroize::zeroize(&mut request.join_token);
    let answer = answer.map_err(|e| match e.code() {
        Some(custody_proto::ErrorCode::JoinTokenInvalid) => EnrollError::JoinToken,
        _ => EnrollError::Coordinator(link::describe(&e, &endpoint)),
    })?;
    let credential = Credential::from_enrollment(
        &answer,
        &endpoint.url,
        &endpoint.ca_fingerprint,
        &fingerprint,
    );
    credential.save(&cred_path)?;
    writeln!(
        out,
        "enrolled as {} in account {} (key {fingerprint}); credential stored in {}",
        answer.server_id,
        answer.account,
        cred_path.display()
    )?;
    Ok(())
}
