//! The installer child's side: read the settings, sandbox, serve requests
//! until the main process closes the socket.

use std::os::fd::AsFd as _;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

use zeroize::Zeroizing;

use super::error::InstallerError;
use super::protocol::{FromChild, ToChildIn, parse, read_frame, write_frame};
use super::{InstallRequest, Variable, install};

/// The hidden `custody-agent installer` subcommand: standard input is the
/// socket to the main process. Exits 0 when the main process closes it.
pub fn child_main() -> ExitCode {
    match serve() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("custody-agent installer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn gone(e: std::io::Error) -> InstallerError {
    InstallerError::ChildGone(format!("reading from the socket: {e}"))
}

fn serve() -> Result<(), InstallerError> {
    let fd = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| InstallerError::Protocol(format!("standard input: {e}")))?;
    let sock = UnixStream::from(fd);
    let mut reader = &sock;

    // 1. Settings, read while nothing is restricted and no thread runs.
    let Some(body) = read_frame(&mut reader).map_err(gone)? else {
        return Ok(());
    };
    let ToChildIn::Start { settings } = parse(&body)? else {
        return Err(InstallerError::Protocol("expected a start frame".into()));
    };
    drop(body);
    crate::logging::init(&crate::config::LogConfig {
        level: settings.log_level.clone(),
    });

    // 2. The sandbox, first.
    match crate::sandbox::apply(&settings.plan) {
        Ok(report) => write_frame(
            &mut &sock,
            &FromChild::Ready {
                landlock_abi: report.landlock.enforced_abi,
            },
        )?,
        Err(e) => {
            let message = e.to_string();
            let _ = write_frame(
                &mut &sock,
                &FromChild::StartFailed {
                    message: message.clone(),
                },
            );
            return Err(InstallerError::ChildSandbox(message));
        }
    }

    // 3. Requests, one at a time, until end of file.
    loop {
        let Some(body) = read_frame(&mut reader).map_err(gone)? else {
            return Ok(());
        };
        let ToChildIn::Install {
            deployment_id,
            package_tar,
            variables,
        } = parse(&body)?
        else {
            return Err(InstallerError::Protocol("expected an install frame".into()));
        };
        drop(body);
        let req = InstallRequest {
            deployment_id,
            package_tar,
            variables: variables
                .into_iter()
                .map(|v| Variable {
                    name: v.name,
                    value: Zeroizing::new(v.value),
                    secret: v.secret,
                })
                .collect(),
        };
        let mut send_failed = None;
        let result = install::install(&settings, &req, &mut |line| {
            if send_failed.is_none()
                && let Err(e) = write_frame(&mut &sock, &FromChild::Log { line })
            {
                send_failed = Some(e);
            }
        });
        drop(req);
        if let Some(e) = send_failed {
            return Err(e);
        }
        write_frame(&mut &sock, &FromChild::Done { result })?;
    }
}
