//! Running a stack: the only part of orch with side effects.
//!
//! [`up`] checks what can be checked before anything starts (programs on
//! PATH, users, ports, another orch of the same stack, members left over by
//! a crashed one), then hands over to the supervisor: a pure core
//! ([`core`]) that owns every member's state and decides, and a supervisor
//! (`supervisor`) that carries out its decisions on one thread. Members'
//! output is drained by a thread of its own ([`logs`]) and the console is
//! written by another ([`console`]), so neither can hold supervision up.

pub mod console;
pub mod core;
pub mod guard;
pub mod leftovers;
pub mod logs;
pub mod preflight;
pub mod probe;
pub mod procfs;
pub mod reaper;
pub mod spawn;
mod supervisor;

use std::io::IsTerminal as _;
use std::os::fd::AsFd as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::control::server;
use crate::model::Stack;
use core::{Core, Selection};

/// Why a stack could not be run.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum Error {
    /// orch will not do it as asked (another orch runs the stack, a program
    /// or user is missing): nothing was started.
    #[error("{message}")]
    Refused {
        message: String,
        #[help]
        help: Option<String>,
    },
    /// Something orch needs failed.
    #[error("{message}")]
    Failed {
        message: String,
        #[help]
        help: Option<String>,
    },
}

fn failed(message: String) -> Error {
    Error::Failed {
        message,
        help: None,
    }
}

/// What `orch up` was asked for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The services to run with what they depend on (all when empty);
    /// each must be in the stack.
    pub selection: Selection,
    /// Stop the whole stack when a service fails.
    pub abort_on_failure: bool,
}

/// Whether orch has a controlling terminal now: when it had one and it is
/// gone, the terminal hung up.
pub fn has_terminal() -> bool {
    use nix::fcntl::{open, OFlag};
    open(
        "/dev/tty",
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .is_ok()
}

/// Run the stack in the foreground until it is stopped or done; the exit code.
pub fn up(stack: Stack, options: Options) -> Result<u8, Error> {
    let stack = Arc::new(stack);
    let now = Instant::now();
    let core = Core::new(
        Arc::clone(&stack),
        options.selection,
        options.abort_on_failure,
        now,
    );
    let selected: Vec<core::Slot> = core::Slot::all(&stack)
        .filter(|slot| core.services[slot.sid].selected)
        .collect();
    preflight::packages(&stack, &selected)?;
    let identities = preflight::resolve_identities(&stack);
    preflight::identities(&identities, &selected)?;

    let run_folder = |e| failed(format!("cannot make orch's run folder: {e}"));
    let state_path = crate::paths::state_path(&stack.file).map_err(run_folder)?;
    let socket_path = crate::paths::socket_path(&stack.file).map_err(run_folder)?;
    let previous = leftovers::RunState::read(&state_path);
    // The run-state file names the orch that ran the stack last: when it is
    // dead, its socket is stale even if it still takes connections.
    let dead = previous
        .as_ref()
        .and_then(|p| p.orch)
        .is_some_and(|orch| !orch.alive());
    let socket = match server::bind(&socket_path, dead) {
        Ok(listener) => listener,
        Err(server::BindError::InUse(_)) => {
            return Err(Error::Refused {
                message: format!("stack `{}` is already running", stack.name),
                help: Some(format!(
                    "see it with `orch -f {} status`, stop it with `orch -f {0} down`",
                    stack.file.display()
                )),
            })
        }
        Err(server::BindError::Io(e)) => {
            return Err(failed(format!(
                "cannot open the control socket {}: {e}",
                socket_path.display()
            )))
        }
    };
    let mut notes = Vec::new();
    if let Some(previous) = previous {
        if let Some(orch) = previous
            .orch
            .filter(|p| p.alive() && p.pid != std::process::id() as i32)
        {
            return Err(Error::Refused {
                message: format!(
                    "stack `{}` is already running (orch pid {})",
                    stack.name, orch.pid
                ),
                help: Some("stop it first (Ctrl-C in its terminal, or kill -TERM that pid)".into()),
            });
        }
        let left = previous.stop_leftovers();
        if left > 0 {
            notes.push(format!(
                "stopped {left} member{} left over from an earlier orch that did not stop cleanly",
                if left == 1 { "" } else { "s" }
            ));
        }
    }
    preflight::ports(&stack, &selected, &|_| false)?;
    std::fs::create_dir_all(&stack.log_dir).map_err(|e| {
        failed(format!(
            "cannot make the log folder {}: {e}",
            stack.log_dir.display()
        ))
    })?;
    spawn::become_subreaper().map_err(|e| failed(format!("cannot become a subreaper: {e}")))?;

    let stdout = std::io::stdout();
    let color = std::env::var_os("NO_COLOR").is_none() && stdout.is_terminal();
    let width = core
        .members
        .iter()
        .filter(|m| m.slot.is_some_and(|s| core.services[s.sid].selected))
        .map(|m| m.label.len())
        .max()
        .unwrap_or(4);
    let duplicate = |fd: std::os::fd::BorrowedFd<'_>| -> Result<std::fs::File, Error> {
        fd.try_clone_to_owned()
            .map(std::fs::File::from)
            .map_err(|e| failed(format!("cannot use orch's console: {e}")))
    };
    let (console, console_writer) = console::Console::start(
        Box::new(duplicate(stdout.as_fd())?),
        Box::new(duplicate(std::io::stderr().as_fd())?),
        color,
        width,
    );
    for note in notes {
        console.say(&note);
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| failed(format!("cannot start the runtime: {e}")))?;
    let me = nix::unistd::getpid();
    let mark = (
        guard::RUN_MARK.to_owned(),
        format!(
            "{me}.{}",
            procfs::process_start_time(me).unwrap_or_default()
        ),
    );
    let code = runtime.block_on(async {
        let (guardian, guardian_writer) = guard::Guardian::start(&format!("{}={}", mark.0, mark.1))
            .map_err(|e| failed(format!("cannot start orch's guardian process: {e}")))?;
        let events = tokio::sync::mpsc::unbounded_channel();
        let logs = logs::Logs::start(events.0.clone(), console.clone())
            .map_err(|e| failed(format!("cannot start orch's log writer: {e}")))?;
        let complain = console.clone();
        let state_file = leftovers::StateFile::new(
            state_path,
            Arc::new(move |text: String| complain.say(&text)),
        );
        let (calls_tx, calls) = tokio::sync::mpsc::channel(64);
        let listener = tokio::net::UnixListener::from_std(socket)
            .map_err(|e| failed(format!("cannot serve the control socket: {e}")))?;
        let server = server::Server::start(listener, calls_tx, socket_path);
        let supervisor = supervisor::Supervisor::new(supervisor::Parts {
            core,
            console,
            logs,
            events,
            guardian: (guardian, guardian_writer),
            state_file,
            identities,
            mark,
            base_env: std::env::vars().collect(),
            tty: has_terminal(),
            interactive: stdout.is_terminal(),
        });
        Ok::<u8, Error>(supervisor.run(server, calls).await)
    })?;
    runtime.shutdown_timeout(Duration::from_secs(1));
    console_writer.finish(Duration::from_secs(2));
    Ok(code)
}
