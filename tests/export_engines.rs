//! What `orch export` writes for the examples, checked by each engine's
//! own rules:
//!
//! - systemd units by `systemd-analyze verify` (Debian's `systemd` package),
//!   which must exit 0 and print nothing (it reports unknown keys only as
//!   warnings);
//! - Kubernetes manifests by `kubernetes-validate --strict` (PyPI), which
//!   rejects unknown fields and wrong types against Kubernetes' own schemas;
//! - the Nomad job against the fields and types of Nomad's API structs
//!   (`api/jobs.go`, `api/tasks.go`, `api/services.go`, `api/resources.go`),
//!   transcribed below, and the rules its server applies to services and
//!   checks: no Nomad validator can be installed from Debian's packages,
//!   PyPI, npm or crates.io.
//!
//! A missing validator skips its test, saying why, unless `CI` is set: then
//! it fails. `.ci/run` installs them.

mod common;

use std::path::Path;
use std::process::Command;

use common::Project;
use serde_json::Value;

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
const STACKS: [&str; 4] = [
    "minimal.yaml",
    "docgen.yaml",
    "all-fields.yaml",
    "shop/stack.yaml",
];

/// Whether `program` runs; when it does not, skip (or fail under CI) with `how`.
fn have(program: &str, how: &str) -> bool {
    match Command::new(program).arg("--version").output() {
        Ok(out) if out.status.success() => true,
        found => {
            let why = format!("`{program} --version` did not run ({found:?}); {how}");
            assert!(std::env::var_os("CI").is_none(), "{why}");
            eprintln!("SKIPPED: {why} (set CI to make this a failure)");
            false
        }
    }
}

fn export(project: &Project, file: &str, args: &[&str]) -> Vec<u8> {
    let out = project
        .orch()
        .arg("export")
        .args(args)
        .arg("-f")
        .arg(Path::new(EXAMPLES).join(file))
        .env_remove("DOCGEN_DATA")
        .env_remove("REGION")
        .assert()
        .success();
    out.get_output().stdout.clone()
}

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    if !have("systemd-analyze", "install Debian's `systemd` package") {
        return;
    }
    let project = Project::new();
    for (n, file) in STACKS.iter().enumerate() {
        let dir = project.path().join(n.to_string());
        let listed = String::from_utf8(export(
            &project,
            file,
            &["systemd", "-o", &dir.display().to_string()],
        ))
        .expect("UTF-8");
        // Every unit, and every instance of a template (named by the targets' Wants=).
        let mut units = Vec::new();
        for path in listed.lines().map(Path::new) {
            let name = path
                .file_name()
                .expect("a file")
                .to_string_lossy()
                .into_owned();
            if name.ends_with(".conf") || name.ends_with("@.service") {
                continue;
            }
            if name.ends_with(".target") {
                let text = std::fs::read_to_string(path).expect("read a target");
                for line in text.lines().filter_map(|l| l.strip_prefix("Wants=")) {
                    units.extend(
                        line.split(' ')
                            .filter(|u| u.contains('@'))
                            .map(str::to_owned),
                    );
                }
            }
            units.push(name);
        }
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .args(&units)
            .current_dir(&dir)
            .output()
            .expect("run systemd-analyze");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty() && out.stdout.is_empty(),
            "systemd-analyze verify {units:?} for {file}: {}\n{stderr}",
            out.status
        );
    }
}

#[test]
fn kubernetes_manifests_pass_kubernetes_validate_strict() {
    if !have(
        "kubernetes-validate",
        "install it with `pip install kubernetes-validate`",
    ) {
        return;
    }
    let project = Project::new();
    for file in STACKS {
        let yaml = export(
            &project,
            file,
            &["kubernetes", "--image", "registry.example/shop:1"],
        );
        let path = project.path().join("manifests.yaml");
        std::fs::write(&path, yaml).expect("write the manifests");
        let out = Command::new("kubernetes-validate")
            .args(["--strict", "--quiet"])
            .arg(&path)
            .output()
            .expect("run kubernetes-validate");
        assert!(
            out.status.success(),
            "kubernetes-validate --strict on {file}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A stack that uses what the examples do not: a `once` command of a
/// service with nothing long-running, hosts in a command line, an http check.
const MORE: &str = "\
name: more
services:
  db:
    commands:
      pg: { command: [/usr/bin/postgres, -p, \"${port}\"], port: auto, memory_limit: 100MB, stop_signal: SIGINT }
    provides:
      DATABASE_URL: postgres://${pg.host}:${pg.port}/x
  migrate:
    depends_on: [db]
    commands:
      run: { command: \"migrate ${DATABASE_URL}\", when_to_run: once }
  web:
    depends_on: [migrate, db]
    commands:
      app:
        command: serve --db ${DATABASE_URL}
        port: auto
        ready: { http: \"http://127.0.0.1:${port}/health\", interval: 2s }
";

#[test]
fn nomad_jobs_match_nomads_api() {
    let project = Project::with_stack(MORE);
    let mut jobs: Vec<(String, Value)> = STACKS
        .iter()
        .map(|file| {
            let out = export(&project, file, &["nomad"]);
            (
                file.to_string(),
                serde_json::from_slice(&out).expect("JSON"),
            )
        })
        .collect();
    let out = project.orch().args(["export", "nomad"]).assert().success();
    jobs.push((
        "MORE".into(),
        serde_json::from_slice(&out.get_output().stdout).expect("JSON"),
    ));
    for (file, job) in &jobs {
        let mut problems = Vec::new();
        nomad::conforms(job, nomad::ROOT, "", &mut problems);
        nomad::rules(&job["Job"], &mut problems);
        assert!(problems.is_empty(), "{file}: {problems:#?}");
    }
    let more = &jobs.last().expect("MORE").1["Job"];
    let web = &more["TaskGroups"][1];
    assert_eq!(web["Tasks"][0]["Name"], "migrate-run", "{web:#}");
    assert_eq!(web["Services"][0]["Checks"][0]["Path"], "/health");
    assert_eq!(
        web["Services"][0]["Checks"][0]["Interval"],
        2_000_000_000u64
    );
}

#[test]
fn the_nomad_check_rejects_misspelt_and_mistyped_fields() {
    let good = serde_json::json!({"Job": {"ID": "x", "TaskGroups": [{"Name": "g", "RestartPolicy": {"Interval": 1_000_000_000u64}, "Tasks": [{"Name": "t", "Env": {"A": "b"}}]}]}});
    let mut problems = Vec::new();
    nomad::conforms(&good, nomad::ROOT, "", &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    for (bad, problem) in [
        (r#"{"Job": {"Id": "x"}}"#, ".Job.Id: not a field"),
        (
            r#"{"Job": {"TaskGroups": [{"Count": "2"}]}}"#,
            ".Job.TaskGroups[0].Count: expected an integer",
        ),
        (
            r#"{"Job": {"TaskGroups": [{"RestartPolicy": {"Interval": "60s"}}]}}"#,
            ".Job.TaskGroups[0].RestartPolicy.Interval: expected nanoseconds",
        ),
        (
            r#"{"Job": {"TaskGroups": [{"Tasks": [{"Envs": {}}]}]}}"#,
            ".Job.TaskGroups[0].Tasks[0].Envs: not a field",
        ),
        (
            r#"{"Job": {"TaskGroups": [{"Tasks": [{"Env": {"A": 1}}]}]}}"#,
            ".Job.TaskGroups[0].Tasks[0].Env.A: expected a string",
        ),
    ] {
        let mut problems = Vec::new();
        nomad::conforms(
            &serde_json::from_str(bad).expect("JSON"),
            nomad::ROOT,
            "",
            &mut problems,
        );
        assert_eq!(problems, [problem.to_owned()], "{bad}");
    }
}

/// Nomad's API, as far as a job submitted through it goes.
mod nomad {
    use serde_json::Value;

    /// The JSON type of a field of Nomad's API structs.
    #[derive(Clone, Copy)]
    pub enum Ty {
        Str,
        Int,
        Bool,
        /// `time.Duration`: an integer of nanoseconds.
        Nanos,
        Strings,
        /// `map[string]string`
        StrMap,
        /// `map[string]any`, a driver's `Config`
        AnyMap,
        Obj(&'static [(&'static str, Ty)]),
        List(&'static [(&'static str, Ty)]),
        /// A field orch never writes; only its name is checked.
        Unchecked,
    }
    use Ty::*;

    pub const ROOT: &[(&str, Ty)] = &[("Job", Obj(JOB))];

    // api/jobs.go, type Job (the fields a submitted job carries).
    const JOB: &[(&str, Ty)] = &[
        ("Region", Str),
        ("Namespace", Str),
        ("ID", Str),
        ("Name", Str),
        ("Type", Str),
        ("Priority", Int),
        ("AllAtOnce", Bool),
        ("Datacenters", Strings),
        ("NodePool", Str),
        ("Constraints", Unchecked),
        ("Affinities", Unchecked),
        ("TaskGroups", List(TASK_GROUP)),
        ("Update", Unchecked),
        ("Multiregion", Unchecked),
        ("Spreads", Unchecked),
        ("Periodic", Unchecked),
        ("ParameterizedJob", Unchecked),
        ("Reschedule", Unchecked),
        ("Migrate", Unchecked),
        ("Meta", StrMap),
        ("UI", Unchecked),
    ];
    // api/tasks.go, type TaskGroup.
    const TASK_GROUP: &[(&str, Ty)] = &[
        ("Name", Str),
        ("Count", Int),
        ("Constraints", Unchecked),
        ("Affinities", Unchecked),
        ("Tasks", List(TASK)),
        ("Spreads", Unchecked),
        ("Volumes", Unchecked),
        ("RestartPolicy", Obj(RESTART_POLICY)),
        ("Disconnect", Unchecked),
        ("ReschedulePolicy", Unchecked),
        ("EphemeralDisk", Unchecked),
        ("Update", Unchecked),
        ("Migrate", Unchecked),
        ("Networks", List(NETWORK_RESOURCE)),
        ("Meta", StrMap),
        ("Services", List(SERVICE)),
        ("ShutdownDelay", Nanos),
        ("MaxRunDuration", Nanos),
        ("StopAfterClientDisconnect", Nanos),
        ("MaxClientDisconnect", Nanos),
        ("Scaling", Unchecked),
        ("Consul", Unchecked),
        ("PreventRescheduleOnLost", Bool),
    ];
    // api/tasks.go, type RestartPolicy.
    const RESTART_POLICY: &[(&str, Ty)] = &[
        ("Interval", Nanos),
        ("Attempts", Int),
        ("Delay", Nanos),
        ("Mode", Str),
        ("RenderTemplates", Bool),
    ];
    // api/tasks.go, type Task.
    const TASK: &[(&str, Ty)] = &[
        ("Name", Str),
        ("Driver", Str),
        ("User", Str),
        ("Lifecycle", Obj(LIFECYCLE)),
        ("Config", AnyMap),
        ("Constraints", Unchecked),
        ("Affinities", Unchecked),
        ("Env", StrMap),
        ("Services", List(SERVICE)),
        ("Resources", Obj(RESOURCES)),
        ("RestartPolicy", Obj(RESTART_POLICY)),
        ("Meta", StrMap),
        ("KillTimeout", Nanos),
        ("LogConfig", Unchecked),
        ("Artifacts", Unchecked),
        ("Vault", Unchecked),
        ("Consul", Unchecked),
        ("Templates", List(TEMPLATE)),
        ("DispatchPayload", Unchecked),
        ("VolumeMounts", Unchecked),
        ("CSIPluginConfig", Unchecked),
        ("Leader", Bool),
        ("ShutdownDelay", Nanos),
        ("KillSignal", Str),
        ("Kind", Str),
        ("ScalingPolicies", Unchecked),
        ("Secrets", Unchecked),
        ("Identity", Unchecked),
        ("Identities", Unchecked),
        ("Actions", Unchecked),
        ("Schedule", Unchecked),
    ];
    // api/tasks.go, type TaskLifecycle.
    const LIFECYCLE: &[(&str, Ty)] = &[("Hook", Str), ("Sidecar", Bool)];
    // api/tasks.go, type Template.
    const TEMPLATE: &[(&str, Ty)] = &[
        ("SourcePath", Str),
        ("DestPath", Str),
        ("EmbeddedTmpl", Str),
        ("ChangeMode", Str),
        ("ChangeScript", Unchecked),
        ("ChangeSignal", Str),
        ("Once", Bool),
        ("Splay", Nanos),
        ("Perms", Str),
        ("Uid", Int),
        ("Gid", Int),
        ("LeftDelim", Str),
        ("RightDelim", Str),
        ("Envvars", Bool),
        ("VaultGrace", Nanos),
        ("Wait", Unchecked),
        ("ErrMissingKey", Bool),
    ];
    // api/resources.go, type Resources.
    const RESOURCES: &[(&str, Ty)] = &[
        ("CPU", Int),
        ("Cores", Int),
        ("MemoryMB", Int),
        ("MemoryMaxMB", Int),
        ("DiskMB", Int),
        ("Networks", List(NETWORK_RESOURCE)),
        ("Devices", Unchecked),
        ("NUMA", Unchecked),
        ("SecretsMB", Int),
        ("IOPS", Int),
    ];
    // api/resources.go, types NetworkResource and Port.
    const NETWORK_RESOURCE: &[(&str, Ty)] = &[
        ("Mode", Str),
        ("Device", Str),
        ("CIDR", Str),
        ("IP", Str),
        ("DNS", Unchecked),
        ("ReservedPorts", List(PORT)),
        ("DynamicPorts", List(PORT)),
        ("Hostname", Str),
        ("MBits", Int),
        ("CNI", Unchecked),
    ];
    const PORT: &[(&str, Ty)] = &[
        ("Label", Str),
        ("Value", Int),
        ("To", Int),
        ("HostNetwork", Str),
        ("IgnoreCollision", Bool),
    ];
    // api/services.go, types Service and ServiceCheck.
    const SERVICE: &[(&str, Ty)] = &[
        ("Name", Str),
        ("Tags", Strings),
        ("CanaryTags", Strings),
        ("EnableTagOverride", Bool),
        ("PortLabel", Str),
        ("AddressMode", Str),
        ("Address", Str),
        ("Checks", List(CHECK)),
        ("CheckRestart", Unchecked),
        ("Connect", Unchecked),
        ("Meta", StrMap),
        ("CanaryMeta", StrMap),
        ("TaggedAddresses", StrMap),
        ("TaskName", Str),
        ("OnUpdate", Str),
        ("Identity", Unchecked),
        ("Weights", Unchecked),
        ("Provider", Str),
        ("Cluster", Str),
        ("Kind", Str),
    ];
    const CHECK: &[(&str, Ty)] = &[
        ("Name", Str),
        ("Type", Str),
        ("Command", Str),
        ("Args", Strings),
        ("Path", Str),
        ("Protocol", Str),
        ("PortLabel", Str),
        ("Expose", Bool),
        ("AddressMode", Str),
        ("Advertise", Str),
        ("Interval", Nanos),
        ("Timeout", Nanos),
        ("InitialStatus", Str),
        ("Notes", Str),
        ("TLSServerName", Str),
        ("TLSSkipVerify", Bool),
        ("Header", Unchecked),
        ("Method", Str),
        ("CheckRestart", Unchecked),
        ("GRPCService", Str),
        ("GRPCUseTLS", Bool),
        ("TaskName", Str),
        ("SuccessBeforePassing", Int),
        ("FailuresBeforeCritical", Int),
        ("FailuresBeforeWarning", Int),
        ("Body", Str),
        ("OnUpdate", Str),
    ];

    /// Every field of `value` is one of `fields`, of its type.
    pub fn conforms(value: &Value, fields: &[(&str, Ty)], at: &str, problems: &mut Vec<String>) {
        let Some(map) = value.as_object() else {
            problems.push(format!("{at}: expected an object"));
            return;
        };
        for (key, v) in map {
            let here = format!("{at}.{key}");
            match fields.iter().find(|(name, _)| name == key) {
                None => problems.push(format!("{here}: not a field")),
                Some((_, ty)) => typed(v, *ty, &here, problems),
            }
        }
    }

    fn typed(v: &Value, ty: Ty, at: &str, problems: &mut Vec<String>) {
        let mut expect = |ok: bool, what: &str| {
            if !ok {
                problems.push(format!("{at}: expected {what}"));
            }
        };
        match ty {
            Str => expect(v.is_string(), "a string"),
            Int => expect(v.is_i64() || v.is_u64(), "an integer"),
            Bool => expect(v.is_boolean(), "a boolean"),
            Nanos => expect(v.is_i64() || v.is_u64(), "nanoseconds"),
            AnyMap => expect(v.is_object(), "an object"),
            Unchecked => {}
            Strings | List(_) => match v.as_array() {
                None => expect(false, "a list"),
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let here = format!("{at}[{i}]");
                        match ty {
                            List(fields) => conforms(item, fields, &here, problems),
                            _ => typed(item, Str, &here, problems),
                        }
                    }
                }
            },
            StrMap => match v.as_object() {
                None => expect(false, "an object"),
                Some(map) => {
                    for (k, item) in map {
                        typed(item, Str, &format!("{at}.{k}"), problems);
                    }
                }
            },
            Obj(fields) => conforms(v, fields, at, problems),
        }
    }

    /// What Nomad's server checks beyond types (nomad/structs): service
    /// names are DNS labels; a `nomad` service's checks are tcp or http,
    /// at least 1s apart with at least 1s to answer; restart and lifecycle
    /// modes are ones it knows; raw_exec's command is an absolute path.
    pub fn rules(job: &Value, problems: &mut Vec<String>) {
        let label = regex::Regex::new(r"^(?i:[a-z0-9]|[a-z0-9][a-z0-9\-]{0,61}[a-z0-9])$")
            .expect("a valid expression");
        let groups = job["TaskGroups"].as_array().cloned().unwrap_or_default();
        for g in &groups {
            let name = g["Name"].as_str().unwrap_or("?");
            let mut rule = |ok: bool, what: String| {
                if !ok {
                    problems.push(format!("group {name}: {what}"));
                }
            };
            rule(
                matches!(g["RestartPolicy"]["Mode"].as_str(), Some("fail" | "delay")),
                "RestartPolicy.Mode".into(),
            );
            for s in g["Services"].as_array().into_iter().flatten() {
                rule(
                    label.is_match(s["Name"].as_str().unwrap_or("")),
                    format!("service name {}", s["Name"]),
                );
                rule(s["Provider"] == "nomad", "Provider".into());
                for c in s["Checks"].as_array().into_iter().flatten() {
                    rule(
                        matches!(c["Type"].as_str(), Some("tcp" | "http")),
                        format!("check type {}", c["Type"]),
                    );
                    for field in ["Interval", "Timeout"] {
                        rule(
                            c[field].as_u64().is_some_and(|n| n >= 1_000_000_000),
                            format!("check {field} {}", c[field]),
                        );
                    }
                }
            }
            for t in g["Tasks"].as_array().into_iter().flatten() {
                rule(t["Driver"] == "raw_exec", "Driver".into());
                rule(
                    t["Config"]["command"]
                        .as_str()
                        .is_some_and(|c| c.starts_with('/')),
                    "raw_exec's command is an absolute path".into(),
                );
                if let Some(hook) = t.get("Lifecycle") {
                    rule(
                        matches!(
                            hook["Hook"].as_str(),
                            Some("prestart" | "poststart" | "poststop")
                        ),
                        format!("lifecycle hook {}", hook["Hook"]),
                    );
                }
            }
        }
        if groups.is_empty() {
            problems.push("a job needs a task group".into());
        }
    }
}
