//! `orch import`, `orch init`, `orch completions` and `orch man`.

mod common;

use std::path::Path;

use common::{stderr_of as stderr, stdout_of as stdout, Project};

/// `orch check` accepts `text` as `stack.yaml` in `project`.
fn accepted(project: &Project, text: &str) -> String {
    project.write("stack.yaml", text);
    stdout(&project.orch().arg("check").assert().success())
}

#[test]
fn import_procfile() {
    let project = Project::new();
    project.write(
        "Procfile",
        "# processes\nweb: bundle exec puma -p $PORT\nworker: sidekiq -q ${QUEUE} -c $$\nrelease.1: rake db:migrate\nnonsense\n",
    );
    let out = project
        .orch()
        .args(["import", "procfile", "Procfile"])
        .assert()
        .success();
    let stack = stdout(&out);
    assert_eq!(
        stack,
        "\
# Made by `orch import procfile Procfile`.
# Check it with `orch check`; relative paths are relative to this file's folder.
services:
  web:
    commands:
      web:
        command: bundle exec puma -p $PORT
        port: auto
  worker:
    commands:
      worker:
        command: \"sidekiq -q $${QUEUE} -c $$$$\"
  release-1:
    commands:
      release-1:
        command: rake db:migrate
"
    );
    assert_eq!(
        stderr(&out),
        "warning: line 4: `release.1` is named `release-1`\n\
         warning: line 5: not `name: command`, left out: nonsense\n"
    );
    assert_eq!(
        accepted(&project, &stack),
        "stack: ok, 3 services, 3 members, 0 locators, 1 start wave\n"
    );
    // The shell, not orch, expands what the Procfile's commands use.
    let loaded = orch::model::Stack::load(&project.path().join("stack.yaml")).expect("valid");
    assert_eq!(
        loaded.services[1].commands[0].instances[0]
            .program
            .to_string(),
        "sidekiq -q ${QUEUE} -c $$"
    );
}

#[test]
fn import_compose() {
    let project = Project::new();
    let compose = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/compose.yaml");
    std::fs::copy(&compose, project.path().join("compose.yaml")).expect("copy the compose file");
    project.write(".env", "TOKEN=x\n");
    let out = project
        .orch()
        .args(["import", "compose", "compose.yaml"])
        .assert()
        .success();
    let stack = stdout(&out);
    assert_eq!(
        stack,
        r#"# Made by `orch import compose compose.yaml`.
# Check it with `orch check`; relative paths are relative to this file's folder.
services:
  migrate:
    commands:
      migrate:
        command: [python3, migrate.py]
        when_to_run: once
  api:
    depends_on: [migrate]
    profiles: [web]
    env_file:
      - ".env"
      - { path: ".env.local", required: false }
    env:
      LOG: "debug"
    commands:
      api:
        command: [python3, app.py, "--port", "8000"]
        port: 8000
        working_dir: "./api"
        respawn_count: 1000000  # restart: unless-stopped
        ready:
          command: [curl, "-f", http://localhost:8000/health]
          interval: 5s
          timeout: 25s
  worker:
    depends_on: [api]
    profiles: [web]
    env:
      QUEUE: "default"
    commands:
      worker:
        command: "celery -A app worker --hostname \"w@%h\" ${EXTRA:-}"
        respawn_count: 0  # restart: no
"#
    );
    let warnings = stderr(&out);
    for warning in [
        "warning: top-level `volumes` cannot carry over",
        "warning: top-level `networks` cannot carry over",
        "warning: `db` runs the image `postgres:16` and has no command or entrypoint: left out",
        "warning: `migrate`: `build` cannot carry over",
        "warning: `api`: the image `python:3` is not used",
        "warning: `api`: orch gives a command one port; `9000:9000` is left out",
        "warning: `api`: `networks` cannot carry over",
        "warning: `api` depends on `db`, which was left out: the dependency is dropped",
    ] {
        assert!(warnings.contains(warning), "{warning}\n{warnings}");
    }
    assert_eq!(warnings.lines().count(), 8, "{warnings}");
    assert_eq!(
        accepted(&project, &stack),
        "stack: ok, 3 services, 3 members, 0 locators, 3 start waves\n  profile web: api, worker\n"
    );
}

#[test]
fn import_of_what_is_not_there_or_not_compose() {
    let project = Project::new();
    let out = project
        .orch()
        .args(["import", "procfile", "Procfile"])
        .assert()
        .code(2)
        .stdout("");
    assert!(
        stderr(&out).contains("cannot read Procfile"),
        "{}",
        stderr(&out)
    );
    project.write("compose.yaml", "name: x\n");
    let out = project
        .orch()
        .args(["import", "compose", "compose.yaml"])
        .assert()
        .code(2)
        .stdout("");
    assert!(
        stderr(&out).contains("compose.yaml: a compose file needs `services:`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn init_writes_a_starter_that_check_accepts_and_never_overwrites() {
    let project = Project::new();
    let out = project.orch().arg("init").assert().success();
    assert_eq!(
        stdout(&out),
        "wrote stack.yaml: check it with `orch check -f stack.yaml`, run it with `orch up stack.yaml`\n"
    );
    let text = std::fs::read_to_string(project.path().join("stack.yaml")).expect("written");
    assert_eq!(text, orch::init::STARTER);
    assert!(
        text.lines()
            .filter(|l| l.trim_start().starts_with('#'))
            .count()
            >= 10
    );
    let out = project.orch().arg("check").assert().success();
    assert_eq!(
        stdout(&out),
        "stack: ok, 2 services, 2 members, 1 locator, 2 start waves\n"
    );
    // A service, a dependency, a locator and a readiness probe.
    let stack = orch::model::Stack::load(&project.path().join("stack.yaml")).expect("valid");
    assert_eq!(stack.services[1].depends_on, [0]);
    assert_eq!(stack.services[0].provides.len(), 1);
    assert!(matches!(
        stack.services[0].commands[0].instances[0].ready.check,
        orch::model::Check::Http { .. }
    ));

    std::fs::write(project.path().join("stack.yaml"), "mine\n").expect("write");
    let out = project.orch().arg("init").assert().code(1).stdout("");
    assert!(
        stderr(&out).contains("stack.yaml already exists; orch init does not overwrite it"),
        "{}",
        stderr(&out)
    );
    let kept = std::fs::read_to_string(project.path().join("stack.yaml")).expect("read");
    assert_eq!(kept, "mine\n");

    project
        .orch()
        .args(["init", "-f", "other.yaml"])
        .assert()
        .success();
    assert!(project.path().join("other.yaml").exists());
}

#[test]
fn the_starter_runs() {
    // A port nothing holds now, rather than the default range other stacks
    // on this machine may use.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let text = format!("port_range: {port}-{port}\n{}", orch::init::STARTER);
    let stack = common::run::Stack::new(&text);
    let mut orch = stack.up(&[]);
    orch.wait_line(&format!(
        "client.hello | web is up at http://127.0.0.1:{port}/"
    ));
    orch.signal(nix::sys::signal::Signal::SIGTERM);
    orch.assert_exit(0);
}

#[test]
fn completions_for_every_shell() {
    let project = Project::new();
    for (shell, marker) in [
        ("bash", "complete -F _orch"),
        ("zsh", "#compdef orch"),
        ("fish", "complete -c orch"),
        ("elvish", "edit:completion:arg-completer[orch]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let out = project
            .orch()
            .args(["completions", shell])
            .assert()
            .success();
        let script = stdout(&out);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(script.contains("import"), "{shell} knows the subcommands");
    }
    project
        .orch()
        .args(["completions", "tcsh"])
        .assert()
        .code(2);
}

#[test]
fn man_page() {
    let project = Project::new();
    let out = project.orch().arg("man").assert().success();
    let page = stdout(&out);
    assert!(page.starts_with(".ie"), "{page}");
    assert!(page.contains(".TH orch 1"), "{page}");
    assert!(page.contains("orch\\-up"), "{page}");
}
