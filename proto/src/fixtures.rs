//! Loading the JSON fixtures under `docs/fixtures/` in tests.
//!
//! Both the coordinator's and the agent's tests load the same files, so the
//! protocol cannot drift on one side only.

use std::path::PathBuf;

/// Why a fixture could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FixtureError {
    /// The file could not be read.
    #[error("reading fixture {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid JSON for the requested type.
    #[error("parsing fixture {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
}

/// The `docs/fixtures/` directory of this source tree.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/fixtures")
}

/// The path of one fixture, e.g. `jobs/deploy.json`.
pub fn path(name: &str) -> PathBuf {
    dir().join(name)
}

/// The raw JSON of a fixture.
pub fn load_value(name: &str) -> Result<serde_json::Value, FixtureError> {
    let path = path(name);
    let text = std::fs::read_to_string(&path).map_err(|source| FixtureError::Read {
        path: path.clone(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| FixtureError::Parse { path, source })
}

/// A fixture parsed as `T`.
pub fn load<T: serde::de::DeserializeOwned>(name: &str) -> Result<T, FixtureError> {
    let path = path(name);
    let v = load_value(name)?;
    serde_json::from_value(v).map_err(|source| FixtureError::Parse { path, source })
}

/// Every fixture file below `sub` (e.g. `jobs`), sorted by name.
pub fn list(sub: &str) -> Result<Vec<String>, FixtureError> {
    let d = dir().join(sub);
    let rd = std::fs::read_dir(&d).map_err(|source| FixtureError::Read {
        path: d.clone(),
        source,
    })?;
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|source| FixtureError::Read {
            path: d.clone(),
            source,
        })?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") {
            out.push(format!("{sub}/{name}"));
        }
    }
    out.sort();
    Ok(out)
}

/// Asserts-free helper for round-trip tests: parse as `T`, serialise back,
/// and return both JSON values for comparison.
pub fn round_trip<T>(name: &str) -> Result<(serde_json::Value, serde_json::Value), FixtureError>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let original = load_value(name)?;
    let typed: T = load(name)?;
    let back = serde_json::to_value(&typed).map_err(|source| FixtureError::Parse {
        path: path(name),
        source,
    })?;
    Ok((original, back))
}
