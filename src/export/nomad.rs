//! `orch export nomad`: a Nomad job as the HTTP API takes it, `{"Job": {...}}`.
//!
//! A task group per long-running command (`Count` = number_of_processes),
//! with one `raw_exec` task; for a command with a port, a static port and a
//! service of Nomad's own discovery (`Provider: nomad`) named
//! `SERVICE-COMMAND`. Hosts are looked up at run time: a value that names
//! one is rendered by a template (`Envvars: true`) with `nomadService`, so a
//! task finds its dependencies on whatever client they land. `once`
//! commands run as prestart tasks in the groups of their service's
//! long-running commands (or, for a service with none, of its dependents').

use std::time::Duration;

use indexmap::IndexMap;
use serde_json::{json, Map, Value};

use super::{
    check_warning, dns_label, endpoint, endpoint_label, Export, ExportError, HttpUrl, Warnings,
};
use crate::model::text::Part;
use crate::model::{Check, Command, Endpoint, Program, ServiceId, Stack, Text, WhenToRun};

/// The label of a command's port in its group's network.
const PORT_LABEL: &str = "port";
/// Nomad refuses checks more frequent, or with a shorter timeout, than this.
const MIN_CHECK: Duration = Duration::from_secs(1);

pub fn export(stack: &Stack) -> Result<Export, ExportError> {
    super::unique_labels(stack)?;
    let mut warnings = Warnings::default();
    let prestart = prestart_hosts(stack, &mut warnings);
    let mut groups = Vec::new();
    for (sid, service) in stack.services.iter().enumerate() {
        for command in &service.commands {
            if command.when == WhenToRun::Once {
                continue;
            }
            groups.push(group(stack, sid, command, &prestart, &mut warnings));
        }
    }
    let job = json!({"Job": {
        "ID": stack.name,
        "Name": stack.name,
        "Type": "service",
        "Datacenters": ["*"],
        "TaskGroups": groups,
    }});
    let text = serde_json::to_string_pretty(&job).expect("a JSON value prints") + "\n";
    Ok(Export {
        files: vec![(String::new(), text)],
        warnings: warnings.into_vec(),
    })
}

/// For each `once` command, the long-running commands in whose groups it runs first.
fn prestart_hosts(
    stack: &Stack,
    warnings: &mut Warnings,
) -> Vec<(ServiceId, usize, Vec<Endpoint>)> {
    let long_running = |sid: ServiceId| -> Vec<Endpoint> {
        stack.services[sid]
            .commands
            .iter()
            .filter(|c| c.when == WhenToRun::Always)
            .map(|c| endpoint(stack, sid, c))
            .collect()
    };
    let mut out = Vec::new();
    for (sid, service) in stack.services.iter().enumerate() {
        for (cid, command) in service.commands.iter().enumerate() {
            if command.when != WhenToRun::Once {
                continue;
            }
            let mut hosts = long_running(sid);
            if hosts.is_empty() {
                for (dependent, s) in stack.services.iter().enumerate() {
                    if s.depends_on.contains(&sid) {
                        hosts.extend(long_running(dependent));
                    }
                }
            }
            if hosts.is_empty() {
                warnings.add(
                    "when_to_run",
                    endpoint(stack, sid, command),
                    "Nomad runs `once` commands as prestart tasks, and nothing long-running runs with this one or after it: left out",
                );
            }
            out.push((sid, cid, hosts));
        }
    }
    out
}

fn group(
    stack: &Stack,
    sid: ServiceId,
    command: &Command,
    prestart: &[(ServiceId, usize, Vec<Endpoint>)],
    warnings: &mut Warnings,
) -> Value {
    let at = endpoint(stack, sid, command);
    let label = endpoint_label(&at);
    let instance = command.instances.first().expect("a command has a process");
    let mut tasks = Vec::new();
    for (once_sid, cid, hosts) in prestart {
        if hosts.contains(&at) {
            let once = &stack.services[*once_sid].commands[*cid];
            let mut t = task(stack, *once_sid, once, warnings);
            t.insert(
                "Lifecycle".into(),
                json!({"Hook": "prestart", "Sidecar": false}),
            );
            t.insert(
                "RestartPolicy".into(),
                json!({"Attempts": 0, "Mode": "fail"}),
            );
            tasks.push(Value::Object(t));
        }
    }
    tasks.push(Value::Object(task(stack, sid, command, warnings)));
    let mut g = Map::new();
    g.insert("Name".into(), json!(label));
    g.insert("Count".into(), json!(command.instances.len()));
    g.insert(
        "RestartPolicy".into(),
        json!({
            "Attempts": command.respawn.count,
            "Interval": nanos(command.respawn.window),
            "Delay": nanos(command.respawn.backoff),
            "Mode": "fail",
        }),
    );
    if let Some(port) = instance.port {
        g.insert(
            "Networks".into(),
            json!([{"ReservedPorts": [{"Label": PORT_LABEL, "Value": port}]}]),
        );
        let mut service = json!({"Name": label, "Provider": "nomad", "PortLabel": PORT_LABEL});
        if let Some(check) = check(
            &instance.ready.check,
            instance.ready.interval,
            &at,
            warnings,
        ) {
            service["Checks"] = json!([check]);
        }
        g.insert("Services".into(), json!([service]));
        if command.instances.len() > 1 {
            warnings.add(
                "number_of_processes",
                &at,
                format!("every allocation listens on static port {port}, so each needs a client of its own"),
            );
        }
    } else if !matches!(instance.ready.check, Check::Started) {
        warnings.add(
            "ready",
            &at,
            "a Nomad check belongs to a service, and this command has no port: no check",
        );
    }
    if instance.monitor.is_some() {
        warnings.add(
            "monitor",
            &at,
            "Nomad's own service checks run no commands: no periodic check",
        );
    }
    g.insert("Tasks".into(), Value::Array(tasks));
    Value::Object(g)
}

/// The check of a service, from `ready`.
fn check(
    check: &Check,
    interval: Duration,
    at: &Endpoint,
    warnings: &mut Warnings,
) -> Option<Value> {
    let every = nanos(interval.max(MIN_CHECK));
    check_warning(warnings, at, check, "Nomad");
    match check {
        Check::Tcp { .. } => {
            Some(json!({"Name": "ready", "Type": "tcp", "Interval": every, "Timeout": every}))
        }
        Check::Http { url } => match HttpUrl::parse(url) {
            Some(u) => Some(
                json!({"Name": "ready", "Type": "http", "Path": u.path, "Interval": every, "Timeout": every}),
            ),
            None => {
                warnings.add(
                    "ready.http",
                    at,
                    format!("Nomad cannot read the port of `{url}`: no check"),
                );
                None
            }
        },
        Check::Command(_) => {
            warnings.add(
                "ready.command",
                at,
                "Nomad's own service checks are tcp and http only: no check",
            );
            None
        }
        Check::Started | Check::Completed | Check::Log(_) => None,
    }
}

/// The task that runs `command`, in its working folder through `/bin/sh`
/// (raw_exec has none of its own).
fn task(
    stack: &Stack,
    sid: ServiceId,
    command: &Command,
    warnings: &mut Warnings,
) -> Map<String, Value> {
    let at = endpoint(stack, sid, command);
    let instance = command.instances.first().expect("a command has a process");
    let mut template = Template::default();
    let mut args = vec![
        "-c".to_owned(),
        r#"cd "$0" && exec "$@""#.to_owned(),
        super::folder(&instance.working_dir),
    ];
    match &instance.program_text {
        Program::Shell(text) => {
            args.extend([
                "/bin/sh".to_owned(),
                "-c".to_owned(),
                template.interpolated(text, &at),
            ]);
        }
        Program::Argv(argv) => args.extend(argv.iter().map(|a| template.interpolated(a, &at))),
    }
    let mut env = Map::new();
    for (name, value) in stack.member_env_text(sid, instance) {
        if name == "ORCH_INSTANCE" {
            env.insert(name, json!("${NOMAD_ALLOC_INDEX}"));
        } else if value.has_hosts() {
            template.line(&name, &value, &at);
        } else {
            env.insert(name, json!(value.loopback()));
        }
    }
    let mut t = Map::new();
    t.insert("Name".into(), json!(endpoint_label(&at)));
    t.insert("Driver".into(), json!("raw_exec"));
    t.insert("Config".into(), json!({"command": "/bin/sh", "args": args}));
    t.insert("Env".into(), Value::Object(env));
    if !template.lines.is_empty() {
        t.insert(
            "Templates".into(),
            json!([{
                "EmbeddedTmpl": template.lines.values().map(|l| format!("{l}\n")).collect::<String>(),
                "DestPath": "local/orch-hosts.env",
                "Envvars": true,
                "ChangeMode": "restart",
            }]),
        );
    }
    if let Some(user) = &command.user {
        t.insert("User".into(), json!(user));
    }
    if let Some(group) = &command.group {
        warnings.add("group", &at, format!("a Nomad task has no group of its own, not `{group}`: it runs with its user's group"));
    }
    if !command.system_packages.is_empty() {
        warnings.add(
            "system_packages",
            &at,
            format!(
                "Nomad does not check them; install {} on every client",
                command.system_packages.join(", ")
            ),
        );
    }
    t.insert("KillSignal".into(), json!(command.stop_signal.as_str()));
    t.insert("KillTimeout".into(), json!(nanos(command.stop_timeout)));
    if let Some(bytes) = command.memory_limit {
        t.insert(
            "Resources".into(),
            json!({"MemoryMB": bytes.div_ceil(1 << 20)}),
        );
    }
    t
}

/// The lines of a task's environment template, by variable name.
#[derive(Default)]
struct Template {
    lines: IndexMap<String, String>,
}

impl Template {
    /// `NAME="..."`: literal parts escaped for Nomad's env-file reader (JSON
    /// escapes in double quotes) and for Go templates, hosts looked up.
    fn line(&mut self, name: &str, value: &Text, own: &Endpoint) {
        let mut out = format!("{name}=\"");
        for part in value.parts() {
            match part {
                Part::Literal(text) => {
                    let json = serde_json::to_string(text).expect("a string is JSON");
                    out.push_str(&json[1..json.len() - 1].replace("{{", r#"{{ "{{" }}"#));
                }
                Part::Host(endpoint) if endpoint == own => {
                    out.push_str(&format!(r#"{{{{ env "NOMAD_IP_{PORT_LABEL}" }}}}"#));
                }
                Part::Host(endpoint) => out.push_str(&format!(
                    r#"{{{{ with nomadService "{}" }}}}{{{{ with index . 0 }}}}{{{{ .Address }}}}{{{{ end }}}}{{{{ end }}}}"#,
                    endpoint_label(endpoint)
                )),
            }
        }
        out.push('"');
        self.lines.insert(name.to_owned(), out);
    }

    /// A command-line word: a host is `${VAR}`, which Nomad interpolates
    /// from the task's environment; the variable is a line of the template.
    fn interpolated(&mut self, value: &Text, own: &Endpoint) -> String {
        let mut out = String::new();
        for part in value.parts() {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Host(endpoint) if endpoint == own => {
                    out.push_str(&format!("${{NOMAD_IP_{PORT_LABEL}}}"));
                }
                Part::Host(endpoint) => {
                    let var = host_variable(endpoint);
                    self.line(&var, &Text::host(endpoint.clone()), own);
                    out.push_str(&format!("${{{var}}}"));
                }
            }
        }
        out
    }
}

/// `ORCH_HOST_DB_POSTGRES`: the variable that holds where a command is reached.
fn host_variable(endpoint: &Endpoint) -> String {
    format!(
        "ORCH_HOST_{}",
        dns_label(&[&endpoint.service, &endpoint.command])
            .replace('-', "_")
            .to_ascii_uppercase()
    )
}

/// A duration as Nomad's API takes it: nanoseconds.
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg() -> Endpoint {
        Endpoint::new("db", "pg")
    }

    #[test]
    fn template_lines_escape_literals_and_look_hosts_up() {
        let mut t = Template::default();
        let mut url = Text::literal("pg://\"{{x}}\"@");
        url.push_host(pg());
        url.push_str(":5432\n");
        let me = Endpoint::new("api", "web");
        t.line("URL", &url, &me);
        assert_eq!(
            t.lines["URL"],
            r#"URL="pg://\"{{ "{{" }}x}}\"@{{ with nomadService "db-pg" }}{{ with index . 0 }}{{ .Address }}{{ end }}{{ end }}:5432\n""#
        );
        let own = Text::host(me.clone());
        assert_eq!(t.interpolated(&own, &me), "${NOMAD_IP_port}");
        assert_eq!(
            t.interpolated(&url, &me)
                .matches("${ORCH_HOST_DB_PG}")
                .count(),
            1
        );
        assert!(t.lines.contains_key("ORCH_HOST_DB_PG"));
    }
}
