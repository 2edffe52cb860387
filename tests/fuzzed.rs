//! The checks of the fuzz targets (fuzz/checks.rs) on the examples, and on
//! every input that once broke orch, kept in tests/fuzzed/TARGET/ (they
//! also seed the fuzzers).

#[allow(dead_code)] // the targets without kept inputs are fuzzed only
#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::{Path, PathBuf};

/// The files under `dir` whose name ends with `ending`, recursively, sorted.
fn files(dir: &Path, ending: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a folder of the repository") {
        let path = entry.expect("an entry of the folder").path();
        if path.is_dir() {
            found.extend(files(&path, ending));
        } else if path.to_string_lossy().ends_with(ending) {
            found.push(path);
        }
    }
    found.sort();
    found
}

#[test]
fn stack_inputs_and_examples() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let kept = files(&root.join("tests/fuzzed/stack"), "");
    let examples = files(&root.join("examples"), ".yaml");
    assert!(!kept.is_empty() && examples.len() >= 4);
    for path in kept.iter().chain(&examples) {
        let bytes = std::fs::read(path).expect("read the input");
        let run = std::panic::catch_unwind(|| checks::stack(&bytes));
        assert!(run.is_ok(), "{} breaks the stack checks", path.display());
    }
}
