//! Running a stack: the only part of orch with side effects.
//!
//! [`up`] checks what can be checked before anything starts (programs on
//! PATH, users, ports, another orch of the same stack, members left over by
//! a crashed one), then hands over to the supervisor: a pure core
//! ([`state`]) that owns every member's state, and an executor
//! ([`supervisor`]) that carries out its decisions on one thread.

pub mod console;
pub mod guard;
pub mod logs;
pub mod probe;
pub mod procfs;
pub mod reaper;
pub mod runstate;
pub mod spawn;
pub mod state;
pub mod supervisor;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::model::{ServiceId, Stack};
use crate::Error;

/// What `orch up` was asked for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Run only these services and what they depend on; all when empty.
    pub services: Vec<ServiceId>,
    /// Stop the whole stack when a service fails.
    pub abort_on_failure: bool,
}

/// Run the stack in the foreground until it is stopped or done; the exit code.
pub fn up(stack: Stack, options: &Options) -> Result<u8, Error> {
    let stack = Arc::new(stack);
    let sup = state::Supervision::new(
        Arc::clone(&stack),
        &options.services,
        options.abort_on_failure,
    );
    let wanted = |sid: ServiceId| sup.wanted[sid];
    check_packages(&stack, &wanted)?;
    let identities = identities(&stack, &wanted)?;

    let failed = |what: String| Error::Failed(miette::miette!("{what}").into());
    let run_folder = |e| failed(format!("cannot make orch's run folder: {e}"));
    let state_path = crate::paths::state_path(&stack.file).map_err(run_folder)?;
    let socket_path = crate::paths::socket_path(&stack.file).map_err(run_folder)?;
    let socket = match crate::control::server::bind(&socket_path) {
        Ok(listener) => listener,
        Err(crate::control::server::BindError::InUse(_)) => {
            return Err(Error::Usage {
                message: format!("stack `{}` is already running", stack.name),
                help: Some(format!(
                    "see it with `orch -f {} status`, stop it with `orch -f {0} down`",
                    stack.file.display()
                )),
            })
        }
        Err(crate::control::server::BindError::Io(e)) => {
            return Err(failed(format!(
                "cannot open the control socket {}: {e}",
                socket_path.display()
            )))
        }
    };
    let console = console::Console::new(
        std::env::var_os("NO_COLOR").is_none()
            && std::io::IsTerminal::is_terminal(&std::io::stdout()),
        sup.members
            .iter()
            .filter(|m| sup.wanted[m.sid])
            .map(|m| m.label.len())
            .max()
            .unwrap_or(4),
    );
    if let Some(previous) = runstate::RunState::read(&state_path) {
        if let Some(orch) = previous
            .orch
            .filter(|p| p.alive() && p.pid != std::process::id() as i32)
        {
            return Err(Error::Usage {
                message: format!(
                    "stack `{}` is already running (orch pid {})",
                    stack.name, orch.pid
                ),
                help: Some("stop it first (Ctrl-C in its terminal, or kill -TERM that pid)".into()),
            });
        }
        let left = previous.stop_leftovers();
        if left > 0 {
            console.say(&format!(
                "stopped {left} member{} left over from an earlier orch that did not stop cleanly",
                if left == 1 { "" } else { "s" }
            ));
        }
    }
    check_ports(&stack, &wanted)?;
    std::fs::create_dir_all(&stack.log_dir).map_err(|e| {
        failed(format!(
            "cannot make the log folder {}: {e}",
            stack.log_dir.display()
        ))
    })?;
    spawn::become_subreaper().map_err(|e| failed(format!("cannot become a subreaper: {e}")))?;
    let guardian = guard::Guardian::start()
        .map_err(|e| failed(format!("cannot start orch's guardian process: {e}")))?;

    // One thread: members get PR_SET_PDEATHSIG from the thread that starts
    // them, and this one lives as long as orch.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| failed(format!("cannot start the runtime: {e}")))?;
    let executor = {
        let _guard = runtime.enter();
        supervisor::Executor::new(
            sup,
            console,
            identities,
            guardian,
            state_path,
            (socket, socket_path),
        )
    };
    runtime
        .block_on(executor.run())
        .map_err(|e| failed(format!("supervisor failed: {e}")))
}

/// Every `system_packages` entry of the services to run must be on PATH.
fn check_packages(stack: &Stack, wanted: &dyn Fn(ServiceId) -> bool) -> Result<(), Error> {
    let path = stack
        .env
        .get("PATH")
        .cloned()
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_default();
    let mut missing: Vec<String> = Vec::new();
    for (sid, service) in stack
        .services
        .iter()
        .enumerate()
        .filter(|(sid, _)| wanted(*sid))
    {
        for command in &service.commands {
            for package in &command.system_packages {
                let found = if package.contains('/') {
                    Path::new(package).is_file()
                } else {
                    std::env::split_paths(&path).any(|dir| dir.join(package).is_file())
                };
                if !found {
                    missing.push(format!(
                        "{package} (for {}.{})",
                        stack.services[sid].name, command.name
                    ));
                }
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::Usage {
        message: format!("programs missing from PATH: {}", missing.join(", ")),
        help: Some("install them, or add their folder to PATH; nothing was started".into()),
    })
}

/// Resolve `user`/`group` of the commands to run; only root can switch.
fn identities(
    stack: &Stack,
    wanted: &dyn Fn(ServiceId) -> bool,
) -> Result<HashMap<(usize, usize), spawn::Identity>, Error> {
    let mut out = HashMap::new();
    let mut problems = Vec::new();
    let root = nix::unistd::Uid::effective().is_root();
    for (sid, service) in stack
        .services
        .iter()
        .enumerate()
        .filter(|(sid, _)| wanted(*sid))
    {
        for (cid, command) in service.commands.iter().enumerate() {
            if command.user.is_none() && command.group.is_none() {
                continue;
            }
            let who = format!("{}.{}", service.name, command.name);
            if !root {
                problems.push(format!(
                    "{who} runs as another user or group, which needs orch to run as root"
                ));
                continue;
            }
            match spawn::resolve_identity(command.user.as_deref(), command.group.as_deref()) {
                Ok(identity) => {
                    out.insert((sid, cid), identity);
                }
                Err(e) => problems.push(format!("{who}: {e}")),
            }
        }
    }
    if problems.is_empty() {
        return Ok(out);
    }
    Err(Error::Usage {
        message: problems.join("\n"),
        help: Some(
            "run orch as root, or remove `user`/`group` from these commands; nothing was started"
                .into(),
        ),
    })
}

/// No port a member will listen on may be held already.
fn check_ports(stack: &Stack, wanted: &dyn Fn(ServiceId) -> bool) -> Result<(), Error> {
    let tables: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|t| std::fs::read_to_string(t).ok())
        .collect();
    let mut held = Vec::new();
    for (sid, cid, instance) in stack.members().filter(|(sid, _, _)| wanted(*sid)) {
        let Some(port) = instance.port else { continue };
        if tables
            .iter()
            .all(|t| procfs::parse_listening_inodes(t, port).is_empty())
        {
            continue;
        }
        let service = &stack.services[sid];
        let holder = procfs::port_holder(port)
            .map_or_else(String::new, |(pid, name)| format!(" by pid {pid} ({name})"));
        held.push(format!(
            "port {port}, wanted by {}.{}, is already held{holder}",
            service.name, service.commands[cid].name
        ));
    }
    if held.is_empty() {
        return Ok(());
    }
    Err(Error::Failed(
        miette::miette!(
            help = "stop that program, or give the command another port; nothing was started",
            "{}",
            held.join("\n")
        )
        .into(),
    ))
}
