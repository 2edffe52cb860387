#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| orch_fuzz::stack(data));
