//! YAML text to a tree of [`Node`]s that remember where they came from.
//!
//! This is the only module that knows which YAML library orch uses. It
//! parses with `yaml-rust2`'s event parser, because orch points every error
//! at its place in the file, and a parser that hands out the position of every
//! node is what makes that possible. Swapping the library means rewriting
//! [`parse`] and nothing else.
//!
//! The tree is bounded: a file larger than [`MAX_BYTES`], nesting deeper than
//! [`MAX_DEPTH`] or more than [`MAX_NODES`] nodes (aliases count every node
//! they copy, so an alias bomb stops early) is refused with a clear error.

use std::collections::HashMap;

use miette::SourceSpan;
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Largest stack file orch reads.
pub const MAX_BYTES: usize = 16 * 1024 * 1024;
/// Deepest nesting of mappings and sequences.
pub const MAX_DEPTH: usize = 64;
/// Most nodes in a document, aliases expanded.
pub const MAX_NODES: usize = 2_000_000;

/// A YAML value with the span of its text.
#[derive(Debug, Clone)]
pub struct Node {
    pub value: Value,
    pub span: SourceSpan,
}

#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A scalar that is a string; `plain` scalars that look like numbers or
    /// booleans are resolved to those instead, but keep their text in `Scalar`.
    Str(Scalar),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// The text of a scalar, and whether it stands in the file verbatim at the
/// start of its span (plain, or quoted without escapes), so that a part of
/// the value can be pointed at exactly.
#[derive(Debug, Clone)]
pub struct Scalar {
    pub text: String,
    /// Byte offset of the text in the file, when it stands there verbatim.
    pub verbatim_at: Option<usize>,
}

impl Node {
    /// The text of a scalar node, whatever it resolved to (`4` is "4").
    pub fn scalar_text(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(&s.text),
            _ => None,
        }
    }

    /// Short description of the kind of value, for "expected X, found Y".
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "nothing",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "a number",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// Why a text is not a usable YAML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub message: String,
    pub span: SourceSpan,
    pub help: Option<String>,
    /// A second place the error concerns (the first of two duplicate keys).
    pub other: Option<SourceSpan>,
}

impl ParseError {
    fn at(span: SourceSpan, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            span,
            help: None,
            other: None,
        }
    }
    fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// Parse one YAML document. An empty document is `Null`.
pub fn parse(src: &str) -> Result<Node, ParseError> {
    if src.len() > MAX_BYTES {
        return Err(ParseError::at(
            (0, 0).into(),
            format!(
                "the file is {} bytes; orch reads stack files of at most {} MiB",
                src.len(),
                MAX_BYTES / 1024 / 1024
            ),
        )
        .help("a stack file this large is almost certainly not one; check the path"));
    }
    Builder::new(src).run()
}

/// Converts the parser's character positions to byte offsets.
struct Positions<'a> {
    src: &'a str,
    line_starts: Vec<usize>,
    ascii: bool,
}

impl<'a> Positions<'a> {
    fn new(src: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        Self {
            src,
            line_starts,
            ascii: src.is_ascii(),
        }
    }

    fn offset(&self, mark: &Marker) -> usize {
        if self.ascii {
            return mark.index().min(self.src.len());
        }
        let Some(&start) = self.line_starts.get(mark.line().saturating_sub(1)) else {
            return self.src.len();
        };
        let line = &self.src[start..];
        start
            + line
                .char_indices()
                .nth(mark.col())
                .map_or(line.len(), |(i, _)| i)
    }

    /// The end of the line that `at` is on.
    fn line_end(&self, at: usize) -> usize {
        self.src[at..].find('\n').map_or(self.src.len(), |i| at + i)
    }
}

struct Frame {
    start: usize,
    anchor: usize,
    kind: FrameKind,
}

enum FrameKind {
    Seq(Vec<Node>),
    Map {
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
        /// The span of each key given so far, by its text, once the mapping
        /// has [`INDEXED`] entries: a duplicate is then found without
        /// comparing every pair (a stack can have thousands of services).
        seen: Option<HashMap<String, SourceSpan>>,
    },
}

struct Builder<'a> {
    pos: Positions<'a>,
    parser: Parser<std::str::Chars<'a>>,
    stack: Vec<Frame>,
    anchors: Vec<Option<(Node, usize)>>,
    nodes: usize,
    root: Option<Node>,
}

impl<'a> Builder<'a> {
    fn new(src: &'a str) -> Self {
        Self {
            pos: Positions::new(src),
            parser: Parser::new_from_str(src),
            stack: Vec::new(),
            anchors: Vec::new(),
            nodes: 0,
            root: None,
        }
    }

    fn run(mut self) -> Result<Node, ParseError> {
        let mut documents = 0;
        loop {
            let (event, mark) = self.parser.next_token().map_err(|e| {
                let at = self.pos.offset(e.marker());
                if e.info() == "recursion limit exceeded" {
                    // The scanner's own limit on `[` and `{`, met before ours
                    // when it reads ahead: the same mistake, the same message.
                    return too_deep(at);
                }
                ParseError::at((at, 0).into(), format!("invalid YAML: {}", e.info()))
            })?;
            let at = self.pos.offset(&mark);
            match event {
                Event::StreamEnd => break,
                Event::DocumentStart => {
                    documents += 1;
                    if documents > 1 {
                        return Err(ParseError::at(
                            (at, 3).into(),
                            "a stack file holds one YAML document",
                        )
                        .help(
                            "remove the `---` and what follows it, or move it to a file of its own",
                        ));
                    }
                }
                Event::Scalar(text, style, anchor, tag) => {
                    let node = self.scalar(text, style, tag.is_some(), at)?;
                    self.push(node, anchor, at)?;
                }
                Event::Alias(id) => {
                    let Some(Some((node, count))) = self.anchors.get(id).cloned() else {
                        return Err(ParseError::at((at, 1).into(), "alias to an unknown anchor"));
                    };
                    self.count(count, at)?;
                    let mut node = node;
                    node.span = (at, alias_len(self.pos.src, at)).into();
                    self.push(node, 0, at)?;
                }
                Event::SequenceStart(anchor, _) => {
                    self.open(at, anchor, FrameKind::Seq(Vec::new()))?
                }
                Event::MappingStart(anchor, _) => {
                    self.open(
                        at,
                        anchor,
                        FrameKind::Map {
                            entries: Vec::new(),
                            key: None,
                            seen: None,
                        },
                    )?;
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    let frame = self
                        .stack
                        .pop()
                        .expect("the parser balances start and end events");
                    let end = self.pos.offset(&mark).max(frame.start);
                    let value = match frame.kind {
                        FrameKind::Seq(items) => Value::Seq(items),
                        FrameKind::Map { entries, .. } => Value::Map(entries),
                    };
                    let node = Node {
                        value,
                        span: (frame.start, end - frame.start).into(),
                    };
                    self.push(node, frame.anchor, at)?;
                }
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            }
        }
        Ok(self.root.unwrap_or(Node {
            value: Value::Null,
            span: (0, 0).into(),
        }))
    }

    fn count(&mut self, n: usize, at: usize) -> Result<(), ParseError> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err(ParseError::at((at, 1).into(), format!(
                "the document has more than {MAX_NODES} values, counting what each alias copies"
            ))
            .help("a stack file has a few thousand; an alias that copies another alias many times over makes a document explode: write the values out"));
        }
        Ok(())
    }

    fn open(&mut self, at: usize, anchor: usize, kind: FrameKind) -> Result<(), ParseError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(too_deep(at));
        }
        self.count(1, at)?;
        self.stack.push(Frame {
            start: at,
            anchor,
            kind,
        });
        Ok(())
    }

    /// Hand a finished node to its parent (or make it the root).
    fn push(&mut self, node: Node, anchor: usize, at: usize) -> Result<(), ParseError> {
        if anchor > 0 {
            let size = node_count(&node);
            if self.anchors.len() <= anchor {
                self.anchors.resize(anchor + 1, None);
            }
            self.anchors[anchor] = Some((node.clone(), size));
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame {
                kind: FrameKind::Seq(items),
                ..
            }) => items.push(node),
            Some(Frame {
                kind: FrameKind::Map { entries, key, seen },
                ..
            }) => match key.take() {
                None => {
                    if !matches!(
                        node.value,
                        Value::Str(_)
                            | Value::Int(_)
                            | Value::Bool(_)
                            | Value::Null
                            | Value::Float(_)
                    ) {
                        return Err(ParseError::at(
                            node.span,
                            "a mapping key must be a plain value",
                        ));
                    }
                    let text = key_str(&node);
                    let first = match seen {
                        Some(seen) => seen.get(text.as_ref()).copied(),
                        None => entries
                            .iter()
                            .find(|(k, _)| key_str(k) == text)
                            .map(|(k, _)| k.span),
                    };
                    if let Some(first) = first {
                        let mut e = ParseError::at(node.span, format!("`{text}` is given twice"))
                            .help("YAML keys are unique within a mapping; keep one of them");
                        e.other = Some(first);
                        return Err(e);
                    }
                    if let Some(seen) = seen {
                        seen.insert(text.into_owned(), node.span);
                    } else if entries.len() + 1 >= INDEXED {
                        let mut index: HashMap<String, SourceSpan> =
                            entries.iter().map(|(k, _)| (key_text(k), k.span)).collect();
                        index.insert(text.into_owned(), node.span);
                        *seen = Some(index);
                    }
                    *key = Some(node);
                }
                Some(k) => {
                    let mut node = node;
                    if matches!(node.value, Value::Null) && node.span.is_empty() {
                        // An empty value (`key:` and nothing) is found where
                        // the next token starts, often on a later line; it
                        // belongs right after its key.
                        node.span = (k.span.offset() + k.span.len(), 0).into();
                    }
                    entries.push((k, node));
                }
            },
        }
        let _ = at;
        Ok(())
    }

    fn scalar(
        &mut self,
        text: String,
        style: TScalarStyle,
        tagged: bool,
        at: usize,
    ) -> Result<Node, ParseError> {
        self.count(1, at)?;
        let src = self.pos.src;
        let (len, verbatim_at) = match style {
            TScalarStyle::Plain => {
                let verbatim = src.get(at..at + text.len()) == Some(text.as_str());
                (
                    if verbatim {
                        text.len()
                    } else {
                        self.pos.line_end(at) - at
                    },
                    verbatim.then_some(at),
                )
            }
            TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => {
                let quote = if matches!(style, TScalarStyle::SingleQuoted) {
                    '\''
                } else {
                    '"'
                };
                let len = quoted_len(&src[at..], quote);
                let inner = src.get(at + 1..at + len.saturating_sub(1));
                (len, (inner == Some(text.as_str())).then_some(at + 1))
            }
            TScalarStyle::Literal | TScalarStyle::Folded => (self.pos.line_end(at) - at, None),
        };
        let span: SourceSpan = (at, len).into();
        let value = if matches!(style, TScalarStyle::Plain) && !tagged {
            resolve_plain(&text).unwrap_or(Value::Str(Scalar { text, verbatim_at }))
        } else {
            Value::Str(Scalar { text, verbatim_at })
        };
        Ok(Node { value, span })
    }
}

fn too_deep(at: usize) -> ParseError {
    ParseError::at(
        (at, 1).into(),
        format!("values are nested more than {MAX_DEPTH} levels deep"),
    )
    .help("a stack file needs a handful of levels; check for runaway brackets")
}

/// Length in bytes of a quoted scalar starting with its opening quote.
fn quoted_len(s: &str, quote: char) -> usize {
    let mut chars = s.char_indices().skip(1).peekable();
    while let Some((i, c)) = chars.next() {
        if quote == '"' && c == '\\' {
            chars.next();
        } else if c == quote {
            if quote == '\'' && chars.peek().map(|&(_, c)| c) == Some('\'') {
                chars.next();
            } else {
                return i + 1;
            }
        }
    }
    s.len()
}

fn alias_len(src: &str, at: usize) -> usize {
    src[at..]
        .find(|c: char| c.is_whitespace() || ",]}".contains(c))
        .unwrap_or(src.len() - at)
}

fn node_count(node: &Node) -> usize {
    match &node.value {
        Value::Seq(items) => 1 + items.iter().map(node_count).sum::<usize>(),
        Value::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| node_count(k) + node_count(v))
                .sum::<usize>()
        }
        _ => 1,
    }
}

/// Entries a mapping has before its keys are indexed to find duplicates;
/// below it, comparing with each is cheaper than hashing.
const INDEXED: usize = 16;

/// The text of a key, borrowed when it is a string.
fn key_str(node: &Node) -> std::borrow::Cow<'_, str> {
    match &node.value {
        Value::Str(s) => std::borrow::Cow::Borrowed(&s.text),
        _ => std::borrow::Cow::Owned(key_text(node)),
    }
}

/// The text of a key, for comparing keys and naming them in messages.
pub fn key_text(node: &Node) -> String {
    match &node.value {
        Value::Str(s) => s.text.clone(),
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Null => "null".to_owned(),
        Value::Seq(_) | Value::Map(_) => String::new(),
    }
}

/// YAML 1.2 core schema: what a plain scalar means when it is not a string.
/// The text is kept so a string field still accepts `8300` or `true`.
fn resolve_plain(text: &str) -> Option<Value> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Some(Value::Null),
        "true" | "True" | "TRUE" => return Some(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Some(Value::Bool(false)),
        _ => {}
    }
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok().map(Value::Int);
    }
    if let Some(hex) = text.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok().map(Value::Int);
    }
    if let Some(oct) = text.strip_prefix("0o") {
        return i64::from_str_radix(oct, 8).ok().map(Value::Int);
    }
    let looks_float = digits
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_digit() || b == b'.')
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || b"._eE+-".contains(&b));
    if looks_float {
        return text.parse().ok().map(Value::Float);
    }
    None
}
