//! `orch export systemd|kubernetes|nomad`: golden files of the examples, the
//! mappings the exporters promise, their warnings and exit codes.
//! (tests/export_engines.rs runs each engine's own validator on the output.)

mod common;

use std::path::Path;

use common::Project;
use serde_json::Value;

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");

/// The example stacks, by the name their snapshots carry.
const STACKS: [(&str, &str); 4] = [
    ("minimal", "minimal.yaml"),
    ("docgen", "docgen.yaml"),
    ("all_fields", "all-fields.yaml"),
    ("shop", "shop/stack.yaml"),
];

/// `orch export ARGS -f FILE` with the examples' variables unset.
fn export(project: &Project, file: &Path, args: &[&str]) -> assert_cmd::Command {
    let mut cmd = project.orch();
    cmd.arg("export")
        .args(args)
        .arg("-f")
        .arg(file)
        .env_remove("DOCGEN_DATA")
        .env_remove("REGION");
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

/// Output with the checkout's own path (which differs on every machine) made `[EXAMPLES]`.
fn portable(text: &str) -> String {
    text.replace(EXAMPLES, "[EXAMPLES]")
}

/// The files under `dir`, each after a `==> name <==` line, in name order.
fn files(dir: &Path) -> String {
    let mut names = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read the output folder") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                todo.push(path);
            } else {
                names.push(path);
            }
        }
    }
    names.sort();
    names
        .iter()
        .map(|p| {
            let name = p.strip_prefix(dir).expect("under the folder").display();
            let body = std::fs::read_to_string(p).expect("read a unit");
            format!("==> {name} <==\n{body}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn golden_files_of_the_examples() {
    let project = Project::new();
    for (name, file) in STACKS {
        let file = Path::new(EXAMPLES).join(file);
        let out_dir = project.path().join(name);
        let systemd = export(&project, &file, &["systemd", "-o", name])
            .assert()
            .success();
        let warnings = text(&systemd.get_output().stderr);
        insta::assert_snapshot!(
            format!("systemd_{name}"),
            portable(&format!("{}\n==> stderr <==\n{warnings}", files(&out_dir)))
        );
        for (engine, args) in [
            (
                "kubernetes",
                &["kubernetes", "--image", "registry.example/shop:1"][..],
            ),
            ("nomad", &["nomad"][..]),
        ] {
            let out = export(&project, &file, args).assert().success();
            let out = out.get_output();
            insta::assert_snapshot!(
                format!("{engine}_{name}"),
                portable(&format!(
                    "{}\n==> stderr <==\n{}",
                    text(&out.stdout),
                    text(&out.stderr)
                ))
            );
        }
    }
}

const BROKEN: &str = "\
services:
  api:
    depends_on: [dbb]
    commands:
      web: { command: serve, port: auto }
";

#[test]
fn an_invalid_stack_gives_the_diagnostics_of_check_and_writes_nothing() {
    let project = Project::with_stack(BROKEN);
    let check = project.orch().arg("check").assert().code(2);
    let diagnostics = text(&check.get_output().stderr);
    assert!(
        diagnostics.contains("unknown service `dbb`"),
        "{diagnostics}"
    );
    for args in [
        &["export", "systemd", "-o", "units"][..],
        &["export", "kubernetes", "--image", "x"][..],
        &["export", "nomad"][..],
    ] {
        let out = project.orch().args(args).assert().code(2).stdout("");
        assert_eq!(text(&out.get_output().stderr), diagnostics, "{args:?}");
    }
    assert!(!project.path().join("units").exists());
}

const WEB: &str = "\
name: site
services:
  db:
    commands:
      pg: { command: [postgres, -p, \"${port}\"], port: auto, user: postgres }
    provides:
      DATABASE_URL: postgres://${pg.host}:${pg.port}/site
  web:
    depends_on: [db]
    commands:
      app:
        command: exec serve --db \"${DATABASE_URL}\" --peer ${host}:${port}
        port: auto
        number_of_processes: 2
        env: { LISTEN: \"0.0.0.0:${port}\" }
        ready: { log: \"listening\" }
      setup: { command: \"echo '$(date) {{x}}'\", when_to_run: once }
";

#[test]
fn warnings_name_the_field_and_the_command_and_exit_0() {
    let project = Project::with_stack(WEB);
    let systemd = project
        .orch()
        .args(["export", "systemd", "-o", "out"])
        .assert()
        .success();
    let stderr = text(&systemd.get_output().stderr);
    assert_eq!(
        stderr,
        "warning: ready.log of web.app: systemd cannot watch output lines for `listening`; \
         the member counts as ready once started\n"
    );
    let k8s = project
        .orch()
        .args(["export", "kubernetes", "--image", "site:1"])
        .assert()
        .success();
    let stderr = text(&k8s.get_output().stderr);
    for line in [
        "warning: user of db.pg: a container runs as its image's account, not `postgres`; set the pod's securityContext yourself\n",
        "warning: ready.log of web.app: Kubernetes cannot watch output lines for `listening`; the member counts as ready once started\n",
        "warning: number_of_processes of web.app: the 2 replicas all listen on port 8301 (the first process's) and all have ORCH_INSTANCE=0\n",
    ] {
        assert!(stderr.contains(line), "{line} in:\n{stderr}");
    }
}

#[test]
fn systemd_units_keep_order_respawn_and_each_process_apart() {
    let project = Project::with_stack(WEB);
    let out = project
        .orch()
        .args(["export", "systemd", "-o", "out"])
        .assert()
        .success();
    let dir = project.path().join("out");
    let listed = text(&out.get_output().stdout);
    assert!(listed.starts_with("out/site.target\n"), "{listed}");
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).expect(name);
    let target = read("site-web.target");
    assert!(
        target.contains(
            "Wants=site-web-app@0.service site-web-app@1.service site-web-setup.service\n"
        ),
        "{target}"
    );
    assert!(
        target.contains("After=site-db.target\nRequires=site-db.target\n"),
        "{target}"
    );
    let app = read("site-web-app@.service");
    for line in [
        "Requires=site-db.target\n",
        "Environment=\"DATABASE_URL=postgres://127.0.0.1:8300/site\"\n",
        "Environment=ORCH_INSTANCE=%i\n",
        "Restart=always\n",
        "RestartSec=100ms\n",
        "StartLimitBurst=5\n",
        "StartLimitIntervalSec=60s\n",
        "KillMode=control-group\n",
        "ExecReload=/bin/kill -s HUP $MAINPID\n",
    ] {
        assert!(app.contains(line), "{line} in:\n{app}");
    }
    assert!(!app.contains("PORT="), "{app}");
    let second = read("site-web-app@1.service.d/instance.conf");
    assert!(second.contains("Environment=\"PORT=8302\"\n"), "{second}");
    assert!(
        second.contains("Environment=\"LISTEN=0.0.0.0:8302\"\n"),
        "{second}"
    );
    assert!(
        second.contains("ExecStart=/bin/sh -c \"exec serve --db \\\"postgres://127.0.0.1:8300/site\\\" --peer 127.0.0.1:8302\"\n"),
        "{second}"
    );
    let setup = read("site-web-setup.service");
    assert!(
        setup.contains("Type=oneshot\nRemainAfterExit=yes\n"),
        "{setup}"
    );
    assert!(
        setup.contains(r#"ExecStart=/bin/sh -c "echo '$$(date) {{x}}'""#),
        "{setup}"
    );
    assert!(!setup.contains("Restart="), "{setup}");
}

#[test]
fn kubernetes_names_services_and_waits_for_dependencies() {
    let project = Project::with_stack(WEB);
    let out = project
        .orch()
        .args([
            "export",
            "kubernetes",
            "--image",
            "site:1",
            "--image",
            "db=postgres:16",
            "--namespace",
            "prod",
        ])
        .assert()
        .success();
    let yaml = text(&out.get_output().stdout);
    for needle in [
        "kind: Service\nmetadata:\n  name: db-pg\n",
        "  namespace: prod\n",
        "app.kubernetes.io/part-of: site\n",
        "image: postgres:16\n",
        "image: site:1\n",
        "postgres://db-pg:8300/site\n",
        "exec serve --db \\\"postgres://db-pg:8300/site\\\" --peer web-app:8301",
        "replicas: 2\n",
        "name: wait-db-pg\n",
        "kind: Job\n",
        "echo '$$(date) {{x}}'",
    ] {
        assert!(yaml.contains(needle), "{needle:?} in:\n{yaml}");
    }
}

#[test]
fn kubernetes_image_and_namespace_mistakes_are_usage_errors() {
    let project = Project::with_stack(WEB);
    for (args, message) in [
        (
            &["--image", "db=postgres:16"][..],
            "no image for service `web`",
        ),
        (
            &["--image", "x", "--image", "wep=y"][..],
            "--image wep=y: no service `wep` in stack `site`",
        ),
        (
            &["--image", "x", "--image", "y"][..],
            "--image y: an image for every service is already given",
        ),
        (
            &["--image", "x", "--namespace", "Prod_1"][..],
            "`Prod_1` is not a namespace name",
        ),
    ] {
        let out = project
            .orch()
            .args(["export", "kubernetes"])
            .args(args)
            .assert()
            .code(2)
            .stdout("");
        let stderr = text(&out.get_output().stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    let out = project
        .orch()
        .args(["export", "kubernetes", "--image", "x", "--image", "wep=y"])
        .assert()
        .code(2);
    assert!(text(&out.get_output().stderr).contains("did you mean `web`?"));
}

#[test]
fn nomad_looks_hosts_up_at_run_time() {
    let project = Project::new();
    project.write("site.yaml", WEB);
    // -f before the subcommand, as for every other subcommand.
    let out = project
        .orch()
        .args(["-f", "site.yaml", "export", "nomad"])
        .assert()
        .success();
    let job: Value = serde_json::from_slice(&out.get_output().stdout).expect("JSON");
    let job = &job["Job"];
    assert_eq!(
        (job["ID"].as_str(), job["Type"].as_str()),
        (Some("site"), Some("service"))
    );
    let groups = job["TaskGroups"].as_array().expect("groups");
    let names: Vec<&str> = groups
        .iter()
        .map(|g| g["Name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["db-pg", "web-app"]);
    let web = &groups[1];
    assert_eq!(web["Count"], 2);
    assert_eq!(
        web["RestartPolicy"],
        serde_json::json!({"Attempts": 5, "Interval": 60_000_000_000u64, "Delay": 100_000_000, "Mode": "fail"})
    );
    assert_eq!(web["Services"][0]["Name"], "web-app");
    assert_eq!(web["Services"][0]["Provider"], "nomad");
    let tasks = web["Tasks"].as_array().expect("tasks");
    assert_eq!(tasks[0]["Name"], "web-setup");
    assert_eq!(tasks[0]["Lifecycle"]["Hook"], "prestart");
    let app = &tasks[1];
    assert_eq!(app["Driver"], "raw_exec");
    assert!(app["Env"].get("DATABASE_URL").is_none(), "{app:#}");
    assert_eq!(app["Env"]["ORCH_INSTANCE"], "${NOMAD_ALLOC_INDEX}");
    let template = &app["Templates"][0];
    assert_eq!(template["Envvars"], true);
    let tmpl = template["EmbeddedTmpl"].as_str().expect("a template");
    assert!(
        tmpl.contains(r#"DATABASE_URL="postgres://{{ with nomadService "db-pg" }}{{ with index . 0 }}{{ .Address }}{{ end }}{{ end }}:8300/site""#),
        "{tmpl}"
    );
    let args: Vec<&str> = app["Config"]["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        args.last(),
        Some(&"exec serve --db \"postgres://${ORCH_HOST_DB_PG}:8300/site\" --peer ${NOMAD_IP_port}:8301")
    );
    assert!(
        tmpl.contains("ORCH_HOST_DB_PG=\"{{ with nomadService \"db-pg\" }}"),
        "{tmpl}"
    );
}

#[test]
fn names_that_collide_as_dns_labels_cannot_be_exported() {
    let project = Project::with_stack(
        "services:\n  a_b:\n    commands:\n      x: { command: x }\n  a-b:\n    commands:\n      x: { command: x }\n",
    );
    let out = project
        .orch()
        .args(["export", "nomad"])
        .assert()
        .code(1)
        .stdout("");
    let stderr = text(&out.get_output().stderr);
    assert!(
        stderr.contains("`a_b.x` and `a-b.x` would both be named `a-b-x`"),
        "{stderr}"
    );
}
