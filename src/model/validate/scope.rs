//! What templates can see, and their expansion into text with a problem
//! for each reference that does not resolve.

use std::cell::Cell;
use std::collections::HashMap;

use indexmap::IndexMap;

use super::super::template::{self, Ref, TemplateError};
use super::super::{Endpoint, Program, Text};
use super::{suggest, Lookup, Validator, MAX_EXPANDED};
use crate::config::raw::RawProgram;
use crate::config::Spanned;
use crate::diag::Problem;

/// What a service's templates can see.
pub(super) struct Scope<'a> {
    pub(super) service: &'a str,
    /// The command whose templates these are; `None` outside a command.
    pub(super) command: Option<&'a str>,
    /// `None` outside a command; `Some(None)` in a command without a port.
    pub(super) port: Option<Option<u16>>,
    /// The ports of each command of the service, by name.
    pub(super) ports: &'a IndexMap<String, Vec<Option<u16>>>,
    /// Locators visible: the service's own, then its dependencies'.
    pub(super) locators: &'a [&'a IndexMap<String, Text>],
    pub(super) stack_env: &'a IndexMap<String, String>,
    /// Who provides each locator of the stack, to explain a missing dependency.
    pub(super) providers: &'a HashMap<String, &'a str>,
    pub(super) lookup: Lookup<'a>,
    pub(super) suggestions: &'a Cell<usize>,
}

impl Scope<'_> {
    pub(super) fn resolve(&self, r: &Ref<'_>) -> Result<Text, TemplateError> {
        match *r {
            Ref::Port => self
                .own_port("port")
                .map(|port| Text::literal(port.to_string())),
            Ref::Host => {
                self.own_port("host")?;
                let command = self.command.expect("a scope with a port is a command's");
                Ok(self.host(command))
            }
            Ref::CommandPort(name) => self
                .command_ports(name)
                .map(|ports| Text::literal(ports[0].to_string())),
            Ref::CommandPorts(name) => self.command_ports(name).map(|ports| {
                Text::literal(
                    ports
                        .iter()
                        .map(u16::to_string)
                        .collect::<Vec<_>>()
                        .join(" "),
                )
            }),
            Ref::CommandHost(name) => self.command_ports(name).map(|_| self.host(name)),
            Ref::Name { name, default } => self.name(name, default),
        }
    }

    /// The port of this scope's own command, for `${port}` or `${host}`.
    fn own_port(&self, what: &str) -> Result<u16, TemplateError> {
        match self.port {
            Some(Some(port)) => Ok(port),
            Some(None) => Err(TemplateError::new(format!(
                "`${{{what}}}` is used, but this command has no port"
            ))
            .help("give the command `port: auto` or a port number")),
            None => Err(TemplateError::new(format!(
                "`${{{what}}}` only means something inside a command"
            ))
            .help(format!("name the command: `${{NAME.{what}}}`"))),
        }
    }

    /// Where command `name` of this service is reached, left open.
    fn host(&self, name: &str) -> Text {
        Text::host(Endpoint::new(self.service, name))
    }

    pub(super) fn command_ports(&self, name: &str) -> Result<Vec<u16>, TemplateError> {
        let Some(ports) = self.ports.get(name) else {
            let mut e = TemplateError::new(format!(
                "service `{}` has no command `{name}`",
                self.service
            ));
            if let Some(close) = suggest(
                self.suggestions,
                name,
                self.ports.keys().map(String::as_str),
            ) {
                e = e.help(format!("did you mean `{close}`?"));
            } else {
                e = e.help("`${NAME.port}` and `${NAME.host}` name a command of the same service; other services export what they offer with `provides`");
            }
            return Err(e);
        };
        let ports: Option<Vec<u16>> = ports.iter().copied().collect();
        ports.filter(|p| !p.is_empty()).ok_or_else(|| {
            TemplateError::new(format!("command `{name}` has no port"))
                .help("give it `port: auto` or a port number")
        })
    }

    pub(super) fn name(&self, name: &str, default: Option<&str>) -> Result<Text, TemplateError> {
        if let Some(locator) = self.locators.iter().find_map(|l| l.get(name)) {
            return Ok(locator.clone());
        }
        let found = self
            .stack_env
            .get(name)
            .cloned()
            .or_else(|| (self.lookup)(name));
        if let Some(value) = template::or_default(found, default) {
            return Ok(Text::literal(value));
        }
        if let Some(provider) = self.providers.get(name) {
            if *provider == self.service {
                return Err(TemplateError::new(format!(
                    "`{name}` is used before `provides` defines it"
                ))
                .help("a locator can use those declared above it"));
            }
            return Err(TemplateError::new(format!(
                "`{name}` is provided by service `{provider}`, which `{}` does not depend on",
                self.service
            ))
            .help(format!(
                "add `{provider}` to `depends_on` of `{}`",
                self.service
            )));
        }
        let known = self
            .locators
            .iter()
            .flat_map(|l| l.keys())
            .chain(self.stack_env.keys())
            .map(String::as_str);
        let help = match suggest(self.suggestions, name, known) {
            Some(close) => format!("did you mean `${{{close}}}`?"),
            None => format!(
                "set it in the stack's `env`, give a default with `${{{name}:-value}}`, or write `$${{{name}}}` to leave it to the shell"
            ),
        };
        Err(TemplateError::new(format!("`${{{name}}}` is not defined")).help(help))
    }
}

impl Validator<'_> {
    /// The stack `env` `raw` laid over `env` (the layers beneath it).
    pub(super) fn stack_env(
        &mut self,
        raw: &IndexMap<Spanned<String>, Spanned<String>>,
        mut env: IndexMap<String, String>,
    ) -> IndexMap<String, String> {
        for (key, value) in raw {
            self.check_env_name(key);
            let lookup = self.lookup;
            let expanded = template::expand(&value.value, |r| {
                match r {
                Ref::Name { name, default } => template::or_default(
                    env.get(*name).cloned().or_else(|| lookup(name)),
                    *default,
                )
                .map(Text::literal)
                .ok_or_else(|| {
                        TemplateError::new(format!("`${{{name}}}` is not defined"))
                            .help(format!("the stack `env` can use orch's own environment and the entries above it; give a default with `${{{name}:-value}}`"))
                    }),
                _ => Err(TemplateError::new("the stack `env` can only use variables, not ports or hosts")
                    .help("move this entry to the `env` of a service or command")),
            }
            });
            // One that cannot be expanded is reported once, here; the
            // entries below that use it see its text. Only variables
            // resolve here, so the text has no host.
            let text = match expanded {
                Ok(text) => self.count(text, value).map(|t| t.loopback()),
                Err(e) => {
                    self.template_problem(&e, value);
                    None
                }
            };
            env.insert(
                key.value.clone(),
                text.unwrap_or_else(|| value.value.clone()),
            );
        }
        env
    }

    pub(super) fn env_map(
        &mut self,
        raw: &IndexMap<Spanned<String>, Spanned<String>>,
        scope: &Scope<'_>,
    ) -> IndexMap<String, Text> {
        let mut env = IndexMap::with_capacity(raw.len());
        for (key, value) in raw {
            self.check_env_name(key);
            if let Some(text) = self.expand(value, scope) {
                env.insert(key.value.clone(), text);
            }
        }
        env
    }

    pub(super) fn expand(&mut self, value: &Spanned<String>, scope: &Scope<'_>) -> Option<Text> {
        if self.expanded > MAX_EXPANDED {
            return None;
        }
        match template::expand(&value.value, |r| scope.resolve(r)) {
            Ok(text) => self.count(text, value),
            Err(e) => {
                self.template_problem(&e, value);
                None
            }
        }
    }

    /// Count `text`, expanded from `value`, against [`MAX_EXPANDED`]: past
    /// it, a problem (once) and no text.
    fn count(&mut self, text: Text, value: &Spanned<String>) -> Option<Text> {
        let before = self.expanded;
        self.expanded += text.len();
        if self.expanded <= MAX_EXPANDED {
            return Some(text);
        }
        if before <= MAX_EXPANDED {
            self.problem(
                Problem::new(
                    format!("the templates of this file expand to more than {} MiB", MAX_EXPANDED >> 20),
                    value.span,
                    "the limit is reached here",
                )
                .help("a stack file needs far less; check for values that repeat each other, in commands with many processes"),
            );
        }
        None
    }

    pub(super) fn template_problem<T>(&mut self, e: &TemplateError, within: &Spanned<T>) {
        self.problem(
            Problem::new(e.message.clone(), e.span_in(within), "").maybe_help(e.help.clone()),
        );
    }

    pub(super) fn program(
        &mut self,
        raw: &Spanned<RawProgram>,
        scope: &Scope<'_>,
    ) -> Option<Program<Text>> {
        match &raw.value {
            RawProgram::Shell(text) => {
                let spanned = Spanned {
                    value: text.clone(),
                    span: raw.span,
                    text_at: raw.text_at,
                };
                self.expand(&spanned, scope).map(Program::Shell)
            }
            RawProgram::Argv(args) => {
                let expanded: Vec<Option<Text>> =
                    args.iter().map(|a| self.expand(a, scope)).collect();
                expanded
                    .into_iter()
                    .collect::<Option<Vec<_>>>()
                    .map(Program::Argv)
            }
        }
    }
}
