//! The supervisor: owns the [`Core`] and carries out its actions. One task,
//! one loop: signals, exits, check results, log news, timers, control
//! requests and reloads arrive as events; the core decides; this only acts.
//!
//! Nothing here waits on what orch does not control: output goes to the log
//! thread and the console thread, the guardian's pipe and the run-state file
//! are written by tasks of their own, stack files are read and validated off
//! this thread, and control replies are written by each connection's task.

mod control;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::console::Console;
use super::core::{Action, Core, Event, MemberId, Timer};
use super::guard::{self, Guardian};
use super::leftovers::{Process, RunState, StateFile};
use super::logs::{Attach, Logs, Watch};
use super::preflight::Identities;
use super::probe::{self, Context};
use super::procfs;
use super::reaper::Reaper;
use super::spawn::{self, SpawnSpec};
use crate::control::server::{Call, Server};
use crate::model::Check;

/// How often memory limits are checked, when any command has one.
const MEMORY_CHECK: Duration = Duration::from_secs(1);
/// How often start-up progress is looked at, on a terminal.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// What [`Supervisor::apply`] has left to do.
enum Work {
    Act(Action),
    Attach(Attach),
}

/// A timer: when, a sequence number to keep equal deadlines in order, and its event.
type Deadline = (Instant, u64, MemberId, u64, Timer);

/// What the supervisor works with, set up by `orch up`.
pub struct Parts {
    pub core: Core,
    pub console: Console,
    pub logs: Logs,
    pub events: (mpsc::UnboundedSender<Event>, mpsc::UnboundedReceiver<Event>),
    pub guardian: (Guardian, guard::Writer),
    pub state_file: StateFile,
    pub identities: Identities,
    /// `ORCH_RUN=...`, in every process orch starts.
    pub mark: (String, String),
    /// orch's own environment, under every member's.
    pub base_env: Vec<(String, String)>,
    /// orch had a controlling terminal when it started.
    pub tty: bool,
    /// The console is a terminal: start-up progress is shown on it.
    pub interactive: bool,
}

pub struct Supervisor {
    core: Core,
    reaper: Arc<Reaper>,
    guardian: Guardian,
    guardian_writer: guard::Writer,
    console: Console,
    logs: Logs,
    state_file: StateFile,
    events_tx: mpsc::UnboundedSender<Event>,
    events: mpsc::UnboundedReceiver<Event>,
    timers: BinaryHeap<Reverse<Deadline>>,
    timer_seq: u64,
    checks: HashMap<MemberId, Vec<AbortHandle>>,
    identities: Identities,
    mark: (String, String),
    base_env: Vec<(String, String)>,
    tty: bool,
    interactive: bool,
    state_dirty: bool,
    /// orch itself, and the members' processes with their start times, read
    /// once each (at spawn), for the run-state file.
    me: Option<Process>,
    recorded: HashMap<Pid, Process>,
    exit: Option<u8>,
    reloads: control::Reloads,
    /// Scheduled members armed: the arrangement's number and the next time.
    armed: HashMap<MemberId, (u64, chrono::DateTime<chrono::Local>)>,
    /// When ticks are due, by arrangement.
    ticks: BinaryHeap<Reverse<(Instant, u64, MemberId)>>,
    ticks_seq: u64,
}

impl Supervisor {
    pub fn new(parts: Parts) -> Supervisor {
        let Parts {
            core,
            console,
            logs,
            events: (events_tx, events),
            guardian: (guardian, guardian_writer),
            state_file,
            identities,
            mark,
            base_env,
            tty,
            interactive,
        } = parts;
        Supervisor {
            core,
            reaper: Arc::new(Reaper::new(guardian.clone())),
            guardian,
            guardian_writer,
            console,
            logs,
            state_file,
            events_tx,
            events,
            timers: BinaryHeap::new(),
            timer_seq: 0,
            checks: HashMap::new(),
            identities,
            mark,
            base_env,
            tty,
            interactive,
            state_dirty: true,
            me: Process::of(nix::unistd::getpid()),
            recorded: HashMap::new(),
            exit: None,
            reloads: control::Reloads::default(),
            armed: HashMap::new(),
            ticks: BinaryHeap::new(),
            ticks_seq: 0,
        }
    }

    /// Run until the stack is done, then close everything; the exit code.
    pub async fn run(mut self, server: Server, mut calls: mpsc::Receiver<Call>) -> u8 {
        let mut sigchld = signal(SignalKind::child()).expect("signals can be handled");
        let mut sigint = signal(SignalKind::interrupt()).expect("signals can be handled");
        let mut sigterm = signal(SignalKind::terminate()).expect("signals can be handled");
        let mut sighup = signal(SignalKind::hangup()).expect("signals can be handled");
        let watch_memory = self
            .core
            .stack
            .services
            .iter()
            .flat_map(|s| &s.commands)
            .any(|c| c.memory_limit.is_some());
        let mut memory = tokio::time::interval(MEMORY_CHECK);
        let mut progress = tokio::time::interval(PROGRESS_EVERY);
        let mut starting = self.interactive;
        let mut said: Option<String> = None;
        let mut stop_requests = 0;
        let first = self.core.start(std::time::Instant::now());
        self.apply(first);
        // Exits that came before the SIGCHLD handler was in place.
        self.reap();
        while self.exit.is_none() {
            self.save_state();
            let next_timer = self.timers.peek().map(|Reverse(t)| t.0);
            let next_tick = self.ticks.peek().map(|Reverse(t)| t.0);
            tokio::select! {
                _ = sigchld.recv() => self.reap(),
                _ = sigint.recv() => {
                    stop_requests += 1;
                    self.handle(Event::Shutdown { force: stop_requests > 1 });
                }
                _ = sigterm.recv() => {
                    stop_requests += 1;
                    self.handle(Event::Shutdown { force: stop_requests > 1 });
                }
                _ = sighup.recv() => {
                    if self.tty && !super::has_terminal() {
                        self.console.say("the terminal went away");
                        stop_requests += 1;
                        self.handle(Event::Shutdown { force: false });
                    } else {
                        self.start_reload(None);
                    }
                }
                Some(event) = self.events.recv() => self.handle(event),
                Some(loaded) = self.reloads.next() => self.finish_reload(loaded),
                Some((request, reply)) = calls.recv() => self.request(request, reply),
                () = sleep_until(next_timer), if next_timer.is_some() => self.fire_timers(),
                () = sleep_until(next_tick), if next_tick.is_some() => self.fire_ticks(),
                _ = memory.tick(), if watch_memory => self.check_memory(),
                _ = progress.tick(), if starting => match self.core.progress() {
                    Some(text) if said.as_ref() != Some(&text) => {
                        self.console.say(&text);
                        said = Some(text);
                    }
                    Some(_) => {}
                    None => starting = false,
                },
            }
            // Give the other tasks of this thread (control connections,
            // checks) their turn, however busy the events keep this loop.
            tokio::task::yield_now().await;
        }
        let code = self.exit.expect("the loop ends on exit");
        self.close(server, calls).await;
        code
    }

    /// After the last decision: answer what was asked, let the last lines
    /// reach the logs, and leave nothing behind.
    async fn close(self, server: Server, mut calls: mpsc::Receiver<Call>) {
        server.stop_accepting();
        while let Ok((request, reply)) = calls.try_recv() {
            let _ = reply.send(self.answer_after_exit(&request));
        }
        drop(calls);
        server.finish(Duration::from_secs(2)).await;
        let Supervisor {
            logs,
            state_file,
            guardian,
            guardian_writer,
            checks,
            ..
        } = self;
        for task in checks.into_values().flatten() {
            task.abort();
        }
        tokio::task::spawn_blocking(move || logs.finish(Duration::from_secs(2)))
            .await
            .ok();
        sweep_adopted(guardian_writer.pid()).await;
        state_file.remove(Duration::from_secs(2)).await;
        guardian.dismiss();
        guardian_writer.finish(Duration::from_secs(2)).await;
    }

    fn handle(&mut self, event: Event) {
        let actions = self.core.handle(event, std::time::Instant::now());
        self.apply(actions);
    }

    /// Carry out actions, in order. A start is answered at once with its
    /// outcome, whose own actions come next; only then are the new
    /// process's pipes handed to the log thread, so orch's note that it
    /// started comes before its first line in the log.
    fn apply(&mut self, actions: Vec<Action>) {
        let mut work: Vec<Work> = actions.into_iter().rev().map(Work::Act).collect();
        while let Some(next) = work.pop() {
            match next {
                Work::Act(action) => self.act(action, &mut work),
                Work::Attach(attach) => self.logs.attach(attach),
            }
        }
    }

    /// Carry out one action; what it leads to goes on `work` (a stack: the
    /// last pushed is done first).
    fn act(&mut self, action: Action, work: &mut Vec<Work>) {
        match action {
            Action::Spawn { member, generation } => {
                let (event, attach) = self.spawn(member, generation);
                work.extend(attach.map(Work::Attach));
                let more = self.core.handle(event, std::time::Instant::now());
                work.extend(more.into_iter().rev().map(Work::Act));
            }
            Action::Signal {
                member: _,
                pid,
                signal,
            } => {
                let _ = spawn::signal_group(pid, signal);
            }
            Action::Sweep { member: _, pid } => {
                let _ = spawn::signal_group(pid, Signal::SIGKILL);
                self.reaper.forget(pid);
                self.state_dirty = true;
            }
            Action::Probe { member, generation } => self.probe(member, generation),
            Action::Monitor { member, generation } => self.monitor(member, generation),
            Action::Cancel { member } => {
                for task in self.checks.remove(&member).unwrap_or_default() {
                    task.abort();
                }
            }
            Action::SetTimer {
                at,
                member,
                generation,
                timer,
            } => {
                self.timer_seq += 1;
                self.timers.push(Reverse((
                    Instant::from_std(at),
                    self.timer_seq,
                    member,
                    generation,
                    timer,
                )));
            }
            Action::Say { member, text } => {
                self.console.say(&text);
                if let Some(member) = member {
                    let path = self.core.stack.log_path(&self.core.members[member].label);
                    self.logs.note(member, path, text);
                }
            }
            Action::Arm { member } => {
                let now = chrono::Local::now();
                self.arm(member, now);
            }
            Action::Disarm { member } => {
                self.armed.remove(&member);
            }
            Action::Exit(code) => self.exit = Some(code),
        }
    }

    /// Arrange the member's next tick after `after` (wall clock).
    fn arm(&mut self, member: MemberId, after: chrono::DateTime<chrono::Local>) {
        let Some(schedule) = self.core.command(member).and_then(|c| c.schedule.as_ref()) else {
            return;
        };
        let now = chrono::Local::now();
        // Behind (the machine slept): the next time from now, not a burst of missed ones.
        let next = schedule
            .next_after(&after)
            .filter(|next| *next > now)
            .or_else(|| schedule.next_after(&now));
        let Some(next) = next else {
            self.armed.remove(&member);
            return;
        };
        self.ticks_seq += 1;
        self.armed.insert(member, (self.ticks_seq, next));
        let wait = (next - now).to_std().unwrap_or_default();
        self.ticks
            .push(Reverse((Instant::now() + wait, self.ticks_seq, member)));
    }

    fn fire_ticks(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, seq, member))) = self.ticks.peek().copied() {
            if at > now {
                break;
            }
            self.ticks.pop();
            let Some(&(armed, time)) = self.armed.get(&member) else {
                continue;
            };
            if armed != seq {
                continue;
            }
            // The next time counts from this one, not from when it was noticed.
            self.arm(member, time);
            self.handle(Event::Tick { member });
        }
    }

    /// The environment of a member's processes: orch's own, the stack's for
    /// it, and the mark of this run.
    fn env(&self, member: MemberId) -> Vec<(String, String)> {
        let (stack, slot, instance) = self.core.launch_spec(member);
        let mut env: indexmap::IndexMap<String, String> = self.base_env.iter().cloned().collect();
        env.extend(stack.member_env(slot.sid, instance));
        env.insert(self.mark.0.clone(), self.mark.1.clone());
        env.into_iter().collect()
    }

    /// Start a member's process; the event that says how it went, and its
    /// pipes for the log thread.
    fn spawn(&mut self, member: MemberId, generation: u64) -> (Event, Option<Attach>) {
        let failed = |error: String| {
            let event = Event::SpawnFailed {
                member,
                generation,
                error,
            };
            (event, None)
        };
        let env = self.env(member);
        let (stack, slot, instance) = self.core.launch_spec(member);
        let identity = match self.identities.get(&(slot.sid, slot.cid)) {
            None => None,
            Some(Ok(identity)) => Some(identity),
            Some(Err(why)) => return failed(why.clone()),
        };
        let spec = SpawnSpec {
            program: &instance.program,
            env: &env,
            cwd: &instance.working_dir,
            identity,
        };
        let spawned = match self.reaper.spawn_member(&spec, member, generation) {
            Ok(spawned) => spawned,
            Err(e) => return failed(e.to_string()),
        };
        if let Some(process) = Process::of(spawned.pid) {
            self.recorded.insert(spawned.pid, process);
        }
        let label = &self.core.members[member].label;
        let watch = match &instance.ready.check {
            Check::Log(pattern) => Some(Watch {
                pattern: pattern.clone(),
                generation,
            }),
            _ => None,
        };
        let attach = Attach {
            member,
            path: stack.log_path(label),
            prefix: self.console.prefix(label, slot.sid),
            pipes: (spawned.stdout, spawned.stderr),
            watch,
        };
        self.state_dirty = true;
        let event = Event::Spawned {
            member,
            generation,
            pid: spawned.pid,
        };
        (event, Some(attach))
    }

    fn context(&self, member: MemberId) -> Context {
        let (_, _, instance) = self.core.launch_spec(member);
        Context {
            reaper: Arc::clone(&self.reaper),
            env: Arc::new(self.env(member)),
            cwd: instance.working_dir.clone(),
            group: self.core.members[member]
                .phase
                .pid()
                .expect("checks run for a member with a process"),
        }
    }

    fn probe(&mut self, member: MemberId, generation: u64) {
        let ready = self.core.launch_spec(member).2.ready.clone();
        let ctx = self.context(member);
        let tx = self.events_tx.clone();
        let task = tokio::spawn(async move {
            let waiting = |why| {
                let _ = tx.send(Event::Waiting {
                    member,
                    generation,
                    why,
                });
            };
            let event = match probe::until_ready(
                &ready.check,
                ready.interval,
                ready.timeout,
                &ctx,
                waiting,
            )
            .await
            {
                Ok(()) => Event::Ready { member, generation },
                Err(why) => Event::NotReady {
                    member,
                    generation,
                    why,
                },
            };
            let _ = tx.send(event);
        });
        self.checks
            .entry(member)
            .or_default()
            .push(task.abort_handle());
    }

    fn monitor(&mut self, member: MemberId, generation: u64) {
        let Some(monitor) = self.core.launch_spec(member).2.monitor.clone() else {
            return;
        };
        let ctx = self.context(member);
        let tx = self.events_tx.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(monitor.interval).await;
                if let Err(why) = probe::run(&monitor.program, &ctx, monitor.timeout).await {
                    let _ = tx.send(Event::Unhealthy {
                        member,
                        generation,
                        why: format!("monitor: {why}"),
                    });
                    return;
                }
            }
        });
        self.checks
            .entry(member)
            .or_default()
            .push(task.abort_handle());
    }

    fn reap(&mut self) {
        for reaped in self.reaper.reap() {
            self.handle(Event::Exited {
                member: reaped.member,
                generation: reaped.generation,
                status: reaped.status,
            });
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, _, member, generation, timer))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            self.handle(Event::Timer {
                member,
                generation,
                timer,
            });
        }
    }

    /// Members over their memory limit are unhealthy.
    fn check_memory(&mut self) {
        let limited: Vec<(MemberId, u64, u64, Pid)> = self
            .core
            .members
            .iter()
            .enumerate()
            .filter_map(|(id, m)| {
                let pid = m.phase.pid()?;
                let limit = m.run.as_ref()?.command().memory_limit?;
                Some((id, m.generation, limit, pid))
            })
            .collect();
        if limited.is_empty() {
            return;
        }
        let pids: Vec<Pid> = limited.iter().map(|l| l.3).collect();
        let used = procfs::group_rss_bytes(&pids);
        for ((member, generation, limit, _), used) in limited.into_iter().zip(used) {
            if used > limit {
                self.handle(Event::Unhealthy {
                    member,
                    generation,
                    why: format!(
                        "uses {} MiB, over its memory_limit of {} MiB",
                        used >> 20,
                        limit >> 20
                    ),
                });
            }
        }
    }

    /// Record the live member groups, for the next orch if this one crashes.
    fn save_state(&mut self) {
        if !std::mem::take(&mut self.state_dirty) {
            return;
        }
        // Processes gone since are forgotten.
        let live: HashMap<Pid, Process> = self
            .core
            .members
            .iter()
            .filter_map(|m| m.phase.pid())
            .filter_map(|pid| Some((pid, *self.recorded.get(&pid)?)))
            .collect();
        self.recorded = live;
        self.state_file.save(RunState {
            orch: self.me,
            members: self.recorded.values().copied().collect(),
        });
    }
}

/// Kill what orch adopted as a subreaper: processes that left their member's
/// group (a daemon that called setsid, say) and outlived it. Their own
/// children come back to orch in turn, so a few rounds are made. The
/// guardian, orch's own child, is spared.
async fn sweep_adopted(guardian: Pid) {
    let me = nix::unistd::getpid();
    let adopted = || {
        let mut children = procfs::children(me);
        children.retain(|&c| c != guardian);
        children
    };
    for _ in 0..8 {
        let found = adopted();
        if found.is_empty() {
            return;
        }
        for pid in found {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        while !adopted().is_empty() && Instant::now() < deadline {
            let _ = spawn::reap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
