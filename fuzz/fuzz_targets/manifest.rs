#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| { let _ = custody_envelope::manifest::Manifest::from_bytes(data); });
