//! Custody's formats and crypto. See `docs/FORMAT.md`.
#![forbid(unsafe_code)]

pub mod oaep;

pub use oaep::OaepHash;
