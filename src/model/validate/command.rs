//! One command: its settings with their defaults, its processes with every
//! template expanded for each, and its readiness check.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::scope::Scope;
use super::{Validator, MAX_PROCESSES};
use miette::SourceSpan;

use crate::config::raw::{RawCommand, RawProbe, WhenToRun};
use crate::config::shapes::{RawSchedule, RawWhen};
use crate::config::Spanned;
use crate::diag::Problem;
use crate::model::{Check, Command, Instance, Monitor, Ready, Respawn, Schedule};

const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_millis(200);
const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_MONITOR_INTERVAL: Duration = Duration::from_secs(10);
const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

impl Validator<'_> {
    pub(super) fn command(
        &mut self,
        dir: &Path,
        name: &Spanned<String>,
        raw: &RawCommand,
        ports: &[Option<u16>],
        service: &Scope<'_>,
    ) -> Command {
        let (when, schedule) = match raw.when_to_run.as_ref().map(|w| (&w.value, w.span)) {
            None => (WhenToRun::Always, None),
            Some((RawWhen::Plain(when), _)) => (*when, None),
            // Each run goes to completion, as a `once` command's does.
            Some((RawWhen::Schedule(s), span)) => (WhenToRun::Once, self.schedule(s, span)),
        };
        if when == WhenToRun::Once {
            if let Some(ready) = &raw.ready {
                let (message, help) = if raw
                    .when_to_run
                    .as_ref()
                    .is_some_and(|w| matches!(w.value, RawWhen::Schedule(_)))
                {
                    (
                        "a scheduled command runs to completion each time; it has no `ready`",
                        "remove `ready`: a scheduled service is up unless its last run failed",
                    )
                } else {
                    (
                        "a `once` command is ready when it has completed",
                        "remove `ready`, or make the command `when_to_run: always`",
                    )
                };
                self.problem(Problem::new(message, ready.span, "").help(help));
            }
        }
        if let Some(n) = &raw.number_of_processes {
            if n.value == 0 || n.value > MAX_PROCESSES {
                self.problem(Problem::new(
                    format!("number_of_processes must be 1 to {MAX_PROCESSES}"),
                    n.span,
                    "",
                ));
            }
        }
        let mut instances = Vec::with_capacity(ports.len());
        for (index, &port) in ports.iter().enumerate() {
            let scope = Scope {
                command: Some(&name.value),
                port: Some(port),
                ..*service
            };
            let program = self.program(&raw.command, &scope);
            let env = self.env_map(&raw.env, &scope);
            // A folder, checks and monitors are used beside the member
            // itself, so their hosts are always the loopback address.
            let working_dir = match &raw.working_dir {
                Some(wd) => self.expand(wd, &scope).map(|wd| dir.join(wd.loopback())),
                None => Some(dir.to_path_buf()),
            };
            let ready = self.ready(raw, when, port, &scope);
            let monitor = raw.monitor.as_ref().and_then(|m| {
                let program = self.program(&m.command, &scope)?.loopback();
                Some(Monitor {
                    program,
                    interval: m.interval.map_or(DEFAULT_MONITOR_INTERVAL, |d| d.0),
                    timeout: m.timeout.map_or(DEFAULT_MONITOR_INTERVAL, |d| d.0),
                })
            });
            if let (Some(program), Some(working_dir), Some(ready)) = (program, working_dir, ready) {
                instances.push(Instance {
                    index: u32::try_from(index).expect("instances are capped far below u32::MAX"),
                    port,
                    program: program.loopback(),
                    program_text: program,
                    env,
                    working_dir,
                    ready,
                    monitor,
                });
            }
        }
        Command {
            name: name.value.clone(),
            when,
            respawn: Respawn {
                count: raw.respawn_count.unwrap_or(Respawn::DEFAULT.count),
                window: raw.respawn_window.map_or(Respawn::DEFAULT.window, |d| d.0),
                backoff: raw
                    .respawn_backoff
                    .map_or(Respawn::DEFAULT.backoff, |d| d.0),
            },
            user: raw.user.as_ref().map(|u| u.value.clone()),
            group: raw.group.as_ref().map(|g| g.value.clone()),
            stop_signal: raw.stop_signal.map_or(Signal::SIGTERM, |s| s.0),
            restart_signal: raw.restart_signal.map_or(Signal::SIGHUP, |s| s.0),
            stop_timeout: raw.stop_timeout.map_or(DEFAULT_STOP_TIMEOUT, |d| d.0),
            memory_limit: raw.memory_limit.map(|m| m.0),
            system_packages: raw
                .system_packages
                .iter()
                .map(|p| p.value.clone())
                .collect(),
            schedule,
            instances,
        }
    }

    /// A schedule: exactly one of `every` (above zero) and `cron` (a valid
    /// 5-field expression); a problem points at what is wrong.
    fn schedule(&mut self, raw: &RawSchedule, span: SourceSpan) -> Option<Schedule> {
        match (&raw.every, &raw.cron) {
            (Some(every), None) if every.value.0.is_zero() => {
                self.problem(
                    Problem::new(
                        "a schedule of `every: 0s` would never stop running",
                        every.span,
                        "",
                    )
                    .help("give a duration above zero, e.g. `every: 10m`"),
                );
                None
            }
            (Some(every), None) => Some(Schedule::Every(every.value.0)),
            (None, Some(cron)) => match Schedule::cron(&cron.value) {
                Ok(schedule) => Some(schedule),
                Err(e) => {
                    let span = match (e.field, cron.text_at) {
                        (Some((at, len)), Some(text_at)) => (text_at + at, len).into(),
                        _ => cron.span,
                    };
                    self.problem(Problem::new(e.message, span, "").help(e.help));
                    None
                }
            },
            _ => {
                self.problem(
                    Problem::new("a schedule needs exactly one of `every` and `cron`", span, "")
                        .help("write `when_to_run: { every: 10m }` or `when_to_run: { cron: \"*/5 * * * *\" }`"),
                );
                None
            }
        }
    }

    pub(super) fn ready(
        &mut self,
        raw: &RawCommand,
        when: WhenToRun,
        port: Option<u16>,
        scope: &Scope<'_>,
    ) -> Option<Ready> {
        let default = |check| {
            Some(Ready {
                check,
                interval: DEFAULT_PROBE_INTERVAL,
                timeout: DEFAULT_PROBE_TIMEOUT,
            })
        };
        let Some(probe) = &raw.ready else {
            return match (when, port) {
                (WhenToRun::Once, _) => default(Check::Completed),
                (WhenToRun::Always, Some(port)) => default(Check::Tcp { host: None, port }),
                (WhenToRun::Always, None) => default(Check::Started),
            };
        };
        let RawProbe {
            tcp,
            http,
            command,
            log,
            interval,
            timeout,
        } = &probe.value;
        let kinds = [
            tcp.is_some(),
            http.is_some(),
            command.is_some(),
            log.is_some(),
        ]
        .iter()
        .filter(|&&k| k)
        .count();
        if kinds != 1 {
            self.problem(
                Problem::new(
                    if kinds == 0 {
                        "`ready` needs a check"
                    } else {
                        "`ready` has more than one check"
                    },
                    probe.span,
                    "",
                )
                .help("give exactly one of `tcp`, `http`, `command` or `log`"),
            );
            return None;
        }
        let check = if let Some(tcp) = tcp {
            let text = self.expand(tcp, scope)?.loopback();
            match parse_tcp(&text) {
                Some((host, port)) => Check::Tcp { host, port },
                None => {
                    self.problem(
                        Problem::new(format!("`{text}` is not a TCP address"), tcp.span, "")
                            .help("write a port (`${port}`) or host:port, e.g. `127.0.0.1:5432`"),
                    );
                    return None;
                }
            }
        } else if let Some(http) = http {
            let url = self.expand(http, scope)?.loopback();
            if !url.starts_with("http://") {
                self.problem(
                    Problem::new(format!("`{url}` is not an http:// URL"), http.span, "")
                        .help("write a full URL such as `http://127.0.0.1:${port}/health`"),
                );
                return None;
            }
            Check::Http { url }
        } else if let Some(command) = command {
            Check::Command(self.program(command, scope)?.loopback())
        } else {
            let log = log.as_ref().expect("exactly one check is set");
            match regex::Regex::new(&log.value) {
                Ok(re) => Check::Log(re),
                Err(e) => {
                    self.problem(
                        Problem::new("`log` is not a valid regular expression", log.span, "").help(
                            e.to_string()
                                .lines()
                                .last()
                                .unwrap_or_default()
                                .trim()
                                .to_owned(),
                        ),
                    );
                    return None;
                }
            }
        };
        Some(Ready {
            check,
            interval: interval.map_or(DEFAULT_PROBE_INTERVAL, |d| d.0),
            timeout: timeout.map_or(DEFAULT_PROBE_TIMEOUT, |d| d.0),
        })
    }
}

/// `8300`, `host:8300` or `[::1]:8300`.
fn parse_tcp(text: &str) -> Option<(Option<String>, u16)> {
    let port_of = |s: &str| s.parse::<u16>().ok().filter(|&p| p > 0);
    if let Some(port) = port_of(text) {
        return Some((None, port));
    }
    let (host, port) = text.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty())
        .then(|| (Some(host.to_owned()), port_of(port)))
        .and_then(|(h, p)| Some((h, p?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn tcp_addresses() {
        assert_eq!(parse_tcp("8300"), Some((None, 8300)));
        assert_eq!(
            parse_tcp("127.0.0.1:5432"),
            Some((Some("127.0.0.1".into()), 5432))
        );
        assert_eq!(parse_tcp("[::1]:80"), Some((Some("::1".into()), 80)));
        assert_eq!(parse_tcp("0"), None);
        assert_eq!(parse_tcp("host:"), None);
        assert_eq!(parse_tcp(":80"), None);
    }
}
