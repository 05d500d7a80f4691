//! Custody's formats and crypto: encrypted packages (C2SP chunked
//! encryption, Cobblestone-256), JWE key envelopes (`wrap`, `seal`), key
//! lists and signed release descriptors. See `docs/FORMAT.md`.
//!
//! The core is pure: bytes in, bytes out, no I/O, no clock. [`stream`]
//! adds `std::io` adapters and the std-thread parallel driver.
#![forbid(unsafe_code)]

pub mod approval;
pub mod canonical;
pub mod chunked;
pub mod descriptor;
mod error;
pub mod fuzz;
pub mod ident;
pub mod jwe;
mod key;
pub mod keylist;
pub mod manifest;
pub mod oaep;
pub mod package;
pub mod rng;
pub mod stream;

pub use error::EnvelopeError;
pub use key::{KEY_LEN, SymmetricKey};
pub use oaep::OaepHash;
