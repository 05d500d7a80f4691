//! A reusable batch buffer that may hold plaintext: on drop it zeroizes
//! the bytes that were ever used (not the whole allocation), so small
//! inputs do not pay for wiping megabytes.

use zeroize::Zeroize;

pub(crate) struct SecretBuf {
    buf: Vec<u8>,
    dirty: usize,
}

impl SecretBuf {
    pub(crate) fn new(len: usize) -> Self {
        SecretBuf {
            buf: vec![0u8; len],
            dirty: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// Lets `f` write into the buffer; it returns how many bytes it filled.
    /// If it fails, the whole buffer counts as used (it may hold anything).
    pub(crate) fn fill<E>(
        &mut self,
        f: impl FnOnce(&mut [u8]) -> Result<usize, E>,
    ) -> Result<usize, E> {
        let r = f(&mut self.buf);
        self.dirty = match &r {
            Ok(n) => self.dirty.max(*n),
            Err(_) => self.buf.len(),
        };
        r
    }

    /// Like [`SecretBuf::fill`] for writers that leave nothing behind when
    /// they fail (`BodyKey::open_run` zeroes what it wrote).
    pub(crate) fn fill_verified<E>(
        &mut self,
        f: impl FnOnce(&mut [u8]) -> Result<usize, E>,
    ) -> Result<usize, E> {
        let r = f(&mut self.buf);
        if let Ok(n) = &r {
            self.dirty = self.dirty.max(*n);
        }
        r
    }

    pub(crate) fn get(&self, n: usize) -> &[u8] {
        &self.buf[..n.min(self.buf.len())]
    }
}

impl Drop for SecretBuf {
    fn drop(&mut self) {
        self.buf[..self.dirty].zeroize();
    }
}
