//! `orch up`: members' output never holds supervision up, and nothing in it
//! grows without bound: a console that nobody reads, a line without end, a
//! full log storage, each against the real binary.

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;

use common::run::{alive, members, peak_memory_kib, poll, restarts, Orch, Stack, ANSWER, DEADLINE};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use serde_json::Value;

/// The status report of the control protocol, which has more than the
/// contract of `orch status --json` (`log_error`); it must come within [`ANSWER`].
fn status_report(stack: &Stack) -> Value {
    let dir = stack.path("run/orch");
    let socket = std::fs::read_dir(&dir)
        .expect("orch's run folder")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "sock"))
        .unwrap_or_else(|| panic!("no control socket in {}", dir.display()));
    let mut stream = UnixStream::connect(&socket).expect("connect to the control socket");
    stream
        .set_read_timeout(Some(ANSWER))
        .expect("set a read timeout");
    stream
        .write_all(b"{\"version\": 1, \"request\": {\"type\": \"status\", \"services\": []}}\n")
        .expect("send the request");
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("no status report within {ANSWER:?}: {e}"));
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("the answer is not JSON ({e}): {line:?}"))
}

/// The size of a file in the stack's folder; 0 when it does not exist (yet).
fn size(stack: &Stack, name: &str) -> u64 {
    std::fs::metadata(stack.path(name)).map_or(0, |m| m.len())
}

/// The number in `line` between `before` and `after`, thousands separators allowed.
fn number_in(line: &str, before: &str, after: &str) -> u64 {
    line.split_once(before)
        .and_then(|(_, rest)| rest.split_once(after))
        .and_then(|(n, _)| n.replace(',', "").parse().ok())
        .unwrap_or_else(|| panic!("no number between `{before}` and `{after}` in `{line}`"))
}

/// The console line at `index`.
fn line(orch: &Orch, index: usize) -> String {
    orch.lines().swap_remove(index)
}

/// One chatty member (about 2 MB of short lines a second) and one that
/// crashes every 0.2 s, restarted at once for as long as the test runs.
const CHATTY_AND_CRASHING: &str = r"
services:
  chatty:
    commands:
      w:
        command: while :; do seq 1 20000; sleep 0.05; done
  crash:
    commands:
      w:
        command: sleep 0.2; exit 1
        respawn_backoff: 0s
        respawn_count: 100000
";

#[test]
fn a_console_nobody_reads_holds_up_neither_supervision_nor_the_logs() {
    let stack = Stack::new(CHATTY_AND_CRASHING);
    let mut orch = stack.up_unread();
    let log = ".orch/logs/chatty.w.log";
    // Far more than a pipe (64 KiB) and orch's console queue hold: the
    // console stopped taking lines long ago.
    let full = 8 << 20;
    if poll(DEADLINE, || (size(&stack, log) > full).then_some(())).is_none() {
        panic!(
            "chatty.w's log stopped at {} bytes while the console was not read",
            size(&stack, log)
        );
    }
    let first = stack.status();
    let (restarted, written) = (restarts(&first, "crash"), size(&stack, log));
    // Every status answers within the limit while the crashing member is
    // restarted again and again and the log keeps growing.
    let going_on = poll(DEADLINE, || {
        let report = stack.status();
        (restarts(&report, "crash") >= restarted + 5 && size(&stack, log) > written).then_some(())
    });
    assert!(
        going_on.is_some(),
        "supervision stalled: crash.w restarted {} times (was {restarted}), chatty.w's log at {} bytes (was {written})",
        restarts(&stack.status(), "crash"),
        size(&stack, log)
    );

    orch.read_console();
    let behind = line(&orch, orch.wait_line("console fell behind: "));
    let not_shown = number_in(&behind, "console fell behind: ", " lines not shown");
    assert!(not_shown > 0, "{behind}");
    assert!(
        behind.ends_with("lines not shown (they are in the log files)")
            || behind.contains("lines not shown (they are in the log files), and "),
        "{behind}"
    );
    orch.signal(Signal::SIGTERM);
    orch.assert_exit(0);
    stack.wait_all_gone();
}

/// 10 MiB: 160 pieces of 64 KiB.
const ENDLESS: usize = 10 << 20;
/// The longest piece of a line in a log file.
const PIECE: usize = 64 << 10;

/// That orch's resident memory has never reached `mib` MiB.
fn assert_peak_memory_below(pid: Pid, mib: u64) {
    let peak_kib = peak_memory_kib(pid);
    assert!(
        peak_kib < mib << 10,
        "orch's resident memory peaked at {} MiB",
        peak_kib >> 10
    );
}

#[test]
fn a_line_without_end_reaches_the_log_in_pieces_and_memory_stays_bounded() {
    let stack = Stack::new(&format!(
        r"
services:
  big:
    commands:
      w:
        command: |
          head -c {ENDLESS} /dev/zero | tr '\0' x
          exec sleep 1000
"
    ));
    let mut orch = stack.up_quiet();
    let log = ".orch/logs/big.w.log";
    // Each piece ends with a backslash and a newline.
    let pieces = ENDLESS / PIECE;
    let expected = (pieces * (PIECE + 2)) as u64;
    if poll(DEADLINE, || (size(&stack, log) >= expected).then_some(())).is_none() {
        panic!(
            "big.w's log holds {} bytes, {expected} expected",
            size(&stack, log)
        );
    }
    orch.wait_line("big.w: started");
    let member = orch.pid_of("big.w");
    assert!(alive(member), "big.w keeps running");
    let text = std::fs::read(stack.path(log)).expect("read the log");
    assert_eq!(text.last(), Some(&b'\n'), "the log ends with a whole line");
    let mut piece = vec![b'x'; PIECE];
    piece.push(b'\\');
    let mut found = 0;
    for line in text.split(|&b| b == b'\n') {
        if line.is_empty() || line.starts_with(b"[orch] ") {
            continue;
        }
        assert!(
            line == piece,
            "a piece of {} bytes, starting {:?}, ending {:?}",
            line.len(),
            String::from_utf8_lossy(&line[..line.len().min(20)]),
            String::from_utf8_lossy(&line[line.len().saturating_sub(20)..])
        );
        found += 1;
    }
    assert_eq!(found, pieces, "every byte of the line is in the log");
    assert_peak_memory_below(orch.pid(), 64);
    orch.signal(Signal::SIGTERM);
    orch.assert_exit(0);
    stack.wait_all_gone();
}

#[test]
fn many_chatty_members_do_not_each_cost_a_read_buffer() {
    // 100 members each write 100,000 numbered lines (589 KB) and stay up:
    // orch reads their pipes a quarter of a megabyte at a time, and with a
    // buffer per member it held 68 MiB; one buffer for all keeps it near
    // what an idle orch takes (17 MiB for this debug build).
    const MEMBERS: usize = 100;
    let stack = Stack::new(&format!(
        r"
services:
  chatty:
    commands:
      c:
        command: seq 1 100000; exec sleep 1000
        number_of_processes: {MEMBERS}
"
    ));
    let mut orch = stack.up_quiet();
    let whole = |i: usize| {
        std::fs::read(stack.path(&format!(".orch/logs/chatty.c.{i}.log")))
            .is_ok_and(|log| log.ends_with(b"\n99999\n100000\n"))
    };
    if poll(DEADLINE, || (0..MEMBERS).all(whole).then_some(())).is_none() {
        let done = (0..MEMBERS).filter(|&i| whole(i)).count();
        panic!("{done} of {MEMBERS} logs hold every line");
    }
    assert_peak_memory_below(orch.pid(), 32);
    orch.signal(Signal::SIGTERM);
    orch.assert_exit(0);
    stack.wait_all_gone();
}

/// A tmpfs mounted for a test, unmounted however the test ends.
struct Tmpfs {
    at: std::path::PathBuf,
}

impl Tmpfs {
    fn mount(at: &std::path::Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).expect("make the mount point");
        mount(&["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"], at);
        Tmpfs { at: at.to_owned() }
    }

    fn resize(&self, size: &str) {
        mount(&["-o", &format!("remount,size={size}")], &self.at);
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: orch may still hold files in it when a test fails.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.at)
            .status();
    }
}

fn mount(args: &[&str], at: &std::path::Path) {
    let out = std::process::Command::new("mount")
        .args(args)
        .arg(at)
        .output()
        .expect("run mount");
    assert!(
        out.status.success(),
        "mount {args:?} {}: {}",
        at.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether this test can mount a file system; outside CI, a test that
/// cannot says why and is skipped.
fn can_mount() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI runs the tests as root: mounting a tmpfs needs it"
    );
    eprintln!("skipped: mounting a tmpfs as log_dir needs root");
    false
}

#[test]
fn a_full_log_storage_is_reported_once_and_supervision_goes_on() {
    if !can_mount() {
        return;
    }
    // About 2 MB of lines at once, then a line every 0.1 s.
    let stack = Stack::new(
        r"
log_dir: logs
services:
  chatty:
    commands:
      w:
        command: seq 1 300000; while :; do echo tick; sleep 0.1; done
  crash:
    commands:
      w:
        command: sleep 0.2; exit 1
        respawn_backoff: 0s
        respawn_count: 100000
",
    );
    let logs = Tmpfs::mount(&stack.path("logs"), "1m");
    let mut orch = stack.up_quiet();
    let failing = "chatty.w: cannot write its log file: ";
    let at = orch.wait_line(failing);
    assert!(
        line(&orch, at).contains("No space left on device"),
        "{}",
        line(&orch, at)
    );
    let report = status_report(&stack);
    let error = members(&report, "chatty")[0]["log_error"]
        .as_str()
        .unwrap_or_else(|| panic!("no log_error in {report:#}; console:\n{}", orch.console()));
    assert!(error.contains("No space left on device"), "{error}");
    let why = stack
        .run_within(&["why", "chatty"], DEADLINE)
        .expect("`orch why` answers");
    let why = String::from_utf8_lossy(&why.stdout);
    assert!(
        why.contains("chatty.w cannot write its log file: "),
        "orch why:\n{why}"
    );
    // Supervision goes on, long enough for several retries a second apart.
    let restarted = restarts(&report, "crash");
    orch.wait_for("crash.w to be restarted 10 more times", || {
        (restarts(&stack.status(), "crash") >= restarted + 10).then_some(())
    });
    assert_eq!(orch.count(failing), 1, "{}", orch.console());

    logs.resize("16m");
    let recovered = "chatty.w: its log file can be written again (";
    let at = orch.wait_line(recovered);
    let dropped = number_in(&line(&orch, at), recovered, " lines were dropped)");
    assert!(dropped > 0, "{}", line(&orch, at));
    let report = status_report(&stack);
    assert_eq!(
        members(&report, "chatty")[0].get("log_error"),
        None,
        "{report:#}"
    );
    // Written again: a tick after orch's line that says so.
    orch.wait_for("a tick in chatty.w's log after its recovery", || {
        let log = stack.read("logs/chatty.w.log");
        let (_, after) = log.split_once("its log file can be written again")?;
        after.contains("\ntick\n").then_some(())
    });
    let restarted = restarts(&report, "crash");
    orch.wait_for("crash.w to be restarted again", || {
        (restarts(&stack.status(), "crash") >= restarted + 3).then_some(())
    });
    assert_eq!(orch.count(failing), 1, "{}", orch.console());
    assert_eq!(orch.count(recovered), 1, "{}", orch.console());
    orch.signal(Signal::SIGTERM);
    orch.assert_exit(0);
    stack.wait_all_gone();
}
