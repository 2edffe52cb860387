//! `orch up`: what is checked before anything starts.

mod common;

use std::process::{Command, Stdio};

use common::run::{free_port, poll, Stack, DEADLINE};
use nix::sys::signal::Signal;

/// A process that listens on a port until it is dropped.
struct Holder(std::process::Child);

impl Holder {
    /// python3 listening on 127.0.0.1:`port`, once it does.
    fn listen(stack: &Stack, port: u16) -> Holder {
        let child = Command::new("python3")
            .args([
                "-c",
                "import socket, sys, time\n\
                 s = socket.socket()\n\
                 s.bind(('127.0.0.1', int(sys.argv[1])))\n\
                 s.listen()\n\
                 open('holder.listening', 'w').close()\n\
                 time.sleep(1000)",
                &port.to_string(),
            ])
            .current_dir(stack.dir())
            .stdin(Stdio::null())
            .spawn()
            .expect("start python3");
        let holder = Holder(child);
        stack.wait_file("holder.listening");
        holder
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn port_held_by_another_program_is_an_error_before_anything_starts() {
    let port = free_port();
    let stack = Stack::new(&format!(
        r"
services:
  cache:
    commands:
      w:
        command: touch cache.ran; exec sleep 1000
  db:
    commands:
      server:
        command: touch db.ran; exec python3 -m http.server ${{port}} --bind 127.0.0.1
        port: {port}
"
    ));
    let holder = Holder::listen(&stack, port);
    let mut orch = stack.up(&[]);
    orch.assert_exit(1);
    let errors = orch.stderr();
    let expected = format!(
        "port {port}, wanted by db.server, is already held by pid {} (python3)",
        holder.0.id()
    );
    assert!(
        errors.contains(&expected),
        "expected `{expected}` in:\n{errors}"
    );
    assert!(errors.contains("nothing was started"), "{errors}");
    assert_eq!(orch.find("started"), None, "{}", orch.console());
    assert!(!stack.exists("cache.ran") && !stack.exists("db.ran"));
}

#[test]
fn missing_system_packages_are_all_listed_before_anything_starts() {
    let stack = Stack::new(
        r"
services:
  db:
    commands:
      server:
        command: touch db.ran; exec sleep 1000
        system_packages: [sh, orch-test-no-such-program]
  api:
    depends_on: [db]
    commands:
      web:
        command: touch api.ran; exec sleep 1000
        system_packages: [orch-test-missing-too]
",
    );
    let mut orch = stack.up(&[]);
    orch.assert_exit(2);
    let errors = orch.stderr();
    for expected in [
        "programs missing from PATH:",
        "orch-test-no-such-program (for db.server)",
        "orch-test-missing-too (for api.web)",
        "nothing was started",
    ] {
        assert!(
            errors.contains(expected),
            "expected `{expected}` in:\n{errors}"
        );
    }
    assert!(!errors.contains("sh (for"), "sh is on PATH:\n{errors}");
    assert_eq!(orch.find("started"), None, "{}", orch.console());
    assert!(!stack.exists("db.ran") && !stack.exists("api.ran"));
}

#[test]
fn second_up_of_a_running_stack_is_refused() {
    let stack = Stack::new(
        r"
services:
  db:
    commands:
      server:
        command: echo run >> runs; exec sleep 1000
",
    );
    let mut first = stack.up(&[]);
    first.wait_for("the member to run", || {
        (stack.lines("runs").len() == 1).then_some(())
    });
    // The first orch has recorded itself in its run folder.
    poll(DEADLINE, || {
        std::fs::read_dir(stack.path("run/orch"))
            .ok()?
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "state"))
            .then_some(())
    })
    .expect("the run-state file is written");
    let mut second = stack.up(&[]);
    second.assert_exit(2);
    let errors = second.stderr();
    let expected = "stack `stack` is already running";
    assert!(
        errors.contains(expected),
        "expected `{expected}` in:\n{errors}"
    );
    assert_eq!(
        stack.lines("runs").len(),
        1,
        "the second orch must start nothing"
    );
    assert!(!first.exited(), "the first orch keeps running");
    first.signal(Signal::SIGTERM);
    first.assert_exit(0);
}

#[test]
fn user_and_group_are_applied_or_refused_without_root() {
    let stack = Stack::new(
        r"
services:
  db:
    commands:
      server:
        command: echo uid=$(id -u) gid=$(id -g)
        when_to_run: once
        user: nobody
        group: nogroup
",
    );
    let mut orch = stack.up(&[]);
    if nix::unistd::Uid::effective().is_root() {
        orch.assert_exit(0);
        let nobody = nix::unistd::User::from_name("nobody")
            .expect("read the user database")
            .expect("a user `nobody`");
        let nogroup = nix::unistd::Group::from_name("nogroup")
            .expect("read the group database")
            .expect("a group `nogroup`");
        orch.wait_line(&format!("uid={} gid={}", nobody.uid, nogroup.gid));
    } else {
        orch.assert_exit(2);
        let errors = orch.stderr();
        let expected = "db.server runs as another user or group, which needs orch to run as root";
        assert!(
            errors.contains(expected),
            "expected `{expected}` in:\n{errors}"
        );
        assert_eq!(orch.find("started"), None, "{}", orch.console());
    }
}
