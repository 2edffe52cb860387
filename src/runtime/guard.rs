//! The guardian: a small process that outlives orch to kill its members if
//! orch itself is killed (even by SIGKILL, which orch cannot catch).
//!
//! Members already get SIGKILL from the kernel when orch dies
//! (`PR_SET_PDEATHSIG`), but their own children do not. So `orch up` starts
//! `orch guard` with a pipe on its stdin and tells it each member's process
//! group as it starts (`+PGID`) and ends (`-PGID`). When the pipe closes
//! without a final `.` (orch died), the guardian kills every group it still
//! knows of and exits.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, ChildStdin, Stdio};

use nix::sys::signal::{SigHandler, Signal};
use nix::unistd::Pid;

use super::spawn;

/// orch's end of the pipe to the guardian.
pub struct Guardian {
    child: Child,
    stdin: ChildStdin,
}

impl Guardian {
    pub fn start() -> std::io::Result<Guardian> {
        let exe = std::env::current_exe()?;
        let mut child = std::process::Command::new(exe)
            .arg("guard")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()?;
        let stdin = child.stdin.take().expect("stdin was asked to be piped");
        Ok(Guardian { child, stdin })
    }

    pub fn watch(&mut self, pgid: Pid) {
        let _ = writeln!(self.stdin, "+{pgid}");
    }

    pub fn forget(&mut self, pgid: Pid) {
        let _ = writeln!(self.stdin, "-{pgid}");
    }

    /// orch is done and left nothing behind: let the guardian go.
    pub fn dismiss(mut self) {
        let _ = writeln!(self.stdin, ".");
        drop(self.stdin);
        let _ = self.child.wait();
    }
}

/// The guardian's main loop (`orch guard`): returns when orch is gone.
pub fn serve() {
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
    if !dismissed {
        for pgid in groups {
            let _ = spawn::signal_group(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }
}
