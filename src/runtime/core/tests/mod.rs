//! Tests of the pure core: a small stand-in for the supervisor ([`Sim`])
//! answers every start with a pid and keeps the clock; each file holds the
//! cases of one concern, and `model.rs` drives random interleavings.

mod lifecycle;
mod model;
mod reload;
mod requests;
mod schedules;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::{Action, Core, Event, MemberId, Phase, Selection, Timer};
use crate::model::Stack;
use crate::runtime::spawn::ExitStatus;

pub fn stack(yaml: &str) -> Arc<Stack> {
    Arc::new(Stack::from_text(Path::new("/tmp/t/stack.yaml"), yaml).expect("a valid test stack"))
}

/// The core with a supervisor that starts every process at once.
pub struct Sim {
    pub core: Core,
    pub now: Instant,
    next_pid: i32,
    /// Every action taken so far, in order.
    pub log: Vec<Action>,
    /// When set, starts fail with this error instead.
    pub refuse: Option<String>,
}

impl Sim {
    pub fn new(yaml: &str) -> Sim {
        Sim::with(yaml, Selection::default(), false)
    }

    pub fn with(yaml: &str, selection: Selection, abort_on_failure: bool) -> Sim {
        let now = Instant::now();
        let mut sim = Sim {
            core: Core::new(stack(yaml), selection, abort_on_failure, now),
            now,
            next_pid: 100,
            log: Vec::new(),
            refuse: None,
        };
        let actions = sim.core.start(now);
        sim.take(actions);
        sim
    }

    /// Handle an event; the actions it led to (starts answered at once).
    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        let actions = self.core.handle(event, self.now);
        self.take(actions)
    }

    fn take(&mut self, actions: Vec<Action>) -> Vec<Action> {
        let mut all = Vec::new();
        let mut queue = std::collections::VecDeque::from(actions);
        while let Some(action) = queue.pop_front() {
            if let Action::Spawn { member, generation } = action {
                self.next_pid += 1;
                let pid = Pid::from_raw(self.next_pid);
                let answer = match &self.refuse {
                    Some(error) => Event::SpawnFailed {
                        member,
                        generation,
                        error: error.clone(),
                    },
                    None => Event::Spawned {
                        member,
                        generation,
                        pid,
                    },
                };
                queue.extend(self.core.handle(answer, self.now));
            }
            self.log.push(action.clone());
            all.push(action);
        }
        all
    }

    pub fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    pub fn id(&self, label: &str) -> MemberId {
        self.core
            .members
            .iter()
            .position(|m| m.label == label)
            .unwrap_or_else(|| panic!("no member {label}"))
    }

    pub fn phase(&self, label: &str) -> &Phase {
        &self.core.members[self.id(label)].phase
    }

    pub fn pid(&self, label: &str) -> Pid {
        self.phase(label)
            .pid()
            .unwrap_or_else(|| panic!("{label} has no process: {:?}", self.phase(label)))
    }

    pub fn generation(&self, label: &str) -> u64 {
        self.core.members[self.id(label)].generation
    }

    /// The member's process exits with `code`.
    pub fn exit(&mut self, label: &str, code: i32) -> Vec<Action> {
        self.end(label, ExitStatus::Code(code))
    }

    /// The member's process dies of the signal it was sent.
    pub fn killed(&mut self, label: &str, signal: Signal) -> Vec<Action> {
        self.end(
            label,
            ExitStatus::Signaled {
                signal: signal as i32,
                core_dumped: false,
            },
        )
    }

    fn end(&mut self, label: &str, status: ExitStatus) -> Vec<Action> {
        let (member, generation) = (self.id(label), self.generation(label));
        self.handle(Event::Exited {
            member,
            generation,
            status,
        })
    }

    pub fn ready(&mut self, label: &str) -> Vec<Action> {
        let (member, generation) = (self.id(label), self.generation(label));
        self.handle(Event::Ready { member, generation })
    }

    pub fn timer(&mut self, label: &str, timer: Timer) -> Vec<Action> {
        let (member, generation) = (self.id(label), self.generation(label));
        self.handle(Event::Timer {
            member,
            generation,
            timer,
        })
    }

    pub fn service(&self, name: &str) -> usize {
        self.core
            .stack
            .service_id(name)
            .expect("a service of the stack")
    }

    pub fn up(&self, name: &str) -> bool {
        self.core.health().up[self.service(name)]
    }
}

/// Labels of the members started by `actions`.
pub fn started(sim: &Sim, actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Spawn { member, .. } => Some(sim.core.members[*member].label.clone()),
            _ => None,
        })
        .collect()
}

/// (label, signal) of every signal sent by `actions`.
pub fn signalled(sim: &Sim, actions: &[Action]) -> Vec<(String, Signal)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Signal { member, signal, .. } => {
                Some((sim.core.members[*member].label.clone(), *signal))
            }
            _ => None,
        })
        .collect()
}

/// What orch said in `actions`.
pub fn said(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Say { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

pub fn exit_code(actions: &[Action]) -> Option<u8> {
    actions.iter().find_map(|a| match a {
        Action::Exit(code) => Some(*code),
        _ => None,
    })
}
