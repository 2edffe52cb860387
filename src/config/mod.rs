//! Text to raw structs: YAML parsing with spans and serde, nothing more.

pub mod de;
pub mod dotenv;
pub mod raw;
pub mod rebase;
pub mod shapes;
pub mod yaml;

pub use de::Spanned;
pub use raw::RawStack;

use crate::diag::Problem;

/// Bytes of a stack file worth reading: one more than [`yaml::MAX_BYTES`]
/// tells that a file is too large without reading all of it.
pub const READ_LIMIT: usize = yaml::MAX_BYTES + 1;

/// The text of a stack file read as `bytes` (at most [`READ_LIMIT`] of
/// them): UTF-8 within the size limit. The problem otherwise, which names
/// its place itself: the line it is on may be megabytes long.
pub fn text(bytes: &[u8]) -> Result<&str, Problem> {
    if bytes.len() > yaml::MAX_BYTES {
        return Err(Problem::whole(format!(
            "the file is over {} MiB; orch reads stack files of at most {0} MiB",
            yaml::MAX_BYTES / 1024 / 1024
        ))
        .help("a stack file this large is almost certainly not one; check the path"));
    }
    std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let before = std::str::from_utf8(&bytes[..at]).expect("valid up to `at`");
        let (line, column) = crate::diag::line_col(before, at);
        Problem::whole(format!(
            "the stack file is not UTF-8 text: line {line}, column {column} holds the byte {:#04x}",
            bytes[at]
        ))
        .help("a stack file is YAML in UTF-8; check the path, or convert the file (iconv -t UTF-8)")
    })
}

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
    let mut root = root;
    let mut stripped = Stripped::default();
    strip_unknown_keys(&mut root, &mut stripped);
    let sink = de::Sink::default();
    let result = de::from_node::<RawStack>(&root, text, &sink);
    let mut problems = stripped.problems;
    // A key reported as misspelt is not reported missing as well.
    let suggested = stripped.suggested;
    let news = |e: &de::DeError| {
        !e.missing.is_some_and(|m| {
            let at = e.span.map(|s| s.offset());
            suggested
                .iter()
                .any(|(map, name)| Some(*map) == at && name == m)
        })
    };
    problems.extend(
        sink.into_errors()
            .into_iter()
            .filter(|e| news(e))
            .map(problem),
    );
    match result {
        Ok(raw) => Ok((raw, problems)),
        Err(e) if !news(&e) => Err(problems),
        Err(e) => {
            problems.push(problem(e));
            problems.sort_by_key(|p| p.labels.first().map(|(span, _)| span.offset()));
            Err(problems)
        }
    }
}

/// The keys a mapping of type `T` may have, from the types the schema is made of.
fn keys<T: schemars::JsonSchema>() -> Vec<String> {
    let schema = schemars::schema_for!(T);
    schema
        .get("properties")
        .and_then(serde_json::Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// Report every unknown key of the stack, its services, their commands and
/// their probes, and take them out of the tree, so that one misspelt key
/// does not hide the other problems of the same mapping (serde stops at the
/// first). `deny_unknown_fields` stays as the rule the raw types keep.
fn strip_unknown_keys(root: &mut yaml::Node, out: &mut Stripped) {
    let (stack, service, command) = (
        keys::<RawStack>(),
        keys::<raw::RawService>(),
        keys::<raw::RawCommand>(),
    );
    let (probe, monitor) = (keys::<raw::RawProbe>(), keys::<raw::RawMonitor>());
    strip(root, &stack, out);
    for (_, s) in entries(root, "services") {
        strip(s, &service, out);
        for (_, c) in entries(s, "commands") {
            strip(c, &command, out);
            if let Some(ready) = value(c, "ready") {
                strip(ready, &probe, out);
            }
            if let Some(m) = value(c, "monitor") {
                strip(m, &monitor, out);
            }
        }
    }
}

/// What [`strip_unknown_keys`] found: the problems, and the keys it suggested
/// instead, by the offset of their mapping.
#[derive(Default)]
struct Stripped {
    problems: Vec<Problem>,
    suggested: Vec<(usize, String)>,
}

fn strip(node: &mut yaml::Node, allowed: &[String], out: &mut Stripped) {
    let at = node.span.offset();
    if let yaml::Value::Map(entries) = &mut node.value {
        entries.retain(|(key, _)| {
            let name = yaml::key_text(key);
            let known = allowed.contains(&name);
            if !known {
                if let Some(close) = crate::diag::suggest(&name, allowed.iter().map(String::as_str))
                {
                    out.suggested.push((at, close.to_owned()));
                }
                out.problems.push(problem(de::DeError {
                    span: Some(key.span),
                    ..de::unknown_key(&name, allowed)
                }));
            }
            known
        });
    }
}

/// The value of `key` in a mapping node.
fn value<'a>(node: &'a mut yaml::Node, key: &str) -> Option<&'a mut yaml::Node> {
    match &mut node.value {
        yaml::Value::Map(entries) => entries
            .iter_mut()
            .find(|(k, _)| yaml::key_text(k) == key)
            .map(|(_, v)| v),
        _ => None,
    }
}

/// The entries of the mapping under `key`, if it is one.
fn entries<'a>(
    node: &'a mut yaml::Node,
    key: &str,
) -> impl Iterator<Item = &'a mut (yaml::Node, yaml::Node)> {
    let map = match value(node, key).map(|v| &mut v.value) {
        Some(yaml::Value::Map(entries)) => Some(entries),
        _ => None,
    };
    map.into_iter().flat_map(|m| m.iter_mut())
}

fn problem(e: de::DeError) -> Problem {
    let span = e.span.unwrap_or_else(|| (0, 0).into());
    Problem::new(e.message, span, "").maybe_help(e.help)
}
