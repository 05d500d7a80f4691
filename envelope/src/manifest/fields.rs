//! The manifest's wire form (what TOML deserialises into) and the checks
//! that turn each raw field into its validated value.

use super::*;

/// A mode: an integer (`0o644` in TOML) or a string of octal digits
/// (`"0644"`).
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawMode {
    Int(i64),
    Str(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    #[allow(dead_code)] // checked before deserializing
    pub(super) version: i64,
    pub(super) destination: String,
    pub(super) include: Vec<String>,
    #[serde(default)]
    pub(super) exclude: Vec<String>,
    pub(super) file_mode: Option<RawMode>,
    pub(super) dir_mode: Option<RawMode>,
    #[serde(default)]
    pub(super) env: Vec<String>,
    #[serde(default)]
    pub(super) files: Vec<RawFileRule>,
    #[serde(default)]
    pub(super) hooks: RawHooks,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFileRule {
    pub(super) pattern: String,
    pub(super) mode: Option<RawMode>,
    #[serde(default)]
    pub(super) secret: bool,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHooks {
    pub(super) pre_install: Option<RawHook>,
    pub(super) post_install: Option<RawHook>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHook {
    pub(super) command: Vec<String>,
    pub(super) working_dir: Option<String>,
    pub(super) timeout_secs: Option<u64>,
}

pub(super) fn one_line(e: &impl fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) fn limit(field: &'static str, len: usize) -> Result<(), ManifestError> {
    if len > MAX_PATTERNS {
        return Err(ManifestError::Limit {
            field,
            max: MAX_PATTERNS,
        });
    }
    Ok(())
}

pub(super) fn destination(d: &str) -> Result<PathBuf, ManifestError> {
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
pub(super) fn relative_problem(p: &str) -> Option<&'static str> {
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

pub(super) fn glob(field: &'static str, pattern: &str) -> Result<globset::Glob, ManifestError> {
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

pub(super) fn glob_set(field: &'static str, patterns: &[String]) -> Result<GlobSet, ManifestError> {
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

pub(super) fn mode(field: &'static str, raw: &RawMode, dir: bool) -> Result<u32, ManifestError> {
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

pub(super) fn hook(name: &'static str, raw: RawHook) -> Result<Hook, ManifestError> {
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

pub(super) fn env_name(name: &str) -> Result<(), ManifestError> {
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
