//! The dotenv syntax of `env_file`: `KEY=value` lines, comments and blank
//! lines, an optional `export ` prefix, unquoted values (up to a ` #`
//! comment, trimmed), single quotes (verbatim), double quotes (escapes
//! `\n \t \r \" \\ \$`), both of which may span lines, and `${VAR}`,
//! `${VAR:-default}` and `$VAR` outside single quotes.
//!
//! No crate reads this syntax as asked: dotenvy (the kept fork of dotenv)
//! has no `${VAR:-default}`, lets the process environment win over the
//! file's own entries, and reports a bad line without its place.

use indexmap::IndexMap;
use miette::SourceSpan;

use crate::diag::Problem;

/// Read a dotenv text into its entries, in order (a later entry of the same
/// key replaces the earlier one). A `${VAR}` is looked up in the entries
/// above it, then with `lookup`; one that is nowhere is a problem, as is
/// every line that does not read. Spans are offsets into `text`.
pub fn parse(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<IndexMap<String, String>, Vec<Problem>> {
    let mut reader = Reader {
        text,
        at: 0,
        entries: IndexMap::new(),
        problems: Vec::new(),
        lookup,
    };
    while reader.skip_blank() {
        if let Err(problem) = reader.entry() {
            reader.problems.push(problem);
            reader.skip_line();
        }
    }
    if reader.problems.is_empty() {
        Ok(reader.entries)
    } else {
        Err(reader.problems)
    }
}

struct Reader<'a> {
    text: &'a str,
    at: usize,
    entries: IndexMap<String, String>,
    problems: Vec<Problem>,
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl Reader<'_> {
    fn rest(&self) -> &str {
        &self.text[self.at..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn span(&self, from: usize) -> SourceSpan {
        (from, self.at - from).into()
    }

    fn skip_while(&mut self, f: impl Fn(char) -> bool) -> &str {
        let start = self.at;
        let len = self.rest().find(|c| !f(c)).unwrap_or(self.rest().len());
        self.at += len;
        &self.text[start..self.at]
    }

    /// Skip blank lines and comments; whether an entry follows.
    fn skip_blank(&mut self) -> bool {
        loop {
            self.skip_while(char::is_whitespace);
            match self.peek() {
                None => return false,
                Some('#') => self.skip_line(),
                Some(_) => return true,
            }
        }
    }

    fn skip_line(&mut self) {
        self.skip_while(|c| c != '\n');
    }

    fn skip_spaces(&mut self) {
        self.skip_while(|c| c == ' ' || c == '\t');
    }

    /// `[export ]KEY = value`, up to the end of its (last) line.
    fn entry(&mut self) -> Result<(), Problem> {
        if let Some(after) = self.rest().strip_prefix("export") {
            if after.starts_with([' ', '\t']) {
                self.at += "export".len();
                self.skip_spaces();
            }
        }
        let start = self.at;
        let key = self
            .skip_while(|c| !c.is_whitespace() && c != '=' && c != '#')
            .to_owned();
        let key_span = self.span(start);
        if key.is_empty() || !key.starts_with(is_name_start) || !key.chars().all(is_name) {
            return Err(Problem::new(
                if key.is_empty() {
                    "a line without a name".to_owned()
                } else {
                    format!("`{key}` is not a valid environment variable name")
                },
                key_span,
                "",
            )
            .help(
                "write KEY=value; a name has letters, digits and `_`, not starting with a digit",
            ));
        }
        self.skip_spaces();
        if self.peek() != Some('=') {
            return Err(Problem::new(
                format!("`{key}` needs a value"),
                self.span(self.at),
                "expected `=` here",
            )
            .help(format!(
                "write `{key}=value` (or `{key}=` for an empty value)"
            )));
        }
        self.at += 1;
        self.skip_spaces();
        let value = match self.peek() {
            Some('\'') => self.quoted('\'')?,
            Some('"') => self.quoted('"')?,
            _ => {
                let start = self.at;
                let line = self.skip_while(|c| c != '\n');
                // A comment starts at a `#` after a blank.
                let end = line
                    .char_indices()
                    .find(|&(i, c)| c == '#' && i > 0 && line[..i].ends_with([' ', '\t']))
                    .map_or(line.len(), |(i, _)| i);
                let raw = line[..end].trim_end().to_owned();
                self.expand(&raw, start, false)?
            }
        };
        self.entries.insert(key, value);
        Ok(())
    }

    /// A quoted value, then nothing but a comment up to the end of the line.
    fn quoted(&mut self, quote: char) -> Result<String, Problem> {
        let open = self.at;
        self.at += 1;
        let mut escaped = false;
        loop {
            let Some(c) = self.peek() else {
                return Err(
                    Problem::new("this quote is never closed", (open, 1).into(), "")
                        .help(format!("end the value with {quote}")),
                );
            };
            self.at += c.len_utf8();
            if escaped {
                escaped = false;
            } else if quote == '"' && c == '\\' {
                escaped = true;
            } else if c == quote {
                break;
            }
        }
        let inside = &self.text[open + 1..self.at - 1];
        self.skip_spaces();
        if !matches!(self.peek(), None | Some('\n' | '#' | '\r')) {
            let start = self.at;
            self.skip_line();
            return Err(
                Problem::new("text after the closing quote", self.span(start), "")
                    .help("put the whole value inside the quotes, or start a comment with `#`"),
            );
        }
        if quote == '\'' {
            Ok(inside.to_owned())
        } else {
            self.expand(inside, open + 1, true)
        }
    }

    /// Expand `${VAR}`, `${VAR:-default}` and `$VAR` in `raw`, which stands
    /// at `at` in the text; with `escapes` (inside double quotes), also
    /// `\n \t \r \" \\ \$`.
    fn expand(&self, raw: &str, at: usize, escapes: bool) -> Result<String, Problem> {
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        let specials: &[char] = if escapes { &['$', '\\'] } else { &['$'] };
        while let Some(i) = rest.find(specials) {
            out.push_str(&rest[..i]);
            let here = at + (raw.len() - rest.len()) + i;
            rest = &rest[i..];
            if let Some(after) = rest.strip_prefix('\\') {
                let mut chars = after.chars();
                match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some(c @ ('"' | '\\' | '$')) => out.push(c),
                    Some(other) => {
                        out.push('\\');
                        out.push(other);
                    }
                    None => out.push('\\'),
                }
                rest = chars.as_str();
            } else if let Some(inner) = rest.strip_prefix("${") {
                let Some(end) = inner.find('}') else {
                    return Err(Problem::new("`${` is never closed", (here, 2).into(), "")
                        .help("write `${NAME}` or `${NAME:-default}`"));
                };
                let (name, default) = match inner[..end].split_once(":-") {
                    Some((name, default)) => (name, Some(default)),
                    None => (&inner[..end], None),
                };
                let span = (here, end + 3).into();
                out.push_str(&self.resolve(name, default, span)?);
                rest = &inner[end + 1..];
            } else {
                let after = &rest[1..];
                let len = if after.starts_with(is_name_start) {
                    after.find(|c| !is_name(c)).unwrap_or(after.len())
                } else {
                    0
                };
                if len == 0 {
                    out.push('$');
                } else {
                    out.push_str(&self.resolve(&after[..len], None, (here, len + 1).into())?);
                }
                rest = &after[len..];
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    fn resolve(
        &self,
        name: &str,
        default: Option<&str>,
        span: SourceSpan,
    ) -> Result<String, Problem> {
        if name.is_empty() || !name.starts_with(is_name_start) || !name.chars().all(is_name) {
            return Err(
                Problem::new(format!("`{name}` is not a variable name"), span, "")
                    .help("write `${NAME}` or `${NAME:-default}`"),
            );
        }
        let found = self
            .entries
            .get(name)
            .cloned()
            .or_else(|| (self.lookup)(name))
            .filter(|v| default.is_none() || !v.is_empty());
        found.or_else(|| default.map(str::to_owned)).ok_or_else(|| {
            Problem::new(format!("`{name}` is not defined"), span, "").help(format!(
                "define it above in this file or in orch's environment, or give a default: `${{{name}:-value}}`"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Entries = Vec<(String, String)>;
    /// Each problem's message and primary (offset, length).
    type Found = Vec<(String, (usize, usize))>;

    fn read(text: &str) -> Result<Entries, Found> {
        let lookup = |name: &str| match name {
            "HOME" => Some("/home/me".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        parse(text, &lookup)
            .map(|m| m.into_iter().collect())
            .map_err(|problems| {
                problems
                    .into_iter()
                    .map(|p| {
                        let span = p.labels[0].0;
                        (p.message, (span.offset(), span.len()))
                    })
                    .collect()
            })
    }

    fn ok(text: &str) -> Vec<(String, String)> {
        read(text).unwrap_or_else(|e| panic!("{text:?}: {e:?}"))
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn every_element_of_the_syntax() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("A=1", &[("A", "1")]),
            ("A=1\nB=2\n", &[("A", "1"), ("B", "2")]),
            // blank lines and comments
            ("\n\n  \n# a comment\nA=1\n   # indented\n", &[("A", "1")]),
            // an inline comment needs a blank before the #
            ("A=1 # note\nB=x#y\n", &[("A", "1"), ("B", "x#y")]),
            // export prefix
            ("export A=1\nexport\tB=2", &[("A", "1"), ("B", "2")]),
            ("exported=1", &[("exported", "1")]),
            // blanks around = and after the value
            ("A = 1  \n", &[("A", "1")]),
            ("A=", &[("A", "")]),
            ("A=a b  c", &[("A", "a b  c")]),
            // single quotes: verbatim
            (
                "A='x $HOME ${HOME} \\n # y'",
                &[("A", "x $HOME ${HOME} \\n # y")],
            ),
            ("A='two\nlines'", &[("A", "two\nlines")]),
            // double quotes: escapes and expansion
            (
                "A=\"tab\\tnl\\nq\\\"bs\\\\d\\$HOME\"",
                &[("A", "tab\tnl\nq\"bs\\d$HOME")],
            ),
            (
                "A=\"${HOME}/x # not a comment\"",
                &[("A", "/home/me/x # not a comment")],
            ),
            ("A=\"two\nlines\" # comment", &[("A", "two\nlines")]),
            ("A=\"\\w\"", &[("A", "\\w")]),
            // interpolation: orch's environment, earlier entries, defaults
            ("A=$HOME/x", &[("A", "/home/me/x")]),
            ("A=${HOME}", &[("A", "/home/me")]),
            ("A=1\nB=${A}2", &[("A", "1"), ("B", "12")]),
            ("A=${NOPE:-fallback}", &[("A", "fallback")]),
            ("A=${EMPTY:-fallback}", &[("A", "fallback")]),
            ("A=${HOME:-fallback}", &[("A", "/home/me")]),
            ("A=${EMPTY}", &[("A", "")]),
            ("A=cost $5 and $", &[("A", "cost $5 and $")]),
            // a later entry replaces an earlier one
            ("A=1\nA=2", &[("A", "2")]),
            // Windows line ends
            ("A=1\r\nB='x'\r\n", &[("A", "1"), ("B", "x")]),
        ];
        for (text, want) in cases {
            assert_eq!(ok(text), pairs(want), "{text:?}");
        }
    }

    #[test]
    fn problems_point_at_their_place() {
        let cases: &[(&str, &str, (usize, usize))] = &[
            (
                "A=1\n1A=2",
                "`1A` is not a valid environment variable name",
                (4, 2),
            ),
            (
                "A-B=2",
                "`A-B` is not a valid environment variable name",
                (0, 3),
            ),
            ("JUSTKEY\n", "`JUSTKEY` needs a value", (7, 0)),
            ("A='open\n", "this quote is never closed", (2, 1)),
            ("A=\"open", "this quote is never closed", (2, 1)),
            ("A='x' y", "text after the closing quote", (6, 1)),
            ("A=${NOPE}", "`NOPE` is not defined", (2, 7)),
            ("A=x$NOPE", "`NOPE` is not defined", (3, 5)),
            ("A=${HOME", "`${` is never closed", (2, 2)),
            ("A=${1X}", "`1X` is not a variable name", (2, 5)),
            ("A=\"${NOPE}\"", "`NOPE` is not defined", (3, 7)),
        ];
        for (text, message, span) in cases {
            let found = read(text).expect_err(text);
            assert_eq!(found, vec![((*message).to_owned(), *span)], "{text:?}");
        }
    }

    #[test]
    fn every_bad_line_is_reported() {
        let found = read("1=a\nOK=1\n2=b\n").expect_err("two bad lines");
        assert_eq!(found.len(), 2);
    }
}
