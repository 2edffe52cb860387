//! Auto ports and templates: what each command and locator expands to.

mod common;

use common::{stack, Project};
use std::borrow::Cow;

use orch::model::{Check, Endpoint, Program, Stack, Text};

/// The ports of every instance of `service.command`.
fn ports(stack: &Stack, service: &str, command: &str) -> Vec<Option<u16>> {
    let sid = stack.service_id(service).expect("the service exists");
    stack.services[sid]
        .commands
        .iter()
        .find(|c| c.name == command)
        .expect("the command exists")
        .instances
        .iter()
        .map(|i| i.port)
        .collect()
}

fn program(stack: &Stack, service: &str, command: &str, instance: usize) -> Program {
    let sid = stack.service_id(service).expect("the service exists");
    let command = stack.services[sid]
        .commands
        .iter()
        .find(|c| c.name == command)
        .expect("the command exists");
    command.instances[instance].program.clone()
}

fn shell(text: &str) -> Program {
    Program::Shell(text.to_owned())
}

const PORTS: &str = "\
port_range: 9000-9010
services:
  a:
    commands:
      x: { command: x, port: auto, number_of_processes: 2 }
      y: { command: y, port: 9001 }
      z: { command: z }
  b:
    commands:
      w: { command: w, port: auto }
      v: { command: v, port: 9003 }
      u: { command: u, port: 80 }
      t: { command: t, port: auto, number_of_processes: 3 }
";

#[test]
fn auto_ports_take_the_lowest_free_port_in_file_order() {
    let s = stack(PORTS);
    // 9001 and 9003 are declared explicitly (9003 further down the file) and
    // are never handed out; each process of `x` and `t` gets its own port.
    assert_eq!(ports(&s, "a", "x"), vec![Some(9000), Some(9002)]);
    assert_eq!(ports(&s, "a", "y"), vec![Some(9001)]);
    assert_eq!(ports(&s, "a", "z"), vec![None]);
    assert_eq!(ports(&s, "b", "w"), vec![Some(9004)]);
    assert_eq!(ports(&s, "b", "v"), vec![Some(9003)]);
    assert_eq!(ports(&s, "b", "u"), vec![Some(80)]);
    assert_eq!(
        ports(&s, "b", "t"),
        vec![Some(9005), Some(9006), Some(9007)]
    );
}

#[test]
fn auto_ports_are_the_same_every_time() {
    let first = stack(PORTS);
    for _ in 0..3 {
        let again = stack(PORTS);
        let all = |s: &Stack| -> Vec<Option<u16>> { s.members().map(|(_, _, i)| i.port).collect() };
        assert_eq!(all(&first), all(&again));
    }
}

#[test]
fn the_default_port_range_starts_at_8300() {
    let s = stack("services:\n  a:\n    commands:\n      x: { command: x, port: auto }\n      y: { command: y, port: 8300 }\n");
    assert_eq!(ports(&s, "a", "x"), vec![Some(8301)]);
}

#[test]
fn the_whole_range_can_be_used() {
    let text = "port_range: 9000-9001\nservices:\n  a:\n    commands:\n      x: { command: x, port: auto, number_of_processes: 2 }\n";
    assert_eq!(ports(&stack(text), "a", "x"), vec![Some(9000), Some(9001)]);
}

#[test]
fn each_instance_expands_its_own_port() {
    let text = "\
services:
  api:
    commands:
      app:
        command: serve --port ${port}
        port: auto
        number_of_processes: 2
        env: { LISTEN: \"127.0.0.1:${port}\" }
";
    let s = stack(text);
    let sid = s.service_id("api").unwrap();
    let instances = &s.services[sid].commands[0].instances;
    assert_eq!(instances[0].program, shell("serve --port 8300"));
    assert_eq!(instances[1].program, shell("serve --port 8301"));
    assert_eq!(instances[1].env["LISTEN"], "127.0.0.1:8301");
    // Without a `ready`, a command with a port is ready when it accepts TCP.
    assert_eq!(
        instances[1].ready.check,
        Check::Tcp {
            host: None,
            port: 8301
        }
    );
    let env = s.member_env(sid, &instances[1]);
    assert_eq!(env["PORT"], "8301");
    assert_eq!(env["ORCH_SERVICE"], "api");
    assert_eq!(env["ORCH_INSTANCE"], "1");
}

#[test]
fn command_port_references() {
    let text = "\
services:
  api:
    commands:
      app: { command: app, port: auto, number_of_processes: 3 }
      proxy: { command: \"proxy --to ${app.port} --all '${app.ports}'\" }
    provides:
      API_URL: http://[::1]:${app.port}
      API_PORTS: ${app.ports}
";
    let s = stack(text);
    assert_eq!(
        program(&s, "api", "proxy", 0),
        shell("proxy --to 8300 --all '8300 8301 8302'")
    );
    let provides = &s.services[0].provides;
    assert_eq!(provides["API_URL"], "http://[::1]:8300");
    assert_eq!(provides["API_PORTS"], "8300 8301 8302");
}

#[test]
fn argv_commands_expand_each_argument() {
    let text = "services:\n  api:\n    commands:\n      web: { command: [python3, -m, http.server, \"${port}\", --bind, \"::1\"], port: auto }\n";
    assert_eq!(
        program(&stack(text), "api", "web", 0),
        Program::Argv(
            ["python3", "-m", "http.server", "8300", "--bind", "::1"]
                .map(String::from)
                .to_vec()
        )
    );
}

#[test]
fn dollars_are_left_for_the_shell() {
    let text = "services:\n  a:\n    commands:\n      x: { command: 'echo $$HOME $HOME $${X} $(date) 5$' }\n";
    assert_eq!(
        program(&stack(text), "a", "x", 0),
        shell("echo $HOME $HOME ${X} $(date) 5$")
    );
}

#[test]
fn defaults_apply_when_a_variable_is_unset() {
    let text = "\
env:
  REGION: ${ORCH_TEST_REGION_UNSET:-local}
  EMPTY_DEFAULT: ${ORCH_TEST_OTHER_UNSET:-}
  WITH_COLON: ${ORCH_TEST_OTHER_UNSET:-a:b}
services:
  a:
    commands:
      x: { command: \"run --region ${REGION} --zone ${ORCH_TEST_ZONE_UNSET:-z1}\" }
";
    let s = stack(text);
    assert_eq!(s.env["REGION"], "local");
    assert_eq!(s.env["EMPTY_DEFAULT"], "");
    assert_eq!(s.env["WITH_COLON"], "a:b");
    assert_eq!(
        program(&s, "a", "x", 0),
        shell("run --region local --zone z1")
    );
}

#[test]
fn defaults_apply_when_a_variable_is_empty() {
    // As in shells and docker compose: `${VAR:-default}` gives the default
    // when VAR is unset or empty; `${VAR}` gives what VAR holds, empty or not.
    let project = Project::with_stack(
        "\
env:
  EMPTY_HERE: \"\"
  FROM_STACK: ${EMPTY_HERE:-stack-default}
services:
  a:
    commands:
      x: { command: x }
    provides:
      REGION: ${ORCH_TEST_REGION:-local}
      RAW: \"[${ORCH_TEST_REGION}]\"
      STACK: ${FROM_STACK}
",
    );
    project
        .orch()
        .args(["env", "a"])
        .env("ORCH_TEST_REGION", "")
        .assert()
        .success()
        .stdout("REGION=local\nRAW=[]\nSTACK=stack-default\n");
    project
        .orch()
        .args(["env", "a"])
        .env("ORCH_TEST_REGION", "eu")
        .assert()
        .success()
        .stdout("REGION=eu\nRAW=[eu]\nSTACK=stack-default\n");
}

#[test]
fn dollars_are_unescaped_inside_a_default() {
    let text = "\
env:
  PRICE: ${ORCH_TEST_PRICE_UNSET:-$$5}
services:
  a:
    commands:
      x: { command: \"echo ${ORCH_TEST_UNSET:-$$HOME costs $$5} $$$$\" }
";
    let s = stack(text);
    assert_eq!(s.env["PRICE"], "$5");
    assert_eq!(program(&s, "a", "x", 0), shell("echo $HOME costs $5 $$"));
}

#[test]
fn variables_come_from_orchs_environment() {
    let project = Project::with_stack(
        "\
env:
  REGION: ${ORCH_TEST_REGION:-local}
services:
  a:
    commands:
      x: { command: x }
    provides:
      A_URL: http://${ORCH_TEST_HOST}/${REGION}
",
    );
    project
        .orch()
        .args(["env", "a"])
        .env("ORCH_TEST_REGION", "eu")
        .env("ORCH_TEST_HOST", "example.org")
        .assert()
        .success()
        .stdout("A_URL=http://example.org/eu\n");
    project
        .orch()
        .args(["env", "a"])
        .env("ORCH_TEST_HOST", "example.org")
        .assert()
        .success()
        .stdout("A_URL=http://example.org/local\n");
    // Unset and without a default: an error, exit 2.
    project
        .orch()
        .args(["env", "a"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "`${ORCH_TEST_HOST}` is not defined",
        ));
}

#[test]
fn the_stack_env_wins_over_orchs_environment() {
    let project = Project::with_stack(
        "env:\n  ORCH_TEST_NAME: from-stack\nservices:\n  a:\n    commands:\n      x: { command: x }\n    provides:\n      A: ${ORCH_TEST_NAME}\n",
    );
    project
        .orch()
        .args(["env", "a"])
        .env("ORCH_TEST_NAME", "from-orch")
        .assert()
        .success()
        .stdout("A=from-stack\n");
}

#[test]
fn stack_env_entries_can_use_those_above_them() {
    let text = "env:\n  BASE: /srv\n  DATA: ${BASE}/data\nservices:\n  a:\n    commands:\n      x: { command: x }\n";
    assert_eq!(stack(text).env["DATA"], "/srv/data");
}

const CHAIN: &str = "\
services:
  db:
    commands:
      pg: { command: pg, port: auto }
    provides:
      DB_HOST: 127.0.0.1
      DATABASE_URL: postgres://${DB_HOST}:${pg.port}/app
  api:
    depends_on: [db]
    env: { DSN: \"${DATABASE_URL}?sslmode=disable\" }
    commands:
      app: { command: \"app --db '${DATABASE_URL}'\", port: auto }
    provides:
      API_URL: http://127.0.0.1:${app.port}
      API_DB: ${DATABASE_URL}
  web:
    depends_on: [api]
    commands:
      proxy: { command: \"proxy ${API_URL}\" }
";

#[test]
fn locators_expand_in_the_services_that_depend_on_them() {
    let s = stack(CHAIN);
    assert_eq!(
        s.services[0].provides["DATABASE_URL"],
        "postgres://127.0.0.1:8300/app"
    );
    // `db` comes first in the file, and its locators reach `api`'s commands,
    // `env` and `provides`.
    assert_eq!(
        program(&s, "api", "app", 0),
        shell("app --db 'postgres://127.0.0.1:8300/app'")
    );
    assert_eq!(
        s.services[1].env["DSN"],
        "postgres://127.0.0.1:8300/app?sslmode=disable"
    );
    assert_eq!(
        s.services[1].provides["API_DB"],
        "postgres://127.0.0.1:8300/app"
    );
    assert_eq!(
        program(&s, "web", "proxy", 0),
        shell("proxy http://127.0.0.1:8301")
    );
}

#[test]
fn locators_expand_when_the_dependency_comes_later_in_the_file() {
    let text = "\
services:
  api:
    depends_on: [db]
    commands:
      app: { command: \"app ${DATABASE_URL}\" }
  db:
    commands:
      pg: { command: pg, port: auto }
    provides:
      DATABASE_URL: postgres://[::1]:${pg.port}/app
";
    assert_eq!(
        program(&stack(text), "api", "app", 0),
        shell("app postgres://[::1]:8300/app")
    );
}

#[test]
fn only_direct_dependencies_are_visible() {
    // `web` depends on `api`, not on `db`: DATABASE_URL is not in its reach.
    let text = CHAIN.replace("proxy ${API_URL}", "proxy ${DATABASE_URL}");
    let p = common::problem(&text);
    assert_eq!(
        p.message,
        "`DATABASE_URL` is provided by service `db`, which `web` does not depend on"
    );
}

#[test]
fn probes_and_working_dirs_expand_too() {
    let text = "\
services:
  api:
    commands:
      app:
        command: app
        port: auto
        working_dir: ./srv/${port}
        ready: { http: \"http://127.0.0.1:${port}/health\" }
        monitor: { command: \"check ${port}\", interval: 5s }
";
    let s = stack(text);
    let instance = &s.services[0].commands[0].instances[0];
    assert_eq!(
        instance.ready.check,
        Check::Http {
            url: "http://127.0.0.1:8300/health".into()
        }
    );
    assert_eq!(
        instance.monitor.as_ref().map(|m| m.program.clone()),
        Some(shell("check 8300"))
    );
    assert_eq!(
        instance.working_dir,
        std::path::Path::new("/stacks/srv/8300")
    );
}

#[test]
fn orch_env_and_the_model_agree_on_ports() {
    let project = Project::with_stack(CHAIN);
    let from_model = stack(CHAIN).services[1].provides["API_URL"].loopback();
    project
        .orch()
        .args(["env", "api"])
        .assert()
        .success()
        .stdout(format!(
            "API_URL={from_model}\nAPI_DB=postgres://127.0.0.1:8300/app\n"
        ));
}

/// `${NAME.host}` and `${host}`: 127.0.0.1 for `orch up`, an open host for
/// other engines, carried through the locators that use it.
const HOSTS: &str = "\
services:
  db:
    commands:
      pg: { command: \"postgres -h ${host} -p ${port}\", port: auto }
    provides:
      DATABASE_URL: postgres://${pg.host}:${pg.port}/app
  api:
    depends_on: [db]
    env: { DSN: \"${DATABASE_URL}?sslmode=disable\" }
    commands:
      app: { command: [app, --db, \"${DATABASE_URL}\"], port: auto }
";

#[test]
fn hosts_are_loopback_for_orch_up_and_open_for_other_engines() {
    let s = stack(HOSTS);
    let db = Endpoint::new("db", "pg");
    let url = &s.services[0].provides["DATABASE_URL"];
    assert_eq!(url.loopback(), "postgres://127.0.0.1:8300/app");
    assert_eq!(url.hosts().collect::<Vec<_>>(), [&db]);
    let engine = |text: &Text| {
        text.render(Cow::Borrowed, |e| {
            format!("{}-{}", e.service, e.command).into()
        })
    };
    assert_eq!(engine(url), "postgres://db-pg:8300/app");
    assert_eq!(
        engine(&s.services[1].env["DSN"]),
        "postgres://db-pg:8300/app?sslmode=disable"
    );
    assert_eq!(
        program(&s, "db", "pg", 0),
        shell("postgres -h 127.0.0.1 -p 8300")
    );
    let app = &s.services[1].commands[0].instances[0];
    assert_eq!(
        app.program,
        Program::Argv(vec![
            "app".into(),
            "--db".into(),
            "postgres://127.0.0.1:8300/app".into()
        ])
    );
    let Program::Argv(args) = &app.program_text else {
        panic!("a list stays an argv: {:?}", app.program_text);
    };
    assert_eq!(engine(&args[2]), "postgres://db-pg:8300/app");
    let env = s.member_env_text(1, app);
    assert_eq!(engine(&env["DATABASE_URL"]), "postgres://db-pg:8300/app");
    assert_eq!(
        s.member_env(1, app)["DATABASE_URL"],
        "postgres://127.0.0.1:8300/app"
    );

    let project = Project::with_stack(HOSTS);
    project
        .orch()
        .args(["env", "db"])
        .assert()
        .success()
        .stdout("DATABASE_URL=postgres://127.0.0.1:8300/app\n");
}
