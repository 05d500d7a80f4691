//! Picking the files of a release from the publisher's directory (the one
//! part of the manifest module that does I/O; `custody push` calls it).

use std::path::Path;

use super::{Manifest, ManifestError};

/// The files of `dir` that `manifest` selects, as relative `/`-separated
/// paths in byte order: the order `custody push` writes them into the
/// package tar (after `custody.toml`), so the same tree always gives the
/// same tar.
///
/// Symbolic links are never followed. A selected path that is not a
/// regular file (a symlink, FIFO, socket or device) is an error, as is a
/// name that is not UTF-8; directories matched by `exclude` are not
/// entered. The root `custody.toml` is never listed.
pub fn list_files(dir: &Path, manifest: &Manifest) -> Result<Vec<String>, ManifestError> {
    let mut out = Vec::new();
    walk(dir, "", manifest, &mut out)?;
    out.sort_unstable();
    Ok(out)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ManifestError + '_ {
    move |source| ManifestError::List {
        path: path.to_owned(),
        source,
    }
}

fn walk(
    dir: &Path,
    prefix: &str,
    manifest: &Manifest,
    out: &mut Vec<String>,
) -> Result<(), ManifestError> {
    let here = if prefix.is_empty() {
        dir.to_owned()
    } else {
        dir.join(prefix)
    };
    for entry in std::fs::read_dir(&here).map_err(io_err(&here))? {
        let entry = entry.map_err(io_err(&here))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(ManifestError::NonUtf8Path {
                path: entry.path().to_string_lossy().into_owned(),
            });
        };
        let rel = if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}/{name}")
        };
        let path = entry.path();
        let kind = entry.file_type().map_err(io_err(&path))?;
        if kind.is_dir() {
            if !manifest.excludes(&rel) {
                walk(dir, &rel, manifest, out)?;
            }
        } else if manifest.selects(&rel) {
            if !kind.is_file() {
                return Err(ManifestError::NotRegularFile { path: rel });
            }
            out.push(rel);
        }
    }
    Ok(())
}
