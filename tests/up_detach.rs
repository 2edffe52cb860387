//! `orch up -d` (the stack in the background, back once it is up) and
//! start-up progress on a terminal.

mod common;

use std::io::Read;
use std::os::fd::AsFd;
use std::process::Stdio;

use common::client::client as orch;
use common::run::{poll, Stack, DEADLINE};

/// `db` comes up after a moment, `api` depends on it; `bad` always fails.
const STACK: &str = r#"
services:
  db:
    commands:
      pg: { command: "sleep 0.3; exec python3 -m http.server ${port} --bind 127.0.0.1", port: auto }
  api:
    depends_on: [db]
    commands:
      web: { command: exec sleep 1000 }
  bad:
    commands:
      x: { command: exit 3, respawn_count: 1, respawn_backoff: 0s }
"#;

/// Stops what a test left in the background, whatever happened.
struct Down<'a>(&'a Stack);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = orch(self.0, &["down"]);
        common::run::kill_marked(self.0.marker());
    }
}

#[test]
fn up_d_returns_0_once_the_services_are_up_and_the_stack_runs_on() {
    let stack = Stack::new(STACK);
    let _down = Down(&stack);
    let out = orch(&stack, &["up", "-d", "stack.yaml", "api"]);
    assert_eq!(out.code, 0, "{}", out.err());
    assert!(
        out.stdout
            .starts_with("stack `stack` is up: 2 services in "),
        "{}",
        out.stdout
    );
    // It came back only once both were up, and they still run.
    let status = orch(&stack, &["status", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&status.stdout).expect("JSON");
    for (i, name) in ["db", "api"].iter().enumerate() {
        assert_eq!(report["services"][i]["name"], *name);
        assert_eq!(report["services"][i]["state"], "up", "{report:#}");
    }
    // Its console is in the log folder.
    let console = stack.read(".orch/logs/orch.log");
    assert!(console.contains("api.web: started"), "{console}");
    assert_eq!(orch(&stack, &["down"]).code, 0);
    stack.wait_all_gone();
}

#[test]
fn up_d_exits_1_naming_the_service_that_failed_and_the_stack_keeps_running() {
    let stack = Stack::new(STACK);
    let _down = Down(&stack);
    let out = orch(&stack, &["up", "-d", "stack.yaml"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stderr
            .contains("service `bad` failed to start: bad.x failed; the stack keeps running"),
        "{}",
        out.stderr
    );
    assert!(out.err().contains("why bad"), "{}", out.stderr);
    // Still there to look at and stop.
    let why = orch(&stack, &["why", "bad"]);
    assert!(
        why.stdout.contains("bad is down: bad.x failed"),
        "{}",
        why.stdout
    );
    assert_eq!(orch(&stack, &["down"]).code, 0);
    stack.wait_all_gone();
}

#[test]
fn up_d_refuses_an_invalid_file_or_a_second_run_and_starts_nothing() {
    let stack = Stack::new(&STACK.replace("depends_on: [db]", "depends_on: [dbb]"));
    let out = orch(&stack, &["up", "-d", "stack.yaml"]);
    assert_eq!(out.code, 2);
    assert!(
        out.err().contains("unknown service `dbb`"),
        "{}",
        out.stderr
    );
    assert!(!stack.exists(".orch/logs/orch.log"), "nothing was started");

    let stack = Stack::new(STACK);
    let _down = Down(&stack);
    assert_eq!(orch(&stack, &["up", "-d", "stack.yaml", "api"]).code, 0);
    let again = orch(&stack, &["up", "-d", "stack.yaml", "api"]);
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert!(
        again.err().contains("is already running"),
        "{}",
        again.stderr
    );
}

#[test]
fn start_up_progress_shows_on_a_terminal_then_how_long_it_took() {
    let stack = Stack::new(STACK);
    let _down = Down(&stack);
    let pty = nix::pty::openpty(None, None).expect("a pseudo-terminal");
    let terminal = std::fs::File::from(pty.slave);
    let mut orch = stack
        .command()
        .args(["up", "stack.yaml", "api"])
        .stdout(Stdio::from(terminal.try_clone().expect("dup")))
        .stderr(Stdio::from(terminal))
        .spawn()
        .expect("orch up");
    let mut master = std::fs::File::from(pty.master);
    let mut seen = String::new();
    let done = poll(DEADLINE, || {
        let mut ready = [nix::poll::PollFd::new(
            master.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let readable =
            nix::poll::poll(&mut ready, nix::poll::PollTimeout::from(50u16)).unwrap_or(0) > 0;
        if readable {
            let mut chunk = [0u8; 4096];
            if let Ok(n) = master.read(&mut chunk) {
                seen.push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        }
        seen.contains("all 2 services up in ").then_some(())
    });
    let _ = orch.kill();
    let _ = orch.wait();
    assert!(done.is_some(), "{seen}");
    assert!(
        seen.contains("starting: db (db.pg is starting), api (db is not up)"),
        "{seen}"
    );
}
