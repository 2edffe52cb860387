//! Raw structs to the validated [`Stack`]: the parts of a stack (the file
//! and those it includes) merged, then names, dependencies, cycles,
//! locators, ports, templates and env files, every problem collected with
//! its place.

mod command;
mod env_file;
mod graph;
mod locators;
mod ports;
mod scope;

use std::cell::Cell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use miette::SourceSpan;

use super::include::{Files, Part};
use super::{env, Dag, Service, ServiceId, Stack};
use crate::config::raw::{PortRange, RawService};
use crate::config::Spanned;
use crate::diag::{Problem, Sources};
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

/// Validate the parts of a stack file, the file itself last. When reading
/// them found problems, parts of the stack are missing, so only the checks
/// of names, dependencies, locator names and ports run; templates wait for
/// files that read cleanly. On failure, the problems with the sources they
/// point into (env files read here join them).
pub(in crate::model) fn validate(
    file: &Path,
    files: Files,
    lookup: Lookup<'_>,
) -> Result<Stack, (Sources, Vec<Problem>)> {
    let Files {
        parts,
        sources,
        problems,
    } = files;
    let complete = problems.is_empty();
    let suggestions = Cell::new(SUGGESTIONS);
    let mut v = Validator {
        problems,
        lookup,
        complete,
        sources,
        suggestions: &suggestions,
        expanded: 0,
    };
    let stack = v.stack(file, parts);
    if v.problems.is_empty() {
        Ok(stack.expect("a stack is built whenever no problem was found"))
    } else {
        let mut problems = v.problems;
        problems.sort_by_key(|p| p.labels.first().map_or(0, |(s, _)| s.offset()));
        // Each process of a command is expanded on its own, so a mistake in
        // the command is found once per process: report it once.
        problems.dedup();
        Err((v.sources, problems))
    }
}

pub(super) struct Validator<'a> {
    problems: Vec<Problem>,
    lookup: Lookup<'a>,
    /// Whether every part of the file was read; templates are checked only then.
    complete: bool,
    /// The files read so far, to name the file a span is in.
    sources: Sources,
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
    /// The index of the part (file) it comes from.
    part: usize,
}

impl Validator<'_> {
    pub(super) fn problem(&mut self, p: Problem) {
        self.problems.push(p);
    }

    /// The name of the file a span points into.
    pub(super) fn file_of(&self, span: SourceSpan) -> &str {
        self.sources
            .file_at(span.offset())
            .map_or("", |f| f.name.as_str())
    }

    pub(super) fn stack(&mut self, file: &Path, mut parts: Vec<Part>) -> Option<Stack> {
        for part in &parts {
            if let Some(version) = &part.raw.version {
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
        }
        // The stack file itself is the last part; without it, it did not read.
        let root = &parts.last().filter(|p| p.root)?.raw;
        let name = match &root.name {
            Some(name) => {
                self.check_name(name, "stack");
                name.value.clone()
            }
            None => file
                .file_stem()
                .map_or_else(|| "stack".to_owned(), |s| s.to_string_lossy().into_owned()),
        };
        let dir = file.parent().unwrap_or(Path::new("/")).to_path_buf();
        let log_dir = dir.join(
            root.log_dir
                .as_ref()
                .map_or(".orch/logs", |d| d.value.as_str()),
        );
        // Every env file of every part, then every `env`: each layer
        // replaces entries of the same name in the one below.
        let mut from_files = IndexMap::new();
        for part in &parts {
            if let Some(env_file) = &part.raw.env_file {
                self.env_files(env_file, &part.dir, &mut from_files);
            }
        }
        let mut stack_env = from_files;
        for part in &parts {
            stack_env = self.stack_env(&part.raw.env, stack_env);
        }
        let dirs: Vec<PathBuf> = parts.iter().map(|p| p.dir.clone()).collect();
        let ranges: Vec<PortRange> = parts.iter().map(|p| p.port_range).collect();

        let mut drafts: Vec<Draft> = Vec::new();
        let mut defined: HashMap<String, SourceSpan> = HashMap::new();
        for (part, p) in parts.iter_mut().enumerate() {
            for (name, service) in std::mem::take(&mut p.raw.services) {
                self.check_name(&name, "service");
                if let Some(&first) = defined.get(&name.value) {
                    let message = format!(
                        "service `{}` is defined twice, in {} and in {}",
                        name.value,
                        self.file_of(first),
                        self.file_of(name.span)
                    );
                    self.problem(
                        Problem::new(message, name.span, "defined again here")
                            .label(first, "first defined here")
                            .help("service names are unique across the stack file and the files it includes; rename one"),
                    );
                    continue;
                }
                defined.insert(name.value.clone(), name.span);
                drafts.push(Draft {
                    name,
                    raw: service.0,
                    deps: Vec::new(),
                    part,
                });
            }
        }
        // Without a `services` key that read, the problems found say more.
        if drafts.is_empty() && self.complete {
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
                for profile in &raw.profiles {
                    self.check_name(profile, "profile");
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
        let ports = self.ports(&drafts, &ranges);
        if !self.complete {
            return None;
        }

        let provides = self.provides(
            &drafts,
            dag.as_ref(),
            &Scope {
                service: "",
                command: None,
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
            let dir = &dirs[draft.part];
            let inputs = env::inputs(&draft.deps, |d| &provides[d]);
            let scope = Scope {
                service: &draft.name.value,
                command: None,
                port: None,
                ports: &ports[sid],
                locators: &[&provides[sid], &inputs],
                stack_env: &stack_env,
                providers: &providers,
                lookup: self.lookup,
                suggestions: self.suggestions,
            };
            let mut from_files = IndexMap::new();
            if let Some(env_file) = &raw.env_file {
                self.env_files(env_file, dir, &mut from_files);
            }
            let mut env: IndexMap<String, crate::model::Text> = from_files
                .into_iter()
                .map(|(key, value)| (key, crate::model::Text::literal(value)))
                .collect();
            env.extend(self.env_map(&raw.env, &scope));
            let mut commands = Vec::with_capacity(raw.commands.len());
            for (cid, (cname, command)) in raw.commands.iter().enumerate() {
                self.check_name(cname, "command");
                let Some(command) = &command.0 else { continue };
                let instance_ports = &ports[sid]
                    .get_index(cid)
                    .expect("ports has an entry per command")
                    .1;
                commands.push(self.command(dir, cname, command, instance_ports, &scope));
            }
            services.push(Service {
                name: draft.name.value.clone(),
                depends_on: draft.deps.clone(),
                profiles: raw.profiles.iter().map(|p| p.value.clone()).collect(),
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
