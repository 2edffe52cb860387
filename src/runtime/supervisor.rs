//! The executor: owns the [`Supervision`] and carries out its actions. One
//! task, one loop: signals, exits, probe results and timers arrive as events;
//! the pure core decides; this file only acts.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::Instant;

use super::console::Console;
use super::guard::Guardian;
use super::logs::{self, LogFile};
use super::probe::{self, Context};
use super::procfs;
use super::reaper::Reaper;
use super::runstate::{Process, RunState};
use super::spawn::{self, Identity, SpawnSpec};
use super::state::{Action, Event, MemberId, Phase, Supervision, Timer};
use crate::control::protocol::{MemberStatus, Request, Response, ServiceStatus, StatusReport};
use crate::control::server::{self, Call};
use crate::model::{Check, Stack};

/// How soon to look again at children that had not exec'd yet.
const SETTLE: Duration = Duration::from_millis(20);

/// How often memory limits are checked, when any command has one.
const MEMORY_CHECK: Duration = Duration::from_secs(1);

/// A timer: when, a sequence number to keep equal deadlines in order, and its event.
type Deadline = (Instant, u64, MemberId, u64, Timer);

pub struct Executor {
    sup: Supervision,
    stack: Arc<Stack>,
    reaper: Arc<Reaper>,
    console: Arc<Console>,
    tx: mpsc::UnboundedSender<Event>,
    rx: mpsc::UnboundedReceiver<Event>,
    timers: BinaryHeap<Reverse<Deadline>>,
    timer_seq: u64,
    tasks: HashMap<MemberId, Vec<AbortHandle>>,
    pumps: Vec<JoinHandle<()>>,
    logs: Vec<Option<Arc<Mutex<LogFile>>>>,
    /// Identity of each command, by (service, command), resolved before start.
    identities: HashMap<(usize, usize), Identity>,
    state_path: PathBuf,
    state_dirty: bool,
    exit: Option<u8>,
    listener: Option<tokio::net::UnixListener>,
    socket_path: PathBuf,
    /// Identities for the stack a reload is about to swap in.
    pending_identities: Option<HashMap<(usize, usize), Identity>>,
}

impl Executor {
    pub fn new(
        sup: Supervision,
        console: Console,
        identities: HashMap<(usize, usize), Identity>,
        guardian: Guardian,
        state_path: PathBuf,
        socket: (std::os::unix::net::UnixListener, PathBuf),
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let stack = Arc::clone(&sup.stack);
        let logs = vec![None; sup.members.len()];
        Self {
            sup,
            stack,
            reaper: Arc::new(Reaper::new(guardian)),
            console: Arc::new(console),
            tx,
            rx,
            timers: BinaryHeap::new(),
            timer_seq: 0,
            tasks: HashMap::new(),
            pumps: Vec::new(),
            logs,
            identities,
            state_path,
            state_dirty: true,
            exit: None,
            listener: Some(
                tokio::net::UnixListener::from_std(socket.0)
                    .expect("the socket is non-blocking and inside a runtime"),
            ),
            socket_path: socket.1,
            pending_identities: None,
        }
    }

    /// Run until the stack is done; the exit code.
    pub async fn run(mut self) -> std::io::Result<u8> {
        let mut sigchld = signal(SignalKind::child())?;
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sigterm = signal(SignalKind::terminate())?;
        let mut sighup = signal(SignalKind::hangup())?;
        let watch_memory = self
            .stack
            .services
            .iter()
            .flat_map(|s| &s.commands)
            .any(|c| c.memory_limit.is_some());
        let mut memory = tokio::time::interval(MEMORY_CHECK);
        let mut stop_requests = 0;
        let (calls_tx, mut calls) = mpsc::channel::<Call>(16);
        let listener = self.listener.take().expect("run is called once");
        let server = tokio::spawn(server::serve(listener, calls_tx));
        let first = self.sup.start(std::time::Instant::now());
        self.apply(first);
        while self.exit.is_none() {
            self.save_state();
            let launching = spawn::settle() > 0;
            let next_timer = self.timers.peek().map(|Reverse(t)| t.0);
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
                    let _ = self.reload();
                }
                Some(event) = self.rx.recv() => self.handle(event),
                Some((request, reply)) = calls.recv() => {
                    let response = self.request(request);
                    let _ = reply.send(response);
                }
                () = sleep_until(next_timer), if next_timer.is_some() => self.fire_timers(),
                _ = memory.tick(), if watch_memory => self.check_memory(),
                // Children still on their way to exec hold memory of orch's until then.
                () = tokio::time::sleep(SETTLE), if launching => {}
            }
        }
        // The last lines of the members reach their logs; a pipe that something
        // outside the members' groups still holds does not keep orch waiting.
        let drained = Instant::now() + Duration::from_secs(2);
        for pump in self.pumps.drain(..) {
            let _ = tokio::time::timeout_at(drained, pump).await;
        }
        server.abort();
        let _ = std::fs::remove_file(&self.socket_path);
        let _ = std::fs::remove_file(&self.state_path);
        self.reaper.dismiss();
        sweep_adopted();
        Ok(self.exit.unwrap_or(1))
    }

    fn handle(&mut self, event: Event) {
        let actions = self.sup.handle(event, std::time::Instant::now());
        self.apply(actions);
    }

    fn reap(&mut self) {
        for (member, generation, _, status) in self.reaper.reap() {
            self.state_dirty = true;
            self.handle(Event::Exited {
                member,
                generation,
                status,
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

    fn check_memory(&mut self) {
        let limited: Vec<(MemberId, nix::unistd::Pid, u64, u64)> = self
            .sup
            .members
            .iter()
            .enumerate()
            .filter_map(|(id, m)| {
                let Phase::Running { pid, .. } = m.phase else {
                    return None;
                };
                let limit = self.sup.command(id).memory_limit?;
                Some((id, pid, limit, m.generation))
            })
            .collect();
        let pgids: Vec<nix::unistd::Pid> = limited.iter().map(|l| l.1).collect();
        for ((member, _, limit, generation), used) in
            limited.into_iter().zip(procfs::group_rss_bytes(&pgids))
        {
            if used > limit {
                let why = format!(
                    "uses {} MiB, over its memory_limit of {} MiB",
                    used >> 20,
                    limit >> 20
                );
                self.handle(Event::Unhealthy {
                    member,
                    generation,
                    why,
                });
            }
        }
    }

    fn apply(&mut self, actions: Vec<Action>) {
        let mut queue: VecDeque<Action> = actions.into();
        while let Some(action) = queue.pop_front() {
            let more = self.act(action);
            queue.extend(more);
        }
    }

    fn act(&mut self, action: Action) -> Vec<Action> {
        let now = std::time::Instant::now();
        match action {
            Action::Spawn { member, generation } => match self.spawn(member, generation) {
                Ok(pid) => {
                    return self.sup.handle(
                        Event::Spawned {
                            member,
                            generation,
                            pid,
                        },
                        now,
                    )
                }
                Err(error) => {
                    return self.sup.handle(
                        Event::SpawnFailed {
                            member,
                            generation,
                            error,
                        },
                        now,
                    )
                }
            },
            Action::Signal { pid, signal, .. } => {
                let _ = spawn::signal_group(pid, signal);
            }
            Action::Sweep { pid, .. } => {
                let _ = spawn::signal_group(pid, Signal::SIGKILL);
                self.reaper.forget(pid);
            }
            Action::Probe { member, generation } => self.probe(member, generation),
            Action::Monitor { member, generation } => self.monitor(member, generation),
            Action::Cancel { member } => {
                for task in self.tasks.remove(&member).unwrap_or_default() {
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
                let at = Instant::from_std(at);
                self.timers
                    .push(Reverse((at, self.timer_seq, member, generation, timer)));
            }
            Action::Say { member, text } => {
                self.console.say(&text);
                if let Some(log) = member.and_then(|m| self.logs[m].as_ref()) {
                    let line = format!("[orch] {text}\n");
                    let _ = log.lock().expect("log lock").write(line.as_bytes());
                }
            }
            Action::Exit(code) => self.exit = Some(code),
            Action::Swapped => {
                self.stack = Arc::clone(&self.sup.stack);
                self.logs.resize(self.sup.members.len(), None);
                if let Some(identities) = self.pending_identities.take() {
                    self.identities = identities;
                }
            }
        }
        Vec::new()
    }

    /// The environment a member's processes get: orch's own, then the stack's.
    fn env(&self, member: MemberId) -> Vec<(String, String)> {
        let instance = self.sup.instance(member);
        let mut env: indexmap::IndexMap<String, String> = std::env::vars().collect();
        env.extend(
            self.stack
                .member_env(self.sup.members[member].sid, instance),
        );
        env.into_iter().collect()
    }

    fn spawn(&mut self, member: MemberId, generation: u64) -> Result<nix::unistd::Pid, String> {
        let m = &self.sup.members[member];
        let (sid, cid) = (m.sid, m.cid);
        let instance = self.sup.instance(member);
        let log = match &self.logs[member] {
            Some(log) => Arc::clone(log),
            None => {
                let path = self.stack.log_path(&m.label);
                let log = LogFile::open(&path)
                    .map_err(|e| format!("cannot open the log file {}: {e}", path.display()))?;
                let log = Arc::new(Mutex::new(log));
                self.logs[member] = Some(Arc::clone(&log));
                log
            }
        };
        let env = self.env(member);
        let spec = SpawnSpec {
            program: &instance.program,
            env: &env,
            cwd: &instance.working_dir,
            identity: self.identities.get(&(sid, cid)),
            stdin_null: true,
        };
        let spawned = self
            .reaper
            .spawn_member(&spec, member, generation)
            .map_err(|e| e.to_string())?;
        self.state_dirty = true;
        let watch = match &instance.ready.check {
            Check::Log(pattern) => {
                let tx = self.tx.clone();
                let ready: Box<dyn FnOnce() + Send> = Box::new(move || {
                    let _ = tx.send(Event::Ready { member, generation });
                });
                Some((pattern.clone(), ready))
            }
            _ => None,
        };
        let sink = logs::Sink {
            log,
            console: Arc::clone(&self.console),
            prefix: self.console.prefix(&m.label, sid),
            watch,
        };
        self.pumps.retain(|p| !p.is_finished());
        self.pumps.push(tokio::spawn(logs::pump(
            spawned.stdout,
            spawned.stderr,
            sink,
        )));
        Ok(spawned.pid)
    }

    fn context(&self, member: MemberId) -> Context {
        Context {
            reaper: Arc::clone(&self.reaper),
            env: Arc::new(self.env(member)),
            cwd: self.sup.instance(member).working_dir.clone(),
        }
    }

    fn probe(&mut self, member: MemberId, generation: u64) {
        let ready = self.sup.instance(member).ready.clone();
        let ctx = self.context(member);
        let tx = self.tx.clone();
        let task = tokio::spawn(async move {
            let event =
                match probe::until_ready(&ready.check, ready.interval, ready.timeout, &ctx).await {
                    Ok(()) => Event::Ready { member, generation },
                    Err(why) => Event::NotReady {
                        member,
                        generation,
                        why,
                    },
                };
            let _ = tx.send(event);
        });
        self.tasks
            .entry(member)
            .or_default()
            .push(task.abort_handle());
    }

    fn monitor(&mut self, member: MemberId, generation: u64) {
        let Some(monitor) = self.sup.instance(member).monitor.clone() else {
            return;
        };
        let ctx = self.context(member);
        let tx = self.tx.clone();
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
        self.tasks
            .entry(member)
            .or_default()
            .push(task.abort_handle());
    }

    fn request(&mut self, request: Request) -> Response {
        let ids = |names: &[String]| -> Result<Vec<usize>, Response> {
            names
                .iter()
                .map(|n| {
                    self.stack.find_service(n).map_err(|e| Response::Error {
                        message: e.message,
                        help: Some(e.help),
                    })
                })
                .collect()
        };
        match request {
            Request::Status { services } => match ids(&services) {
                Ok(ids) => Response::Status(self.status(&ids)),
                Err(e) => e,
            },
            Request::Why { service } => match ids(std::slice::from_ref(&service)) {
                Ok(ids) => Response::Why {
                    lines: self.why(ids[0]),
                },
                Err(e) => e,
            },
            Request::Stop { services } => match ids(&services) {
                Ok(ids) => self.order(Event::Stop { services: ids }, "stopping", &services),
                Err(e) => e,
            },
            Request::Start { services } => match ids(&services) {
                Ok(ids) => self.order(Event::Start { services: ids }, "starting", &services),
                Err(e) => e,
            },
            Request::Restart { services, hard } => match ids(&services) {
                Ok(ids) => self.order(
                    Event::Restart {
                        services: ids,
                        hard,
                    },
                    "restarting",
                    &services,
                ),
                Err(e) => e,
            },
            Request::Down => {
                self.order(Event::Shutdown { force: false }, "stopping the stack", &[])
            }
            Request::Reload => match self.reload() {
                Ok(()) => Response::Done {
                    lines: vec!["reloading; orch's console says what changed".into()],
                },
                Err(message) => Response::error(message),
            },
        }
    }

    /// Read the stack file again; apply it when it is valid, otherwise say
    /// why and change nothing.
    fn reload(&mut self) -> Result<(), String> {
        let loaded =
            Stack::load(&self.stack.file).map_err(|e| format!("{:?}", miette::Report::new(e)));
        let checked = loaded.and_then(|stack| {
            let wanted = |_| true;
            let identities = super::identities(&stack, &wanted)
                .map_err(|e| format!("{:?}", miette::Report::new(e)))?;
            Ok((stack, identities))
        });
        match checked {
            Ok((stack, identities)) => {
                self.pending_identities = Some(identities);
                self.handle(Event::Reload {
                    stack: Arc::new(stack),
                });
                Ok(())
            }
            Err(report) => {
                self.console
                    .say("reload: the stack file is not valid; everything keeps running unchanged");
                eprintln!("{report}");
                Err(report)
            }
        }
    }

    fn order(&mut self, event: Event, verb: &str, services: &[String]) -> Response {
        self.handle(event);
        Response::Done {
            lines: vec![format!("{verb} {}", services.join(", "))
                .trim_end()
                .to_owned()],
        }
    }

    fn status(&self, ids: &[usize]) -> StatusReport {
        let ids: Vec<usize> = if ids.is_empty() {
            (0..self.stack.services.len()).collect()
        } else {
            ids.to_vec()
        };
        let live: Vec<nix::unistd::Pid> = self
            .sup
            .members
            .iter()
            .filter_map(|m| m.phase.pid())
            .collect();
        let memory: HashMap<nix::unistd::Pid, u64> = live
            .iter()
            .copied()
            .zip(procfs::group_rss_bytes(&live))
            .collect();
        let now = std::time::Instant::now();
        let services = ids
            .into_iter()
            .map(|sid| {
                let members = self.sup.by_service[sid]
                    .iter()
                    .map(|&id| {
                        let m = &self.sup.members[id];
                        let command = &self.stack.services[sid].commands[m.cid];
                        MemberStatus {
                            command: command.name.clone(),
                            instance: m.index,
                            state: m.phase.name().to_owned(),
                            pid: m.phase.pid().map(nix::unistd::Pid::as_raw),
                            port: command.instances[m.index].port,
                            restarts: m.restarts,
                            exit_code: match m.last_exit {
                                Some(spawn::ExitStatus::Code(code)) => Some(code),
                                _ => None,
                            },
                            uptime: match m.phase {
                                Phase::Running { since, .. } => {
                                    Some(now.duration_since(since).as_secs())
                                }
                                _ => None,
                            },
                            memory: m.phase.pid().and_then(|pid| memory.get(&pid).copied()),
                        }
                    })
                    .collect();
                let why = self.sup.why_down(sid);
                ServiceStatus {
                    name: self.stack.services[sid].name.clone(),
                    state: if why.is_none() { "up" } else { "down" }.to_owned(),
                    members,
                    why,
                    up_after_ms: self.sup.up_at[sid]
                        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                }
            })
            .collect();
        StatusReport { services }
    }

    /// Why `sid` is not up: down the chain of dependencies, the last failure
    /// of each member that is not ready, and the end of its log.
    fn why(&self, sid: usize) -> Vec<String> {
        let mut lines = Vec::new();
        let mut at = Some(sid);
        while let Some(sid) = at.take() {
            let name = &self.stack.services[sid].name;
            let Some(why) = self.sup.why_down(sid) else {
                lines.push(format!("{name} is up"));
                break;
            };
            lines.push(format!("{name} is down: {why}"));
            at = self.stack.services[sid]
                .depends_on
                .iter()
                .copied()
                .find(|&d| self.sup.why_down(d).is_some());
            if at.is_some() {
                continue;
            }
            for &id in &self.sup.by_service[sid] {
                let m = &self.sup.members[id];
                if matches!(m.phase, Phase::Running { .. } | Phase::Completed) {
                    continue;
                }
                lines.push(format!("  {} is {}", m.label, m.phase.name()));
                if let Some(failure) = &m.last_failure {
                    lines.push(format!("  last failure: {failure}"));
                }
                if let Some(log) = &self.logs[id] {
                    let path = log.lock().expect("log lock").path().to_path_buf();
                    let tail = logs::tail(&path, 5);
                    if !tail.is_empty() {
                        lines.push(format!("  last lines of {}:", path.display()));
                        lines.extend(tail.into_iter().map(|l| format!("    {l}")));
                    }
                }
            }
        }
        lines
    }

    /// Record the live member groups, for the next orch if this one crashes.
    fn save_state(&mut self) {
        if !std::mem::take(&mut self.state_dirty) {
            return;
        }
        let state = RunState {
            orch: Process::of(nix::unistd::getpid()),
            members: self
                .sup
                .members
                .iter()
                .filter_map(|m| m.phase.pid())
                .filter_map(Process::of)
                .collect(),
        };
        if let Err(e) = state.write(&self.state_path) {
            self.console.say(&format!(
                "cannot write the run-state file {}: {e}",
                self.state_path.display()
            ));
        }
    }
}

/// Kill what orch adopted as a subreaper: processes that left their member's
/// group (a daemon that called setsid, say) and outlived it. Their own
/// children come back to orch in turn, so a few rounds are made.
fn sweep_adopted() {
    let me = nix::unistd::getpid();
    for _ in 0..8 {
        let adopted = procfs::children(me);
        if adopted.is_empty() {
            return;
        }
        for pid in adopted {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while !procfs::children(me).is_empty() && std::time::Instant::now() < deadline {
            let _ = spawn::reap();
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
