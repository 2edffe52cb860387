//! Requests and reloads that overlap, against a real `orch up`: whatever is
//! in flight (a member stopping, a reload being applied), the stack ends
//! where the last request or reload says, a member never has two
//! processes, and every request is answered.
//!
//! `api.web` takes 2 s to stop on SIGTERM, which keeps it in the middle of
//! a stop long enough for the next request to come while it is stopping.
//! Tests wait for it to have got its SIGTERM (it says so in a file) before
//! they send that next request.

mod common;

use std::collections::BTreeSet;

use common::client::{
    client, finish, ok, pid, service, status, up_serving, wait_count, wait_line_after, wait_up,
};
use common::run::{cmdline, poll, Orch, Stack, DEADLINE};
use nix::unistd::Pid;

/// The command of a member that takes 2 s to stop on SIGTERM. Each start
/// appends `VERSION PID` to `NAME.runs`; each SIGTERM, `PID` to `NAME.terms`.
fn slow(name: &str, version: &str) -> String {
    format!(
        "echo {version} $$$$ >> {name}.runs; \
         trap 'echo $$$$ >> {name}.terms; sleep 2; exit 0' TERM; sleep 1000 & wait"
    )
}

/// `db` <- `api` (slow to stop, running `version`) <- `web`, and `other` on
/// its own; `extra` is appended (more services).
fn chain(version: &str, extra: &str) -> String {
    format!(
        r"
services:
  db:
    commands:
      server:
        command: exec sleep 1000
  api:
    depends_on: [db]
    commands:
      web:
        command: {}
  web:
    depends_on: [api]
    commands:
      ui:
        command: exec sleep 1000
  other:
    commands:
      w:
        command: exec sleep 1000
{extra}",
        slow("api", version)
    )
}

/// Start [`chain`] and wait until every service of it is up.
fn up_all(stack: &Stack) -> Orch {
    let orch = up_serving(stack, &[]);
    wait_up(&orch, stack, &["db", "api", "web", "other"]);
    orch
}

/// Wait until `name` holds at least `n` whole lines; its lines.
fn wait_lines(orch: &Orch, stack: &Stack, name: &str, n: usize) -> Vec<String> {
    orch.wait_for(&format!("{n} lines in {name}"), || {
        let text = stack.read(name);
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        (text.ends_with('\n') && lines.len() >= n).then_some(lines)
    })
}

/// Each start of a slow member: its version and pid, from `NAME.runs`.
fn runs(stack: &Stack, name: &str) -> Vec<(String, Pid)> {
    stack
        .lines(&format!("{name}.runs"))
        .iter()
        .map(|line| {
            let (version, pid) = line
                .split_once(' ')
                .unwrap_or_else(|| panic!("a broken line in {name}.runs: {line:?}"));
            let pid = pid.parse().expect("a pid");
            (version.to_owned(), Pid::from_raw(pid))
        })
        .collect()
}

/// Every process a slow member started got its SIGTERM (none was killed
/// without it).
fn assert_each_got_its_stop_signal(stack: &Stack, name: &str) {
    let started: BTreeSet<String> = runs(stack, name)
        .iter()
        .map(|(_, pid)| pid.to_string())
        .collect();
    let termed: BTreeSet<String> = stack.lines(&format!("{name}.terms")).into_iter().collect();
    assert_eq!(
        started, termed,
        "processes of {name} started, and those that got SIGTERM"
    );
}

/// The process groups of live processes whose command line contains
/// `needle`: one per member process (its children share its group).
fn groups(stack: &Stack, needle: &str) -> BTreeSet<i32> {
    stack
        .processes()
        .into_iter()
        .filter(|&p| cmdline(p).contains(needle))
        .filter_map(|p| nix::unistd::getpgid(Some(p)).ok())
        .map(Pid::as_raw)
        .collect()
}

/// Wait until `api` is up running the start recorded as its `n`th in
/// `api.runs`, checking all along that it never has two processes; that start.
fn wait_api_runs(orch: &Orch, stack: &Stack, n: usize) -> (String, Pid) {
    let mut most = 0;
    let settled = poll(DEADLINE, || {
        most = most.max(groups(stack, "api.runs").len());
        let runs = runs(stack, "api");
        let last = runs.last().cloned().filter(|_| runs.len() == n)?;
        let report = status(stack);
        (service(&report, "api")["state"] == "up" && pid(&report, "api") == last.1).then_some(last)
    });
    let Some(last) = settled else {
        panic!(
            "waited {DEADLINE:?} for api up with its start number {n}; its starts: {:?}; \
             its live processes' groups: {:?}; console:\n{}",
            runs(stack, "api"),
            groups(stack, "api.runs"),
            orch.console()
        );
    };
    assert!(
        most <= 1,
        "api had {most} processes at once; console:\n{}",
        orch.console()
    );
    last
}

/// Ask for a reload; it must be accepted.
fn reload(stack: &Stack, text: &str) {
    std::fs::write(stack.path("stack.yaml"), text).expect("write stack.yaml");
    ok(stack, &["reload"]);
}

/// `orch down`, and orch exits 0 leaving nothing behind.
fn down(stack: &Stack, orch: &mut Orch) {
    ok(stack, &["down"]);
    orch.assert_exit(0);
    stack.wait_all_gone();
}

/// Start [`chain`], ask `orch ARGS...`, which must answer
/// `answer`, and wait until `api` has its SIGTERM: it is in the middle of
/// its 2 s stop.
fn api_stopping_after(args: &[&str], answer: &str) -> (Stack, Orch) {
    let stack = Stack::new(&chain("v1", ""));
    let orch = up_all(&stack);
    assert_eq!(ok(&stack, args), answer);
    wait_lines(&orch, &stack, "api.terms", 1);
    (stack, orch)
}

/// Two reloads, the second while the first is still stopping `api`: the
/// second one wins, and each is announced as the change it is.
fn two_reloads_end_with_the_second(extra: &str, then_up: &[&str]) {
    let stack = Stack::new(&chain("v1", ""));
    let mut orch = up_all(&stack);
    reload(&stack, &chain("v2", ""));
    wait_lines(&orch, &stack, "api.terms", 1);
    reload(&stack, &chain("v1", extra));

    let (version, _) = wait_api_runs(&orch, &stack, 2);
    assert_eq!(
        version,
        "v1",
        "the last reload wins; console:\n{}",
        orch.console()
    );
    wait_up(&orch, &stack, then_up);
    wait_count(&orch, "changed api", 2);
    assert_eq!(
        orch.count("reload: nothing changed"),
        0,
        "{}",
        orch.console()
    );
    assert!(
        runs(&stack, "api").iter().all(|(v, _)| v == "v1"),
        "api never ran the first reload's command: {:?}",
        runs(&stack, "api")
    );
    down(&stack, &mut orch);
    assert_each_got_its_stop_signal(&stack, "api");
}

#[test]
fn two_reloads_close_together_end_with_the_second() {
    two_reloads_end_with_the_second("", &["db", "api", "web", "other"]);
}

#[test]
fn two_reloads_close_together_the_second_adding_a_service() {
    let fresh = "  fresh:\n    commands:\n      n:\n        command: exec sleep 1000\n";
    two_reloads_end_with_the_second(fresh, &["db", "api", "web", "other", "fresh"]);
}

/// A second service on `db`, slow to stop as well.
const WORKER: &str = r"
  worker:
    depends_on: [db]
    commands:
      w:
        command: WORKER
";

#[test]
fn down_during_a_reload_stops_everything_and_orch_exits() {
    // `worker` is still stopping when `api` (changed by the reload) has
    // stopped: `db`, which both depend on, must still be stopped after it.
    let worker = WORKER.replace("WORKER", &slow("worker", "v1"));
    let stack = Stack::new(&chain("v1", &worker));
    let mut orch = up_all(&stack);
    wait_up(&orch, &stack, &["worker"]);
    reload(&stack, &chain("v2", &worker));
    wait_lines(&orch, &stack, "api.terms", 1);

    down(&stack, &mut orch);
    assert_eq!(
        runs(&stack, "api").len(),
        1,
        "nothing starts during the shutdown"
    );
    assert_eq!(orch.count("web.ui: started"), 1, "{}", orch.console());
    orch.assert_before("worker.w: stopped", "db.server: stopped");
    orch.assert_before("api.web: stopped", "db.server: stopped");
    assert_each_got_its_stop_signal(&stack, "api");
    assert_each_got_its_stop_signal(&stack, "worker");
}

#[test]
fn a_stopped_service_stays_stopped_across_an_unrelated_reload() {
    // `db` waits for `api`, which takes 2 s to stop, while `other` changes.
    let (stack, mut orch) = api_stopping_after(&["stop", "db"], "stopping db\n");
    orch.wait_line("stopping db, and first what depends on it: api, web");
    let other = "      w:\n        command: exec sleep 1000";
    let changed = chain("v1", "").replace(other, "      w:\n        command: exec sleep 1001");
    reload(&stack, &changed);

    orch.wait_line("reload: changed other");
    wait_count(&orch, "other.w: started", 2);
    orch.assert_before("api.web: stopped", "db.server: stopped");
    let report = wait_up(&orch, &stack, &["other"]);
    for name in ["db", "api", "web"] {
        assert_eq!(
            service(&report, name)["members"][0]["state"],
            "stopped",
            "{report:#}"
        );
    }
    down(&stack, &mut orch);
    for label in ["db.server", "api.web", "web.ui"] {
        assert_eq!(
            orch.count(&format!("{label}: started")),
            1,
            "{}",
            orch.console()
        );
    }
}

#[test]
fn restart_hard_then_a_reload_leaves_one_process_running_the_new_file() {
    let (stack, mut orch) = api_stopping_after(&["restart", "--hard", "api"], "restarting api\n");
    reload(&stack, &chain("v2", ""));

    let (version, _) = wait_api_runs(&orch, &stack, 2);
    assert_eq!(version, "v2", "{}", orch.console());
    wait_up(&orch, &stack, &["db", "api", "web", "other"]);
    assert_eq!(groups(&stack, "api.runs").len(), 1, "{}", orch.console());
    down(&stack, &mut orch);
    assert_each_got_its_stop_signal(&stack, "api");
    assert_eq!(orch.count("did not stop in time"), 0, "{}", orch.console());
}

#[test]
fn restart_hard_then_down_starts_nothing_again() {
    let (stack, mut orch) = api_stopping_after(&["restart", "--hard", "api"], "restarting api\n");

    down(&stack, &mut orch);
    assert_eq!(runs(&stack, "api").len(), 1, "{}", orch.console());
    assert_eq!(orch.count("api.web: started"), 1, "{}", orch.console());
}

/// `args` while `api` is being stopped by `orch stop`: it ends running
/// again (and `web`, stopped first as it depends on `api`, stays stopped).
fn a_request_during_a_stop_ends_running(args: &[&str], answer: &str) {
    let (stack, mut orch) = api_stopping_after(&["stop", "api"], "stopping api\n");
    assert_eq!(ok(&stack, args), answer);

    wait_api_runs(&orch, &stack, 2);
    let report = wait_up(&orch, &stack, &["db", "api", "other"]);
    assert_eq!(
        service(&report, "web")["members"][0]["state"],
        "stopped",
        "{report:#}"
    );
    down(&stack, &mut orch);
    assert_each_got_its_stop_signal(&stack, "api");
}

#[test]
fn start_while_stop_is_still_stopping_ends_running() {
    a_request_during_a_stop_ends_running(&["start", "api"], "starting api\n");
}

#[test]
fn restart_hard_while_stop_is_still_stopping_ends_running() {
    a_request_during_a_stop_ends_running(&["restart", "--hard", "api"], "restarting api\n");
}

/// `db`, `api` and `other`, with `api_deps` after `api:` (its `depends_on`).
fn selected(api_deps: &str) -> String {
    format!(
        r"
services:
  db:
    commands:
      server:
        command: exec sleep 1000
  api:{api_deps}
    commands:
      web:
        command: echo run >> api.runs; exec sleep 1000
  other:
    commands:
      w:
        command: exec sleep 1000
"
    )
}

#[test]
fn a_reload_starts_a_new_dependency_of_a_selected_service() {
    let stack = Stack::new(&selected(""));
    let mut orch = up_serving(&stack, &["api"]);
    wait_up(&orch, &stack, &["api"]);
    reload(&stack, &selected("\n    depends_on: [db]"));

    let said = orch.wait_line("reload: changed api");
    let db = wait_line_after(&orch, said, "db.server: started");
    let api = wait_line_after(&orch, said, "api.web: started");
    assert!(
        db < api,
        "the new dependency first; console:\n{}",
        orch.console()
    );
    let report = wait_up(&orch, &stack, &["db", "api"]);
    assert_eq!(service(&report, "other")["state"], "down", "{report:#}");
    assert_eq!(orch.count("other.w: started"), 0, "{}", orch.console());
    assert!(
        !orch.exited(),
        "orch keeps running; console:\n{}",
        orch.console()
    );
    down(&stack, &mut orch);
}

#[test]
fn services_not_selected_say_so() {
    let stack = Stack::new(&selected("\n    depends_on: [db]"));
    let orch = up_serving(&stack, &["api"]);
    wait_up(&orch, &stack, &["db", "api"]);

    let report = status(&stack);
    assert_eq!(service(&report, "other")["state"], "down", "{report:#}");
    assert_eq!(
        service(&report, "other")["members"][0]["state"],
        "not selected",
        "{report:#}"
    );
    assert_eq!(
        ok(&stack, &["why", "other"]),
        "other is down: not selected\n"
    );
    let table = ok(&stack, &["status"]);
    assert!(table.lines().any(|l| l == "other: not selected"), "{table}");
    assert_eq!(orch.count("other.w"), 0, "{}", orch.console());
}

/// Start [`chain`], then stop every service with `orch stop`.
fn all_stopped(stack: &Stack) -> Orch {
    let orch = up_all(stack);
    ok(stack, &["stop", "db", "other"]);
    orch.wait_for("every member stopped", || {
        let report = status(stack);
        ["db", "api", "web", "other"]
            .iter()
            .all(|s| service(&report, s)["members"][0]["state"] == "stopped")
            .then_some(())
    });
    orch
}

#[test]
fn down_when_every_service_is_stopped_succeeds() {
    let stack = Stack::new(&chain("v1", ""));
    let mut orch = all_stopped(&stack);
    let out = client(&stack, &["down"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "stopping the stack\n"),
        "{}",
        out.stderr
    );
    orch.assert_exit(0);
    stack.wait_all_gone();
}

#[test]
fn downs_at_once_are_each_answered() {
    let stack = Stack::new(&chain("v1", ""));
    let mut orch = all_stopped(&stack);
    let downs: Vec<_> = (0..4)
        .map(|_| {
            let mut command = stack.command();
            command.arg("down");
            std::thread::spawn(move || finish(command, "down"))
        })
        .collect();
    for down in downs {
        let out = down.join().expect("a client thread");
        assert_eq!(
            out.code, 0,
            "stdout: {}\nstderr: {}",
            out.stdout, out.stderr
        );
        assert!(out.stderr.is_empty(), "{}", out.stderr);
        assert!(
            ["stopping the stack\n", "the stack has stopped\n"].contains(&out.stdout.as_str())
                || out.stdout.starts_with("nothing to stop: "),
            "{}",
            out.stdout
        );
    }
    orch.assert_exit(0);
}

#[test]
fn down_without_a_running_stack_has_nothing_to_stop() {
    let stack = Stack::new(&chain("v1", ""));
    let out = client(&stack, &["down"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .starts_with("nothing to stop: no running stack for "),
        "{}",
        out.stdout
    );
}

#[test]
fn restart_or_start_of_a_completed_once_command_runs_it_again() {
    let stack = Stack::new(
        r"
services:
  job:
    commands:
      x:
        command: echo run >> job.runs
        when_to_run: once
  keep:
    commands:
      w:
        command: exec sleep 1000
",
    );
    let mut orch = stack.up(&[]);
    orch.wait_line("job.x: completed");
    assert_eq!(ok(&stack, &["restart", "job"]), "restarting job\n");
    wait_count(&orch, "job.x: completed", 2);
    assert_eq!(ok(&stack, &["start", "job"]), "starting job\n");
    wait_count(&orch, "job.x: completed", 3);
    assert_eq!(stack.lines("job.runs").len(), 3);
    let report = wait_up(&orch, &stack, &["job", "keep"]);
    assert_eq!(service(&report, "job")["members"][0]["state"], "completed");
    down(&stack, &mut orch);
}
