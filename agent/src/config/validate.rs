//! Checks a parsed [`AgentConfig`] once, at start, beyond what its types say.

use std::path::Path;

use super::{
    AgentConfig, ConfigError, CoordinatorConfig, JobsConfig, MAX_PARALLELISM, SandboxConfig,
};
use crate::keystore::config::{KeyStoreConfig, PinSource};

/// Most PKCS#11 sessions a pool may hold.
pub const MAX_SESSIONS: usize = 64;

pub(super) fn validate(c: &AgentConfig) -> Result<(), ConfigError> {
    keystore(&c.keystore)?;
    if let Some(coord) = &c.coordinator {
        coordinator(coord)?;
    }
    absolute("state.dir", &c.state.dir)?;
    for root in &c.target.install_roots {
        absolute("target.install_roots", root)?;
        install_root(root)?;
    }
    target_limits(&c.target)?;
    for (index, key) in c.target.publisher_keys.iter().enumerate() {
        if parse_publisher_key(key).is_none() {
            return Err(ConfigError::PublisherKey { index });
        }
    }
    sandbox(&c.sandbox)?;
    jobs(&c.jobs)?;
    if !["error", "warn", "info", "debug", "trace"].contains(&c.log.level.as_str()) {
        return Err(ConfigError::LogLevel {
            level: c.log.level.clone(),
        });
    }
    Ok(())
}

/// A publisher key as written in `[target] publisher_keys`: 64 hex digits
/// of an Ed25519 public key.
pub fn parse_publisher_key(text: &str) -> Option<custody_envelope::descriptor::PublisherKey> {
    let mut raw = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut raw).ok()?;
    custody_envelope::descriptor::PublisherKey::from_bytes(&raw).ok()
}

fn sandbox(s: &SandboxConfig) -> Result<(), ConfigError> {
    for (field, name) in [("user", &s.user), ("group", &s.group)] {
        match name.as_deref() {
            Some("") => {
                return Err(ConfigError::Sandbox {
                    field,
                    reason: "must not be empty",
                });
            }
            Some("root") => {
                return Err(ConfigError::Sandbox {
                    field,
                    reason: "the agent does not run as root",
                });
            }
            _ => {}
        }
    }
    if let Some(abi) = s.landlock_min_abi
        && !(1..=64).contains(&abi)
    {
        return Err(ConfigError::Sandbox {
            field: "landlock_min_abi",
            reason: "must be a Landlock ABI version, 1 or more",
        });
    }
    for p in &s.read {
        absolute("sandbox.read", p)?;
    }
    for p in &s.read_write {
        absolute("sandbox.read_write", p)?;
    }
    Ok(())
}

fn jobs(j: &JobsConfig) -> Result<(), ConfigError> {
    if let Some(p) = j.parallelism
        && (p == 0 || p > MAX_PARALLELISM)
    {
        return Err(ConfigError::Jobs {
            field: "parallelism",
            value: p as u64,
            max: MAX_PARALLELISM as u64,
        });
    }
    if let Some(w) = j.poll_wait_seconds
        && (w == 0 || w > 300)
    {
        return Err(ConfigError::Jobs {
            field: "poll_wait_seconds",
            value: w,
            max: 300,
        });
    }
    Ok(())
}

fn keystore(k: &KeyStoreConfig) -> Result<(), ConfigError> {
    match k {
        KeyStoreConfig::Pkcs11(p) => {
            absolute("keystore.module", &p.module)?;
            label("keystore.token_label", &p.token_label)?;
            label("keystore.key_label", &p.key_label)?;
            key_bits("keystore.key_bits", p.key_bits)?;
            if p.sessions == 0 || p.sessions > MAX_SESSIONS {
                return Err(ConfigError::Sessions {
                    sessions: p.sessions,
                    max: MAX_SESSIONS,
                });
            }
            pin(&p.pin)
        }
        KeyStoreConfig::Tpm(t) => {
            let known = ["device:", "swtpm:", "mssim:", "tabrmd"];
            if !known.iter().any(|k| t.tcti.starts_with(k)) {
                return Err(ConfigError::Tcti {
                    tcti: t.tcti.clone(),
                });
            }
            if let Some(bits) = t.key_bits {
                key_bits("keystore.key_bits", bits)?;
            }
            let name_ok = !t.key_name.is_empty()
                && t.key_name.len() <= 64
                && t.key_name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !name_ok {
                return Err(ConfigError::KeyName {
                    name: t.key_name.clone(),
                });
            }
            Ok(())
        }
        KeyStoreConfig::Soft(s) => {
            if let Some(f) = &s.key_file {
                absolute("keystore.key_file", f)?;
            }
            key_bits("keystore.key_bits", s.key_bits)
        }
    }
}

fn pin(p: &PinSource) -> Result<(), ConfigError> {
    match p {
        PinSource::File(path) => absolute("keystore.pin.file", path),
        PinSource::Credential(name) => {
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                Err(ConfigError::CredentialName { name: name.clone() })
            } else {
                Ok(())
            }
        }
    }
}

/// Checks a `[coordinator]` section (also used for `enroll`'s arguments).
pub fn coordinator(c: &CoordinatorConfig) -> Result<(), ConfigError> {
    let host = c.url.strip_prefix("https://").map(|rest| {
        let end = rest.find('/').unwrap_or(rest.len());
        &rest[..end]
    });
    let host_ok = host.is_some_and(|h| {
        !h.is_empty()
            && !h.starts_with(':')
            && !h.contains('@')
            && h.bytes().all(|b| b.is_ascii_graphic())
    });
    if !host_ok {
        return Err(ConfigError::CoordinatorUrl { url: c.url.clone() });
    }
    let hex: String = c.ca_fingerprint.chars().filter(|&ch| ch != ':').collect();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ConfigError::CaFingerprint);
    }
    Ok(())
}

fn absolute(field: &str, path: &Path) -> Result<(), ConfigError> {
    if path.is_absolute() {
        Ok(())
    } else {
        Err(ConfigError::RelativePath {
            field: field.to_owned(),
            path: path.to_owned(),
        })
    }
}

fn label(field: &'static str, l: &str) -> Result<(), ConfigError> {
    if l.is_empty() || l.len() > 32 {
        Err(ConfigError::Label {
            field,
            len: l.len(),
        })
    } else {
        Ok(())
    }
}

fn key_bits(field: &'static str, bits: u32) -> Result<(), ConfigError> {
    if bits == 2048 || bits == 3072 {
        Ok(())
    } else {
        Err(ConfigError::KeyBits { field, bits })
    }
}

/// An install root must be a plain absolute directory other than `/`.
fn install_root(root: &Path) -> Result<(), ConfigError> {
    use std::path::Component;
    let err = |reason| ConfigError::InstallRoot {
        path: root.to_owned(),
        reason,
    };
    if root
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(err("must not contain `.` or `..`"));
    }
    if !root.components().any(|c| matches!(c, Component::Normal(_))) {
        return Err(err("must not be `/`"));
    }
    Ok(())
}

fn target_limits(t: &super::TargetConfig) -> Result<(), ConfigError> {
    let err = |field, reason| Err(ConfigError::TargetLimit { field, reason });
    if t.max_total_bytes == 0 {
        return err("max_total_bytes", "must be at least 1");
    }
    if t.max_files == 0 {
        return err("max_files", "must be at least 1");
    }
    if t.max_file_bytes == 0 {
        return err("max_file_bytes", "must be at least 1");
    }
    if t.max_file_bytes > t.max_total_bytes {
        return err("max_file_bytes", "must not exceed max_total_bytes");
    }
    if t.hook_timeout_secs == 0 || t.hook_timeout_secs > super::MAX_HOOK_TIMEOUT_SECS {
        return err("hook_timeout_secs", "must be between 1 and 86400");
    }
    Ok(())
}
