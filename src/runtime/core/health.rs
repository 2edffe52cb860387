//! Service health: up when every member is ready, down for good when one is
//! disabled or a dependency is; computed once per decision pass in
//! dependency order (a recursive walk would visit shared dependencies once
//! per path, which explodes in a layered graph).

use super::{Core, MemberId, Phase};
use crate::model::ServiceId;

/// Per service: up, and down for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub up: Vec<bool>,
    pub dead: Vec<bool>,
}

impl Core {
    /// Whether a member counts as up: ready with the current configuration,
    /// or a `once` command that completed.
    pub(super) fn member_up(&self, member: MemberId) -> bool {
        let m = &self.members[member];
        if self.scheduled(member) && (m.phase == Phase::Waiting || m.phase.live()) {
            // Up unless its last run failed.
            return m.last_exit.is_none_or(|status| status.success());
        }
        match m.phase {
            Phase::Running { .. } => self.keeps(member),
            Phase::Completed => true,
            _ => false,
        }
    }

    /// Which services are up and which are down for good.
    ///
    /// A service is up when every member is; a bundle when everything it
    /// depends on is up. It is down for good when a member is disabled, or
    /// a dependency is down for good.
    pub fn health(&self) -> Health {
        let n = self.stack.services.len();
        let mut health = Health {
            up: vec![false; n],
            dead: vec![false; n],
        };
        for &sid in self.stack.dag.order() {
            let deps = &self.stack.services[sid].depends_on;
            let members = &self.services[sid].members;
            health.up[sid] = if members.is_empty() {
                deps.iter().all(|&d| health.up[d])
            } else {
                members.iter().all(|&m| self.member_up(m))
            };
            health.dead[sid] = members
                .iter()
                .any(|&m| matches!(self.members[m].phase, Phase::Failed { .. }))
                || deps.iter().any(|&d| health.dead[d]);
        }
        health
    }

    /// Why a service is not up, in a few words; `None` when it is up.
    pub fn why_down(&self, sid: ServiceId, health: &Health) -> Option<String> {
        if health.up[sid] {
            return None;
        }
        let state = &self.services[sid];
        if !state.selected {
            return Some("not selected".to_owned());
        }
        if let Some(&m) = state
            .members
            .iter()
            .find(|&&m| matches!(self.members[m].phase, Phase::Failed { .. }))
        {
            return Some(format!("{} failed", self.members[m].label));
        }
        if let Some(&d) = self.stack.services[sid]
            .depends_on
            .iter()
            .find(|&&d| !health.up[d])
        {
            let verb = if health.dead[d] {
                "failed"
            } else {
                "is not up"
            };
            return Some(format!("{} {verb}", self.stack.services[d].name));
        }
        state
            .members
            .iter()
            .find(|&&m| !self.member_up(m))
            .map(|&m| {
                let member = &self.members[m];
                match &member.waiting {
                    _ if member.phase.live() && !self.keeps(m) => {
                        format!("{} is being restarted", member.label)
                    }
                    Some(why) if member.phase.live() => {
                        format!("{} is {}: {why}", member.label, member.phase.name())
                    }
                    _ => format!("{} is {}", member.label, member.phase.name()),
                }
            })
    }
}
