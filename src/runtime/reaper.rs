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

use super::guard::Guardian;
use super::spawn::{self, ExitStatus, SpawnError, SpawnSpec, Spawned};
use super::state::MemberId;

enum Waiter {
    Member { member: MemberId, generation: u64 },
    Task(oneshot::Sender<ExitStatus>),
}

struct Table {
    waiting: HashMap<Pid, Waiter>,
    guardian: Guardian,
}

pub struct Reaper {
    table: Mutex<Option<Table>>,
}

impl Reaper {
    pub fn new(guardian: Guardian) -> Reaper {
        Reaper {
            table: Mutex::new(Some(Table {
                waiting: HashMap::new(),
                guardian,
            })),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Table) -> T) -> T {
        let mut table = self
            .table
            .lock()
            .expect("the reaper's table is never left half-changed");
        f(table
            .as_mut()
            .expect("nothing is started after the guardian was dismissed"))
    }

    fn spawn(
        &self,
        spec: &SpawnSpec<'_>,
        waiter: impl FnOnce() -> Waiter,
    ) -> Result<Spawned, SpawnError> {
        self.with(|table| {
            let spawned = spawn::spawn(spec)?;
            table.guardian.watch(spawned.pid);
            table.waiting.insert(spawned.pid, waiter());
            Ok(spawned)
        })
    }

    /// Start a member's process; its exit comes back from [`Reaper::reap`].
    pub fn spawn_member(
        &self,
        spec: &SpawnSpec<'_>,
        member: MemberId,
        generation: u64,
    ) -> Result<Spawned, SpawnError> {
        self.spawn(spec, || Waiter::Member { member, generation })
    }

    /// Start a helper command (probe, monitor); its exit status arrives on the receiver.
    pub fn spawn_task(
        &self,
        spec: &SpawnSpec<'_>,
    ) -> Result<(Spawned, oneshot::Receiver<ExitStatus>), SpawnError> {
        let (tx, rx) = oneshot::channel();
        self.spawn(spec, || Waiter::Task(tx))
            .map(|spawned| (spawned, rx))
    }

    /// Collect every exited child; hand helper statuses to their tasks and
    /// return the members' as `(member, generation, pid, status)`.
    pub fn reap(&self) -> Vec<(MemberId, u64, Pid, ExitStatus)> {
        self.with(|table| {
            let mut members = Vec::new();
            for (pid, status) in spawn::reap() {
                match table.waiting.remove(&pid) {
                    Some(Waiter::Member { member, generation }) => {
                        members.push((member, generation, pid, status))
                    }
                    Some(Waiter::Task(tx)) => {
                        table.guardian.forget(pid);
                        let _ = tx.send(status);
                    }
                    None => {}
                }
            }
            members
        })
    }

    /// A member's group is empty: the guardian no longer needs to kill it.
    pub fn forget(&self, pgid: Pid) {
        self.with(|table| table.guardian.forget(pgid));
    }

    /// orch is done and left nothing behind: let the guardian go.
    pub fn dismiss(&self) {
        if let Some(table) = self.table.lock().expect("reaper lock").take() {
            table.guardian.dismiss();
        }
    }
}
