//! Reading a PKCS#11 PIN from a file or a systemd credential.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use super::KeyStoreError;
use super::config::PinSource;

/// Where a [`PinSource`] points: the file itself, or the credential's file.
pub fn pin_path(source: &PinSource) -> Result<PathBuf, KeyStoreError> {
    match source {
        PinSource::File(p) => Ok(p.clone()),
        PinSource::Credential(name) => match std::env::var_os("CREDENTIALS_DIRECTORY") {
            Some(dir) => Ok(Path::new(&dir).join(name)),
            None => Err(KeyStoreError::NoCredentialsDirectory { name: name.clone() }),
        },
    }
}

/// Reads the PIN. The file must not be readable by group or others; one
/// trailing newline is dropped. The bytes are zeroized after use.
pub fn read_pin(source: &PinSource) -> Result<AuthPin, KeyStoreError> {
    let path = pin_path(source)?;
    let io = |source| KeyStoreError::ReadPin {
        path: path.clone(),
        source,
    };
    let mut file = std::fs::File::open(&path).map_err(io)?;
    let mode = file.metadata().map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyStoreError::PinFileMode { path, mode });
    }
    let mut text = Zeroizing::new(String::new());
    file.read_to_string(&mut text).map_err(io)?;
    let pin = text.strip_suffix('\n').unwrap_or(&text);
    let pin = pin.strip_suffix('\r').unwrap_or(pin);
    if pin.is_empty() {
        return Err(KeyStoreError::EmptyPin { path });
    }
    Ok(AuthPin::from(pin.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::io::Write;

    fn write(dir: &Path, mode: u32, body: &str) -> PathBuf {
        let p = dir.join("pin");
        let mut f = std::fs::File::create(&p).unwrap();
        f.write_all(body.as_bytes()).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn reads_pin_and_strips_newline() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), 0o600, "1234\n");
        let pin = read_pin(&PinSource::File(p)).unwrap();
        assert_eq!(pin.expose_secret(), "1234");
    }

    #[test]
    fn refuses_group_readable_file() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), 0o640, "1234");
        assert!(matches!(
            read_pin(&PinSource::File(p)),
            Err(KeyStoreError::PinFileMode { mode: 0o640, .. })
        ));
    }

    #[test]
    fn refuses_empty_and_missing() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), 0o600, "\n");
        assert!(matches!(
            read_pin(&PinSource::File(p)),
            Err(KeyStoreError::EmptyPin { .. })
        ));
        assert!(matches!(
            read_pin(&PinSource::File(d.path().join("nope"))),
            Err(KeyStoreError::ReadPin { .. })
        ));
    }
}
