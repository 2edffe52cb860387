//! The core against a model of the world, driven by random interleavings of
//! process events (exits, readiness, failed checks, timers) and requests
//! (stop, start, restart, restart --hard, reload to another version of the
//! stack, down). After every step:
//!
//! - a member never has two live processes;
//! - what the core reports is what runs: every live process is the one its
//!   member's phase names, and no process is forgotten;
//! - once nothing is in flight (no stop awaited, no check, no timer), what
//!   runs is what is wanted;
//! - once down was asked, nothing starts again, and everything stops.

use std::collections::{BTreeMap, HashMap, HashSet};

use proptest::prelude::*;

use super::*;

/// Versions of one stack a reload moves between: changed commands, a
/// service added and removed, a dependency added, more processes, checks.
const VERSIONS: [&str; 4] = [
    "
services:
  a:
    commands:
      x: { command: x, respawn_count: 3, respawn_backoff: 100ms }
  b:
    depends_on: [a]
    commands:
      y: { command: y, port: 7001 }
  c:
    depends_on: [b]
    commands:
      z: { command: z }
  d:
    commands:
      w: { command: w, when_to_run: once }
",
    "
services:
  a:
    commands:
      x: { command: x2, respawn_count: 3, respawn_backoff: 100ms }
  b:
    depends_on: [a]
    commands:
      y: { command: y, port: 7001 }
  c:
    depends_on: [b, d]
    commands:
      z: { command: z }
  d:
    commands:
      w: { command: w, when_to_run: once }
  s:
    depends_on: [a]
    commands:
      t: { command: t, when_to_run: { every: 1m } }
",
    "
services:
  a:
    commands:
      x: { command: x, respawn_count: 3, respawn_backoff: 100ms }
  b:
    depends_on: [a]
    commands:
      y: { command: y, port: auto, number_of_processes: 2 }
  c:
    depends_on: [b]
    commands:
      z: { command: z }
  e:
    depends_on: [a]
    commands:
      v: { command: v, monitor: { command: check } }
",
    "
services:
  a:
    commands:
      x: { command: x, respawn_count: 0 }
  b:
    depends_on: [a]
    commands:
      y: { command: y2 }
  c:
    depends_on: [b]
    commands:
      z: { command: z, stop_signal: SIGINT }
",
];

/// The world the core acts on.
#[derive(Default)]
struct World {
    /// Live processes and the member each is.
    alive: BTreeMap<i32, MemberId>,
    /// Processes sent a signal, which they will die of.
    signalled: BTreeMap<i32, Signal>,
    /// Readiness checks running, and monitors.
    probing: HashSet<(MemberId, u64)>,
    monitored: HashSet<(MemberId, u64)>,
    /// Scheduled members whose ticks come.
    armed: HashSet<MemberId>,
    timers: Vec<(std::time::Instant, MemberId, u64, Timer)>,
    next_pid: i32,
    down: bool,
    exit: Option<u8>,
}

struct Model {
    core: Core,
    world: World,
    now: std::time::Instant,
}

impl Model {
    fn new() -> Model {
        let now = std::time::Instant::now();
        let mut model = Model {
            core: Core::new(stack(VERSIONS[0]), Selection::default(), false, now),
            world: World {
                next_pid: 1000,
                ..World::default()
            },
            now,
        };
        let actions = model.core.start(now);
        model.carry_out(actions);
        model
    }

    fn handle(&mut self, event: Event) {
        let actions = self.core.handle(event, self.now);
        self.carry_out(actions);
    }

    /// Do what the core asks, as the supervisor would, checking on the way
    /// that a member never gets a second process.
    fn carry_out(&mut self, actions: Vec<Action>) {
        let mut queue = std::collections::VecDeque::from(actions);
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Spawn { member, generation } => {
                    assert!(!self.world.down, "nothing starts after down");
                    assert!(
                        !self.world.alive.values().any(|&m| m == member),
                        "{} would get a second process",
                        self.core.members[member].label
                    );
                    self.world.next_pid += 1;
                    let pid = self.world.next_pid;
                    self.world.alive.insert(pid, member);
                    queue.extend(self.core.handle(
                        Event::Spawned {
                            member,
                            generation,
                            pid: Pid::from_raw(pid),
                        },
                        self.now,
                    ));
                }
                Action::Signal { pid, signal, .. } => {
                    if self.world.alive.contains_key(&pid.as_raw()) {
                        self.world.signalled.insert(pid.as_raw(), signal);
                    }
                }
                Action::Probe { member, generation } => {
                    self.world.probing.insert((member, generation));
                }
                Action::Monitor { member, generation } => {
                    self.world.monitored.insert((member, generation));
                }
                Action::Cancel { member } => {
                    self.world.probing.retain(|&(m, _)| m != member);
                    self.world.monitored.retain(|&(m, _)| m != member);
                }
                Action::SetTimer {
                    at,
                    member,
                    generation,
                    timer,
                } => self.world.timers.push((at, member, generation, timer)),
                Action::Arm { member } => {
                    self.world.armed.insert(member);
                }
                Action::Disarm { member } => {
                    self.world.armed.remove(&member);
                }
                Action::Exit(code) => self.world.exit = Some(code),
                Action::Sweep { .. } | Action::Say { .. } => {}
            }
        }
    }

    /// A process ends; its checks end with it.
    fn end(&mut self, pid: i32, status: ExitStatus) {
        let member = self.world.alive.remove(&pid).expect("a live process");
        self.world.signalled.remove(&pid);
        let generation = self.core.members[member].generation;
        self.handle(Event::Exited {
            member,
            generation,
            status,
        });
    }

    fn pick<T: Clone>(items: &[T], r: u8) -> Option<T> {
        (!items.is_empty()).then(|| items[r as usize % items.len()].clone())
    }

    /// One step of the world or of a user, chosen by `(kind, a, b)`.
    fn step(&mut self, kind: u8, a: u8, b: u8) {
        let alive: Vec<i32> = self.world.alive.keys().copied().collect();
        let signalled: Vec<(i32, Signal)> =
            self.world.signalled.iter().map(|(&p, &s)| (p, s)).collect();
        let services = self.core.stack.services.len();
        let service = (a as usize) % services;
        match kind % 12 {
            0 | 1 => {
                if let Some((pid, signal)) = Self::pick(&signalled, a) {
                    self.end(
                        pid,
                        ExitStatus::Signaled {
                            signal: signal as i32,
                            core_dumped: false,
                        },
                    );
                }
            }
            2 => {
                if let Some(pid) = Self::pick(&alive, a) {
                    self.end(pid, ExitStatus::Code(i32::from(b % 2)));
                }
            }
            3 => {
                let probing: Vec<_> = self.world.probing.iter().copied().collect();
                if let Some((member, generation)) = Self::pick(&probing, a) {
                    self.world.probing.remove(&(member, generation));
                    if b % 4 == 0 {
                        self.handle(Event::NotReady {
                            member,
                            generation,
                            why: "refused".into(),
                        });
                    } else {
                        self.handle(Event::Ready { member, generation });
                    }
                }
            }
            4 => {
                let monitored: Vec<_> = self.world.monitored.iter().copied().collect();
                if let Some((member, generation)) = Self::pick(&monitored, a) {
                    self.world.monitored.remove(&(member, generation));
                    self.handle(Event::Unhealthy {
                        member,
                        generation,
                        why: "monitor failed".into(),
                    });
                }
            }
            5 => self.fire_timer(),
            6 => {
                let armed: Vec<MemberId> = self.world.armed.iter().copied().collect();
                match Self::pick(&armed, a) {
                    Some(member) => self.handle(Event::Tick { member }),
                    None => self.fire_timer(),
                }
            }
            7 => self.handle(Event::Stop {
                services: vec![service],
            }),
            8 => self.handle(Event::Start {
                services: vec![service],
            }),
            9 => self.handle(Event::Restart {
                services: vec![service],
                hard: b % 2 == 0,
            }),
            10 => {
                if let Ok(plan) = self
                    .core
                    .plan_reload(stack(VERSIONS[b as usize % VERSIONS.len()]))
                {
                    self.handle(Event::Reload {
                        stack: plan.stack,
                        selection: plan.selection,
                    });
                }
            }
            _ => {
                if b % 8 == 0 {
                    self.world.down = true;
                    self.handle(Event::Shutdown { force: b % 16 == 0 });
                }
            }
        }
    }

    fn fire_timer(&mut self) {
        let Some(next) = (0..self.world.timers.len()).min_by_key(|&i| self.world.timers[i].0)
        else {
            return;
        };
        let (at, member, generation, timer) = self.world.timers.remove(next);
        self.now = self.now.max(at);
        self.handle(Event::Timer {
            member,
            generation,
            timer,
        });
    }

    /// Nothing orch started is awaited: no stop, no check, no timer.
    fn quiet(&self) -> bool {
        self.world.signalled.is_empty()
            && self.world.probing.is_empty()
            && self.world.timers.is_empty()
    }

    fn check(&self) {
        // What the core reports is what runs.
        let reported: HashMap<i32, MemberId> = self
            .core
            .members
            .iter()
            .enumerate()
            .filter_map(|(id, m)| Some((m.phase.pid()?.as_raw(), id)))
            .collect();
        let running: HashMap<i32, MemberId> =
            self.world.alive.iter().map(|(&p, &m)| (p, m)).collect();
        assert_eq!(reported, running, "the core's processes are the live ones");
        let report = self.core.status(&[], self.now);
        for service in &report.services {
            for member in &service.members {
                if let Some(pid) = member.pid {
                    assert!(running.contains_key(&pid), "status shows a dead process");
                }
            }
        }
        // A scheduled member waits armed, and only a waiting or running one is armed.
        for (id, m) in self.core.members.iter().enumerate() {
            if m.phase == Phase::Waiting {
                assert!(self.world.armed.contains(&id), "{} waits unarmed", m.label);
            }
        }
        for &id in &self.world.armed {
            let m = &self.core.members[id];
            assert!(
                m.phase == Phase::Waiting || m.phase.live(),
                "{} is armed but {:?}",
                m.label,
                m.phase
            );
        }
        if !self.quiet() {
            return;
        }
        // Nothing in flight: what runs is what is wanted.
        let health = self.core.health();
        for (id, m) in self.core.members.iter().enumerate() {
            if m.phase.live() {
                assert!(self.core.keeps(id), "{} runs but is not wanted", m.label);
            }
            let Some(slot) = m.slot else { continue };
            let deps = &self.core.stack.services[slot.sid].depends_on;
            let deps_dead = deps.iter().any(|&d| health.dead[d]);
            // Waiting for a dependency that is not up (a `once` command still working).
            let waiting = m.phase == Phase::Pending && deps.iter().any(|&d| !health.up[d]);
            // A `once` command (or a scheduled run) that runs is working, not
            // waiting for orch; a scheduled member waits, armed, for its time.
            let once = m
                .run
                .as_ref()
                .is_some_and(|r| r.command().when == crate::model::WhenToRun::Once);
            let working = (matches!(m.phase, Phase::Starting { .. }) && once)
                || (m.phase == Phase::Waiting && self.world.armed.contains(&id));
            if self.core.wanted(slot.sid) && !deps_dead {
                assert!(
                    working
                        || waiting
                        || matches!(
                            m.phase,
                            Phase::Running { .. } | Phase::Completed | Phase::Failed { .. }
                        ),
                    "{} is wanted but {:?}",
                    m.label,
                    m.phase
                );
            }
        }
    }

    /// Down, then let everything orch is waiting for happen: it all stops.
    fn finish(&mut self) {
        if !self.world.down && self.world.exit.is_none() {
            self.world.down = true;
            self.handle(Event::Shutdown { force: false });
        }
        for _ in 0..10_000 {
            if let Some((&pid, &signal)) = self.world.signalled.iter().next() {
                self.end(
                    pid,
                    ExitStatus::Signaled {
                        signal: signal as i32,
                        core_dumped: false,
                    },
                );
            } else if !self.world.timers.is_empty() {
                self.fire_timer();
            } else {
                break;
            }
            self.check();
        }
        assert!(
            self.world.alive.is_empty(),
            "left running: {:?}",
            self.world.alive
        );
        assert!(self.world.exit.is_some(), "orch decided to exit");
    }
}

proptest! {
    #[test]
    fn random_interleavings_end_where_the_last_request_says(
        steps in prop::collection::vec((any::<u8>(), any::<u8>(), any::<u8>()), 1..200)
    ) {
        let mut model = Model::new();
        model.check();
        for (kind, a, b) in steps {
            // Once orch has decided to exit, it is gone: nobody talks to it.
            if model.world.exit.is_some() {
                break;
            }
            model.step(kind, a, b);
            model.check();
        }
        model.finish();
    }
}
