//! Memory for key material: `MK`, `RK`, `DK` while a job holds them.
//!
//! `mlockall` fails once the agent has dropped its privileges, and would lock
//! far more than the keys anyway. Instead each secret gets its own pages:
//! locked (`mlock`: never written to swap), excluded from core dumps
//! (`MADV_DONTDUMP`), zero-filled in a forked child (`MADV_WIPEONFORK`), and
//! overwritten with zeros before they are unmapped.
//!
//! An unprivileged process may lock `RLIMIT_MEMLOCK` bytes (8 MiB by default
//! on current kernels; the unit sets `LimitMEMLOCK=`): one page per secret is
//! far below that.

use std::fmt;

use zeroize::Zeroize;

pub use super::sys::LockedMemoryError;
use super::sys::LockedPages;

/// A secret byte string in locked, non-dumpable memory, zeroized on drop.
/// Its `Debug` shows the length only.
pub struct SecretBuffer {
    pages: LockedPages,
    len: usize,
}

impl SecretBuffer {
    /// A zero-filled secret of `len` bytes.
    pub fn new(len: usize) -> Result<Self, LockedMemoryError> {
        Ok(SecretBuffer {
            pages: LockedPages::new(len)?,
            len,
        })
    }

    /// A copy of `bytes` in locked memory. The caller still owns (and should
    /// zeroize) the original.
    pub fn copy_from(bytes: &[u8]) -> Result<Self, LockedMemoryError> {
        let mut secret = SecretBuffer::new(bytes.len())?;
        secret.expose_mut().copy_from_slice(bytes);
        Ok(secret)
    }

    /// The secret's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The secret bytes.
    pub fn expose(&self) -> &[u8] {
        self.pages.as_slice().get(..self.len).unwrap_or_default()
    }

    /// The secret bytes, writable (to fill them in place, e.g. from an
    /// unwrap or a random generator).
    pub fn expose_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        self.pages.as_mut_slice().get_mut(..len).unwrap_or_default()
    }

    /// The address of the locked pages, for diagnostics and tests that find
    /// the mapping in `/proc/PID/smaps`. Not secret.
    pub fn address(&self) -> usize {
        self.pages.address()
    }
}

impl Drop for SecretBuffer {
    fn drop(&mut self) {
        self.pages.as_mut_slice().zeroize();
    }
}

impl fmt::Debug for SecretBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretBuffer")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_the_bytes_and_hides_them_from_debug() {
        let key = [0x5au8; 32];
        let secret = SecretBuffer::copy_from(&key).unwrap();
        assert_eq!(secret.expose(), &key);
        assert_eq!(secret.len(), 32);
        let shown = format!("{secret:?}");
        assert!(shown.contains("len: 32"));
        assert!(
            !shown.contains("90"),
            "no byte value may be printed: {shown}"
        );
    }

    #[test]
    fn mapping_is_page_aligned_and_zero_filled() {
        let mut secret = SecretBuffer::new(5000).unwrap();
        assert_eq!(secret.address() % 4096, 0);
        assert!(secret.expose().iter().all(|&b| b == 0));
        secret.expose_mut()[4999] = 7;
        assert_eq!(secret.expose()[4999], 7);
        let empty = SecretBuffer::new(0).unwrap();
        assert!(empty.is_empty());
        assert_eq!(empty.expose(), &[] as &[u8]);
    }
}
