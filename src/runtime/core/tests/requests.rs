//! Requests: shutdown (ordered and forced), abort on failure, stop, start,
//! restart (soft and hard), and requests that come while others are in flight.

use super::*;

/// `db` <- `api` <- `web`, every member ready once started.
const LINE: &str = "
services:
  db:
    commands:
      pg: { command: pg }
  api:
    depends_on: [db]
    commands:
      web: { command: web }
  web:
    depends_on: [api]
    commands:
      ui: { command: ui }
";

fn sigterm(label: &str) -> (String, Signal) {
    (label.to_owned(), Signal::SIGTERM)
}

#[test]
fn shutdown_stops_dependents_first_and_exits_0() {
    let mut sim = Sim::new(LINE);
    let actions = sim.handle(Event::Shutdown { force: false });
    assert_eq!(said(&actions), ["stopping the stack"]);
    assert_eq!(signalled(&sim, &actions), [sigterm("web.ui")]);
    let actions = sim.killed("web.ui", Signal::SIGTERM);
    assert_eq!(signalled(&sim, &actions), [sigterm("api.web")]);
    let actions = sim.killed("api.web", Signal::SIGTERM);
    assert_eq!(signalled(&sim, &actions), [sigterm("db.pg")]);
    let actions = sim.killed("db.pg", Signal::SIGTERM);
    assert_eq!(said(&actions), ["db.pg: stopped (killed by SIGTERM)"]);
    assert_eq!(exit_code(&actions), Some(0));
}

#[test]
fn a_second_shutdown_kills_every_process_at_once() {
    let mut sim = Sim::new(LINE);
    sim.handle(Event::Shutdown { force: false });
    let actions = sim.handle(Event::Shutdown { force: true });
    assert_eq!(said(&actions), ["killing every member"]);
    let mut killed = signalled(&sim, &actions);
    killed.sort();
    assert_eq!(
        killed,
        ["api.web", "db.pg", "web.ui"].map(|l| (l.to_owned(), Signal::SIGKILL))
    );
}

#[test]
fn nothing_starts_once_the_stack_is_stopping() {
    let mut sim = Sim::new(
        "
services:
  db:
    commands:
      pg: { command: pg, respawn_backoff: 0s }
",
    );
    sim.handle(Event::Shutdown { force: false });
    // It dies on its own before its stop signal lands: no respawn.
    let actions = sim.exit("db.pg", 1);
    assert!(started(&sim, &actions).is_empty());
    assert_eq!(exit_code(&actions), Some(0));
    let actions = sim.handle(Event::Start { services: vec![0] });
    assert!(started(&sim, &actions).is_empty());
}

#[test]
fn abort_on_failure_stops_the_stack_when_a_member_is_disabled() {
    let mut sim = Sim::with(
        "
services:
  db:
    commands:
      pg: { command: pg, respawn_count: 0 }
  other:
    commands:
      w: { command: w }
",
        Selection::default(),
        true,
    );
    let actions = sim.exit("db.pg", 1);
    assert_eq!(
        said(&actions),
        [
            "db.pg: exited with code 1; disabled after 0 restarts within 60s",
            "db.pg failed: stopping the stack (--abort-on-failure)",
            "stopping the stack",
        ]
    );
    assert_eq!(signalled(&sim, &actions), [sigterm("other.w")]);
    let actions = sim.killed("other.w", Signal::SIGTERM);
    assert_eq!(exit_code(&actions), Some(1), "a service failed");
}

#[test]
fn stop_stops_dependents_first_and_holds_them_and_start_brings_back_the_chain() {
    let mut sim = Sim::new(LINE);
    let db = sim.service("db");
    let actions = sim.handle(Event::Stop { services: vec![db] });
    assert_eq!(
        said(&actions)[0],
        "stopping db, and first what depends on it: api, web"
    );
    assert_eq!(signalled(&sim, &actions), [sigterm("web.ui")]);
    sim.killed("web.ui", Signal::SIGTERM);
    sim.killed("api.web", Signal::SIGTERM);
    let actions = sim.killed("db.pg", Signal::SIGTERM);
    assert_eq!(exit_code(&actions), None, "orch waits for a start");
    for label in ["db.pg", "api.web", "web.ui"] {
        assert_eq!(sim.phase(label), &Phase::Stopped);
    }
    let web = sim.service("web");
    let actions = sim.handle(Event::Start {
        services: vec![web],
    });
    assert_eq!(said(&actions)[0], "starting db, api, web");
    assert_eq!(started(&sim, &actions), ["db.pg", "api.web", "web.ui"]);
}

#[test]
fn a_start_while_the_stop_is_still_in_flight_ends_running() {
    let mut sim = Sim::new(LINE);
    let web = sim.service("web");
    sim.handle(Event::Stop {
        services: vec![web],
    });
    assert!(matches!(sim.phase("web.ui"), Phase::Stopping { .. }));
    let actions = sim.handle(Event::Start {
        services: vec![web],
    });
    assert!(
        started(&sim, &actions).is_empty(),
        "not two processes at once"
    );
    let actions = sim.killed("web.ui", Signal::SIGTERM);
    assert_eq!(
        said(&actions)[0],
        "web.ui: killed by SIGTERM; starting it again"
    );
    assert_eq!(started(&sim, &actions), ["web.ui"]);
    assert!(matches!(sim.phase("web.ui"), Phase::Running { .. }));
}

#[test]
fn a_soft_restart_signals_and_an_exit_within_the_window_starts_again_uncounted() {
    let mut sim = Sim::new(LINE);
    let api = sim.service("api");
    let actions = sim.handle(Event::Restart {
        services: vec![api],
        hard: false,
    });
    assert_eq!(
        signalled(&sim, &actions),
        [("api.web".to_owned(), Signal::SIGHUP)]
    );
    assert_eq!(said(&actions), ["api.web: sending SIGHUP"]);
    let actions = sim.killed("api.web", Signal::SIGHUP);
    assert_eq!(started(&sim, &actions), ["api.web"]);
    assert_eq!(sim.core.members[sim.id("api.web")].respawns.total, 0);
}

#[test]
fn a_hard_restart_replaces_the_process_and_leaves_dependents_running() {
    let mut sim = Sim::new(LINE);
    let web = sim.pid("web.ui");
    let api = sim.service("api");
    let actions = sim.handle(Event::Restart {
        services: vec![api],
        hard: true,
    });
    assert_eq!(signalled(&sim, &actions), [sigterm("api.web")]);
    assert!(!sim.up("api"));
    let actions = sim.killed("api.web", Signal::SIGTERM);
    assert_eq!(started(&sim, &actions), ["api.web"]);
    assert_eq!(sim.pid("web.ui"), web, "what depends on it keeps running");
    assert!(sim.up("api"));
}

#[test]
fn a_hard_restart_while_stopping_ends_running() {
    let mut sim = Sim::new(LINE);
    let web = sim.service("web");
    sim.handle(Event::Stop {
        services: vec![web],
    });
    sim.handle(Event::Restart {
        services: vec![web],
        hard: true,
    });
    let actions = sim.killed("web.ui", Signal::SIGTERM);
    assert_eq!(started(&sim, &actions), ["web.ui"]);
}

#[test]
fn restart_enables_a_disabled_member_and_runs_a_completed_once_command_again() {
    let mut sim = Sim::new(
        "
services:
  bad:
    commands:
      x: { command: x, respawn_count: 0 }
  init:
    commands:
      a: { command: a, when_to_run: once }
  keep:
    commands:
      k: { command: k }
",
    );
    sim.exit("bad.x", 3);
    sim.exit("init.a", 0);
    assert!(matches!(sim.phase("bad.x"), Phase::Failed { .. }));
    assert_eq!(sim.phase("init.a"), &Phase::Completed);
    let services = vec![sim.service("bad"), sim.service("init")];
    let actions = sim.handle(Event::Restart {
        services,
        hard: false,
    });
    assert!(said(&actions).contains(&"bad.x: enabled again".to_owned()));
    assert!(said(&actions).contains(&"init.a: starting it again".to_owned()));
    assert_eq!(started(&sim, &actions), ["bad.x", "init.a"]);
}

#[test]
fn down_when_everything_is_already_stopped_exits_at_once() {
    let mut sim = Sim::new(LINE);
    let db = sim.service("db");
    sim.handle(Event::Stop { services: vec![db] });
    for label in ["web.ui", "api.web", "db.pg"] {
        sim.killed(label, Signal::SIGTERM);
    }
    let actions = sim.handle(Event::Shutdown { force: false });
    assert_eq!(exit_code(&actions), Some(0));
}
