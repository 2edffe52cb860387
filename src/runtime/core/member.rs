//! One member (a process of a command) and its lifecycle: what happens when
//! its process starts, exits, becomes ready, fails a check or outlives its
//! stop timeout.

use std::sync::Arc;
use std::time::Instant;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::respawn::Respawns;
use super::{Action, Core, Event, MemberId, Timer, STABLE_AFTER};
use crate::model::{Check, Command, ServiceId, Stack, WhenToRun};
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
    /// The events about one member's process.
    pub(super) fn process_event(&mut self, event: Event, now: Instant, out: &mut Vec<Action>) {
        let current = |core: &Core, member: MemberId, generation: u64| {
            core.members[member].generation == generation
        };
        match event {
            Event::Spawned {
                member,
                generation,
                pid,
            } if current(self, member, generation) => self.spawned(member, pid, now, out),
            Event::SpawnFailed {
                member,
                generation,
                error,
            } if current(self, member, generation) => {
                if matches!(
                    self.members[member].phase,
                    Phase::Starting { pid: None, .. }
                ) {
                    self.say(out, member, format!("cannot start: {error}"));
                    self.members[member].run = None;
                    self.members[member].phase = Phase::Stopped;
                    self.fail(member, error, now, out);
                }
            }
            Event::Exited {
                member,
                generation,
                status,
            } if current(self, member, generation) => self.exited(member, status, now, out),
            Event::Ready { member, generation } if current(self, member, generation) => {
                if let Phase::Starting { pid: Some(pid), .. } = self.members[member].phase {
                    self.members[member].phase = Phase::Running { pid, since: now };
                    self.say(out, member, "ready");
                    self.monitor(member, out);
                }
            }
            Event::Waiting {
                member,
                generation,
                why,
            } if current(self, member, generation) => {
                if let Phase::Starting { pid: Some(_), .. } = self.members[member].phase {
                    self.say(out, member, format!("not ready yet: {why}"));
                    self.members[member].waiting = Some(why);
                }
            }
            Event::NotReady {
                member,
                generation,
                why,
            } if current(self, member, generation) => {
                if let Phase::Starting { pid: Some(_), .. } = self.members[member].phase {
                    self.say(out, member, format!("not ready {why}"));
                    let reason = StopReason::Failed(format!("not ready {why}"));
                    self.stop(member, Signal::SIGKILL, reason, now, out);
                }
            }
            Event::Unhealthy {
                member,
                generation,
                why,
            } if current(self, member, generation) => {
                if let Phase::Running { .. } = self.members[member].phase {
                    self.say(out, member, format!("unhealthy: {why}"));
                    let signal = self.run_command(member).stop_signal;
                    self.stop(member, signal, StopReason::Failed(why), now, out);
                }
            }
            Event::Timer {
                member,
                generation,
                timer,
            } if current(self, member, generation) => match (timer, &self.members[member].phase) {
                (Timer::Restart, Phase::Backoff { .. }) => {
                    self.members[member].phase = Phase::Pending;
                }
                (Timer::StopTimeout, &Phase::Stopping { pid, .. }) => {
                    self.say(out, member, "did not stop in time: killing it");
                    out.push(Action::Signal {
                        member,
                        pid,
                        signal: Signal::SIGKILL,
                    });
                }
                _ => {}
            },
            // An event about an earlier process of the member.
            _ => {}
        }
    }

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

    fn spawned(&mut self, member: MemberId, pid: Pid, now: Instant, out: &mut Vec<Action>) {
        if !matches!(
            self.members[member].phase,
            Phase::Starting { pid: None, .. }
        ) {
            return;
        }
        let generation = self.members[member].generation;
        let run = self.members[member]
            .run
            .as_ref()
            .expect("a live member has a run");
        let check = &run.command().instances[run.slot.index].ready.check;
        let immediate = matches!(check, Check::Started);
        let probed = !matches!(check, Check::Started | Check::Completed | Check::Log(_));
        self.say(out, member, format!("started (pid {pid})"));
        if immediate {
            self.members[member].phase = Phase::Running { pid, since: now };
            self.monitor(member, out);
        } else {
            self.members[member].phase = Phase::Starting {
                pid: Some(pid),
                since: now,
            };
            if probed {
                out.push(Action::Probe { member, generation });
            }
        }
    }

    fn monitor(&self, member: MemberId, out: &mut Vec<Action>) {
        let run = self.members[member]
            .run
            .as_ref()
            .expect("a live member has a run");
        if run.command().instances[run.slot.index].monitor.is_some() {
            out.push(Action::Monitor {
                member,
                generation: self.members[member].generation,
            });
        }
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

    fn exited(
        &mut self,
        member: MemberId,
        status: ExitStatus,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let phase = self.members[member].phase.clone();
        let Some(pid) = phase.pid() else { return };
        let keeps = self.keeps(member);
        let m = &mut self.members[member];
        m.last_exit = Some(status);
        let once = m
            .run
            .take()
            .is_some_and(|run| run.command().when == WhenToRun::Once);
        m.phase = Phase::Stopped;
        out.push(Action::Cancel { member });
        out.push(Action::Sweep { member, pid });
        match phase {
            Phase::Stopping {
                reason: StopReason::Converge,
                ..
            } => {
                let again = m.slot.is_some_and(|slot| self.wanted(slot.sid));
                self.say(
                    out,
                    member,
                    if again {
                        format!("{status}; starting it again")
                    } else {
                        format!("stopped ({status})")
                    },
                );
            }
            Phase::Stopping {
                reason: StopReason::Failed(reason),
                ..
            } => self.fail(member, reason, now, out),
            _ if !keeps => self.say(out, member, status),
            _ if m.restart_until.take().is_some_and(|until| now <= until) => {
                m.phase = Phase::Pending;
                self.say(
                    out,
                    member,
                    format!("{status} on its restart signal; starting it again"),
                );
            }
            _ if once && status.success() => {
                m.phase = Phase::Completed;
                self.say(out, member, "completed");
            }
            Phase::Running { since, .. } => {
                if now.duration_since(since) >= STABLE_AFTER {
                    m.respawns.streak = 0;
                }
                self.fail(member, status.to_string(), now, out);
            }
            _ => self.fail(member, status.to_string(), now, out),
        }
    }

    /// Send `signal` to a live member and wait for it to exit; SIGKILL after
    /// its stop timeout. A member whose process does not exist yet is left
    /// for the next pass.
    pub(super) fn stop(
        &mut self,
        member: MemberId,
        signal: Signal,
        reason: StopReason,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let Some(pid) = self.members[member].phase.pid() else {
            return;
        };
        let timeout = self.run_command(member).stop_timeout;
        let m = &mut self.members[member];
        m.phase = Phase::Stopping { pid, reason };
        out.push(Action::Cancel { member });
        out.push(Action::Signal {
            member,
            pid,
            signal,
        });
        out.push(Action::SetTimer {
            at: now + timeout,
            member,
            generation: m.generation,
            timer: Timer::StopTimeout,
        });
    }
}
