//! The run-state file that lets the next `orch up` find members left behind
//! by an orch that crashed.

use std::fs;
use std::io;
use std::path::Path;

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
