//! `orch export systemd -o DIR`: one unit per command, a target per service
//! and one for the stack.
//!
//! - `STACK.target` wants every service's target;
//! - `STACK-SERVICE.target` wants the service's members and requires (and
//!   is ordered after) the targets of its dependencies;
//! - `STACK-SERVICE-COMMAND.service` runs a command; with several processes
//!   it is the template `STACK-SERVICE-COMMAND@.service`, instances `@0` to
//!   `@N-1`, and what differs between them (the port, and whatever uses it)
//!   is in a drop-in of each instance, `@N.service.d/instance.conf`.
//!
//! Hosts are `127.0.0.1`: every unit runs on the same machine. Readiness
//! checks become an `ExecStartPost=` that waits until the check passes, so
//! units ordered after this one start when it is ready, as under `orch up`.

use std::path::Path;
use std::time::Duration;

use super::{check_warning, Export, HttpUrl, Warnings};
use crate::model::text::LOOPBACK;
use crate::model::{Check, Command, Instance, Program, ServiceId, Stack, WhenToRun};

/// Waits until a TCP address (`$1`, `$2`) accepts a connection, trying every `$3` seconds.
const TCP_WAIT: &str = r#"until { : <"/dev/tcp/$1/$2"; } 2>/dev/null; do sleep "$3"; done"#;
/// Waits until `GET $3` on `$1:$2` answers with a 2xx status, trying every `$4` seconds.
const HTTP_WAIT: &str = r#"until { exec 3<>"/dev/tcp/$1/$2" && printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$3" "$1" >&3 && read -r _ status _ <&3 && [[ $status == 2* ]]; } 2>/dev/null; do exec 3<&-; sleep "$4"; done"#;

/// The units of `stack`, by file name, and what they do not carry.
pub fn export(stack: &Stack) -> Export {
    let names = Names {
        stack: unit_part(&stack.name),
    };
    let mut warnings = Warnings::default();
    let mut files = Vec::new();
    let service_targets: Vec<String> = stack
        .services
        .iter()
        .map(|s| names.target(&s.name))
        .collect();
    files.push((
        format!("{}.target", names.stack),
        unit(&[
            (
                "Unit",
                vec![
                    format!("Description={}", stack.name),
                    format!("Wants={}", service_targets.join(" ")),
                ],
            ),
            ("Install", vec!["WantedBy=multi-user.target".into()]),
        ]),
    ));
    for (sid, service) in stack.services.iter().enumerate() {
        let deps: Vec<&str> = service
            .depends_on
            .iter()
            .map(|&d| service_targets[d].as_str())
            .collect();
        let mut ordering = Vec::new();
        if !deps.is_empty() {
            ordering.push(format!("After={}", deps.join(" ")));
            ordering.push(format!("Requires={}", deps.join(" ")));
        }
        let mut members = Vec::new();
        for command in &service.commands {
            let base = names.member(&service.name, &command.name);
            let units = member(stack, sid, command, &base, &ordering, &mut warnings);
            if command.instances.len() == 1 {
                members.push(format!("{base}.service"));
            } else {
                members.extend((0..command.instances.len()).map(|i| format!("{base}@{i}.service")));
            }
            files.extend(units);
        }
        let mut lines = vec![
            format!("Description={}: service {}", stack.name, service.name),
            format!("PartOf={}.target", names.stack),
        ];
        if !members.is_empty() {
            lines.push(format!("Wants={}", members.join(" ")));
        }
        lines.extend(ordering);
        files.push((
            format!("{}.target", names.target_base(&service.name)),
            unit(&[("Unit", lines)]),
        ));
    }
    Export {
        files,
        warnings: warnings.into_vec(),
    }
}

struct Names {
    stack: String,
}

impl Names {
    fn target_base(&self, service: &str) -> String {
        format!("{}-{}", self.stack, unit_part(service))
    }

    fn target(&self, service: &str) -> String {
        format!("{}.target", self.target_base(service))
    }

    fn member(&self, service: &str, command: &str) -> String {
        format!(
            "{}-{}-{}",
            self.stack,
            unit_part(service),
            unit_part(command)
        )
    }
}

/// A name made of the characters unit names allow.
fn unit_part(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.:-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The unit (or template and drop-ins) of one command.
fn member(
    stack: &Stack,
    sid: ServiceId,
    command: &Command,
    base: &str,
    ordering: &[String],
    warnings: &mut Warnings,
) -> Vec<(String, String)> {
    let service = &stack.services[sid];
    let at = super::endpoint(stack, sid, command);
    let many = command.instances.len() > 1;
    let mut head = vec![format!(
        "Description={}: {}{}",
        stack.name,
        at,
        if many { " (process %i)" } else { "" }
    )];
    head.push(format!(
        "PartOf={}-{}.target",
        unit_part(&stack.name),
        unit_part(&service.name)
    ));
    head.extend(ordering.iter().cloned());
    if command.when == WhenToRun::Always {
        head.push(format!(
            "StartLimitIntervalSec={}",
            span(command.respawn.window)
        ));
        head.push(format!("StartLimitBurst={}", command.respawn.count));
    }
    if !command.system_packages.is_empty() {
        warnings.add(
            "system_packages",
            &at,
            format!(
                "systemd does not check them; install {} on the machine",
                command.system_packages.join(", ")
            ),
        );
    }
    if let Some(first) = command.instances.first() {
        check_warning(warnings, &at, &first.ready.check, "systemd");
        if let Check::Http { url } = &first.ready.check {
            if HttpUrl::parse(url).is_none() {
                warnings.add("ready.http", &at, format!("systemd's check cannot read the port of `{url}`; the unit counts as ready once started"));
            }
        }
        if first.monitor.is_some() {
            warnings.add(
                "monitor",
                &at,
                "systemd has no periodic check; the unit is not restarted when the check fails",
            );
        }
    }
    let bodies: Vec<Vec<String>> = command
        .instances
        .iter()
        .map(|i| service_lines(stack, sid, command, i, many))
        .collect();
    if !many {
        let body = bodies.into_iter().next().unwrap_or_default();
        return vec![(
            format!("{base}.service"),
            unit(&[("Unit", head), ("Service", body)]),
        )];
    }
    let common: Vec<String> = bodies[0]
        .iter()
        .filter(|line| bodies.iter().all(|b| b.contains(line)))
        .cloned()
        .collect();
    let mut files = vec![(
        format!("{base}@.service"),
        unit(&[("Unit", head), ("Service", common.clone())]),
    )];
    for (i, body) in bodies.iter().enumerate() {
        let own: Vec<String> = body
            .iter()
            .filter(|l| !common.contains(l))
            .cloned()
            .collect();
        if !own.is_empty() {
            files.push((
                format!("{base}@{i}.service.d/instance.conf"),
                unit(&[("Service", own)]),
            ));
        }
    }
    files
}

/// The `[Service]` lines of one process.
fn service_lines(
    stack: &Stack,
    sid: ServiceId,
    command: &Command,
    instance: &Instance,
    many: bool,
) -> Vec<String> {
    let mut lines = Vec::new();
    match command.when {
        WhenToRun::Always => lines.push("Type=exec".into()),
        WhenToRun::Once => {
            lines.push("Type=oneshot".into());
            lines.push("RemainAfterExit=yes".into());
        }
    }
    for (key, value) in stack.member_env(sid, instance) {
        if many && key == "ORCH_INSTANCE" {
            lines.push("Environment=ORCH_INSTANCE=%i".into());
        } else {
            lines.push(format!(
                "Environment={}",
                quote(&format!("{key}={value}"), false)
            ));
        }
    }
    lines.push(format!(
        "WorkingDirectory={}",
        escape(&super::folder(&instance.working_dir), false)
    ));
    if let Some(user) = &command.user {
        lines.push(format!("User={}", escape(user, false)));
    }
    if let Some(group) = &command.group {
        lines.push(format!("Group={}", escape(group, false)));
    }
    lines.push(format!(
        "ExecStart={}",
        command_line(&argv(&instance.program, &instance.working_dir))
    ));
    if let Some(wait) = readiness(&instance.ready.check, instance.ready.interval) {
        lines.push(format!("ExecStartPost={}", command_line(&wait)));
        lines.push(format!("TimeoutStartSec={}", span(instance.ready.timeout)));
    }
    if command.when == WhenToRun::Always {
        lines.push(format!(
            "ExecReload=/bin/kill -s {} $MAINPID",
            signal_name(command.restart_signal)
        ));
        lines.push("Restart=always".into());
        lines.push(format!("RestartSec={}", span(command.respawn.backoff)));
    }
    lines.push("KillMode=control-group".into());
    lines.push(format!("KillSignal={}", command.stop_signal.as_str()));
    lines.push(format!("TimeoutStopSec={}", span(command.stop_timeout)));
    if let Some(bytes) = command.memory_limit {
        lines.push(format!("MemoryMax={bytes}"));
    }
    if let Check::Log(re) = &instance.ready.check {
        lines.push(format!(
            "# ready: a line matching `{}` (not carried: the unit is ready once started)",
            re.as_str().replace('\n', " ")
        ));
    }
    if let Some(monitor) = &instance.monitor {
        lines.push(format!(
            "# monitor: `{}` every {} (not carried: systemd has no periodic check)",
            monitor.program.to_string().replace('\n', " "),
            span(monitor.interval)
        ));
    }
    lines
}

/// The program and its arguments, a program path made absolute against the
/// working folder as orch resolves it (systemd wants an absolute path or a
/// bare name it looks up itself).
fn argv(program: &Program, working_dir: &Path) -> Vec<String> {
    match program {
        Program::Shell(text) => vec!["/bin/sh".into(), "-c".into(), text.clone()],
        Program::Argv(args) => {
            let mut args = args.clone();
            if let Some(first) = args.first_mut() {
                if first.contains('/') && !first.starts_with('/') {
                    *first = working_dir.join(&*first).display().to_string();
                }
            }
            args
        }
    }
}

/// The command that waits until `check` passes, trying every `interval`.
fn readiness(check: &Check, interval: Duration) -> Option<Vec<String>> {
    let every = interval.as_secs_f64().to_string();
    let bash = |script: &str, args: Vec<String>| {
        let mut argv = vec![
            "/bin/bash".into(),
            "-c".into(),
            script.into(),
            "bash".into(),
        ];
        argv.extend(args);
        argv
    };
    match check {
        Check::Started | Check::Completed | Check::Log(_) => None,
        Check::Tcp { host, port } => Some(bash(
            TCP_WAIT,
            vec![
                host.clone().unwrap_or_else(|| LOOPBACK.into()),
                port.to_string(),
                every,
            ],
        )),
        Check::Http { url } => {
            let parsed = HttpUrl::parse(url)?;
            Some(bash(
                HTTP_WAIT,
                vec![parsed.host, parsed.port.to_string(), parsed.path, every],
            ))
        }
        Check::Command(program) => {
            let mut argv = vec![
                "/bin/sh".into(),
                "-c".into(),
                format!(r#"until "$@"; do sleep {every}; done"#),
                "sh".into(),
            ];
            argv.extend(match program {
                Program::Shell(text) => vec!["/bin/sh".into(), "-c".into(), text.clone()],
                Program::Argv(args) => args.clone(),
            });
            Some(argv)
        }
    }
}

/// `SIGHUP` as `kill -s` and systemd take it: `HUP`.
fn signal_name(signal: nix::sys::signal::Signal) -> &'static str {
    let name = signal.as_str();
    name.strip_prefix("SIG").unwrap_or(name)
}

/// A time span as systemd reads it: `100ms`, `10s`.
fn span(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// A command line: each word as systemd splits it back, `$` and `%` escaped.
fn command_line(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            let simple = !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/._+=:,@-".contains(c));
            if simple {
                w.clone()
            } else {
                quote(w, true)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A double-quoted value with C-style escapes; `%` doubled (specifiers) and,
/// in command lines, `$` doubled (variable expansion).
fn quote(value: &str, dollars: bool) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            _ => out.push_str(&escape(&c.to_string(), dollars)),
        }
    }
    out.push('"');
    out
}

/// `%` (and `$` in command lines) doubled, for settings read as they are.
fn escape(value: &str, dollars: bool) -> String {
    let mut out = value.replace('%', "%%");
    if dollars {
        out = out.replace('$', "$$");
    }
    out
}

/// A unit file: a header, then each section's lines.
fn unit(sections: &[(&str, Vec<String>)]) -> String {
    let mut out = String::from("# Generated by `orch export systemd`.\n");
    for (name, lines) in sections {
        out.push_str(&format!("\n[{name}]\n"));
        for line in lines {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_follows_systemd() {
        assert_eq!(
            quote("A=b \"c\" 5% $x\n\\", false),
            r#""A=b \"c\" 5%% $x\n\\""#
        );
        assert_eq!(
            command_line(&["/bin/sh".into(), "-c".into(), "echo $HOME 50%".into()]),
            r#"/bin/sh -c "echo $$HOME 50%%""#
        );
        assert_eq!(command_line(&["".into()]), r#""""#);
        assert_eq!(span(Duration::from_millis(1500)), "1500ms");
        assert_eq!(span(Duration::from_secs(60)), "60s");
    }
}
