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

mod list;

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use globset::{GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};
use serde::Deserialize;

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

// ------------------------------------------------------------ wire form

/// A mode: an integer (`0o644` in TOML) or a string of octal digits
/// (`"0644"`).
#[derive(Deserialize)]
#[serde(untagged)]
enum RawMode {
    Int(i64),
    Str(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[allow(dead_code)] // checked before deserializing
    version: i64,
    destination: String,
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    file_mode: Option<RawMode>,
    dir_mode: Option<RawMode>,
    #[serde(default)]
    env: Vec<String>,
    #[serde(default)]
    files: Vec<RawFileRule>,
    #[serde(default)]
    hooks: RawHooks,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFileRule {
    pattern: String,
    mode: Option<RawMode>,
    #[serde(default)]
    secret: bool,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHooks {
    pre_install: Option<RawHook>,
    post_install: Option<RawHook>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHook {
    command: Vec<String>,
    working_dir: Option<String>,
    timeout_secs: Option<u64>,
}

fn one_line(e: &impl fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
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

fn limit(field: &'static str, len: usize) -> Result<(), ManifestError> {
    if len > MAX_PATTERNS {
        return Err(ManifestError::Limit {
            field,
            max: MAX_PATTERNS,
        });
    }
    Ok(())
}

fn destination(d: &str) -> Result<PathBuf, ManifestError> {
    let err = |reason| ManifestError::Destination {
        destination: d.to_owned(),
        reason,
    };
    if d.len() > MAX_DESTINATION_LEN {
        return Err(err("too long"));
    }
    if !d.starts_with('/') {
        return Err(err("must be an absolute path"));
    }
    if d.bytes().any(|b| b.is_ascii_control()) {
        return Err(err("contains control characters"));
    }
    let mut normal = PathBuf::from("/");
    for part in d.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(err("must not contain `..`")),
            p => normal.push(p),
        }
    }
    if normal == Path::new("/") {
        return Err(err("must not be `/`"));
    }
    Ok(normal)
}

/// A relative path without `..` (used for globs and working dirs):
/// `Some(reason)` when it is not one.
fn relative_problem(p: &str) -> Option<&'static str> {
    if p.is_empty() {
        return Some("is empty");
    }
    if p.starts_with('/') {
        return Some("must be relative");
    }
    if p.split('/').any(|c| c == "..") {
        return Some("must not contain `..`");
    }
    if p.bytes().any(|b| b.is_ascii_control()) {
        return Some("contains control characters");
    }
    None
}

fn glob(field: &'static str, pattern: &str) -> Result<globset::Glob, ManifestError> {
    let err = |reason: String| ManifestError::Pattern {
        field,
        pattern: pattern.to_owned(),
        reason,
    };
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(err("too long".into()));
    }
    if let Some(reason) = relative_problem(pattern) {
        return Err(err(reason.into()));
    }
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| err(e.kind().to_string()))
}

fn glob_set(field: &'static str, patterns: &[String]) -> Result<GlobSet, ManifestError> {
    let mut builder = GlobSetBuilder::new();
    for p in patterns {
        builder.add(glob(field, p)?);
    }
    builder.build().map_err(|e| ManifestError::Pattern {
        field,
        pattern: String::new(),
        reason: e.kind().to_string(),
    })
}

fn mode(field: &'static str, raw: &RawMode, dir: bool) -> Result<u32, ManifestError> {
    let shown = match raw {
        RawMode::Int(i) => format!("0o{i:o}"),
        RawMode::Str(s) => format!("{s:?}"),
    };
    let err = |reason| ManifestError::Mode {
        field,
        mode: shown.clone(),
        reason,
    };
    let value = match raw {
        RawMode::Int(i) => u32::try_from(*i).map_err(|_| err("out of range"))?,
        RawMode::Str(s) => {
            if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                return Err(err("must be 3 or 4 octal digits"));
            }
            u32::from_str_radix(s, 8).map_err(|_| err("must be 3 or 4 octal digits"))?
        }
    };
    if value > 0o7777 {
        return Err(err("out of range"));
    }
    if value & 0o7000 != 0 {
        return Err(err(
            "set-user-id, set-group-id and sticky bits are not allowed",
        ));
    }
    if value & 0o002 != 0 {
        return Err(err("world-writable modes are not allowed"));
    }
    if dir && value & 0o700 != 0o700 {
        return Err(err("directories must be rwx for their owner"));
    }
    Ok(value)
}

fn hook(name: &'static str, raw: RawHook) -> Result<Hook, ManifestError> {
    let err = |reason| ManifestError::Hook { hook: name, reason };
    if raw.command.is_empty() {
        return Err(err("command is empty"));
    }
    if raw.command.len() > MAX_HOOK_ARGS {
        return Err(err("command has too many arguments"));
    }
    if raw
        .command
        .iter()
        .any(|a| a.len() > MAX_HOOK_ARG_LEN || a.contains('\0'))
    {
        return Err(err("a command argument is too long or contains NUL"));
    }
    let program = &raw.command[0];
    let program_ok = !program.is_empty()
        && (program.starts_with('/') || !program.contains('/'))
        && !program.split('/').any(|c| c == "..");
    if !program_ok {
        return Err(err(
            "the program must be an absolute path or a bare name (run scripts in the release \
             through an interpreter: [\"/bin/sh\", \"hooks/x.sh\"])",
        ));
    }
    let working_dir = match raw.working_dir.as_deref() {
        None => PathBuf::from("."),
        Some(w) => {
            if let Some(reason) = relative_problem(w) {
                return Err(ManifestError::Hook {
                    hook: name,
                    reason: match reason {
                        "must be relative" => "working_dir must be relative to the release",
                        "must not contain `..`" => "working_dir must not contain `..`",
                        "is empty" => "working_dir is empty",
                        _ => "working_dir contains control characters",
                    },
                });
            }
            let p: PathBuf = Path::new(w)
                .components()
                .filter(|c| matches!(c, Component::Normal(_)))
                .collect();
            if p.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                p
            }
        }
    };
    let timeout = match raw.timeout_secs {
        None => None,
        Some(0) => return Err(err("timeout_secs must be at least 1")),
        Some(s) if s > MAX_HOOK_TIMEOUT_SECS => {
            return Err(err("timeout_secs is over the limit of 86400"));
        }
        Some(s) => Some(Duration::from_secs(s)),
    };
    Ok(Hook {
        command: raw.command,
        working_dir,
        timeout,
    })
}

fn env_name(name: &str) -> Result<(), ManifestError> {
    let err = |reason| ManifestError::EnvName {
        name: name.to_owned(),
        reason,
    };
    let b = name.as_bytes();
    let valid = !b.is_empty()
        && b.len() <= MAX_ENV_NAME_LEN
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_');
    if !valid {
        return Err(err("must match [A-Za-z_][A-Za-z0-9_]*"));
    }
    if RESERVED_ENV.contains(&name) || RESERVED_ENV_PREFIXES.iter().any(|p| name.starts_with(p)) {
        return Err(err(
            "is reserved (set by the installer, or changes how programs load)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
