//! Every error of a stack file: its message, where it points, its help, and
//! how `orch check` renders it (exit code 2, `,-[stack.yaml:LINE:COL]`).

mod common;

use std::time::Duration;

use common::{pos, problem, problems, Project};
use predicates::prelude::*;

/// Run `orch check` on `text`; it must fail with exit code 2 and print
/// nothing on stdout. Returns stderr.
fn check_fails(text: &str) -> String {
    let project = Project::with_stack(text);
    let out = project.orch().arg("check").assert().code(2).stdout("");
    String::from_utf8(out.get_output().stderr.clone()).expect("stderr is UTF-8")
}

/// The header miette draws above the source line of a problem.
fn header(at: (usize, usize)) -> String {
    format!(",-[stack.yaml:{}:{}]", at.0, at.1)
}

#[test]
fn yaml_syntax_error() {
    let text = "services:\n  db:\n    commands: x: 1\n";
    let p = problem(text);
    assert_eq!(
        p.message,
        "invalid YAML: mapping values are not allowed in this context"
    );
    assert_eq!(p.at, Some((3, 16)));
    let stderr = check_fails(text);
    assert!(stderr.contains("invalid YAML: mapping values"), "{stderr}");
    assert!(stderr.contains(&header((3, 16))), "{stderr}");
}

#[test]
fn unclosed_quote_is_a_syntax_error() {
    let text = "services:\n  db:\n    commands:\n      pg: {command: \"sleep 1}\n";
    let p = problem(text);
    assert!(
        p.message
            .starts_with("invalid YAML: while scanning a quoted scalar"),
        "{p:?}"
    );
    assert_eq!(p.at, Some(pos(text, "\"sleep", 0)));
}

#[test]
fn unknown_key_suggests_the_close_one() {
    let text = "services:\n  db:\n    commands:\n      pg: { command: postgres, prot: 5432 }\n";
    let p = problem(text);
    assert_eq!(p.message, "unknown key `prot`");
    assert_eq!(p.at, Some(pos(text, "prot", 0)));
    assert_eq!(p.at, Some((4, 32)));
    assert_eq!(p.help.as_deref(), Some("did you mean `port`?"));

    let stderr = check_fails(text);
    assert!(stderr.contains("unknown key `prot`"), "{stderr}");
    assert!(stderr.contains(&header((4, 32))), "{stderr}");
    assert!(stderr.contains("help: did you mean `port`?"), "{stderr}");
}

#[test]
fn unknown_key_far_from_any_lists_the_allowed_ones() {
    let text =
        "services:\n  db:\n    colour: red\n    commands:\n      pg: { command: postgres }\n";
    let p = problem(text);
    assert_eq!(p.message, "unknown key `colour`");
    assert_eq!(p.at, Some((3, 5)));
    assert_eq!(
        p.help.as_deref(),
        Some("the keys allowed here are: depends_on, profiles, env_file, env, commands, provides")
    );
}

#[test]
fn unknown_top_level_key() {
    let text = "service:\n  db:\n    commands:\n      pg: { command: postgres }\n";
    let p = problem(text);
    assert_eq!(p.message, "unknown key `service`");
    assert_eq!(p.at, Some((1, 1)));
    assert_eq!(p.help.as_deref(), Some("did you mean `services`?"));
}

#[test]
fn bad_types_name_what_was_expected() {
    // (the value in the file, the message)
    let cases = [
        (
            "respawn_count: many",
            "expected a whole number of 0 or more, found `many`",
        ),
        (
            "number_of_processes: -2",
            "integer `-2` is not valid here: expected a whole number of 0 or more",
        ),
        ("stop_timeout: 10", "`10` needs a unit: write e.g. 10s or 10ms"),
        (
            "respawn_window: soon",
            "`soon` is not a duration: write e.g. 500ms, 10s, 5m or 1h",
        ),
        (
            "memory_limit: 1T",
            "`1T` is not a size: write e.g. 512MiB, 1G or 1048576",
        ),
        (
            "stop_signal: SIGFOO",
            "`SIGFOO` is not a signal: use a name such as SIGTERM, SIGINT, SIGQUIT, SIGHUP or SIGUSR1",
        ),
        (
            "when_to_run: sometimes",
            "`sometimes` is not a valid value here",
        ),
        ("user: [root]", "expected a string, found a list"),
        ("monitor: pg_isready", "expected a mapping, found `pg_isready`"),
        (
            "port: high",
            "`high` is not a port: use a number from 1 to 65535, or `auto`",
        ),
    ];
    for (field, message) in cases {
        let text = format!("services:\n  db:\n    commands:\n      pg:\n        command: postgres\n        {field}\n");
        let p = problem(&text);
        assert_eq!(p.message, message, "{field}");
        let value = field.split_once(": ").expect("key: value").1;
        assert_eq!(p.at, Some((6, 9 + field.find(value).unwrap())), "{field}");
    }
}

#[test]
fn bad_types_of_whole_sections() {
    let text = "services:\n  db: [postgres]\n  api:\n    depends_on: db\n    commands: 5\n";
    let found = problems(text);
    let got: Vec<_> = found.iter().map(|p| (p.message.as_str(), p.at)).collect();
    assert_eq!(
        got,
        vec![
            ("expected a mapping, found a list", Some((2, 7))),
            ("expected a list, found `db`", Some((4, 17))),
        ]
    );
    // `commands: 5` is in the same service as the bad `depends_on`, which
    // stops reading that service; it is not reported yet.
    let stderr = check_fails(text);
    assert!(stderr.contains(&header((2, 7))), "{stderr}");
    assert!(stderr.contains(&header((4, 17))), "{stderr}");
}

#[test]
fn enum_values_suggest_the_close_one() {
    let text =
        "services:\n  db:\n    commands:\n      pg: { command: postgres, when_to_run: onse }\n";
    let p = problem(text);
    assert_eq!(p.message, "`onse` is not a valid value here");
    assert_eq!(p.help.as_deref(), Some("did you mean `once`?"));
    assert_eq!(p.at, Some(pos(text, "onse", 0)));
}

#[test]
fn empty_value_points_after_its_key() {
    let text = "services:\n  db:\n    commands:\n      pg:\n  api:\n    depends_on: [db]\n";
    let p = problem(text);
    assert_eq!(p.message, "expected a mapping, found nothing");
    // Right after `pg`, not at `api` on the next line.
    assert_eq!(p.at, Some((4, 9)));
}

#[test]
fn missing_command() {
    let text = "services:\n  db:\n    commands:\n      pg: { port: 5432 }\n";
    let p = problem(text);
    assert_eq!(p.message, "missing key `command`");
    assert_eq!(p.at, Some((4, 11)));
}

#[test]
fn duplicate_keys_show_both() {
    let text = "services:\n  db:\n    commands:\n      pg: { command: postgres }\n  db:\n    depends_on: []\n";
    let p = problem(text);
    assert_eq!(p.message, "`db` is given twice");
    assert_eq!(
        p.labels,
        vec![
            ((5, 3), "here".to_owned()),
            ((2, 3), "first given here".to_owned())
        ]
    );
}

#[test]
fn duplicate_keys_in_a_large_mapping() {
    // Large mappings index their keys; the duplicate is found all the same.
    let mut text = String::from("services:\n");
    for i in 0..40 {
        text.push_str(&format!(
            "  s{i}:\n    commands:\n      c: {{ command: c }}\n"
        ));
    }
    text.push_str("  s7:\n    depends_on: [s1]\n");
    let p = problem(&text);
    assert_eq!(p.message, "`s7` is given twice");
    assert_eq!(
        p.labels,
        vec![
            ((122, 3), "here".to_owned()),
            ((23, 3), "first given here".to_owned())
        ]
    );
}

#[test]
fn unknown_dependency_suggests_the_closest_service() {
    let text = "services:\n  db:\n    commands:\n      pg: { command: postgres }\n  api:\n    depends_on: [dbb]\n    commands:\n      web: { command: web }\n";
    let p = problem(text);
    assert_eq!(p.message, "unknown service `dbb`");
    assert_eq!(p.at, Some((6, 18)));
    assert_eq!(p.labels[0].1, "not a service of this stack");
    assert_eq!(p.help.as_deref(), Some("did you mean `db`?"));

    let stderr = check_fails(text);
    assert!(stderr.contains("unknown service `dbb`"), "{stderr}");
    assert!(stderr.contains(&header((6, 18))), "{stderr}");
    assert!(stderr.contains("did you mean `db`?"), "{stderr}");
}

#[test]
fn unknown_dependency_without_a_close_name() {
    let text = "services:\n  api:\n    depends_on: [elasticsearch]\n    commands:\n      web: { command: web }\n";
    let p = problem(text);
    assert_eq!(p.message, "unknown service `elasticsearch`");
    assert_eq!(
        p.help.as_deref(),
        Some("`depends_on` lists services defined under `services:`")
    );
}

#[test]
fn self_dependency() {
    let text =
        "services:\n  api:\n    depends_on: [api]\n    commands:\n      web: { command: web }\n";
    let p = problem(text);
    assert_eq!(p.message, "service `api` depends on itself");
    assert_eq!(p.at, Some((3, 18)));
    assert_eq!(
        p.help.as_deref(),
        Some("remove it from its own `depends_on`")
    );
    assert!(check_fails(text).contains(&header((3, 18))));
}

#[test]
fn listing_a_dependency_twice() {
    let text = "services:\n  db:\n    commands:\n      pg: { command: postgres }\n  api:\n    depends_on: [db, db]\n    commands:\n      web: { command: web }\n";
    let p = problem(text);
    assert_eq!(p.message, "`db` is listed twice in `depends_on`");
    assert_eq!(
        p.labels,
        vec![
            ((6, 22), "again here".to_owned()),
            ((6, 18), "first here".to_owned())
        ]
    );
}

const CYCLE: &str = "\
services:
  a:
    depends_on: [b]
    commands:
      x: { command: x }
  b:
    depends_on: [c]
  c:
    depends_on: [a]
  d:
    depends_on: [a]
";

#[test]
fn cycle_names_the_whole_cycle_and_labels_each_edge() {
    let p = problem(CYCLE);
    assert_eq!(p.message, "dependency cycle: a -> b -> c -> a");
    assert_eq!(
        p.labels,
        vec![
            ((3, 18), "`a` depends on `b`".to_owned()),
            ((7, 18), "`b` depends on `c`".to_owned()),
            ((9, 18), "`c` depends on `a`".to_owned()),
        ]
    );
    assert_eq!(
        p.help.as_deref(),
        Some("nothing in a cycle could ever start; remove one of these dependencies")
    );
    let stderr = check_fails(CYCLE);
    assert!(
        stderr.contains("dependency cycle: a -> b -> c -> a"),
        "{stderr}"
    );
    assert!(stderr.contains(&header((3, 18))), "{stderr}");
}

#[test]
fn two_cycles_are_two_problems() {
    let text = "services:\n  a:\n    depends_on: [b]\n  b:\n    depends_on: [a]\n  c:\n    depends_on: [d]\n  d:\n    depends_on: [c]\n";
    let messages: Vec<String> = problems(text).into_iter().map(|p| p.message).collect();
    assert_eq!(
        messages,
        vec![
            "dependency cycle: a -> b -> a",
            "dependency cycle: c -> d -> c"
        ]
    );
}

const DUPLICATE_LOCATOR: &str = "\
services:
  db:
    commands:
      pg: { command: postgres, port: auto }
    provides:
      DATABASE_URL: postgres://[::1]:${pg.port}/db
  replica:
    commands:
      pg: { command: postgres, port: auto }
    provides:
      DATABASE_URL: postgres://[::1]:${pg.port}/replica
";

#[test]
fn duplicate_locator_labels_both_places() {
    let p = problem(DUPLICATE_LOCATOR);
    assert_eq!(p.message, "locator `DATABASE_URL` is provided twice");
    assert_eq!(
        p.labels,
        vec![
            ((11, 7), "by `replica`".to_owned()),
            ((6, 7), "and by `db`".to_owned()),
        ]
    );
    let stderr = check_fails(DUPLICATE_LOCATOR);
    assert!(stderr.contains(&header((11, 7))), "{stderr}");
    assert!(stderr.contains("and by `db`"), "{stderr}");
    assert!(stderr.contains("by `replica`"), "{stderr}");
}

#[test]
fn invalid_locator_names_suggest_a_valid_one() {
    let text = "services:\n  db:\n    commands:\n      pg: { command: postgres }\n    provides:\n      database-url: x\n      9LIVES: y\n";
    let found = problems(text);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(
        found[0].message,
        "`database-url` is not a valid locator name"
    );
    assert_eq!(found[0].at, Some((6, 7)));
    assert_eq!(
        found[0].help.as_deref(),
        Some("locators are environment variable names in capitals, matching ^[A-Z_][A-Z0-9_]*$, e.g. `DATABASE_URL`")
    );
    assert_eq!(found[1].message, "`9LIVES` is not a valid locator name");
    assert_eq!(found[1].at, Some((7, 7)));
    assert!(check_fails(text).contains(&header((7, 7))));
}

#[test]
fn invalid_service_and_env_names() {
    let text =
        "services:\n  my db:\n    env: { 1X: a }\n    commands:\n      pg: { command: postgres }\n";
    let found = problems(text);
    let got: Vec<_> = found.iter().map(|p| (p.message.as_str(), p.at)).collect();
    assert_eq!(
        got,
        vec![
            ("`my db` is not a valid service name", Some((2, 3))),
            (
                "`1X` is not a valid environment variable name",
                Some((3, 12))
            ),
        ]
    );
}

#[test]
fn undefined_template_reference() {
    let text = "services:\n  api:\n    commands:\n      web: { command: \"serve --db ${DB_URL_FOR_ORCH_TESTS}\" }\n";
    let p = problem(text);
    assert_eq!(p.message, "`${DB_URL_FOR_ORCH_TESTS}` is not defined");
    // The reference itself, inside the string.
    assert_eq!(p.at, Some(pos(text, "${DB_URL", 0)));
    assert_eq!(p.at, Some((4, 35)));
    assert_eq!(
        p.help.as_deref(),
        Some("set it in the stack's `env`, give a default with `${DB_URL_FOR_ORCH_TESTS:-value}`, or write `$${DB_URL_FOR_ORCH_TESTS}` to leave it to the shell")
    );
    let stderr = check_fails(text);
    assert!(stderr.contains(&header((4, 35))), "{stderr}");
}

#[test]
fn template_reference_suggests_a_close_locator() {
    let text = "services:\n  db:\n    commands:\n      pg: { command: postgres }\n    provides:\n      DATABASE_URL: postgres://db\n  api:\n    depends_on: [db]\n    env:\n      URL: ${DATABASE_UR}\n    commands:\n      web: { command: web }\n";
    let p = problem(text);
    assert_eq!(p.message, "`${DATABASE_UR}` is not defined");
    assert_eq!(p.at, Some((10, 12)));
    assert_eq!(p.help.as_deref(), Some("did you mean `${DATABASE_URL}`?"));
}

const NOT_A_DEPENDENCY: &str = "\
services:
  db:
    commands:
      pg: { command: postgres, port: auto }
    provides:
      DATABASE_URL: postgres://[::1]:${pg.port}/shop
  api:
    commands:
      web: { command: \"serve --db '${DATABASE_URL}'\" }
";

#[test]
fn locator_of_a_service_not_depended_on() {
    let p = problem(NOT_A_DEPENDENCY);
    assert_eq!(
        p.message,
        "`DATABASE_URL` is provided by service `db`, which `api` does not depend on"
    );
    assert_eq!(p.at, Some((9, 36)));
    assert_eq!(p.help.as_deref(), Some("add `db` to `depends_on` of `api`"));
    let stderr = check_fails(NOT_A_DEPENDENCY);
    assert!(stderr.contains(&header((9, 36))), "{stderr}");
    assert!(
        stderr.contains("help: add `db` to `depends_on` of `api`"),
        "{stderr}"
    );
}

#[test]
fn locator_used_before_it_is_defined() {
    let text = "services:\n  db:\n    commands:\n      pg: { command: postgres }\n    provides:\n      A_URL: ${B_URL}/a\n      B_URL: http://b\n";
    let p = problem(text);
    assert_eq!(p.message, "`B_URL` is used before `provides` defines it");
    assert_eq!(p.at, Some((6, 14)));
}

#[test]
fn port_references_that_resolve_to_nothing() {
    let cases = [
        (
            "x: { command: \"serve ${port}\" }",
            "`${port}` is used, but this command has no port",
            "${port}",
        ),
        (
            "x: { command: \"serve ${y.port}\" }\n      y: { command: y }",
            "command `y` has no port",
            "${y.port}",
        ),
        (
            "x: { command: \"serve ${yy.port}\" }\n      y: { command: y, port: auto }",
            "service `db` has no command `yy`",
            "${yy.port}",
        ),
        (
            "x: { command: \"serve ${y.hosts}\" }",
            "`${y.hosts}`: a command has `.port`, `.ports` and `.host`, not `.hosts`",
            "${y.hosts}",
        ),
        (
            "x: { command: \"serve ${y.port\" }",
            "`${` is never closed",
            "${y.port",
        ),
    ];
    for (commands, message, at) in cases {
        let text = format!("services:\n  db:\n    commands:\n      {commands}\n");
        let p = problem(&text);
        assert_eq!(p.message, message, "{commands}");
        assert_eq!(p.at, Some(pos(&text, at, 0)), "{commands}");
    }
}

#[test]
fn host_references_that_resolve_to_nothing() {
    let cases = [
        (
            "    commands:\n      x: { command: \"serve ${host}\" }\n",
            "`${host}` is used, but this command has no port",
            "${host}",
            Some("give the command `port: auto` or a port number"),
        ),
        (
            "    commands:\n      x: { command: \"curl ${y.host}\" }\n      y: { command: y }\n",
            "command `y` has no port",
            "${y.host}",
            Some("give it `port: auto` or a port number"),
        ),
        (
            "    commands:\n      postgres: { command: pg, port: auto }\n    provides:\n      URL: pg://${postgre.host}:${postgres.port}\n",
            "service `db` has no command `postgre`",
            "${postgre.host}",
            Some("did you mean `postgres`?"),
        ),
        (
            "    commands:\n      pg: { command: pg, port: auto }\n    provides:\n      URL: pg://${host}:${pg.port}\n",
            "`${host}` only means something inside a command",
            "${host}",
            Some("name the command: `${NAME.host}`"),
        ),
        (
            "    env: { PEER: \"${other.host}\" }\n    commands:\n      pg: { command: pg, port: auto }\n",
            "service `db` has no command `other`",
            "${other.host}",
            Some("`${NAME.port}` and `${NAME.host}` name a command of the same service; other services export what they offer with `provides`"),
        ),
    ];
    for (service, message, at, help) in cases {
        let text = format!("services:\n  db:\n{service}");
        let p = problem(&text);
        assert_eq!(p.message, message, "{service}");
        assert_eq!(p.at, Some(pos(&text, at, 0)), "{service}");
        assert_eq!(p.help.as_deref(), help, "{service}");
    }
}

#[test]
fn the_stack_env_cannot_name_a_host() {
    let text = "env:\n  DB: ${pg.host}\nservices:\n  db:\n    commands:\n      pg: { command: pg, port: auto }\n";
    let p = problem(text);
    assert_eq!(
        p.message,
        "the stack `env` can only use variables, not ports or hosts"
    );
    assert_eq!(p.at, Some(pos(text, "${pg.host}", 0)));
    let stderr = check_fails(text);
    assert!(
        stderr.contains(&header(pos(text, "${pg.host}", 0))),
        "{stderr}"
    );
}

#[test]
fn unknown_command_of_the_service_suggests_the_close_one() {
    let text = "services:\n  db:\n    commands:\n      postgres: { command: postgres, port: auto }\n    provides:\n      URL: pg://[::1]:${postgre.port}\n";
    let p = problem(text);
    assert_eq!(p.message, "service `db` has no command `postgre`");
    assert_eq!(p.help.as_deref(), Some("did you mean `postgres`?"));
    assert_eq!(p.at, Some(pos(text, "${postgre.port}", 0)));
}

#[test]
fn template_in_a_command_with_several_processes_is_reported_once() {
    let text = "services:\n  db:\n    commands:\n      pg: { command: \"serve ${NOT_SET_FOR_ORCH_TESTS}\", number_of_processes: 3 }\n";
    let found = problems(text);
    assert_eq!(found.len(), 1, "{found:#?}");
}

const PORT_CONFLICT: &str = "\
services:
  db:
    commands:
      pg: { command: postgres, port: 5432 }
  api:
    commands:
      web: { command: web, port: 8080 }
      admin: { command: admin, port: 5432 }
";

#[test]
fn port_conflict_labels_both_places() {
    let p = problem(PORT_CONFLICT);
    assert_eq!(p.message, "port 5432 is used twice");
    assert_eq!(
        p.labels,
        vec![
            ((8, 38), "by `api.admin`".to_owned()),
            ((4, 38), "and by `db.pg`".to_owned()),
        ]
    );
    assert_eq!(
        p.help.as_deref(),
        Some("give each command its own port, or use `port: auto`")
    );
    let stderr = check_fails(PORT_CONFLICT);
    assert!(stderr.contains("port 5432 is used twice"), "{stderr}");
    assert!(stderr.contains(&header((8, 38))), "{stderr}");
    assert!(stderr.contains("and by `db.pg`"), "{stderr}");
}

#[test]
fn fixed_port_with_several_processes() {
    let text = "services:\n  api:\n    commands:\n      web: { command: web, port: 8080, number_of_processes: 2 }\n";
    let p = problem(text);
    assert_eq!(
        p.message,
        "2 processes of `api.web` cannot all listen on port 8080"
    );
    assert_eq!(p.at, Some(pos(text, "8080", 0)));
}

#[test]
fn port_out_of_range() {
    for port in ["0", "65536", "-1", "100000"] {
        let text = format!("services:\n  api:\n    commands:\n      web:\n        command: web\n        port: {port}\n");
        let p = problem(&text);
        assert_eq!(
            p.message,
            format!("port {port} is out of range: ports go from 1 to 65535")
        );
        assert_eq!(p.at, Some((6, 15)), "{port}");
    }
    let text = "port_range: 0-100\nservices:\n  api:\n    commands:\n      web: { command: web }\n";
    let p = problem(text);
    assert_eq!(
        p.message,
        "port 0 is out of range: ports go from 1 to 65535"
    );
    assert_eq!(p.at, Some((1, 13)));
}

#[test]
fn bad_port_ranges() {
    let cases = [
        (
            "9000-8000",
            "the range 9000-8000 is empty: LOW must not exceed HIGH",
        ),
        (
            "9000",
            "`9000` is not a port range: write it as LOW-HIGH, e.g. 8300-8499",
        ),
        (
            "a-b",
            "`a-b` is not a port range: write it as LOW-HIGH, e.g. 8300-8499",
        ),
    ];
    for (range, message) in cases {
        let text = format!("port_range: {range}\nservices:\n  api:\n    commands:\n      web: {{ command: web }}\n");
        let p = problem(&text);
        assert_eq!(p.message, message);
        assert_eq!(p.at, Some((1, 13)));
    }
}

const EXHAUSTED: &str = "\
port_range: 9000-9002
services:
  db:
    commands:
      pg: { command: postgres, port: 9001 }
  api:
    commands:
      web: { command: web, port: auto, number_of_processes: 2 }
      admin: { command: admin, port: auto }
";

#[test]
fn port_range_runs_out() {
    // 9001 is taken explicitly, the two `web` processes take 9000 and 9002,
    // and nothing is left for `admin`.
    let p = problem(EXHAUSTED);
    assert_eq!(p.message, "port_range 9000-9002 has no free port left");
    assert_eq!(
        p.labels,
        vec![((9, 38), "this command needs one".to_owned())]
    );
    assert_eq!(
        p.help.as_deref(),
        Some("widen `port_range`, or give some commands fixed ports outside it")
    );
    assert!(check_fails(EXHAUSTED).contains(&header((9, 38))));
}

#[test]
fn services_with_nothing_to_run() {
    let text = "services:\n  db: {}\n  cache:\n    env: { A: b }\n";
    let found = problems(text);
    let got: Vec<_> = found.iter().map(|p| (p.message.as_str(), p.at)).collect();
    assert_eq!(
        got,
        vec![
            ("service `db` has nothing to run", Some((2, 3))),
            ("service `cache` has nothing to run", Some((3, 3))),
        ]
    );
    assert_eq!(
        found[0].help.as_deref(),
        Some("give it `commands:`, or `depends_on:` to make it a bundle of other services")
    );
}

#[test]
fn a_stack_without_services() {
    let text = "name: nothing\nservices: {}\n";
    let p = problem(text);
    assert_eq!(p.message, "the stack has no services");
    // Nothing in particular is wrong, so nothing is pointed at.
    assert_eq!(p.at, None);
    let stderr = check_fails(text);
    assert!(stderr.contains("the stack has no services"), "{stderr}");
    assert!(
        stderr.contains("help: add at least one service under `services:`"),
        "{stderr}"
    );
}

#[test]
fn unknown_version() {
    let text = "version: 2\nservices:\n  a:\n    commands:\n      x: { command: x }\n";
    let p = problem(text);
    assert_eq!(p.message, "version 2 is not known");
    assert_eq!(p.at, Some((1, 10)));
}

#[test]
fn probe_mistakes() {
    let cases = [
        (
            "ready: { tcp: \"localhost\" }",
            "`localhost` is not a TCP address",
        ),
        (
            "ready: { http: \"localhost:80/health\" }",
            "`localhost:80/health` is not an http:// URL",
        ),
        (
            "ready: { log: \"(\" }",
            "`log` is not a valid regular expression",
        ),
        ("ready: { interval: 1s }", "`ready` needs a check"),
        (
            "ready: { tcp: \"80\", log: ready }",
            "`ready` has more than one check",
        ),
        (
            "when_to_run: once\n        ready: { log: done }",
            "a `once` command is ready when it has completed",
        ),
    ];
    for (fields, message) in cases {
        let text = format!(
            "services:\n  db:\n    commands:\n      pg:\n        command: postgres\n        {fields}\n"
        );
        let p = problem(&text);
        assert_eq!(p.message, message, "{fields}");
        let (line, _) = p.at.expect("a probe problem points into the file");
        assert_eq!(line, 5 + fields.lines().count(), "{fields}");
    }
}

const SEVERAL: &str = "\
services:
  db:
    commands:
      pg: { command: postgres, port: 5432, prot: 1 }
    provides:
      db_url: x
  api:
    depends_on: [dbb, api]
    commands:
      web: { command: web, port: 8080 }
      admin: { command: admin, port: 8080 }
  empty: {}
";

#[test]
fn several_problems_are_reported_at_once_in_file_order() {
    let found = problems(SEVERAL);
    let got: Vec<_> = found.iter().map(|p| (p.message.as_str(), p.at)).collect();
    assert_eq!(
        got,
        vec![
            ("unknown key `prot`", Some((4, 44))),
            ("`db_url` is not a valid locator name", Some((6, 7))),
            ("unknown service `dbb`", Some((8, 18))),
            ("service `api` depends on itself", Some((8, 23))),
            ("port 8080 is used twice", Some((11, 38))),
            ("service `empty` has nothing to run", Some((12, 3))),
        ]
    );
    let stderr = check_fails(SEVERAL);
    assert!(stderr.contains("stack.yaml: 6 problems"), "{stderr}");
    for (_, at) in got {
        let at = at.expect("each of these points somewhere");
        assert!(stderr.contains(&header(at)), "{at:?} in {stderr}");
    }
}

#[test]
fn every_unknown_key_is_reported_not_only_the_first_of_a_mapping() {
    let text = "\
verison: 1
services:
  a:
    depends_on: [b]
    commands:
      x: { comand: run, prot: 1, ready: { tcp: \"1\", intervl: 1s } }
  b:
    depends_on: [a]
    commands:
      y: { command: run }
";
    let got: Vec<_> = problems(text)
        .into_iter()
        .map(|p| (p.message, p.at, p.help))
        .collect();
    let unknown = |key: &str, at, close: &str| {
        (
            format!("unknown key `{key}`"),
            Some(at),
            Some(format!("did you mean `{close}`?")),
        )
    };
    assert_eq!(
        got,
        vec![
            unknown("verison", pos(text, "verison", 0), "version"),
            (
                "dependency cycle: a -> b -> a".to_owned(),
                Some(pos(text, "b]", 0)),
                Some(
                    "nothing in a cycle could ever start; remove one of these dependencies"
                        .to_owned()
                )
            ),
            // `comand` is reported as misspelt, not `command` as missing too.
            unknown("comand", pos(text, "comand", 0), "command"),
            unknown("prot", pos(text, "prot", 0), "port"),
            unknown("intervl", pos(text, "intervl", 0), "interval"),
        ]
    );
}

#[test]
fn only_the_first_problems_are_rendered() {
    let mut text = String::from("services:\n");
    for i in 0..200 {
        text.push_str(&format!("  s{i}: 1\n"));
    }
    assert_eq!(problems(&text).len(), 200);
    let stderr = check_fails(&text);
    assert!(
        stderr.contains("stack.yaml: 200 problems (the first 50 are shown)"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("expected a mapping, found integer").count(),
        50
    );
}

#[test]
fn empty_file() {
    for text in ["", "\n\n", "# only a comment\n"] {
        let p = problem(text);
        assert_eq!(p.message, "the stack file is empty");
        assert_eq!(p.at, Some((1, 1)));
        assert_eq!(
            p.help.as_deref(),
            Some("a stack file needs at least `services:`; see examples/minimal.yaml")
        );
    }
    let stderr = check_fails("");
    assert!(stderr.contains("the stack file is empty"), "{stderr}");
    assert!(stderr.contains(&header((1, 1))), "{stderr}");
}

#[test]
fn a_second_yaml_document() {
    let text = "services:\n  a:\n    commands:\n      x: { command: x }\n---\nservices: {}\n";
    let p = problem(text);
    assert_eq!(p.message, "a stack file holds one YAML document");
    assert_eq!(p.at, Some((5, 1)));
    assert_eq!(
        p.help.as_deref(),
        Some("remove the `---` and what follows it, or move it to a file of its own")
    );
    assert!(check_fails(text).contains(&header((5, 1))));
}

#[test]
fn a_leading_document_marker_is_fine() {
    let text = "---\nservices:\n  a:\n    commands:\n      x: { command: x }\n";
    common::stack(text);
}

#[test]
fn missing_stack_file() {
    let project = Project::new();
    project
        .orch()
        .arg("check")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "cannot read the stack file stack.yaml",
        ))
        .stderr(predicate::str::contains("give the stack file with -f FILE"));
}

// Huge and hostile files: a clear error, and the command finishes. The
// timeouts are a guard against hangs, far above the real times.

const GUARD: Duration = Duration::from_secs(120);

fn check_fails_within_guard(project: &Project) -> String {
    let out = project.orch().arg("check").timeout(GUARD).assert().code(2);
    String::from_utf8(out.get_output().stderr.clone()).expect("stderr is UTF-8")
}

#[test]
fn deep_nesting() {
    let flow = format!("services: {}{}\n", "[".repeat(100), "]".repeat(100));
    let p = problem(&flow);
    assert_eq!(p.message, "values are nested more than 64 levels deep");
    // The `[` that opens level 65: the top mapping is level 1.
    assert_eq!(p.at, Some((1, 74)));
    assert_eq!(
        p.help.as_deref(),
        Some("a stack file needs a handful of levels; check for runaway brackets")
    );

    let mut block = String::new();
    for depth in 0..100 {
        block.push_str(&format!("{}k{depth}:\n", "  ".repeat(depth)));
    }
    let p = problem(&block);
    assert_eq!(p.message, "values are nested more than 64 levels deep");

    // Far deeper than the YAML scanner's own limit: the same message.
    let flood = format!("services: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let p = problem(&flood);
    assert_eq!(p.message, "values are nested more than 64 levels deep");

    let stderr = check_fails_within_guard(&Project::with_stack(&flood));
    assert!(stderr.contains("nested more than 64 levels"), "{stderr}");
}

#[test]
fn alias_bomb() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let prev = format!("*a{}", i - 1);
        let list = [prev.as_str(); 10].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{list}]\n"));
    }
    text.push_str("services: *a9\n");
    let p = problem(&text);
    assert_eq!(
        p.message,
        "the document has more than 2000000 values, counting what each alias copies"
    );
    let stderr = check_fails_within_guard(&Project::with_stack(&text));
    assert!(stderr.contains("more than 2000000 values"), "{stderr}");
}

#[test]
fn aliases_within_bounds_are_read() {
    let text = "\
env: &common { LOG_LEVEL: info }
services:
  a:
    env: *common
    commands:
      x: { command: x }
";
    let stack = common::stack(text);
    assert_eq!(stack.services[0].env["LOG_LEVEL"], "info");
}

#[test]
fn file_over_the_size_limit() {
    let line = format!("# {}\n", "x".repeat(1022));
    let text = format!("services: {{}}\n{}", line.repeat(17 * 1024));
    assert!(text.len() > 16 * 1024 * 1024);
    let p = problem(&text);
    assert_eq!(
        p.message,
        format!(
            "the file is {} bytes; orch reads stack files of at most 16 MiB",
            text.len()
        )
    );
    assert_eq!(p.at, Some((1, 1)));
    let stderr = check_fails_within_guard(&Project::with_stack(&text));
    assert!(stderr.contains("at most 16 MiB"), "{stderr}");
}

#[test]
fn megabytes_of_mistakes() {
    // About 4 MB, 300,000 services that are all wrong.
    let mut text = String::from("services:\n");
    for i in 0..300_000 {
        text.push_str(&format!("  s{i}: 1\n"));
    }
    assert!(text.len() > 3_000_000);
    let stderr = check_fails_within_guard(&Project::with_stack(&text));
    assert!(
        stderr.contains("stack.yaml: 300000 problems (the first 50 are shown)"),
        "{}",
        &stderr[..stderr.len().min(2000)]
    );
}

#[test]
fn megabytes_of_valid_services() {
    let mut text = String::from("services:\n");
    for i in 0..50_000 {
        text.push_str(&format!(
            "  s{i}:\n    commands:\n      c: {{ command: \"echo {i}\" }}\n"
        ));
    }
    assert!(text.len() > 2_500_000);
    Project::with_stack(&text)
        .orch()
        .arg("check")
        .timeout(GUARD)
        .assert()
        .success()
        .stdout("stack: ok, 50000 services, 50000 members, 0 locators, 1 start wave\n");
}

// Rendered diagnostics, as users see them.

#[test]
fn rendered_unknown_key() {
    insta::assert_snapshot!(check_fails(
        "services:\n  db:\n    commands:\n      pg: { command: postgres, prot: 5432 }\n"
    ));
}

#[test]
fn rendered_cycle() {
    insta::assert_snapshot!(check_fails(CYCLE));
}

#[test]
fn rendered_duplicate_locator() {
    insta::assert_snapshot!(check_fails(DUPLICATE_LOCATOR));
}

#[test]
fn rendered_locator_of_a_service_not_depended_on() {
    insta::assert_snapshot!(check_fails(NOT_A_DEPENDENCY));
}

#[test]
fn rendered_several_problems() {
    insta::assert_snapshot!(check_fails(SEVERAL));
}
