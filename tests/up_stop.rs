//! `orch up`: stopping in reverse dependency order, a forced stop, and no
//! process left behind when orch itself is killed.

mod common;

use std::time::{Duration, Instant};

use common::run::{alive, Stack};
use nix::sys::signal::Signal;

/// A service whose command, on its stop signal, waits `delay` seconds and
/// appends its name to `stops`.
fn trapping(name: &str, deps: &str, delay: &str, signal: &str) -> String {
    format!(
        r"
  {name}:
    depends_on: [{deps}]
    commands:
      w:
        command: trap 'sleep {delay}; echo {name} >> stops; exit 0' {signal}; touch {name}.up; sleep 1000 & wait
        stop_signal: SIG{signal}"
    )
}

#[test]
fn sigterm_stops_dependents_before_their_dependencies() {
    let stack = Stack::new(&format!(
        "services:{}{}{}{}\n",
        // Dependencies stop faster than their dependents: signalled all at
        // once, they would be the first to write.
        trapping("a", "", "0.05", "TERM"),
        trapping("b", "a", "0.2", "TERM"),
        trapping("c", "b", "0.4", "TERM"),
        // Its own stop signal, which it traps.
        trapping("d", "", "0", "USR1")
    ));
    let mut orch = stack.up(&[]);
    for name in ["a", "b", "c", "d"] {
        stack.wait_file(&format!("{name}.up"));
    }
    orch.signal(Signal::SIGTERM);
    orch.assert_exit(0);
    let stops = stack.lines("stops");
    let at = |name: &str| {
        stops
            .iter()
            .position(|s| s == name)
            .unwrap_or_else(|| panic!("{name} did not stop cleanly: {stops:?}"))
    };
    assert_eq!(stops.len(), 4, "{stops:?}");
    assert!(
        at("c") < at("b") && at("b") < at("a"),
        "stop order {stops:?}"
    );
    orch.wait_line("stopping the stack");
    orch.assert_before("c.w: stopped (exited with code 0)", "b.w: stopped");
    orch.assert_before("b.w: stopped (exited with code 0)", "a.w: stopped");
    orch.wait_line("d.w: stopped (exited with code 0)");
    stack.wait_all_gone();
}

#[test]
fn second_sigint_kills_members_at_once() {
    let stack = Stack::new(
        r"
services:
  stubborn:
    commands:
      w:
        command: trap '' TERM; touch up.$ORCH_INSTANCE; exec sleep 1000
        number_of_processes: 2
        stop_timeout: 5m
",
    );
    let mut orch = stack.up(&[]);
    stack.wait_file("up.0");
    stack.wait_file("up.1");
    orch.signal(Signal::SIGINT);
    orch.wait_line("stopping the stack");
    let members = [orch.pid_of("stubborn.w.0"), orch.pid_of("stubborn.w.1")];
    assert!(members.iter().all(|&p| alive(p)), "SIGTERM is ignored");
    let forced = Instant::now();
    orch.signal(Signal::SIGINT);
    let code = orch.wait_exit_within(Duration::from_secs(30));
    assert!(
        forced.elapsed() < Duration::from_secs(30),
        "the second SIGINT must not wait for the stop timeout"
    );
    assert_eq!(code, 0, "{}", orch.console());
    orch.wait_line("killing every member");
    orch.wait_line("stubborn.w.0: stopped (killed by SIGKILL)");
    orch.wait_line("stubborn.w.1: stopped (killed by SIGKILL)");
    stack.wait_all_gone();
}

#[test]
fn sigkill_of_orch_leaves_no_process_behind() {
    let stack = Stack::new(
        r"
services:
  db:
    commands:
      server:
        command: sleep 1000 & sleep 1000 & touch db.$ORCH_INSTANCE; wait
        number_of_processes: 2
  api:
    depends_on: [db]
    commands:
      web:
        command: sh -c 'sleep 1000 & wait' & touch api; wait
",
    );
    let mut orch = stack.up(&[]);
    for file in ["db.0", "db.1", "api"] {
        stack.wait_file(file);
    }
    // orch, its guardian, 2 x (sh + 2 sleeps), sh + sh + sleep.
    orch.wait_for("every process of the stack", || {
        (stack.processes().len() >= 11).then_some(())
    });
    let guardian = orch.guardian();
    orch.kill9();
    stack.wait_all_gone();
    assert!(
        !alive(guardian),
        "the guardian must exit once it has cleaned up"
    );
}

#[test]
fn a_process_that_left_its_members_group_is_stopped_with_the_stack() {
    // `setsid` takes the sleep out of the member's process group, so stopping
    // the group does not reach it; orch adopted it and stops it on the way out.
    let stack = Stack::new(
        r"
services:
  db:
    commands:
      server:
        command: setsid sleep 1001 & touch started; exec sleep 1000
",
    );
    let mut orch = stack.up(&[]);
    stack.wait_file("started");
    orch.wait_for("the escaped process", || {
        (running(&stack, "sleep 1001") == 1).then_some(())
    });
    orch.signal(Signal::SIGTERM);
    orch.assert_exit(0);
    stack.wait_all_gone();
}

/// Processes of the stack whose command line is exactly `cmdline`.
fn running(stack: &Stack, cmdline: &str) -> usize {
    stack
        .processes()
        .into_iter()
        .filter(|&p| common::run::cmdline(p) == cmdline)
        .count()
}

#[test]
fn probe_commands_that_hang_are_killed_and_leave_nothing_behind() {
    // Each attempt of the probe gets at most a second; the stack is stopped
    // while an attempt still runs.
    let stack = Stack::new(
        r#"
services:
  db:
    commands:
      server:
        command: exec sleep 1000
        ready: { command: "sleep 1000; true", interval: 100ms }
"#,
    );
    let mut orch = stack.up(&[]);
    orch.wait_line("db.server: started");
    let mut attempts = std::collections::BTreeSet::new();
    orch.wait_for("three attempts of the probe", || {
        attempts.extend(
            stack
                .processes()
                .into_iter()
                .filter(|&p| common::run::cmdline(p) == "/bin/sh -c sleep 1000; true"),
        );
        (attempts.len() >= 3).then_some(())
    });
    // Attempts that timed out were killed, with what they started: the
    // member and at most one attempt are left.
    orch.wait_for("attempts that timed out to be killed", || {
        (running(&stack, "sleep 1000") <= 2).then_some(())
    });
    orch.signal(Signal::SIGTERM);
    orch.assert_exit(0);
    stack.wait_all_gone();
}

#[test]
fn sigkill_of_orch_also_ends_probe_and_monitor_commands() {
    // A probe attempt and a monitor run, each with a child, are under way
    // when orch is killed.
    let stack = Stack::new(
        r#"
services:
  db:
    commands:
      server:
        command: exec sleep 1000
        ready: { command: "sleep 1000; true", interval: 100ms, timeout: 5m }
  cache:
    commands:
      server:
        command: exec sleep 1000
        monitor: { command: "sleep 1000; true", interval: 50ms, timeout: 5m }
"#,
    );
    let mut orch = stack.up(&[]);
    orch.wait_for("the probe and the monitor to run", || {
        (running(&stack, "/bin/sh -c sleep 1000; true") == 2 && running(&stack, "sleep 1000") == 4)
            .then_some(())
    });
    orch.kill9();
    stack.wait_all_gone();
}
