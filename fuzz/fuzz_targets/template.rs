#![no_main]

libfuzzer_sys::fuzz_target!(|text: &str| orch_fuzz::template(text));
