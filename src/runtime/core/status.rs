//! What `orch status` and `orch why` report, read from the core's state
//! alone (the supervisor adds what only the system knows: memory, the ends
//! of log files).

use std::time::Instant;

use super::{Core, MemberId, Phase};
use crate::control::protocol::{MemberStatus, ServiceStatus, StatusReport};
use crate::model::ServiceId;
use crate::runtime::spawn::ExitStatus;

/// A line of `orch why`: text, or the end of a member's log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WhyLine {
    Text(String),
    LogTail(MemberId),
}

impl Core {
    /// The state of services `ids` (all when empty), without memory figures.
    pub fn status(&self, ids: &[ServiceId], now: Instant) -> StatusReport {
        let ids: Vec<ServiceId> = if ids.is_empty() {
            (0..self.services.len()).collect()
        } else {
            ids.to_vec()
        };
        let health = self.health();
        let services = ids
            .into_iter()
            .map(|sid| {
                let members = self.services[sid]
                    .members
                    .iter()
                    .map(|&id| self.member_status(id, now))
                    .collect();
                let why = self.why_down(sid, &health);
                ServiceStatus {
                    name: self.stack.services[sid].name.clone(),
                    state: if why.is_none() { "up" } else { "down" }.to_owned(),
                    members,
                    why,
                    up_after_ms: self.services[sid]
                        .up_at
                        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                }
            })
            .collect();
        StatusReport { services }
    }

    fn member_status(&self, id: MemberId, now: Instant) -> MemberStatus {
        let m = &self.members[id];
        let slot = m.slot.expect("members of a service have a slot");
        let command = &self.stack.services[slot.sid].commands[slot.cid];
        let scheduled = command.schedule.is_some();
        MemberStatus {
            command: command.name.clone(),
            instance: slot.index,
            state: if scheduled && m.phase.live() {
                "running"
            } else {
                m.phase.name()
            }
            .to_owned(),
            pid: m.phase.pid().map(nix::unistd::Pid::as_raw),
            port: command.instances[slot.index].port,
            restarts: m.respawns.total,
            exit_code: match m.last_exit {
                Some(ExitStatus::Code(code)) => Some(code),
                _ => None,
            },
            uptime: match m.phase {
                Phase::Running { since, .. } => Some(now.duration_since(since).as_secs()),
                _ => None,
            },
            memory: None,
            log_error: m.log_trouble.clone(),
            last_exit: match m.last_exit {
                Some(ExitStatus::Code(code)) if scheduled => Some(code),
                _ => None,
            },
            // The supervisor knows the clock: it fills `next_run` in.
            next_run: None,
            skipped: scheduled.then_some(m.skipped),
        }
    }

    /// Why `sid` is not up: down the chain of dependencies to the service
    /// whose own members are the reason, then each of those members with its
    /// last failure and the end of its log.
    pub fn why(&self, sid: ServiceId) -> Vec<WhyLine> {
        let health = self.health();
        let mut lines = Vec::new();
        let mut at = Some(sid);
        while let Some(sid) = at.take() {
            let name = &self.stack.services[sid].name;
            let Some(why) = self.why_down(sid, &health) else {
                lines.push(WhyLine::Text(format!("{name} is up")));
                for &id in &self.services[sid].members {
                    let m = &self.members[id];
                    if let Some(trouble) = &m.log_trouble {
                        lines.push(WhyLine::Text(format!(
                            "  {} cannot write its log file: {trouble}",
                            m.label
                        )));
                    }
                }
                break;
            };
            lines.push(WhyLine::Text(format!("{name} is down: {why}")));
            if !self.services[sid].selected || self.services[sid].held {
                break;
            }
            at = self.stack.services[sid]
                .depends_on
                .iter()
                .copied()
                .find(|&d| !health.up[d]);
            if at.is_some() {
                continue;
            }
            for &id in &self.services[sid].members {
                let m = &self.members[id];
                if self.member_up(id) {
                    continue;
                }
                lines.push(WhyLine::Text(match &m.waiting {
                    Some(why) if m.phase.live() => {
                        format!("  {} is {}: {why}", m.label, m.phase.name())
                    }
                    _ => format!("  {} is {}", m.label, m.phase.name()),
                }));
                if let Some(failure) = &m.last_failure {
                    lines.push(WhyLine::Text(format!("  last failure: {failure}")));
                }
                if let Some(trouble) = &m.log_trouble {
                    lines.push(WhyLine::Text(format!(
                        "  cannot write its log file: {trouble}"
                    )));
                }
                lines.push(WhyLine::LogTail(id));
            }
        }
        lines
    }
}
