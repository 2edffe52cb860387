//! Client commands against a running `orch up`: `orch status`, `why`,
//! `logs`, `restart`, `stop`, `start`, `down`, `reload`, run as separate
//! processes with the stack's environment, and what their answers say.
//!
//! Client commands run with the same environment as the orch they talk to
//! (its folder, its `XDG_RUNTIME_DIR`), which is how they find its socket.

#![allow(dead_code)] // each test binary uses a part of this module

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};

use nix::unistd::Pid;
use serde_json::Value;

use super::run::{poll, Orch, Stack, DEADLINE};

/// What a client command printed, and its exit code.
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// stderr with its whitespace runs made single spaces: reports are
    /// wrapped to a width.
    pub fn err(&self) -> String {
        self.stderr.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// Start `orch up stack.yaml ARGS...` and wait until it has started a
/// member: by then its control socket is there, for client commands.
pub fn up_serving(stack: &Stack, args: &[&str]) -> Orch {
    let orch = stack.up(args);
    orch.wait_line(": started (pid ");
    orch
}

/// Run `orch ARGS...` from `dir` with the stack's environment; it must end
/// within the deadline.
pub fn client_in(stack: &Stack, dir: &Path, args: &[&str]) -> Out {
    let mut command = stack.command();
    command.current_dir(dir).args(args);
    finish(command, &args.join(" "))
}

/// Run `command` (`orch SHOWN`) to its end, which must come within the deadline.
pub fn finish(mut command: Command, shown: &str) -> Out {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(command.output());
    });
    let output = rx
        .recv_timeout(DEADLINE)
        .unwrap_or_else(|_| panic!("`orch {shown}` did not finish within {DEADLINE:?}"))
        .expect("run orch");
    Out {
        code: output
            .status
            .code()
            .unwrap_or_else(|| panic!("`orch {shown}` ended without an exit code")),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Run `orch ARGS...` in the stack's folder.
pub fn client(stack: &Stack, args: &[&str]) -> Out {
    client_in(stack, stack.dir(), args)
}

/// Run `orch ARGS...` in the stack's folder; it must succeed. Its stdout.
pub fn ok(stack: &Stack, args: &[&str]) -> String {
    let out = client(stack, args);
    assert_eq!(
        out.code,
        0,
        "`orch {}` failed; stdout:\n{}\nstderr:\n{}",
        args.join(" "),
        out.stdout,
        out.stderr
    );
    out.stdout
}

/// `orch status --json ARGS...`, parsed.
pub fn status_of(stack: &Stack, services: &[&str]) -> Value {
    let mut args = vec!["status", "--json"];
    args.extend_from_slice(services);
    let text = ok(stack, &args);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("`orch status --json` printed no JSON ({e}):\n{text}"))
}

/// `orch status --json`, parsed.
pub fn status(stack: &Stack) -> Value {
    status_of(stack, &[])
}

/// The service named `name` in a status report.
pub fn service<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["services"]
        .as_array()
        .expect("`services` is a list")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no service `{name}` in {report:#}"))
}

/// The names of the services in a status report, in its order.
pub fn names(report: &Value) -> Vec<String> {
    report["services"]
        .as_array()
        .expect("`services` is a list")
        .iter()
        .map(|s| s["name"].as_str().expect("a name").to_owned())
        .collect()
}

/// The first member of service `name`.
pub fn member<'a>(report: &'a Value, name: &str) -> &'a Value {
    &service(report, name)["members"][0]
}

/// The pid of the first member of service `name`.
pub fn pid(report: &Value, name: &str) -> Pid {
    let pid = member(report, name)["pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("`{name}` has no pid in {report:#}"));
    Pid::from_raw(i32::try_from(pid).expect("a pid fits in i32"))
}

/// Wait until `orch status` shows every service of `services` up; the report.
pub fn wait_up(orch: &Orch, stack: &Stack, services: &[&str]) -> Value {
    orch.wait_for(&format!("{services:?} up in `orch status`"), || {
        let report = status(stack);
        services
            .iter()
            .all(|s| service(&report, s)["state"] == "up")
            .then_some(report)
    })
}

/// Wait until the console has `n` lines containing `needle`.
pub fn wait_count(orch: &Orch, needle: &str, n: usize) {
    orch.wait_for(&format!("{n} console lines with `{needle}`"), || {
        (orch.count(needle) >= n).then_some(())
    });
    assert_eq!(orch.count(needle), n, "{}", orch.console());
}

/// Wait for a console line containing `needle` after line `from`; its index.
pub fn wait_line_after(orch: &Orch, from: usize, needle: &str) -> usize {
    orch.wait_for(
        &format!("a console line with `{needle}` after line {from}"),
        || {
            orch.lines()
                .iter()
                .enumerate()
                .skip(from + 1)
                .find(|(_, l)| l.contains(needle))
                .map(|(i, _)| i)
        },
    )
}

/// Wait until the log file of `label` holds `text`.
pub fn wait_log(orch: &Orch, stack: &Stack, label: &str, text: &str) {
    let name = format!(".orch/logs/{label}.log");
    orch.wait_for(&format!("`{text}` in {name}"), || {
        stack.read(&name).contains(text).then_some(())
    });
}

/// A client process whose stdout lines are collected by a thread.
pub struct Follower {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Follower {
    /// Start `orch ARGS...`, keeping every line it prints.
    pub fn start(stack: &Stack, args: &[&str]) -> Follower {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&lines);
        let child = Follower::streaming(stack, args, move |line| {
            kept.lock().expect("lines lock").push(line);
        });
        Follower { child, lines }
    }

    /// Start `orch ARGS...` and hand each line it prints to `each`, on a
    /// thread of its own, keeping none: for output too large to hold.
    /// The process is killed when the `Follower` is dropped.
    pub fn each(
        stack: &Stack,
        args: &[&str],
        each: impl FnMut(String) + Send + 'static,
    ) -> Follower {
        Follower {
            child: Follower::streaming(stack, args, each),
            lines: Arc::default(),
        }
    }

    fn streaming(
        stack: &Stack,
        args: &[&str],
        mut each: impl FnMut(String) + Send + 'static,
    ) -> Child {
        let mut child = stack
            .command()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start orch");
        let out = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::with_capacity(1 << 20, out).lines() {
                let Ok(line) = line else { break };
                each(line);
            }
        });
        child
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).expect("a pid fits in i32"))
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lines lock").clone()
    }

    /// Wait for an output line equal to `line`.
    pub fn wait_line(&self, line: &str) {
        if poll(DEADLINE, || {
            self.lines().iter().any(|l| l == line).then_some(())
        })
        .is_none()
        {
            panic!(
                "waited {DEADLINE:?} for `{line}` from `orch logs -f`; it printed:\n{}",
                self.lines().join("\n")
            );
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
