//! The one place that collects exit statuses. orch is a child subreaper and
//! reaps with `waitpid(-1)`, so every process it starts (members, probe and
//! monitor commands) is registered here, and each status goes to whoever
//! waits for it; orphaned grandchildren are simply collected.

use std::collections::HashMap;
use std::sync::Mutex;

use nix::unistd::Pid;
use tokio::sync::oneshot;

use super::spawn::{self, ExitStatus, SpawnError, SpawnSpec, Spawned};
use super::state::MemberId;

enum Waiter {
    Member { member: MemberId, generation: u64 },
    Task(oneshot::Sender<ExitStatus>),
}

#[derive(Default)]
pub struct Reaper {
    waiting: Mutex<HashMap<Pid, Waiter>>,
}

impl Reaper {
    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<Pid, Waiter>> {
        self.waiting
            .lock()
            .expect("the reaper's table is never left half-changed")
    }

    /// Start a member's process; its exit comes back from [`Reaper::reap`].
    pub fn spawn_member(
        &self,
        spec: &SpawnSpec<'_>,
        member: MemberId,
        generation: u64,
    ) -> Result<Spawned, SpawnError> {
        let mut table = self.table();
        let spawned = spawn::spawn(spec)?;
        table.insert(spawned.pid, Waiter::Member { member, generation });
        Ok(spawned)
    }

    /// Start a helper command (probe, monitor); its exit status arrives on the receiver.
    pub fn spawn_task(
        &self,
        spec: &SpawnSpec<'_>,
    ) -> Result<(Spawned, oneshot::Receiver<ExitStatus>), SpawnError> {
        let mut table = self.table();
        let spawned = spawn::spawn(spec)?;
        let (tx, rx) = oneshot::channel();
        table.insert(spawned.pid, Waiter::Task(tx));
        Ok((spawned, rx))
    }

    /// Collect every exited child; hand helper statuses to their tasks and
    /// return the members' as `(member, generation, pid, status)`.
    pub fn reap(&self) -> Vec<(MemberId, u64, Pid, ExitStatus)> {
        let mut table = self.table();
        let mut members = Vec::new();
        for (pid, status) in spawn::reap() {
            match table.remove(&pid) {
                Some(Waiter::Member { member, generation }) => {
                    members.push((member, generation, pid, status))
                }
                Some(Waiter::Task(tx)) => {
                    let _ = tx.send(status);
                }
                None => {}
            }
        }
        members
    }
}
