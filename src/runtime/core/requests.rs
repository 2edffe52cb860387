//! Requests from the control socket and signals. Each changes what is
//! wanted, and the pass that follows does the work, so requests that overlap
//! end where the last one says.

use std::time::Instant;

use nix::sys::signal::Signal;

use super::{Action, Core, Phase};
use crate::model::ServiceId;

impl Core {
    /// Stop the whole stack; with `force`, kill every process at once.
    pub(super) fn shut_down(&mut self, force: bool, out: &mut Vec<Action>) {
        if !std::mem::replace(&mut self.shutdown, true) {
            Self::announce(out, "stopping the stack");
        }
        if force {
            Self::announce(out, "killing every member");
            for (member, m) in self.members.iter().enumerate() {
                if let Some(pid) = m.phase.pid() {
                    out.push(Action::Signal {
                        member,
                        pid,
                        signal: Signal::SIGKILL,
                    });
                }
            }
        }
    }

    fn names(&self, services: &[ServiceId]) -> String {
        services
            .iter()
            .map(|&s| self.stack.services[s].name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `orch stop`: these services and what depends on them, until started again.
    pub(super) fn stop_services(&mut self, services: &[ServiceId], out: &mut Vec<Action>) {
        let all = self.stack.dag.dependents_closure(services);
        let extra: Vec<ServiceId> = all
            .iter()
            .copied()
            .filter(|s| !services.contains(s))
            .collect();
        let mut text = format!("stopping {}", self.names(services));
        if !extra.is_empty() {
            text.push_str(&format!(
                ", and first what depends on it: {}",
                self.names(&extra)
            ));
        }
        Self::announce(out, text);
        for sid in all {
            self.services[sid].held = true;
        }
    }

    /// `orch start`: these services and what they depend on. A disabled
    /// member is enabled again and a completed `once` command runs again.
    pub(super) fn start_services(&mut self, services: &[ServiceId], out: &mut Vec<Action>) {
        let all = self.stack.dag.closure(services);
        Self::announce(out, format!("starting {}", self.names(&all)));
        self.want(&all, services, out);
        for &sid in services {
            for m in self.services[sid].members.clone() {
                if matches!(self.members[m].phase, Phase::Completed) {
                    self.members[m].park(Phase::Pending);
                }
            }
        }
    }

    /// Make `all` (the closure of `roots`) run: selected, not held, disabled
    /// members enabled with a fresh count. `roots` join the selection, so a
    /// reload keeps them.
    fn want(&mut self, all: &[ServiceId], roots: &[ServiceId], out: &mut Vec<Action>) {
        for &sid in all {
            let service = &mut self.services[sid];
            service.selected = true;
            service.held = false;
            for m in service.members.clone() {
                if matches!(self.members[m].phase, Phase::Failed { .. }) {
                    self.say(out, m, "enabled again");
                    self.members[m].respawns.reset();
                    self.members[m].park(Phase::Pending);
                }
            }
        }
        for &sid in roots {
            let name = &self.stack.services[sid].name;
            if !self.selection.also.contains(name) {
                self.selection.also.push(name.clone());
            }
        }
    }

    /// `orch restart`: each live member gets its restart signal (or, `hard`,
    /// is stopped and started with a fresh process); a member that is
    /// disabled, completed or waiting to restart starts now; a service that
    /// was stopped starts again.
    pub(super) fn restart_services(
        &mut self,
        services: &[ServiceId],
        hard: bool,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let all = self.stack.dag.closure(services);
        for &sid in services {
            if !self.services[sid].selected || self.services[sid].held {
                Self::announce(out, format!("starting {}", self.stack.services[sid].name));
            }
        }
        self.want(&all, services, out);
        for &sid in services {
            if hard {
                self.services[sid].epoch = self.next_epoch();
            }
            for m in self.services[sid].members.clone() {
                match self.members[m].phase {
                    Phase::Failed { .. } => {}
                    Phase::Completed | Phase::Backoff { .. } => {
                        self.say(out, m, "starting it again");
                        self.members[m].park(Phase::Pending);
                    }
                    // A scheduled command runs now, and again at its next time.
                    Phase::Waiting => self.run_now(m, now, out),
                    Phase::Starting { pid: Some(pid), .. } | Phase::Running { pid, .. }
                        if !hard =>
                    {
                        let command = self.run_command(m);
                        let (signal, timeout) = (command.restart_signal, command.stop_timeout);
                        self.say(out, m, format!("sending {signal}"));
                        self.members[m].restart_until = Some(now + timeout);
                        out.push(Action::Signal {
                            member: m,
                            pid,
                            signal,
                        });
                    }
                    _ => {}
                }
            }
        }
    }
}
