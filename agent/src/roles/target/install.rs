//! The hand-off to the installer child ([`crate::installer`]): the verified
//! package tar and the environment's variables go in; redacted log lines
//! and a report (or a typed failure) come back.

use std::path::Path;
use std::sync::Arc;

use custody_envelope::keylist::SecretVar;
use custody_proto::jobs::{LogStream, PlainVariable};
use zeroize::Zeroizing;

use super::error::DeployError;
use super::logs::LogSink;
use crate::installer::{
    self, InstallOutcome, InstallRequest, InstallerError, InstallerHandle, Variable,
};

/// The installer the target hands packages to.
pub type InstallerSlot = Arc<InstallerHandle>;

/// The stable failure code for an installer error.
pub fn code(e: &InstallerError) -> &'static str {
    use InstallerError as E;
    match e {
        E::HookSpawn { .. } | E::HookFailed { .. } | E::HookTimedOut { .. } => "hook_failed",
        E::ManifestMissing | E::Manifest(_) => "manifest_invalid",
        E::Malformed { .. }
        | E::AbsolutePath { .. }
        | E::ParentDir { .. }
        | E::BadPath { .. }
        | E::Link { .. }
        | E::DeviceFile { .. }
        | E::SetIdBit { .. }
        | E::UnsupportedEntry { .. }
        | E::TooLarge { .. }
        | E::TooManyFiles { .. }
        | E::Duplicate { .. }
        | E::NotInManifest { .. } => "unsafe_package",
        E::DestinationNotAllowed { .. } => "destination_not_allowed",
        E::ChildSandbox(_) | E::Protocol(_) | E::Spawn(_) | E::ChildGone(_) => {
            "installer_unavailable"
        }
        _ => "install_failed",
    }
}

/// The hooks' variables: the job's plain ones, then the key list's secret
/// ones (a secret wins over a plain variable of the same name).
fn variables(plain: &[PlainVariable], secrets: Vec<SecretVar>) -> Vec<Variable> {
    let mut vars: Vec<Variable> = plain
        .iter()
        .filter(|p| !secrets.iter().any(|s| s.name == p.name))
        .map(|p| Variable {
            name: p.name.clone(),
            value: Zeroizing::new(p.value.clone()),
            secret: false,
        })
        .collect();
    vars.extend(secrets.into_iter().map(|s| Variable {
        name: s.name,
        value: s.value,
        secret: true,
    }));
    vars
}

/// Runs the installer on `package_tar` with the variables, relaying its
/// log lines (redacted once more) to the deploy log.
pub async fn run(
    installer: Option<&InstallerSlot>,
    deployment_id: &str,
    package_tar: &Path,
    plain: &[PlainVariable],
    secrets: Vec<SecretVar>,
    log: &LogSink,
) -> Result<(), DeployError> {
    let installer = installer.ok_or(DeployError::NoInstaller)?.clone();
    let request = InstallRequest {
        deployment_id: deployment_id.to_owned(),
        package_tar: package_tar.to_owned(),
        variables: variables(plain, secrets),
    };
    let (sender, redactor) = log.sender();
    let result = tokio::task::spawn_blocking(move || {
        let mut on_log = |line: installer::LogLine| {
            let stream = match line.stream {
                installer::LogStream::Stdout => LogStream::Stdout,
                installer::LogStream::Stderr => LogStream::Stderr,
                installer::LogStream::Installer => LogStream::Status,
            };
            sender.send(stream, redactor.redact(&line.line));
        };
        installer.install(&request, &mut on_log)
    })
    .await
    .map_err(|_| DeployError::Internal("the install task failed"))?;
    match result {
        Ok(report) if report.outcome == InstallOutcome::Installed => {
            log.status(&format!(
                "installed {} files ({} bytes) at {}",
                report.files,
                report.bytes,
                report.destination.display()
            ));
            Ok(())
        }
        Ok(report) => {
            let status = report
                .hooks
                .last()
                .map(|h| h.status.to_string())
                .unwrap_or_default();
            Err(DeployError::PostInstall {
                message: format!(
                    "post_install hook failed ({status}); the release's files are in place at {}",
                    report.destination.display()
                ),
            })
        }
        Err(e) => Err(DeployError::Install {
            code: code(&e),
            message: e.to_string(),
        }),
    }
}
