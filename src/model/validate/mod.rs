//! Raw structs to the validated [`Stack`]: names, dependencies, cycles,
//! locators, ports and templates, every problem collected with its place.

mod command;
mod graph;
mod locators;
mod ports;
mod scope;

use std::cell::Cell;
use std::path::Path;

use indexmap::IndexMap;

use super::{env, Dag, Service, ServiceId, Stack};
use crate::config::raw::{PortRange, RawService, RawStack};
use crate::config::Spanned;
use crate::diag::Problem;
use scope::Scope;

pub(super) const MAX_PROCESSES: u32 = 10_000;
/// Most members (processes) of a stack: each is expanded on its own, so a
/// file of a few kilobytes could otherwise ask for millions.
pub(super) const MAX_MEMBERS: usize = 100_000;

pub(super) type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// "Did you mean" suggestions looked for in one file: each compares a name
/// with every candidate (thousands, in a large stack), and only the first
/// problems are shown, so a file with a mistake in every service would
/// otherwise take hours.
const SUGGESTIONS: usize = crate::diag::MAX_SHOWN;

/// Most bytes all the templates of one file may expand to: a command of
/// 10,000 processes, each with a value that repeats others, would otherwise
/// take gigabytes from a file of a few lines.
pub(super) const MAX_EXPANDED: usize = 64 << 20;

/// The closest of `candidates` to `name`, while the file's `budget` of
/// suggestions lasts.
pub(super) fn suggest<'c>(
    budget: &Cell<usize>,
    name: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let left = budget.get().checked_sub(1)?;
    budget.set(left);
    crate::diag::suggest(name, candidates)
}

/// Validate `raw`. `problems` are those found reading it: when there are
/// some, parts of the stack are missing, so only the checks of names,
/// dependencies, locator names and ports run; templates wait for a file
/// that reads cleanly.
pub(in crate::model) fn validate(
    file: &Path,
    raw: RawStack,
    problems: Vec<Problem>,
    lookup: Lookup<'_>,
) -> Result<Stack, Vec<Problem>> {
    let complete = problems.is_empty();
    let suggestions = Cell::new(SUGGESTIONS);
    let mut v = Validator {
        problems,
        lookup,
        complete,
        suggestions: &suggestions,
        expanded: 0,
    };
    let stack = v.stack(file, raw);
    if v.problems.is_empty() {
        Ok(stack.expect("a stack is built whenever no problem was found"))
    } else {
        let mut problems = v.problems;
        problems.sort_by_key(|p| p.labels.first().map_or(0, |(s, _)| s.offset()));
        // Each process of a command is expanded on its own, so a mistake in
        // the command is found once per process: report it once.
        problems.dedup();
        Err(problems)
    }
}

pub(super) struct Validator<'a> {
    problems: Vec<Problem>,
    lookup: Lookup<'a>,
    /// Whether every part of the file was read; templates are checked only then.
    complete: bool,
    /// Suggestions left to look for.
    suggestions: &'a Cell<usize>,
    /// Bytes the templates expanded to so far.
    expanded: usize,
}

/// A service as it is being validated.
pub(super) struct Draft {
    name: Spanned<String>,
    raw: Option<RawService>,
    deps: Vec<ServiceId>,
}

impl Validator<'_> {
    pub(super) fn problem(&mut self, p: Problem) {
        self.problems.push(p);
    }

    pub(super) fn stack(&mut self, file: &Path, raw: RawStack) -> Option<Stack> {
        if let Some(version) = &raw.version {
            if version.value != 1 {
                self.problem(
                    Problem::new(
                        format!("version {} is not known", version.value),
                        version.span,
                        "",
                    )
                    .help("this orch reads `version: 1`; leave `version` out or set it to 1"),
                );
            }
        }
        let name = match &raw.name {
            Some(name) => {
                self.check_name(name, "stack");
                name.value.clone()
            }
            None => file
                .file_stem()
                .map_or_else(|| "stack".to_owned(), |s| s.to_string_lossy().into_owned()),
        };
        let dir = file.parent().unwrap_or(Path::new("/")).to_path_buf();
        let stack_env = self.stack_env(&raw.env);
        let port_range = raw
            .port_range
            .as_ref()
            .map_or(PortRange::DEFAULT, |r| r.value);
        let log_dir = dir.join(
            raw.log_dir
                .as_ref()
                .map_or(".orch/logs", |d| d.value.as_str()),
        );

        let mut drafts: Vec<Draft> = Vec::with_capacity(raw.services.len());
        for (name, service) in raw.services {
            self.check_name(&name, "service");
            drafts.push(Draft {
                name,
                raw: service.0,
                deps: Vec::new(),
            });
        }
        if drafts.is_empty() {
            self.problem(
                Problem::whole("the stack has no services")
                    .help("add at least one service under `services:`"),
            );
        }
        let dep_spans = self.dependencies(&mut drafts);
        for draft in &drafts {
            if let Some(raw) = &draft.raw {
                if raw.commands.is_empty() && raw.depends_on.is_empty() {
                    self.problem(
                        Problem::new(format!("service `{}` has nothing to run", draft.name.value), draft.name.span, "")
                            .help("give it `commands:`, or `depends_on:` to make it a bundle of other services"),
                    );
                }
            }
        }
        let deps: Vec<Vec<ServiceId>> = drafts.iter().map(|d| d.deps.clone()).collect();
        let dag = match Dag::new(&deps) {
            Ok(dag) => Some(dag),
            Err(cycles) => {
                for cycle in cycles {
                    self.cycle(&cycle, &drafts, &dep_spans);
                }
                None
            }
        };

        let providers = self.locator_names(&drafts);
        if !self.members_within_limit(&drafts) {
            return None;
        }
        let ports = self.ports(&drafts, port_range);
        if !self.complete {
            return None;
        }

        let provides = self.provides(
            &drafts,
            dag.as_ref(),
            &Scope {
                service: "",
                port: None,
                ports: &IndexMap::new(),
                locators: &[],
                stack_env: &stack_env,
                providers: &providers,
                lookup: self.lookup,
                suggestions: self.suggestions,
            },
            &ports,
        );

        let mut services = Vec::with_capacity(drafts.len());
        for (sid, draft) in drafts.iter().enumerate() {
            let Some(raw) = &draft.raw else { continue };
            let inputs = env::inputs(&draft.deps, |d| &provides[d]);
            let scope = Scope {
                service: &draft.name.value,
                port: None,
                ports: &ports[sid],
                locators: &[&provides[sid], &inputs],
                stack_env: &stack_env,
                providers: &providers,
                lookup: self.lookup,
                suggestions: self.suggestions,
            };
            let env = self.env_map(&raw.env, &scope);
            let mut commands = Vec::with_capacity(raw.commands.len());
            for (cid, (cname, command)) in raw.commands.iter().enumerate() {
                self.check_name(cname, "command");
                let Some(command) = &command.0 else { continue };
                let instance_ports = &ports[sid]
                    .get_index(cid)
                    .expect("ports has an entry per command")
                    .1;
                commands.push(self.command(&dir, cname, command, instance_ports, &scope));
            }
            services.push(Service {
                name: draft.name.value.clone(),
                depends_on: draft.deps.clone(),
                env,
                // Cloned, not taken: services later in the file may depend on this one.
                provides: provides[sid].clone(),
                commands,
            });
        }
        let dag = dag?;
        (services.len() == drafts.len()).then_some(Stack {
            name,
            file: file.to_path_buf(),
            dir,
            env: stack_env,
            log_dir,
            services,
            dag,
        })
    }

    pub(super) fn check_name(&mut self, name: &Spanned<String>, what: &str) {
        let ok = crate::model::shaped(
            &name.value,
            |c| c.is_ascii_alphanumeric(),
            |c| c.is_ascii_alphanumeric() || c == '_' || c == '-',
        );
        if !ok {
            self.problem(
                Problem::new(
                    format!("`{}` is not a valid {what} name", name.value),
                    name.span,
                    "",
                )
                .help("use letters, digits, `_` and `-`, starting with a letter or digit"),
            );
        }
    }

    pub(super) fn check_env_name(&mut self, key: &Spanned<String>) {
        let ok = crate::model::shaped(
            &key.value,
            |c| c.is_ascii_alphabetic() || c == '_',
            |c| c.is_ascii_alphanumeric() || c == '_',
        );
        if !ok {
            self.problem(
                Problem::new(
                    format!("`{}` is not a valid environment variable name", key.value),
                    key.span,
                    "",
                )
                .help("use letters, digits and `_`, not starting with a digit"),
            );
        }
    }
}
