//! `custody package`: offline encrypt / decrypt / inspect of package files.
//!
//! Output is always staged in a temporary file beside the destination and
//! renamed into place only when the whole operation succeeded (for
//! decryption: after the final chunk verified); on any failure the
//! temporary file is removed and the destination is untouched.

mod keyfile;
mod progress;
mod stage;

use anyhow::Context;
use clap::Subcommand;
use custody_envelope::package::Header;
use custody_envelope::stream;
use std::fs::File;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum PackageCmd {
    /// Encrypt a file into a package bound to an account, app and release.
    Encrypt {
        /// File holding the 32-byte release key (raw, or 64 hex characters).
        #[arg(long, value_name = "K")]
        key_file: PathBuf,
        /// Account id.
        #[arg(long)]
        account: String,
        /// Application name.
        #[arg(long)]
        app: String,
        /// Release id.
        #[arg(long)]
        release: String,
        /// Worker threads (default: all cores).
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
        /// The plaintext file.
        input: PathBuf,
        /// The package file to write.
        output: PathBuf,
    },
    /// Decrypt a package; the output appears only if every chunk verified.
    Decrypt {
        /// File holding the 32-byte release key (raw, or 64 hex characters).
        #[arg(long, value_name = "K")]
        key_file: PathBuf,
        /// Worker threads (default: all cores).
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
        /// The package file.
        input: PathBuf,
        /// The plaintext file to write.
        output: PathBuf,
    },
    /// Print a package's header as JSON (not authenticated without the key).
    Inspect {
        /// The package file.
        file: PathBuf,
    },
}

pub fn run(cmd: PackageCmd) -> anyhow::Result<()> {
    match cmd {
        PackageCmd::Encrypt {
            key_file,
            account,
            app,
            release,
            threads,
            input,
            output,
        } => encrypt(&key_file, account, app, release, threads, &input, &output),
        PackageCmd::Decrypt {
            key_file,
            threads,
            input,
            output,
        } => decrypt(&key_file, threads, &input, &output),
        PackageCmd::Inspect { file } => inspect(&file),
    }
}

fn open_input(path: &Path) -> anyhow::Result<(File, u64)> {
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = f
        .metadata()
        .with_context(|| format!("cannot stat {}", path.display()))?
        .len();
    Ok((f, len))
}

fn encrypt(
    key_file: &Path,
    account: String,
    app: String,
    release: String,
    threads: Option<usize>,
    input: &Path,
    output: &Path,
) -> anyhow::Result<()> {
    let key = keyfile::load(key_file)?;
    let header = Header::new(account, app, release).context("invalid release binding")?;
    let (src, len) = open_input(input)?;
    let staged = stage::Staged::create(output, 0o644)?;
    let bar = progress::Bar::new("encrypt", len);
    let tick = |n| bar.inc(n);
    stream::encrypt_file_with_progress(
        &key,
        &header,
        &src,
        staged.file(),
        threads.unwrap_or(0),
        &tick,
    )
    .with_context(|| format!("encrypt {}", input.display()))?;
    bar.finish();
    staged.commit()
}

fn decrypt(
    key_file: &Path,
    threads: Option<usize>,
    input: &Path,
    output: &Path,
) -> anyhow::Result<()> {
    let key = keyfile::load(key_file)?;
    let (src, len) = open_input(input)?;
    let staged = stage::Staged::create(output, 0o600)?;
    let bar = progress::Bar::new("decrypt", len);
    let tick = |n| bar.inc(n);
    let header =
        stream::decrypt_file_with_progress(&key, &src, staged.file(), threads.unwrap_or(0), &tick)
            .with_context(|| format!("decrypt {}", input.display()))?;
    bar.finish();
    staged.commit()?;
    eprintln!(
        "custody: verified and decrypted release {} of {}/{}",
        header.release, header.account, header.app
    );
    Ok(())
}

fn inspect(file: &Path) -> anyhow::Result<()> {
    let (mut src, _) = open_input(file)?;
    let (_, bytes) =
        stream::read_header(&mut src).with_context(|| format!("inspect {}", file.display()))?;
    // The header is canonical JSON already; print it as it is in the file.
    println!("{}", String::from_utf8_lossy(&bytes));
    Ok(())
}
