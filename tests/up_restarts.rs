//! `orch up`: members restarted hundreds of times cost orch nothing that
//! lasts, and do not keep it from answering.

mod common;

use common::run::{members, poll, restarts, Stack, DEADLINE};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// orch's open descriptors, each with what it points to.
fn descriptors(pid: Pid) -> Vec<String> {
    let mut fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("orch's descriptors")
        .flatten()
        .map(|fd| {
            let target = std::fs::read_link(fd.path()).unwrap_or_default();
            format!(
                "{} -> {}",
                fd.file_name().to_string_lossy(),
                target.display()
            )
        })
        .collect();
    fds.sort();
    fds
}

#[test]
fn hundreds_of_restarts_leave_no_descriptor_behind() {
    // Ten members that, once `flap` exists, fail 40 times each before they
    // stay up; each start also runs a readiness command.
    let stack = Stack::new(
        r#"
services:
  flap:
    commands:
      w:
        command: |
          n=$(cat runs.$ORCH_INSTANCE 2>/dev/null | wc -l)
          if [ -e flap ] && [ "$n" -lt 40 ]; then echo x >> runs.$ORCH_INSTANCE; exit 1; fi
          echo up
          exec sleep 1000
        number_of_processes: 10
        respawn_backoff: 0s
        respawn_count: 100000
        ready: { command: "true", interval: 10ms }
"#,
    );
    let mut orch = stack.up(&[]);
    for n in 0..10 {
        orch.wait_line(&format!("flap.w.{n}: ready"));
    }
    // A member's log file is opened when it first has something to write:
    // say something, so every file is open before counting.
    for n in 0..10 {
        orch.wait_for("a log file of each member", || {
            stack
                .exists(&format!(".orch/logs/flap.w.{n}.log"))
                .then_some(())
        });
    }
    let before = descriptors(orch.pid());
    let up: Vec<Pid> = (0..10)
        .map(|n| orch.pid_of(&format!("flap.w.{n}")))
        .collect();
    std::fs::write(stack.path("flap"), "").expect("write flap");
    for pid in up {
        kill(pid, Signal::SIGKILL).expect("kill a member");
    }
    // 10 kills and 400 failures, then all up again.
    orch.wait_for("410 restarts, and every member up again", || {
        let report = stack.status_within(DEADLINE);
        let all_up = members(&report, "flap")
            .iter()
            .all(|m| m["state"] == "running");
        (restarts(&report, "flap") >= 410 && all_up).then_some(())
    });
    // The last connection of `orch status` may take a moment to close.
    let after = poll(DEADLINE, || {
        let now = descriptors(orch.pid());
        (now.len() == before.len()).then_some(now)
    });
    assert!(
        after.is_some(),
        "orch had {} descriptors before the restarts and has {} after:\nbefore:\n{}\nafter:\n{}",
        before.len(),
        descriptors(orch.pid()).len(),
        before.join("\n"),
        descriptors(orch.pid()).join("\n")
    );
    orch.signal(Signal::SIGTERM);
    orch.assert_exit(0);
    stack.wait_all_gone();
}

/// Members that exit at once, restarted without delay: the control socket
/// still answers within a second.
#[test]
fn status_answers_within_a_second_while_ten_members_flap() {
    let stack = Stack::new(
        r"
services:
  flap:
    commands:
      w:
        command: exit 1
        number_of_processes: 10
        respawn_backoff: 0s
        respawn_count: 1000000
",
    );
    let mut orch = stack.up(&[]);
    orch.wait_line("flap.w.9: exited with code 1; restarting in 0s");
    let mut before = 0;
    for _ in 0..10 {
        let now = restarts(&stack.status(), "flap");
        assert!(
            now > before,
            "the members are restarted: {before}, then {now}"
        );
        before = now;
    }
    orch.signal(Signal::SIGTERM);
    orch.assert_exit(0);
    stack.wait_all_gone();
}
