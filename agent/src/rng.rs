//! A `rand_core` 0.6 RNG over the operating system's generator, for the
//! `rsa` crate (which still speaks rand_core 0.6).

use rand_core_06::{CryptoRng, Error, RngCore};

/// The kernel's CSPRNG (`getrandom(2)`), as a rand_core 0.6 RNG.
///
/// If the kernel cannot supply randomness the process aborts: continuing
/// with predictable key material is never an option.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRng;

impl RngCore for OsRng {
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

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Error> {
        getrandom::fill(dest).map_err(|_| Error::new("getrandom failed"))
    }
}

impl CryptoRng for OsRng {}

/// Fills `dest` from the kernel's CSPRNG (aborts if it cannot).
pub fn fill(dest: &mut [u8]) {
    OsRng.fill_bytes(dest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn produces_distinct_output() {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        fill(&mut a);
        fill(&mut b);
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 32]);
    }
}
