//! `orch up`: members that die, fail their probes or monitors, or use too
//! much memory are restarted, and disabled when they keep failing.

mod common;

use common::run::{alive, Stack};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

#[test]
fn crashing_member_is_restarted_then_disabled() {
    let stack = Stack::new(
        r"
services:
  db:
    commands:
      server:
        command: echo run >> runs; exit 3
        respawn_count: 2
        respawn_backoff: 0s
",
    );
    let mut orch = stack.up(&[]);
    // Nothing else runs, so orch ends by itself once the member is disabled.
    orch.assert_exit(1);
    assert_eq!(stack.lines("runs"), ["run", "run", "run"]);
    assert_eq!(
        orch.count("db.server: exited with code 3; restarting in 0s"),
        2,
        "{}",
        orch.console()
    );
    let disabled = "db.server: exited with code 3; disabled after 2 restarts within 60s";
    orch.wait_line(disabled);
    assert_eq!(
        orch.count("db.server: started (pid "),
        3,
        "{}",
        orch.console()
    );
    // The member's log file tells it too.
    let log = stack.read(".orch/logs/db.server.log");
    assert!(log.contains(&format!("[orch] {disabled}\n")), "{log}");
}

#[test]
fn disabled_member_leaves_the_rest_running_and_the_exit_code_is_1() {
    let stack = Stack::new(
        r"
services:
  db:
    commands:
      server:
        command: echo run >> runs; exit 3
        respawn_count: 1
        respawn_backoff: 0s
  other:
    commands:
      w:
        command: exec sleep 1000
",
    );
    let mut orch = stack.up(&[]);
    orch.wait_line("db.server: exited with code 3; disabled after 1 restarts within 60s");
    let other = orch.pid_of("other.w");
    assert!(alive(other), "other.w must keep running");
    assert!(!orch.exited(), "orch must keep running the rest");
    orch.signal(Signal::SIGTERM);
    orch.wait_line("other.w: stopped (killed by SIGTERM)");
    orch.assert_exit(1);
    assert_eq!(stack.lines("runs").len(), 2);
}

#[test]
fn abort_on_failure_stops_the_stack_when_a_member_is_disabled() {
    let stack = Stack::new(
        r"
services:
  other:
    commands:
      w:
        command: exec sleep 1000
  db:
    depends_on: [other]
    commands:
      server:
        command: exit 3
        respawn_count: 1
        respawn_backoff: 0s
",
    );
    let mut orch = stack.up(&["--abort-on-failure"]);
    orch.assert_exit(1);
    orch.assert_before(
        "db.server: exited with code 3; disabled after 1 restarts",
        "db.server failed: stopping the stack (--abort-on-failure)",
    );
    orch.wait_line("other.w: stopped (killed by SIGTERM)");
    stack.wait_all_gone();
}

#[test]
fn killed_member_of_a_group_is_restarted_alone() {
    let stack = Stack::new(
        r"
services:
  grp:
    commands:
      w:
        command: echo $ORCH_INSTANCE >> runs; echo I am $ORCH_INSTANCE; exec sleep 1000
        number_of_processes: 2
        respawn_backoff: 0s
",
    );
    let mut orch = stack.up(&[]);
    orch.wait_line("grp.w.0: started");
    orch.wait_line("grp.w.1: started");
    let (first, victim) = (orch.pid_of("grp.w.0"), orch.pid_of("grp.w.1"));
    // Started is not yet run: wait for each member's first line.
    orch.wait_for("each member's first run", || {
        let mut runs = stack.lines("runs");
        runs.sort();
        (runs == ["0", "1"]).then_some(())
    });
    kill(victim, Signal::SIGKILL).expect("kill a member");
    orch.wait_line("grp.w.1: killed by SIGKILL; restarting in 0s");
    orch.wait_for("grp.w.1 to start again", || {
        (orch.count("grp.w.1: started (pid ") == 2).then_some(())
    });
    let again = orch.pid_of("grp.w.1");
    assert_ne!(again, victim);
    assert!(alive(again));
    // Its sibling was left alone.
    assert!(alive(first), "grp.w.0 must not be touched");
    assert_eq!(orch.count("grp.w.0: "), 1, "{}", orch.console());
    assert_eq!(orch.count("restarting in"), 1, "{}", orch.console());
    let runs = orch.wait_for("the second run of grp.w.1", || {
        let mut runs = stack.lines("runs");
        runs.sort();
        (runs.len() == 3).then_some(runs)
    });
    assert_eq!(runs, ["0", "1", "1"]);
    orch.signal(Signal::SIGTERM);
    orch.assert_exit(0);
    // Each replica has its own log file.
    for (instance, starts) in [(0, 1), (1, 2)] {
        let log = stack.read(&format!(".orch/logs/grp.w.{instance}.log"));
        let said = format!("I am {instance}\n");
        assert_eq!(log.matches(&said).count(), starts, "{log}");
    }
}

#[test]
fn service_is_up_only_when_every_member_is_ready() {
    // Instance 1 dies in its first run before it is ready: the service is
    // down until its second run is ready, and only then may `app` start.
    let stack = Stack::new(
        r#"
services:
  grp:
    commands:
      w:
        command: >-
          echo $ORCH_INSTANCE >> runs;
          if [ $ORCH_INSTANCE = 1 ] && [ ! -f crashed ]; then touch crashed; sleep 0.3; exit 5; fi;
          touch ready.$ORCH_INSTANCE; exec sleep 1000
        number_of_processes: 2
        respawn_backoff: 0s
        ready: { command: "test -f ready.$ORCH_INSTANCE", interval: 20ms }
  app:
    depends_on: [grp]
    commands:
      w:
        command: ls ready.* > app.saw; exec sleep 1000
"#,
    );
    let mut orch = stack.up(&[]);
    assert_eq!(stack.wait_text("app.saw"), "ready.0\nready.1\n");
    orch.assert_before(
        "grp.w.1: exited with code 5; restarting in 0s",
        "app.w: started",
    );
    orch.assert_before("grp.w.1: ready", "app.w: started");
    orch.signal(Signal::SIGTERM);
    orch.assert_exit(0);
}

#[test]
fn leftovers_of_an_exited_member_are_killed_before_it_restarts() {
    let stack = Stack::new(
        r"
services:
  db:
    commands:
      server:
        command: >-
          if [ ! -f crashed ]; then touch crashed; sleep 1000 & echo $! > leftover; exit 3; fi;
          exec sleep 1000
        respawn_backoff: 0s
",
    );
    let mut orch = stack.up(&[]);
    orch.wait_for("a second start", || {
        (orch.count("db.server: started (pid ") == 2).then_some(())
    });
    let leftover: i32 = stack.read("leftover").trim().parse().expect("a pid");
    orch.wait_for("the leftover of the first run to be killed", || {
        (!alive(Pid::from_raw(leftover))).then_some(())
    });
    orch.signal(Signal::SIGTERM);
    orch.assert_exit(0);
}

#[test]
fn probe_that_never_passes_is_a_failed_start() {
    let stack = Stack::new(
        r#"
services:
  db:
    commands:
      server:
        command: exec sleep 1000
        ready: { command: "false", interval: 50ms, timeout: 300ms }
        respawn_count: 1
        respawn_backoff: 0s
  api:
    depends_on: [db]
    commands:
      web:
        command: exec sleep 1000
"#,
    );
    let mut orch = stack.up(&[]);
    orch.assert_exit(1);
    orch.wait_line("db.server: not ready after 300ms: `false` exited with code 1");
    assert_eq!(orch.count("; restarting in 0s"), 1, "{}", orch.console());
    orch.wait_line("db.server: not ready after 300ms: `false` exited with code 1; disabled after 1 restarts within 60s");
    orch.wait_line("api: not started: db failed");
    assert_eq!(orch.find("api.web: started"), None, "{}", orch.console());
    assert_eq!(
        orch.count("db.server: started (pid "),
        2,
        "{}",
        orch.console()
    );
    stack.wait_all_gone();
}

#[test]
fn failing_monitor_restarts_the_member() {
    let stack = Stack::new(
        r#"
services:
  db:
    commands:
      server:
        command: echo run >> runs; exec sleep 1000
        monitor: { command: "test $(wc -l < runs) -ge 2", interval: 50ms }
        respawn_backoff: 0s
"#,
    );
    let mut orch = stack.up(&[]);
    orch.wait_line("db.server: unhealthy: monitor: ");
    orch.wait_for("a second run", || {
        (orch.count("db.server: started (pid ") == 2).then_some(())
    });
    orch.assert_before("db.server: unhealthy: monitor: ", "; restarting in 0s");
    orch.wait_for("the second run", || {
        (stack.lines("runs").len() == 2).then_some(())
    });
    orch.signal(Signal::SIGTERM);
    orch.wait_line("db.server: stopped (killed by SIGTERM)");
    orch.assert_exit(0);
    assert_eq!(orch.count("unhealthy"), 1, "{}", orch.console());
}

#[test]
fn member_over_its_memory_limit_is_restarted() {
    // Neither process alone passes the limit: their sum does.
    let stack = Stack::new(
        r#"
services:
  hog:
    commands:
      w:
        command: >-
          echo run >> runs;
          python3 -c "import time; hog = b'x' * (35 << 20); time.sleep(1000)" &
          python3 -c "import time; hog = b'x' * (35 << 20); time.sleep(1000)" &
          wait
        memory_limit: 50MiB
        respawn_count: 1
        respawn_backoff: 0s
"#,
    );
    let mut orch = stack.up(&[]);
    orch.assert_exit(1);
    assert_eq!(
        orch.count("hog.w: unhealthy: uses "),
        2,
        "{}",
        orch.console()
    );
    orch.wait_line("over its memory_limit of 50 MiB; restarting in 0s");
    orch.wait_line("over its memory_limit of 50 MiB; disabled after 1 restarts within 60s");
    assert_eq!(stack.lines("runs").len(), 2);
    stack.wait_all_gone();
}
