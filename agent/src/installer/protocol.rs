//! The frames on the socket between the main process and the installer
//! child (described in the module docs of [`super`]).

use std::io::{Read, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::error::InstallerError;
use super::{InstallReport, LogLine};
use crate::sandbox::SandboxPlan;

/// Largest frame either side accepts.
pub(crate) const MAX_FRAME: usize = 4 * 1024 * 1024;

/// What the child needs to know, sent once before it sandboxes itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChildSettings {
    /// The plan the child applies as its first act.
    pub plan: SandboxPlan,
    /// Install roots, absolute and normalised.
    pub install_roots: Vec<PathBuf>,
    /// The staging directory the package tars are in.
    pub staging_dir: PathBuf,
    pub max_total_bytes: u64,
    pub max_files: u64,
    pub max_file_bytes: u64,
    pub hook_timeout_secs: u64,
    /// The log level (`info`, `debug` …).
    pub log_level: String,
}

/// One variable as sent (the value borrowed on the way out).
#[derive(Serialize)]
pub(crate) struct WireVariableOut<'a> {
    pub name: &'a str,
    pub value: &'a str,
    pub secret: bool,
}

/// One variable as received.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WireVariableIn {
    pub name: String,
    pub value: String,
    pub secret: bool,
}

/// Main process → child.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ToChildOut<'a> {
    Start {
        settings: &'a ChildSettings,
    },
    Install {
        deployment_id: &'a str,
        package_tar: &'a std::path::Path,
        variables: Vec<WireVariableOut<'a>>,
    },
}

/// Main process → child, as the child reads it.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum ToChildIn {
    Start {
        settings: Box<ChildSettings>,
    },
    Install {
        deployment_id: String,
        package_tar: PathBuf,
        variables: Vec<WireVariableIn>,
    },
}

/// Child → main process.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum FromChild {
    /// The sandbox is applied; the child waits for requests.
    Ready {
        /// The Landlock ABI enforced (0: none).
        landlock_abi: u32,
    },
    /// The sandbox could not be applied; the child exits.
    StartFailed { message: String },
    /// A line of hook or installer output, already redacted.
    Log { line: LogLine },
    /// The request is done.
    Done {
        result: Result<InstallReport, InstallerError>,
    },
}

fn protocol(e: impl std::fmt::Display) -> InstallerError {
    InstallerError::Protocol(e.to_string())
}

/// Writes one frame: a big-endian u32 length and the JSON body. The body
/// is built in a zeroizing buffer (an install request carries secrets).
pub(crate) fn write_frame<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<(), InstallerError> {
    let mut body = Zeroizing::new(Vec::with_capacity(1024));
    serde_json::to_writer(&mut *body, msg).map_err(protocol)?;
    if body.len() > MAX_FRAME {
        return Err(InstallerError::Protocol(format!(
            "a frame of {} bytes is over the limit of {MAX_FRAME}",
            body.len()
        )));
    }
    let len = u32::try_from(body.len()).map_err(protocol)?;
    let mut frame = Zeroizing::new(Vec::with_capacity(body.len() + 4));
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    w.write_all(&frame)
        .and_then(|()| w.flush())
        .map_err(|e| InstallerError::ChildGone(format!("writing to the socket: {e}")))
}

/// Reads one frame's body. `Ok(None)` on a clean end of stream (before
/// the first byte of a frame).
pub(crate) fn read_frame(r: &mut impl Read) -> Result<Option<Zeroizing<Vec<u8>>>, std::io::Error> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a frame of {len} bytes is over the limit of {MAX_FRAME}"),
        ));
    }
    let mut body = Zeroizing::new(vec![0u8; len]);
    r.read_exact(&mut body)?;
    Ok(Some(body))
}

/// Parses a frame body.
pub(crate) fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, InstallerError> {
    serde_json::from_slice(body).map_err(protocol)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::installer::LogStream;

    #[test]
    fn frames_round_trip_and_oversize_is_refused() {
        let mut buf = Vec::new();
        let msg = FromChild::Log {
            line: LogLine {
                stream: LogStream::Stdout,
                line: "hello".into(),
            },
        };
        write_frame(&mut buf, &msg).unwrap();
        write_frame(&mut buf, &FromChild::Ready { landlock_abi: 7 }).unwrap();
        let mut r = buf.as_slice();
        let a: FromChild = parse(&read_frame(&mut r).unwrap().unwrap()).unwrap();
        assert!(matches!(a, FromChild::Log { line } if line.line == "hello"));
        let b: FromChild = parse(&read_frame(&mut r).unwrap().unwrap()).unwrap();
        assert!(matches!(b, FromChild::Ready { landlock_abi: 7 }));
        assert!(read_frame(&mut r).unwrap().is_none());

        let huge = ((MAX_FRAME + 1) as u32).to_be_bytes();
        assert!(read_frame(&mut huge.as_slice()).is_err());
        let truncated = [0u8, 0, 0, 9, b'{'];
        assert!(read_frame(&mut truncated.as_slice()).is_err());
    }

    #[test]
    fn errors_cross_the_socket_with_their_variant() {
        let mut buf = Vec::new();
        let done = FromChild::Done {
            result: Err(InstallerError::Link {
                entry: "a/b".into(),
                kind: "symlink".into(),
            }),
        };
        write_frame(&mut buf, &done).unwrap();
        let back: FromChild = parse(&read_frame(&mut buf.as_slice()).unwrap().unwrap()).unwrap();
        assert!(matches!(
            back,
            FromChild::Done { result: Err(InstallerError::Link { entry, kind }) }
                if entry == "a/b" && kind == "symlink"
        ));
        // Variants only the main process makes are never sent.
        let gone = FromChild::Done {
            result: Err(InstallerError::ChildGone("x".into())),
        };
        assert!(write_frame(&mut Vec::new(), &gone).is_err());
    }
}
