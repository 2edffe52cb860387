//! Scheduled members: armed when they may run, a tick runs them or is
//! skipped while the previous run goes on, a failed run waits for the next
//! tick, and they are disarmed when stopped.

use super::*;

const SCHEDULED: &str = "
services:
  db:
    commands:
      pg: { command: pg, port: 5432 }
  backup:
    depends_on: [db]
    commands:
      dump: { command: dump, when_to_run: { every: 10m } }
";

fn tick(sim: &mut Sim, label: &str) -> Vec<Action> {
    let member = sim.id(label);
    sim.handle(Event::Tick { member })
}

#[test]
fn a_scheduled_member_is_armed_once_its_dependencies_are_up_and_is_up_meanwhile() {
    let mut sim = Sim::new(SCHEDULED);
    assert_eq!(sim.phase("backup.dump"), &Phase::Pending);
    let actions = sim.ready("db.pg");
    assert!(actions.contains(&Action::Arm {
        member: sim.id("backup.dump")
    }));
    assert!(
        started(&sim, &actions).is_empty(),
        "its first run comes at its time"
    );
    assert_eq!(sim.phase("backup.dump"), &Phase::Waiting);
    assert!(sim.up("backup"));
    assert_eq!(
        exit_code(&sim.log),
        None,
        "a waiting member keeps orch running"
    );
}

#[test]
fn a_tick_runs_it_and_a_tick_during_a_run_is_skipped_and_counted() {
    let mut sim = Sim::new(SCHEDULED);
    sim.ready("db.pg");
    let actions = tick(&mut sim, "backup.dump");
    assert_eq!(started(&sim, &actions), ["backup.dump"]);
    let actions = tick(&mut sim, "backup.dump");
    assert!(started(&sim, &actions).is_empty());
    assert_eq!(
        said(&actions),
        ["backup.dump: still running at its next time: that run is skipped (1 so far)"]
    );
    let actions = sim.exit("backup.dump", 0);
    assert_eq!(
        said(&actions),
        ["backup.dump: completed; it runs again at its next time"]
    );
    assert_eq!(sim.phase("backup.dump"), &Phase::Waiting);
    let report = sim.core.status(&[sim.service("backup")], sim.now);
    assert_eq!(report.services[0].members[0].last_exit, Some(0));
    assert_eq!(report.services[0].members[0].skipped, Some(1));
}

#[test]
fn a_failed_run_waits_for_its_next_time_and_the_service_is_down_meanwhile() {
    let mut sim = Sim::new(SCHEDULED);
    sim.ready("db.pg");
    tick(&mut sim, "backup.dump");
    let actions = sim.exit("backup.dump", 2);
    assert!(started(&sim, &actions).is_empty(), "respawn does not apply");
    assert!(!actions.iter().any(|a| matches!(a, Action::SetTimer { .. })));
    assert_eq!(sim.phase("backup.dump"), &Phase::Waiting);
    assert!(!sim.up("backup"));
    tick(&mut sim, "backup.dump");
    sim.exit("backup.dump", 0);
    assert!(sim.up("backup"));
}

#[test]
fn a_run_that_cannot_start_counts_as_failed_and_waits() {
    let mut sim = Sim::new(SCHEDULED);
    sim.ready("db.pg");
    sim.refuse = Some("cannot start `dump`: program not found in PATH (/bin)".into());
    tick(&mut sim, "backup.dump");
    assert_eq!(sim.phase("backup.dump"), &Phase::Waiting);
    assert!(!sim.up("backup"));
}

#[test]
fn a_tick_while_a_dependency_is_down_is_skipped_with_the_reason() {
    let mut sim = Sim::new(SCHEDULED);
    sim.ready("db.pg");
    sim.exit("db.pg", 1);
    let actions = tick(&mut sim, "backup.dump");
    assert!(started(&sim, &actions).is_empty());
    assert_eq!(
        said(&actions),
        ["backup.dump: not run at its time: db is not up"]
    );
}

#[test]
fn stopping_it_disarms_it_and_shutdown_ends_with_it() {
    let mut sim = Sim::new(SCHEDULED);
    sim.ready("db.pg");
    let backup = sim.service("backup");
    let actions = sim.handle(Event::Stop {
        services: vec![backup],
    });
    assert!(actions.contains(&Action::Disarm {
        member: sim.id("backup.dump")
    }));
    assert_eq!(sim.phase("backup.dump"), &Phase::Stopped);
    let actions = sim.handle(Event::Start {
        services: vec![backup],
    });
    assert!(actions.contains(&Action::Arm {
        member: sim.id("backup.dump")
    }));
    sim.handle(Event::Shutdown { force: false });
    let actions = sim.killed("db.pg", Signal::SIGTERM);
    assert_eq!(exit_code(&actions), Some(0));
}

/// Found by the model test: a run stopped by the shutdown left its ticks
/// armed.
#[test]
fn a_run_stopped_by_the_shutdown_cancels_its_ticks() {
    let mut sim = Sim::new(SCHEDULED);
    sim.ready("db.pg");
    tick(&mut sim, "backup.dump");
    sim.handle(Event::Shutdown { force: false });
    let actions = sim.killed("backup.dump", Signal::SIGTERM);
    assert!(
        actions.contains(&Action::Disarm {
            member: sim.id("backup.dump")
        }),
        "{actions:?}"
    );
}
