//! `orch up` after an orch that crashed so hard that even its guardian died:
//! the run-state file lets the next `orch up` of the stack find what is left
//! of its members and stop it before starting anything.
//!
//! This test binary makes itself a child subreaper, so that the processes
//! orphaned by the crash come back to the test, which can then reap them as
//! init would on a normal system (the init of some containers never does).

mod common;

use common::run::{alive, poll, Orch, Stack, DEADLINE};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Kill the guardian, then orch: nothing cleans up after this crash.
fn crash(orch: &mut Orch) {
    kill(orch.guardian(), Signal::SIGKILL).expect("kill the guardian");
    orch.kill9();
}

/// Reap an orphan that was handed to the test, once it has died.
fn reap(pid: Pid) {
    let reaped = poll(DEADLINE, || {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => None,
            Ok(_) => Some(()),
            Err(e) => panic!("cannot wait for {pid}: {e}"),
        }
    });
    assert!(reaped.is_some(), "{pid} did not die");
}

#[test]
fn next_up_stops_members_that_outlived_their_orch() {
    let stack = Stack::new(
        r#"
services:
  db:
    commands:
      server:
        command: >-
          exec python3 -c "import os, time;
          open('member', 'w').write(str(os.getpid())); time.sleep(1000)"
"#,
    );
    let mut crashed = stack.up(&[]);
    let member = Pid::from_raw(crashed.wait_for("the member's pid", || {
        stack.read("member").trim().parse().ok()
    }));
    crash(&mut crashed);
    assert!(alive(member), "the member outlives the crash");

    let mut orch = stack.up(&[]);
    orch.wait_line("stopped 1 member left over from an earlier orch that did not stop cleanly");
    orch.assert_before("left over", "db.server: started");
    orch.wait_for("the leftover to be gone", || (!alive(member)).then_some(()));
    orch.signal(Signal::SIGTERM);
    orch.assert_exit(0);
    stack.wait_all_gone();
}

#[test]
fn next_up_stops_what_members_started_after_they_died_with_their_orch() {
    nix::sys::prctl::set_child_subreaper(true).expect("become a subreaper");
    let stack = Stack::new(
        r"
services:
  db:
    commands:
      server:
        command: sleep 1000 & echo $! > grandchild; wait
",
    );
    let mut crashed = stack.up(&[]);
    let grandchild = Pid::from_raw(crashed.wait_for("the grandchild's pid", || {
        stack.read("grandchild").trim().parse().ok()
    }));
    let member = crashed.pid_of("db.server");
    crash(&mut crashed);
    // With nobody left to stop them, the member and what it started live on
    // in its process group (they are handed to this test, the subreaper).
    assert!(alive(member), "the member outlives the crash");
    assert!(alive(grandchild), "the grandchild outlives the crash");

    let mut orch = stack.up(&[]);
    orch.wait_line("stopped 1 member left over from an earlier orch that did not stop cleanly");
    orch.assert_before("left over", "db.server: started");
    reap(member);
    reap(grandchild);
    orch.signal(Signal::SIGTERM);
    orch.assert_exit(0);
    stack.wait_all_gone();
}

/// Kills every process of a stack when dropped, whatever happened.
struct Cleanup<'a>(&'a Stack);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        common::run::kill_marked(self.0.marker());
    }
}

#[test]
fn a_dead_orch_that_nobody_reaped_does_not_count_as_running() {
    let stack = Stack::new(
        r"
services:
  db:
    commands:
      server:
        command: exec sleep 1000
",
    );
    let _cleanup = Cleanup(&stack);
    // orch under a parent that never reaps its children, like the init of
    // some containers: killed, orch stays a zombie.
    let mut parent = std::process::Command::new("/bin/sh");
    parent
        .args([
            "-c",
            r#""$ORCH" up stack.yaml >first.out 2>&1 & echo $! > orch.pid; exec sleep 1000"#,
        ])
        .current_dir(stack.dir())
        .env("ORCH", env!("CARGO_BIN_EXE_orch"))
        .env("XDG_RUNTIME_DIR", stack.path("run"))
        .env(common::run::MARK, stack.marker())
        .stdin(std::process::Stdio::null());
    let mut parent = parent.spawn().expect("start the parent");
    let first = Pid::from_raw(
        poll(DEADLINE, || {
            stack
                .read("first.out")
                .contains("db.server: started")
                .then(|| stack.read("orch.pid").trim().parse().ok())
                .flatten()
        })
        .expect("the first orch starts its member"),
    );
    kill(first, Signal::SIGKILL).expect("kill the first orch");
    poll(DEADLINE, || {
        common::run::process_state(first).filter(|&s| s == 'Z')
    })
    .expect("the first orch becomes a zombie");

    let mut orch = stack.up(&[]);
    orch.wait_line("db.server: started");
    orch.signal(Signal::SIGTERM);
    orch.assert_exit(0);
    let _ = parent.kill();
    let _ = parent.wait();
}
