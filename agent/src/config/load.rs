//! Reading the main file and its drop-ins, merging them, and turning the
//! result into an [`AgentConfig`].

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::{AgentConfig, ConfigError};

/// The vendor location of the agent's configuration.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/custody/agent.toml";

const SECTIONS: [&str; 7] = [
    "keystore",
    "coordinator",
    "state",
    "target",
    "sandbox",
    "jobs",
    "log",
];
const KINDS: [&str; 3] = ["pkcs11", "tpm", "soft"];

/// Loads `path` (or [`DEFAULT_CONFIG_PATH`]), merges `<path>.d/*.toml` over
/// it in name order, and validates the result.
pub fn load(path: Option<&Path>) -> Result<AgentConfig, ConfigError> {
    let path = path.unwrap_or_else(|| Path::new(DEFAULT_CONFIG_PATH));
    let mut merged = read_table(path)?;
    for drop_in in drop_ins(path)? {
        let over = read_table(&drop_in)?;
        merge(&mut merged, over);
    }
    from_table(merged)
}

/// Parses and validates one configuration document (no drop-ins).
pub fn load_str(text: &str) -> Result<AgentConfig, ConfigError> {
    let table = parse(text, Path::new("<string>"))?;
    from_table(table)
}

fn read_table(path: &Path) -> Result<Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path)
}

fn parse(text: &str, path: &Path) -> Result<Table, ConfigError> {
    text.parse::<Table>().map_err(|e| ConfigError::Syntax {
        path: path.to_owned(),
        source: Box::new(e),
    })
}

/// `<path>.d/*.toml`, sorted by file name. A missing directory is no error.
fn drop_ins(path: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let mut dir = path.as_os_str().to_owned();
    dir.push(".d");
    let dir = PathBuf::from(dir);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(ConfigError::ReadDropIns { path: dir, source }),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ConfigError::ReadDropIns {
            path: dir.clone(),
            source,
        })?;
        let p = entry.path();
        if p.extension().is_some_and(|e| e == "toml") && p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// Deep-merges `over` into `base`: tables merge key by key, anything else is
/// replaced. A `[keystore]` with a different `kind` replaces the whole table
/// (fields of one backend mean nothing to another).
fn merge(base: &mut Table, over: Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(b)), Value::Table(o)) => {
                if key == "keystore" && o.contains_key("kind") && o.get("kind") != b.get("kind") {
                    *b = o;
                } else {
                    merge(b, o);
                }
            }
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

fn from_table(table: Table) -> Result<AgentConfig, ConfigError> {
    if let Some(section) = table.keys().find(|k| !SECTIONS.contains(&k.as_str())) {
        return Err(ConfigError::UnknownSection {
            section: section.clone(),
        });
    }
    let Some(keystore) = table.get("keystore") else {
        return Err(ConfigError::MissingSection {
            section: "keystore",
        });
    };
    let kind = keystore.get("kind").and_then(Value::as_str).unwrap_or("");
    if !KINDS.contains(&kind) {
        return Err(ConfigError::UnknownKeyStoreKind {
            kind: kind.to_owned(),
        });
    }
    let config: AgentConfig = Value::Table(table)
        .try_into()
        .map_err(|e| ConfigError::Schema {
            source: Box::new(e),
        })?;
    super::validate::validate(&config)?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_replaces_keystore_of_another_kind() {
        let mut base: Table =
            "[keystore]\nkind = \"soft\"\nkey_file = \"/a\"\n[log]\nlevel = \"info\""
                .parse()
                .unwrap();
        let over: Table =
            "[keystore]\nkind = \"tpm\"\ntcti = \"device:/dev/tpmrm0\"\n[log]\nlevel = \"debug\""
                .parse()
                .unwrap();
        merge(&mut base, over);
        let ks = base["keystore"].as_table().unwrap();
        assert!(!ks.contains_key("key_file"));
        assert_eq!(ks["tcti"].as_str(), Some("device:/dev/tpmrm0"));
        assert_eq!(base["log"]["level"].as_str(), Some("debug"));
    }

    #[test]
    fn merge_same_kind_merges_fields() {
        let mut base: Table = "[keystore]\nkind = \"soft\"\nkey_file = \"/a\""
            .parse()
            .unwrap();
        let over: Table = "[keystore]\nkey_bits = 2048".parse().unwrap();
        merge(&mut base, over);
        let ks = base["keystore"].as_table().unwrap();
        assert_eq!(ks["key_file"].as_str(), Some("/a"));
        assert_eq!(ks["key_bits"].as_integer(), Some(2048));
    }
}
