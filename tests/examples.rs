//! The stacks in examples/ are valid, and say what their comments say.

mod common;

use std::path::{Path, PathBuf};

use common::Project;
use orch::model::Stack;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

#[test]
fn examples_pass_check() {
    let cases = [
        (
            "minimal.yaml",
            "minimal: ok, 1 service, 1 member, 0 locators, 1 start wave\n",
        ),
        (
            "docgen.yaml",
            "docgen: ok, 4 services, 4 members, 3 locators, 3 start waves\n",
        ),
        (
            "all-fields.yaml",
            "shop: ok, 3 services, 6 members, 3 locators, 3 start waves\n",
        ),
        (
            "composed/stack.yaml",
            "composed: ok, 3 services, 3 members, 2 locators, 3 start waves\n  profile debug: inspector\n",
        ),
        (
            "composed/db.yaml",
            "db: ok, 1 service, 1 member, 1 locator, 1 start wave\n",
        ),
    ];
    let project = Project::new();
    for (file, summary) in cases {
        project
            .orch()
            .arg("check")
            .arg("-f")
            .arg(example(file))
            .env_remove("DOCGEN_DATA")
            .env_remove("REGION")
            .env_remove("DB_NAME")
            .assert()
            .success()
            .stdout(summary);
    }
}

#[test]
fn docgen_wires_workers_to_the_database_and_the_api() {
    let project = Project::new();
    project
        .orch()
        .args(["env", "workers", "--all", "-f"])
        .arg(example("docgen.yaml"))
        .env_remove("DOCGEN_DATA")
        .assert()
        .success()
        .stdout(
            "DOCGEN_DATA=.orch/docgen\nPYTHONUNBUFFERED=1\n\
             DATABASE_URL=tcp://127.0.0.1:8300\nAPI_URL=http://127.0.0.1:8301\n\
             DOCS_DIR=.orch/docgen/docs\nEVERY=2\n",
        );
    let stack = Stack::load(&example("docgen.yaml")).expect("docgen is valid");
    let names = |ids: &[usize]| -> Vec<&str> {
        ids.iter()
            .map(|&id| stack.services[id].name.as_str())
            .collect()
    };
    let waves: Vec<Vec<&str>> = stack.dag.waves().iter().map(|w| names(w)).collect();
    assert_eq!(waves, vec![vec!["db", "api"], vec!["workers"], vec!["all"]]);
    let workers = &stack.services[stack.service_id("workers").expect("workers")];
    assert_eq!(workers.commands[0].instances.len(), 2);
}

#[test]
fn all_fields_sets_every_field_of_a_command() {
    let stack = Stack::load(&example("all-fields.yaml")).expect("all-fields is valid");
    let db = &stack.services[0];
    let postgres = &db.commands[0];
    assert_eq!(postgres.user.as_deref(), Some("postgres"));
    assert_eq!(postgres.group.as_deref(), Some("postgres"));
    assert_eq!(postgres.memory_limit, Some(512 << 20));
    assert_eq!(postgres.respawn.count, 5);
    assert_eq!(postgres.stop_signal, nix::sys::signal::Signal::SIGINT);
    assert_eq!(postgres.system_packages, ["postgres", "pg_isready"]);
    let instance = &postgres.instances[0];
    assert_eq!(instance.env["PGTZ"], "UTC");
    assert!(instance.working_dir.ends_with("examples/db"));
    assert!(instance.monitor.is_some());
    assert_eq!(
        db.provides["DATABASE_URL"].loopback(),
        format!(
            "postgres://127.0.0.1:{}/shop",
            instance.port.expect("an auto port")
        )
    );
    assert!(stack.services[2].is_bundle());
}

#[test]
fn composed_merges_the_included_file_and_the_env_files() {
    let project = Project::new();
    project
        .orch()
        .args(["env", "api", "--all", "-f"])
        .arg(example("composed/stack.yaml"))
        .env_remove("USER")
        .env_remove("DB_NAME")
        .assert()
        .success()
        .stdout(
            "LOG_LEVEL=info\nDB_NAME=shop\nPYTHONUNBUFFERED=1\n\
             DATABASE_URL=tcp://127.0.0.1:8400/shop\nWORKERS=2\nGREETING=hello, stranger\n",
        );
    let stack = Stack::load(&example("composed/stack.yaml")).expect("composed is valid");
    let none: &[String] = &[];
    let runs = |profiles: &[String]| -> Vec<String> {
        let ids = stack.select(none, profiles).expect("a valid selection");
        ids.iter()
            .map(|&i| stack.services[i].name.clone())
            .collect()
    };
    assert_eq!(runs(&[]), ["db", "api"]);
    assert_eq!(runs(&["debug".to_owned()]), ["db", "api", "inspector"]);
}
