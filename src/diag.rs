//! What users see when something is wrong: problems with spans into the
//! stack file, rendered by miette, and "did you mean" suggestions.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, SourceCode, SourceSpan};

/// The closest candidate to `name`, if one is close enough to be a likely typo.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::levenshtein(name, c),
                strsim::jaro_winkler(name, c),
                c,
            )
        })
        .filter(|&(dist, similarity, _)| dist <= limit || similarity >= 0.85)
        .min_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)))
        .map(|(_, _, c)| c)
}

/// One thing wrong with a stack file: a message, the places it concerns and
/// what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub message: String,
    /// Places in the file; the first is the primary one.
    pub labels: Vec<(SourceSpan, String)>,
    pub help: Option<String>,
}

impl Problem {
    pub fn new(message: impl Into<String>, span: SourceSpan, label: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            labels: vec![(span, label.into())],
            help: None,
        }
    }

    /// A problem with the file as a whole, pointing nowhere in particular.
    pub fn whole(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            labels: Vec::new(),
            help: None,
        }
    }

    #[must_use]
    pub fn label(mut self, span: SourceSpan, label: impl Into<String>) -> Self {
        self.labels.push((span, label.into()));
        self
    }

    #[must_use]
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    #[must_use]
    pub fn maybe_help(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }

    /// The same problem with every place moved by `by` bytes: from a file's
    /// own offsets to its place in [`Sources`].
    #[must_use]
    pub fn rebased(mut self, by: usize) -> Self {
        for (span, _) in &mut self.labels {
            *span = (span.offset() + by, span.len()).into();
        }
        self
    }
}

/// The files a stack is read from: the stack file, the files it includes and
/// its env files. Each stands at its own base offset in one offset space, so
/// a span alone says which file it points into, and one problem can point
/// into several files (a name defined in two of them).
#[derive(Debug, Clone, Default)]
pub struct Sources {
    files: Vec<SourceFile>,
}

/// One file of [`Sources`].
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The name shown in messages.
    pub name: String,
    pub text: Arc<str>,
    /// Where its offset 0 stands in the shared offset space.
    pub base: usize,
    language: &'static str,
}

impl Sources {
    /// Sources holding one file, at base 0.
    pub fn one(name: &str, text: &Arc<str>) -> Self {
        let mut sources = Self::default();
        sources.add(name, Arc::clone(text), "yaml");
        sources
    }

    /// Add a file (`language` names its syntax for highlighting); its base
    /// offset. What would steer a terminal in its name or text is masked
    /// here, where every file enters, so no diagnostic can send it.
    pub fn add(&mut self, name: &str, text: Arc<str>, language: &'static str) -> usize {
        // One byte apart, so a span at the very end of a file is still in it.
        let base = self.files.last().map_or(0, |f| f.base + f.text.len() + 1);
        let text = match masked(&text) {
            Cow::Borrowed(_) => text,
            Cow::Owned(masked) => Arc::from(masked),
        };
        self.files.push(SourceFile {
            name: printable(name).into_owned(),
            text,
            base,
            language,
        });
        base
    }

    /// The file an offset of the shared space falls in.
    pub fn file_at(&self, offset: usize) -> Option<&SourceFile> {
        let i = self.files.partition_point(|f| f.base <= offset);
        self.files
            .get(i.checked_sub(1)?)
            .filter(|f| offset <= f.base + f.text.len())
    }

    /// The file's name and the 1-based line and column of an offset.
    pub fn locate(&self, offset: usize) -> Option<(&str, usize, usize)> {
        let file = self.file_at(offset)?;
        let (line, col) = line_col(&file.text, offset - file.base);
        Some((&file.name, line, col))
    }
}

impl SourceCode for Sources {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let file = self
            .file_at(span.offset())
            .filter(|f| span.offset() + span.len() <= f.base + f.text.len())
            .ok_or(miette::MietteError::OutOfBounds)?;
        let local: SourceSpan = (span.offset() - file.base, span.len()).into();
        let inner =
            file.text
                .as_bytes()
                .read_span(&local, context_lines_before, context_lines_after)?;
        let covered = (inner.span().offset() + file.base, inner.span().len()).into();
        Ok(Box::new(
            miette::MietteSpanContents::new_named(
                file.name.clone(),
                inner.data(),
                covered,
                inner.line(),
                inner.column(),
                inner.line_count(),
            )
            .with_language(file.language),
        ))
    }
}

/// Most problems rendered for one file. More would help nobody, and each
/// one rendered costs a pass over the file to find its line, so a hostile
/// file with a million mistakes would otherwise take hours to report.
pub const MAX_SHOWN: usize = 50;

/// Every problem found in a stack file and the files it reads. Rendered,
/// each problem (up to [`MAX_SHOWN`]) shows the file name, line and column
/// of each of its places, the lines themselves underlined, and its help.
#[derive(Debug)]
pub struct InvalidStack {
    name: String,
    problems: Vec<ProblemIn>,
}

impl InvalidStack {
    /// Problems of one file, `text`, shown as `name`.
    pub fn new(name: &str, text: &Arc<str>, problems: Vec<Problem>) -> Self {
        Self::in_sources(name, Sources::one(name, text), problems)
    }

    /// Problems whose spans point into `sources`; `name` is the stack file's.
    pub fn in_sources(name: &str, sources: Sources, problems: Vec<Problem>) -> Self {
        let sources = Arc::new(sources);
        let problems = problems
            .into_iter()
            .map(|problem| ProblemIn {
                problem,
                sources: Arc::clone(&sources),
            })
            .collect();
        Self {
            name: printable(name).into_owned(),
            problems,
        }
    }

    pub fn problems(&self) -> impl Iterator<Item = &Problem> {
        self.problems.iter().map(|p| &p.problem)
    }

    /// `(line, column)` of each problem's primary place, 1-based, in its own file.
    pub fn positions(&self) -> Vec<Option<(usize, usize)>> {
        self.places()
            .into_iter()
            .map(|p| p.map(|(_, line, col)| (line, col)))
            .collect()
    }

    /// The file, line and column (1-based) of each problem's primary place.
    pub fn places(&self) -> Vec<Option<(String, usize, usize)>> {
        self.problems
            .iter()
            .map(|p| {
                let (span, _) = p.problem.labels.first()?;
                let (file, line, col) = p.sources.locate(span.offset())?;
                Some((file.to_owned(), line, col))
            })
            .collect()
    }
}

/// Whether `c` would steer a terminal rather than show on it: a control
/// character other than a line break or a tab, or one of the bidirectional
/// overrides that reorder the text after them.
fn steers(c: char) -> bool {
    (c.is_control() && !matches!(c, '\n' | '\t'))
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Most characters of a message, label or help that are shown: one may
/// quote a value of the file, and a value may be megabytes long.
const MAX_TEXT: usize = 400;

/// `text` as a terminal should get it: each character that would steer it
/// escaped (`\u{1b}`), and cut after [`MAX_TEXT`] characters (`...`).
fn printable(text: &str) -> Cow<'_, str> {
    let long = text.chars().nth(MAX_TEXT).is_some();
    if !long && !text.chars().any(steers) {
        return Cow::Borrowed(text);
    }
    let mut out = String::new();
    for c in text.chars().take(MAX_TEXT) {
        if steers(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    if long {
        out.push_str("...");
    }
    Cow::Owned(out)
}

/// `text` with each character that would steer a terminal replaced by as
/// many `?` as it has bytes, so that spans still point at the same places
/// (a `\r` before a line break stays).
fn masked(text: &str) -> Cow<'_, str> {
    let mut chars = text.char_indices().peekable();
    let mut out: Option<String> = None;
    while let Some((at, c)) = chars.next() {
        let crlf = c == '\r' && chars.peek().is_some_and(|&(_, next)| next == '\n');
        if steers(c) && !crlf {
            out.get_or_insert_with(|| text[..at].to_owned())
                .push_str(&"?".repeat(c.len_utf8()));
        } else if let Some(out) = &mut out {
            out.push(c);
        }
    }
    out.map_or(Cow::Borrowed(text), Cow::Owned)
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

impl fmt::Display for InvalidStack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{}: {n} problem{}",
            self.name,
            if n == 1 { "" } else { "s" }
        )?;
        if n > MAX_SHOWN {
            write!(f, " (the first {MAX_SHOWN} are shown)")?;
        }
        Ok(())
    }
}

impl std::error::Error for InvalidStack {}

impl Diagnostic for InvalidStack {
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        Some(Box::new(
            self.problems
                .iter()
                .take(MAX_SHOWN)
                .map(|p| p as &dyn Diagnostic),
        ))
    }
}

/// A problem together with the files it points into, as miette wants it.
#[derive(Debug)]
struct ProblemIn {
    problem: Problem,
    sources: Arc<Sources>,
}

impl fmt::Display for ProblemIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&printable(&self.problem.message))
    }
}

impl std::error::Error for ProblemIn {}

impl Diagnostic for ProblemIn {
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.problem
            .help
            .as_ref()
            .map(|h| Box::new(printable(h)) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        (!self.problem.labels.is_empty()).then_some(&*self.sources as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.problem.labels.is_empty() {
            return None;
        }
        Some(Box::new(self.problem.labels.iter().enumerate().map(
            |(i, (span, text))| {
                let text = (!text.is_empty()).then(|| printable(text).into_owned());
                if i == 0 {
                    LabeledSpan::new_primary_with_span(text, *span)
                } else {
                    LabeledSpan::new_with_span(text, *span)
                }
            },
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let keys = ["port", "command", "respawn_count"];
        assert_eq!(suggest("prot", keys), Some("port"));
        assert_eq!(suggest("comand", keys), Some("command"));
        assert_eq!(suggest("respawn_cont", keys), Some("respawn_count"));
        assert_eq!(suggest("zzz", keys), None);
    }

    #[test]
    fn characters_that_steer_a_terminal_are_not_sent_to_it() {
        assert_eq!(
            printable("a\u{1b}[31mb\u{0}\u{202e}c"),
            "a\\u{1b}[31mb\\u{0}\\u{202e}c"
        );
        assert!(matches!(printable("dé\tjà ☃\n"), Cow::Borrowed(_)));
        let long = "é".repeat(MAX_TEXT + 1);
        assert_eq!(printable(&long), format!("{}...", &long[..2 * MAX_TEXT]));
        assert!(matches!(printable(&long[..2 * MAX_TEXT]), Cow::Borrowed(_)));
        let text = "a\u{1b}[31m: \u{85}\u{202e}x\r\nb\rc\n";
        let out = masked(text);
        assert_eq!(out, "a?[31m: ?????x\r\nb?c\n");
        assert_eq!(out.len(), text.len());
        assert!(matches!(masked("dé: jà\r\n"), Cow::Borrowed(_)));
    }

    #[test]
    fn sources_place_each_file_at_its_own_offsets() {
        let mut sources = Sources::default();
        let a = sources.add("a.yaml", Arc::from("x: 1\n"), "yaml");
        let b = sources.add("b.env", Arc::from("K=v\n"), "bash");
        assert_eq!((a, b), (0, 6));
        assert_eq!(sources.locate(3), Some(("a.yaml", 1, 4)));
        // The very end of a file is still in it.
        assert_eq!(sources.locate(5), Some(("a.yaml", 2, 1)));
        assert_eq!(sources.locate(8), Some(("b.env", 1, 3)));
        assert_eq!(sources.locate(11), None);
        let contents = sources.read_span(&(8, 1).into(), 0, 0).unwrap();
        assert_eq!(contents.name(), Some("b.env"));
        assert_eq!(contents.data(), b"v");
        assert_eq!(contents.span().offset(), 8);
        assert_eq!((contents.line(), contents.column()), (0, 2));
        // A span that runs from one file into the next is not read.
        assert!(sources.read_span(&(3, 5).into(), 0, 0).is_err());
    }

    #[test]
    fn line_and_column_count_characters() {
        let text = "a: 1\nbé: x\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 5), (2, 1));
        assert_eq!(line_col(text, text.find('x').unwrap()), (2, 5));
    }
}
