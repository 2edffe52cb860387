//! The guardian: a small process that outlives orch to kill its members if
//! orch itself is killed (even by SIGKILL, which orch cannot catch).
//!
//! `orch up` starts `orch guard MARK` with a pipe on its stdin and tells it
//! each member's process group as it starts (`+PGID`) and ends (`-PGID`).
//! Every process orch starts carries `MARK` (`ORCH_RUN=...`, unique to this
//! run of orch) in its environment. When the pipe closes without a final `.`
//! (orch died), the guardian kills every group it knows of, then every
//! process whose environment holds the mark, until none is left: that also
//! catches a member started in the instant before its group was told, since
//! a child holds orch's end of the pipe until its exec (it is close-on-exec),
//! so the pipe closes only once every child has its own environment.
//!
//! orch's writes to the pipe never block it: they go through a task that
//! writes asynchronously.

use std::collections::HashSet;
use std::io::BufRead;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Stdio};
use std::time::Duration;

use nix::sys::signal::{SigHandler, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::{procfs, spawn};

/// The environment variable that marks the processes of one run of orch.
pub const RUN_MARK: &str = "ORCH_RUN";

/// orch's end of the pipe to the guardian.
#[derive(Clone)]
pub struct Guardian {
    tx: mpsc::UnboundedSender<String>,
}

/// The guardian process and the task that writes to it, to wait for at exit.
pub struct Writer {
    child: Child,
    task: tokio::task::JoinHandle<()>,
}

impl Guardian {
    /// Start `orch guard` for the processes marked `mark` (`ORCH_RUN=...`);
    /// call from inside the runtime.
    pub fn start(mark: &str) -> std::io::Result<(Guardian, Writer)> {
        let exe = std::env::current_exe()?;
        let mut child = std::process::Command::new(exe)
            .arg("guard")
            .arg(mark)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()?;
        let stdin: OwnedFd = child
            .stdin
            .take()
            .expect("stdin was asked to be piped")
            .into();
        let mut pipe = tokio::net::unix::pipe::Sender::from_owned_fd(stdin)?;
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let task = tokio::spawn(async move {
            while let Some(line) = rx.recv().await {
                if pipe.write_all(line.as_bytes()).await.is_err() || line == DISMISS {
                    // Closing the pipe lets the guardian go.
                    return;
                }
            }
        });
        Ok((Guardian { tx }, Writer { child, task }))
    }

    pub fn watch(&self, pgid: Pid) {
        let _ = self.tx.send(format!("+{pgid}\n"));
    }

    pub fn forget(&self, pgid: Pid) {
        let _ = self.tx.send(format!("-{pgid}\n"));
    }

    /// orch is done and left nothing behind: let the guardian go.
    pub fn dismiss(&self) {
        let _ = self.tx.send(DISMISS.to_owned());
    }
}

/// The last line to the guardian: nothing is left to kill.
const DISMISS: &str = ".\n";

impl Writer {
    pub fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).expect("a pid fits in i32"))
    }

    /// Wait, for at most `limit`, until the guardian was told everything
    /// (after [`Guardian::dismiss`]) and has gone.
    pub async fn finish(mut self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        let _ = tokio::time::timeout_at(deadline, &mut self.task).await;
        self.task.abort();
        while tokio::time::Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// The guardian's main loop (`orch guard MARK`): returns when orch is gone.
pub fn serve(mark: &str) {
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: ignoring a signal installs no handler code; nothing else runs yet.
        unsafe {
            let _ = nix::sys::signal::signal(signal, SigHandler::SigIgn);
        }
    }
    let mut groups: HashSet<i32> = HashSet::new();
    let mut dismissed = false;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.split_at_checked(1) {
            Some(("+", pgid)) => {
                groups.extend(pgid.parse::<i32>().ok());
            }
            Some(("-", pgid)) => {
                if let Ok(pgid) = pgid.parse::<i32>() {
                    groups.remove(&pgid);
                }
            }
            Some((".", _)) => dismissed = true,
            _ => {}
        }
    }
    if dismissed {
        return;
    }
    for pgid in groups {
        let _ = spawn::signal_group(Pid::from_raw(pgid), Signal::SIGKILL);
    }
    sweep(mark);
}

/// Kill every process marked `mark` (and the groups they lead), until
/// looks for 100 ms find none: a process in the middle of its exec shows its
/// new environment a moment late, and one a dying process started shows up late.
fn sweep(mark: &str) {
    let mut quiet = 0;
    for _ in 0..1000 {
        let found = procfs::processes_with_env(mark);
        if found.is_empty() {
            quiet += 1;
            if quiet == 10 {
                return;
            }
        } else {
            quiet = 0;
        }
        for pid in found {
            // A group is killed whole when its leader is marked (a member,
            // a probe): what it started without the mark goes with it.
            if procfs::process_group(pid) == Some(pid) {
                let _ = spawn::signal_group(pid, Signal::SIGKILL);
            }
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
