//! `orch export`: the validated stack compiled into the formats of engines
//! that run many machines: systemd units, Kubernetes manifests, a Nomad job.
//!
//! Exporters read the [`Stack`] alone, never the raw file, and render the
//! hosts the model leaves open ([`crate::model::Text`]) the way their engine
//! reaches a command. What an engine cannot carry is a [`Warning`].

pub mod kubernetes;
pub mod nomad;
pub mod systemd;
mod yaml;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::model::{Check, Command, Endpoint, ServiceId, Stack};

/// Something of the stack an engine does not carry, or carries only in part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The field, as the stack file names it (`ready.log`, `user`, ...).
    pub field: String,
    /// `service` or `service.command`.
    pub at: String,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "warning: {} of {}: {}",
            self.field, self.at, self.message
        )
    }
}

/// Warnings, in the order they were found.
#[derive(Debug, Default)]
pub struct Warnings(Vec<Warning>);

impl Warnings {
    /// Add a warning, unless the same one is there already (a `once`
    /// command that runs in several places is looked at in each).
    pub fn add(&mut self, field: &str, at: impl fmt::Display, message: impl Into<String>) {
        let warning = Warning {
            field: field.to_owned(),
            at: at.to_string(),
            message: message.into(),
        };
        if !self.0.contains(&warning) {
            self.0.push(warning);
        }
    }

    pub fn into_vec(self) -> Vec<Warning> {
        self.0
    }
}

/// What an exporter produced.
#[derive(Debug)]
pub struct Export {
    /// `(path relative to the output folder, contents)`; a single unnamed
    /// entry (empty path) for the exporters that write to stdout.
    pub files: Vec<(String, String)>,
    pub warnings: Vec<Warning>,
}

/// Why a stack cannot be exported as asked.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ExportError {
    /// The command line asks for something impossible: exit 2.
    #[error("{message}")]
    Usage {
        message: String,
        #[help]
        help: Option<String>,
    },
    /// The stack is valid for orch but cannot be expressed for the engine: exit 1.
    #[error("{message}")]
    Unmappable {
        message: String,
        #[help]
        help: Option<String>,
    },
}

/// `a-b`: the parts joined by `-`, lowercase, every character other than a
/// letter or a digit made `-`, starting with a letter, at most 63
/// characters: a DNS label (RFC 1035), as Kubernetes Service names and Nomad
/// service names must be.
pub fn dns_label(parts: &[&str]) -> String {
    let joined = parts.join("-").to_ascii_lowercase();
    let mut label: String = joined
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    if !label.starts_with(|c: char| c.is_ascii_alphabetic()) {
        label.insert_str(0, "x-");
    }
    label.truncate(63);
    label.trim_end_matches('-').to_owned()
}

/// The DNS label of a command: `service-command`.
pub fn endpoint_label(endpoint: &Endpoint) -> String {
    dns_label(&[&endpoint.service, &endpoint.command])
}

pub fn endpoint(stack: &Stack, sid: ServiceId, command: &Command) -> Endpoint {
    Endpoint::new(&stack.services[sid].name, &command.name)
}

/// The DNS label of every command, checked to be unique: two commands whose
/// names differ only in case or punctuation would share a name.
pub fn unique_labels(stack: &Stack) -> Result<(), ExportError> {
    let mut seen: HashMap<String, Endpoint> = HashMap::new();
    for (sid, service) in stack.services.iter().enumerate() {
        for command in &service.commands {
            let endpoint = endpoint(stack, sid, command);
            let label = endpoint_label(&endpoint);
            if let Some(first) = seen.get(&label) {
                return Err(ExportError::Unmappable {
                    message: format!("`{first}` and `{endpoint}` would both be named `{label}`"),
                    help: Some(
                        "names become DNS labels (lowercase letters, digits and `-`); rename one of them"
                            .into(),
                    ),
                });
            }
            seen.insert(label, endpoint);
        }
    }
    Ok(())
}

/// The services whose commands `sid` waits for: its dependencies, with each
/// bundle replaced by what it depends on (transitively), each once.
pub fn waited_for(stack: &Stack, sid: ServiceId) -> Vec<ServiceId> {
    let mut out = Vec::new();
    let mut todo: Vec<ServiceId> = stack.services[sid]
        .depends_on
        .iter()
        .rev()
        .copied()
        .collect();
    while let Some(dep) = todo.pop() {
        if out.contains(&dep) {
            continue;
        }
        if stack.services[dep].is_bundle() {
            todo.extend(stack.services[dep].depends_on.iter().rev());
        } else {
            out.push(dep);
        }
    }
    out
}

/// An `http://` URL of a readiness check, as the engines' own checks take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// Without the brackets of an IPv6 address.
    pub host: String,
    pub port: u16,
    /// From the first `/` on, query included; `/` when the URL has none.
    pub path: String,
}

impl HttpUrl {
    /// `http://HOST[:PORT][/PATH]`; `None` when the port is not a number.
    pub fn parse(url: &str) -> Option<HttpUrl> {
        let rest = url.strip_prefix("http://")?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (host, rest) = v6.split_once(']')?;
                (host, rest.strip_prefix(':'))
            }
            None => match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        let port = port.map_or(Some(80), |p| p.parse().ok())?;
        Some(HttpUrl {
            host: host.to_owned(),
            port,
            path,
        })
    }
}

/// A working folder as engines take it: absolute, without `.` parts.
pub fn folder(path: &Path) -> String {
    path.components().collect::<PathBuf>().display().to_string()
}

/// Whole seconds, rounded up, at least 1: for engines that count in seconds.
pub fn whole_seconds(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

/// Warnings every engine gives alike.
pub fn check_warning(warnings: &mut Warnings, at: &Endpoint, check: &Check, engine: &str) {
    if let Check::Log(re) = check {
        warnings.add(
            "ready.log",
            at,
            format!(
                "{engine} cannot watch output lines for `{}`; the member counts as ready once started",
                re.as_str()
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        assert_eq!(dns_label(&["db", "postgres"]), "db-postgres");
        assert_eq!(dns_label(&["My_Api", "web_1"]), "my-api-web-1");
        assert_eq!(dns_label(&["2fa", "x"]), "x-2fa-x");
        assert_eq!(dns_label(&[&"a".repeat(70)]).len(), 63);
        assert_eq!(dns_label(&[&"a".repeat(62), "b"]), "a".repeat(62));
    }

    #[test]
    fn http_urls() {
        let parse = |u| HttpUrl::parse(u).map(|h| (h.port, h.path));
        assert_eq!(
            parse("http://127.0.0.1:8300/health"),
            Some((8300, "/health".into()))
        );
        assert_eq!(
            HttpUrl::parse("http://[::1]:81/").map(|h| h.host),
            Some("::1".into())
        );
        assert_eq!(parse("http://[::1]:81/"), Some((81, "/".into())));
        assert_eq!(parse("http://[::1]/x"), Some((80, "/x".into())));
        assert_eq!(parse("http://host"), Some((80, "/".into())));
        assert_eq!(parse("http://host:9?a=1"), Some((9, "/?a=1".into())));
        assert_eq!(parse("http://u:p@host:7/a"), Some((7, "/a".into())));
        assert_eq!(parse("http://host:x/"), None);
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!(whole_seconds(Duration::from_millis(200)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(10)), 10);
        assert_eq!(whole_seconds(Duration::from_millis(1500)), 2);
    }
}
