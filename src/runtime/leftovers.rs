//! The run-state file that lets the next `orch up` find members left behind
//! by an orch that crashed, and its writer, which works off the supervision
//! path.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::{procfs, spawn};

/// A process, identified beyond its pid by its start time (pids are reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub pid: i32,
    pub start: u64,
}

impl Process {
    pub fn of(pid: Pid) -> Option<Process> {
        procfs::process_start_time(pid).map(|start| Process {
            pid: pid.as_raw(),
            start,
        })
    }

    /// Whether this very process still runs (a zombie has exited: it only
    /// waits for a parent that may never reap it).
    pub fn alive(self) -> bool {
        let pid = Pid::from_raw(self.pid);
        procfs::process_start_time(pid) == Some(self.start) && !procfs::is_zombie(pid)
    }

    /// Whether anything is left of the process group this process led: the
    /// leader itself, or, once it has died and been reaped, what it started.
    /// The kernel does not reuse a number as a pid while a process group of
    /// that number exists, so a leaderless group of that number is still its.
    pub fn group_left(self) -> bool {
        let pid = Pid::from_raw(self.pid);
        match procfs::process_start_time(pid) {
            Some(start) => start == self.start,
            None => spawn::group_exists(pid),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RunState {
    pub orch: Option<Process>,
    /// Member process groups (their leaders).
    pub members: Vec<Process>,
}

impl RunState {
    pub fn read(path: &Path) -> Option<RunState> {
        serde_json::from_slice(&fs::read(path).ok()?).ok()
    }

    /// Write atomically, so a crash mid-write leaves the previous state.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        let tmp = path.with_extension("tmp");
        fs::write(
            &tmp,
            serde_json::to_vec(self).expect("the run state is plain data"),
        )?;
        fs::rename(tmp, path)
    }

    /// Kill the groups of members that outlived their orch; how many there were.
    pub fn stop_leftovers(&self) -> usize {
        let left: Vec<Process> = self
            .members
            .iter()
            .copied()
            .filter(|p| p.group_left())
            .collect();
        for p in &left {
            let _ = spawn::signal_group(Pid::from_raw(p.pid), Signal::SIGKILL);
        }
        left.len()
    }
}

/// What the writer has to do.
#[derive(Default)]
struct Pending {
    state: Option<RunState>,
    /// orch is done: remove the file once the last state is written, and say so here.
    remove: Option<tokio::sync::oneshot::Sender<()>>,
    /// A blocking task is writing.
    busy: bool,
    /// The last write failed (so the next failure is not said again).
    failing: bool,
}

/// The run-state file of this orch: every change is written by a blocking
/// task, never on the supervisor's thread; a change that comes while one is
/// being written replaces any other waiting, so only the latest is written.
pub struct StateFile {
    path: PathBuf,
    pending: Arc<Mutex<Pending>>,
    /// Told once when writing starts failing.
    complain: Arc<dyn Fn(String) + Send + Sync>,
}

impl StateFile {
    pub fn new(path: PathBuf, complain: Arc<dyn Fn(String) + Send + Sync>) -> StateFile {
        StateFile {
            path,
            pending: Arc::default(),
            complain,
        }
    }

    /// Have `state` written; call from inside the runtime.
    pub fn save(&self, state: RunState) {
        self.pending
            .lock()
            .expect("the writer never panics holding it")
            .state = Some(state);
        self.wake();
    }

    /// orch is done: once the last state is written, remove the file; wait
    /// for that at most `limit`.
    pub async fn remove(self, limit: Duration) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pending
            .lock()
            .expect("the writer never panics holding it")
            .remove = Some(tx);
        self.wake();
        let _ = tokio::time::timeout(limit, rx).await;
    }

    /// Start the writer unless it runs already.
    fn wake(&self) {
        if std::mem::replace(
            &mut self
                .pending
                .lock()
                .expect("the writer never panics holding it")
                .busy,
            true,
        ) {
            return;
        }
        let (shared, path, complain) = (
            Arc::clone(&self.pending),
            self.path.clone(),
            Arc::clone(&self.complain),
        );
        tokio::task::spawn_blocking(move || write_until_done(&shared, &path, &*complain));
    }
}

/// The writer: the latest state, as long as there is one, then the removal
/// if it was asked for.
fn write_until_done(
    shared: &Mutex<Pending>,
    path: &Path,
    complain: &(dyn Fn(String) + Send + Sync),
) {
    loop {
        let mut pending = shared.lock().expect("the writer never panics holding it");
        if let Some(state) = pending.state.take() {
            drop(pending);
            let result = state.write(path);
            let mut pending = shared.lock().expect("the writer never panics holding it");
            match result {
                Ok(()) => pending.failing = false,
                Err(e) if !std::mem::replace(&mut pending.failing, true) => {
                    complain(format!(
                        "cannot write the run-state file {}: {e}",
                        path.display()
                    ));
                }
                Err(_) => {}
            }
            continue;
        }
        if let Some(done) = pending.remove.take() {
            let _ = fs::remove_file(path);
            let _ = done.send(());
        }
        pending.busy = false;
        return;
    }
}
