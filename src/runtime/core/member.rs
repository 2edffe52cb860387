//! One member (a process of a command): its phases, what its live process
//! was started with, and starting it.

use std::sync::Arc;
use std::time::Instant;

use nix::unistd::Pid;

use super::respawn::Respawns;
use super::{Action, Core, MemberId};
use crate::model::{Command, ServiceId, Stack};
use crate::runtime::spawn::ExitStatus;

/// Where a member is in a stack: service, command and process index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Slot {
    pub sid: ServiceId,
    pub cid: usize,
    pub index: usize,
}

impl Slot {
    /// Every process of every command of `stack`, in file order.
    pub fn all(stack: &Stack) -> impl Iterator<Item = Slot> + '_ {
        stack.services.iter().enumerate().flat_map(|(sid, s)| {
            s.commands.iter().enumerate().flat_map(move |(cid, c)| {
                (0..c.instances.len()).map(move |index| Slot { sid, cid, index })
            })
        })
    }
}

/// What a live process was started with: the stack of that moment, its
/// place there, and the version of its service's configuration. Stopping it
/// uses these settings even after a reload changed them.
#[derive(Debug, Clone)]
pub struct Run {
    pub stack: Arc<Stack>,
    pub slot: Slot,
    pub epoch: u64,
}

impl Run {
    pub fn command(&self) -> &Command {
        &self.stack.services[self.slot.sid].commands[self.slot.cid]
    }

    /// The name of the service it belongs to.
    pub fn service(&self) -> &str {
        &self.stack.services[self.slot.sid].name
    }

    /// The names of the services its service depended on.
    pub fn depends_on(&self) -> impl Iterator<Item = &str> {
        self.stack.services[self.slot.sid]
            .depends_on
            .iter()
            .map(|&d| self.stack.services[d].name.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Its service is not selected to run.
    Inactive,
    /// Wanted, waiting for its service's dependencies.
    Pending,
    /// Started (`pid` is known once the process exists), not yet ready.
    Starting { pid: Option<Pid>, since: Instant },
    /// Ready.
    Running { pid: Pid, since: Instant },
    /// Signalled to stop; waiting for it to exit.
    Stopping { pid: Pid, reason: StopReason },
    /// Waiting to be restarted.
    Backoff { until: Instant },
    /// A `once` command that exited 0.
    Completed,
    /// A scheduled command between its runs.
    Waiting,
    /// Disabled after failing too often; down until restarted.
    Failed { reason: String },
    /// Stopped: on request, or to be started again with a new configuration.
    Stopped,
}

impl Phase {
    /// The name status reports show.
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Inactive => "not selected",
            Phase::Pending => "pending",
            Phase::Starting { .. } => "starting",
            Phase::Running { .. } => "running",
            Phase::Stopping { .. } => "stopping",
            Phase::Backoff { .. } => "backoff",
            Phase::Completed => "completed",
            Phase::Waiting => "waiting",
            Phase::Failed { .. } => "failed",
            Phase::Stopped => "stopped",
        }
    }

    /// The process, once it exists and until it has exited.
    pub fn pid(&self) -> Option<Pid> {
        match *self {
            Phase::Starting { pid, .. } => pid,
            Phase::Running { pid, .. } | Phase::Stopping { pid, .. } => Some(pid),
            _ => None,
        }
    }

    /// Whether a process is being started or runs (it may not have a pid yet).
    pub fn live(&self) -> bool {
        matches!(
            self,
            Phase::Starting { .. } | Phase::Running { .. } | Phase::Stopping { .. }
        )
    }
}

/// Why a member is being stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// What is wanted changed: stopped, reloaded, restarted, shut down.
    Converge,
    /// It failed a check (readiness timeout, monitor, memory): the respawn
    /// rules apply once it has exited.
    Failed(String),
}

/// One process of one command, across its restarts.
#[derive(Debug, Clone)]
pub struct Member {
    /// `service.command`, or `service.command.N` for a command with several processes.
    pub label: String,
    /// Its place in the current stack; `None` once a reload removed its command.
    pub slot: Option<Slot>,
    pub phase: Phase,
    /// Bumped at every start, and whenever pending timers must be forgotten.
    pub generation: u64,
    /// What its live process was started with (while [`Phase::live`]).
    pub run: Option<Run>,
    pub respawns: Respawns,
    pub last_exit: Option<ExitStatus>,
    /// Why it last failed.
    pub last_failure: Option<String>,
    /// Why its log file cannot be written, while it cannot.
    pub log_trouble: Option<String>,
    /// Why its readiness check has not passed yet, when that is worth telling.
    pub waiting: Option<String>,
    /// Runs of a scheduled command skipped because the previous one still ran.
    pub skipped: u32,
    /// Its schedule's ticks were asked for ([`Action::Arm`]) and not cancelled.
    pub(super) armed: bool,
    /// It was sent its restart signal: an exit before this time is part of the restart.
    pub(super) restart_until: Option<Instant>,
}

impl Member {
    pub fn new(label: String, slot: Slot) -> Member {
        Member {
            label,
            slot: Some(slot),
            phase: Phase::Pending,
            generation: 0,
            run: None,
            respawns: Respawns::default(),
            last_exit: None,
            last_failure: None,
            log_trouble: None,
            waiting: None,
            skipped: 0,
            armed: false,
            restart_until: None,
        }
    }

    /// Leave a phase without a process for `phase`, forgetting its timers.
    pub(super) fn park(&mut self, phase: Phase) {
        debug_assert!(!self.phase.live(), "a live member is stopped, not parked");
        self.phase = phase;
        self.generation += 1;
    }
}

impl Core {
    /// The command the member's live process runs.
    pub(super) fn run_command(&self, member: MemberId) -> &Command {
        self.members[member]
            .run
            .as_ref()
            .expect("a live member has a run")
            .command()
    }

    /// Start the member's process with the current configuration.
    pub(super) fn launch(&mut self, member: MemberId, now: Instant, out: &mut Vec<Action>) {
        let slot = self.members[member]
            .slot
            .expect("only members of the current stack are started");
        let run = Run {
            stack: Arc::clone(&self.stack),
            slot,
            epoch: self.services[slot.sid].epoch,
        };
        let m = &mut self.members[member];
        debug_assert!(!m.phase.live(), "a member never has two processes");
        m.generation += 1;
        m.phase = Phase::Starting {
            pid: None,
            since: now,
        };
        m.run = Some(run);
        m.restart_until = None;
        m.waiting = None;
        out.push(Action::Spawn {
            member,
            generation: m.generation,
        });
    }

    /// Whether the member's command (in the current stack) runs on a schedule.
    pub fn scheduled(&self, member: MemberId) -> bool {
        self.command(member).is_some_and(|c| c.schedule.is_some())
    }

    /// Whether the member's live process is what is wanted: its command is
    /// still in the stack, with the configuration it was started with, and
    /// its service is wanted.
    pub(super) fn keeps(&self, member: MemberId) -> bool {
        let m = &self.members[member];
        match (m.slot, &m.run) {
            (Some(slot), Some(run)) => {
                run.epoch == self.services[slot.sid].epoch && self.wanted(slot.sid)
            }
            _ => false,
        }
    }
}
