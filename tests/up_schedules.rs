//! Scheduled commands under `orch up`: each run goes to completion, a run
//! never overlaps the previous one (the tick that comes meanwhile is skipped
//! and counted), respawn does not apply, and a scheduled service is up
//! unless its last run failed.

mod common;

use common::client::{client, service, status};
use common::run::{poll, Stack, DEADLINE};
use nix::sys::signal::Signal;
use serde_json::Value;

/// `orch status --json` of the stack, once it answers.
fn try_status(stack: &Stack) -> Option<Value> {
    let out = client(stack, &["status", "--json"]);
    (out.code == 0).then(|| serde_json::from_str(&out.stdout).expect("status JSON"))
}

#[test]
fn runs_come_at_their_times_never_overlap_and_a_late_tick_is_skipped() {
    // Each run takes longer than the interval: the tick that comes while it
    // runs is skipped. A run that finds the previous one's lock says so.
    let stack = Stack::new(
        r#"
services:
  backup:
    commands:
      dump:
        command: >-
          mkdir lock || echo overlap >> overlaps;
          echo run >> runs; sleep 0.7; rmdir lock
        when_to_run: { every: 500ms }
"#,
    );
    let mut orch = stack.up(&[]);
    orch.wait_for("three runs", || {
        (stack.lines("runs").len() >= 3).then_some(())
    });
    orch.wait_line("backup.dump: still running at its next time: that run is skipped (1 so far)");
    orch.wait_line("backup.dump: completed; it runs again at its next time");
    let report = status(&stack);
    let dump = &service(&report, "backup")["members"][0];
    assert!(
        dump["next_run"].as_str().is_some_and(|t| t.contains('T')),
        "{dump}"
    );
    assert!(
        dump["last_exit"] == 0 || dump["last_exit"] == Value::Null,
        "{dump}"
    );
    assert_eq!(service(&report, "backup")["state"], "up");
    assert!(!stack.exists("overlaps"), "two runs overlapped");
    orch.signal(Signal::SIGTERM);
    orch.assert_exit(0);
    stack.wait_all_gone();
}

#[test]
fn a_failed_run_is_not_respawned_and_the_service_is_down_until_a_run_succeeds() {
    // The first run fails, the next ones succeed.
    let stack = Stack::new(
        r#"
services:
  job:
    commands:
      run:
        command: echo run >> runs; test $(wc -l < runs) -ge 2
        when_to_run: { every: 1s }
        respawn_backoff: 0s
  web:
    depends_on: [job]
    commands:
      ui: { command: exec sleep 1000 }
"#,
    );
    let mut orch = stack.up(&[]);
    // Up before its first run: dependents start.
    orch.wait_line("web.ui: started");
    orch.wait_line("job.run: exited with code 1; it runs again at its next time");
    let report = status(&stack);
    assert_eq!(service(&report, "job")["state"], "down", "{report:#}");
    assert_eq!(service(&report, "job")["members"][0]["last_exit"], 1);
    assert_eq!(
        stack.lines("runs").len(),
        1,
        "a failed run is not respawned at once"
    );
    orch.wait_line("job.run: completed; it runs again at its next time");
    let up = poll(DEADLINE, || {
        let report = status(&stack);
        (service(&report, "job")["state"] == "up").then_some(report)
    })
    .expect("up once a run succeeded");
    assert_eq!(service(&up, "job")["members"][0]["last_exit"], 0);
    orch.signal(Signal::SIGTERM);
    orch.assert_exit(0);
}

#[test]
fn a_cron_schedule_gives_its_next_minute_and_restart_runs_it_now() {
    let stack = Stack::new(
        r#"
services:
  report:
    commands:
      mail:
        command: echo run >> runs
        when_to_run: { cron: "*/5 * * * *" }
"#,
    );
    let mut orch = stack.up(&[]);
    let report = poll(DEADLINE, || {
        let report = try_status(&stack)?;
        service(&report, "report")["members"][0]["next_run"]
            .as_str()
            .is_some()
            .then_some(report)
    })
    .expect("a next run");
    let next = service(&report, "report")["members"][0]["next_run"]
        .as_str()
        .expect("next_run")
        .to_owned();
    let next = chrono::DateTime::parse_from_rfc3339(&next).expect("RFC 3339");
    assert_eq!(chrono::Timelike::minute(&next) % 5, 0, "{next}");
    assert_eq!(chrono::Timelike::second(&next), 0, "{next}");
    assert_eq!(service(&report, "report")["members"][0]["state"], "waiting");
    assert!(!stack.exists("runs"), "nothing runs before its time");
    assert_eq!(client(&stack, &["restart", "report"]).code, 0);
    stack.wait_text("runs");
    orch.wait_line("report.mail: completed; it runs again at its next time");
    orch.signal(Signal::SIGTERM);
    orch.assert_exit(0);
}
