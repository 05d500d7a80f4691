//! The release manifest, `custody.toml`: which files a release ships, where
//! they are installed, with which modes, which of them are secret, and the
//! hooks that run around the install (see `docs/FORMAT.md`, "Manifest").
//!
//! It is written by the publisher, read by `custody push` (to pick the files
//! for the package tar, [`list_files`]) and, on the target, by the
//! installer from the root of the verified package: there it is parsed from
//! bytes that arrived over the network, so it lives here, with a fuzz
//! target, and refuses anything it does not understand: unknown fields, a
//! version other than [`MANIFEST_VERSION`], anything over its limits.
//!
//! Parsing ([`Manifest::from_bytes`]) and matching are pure; only
//! [`list_files`] reads a directory.

mod fields;
mod list;

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use globset::{GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};
use serde::Deserialize;

use fields::*;
pub use list::list_files;

/// The manifest's file name, at the root of the package tar.
pub const MANIFEST_NAME: &str = "custody.toml";
/// The manifest format version this reader knows.
pub const MANIFEST_VERSION: i64 = 1;
/// Largest manifest, in bytes.
pub const MAX_MANIFEST_LEN: usize = 64 * 1024;
/// Most `include` / `exclude` patterns, and most `[[files]]` rules.
pub const MAX_PATTERNS: usize = 1024;
/// Longest glob pattern, in bytes.
pub const MAX_PATTERN_LEN: usize = 1024;
/// Most variable names in `env`.
pub const MAX_ENV_NAMES: usize = 256;
/// Longest variable name, in bytes.
pub const MAX_ENV_NAME_LEN: usize = 256;
/// Most arguments of a hook command (the program included).
pub const MAX_HOOK_ARGS: usize = 64;
/// Longest hook argument, in bytes.
pub const MAX_HOOK_ARG_LEN: usize = 4096;
/// Longest hook time limit, in seconds (one day).
pub const MAX_HOOK_TIMEOUT_SECS: u64 = 86_400;
/// Longest destination path, in bytes.
pub const MAX_DESTINATION_LEN: usize = 1024;
/// Default mode of installed files.
pub const DEFAULT_FILE_MODE: u32 = 0o644;
/// Default mode of installed directories.
pub const DEFAULT_DIR_MODE: u32 = 0o755;
/// Mode of files marked `secret = true`.
pub const SECRET_FILE_MODE: u32 = 0o600;

/// Variable names a manifest may not ask for: the installer sets `PATH`,
/// `HOME`, `LANG` and `CUSTODY_*` itself, and the others change how the
/// dynamic loader or a shell behaves.
const RESERVED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "BASH_ENV",
    "ENV",
    "IFS",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
];
const RESERVED_ENV_PREFIXES: &[&str] = &["LD_", "CUSTODY_"];

/// Why a manifest was refused. Messages name the field; none carries a
/// variable's value (the manifest holds none).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The manifest is larger than [`MAX_MANIFEST_LEN`].
    #[error("manifest: {len} bytes is over the limit of {max}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The manifest is not UTF-8.
    #[error("manifest: not UTF-8")]
    NotUtf8,
    /// The manifest is not valid TOML.
    #[error("manifest: not valid TOML: {0}")]
    Syntax(String),
    /// `version` is missing or not an integer.
    #[error("manifest: `version` is missing or not an integer")]
    MissingVersion,
    /// `version` is one this reader does not know.
    #[error("manifest: unsupported version {0}")]
    UnsupportedVersion(i64),
    /// A field is unknown, missing or of the wrong type.
    #[error("manifest: {0}")]
    Schema(String),
    /// `destination` is not a plain absolute path.
    #[error("manifest: destination {destination:?}: {reason}")]
    Destination {
        /// The value given.
        destination: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A glob pattern is empty, absolute, climbs out with `..`, is too long
    /// or does not compile.
    #[error("manifest: {field} pattern {pattern:?}: {reason}")]
    Pattern {
        /// `include`, `exclude` or `files.pattern`.
        field: &'static str,
        /// The pattern.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A mode has set-id or sticky bits, is world-writable, is not octal,
    /// or (for directories) does not let the owner write.
    #[error("manifest: {field} {mode}: {reason}")]
    Mode {
        /// The field.
        field: &'static str,
        /// The value as given.
        mode: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A `[[files]]` rule has both `secret = true` and a `mode`.
    #[error(
        "manifest: files rule {pattern:?} has both secret = true and a mode (secret files are 0600)"
    )]
    SecretWithMode {
        /// The rule's pattern.
        pattern: String,
    },
    /// A hook is not usable as written.
    #[error("manifest: hooks.{hook}: {reason}")]
    Hook {
        /// `pre_install` or `post_install`.
        hook: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A name in `env` is not a valid or allowed variable name.
    #[error("manifest: env name {name:?}: {reason}")]
    EnvName {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A list is longer than its limit.
    #[error("manifest: more than {max} entries in {field}")]
    Limit {
        /// The field.
        field: &'static str,
        /// The limit.
        max: usize,
    },
    /// Listing the files to package failed ([`list_files`]).
    #[error("listing {path}: {source}")]
    List {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A path selected for packaging is not a regular file (a symlink, a
    /// FIFO, a device): the installer would refuse it.
    #[error("{path} is selected by the manifest but is not a regular file")]
    NotRegularFile {
        /// The path, relative to the packaged directory.
        path: String,
    },
    /// A path below the packaged directory is not UTF-8.
    #[error("{path} has a name that is not UTF-8")]
    NonUtf8Path {
        /// The path, lossily converted.
        path: String,
    },
}

/// A hook: the program and its arguments, run without a shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// `argv`, the program first (absolute, or a name looked up in the
    /// installer's fixed `PATH`).
    pub command: Vec<String>,
    /// The working directory, relative to the release directory (for
    /// `pre_install`: the unpacked new release; for `post_install`: the
    /// destination). Normalised; `.` when not given.
    pub working_dir: PathBuf,
    /// The time limit; `None`: the agent's configured default.
    pub timeout: Option<Duration>,
}

/// What the manifest says about one installed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilePolicy {
    /// Its permission bits.
    pub mode: u32,
    /// Marked `secret = true` by some rule (then `mode` is 0600).
    pub secret: bool,
}

/// One `[[files]]` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRule {
    /// The glob.
    pub pattern: String,
    /// The mode it sets, if any.
    pub mode: Option<u32>,
    /// Whether matching files are secret.
    pub secret: bool,
}

/// A parsed, validated `custody.toml`.
#[derive(Clone)]
pub struct Manifest {
    /// Where the release is installed: absolute, normalised (no `.`, `..`
    /// or empty components), never `/`.
    pub destination: PathBuf,
    /// Globs of the files to package.
    pub include: Vec<String>,
    /// Globs of files (or directories) to leave out.
    pub exclude: Vec<String>,
    /// Mode of files no rule gives one.
    pub file_mode: u32,
    /// Mode of directories.
    pub dir_mode: u32,
    /// Per-file rules, in order.
    pub files: Vec<FileRule>,
    /// Runs on the unpacked release before it is moved into place.
    pub pre_install: Option<Hook>,
    /// Runs in the destination after the move.
    pub post_install: Option<Hook>,
    /// The environment variables the hooks read.
    pub env: Vec<String>,
    include_set: GlobSet,
    exclude_set: GlobSet,
    rule_matchers: Vec<GlobMatcher>,
}

impl fmt::Debug for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manifest")
            .field("destination", &self.destination)
            .field("include", &self.include)
            .field("exclude", &self.exclude)
            .field("file_mode", &format_args!("{:04o}", self.file_mode))
            .field("dir_mode", &format_args!("{:04o}", self.dir_mode))
            .field("files", &self.files)
            .field("pre_install", &self.pre_install)
            .field("post_install", &self.post_install)
            .field("env", &self.env)
            .finish()
    }
}

impl Manifest {
    /// Parses and validates a manifest.
    pub fn from_bytes(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        if bytes.len() > MAX_MANIFEST_LEN {
            return Err(ManifestError::TooLarge {
                len: bytes.len(),
                max: MAX_MANIFEST_LEN,
            });
        }
        let text = std::str::from_utf8(bytes).map_err(|_| ManifestError::NotUtf8)?;
        let table: toml::Table = text
            .parse()
            .map_err(|e| ManifestError::Syntax(one_line(&e)))?;
        // The version first: a newer format may have fields this one refuses.
        match table.get("version").and_then(toml::Value::as_integer) {
            None => return Err(ManifestError::MissingVersion),
            Some(MANIFEST_VERSION) => {}
            Some(v) => return Err(ManifestError::UnsupportedVersion(v)),
        }
        let raw: Raw = toml::Value::Table(table)
            .try_into()
            .map_err(|e| ManifestError::Schema(one_line(&e)))?;
        Self::from_raw(raw)
    }

    fn from_raw(raw: Raw) -> Result<Manifest, ManifestError> {
        let destination = destination(&raw.destination)?;
        limit("include", raw.include.len())?;
        limit("exclude", raw.exclude.len())?;
        limit("files", raw.files.len())?;
        if raw.include.is_empty() {
            return Err(ManifestError::Schema(
                "`include` must list at least one pattern".into(),
            ));
        }
        let include_set = glob_set("include", &raw.include)?;
        let exclude_set = glob_set("exclude", &raw.exclude)?;
        let file_mode = match &raw.file_mode {
            Some(m) => mode("file_mode", m, false)?,
            None => DEFAULT_FILE_MODE,
        };
        let dir_mode = match &raw.dir_mode {
            Some(m) => mode("dir_mode", m, true)?,
            None => DEFAULT_DIR_MODE,
        };
        let mut files = Vec::with_capacity(raw.files.len());
        let mut rule_matchers = Vec::with_capacity(raw.files.len());
        for rule in raw.files {
            rule_matchers.push(glob("files.pattern", &rule.pattern)?.compile_matcher());
            let mode = rule
                .mode
                .as_ref()
                .map(|m| mode("files.mode", m, false))
                .transpose()?;
            if rule.secret && mode.is_some() {
                return Err(ManifestError::SecretWithMode {
                    pattern: rule.pattern,
                });
            }
            files.push(FileRule {
                pattern: rule.pattern,
                mode,
                secret: rule.secret,
            });
        }
        if raw.env.len() > MAX_ENV_NAMES {
            return Err(ManifestError::Limit {
                field: "env",
                max: MAX_ENV_NAMES,
            });
        }
        for (i, name) in raw.env.iter().enumerate() {
            env_name(name)?;
            if raw.env[..i].contains(name) {
                return Err(ManifestError::EnvName {
                    name: name.clone(),
                    reason: "listed twice",
                });
            }
        }
        Ok(Manifest {
            destination,
            include: raw.include,
            exclude: raw.exclude,
            file_mode,
            dir_mode,
            files,
            pre_install: raw
                .hooks
                .pre_install
                .map(|h| hook("pre_install", h))
                .transpose()?,
            post_install: raw
                .hooks
                .post_install
                .map(|h| hook("post_install", h))
                .transpose()?,
            env: raw.env,
            include_set,
            exclude_set,
            rule_matchers,
        })
    }

    /// Whether `path` (relative, `/`-separated, as in the tar) is one of
    /// the release's files: matched by `include`, and neither it nor a
    /// directory above it matched by `exclude`. The manifest itself at the
    /// root is never one of them (it is packaged separately, first).
    pub fn selects(&self, path: &str) -> bool {
        path != MANIFEST_NAME && self.include_set.is_match(path) && !self.excludes(path)
    }

    /// Whether `path` or a directory above it matches `exclude`.
    pub fn excludes(&self, path: &str) -> bool {
        if self.exclude_set.is_empty() {
            return false;
        }
        let ancestor_excluded = path
            .match_indices('/')
            .any(|(i, _)| self.exclude_set.is_match(&path[..i]));
        ancestor_excluded || self.exclude_set.is_match(path)
    }

    /// The mode and secrecy of file `path`: the mode of the last matching
    /// `[[files]]` rule that sets one (else `file_mode`); secret when any
    /// matching rule says so, and then 0600 whatever the mode rules say.
    pub fn file_policy(&self, path: &str) -> FilePolicy {
        let mut mode = self.file_mode;
        let mut secret = false;
        for (rule, matcher) in self.files.iter().zip(&self.rule_matchers) {
            if matcher.is_match(path) {
                if let Some(m) = rule.mode {
                    mode = m;
                }
                secret |= rule.secret;
            }
        }
        if secret {
            mode = SECRET_FILE_MODE;
        }
        FilePolicy { mode, secret }
    }
}

#[cfg(test)]
mod tests;
