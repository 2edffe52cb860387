//! `profiles` (which services `orch up` runs) and schedules (`when_to_run:
//! { every }` / `{ cron }`) as the stack file gives them: checked and shown.
//! Running schedules is tests/up_schedules.rs.

mod common;

use common::run::Stack;
use common::{pos, problem, stderr_of as stderr, stdout_of as stdout, Project};

/// Every command is `once` and writes its name to `ran`, so `orch up`
/// exits by itself once all have run.
const PROFILED: &str = "
services:
  base:
    commands:
      run: { command: echo base >> ran, when_to_run: once }
  debug:
    profiles: [debug]
    depends_on: [base]
    commands:
      run: { command: echo debug >> ran, when_to_run: once }
  extra:
    profiles: [extra, all]
    commands:
      run: { command: echo extra >> ran, when_to_run: once }
  uses-extra:
    profiles: [all]
    depends_on: [extra]
    commands:
      run: { command: echo uses-extra >> ran, when_to_run: once }
";

/// Run `orch up stack.yaml ARGS` to its end; the sorted names that ran.
fn ran(args: &[&str], profiles_env: Option<&str>) -> Vec<String> {
    let stack = Stack::new(PROFILED);
    let mut command = stack.command();
    command.arg("up").arg("stack.yaml").args(args);
    match profiles_env {
        Some(value) => command.env("ORCH_PROFILES", value),
        None => command.env_remove("ORCH_PROFILES"),
    };
    let status = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("orch runs");
    assert_eq!(status.code(), Some(0), "orch up {args:?}");
    let mut names = stack.lines("ran");
    names.sort();
    names
}

#[test]
fn up_runs_services_by_profile_and_name() {
    assert_eq!(ran(&[], None), ["base"]);
    assert_eq!(ran(&["--profile", "debug"], None), ["base", "debug"]);
    assert_eq!(
        ran(&["--profile", "debug", "--profile", "all"], None),
        ["base", "debug", "extra", "uses-extra"]
    );
    assert_eq!(ran(&[], Some("extra,debug")), ["base", "debug", "extra"]);
    assert_eq!(ran(&[], Some("")), ["base"]);
    assert_eq!(ran(&[], Some("debug,")), ["base", "debug"]);
    // Named on the command line: runs whatever its profiles, with what it needs.
    assert_eq!(ran(&["debug"], None), ["base", "debug"]);
    assert_eq!(ran(&["uses-extra", "extra"], None), ["extra", "uses-extra"]);
}

fn up_fails(args: &[&str], profiles_env: Option<&str>) -> String {
    let project = Project::with_stack(PROFILED);
    let mut cmd = project.orch();
    cmd.arg("up").args(args);
    match profiles_env {
        Some(value) => cmd.env("ORCH_PROFILES", value),
        None => cmd.env_remove("ORCH_PROFILES"),
    };
    let out = cmd.assert().code(2).stdout("");
    assert!(!project.path().join("ran").exists(), "nothing ran");
    stderr(&out)
}

#[test]
fn an_unknown_profile_is_a_usage_error() {
    let err = up_fails(&["--profile", "debgu"], None);
    assert!(
        err.contains("no service of stack `stack` has the profile `debgu`"),
        "{err}"
    );
    assert!(err.contains("did you mean `debug`?"), "{err}");
    let err = up_fails(&[], Some("nope"));
    assert!(
        err.contains("no service of stack `stack` has the profile `nope`"),
        "{err}"
    );
    assert!(
        err.contains("the profiles of `stack` are: debug, extra, all"),
        "{err}"
    );
}

#[test]
fn a_dependency_whose_profiles_are_inactive_names_the_profile_to_enable() {
    let err = up_fails(&["uses-extra"], None);
    // (miette wraps long messages: look at pieces of it)
    assert!(
        err.contains("`uses-extra` depends on `extra`, which runs only with one of the"),
        "{err}"
    );
    assert!(err.contains("`extra`, `all`"), "{err}");
    assert!(err.contains("enable it with `--profile extra`"), "{err}");
}

#[test]
fn check_and_graph_show_every_service_and_its_profiles() {
    let project = Project::with_stack(PROFILED);
    let out = project.orch().arg("check").assert().success();
    assert_eq!(
        stdout(&out),
        "stack: ok, 4 services, 4 members, 0 locators, 2 start waves\n  \
         profile debug: debug\n  profile extra: extra\n  profile all: extra, uses-extra\n"
    );
    let out = project.orch().arg("graph").assert().success();
    assert_eq!(
        stdout(&out),
        "debug [run] (profiles: debug)\n└── base [run]\n\
         uses-extra [run] (profiles: all)\n└── extra [run] (profiles: extra, all)\n"
    );
    let out = project
        .orch()
        .args(["graph", "--format", "json"])
        .assert()
        .success();
    let graph: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(graph["services"][0].get("profiles"), None);
    assert_eq!(
        graph["services"][2]["profiles"],
        serde_json::json!(["extra", "all"])
    );
}

#[test]
fn profile_names_are_checked() {
    let text =
        "services:\n  a:\n    profiles: [ok, \"not ok\"]\n    commands: { c: { command: c } }\n";
    let p = problem(text);
    assert_eq!(p.message, "`not ok` is not a valid profile name");
    assert_eq!(p.at, Some(pos(text, "\"not ok\"", 0)));
}

const SCHEDULED: &str = "
services:
  app:
    commands:
      web: { command: sleep 100 }
  backup:
    commands:
      dump: { command: echo dump, when_to_run: { every: 10m } }
      report: { command: echo report, when_to_run: { cron: \"30 6 * * 1-5\" } }
";

#[test]
fn check_and_graph_show_schedules() {
    let project = Project::with_stack(SCHEDULED);
    let out = project.orch().arg("check").assert().success();
    assert_eq!(
        stdout(&out),
        "stack: ok, 2 services, 3 members, 0 locators, 1 start wave\n  \
         backup.dump runs every 10m\n  backup.report runs cron \"30 6 * * 1-5\"\n"
    );
    let out = project.orch().arg("graph").assert().success();
    assert_eq!(
        stdout(&out),
        "app [web]\nbackup [dump (every 10m), report (cron \"30 6 * * 1-5\")]\n"
    );
    let out = project
        .orch()
        .args(["graph", "--format", "json"])
        .assert()
        .success();
    let graph: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(
        graph["services"][1]["schedules"],
        serde_json::json!({"dump": {"every": "10m"}, "report": {"cron": "30 6 * * 1-5"}})
    );
}

#[test]
fn invalid_schedules_point_at_the_fault() {
    let cases = [
        (
            "{ cron: \"*/5 25 * * *\" }",
            "`25` is not a valid hour in a cron expression",
            "25",
        ),
        (
            "{ cron: \"* * * *\" }",
            "a cron expression has 5 fields; `* * * *` has 4",
            "\"* * * *\"",
        ),
        (
            "{ cron: \"0 0 30 2 *\" }",
            "`0 0 30 2 *` never matches a date",
            "\"0 0 30 2 *\"",
        ),
        (
            "{ every: 0s }",
            "a schedule of `every: 0s` would never stop running",
            "0s",
        ),
        (
            "{ every: 1m, cron: \"* * * * *\" }",
            "a schedule needs exactly one of `every` and `cron`",
            "{ every",
        ),
        (
            "{ every: 10 }",
            "`10` needs a unit: write e.g. 10s or 10ms",
            "10 }",
        ),
        ("{ at: noon }", "unknown key `at`", "at: noon"),
    ];
    for (schedule, message, at) in cases {
        let text = format!(
            "services:\n  job:\n    commands:\n      run:\n        command: run\n        when_to_run: {schedule}\n"
        );
        let p = problem(&text);
        assert_eq!(p.message, message, "{schedule}");
        assert_eq!(p.at, Some(pos(&text, at, 0)), "{schedule}");
    }
    // Through the binary: exit 2, the expression's field underlined.
    let project = Project::with_stack(
        "services:\n  job:\n    commands:\n      run: { command: run, when_to_run: { cron: \"61 * * * *\" } }\n",
    );
    let err = stderr(&project.orch().arg("check").assert().code(2).stdout(""));
    assert!(
        err.contains("`61` is not a valid minute in a cron expression"),
        "{err}"
    );
    assert!(err.contains(",-[stack.yaml:4:50]"), "{err}");
    assert!(err.contains("the minute takes 0-59"), "{err}");
}

#[test]
fn a_scheduled_command_has_no_ready() {
    let text = "services:\n  job:\n    commands:\n      run:\n        command: run\n        when_to_run: { every: 1h }\n        ready: { log: done }\n";
    let p = problem(text);
    assert_eq!(
        p.message,
        "a scheduled command runs to completion each time; it has no `ready`"
    );
    assert_eq!(p.at, Some(pos(text, "{ log", 0)));
}
