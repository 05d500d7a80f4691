//! One install, inside the installer child: manifest → destination check →
//! unpack into a fresh directory in the install root → `pre_install` →
//! move into place → `post_install` → remove the plaintext package.

use std::io::BufReader;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use custody_envelope::manifest::Manifest;
use rustix::fs::{FileType, Mode, OFlags, fstat, openat};

use super::error::{HookKind, HookStatus, InstallerError};
use super::hooks::{self, HookRun};
use super::protocol::ChildSettings;
use super::redact::Redactor;
use super::tree;
use super::unpack::{self, Limits, Unpacker};
use super::{HookReport, InstallOutcome, InstallReport, InstallRequest, LogLine, LogStream};

/// Where log lines go, with the installer's own lines redacted too.
struct Log<'a> {
    sink: &'a mut dyn FnMut(LogLine),
    redactor: Arc<Redactor>,
}

impl Log<'_> {
    fn say(&mut self, line: impl AsRef<str>) {
        let line = self.redactor.line(line.as_ref().as_bytes(), false);
        (self.sink)(LogLine {
            stream: LogStream::Installer,
            line,
        });
    }
}

/// Runs one install and, whatever happened, removes the package tar.
pub(crate) fn install(
    settings: &ChildSettings,
    req: &InstallRequest,
    sink: &mut dyn FnMut(LogLine),
) -> Result<InstallReport, InstallerError> {
    let started = Instant::now();
    let redactor = Arc::new(Redactor::new(
        req.variables
            .iter()
            .filter(|v| v.secret)
            .map(|v| v.value.as_str()),
    ));
    let mut log = Log { sink, redactor };
    let result = run(settings, req, &mut log, started);
    if let Err(e) = &result {
        log.say(format!("install refused or failed: {e}"));
    }
    match remove_package(settings, &req.package_tar) {
        Ok(()) => log.say("removed the plaintext package from staging"),
        Err(e) => log.say(format!("removing the plaintext package failed: {e}")),
    }
    result
}

fn staged(settings: &ChildSettings, path: &Path) -> bool {
    path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
        && path.starts_with(&settings.staging_dir)
        && path != settings.staging_dir
}

fn remove_package(settings: &ChildSettings, path: &Path) -> Result<(), InstallerError> {
    if !staged(settings, path) {
        return Err(InstallerError::PackageNotStaged {
            path: path.to_owned(),
        });
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(InstallerError::io("removing", path, e)),
    }
}

fn open_package(settings: &ChildSettings, path: &Path) -> Result<std::fs::File, InstallerError> {
    let not_staged = || InstallerError::PackageNotStaged {
        path: path.to_owned(),
    };
    if !staged(settings, path) {
        return Err(not_staged());
    }
    let fd = openat(
        rustix::fs::CWD,
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        rustix::io::Errno::LOOP => not_staged(),
        e => InstallerError::io("opening", path, std::io::Error::from(e)),
    })?;
    let st = fstat(&fd).map_err(|e| InstallerError::io("stat", path, std::io::Error::from(e)))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(not_staged());
    }
    Ok(std::fs::File::from(fd))
}

/// The install root `destination` lies strictly below (the longest when
/// roots nest), and the components below it.
fn choose_root<'r>(
    roots: &'r [PathBuf],
    destination: &Path,
) -> Result<(&'r Path, Vec<String>), InstallerError> {
    let root = roots
        .iter()
        .filter(|r| destination.starts_with(r) && destination != r.as_path())
        .max_by_key(|r| r.components().count())
        .ok_or_else(|| InstallerError::DestinationNotAllowed {
            destination: destination.to_owned(),
            reason: format!(
                "not below any install root this agent was granted ({})",
                roots
                    .iter()
                    .map(|r| r.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
    let rest =
        destination
            .strip_prefix(root)
            .map_err(|_| InstallerError::DestinationNotAllowed {
                destination: destination.to_owned(),
                reason: "not below its install root".into(),
            })?;
    let parts = rest
        .components()
        .map(|c| match c {
            Component::Normal(p) => p.to_str().map(str::to_owned),
            _ => None,
        })
        .collect::<Option<Vec<String>>>()
        .ok_or_else(|| InstallerError::DestinationNotAllowed {
            destination: destination.to_owned(),
            reason: "not a plain path".into(),
        })?;
    Ok((root, parts))
}

/// Removes the unpack directory unless it was moved into place.
struct TempDir<'a> {
    root: BorrowedFd<'a>,
    name: String,
}

impl Drop for TempDir<'_> {
    fn drop(&mut self) {
        if let Err(e) = tree::remove_tree(self.root, self.name.as_str()) {
            tracing::warn!(dir = %self.name, error = %e, "removing an unpack directory failed");
        }
    }
}

fn io_at(op: &str, path: &Path) -> impl FnOnce(std::io::Error) -> InstallerError {
    let (op, path) = (op.to_owned(), path.to_owned());
    move |e| InstallerError::io(op, path, e)
}

fn hook_env<'a>(
    manifest: &'a Manifest,
    req: &'a InstallRequest,
    log: &mut Log<'_>,
) -> Vec<(&'a str, &'a str)> {
    let mut env = Vec::new();
    for name in &manifest.env {
        match req.variables.iter().find(|v| &v.name == name) {
            Some(v) => env.push((name.as_str(), v.value.as_str())),
            None => log.say(format!(
                "variable {name} (named in the manifest's env) is not set for this environment"
            )),
        }
    }
    env
}

fn run_hook(
    kind: HookKind,
    manifest: &Manifest,
    release_dir: &Path,
    req: &InstallRequest,
    settings: &ChildSettings,
    log: &mut Log<'_>,
) -> Result<Option<HookReport>, InstallerError> {
    let hook = match kind {
        HookKind::PreInstall => manifest.pre_install.as_ref(),
        HookKind::PostInstall => manifest.post_install.as_ref(),
    };
    let Some(hook) = hook else {
        return Ok(None);
    };
    let timeout = hook
        .timeout
        .unwrap_or(Duration::from_secs(settings.hook_timeout_secs));
    log.say(format!(
        "running {kind}: {} (time limit {} s)",
        hook.command.join(" "),
        timeout.as_secs()
    ));
    let env = hook_env(manifest, req, log);
    let spec = HookRun {
        kind,
        hook,
        release_dir,
        destination: &manifest.destination,
        deployment_id: &req.deployment_id,
        env,
        timeout,
    };
    let redactor = log.redactor.clone();
    let (status, duration) = match hooks::run(&spec, &redactor, &mut *log.sink) {
        Ok(outcome) => (outcome.status, outcome.duration),
        // Before the move nothing is lost by refusing; after it the files
        // stay and the report says the hook did not run.
        Err(e) if kind == HookKind::PreInstall => return Err(e),
        Err(e) => {
            log.say(format!("{e}"));
            (HookStatus::NotStarted, Duration::ZERO)
        }
    };
    log.say(format!("{kind} ended: {status}"));
    Ok(Some(HookReport {
        hook: kind,
        status,
        duration,
    }))
}

fn run(
    settings: &ChildSettings,
    req: &InstallRequest,
    log: &mut Log<'_>,
    started: Instant,
) -> Result<InstallReport, InstallerError> {
    let file = open_package(settings, &req.package_tar)?;
    let mut archive = tar::Archive::new(BufReader::with_capacity(256 * 1024, file));
    let mut entries = archive
        .entries()
        .map_err(|e| InstallerError::Malformed {
            reason: e.to_string(),
        })?
        .raw(true);
    let manifest = unpack::read_manifest(&mut entries)?;
    let destination = manifest.destination.clone();
    let (root_path, parts) = choose_root(&settings.install_roots, &destination)?;
    log.say(format!(
        "deployment {}: installing into {} (install root {})",
        req.deployment_id,
        destination.display(),
        root_path.display()
    ));
    let root: OwnedFd =
        tree::open_configured_dir(root_path).map_err(io_at("opening install root", root_path))?;
    for stale in tree::names_with_prefix(root.as_fd(), tree::TEMP_PREFIX)
        .map_err(io_at("listing install root", root_path))?
    {
        log.say(format!("removing {stale} left by an interrupted install"));
        tree::remove_tree(root.as_fd(), stale.as_str())
            .map_err(io_at("removing", &root_path.join(&stale)))?;
    }

    // Unpack into a fresh directory in the root (same file system).
    let temp_name = tree::temp_name().map_err(io_at("naming a directory in", root_path))?;
    let temp_path = root_path.join(&temp_name);
    let temp_fd =
        tree::make_dir(root.as_fd(), &temp_name, 0o700).map_err(io_at("creating", &temp_path))?;
    let temp = TempDir {
        root: root.as_fd(),
        name: temp_name,
    };
    let limits = Limits {
        max_total_bytes: settings.max_total_bytes,
        max_files: settings.max_files,
        max_file_bytes: settings.max_file_bytes,
    };
    let mut unpacker = Unpacker::new(&manifest, limits, temp_fd);
    while let Some((meta, mut data)) = unpack::next_entry(&mut entries)? {
        unpacker.entry(&meta, &mut data)?;
    }
    let stats = unpacker.finish()?;
    drop(archive);
    log.say(format!(
        "unpacked {} files, {} directories, {} bytes",
        stats.files, stats.dirs, stats.bytes
    ));

    let mut hooks = Vec::new();
    if let Some(report) = run_hook(
        HookKind::PreInstall,
        &manifest,
        &temp_path,
        req,
        settings,
        log,
    )? {
        let status = report.status;
        hooks.push(report);
        match status {
            HookStatus::Exited(0) => {}
            HookStatus::TimedOut => {
                let seconds = manifest
                    .pre_install
                    .as_ref()
                    .and_then(|h| h.timeout)
                    .map_or(settings.hook_timeout_secs, |t| t.as_secs());
                return Err(InstallerError::HookTimedOut {
                    hook: HookKind::PreInstall,
                    seconds,
                });
            }
            status => {
                return Err(InstallerError::HookFailed {
                    hook: HookKind::PreInstall,
                    status,
                });
            }
        }
    }

    // Into place: the parent directories (created as needed, never
    // through a symlink), then one rename.
    let Some((name, parents)) = parts.split_last() else {
        return Err(InstallerError::DestinationNotAllowed {
            destination,
            reason: "is an install root itself".into(),
        });
    };
    let parent_refs: Vec<&str> = parents.iter().map(String::as_str).collect();
    let (parent, _created) = tree::walk_dirs(root.as_fd(), &parent_refs, Some(manifest.dir_mode))
        .map_err(|e| refuse_or_io(&destination, e))?;
    let exchange = match tree::kind_at(parent.as_fd(), name).map_err(io_at("stat", &destination))? {
        None => false,
        Some(FileType::Directory) => true,
        Some(_) => {
            return Err(InstallerError::DestinationNotAllowed {
                destination,
                reason: "exists and is not a directory (symlinks are not followed)".into(),
            });
        }
    };
    tree::rename(root.as_fd(), &temp.name, parent.as_fd(), name, exchange)
        .map_err(io_at("moving into place", &destination))?;
    // After an exchange the previous version is at the temporary name:
    // dropping `temp` removes it. After a plain rename nothing is there.
    drop(temp);
    tree::sync_dir(parent.as_fd()).map_err(io_at("syncing", &destination))?;
    tree::sync_dir(root.as_fd()).map_err(io_at("syncing", root_path))?;
    log.say(if exchange {
        format!(
            "moved into place at {} (previous version replaced)",
            destination.display()
        )
    } else {
        format!("moved into place at {}", destination.display())
    });

    let mut outcome = InstallOutcome::Installed;
    if let Some(report) = run_hook(
        HookKind::PostInstall,
        &manifest,
        &destination,
        req,
        settings,
        log,
    )? {
        if !report.status.success() {
            outcome = InstallOutcome::PostInstallFailed;
            log.say(format!(
                "post_install failed ({}): the files are installed, the deployment is marked failed",
                report.status
            ));
        }
        hooks.push(report);
    }
    Ok(InstallReport {
        deployment_id: req.deployment_id.clone(),
        destination,
        files: stats.files,
        directories: stats.dirs,
        bytes: stats.bytes,
        replaced_previous: exchange,
        hooks,
        outcome,
        duration: started.elapsed(),
    })
}

fn refuse_or_io(destination: &Path, e: std::io::Error) -> InstallerError {
    match e.raw_os_error() {
        Some(libc::ELOOP) | Some(libc::ENOTDIR) => InstallerError::DestinationNotAllowed {
            destination: destination.to_owned(),
            reason: "a directory on the way is a symlink or not a directory".into(),
        },
        _ => InstallerError::io("creating the parent of", destination, e),
    }
}
