//! What each fuzz target checks of one input. Shared by the targets in
//! fuzz_targets/ and by tests/fuzzed.rs, which runs the examples and every
//! input that once broke orch (tests/fuzzed/TARGET/) through the same checks.

use std::fmt::Write as _;
use std::path::Path;

use orch::control::protocol::{decode, MAX_REQUEST};
use orch::model::template::{self, Piece, Ref, TemplateError};
use orch::model::{Endpoint, Stack, Text};

/// A stack file's bytes through everything `orch check` and `orch graph` do:
/// UTF-8 and size checks, YAML, raw structs, validation, ports, templates,
/// the graph, then the rendered diagnostics or the graph in every format.
pub fn stack(data: &[u8]) {
    match Stack::from_bytes(Path::new("/fuzz/stack.yaml"), data) {
        Ok(stack) => {
            let order = stack.dag.order();
            let mut place = vec![usize::MAX; stack.services.len()];
            for (i, &id) in order.iter().enumerate() {
                place[id] = i;
            }
            for (id, service) in stack.services.iter().enumerate() {
                for &dep in &service.depends_on {
                    assert!(place[dep] < place[id], "dependencies start first");
                }
            }
            let _ = orch::output::tree(&stack, None);
            let _ = orch::output::dot(&stack);
            let _ = orch::output::mermaid(&stack);
            let _ = orch::output::graph_json(&stack);
            for sid in 0..stack.services.len() {
                let _ = orch::output::env_export(&stack.service_env(sid));
            }
        }
        Err(invalid) => {
            assert!(
                invalid.problems().next().is_some(),
                "an error has a problem"
            );
            let report = miette::Report::new(invalid);
            let mut out = String::new();
            miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
                .with_links(false)
                .render_report(&mut out, report.as_ref())
                .expect("rendering into a String cannot fail");
            let _ = write!(out, "{report}");
            let steering = out
                .chars()
                .find(|&c| c.is_control() && c != '\n' && c != '\t');
            assert_eq!(steering, None, "nothing from the file steers the terminal");
        }
    }
}

/// `${...}` templates: parsing and expansion of any text, with references
/// that resolve (to text that looks like a template itself) or fail.
pub fn template(text: &str) {
    if let Ok(pieces) = template::parse(text) {
        let mut end = 0;
        for piece in pieces {
            if let Piece::Ref { at, len, .. } = piece {
                assert!(
                    at >= end && at + len <= text.len(),
                    "references in order, inside"
                );
                assert!(text[at..at + len].starts_with("${"));
                end = at + len;
            }
        }
    }
    let resolved = template::expand(text, |r| {
        Ok(match r {
            Ref::Port => Text::literal("8300"),
            Ref::CommandPort(name) | Ref::CommandPorts(name) => {
                Text::literal(format!("{name}$${{x}}"))
            }
            Ref::Host => Text::host(Endpoint::new("s", "c")),
            Ref::CommandHost(name) => Text::host(Endpoint::new("s", *name)),
            Ref::Name { name, default } => Text::literal(
                template::or_default(None, *default).unwrap_or_else(|| (*name).to_owned()),
            ),
        })
    });
    let failed = template::expand(text, |_| Err(TemplateError::new("unknown")));
    for e in [&resolved, &failed]
        .into_iter()
        .filter_map(|r| r.as_ref().err())
    {
        assert!(e.at + e.len <= text.len(), "{e:?} points inside the text");
    }
    if failed.is_ok() {
        assert_eq!(resolved, failed, "text without references expands alike");
    }
    let escaped = text.replace('$', "$$");
    let expanded = template::expand(&escaped, |_| unreachable!("escaped text has no reference"));
    assert_eq!(
        expanded.map(|t| t.loopback()).as_deref(),
        Ok(text),
        "doubled dollars give the text back"
    );
}

/// The control protocol's decoder on any line a client could send: it
/// answers or refuses, and what it accepts reads the same when sent again.
pub fn protocol(line: &[u8]) {
    match decode(line) {
        Ok(envelope) => {
            assert!(line.len() <= MAX_REQUEST);
            let again = serde_json::to_vec(&envelope).expect("a request is plain data");
            let decoded = decode(&again).expect("what was read is read again");
            assert_eq!(decoded.request, envelope.request);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}
