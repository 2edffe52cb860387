//! Rendering of the stack for people and tools: graphs and environments.

use std::fmt::Write as _;

use indexmap::IndexMap;
use serde_json::json;

use crate::model::{HumanDuration, Schedule, Service, ServiceId, Stack};

/// A tree in the manner of `cargo tree`: each service nothing depends on,
/// with its dependencies below it; a service whose dependencies were shown
/// before is marked `(*)`. Past [`TREE_DEPTH`] levels, a service's
/// dependencies are left out and it is marked `(...)`: each level indents the
/// lines below it, so a chain of thousands of services would otherwise make
/// gigabytes of indentation.
///
/// With the `live` status of a running stack, each service also shows its
/// state, and the critical chain of the start-up follows the tree.
pub fn tree(stack: &Stack, live: Option<&crate::control::protocol::StatusReport>) -> String {
    let state = |id: ServiceId| {
        let s = live?
            .services
            .iter()
            .find(|s| s.name == stack.services[id].name)?;
        Some(match &s.why {
            None => " {up}".to_owned(),
            Some(why) => format!(" {{down: {why}}}"),
        })
    };
    let mut out = String::new();
    let mut shown = vec![false; stack.services.len()];
    let mut cut = false;
    // (service, its depth, prefix of its own line, prefix of the lines below it)
    let mut todo: Vec<(ServiceId, usize, String, String)> = (0..stack.services.len())
        .rev()
        .filter(|&id| stack.dag.dependents(id).is_empty())
        .map(|id| (id, 0, String::new(), String::new()))
        .collect();
    while let Some((id, depth, first, rest)) = todo.pop() {
        let service = &stack.services[id];
        out.push_str(&first);
        out.push_str(&service.name);
        out.push_str(&state(id).unwrap_or_default());
        if depth == TREE_DEPTH && !service.depends_on.is_empty() {
            out.push_str(" (...)\n");
            cut = true;
            continue;
        }
        if std::mem::replace(&mut shown[id], true) && !service.depends_on.is_empty() {
            out.push_str(" (*)\n");
            continue;
        }
        describe(service, &mut out);
        let deps = &service.depends_on;
        for (i, &dep) in deps.iter().enumerate().rev() {
            let last = i + 1 == deps.len();
            let branch = format!("{rest}{}", if last { "└── " } else { "├── " });
            let below = format!("{rest}{}", if last { "    " } else { "│   " });
            todo.push((dep, depth + 1, branch, below));
        }
    }
    if cut {
        let _ = writeln!(
            out,
            "(...): deeper than {TREE_DEPTH} levels; `orch graph --format json` lists every dependency"
        );
    }
    if let Some(live) = live {
        out.push_str(&critical_chain(stack, live));
    }
    out
}

/// Levels of dependencies [`tree`] draws.
pub const TREE_DEPTH: usize = 32;

/// The chain of dependencies that decided how long start-up took: from the
/// service that came up last, each time to its dependency that came up last,
/// with when each came up and how long after that dependency.
pub fn critical_chain(stack: &Stack, live: &crate::control::protocol::StatusReport) -> String {
    let up_at = |id: ServiceId| {
        live.services
            .iter()
            .find(|s| s.name == stack.services[id].name)?
            .up_after_ms
    };
    let Some(mut at) = (0..stack.services.len())
        .filter(|&id| up_at(id).is_some())
        .max_by_key(|&id| up_at(id))
    else {
        return String::new();
    };
    let mut out = format!(
        "\ncritical chain (start-up took {}):\n",
        ms(up_at(at).unwrap_or(0))
    );
    loop {
        let time = up_at(at).unwrap_or(0);
        let before = stack.services[at]
            .depends_on
            .iter()
            .copied()
            .filter(|&d| up_at(d).is_some())
            .max_by_key(|&d| up_at(d));
        let own = time - before.and_then(up_at).unwrap_or(0).min(time);
        let _ = writeln!(
            out,
            "  {} up at {} (+{})",
            stack.services[at].name,
            ms(time),
            ms(own)
        );
        match before {
            Some(d) => at = d,
            None => break,
        }
    }
    out
}

fn ms(ms: u64) -> String {
    HumanDuration(std::time::Duration::from_millis(ms)).to_string()
}

/// ` [commands] -> LOCATORS` and the end of the line.
fn describe(service: &Service, out: &mut String) {
    if service.is_bundle() {
        out.push_str(" (bundle)");
    } else {
        let commands: Vec<String> = service
            .commands
            .iter()
            .map(|c| {
                let mut text = c.name.clone();
                if c.instances.len() > 1 {
                    let _ = write!(text, " x{}", c.instances.len());
                }
                if let Some(schedule) = &c.schedule {
                    let _ = write!(text, " ({schedule})");
                }
                let ports: Vec<String> = c
                    .instances
                    .iter()
                    .filter_map(|i| i.port)
                    .map(|p| format!(":{p}"))
                    .collect();
                if !ports.is_empty() {
                    let _ = write!(text, " {}", ports.join(","));
                }
                text
            })
            .collect();
        let _ = write!(out, " [{}]", commands.join(", "));
    }
    if !service.provides.is_empty() {
        let names: Vec<&str> = service.provides.keys().map(String::as_str).collect();
        let _ = write!(out, " -> {}", names.join(", "));
    }
    if !service.profiles.is_empty() {
        let _ = write!(out, " (profiles: {})", service.profiles.join(", "));
    }
    out.push('\n');
}

/// Graphviz: an arrow from a service to each service it depends on.
pub fn dot(stack: &Stack) -> String {
    let mut out = format!("digraph {} {{\n  rankdir=LR;\n", quote_dot(&stack.name));
    for service in &stack.services {
        let shape = if service.is_bundle() {
            "ellipse"
        } else {
            "box"
        };
        let _ = writeln!(out, "  {} [shape={shape}];", quote_dot(&service.name));
    }
    for (from, to) in edges(stack) {
        let _ = writeln!(out, "  {} -> {};", quote_dot(from), quote_dot(to));
    }
    out.push_str("}\n");
    out
}

fn quote_dot(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Mermaid flowchart: an arrow from a service to each service it depends on.
pub fn mermaid(stack: &Stack) -> String {
    let mut out = String::from("graph TD\n");
    for service in &stack.services {
        let _ = writeln!(out, "  {}[\"{}\"]", mermaid_id(&service.name), service.name);
    }
    for (from, to) in edges(stack) {
        let _ = writeln!(out, "  {} --> {}", mermaid_id(from), mermaid_id(to));
    }
    out
}

fn mermaid_id(name: &str) -> String {
    format!("s_{}", name.replace('-', "_"))
}

/// `(dependent, dependency)` pairs in file order.
fn edges(stack: &Stack) -> impl Iterator<Item = (&str, &str)> {
    stack.services.iter().flat_map(move |s| {
        s.depends_on
            .iter()
            .map(move |&d| (s.name.as_str(), stack.services[d].name.as_str()))
    })
}

/// The JSON graph (a contract): services, start order, edges and waves.
pub fn graph_json(stack: &Stack) -> serde_json::Value {
    let name = |id: &ServiceId| stack.services[*id].name.as_str();
    let service = |s: &Service| {
        let mut object = json!({
            "name": s.name,
            "depends_on": s.depends_on.iter().map(name).collect::<Vec<_>>(),
            "commands": s.commands.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            "provides": s.provides.keys().collect::<Vec<_>>(),
        });
        // Only where there are some, so stacks without keep the same JSON.
        if !s.profiles.is_empty() {
            object["profiles"] = json!(s.profiles);
        }
        let schedules: serde_json::Map<String, serde_json::Value> = s
            .commands
            .iter()
            .filter_map(|c| Some((c.name.clone(), schedule_json(c.schedule.as_ref()?))))
            .collect();
        if !schedules.is_empty() {
            object["schedules"] = schedules.into();
        }
        object
    };
    json!({
        "services": stack.services.iter().map(service).collect::<Vec<_>>(),
        "order": stack.dag.order().iter().map(name).collect::<Vec<_>>(),
        "edges": edges(stack).map(|(from, to)| json!({"from": from, "to": to})).collect::<Vec<_>>(),
        "waves": stack.dag.waves().iter().map(|w| w.iter().map(name).collect::<Vec<_>>()).collect::<Vec<_>>(),
    })
}

/// `{"every": "10m"}` or `{"cron": "*/5 * * * *"}`.
fn schedule_json(schedule: &Schedule) -> serde_json::Value {
    match schedule {
        Schedule::Every(interval) => json!({"every": HumanDuration(*interval).to_string()}),
        Schedule::Cron { expression, .. } => json!({"cron": expression}),
    }
}

/// What `orch check` prints below its summary: the services of each
/// profile, and each scheduled command with its schedule.
pub fn check_details(stack: &Stack) -> String {
    let mut out = String::new();
    for profile in stack.profiles() {
        let services: Vec<&str> = stack
            .services
            .iter()
            .filter(|s| s.profiles.iter().any(|p| p == profile))
            .map(|s| s.name.as_str())
            .collect();
        let _ = writeln!(out, "  profile {profile}: {}", services.join(", "));
    }
    for service in &stack.services {
        for command in &service.commands {
            if let Some(schedule) = &command.schedule {
                let _ = writeln!(out, "  {}.{} runs {schedule}", service.name, command.name);
            }
        }
    }
    out
}

/// `NAME=value` lines.
pub fn env_lines(env: &IndexMap<String, String>) -> String {
    env.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
}

/// `export NAME='value'` lines, quoted for a POSIX shell.
pub fn env_export(env: &IndexMap<String, String>) -> String {
    env.iter()
        .map(|(k, v)| format!("export {k}={}\n", shell_quote(v)))
        .collect()
}

/// Quote for a POSIX shell: plain words as they are, anything else in single quotes.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `orch status --json`: exactly the contract's fields.
pub fn status_json(report: &crate::control::protocol::StatusReport) -> serde_json::Value {
    json!({
        "services": report.services.iter().map(|s| json!({
            "name": s.name,
            "state": s.state,
            "members": s.members.iter().map(|m| {
                let mut member = json!({
                    "command": m.command,
                    "instance": m.instance,
                    "state": m.state,
                    "pid": m.pid,
                    "port": m.port,
                    "restarts": m.restarts,
                    "exit_code": m.exit_code,
                });
                // Only while its log file cannot be written.
                if let Some(trouble) = &m.log_error {
                    member["log_error"] = json!(trouble);
                }
                // Scheduled members only.
                if let Some(next_run) = &m.next_run {
                    member["last_exit"] = json!(m.last_exit);
                    member["next_run"] = json!(next_run);
                }
                member
            }).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// `orch status`: a table of services and their members.
pub fn status_table(report: &crate::control::protocol::StatusReport) -> String {
    let mut rows = vec![[
        "SERVICE", "STATE", "MEMBER", "STATE", "PID", "PORT", "RESTARTS", "UPTIME", "MEMORY",
    ]
    .map(String::from)
    .to_vec()];
    let mut notes = Vec::new();
    for s in &report.services {
        if let Some(why) = &s.why {
            notes.push(format!("{}: {why}", s.name));
        }
        for m in &s.members {
            if let Some(next) = &m.next_run {
                let last = m
                    .last_exit
                    .map_or("none yet".into(), |c| format!("exit code {c}"));
                let skipped = match m.skipped {
                    Some(n) if n > 0 => format!(", {n} skipped"),
                    _ => String::new(),
                };
                notes.push(format!(
                    "{}.{}: next run {next}, last run: {last}{skipped}",
                    s.name, m.command
                ));
            }
            if let Some(trouble) = &m.log_error {
                notes.push(format!(
                    "{}.{}: cannot write its log file: {trouble}",
                    s.name, m.command
                ));
            }
        }
        if s.members.is_empty() {
            rows.push(vec![s.name.clone(), s.state.clone(), "(bundle)".into()]);
        }
        for (i, m) in s.members.iter().enumerate() {
            let several = s.members.iter().filter(|o| o.command == m.command).count() > 1;
            let label = if several {
                format!("{}.{}", m.command, m.instance)
            } else {
                m.command.clone()
            };
            let (name, state) = if i == 0 {
                (s.name.clone(), s.state.clone())
            } else {
                (String::new(), String::new())
            };
            rows.push(vec![
                name,
                state,
                label,
                m.state.clone(),
                m.pid.map_or("-".into(), |p| p.to_string()),
                m.port.map_or("-".into(), |p| p.to_string()),
                m.restarts.to_string(),
                m.uptime.map_or("-".into(), |u| {
                    HumanDuration(std::time::Duration::from_secs(u)).to_string()
                }),
                m.memory
                    .map_or("-".into(), |b| format!("{:.1} MiB", b as f64 / 1048576.0)),
            ]);
        }
    }
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| format!("{cell:<w$}", w = widths[c]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    for note in notes {
        out.push_str(&note);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_for_the_shell() {
        assert_eq!(
            shell_quote("postgres://[::1]:8300/shop"),
            "'postgres://[::1]:8300/shop'"
        );
        assert_eq!(shell_quote("plain-8300"), "plain-8300");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
