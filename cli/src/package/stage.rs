//! Staging: write to a fresh temporary file in the destination's directory,
//! rename it into place on success, remove it otherwise (also on early
//! return or panic, via `Drop`).

use anyhow::Context;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub struct Staged {
    file: Option<File>,
    tmp: PathBuf,
    dest: PathBuf,
}

impl Staged {
    pub fn create(dest: &Path, mode: u32) -> anyhow::Result<Staged> {
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = dest
            .file_name()
            .with_context(|| format!("{}: not a file name", dest.display()))?;
        let mut rnd = [0u8; 8];
        custody_envelope::rng::fill(&mut rnd)?;
        let tmp = dir.join(format!(
            ".{}.custody-{}.tmp",
            name.to_string_lossy(),
            hex::encode(rnd)
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
        Ok(Staged {
            file: Some(file),
            tmp,
            dest: dest.to_path_buf(),
        })
    }

    pub fn file(&self) -> &File {
        // Present until commit() consumes self.
        match &self.file {
            Some(f) => f,
            None => unreachable_file(),
        }
    }

    /// Flushes to disk and renames into place.
    pub fn commit(mut self) -> anyhow::Result<()> {
        if let Some(f) = self.file.take() {
            f.sync_all()
                .with_context(|| format!("cannot flush {}", self.tmp.display()))?;
        }
        std::fs::rename(&self.tmp, &self.dest)
            .with_context(|| format!("cannot move output into place at {}", self.dest.display()))?;
        self.tmp = PathBuf::new();
        Ok(())
    }
}

#[cold]
fn unreachable_file() -> ! {
    std::process::abort()
}

impl Drop for Staged {
    fn drop(&mut self) {
        self.file.take();
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
