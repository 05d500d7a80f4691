//! Helpers for Custody's end-to-end tests: locating the built binaries and
//! running them as real processes.
#![forbid(unsafe_code)]
