//! The supervision core: the state of every service and member, and the
//! decisions taken on each event. Pure: no I/O, no clock (time comes in as
//! `now`), so every rule is tested without processes. The supervisor
//! (`runtime/supervisor.rs`) carries out the [`Action`]s and feeds back
//! [`Event`]s.
//!
//! The core is level-triggered: requests and reloads change only what is
//! *wanted* (per service: selected or not, held by `orch stop` or not, the
//! version of its configuration), and after every event one pass
//! (`Core::converge`, in `order.rs`) compares that with what runs and
//! acts on the difference: stop what must go (dependents first), start
//! what may (dependencies first). So a request that comes while others are
//! in flight is never lost: the last one asked is where things end.

mod event;
mod health;
mod member;
mod order;
mod process;
mod reload;
mod requests;
mod respawn;
mod schedule;
mod status;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use event::{Action, Event, Timer};
pub use health::Health;
pub use member::{Member, Phase, Run, Slot, StopReason};
pub use reload::ReloadPlan;
pub use respawn::{backoff_delay, MAX_BACKOFF, STABLE_AFTER};
pub use status::WhyLine;

use crate::model::{Command, Instance, ServiceId, Stack};

/// Index of a member in [`Core::members`]; stable for as long as orch runs.
pub type MemberId = usize;

/// What `orch up` was asked to run: the services named on its command line
/// (every enabled one when none is) and the active profiles, by the rule of
/// [`Stack::select`]. Kept by name, so it means the same in a reloaded stack.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub names: Vec<String>,
    pub profiles: Vec<String>,
    /// Services started since with `orch start`; those a reload removes are
    /// forgotten.
    pub also: Vec<String>,
}

impl Selection {
    /// Which services of `stack` run; an error says why the selection does
    /// not fit the stack (a named service or a profile it no longer has).
    pub fn resolve(&self, stack: &Stack) -> Result<Vec<bool>, String> {
        let chosen = stack
            .select(&self.names, &self.profiles)
            .map_err(|e| format!("{} ({})", e.message, e.help))?;
        let also: Vec<ServiceId> = self
            .also
            .iter()
            .filter_map(|name| stack.service_id(name))
            .collect();
        let mut selected = vec![false; stack.services.len()];
        for sid in chosen.into_iter().chain(stack.dag.closure(&also)) {
            selected[sid] = true;
        }
        Ok(selected)
    }
}

/// What is wanted of one service, and what the core keeps about it.
#[derive(Debug, Clone)]
pub struct ServiceState {
    /// orch runs it: `orch up` selected it, or a service it selected
    /// depends on it, or it was started with `orch start`.
    pub selected: bool,
    /// Stopped with `orch stop`: not started again until `orch start`.
    pub held: bool,
    /// Version of the service's configuration; a member whose process was
    /// started with an older one is restarted.
    pub epoch: u64,
    /// Its members, in file order.
    pub members: Vec<MemberId>,
    /// How long after orch started it was first up.
    pub up_at: Option<Duration>,
    /// Whether "not started: X failed" was said since it last could start.
    told_blocked: bool,
}

/// Every service and member of the stack, and the rules that move them.
#[derive(Debug)]
pub struct Core {
    /// The stack as it is wanted now (the latest reload).
    pub stack: Arc<Stack>,
    pub services: Vec<ServiceState>,
    /// Every member orch has had; those of commands a reload removed keep
    /// their place (with no [`Slot`]) so ids stay valid.
    pub members: Vec<Member>,
    pub selection: Selection,
    /// The whole stack is being stopped.
    pub shutdown: bool,
    abort_on_failure: bool,
    started: Instant,
    /// Exit has been asked for.
    exited: bool,
    /// Every selected service has been up at once (and it was said).
    all_up: bool,
    /// Source of configuration versions.
    epochs: u64,
}

impl Core {
    /// Supervise `stack`; the services `selection` names must exist in it.
    pub fn new(
        stack: Arc<Stack>,
        selection: Selection,
        abort_on_failure: bool,
        now: Instant,
    ) -> Core {
        let selected = selection
            .resolve(&stack)
            .expect("the selection was checked against the stack");
        let mut core = Core {
            services: selected
                .into_iter()
                .map(|selected| ServiceState {
                    selected,
                    held: false,
                    epoch: 0,
                    members: Vec::new(),
                    up_at: None,
                    told_blocked: false,
                })
                .collect(),
            stack,
            members: Vec::new(),
            selection,
            shutdown: false,
            abort_on_failure,
            started: now,
            exited: false,
            all_up: false,
            epochs: 0,
        };
        for slot in Slot::all(&core.stack) {
            let label = core.stack.member_label(slot.sid, slot.cid, slot.index);
            core.services[slot.sid].members.push(core.members.len());
            core.members.push(Member::new(label, slot));
        }
        core
    }

    /// The first decisions: start what has no dependencies.
    pub fn start(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        self.converge(now, &mut out);
        out
    }

    /// Take in one event; what to do about it.
    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Shutdown { force } => self.shut_down(force, &mut out),
            Event::Stop { services } => self.stop_services(&services, &mut out),
            Event::Start { services } => self.start_services(&services, &mut out),
            Event::Restart { services, hard } => {
                self.restart_services(&services, hard, now, &mut out);
            }
            Event::Reload { stack, selection } => self.reload(stack, selection, &mut out),
            Event::Tick { member } => self.tick(member, now, &mut out),
            Event::LogTrouble {
                member,
                trouble,
                dropped,
            } => self.log_trouble(member, trouble, dropped, &mut out),
            other => self.process_event(other, now, &mut out),
        }
        self.converge(now, &mut out);
        out
    }

    /// Whether the service is wanted running: selected, not held, and the
    /// stack is not being stopped.
    pub fn wanted(&self, sid: ServiceId) -> bool {
        let s = &self.services[sid];
        s.selected && !s.held && !self.shutdown
    }

    /// The command a member of the current stack runs (`None` for a member
    /// whose command a reload removed).
    pub fn command(&self, member: MemberId) -> Option<&Command> {
        let slot = self.members[member].slot?;
        Some(&self.stack.services[slot.sid].commands[slot.cid])
    }

    /// What a [`Action::Spawn`] of `member` starts: its process in the
    /// current stack, with every expansion.
    pub fn launch_spec(&self, member: MemberId) -> (&Stack, Slot, &Instance) {
        let slot = self.members[member]
            .slot
            .expect("only members of the current stack are started");
        let instance = &self.stack.services[slot.sid].commands[slot.cid].instances[slot.index];
        (&self.stack, slot, instance)
    }

    fn say(&self, out: &mut Vec<Action>, member: MemberId, text: impl std::fmt::Display) {
        out.push(Action::Say {
            member: Some(member),
            text: format!("{}: {text}", self.members[member].label),
        });
    }

    fn announce(out: &mut Vec<Action>, text: impl Into<String>) {
        out.push(Action::Say {
            member: None,
            text: text.into(),
        });
    }

    fn log_trouble(
        &mut self,
        member: MemberId,
        trouble: Option<String>,
        dropped: u64,
        out: &mut Vec<Action>,
    ) {
        let text = match &trouble {
            Some(why) => {
                format!("cannot write its log file: {why}; its output is dropped until it can")
            }
            None => format!("its log file can be written again ({dropped} lines were dropped)"),
        };
        self.members[member].log_trouble = trouble;
        self.say(out, member, text);
    }

    /// A new configuration version.
    fn next_epoch(&mut self) -> u64 {
        self.epochs += 1;
        self.epochs
    }
}
