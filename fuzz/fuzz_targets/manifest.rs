#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| { let _ = custody_envelope::fuzz::manifest(data); });
