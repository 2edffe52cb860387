//! Chaos: `orch up` against members that misbehave, and orch itself killed
//! with SIGKILL at random moments while it starts and while it stops a large
//! layered stack. After each, nothing of the stack may be left.
//!
//! The random moments come from a seed, printed by each test (shown when it
//! fails); `ORCH_CHAOS_SEED=N cargo test --test chaos` plays the same rounds.

mod common;

use common::run::{children, cmdline, Orch, Stack};
use common::seed::seeded;
use nix::sys::signal::Signal;
use nix::unistd::{getpgid, Pid};
use proptest::prelude::RngExt;

/// Wait until `label` has started; its pid.
fn started(orch: &Orch, label: &str) -> Pid {
    orch.wait_line(&format!("{label}{STARTED}"));
    orch.pid_of(label)
}

/// Wait for the pid a member wrote to `name`, once its process is a child
/// of orch: what a member leaves behind when it daemonizes is adopted by
/// orch, a subreaper, as soon as its parent has exited.
fn adopted(orch: &Orch, stack: &Stack, name: &str) -> Pid {
    orch.wait_for(&format!("the process in {name} adopted by orch"), || {
        let pid = Pid::from_raw(stack.read(name).trim().parse().ok()?);
        children(orch.pid()).contains(&pid).then_some(pid)
    })
}

#[test]
fn members_that_escape_ignore_sigterm_go_mute_or_flap_are_all_stopped() {
    let stack = Stack::new(
        r#"
services:
  escape:
    commands:
      w:
        # A double fork: the subshell exits at once, leaving a process that
        # called setsid and also ignores SIGTERM (`$$$$` is the shell's `$$`).
        command: >-
          (setsid sh -c 'trap "" TERM; echo $$$$ > daemon; exec sleep 1001' &);
          exec sleep 1000
  daemon:
    commands:
      w:
        # A daemon that forks twice, run once: its member exits 0.
        command: (setsid sh -c 'echo $$$$ > once; exec sleep 1002' &)
        when_to_run: once
  stubborn:
    commands:
      w:
        command: trap '' TERM; exec sleep 1003
        stop_timeout: 1s
  mute:
    commands:
      w:
        command: echo before closing; exec >&- 2>&-; exec sleep 1004
  flap:
    commands:
      w:
        command: ["false"]
        respawn_backoff: 0s
        respawn_count: 1000000
"#,
    );
    let mut orch = stack.up(&[]);
    let escaped = adopted(&orch, &stack, "daemon");
    let member = started(&orch, "escape.w");
    assert_ne!(
        getpgid(Some(escaped)).ok(),
        getpgid(Some(member)).ok(),
        "the daemon left its member's process group"
    );
    let daemon = adopted(&orch, &stack, "once");
    orch.wait_line("daemon.w: completed");

    let stubborn = started(&orch, "stubborn.w");
    orch.wait_for("the stubborn member to exec", || {
        (cmdline(stubborn) == "sleep 1003").then_some(())
    });
    let mute = started(&orch, "mute.w");
    orch.wait_for("the mute member to close its output and exec", || {
        (cmdline(mute) == "sleep 1004"
            && !std::path::Path::new(&format!("/proc/{mute}/fd/1")).exists())
        .then_some(())
    });
    orch.wait_for("the line before the mute member closed its output", || {
        stack
            .read(".orch/logs/mute.w.log")
            .contains("before closing\n")
            .then_some(())
    });
    orch.wait_for("the flapping member to restart 50 times", || {
        (orch.count(&format!("flap.w{STARTED}")) >= 50).then_some(())
    });
    // A closed stdout is not an exit: the mute member still runs, untouched.
    assert_eq!(orch.count("mute.w: started"), 1, "{}", orch.console());
    assert_eq!(orch.count("mute.w: stopped"), 0, "{}", orch.console());
    assert!(common::run::alive(escaped) && common::run::alive(daemon));

    orch.signal(Signal::SIGTERM);
    orch.assert_exit(0);
    orch.wait_line("stubborn.w: stopped (killed by SIGKILL)");
    orch.wait_line("mute.w: stopped (killed by SIGTERM)");
    // orch let its guardian go: what is left now, orch left.
    stack.wait_all_gone();
}

/// A layered DAG of `layers` x `width` services of `members` members each;
/// every service depends on every service of the layer before. A member
/// takes a moment to stop, so a stop goes layer by layer, visibly.
fn layered(layers: usize, width: usize, members: usize) -> String {
    let mut yaml = String::from("services:\n");
    for layer in 0..layers {
        for service in 0..width {
            yaml.push_str(&format!("  l{layer}s{service}:\n"));
            if layer > 0 {
                let below: Vec<String> =
                    (0..width).map(|s| format!("l{}s{s}", layer - 1)).collect();
                yaml.push_str(&format!("    depends_on: [{}]\n", below.join(", ")));
            }
            yaml.push_str(&format!(
                "    commands:\n      w:\n        command: trap 'sleep 0.1; exit 0' TERM; sleep 1000 & wait\n        number_of_processes: {members}\n"
            ));
        }
    }
    yaml
}

/// When a round kills orch: after `k` members were started, or after `k`
/// were stopped once the stack was stopping.
#[derive(Debug, Clone, Copy)]
enum Moment {
    Starting(usize),
    Stopping(usize),
}

const STARTED: &str = ": started (pid ";
const STOPPED: &str = ": stopped (";

#[test]
fn sigkill_of_orch_while_starting_or_stopping_200_members_leaves_nothing() {
    let mut rng = seeded("sigkill_of_orch_while_starting_or_stopping_200_members_leaves_nothing");
    let total = 200;
    let yaml = layered(5, 4, 10);
    for round in 0..6 {
        let moment = if round % 2 == 0 {
            Moment::Starting(rng.random_range(1..total))
        } else {
            // At least one layer (40 members) is left to stop.
            Moment::Stopping(rng.random_range(0..=total - 40))
        };
        let stack = Stack::new(&yaml);
        let mut orch = stack.up(&[]);
        let what = format!("round {round}, {moment:?}");
        println!("{what}");
        let count = |needle: &str, k: usize| {
            orch.wait_for(&format!("{what}: {k} lines with `{needle}`"), || {
                (orch.count(needle) >= k).then_some(())
            });
        };
        match moment {
            Moment::Starting(k) => count(STARTED, k),
            Moment::Stopping(k) => {
                count(STARTED, total);
                orch.signal(Signal::SIGTERM);
                orch.wait_line("stopping the stack");
                count(STOPPED, k);
            }
        }
        assert!(!orch.exited(), "{what}: orch ended before it was killed");
        orch.kill9();
        stack.wait_all_gone();
    }
}
