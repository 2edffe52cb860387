//! Shared helpers: stacks in temporary folders, the `orch` binary, and the
//! problems the library finds in a text.

#![allow(dead_code)] // each test binary uses a part of this module

use std::path::{Path, PathBuf};

use orch::diag::{line_col, InvalidStack};
use orch::model::Stack;
use tempfile::TempDir;

/// Running the real `orch up` against stacks, for the supervisor's tests.
pub mod run;

/// Client commands against a running stack, and their answers.
pub mod client;
/// Seeded random choices that a failing test can replay.
pub mod seed;

/// A temporary folder to run `orch` in.
pub struct Project {
    dir: TempDir,
}

impl Project {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("create a temporary folder"),
        }
    }

    /// A folder with `stack.yaml` holding `text`.
    pub fn with_stack(text: &str) -> Self {
        let project = Self::new();
        project.write("stack.yaml", text);
        project
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create the file's folder");
        }
        std::fs::write(&path, text).expect("write the file");
        path
    }

    /// `orch` run in this folder, without colours, `ORCH_FILE` or a terminal.
    pub fn orch(&self) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::cargo_bin("orch").expect("the orch binary is built");
        cmd.current_dir(self.path())
            .env("NO_COLOR", "1")
            .env_remove("ORCH_FILE");
        cmd
    }
}

/// What a finished command printed on stdout.
pub fn stdout_of(out: &assert_cmd::assert::Assert) -> String {
    String::from_utf8(out.get_output().stdout.clone()).expect("stdout is UTF-8")
}

/// What a finished command printed on stderr.
pub fn stderr_of(out: &assert_cmd::assert::Assert) -> String {
    String::from_utf8(out.get_output().stderr.clone()).expect("stderr is UTF-8")
}

/// Where a stack read by [`load`] claims to live.
pub const FILE: &str = "/stacks/stack.yaml";

/// Validate `text` with the library, as if it were the file [`FILE`].
pub fn load(text: &str) -> Result<Stack, InvalidStack> {
    Stack::from_text(Path::new(FILE), text)
}

/// A valid stack, or a panic that shows its problems.
pub fn stack(text: &str) -> Stack {
    match load(text) {
        Ok(stack) => stack,
        Err(invalid) => panic!("expected a valid stack, found {:#?}", found(text, &invalid)),
    }
}

/// One problem, with places as 1-based (line, column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub message: String,
    /// The primary place, if the problem points anywhere.
    pub at: Option<(usize, usize)>,
    /// Every place with its label, the primary one first.
    pub labels: Vec<((usize, usize), String)>,
    pub help: Option<String>,
}

fn found(text: &str, invalid: &InvalidStack) -> Vec<Found> {
    invalid
        .problems()
        .zip(invalid.positions())
        .map(|(p, at)| Found {
            message: p.message.clone(),
            at,
            labels: p
                .labels
                .iter()
                .map(|(span, label)| (line_col(text, span.offset()), label.clone()))
                .collect(),
            help: p.help.clone(),
        })
        .collect()
}

/// Every problem the library finds in `text`; panics when it is valid.
pub fn problems(text: &str) -> Vec<Found> {
    match load(text) {
        Ok(_) => panic!("expected problems, but the stack is valid:\n{text}"),
        Err(invalid) => found(text, &invalid),
    }
}

/// The only problem in `text`.
pub fn problem(text: &str) -> Found {
    let mut all = problems(text);
    assert_eq!(all.len(), 1, "expected one problem, found {all:#?}");
    all.remove(0)
}

/// 1-based (line, column) of the `nth` (0-based) occurrence of `needle` in `text`.
pub fn pos(text: &str, needle: &str, nth: usize) -> (usize, usize) {
    let offset = text
        .match_indices(needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("`{needle}` occurs fewer than {} times", nth + 1))
        .0;
    line_col(text, offset)
}
