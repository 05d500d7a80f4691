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
//!
//! Mapping, advising, locking and unmapping cost about 24 µs per secret
//! here (the unmap interrupts every CPU that ran one of the agent's
//! threads), several per job. So the page of a small secret (up to
//! [`POOLED_LEN`]) is zeroed on drop and kept, still locked and advised,
//! for the next one: at most [`SPARE_MAX`] pages, the most secrets the
//! agent's jobs hold at once in practice.

use std::fmt;
use std::sync::{Mutex, PoisonError};

use zeroize::Zeroize;

pub use super::sys::LockedMemoryError;
use super::sys::LockedPages;

/// Secrets up to this length share one pooled mapping size.
pub const POOLED_LEN: usize = 4096;
/// Zeroed pages kept for reuse, at most.
pub const SPARE_MAX: usize = 64;

/// Zeroed, locked, advised pages of dropped small secrets.
static SPARE: Mutex<Vec<LockedPages>> = Mutex::new(Vec::new());

fn spare() -> std::sync::MutexGuard<'static, Vec<LockedPages>> {
    // The Vec stays consistent whatever panicked while it was held.
    SPARE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A secret byte string in locked, non-dumpable memory, zeroized on drop.
/// Its `Debug` shows the length only.
pub struct SecretBuffer {
    /// `None` only while being dropped.
    pages: Option<LockedPages>,
    len: usize,
}

impl SecretBuffer {
    /// A zero-filled secret of `len` bytes.
    pub fn new(len: usize) -> Result<Self, LockedMemoryError> {
        let pages = if len <= POOLED_LEN {
            match spare().pop() {
                Some(p) => p,
                None => LockedPages::new(POOLED_LEN)?,
            }
        } else {
            LockedPages::new(len)?
        };
        Ok(SecretBuffer {
            pages: Some(pages),
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
        self.pages
            .as_ref()
            .and_then(|p| p.as_slice().get(..self.len))
            .unwrap_or_default()
    }

    /// The secret bytes, writable (to fill them in place, e.g. from an
    /// unwrap or a random generator).
    pub fn expose_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        self.pages
            .as_mut()
            .and_then(|p| p.as_mut_slice().get_mut(..len))
            .unwrap_or_default()
    }

    /// The address of the locked pages, for diagnostics and tests that find
    /// the mapping in `/proc/PID/smaps`. Not secret.
    pub fn address(&self) -> usize {
        self.pages.as_ref().map_or(0, LockedPages::address)
    }
}

impl Drop for SecretBuffer {
    fn drop(&mut self) {
        let Some(mut pages) = self.pages.take() else {
            return;
        };
        // The whole mapping: a pooled page is reused for any length.
        pages.as_mut_slice().zeroize();
        if pages.as_slice().len() == POOLED_LEN {
            let mut spare = spare();
            if spare.len() < SPARE_MAX {
                spare.push(pages);
            }
        }
        // Otherwise `pages` is unmapped here.
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

    #[test]
    fn a_reused_page_comes_back_zeroed_and_large_secrets_are_not_pooled() {
        // Other tests use the pool at the same time: fill and drop a few
        // secrets, then check every page the pool hands out again.
        let held: Vec<SecretBuffer> = (0..8)
            .map(|i| {
                let mut s = SecretBuffer::new(POOLED_LEN).unwrap();
                s.expose_mut().fill(0xa0 | i);
                s
            })
            .collect();
        let addresses: Vec<usize> = held.iter().map(SecretBuffer::address).collect();
        drop(held);
        let again: Vec<SecretBuffer> = (0..8).map(|_| SecretBuffer::new(32).unwrap()).collect();
        let mut reused = 0;
        for s in &again {
            if addresses.contains(&s.address()) {
                reused += 1;
            }
            // The whole page, past the 32 bytes asked for, is zero.
            let page = s.pages.as_ref().unwrap().as_slice();
            assert_eq!(page.len(), POOLED_LEN);
            assert!(page.iter().all(|&b| b == 0));
        }
        assert!(reused > 0, "no page was reused");

        let big = SecretBuffer::new(POOLED_LEN + 1).unwrap();
        drop(big);
        assert!(spare().iter().all(|p| p.as_slice().len() == POOLED_LEN));
    }
}
