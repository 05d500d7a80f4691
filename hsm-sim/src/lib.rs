//! SoftHSM2 and swtpm fixtures for tests and the demo.
#![forbid(unsafe_code)]
