//! SoftHSM2 tokens and swtpm TPMs for Custody's tests and demo.
//!
//! Each fixture owns its simulator and tears it down on drop. They return
//! connection parameters only — module path, token label, PIN file; TCTI
//! string — and know nothing of the agent.
//!
//! ```no_run
//! let hsm = hsm_sim::SoftHsm::start()?;           // token dir + SOFTHSM2_CONF + token
//! let tpm = hsm_sim::Swtpm::start()?;             // swtpm child on a free port pair
//! println!("{} {} {}", hsm.module().display(), hsm.token_label(), tpm.tcti());
//! # Ok::<(), hsm_sim::SimError>(())
//! ```
#![forbid(unsafe_code)]

mod error;
mod ports;
mod softhsm;
mod swtpm;

pub use error::SimError;
pub use softhsm::{SoftHsm, Token, find_softhsm_module};
pub use swtpm::Swtpm;

/// A short random hex string (labels, PINs for throw-away tokens). Not for
/// secrets that matter: std's hasher keys are random per process, mixed with
/// the time and a counter.
pub(crate) fn random_hex(len: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = String::new();
    while out.len() < len {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.write_u32(std::process::id());
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out.truncate(len);
    out
}
