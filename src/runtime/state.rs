//! The supervision core: the state of every member and the decisions taken on
//! each event. Pure: no I/O, no clock (time comes in as `now`), so every rule
//! is tested without processes. The executor in `supervisor.rs` carries out
//! the [`Action`]s and feeds back [`Event`]s.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::spawn::ExitStatus;
use crate::model::{Check, HumanDuration, ServiceId, Stack, WhenToRun};

/// Per service: up, and down for good. See [`Supervision::health`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub up: Vec<bool>,
    pub dead: Vec<bool>,
}

/// Index of a member in [`Supervision::members`].
pub type MemberId = usize;

/// Longest delay between restarts, however long a member keeps failing.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A member that stayed ready this long starts its backoff afresh when it fails.
pub const STABLE_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for its service's dependencies.
    Pending,
    /// Started (`pid` is known once the process exists), not yet ready.
    Starting { pid: Option<Pid>, since: Instant },
    /// Ready.
    Running { pid: Pid, since: Instant },
    /// A `once` command that exited 0.
    Completed,
    /// Waiting to be restarted.
    Backoff { until: Instant },
    /// Disabled after failing too often; down for good.
    Failed { reason: String },
    /// Asked to stop; what happens when it has exited.
    Stopping { pid: Pid, then: AfterStop },
    /// Stopped on request.
    Stopped,
}

impl Phase {
    /// The name shown by status reports.
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Starting { .. } => "starting",
            Phase::Running { .. } => "running",
            Phase::Completed => "completed",
            Phase::Backoff { .. } => "backoff",
            Phase::Failed { .. } => "failed",
            Phase::Stopping { .. } => "stopping",
            Phase::Stopped => "stopped",
        }
    }

    /// The process of the member, while there is one.
    pub fn pid(&self) -> Option<Pid> {
        match *self {
            Phase::Starting { pid, .. } => pid,
            Phase::Running { pid, .. } | Phase::Stopping { pid, .. } => Some(pid),
            _ => None,
        }
    }
}

/// What to do once a stopping member has exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterStop {
    /// Leave it stopped.
    Stay,
    /// It was stopped because it failed (probe timeout, monitor, memory): apply the respawn rules.
    Respawn(String),
    /// Start it again at once, uncounted (`orch restart --hard`).
    Relaunch,
}

/// One process of one command.
#[derive(Debug, Clone)]
pub struct Member {
    pub sid: ServiceId,
    pub cid: usize,
    pub index: usize,
    /// `service.command`, or `service.command.N` for a command with several processes.
    pub label: String,
    pub phase: Phase,
    /// Bumped at every start; events of an earlier process carry an older one and are ignored.
    pub generation: u64,
    /// When recent restarts happened, within the respawn window.
    recent: VecDeque<Instant>,
    /// Restarts since orch started.
    pub restarts: u32,
    /// Consecutive failures, for the backoff.
    streak: u32,
    pub last_exit: Option<ExitStatus>,
    /// Why it last failed.
    pub last_failure: Option<String>,
    /// It was sent its restart signal: an exit before this time is part of the restart.
    restart_until: Option<Instant>,
}

/// Something that happened, for [`Supervision::handle`].
#[derive(Debug, Clone)]
pub enum Event {
    Spawned {
        member: MemberId,
        generation: u64,
        pid: Pid,
    },
    SpawnFailed {
        member: MemberId,
        generation: u64,
        error: String,
    },
    Exited {
        member: MemberId,
        generation: u64,
        status: ExitStatus,
    },
    Ready {
        member: MemberId,
        generation: u64,
    },
    /// The readiness probe did not pass in time.
    NotReady {
        member: MemberId,
        generation: u64,
        why: String,
    },
    /// The monitor command failed, or memory went over the limit.
    Unhealthy {
        member: MemberId,
        generation: u64,
        why: String,
    },
    Timer {
        member: MemberId,
        generation: u64,
        timer: Timer,
    },
    /// Stop everything; `force` kills at once.
    Shutdown {
        force: bool,
    },
    /// Stop these services, their dependents first.
    Stop {
        services: Vec<ServiceId>,
    },
    /// Start these services, their dependencies first.
    Start {
        services: Vec<ServiceId>,
    },
    /// Restart the members of these services: the restart signal, or stop and start when `hard`.
    Restart {
        services: Vec<ServiceId>,
        hard: bool,
    },
    /// Apply a new version of the stack: stop what was removed or changed
    /// (and what depends on it), then start what is new or changed.
    Reload {
        stack: Arc<Stack>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// The backoff is over: start again.
    Restart,
    /// The stop signal had its time: kill.
    StopTimeout,
}

/// What the executor must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start a process for the member.
    Spawn { member: MemberId, generation: u64 },
    /// Send a signal to the member's process group.
    Signal {
        member: MemberId,
        pid: Pid,
        signal: Signal,
    },
    /// Kill what is left of the group of a process that exited.
    Sweep { member: MemberId, pid: Pid },
    /// Run the readiness probe.
    Probe { member: MemberId, generation: u64 },
    /// Run the monitor command periodically.
    Monitor { member: MemberId, generation: u64 },
    /// Stop probes and monitors of the member.
    Cancel { member: MemberId },
    SetTimer {
        at: Instant,
        member: MemberId,
        generation: u64,
        timer: Timer,
    },
    /// A line from orch about a member or service, for the console (and the member's log).
    Say {
        member: Option<MemberId>,
        text: String,
    },
    /// Everything is done: exit with this code.
    Exit(u8),
    /// A reload took effect: [`Supervision::stack`] is the new stack, and
    /// members may have been added (their ids follow the old ones).
    Swapped,
}

/// Every member of the selected services, and the rules that move them.
#[derive(Debug)]
pub struct Supervision {
    pub stack: Arc<Stack>,
    pub members: Vec<Member>,
    /// Members of each service.
    pub by_service: Vec<Vec<MemberId>>,
    /// Services orch runs (`orch up` with names runs a closure of them).
    pub wanted: Vec<bool>,
    /// Services whose "not started" reason has been told.
    told_blocked: Vec<bool>,
    /// Services stopped on request: not started again until asked.
    held: Vec<bool>,
    /// Services being stopped, in order.
    stopping: Vec<bool>,
    abort_on_failure: bool,
    shutting_down: bool,
    exited: bool,
    /// A reload waiting for its services to stop: the new stack, and the
    /// names of the services being replaced.
    reload: Option<(Arc<Stack>, Vec<String>)>,
    /// When supervision started, and when each service was first up.
    started: Option<Instant>,
    pub up_at: Vec<Option<Duration>>,
}

impl Supervision {
    /// Supervise the services `selected` (with everything they depend on).
    pub fn new(stack: Arc<Stack>, selected: &[ServiceId], abort_on_failure: bool) -> Self {
        let n = stack.services.len();
        let mut wanted = vec![selected.is_empty(); n];
        for sid in stack.dag.closure(selected) {
            wanted[sid] = true;
        }
        let mut members = Vec::new();
        let mut by_service = vec![Vec::new(); n];
        for member in member_slots(&stack) {
            by_service[member.sid].push(members.len());
            members.push(member);
        }
        Self {
            stack,
            members,
            by_service,
            wanted,
            told_blocked: vec![false; n],
            held: vec![false; n],
            stopping: vec![false; n],
            abort_on_failure,
            shutting_down: false,
            exited: false,
            reload: None,
            started: None,
            up_at: vec![None; n],
        }
    }

    /// The first decisions: start what has no dependencies.
    pub fn start(&mut self, now: Instant) -> Vec<Action> {
        self.started = Some(now);
        let mut out = Vec::new();
        self.schedule(now, &mut out);
        out
    }

    /// Which services are up and which are down for good, each computed once
    /// in dependency order (a recursive walk would visit shared dependencies
    /// once per path, which explodes in a layered graph).
    ///
    /// A service is up when every member is ready (or, for `once`, completed);
    /// a bundle when everything it depends on is up. It is down for good when
    /// a member is disabled, or a dependency is.
    pub fn health(&self) -> Health {
        let n = self.stack.services.len();
        let mut health = Health {
            up: vec![false; n],
            dead: vec![false; n],
        };
        for &sid in self.stack.dag.order() {
            let deps = &self.stack.services[sid].depends_on;
            let members = &self.by_service[sid];
            health.up[sid] = if members.is_empty() {
                deps.iter().all(|&d| health.up[d])
            } else {
                members.iter().all(|&m| {
                    matches!(
                        self.members[m].phase,
                        Phase::Running { .. } | Phase::Completed
                    )
                })
            };
            health.dead[sid] = members
                .iter()
                .any(|&m| matches!(self.members[m].phase, Phase::Failed { .. }))
                || deps.iter().any(|&d| health.dead[d]);
        }
        health
    }

    /// Why a service is not up, in a few words; `None` when it is up.
    pub fn why_down(&self, sid: ServiceId) -> Option<String> {
        let health = self.health();
        if health.up[sid] {
            return None;
        }
        let name = |s: ServiceId| self.stack.services[s].name.as_str();
        if let Some(&m) = self.by_service[sid]
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
            return Some(format!("{} {verb}", name(d)));
        }
        self.by_service[sid]
            .iter()
            .map(|&m| &self.members[m])
            .find(|m| !matches!(m.phase, Phase::Running { .. } | Phase::Completed))
            .map(|m| format!("{} is {}", m.label, m.phase.name()))
    }

    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Shutdown { force } => self.shutdown(force, now, &mut out),
            Event::Stop { services } => self.stop_services(&services, &mut out),
            Event::Start { services } => self.start_services(&services, &mut out),
            Event::Reload { stack } => self.reload(stack, &mut out),
            Event::Restart { services, hard } => {
                self.restart_services(&services, hard, now, &mut out)
            }
            Event::Spawned {
                member,
                generation,
                pid,
            } if self.current(member, generation) => {
                self.spawned(member, pid, now, &mut out);
            }
            Event::SpawnFailed {
                member,
                generation,
                error,
            } if self.current(member, generation) => {
                self.say(&mut out, member, format!("cannot start: {error}"));
                self.fail(member, error, now, &mut out);
            }
            Event::Exited {
                member,
                generation,
                status,
            } if self.current(member, generation) => {
                self.exited(member, status, now, &mut out);
            }
            Event::Ready { member, generation } if self.current(member, generation) => {
                if let Phase::Starting { pid: Some(pid), .. } = self.members[member].phase {
                    self.members[member].phase = Phase::Running { pid, since: now };
                    self.say(&mut out, member, "ready".to_owned());
                    self.monitor(member, &mut out);
                }
            }
            Event::NotReady {
                member,
                generation,
                why,
            } if self.current(member, generation) => {
                if let Phase::Starting { pid: Some(pid), .. } = self.members[member].phase {
                    self.say(&mut out, member, format!("not ready {why}"));
                    self.stop(
                        member,
                        pid,
                        Signal::SIGKILL,
                        AfterStop::Respawn(format!("not ready {why}")),
                        now,
                        &mut out,
                    );
                }
            }
            Event::Unhealthy {
                member,
                generation,
                why,
            } if self.current(member, generation) => {
                if let Phase::Running { pid, .. } = self.members[member].phase {
                    self.say(&mut out, member, format!("unhealthy: {why}"));
                    let signal = self.command(member).stop_signal;
                    self.stop(member, pid, signal, AfterStop::Respawn(why), now, &mut out);
                }
            }
            Event::Timer {
                member,
                generation,
                timer,
            } if self.current(member, generation) => match (timer, &self.members[member].phase) {
                (Timer::Restart, Phase::Backoff { .. }) if !self.shutting_down => {
                    self.launch(member, now, &mut out);
                }
                (Timer::StopTimeout, &Phase::Stopping { pid, .. }) => {
                    self.say(
                        &mut out,
                        member,
                        "did not stop in time: killing it".to_owned(),
                    );
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
        self.schedule(now, &mut out);
        out
    }

    fn current(&self, member: MemberId, generation: u64) -> bool {
        self.members[member].generation == generation
    }

    /// The command a member runs.
    pub fn command(&self, member: MemberId) -> &crate::model::Command {
        let m = &self.members[member];
        &self.stack.services[m.sid].commands[m.cid]
    }

    /// The process of that command a member is, with its expansions.
    pub fn instance(&self, member: MemberId) -> &crate::model::Instance {
        &self.command(member).instances[self.members[member].index]
    }

    fn say(&self, out: &mut Vec<Action>, member: MemberId, text: String) {
        out.push(Action::Say {
            member: Some(member),
            text: format!("{}: {text}", self.members[member].label),
        });
    }

    fn launch(&mut self, member: MemberId, now: Instant, out: &mut Vec<Action>) {
        let m = &mut self.members[member];
        m.generation += 1;
        m.phase = Phase::Starting {
            pid: None,
            since: now,
        };
        out.push(Action::Spawn {
            member,
            generation: m.generation,
        });
    }

    fn spawned(&mut self, member: MemberId, pid: Pid, now: Instant, out: &mut Vec<Action>) {
        let generation = self.members[member].generation;
        let check = &self.instance(member).ready.check;
        let immediate = matches!(check, Check::Started);
        let watched = !matches!(check, Check::Started | Check::Completed);
        self.say(out, member, format!("started (pid {pid})"));
        if immediate {
            self.members[member].phase = Phase::Running { pid, since: now };
            self.monitor(member, out);
        } else {
            self.members[member].phase = Phase::Starting {
                pid: Some(pid),
                since: now,
            };
            if watched {
                out.push(Action::Probe { member, generation });
            }
        }
    }

    fn monitor(&self, member: MemberId, out: &mut Vec<Action>) {
        if self.instance(member).monitor.is_some() {
            out.push(Action::Monitor {
                member,
                generation: self.members[member].generation,
            });
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
        self.members[member].last_exit = Some(status);
        out.push(Action::Cancel { member });
        out.push(Action::Sweep { member, pid });
        match phase {
            Phase::Stopping {
                then: AfterStop::Stay,
                ..
            } => {
                self.say(out, member, format!("stopped ({status})"));
                self.members[member].phase = Phase::Stopped;
            }
            Phase::Stopping {
                then: AfterStop::Respawn(reason),
                ..
            } => self.fail(member, reason, now, out),
            Phase::Stopping {
                then: AfterStop::Relaunch,
                ..
            } => {
                self.say(out, member, format!("{status}; starting it again"));
                self.launch(member, now, out);
            }
            _ if self.shutting_down => {
                self.say(out, member, status.to_string());
                self.members[member].phase = Phase::Stopped;
            }
            _ if self.members[member]
                .restart_until
                .take()
                .is_some_and(|until| now <= until) =>
            {
                self.say(
                    out,
                    member,
                    format!("{status} on its restart signal; starting it again"),
                );
                self.launch(member, now, out);
            }
            _ if self.command(member).when == WhenToRun::Once && status.success() => {
                self.say(out, member, "completed".to_owned());
                self.members[member].phase = Phase::Completed;
            }
            Phase::Running { since, .. } => {
                if now.duration_since(since) >= STABLE_AFTER {
                    self.members[member].streak = 0;
                }
                self.fail(member, status.to_string(), now, out);
            }
            _ => self.fail(member, status.to_string(), now, out),
        }
    }

    /// Send `signal` to a member and wait for it to exit; SIGKILL after its stop timeout.
    fn stop(
        &mut self,
        member: MemberId,
        pid: Pid,
        signal: Signal,
        then: AfterStop,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let timeout = self.command(member).stop_timeout;
        let m = &mut self.members[member];
        m.phase = Phase::Stopping { pid, then };
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

    /// The member failed: restart it after its backoff, or disable it when it
    /// has used up its restarts within the window.
    fn fail(&mut self, member: MemberId, reason: String, now: Instant, out: &mut Vec<Action>) {
        let respawn = self.command(member).respawn;
        let m = &mut self.members[member];
        m.last_failure = Some(reason.clone());
        while m
            .recent
            .front()
            .is_some_and(|&t| now.duration_since(t) > respawn.window)
        {
            m.recent.pop_front();
        }
        if m.recent.len() >= respawn.count as usize || self.shutting_down {
            if self.shutting_down {
                m.phase = Phase::Stopped;
                return;
            }
            m.phase = Phase::Failed {
                reason: reason.clone(),
            };
            let text = format!(
                "{reason}; disabled after {} restarts within {}",
                m.recent.len(),
                HumanDuration(respawn.window)
            );
            self.say(out, member, text);
            if self.abort_on_failure {
                out.push(Action::Say {
                    member: None,
                    text: format!(
                        "{} failed: stopping the stack (--abort-on-failure)",
                        self.members[member].label
                    ),
                });
                self.shutdown(false, now, out);
            }
            return;
        }
        let delay = backoff_delay(
            respawn.backoff,
            m.streak,
            m.generation.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ member as u64,
        );
        m.streak += 1;
        m.restarts += 1;
        m.recent.push_back(now);
        m.phase = Phase::Backoff { until: now + delay };
        let generation = m.generation;
        let text = format!(
            "{reason}; restarting in {} (restart {} of {} within {})",
            HumanDuration(delay),
            m.recent.len(),
            respawn.count,
            HumanDuration(respawn.window)
        );
        self.say(out, member, text);
        if delay.is_zero() {
            self.launch(member, now, out);
        } else {
            out.push(Action::SetTimer {
                at: now + delay,
                member,
                generation,
                timer: Timer::Restart,
            });
        }
    }

    /// Start members whose dependencies are up; say why others cannot start;
    /// move the shutdown on; exit when nothing is left to do.
    fn schedule(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.exited {
            return;
        }
        self.progress_stops(now, out);
        self.swap(out);
        // Starting members changes neither, so one computation serves the pass.
        let health = self.health();
        if let Some(started) = self.started {
            for sid in 0..self.stack.services.len() {
                if self.up_at[sid].is_none() && self.wanted[sid] && health.up[sid] {
                    self.up_at[sid] = Some(now.duration_since(started));
                }
            }
        }
        if self.shutting_down {
            if self.members.iter().all(|m| m.phase.pid().is_none()) {
                self.finish(out);
            }
            return;
        }
        let order = self.stack.dag.order().to_vec();
        for sid in order {
            if !self.wanted[sid] || self.held[sid] {
                continue;
            }
            let deps = &self.stack.services[sid].depends_on;
            if let Some(&dead) = deps.iter().find(|&&d| health.dead[d]) {
                let pending = self.by_service[sid]
                    .iter()
                    .any(|&m| self.members[m].phase == Phase::Pending);
                if !std::mem::replace(&mut self.told_blocked[sid], true)
                    && (pending || self.by_service[sid].is_empty())
                {
                    let (name, dep) = (
                        &self.stack.services[sid].name,
                        &self.stack.services[dead].name,
                    );
                    out.push(Action::Say {
                        member: None,
                        text: format!("{name}: not started: {dep} failed"),
                    });
                }
                continue;
            }
            if deps.iter().all(|&d| health.up[d]) {
                let pending: Vec<MemberId> = self.by_service[sid]
                    .iter()
                    .copied()
                    .filter(|&m| self.members[m].phase == Phase::Pending)
                    .collect();
                for m in pending {
                    self.launch(m, now, out);
                }
            }
        }
        let busy = self.members.iter().any(|m| {
            matches!(
                m.phase,
                Phase::Starting { .. }
                    | Phase::Running { .. }
                    | Phase::Backoff { .. }
                    | Phase::Stopping { .. }
            )
        });
        if !busy && !self.held.iter().any(|&h| h) {
            self.finish(out);
        }
    }

    fn shutdown(&mut self, force: bool, now: Instant, out: &mut Vec<Action>) {
        if !self.shutting_down {
            self.shutting_down = true;
            out.push(Action::Say {
                member: None,
                text: "stopping the stack".to_owned(),
            });
            self.stopping.fill(true);
            for m in &mut self.members {
                if matches!(m.phase, Phase::Pending | Phase::Backoff { .. }) {
                    m.phase = Phase::Stopped;
                    m.generation += 1;
                }
            }
        }
        if force {
            out.push(Action::Say {
                member: None,
                text: "killing every member".to_owned(),
            });
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
        self.progress_stops(now, out);
    }

    /// `orch stop`: these services and everything that depends on them.
    fn stop_services(&mut self, services: &[ServiceId], out: &mut Vec<Action>) {
        let all = self.stack.dag.dependents_closure(services);
        let extra: Vec<&str> = all
            .iter()
            .filter(|s| !services.contains(s))
            .map(|&s| self.stack.services[s].name.as_str())
            .collect();
        let names: Vec<&str> = services
            .iter()
            .map(|&s| self.stack.services[s].name.as_str())
            .collect();
        let mut text = format!("stopping {}", names.join(", "));
        if !extra.is_empty() {
            text.push_str(&format!(
                ", and first what depends on it: {}",
                extra.join(", ")
            ));
        }
        out.push(Action::Say { member: None, text });
        for sid in all {
            self.held[sid] = true;
            self.begin_stop(sid);
        }
    }

    /// `orch start`: these services and everything they depend on.
    fn start_services(&mut self, services: &[ServiceId], out: &mut Vec<Action>) {
        let all = self.stack.dag.closure(services);
        let names: Vec<&str> = all
            .iter()
            .map(|&s| self.stack.services[s].name.as_str())
            .collect();
        out.push(Action::Say {
            member: None,
            text: format!("starting {}", names.join(", ")),
        });
        for sid in all {
            self.wanted[sid] = true;
            self.held[sid] = false;
            self.stopping[sid] = false;
            self.told_blocked[sid] = false;
            for m in self.by_service[sid].clone() {
                if matches!(self.members[m].phase, Phase::Stopped | Phase::Failed { .. }) {
                    self.reset(m);
                }
            }
        }
    }

    /// `orch restart`: the restart signal to each live member (or stop and
    /// start with `hard`); a disabled member is enabled with a fresh count.
    fn restart_services(
        &mut self,
        services: &[ServiceId],
        hard: bool,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        for &sid in services {
            self.told_blocked[sid] = false;
            for m in self.by_service[sid].clone() {
                let command = self.command(m);
                let (signal, timeout) = (command.restart_signal, command.stop_timeout);
                match self.members[m].phase.clone() {
                    Phase::Failed { .. } => {
                        self.say(out, m, "enabled again".to_owned());
                        self.reset(m);
                    }
                    Phase::Starting { pid: Some(pid), .. } | Phase::Running { pid, .. } if hard => {
                        let stop_signal = self.command(m).stop_signal;
                        self.stop(m, pid, stop_signal, AfterStop::Relaunch, now, out);
                    }
                    Phase::Starting { pid: Some(pid), .. } | Phase::Running { pid, .. } => {
                        self.say(out, m, format!("sending {signal}"));
                        self.members[m].restart_until = Some(now + timeout);
                        out.push(Action::Signal {
                            member: m,
                            pid,
                            signal,
                        });
                    }
                    Phase::Backoff { .. } => self.launch(m, now, out),
                    _ => {}
                }
            }
        }
    }

    /// Start a reload: say what changed, stop the services it replaces
    /// (dependents first); [`Supervision::swap`] finishes it once they are down.
    fn reload(&mut self, new: Arc<Stack>, out: &mut Vec<Action>) {
        if self.shutting_down {
            return;
        }
        let old = Arc::clone(&self.stack);
        let present = |stack: &Stack, name: &str| stack.service_id(name);
        let added: Vec<&str> = new
            .services
            .iter()
            .map(|s| s.name.as_str())
            .filter(|n| present(&old, n).is_none())
            .collect();
        let mut gone = Vec::new();
        let mut changed = Vec::new();
        for (sid, service) in old.services.iter().enumerate() {
            match present(&new, &service.name) {
                None => gone.push(sid),
                Some(nid) if !same_service(&old, sid, &new, nid) => changed.push(sid),
                Some(_) => {}
            }
        }
        let replaced = old
            .dag
            .dependents_closure(&[gone.clone(), changed.clone()].concat());
        let names = |ids: &[ServiceId]| {
            ids.iter()
                .map(|&s| old.services[s].name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let dependents: Vec<ServiceId> = replaced
            .iter()
            .copied()
            .filter(|s| !gone.contains(s) && !changed.contains(s))
            .collect();
        let mut parts = Vec::new();
        if !added.is_empty() {
            parts.push(format!("added {}", added.join(", ")));
        }
        if !gone.is_empty() {
            parts.push(format!("removed {}", names(&gone)));
        }
        if !changed.is_empty() {
            parts.push(format!("changed {}", names(&changed)));
        }
        if !dependents.is_empty() {
            parts.push(format!(
                "restarting what depends on them: {}",
                names(&dependents)
            ));
        }
        if parts.is_empty() {
            out.push(Action::Say {
                member: None,
                text: "reload: nothing changed".into(),
            });
            return;
        }
        out.push(Action::Say {
            member: None,
            text: format!("reload: {}", parts.join("; ")),
        });
        for &sid in &replaced {
            self.begin_stop(sid);
        }
        self.reload = Some((
            new,
            replaced
                .iter()
                .map(|&s| old.services[s].name.clone())
                .collect(),
        ));
    }

    /// Finish a reload once the services it replaces have stopped: members
    /// of unchanged services keep their ids and processes, replaced ones
    /// start afresh, new ones are added after the existing ids.
    fn swap(&mut self, out: &mut Vec<Action>) {
        let Some((_, replaced)) = &self.reload else {
            return;
        };
        let still_running = replaced
            .iter()
            .filter_map(|name| self.stack.service_id(name))
            .any(|sid| {
                self.by_service[sid]
                    .iter()
                    .any(|&m| self.members[m].phase.pid().is_some())
            });
        if still_running {
            return;
        }
        let (new, replaced) = self.reload.take().expect("checked above");
        let old = std::mem::replace(&mut self.stack, Arc::clone(&new));
        let mut by_label: std::collections::HashMap<String, MemberId> = self
            .members
            .iter()
            .enumerate()
            .map(|(id, m)| (m.label.clone(), id))
            .collect();
        let n = new.services.len();
        let mut by_service = vec![Vec::new(); n];
        for slot in member_slots(&new) {
            let sid = slot.sid;
            let id = match by_label.remove(&slot.label) {
                Some(id) => {
                    let member = &mut self.members[id];
                    (member.sid, member.cid, member.index) = (slot.sid, slot.cid, slot.index);
                    if replaced.contains(&new.services[sid].name)
                        || old.service_id(&new.services[sid].name).is_none()
                    {
                        self.members[id] = Member {
                            generation: self.members[id].generation + 1,
                            ..slot
                        };
                    }
                    id
                }
                None => {
                    self.members.push(slot);
                    self.members.len() - 1
                }
            };
            by_service[sid].push(id);
        }
        // Members of removed commands stay behind as stopped entries that no service lists.
        for id in by_label.into_values() {
            self.members[id].phase = Phase::Stopped;
            self.members[id].generation += 1;
        }
        let by_name =
            |v: &[bool], name: &str, default: bool| old.service_id(name).map_or(default, |o| v[o]);
        self.wanted = new
            .services
            .iter()
            .map(|s| by_name(&self.wanted, &s.name, true))
            .collect();
        self.held = new
            .services
            .iter()
            .map(|s| !replaced.contains(&s.name) && by_name(&self.held, &s.name, false))
            .collect();
        self.up_at = new
            .services
            .iter()
            .map(|s| old.service_id(&s.name).and_then(|o| self.up_at[o]))
            .collect();
        self.told_blocked = vec![false; n];
        self.stopping = vec![false; n];
        self.by_service = by_service;
        out.push(Action::Swapped);
    }

    /// Mark a service for the ordered stop; members with no process are
    /// stopped at once.
    fn begin_stop(&mut self, sid: ServiceId) {
        self.stopping[sid] = true;
        for &m in &self.by_service[sid] {
            let member = &mut self.members[m];
            if matches!(
                member.phase,
                Phase::Pending | Phase::Backoff { .. } | Phase::Failed { .. }
            ) {
                member.phase = Phase::Stopped;
                member.generation += 1;
            }
        }
    }

    /// Back to pending, with a fresh respawn count.
    fn reset(&mut self, m: MemberId) {
        let member = &mut self.members[m];
        member.phase = Phase::Pending;
        member.generation += 1;
        member.recent.clear();
        member.streak = 0;
    }

    /// Stop each service being stopped once everything that depends on it
    /// has stopped; say when a service has stopped.
    fn progress_stops(&mut self, now: Instant, out: &mut Vec<Action>) {
        let alive = |s: &Self, sid: ServiceId| {
            s.by_service[sid]
                .iter()
                .any(|&m| s.members[m].phase.pid().is_some())
        };
        let order: Vec<ServiceId> = self.stack.dag.stop_order().collect();
        for sid in order {
            if !self.stopping[sid] {
                continue;
            }
            if !alive(self, sid) {
                self.stopping[sid] = false;
                continue;
            }
            let dependents_down = self
                .stack
                .dag
                .dependents_closure(&[sid])
                .iter()
                .all(|&d| d == sid || !alive(self, d));
            if !dependents_down {
                continue;
            }
            for m in self.by_service[sid].clone() {
                match self.members[m].phase {
                    Phase::Starting { pid: Some(pid), .. } | Phase::Running { pid, .. } => {
                        let signal = self.command(m).stop_signal;
                        self.stop(m, pid, signal, AfterStop::Stay, now, out);
                    }
                    _ => {}
                }
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<Action>) {
        if std::mem::replace(&mut self.exited, true) {
            return;
        }
        let health = self.health();
        let failed = (0..self.stack.services.len())
            .filter(|&s| self.wanted[s] && health.dead[s])
            .count();
        out.push(Action::Exit(u8::from(failed > 0)));
    }
}

/// A pending member for each process of each command, in file order.
fn member_slots(stack: &Stack) -> Vec<Member> {
    let mut slots = Vec::new();
    for (sid, service) in stack.services.iter().enumerate() {
        for (cid, command) in service.commands.iter().enumerate() {
            for index in 0..command.instances.len() {
                let label = stack.member_label(sid, cid, index);
                slots.push(Member {
                    sid,
                    cid,
                    index,
                    label,
                    phase: Phase::Pending,
                    generation: 0,
                    recent: VecDeque::new(),
                    restarts: 0,
                    streak: 0,
                    last_exit: None,
                    last_failure: None,
                    restart_until: None,
                });
            }
        }
    }
    slots
}

/// Whether a service runs exactly the same way in both stacks: the same
/// commands and expansions, dependencies, locators and environment.
fn same_service(old: &Stack, o: ServiceId, new: &Stack, n: ServiceId) -> bool {
    let (a, b) = (&old.services[o], &new.services[n]);
    let names = |stack: &Stack, ids: &[ServiceId]| {
        ids.iter()
            .map(|&i| stack.services[i].name.clone())
            .collect::<Vec<_>>()
    };
    a.commands == b.commands
        && a.provides == b.provides
        && names(old, &a.depends_on) == names(new, &b.depends_on)
        && old.service_env(o) == new.service_env(n)
}

/// `base` doubled for each failure in the streak, capped at [`MAX_BACKOFF`]
/// (or at `base` when that is larger), with up to ±10% jitter from `seed`.
pub fn backoff_delay(base: Duration, streak: u32, seed: u64) -> Duration {
    if base.is_zero() {
        return Duration::ZERO;
    }
    let doubled = base.saturating_mul(1 << streak.min(16));
    let capped = doubled.min(MAX_BACKOFF.max(base));
    // seed % 201 is 0..=200: a factor from 0.90 to 1.10.
    let factor = 0.9 + (seed % 201) as f64 / 1000.0;
    capped.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn stack(yaml: &str) -> Arc<Stack> {
        Arc::new(Stack::from_text(Path::new("/tmp/t/stack.yaml"), yaml).unwrap())
    }

    const CHAIN: &str = "
services:
  db:
    commands:
      pg: { command: pg, respawn_count: 2, respawn_backoff: 100ms }
  api:
    depends_on: [db]
    commands:
      web: { command: web }
";

    fn spawns(actions: &[Action]) -> Vec<MemberId> {
        actions
            .iter()
            .filter_map(|a| {
                if let Action::Spawn { member, .. } = a {
                    Some(*member)
                } else {
                    None
                }
            })
            .collect()
    }

    fn spawned(sup: &mut Supervision, member: MemberId, pid: i32, now: Instant) -> Vec<Action> {
        let generation = sup.members[member].generation;
        sup.handle(
            Event::Spawned {
                member,
                generation,
                pid: Pid::from_raw(pid),
            },
            now,
        )
    }

    fn exited(sup: &mut Supervision, member: MemberId, code: i32, now: Instant) -> Vec<Action> {
        let generation = sup.members[member].generation;
        sup.handle(
            Event::Exited {
                member,
                generation,
                status: ExitStatus::Code(code),
            },
            now,
        )
    }

    #[test]
    fn dependents_wait_until_dependencies_are_up() {
        let now = Instant::now();
        let mut sup = Supervision::new(stack(CHAIN), &[], false);
        assert_eq!(spawns(&sup.start(now)), vec![0], "only db starts first");
        // Ready at once (no port, no probe): api may start.
        assert_eq!(spawns(&spawned(&mut sup, 0, 10, now)), vec![1]);
        assert!(sup.health().up[0]);
    }

    #[test]
    fn a_failing_member_backs_off_then_is_disabled_and_blocks_dependents() {
        let t0 = Instant::now();
        let mut sup = Supervision::new(stack(CHAIN), &[], false);
        sup.start(t0);
        spawned(&mut sup, 0, 10, t0);
        // Two restarts are allowed; the third failure disables.
        for (i, pid) in [11, 12].into_iter().enumerate() {
            let actions = exited(&mut sup, 0, 1, t0);
            assert!(
                matches!(sup.members[0].phase, Phase::Backoff { .. }),
                "failure {i}"
            );
            let Some(Action::SetTimer { at, generation, .. }) = actions
                .iter()
                .find(|a| matches!(a, Action::SetTimer { .. }))
                .cloned()
            else {
                panic!("a restart timer is set")
            };
            assert!(at > t0);
            let actions = sup.handle(
                Event::Timer {
                    member: 0,
                    generation,
                    timer: Timer::Restart,
                },
                at,
            );
            assert_eq!(spawns(&actions), vec![0]);
            spawned(&mut sup, 0, pid, at);
        }
        let actions = exited(&mut sup, 0, 1, t0);
        assert!(matches!(sup.members[0].phase, Phase::Failed { .. }));
        let health = sup.health();
        assert!(health.dead[0] && health.dead[1]);
        assert_eq!(sup.members[0].restarts, 2);
        // api was started when db was up; db's failure does not stop it, and
        // orch keeps running while api does.
        assert!(!actions.iter().any(|a| matches!(a, Action::Exit(_))));
    }

    #[test]
    fn a_dependent_of_a_failed_service_never_starts_and_orch_exits_1() {
        let yaml = "
services:
  db:
    commands:
      init: { command: init, when_to_run: once, respawn_count: 0 }
  api:
    depends_on: [db]
    commands:
      web: { command: web }
";
        let now = Instant::now();
        let mut sup = Supervision::new(stack(yaml), &[], false);
        sup.start(now);
        spawned(&mut sup, 0, 10, now);
        let actions = exited(&mut sup, 0, 1, now);
        assert!(spawns(&actions).is_empty());
        assert!(actions.contains(&Action::Say {
            member: None,
            text: "api: not started: db failed".into()
        }));
        assert_eq!(actions.last(), Some(&Action::Exit(1)));
    }

    #[test]
    fn once_commands_that_complete_let_dependents_start_and_end_with_0() {
        let yaml = "
services:
  init:
    commands:
      a: { command: a, when_to_run: once }
  job:
    depends_on: [init]
    commands:
      b: { command: b, when_to_run: once }
";
        let now = Instant::now();
        let mut sup = Supervision::new(stack(yaml), &[], false);
        sup.start(now);
        assert!(
            spawns(&spawned(&mut sup, 0, 10, now)).is_empty(),
            "running is not completed"
        );
        assert_eq!(spawns(&exited(&mut sup, 0, 0, now)), vec![1]);
        spawned(&mut sup, 1, 11, now);
        assert_eq!(exited(&mut sup, 1, 0, now).last(), Some(&Action::Exit(0)));
    }

    #[test]
    fn shutdown_stops_dependents_first() {
        let now = Instant::now();
        let mut sup = Supervision::new(stack(CHAIN), &[], false);
        sup.start(now);
        spawned(&mut sup, 0, 10, now);
        spawned(&mut sup, 1, 20, now);
        let signalled = |actions: &[Action]| -> Vec<i32> {
            actions
                .iter()
                .filter_map(|a| {
                    if let Action::Signal { pid, .. } = a {
                        Some(pid.as_raw())
                    } else {
                        None
                    }
                })
                .collect()
        };
        let actions = sup.handle(Event::Shutdown { force: false }, now);
        assert_eq!(signalled(&actions), vec![20], "api first");
        let actions = exited(&mut sup, 1, 0, now);
        assert_eq!(signalled(&actions), vec![10], "then db");
        assert_eq!(exited(&mut sup, 0, 0, now).last(), Some(&Action::Exit(0)));
    }

    #[test]
    fn stale_events_are_ignored() {
        let now = Instant::now();
        let mut sup = Supervision::new(stack(CHAIN), &[], false);
        sup.start(now);
        spawned(&mut sup, 0, 10, now);
        let old = sup.members[0].generation - 1;
        let actions = sup.handle(
            Event::Exited {
                member: 0,
                generation: old,
                status: ExitStatus::Code(1),
            },
            now,
        );
        assert!(actions
            .iter()
            .all(|a| !matches!(a, Action::Spawn { .. } | Action::SetTimer { .. })));
        assert!(matches!(sup.members[0].phase, Phase::Running { .. }));
    }

    #[test]
    fn a_restart_signal_exit_restarts_at_once_uncounted() {
        let now = Instant::now();
        let mut sup = Supervision::new(stack(CHAIN), &[], false);
        sup.start(now);
        spawned(&mut sup, 0, 10, now);
        let actions = sup.handle(
            Event::Restart {
                services: vec![0],
                hard: false,
            },
            now,
        );
        assert!(actions.contains(&Action::Signal {
            member: 0,
            pid: Pid::from_raw(10),
            signal: Signal::SIGHUP
        }));
        assert_eq!(spawns(&exited(&mut sup, 0, 0, now)), vec![0]);
        assert_eq!(sup.members[0].restarts, 0);
    }

    #[test]
    fn health_of_a_layered_graph_is_computed_once_per_service() {
        // 20 layers of 5 services, each depending on all 5 of the layer
        // before: 5^19 paths, but each service is looked at once.
        let mut yaml = String::from("services:\n");
        for layer in 0..20 {
            for i in 0..5 {
                yaml.push_str(&format!(
                    "  s{layer}_{i}:\n    commands:\n      c: {{ command: c }}\n"
                ));
                if layer > 0 {
                    let deps: Vec<String> = (0..5).map(|j| format!("s{}_{j}", layer - 1)).collect();
                    yaml.push_str(&format!("    depends_on: [{}]\n", deps.join(", ")));
                }
            }
        }
        let sup = Supervision::new(stack(&yaml), &[], false);
        let health = sup.health();
        assert!(!health.up.iter().any(|&up| up));
        assert!(!health.dead.iter().any(|&dead| dead));
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_millis(100);
        for streak in 0..6 {
            let d = backoff_delay(base, streak, 7);
            let expected = (base * 2u32.pow(streak)).min(MAX_BACKOFF);
            assert!(
                d >= expected.mul_f64(0.9) && d <= expected.mul_f64(1.1),
                "{streak}: {d:?}"
            );
        }
        assert_eq!(backoff_delay(Duration::ZERO, 3, 7), Duration::ZERO);
        assert!(backoff_delay(Duration::from_secs(30), 2, 0) >= Duration::from_secs(27));
    }
}
