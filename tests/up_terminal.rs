//! `orch up` and its terminal: SIGHUP reloads while the terminal is there;
//! when it hangs up (the window is closed), orch stops the stack in order
//! and exits. Without a terminal SIGHUP reloads too (tests/control.rs).

mod common;

use std::os::unix::process::CommandExt as _;
use std::process::Stdio;

use common::run::{alive, Orch, Stack};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// A chain `web` -> `api` -> `db`; each member traps its own stop signal,
/// writes its name and the signal to `signals`, and exits.
const CHAIN: &str = r"
services:
  db:
    commands:
      w:
        command: trap 'echo db INT >> signals; exit 0' INT; touch db.up; sleep 1000 & wait
        stop_signal: SIGINT
  api:
    depends_on: [db]
    commands:
      w:
        command: trap 'echo api USR1 >> signals; exit 0' USR1; touch api.up; sleep 1000 & wait
        stop_signal: SIGUSR1
  web:
    depends_on: [api]
    commands:
      w:
        command: trap 'echo web TERM >> signals; exit 0' TERM; touch web.up; sleep 1000 & wait
";

/// A pseudo-terminal: its master, and its slave opened as a file. Both are
/// closed on exec, so no process that other tests start holds the master
/// open (the terminal would never hang up).
fn pseudo_terminal() -> (nix::pty::PtyMaster, std::fs::File) {
    use nix::fcntl::OFlag;
    use std::os::unix::fs::OpenOptionsExt as _;
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .expect("open a pseudo-terminal");
    nix::pty::grantpt(&master).expect("grant the terminal");
    nix::pty::unlockpt(&master).expect("unlock the terminal");
    let name = nix::pty::ptsname_r(&master).expect("the terminal's name");
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY)
        .open(&name)
        .unwrap_or_else(|e| panic!("open {name}: {e}"));
    (master, slave)
}

#[test]
fn sighup_reloads_while_the_terminal_is_there_and_its_hangup_stops_the_stack_in_order() {
    let stack = Stack::new(CHAIN);
    let (master, slave) = pseudo_terminal();
    let mut command = stack.command();
    command.args(["up", "stack.yaml"]).stdin(Stdio::from(slave));
    // SAFETY: setsid and ioctl are async-signal-safe system calls, and the
    // closure touches no memory shared with the test's other threads.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid()?;
            // orch leads a session of its own, with the terminal (its stdin) as its controlling terminal.
            if nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut orch = Orch::spawn(command, stack.marker(), true);
    for name in ["db", "api", "web"] {
        stack.wait_file(&format!("{name}.up"));
    }
    let pids: Vec<Pid> = ["db.w", "api.w", "web.w"]
        .iter()
        .map(|label| {
            orch.wait_line(&format!("{label}: started"));
            orch.pid_of(label)
        })
        .collect();

    // The terminal is still there: SIGHUP reloads, nothing stops.
    orch.signal(Signal::SIGHUP);
    orch.wait_line("reload: nothing changed");
    assert!(!orch.exited(), "orch keeps running");
    assert!(pids.iter().all(|&p| alive(p)), "{}", orch.console());
    assert!(!stack.exists("signals"), "{}", stack.read("signals"));

    // The window is closed: orch stops the stack, dependents first, and exits.
    drop(master);
    orch.wait_line("the terminal went away");
    orch.assert_exit(0);
    assert_eq!(
        stack.lines("signals"),
        ["web TERM", "api USR1", "db INT"],
        "{}",
        orch.console()
    );
    orch.assert_before("web.w: stopped (exited with code 0)", "api.w: stopped");
    orch.assert_before("api.w: stopped (exited with code 0)", "db.w: stopped");
    orch.wait_line("db.w: stopped (exited with code 0)");
    stack.wait_all_gone();
}
