//! Reloads: what changed is restarted (dependents first down, dependencies
//! first up), the rest keeps running, and reloads that overlap with each
//! other or with requests end where the last one says.

use super::*;

const BEFORE: &str = "
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
  other:
    commands:
      w: { command: w }
";

fn reload(sim: &mut Sim, yaml: &str) -> Vec<Action> {
    let plan = sim.core.plan_reload(stack(yaml)).expect("the plan");
    sim.handle(Event::Reload {
        stack: plan.stack,
        selection: plan.selection,
    })
}

/// The command `label` was last started with.
fn program(sim: &Sim, label: &str) -> String {
    let m = &sim.core.members[sim.id(label)];
    let run = m.run.as_ref().expect("a live member");
    run.command().instances[run.slot.index].program.to_string()
}

#[test]
fn a_changed_service_and_its_dependents_restart_in_order_and_the_rest_keeps_running() {
    let mut sim = Sim::new(BEFORE);
    let (db, other) = (sim.pid("db.pg"), sim.pid("other.w"));
    let after = BEFORE.replace("command: web", "command: web2");
    let actions = reload(&mut sim, &after);
    assert_eq!(
        said(&actions)[0],
        "reload: changed api; restarting what depends on them: web"
    );
    assert_eq!(
        signalled(&sim, &actions),
        [("web.ui".to_owned(), Signal::SIGTERM)]
    );
    let actions = sim.killed("web.ui", Signal::SIGTERM);
    assert_eq!(
        signalled(&sim, &actions),
        [("api.web".to_owned(), Signal::SIGTERM)]
    );
    assert!(
        started(&sim, &actions).is_empty(),
        "web waits for the new api"
    );
    let actions = sim.killed("api.web", Signal::SIGTERM);
    assert_eq!(started(&sim, &actions), ["api.web", "web.ui"]);
    assert_eq!(program(&sim, "api.web"), "web2");
    assert_eq!((sim.pid("db.pg"), sim.pid("other.w")), (db, other));
}

#[test]
fn the_last_of_two_close_reloads_wins() {
    let mut sim = Sim::new(BEFORE);
    let changed = BEFORE.replace("command: web", "command: web2");
    reload(&mut sim, &changed);
    sim.killed("web.ui", Signal::SIGTERM);
    assert!(matches!(sim.phase("api.web"), Phase::Stopping { .. }));
    // Back to the first file, plus a new service, while api is stopping.
    let back = format!("{BEFORE}  fresh:\n    commands:\n      f: {{ command: f }}\n");
    let actions = reload(&mut sim, &back);
    assert_eq!(
        said(&actions)[0],
        "reload: added fresh; changed api; restarting what depends on them: web"
    );
    let actions = sim.killed("api.web", Signal::SIGTERM);
    assert_eq!(started(&sim, &actions), ["api.web", "web.ui"]);
    assert_eq!(program(&sim, "api.web"), "web");
    assert!(matches!(sim.phase("fresh.f"), Phase::Running { .. }));
}

#[test]
fn down_during_a_reload_stops_everything_and_exits() {
    let mut sim = Sim::new(BEFORE);
    reload(&mut sim, &BEFORE.replace("command: web", "command: web2"));
    sim.handle(Event::Shutdown { force: false });
    let mut pending = vec!["web.ui", "other.w", "api.web", "db.pg"];
    let mut last = Vec::new();
    while let Some(label) = pending
        .iter()
        .position(|l| matches!(sim.phase(l), Phase::Stopping { .. }))
    {
        last = sim.killed(pending.remove(label), Signal::SIGTERM);
    }
    assert!(pending.is_empty(), "still running: {pending:?}");
    assert_eq!(exit_code(&last), Some(0));
}

#[test]
fn a_stopped_service_stays_stopped_across_a_reload() {
    let mut sim = Sim::new(BEFORE);
    let api = sim.service("api");
    sim.handle(Event::Stop {
        services: vec![api],
    });
    sim.killed("web.ui", Signal::SIGTERM);
    let actions = reload(&mut sim, &BEFORE.replace("command: w }", "command: w2 }"));
    assert_eq!(said(&actions)[0], "reload: changed other");
    sim.killed("api.web", Signal::SIGTERM);
    sim.killed("other.w", Signal::SIGTERM);
    assert_eq!(sim.phase("api.web"), &Phase::Stopped);
    assert_eq!(sim.phase("web.ui"), &Phase::Stopped);
    assert!(matches!(sim.phase("other.w"), Phase::Running { .. }));
    let actions = sim.handle(Event::Start {
        services: vec![sim.service("web")],
    });
    assert_eq!(started(&sim, &actions), ["api.web", "web.ui"]);
}

#[test]
fn a_hard_restart_then_a_reload_leaves_one_process_with_the_new_file() {
    let mut sim = Sim::new(BEFORE);
    let api = sim.service("api");
    sim.handle(Event::Restart {
        services: vec![api],
        hard: true,
    });
    reload(&mut sim, &BEFORE.replace("command: web", "command: web2"));
    // api was already stopping; web (which depends on it) goes down too.
    let actions = sim.killed("api.web", Signal::SIGTERM);
    assert_eq!(started(&sim, &actions), ["api.web"]);
    sim.killed("web.ui", Signal::SIGTERM);
    let live: Vec<_> = sim
        .core
        .members
        .iter()
        .filter(|m| m.phase.live())
        .map(|m| &m.label)
        .collect();
    assert_eq!(live.iter().filter(|l| **l == "api.web").count(), 1);
    assert_eq!(program(&sim, "api.web"), "web2");
}

#[test]
fn a_reload_starts_what_the_selected_services_now_depend_on() {
    let mut sim = Sim::with(
        BEFORE,
        Selection {
            names: vec!["api".into()],
            ..Selection::default()
        },
        false,
    );
    assert_eq!(started(&sim, &sim.log), ["db.pg", "api.web"]);
    assert_eq!(sim.phase("other.w"), &Phase::Inactive);
    let report = sim.core.status(&[sim.service("other")], sim.now);
    assert_eq!(report.services[0].why.as_deref(), Some("not selected"));
    assert_eq!(report.services[0].members[0].state, "not selected");
    let after = BEFORE.replace("depends_on: [db]", "depends_on: [db, other]");
    let actions = reload(&mut sim, &after);
    assert_eq!(started(&sim, &actions), ["other.w"]);
    assert_eq!(
        signalled(&sim, &actions),
        [("api.web".to_owned(), Signal::SIGTERM)]
    );
    let actions = sim.killed("api.web", Signal::SIGTERM);
    assert_eq!(started(&sim, &actions), ["api.web"]);
    assert_eq!(sim.phase("web.ui"), &Phase::Inactive);
}

#[test]
fn a_reload_without_a_selected_service_is_refused() {
    let sim = Sim::with(
        BEFORE,
        Selection {
            names: vec!["other".into()],
            ..Selection::default()
        },
        false,
    );
    let without = BEFORE.replace("  other:\n    commands:\n      w: { command: w }\n", "");
    assert_eq!(
        sim.core.plan_reload(stack(&without)).map(|p| p.summary),
        Err(
            "no service `other` in stack `stack` (the services of `stack` are: db, api, web)"
                .to_owned()
        )
    );
}

#[test]
fn reordering_dependencies_is_no_change_but_a_log_folder_is() {
    let mut sim = Sim::new(&BEFORE.replace("depends_on: [api]", "depends_on: [api, db]"));
    let actions = reload(
        &mut sim,
        &BEFORE.replace("depends_on: [api]", "depends_on: [db, api]"),
    );
    assert_eq!(said(&actions), ["reload: nothing changed"]);
    let actions = reload(
        &mut sim,
        &format!(
            "log_dir: elsewhere\n{}",
            BEFORE.replace("depends_on: [api]", "depends_on: [db, api]")
        ),
    );
    assert_eq!(said(&actions), ["reload: logs now go to /tmp/t/elsewhere"]);
    assert!(signalled(&sim, &actions).is_empty());
}

#[test]
fn a_removed_command_is_stopped_and_more_processes_get_their_own_members() {
    let mut sim = Sim::new(BEFORE);
    let after = BEFORE
        .replace("  other:\n    commands:\n      w: { command: w }\n", "")
        .replace(
            "ui: { command: ui }",
            "ui: { command: ui, number_of_processes: 2 }",
        );
    let actions = reload(&mut sim, &after);
    assert_eq!(said(&actions)[0], "reload: removed other; changed web");
    let mut stopping = signalled(&sim, &actions);
    stopping.sort();
    assert_eq!(
        stopping,
        [
            ("other.w".to_owned(), Signal::SIGTERM),
            ("web.ui".to_owned(), Signal::SIGTERM)
        ]
    );
    assert!(
        started(&sim, &actions).is_empty(),
        "the new processes wait for the old one"
    );
    sim.killed("other.w", Signal::SIGTERM);
    let actions = sim.killed("web.ui", Signal::SIGTERM);
    assert_eq!(started(&sim, &actions), ["web.ui.0", "web.ui.1"]);
    assert!(sim.core.members[sim.id("other.w")].slot.is_none());
    assert!(sim.core.members[sim.id("web.ui")].slot.is_none());
    let report = sim.core.status(&[], sim.now);
    let names: Vec<&str> = report.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["db", "api", "web"]);
}
