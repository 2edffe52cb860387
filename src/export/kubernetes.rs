//! `orch export kubernetes --image IMAGE [--image SERVICE=IMAGE]... [--namespace NS]`:
//! multi-document YAML.
//!
//! Per command with a port, a ClusterIP Service named `SERVICE-COMMAND`;
//! per long-running command a Deployment, per `once` command a Job. Hosts
//! are the Services' DNS names. Kubernetes has no start order, so each pod
//! waits for the Services of its dependencies in an init container.

use indexmap::IndexMap;
use serde_json::{json, Map, Value};

use super::{
    check_warning, dns_label, endpoint, endpoint_label, waited_for, whole_seconds, yaml, Export,
    ExportError, HttpUrl, Warnings,
};
use crate::model::text::Part;
use crate::model::{Check, Command, Program, Respawn, ServiceId, Stack, Text, WhenToRun};

/// The image of the init containers that wait for a dependency's Service.
pub const WAIT_IMAGE: &str = "busybox:1.36";

/// What the command line says.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Each `--image`: `IMAGE` for every service, or `SERVICE=IMAGE`.
    pub images: Vec<String>,
    pub namespace: Option<String>,
}

pub fn export(stack: &Stack, options: &Options) -> Result<Export, ExportError> {
    super::unique_labels(stack)?;
    let images = images(stack, &options.images)?;
    if let Some(ns) = &options.namespace {
        if dns_label(&[ns]) != *ns {
            return Err(ExportError::Usage {
                message: format!("`{ns}` is not a namespace name"),
                help: Some("a namespace is a DNS label: lowercase letters, digits and `-`, starting with a letter".into()),
            });
        }
    }
    let mut warnings = Warnings::default();
    let mut docs = Vec::new();
    let part_of = dns_label(&[&stack.name]);
    for (sid, service) in stack.services.iter().enumerate() {
        let image = images[sid].as_deref().unwrap_or_default();
        for command in &service.commands {
            let at = endpoint(stack, sid, command);
            let name = endpoint_label(&at);
            let labels = json!({
                "app.kubernetes.io/name": name,
                "app.kubernetes.io/part-of": part_of,
            });
            let metadata = |labels: &Value| {
                let mut m = json!({"name": name, "labels": labels});
                if let Some(ns) = &options.namespace {
                    m["namespace"] = json!(ns);
                }
                m
            };
            let port = command.instances.first().and_then(|i| i.port);
            if let Some(port) = port {
                docs.push(json!({
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": metadata(&labels),
                    "spec": {
                        "type": "ClusterIP",
                        "selector": labels,
                        "ports": [{"name": "port", "port": port, "targetPort": port, "protocol": "TCP"}],
                    },
                }));
            }
            let mut pod = json!({
                "containers": [container(stack, sid, command, image, &mut warnings)],
                "terminationGracePeriodSeconds": whole_seconds(command.stop_timeout),
            });
            let waits = waits(stack, sid, &mut warnings);
            if !waits.is_empty() {
                pod["initContainers"] = Value::Array(waits);
            }
            let replicas = command.instances.len();
            let template = json!({"metadata": {"labels": labels}, "spec": pod});
            docs.push(match command.when {
                WhenToRun::Always => json!({
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": metadata(&labels),
                    "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": template},
                }),
                WhenToRun::Once => {
                    let mut template = template;
                    template["spec"]["restartPolicy"] = json!("Never");
                    json!({
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "metadata": metadata(&labels),
                        "spec": {"completions": replicas, "parallelism": replicas, "backoffLimit": 0, "template": template},
                    })
                }
            });
            if replicas > 1 {
                if let Some(port) = port {
                    warnings.add(
                        "number_of_processes",
                        &at,
                        format!("the {replicas} replicas all listen on port {port} (the first process's) and all have ORCH_INSTANCE=0"),
                    );
                }
            }
        }
    }
    let text = docs
        .iter()
        .map(yaml::document)
        .collect::<Vec<_>>()
        .join("---\n");
    Ok(Export {
        files: vec![(String::new(), text)],
        warnings: warnings.into_vec(),
    })
}

/// The image of each service, from `--image` values; `None` for bundles.
fn images(stack: &Stack, given: &[String]) -> Result<Vec<Option<String>>, ExportError> {
    let usage = |message: String, help: &str| ExportError::Usage {
        message,
        help: Some(help.into()),
    };
    let mut default = None;
    let mut by_service: IndexMap<usize, String> = IndexMap::new();
    for value in given {
        match value.split_once('=') {
            Some((service, image)) => {
                let sid = stack
                    .find_service(service)
                    .map_err(|e| ExportError::Usage {
                        message: format!("--image {value}: {}", e.message),
                        help: Some(e.help),
                    })?;
                if image.is_empty() {
                    return Err(usage(
                        format!("--image {value}: the image is empty"),
                        "write --image SERVICE=IMAGE",
                    ));
                }
                by_service.insert(sid, image.to_owned());
            }
            None if value.is_empty() => {
                return Err(usage(
                    "--image: the image is empty".into(),
                    "write --image IMAGE",
                ))
            }
            None if default.is_some() => return Err(usage(
                format!("--image {value}: an image for every service is already given"),
                "give one --image IMAGE, and --image SERVICE=IMAGE for the services that differ",
            )),
            None => default = Some(value.clone()),
        }
    }
    stack
        .services
        .iter()
        .enumerate()
        .map(|(sid, service)| {
            if service.is_bundle() {
                return Ok(None);
            }
            by_service
                .get(&sid)
                .or(default.as_ref())
                .cloned()
                .map(Some)
                .ok_or_else(|| {
                    usage(
                        format!("no image for service `{}`", service.name),
                        &format!(
                            "give --image IMAGE for every service, or --image {}=IMAGE",
                            service.name
                        ),
                    )
                })
        })
        .collect()
}

/// The container of one command.
fn container(
    stack: &Stack,
    sid: ServiceId,
    command: &Command,
    image: &str,
    warnings: &mut Warnings,
) -> Value {
    let at = endpoint(stack, sid, command);
    let instance = command.instances.first().expect("a command has a process");
    let mut c = Map::new();
    c.insert("name".into(), json!(dns_label(&[&command.name])));
    c.insert("image".into(), json!(image));
    let argv: Vec<String> = match &instance.program_text {
        Program::Shell(text) => vec!["/bin/sh".into(), "-c".into(), render(text)],
        Program::Argv(args) => args.iter().map(render).collect(),
    };
    c.insert("command".into(), json!(argv[..1]));
    if argv.len() > 1 {
        c.insert("args".into(), json!(argv[1..]));
    }
    c.insert(
        "workingDir".into(),
        json!(super::folder(&instance.working_dir)),
    );
    let env: Vec<Value> = stack
        .member_env_text(sid, instance)
        .iter()
        .map(|(name, value)| json!({"name": name, "value": render(value)}))
        .collect();
    c.insert("env".into(), json!(env));
    if let Some(port) = instance.port {
        c.insert("ports".into(), json!([{"containerPort": port}]));
    }
    let ready = &instance.ready;
    let period = whole_seconds(ready.interval);
    let probe = match &ready.check {
        Check::Tcp { port, .. } => Some(json!({"tcpSocket": {"port": port}})),
        Check::Http { url } => match HttpUrl::parse(url) {
            Some(u) => Some(json!({"httpGet": {"path": u.path, "port": u.port}})),
            None => {
                warnings.add(
                    "ready.http",
                    &at,
                    format!("Kubernetes cannot read the port of `{url}`; no readiness probe"),
                );
                None
            }
        },
        Check::Command(program) => Some(json!({"exec": {"command": exec(program)}})),
        Check::Started | Check::Completed | Check::Log(_) => None,
    };
    check_warning(warnings, &at, &ready.check, "Kubernetes");
    if let Some(mut probe) = probe {
        probe["periodSeconds"] = json!(period);
        c.insert("readinessProbe".into(), probe);
    }
    if let Some(monitor) = &instance.monitor {
        c.insert(
            "livenessProbe".into(),
            json!({
                "exec": {"command": exec(&monitor.program)},
                "periodSeconds": whole_seconds(monitor.interval),
                "timeoutSeconds": whole_seconds(monitor.timeout),
            }),
        );
    }
    if let Some(bytes) = command.memory_limit {
        c.insert(
            "resources".into(),
            json!({"limits": {"memory": quantity(bytes)}}),
        );
    }
    for (field, value) in [("user", &command.user), ("group", &command.group)] {
        if let Some(value) = value {
            warnings.add(
                field,
                &at,
                format!("a container runs as its image's account, not `{value}`; set the pod's securityContext yourself"),
            );
        }
    }
    if !command.system_packages.is_empty() {
        warnings.add(
            "system_packages",
            &at,
            format!(
                "the image must provide {}",
                command.system_packages.join(", ")
            ),
        );
    }
    if command.stop_signal != nix::sys::signal::Signal::SIGTERM {
        warnings.add(
            "stop_signal",
            &at,
            format!(
                "Kubernetes stops a container with SIGTERM, not {} (set STOPSIGNAL in the image)",
                command.stop_signal
            ),
        );
    }
    if command.when == WhenToRun::Always && command.respawn != Respawn::DEFAULT {
        warnings.add(
            "respawn",
            &at,
            "Kubernetes restarts a container with its own back-off and never gives up",
        );
    }
    Value::Object(c)
}

/// The init containers that wait for the Services of what `sid` depends on.
fn waits(stack: &Stack, sid: ServiceId, warnings: &mut Warnings) -> Vec<Value> {
    let mut out = Vec::new();
    for dep in waited_for(stack, sid) {
        for command in &stack.services[dep].commands {
            let target = endpoint(stack, dep, command);
            match (command.when, command.instances.first().and_then(|i| i.port)) {
                (WhenToRun::Once, _) => warnings.add(
                    "depends_on",
                    &stack.services[sid].name,
                    format!("{target} runs once, as a Job; Kubernetes does not hold `{}` until it has completed", stack.services[sid].name),
                ),
                (WhenToRun::Always, Some(port)) => {
                    let host = endpoint_label(&target);
                    out.push(json!({
                        "name": dns_label(&["wait", &host]),
                        "image": WAIT_IMAGE,
                        "command": ["sh", "-c", r#"until nc -z -w 2 "$0" "$1"; do echo "waiting for $0:$1"; sleep 2; done"#, host, port.to_string()],
                    }));
                }
                (WhenToRun::Always, None) => {}
            }
        }
    }
    out
}

fn exec(program: &Program) -> Vec<String> {
    match program {
        Program::Shell(text) => vec!["/bin/sh".into(), "-c".into(), text.clone()],
        Program::Argv(args) => args.clone(),
    }
}

/// A value as Kubernetes passes it on: hosts are Service names, and `$(`
/// and `$$` (which Kubernetes expands) are escaped.
fn render(text: &Text) -> String {
    let mut out = String::new();
    for part in text.parts() {
        match part {
            Part::Literal(literal) => {
                let mut chars = literal.chars().peekable();
                while let Some(c) = chars.next() {
                    out.push(c);
                    if c == '$' && matches!(chars.peek(), Some('$' | '(')) {
                        out.push('$');
                    }
                }
            }
            Part::Host(endpoint) => out.push_str(&endpoint_label(endpoint)),
        }
    }
    out
}

/// Bytes as a Kubernetes quantity: `512Mi`, or the number of bytes.
fn quantity(bytes: u64) -> String {
    for (unit, size) in [("Gi", 1u64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
        if bytes % size == 0 {
            return format!("{}{unit}", bytes / size);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_kubernetes_would_expand_are_escaped() {
        assert_eq!(
            render(&Text::literal("$HOME $(date) $$ 5$")),
            "$HOME $$(date) $$$ 5$"
        );
    }

    #[test]
    fn quantities() {
        assert_eq!(quantity(512 << 20), "512Mi");
        assert_eq!(quantity(1 << 30), "1Gi");
        assert_eq!(quantity(1000), "1000");
    }
}
