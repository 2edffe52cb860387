//! Text expanded from a template, with the hosts of commands left open.
//!
//! Every `${...}` of a locator or an environment value is resolved when the
//! stack is loaded, except `${NAME.host}` and `${host}`: where a command is
//! reached depends on what runs it (`127.0.0.1` under `orch up` and systemd,
//! a Service's DNS name under Kubernetes, a service lookup under Nomad). So
//! such values are kept as literal parts and [`Endpoint`]s, and each consumer
//! renders the endpoints its own way.

use std::borrow::Cow;
use std::fmt;

/// Where `orch up` (and anything on the same machine) reaches every command.
pub const LOOPBACK: &str = "127.0.0.1";

/// A command other services reach: the target of `${NAME.host}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub service: String,
    pub command: String,
}

impl Endpoint {
    pub fn new(service: impl Into<String>, command: impl Into<String>) -> Self {
        Endpoint {
            service: service.into(),
            command: command.into(),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.service, self.command)
    }
}

/// One part of a [`Text`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Literal(String),
    Host(Endpoint),
}

/// Literal text and hosts, in order; adjacent literals are always merged, so
/// two texts that read the same are equal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text(Vec<Part>);

impl Text {
    pub fn literal(text: impl Into<String>) -> Self {
        let mut t = Text::default();
        t.push_str(&text.into());
        t
    }

    /// Just the host of `endpoint`.
    pub fn host(endpoint: Endpoint) -> Self {
        Text(vec![Part::Host(endpoint)])
    }

    pub fn push_str(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        match self.0.last_mut() {
            Some(Part::Literal(last)) => last.push_str(text),
            _ => self.0.push(Part::Literal(text.to_owned())),
        }
    }

    pub fn push_host(&mut self, endpoint: Endpoint) {
        self.0.push(Part::Host(endpoint));
    }

    pub fn append(&mut self, other: &Text) {
        for part in &other.0 {
            match part {
                Part::Literal(text) => self.push_str(text),
                Part::Host(endpoint) => self.push_host(endpoint.clone()),
            }
        }
    }

    pub fn parts(&self) -> &[Part] {
        &self.0
    }

    /// Its length in bytes as `orch up` uses it (each host as [`LOOPBACK`]).
    pub fn len(&self) -> usize {
        self.0
            .iter()
            .map(|p| match p {
                Part::Literal(text) => text.len(),
                Part::Host(_) => LOOPBACK.len(),
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The commands whose host this text names.
    pub fn hosts(&self) -> impl Iterator<Item = &Endpoint> {
        self.0.iter().filter_map(|p| match p {
            Part::Host(endpoint) => Some(endpoint),
            Part::Literal(_) => None,
        })
    }

    pub fn has_hosts(&self) -> bool {
        self.hosts().next().is_some()
    }

    /// The text with each literal part passed through `literal` and each
    /// host replaced by what `host` says.
    pub fn render<'a>(
        &'a self,
        mut literal: impl FnMut(&'a str) -> Cow<'a, str>,
        mut host: impl FnMut(&'a Endpoint) -> Cow<'a, str>,
    ) -> String {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Literal(text) => out.push_str(&literal(text)),
                Part::Host(endpoint) => out.push_str(&host(endpoint)),
            }
        }
        out
    }

    /// The text as `orch up` uses it: every host is [`LOOPBACK`].
    pub fn loopback(&self) -> String {
        self.render(Cow::Borrowed, |_| Cow::Borrowed(LOOPBACK))
    }
}

/// A text equals a string when it is exactly that literal text, with no host.
impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        match self.0.as_slice() {
            [] => other.is_empty(),
            [Part::Literal(text)] => text == other,
            _ => false,
        }
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        self == other.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg() -> Endpoint {
        Endpoint::new("db", "pg")
    }

    #[test]
    fn literals_merge_and_hosts_stay_open() {
        let mut t = Text::literal("postgres://");
        t.push_host(pg());
        t.push_str(":");
        t.push_str("5432");
        assert_eq!(t.parts().len(), 3);
        assert_eq!(t.loopback(), "postgres://127.0.0.1:5432");
        assert_eq!(
            t.render(Cow::Borrowed, |e| Cow::Owned(format!(
                "{}-{}",
                e.service, e.command
            ))),
            "postgres://db-pg:5432"
        );
        assert_eq!(t.hosts().collect::<Vec<_>>(), [&pg()]);
        let mut u = Text::literal("url=");
        u.append(&t);
        assert_eq!(u.parts()[0], Part::Literal("url=postgres://".into()));
    }

    #[test]
    fn equals_a_string_only_without_hosts() {
        assert_eq!(Text::literal("a"), "a");
        assert_eq!(Text::literal(""), "");
        let mut t = Text::literal("127.0.0.1");
        assert_eq!(t, "127.0.0.1");
        t = Text::host(pg());
        assert_ne!(t, "127.0.0.1");
    }
}
