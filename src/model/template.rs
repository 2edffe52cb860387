//! `${...}` templates: parsing, and expansion against a scope.
//!
//! `${port}` is the command's own port, `${NAME.port}` / `${NAME.ports}` the
//! port(s) of another command of the same service, `${host}` / `${NAME.host}`
//! the address where a command is reached, `${NAME}` a locator or a
//! variable, `${NAME:-default}` the same with a fallback for a name that is
//! unset or empty, and `$$` a literal `$` (in a default too). A `$` not
//! followed by `{` or `$` is kept as it is, so shell commands can still use
//! `$HOME`.
//!
//! Expansion gives a [`Text`]: hosts stay open until something renders them.

use miette::SourceSpan;

use super::text::Text;
use crate::config::Spanned;

/// One reference inside a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref<'a> {
    /// `${port}`
    Port,
    /// `${NAME.port}`
    CommandPort(&'a str),
    /// `${NAME.ports}`
    CommandPorts(&'a str),
    /// `${host}`
    Host,
    /// `${NAME.host}`
    CommandHost(&'a str),
    /// `${NAME}` or `${NAME:-default}`
    Name {
        name: &'a str,
        default: Option<&'a str>,
    },
}

/// A piece of a template: text to copy, or a reference with its byte range in the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(&'a str),
    Ref {
        reference: Ref<'a>,
        at: usize,
        len: usize,
    },
}

/// Why a template cannot be read or expanded, with the byte range it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub at: usize,
    pub len: usize,
    pub message: String,
    pub help: Option<String>,
}

impl TemplateError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            at: 0,
            len: 0,
            message: message.into(),
            help: None,
        }
    }

    #[must_use]
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// The span of this error in the file, inside the value `within`.
    pub fn span_in<T>(&self, within: &Spanned<T>) -> SourceSpan {
        match within.text_at {
            Some(at) => (at + self.at, self.len).into(),
            None => within.span,
        }
    }
}

/// Split a template into pieces.
pub fn parse(text: &str) -> Result<Vec<Piece<'_>>, TemplateError> {
    let mut pieces = Vec::new();
    let mut rest = 0;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'$') => {
                pieces.push(Piece::Text(&text[rest..=i]));
                i += 2;
                rest = i;
            }
            Some(b'{') => {
                let Some(close) = text[i..].find('}') else {
                    return Err(TemplateError {
                        at: i,
                        len: text.len() - i,
                        message: "`${` is never closed".into(),
                        help: Some("close it with `}`, or write `$${` for a literal `${`".into()),
                    });
                };
                if i > rest {
                    pieces.push(Piece::Text(&text[rest..i]));
                }
                let inner = &text[i + 2..i + close];
                let len = close + 1;
                let reference = reference(inner).map_err(|mut e| {
                    e.at = i;
                    e.len = len;
                    e
                })?;
                pieces.push(Piece::Ref {
                    reference,
                    at: i,
                    len,
                });
                i += len;
                rest = i;
            }
            _ => i += 1,
        }
    }
    if rest < text.len() {
        pieces.push(Piece::Text(&text[rest..]));
    }
    Ok(pieces)
}

fn reference(inner: &str) -> Result<Ref<'_>, TemplateError> {
    if let Some((name, default)) = inner.split_once(":-") {
        check_name(name)?;
        return Ok(Ref::Name {
            name,
            default: Some(default),
        });
    }
    match inner {
        "port" => return Ok(Ref::Port),
        "host" => return Ok(Ref::Host),
        _ => {}
    }
    if let Some((command, field)) = inner.split_once('.') {
        check_name(command)?;
        return match field {
            "port" => Ok(Ref::CommandPort(command)),
            "ports" => Ok(Ref::CommandPorts(command)),
            "host" => Ok(Ref::CommandHost(command)),
            _ => Err(TemplateError::new(format!(
                "`${{{inner}}}`: a command has `.port`, `.ports` and `.host`, not `.{field}`"
            ))
            .help(format!(
                "write `${{{command}.port}}`, `${{{command}.ports}}` or `${{{command}.host}}`"
            ))),
        };
    }
    check_name(inner)?;
    Ok(Ref::Name {
        name: inner,
        default: None,
    })
}

fn check_name(name: &str) -> Result<(), TemplateError> {
    let ok = super::shaped(
        name,
        |c| c.is_ascii_alphabetic() || c == '_',
        |c| c.is_ascii_alphanumeric() || c == '_' || c == '-',
    );
    if ok {
        Ok(())
    } else {
        Err(TemplateError::new(format!("`{name}` is not a name a template can refer to"))
            .help("a reference is `${port}`, `${host}`, `${NAME.port}`, `${NAME.ports}`, `${NAME.host}`, `${NAME}` or `${NAME:-default}`; write `$$` for a literal `$`"))
    }
}

/// The value of `${NAME}` or `${NAME:-default}` when NAME's own value is
/// `found`. As in shells and docker compose, the default stands in for a
/// value that is missing or empty; a `$$` in it is a `$`.
pub fn or_default(found: Option<String>, default: Option<&str>) -> Option<String> {
    match default {
        None => found,
        Some(default) => found
            .filter(|value| !value.is_empty())
            .or_else(|| Some(default.replace("$$", "$"))),
    }
}

/// Most bytes the references of one template may add to its text. No
/// process can receive a longer argument or environment variable (the
/// kernel's limit is 128 KiB), and without a bound a few dozen values that
/// each repeat the one before twice would need terabytes.
pub const MAX_GROWTH: usize = 128 * 1024;

/// Expand a template; `resolve` gives the value of each reference. The
/// references may add at most [`MAX_GROWTH`] bytes to the text.
pub fn expand<'a>(
    text: &'a str,
    mut resolve: impl FnMut(&Ref<'a>) -> Result<Text, TemplateError>,
) -> Result<Text, TemplateError> {
    let mut out = Text::default();
    for piece in parse(text)? {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Ref { reference, at, len } => match resolve(&reference) {
                Ok(value) if out.len() + value.len() > text.len() + MAX_GROWTH => {
                    return Err(TemplateError {
                        at,
                        len,
                        message: format!(
                            "`{}` makes this value longer than {} KiB",
                            &text[at..at + len],
                            MAX_GROWTH / 1024
                        ),
                        help: Some("no process can receive an argument or a variable this long; check for values that repeat each other".into()),
                    });
                }
                Ok(value) => out.append(&value),
                Err(mut e) => {
                    e.at = at;
                    e.len = len;
                    return Err(e);
                }
            },
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(text: &str) -> Vec<Ref<'_>> {
        parse(text)
            .unwrap()
            .into_iter()
            .filter_map(|p| match p {
                Piece::Ref { reference, .. } => Some(reference),
                Piece::Text(_) => None,
            })
            .collect()
    }

    #[test]
    fn reads_every_form() {
        assert_eq!(
            refs("${port} ${pg.port} ${pg.ports} ${host} ${pg.host} ${DB} ${X:-a:b}"),
            vec![
                Ref::Port,
                Ref::CommandPort("pg"),
                Ref::CommandPorts("pg"),
                Ref::Host,
                Ref::CommandHost("pg"),
                Ref::Name {
                    name: "DB",
                    default: None
                },
                Ref::Name {
                    name: "X",
                    default: Some("a:b")
                },
            ]
        );
    }

    #[test]
    fn dollars_stay_for_the_shell() {
        let out = expand("echo $HOME $$ $${X} cost: 5$", |_| Ok(Text::default())).unwrap();
        assert_eq!(out, "echo $HOME $ ${X} cost: 5$");
    }

    #[test]
    fn defaults_stand_in_for_missing_and_empty_values() {
        let set = || Some("eu".to_owned());
        assert_eq!(or_default(set(), Some("local")), set());
        assert_eq!(or_default(None, Some("local")).as_deref(), Some("local"));
        assert_eq!(
            or_default(Some(String::new()), Some("local")).as_deref(),
            Some("local")
        );
        assert_eq!(or_default(Some(String::new()), None).as_deref(), Some(""));
        assert_eq!(or_default(None, None), None);
        assert_eq!(
            or_default(None, Some("a$$b $c $$$")).as_deref(),
            Some("a$b $c $$")
        );
    }

    #[test]
    fn references_add_at_most_128_kib() {
        let big = "x".repeat(MAX_GROWTH / 2);
        let text = "${A}${A}${A}";
        let e = expand(text, |_| Ok(Text::literal(big.clone()))).unwrap_err();
        assert_eq!((e.at, e.len), (8, 4));
        assert_eq!(e.message, "`${A}` makes this value longer than 128 KiB");
        assert_eq!(
            expand("${A}${A}", |_| Ok(Text::literal(big.clone())))
                .unwrap()
                .len(),
            MAX_GROWTH
        );
    }

    #[test]
    fn expands_in_place() {
        let out = expand("http://[::1]:${web.port}/x", |r| match r {
            Ref::CommandPort("web") => Ok(Text::literal("8300")),
            _ => Err(TemplateError::new("no")),
        });
        assert_eq!(out.unwrap(), "http://[::1]:8300/x");
    }

    #[test]
    fn errors_point_at_the_reference() {
        let e = expand("a ${NOPE} b", |_| Err(TemplateError::new("unknown"))).unwrap_err();
        assert_eq!((e.at, e.len), (2, 7));
        let e = parse("x ${open").unwrap_err();
        assert_eq!((e.at, e.len), (2, 6));
        let e = parse("${web.hosts}").unwrap_err();
        assert!(e.message.contains("`.hosts`"));
        let e = parse("${}").unwrap_err();
        assert!(e.message.contains("not a name"));
    }
}
