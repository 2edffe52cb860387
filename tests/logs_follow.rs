//! `orch logs` against what a real `orch up` wrote: `-f` goes on across a
//! rotation without skipping or repeating a line, `-n N` gives the last N
//! whole lines (across rotated files too), and a reload that moves the logs
//! says so.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::client::{ok, wait_log, Follower};
use common::run::{peak_memory_kib, poll, Stack};

/// Lines of 100 bytes the writer writes: 80 MB, past the 64 MiB at which a
/// log file is rotated.
const LINES: usize = 800_000;

/// Says `waiting`, waits for a file named `go`, then writes lines `0` to
/// `N - 1` (its argument), each its number in 99 digits, then `done`, and
/// waits to be stopped.
const WRITER: &str = r#"
import os, sys, time
print("waiting", flush=True)
while not os.path.exists("go"):
    time.sleep(0.05)
lines, block, out = int(sys.argv[1]), 10000, sys.stdout.buffer
for start in range(0, lines, block):
    out.write(b"".join(b"%099d\n" % i for i in range(start, min(start + block, lines))))
    out.flush()
print("done", flush=True)
time.sleep(1000)
"#;

/// A stack whose one member runs [`WRITER`] for `lines` lines.
fn writer(lines: usize) -> Stack {
    let stack = Stack::new(&format!(
        r"
services:
  burst:
    commands:
      w:
        command: [python3, writer.py, '{lines}']
"
    ));
    std::fs::write(stack.path("writer.py"), WRITER).expect("write writer.py");
    stack
}

/// Numbered lines as they come: the next number expected, and what was
/// wrong (the first few only, so memory stays bounded).
#[derive(Default)]
struct Numbering {
    next: usize,
    wrong: Vec<String>,
    done: bool,
    waiting: bool,
}

impl Numbering {
    /// Take one line of `orch logs` output for `burst.w`.
    fn take(&mut self, line: &str) {
        let Some(text) = line.strip_prefix("burst.w | ") else {
            return self.note(format!("not burst.w's: {line:?}"));
        };
        match text {
            "waiting" => self.waiting = true,
            "done" => self.done = true,
            _ if text.starts_with("[orch] ") => {}
            _ if text.len() == 99 && text.bytes().all(|b| b.is_ascii_digit()) => {
                let number: usize = text.parse().expect("99 digits of a small number");
                if number != self.next {
                    self.note(format!("line {number} came when {} was due", self.next));
                }
                self.next = number + 1;
            }
            _ => self.note(format!("a broken line: {text:?}")),
        }
    }

    fn note(&mut self, what: String) {
        if self.wrong.len() < 10 {
            self.wrong.push(what);
        }
    }
}

#[test]
fn logs_follow_goes_on_across_a_rotation_without_skipping_a_line() {
    let stack = writer(LINES);
    let orch = stack.up_quiet();
    wait_log(&orch, &stack, "burst.w", "waiting\n");

    let seen = Arc::new(Mutex::new(Numbering::default()));
    let sink = Arc::clone(&seen);
    let follower = Follower::each(&stack, &["logs", "-f", "-n", "1", "burst"], move |line| {
        sink.lock().expect("numbering lock").take(&line);
    });
    orch.wait_for("`orch logs -f` to print the last line so far", || {
        seen.lock().expect("numbering lock").waiting.then_some(())
    });
    std::fs::write(stack.path("go"), "").expect("write go");

    // 80 MB through orch and then `orch logs -f`: more than the usual deadline.
    let limit = Duration::from_secs(300);
    let done = poll(limit, || {
        seen.lock().expect("numbering lock").done.then_some(())
    });
    let peak = peak_memory_kib(follower.pid());
    drop(follower);
    let seen = seen.lock().expect("numbering lock");
    assert!(
        done.is_some(),
        "`orch logs -f` did not print `done` within {limit:?}; it got to line {}; wrong: {:?}",
        seen.next,
        seen.wrong
    );
    assert!(
        stack.exists(".orch/logs/burst.w.log.1"),
        "the log was rotated"
    );
    assert_eq!(
        (seen.next, &seen.wrong),
        (LINES, &Vec::new()),
        "every line once, in order"
    );
    // Far less than the 64 MiB of a log file: it is read a bounded chunk at a time.
    assert!(
        peak < 48 * 1024,
        "`orch logs -f` used {peak} KiB at its peak"
    );

    // `-n` reaches back into the rotated file for what the current one lacks.
    let current = std::fs::read(stack.path(".orch/logs/burst.w.log")).expect("read the log");
    let n = memchr::memchr_iter(b'\n', &current).count() + 1000;
    drop(current);
    let tail = ok(&stack, &["logs", "-n", &n.to_string(), "burst"]);
    let mut numbering = Numbering {
        next: LINES - (n - 1),
        ..Numbering::default()
    };
    for line in tail.lines() {
        numbering.take(line);
    }
    assert_eq!(tail.lines().count(), n);
    assert_eq!((numbering.next, &numbering.wrong), (LINES, &Vec::new()));
    assert!(numbering.done);
}

#[test]
fn logs_n_gives_the_last_lines_whole_beyond_64_kib() {
    let stack = writer(5001);
    std::fs::write(stack.path("go"), "").expect("write go");
    let orch = stack.up_quiet();
    wait_log(&orch, &stack, "burst.w", "done\n");

    let tail = ok(&stack, &["logs", "-n", "2000", "burst"]);
    let lines: Vec<&str> = tail.lines().collect();
    assert_eq!(lines.len(), 2000, "{tail}");
    assert_eq!(lines[1999], "burst.w | done");
    let mut numbering = Numbering {
        next: 3002,
        ..Numbering::default()
    };
    for line in &lines {
        numbering.take(line);
    }
    assert_eq!((numbering.next, &numbering.wrong), (5001, &Vec::new()));
}

/// `db` writes its lines to `log_dir`, and `got HUP` on SIGHUP.
fn logged_to(log_dir: &str) -> String {
    format!(
        r"
log_dir: {log_dir}
services:
  db:
    commands:
      server:
        command: trap 'echo got HUP' HUP; echo first; while :; do sleep 1; done
"
    )
}

#[test]
fn a_reload_that_moves_the_logs_says_so_and_they_go_there() {
    let stack = Stack::new(&logged_to("logs-a"));
    let mut orch = stack.up(&[]);
    orch.wait_for("db's first line in logs-a", || {
        stack
            .read("logs-a/db.server.log")
            .contains("first\n")
            .then_some(())
    });
    std::fs::write(stack.path("stack.yaml"), logged_to("logs-b")).expect("write stack.yaml");
    ok(&stack, &["reload"]);

    let said = orch.wait_line("reload: logs now go to ");
    let line = &orch.lines()[said];
    assert!(line.ends_with("logs-b"), "{line}");
    assert_eq!(
        orch.count("reload: nothing changed"),
        0,
        "{}",
        orch.console()
    );
    ok(&stack, &["restart", "db"]);
    orch.wait_for("`got HUP` in logs-b", || {
        stack
            .read("logs-b/db.server.log")
            .contains("got HUP\n")
            .then_some(())
    });
    assert!(!stack.read("logs-a/db.server.log").contains("got HUP"));
    assert!(ok(&stack, &["logs", "db"]).contains("db.server | got HUP\n"));
    ok(&stack, &["down"]);
    orch.assert_exit(0);
}
