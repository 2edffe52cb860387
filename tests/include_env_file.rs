//! `include` and `env_file`: stacks made of several files, and the
//! diagnostics that point into each of them.

mod common;

use common::{stderr_of as stderr, stdout_of as stdout, Project};
use orch::model::Stack;

/// `orch check` fails with exit code 2 and nothing on stdout; its stderr.
fn check_fails(project: &Project) -> String {
    stderr(&project.orch().arg("check").assert().code(2).stdout(""))
}

/// A stack file including `infra/db.yaml`, which includes `cache.yaml` next to it.
fn layered() -> Project {
    let project = Project::with_stack(
        "\
include: [infra/db.yaml]
log_dir: logs
env: { MODE: dev }
services:
  api:
    depends_on: [db, cache]
    commands:
      web: { command: \"serve ${DATABASE_URL} ${REDIS_URL}\", port: auto }
    provides:
      API_URL: http://127.0.0.1:${web.port}
",
    );
    project.write(
        "infra/db.yaml",
        "\
include: [cache.yaml]
port_range: 9000-9009
log_dir: ignored
env: { MODE: included, DB_NAME: shop }
services:
  db:
    commands:
      pg: { command: \"postgres -p ${port}\", port: auto }
    provides:
      DATABASE_URL: postgres://127.0.0.1:${pg.port}/${DB_NAME}
",
    );
    project.write(
        "infra/cache.yaml",
        "\
services:
  cache:
    commands:
      redis: { command: redis-server, port: auto }
    provides:
      REDIS_URL: redis://127.0.0.1:${redis.port}
",
    );
    project
}

#[test]
fn included_files_merge_into_one_stack() {
    let project = layered();
    let out = project.orch().arg("check").assert().success();
    assert_eq!(
        stdout(&out),
        "stack: ok, 3 services, 3 members, 3 locators, 2 start waves\n"
    );
    // Included services come first, depth first; each file's port_range
    // applies to its services, and an included file without one takes the
    // range of the file that includes it.
    let out = project
        .orch()
        .args(["env", "api", "--all"])
        .assert()
        .success();
    assert_eq!(
        stdout(&out),
        "MODE=dev\nDB_NAME=shop\nDATABASE_URL=postgres://127.0.0.1:9001/shop\nREDIS_URL=redis://127.0.0.1:9000\n"
    );
    let out = project
        .orch()
        .args(["graph", "--format", "json"])
        .assert()
        .success();
    let graph: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(graph["order"], serde_json::json!(["cache", "db", "api"]));

    let stack = Stack::load(&project.path().join("stack.yaml")).expect("valid");
    let dir = std::fs::canonicalize(project.path()).expect("the folder exists");
    // log_dir is the including file's; relative paths of an included file
    // are relative to its own folder.
    assert_eq!(stack.log_dir, dir.join("logs"));
    let db = &stack.services[stack.service_id("db").expect("db")];
    assert_eq!(db.commands[0].instances[0].working_dir, dir.join("infra"));
    let api = &stack.services[stack.service_id("api").expect("api")];
    assert_eq!(api.commands[0].instances[0].working_dir, dir);
    assert_eq!(api.commands[0].instances[0].port, Some(8300));
}

#[test]
fn a_file_included_twice_is_read_once() {
    let project = Project::with_stack(
        "include: [a.yaml, b.yaml]\nservices:\n  top:\n    depends_on: [a, b]\n",
    );
    project.write(
        "a.yaml",
        "include: [common.yaml]\nservices:\n  a:\n    depends_on: [common]\n",
    );
    project.write(
        "b.yaml",
        "include: [common.yaml]\nservices:\n  b:\n    depends_on: [common]\n",
    );
    project.write(
        "common.yaml",
        "services:\n  common:\n    commands: { c: { command: c } }\n",
    );
    let out = project.orch().arg("check").assert().success();
    assert_eq!(
        stdout(&out),
        "stack: ok, 4 services, 1 member, 0 locators, 3 start waves\n"
    );
}

#[test]
fn an_include_cycle_names_every_file_and_points_at_each_include() {
    let project = Project::with_stack(
        "include: [one.yaml]\nservices:\n  a:\n    commands: { c: { command: c } }\n",
    );
    project.write("one.yaml", "include: [sub/two.yaml]\n");
    project.write(
        "sub/two.yaml",
        "services: {}\ninclude:\n  - ../stack.yaml\n",
    );
    let err = check_fails(&project);
    assert!(
        err.contains("include cycle: stack.yaml -> one.yaml -> sub/two.yaml -> stack.yaml"),
        "{err}"
    );
    for (header, label) in [
        (",-[stack.yaml:1:11]", "includes one.yaml"),
        (",-[one.yaml:1:11]", "includes sub/two.yaml"),
        (",-[sub/two.yaml:3:5]", "includes stack.yaml"),
    ] {
        assert!(err.contains(header), "{header}: {err}");
        assert!(err.contains(label), "{label}: {err}");
    }
    assert!(err.contains("remove one of these"), "{err}");
}

#[test]
fn a_missing_included_file_is_named_where_it_is_included() {
    let project = Project::with_stack(
        "include:\n  - db.yaml\nservices:\n  a:\n    commands: { c: { command: c } }\n",
    );
    let err = check_fails(&project);
    assert!(
        err.contains("cannot read the included file db.yaml: No such file"),
        "{err}"
    );
    assert!(err.contains(",-[stack.yaml:2:5]"), "{err}");
}

#[test]
fn a_service_defined_in_two_files_names_both() {
    let project = Project::with_stack(
        "include: [db.yaml]\nservices:\n  db:\n    commands: { c: { command: c } }\n",
    );
    project.write(
        "db.yaml",
        "services:\n  db:\n    commands: { pg: { command: pg } }\n",
    );
    let err = check_fails(&project);
    assert!(
        err.contains("service `db` is defined twice, in db.yaml and in stack.yaml"),
        "{err}"
    );
    assert!(err.contains(",-[db.yaml:2:3]"), "{err}");
    assert!(err.contains("first defined here"), "{err}");
    assert!(err.contains(",-[stack.yaml:3:3]"), "{err}");
    assert!(err.contains("defined again here"), "{err}");
}

#[test]
fn a_locator_provided_in_two_files_names_both() {
    let project = Project::with_stack(
        "include: [db.yaml]\nservices:\n  api:\n    commands: { c: { command: c } }\n    provides: { URL: x }\n",
    );
    project.write(
        "db.yaml",
        "services:\n  db:\n    commands: { pg: { command: pg } }\n    provides: { URL: y }\n",
    );
    let err = check_fails(&project);
    assert!(
        err.contains("locator `URL` is provided twice, in db.yaml and in stack.yaml"),
        "{err}"
    );
    assert!(err.contains(",-[stack.yaml:5:17]"), "{err}");
    assert!(err.contains(",-[db.yaml:4:17]"), "{err}");
}

#[test]
fn problems_inside_an_included_file_point_into_it() {
    let project = Project::with_stack(
        "include: [db.yaml]\nservices:\n  api:\n    depends_on: [db]\n    commands: { c: { command: c } }\n",
    );
    project.write(
        "db.yaml",
        "services:\n  db:\n    commands:\n      pg: { command: \"pg ${NOPE}\", prot: 1 }\n",
    );
    let err = check_fails(&project);
    assert!(err.contains("unknown key `prot`"), "{err}");
    assert!(err.contains(",-[db.yaml:4:36]"), "{err}");
    // Once it reads cleanly, its templates are checked, in place too.
    project.write(
        "db.yaml",
        "services:\n  db:\n    commands:\n      pg: { command: \"pg ${NOPE}\" }\n",
    );
    let err = check_fails(&project);
    assert!(err.contains("`${NOPE}` is not defined"), "{err}");
    assert!(err.contains(",-[db.yaml:4:26]"), "{err}");
}

/// Precedence, weakest first: stack env_file, stack env, (locators),
/// service env_file, service env, command env.
#[test]
fn env_files_lie_beneath_env_at_each_level() {
    let project = Project::with_stack(
        "\
env_file: .env
env: { B: stack-env }
services:
  db:
    commands: { pg: { command: pg } }
    provides: { DB: db-locator }
  api:
    depends_on: [db]
    env_file: [api.env, { path: missing.env, required: false }]
    env: { D: service-env }
    commands:
      web: { command: web, env: { E: command-env } }
",
    );
    project.write(
        ".env",
        "# stack level\nA=stack-file\nB=stack-file\nC=stack-file\nD=stack-file\nE=stack-file\n",
    );
    project.write(
        "api.env",
        "export C=service-file\nD='service-file'\nE=\"service-file\"\n",
    );
    let out = project
        .orch()
        .args(["env", "api", "--all"])
        .assert()
        .success();
    assert_eq!(
        stdout(&out),
        "A=stack-file\nB=stack-env\nC=service-file\nD=service-env\nE=service-file\nDB=db-locator\n"
    );
    let stack = Stack::load(&project.path().join("stack.yaml")).expect("valid");
    let api = stack.service_id("api").expect("api");
    let env = stack.member_env(api, &stack.services[api].commands[0].instances[0]);
    assert_eq!(env["E"], "command-env");
    assert_eq!(env["A"], "stack-file");
}

#[test]
fn stack_env_and_templates_see_the_env_files() {
    let project = Project::with_stack(
        "env_file: .env\nenv: { URL: \"http://${HOST}:1\" }\nservices:\n  a:\n    commands: { c: { command: \"run ${HOST}\" } }\n",
    );
    project.write(".env", "HOST=example.test\n");
    let stack = Stack::load(&project.path().join("stack.yaml")).expect("valid");
    assert_eq!(stack.env["URL"], "http://example.test:1");
    assert_eq!(
        stack.services[0].commands[0].instances[0]
            .program
            .to_string(),
        "run example.test"
    );
}

#[test]
fn a_missing_env_file_is_named_where_it_is_given() {
    let project = Project::with_stack(
        "services:\n  a:\n    env_file:\n      - { path: secrets.env }\n    commands: { c: { command: c } }\n",
    );
    let err = check_fails(&project);
    assert!(
        err.contains("cannot read the env_file secrets.env: No such file"),
        "{err}"
    );
    assert!(err.contains(",-[stack.yaml:4:17]"), "{err}");
    assert!(
        err.contains("write `{ path: secrets.env, required:"),
        "{err}"
    );
}

#[test]
fn a_bad_env_file_line_points_into_the_env_file() {
    let project = Project::with_stack(
        "env_file: [config/app.env]\nservices:\n  a:\n    commands: { c: { command: c } }\n",
    );
    project.write(
        "config/app.env",
        "OK=1\nNAME='never closed\n\nURL=${UNSET_IN_TEST}\n",
    );
    let err = stderr(
        &project
            .orch()
            .arg("check")
            .env_remove("UNSET_IN_TEST")
            .assert()
            .code(2),
    );
    assert!(err.contains("this quote is never closed"), "{err}");
    assert!(err.contains(",-[config/app.env:2:6]"), "{err}");
    // An unclosed quote runs to the end of the file: nothing else is read.
    let project2 = Project::with_stack(
        "env_file: [app.env]\nservices:\n  a:\n    commands: { c: { command: c } }\n",
    );
    project2.write("app.env", "OK=1\nURL=${UNSET_IN_TEST}\n2X=3\n");
    let err = stderr(
        &project2
            .orch()
            .arg("check")
            .env_remove("UNSET_IN_TEST")
            .assert()
            .code(2),
    );
    assert!(err.contains("`UNSET_IN_TEST` is not defined"), "{err}");
    assert!(err.contains(",-[app.env:2:5]"), "{err}");
    assert!(
        err.contains("`2X` is not a valid environment variable name"),
        "{err}"
    );
    assert!(err.contains(",-[app.env:3:1]"), "{err}");
}

#[test]
fn env_file_values_use_orch_s_environment_and_defaults() {
    let project = Project::with_stack(
        "env_file: app.env\nservices:\n  a:\n    commands: { c: { command: c } }\n",
    );
    project.write(
        "app.env",
        "USER_DIR=${FROM_ORCH}/x\nLEVEL=${NOT_SET_HERE:-info}\nBOTH=$USER_DIR-$LEVEL\n",
    );
    let out = project
        .orch()
        .args(["env", "a", "--all"])
        .env("FROM_ORCH", "/srv")
        .env_remove("NOT_SET_HERE")
        .assert()
        .success();
    assert_eq!(
        stdout(&out),
        "USER_DIR=/srv/x\nLEVEL=info\nBOTH=/srv/x-info\n"
    );
}
