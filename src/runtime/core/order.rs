//! The pass run after every event: compare what is wanted with what runs,
//! and act on the difference. Processes that must go are stopped once
//! whatever depends on them and is going too has exited (so independent
//! branches stop in parallel); members that may run are started once their
//! service's dependencies are up; and when nothing is left to do, orch exits.

use std::collections::HashSet;
use std::time::Instant;

use super::{Action, Core, MemberId, Phase, StopReason};
use crate::model::ServiceId;

impl Core {
    pub(super) fn converge(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.exited {
            return;
        }
        self.settle_idle(out);
        self.stop_what_must_go(now, out);
        let health = self.health();
        for sid in 0..self.services.len() {
            if self.services[sid].up_at.is_none() && self.services[sid].selected && health.up[sid] {
                self.services[sid].up_at = Some(now.duration_since(self.started));
            }
        }
        self.say_when_all_up(&health, now, out);
        if self.shutdown {
            if !self.members.iter().any(|m| m.phase.live()) {
                self.finish(&health, out);
            }
            return;
        }
        // A service whose outdated processes are still going does not start
        // new ones yet: a changed service is replaced, never doubled.
        let draining: HashSet<String> = self
            .members
            .iter()
            .enumerate()
            .filter(|&(id, m)| m.phase.live() && !self.keeps(id))
            .filter_map(|(_, m)| m.run.as_ref().map(|run| run.service().to_owned()))
            .collect();
        let stack = std::sync::Arc::clone(&self.stack);
        for &sid in stack.dag.order() {
            if !self.wanted(sid) {
                continue;
            }
            let deps = &stack.services[sid].depends_on;
            if let Some(&dead) = deps.iter().find(|&&d| health.dead[d]) {
                let waiting = self.services[sid]
                    .members
                    .iter()
                    .any(|&m| self.members[m].phase == Phase::Pending);
                if (waiting || self.services[sid].members.is_empty())
                    && !std::mem::replace(&mut self.services[sid].told_blocked, true)
                {
                    let (name, dep) = (&stack.services[sid].name, &stack.services[dead].name);
                    Self::announce(out, format!("{name}: not started: {dep} failed"));
                }
                continue;
            }
            self.services[sid].told_blocked = false;
            if deps.iter().all(|&d| health.up[d]) && !draining.contains(&stack.services[sid].name) {
                for m in self.services[sid].members.clone() {
                    if self.members[m].phase != Phase::Pending {
                        continue;
                    }
                    if self.scheduled(m) {
                        // Its first run comes at its first time.
                        self.members[m].park(Phase::Waiting);
                        self.members[m].armed = true;
                        out.push(Action::Arm { member: m });
                    } else {
                        self.launch(m, now, out);
                    }
                }
            }
        }
        // A pending member is not busy: it was started just now when it could
        // be, so it waits for a dependency that is busy itself, or one that failed.
        let busy = self
            .members
            .iter()
            .any(|m| m.phase.live() || matches!(m.phase, Phase::Backoff { .. } | Phase::Waiting));
        if !busy && !self.services.iter().any(|s| s.held) {
            self.finish(&health, out);
        }
    }

    /// Members without a process take the phase that matches what is
    /// wanted of them: pending when their service should run, stopped when
    /// it is held or the stack is stopping, inactive when not selected. A
    /// scheduled member that neither waits nor runs has its ticks cancelled.
    fn settle_idle(&mut self, out: &mut Vec<Action>) {
        for id in 0..self.members.len() {
            let m = &self.members[id];
            if m.phase.live() {
                continue;
            }
            let Some(slot) = m.slot else {
                if m.phase != Phase::Stopped {
                    self.members[id].park(Phase::Stopped);
                }
                continue;
            };
            let service = &self.services[slot.sid];
            let next = if self.wanted(slot.sid) {
                match m.phase {
                    Phase::Inactive | Phase::Stopped => Some(Phase::Pending),
                    _ => None,
                }
            } else if self.shutdown || service.held {
                match m.phase {
                    Phase::Pending | Phase::Backoff { .. } | Phase::Inactive | Phase::Waiting => {
                        Some(Phase::Stopped)
                    }
                    Phase::Failed { .. } | Phase::Completed if service.held => Some(Phase::Stopped),
                    _ => None,
                }
            } else {
                match m.phase {
                    Phase::Inactive => None,
                    _ => Some(Phase::Inactive),
                }
            };
            if let Some(phase) = next {
                self.members[id].park(phase);
            }
        }
        // Ticks only for a scheduled member that waits for them or runs.
        for (id, m) in self.members.iter_mut().enumerate() {
            if m.armed && m.phase != Phase::Waiting && !m.phase.live() {
                m.armed = false;
                out.push(Action::Disarm { member: id });
            }
        }
    }

    /// Signal every live process that is not wanted any more, once nothing
    /// that depends on its service and is going too still runs.
    fn stop_what_must_go(&mut self, now: Instant, out: &mut Vec<Action>) {
        let must_go = |core: &Core, id: MemberId| {
            core.members[id].phase.pid().is_some()
                && !matches!(core.members[id].phase, Phase::Stopping { .. })
                && !core.keeps(id)
        };
        // Processes on their way out (or about to be), including one whose
        // pid is not known yet: what they depend on waits for them.
        let going: Vec<MemberId> = (0..self.members.len())
            .filter(|&id| {
                let phase = &self.members[id].phase;
                phase.live() && (matches!(phase, Phase::Stopping { .. }) || !self.keeps(id))
            })
            .collect();
        let depended_on: HashSet<String> = going
            .iter()
            .filter_map(|&id| self.members[id].run.as_ref())
            .flat_map(|run| run.depends_on().map(str::to_owned))
            .collect();
        for id in going {
            if !must_go(self, id) {
                continue;
            }
            let run = self.members[id]
                .run
                .as_ref()
                .expect("a live member has a run");
            if depended_on.contains(run.service()) {
                continue;
            }
            let signal = run.command().stop_signal;
            self.stop(id, signal, StopReason::Converge, now, out);
        }
    }

    /// The first time every selected service is up: say how long it took.
    fn say_when_all_up(&mut self, health: &super::Health, now: Instant, out: &mut Vec<Action>) {
        if self.all_up || self.shutdown {
            return;
        }
        let selected: Vec<ServiceId> = (0..self.services.len())
            .filter(|&sid| self.services[sid].selected)
            .collect();
        if selected.iter().all(|&sid| health.up[sid]) {
            self.all_up = true;
            let n = selected.len();
            let took = crate::model::HumanDuration(now.duration_since(self.started));
            let text = match n {
                1 => format!("the service is up in {took}"),
                _ => format!("all {n} services up in {took}"),
            };
            Self::announce(out, text);
        }
    }

    /// While start-up goes on: what each selected service that is not up
    /// waits on; `None` once every one has been up.
    pub fn progress(&self) -> Option<String> {
        if self.all_up || self.shutdown {
            return None;
        }
        let health = self.health();
        let waiting: Vec<String> = (0..self.services.len())
            .filter(|&sid| self.services[sid].selected && !health.up[sid])
            .filter_map(|sid| {
                let why = self.why_down(sid, &health)?;
                Some(format!("{} ({why})", self.stack.services[sid].name))
            })
            .collect();
        (!waiting.is_empty()).then(|| format!("starting: {}", waiting.join(", ")))
    }

    fn finish(&mut self, health: &super::Health, out: &mut Vec<Action>) {
        if std::mem::replace(&mut self.exited, true) {
            return;
        }
        let failed =
            (0..self.services.len()).any(|sid| self.services[sid].selected && health.dead[sid]);
        out.push(Action::Exit(u8::from(failed)));
    }
}
