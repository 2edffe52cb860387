//! What happens to a member's process: it started, it could not start, it
//! exited (each way), it became ready, it failed a check, it outlived its
//! stop timeout.

use std::time::Instant;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::{Action, Core, Event, MemberId, Phase, StopReason, Timer, STABLE_AFTER};
use crate::model::{Check, WhenToRun};
use crate::runtime::spawn::ExitStatus;

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
                    if self.scheduled(member) {
                        // A run that cannot start failed, as a shell says with 127.
                        let m = &mut self.members[member];
                        m.last_exit = Some(ExitStatus::Code(127));
                        m.last_failure = Some(error);
                        m.park(Phase::Waiting);
                    } else {
                        self.fail(member, error, now, out);
                    }
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
        let run = m.run.take();
        let once = run
            .as_ref()
            .is_some_and(|r| r.command().when == WhenToRun::Once);
        let scheduled = run.as_ref().is_some_and(|r| r.command().schedule.is_some());
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
            _ if scheduled && keeps => {
                // Its next run comes at its next time, whatever this one did.
                m.park(Phase::Waiting);
                let how = if status.success() {
                    "completed".to_owned()
                } else {
                    status.to_string()
                };
                self.say(
                    out,
                    member,
                    format!("{how}; it runs again at its next time"),
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
