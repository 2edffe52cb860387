//! `orch up -d`: run the stack in the background and come back once it is
//! up. The stack file has been read and checked already; a copy of orch runs
//! `orch up` in a session of its own, its console in `<log_dir>/orch.log`,
//! and this process waits on the control socket until every selected service
//! is up (exit 0), one has failed (exit 1, the stack keeps running), or the
//! copy ended before (its exit code, with what it said).

use std::io::{Read, Seek, SeekFrom};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::control::client;
use crate::control::protocol::{Request, Response, StatusReport};
use crate::model::{HumanDuration, Stack};
use crate::Error;

/// How often the running stack is asked how it is doing.
const LOOK_EVERY: Duration = Duration::from_millis(50);

fn failed(message: String, help: Option<String>) -> Error {
    Error::Failed(Box::new(Detached { message, help }))
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{message}")]
struct Detached {
    message: String,
    #[help]
    help: Option<String>,
}

/// Start `orch up` for `stack` in the background; the exit code.
pub fn run(stack: &Stack, names: &[String], profiles: &[String], abort: bool) -> Result<u8, Error> {
    // Its answers would be taken for the new one's.
    if client::call(&stack.file, Request::Status { services: vec![] }).is_ok() {
        return Err(Error::Usage {
            message: format!("stack `{}` is already running", stack.name),
            help: Some(format!(
                "see it with `orch -f {} status`, stop it with `orch -f {0} down`",
                stack.file.display()
            )),
        });
    }
    std::fs::create_dir_all(&stack.log_dir).map_err(|e| {
        failed(
            format!(
                "cannot make the log folder {}: {e}",
                stack.log_dir.display()
            ),
            None,
        )
    })?;
    let console = stack.log_dir.join("orch.log");
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&console)
            .map_err(|e| failed(format!("cannot open {}: {e}", console.display()), None))
    };
    let log = open()?;
    let from = log.metadata().map(|m| m.len()).unwrap_or(0);
    let exe = std::env::current_exe()
        .map_err(|e| failed(format!("cannot find orch's own program: {e}"), None))?;
    let mut command = Command::new(exe);
    command
        .arg("up")
        .arg(&stack.file)
        .args(names)
        .args(profiles.iter().flat_map(|p| ["--profile", p.as_str()]))
        .arg("--detached")
        .env_remove("ORCH_PROFILES")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(open()?));
    if abort {
        command.arg("--abort-on-failure");
    }
    let mut child = command
        .spawn()
        .map_err(|e| failed(format!("cannot start orch in the background: {e}"), None))?;
    let started = Instant::now();
    let pid = child.id();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            // It ended before the stack was up: say what it said.
            let mut said = String::new();
            if let Ok(mut file) = std::fs::File::open(&console) {
                let _ = file.seek(SeekFrom::Start(from));
                let _ = file.read_to_string(&mut said);
            }
            eprint!("{said}");
            let code = status
                .code()
                .and_then(|c| u8::try_from(c).ok())
                .unwrap_or(1);
            return Ok(code);
        }
        // Until it listens, there is no answer.
        if let Ok(Response::Status(report)) =
            client::call(&stack.file, Request::Status { services: vec![] })
        {
            if let Some(code) = settled(stack, &report, started, pid)? {
                return Ok(code);
            }
        }
        std::thread::sleep(LOOK_EVERY);
    }
}

/// `Some(0)` once every selected service is up, an error naming the first
/// that failed; `None` while start-up goes on.
fn settled(
    stack: &Stack,
    report: &StatusReport,
    started: Instant,
    pid: u32,
) -> Result<Option<u8>, Error> {
    let selected: Vec<_> = report
        .services
        .iter()
        .filter(|s| s.why.as_deref() != Some("not selected"))
        .collect();
    if let Some(service) = selected
        .iter()
        .find(|s| s.members.iter().any(|m| m.state == "failed"))
    {
        let file = stack.file.display();
        return Err(failed(
            format!(
                "service `{}` failed to start: {}; the stack keeps running in the background (orch pid {pid})",
                service.name,
                service.why.as_deref().unwrap_or("it failed")
            ),
            Some(format!(
                "see why with `orch -f {file} why {}` and `orch -f {file} logs {0}`; stop the stack with `orch -f {file} down`",
                service.name
            )),
        ));
    }
    if !selected.iter().all(|s| s.state == "up") {
        return Ok(None);
    }
    println!(
        "stack `{}` is up: {} service{} in {} (orch pid {pid}); `orch status` shows it, `orch down` stops it",
        stack.name,
        selected.len(),
        if selected.len() == 1 { "" } else { "s" },
        HumanDuration(Duration::from_millis(
            u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
        )),
    );
    Ok(Some(0))
}
