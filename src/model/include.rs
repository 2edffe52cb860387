//! A stack file and the files it includes: each is read on its own by
//! [`crate::config::load`], then its spans are moved to the file's place in
//! [`Sources`], so every problem found later still points into the right
//! file. Validation merges the parts.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::SourceSpan;

use crate::config::raw::{PortRange, RawStack};
use crate::config::rebase::Rebase;
use crate::diag::{Problem, Sources};

/// One file of the stack, read.
pub(super) struct Part {
    pub(super) raw: RawStack,
    /// The file's folder: its relative paths are relative to it.
    pub(super) dir: PathBuf,
    /// Where `port: auto` of its services draws from: its own `port_range`,
    /// else that of the file that includes it.
    pub(super) port_range: PortRange,
    /// Whether this is the stack file itself rather than an included one.
    pub(super) root: bool,
}

/// Every file of a stack, read.
pub(super) struct Files {
    /// In the order their services merge: what a file includes comes before
    /// it, depth first, so the stack file itself is last.
    pub(super) parts: Vec<Part>,
    pub(super) sources: Sources,
    pub(super) problems: Vec<Problem>,
}

/// Read the stack file `file` (whose text is `text`) and every file it
/// includes, transitively. A file included twice is read once; a file that
/// includes itself, directly or not, is a problem.
pub(super) fn read(file: &Path, text: &str) -> Files {
    let mut reader = Reader {
        files: Files {
            parts: Vec::new(),
            sources: Sources::default(),
            problems: Vec::new(),
        },
        chain: Vec::new(),
        seen: HashSet::new(),
    };
    reader.visit(file, text, PortRange::DEFAULT, None);
    reader.files
}

struct Reader {
    files: Files,
    /// The files being read, outermost first, each with the span of the
    /// `include` entry that named it.
    chain: Vec<(PathBuf, Option<SourceSpan>)>,
    seen: HashSet<PathBuf>,
}

impl Reader {
    fn visit(&mut self, file: &Path, text: &str, inherited: PortRange, via: Option<SourceSpan>) {
        self.seen.insert(file.to_path_buf());
        let base = self
            .files
            .sources
            .add(&super::display_name(file), Arc::from(text), "yaml");
        let (raw, problems) = crate::config::load(text);
        self.files
            .problems
            .extend(problems.into_iter().map(|p| p.rebased(base)));
        let Some(mut raw) = raw else { return };
        raw.rebase(base);
        let port_range = raw.port_range.as_ref().map_or(inherited, |r| r.value);
        let dir = file.parent().unwrap_or(Path::new("/")).to_path_buf();
        self.chain.push((file.to_path_buf(), via));
        for entry in &raw.include {
            let path = dir.join(&entry.value);
            let found = std::fs::canonicalize(&path)
                .and_then(|canonical| Ok((std::fs::read_to_string(&canonical)?, canonical)));
            let (text, canonical) = match found {
                Ok(found) => found,
                Err(e) => {
                    self.files.problems.push(
                        Problem::new(
                            format!(
                                "cannot read the included file {}: {e}",
                                super::display_name(&path)
                            ),
                            entry.span,
                            "",
                        )
                        .help("paths in `include` are relative to the folder of the file that includes them"),
                    );
                    continue;
                }
            };
            if let Some(at) = self.chain.iter().position(|(f, _)| *f == canonical) {
                self.cycle(at, entry.span);
            } else if !self.seen.contains(&canonical) {
                self.visit(&canonical, &text, port_range, Some(entry.span));
            }
        }
        self.chain.pop();
        self.files.parts.push(Part {
            raw,
            dir,
            port_range,
            root: via.is_none(),
        });
    }

    /// `chain[at..]` and the entry at `closing` that names `chain[at]` again.
    fn cycle(&mut self, at: usize, closing: SourceSpan) {
        let name = |f: &Path| super::display_name(f);
        let files: Vec<&Path> = self.chain[at..].iter().map(|(f, _)| f.as_path()).collect();
        let path = files
            .iter()
            .chain(std::iter::once(&files[0]))
            .map(|f| name(f))
            .collect::<Vec<_>>()
            .join(" -> ");
        let mut edges: Vec<(SourceSpan, String)> = Vec::new();
        for pair in self.chain[at..].windows(2) {
            if let Some(span) = pair[1].1 {
                edges.push((span, format!("includes {}", name(&pair[1].0))));
            }
        }
        edges.push((closing, format!("includes {}", name(files[0]))));
        let mut labels = edges.into_iter();
        let (span, label) = labels.next().expect("a cycle has at least one edge");
        let mut problem = Problem::new(format!("include cycle: {path}"), span, label);
        for (span, label) in labels {
            problem = problem.label(span, label);
        }
        self.files.problems.push(
            problem.help(
                "a file cannot include itself, directly or not; remove one of these includes",
            ),
        );
    }
}
