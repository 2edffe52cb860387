//! `orch up`: what starts, when, and with which environment.

mod common;

use std::collections::HashMap;

use common::run::{free_ports, Stack};
use nix::sys::signal::Signal;

/// Parse the output of `env` (one `NAME=value` a line).
fn env_file(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn dependent_starts_only_once_a_slow_command_probe_passes() {
    let stack = Stack::new(
        r#"
services:
  db:
    commands:
      server:
        command: sleep 0.5; touch db.ready; exec sleep 1000
        ready: { command: "test -f db.ready", interval: 50ms }
  api:
    depends_on: [db]
    commands:
      web:
        command: if [ -f db.ready ]; then echo ok > api.saw; else echo early > api.saw; fi; exec sleep 1000
"#,
    );
    let mut orch = stack.up(&[]);
    assert_eq!(stack.wait_text("api.saw"), "ok\n");
    orch.assert_before("db.server: ready", "api.web: started");
    orch.signal(Signal::SIGTERM);
    orch.assert_exit(0);
}

#[test]
fn dependent_starts_only_once_a_late_port_accepts_connections() {
    // No `ready`: a command with a port is ready when the port accepts connections.
    let port = free_ports(1);
    let stack = Stack::new(&format!(
        r#"
services:
  db:
    commands:
      server:
        command: sleep 0.5; exec python3 -m http.server {port} --bind 127.0.0.1
        port: {port}
    provides:
      DB_PORT: "${{server.port}}"
  api:
    depends_on: [db]
    commands:
      web:
        command: >-
          python3 -c "import socket, sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5)"
          $DB_PORT && echo ok > api.saw || echo early > api.saw; exec sleep 1000
"#
    ));
    let mut orch = stack.up(&[]);
    assert_eq!(stack.wait_text("api.saw"), "ok\n");
    orch.assert_before("db.server: ready", "api.web: started");
    orch.signal(Signal::SIGTERM);
    orch.assert_exit(0);
}

#[test]
fn independent_branches_start_in_parallel() {
    // Each side becomes ready only after it has seen the other start: this
    // stack comes up only if both run at the same time.
    let side = |me: &str, other: &str| {
        format!(
            r#"
  {me}:
    commands:
      w:
        command: touch {me}.started; until [ -f {other}.started ]; do sleep 0.02; done; touch {me}.done; exec sleep 1000
        ready: {{ command: "test -f {me}.done", interval: 20ms }}"#
        )
    };
    let stack = Stack::new(&format!(
        r"
services:{}{}
  top:
    depends_on: [left, right]
    commands:
      w:
        command: touch top.started; exec sleep 1000
",
        side("left", "right"),
        side("right", "left")
    ));
    let mut orch = stack.up(&[]);
    stack.wait_file("top.started");
    let ready = orch
        .wait_line("left.w: ready")
        .min(orch.wait_line("right.w: ready"));
    for started in ["left.w: started", "right.w: started"] {
        assert!(
            orch.wait_line(started) < ready,
            "`{started}` should come before the first `ready`; console:\n{}",
            orch.console()
        );
    }
    orch.assert_before("left.w: ready", "top.w: started");
    orch.assert_before("right.w: ready", "top.w: started");
    orch.signal(Signal::SIGTERM);
    orch.assert_exit(0);
}

#[test]
fn commands_get_locators_port_identity_and_layered_env() {
    let low = free_ports(3);
    let high = low + 2;
    let stack = Stack::new(&format!(
        r#"
port_range: {low}-{high}
env:
  LAYER: stack
  FROM_STACK: stack
services:
  base:
    commands:
      run:
        command: exec sleep 1000
    provides:
      BASE_URL: base://somewhere
  db:
    depends_on: [base]
    commands:
      server:
        command: exec python3 -m http.server ${{port}} --bind 127.0.0.1
        port: auto
    provides:
      DATABASE_URL: postgres://127.0.0.1:${{server.port}}/app
      DB_HOST: 127.0.0.1
      DB_USER: app
  api:
    depends_on: [db]
    env:
      LAYER: service
      FROM_SERVICE: service
      DB_USER: admin
    commands:
      web:
        command: env > env.$ORCH_INSTANCE; echo env written; exec sleep 1000
        port: auto
        number_of_processes: 2
        ready: {{ log: "^env written$" }}
        env:
          LAYER: command
          FROM_COMMAND: command
"#
    ));
    let mut command = stack.command();
    command
        .args(["up", "stack.yaml"])
        .env("INHERITED", "from-orch")
        .env("LAYER", "orch")
        .env("FROM_STACK", "orch");
    let mut orch = common::run::Orch::spawn(command, stack.marker(), true);
    orch.wait_line("api.web.0: ready");
    orch.wait_line("api.web.1: ready");
    for instance in [0u16, 1] {
        let env = env_file(&stack.read(&format!("env.{instance}")));
        let get = |k: &str| env.get(k).map(String::as_str);
        let port = (low + 1 + instance).to_string();
        let instance = instance.to_string();
        let expected = [
            ("DATABASE_URL", format!("postgres://127.0.0.1:{low}/app")),
            ("DB_HOST", "127.0.0.1".to_owned()),
            // The service env overrides a locator of the same name.
            ("DB_USER", "admin".to_owned()),
            ("PORT", port),
            ("ORCH_SERVICE", "api".to_owned()),
            ("ORCH_INSTANCE", instance),
            // stack < service < command, all over orch's own environment.
            ("LAYER", "command".to_owned()),
            ("FROM_STACK", "stack".to_owned()),
            ("FROM_SERVICE", "service".to_owned()),
            ("FROM_COMMAND", "command".to_owned()),
            ("INHERITED", "from-orch".to_owned()),
        ];
        for (key, value) in expected {
            assert_eq!(
                get(key),
                Some(value.as_str()),
                "{key} in env.{}",
                get("ORCH_INSTANCE").unwrap_or("?")
            );
        }
        // Only direct dependencies hand over their locators.
        assert_eq!(
            get("BASE_URL"),
            None,
            "BASE_URL comes from an indirect dependency"
        );
    }
    orch.signal(Signal::SIGTERM);
    orch.assert_exit(0);
}

#[test]
fn once_command_completes_before_its_dependents_start() {
    let stack = Stack::new(
        r"
services:
  init:
    commands:
      migrate:
        command: sleep 0.3; echo migrated > migrated
        when_to_run: once
  app:
    depends_on: [init]
    commands:
      web:
        command: cat migrated > app.saw; exec sleep 1000
",
    );
    let mut orch = stack.up(&[]);
    assert_eq!(stack.wait_text("app.saw"), "migrated\n");
    orch.assert_before("init.migrate: completed", "app.web: started");
    orch.signal(Signal::SIGTERM);
    orch.assert_exit(0);
}

#[test]
fn stack_of_once_commands_exits_0_when_all_completed() {
    let stack = Stack::new(
        r"
services:
  first:
    commands:
      step:
        command: echo first >> steps
        when_to_run: once
  second:
    depends_on: [first]
    commands:
      step:
        command: echo second >> steps
        when_to_run: once
",
    );
    let mut orch = stack.up(&[]);
    orch.assert_exit(0);
    assert_eq!(stack.read("steps"), "first\nsecond\n");
    assert_eq!(orch.count(": completed"), 2, "{}", orch.console());
}

#[test]
fn failed_once_command_blocks_its_dependents_and_exits_1() {
    let stack = Stack::new(
        r"
services:
  init:
    commands:
      migrate:
        command: echo tried >> tries; exit 4
        when_to_run: once
        respawn_count: 0
  app:
    depends_on: [init]
    commands:
      web:
        command: touch app.ran; exec sleep 1000
",
    );
    let mut orch = stack.up(&[]);
    orch.assert_exit(1);
    orch.wait_line("init.migrate: exited with code 4; disabled after 0 restarts within 60s");
    orch.wait_line("app: not started: init failed");
    assert_eq!(orch.find("app.web"), None, "{}", orch.console());
    assert!(!stack.exists("app.ran"), "app must never run");
    assert_eq!(stack.lines("tries"), ["tried"]);
}

#[test]
fn up_with_a_service_runs_only_it_and_its_dependencies() {
    let service = |name: &str, deps: &str| {
        format!(
            "
  {name}:
    depends_on: [{deps}]
    commands:
      w:
        command: touch {name}.ran; exec sleep 1000"
        )
    };
    let stack = Stack::new(&format!(
        "services:{}{}{}{}\n",
        service("a", ""),
        service("b", "a"),
        service("c", "b"),
        service("d", "")
    ));
    let mut orch = stack.up(&["b"]);
    stack.wait_file("a.ran");
    stack.wait_file("b.ran");
    orch.signal(Signal::SIGTERM);
    orch.assert_exit(0);
    for other in ["c", "d"] {
        assert!(
            !stack.exists(&format!("{other}.ran")),
            "{other} must not run"
        );
        assert_eq!(orch.find(&format!("{other}.w")), None, "{}", orch.console());
    }
}

#[test]
fn http_probe_waits_for_a_2xx_answer() {
    let port = free_ports(1);
    let stack = Stack::new(&format!(
        r#"
services:
  web:
    commands:
      srv:
        command: sleep 0.3; exec python3 -m http.server ${{port}} --bind 127.0.0.1
        port: {port}
        ready: {{ http: "http://127.0.0.1:${{port}}/", interval: 50ms }}
    provides:
      WEB_URL: http://127.0.0.1:${{srv.port}}/
  client:
    depends_on: [web]
    commands:
      w:
        command: >-
          python3 -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)"
          "$WEB_URL" && echo ok > client.saw || echo early > client.saw; exec sleep 1000
"#
    ));
    let mut orch = stack.up(&[]);
    assert_eq!(stack.wait_text("client.saw"), "ok\n");
    orch.assert_before("web.srv: ready", "client.w: started");
    orch.signal(Signal::SIGTERM);
    orch.assert_exit(0);
}

#[test]
fn log_probe_waits_for_a_matching_line() {
    let stack = Stack::new(
        r#"
services:
  db:
    commands:
      server:
        command: echo booting; sleep 0.3; echo "listening on 5432"; exec sleep 1000
        ready: { log: '^listening on \d+$' }
  api:
    depends_on: [db]
    commands:
      web:
        command: touch api.ran; exec sleep 1000
"#,
    );
    let mut orch = stack.up(&[]);
    stack.wait_file("api.ran");
    orch.assert_before("| booting", "db.server: ready");
    orch.assert_before("| listening on 5432", "db.server: ready");
    orch.assert_before("db.server: ready", "api.web: started");
    orch.signal(Signal::SIGTERM);
    orch.assert_exit(0);
}

#[test]
fn console_prefixes_every_line_and_has_no_colour_off_a_terminal() {
    let stack = Stack::new(
        r"
services:
  db:
    commands:
      server:
        command: echo to stdout; echo to stderr >&2; printf 'no newline at the end'
        when_to_run: once
  api:
    commands:
      web:
        command: echo from api
        when_to_run: once
",
    );
    // No NO_COLOR here: a console that is not a terminal gets no colour anyway.
    let mut command = stack.command();
    command.env_remove("NO_COLOR").args(["up", "stack.yaml"]);
    let mut orch = common::run::Orch::spawn(command, stack.marker(), true);
    orch.assert_exit(0);
    let lines = orch.lines();
    for expected in [
        "db.server | to stdout",
        "db.server | to stderr",
        "db.server | no newline at the end",
        "api.web   | from api",
        "orch      | db.server: completed",
    ] {
        assert!(
            lines.iter().any(|l| l == expected),
            "no line `{expected}` in:\n{}",
            orch.console()
        );
    }
    assert!(
        !lines.iter().any(|l| l.contains('\x1b')),
        "escape codes on a console that is not a terminal:\n{}",
        orch.console()
    );
}
