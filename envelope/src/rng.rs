//! Randomness from the operating system (`getrandom` 0.4), and an adapter
//! that offers it to `rsa` 0.9, which speaks the older `rand_core` 0.6.

use crate::EnvelopeError;

/// Fills `dest` from the OS CSPRNG.
pub fn fill(dest: &mut [u8]) -> Result<(), EnvelopeError> {
    getrandom::fill(dest).map_err(|_| EnvelopeError::Random)
}

/// The OS CSPRNG as a `rand_core` 0.6 `CryptoRng`, for `rsa` 0.9
/// (OAEP seeds here; key generation in the soft keystore and in tests).
///
/// `RngCore::fill_bytes` cannot report an error: if the OS generator fails
/// there (it does not on Linux once booted), the process aborts rather than
/// continue with predictable bytes. Use `try_fill_bytes` to get the error.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRng;

impl rand_core_06::RngCore for OsRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        if getrandom::fill(dest).is_err() {
            std::process::abort();
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core_06::Error> {
        getrandom::fill(dest).map_err(|e| {
            let code = e.raw_os_error().and_then(|c| u32::try_from(c).ok());
            match code.and_then(core::num::NonZeroU32::new) {
                Some(c) => rand_core_06::Error::from(c),
                None => rand_core_06::Error::from(
                    core::num::NonZeroU32::MIN.saturating_add(rand_core_06::Error::CUSTOM_START),
                ),
            }
        })
    }
}

impl rand_core_06::CryptoRng for OsRng {}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core_06::RngCore;

    #[test]
    fn fills_and_differs() {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        OsRng.fill_bytes(&mut a);
        OsRng.try_fill_bytes(&mut b).unwrap();
        assert_ne!(a, b);
        assert_ne!(OsRng.next_u64(), OsRng.next_u64());
    }
}
