//! Raw structs to the validated [`Stack`]: names, dependencies, cycles,
//! locators, ports and templates, every problem collected with its place.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use indexmap::IndexMap;
use miette::SourceSpan;
use nix::sys::signal::Signal;

use super::template::{self, Ref, TemplateError};
use super::{
    env, Check, Command, Dag, Instance, Monitor, Program, Ready, Respawn, Service, ServiceId, Stack,
};
use crate::config::de::Each;
use crate::config::raw::{
    PortRange, PortSpec, RawCommand, RawProbe, RawProgram, RawService, RawStack, WhenToRun,
};
use crate::config::Spanned;
use crate::diag::{suggest, Problem};

const DEFAULT_RESPAWN: Respawn = Respawn {
    count: 5,
    window: Duration::from_secs(60),
    backoff: Duration::from_millis(100),
};
const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_millis(200);
const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_MONITOR_INTERVAL: Duration = Duration::from_secs(10);
const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_PROCESSES: u32 = 10_000;

type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Validate `raw`. `problems` are those found reading it: when there are
/// some, parts of the stack are missing, so only the checks of names,
/// dependencies, locator names and ports run; templates wait for a file
/// that reads cleanly.
pub(super) fn validate(
    file: &Path,
    raw: RawStack,
    problems: Vec<Problem>,
    lookup: Lookup<'_>,
) -> Result<Stack, Vec<Problem>> {
    let complete = problems.is_empty();
    let mut v = Validator {
        problems,
        lookup,
        complete,
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

struct Validator<'a> {
    problems: Vec<Problem>,
    lookup: Lookup<'a>,
    /// Whether every part of the file was read; templates are checked only then.
    complete: bool,
}

/// What a service's templates can see.
struct Scope<'a> {
    service: &'a str,
    /// `None` outside a command; `Some(None)` in a command without a port.
    port: Option<Option<u16>>,
    /// The ports of each command of the service, by name.
    ports: &'a IndexMap<String, Vec<Option<u16>>>,
    /// Locators visible: the service's own, then its dependencies'.
    locators: &'a [&'a IndexMap<String, String>],
    stack_env: &'a IndexMap<String, String>,
    /// Who provides each locator of the stack, to explain a missing dependency.
    providers: &'a HashMap<String, &'a str>,
    lookup: Lookup<'a>,
}

impl Scope<'_> {
    fn resolve(&self, r: &Ref<'_>) -> Result<String, TemplateError> {
        match *r {
            Ref::Port => match self.port {
                Some(Some(port)) => Ok(port.to_string()),
                Some(None) => Err(TemplateError::new(
                    "`${port}` is used, but this command has no port",
                )
                .help("give the command `port: auto` or a port number")),
                None => Err(
                    TemplateError::new("`${port}` only means something inside a command")
                        .help("name the command: `${NAME.port}`"),
                ),
            },
            Ref::CommandPort(name) => self.command_ports(name).map(|ports| ports[0].to_string()),
            Ref::CommandPorts(name) => self.command_ports(name).map(|ports| {
                ports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            }),
            Ref::Name { name, default } => self.name(name, default),
        }
    }

    fn command_ports(&self, name: &str) -> Result<Vec<u16>, TemplateError> {
        let Some(ports) = self.ports.get(name) else {
            let mut e = TemplateError::new(format!(
                "service `{}` has no command `{name}`",
                self.service
            ));
            if let Some(close) = suggest(name, self.ports.keys().map(String::as_str)) {
                e = e.help(format!("did you mean `{close}`?"));
            } else {
                e = e.help("`${NAME.port}` names a command of the same service; other services export what they offer with `provides`");
            }
            return Err(e);
        };
        let ports: Option<Vec<u16>> = ports.iter().copied().collect();
        ports.filter(|p| !p.is_empty()).ok_or_else(|| {
            TemplateError::new(format!("command `{name}` has no port"))
                .help("give it `port: auto` or a port number")
        })
    }

    fn name(&self, name: &str, default: Option<&str>) -> Result<String, TemplateError> {
        let found = self
            .locators
            .iter()
            .find_map(|l| l.get(name).cloned())
            .or_else(|| self.stack_env.get(name).cloned())
            .or_else(|| (self.lookup)(name));
        if let Some(value) = found.or_else(|| default.map(str::to_owned)) {
            return Ok(value);
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
        let help = match suggest(name, known) {
            Some(close) => format!("did you mean `${{{close}}}`?"),
            None => format!(
                "set it in the stack's `env`, give a default with `${{{name}:-value}}`, or write `$${{{name}}}` to leave it to the shell"
            ),
        };
        Err(TemplateError::new(format!("`${{{name}}}` is not defined")).help(help))
    }
}

/// A service as it is being validated.
struct Draft {
    name: Spanned<String>,
    raw: Option<RawService>,
    deps: Vec<ServiceId>,
}

impl Validator<'_> {
    fn problem(&mut self, p: Problem) {
        self.problems.push(p);
    }

    fn stack(&mut self, file: &Path, raw: RawStack) -> Option<Stack> {
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
        let ids: HashMap<&str, ServiceId> = drafts
            .iter()
            .enumerate()
            .map(|(i, d)| (d.name.value.as_str(), i))
            .collect();
        let mut dep_spans: Vec<HashMap<ServiceId, SourceSpan>> = vec![HashMap::new(); drafts.len()];
        let mut resolved: Vec<Vec<ServiceId>> = Vec::with_capacity(drafts.len());
        for (sid, draft) in drafts.iter().enumerate() {
            let mut deps = Vec::new();
            for dep in draft.raw.iter().flat_map(|r| &r.depends_on) {
                match ids.get(dep.value.as_str()) {
                    Some(&id) if id == sid => self.problem(
                        Problem::new(
                            format!("service `{}` depends on itself", dep.value),
                            dep.span,
                            "",
                        )
                        .help("remove it from its own `depends_on`"),
                    ),
                    Some(&id) if dep_spans[sid].contains_key(&id) => self.problem(
                        Problem::new(
                            format!("`{}` is listed twice in `depends_on`", dep.value),
                            dep.span,
                            "again here",
                        )
                        .label(dep_spans[sid][&id], "first here")
                        .help("list each dependency once"),
                    ),
                    Some(&id) => {
                        dep_spans[sid].insert(id, dep.span);
                        deps.push(id);
                    }
                    None => {
                        let help = match suggest(&dep.value, ids.keys().copied()) {
                            Some(close) => format!("did you mean `{close}`?"),
                            None => {
                                "`depends_on` lists services defined under `services:`".to_owned()
                            }
                        };
                        self.problem(
                            Problem::new(
                                format!("unknown service `{}`", dep.value),
                                dep.span,
                                "not a service of this stack",
                            )
                            .help(help),
                        );
                    }
                }
            }
            resolved.push(deps);
        }
        for (draft, deps) in drafts.iter_mut().zip(resolved) {
            draft.deps = deps;
        }
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
        let ports = self.ports(&drafts, port_range);
        if !self.complete {
            return None;
        }

        // Locators, dependencies first so theirs are known when a dependent uses them.
        let order: Vec<ServiceId> = dag
            .as_ref()
            .map_or_else(|| (0..drafts.len()).collect(), |d| d.order().to_vec());
        let mut provides: Vec<IndexMap<String, String>> = vec![IndexMap::new(); drafts.len()];
        for &sid in &order {
            let Some(raw) = &drafts[sid].raw else {
                continue;
            };
            let inputs = env::inputs(&drafts[sid].deps, |d| &provides[d]);
            let mut own = IndexMap::new();
            for (key, value) in &raw.provides {
                let scope = Scope {
                    service: &drafts[sid].name.value,
                    port: None,
                    ports: &ports[sid],
                    locators: &[&own, &inputs],
                    stack_env: &stack_env,
                    providers: &providers,
                    lookup: self.lookup,
                };
                if let Some(expanded) = self.expand(value, &scope) {
                    own.insert(key.value.clone(), expanded);
                }
            }
            provides[sid] = own;
        }

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

    fn check_name(&mut self, name: &Spanned<String>, what: &str) {
        let ok = super::shaped(
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

    fn stack_env(
        &mut self,
        raw: &IndexMap<Spanned<String>, Spanned<String>>,
    ) -> IndexMap<String, String> {
        let mut env = IndexMap::new();
        for (key, value) in raw {
            self.check_env_name(key);
            let lookup = self.lookup;
            let expanded = template::expand(&value.value, |r| {
                match r {
                Ref::Name { name, default } => env
                    .get(*name)
                    .cloned()
                    .or_else(|| lookup(name))
                    .or_else(|| default.map(str::to_owned))
                    .ok_or_else(|| {
                        TemplateError::new(format!("`${{{name}}}` is not defined"))
                            .help(format!("the stack `env` can use orch's own environment and the entries above it; give a default with `${{{name}:-value}}`"))
                    }),
                _ => Err(TemplateError::new("the stack `env` can only use variables, not ports")
                    .help("move this entry to the `env` of a service or command")),
            }
            });
            match expanded {
                Ok(text) => {
                    env.insert(key.value.clone(), text);
                }
                Err(e) => self.template_problem(&e, value),
            }
        }
        env
    }

    fn check_env_name(&mut self, key: &Spanned<String>) {
        let ok = super::shaped(
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

    fn env_map(
        &mut self,
        raw: &IndexMap<Spanned<String>, Spanned<String>>,
        scope: &Scope<'_>,
    ) -> IndexMap<String, String> {
        let mut env = IndexMap::with_capacity(raw.len());
        for (key, value) in raw {
            self.check_env_name(key);
            if let Some(text) = self.expand(value, scope) {
                env.insert(key.value.clone(), text);
            }
        }
        env
    }

    fn expand(&mut self, value: &Spanned<String>, scope: &Scope<'_>) -> Option<String> {
        match template::expand(&value.value, |r| scope.resolve(r)) {
            Ok(text) => Some(text),
            Err(e) => {
                self.template_problem(&e, value);
                None
            }
        }
    }

    fn template_problem<T>(&mut self, e: &TemplateError, within: &Spanned<T>) {
        self.problem(
            Problem::new(e.message.clone(), e.span_in(within), "").maybe_help(e.help.clone()),
        );
    }

    fn program(&mut self, raw: &Spanned<RawProgram>, scope: &Scope<'_>) -> Option<Program> {
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
                let expanded: Vec<Option<String>> =
                    args.iter().map(|a| self.expand(a, scope)).collect();
                expanded
                    .into_iter()
                    .collect::<Option<Vec<_>>>()
                    .map(Program::Argv)
            }
        }
    }

    fn cycle(
        &mut self,
        cycle: &[ServiceId],
        drafts: &[Draft],
        dep_spans: &[HashMap<ServiceId, SourceSpan>],
    ) {
        let path = cycle
            .iter()
            .map(|&id| drafts[id].name.value.as_str())
            .collect::<Vec<_>>()
            .join(" -> ");
        let mut labels = cycle.windows(2).map(|w| {
            let (from, to) = (w[0], w[1]);
            (
                dep_spans[from][&to],
                format!(
                    "`{}` depends on `{}`",
                    drafts[from].name.value, drafts[to].name.value
                ),
            )
        });
        let (span, label) = labels.next().expect("a cycle has at least one edge");
        let mut p = Problem::new(format!("dependency cycle: {path}"), span, label);
        for (span, label) in labels {
            p = p.label(span, label);
        }
        self.problem(
            p.help("nothing in a cycle could ever start; remove one of these dependencies"),
        );
    }

    /// Check locator names and their uniqueness; who provides each.
    fn locator_names<'d>(&mut self, drafts: &'d [Draft]) -> HashMap<String, &'d str> {
        let mut seen: HashMap<&str, (&str, SourceSpan)> = HashMap::new();
        let mut providers = HashMap::new();
        for draft in drafts {
            for key in draft.raw.iter().flat_map(|r| r.provides.keys()) {
                let valid = super::shaped(
                    &key.value,
                    |c| c.is_ascii_uppercase() || c == '_',
                    |c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_',
                );
                if !valid {
                    self.problem(
                        Problem::new(format!("`{}` is not a valid locator name", key.value), key.span, "")
                            .help(format!(
                                "locators are environment variable names in capitals, matching ^[A-Z_][A-Z0-9_]*$, e.g. `{}`",
                                suggested_locator(&key.value)
                            )),
                    );
                }
                if let Some((first, span)) = seen.get(key.value.as_str()) {
                    self.problem(
                        Problem::new(
                            format!("locator `{}` is provided twice", key.value),
                            key.span,
                            format!("by `{}`", draft.name.value),
                        )
                        .label(*span, format!("and by `{first}`"))
                        .help(
                            "locators are unique across the stack; give one a more specific name",
                        ),
                    );
                    continue;
                }
                seen.insert(&key.value, (&draft.name.value, key.span));
                providers.insert(key.value.clone(), draft.name.value.as_str());
            }
        }
        providers
    }

    /// Ports of every instance of every command: `[service][command] -> per instance`.
    fn ports(
        &mut self,
        drafts: &[Draft],
        range: PortRange,
    ) -> Vec<IndexMap<String, Vec<Option<u16>>>> {
        let mut fixed: HashMap<u16, (SourceSpan, String)> = HashMap::new();
        for draft in drafts {
            for (name, command) in commands(draft) {
                let Some(command) = &command.0 else { continue };
                let Some(Spanned {
                    value: PortSpec::Fixed(port),
                    span,
                    ..
                }) = &command.port
                else {
                    continue;
                };
                let who = format!("{}.{}", draft.name.value, name.value);
                if instances(command) > 1 {
                    self.problem(
                        Problem::new(
                            format!(
                                "{} processes of `{who}` cannot all listen on port {port}",
                                instances(command)
                            ),
                            *span,
                            "",
                        )
                        .help("use `port: auto` so each process gets its own port"),
                    );
                }
                if let Some((first, other)) = fixed.get(port) {
                    self.problem(
                        Problem::new(
                            format!("port {port} is used twice"),
                            *span,
                            format!("by `{who}`"),
                        )
                        .label(*first, format!("and by `{other}`"))
                        .help("give each command its own port, or use `port: auto`"),
                    );
                } else {
                    fixed.insert(*port, (*span, who));
                }
            }
        }
        let mut next = u32::from(range.low);
        let mut exhausted = false;
        drafts
            .iter()
            .map(|draft| {
                commands(draft)
                    .into_iter()
                    .map(|(name, command)| {
                        let n = command.0.as_ref().map_or(1, instances);
                        let ports = match command.0.as_ref().and_then(|c| c.port.as_ref()) {
                            None => vec![None; n],
                            Some(Spanned { value: PortSpec::Fixed(p), .. }) => vec![Some(*p); n],
                            Some(Spanned { value: PortSpec::Auto, span, .. }) => (0..n)
                                .map(|_| {
                                    while next <= u32::from(range.high) && fixed.contains_key(&(next as u16)) {
                                        next += 1;
                                    }
                                    if next > u32::from(range.high) {
                                        if !std::mem::replace(&mut exhausted, true) {
                                            self.problem(
                                                Problem::new(format!("port_range {}-{} has no free port left", range.low, range.high), *span, "this command needs one")
                                                    .help("widen `port_range`, or give some commands fixed ports outside it"),
                                            );
                                        }
                                        return Some(0);
                                    }
                                    next += 1;
                                    Some((next - 1) as u16)
                                })
                                .collect(),
                        };
                        (name.value.clone(), ports)
                    })
                    .collect()
            })
            .collect()
    }

    fn command(
        &mut self,
        dir: &Path,
        name: &Spanned<String>,
        raw: &RawCommand,
        ports: &[Option<u16>],
        service: &Scope<'_>,
    ) -> Command {
        let when = raw.when_to_run.unwrap_or(WhenToRun::Always);
        if when == WhenToRun::Once {
            if let Some(ready) = &raw.ready {
                self.problem(
                    Problem::new(
                        "a `once` command is ready when it has completed",
                        ready.span,
                        "",
                    )
                    .help("remove `ready`, or make the command `when_to_run: always`"),
                );
            }
        }
        if let Some(n) = &raw.number_of_processes {
            if n.value == 0 || n.value > MAX_PROCESSES {
                self.problem(Problem::new(
                    format!("number_of_processes must be 1 to {MAX_PROCESSES}"),
                    n.span,
                    "",
                ));
            }
        }
        let mut instances = Vec::with_capacity(ports.len());
        for (index, &port) in ports.iter().enumerate() {
            let scope = Scope {
                port: Some(port),
                ..*service
            };
            let program = self.program(&raw.command, &scope);
            let env = self.env_map(&raw.env, &scope);
            let working_dir = match &raw.working_dir {
                Some(wd) => self.expand(wd, &scope).map(|wd| dir.join(wd)),
                None => Some(dir.to_path_buf()),
            };
            let ready = self.ready(raw, when, port, &scope);
            let monitor = raw.monitor.as_ref().and_then(|m| {
                let program = self.program(&m.command, &scope)?;
                Some(Monitor {
                    program,
                    interval: m.interval.map_or(DEFAULT_MONITOR_INTERVAL, |d| d.0),
                    timeout: m.timeout.map_or(DEFAULT_MONITOR_INTERVAL, |d| d.0),
                })
            });
            if let (Some(program), Some(working_dir), Some(ready)) = (program, working_dir, ready) {
                instances.push(Instance {
                    index: u32::try_from(index).expect("instances are capped far below u32::MAX"),
                    port,
                    program,
                    env,
                    working_dir,
                    ready,
                    monitor,
                });
            }
        }
        Command {
            name: name.value.clone(),
            when,
            respawn: Respawn {
                count: raw.respawn_count.unwrap_or(DEFAULT_RESPAWN.count),
                window: raw.respawn_window.map_or(DEFAULT_RESPAWN.window, |d| d.0),
                backoff: raw.respawn_backoff.map_or(DEFAULT_RESPAWN.backoff, |d| d.0),
            },
            user: raw.user.as_ref().map(|u| u.value.clone()),
            group: raw.group.as_ref().map(|g| g.value.clone()),
            stop_signal: raw.stop_signal.map_or(Signal::SIGTERM, |s| s.0),
            restart_signal: raw.restart_signal.map_or(Signal::SIGHUP, |s| s.0),
            stop_timeout: raw.stop_timeout.map_or(DEFAULT_STOP_TIMEOUT, |d| d.0),
            memory_limit: raw.memory_limit.map(|m| m.0),
            system_packages: raw
                .system_packages
                .iter()
                .map(|p| p.value.clone())
                .collect(),
            instances,
        }
    }

    fn ready(
        &mut self,
        raw: &RawCommand,
        when: WhenToRun,
        port: Option<u16>,
        scope: &Scope<'_>,
    ) -> Option<Ready> {
        let default = |check| {
            Some(Ready {
                check,
                interval: DEFAULT_PROBE_INTERVAL,
                timeout: DEFAULT_PROBE_TIMEOUT,
            })
        };
        let Some(probe) = &raw.ready else {
            return match (when, port) {
                (WhenToRun::Once, _) => default(Check::Completed),
                (WhenToRun::Always, Some(port)) => default(Check::Tcp { host: None, port }),
                (WhenToRun::Always, None) => default(Check::Started),
            };
        };
        let RawProbe {
            tcp,
            http,
            command,
            log,
            interval,
            timeout,
        } = &probe.value;
        let kinds = [
            tcp.is_some(),
            http.is_some(),
            command.is_some(),
            log.is_some(),
        ]
        .iter()
        .filter(|&&k| k)
        .count();
        if kinds != 1 {
            self.problem(
                Problem::new(
                    if kinds == 0 {
                        "`ready` needs a check"
                    } else {
                        "`ready` has more than one check"
                    },
                    probe.span,
                    "",
                )
                .help("give exactly one of `tcp`, `http`, `command` or `log`"),
            );
            return None;
        }
        let check = if let Some(tcp) = tcp {
            let text = self.expand(tcp, scope)?;
            match parse_tcp(&text) {
                Some((host, port)) => Check::Tcp { host, port },
                None => {
                    self.problem(
                        Problem::new(format!("`{text}` is not a TCP address"), tcp.span, "")
                            .help("write a port (`${port}`) or host:port, e.g. `127.0.0.1:5432`"),
                    );
                    return None;
                }
            }
        } else if let Some(http) = http {
            let url = self.expand(http, scope)?;
            if !url.starts_with("http://") {
                self.problem(
                    Problem::new(format!("`{url}` is not an http:// URL"), http.span, "")
                        .help("write a full URL such as `http://127.0.0.1:${port}/health`"),
                );
                return None;
            }
            Check::Http { url }
        } else if let Some(command) = command {
            Check::Command(self.program(command, scope)?)
        } else {
            let log = log.as_ref().expect("exactly one check is set");
            match regex::Regex::new(&log.value) {
                Ok(re) => Check::Log(re),
                Err(e) => {
                    self.problem(
                        Problem::new("`log` is not a valid regular expression", log.span, "").help(
                            e.to_string()
                                .lines()
                                .last()
                                .unwrap_or_default()
                                .trim()
                                .to_owned(),
                        ),
                    );
                    return None;
                }
            }
        };
        Some(Ready {
            check,
            interval: interval.map_or(DEFAULT_PROBE_INTERVAL, |d| d.0),
            timeout: timeout.map_or(DEFAULT_PROBE_TIMEOUT, |d| d.0),
        })
    }
}

fn instances(command: &RawCommand) -> usize {
    command
        .number_of_processes
        .as_ref()
        .map_or(1, |n| n.value.clamp(1, MAX_PROCESSES) as usize)
}

fn commands(draft: &Draft) -> Vec<(&Spanned<String>, &Each<RawCommand>)> {
    draft.raw.iter().flat_map(|r| r.commands.iter()).collect()
}

/// `8300`, `host:8300` or `[::1]:8300`.
fn parse_tcp(text: &str) -> Option<(Option<String>, u16)> {
    let port_of = |s: &str| s.parse::<u16>().ok().filter(|&p| p > 0);
    if let Some(port) = port_of(text) {
        return Some((None, port));
    }
    let (host, port) = text.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty())
        .then(|| (Some(host.to_owned()), port_of(port)))
        .and_then(|(h, p)| Some((h, p?)))
}

fn suggested_locator(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_addresses() {
        assert_eq!(parse_tcp("8300"), Some((None, 8300)));
        assert_eq!(
            parse_tcp("127.0.0.1:5432"),
            Some((Some("127.0.0.1".into()), 5432))
        );
        assert_eq!(parse_tcp("[::1]:80"), Some((Some("::1".into()), 80)));
        assert_eq!(parse_tcp("0"), None);
        assert_eq!(parse_tcp("host:"), None);
        assert_eq!(parse_tcp(":80"), None);
    }
}
