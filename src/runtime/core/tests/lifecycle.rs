//! Every event about a member's process: started, failed to start, exited
//! (each way), ready, not ready, unhealthy, timers, a stranger on its port,
//! log trouble, and events of an earlier process.

use super::*;
use crate::runtime::core::StopReason;

/// `db` with a port (so a readiness check) and a few restarts; `api` on it.
const CHAIN: &str = "
services:
  db:
    commands:
      pg: { command: pg, port: 5432, respawn_count: 2, respawn_backoff: 100ms }
  api:
    depends_on: [db]
    commands:
      web: { command: web }
";

#[test]
fn a_dependent_starts_once_its_dependency_is_ready() {
    let mut sim = Sim::new(CHAIN);
    assert_eq!(started(&sim, &sim.log), ["db.pg"]);
    assert!(matches!(
        sim.phase("db.pg"),
        Phase::Starting { pid: Some(_), .. }
    ));
    assert!(sim.log.contains(&Action::Probe {
        member: sim.id("db.pg"),
        generation: sim.generation("db.pg")
    }));
    assert_eq!(sim.phase("api.web"), &Phase::Pending);
    let actions = sim.ready("db.pg");
    assert_eq!(said(&actions)[0], "db.pg: ready");
    assert_eq!(started(&sim, &actions), ["api.web"]);
    assert!(sim.up("db") && sim.up("api"));
}

#[test]
fn a_start_that_fails_is_a_failure_with_its_reason() {
    let mut sim = Sim::new(CHAIN);
    sim.ready("db.pg");
    sim.refuse = Some("cannot start `pg`: program not found in PATH (/bin)".into());
    let actions = sim.exit("db.pg", 1);
    assert!(matches!(sim.phase("db.pg"), Phase::Backoff { .. }));
    let actions = [actions, sim.timer("db.pg", Timer::Restart)].concat();
    assert!(
        said(&actions).contains(
            &"db.pg: cannot start: cannot start `pg`: program not found in PATH (/bin)".to_owned()
        ),
        "{actions:?}"
    );
    assert!(matches!(sim.phase("db.pg"), Phase::Backoff { .. }));
    assert_eq!(
        sim.core.members[sim.id("db.pg")].last_failure.as_deref(),
        Some("cannot start `pg`: program not found in PATH (/bin)")
    );
}

#[test]
fn an_exit_backs_off_then_restarts_and_too_many_disable_and_block_dependents() {
    let mut sim = Sim::new(
        "
services:
  db:
    commands:
      pg: { command: pg, port: 5432, respawn_count: 2, respawn_backoff: 100ms }
  api:
    depends_on: [db]
    commands:
      web: { command: web, port: 8000 }
",
    );
    for round in 1..=2 {
        let actions = sim.exit("db.pg", 1);
        let Phase::Backoff { until } = *sim.phase("db.pg") else {
            panic!("round {round}: {:?}", sim.phase("db.pg"))
        };
        let expected = Duration::from_millis(100) * 2u32.pow(round - 1);
        let delay = until - sim.now;
        assert!(
            delay >= expected.mul_f64(0.9) && delay <= expected.mul_f64(1.1),
            "round {round}: {delay:?}"
        );
        assert!(actions.iter().any(|a| matches!(
            a,
            Action::SetTimer {
                timer: Timer::Restart,
                ..
            }
        )));
        assert!(said(&actions)[0].contains(&format!("restart {round} of 2 within 60s")));
        sim.advance(delay);
        let actions = sim.timer("db.pg", Timer::Restart);
        assert_eq!(started(&sim, &actions), ["db.pg"]);
    }
    let actions = sim.exit("db.pg", 1);
    assert!(matches!(sim.phase("db.pg"), Phase::Failed { .. }));
    assert_eq!(
        said(&actions),
        [
            "db.pg: exited with code 1; disabled after 2 restarts within 60s",
            "api: not started: db failed",
        ]
    );
    assert_eq!(
        exit_code(&actions),
        Some(1),
        "nothing else can run: orch exits 1"
    );
    assert_eq!(sim.core.members[sim.id("db.pg")].respawns.total, 2);
}

#[test]
fn a_member_that_stayed_up_long_enough_starts_its_backoff_afresh() {
    let mut sim = Sim::new(CHAIN);
    sim.ready("db.pg");
    sim.exit("db.pg", 1);
    sim.timer("db.pg", Timer::Restart);
    sim.ready("db.pg");
    sim.advance(crate::runtime::core::STABLE_AFTER);
    sim.exit("db.pg", 1);
    let Phase::Backoff { until } = *sim.phase("db.pg") else {
        panic!("{:?}", sim.phase("db.pg"))
    };
    assert!(
        until - sim.now <= Duration::from_millis(110),
        "back to the base delay"
    );
}

#[test]
fn once_commands_complete_then_dependents_start_and_orch_exits_0() {
    let mut sim = Sim::new(
        "
services:
  init:
    commands:
      a: { command: a, when_to_run: once }
  job:
    depends_on: [init]
    commands:
      b: { command: b, when_to_run: once }
",
    );
    assert_eq!(
        started(&sim, &sim.log),
        ["init.a"],
        "running is not completed"
    );
    let actions = sim.exit("init.a", 0);
    assert_eq!(sim.phase("init.a"), &Phase::Completed);
    assert_eq!(started(&sim, &actions), ["job.b"]);
    let actions = sim.exit("job.b", 0);
    assert_eq!(exit_code(&actions), Some(0));
}

#[test]
fn a_once_command_that_fails_is_retried_up_to_its_respawn_count() {
    let mut sim = Sim::new(
        "
services:
  init:
    commands:
      a: { command: a, when_to_run: once, respawn_count: 1, respawn_backoff: 0s }
",
    );
    let actions = sim.exit("init.a", 3);
    assert_eq!(started(&sim, &actions), ["init.a"], "retried at once");
    let actions = sim.exit("init.a", 3);
    assert!(matches!(sim.phase("init.a"), Phase::Failed { .. }));
    assert_eq!(exit_code(&actions), Some(1));
}

#[test]
fn a_readiness_check_that_does_not_pass_kills_the_member_and_counts_a_failure() {
    let mut sim = Sim::new(CHAIN);
    let (member, generation) = (sim.id("db.pg"), sim.generation("db.pg"));
    let actions = sim.handle(Event::NotReady {
        member,
        generation,
        why: "after 60s: connection refused".into(),
    });
    assert_eq!(
        signalled(&sim, &actions),
        [("db.pg".to_owned(), Signal::SIGKILL)]
    );
    assert!(matches!(
        sim.phase("db.pg"),
        Phase::Stopping {
            reason: StopReason::Failed(_),
            ..
        }
    ));
    let actions = sim.killed("db.pg", Signal::SIGKILL);
    assert!(matches!(sim.phase("db.pg"), Phase::Backoff { .. }));
    assert!(said(&actions)[0]
        .starts_with("db.pg: not ready after 60s: connection refused; restarting in"));
}

#[test]
fn an_unhealthy_member_gets_its_stop_signal_then_respawns() {
    let mut sim = Sim::new(
        "
services:
  db:
    commands:
      pg: { command: pg, stop_signal: SIGINT, monitor: { command: check } }
",
    );
    let monitor = sim.log.iter().any(|a| matches!(a, Action::Monitor { .. }));
    assert!(
        monitor,
        "a ready member with a monitor is monitored: {:?}",
        sim.log
    );
    let (member, generation) = (sim.id("db.pg"), sim.generation("db.pg"));
    let actions = sim.handle(Event::Unhealthy {
        member,
        generation,
        why: "monitor: `check` exited with code 1".into(),
    });
    assert_eq!(
        signalled(&sim, &actions),
        [("db.pg".to_owned(), Signal::SIGINT)]
    );
    assert!(actions.contains(&Action::Cancel { member }));
    sim.killed("db.pg", Signal::SIGINT);
    assert!(matches!(sim.phase("db.pg"), Phase::Backoff { .. }));
}

#[test]
fn a_member_that_outlives_its_stop_timeout_is_killed() {
    let mut sim = Sim::new(CHAIN);
    sim.ready("db.pg");
    let actions = sim.handle(Event::Shutdown { force: false });
    assert!(actions.iter().any(|a| matches!(
        a,
        Action::SetTimer {
            timer: Timer::StopTimeout,
            ..
        }
    )));
    sim.killed("api.web", Signal::SIGTERM);
    sim.advance(Duration::from_secs(10));
    let actions = sim.timer("db.pg", Timer::StopTimeout);
    assert_eq!(said(&actions), ["db.pg: did not stop in time: killing it"]);
    assert_eq!(
        signalled(&sim, &actions),
        [("db.pg".to_owned(), Signal::SIGKILL)]
    );
    let actions = sim.killed("db.pg", Signal::SIGKILL);
    assert_eq!(exit_code(&actions), Some(0));
}

#[test]
fn a_stranger_on_the_port_is_told_and_shown_while_the_member_starts() {
    let mut sim = Sim::new(CHAIN);
    let (member, generation) = (sim.id("db.pg"), sim.generation("db.pg"));
    let why = "port 5432 is held by pid 7 (nc), not by this member";
    let actions = sim.handle(Event::Waiting {
        member,
        generation,
        why: why.into(),
    });
    assert_eq!(said(&actions), [format!("db.pg: not ready yet: {why}")]);
    let health = sim.core.health();
    assert_eq!(
        sim.core.why_down(sim.service("db"), &health).as_deref(),
        Some(format!("db.pg is starting: {why}").as_str())
    );
    sim.ready("db.pg");
    sim.exit("db.pg", 1);
    sim.timer("db.pg", Timer::Restart);
    assert_eq!(
        sim.core.members[member].waiting, None,
        "a new process starts afresh"
    );
}

#[test]
fn log_trouble_is_told_once_each_way_and_shown_in_status() {
    let mut sim = Sim::new(CHAIN);
    let member = sim.id("db.pg");
    let actions = sim.handle(Event::LogTrouble {
        member,
        trouble: Some("/l/db.pg.log: No space left on device".into()),
        dropped: 0,
    });
    assert_eq!(
        said(&actions),
        ["db.pg: cannot write its log file: /l/db.pg.log: No space left on device; its output is dropped until it can"]
    );
    let report = sim.core.status(&[], sim.now);
    assert_eq!(
        report.services[0].members[0].log_error.as_deref(),
        Some("/l/db.pg.log: No space left on device")
    );
    let actions = sim.handle(Event::LogTrouble {
        member,
        trouble: None,
        dropped: 1234,
    });
    assert_eq!(
        said(&actions),
        ["db.pg: its log file can be written again (1234 lines were dropped)"]
    );
    assert_eq!(
        sim.core.status(&[], sim.now).services[0].members[0].log_error,
        None
    );
}

#[test]
fn events_of_an_earlier_process_are_ignored() {
    let mut sim = Sim::new(CHAIN);
    sim.ready("db.pg");
    let member = sim.id("db.pg");
    let old = sim.generation("db.pg");
    sim.exit("db.pg", 1);
    sim.timer("db.pg", Timer::Restart);
    let before = sim.phase("db.pg").clone();
    for event in [
        Event::Exited {
            member,
            generation: old,
            status: ExitStatus::Code(1),
        },
        Event::Ready {
            member,
            generation: old,
        },
        Event::Unhealthy {
            member,
            generation: old,
            why: "late".into(),
        },
        Event::Timer {
            member,
            generation: old,
            timer: Timer::StopTimeout,
        },
    ] {
        let actions = sim.handle(event);
        assert!(actions.is_empty(), "{actions:?}");
        assert_eq!(sim.phase("db.pg"), &before);
    }
}
