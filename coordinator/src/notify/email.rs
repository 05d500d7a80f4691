//! Sending email over SMTP with lettre (rustls): STARTTLS (required),
//! TLS from the first byte, or plain to a loopback relay; credentials read
//! once from a file that only the service may read.

use super::render::Mail;
use crate::config::{EmailConfig, SmtpSecurity};
use crate::error::{Error, Result};
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::path::Path;
use std::time::Duration;
use zeroize::Zeroizing;

/// An SMTP sender.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

/// Why one attempt failed.
#[derive(Debug)]
pub struct SendError {
    /// Retrying cannot help (the server refused for good, or the message
    /// cannot be built).
    pub permanent: bool,
    /// One line, no secrets.
    pub message: String,
}

fn read_credentials(path: &Path) -> Result<Credentials> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(Error::io("read SMTP credentials file"))?;
    if meta.mode() & 0o077 != 0 {
        return Err(Error::Internal(format!(
            "{}: the SMTP credentials file must not be readable by group or others (chmod 600)",
            path.display()
        )));
    }
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(Error::io("read SMTP credentials file"))?,
    );
    let mut lines = text.lines();
    let (Some(user), Some(pass)) = (lines.next(), lines.next()) else {
        return Err(Error::Internal(format!(
            "{}: expected the SMTP user name on the first line and the password on the second",
            path.display()
        )));
    };
    if user.is_empty() {
        return Err(Error::Internal(format!(
            "{}: the SMTP user name is empty",
            path.display()
        )));
    }
    Ok(Credentials::new(user.to_string(), pass.to_string()))
}

fn tls_parameters(host: &str, ca_file: &Path) -> Result<TlsParameters> {
    let pem = std::fs::read(ca_file).map_err(Error::io("read CA file for SMTP"))?;
    let cert = Certificate::from_pem(&pem)
        .map_err(|e| Error::Internal(format!("{}: {e}", ca_file.display())))?;
    TlsParameters::builder(host.to_string())
        .certificate_store(CertificateStore::None)
        .add_root_certificate(cert)
        .build_rustls()
        .map_err(|e| Error::Internal(format!("SMTP TLS setup: {e}")))
}

impl Mailer {
    /// Builds the sender from the config (reads the credentials and CA
    /// files now: a bad setup fails at start, not at the first mail).
    pub fn new(cfg: &EmailConfig, default_ca: &Path) -> Result<Self> {
        let from: Mailbox = cfg
            .from
            .parse()
            .map_err(|e| Error::Internal(format!("email.from {:?}: {e}", cfg.from)))?;
        let ca = cfg.ca_file.as_deref().unwrap_or(default_ca);
        let tls = match cfg.security {
            SmtpSecurity::Starttls => Tls::Required(tls_parameters(&cfg.host, ca)?),
            SmtpSecurity::Tls => Tls::Wrapper(tls_parameters(&cfg.host, ca)?),
            SmtpSecurity::Plain => Tls::None,
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.host.clone())
            .port(cfg.port())
            .tls(tls)
            .timeout(Some(Duration::from_secs(cfg.timeout_seconds)));
        if let Some(p) = &cfg.credentials_file {
            b = b.credentials(read_credentials(p)?);
        }
        Ok(Mailer {
            transport: b.build(),
            from,
        })
    }

    /// Sends one mail.
    pub async fn send(&self, mail: &Mail) -> std::result::Result<(), SendError> {
        let to: Mailbox = mail.to.parse().map_err(|_| SendError {
            permanent: true,
            message: "the recipient address is not valid".into(),
        })?;
        let msg = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body.clone())
            .map_err(|e| SendError {
                permanent: true,
                message: format!("building the message: {e}"),
            })?;
        self.transport
            .send(msg)
            .await
            .map(|_| ())
            .map_err(|e| SendError {
                permanent: e.is_permanent(),
                message: format!("SMTP: {e}"),
            })
    }
}
