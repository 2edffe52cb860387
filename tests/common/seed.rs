//! Random choices that a failing test can replay: the seed comes from
//! `ORCH_CHAOS_SEED` when it is set, else from the clock, and is printed
//! (the test harness shows a failing test's output).

#![allow(dead_code)] // each test binary uses a part of this module

use proptest::test_runner::{RngAlgorithm, TestRng};

/// Random numbers for `test`, from a seed it prints with how to replay it.
pub fn seeded(test: &str) -> TestRng {
    let seed = std::env::var("ORCH_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("the clock is past 1970");
            now.as_secs() ^ u64::from(now.subsec_nanos())
        });
    println!("{test}: seed {seed}; to replay: ORCH_CHAOS_SEED={seed} cargo test {test}");
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}
