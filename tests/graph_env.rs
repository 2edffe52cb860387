//! `orch check`, `orch graph` and `orch env` on valid stacks, and how the
//! stack file is found.

mod common;

use std::collections::HashMap;

use common::Project;
use predicates::prelude::*;
use serde_json::{json, Value};

/// File order differs from start order on purpose: `web` comes first but
/// starts third.
const SHOP: &str = "\
name: shop
env:
  LOG_LEVEL: info
  REGION: eu
services:
  web:
    depends_on: [api, cache]
    env: { LOG_LEVEL: debug }
    commands:
      nginx: { command: nginx, port: 8080 }
  api:
    depends_on: [db]
    env: { WORKERS: \"4\" }
    commands:
      app: { command: app, port: auto, number_of_processes: 2 }
    provides:
      API_URL: http://127.0.0.1:${app.port}
  db:
    commands:
      postgres: { command: postgres, port: auto }
      initdb: { command: initdb, when_to_run: once }
    provides:
      DATABASE_URL: postgres://127.0.0.1:${postgres.port}/shop
      DATABASE_NAME: shop
  cache:
    commands:
      redis: { command: redis-server, port: 6379 }
    provides:
      REDIS_URL: redis://127.0.0.1:6379/0
  all:
    depends_on: [web]
";

fn stdout(cmd: &mut assert_cmd::Command) -> String {
    let out = cmd.assert().success();
    String::from_utf8(out.get_output().stdout.clone()).expect("stdout is UTF-8")
}

#[test]
fn check_prints_a_summary() {
    let project = Project::with_stack(SHOP);
    project
        .orch()
        .arg("check")
        .assert()
        .success()
        .stdout("shop: ok, 5 services, 6 members, 4 locators, 4 start waves\n");
}

#[test]
fn the_name_defaults_to_the_file_stem() {
    let project = Project::new();
    project.write(
        "billing.yaml",
        "services:\n  a:\n    commands:\n      x: { command: x }\n",
    );
    project
        .orch()
        .args(["check", "-f", "billing.yaml"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("billing: ok, 1 service,"));
}

#[test]
fn graph_json_contract() {
    let project = Project::with_stack(SHOP);
    let text = stdout(project.orch().args(["graph", "--format", "json"]));
    let graph: Value = serde_json::from_str(&text).expect("graph --format json prints JSON");
    assert_eq!(
        graph,
        json!({
            "services": [
                {"name": "web", "depends_on": ["api", "cache"], "commands": ["nginx"], "provides": []},
                {"name": "api", "depends_on": ["db"], "commands": ["app"], "provides": ["API_URL"]},
                {"name": "db", "depends_on": [], "commands": ["postgres", "initdb"],
                 "provides": ["DATABASE_URL", "DATABASE_NAME"]},
                {"name": "cache", "depends_on": [], "commands": ["redis"], "provides": ["REDIS_URL"]},
                {"name": "all", "depends_on": ["web"], "commands": [], "provides": []},
            ],
            "order": ["db", "cache", "api", "web", "all"],
            "edges": [
                {"from": "web", "to": "api"},
                {"from": "web", "to": "cache"},
                {"from": "api", "to": "db"},
                {"from": "all", "to": "web"},
            ],
            "waves": [["db", "cache"], ["api"], ["web"], ["all"]],
        })
    );
}

/// The invariants of the JSON graph, checked on its own terms.
#[test]
fn graph_json_waves_and_order_agree_with_the_edges() {
    let project = Project::with_stack(SHOP);
    let text = stdout(project.orch().args(["graph", "--format", "json"]));
    let graph: Value = serde_json::from_str(&text).expect("JSON");
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .expect("a list")
            .iter()
            .map(|n| n.as_str().expect("a name").to_owned())
            .collect()
    };
    let mut wave_of = HashMap::new();
    for (i, wave) in graph["waves"].as_array().expect("waves").iter().enumerate() {
        for name in names(wave) {
            assert!(wave_of.insert(name, i).is_none(), "a service in two waves");
        }
    }
    let order = names(&graph["order"]);
    let place: HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    for service in graph["services"].as_array().expect("services") {
        let name = service["name"].as_str().expect("name");
        let deps = names(&service["depends_on"]);
        let want = deps.iter().map(|d| wave_of[d] + 1).max().unwrap_or(0);
        assert_eq!(
            wave_of[name], want,
            "{name} stands right after its latest dependency"
        );
        for dep in &deps {
            assert!(
                place[dep.as_str()] < place[name],
                "{dep} starts before {name}"
            );
            assert!(
                graph["edges"]
                    .as_array()
                    .expect("edges")
                    .contains(&json!({"from": name, "to": dep})),
                "edge {name} -> {dep}"
            );
        }
    }
}

#[test]
fn graph_tree() {
    let project = Project::with_stack(SHOP);
    let text = stdout(project.orch().arg("graph"));
    insta::assert_snapshot!(text, @r"
    all (bundle)
    └── web [nginx :8080]
        ├── api [app x2 :8300,:8301] -> API_URL
        │   └── db [postgres :8302, initdb] -> DATABASE_URL, DATABASE_NAME
        └── cache [redis :6379] -> REDIS_URL
    ");
    assert_eq!(
        text,
        stdout(project.orch().args(["graph", "--format", "tree"]))
    );
}

#[test]
fn graph_dot() {
    let project = Project::with_stack(SHOP);
    insta::assert_snapshot!(stdout(project.orch().args(["graph", "--format", "dot"])), @r#"
    digraph "shop" {
      rankdir=LR;
      "web" [shape=box];
      "api" [shape=box];
      "db" [shape=box];
      "cache" [shape=box];
      "all" [shape=ellipse];
      "web" -> "api";
      "web" -> "cache";
      "api" -> "db";
      "all" -> "web";
    }
    "#);
}

#[test]
fn graph_mermaid() {
    let project = Project::with_stack(SHOP);
    insta::assert_snapshot!(stdout(project.orch().args(["graph", "--format", "mermaid"])), @r#"
    graph TD
      s_web["web"]
      s_api["api"]
      s_db["db"]
      s_cache["cache"]
      s_all["all"]
      s_web --> s_api
      s_web --> s_cache
      s_api --> s_db
      s_all --> s_web
    "#);
}

#[test]
fn env_prints_locators_in_declaration_order_fully_expanded() {
    let project = Project::with_stack(SHOP);
    project
        .orch()
        .args(["env", "db"])
        .assert()
        .success()
        .stdout("DATABASE_URL=postgres://127.0.0.1:8302/shop\nDATABASE_NAME=shop\n");
    // A service that provides nothing prints nothing.
    project
        .orch()
        .args(["env", "web"])
        .assert()
        .success()
        .stdout("");
}

#[test]
fn env_json_is_an_object_in_declaration_order() {
    let project = Project::with_stack(SHOP);
    let text = stdout(project.orch().args(["env", "db", "--format", "json"]));
    let value: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(
        value,
        json!({"DATABASE_URL": "postgres://127.0.0.1:8302/shop", "DATABASE_NAME": "shop"})
    );
    assert!(
        text.find("DATABASE_URL") < text.find("DATABASE_NAME"),
        "{text}"
    );
}

#[test]
fn env_all_is_stack_env_then_direct_locators_then_service_env() {
    let project = Project::with_stack(SHOP);
    let text = stdout(
        project
            .orch()
            .args(["env", "web", "--all"])
            .env("ORCH_TEST_OWN_VARIABLE", "leaked"),
    );
    // LOG_LEVEL keeps its place but takes the service's value; REDIS_URL and
    // API_URL come from the direct dependencies, DATABASE_URL (a dependency
    // of a dependency) does not; orch's own environment is not included.
    assert_eq!(
        text,
        "LOG_LEVEL=debug\nREGION=eu\nAPI_URL=http://127.0.0.1:8300\nREDIS_URL=redis://127.0.0.1:6379/0\n"
    );
}

/// Values with every character a shell treats specially.
const AWKWARD: &str = r#"
services:
  a:
    commands:
      x: { command: x }
    provides:
      QUOTES: 'it''s "quoted"'
      DOLLARS: "$$HOME and $${PATH} and `id`"
      SPACES: "  two  spaces  "
      BACKSLASH: 'C:\dir\n'
      EMPTY: ""
      PLAIN: plain-word_1.2
"#;

#[test]
fn env_export_survives_a_shell() {
    let project = Project::with_stack(AWKWARD);
    let script = stdout(project.orch().args(["env", "a", "--format", "export"]));
    assert!(script.lines().all(|l| l.starts_with("export ")), "{script}");
    assert!(script.contains("export PLAIN=plain-word_1.2\n"), "{script}");
    project.write("env.sh", &script);
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(
            ". ./env.sh && for v in QUOTES DOLLARS SPACES BACKSLASH EMPTY PLAIN; do \
             eval \"printf '%s|' \\\"\\$$v\\\"\"; done",
        )
        .current_dir(project.path())
        .env("HOME", "/should/not/appear")
        .output()
        .expect("run sh");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).expect("UTF-8"),
        r#"it's "quoted"|$HOME and ${PATH} and `id`|  two  spaces  |C:\dir\n||plain-word_1.2|"#
    );
}

#[test]
fn env_of_an_unknown_service_suggests_one() {
    let project = Project::with_stack(SHOP);
    project
        .orch()
        .args(["env", "apii"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains(
            "no service `apii` in stack `shop`",
        ))
        .stderr(predicate::str::contains("did you mean `api`?"));
    project
        .orch()
        .args(["env", "zzzzzz"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "the services of `shop` are: web, api, db, cache, all",
        ));
}

const ONE: &str = "name: one\nservices:\n  a:\n    commands:\n      x: { command: x }\n";
const TWO: &str = "name: two\nservices:\n  a:\n    commands:\n      x: { command: x }\n";

#[test]
fn the_file_is_given_before_or_after_the_subcommand() {
    let project = Project::new();
    project.write("one.yaml", ONE);
    project.write("sub/two.yaml", TWO);
    project
        .orch()
        .args(["-f", "one.yaml", "check"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("one: ok"));
    project
        .orch()
        .args(["check", "-f", "sub/two.yaml"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("two: ok"));
    project
        .orch()
        .args(["graph", "--file", "one.yaml", "--format", "json"])
        .assert()
        .success()
        .stdout(predicate::str::contains("\"order\""));
    project
        .orch()
        .args(["--file", "one.yaml", "env", "a"])
        .assert()
        .success();
    // After the subcommand wins over before it.
    project
        .orch()
        .args(["-f", "one.yaml", "check", "-f", "sub/two.yaml"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("two: ok"));
}

#[test]
fn the_file_comes_from_orch_file_or_defaults_to_stack_yaml() {
    let project = Project::new();
    project.write("one.yaml", ONE);
    project.write("stack.yaml", TWO);
    project
        .orch()
        .arg("check")
        .assert()
        .success()
        .stdout(predicate::str::starts_with("two: ok"));
    project
        .orch()
        .arg("check")
        .env("ORCH_FILE", "one.yaml")
        .assert()
        .success()
        .stdout(predicate::str::starts_with("one: ok"));
    // -f beats ORCH_FILE, before the subcommand and after it.
    for args in [["-f", "stack.yaml", "check"], ["check", "-f", "stack.yaml"]] {
        project
            .orch()
            .args(args)
            .env("ORCH_FILE", "one.yaml")
            .assert()
            .success()
            .stdout(predicate::str::starts_with("two: ok"));
    }
}

#[test]
fn a_missing_file_names_the_file() {
    let project = Project::new();
    project
        .orch()
        .args(["check", "-f", "nowhere.yaml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "cannot read the stack file nowhere.yaml",
        ));
}
