//! Steering a running stack from another process: `orch status`, `why`,
//! `logs`, `restart`, `stop`, `start`, `down`, `reload` (and SIGHUP) and the
//! live `graph`, each against a real `orch up`; the control socket's
//! permissions and uid check, a stale socket, a second `orch up`, and
//! requests that are malformed or too large.
//!
//! Client commands run with the same environment as the orch they talk to
//! (its folder, its `XDG_RUNTIME_DIR`), which is how they find its socket.

mod common;

use common::client::{
    client, client_in, finish, member, names, ok, pid, service, status, status_of, wait_count,
    wait_line_after, wait_log, wait_up, Follower,
};
use common::run::{alive, socket, Orch, Stack, DEADLINE};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// Send `bytes` over a fresh connection to `socket` and read the one-line answer.
fn raw_request(socket: &Path, bytes: &[u8]) -> Value {
    let mut stream = UnixStream::connect(socket).expect("connect to the control socket");
    stream
        .set_read_timeout(Some(DEADLINE))
        .expect("set a read timeout");
    // The server may stop reading a request that is too large and answer at
    // once: what counts is its answer, not whether every byte went out.
    let _ = stream.write_all(bytes);
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .expect("read the answer");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("the answer is not JSON ({e}): {line:?}"))
}

/// The keys of a JSON object.
fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect()
}

#[test]
fn status_shows_a_table_and_the_json_contract() {
    let port = common::run::free_port();
    let stack = Stack::new(&format!(
        r"
services:
  db:
    commands:
      server:
        command: echo db up; exec sleep 1000
        port: {port}
        ready: {{ log: db up }}
  api:
    depends_on: [db]
    commands:
      web:
        command: exec sleep 1000
        number_of_processes: 2
  bad:
    commands:
      x:
        command: echo boom; exit 3
        respawn_count: 0
"
    ));
    let orch = stack.up(&[]);
    orch.wait_line("db.server: ready");
    orch.wait_line("api.web.0: started");
    orch.wait_line("api.web.1: started");
    orch.wait_line("bad.x: exited with code 3; disabled after 0 restarts within 60s");
    let (db, web0, web1) = (
        orch.pid_of("db.server"),
        orch.pid_of("api.web.0"),
        orch.pid_of("api.web.1"),
    );

    let report = status(&stack);
    assert_eq!(keys(&report), BTreeSet::from(["services"]));
    assert_eq!(names(&report), ["db", "api", "bad"]);
    let member_keys = BTreeSet::from([
        "command",
        "instance",
        "state",
        "pid",
        "port",
        "restarts",
        "exit_code",
    ]);
    for s in report["services"].as_array().expect("a list") {
        assert_eq!(keys(s), BTreeSet::from(["name", "state", "members"]), "{s}");
        for m in s["members"].as_array().expect("a list") {
            assert_eq!(keys(m), member_keys, "{m}");
        }
    }
    assert_eq!(
        service(&report, "db"),
        &serde_json::json!({
            "name": "db",
            "state": "up",
            "members": [{
                "command": "server", "instance": 0, "state": "running",
                "pid": db.as_raw(), "port": port, "restarts": 0, "exit_code": null,
            }],
        })
    );
    assert_eq!(
        service(&report, "api"),
        &serde_json::json!({
            "name": "api",
            "state": "up",
            "members": [
                {
                    "command": "web", "instance": 0, "state": "running",
                    "pid": web0.as_raw(), "port": null, "restarts": 0, "exit_code": null,
                },
                {
                    "command": "web", "instance": 1, "state": "running",
                    "pid": web1.as_raw(), "port": null, "restarts": 0, "exit_code": null,
                },
            ],
        })
    );
    // Down after its only member failed, with the code it exited with.
    assert_eq!(
        service(&report, "bad"),
        &serde_json::json!({
            "name": "bad",
            "state": "down",
            "members": [{
                "command": "x", "instance": 0, "state": "failed",
                "pid": null, "port": null, "restarts": 0, "exit_code": 3,
            }],
        })
    );

    // The table: a row per member (the service named on its first), the
    // uptime and memory of live members, and why each down service is down.
    let table = ok(&stack, &["status"]);
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 6, "{table}");
    assert_eq!(
        rows[0],
        ["SERVICE", "STATE", "MEMBER", "STATE", "PID", "PORT", "RESTARTS", "UPTIME", "MEMORY"],
        "{table}"
    );
    let (db, web0, web1, port) = (
        db.to_string(),
        web0.to_string(),
        web1.to_string(),
        port.to_string(),
    );
    assert_eq!(
        rows[1][..7],
        ["db", "up", "server", "running", &db, &port, "0"],
        "{table}"
    );
    assert_eq!(
        rows[2][..7],
        ["api", "up", "web.0", "running", &web0, "-", "0"],
        "{table}"
    );
    assert!(
        table.lines().nth(3).is_some_and(|l| l.starts_with(' ')),
        "{table}"
    );
    assert_eq!(
        rows[3][..5],
        ["web.1", "running", &web1, "-", "0"],
        "{table}"
    );
    assert_eq!(
        rows[4],
        ["bad", "down", "x", "failed", "-", "-", "0", "-", "-"],
        "{table}"
    );
    assert_eq!(table.lines().last(), Some("bad: bad.x failed"), "{table}");
    for row in &rows[1..4] {
        // Uptime, then memory in MiB.
        assert!(row.ends_with(&["MiB"]), "{table}");
    }

    // `ps` is the same command.
    assert_eq!(
        serde_json::from_str::<Value>(&ok(&stack, &["ps", "--json"])).expect("JSON"),
        report
    );
    // Only the services asked for, in the order asked for.
    assert_eq!(names(&status_of(&stack, &["bad", "db"])), ["bad", "db"]);
    let table = ok(&stack, &["ps", "api"]);
    let firsts: Vec<&str> = table
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(firsts, ["SERVICE", "api", "web.1"], "{table}");
}

#[test]
fn an_unknown_service_is_a_usage_error_with_a_suggestion() {
    let stack = Stack::new(
        r"
services:
  db:
    commands:
      server:
        command: exec sleep 1000
",
    );
    let orch = stack.up(&[]);
    orch.wait_line("db.server: started");
    let db = orch.pid_of("db.server");
    let mut wrong = Vec::new();
    for args in [
        &["status", "dbb"][..],
        &["ps", "dbb", "--json"],
        &["why", "dbb"],
        &["restart", "dbb"],
        &["stop", "dbb"],
        &["start", "dbb"],
        &["logs", "dbb"],
    ] {
        let out = client(&stack, args);
        let err = out.err();
        if out.code != 2
            || !out.stdout.is_empty()
            || !err.contains("no service `dbb` in stack `stack`")
            || !err.contains("did you mean `db`?")
        {
            wrong.push(format!(
                "`orch {}` exited {} with stdout {:?} and stderr: {err}",
                args.join(" "),
                out.code,
                out.stdout
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "expected exit 2, `no service `dbb` in stack `stack``, `did you mean `db`?`:\n{}",
        wrong.join("\n")
    );
    assert!(alive(db), "db.server must keep running");
    assert_eq!(pid(&status(&stack), "db"), db);
}

#[test]
fn why_follows_the_dependency_chain_to_the_failure_and_its_log() {
    let stack = Stack::new(
        r"
services:
  db:
    commands:
      server:
        command: echo boom; exit 3
        respawn_count: 0
        ready: { log: ready }
  api:
    depends_on: [db]
    commands:
      web:
        command: exec sleep 1000
  ui:
    depends_on: [api]
    commands:
      app:
        command: exec sleep 1000
  keep:
    commands:
      w:
        command: exec sleep 1000
",
    );
    let orch = stack.up(&[]);
    orch.wait_line("db.server: exited with code 3; disabled after 0 restarts within 60s");
    orch.wait_line("keep.w: started");
    wait_log(&orch, &stack, "db.server", "boom\n");

    let why = ok(&stack, &["why", "ui"]);
    let lines: Vec<&str> = why.lines().collect();
    assert!(lines.len() >= 7, "{why}");
    assert_eq!(
        lines[..5],
        [
            "ui is down: api failed",
            "api is down: db failed",
            "db is down: db.server failed",
            "  db.server is failed",
            "  last failure: exited with code 3",
        ],
        "{why}"
    );
    assert!(
        lines[5].starts_with("  last lines of ") && lines[5].ends_with("db.server.log:"),
        "{why}"
    );
    assert!(lines[6..].iter().all(|l| l.starts_with("    ")), "{why}");
    assert!(lines[6..].contains(&"    boom"), "{why}");

    // From the middle of the chain.
    let why = ok(&stack, &["why", "api"]);
    assert!(
        why.starts_with("api is down: db failed\ndb is down: db.server failed\n"),
        "{why}"
    );
    assert_eq!(ok(&stack, &["why", "keep"]), "keep is up\n");
}

/// A stack whose members write three numbered lines each; `db` says so
/// when it gets SIGHUP.
const LOGS: &str = r"
services:
  db:
    commands:
      server:
        command: trap 'echo got HUP' HUP; printf 'd1\nd2\nd3\n'; while :; do sleep 1; done
  api:
    commands:
      web:
        command: printf 'a1\na2\na3\n'; exec sleep 1000
  other:
    commands:
      w:
        command: printf 'o1\no2\no3\n'; exec sleep 1000
";

#[test]
fn logs_prints_the_last_lines_of_the_services_asked_for() {
    let stack = Stack::new(LOGS);
    let orch = stack.up(&[]);
    wait_log(&orch, &stack, "db.server", "d3\n");
    wait_log(&orch, &stack, "api.web", "a3\n");
    wait_log(&orch, &stack, "other.w", "o3\n");

    // In the stack's order, prefixed like the console.
    assert_eq!(
        ok(&stack, &["logs", "-n", "2", "api", "db"]),
        "db.server | d2\ndb.server | d3\napi.web   | a2\napi.web   | a3\n"
    );
    // Every service by default.
    let all = ok(&stack, &["logs", "-n", "1"]);
    assert_eq!(
        all, "db.server | d3\napi.web   | a3\nother.w   | o3\n",
        "{all}"
    );

    // From another folder, the stack file given after or before the subcommand.
    let file = stack.path("stack.yaml");
    let file = file.to_str().expect("a UTF-8 path");
    let elsewhere = stack.path("run");
    for args in [
        &["logs", "--file", file, "-n", "1", "other"][..],
        &["--file", file, "logs", "-n", "1", "other"],
        &["-f", file, "logs", "-n", "1", "other"],
    ] {
        let out = client_in(&stack, &elsewhere, args);
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (0, "other.w | o3\n"),
            "`orch {}`: {}",
            args.join(" "),
            out.stderr
        );
    }
}

#[test]
fn logs_follow_prints_new_lines_as_they_come() {
    let stack = Stack::new(LOGS);
    let orch = stack.up(&[]);
    wait_log(&orch, &stack, "db.server", "d3\n");
    let follower = Follower::start(&stack, &["logs", "-f", "-n", "1", "db"]);
    follower.wait_line("db.server | d3");
    assert_eq!(ok(&stack, &["restart", "db"]), "restarting db\n");
    follower.wait_line("db.server | got HUP");
    follower.wait_line("db.server | [orch] db.server: sending SIGHUP");
    // Only the service asked for.
    assert!(
        follower
            .lines()
            .iter()
            .all(|l| l.starts_with("db.server | ")),
        "{:?}",
        follower.lines()
    );
    drop(follower);

    // -f is follow after `logs`: the file goes with --file, or before `logs`.
    let file = stack.path("stack.yaml");
    let file = file.to_str().expect("a UTF-8 path");
    let follower = Follower::start(&stack, &["-f", file, "logs", "-f", "-n", "1", "api"]);
    follower.wait_line("api.web | a3");
    drop(follower);
    let follower = Follower::start(&stack, &["logs", "-f", "--file", file, "-n", "1", "api"]);
    follower.wait_line("api.web | a3");
}

#[test]
fn restart_signals_members_one_that_reloads_keeps_its_pid_one_that_dies_starts_again() {
    let stack = Stack::new(
        r"
services:
  db:
    commands:
      server:
        command: trap 'echo got HUP' HUP; echo trapping; while :; do sleep 1; done
        ready: { log: trapping }
  api:
    commands:
      web:
        command: exec sleep 1000
",
    );
    let orch = stack.up(&[]);
    // Ready once it traps SIGHUP.
    orch.wait_line("db.server: ready");
    orch.wait_line("api.web: started");
    let (db, web) = (orch.pid_of("db.server"), orch.pid_of("api.web"));

    assert_eq!(
        ok(&stack, &["restart", "db", "api"]),
        "restarting db, api\n"
    );
    orch.wait_line("db.server: sending SIGHUP");
    orch.wait_line("api.web: sending SIGHUP");
    orch.wait_line("api.web: killed by SIGHUP on its restart signal; starting it again");
    wait_count(&orch, "api.web: started (pid ", 2);
    wait_log(&orch, &stack, "db.server", "got HUP\n");

    let new_web = orch.pid_of("api.web");
    assert_ne!(new_web, web);
    let report = wait_up(&orch, &stack, &["db", "api"]);
    assert_eq!(pid(&report, "db"), db, "db.server reloads in place");
    assert!(alive(db));
    assert_eq!(pid(&report, "api"), new_web);
    // Not counted as failures.
    assert_eq!(member(&report, "db")["restarts"], 0);
    assert_eq!(member(&report, "api")["restarts"], 0);
    assert_eq!(orch.count("restarting in"), 0, "{}", orch.console());
    assert_eq!(
        orch.count("db.server: started (pid "),
        1,
        "{}",
        orch.console()
    );
}

#[test]
fn restart_hard_stops_and_starts_the_members() {
    let stack = Stack::new(
        r"
services:
  db:
    commands:
      server:
        command: trap 'echo got HUP' HUP; echo trapping; while :; do sleep 1; done
        ready: { log: trapping }
",
    );
    let orch = stack.up(&[]);
    orch.wait_line("db.server: ready");
    let db = orch.pid_of("db.server");

    assert_eq!(ok(&stack, &["restart", "--hard", "db"]), "restarting db\n");
    orch.wait_line("db.server: killed by SIGTERM; starting it again");
    wait_count(&orch, "db.server: started (pid ", 2);
    let new_db = orch.pid_of("db.server");
    assert_ne!(new_db, db);
    orch.wait_for("the first db.server to be gone", || {
        (!alive(db)).then_some(())
    });
    let report = wait_up(&orch, &stack, &["db"]);
    assert_eq!(pid(&report, "db"), new_db);
    assert_eq!(member(&report, "db")["state"], "running");
    assert_eq!(orch.count("sending SIGHUP"), 0, "{}", orch.console());
    assert!(!stack.read(".orch/logs/db.server.log").contains("got HUP"));
}

#[test]
fn restart_enables_a_disabled_member_with_a_fresh_count() {
    let stack = Stack::new(
        r"
services:
  bad:
    commands:
      x:
        command: echo run >> runs; exit 3
        respawn_count: 1
        respawn_backoff: 0s
  keep:
    commands:
      w:
        command: exec sleep 1000
",
    );
    let orch = stack.up(&[]);
    let disabled = "bad.x: exited with code 3; disabled after 1 restarts within 60s";
    let restarted = "bad.x: exited with code 3; restarting in 0s (restart 1 of 1 within 60s)";
    orch.wait_line(disabled);
    let report = status(&stack);
    assert_eq!(service(&report, "bad")["state"], "down");
    assert_eq!(member(&report, "bad")["state"], "failed");
    assert_eq!(member(&report, "bad")["restarts"], 1);
    assert_eq!(stack.lines("runs").len(), 2);

    assert_eq!(ok(&stack, &["restart", "bad"]), "restarting bad\n");
    orch.wait_line("bad.x: enabled again");
    // A fresh count: one restart allowed again before it is disabled again.
    wait_count(&orch, disabled, 2);
    assert_eq!(orch.count(restarted), 2, "{}", orch.console());
    assert_eq!(stack.lines("runs").len(), 4);
    assert_eq!(member(&status(&stack), "bad")["state"], "failed");
    assert!(alive(orch.pid()), "orch keeps running `keep`");
}

/// `db` <- `api` <- `web`, and `other` on its own.
const CHAIN: &str = r"
services:
  db:
    commands:
      server:
        command: exec sleep 1000
  api:
    depends_on: [db]
    commands:
      web:
        command: exec sleep 1000
  web:
    depends_on: [api]
    commands:
      ui:
        command: exec sleep 1000
  other:
    commands:
      w:
        command: exec sleep 1000
";

#[test]
fn stop_stops_dependents_first_and_start_starts_dependencies_first() {
    let stack = Stack::new(CHAIN);
    let orch = stack.up(&[]);
    orch.wait_line("web.ui: started");
    orch.wait_line("other.w: started");
    let other = orch.pid_of("other.w");
    let old = [
        orch.pid_of("db.server"),
        orch.pid_of("api.web"),
        orch.pid_of("web.ui"),
    ];

    assert_eq!(ok(&stack, &["stop", "db"]), "stopping db\n");
    let said = orch.wait_line("stopping db, and first what depends on it: api, web");
    let ui = wait_line_after(&orch, said, "web.ui: stopped (killed by SIGTERM)");
    let web = wait_line_after(&orch, said, "api.web: stopped (killed by SIGTERM)");
    let server = wait_line_after(&orch, said, "db.server: stopped (killed by SIGTERM)");
    assert!(ui < web && web < server, "{}", orch.console());
    for pid in old {
        assert!(!alive(pid), "{pid} should have stopped");
    }
    let report = status(&stack);
    for name in ["db", "api", "web"] {
        assert_eq!(service(&report, name)["state"], "down", "{report:#}");
        assert_eq!(member(&report, name)["state"], "stopped", "{report:#}");
        assert_eq!(member(&report, name)["pid"], Value::Null, "{report:#}");
    }
    assert_eq!(pid(&report, "other"), other);
    let table = ok(&stack, &["status"]);
    assert!(table.contains("\ndb: db.server is stopped\n"), "{table}");
    assert!(table.contains("\napi: db is not up\n"), "{table}");

    assert_eq!(ok(&stack, &["start", "web"]), "starting web\n");
    let said = orch.wait_line("starting db, api, web");
    let server = wait_line_after(&orch, said, "db.server: started (pid ");
    let web = wait_line_after(&orch, said, "api.web: started (pid ");
    let ui = wait_line_after(&orch, said, "web.ui: started (pid ");
    assert!(server < web && web < ui, "{}", orch.console());
    let report = wait_up(&orch, &stack, &["db", "api", "web", "other"]);
    for (name, label, old) in [
        ("db", "db.server", old[0]),
        ("api", "api.web", old[1]),
        ("web", "web.ui", old[2]),
    ] {
        assert_eq!(pid(&report, name), orch.pid_of(label));
        assert_ne!(pid(&report, name), old);
    }
    assert_eq!(pid(&report, "other"), other, "other is left alone");
}

#[test]
fn down_stops_the_stack_in_order_and_orch_exits_0() {
    let stack = Stack::new(CHAIN);
    let mut orch = stack.up(&[]);
    orch.wait_line("web.ui: started");
    orch.wait_line("other.w: started");
    let socket = socket(&stack);

    assert_eq!(ok(&stack, &["down"]), "stopping the stack\n");
    orch.assert_exit(0);
    orch.wait_line("stopping the stack");
    orch.assert_before("web.ui: stopped", "api.web: stopped");
    orch.assert_before("api.web: stopped", "db.server: stopped");
    orch.wait_line("other.w: stopped");
    stack.wait_all_gone();
    assert!(!socket.exists(), "orch removes its socket when it ends");
    let out = client(&stack, &["status"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
}

/// The stack before a reload: `db` and `other` stay as they are, `api`
/// changes (and `web` depends on it), `gone` is removed.
const BEFORE: &str = r"
services:
  db:
    commands:
      server:
        command: exec sleep 1000
  api:
    depends_on: [db]
    commands:
      web:
        command: exec sleep 1000
  web:
    depends_on: [api]
    commands:
      ui:
        command: exec sleep 1000
  gone:
    commands:
      g:
        command: exec sleep 1000
  other:
    commands:
      w:
        command: exec sleep 1000
";

/// The stack after: `api` runs another command, `fresh` is added.
const AFTER: &str = r"
services:
  db:
    commands:
      server:
        command: exec sleep 1000
  api:
    depends_on: [db]
    commands:
      web:
        command: exec sleep 1001
  web:
    depends_on: [api]
    commands:
      ui:
        command: exec sleep 1000
  other:
    commands:
      w:
        command: exec sleep 1000
  fresh:
    commands:
      n:
        command: exec sleep 1000
";

/// Start [`BEFORE`] and wait until every service is up; the status report.
fn up_before(stack: &Stack) -> (Orch, Value) {
    let orch = stack.up(&[]);
    for label in ["db.server", "api.web", "web.ui", "gone.g", "other.w"] {
        orch.wait_line(&format!("{label}: started"));
    }
    let report = wait_up(&orch, stack, &["db", "api", "web", "gone", "other"]);
    (orch, report)
}

/// Reload with `trigger`, and check that exactly what changed was replaced.
fn reload_applies_the_difference(trigger: impl Fn(&Stack, &Orch)) {
    let stack = Stack::new(BEFORE);
    let (orch, before) = up_before(&stack);
    let pids = |names: &[&str], report: &Value| -> Vec<Pid> {
        names.iter().map(|n| pid(report, n)).collect()
    };
    let unchanged = pids(&["db", "other"], &before);
    let replaced = pids(&["api", "web"], &before);
    let gone = pid(&before, "gone");

    std::fs::write(stack.path("stack.yaml"), AFTER).expect("write stack.yaml");
    trigger(&stack, &orch);
    orch.wait_line(
        "reload: added fresh; removed gone; changed api; restarting what depends on them: web",
    );
    orch.wait_line("fresh.n: started");
    wait_count(&orch, "api.web: started (pid ", 2);
    wait_count(&orch, "web.ui: started (pid ", 2);
    let after = wait_up(&orch, &stack, &["db", "api", "web", "other", "fresh"]);
    assert_eq!(names(&after), ["db", "api", "web", "other", "fresh"]);

    assert_eq!(
        pids(&["db", "other"], &after),
        unchanged,
        "unchanged members keep their pids"
    );
    for &pid in &unchanged {
        assert!(alive(pid), "{pid} must keep running");
    }
    for (&old, new) in replaced.iter().zip(pids(&["api", "web"], &after)) {
        assert_ne!(old, new);
        assert!(!alive(old), "{old} should have been replaced");
    }
    assert!(!alive(gone), "the removed service's member must stop");
    orch.wait_line("gone.g: stopped");
    assert_eq!(orch.count("db.server: "), 1, "{}", orch.console());
    assert_eq!(orch.count("other.w: "), 1, "{}", orch.console());
    // The removed service is gone from the stack.
    let out = client(&stack, &["status", "gone"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
}

#[test]
fn reload_restarts_what_changed_and_keeps_the_rest() {
    reload_applies_the_difference(|stack, _| {
        assert_eq!(
            ok(stack, &["reload"]),
            "reloading; orch's console says what changed\n"
        );
    });
}

#[test]
fn sighup_reloads_like_orch_reload() {
    reload_applies_the_difference(|_, orch| orch.signal(Signal::SIGHUP));
}

#[test]
fn an_invalid_stack_file_on_reload_changes_nothing() {
    let stack = Stack::new(BEFORE);
    let (orch, before) = up_before(&stack);
    let invalid = AFTER.replace(
        "command: exec sleep 1001",
        "command: exec sleep 1001\n        bogus: 1",
    );
    std::fs::write(stack.path("stack.yaml"), invalid).expect("write stack.yaml");

    let out = client(&stack, &["reload"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    let err = out.err();
    assert!(err.contains("unknown key `bogus`"), "{err}");
    assert!(err.contains("stack.yaml:12:9"), "{err}");
    let unchanged = "reload: the stack file is not valid; everything keeps running unchanged";
    wait_count(&orch, unchanged, 1);

    orch.signal(Signal::SIGHUP);
    wait_count(&orch, unchanged, 2);
    orch.wait_for("the diagnostic on orch's stderr", || {
        orch.stderr().contains("unknown key `bogus`").then_some(())
    });

    // Still served (the file need not be valid to find the stack), and every
    // member runs as before.
    let after = status(&stack);
    assert_eq!(after, before);
    for name in ["db", "api", "web", "gone", "other"] {
        assert!(alive(pid(&after, name)), "{name} must keep running");
    }
    assert_eq!(orch.count("stopped"), 0, "{}", orch.console());
    assert_eq!(orch.count("reload: added"), 0, "{}", orch.console());
}

#[test]
fn client_commands_without_a_running_stack_exit_1() {
    let stack = Stack::new(CHAIN);
    for args in [
        &["status"][..],
        &["ps", "--json"],
        &["why", "db"],
        &["restart", "db"],
        &["stop", "db"],
        &["start", "db"],
        &["reload"],
    ] {
        let out = client(&stack, args);
        assert_eq!(out.code, 1, "`orch {}`: {}", args.join(" "), out.stderr);
        assert!(out.stdout.is_empty(), "{}", out.stdout);
        let err = out.err();
        assert!(
            err.contains("no running stack for ") && err.contains("stack.yaml"),
            "`orch {}`: {err}",
            args.join(" ")
        );
        assert!(err.contains("start it with `orch up "), "{err}");
    }
    // Stopping what does not run is done already: scripts can call it blindly.
    let out = client(&stack, &["down"]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""));
    assert!(
        out.stdout
            .starts_with("nothing to stop: no running stack for "),
        "{}",
        out.stdout
    );
}

#[test]
fn the_stack_file_is_found_from_another_folder() {
    let stack = Stack::new(CHAIN);
    let orch = stack.up(&[]);
    orch.wait_line("web.ui: started");
    orch.wait_line("other.w: started");
    let file = stack.path("stack.yaml");
    let file = file.to_str().expect("a UTF-8 path");
    let elsewhere = stack.path("run");
    let mut wrong = Vec::new();
    for args in [
        &["-f", file, "status", "--json"][..],
        &["--file", file, "status", "--json"],
        &["status", "--json", "-f", file],
        &["status", "--json", "--file", file],
        // Relative to the folder the client runs in.
        &["status", "--json", "-f", "../stack.yaml"],
        &["-f", "../stack.yaml", "status", "--json"],
    ] {
        let out = client_in(&stack, &elsewhere, args);
        let listed = serde_json::from_str::<Value>(&out.stdout).map(|r| names(&r));
        if out.code != 0
            || !listed
                .as_ref()
                .is_ok_and(|n| n == &["db", "api", "web", "other"])
        {
            wrong.push(format!(
                "`orch {}` exited {} with stdout {:?} and stderr: {}",
                args.join(" "),
                out.code,
                out.stdout,
                out.err()
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "from {}, these did not find the running stack:\n{}",
        elsewhere.display(),
        wrong.join("\n")
    );
}

#[test]
fn the_socket_is_private_to_its_user() {
    let stack = Stack::new(CHAIN);
    let orch = stack.up(&[]);
    orch.wait_line("other.w: started");
    let socket = socket(&stack);
    let meta = std::fs::metadata(&socket).expect("the socket's metadata");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let folder = socket.parent().expect("the socket's folder");
    assert_eq!(folder, stack.path("run/orch"));
    let meta = std::fs::metadata(folder).expect("the folder's metadata");
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    let name = socket.file_name().expect("a name").to_string_lossy();
    assert!(name.starts_with("stack-") && name.len() < 40, "{name}");
}

/// Connect to `socket` as user `uid` and group `gid` (with no
/// supplementary groups) from a forked child, send `request`, and give what
/// came back; `Err` with the step that failed.
fn request_as(uid: u32, gid: u32, socket: &Path, request: &[u8]) -> Result<String, String> {
    use nix::sys::socket::{
        connect, socket as open_socket, AddressFamily, SockFlag, SockType, UnixAddr,
    };
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, setgid, setgroups, setuid, ForkResult, Gid, Uid};

    const STEPS: [&str; 9] = [
        "",
        "setgroups",
        "setgid",
        "setuid",
        "socket",
        "connect",
        "write",
        "read",
        "pass on",
    ];
    // Everything the child needs is made before the fork: it allocates nothing.
    let address = UnixAddr::new(socket).expect("a socket address");
    // Close-on-exec: a process another test starts meanwhile must not keep
    // the pipe open, or reading it to the end would wait for that process.
    let (from_child, to_parent): (OwnedFd, OwnedFd) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("a pipe");
    // SAFETY: the test harness runs other threads, so the child only makes
    // system calls (async-signal-safe) and leaves with `_exit`; it touches no
    // lock and allocates no memory.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            drop(from_child);
            let step = (|| -> i32 {
                if setgroups(&[]).is_err() {
                    return 1;
                }
                if setgid(Gid::from_raw(gid)).is_err() {
                    return 2;
                }
                if setuid(Uid::from_raw(uid)).is_err() {
                    return 3;
                }
                let Ok(fd) = open_socket(
                    AddressFamily::Unix,
                    SockType::Stream,
                    SockFlag::empty(),
                    None,
                ) else {
                    return 4;
                };
                if connect(fd.as_raw_fd(), &address).is_err() {
                    return 5;
                }
                let mut sent = 0;
                while sent < request.len() {
                    match nix::unistd::write(&fd, &request[sent..]) {
                        Ok(n) => sent += n,
                        // orch may refuse and hang up before the request is
                        // sent: its answer is waiting to be read.
                        Err(nix::errno::Errno::EPIPE | nix::errno::Errno::ECONNRESET) => break,
                        Err(_) => return 6,
                    }
                }
                let mut buf = [0u8; 1024];
                loop {
                    match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
                        Ok(0) => return 0,
                        Ok(n) => {
                            if nix::unistd::write(&to_parent, &buf[..n]).is_err() {
                                return 8;
                            }
                        }
                        // orch answered and hung up without reading the request.
                        Err(nix::errno::Errno::ECONNRESET) => return 0,
                        Err(_) => return 7,
                    }
                }
            })();
            // SAFETY: ends the child at once, without running the parent's
            // exit handlers or destructors.
            unsafe { nix::libc::_exit(step) }
        }
        ForkResult::Parent { child } => {
            drop(to_parent);
            let mut answer = Vec::new();
            let mut reader = std::fs::File::from(from_child);
            std::io::Read::read_to_end(&mut reader, &mut answer).expect("read from the child");
            match waitpid(child, None).expect("wait for the child") {
                WaitStatus::Exited(_, 0) => Ok(String::from_utf8_lossy(&answer).into_owned()),
                WaitStatus::Exited(_, step) => Err(format!(
                    "{} failed",
                    STEPS
                        .get(usize::try_from(step).unwrap_or(0))
                        .unwrap_or(&"?")
                )),
                other => Err(format!("the child ended as {other:?}")),
            }
        }
    }
}

/// The `nobody` account, or `None` (and a note) when the test cannot
/// switch to it because it does not run as root.
fn nobody() -> Option<nix::unistd::User> {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped: acting as another user needs root");
        return None;
    }
    let nobody = nix::unistd::User::from_name("nobody")
        .expect("read the user database")
        .expect("a `nobody` user");
    Some(nobody)
}

/// Let every user reach the stack's socket through its folders. The
/// socket's mode alone keeps other users out: what is tested with this is
/// orch's own check of the peer's uid.
fn open_the_way(stack: &Stack, socket: &Path) {
    for dir in [stack.dir(), &stack.path("run"), &stack.path("run/orch")] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).expect("chmod");
    }
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o666)).expect("chmod");
}

#[test]
fn a_connection_from_another_user_is_refused() {
    let Some(nobody) = nobody() else { return };
    let stack = Stack::new(CHAIN);
    let mut orch = stack.up(&[]);
    orch.wait_line("web.ui: started");
    orch.wait_line("other.w: started");
    let before = status(&stack);
    let socket = socket(&stack);
    open_the_way(&stack, &socket);

    let answer = request_as(
        nobody.uid.as_raw(),
        nobody.gid.as_raw(),
        &socket,
        b"{\"version\":1,\"request\":{\"type\":\"down\"}}\n",
    )
    .unwrap_or_else(|e| panic!("talking to orch as nobody: {e}"));
    let answer: Value = serde_json::from_str(answer.trim_end())
        .unwrap_or_else(|e| panic!("the answer is not JSON ({e}): {answer:?}"));
    assert_eq!(answer["type"], "error", "{answer}");
    assert_eq!(
        answer["message"], "permission denied: this stack belongs to another user",
        "{answer}"
    );

    // Nothing was stopped, and the owner is still served.
    assert_eq!(orch.count("stopping"), 0, "{}", orch.console());
    assert_eq!(status(&stack), before);
    assert!(!orch.exited(), "orch must keep running");
}

#[test]
fn orch_run_by_another_user_says_permission_denied() {
    let Some(nobody) = nobody() else { return };
    let stack = Stack::new(CHAIN);
    let mut orch = stack.up(&[]);
    orch.wait_line("web.ui: started");
    orch.wait_line("other.w: started");
    let before = status(&stack);
    let socket = socket(&stack);
    open_the_way(&stack, &socket);
    // nobody's own run folder, where its orch looks for the socket.
    let run = stack.path("nobody-run");
    let folder = run.join("orch");
    std::fs::create_dir_all(&folder).expect("make nobody's run folder");
    std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let link = folder.join(socket.file_name().expect("a name"));
    std::os::unix::fs::symlink(&socket, &link).expect("link to the socket");
    let owner = (Some(nobody.uid.as_raw()), Some(nobody.gid.as_raw()));
    for path in [&run, &folder] {
        std::os::unix::fs::chown(path, owner.0, owner.1).expect("chown");
    }
    std::os::unix::fs::lchown(&link, owner.0, owner.1).expect("chown");

    // orch hangs up on a refused client at once: however the race between
    // its answer and the client's request goes, the client must tell why.
    let mut wrong = Vec::new();
    for _ in 0..10 {
        let mut command = stack.command();
        std::os::unix::process::CommandExt::uid(&mut command, nobody.uid.as_raw());
        std::os::unix::process::CommandExt::gid(&mut command, nobody.gid.as_raw());
        command.env("XDG_RUNTIME_DIR", &run).arg("down");
        let out = finish(command, "down (as nobody)");
        let err = out.err();
        if out.code == 0 || !err.contains("permission denied: this stack belongs to another user") {
            wrong.push(format!("exit code {}: {err}", out.code));
        }
    }
    assert!(
        wrong.is_empty(),
        "`orch down` as nobody, {} of 10 times:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert_eq!(orch.count("stopping"), 0, "{}", orch.console());
    assert_eq!(status(&stack), before);
    assert!(!orch.exited(), "orch must keep running");
}

#[test]
fn malformed_and_oversized_requests_get_error_replies() {
    let stack = Stack::new(CHAIN);
    let orch = stack.up(&[]);
    orch.wait_line("web.ui: started");
    orch.wait_line("other.w: started");
    let before = status(&stack);
    let socket = socket(&stack);

    let error = |answer: Value, needle: &str| {
        assert_eq!(answer["type"], "error", "{answer}");
        let message = answer["message"].as_str().expect("a message");
        assert!(message.contains(needle), "{answer}");
    };
    error(
        raw_request(&socket, b"this is not json\n"),
        "malformed request",
    );
    error(
        raw_request(&socket, b"{\"version\":1}\n"),
        "malformed request",
    );
    error(
        raw_request(
            &socket,
            b"{\"version\":1,\"request\":{\"type\":\"explode\"}}\n",
        ),
        "malformed request",
    );
    error(
        raw_request(
            &socket,
            b"{\"version\":2,\"request\":{\"type\":\"down\"}}\n",
        ),
        "protocol version 2",
    );
    error(
        raw_request(
            &socket,
            b"{\"version\":1,\"request\":{\"type\":\"status\",\"services\":[\"nope\"]}}\n",
        ),
        "no service `nope`",
    );
    // A valid request, but over 64 KiB.
    let big = format!(
        "{{\"version\":1,\"request\":{{\"type\":\"status\",\"services\":[\"{}\"]}}}}\n",
        "x".repeat(100 * 1024)
    );
    error(raw_request(&socket, big.as_bytes()), "request too large");
    // A client that connects and hangs up without a word.
    drop(UnixStream::connect(&socket).expect("connect"));

    // A well-formed request over the same socket is answered.
    let answer = raw_request(
        &socket,
        b"{\"version\":1,\"request\":{\"type\":\"status\",\"services\":[\"db\"]}}\n",
    );
    assert_eq!(answer["type"], "status", "{answer}");
    assert_eq!(answer["services"][0]["name"], "db", "{answer}");
    assert_eq!(status(&stack), before, "the stack is undisturbed");
    assert_eq!(orch.count("stopping"), 0, "{}", orch.console());
}

#[test]
fn a_second_orch_up_of_the_same_stack_exits_2() {
    let stack = Stack::new(CHAIN);
    let first = stack.up(&[]);
    first.wait_line("web.ui: started");
    first.wait_line("other.w: started");
    let before = status(&stack);

    let mut second = stack.up(&[]);
    second.assert_exit(2);
    let err = second.stderr();
    assert!(err.contains("stack `stack` is already running"), "{err}");
    assert!(err.contains("status`"), "{err}");
    assert_eq!(second.count("started"), 0, "{}", second.console());

    // The first is undisturbed and still answers.
    assert_eq!(status(&stack), before);
    assert_eq!(first.count("stopping"), 0, "{}", first.console());
    // `second`'s clean-up would stop every process of the stack: check first.
    drop(second);
}

#[test]
fn a_stale_socket_left_by_a_killed_orch_is_replaced() {
    let stack = Stack::new(CHAIN);
    let mut first = stack.up(&[]);
    first.wait_line("web.ui: started");
    first.wait_line("other.w: started");
    let socket = socket(&stack);
    let guardian = first.guardian();
    first.kill9();
    nix::sys::signal::kill(guardian, Signal::SIGKILL).expect("kill orch's guardian");
    first.wait_for("the guardian to be gone", || {
        (!alive(guardian)).then_some(())
    });
    // Clear what is left of the first orch's members.
    drop(first);

    assert!(socket.exists(), "a killed orch leaves its socket behind");
    assert!(
        UnixStream::connect(&socket).is_err(),
        "nothing answers on a stale socket"
    );
    let out = client(&stack, &["status"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.err().contains("no running stack"), "{}", out.err());

    let second = stack.up(&[]);
    second.wait_line("web.ui: started");
    second.wait_line("other.w: started");
    let report = wait_up(&second, &stack, &["db", "api", "web", "other"]);
    assert_eq!(pid(&report, "db"), second.pid_of("db.server"));
    let meta = std::fs::metadata(&socket).expect("the new socket");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}

#[test]
fn graph_of_a_running_stack_shows_states_and_the_critical_chain() {
    let stack = Stack::new(
        r"
services:
  db:
    commands:
      server:
        command: echo ready; exec sleep 1000
        ready: { log: ready }
  api:
    depends_on: [db]
    commands:
      web:
        command: echo ready; exec sleep 1000
        ready: { log: ready }
  bad:
    commands:
      x:
        command: exit 3
        respawn_count: 0
        ready: { log: never }
",
    );
    let mut orch = stack.up(&[]);
    orch.wait_line("api.web: ready");
    orch.wait_line("bad.x: exited with code 3; disabled after 0 restarts");

    let graph = ok(&stack, &["graph"]);
    let lines: Vec<&str> = graph.lines().collect();
    assert_eq!(lines.len(), 7, "{graph}");
    assert_eq!(
        lines[..4],
        [
            "api {up} [web]",
            "└── db {up} [server]",
            "bad {down: bad.x failed} [x]",
            "",
        ],
        "{graph}"
    );
    // The chain: api came up last, after db.
    let took = lines[4]
        .strip_prefix("critical chain (start-up took ")
        .and_then(|t| t.strip_suffix("):"))
        .unwrap_or_else(|| panic!("no critical chain header:\n{graph}"));
    let api = lines[5]
        .strip_prefix("  api up at ")
        .unwrap_or_else(|| panic!("the chain does not start at api:\n{graph}"));
    assert!(api.starts_with(&format!("{took} (+")), "{graph}");
    assert!(lines[6].starts_with("  db up at "), "{graph}");
    assert!(
        lines[6].ends_with(')') && lines[6].contains(" (+"),
        "{graph}"
    );

    // Without a running stack: the plain tree.
    assert_eq!(ok(&stack, &["down"]), "stopping the stack\n");
    orch.assert_exit(1);
    assert_eq!(
        ok(&stack, &["graph"]),
        "api [web]\n└── db [server]\nbad [x]\n"
    );
}
