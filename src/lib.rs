//! orch: a declarative dependency-graph process orchestrator.
//!
//! # Theory of operation
//!
//! Data flows one way: the stack file's text is parsed into a spanned YAML
//! tree ([`config::yaml`]), read into raw serde structs ([`config::raw`]),
//! then validated into an immutable [`model::Stack`] with its dependency
//! graph ([`model::dag`]), every problem collected with its place in the
//! file ([`diag`]). Reports ([`output`]) render the model for people and
//! tools, and [`export`] compiles it for other engines.
//!
//! `orch up` hands the model to [`runtime`]: a pure core
//! ([`runtime::core`]) owns every member's state and decides, on each
//! event, what to do to bring what runs to what is wanted; one supervisor
//! thread carries its decisions out, while members' output is drained by a
//! log thread and the console has a thread of its own, so nothing waits on
//! output. The running stack is steered through a control socket
//! ([`control`]), found by the stack file's path ([`paths`]). This file maps
//! every error to its exit code: 0 success, 1 failure, 2 usage error or
//! invalid stack file.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cli;
pub mod config;
pub mod control;
pub mod detach;
pub mod diag;
pub mod export;
pub mod import;
pub mod init;
pub mod model;
pub mod output;
pub mod paths;
pub mod runtime;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cli::{Cli, Command, EnvFormat, ExportEngine, GraphFormat};
use model::{LoadError, Stack};

/// A failure, and the exit code it maps to.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum Error {
    /// The stack file cannot be read or is invalid: exit 2.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Load(#[from] LoadError),
    /// The command line asks for something that does not exist: exit 2.
    #[error("{message}")]
    Usage {
        message: String,
        #[help]
        help: Option<String>,
    },
    /// The stack could not be run: exit 2 when orch refused (nothing was
    /// started), 1 when something failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Run(#[from] runtime::Error),
    /// A diagnostic rendered elsewhere (by the running stack), shown as it
    /// is: exit 2.
    #[error("{0}")]
    Rendered(String),
    /// Anything else: exit 1.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Failed(Box<dyn miette::Diagnostic + Send + Sync>),
}

impl Error {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Load(_)
            | Error::Usage { .. }
            | Error::Rendered(_)
            | Error::Run(runtime::Error::Refused { .. }) => ExitCode::from(2),
            Error::Run(runtime::Error::Failed { .. }) | Error::Failed(_) => ExitCode::from(1),
        }
    }

    /// Write the error for the user, on stderr.
    pub fn report(self) {
        match self {
            Error::Rendered(text) => eprintln!("{}", text.trim_end()),
            other => eprintln!("{:?}", miette::Report::new(other)),
        }
    }
}

/// Run one command line; the exit code on success.
pub fn run(cli: Cli) -> Result<u8, Error> {
    let top = cli.file;
    let file = |arg: &cli::FileArg| stack_file(arg.file.as_deref(), top.as_deref());
    match cli.command {
        Command::Up(args) => return up(args, top.as_deref()),
        Command::Export { engine } => export(engine, top.as_deref())?,
        Command::Guard { mark } => runtime::guard::serve(&mark),
        Command::Import { kind, file } => import::run(kind, &file)?,
        Command::Init { file: f } => init::write(&file(&f))?,
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "orch", &mut std::io::stdout());
        }
        Command::Man => {
            let page = clap_mangen::Man::new(<Cli as clap::CommandFactory>::command());
            page.render(&mut std::io::stdout()).map_err(|e| {
                Error::Failed(miette::miette!("cannot write the man page: {e}").into())
            })?;
        }
        Command::Status {
            services,
            file: f,
            json,
        } => {
            let report =
                match control_call(&file(&f), control::protocol::Request::Status { services })? {
                    control::protocol::Response::Status(report) => report,
                    other => return Err(unexpected(other)),
                };
            if json {
                println!("{:#}", output::status_json(&report));
            } else {
                print!("{}", output::status_table(&report));
            }
        }
        Command::Why { service, file: f } => print_lines(control_call(
            &file(&f),
            control::protocol::Request::Why { service },
        )?)?,
        Command::Restart {
            services,
            file: f,
            hard,
        } => {
            print_lines(control_call(
                &file(&f),
                control::protocol::Request::Restart { services, hard },
            )?)?;
        }
        Command::Stop { services, file: f } => print_lines(control_call(
            &file(&f),
            control::protocol::Request::Stop { services },
        )?)?,
        Command::Start { services, file: f } => print_lines(control_call(
            &file(&f),
            control::protocol::Request::Start { services },
        )?)?,
        Command::Down { file: f } => {
            let path = running_stack(&file(&f))?;
            match control::client::call(&path, control::protocol::Request::Down) {
                // Stopping what does not run is done already.
                Err(e @ control::client::ClientError::NotRunning { .. }) => {
                    println!("nothing to stop: {e}");
                }
                result => print_lines(answer(result)?)?,
            }
        }
        Command::Reload { file: f } => {
            print_lines(control_call(&file(&f), control::protocol::Request::Reload)?)?
        }
        Command::Logs {
            services,
            file: f,
            follow,
            lines,
        } => {
            let stack = Stack::load(&stack_file(f.as_deref(), top.as_deref()))?;
            let ids = services
                .iter()
                .map(|n| service_id(&stack, n))
                .collect::<Result<Vec<_>, _>>()?;
            runtime::logs::view::show(&stack, &ids, lines, follow)
                .map_err(|e| Error::Failed(miette::miette!("{e}").into()))?;
        }
        Command::Check { file: f } => {
            let stack = Stack::load(&file(&f))?;
            let members = stack.members().count();
            let locators: usize = stack.services.iter().map(|s| s.provides.len()).sum();
            let count =
                |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
            println!(
                "{}: ok, {}, {}, {}, {}",
                stack.name,
                count(stack.services.len(), "service"),
                count(members, "member"),
                count(locators, "locator"),
                count(stack.dag.waves().len(), "start wave"),
            );
            print!("{}", output::check_details(&stack));
        }
        Command::Graph { file: f, format } => {
            let stack = Stack::load(&file(&f))?;
            match format {
                GraphFormat::Tree => {
                    let live = match control::client::call(
                        &stack.file,
                        control::protocol::Request::Status { services: vec![] },
                    ) {
                        Ok(control::protocol::Response::Status(report)) => Some(report),
                        _ => None,
                    };
                    print!("{}", output::tree(&stack, live.as_ref()));
                }
                GraphFormat::Dot => print!("{}", output::dot(&stack)),
                GraphFormat::Mermaid => print!("{}", output::mermaid(&stack)),
                GraphFormat::Json => println!("{:#}", output::graph_json(&stack)),
            }
        }
        Command::Env {
            service,
            file: f,
            format,
            all,
        } => {
            let stack = Stack::load(&file(&f))?;
            let sid = service_id(&stack, &service)?;
            let env = if all {
                stack.service_env(sid)
            } else {
                model::env::loopback(&stack.services[sid].provides)
            };
            match format {
                EnvFormat::Env => print!("{}", output::env_lines(&env)),
                EnvFormat::Export => print!("{}", output::env_export(&env)),
                EnvFormat::Json => println!(
                    "{:#}",
                    serde_json::to_value(&env).expect("a map of strings is JSON")
                ),
            }
        }
    }
    Ok(0)
}

fn up(args: cli::UpArgs, top: Option<&Path>) -> Result<u8, Error> {
    let mut names = args.args.as_slice();
    let mut positional = None;
    if args.file.file.is_none() && top.is_none() {
        if let Some(first) = names.first() {
            let path = Path::new(first);
            if path.is_file() || path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                positional = Some(path.to_path_buf());
                names = &names[1..];
            }
        }
    }
    let file = positional.unwrap_or_else(|| stack_file(args.file.file.as_deref(), top));
    let stack = Stack::load(&file)?;
    // `ORCH_PROFILES=` (or a trailing comma) names no profile.
    let profiles: Vec<String> = args
        .profiles
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect();
    stack.select(names, &profiles).map_err(|e| Error::Usage {
        message: e.message,
        help: Some(e.help),
    })?;
    if args.detach {
        return detach::run(&stack, names, &profiles, args.abort_on_failure);
    }
    if args.detached {
        // Out of the caller's session: no terminal, nothing of its job control.
        let _ = nix::unistd::setsid();
    }
    Ok(runtime::up(
        stack,
        runtime::Options {
            selection: runtime::core::Selection {
                names: names.to_vec(),
                profiles,
                also: Vec::new(),
            },
            abort_on_failure: args.abort_on_failure,
        },
    )?)
}

/// `orch export`: the files of the engine, its warnings on stderr.
fn export(engine: ExportEngine, top: Option<&Path>) -> Result<(), Error> {
    let (file, output) = match &engine {
        ExportEngine::Systemd { output, file } => (file.clone(), Some(output.clone())),
        ExportEngine::Kubernetes { file, .. } | ExportEngine::Nomad { file } => {
            (file.clone(), None)
        }
    };
    let stack = Stack::load(&stack_file(file.file.as_deref(), top))?;
    let exported = match engine {
        ExportEngine::Systemd { .. } => Ok(export::systemd::export(&stack)),
        ExportEngine::Kubernetes {
            image, namespace, ..
        } => export::kubernetes::export(
            &stack,
            &export::kubernetes::Options {
                images: image,
                namespace,
            },
        ),
        ExportEngine::Nomad { .. } => export::nomad::export(&stack),
    }
    .map_err(|e| match e {
        export::ExportError::Usage { message, help } => Error::Usage { message, help },
        other @ export::ExportError::Unmappable { .. } => Error::Failed(Box::new(other)),
    })?;
    for warning in &exported.warnings {
        eprintln!("{warning}");
    }
    match output {
        Some(dir) => write_files(&dir, &exported.files),
        None => {
            for (_, text) in &exported.files {
                print!("{text}");
            }
            Ok(())
        }
    }
}

/// Write each `(relative path, contents)` under `dir`, and name it on stdout.
fn write_files(dir: &Path, files: &[(String, String)]) -> Result<(), Error> {
    let failed = |path: &Path, e: std::io::Error| {
        Error::Failed(miette::miette!("cannot write {}: {e}", path.display()).into())
    };
    for (name, text) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| failed(parent, e))?;
        }
        std::fs::write(&path, text).map_err(|e| failed(&path, e))?;
        println!("{}", path.display());
    }
    Ok(())
}

/// The stack file: given after the subcommand, else before it (or
/// `$ORCH_FILE`), else `./stack.yaml`.
fn stack_file(after: Option<&Path>, before: Option<&Path>) -> PathBuf {
    after
        .or(before)
        .map_or_else(|| PathBuf::from("stack.yaml"), Path::to_path_buf)
}

/// Send a request to the stack of `file` (which must be valid to be found).
fn control_call(
    file: &Path,
    request: control::protocol::Request,
) -> Result<control::protocol::Response, Error> {
    answer(control::client::call(&running_stack(file)?, request))
}

/// The path a running stack is found by: its file's, resolved, so a file
/// being edited need not be valid.
fn running_stack(file: &Path) -> Result<PathBuf, Error> {
    model::stack_path(file).map_err(|e| Error::Usage {
        message: format!("cannot resolve the stack file {}: {e}", file.display()),
        help: None,
    })
}

/// A running stack's answer, its error replies as errors.
fn answer(
    result: Result<control::protocol::Response, control::client::ClientError>,
) -> Result<control::protocol::Response, Error> {
    match result {
        Ok(control::protocol::Response::Error {
            diagnostic: Some(text),
            ..
        }) => Err(Error::Rendered(text)),
        Ok(control::protocol::Response::Error { message, help, .. }) => {
            Err(Error::Usage { message, help })
        }
        Ok(response) => Ok(response),
        Err(e) => Err(Error::Failed(Box::new(e))),
    }
}

fn print_lines(response: control::protocol::Response) -> Result<(), Error> {
    match response {
        control::protocol::Response::Done { lines }
        | control::protocol::Response::Why { lines } => {
            for line in lines {
                println!("{line}");
            }
            Ok(())
        }
        other => Err(unexpected(other)),
    }
}

fn unexpected(response: control::protocol::Response) -> Error {
    Error::Failed(
        miette::miette!("the running stack gave an unexpected answer: {response:?}").into(),
    )
}

/// Look a service up by name, or explain which names exist.
pub fn service_id(stack: &Stack, name: &str) -> Result<model::ServiceId, Error> {
    stack.find_service(name).map_err(|e| Error::Usage {
        message: e.message,
        help: Some(e.help),
    })
}
