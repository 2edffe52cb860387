//! The validated, immutable stack: what the supervisor runs and the reports
//! show. Everything here has been checked; nothing after this can fail on
//! something validation should have caught.

pub mod dag;
pub mod env;
mod include;
pub mod schedule;
pub mod select;
pub mod template;
pub mod text;
mod validate;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use nix::sys::signal::Signal;

pub use crate::config::raw::{HumanDuration, WhenToRun};
pub use dag::{Dag, ServiceId};
pub use schedule::Schedule;
pub use text::{Endpoint, Text};

use crate::diag::InvalidStack;

/// A whole stack, ready to run.
#[derive(Debug, Clone)]
pub struct Stack {
    pub name: String,
    /// The stack file, absolute.
    pub file: PathBuf,
    /// The stack file's folder; relative paths are relative to it.
    pub dir: PathBuf,
    /// Environment given to every command, expanded: the env files' entries, then `env`.
    pub env: IndexMap<String, String>,
    pub log_dir: PathBuf,
    /// In file order; a [`ServiceId`] indexes this.
    pub services: Vec<Service>,
    pub dag: Dag,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: String,
    /// Direct dependencies, as declared.
    pub depends_on: Vec<ServiceId>,
    /// It runs only when one of these is active, or when named; always when empty.
    pub profiles: Vec<String>,
    /// Its env files' entries, then its `env`.
    pub env: IndexMap<String, Text>,
    /// Locators this service exports, expanded (hosts left open).
    pub provides: IndexMap<String, Text>,
    pub commands: Vec<Command>,
}

impl Service {
    /// A bundle has no commands: it is up exactly when its dependencies are.
    pub fn is_bundle(&self) -> bool {
        self.commands.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub name: String,
    /// `Once` for a scheduled command: each run goes to completion.
    pub when: WhenToRun,
    /// When it runs, for a command that runs at times.
    pub schedule: Option<Schedule>,
    pub respawn: Respawn,
    pub user: Option<String>,
    pub group: Option<String>,
    pub stop_signal: Signal,
    pub restart_signal: Signal,
    pub stop_timeout: Duration,
    pub memory_limit: Option<u64>,
    pub system_packages: Vec<String>,
    /// One per process (`number_of_processes`), each with its own port and expansions.
    pub instances: Vec<Instance>,
}

/// How a member is restarted, and when it is given up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Respawn {
    /// Restarts allowed within `window`; one more disables the member.
    pub count: u32,
    pub window: Duration,
    /// First delay before a restart; doubles while the member keeps failing.
    pub backoff: Duration,
}

impl Respawn {
    /// What a command gets when it sets none of `respawn_*`.
    pub const DEFAULT: Respawn = Respawn {
        count: 5,
        window: Duration::from_secs(60),
        backoff: Duration::from_millis(100),
    };
}

/// One process of a command, with every template expanded for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub index: u32,
    pub port: Option<u16>,
    /// What to execute, as `orch up` runs it: every host is 127.0.0.1.
    pub program: Program,
    /// The same, with the hosts of commands left open for other engines.
    pub program_text: Program<Text>,
    /// The command's own `env`, expanded for this instance (hosts left open).
    pub env: IndexMap<String, Text>,
    pub working_dir: PathBuf,
    pub ready: Ready,
    pub monitor: Option<Monitor>,
}

/// What to execute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program<S = String> {
    /// Run as `/bin/sh -c TEXT`.
    Shell(S),
    /// Run as this argv, without a shell.
    Argv(Vec<S>),
}

impl Program<Text> {
    /// The program as `orch up` runs it: every host is 127.0.0.1.
    pub fn loopback(&self) -> Program {
        match self {
            Program::Shell(text) => Program::Shell(text.loopback()),
            Program::Argv(args) => Program::Argv(args.iter().map(Text::loopback).collect()),
        }
    }
}

impl std::fmt::Display for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Program::Shell(text) => f.write_str(text),
            Program::Argv(argv) => f.write_str(&argv.join(" ")),
        }
    }
}

/// When a member counts as ready.
#[derive(Debug, Clone, PartialEq)]
pub struct Ready {
    pub check: Check,
    pub interval: Duration,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub enum Check {
    /// Ready once started.
    Started,
    /// Ready once it exited 0 (`when_to_run: once`).
    Completed,
    /// Ready when this address accepts TCP connections; no host means loopback.
    Tcp { host: Option<String>, port: u16 },
    /// Ready when this URL answers 2xx.
    Http { url: String },
    /// Ready when this command exits 0.
    Command(Program),
    /// Ready when a line of output matches.
    Log(regex::Regex),
}

impl PartialEq for Check {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Check::Started, Check::Started) | (Check::Completed, Check::Completed) => true,
            (Check::Tcp { host: h1, port: p1 }, Check::Tcp { host: h2, port: p2 }) => {
                h1 == h2 && p1 == p2
            }
            (Check::Http { url: a }, Check::Http { url: b }) => a == b,
            (Check::Command(a), Check::Command(b)) => a == b,
            (Check::Log(a), Check::Log(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

/// A command run every `interval` while the member is ready; failure restarts the member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Monitor {
    pub program: Program,
    pub interval: Duration,
    pub timeout: Duration,
}

impl Stack {
    /// Read and validate a stack file. Of a file too large to be one, only
    /// enough is read to tell.
    pub fn load(path: &Path) -> Result<Stack, LoadError> {
        let unreadable = |e| LoadError::Read {
            path: path.to_path_buf(),
            source: e,
        };
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| {
                f.take(crate::config::READ_LIMIT as u64)
                    .read_to_end(&mut bytes)
            })
            .map_err(unreadable)?;
        let file = stack_path(path).map_err(unreadable)?;
        Stack::from_bytes(&file, &bytes).map_err(|e| LoadError::Invalid(Box::new(e)))
    }

    /// Validate the bytes of a stack file that lives at `file` (absolute):
    /// they must be UTF-8, and within the size limit.
    pub fn from_bytes(file: &Path, bytes: &[u8]) -> Result<Stack, InvalidStack> {
        match crate::config::text(bytes) {
            Ok(text) => Stack::from_text(file, text),
            Err(problem) => Err(InvalidStack::new(
                &display_name(file),
                &std::sync::Arc::from(""),
                vec![problem],
            )),
        }
    }

    /// Validate the text of a stack file that lives at `file` (absolute),
    /// with the files it includes and its env files.
    pub fn from_text(file: &Path, text: &str) -> Result<Stack, InvalidStack> {
        let files = include::read(file, text);
        validate::validate(file, files, &|name| std::env::var(name).ok()).map_err(
            |(sources, problems)| InvalidStack::in_sources(&display_name(file), sources, problems),
        )
    }

    pub fn service_id(&self, name: &str) -> Option<ServiceId> {
        self.services.iter().position(|s| s.name == name)
    }

    /// Look a service up by a name a user gave, or explain which names exist.
    pub fn find_service(&self, name: &str) -> Result<ServiceId, UnknownService> {
        self.service_id(name).ok_or_else(|| {
            let names = self.services.iter().map(|s| s.name.as_str());
            let help = match crate::diag::suggest(name, names.clone()) {
                Some(close) => format!("did you mean `{close}`?"),
                None => format!(
                    "the services of `{}` are: {}",
                    self.name,
                    names.collect::<Vec<_>>().join(", ")
                ),
            };
            UnknownService {
                message: format!("no service `{name}` in stack `{}`", self.name),
                help,
            }
        })
    }

    /// How a member is named on the console and in its log file's name:
    /// `service.command`, or `service.command.N` for a command with several processes.
    pub fn member_label(&self, sid: ServiceId, cid: usize, index: usize) -> String {
        let service = &self.services[sid];
        let command = &service.commands[cid];
        if command.instances.len() > 1 {
            format!("{}.{}.{index}", service.name, command.name)
        } else {
            format!("{}.{}", service.name, command.name)
        }
    }

    /// The log file of the member with this label.
    pub fn log_path(&self, label: &str) -> PathBuf {
        self.log_dir.join(format!("{label}.log"))
    }

    /// Every member: (service, command index, instance), in file order.
    pub fn members(&self) -> impl Iterator<Item = (ServiceId, usize, &Instance)> {
        self.services.iter().enumerate().flat_map(|(sid, s)| {
            s.commands
                .iter()
                .enumerate()
                .flat_map(move |(cid, c)| c.instances.iter().map(move |i| (sid, cid, i)))
        })
    }
}

/// Whether `name` is non-empty, starts with a character `first` accepts and
/// goes on with characters `rest` accepts: the shape of every kind of name.
pub(crate) fn shaped(name: &str, first: fn(char) -> bool, rest: fn(char) -> bool) -> bool {
    name.chars().next().is_some_and(first) && name.chars().all(rest)
}

/// The path that identifies a stack file: canonical (so `../stack.yaml` and
/// `/abs/stack.yaml` name the same running stack), or absolute when it does
/// not exist.
pub fn stack_path(path: &Path) -> std::io::Result<PathBuf> {
    std::fs::canonicalize(path).or_else(|_| std::path::absolute(path))
}

/// A file's name as shown in messages: relative to the current folder when
/// it is inside it.
pub(crate) fn display_name(file: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| file.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| file.to_path_buf())
        .display()
        .to_string()
}

/// A service name that is not in the stack, with the names that are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
#[error("{message}")]
pub struct UnknownService {
    pub message: String,
    #[help]
    pub help: String,
}

/// Why a stack could not be loaded.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LoadError {
    #[error("cannot read the stack file {}: {source}", path.display())]
    #[diagnostic(help(
        "give the stack file with -f FILE (or set ORCH_FILE); without it orch reads ./stack.yaml"
    ))]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Invalid(Box<InvalidStack>),
}
