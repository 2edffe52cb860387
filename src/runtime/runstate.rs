//! Where a running stack keeps its files, and the run-state file that lets
//! the next `orch up` find members left behind by an orch that crashed.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;
use nix::unistd::{Pid, Uid};
use serde::{Deserialize, Serialize};

use super::{procfs, spawn};

/// The folder for sockets and run-state files of this user's stacks:
/// `$XDG_RUNTIME_DIR/orch`, or `orch-UID` in the temporary folder.
pub fn run_dir() -> io::Result<PathBuf> {
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| Path::new(d).is_dir()) {
        Some(base) => PathBuf::from(base).join("orch"),
        None => std::env::temp_dir().join(format!("orch-{}", Uid::current())),
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    let meta = fs::metadata(&dir)?;
    if std::os::unix::fs::MetadataExt::uid(&meta) != Uid::current().as_raw() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} belongs to another user", dir.display()),
        ));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(dir)
}

/// A short name for a stack that is unique to its file's absolute path:
/// `NAME-HASH`, short enough for a socket path.
pub fn stack_key(file: &Path) -> String {
    let stem: String = file
        .file_stem()
        .map(|s| {
            s.to_string_lossy()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .take(24)
                .collect()
        })
        .unwrap_or_default();
    // FNV-1a: stable across builds and versions, unlike std's hasher.
    let hash = file
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("{stem}-{hash:016x}")
}

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
