//! The JSON types of Custody's HTTP API and agent job protocol (`docs/API.md`).
#![forbid(unsafe_code)]
