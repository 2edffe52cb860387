//! Text to raw structs: YAML parsing with spans and serde, nothing more.

pub mod de;
pub mod raw;
pub mod yaml;

pub use de::Spanned;
pub use raw::RawStack;

use crate::diag::Problem;

/// Read a stack file's text into its raw structs, with every problem found on
/// the way. Parts with problems (a service, a command) are left out of the
/// structs, so later checks can still look at the rest; there is no stack
/// when the file as a whole cannot be read.
pub fn load(text: &str) -> (Option<RawStack>, Vec<Problem>) {
    match read(text) {
        Ok((raw, problems)) => (Some(raw), problems),
        Err(problems) => (None, problems),
    }
}

fn read(text: &str) -> Result<(RawStack, Vec<Problem>), Vec<Problem>> {
    let root = yaml::parse(text).map_err(|e| {
        let mut p = Problem::new(e.message, e.span, "here").maybe_help(e.help);
        if let Some(other) = e.other {
            p = p.label(other, "first given here");
        }
        vec![p]
    })?;
    if matches!(root.value, yaml::Value::Null) {
        return Err(vec![Problem::new(
            "the stack file is empty",
            (0, 0).into(),
            "",
        )
        .help(
            "a stack file needs at least `services:`; see examples/minimal.yaml",
        )]);
    }
    let sink = de::Sink::default();
    let result = de::from_node::<RawStack>(&root, text, &sink);
    let mut problems: Vec<Problem> = sink.into_errors().into_iter().map(problem).collect();
    match result {
        Ok(raw) => Ok((raw, problems)),
        Err(e) => {
            problems.push(problem(e));
            Err(problems)
        }
    }
}

fn problem(e: de::DeError) -> Problem {
    let span = e.span.unwrap_or_else(|| (0, 0).into());
    Problem::new(e.message, span, "").maybe_help(e.help)
}
