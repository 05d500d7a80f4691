//! The RSA-OAEP hash choices Custody supports for `wrap`.
//!
//! RSA-OAEP-256 (SHA-256, MGF1-SHA-256) is the default. RSA-OAEP (SHA-1,
//! MGF1-SHA-1) exists only for hardware that offers nothing better, such as
//! SoftHSM2 2.6; see `docs/FORMAT.md`.

use serde::{Deserialize, Serialize};

/// Hash used for both the OAEP label digest and MGF1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OaepHash {
    /// SHA-256 with MGF1-SHA-256: JWE `alg` `RSA-OAEP-256`.
    Sha256,
    /// SHA-1 with MGF1-SHA-1: JWE `alg` `RSA-OAEP`. Only for hardware without SHA-256 OAEP.
    Sha1,
}

impl OaepHash {
    /// Preference order: strongest first.
    pub const PREFERENCE: [OaepHash; 2] = [OaepHash::Sha256, OaepHash::Sha1];

    /// The JWE `alg` value (RFC 7518 §4.3).
    pub fn jwe_alg(self) -> &'static str {
        match self {
            OaepHash::Sha256 => "RSA-OAEP-256",
            OaepHash::Sha1 => "RSA-OAEP",
        }
    }

    /// Parses a JWE `alg` value.
    pub fn from_jwe_alg(alg: &str) -> Option<Self> {
        match alg {
            "RSA-OAEP-256" => Some(OaepHash::Sha256),
            "RSA-OAEP" => Some(OaepHash::Sha1),
            _ => None,
        }
    }

    /// The strongest hash both sides support, if any.
    pub fn best_common(supported: &[OaepHash]) -> Option<Self> {
        Self::PREFERENCE.into_iter().find(|h| supported.contains(h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alg_names_round_trip() {
        for h in OaepHash::PREFERENCE {
            assert_eq!(OaepHash::from_jwe_alg(h.jwe_alg()), Some(h));
        }
        assert_eq!(OaepHash::from_jwe_alg("RSA1_5"), None);
    }

    #[test]
    fn prefers_sha256() {
        assert_eq!(
            OaepHash::best_common(&[OaepHash::Sha1, OaepHash::Sha256]),
            Some(OaepHash::Sha256)
        );
        assert_eq!(
            OaepHash::best_common(&[OaepHash::Sha1]),
            Some(OaepHash::Sha1)
        );
        assert_eq!(OaepHash::best_common(&[]), None);
    }
}
