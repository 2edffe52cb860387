//! What comes into the core ([`Event`]) and what it asks the supervisor to do
//! ([`Action`]). Every event about a process carries the member's generation
//! at the time it was started; an event of an earlier process is ignored.

use std::sync::Arc;
use std::time::Instant;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::{MemberId, Selection};
use crate::model::{ServiceId, Stack};
use crate::runtime::spawn::ExitStatus;

/// Something that happened, for [`super::Core::handle`].
#[derive(Debug, Clone)]
pub enum Event {
    /// The process of a [`Action::Spawn`] exists.
    Spawned {
        member: MemberId,
        generation: u64,
        pid: Pid,
    },
    /// The process of a [`Action::Spawn`] could not be started.
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
    /// The readiness check passed.
    Ready { member: MemberId, generation: u64 },
    /// The readiness check has not passed yet, for a reason worth telling.
    Waiting {
        member: MemberId,
        generation: u64,
        why: String,
    },
    /// The readiness check did not pass in time.
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
    /// It is time for a scheduled member's next run.
    Tick { member: MemberId },
    /// Writing the member's log file started failing (`Some(why)`) or works
    /// again (`None`, with the lines dropped meanwhile).
    LogTrouble {
        member: MemberId,
        trouble: Option<String>,
        dropped: u64,
    },
    /// Stop everything, dependents first; `force` kills at once.
    Shutdown { force: bool },
    /// Stop these services until started again, their dependents first.
    Stop { services: Vec<ServiceId> },
    /// Start these services, their dependencies first.
    Start { services: Vec<ServiceId> },
    /// Restart the members of these services: the restart signal, or stop
    /// and start when `hard`.
    Restart {
        services: Vec<ServiceId>,
        hard: bool,
    },
    /// Run this version of the stack from now on, with the selection
    /// computed for it (see [`super::Core::plan_reload`]).
    Reload {
        stack: Arc<Stack>,
        selection: Selection,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// The backoff is over: start again.
    Restart,
    /// The stop signal had its time: kill.
    StopTimeout,
}

/// What the supervisor must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start a process for the member, as [`super::Core::launch_spec`] says;
    /// answer with [`Event::Spawned`] or [`Event::SpawnFailed`].
    Spawn { member: MemberId, generation: u64 },
    /// Send a signal to the member's process group.
    Signal {
        member: MemberId,
        pid: Pid,
        signal: Signal,
    },
    /// Kill what is left of the group of a process that exited.
    Sweep { member: MemberId, pid: Pid },
    /// Run the readiness check of the member's process.
    Probe { member: MemberId, generation: u64 },
    /// Run the monitor command periodically.
    Monitor { member: MemberId, generation: u64 },
    /// Stop the checks of the member.
    Cancel { member: MemberId },
    SetTimer {
        at: Instant,
        member: MemberId,
        generation: u64,
        timer: Timer,
    },
    /// Send [`Event::Tick`] at each time of the member's schedule, from now
    /// (replacing any earlier arrangement).
    Arm { member: MemberId },
    /// No more ticks for the member.
    Disarm { member: MemberId },
    /// A line from orch for the console; about a member, also for its log.
    Say {
        member: Option<MemberId>,
        text: String,
    },
    /// Everything is done: exit with this code.
    Exit(u8),
}
