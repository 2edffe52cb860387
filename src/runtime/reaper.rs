//! The one place that starts processes and collects their exit statuses.
//! orch is a child subreaper and reaps with `waitpid(-1)`, so every process
//! it starts (members, probe and monitor commands) is registered here, each
//! status goes to whoever waits for it, and orphaned grandchildren are simply
//! collected. Each process group is also announced to the guardian, so that
//! nothing orch started outlives it.

use std::collections::HashMap;
use std::sync::Mutex;

use nix::unistd::Pid;
use tokio::sync::oneshot;

use super::core::MemberId;
use super::guard::Guardian;
use super::spawn::{self, ExitStatus, SpawnError, SpawnSpec, Spawned};

enum Waiter {
    Member { member: MemberId, generation: u64 },
    Task(oneshot::Sender<ExitStatus>),
}

pub struct Reaper {
    waiting: Mutex<HashMap<Pid, Waiter>>,
    guardian: Guardian,
}

/// A member's process that ended.
pub struct Reaped {
    pub member: MemberId,
    pub generation: u64,
    pub status: ExitStatus,
}

impl Reaper {
    pub fn new(guardian: Guardian) -> Reaper {
        Reaper {
            waiting: Mutex::new(HashMap::new()),
            guardian,
        }
    }

    fn spawn(&self, spec: &SpawnSpec<'_>, waiter: Waiter) -> Result<Spawned, SpawnError> {
        let spawned = spawn::spawn(spec)?;
        self.guardian.watch(spawned.pid);
        self.waiting
            .lock()
            .expect("the reaper's table is never left half-changed")
            .insert(spawned.pid, waiter);
        Ok(spawned)
    }

    /// Start a member's process; its exit comes back from [`Reaper::reap`].
    pub fn spawn_member(
        &self,
        spec: &SpawnSpec<'_>,
        member: MemberId,
        generation: u64,
    ) -> Result<Spawned, SpawnError> {
        self.spawn(spec, Waiter::Member { member, generation })
    }

    /// Start a helper command (probe, monitor); its exit status arrives on the receiver.
    pub fn spawn_task(
        &self,
        spec: &SpawnSpec<'_>,
    ) -> Result<(Spawned, oneshot::Receiver<ExitStatus>), SpawnError> {
        let (tx, rx) = oneshot::channel();
        self.spawn(spec, Waiter::Task(tx))
            .map(|spawned| (spawned, rx))
    }

    /// Collect every exited child; hand helper statuses to their tasks and
    /// return the members'.
    pub fn reap(&self) -> Vec<Reaped> {
        let mut waiting = self
            .waiting
            .lock()
            .expect("the reaper's table is never left half-changed");
        let mut members = Vec::new();
        for (pid, status) in spawn::reap() {
            match waiting.remove(&pid) {
                Some(Waiter::Member { member, generation }) => members.push(Reaped {
                    member,
                    generation,
                    status,
                }),
                Some(Waiter::Task(tx)) => {
                    self.guardian.forget(pid);
                    let _ = tx.send(status);
                }
                None => {}
            }
        }
        members
    }

    /// A member's group is empty: the guardian no longer needs to kill it.
    pub fn forget(&self, pgid: Pid) {
        self.guardian.forget(pgid);
    }
}
