//! A docker compose file as a stack: each service with a command becomes
//! a service of one command. What has no meaning outside containers
//! (images, builds, volumes, networks, ...) is left out with a warning.

use crate::config::yaml::{self, Node, Value};

use super::emit::{self, Port, Program, Ready, Service, Stack};

/// Service keys that carry over.
const KNOWN: [&str; 10] = [
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "working_dir",
    "ports",
    "depends_on",
    "healthcheck",
    "restart",
    "profiles",
];

/// The stack, and a warning for each thing that cannot carry over; an
/// error when the text is not a compose file at all.
pub fn convert(text: &str) -> Result<(Stack, Vec<String>), String> {
    let root = yaml::parse(text).map_err(|e| format!("not YAML: {}", e.message))?;
    let mut warnings = Vec::new();
    let mut services = None;
    for (key, value) in entries(&root) {
        match key.as_str() {
            "services" => services = Some(value),
            "version" | "name" => {}
            _ if key.starts_with("x-") => {}
            other => warnings.push(format!(
                "top-level `{other}` cannot carry over: orch runs processes on this machine, not containers"
            )),
        }
    }
    let services = services.ok_or("a compose file needs `services:`")?;
    let mut stack = Stack::default();
    // Services left out, and those whose dependents wait for them to complete.
    let mut left_out: Vec<String> = Vec::new();
    let mut completes: Vec<String> = Vec::new();
    for (raw_name, node) in entries(services) {
        let name = emit::name(&raw_name);
        if name != raw_name {
            warnings.push(format!("service `{raw_name}` is named `{name}`"));
        }
        match service(&name, node, &mut warnings, &mut completes) {
            Some(s) => stack.services.push(s),
            None => left_out.push(name),
        }
    }
    for s in &mut stack.services {
        s.depends_on.retain(|dep| {
            let kept = !left_out.contains(dep);
            if !kept {
                warnings.push(format!(
                    "`{}` depends on `{dep}`, which was left out: the dependency is dropped",
                    s.name
                ));
            }
            kept
        });
        if completes.contains(&s.name) {
            s.once = true;
            if s.ready.take().is_some() {
                warnings.push(format!(
                    "`{}`: its healthcheck is dropped: services wait for it to complete, so it runs `once`",
                    s.name
                ));
            }
        }
    }
    Ok((stack, warnings))
}

/// The entries of a mapping, `<<` merge keys folded in (own keys first).
fn entries(node: &Node) -> Vec<(String, &Node)> {
    let Value::Map(map) = &node.value else {
        return Vec::new();
    };
    let mut out: Vec<(String, &Node)> = Vec::new();
    let mut merged: Vec<(String, &Node)> = Vec::new();
    for (k, v) in map {
        let key = yaml::key_text(k);
        if key == "<<" {
            let sources: Vec<&Node> = match &v.value {
                Value::Seq(items) => items.iter().collect(),
                _ => vec![v],
            };
            merged.extend(sources.into_iter().flat_map(entries));
        } else {
            out.push((key, v));
        }
    }
    for (key, v) in merged {
        if !out.iter().any(|(k, _)| *k == key) {
            out.push((key, v));
        }
    }
    out
}

fn get<'a>(node: &'a Node, key: &str) -> Option<&'a Node> {
    entries(node)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// The text of a scalar, whatever it resolved to.
fn text(node: &Node) -> Option<String> {
    match &node.value {
        Value::Str(s) => Some(s.text.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Seq(_) | Value::Map(_) => None,
    }
}

fn texts(node: &Node) -> Vec<String> {
    match &node.value {
        Value::Seq(items) => items.iter().filter_map(text).collect(),
        _ => text(node).into_iter().collect(),
    }
}

fn service(
    name: &str,
    node: &Node,
    warnings: &mut Vec<String>,
    completes: &mut Vec<String>,
) -> Option<Service> {
    let Some(command) = program(get(node, "entrypoint"), get(node, "command")) else {
        let what = match (get(node, "image").and_then(text), get(node, "build")) {
            (Some(image), _) => format!("runs the image `{image}`"),
            (None, Some(_)) => "runs the image it builds".to_owned(),
            (None, None) => "has nothing to run".to_owned(),
        };
        warnings.push(format!(
            "`{name}` {what} and has no command or entrypoint: left out (orch runs commands, not images)"
        ));
        return None;
    };
    let mut s = Service {
        name: name.to_owned(),
        command,
        ..Service::default()
    };
    for (key, value) in entries(node) {
        match key.as_str() {
            "environment" => s.env = environment(value),
            "env_file" => s.env_file = env_files(value),
            "working_dir" => {
                let dir = text(value).unwrap_or_default();
                if dir.starts_with('/') {
                    warnings.push(format!(
                        "`{name}`: working_dir `{dir}` is kept, but it was a path inside the container"
                    ));
                }
                s.working_dir = Some(dir);
            }
            "ports" => s.port = port(name, value, warnings),
            "depends_on" => s.depends_on = depends_on(value, completes),
            "healthcheck" => s.ready = ready(value),
            "restart" => s.respawn_count = restart(name, value, warnings),
            "profiles" => s.profiles = texts(value),
            "image" => warnings.push(format!(
                "`{name}`: the image `{}` is not used; its command runs on this machine",
                text(value).unwrap_or_default()
            )),
            other if !KNOWN.contains(&other) => warnings.push(format!(
                "`{name}`: `{other}` cannot carry over: orch runs processes on this machine, not containers"
            )),
            _ => {}
        }
    }
    Some(s)
}

/// `entrypoint` then `command`: lists stay an argv; with a string among
/// them, one shell command line.
fn program(entrypoint: Option<&Node>, command: Option<&Node>) -> Option<Program> {
    let parts: Vec<&Node> = [entrypoint, command].into_iter().flatten().collect();
    if parts.is_empty() {
        return None;
    }
    let any_string = parts.iter().any(|p| !matches!(p.value, Value::Seq(_)));
    let program = if any_string {
        let words: Vec<String> = parts
            .iter()
            .map(|p| match &p.value {
                Value::Seq(_) => texts(p)
                    .iter()
                    .map(|w| crate::output::shell_quote(w))
                    .collect::<Vec<_>>()
                    .join(" "),
                _ => text(p).unwrap_or_default(),
            })
            .collect();
        Program::Shell(words.join(" "))
    } else {
        Program::Argv(parts.iter().flat_map(|p| texts(p)).collect())
    };
    let empty = match &program {
        Program::Shell(s) => s.trim().is_empty(),
        Program::Argv(a) => a.is_empty(),
    };
    (!empty).then_some(program)
}

/// A mapping, or a list of `KEY=value`; a key without a value comes from
/// orch's own environment, which members inherit anyway.
fn environment(node: &Node) -> Vec<(String, String)> {
    match &node.value {
        Value::Seq(items) => items
            .iter()
            .filter_map(text)
            .filter_map(|item| {
                let (k, v) = item.split_once('=')?;
                Some((k.to_owned(), v.to_owned()))
            })
            .collect(),
        _ => entries(node)
            .into_iter()
            .filter_map(|(k, v)| Some((k, text(v)?)))
            .collect(),
    }
}

fn env_files(node: &Node) -> Vec<(String, bool)> {
    let items: Vec<&Node> = match &node.value {
        Value::Seq(items) => items.iter().collect(),
        _ => vec![node],
    };
    items
        .into_iter()
        .filter_map(|item| match &item.value {
            Value::Map(_) => Some((
                get(item, "path").and_then(text)?,
                !matches!(
                    get(item, "required").map(|r| &r.value),
                    Some(Value::Bool(false))
                ),
            )),
            _ => Some((text(item)?, true)),
        })
        .collect()
}

/// The host side of the first TCP port; orch gives a command one port.
fn port(name: &str, node: &Node, warnings: &mut Vec<String>) -> Option<Port> {
    let mut found = None;
    for item in match &node.value {
        Value::Seq(items) => items.iter().collect(),
        _ => vec![node],
    } {
        let (published, protocol, shown) = match &item.value {
            Value::Map(_) => (
                get(item, "published").and_then(text),
                get(item, "protocol").and_then(text),
                get(item, "target").and_then(text).unwrap_or_default(),
            ),
            _ => {
                let spec = text(item).unwrap_or_default();
                let (spec_no_proto, protocol) = match spec.split_once('/') {
                    Some((p, proto)) => (p.to_owned(), Some(proto.to_owned())),
                    None => (spec.clone(), None),
                };
                // [host_ip:]host:container, or container alone.
                let published = spec_no_proto
                    .rsplit_once(':')
                    .map(|(before, _)| before.rsplit(':').next().unwrap_or(before).to_owned());
                (published, protocol, spec)
            }
        };
        if protocol.as_deref().is_some_and(|p| p != "tcp") {
            warnings.push(format!("`{name}`: port `{shown}` is not TCP: left out"));
            continue;
        }
        if found.is_some() {
            warnings.push(format!(
                "`{name}`: orch gives a command one port; `{shown}` is left out"
            ));
            continue;
        }
        let host = published
            .as_deref()
            .map(|p| p.split('-').next().unwrap_or(p));
        found = Some(
            match host.and_then(|h| h.parse::<u16>().ok()).filter(|&p| p > 0) {
                Some(port) => {
                    if published.as_deref().is_some_and(|p| p.contains('-')) {
                        warnings.push(format!(
                            "`{name}`: of the port range `{shown}`, the first is kept"
                        ));
                    }
                    Port::Fixed(port)
                }
                None => {
                    warnings.push(format!(
                    "`{name}`: port `{shown}` has no host side: it gets `port: auto`; make the command listen on $PORT"
                ));
                    Port::Auto
                }
            },
        );
    }
    found
}

/// A list of names, or a mapping of names to `{ condition, ... }`. Every
/// condition keeps the dependency; `service_completed_successfully` also
/// makes the dependency run `once`.
fn depends_on(node: &Node, completes: &mut Vec<String>) -> Vec<String> {
    match &node.value {
        Value::Seq(_) => texts(node).iter().map(|n| emit::name(n)).collect(),
        _ => entries(node)
            .into_iter()
            .map(|(dep, settings)| {
                let dep = emit::name(&dep);
                let condition = get(settings, "condition").and_then(text);
                if condition.as_deref() == Some("service_completed_successfully")
                    && !completes.contains(&dep)
                {
                    completes.push(dep.clone());
                }
                dep
            })
            .collect(),
    }
}

/// `healthcheck.test` as a readiness command. Its `interval` is kept; the
/// time allowed is compose's: `start_period` + `interval` x `retries`.
fn ready(node: &Node) -> Option<Ready> {
    if matches!(
        get(node, "disable").map(|d| &d.value),
        Some(Value::Bool(true))
    ) {
        return None;
    }
    let test = get(node, "test")?;
    let command = match &test.value {
        Value::Seq(_) => {
            let words = texts(test);
            match words.split_first() {
                Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => {
                    Program::Argv(rest.to_vec())
                }
                Some((kind, rest)) if kind == "CMD-SHELL" && !rest.is_empty() => {
                    Program::Shell(rest.join(" "))
                }
                _ => return None,
            }
        }
        _ => Program::Shell(text(test)?),
    };
    let duration = |key: &str| get(node, key).and_then(text).and_then(|d| millis(&d));
    let (interval, retries, start) = (
        duration("interval"),
        get(node, "retries")
            .and_then(text)
            .and_then(|r| r.parse::<u64>().ok()),
        duration("start_period"),
    );
    let timeout = (interval.is_some() || retries.is_some() || start.is_some())
        .then(|| start.unwrap_or(0) + interval.unwrap_or(30_000) * retries.unwrap_or(3));
    Some(Ready {
        command,
        interval: interval.map(orch_duration),
        timeout: timeout.map(orch_duration),
    })
}

/// Milliseconds of a compose duration: `1m30s`, `10s`, `1.5s`, `500ms`, `2h`.
fn millis(text: &str) -> Option<u64> {
    let mut rest = text.trim();
    let mut total = 0.0;
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let n: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-6,
            "us" | "µs" => 1e-3,
            "ms" => 1.0,
            "s" => 1e3,
            "m" => 60e3,
            "h" => 3600e3,
            _ => return None,
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    // Whole milliseconds, at least one.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Some((total.ceil() as u64).max(1))
}

fn orch_duration(ms: u64) -> String {
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// `restart` as how often a member is restarted.
fn restart(name: &str, node: &Node, warnings: &mut Vec<String>) -> Option<(u32, String)> {
    let policy = text(node)?;
    let note = format!("restart: {policy}");
    match policy.split_once(':').unwrap_or((policy.as_str(), "")) {
        ("no", _) => Some((0, note)),
        ("always" | "unless-stopped", _) => Some((1_000_000, note)),
        ("on-failure", count) => {
            warnings.push(format!(
                "`{name}`: restart `{policy}`: orch restarts a member that exits, whatever its status"
            ));
            count.parse().ok().map(|n| (n, note))
        }
        _ => {
            warnings.push(format!(
                "`{name}`: restart `{policy}` is not known: left out"
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_durations() {
        assert_eq!(millis("1m30s"), Some(90_000));
        assert_eq!(millis("1.5s"), Some(1500));
        assert_eq!(millis("500ms"), Some(500));
        assert_eq!(millis("2us"), Some(1));
        assert_eq!(millis("10"), None);
        assert_eq!(orch_duration(90_000), "90s");
        assert_eq!(orch_duration(1500), "1500ms");
    }

    #[test]
    fn host_ports() {
        let cases = [
            ("[\"8080:80\"]", Some(Port::Fixed(8080)), 0),
            ("[\"127.0.0.1:8081:80\"]", Some(Port::Fixed(8081)), 0),
            ("[8082]", Some(Port::Auto), 1),
            ("[\"9000-9001:80-81\"]", Some(Port::Fixed(9000)), 1),
            ("[\"53:53/udp\"]", None, 1),
            ("[\"8080:80\", \"8443:443\"]", Some(Port::Fixed(8080)), 1),
            (
                "[{target: 80, published: \"8085\"}]",
                Some(Port::Fixed(8085)),
                0,
            ),
            ("[{target: 80}]", Some(Port::Auto), 1),
        ];
        for (yaml, want, warned) in cases {
            let node = yaml::parse(yaml).expect("YAML");
            let mut warnings = Vec::new();
            assert_eq!(port("web", &node, &mut warnings), want, "{yaml}");
            assert_eq!(warnings.len(), warned, "{yaml}: {warnings:?}");
        }
    }

    #[test]
    fn programs() {
        let p = |e: &str, c: &str| {
            let e = (!e.is_empty()).then(|| yaml::parse(e).expect("YAML"));
            let c = (!c.is_empty()).then(|| yaml::parse(c).expect("YAML"));
            program(e.as_ref(), c.as_ref())
        };
        assert_eq!(p("", "npm start"), Some(Program::Shell("npm start".into())));
        assert_eq!(
            p("[python3]", "[app.py, --port, \"80\"]"),
            Some(Program::Argv(vec![
                "python3".into(),
                "app.py".into(),
                "--port".into(),
                "80".into()
            ]))
        );
        assert_eq!(
            p("docker-entrypoint.sh", "[\"a b\"]"),
            Some(Program::Shell("docker-entrypoint.sh 'a b'".into()))
        );
        assert_eq!(p("", ""), None);
    }
}
