//! Running the real `orch` binary against small stacks in temporary folders.
//!
//! Every wait polls a condition (a console line, a file's contents, a process
//! gone) against a generous deadline: the suite must pass on two busy cores,
//! so nothing here sleeps for a fixed time to let something happen.
//!
//! Each [`Stack`] gets a unique marker, given to orch as `ORCH_TEST_MARK` in
//! its environment; members inherit orch's environment, so every process of a
//! test (orch, its guardian, members, their children, probes) carries it in
//! `/proc/PID/environ`. That is how tests check that nothing is left behind,
//! and how [`Orch`]'s `Drop` makes sure of it when a test fails.

#![allow(dead_code)] // each test binary uses a part of this module

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How long any single condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);
/// How often conditions are checked.
pub const POLL: Duration = Duration::from_millis(20);
/// The environment variable that marks every process of one test.
pub const MARK: &str = "ORCH_TEST_MARK";
/// How long `orch status` may take to answer, however busy the stack is.
pub const ANSWER: Duration = Duration::from_secs(1);

/// Poll `probe` until it gives a value; `None` once `limit` has passed.
pub fn poll<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// A stack file in a fresh temporary folder, which is also the working
/// folder of the orch started from it.
pub struct Stack {
    dir: tempfile::TempDir,
    marker: String,
}

impl Stack {
    /// Write `yaml` to `stack.yaml` in a new temporary folder.
    pub fn new(yaml: &str) -> Stack {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = tempfile::Builder::new()
            .prefix("orch-up-")
            .tempdir()
            .expect("a temporary folder");
        std::fs::write(dir.path().join("stack.yaml"), yaml).expect("write stack.yaml");
        std::fs::create_dir(dir.path().join("run")).expect("make the run folder");
        let marker = format!(
            "orch-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        Stack { dir, marker }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The value of `ORCH_TEST_MARK` that every process of this stack carries.
    pub fn marker(&self) -> &str {
        &self.marker
    }

    /// The text of a file in the stack's folder; empty when it does not exist (yet).
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    pub fn exists(&self, name: &str) -> bool {
        self.path(name).exists()
    }

    /// The lines of a file in the stack's folder.
    pub fn lines(&self, name: &str) -> Vec<String> {
        self.read(name).lines().map(str::to_owned).collect()
    }

    /// Wait until `name` exists, and give its contents.
    pub fn wait_file(&self, name: &str) -> String {
        poll(DEADLINE, || self.exists(name).then(|| self.read(name)))
            .unwrap_or_else(|| panic!("{name} did not appear within {DEADLINE:?}"))
    }

    /// Wait until `name` holds complete lines (it is not empty and ends with
    /// a newline: a shell creates the file of `echo ok > name` before it
    /// writes), and give its contents.
    pub fn wait_text(&self, name: &str) -> String {
        poll(DEADLINE, || {
            let text = self.read(name);
            text.ends_with('\n').then_some(text)
        })
        .unwrap_or_else(|| panic!("{name} got no complete line within {DEADLINE:?}"))
    }

    /// `orch` with the test's environment: run in the stack's folder, with
    /// its own run folder (for run-state files), no colour, and the marker.
    pub fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_orch"));
        command
            .current_dir(self.dir())
            .env("XDG_RUNTIME_DIR", self.path("run"))
            .env("NO_COLOR", "1")
            .env_remove("ORCH_FILE")
            .env(MARK, &self.marker)
            .stdin(Stdio::null());
        command
    }

    /// Start `orch up stack.yaml ARGS...`.
    pub fn up(&self, args: &[&str]) -> Orch {
        let mut command = self.command();
        command.arg("up").arg("stack.yaml").args(args);
        Orch::spawn(command, &self.marker, true)
    }

    /// Start `orch up stack.yaml` keeping only orch's own console lines: for
    /// members that write far more than a test should hold in memory.
    pub fn up_quiet(&self) -> Orch {
        let mut command = self.command();
        command.arg("up").arg("stack.yaml");
        Orch::spawn(command, &self.marker, false)
    }

    /// Start `orch up stack.yaml` with a console that nobody reads: its
    /// stdout is a pipe held open but not read until [`Orch::read_console`]
    /// (then only orch's own lines are kept, as with [`Stack::up_quiet`]).
    pub fn up_unread(&self) -> Orch {
        let mut command = self.command();
        command.arg("up").arg("stack.yaml");
        let (open, gate) = mpsc::channel();
        let mut orch = Orch::start(command, &self.marker, false, Some(gate));
        orch.gate = Some(open);
        orch
    }

    /// Run `orch ARGS...` in the stack's folder with its environment; its
    /// output, or `None` (and it is killed) when it has not ended within `limit`.
    pub fn run_within(&self, args: &[&str], limit: Duration) -> Option<std::process::Output> {
        let child = self
            .command()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start orch");
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("a pid fits in i32"));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(limit) {
            Ok(output) => Some(output.expect("wait for orch")),
            Err(_) => {
                // Not reaped yet (the waiting thread has not returned): the pid is still its.
                let _ = kill(pid, Signal::SIGKILL);
                None
            }
        }
    }

    /// `orch status --json`, parsed; it must answer within [`ANSWER`].
    pub fn status(&self) -> serde_json::Value {
        self.status_within(ANSWER)
    }

    /// `orch status --json`, parsed; it must answer within `limit`.
    pub fn status_within(&self, limit: Duration) -> serde_json::Value {
        let out = self
            .run_within(&["status", "--json"], limit)
            .unwrap_or_else(|| panic!("`orch status` did not answer within {limit:?}"));
        assert!(
            out.status.success(),
            "`orch status` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "`orch status --json` printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Processes of this stack still alive (zombies do not count).
    pub fn processes(&self) -> Vec<Pid> {
        marked_processes(&self.marker)
    }

    /// Wait until no process of this stack is left.
    pub fn wait_all_gone(&self) {
        if poll(DEADLINE, || self.processes().is_empty().then_some(())).is_none() {
            let left: Vec<String> = self.processes().iter().map(|&p| describe(p)).collect();
            panic!(
                "processes still alive {DEADLINE:?} after they should have stopped:\n{}",
                left.join("\n")
            );
        }
    }
}

/// The control socket of the stack's running orch.
pub fn socket(stack: &Stack) -> PathBuf {
    let dir = stack.path("run/orch");
    poll(DEADLINE, || {
        std::fs::read_dir(&dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "sock"))
    })
    .unwrap_or_else(|| panic!("no control socket appeared in {}", dir.display()))
}

/// A running `orch`, its console read by a background thread.
pub struct Orch {
    child: Child,
    marker: String,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    dropped: Arc<AtomicUsize>,
    readers: Vec<JoinHandle<()>>,
    exit: Option<std::process::ExitStatus>,
    /// Held while stdout is not read (see [`Stack::up_unread`]).
    gate: Option<mpsc::Sender<()>>,
}

impl Orch {
    /// Start `command`, draining its stdout and stderr; with `members` false,
    /// only orch's own console lines are kept.
    pub fn spawn(command: Command, marker: &str, members: bool) -> Orch {
        Orch::start(command, marker, members, None)
    }

    /// Like [`Orch::spawn`]; with a `gate`, stdout is not read until it opens
    /// (a message, or its sender dropped).
    fn start(
        mut command: Command,
        marker: &str,
        members: bool,
        gate: Option<mpsc::Receiver<()>>,
    ) -> Orch {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start orch");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("piped stdout");
        let err = child.stderr.take().expect("piped stderr");
        let dropped = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&dropped);
        let lines = Arc::clone(&stdout);
        let text = Arc::clone(&stderr);
        let readers = vec![
            std::thread::spawn(move || {
                if let Some(gate) = gate {
                    let _ = gate.recv();
                }
                let mut out = BufReader::with_capacity(1 << 20, out);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match out.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    if !members && !line.starts_with(b"orch ") {
                        counted.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let line = String::from_utf8_lossy(&line);
                    let line = line.trim_end_matches('\n');
                    if members || is_orch_line(line) {
                        lines.lock().expect("console lock").push(line.to_owned());
                    } else {
                        counted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }),
            std::thread::spawn(move || {
                let mut err = err;
                let mut chunk = [0u8; 4096];
                loop {
                    match err.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => text
                            .lock()
                            .expect("stderr lock")
                            .extend_from_slice(&chunk[..n]),
                    }
                }
            }),
        ];
        Orch {
            child,
            marker: marker.to_owned(),
            stdout,
            stderr,
            dropped,
            readers,
            exit: None,
            gate: None,
        }
    }

    /// Start reading a console that was not read (see [`Stack::up_unread`]).
    pub fn read_console(&mut self) {
        self.gate = None;
    }

    /// How many members' lines were read but not kept (see [`Stack::up_quiet`]).
    pub fn dropped_lines(&self) -> usize {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).expect("a pid fits in i32"))
    }

    /// Every console line so far.
    pub fn lines(&self) -> Vec<String> {
        self.stdout.lock().expect("console lock").clone()
    }

    /// The console so far, for failure messages.
    pub fn console(&self) -> String {
        let mut text = self.lines().join("\n");
        let errors = self.raw_stderr();
        if !errors.is_empty() {
            text.push_str("\n--- stderr ---\n");
            text.push_str(&errors);
        }
        text
    }

    /// What orch wrote to stderr, its whitespace runs (line wraps, indents)
    /// made single spaces: error reports are wrapped to a width.
    pub fn stderr(&self) -> String {
        self.raw_stderr()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// What orch wrote to stderr, as it is.
    pub fn raw_stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().expect("stderr lock")).into_owned()
    }

    /// Index of the first console line containing `needle`.
    pub fn find(&self, needle: &str) -> Option<usize> {
        self.lines().iter().position(|l| l.contains(needle))
    }

    /// How many console lines contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(needle)).count()
    }

    /// Wait for a console line containing `needle`; its index.
    pub fn wait_line(&self, needle: &str) -> usize {
        self.wait_for(&format!("a console line with `{needle}`"), || {
            self.find(needle)
        })
    }

    /// Wait until `probe` gives a value; the test fails with the console
    /// shown when it does not within [`DEADLINE`].
    pub fn wait_for<T>(&self, what: &str, probe: impl FnMut() -> Option<T>) -> T {
        poll(DEADLINE, probe).unwrap_or_else(|| {
            panic!(
                "waited {DEADLINE:?} for {what}; console:\n{}",
                self.console()
            )
        })
    }

    /// Wait for a line with `first` and one with `then`, and assert that
    /// the first of the former comes before the first of the latter.
    pub fn assert_before(&self, first: &str, then: &str) {
        let b = self.wait_line(then);
        let a = self.wait_line(first);
        assert!(
            a < b,
            "expected `{first}` (line {a}) before `{then}` (line {b}); console:\n{}",
            self.console()
        );
    }

    /// The pid orch reported for the latest start of `label`.
    pub fn pid_of(&self, label: &str) -> Pid {
        let needle = format!("| {label}: started (pid ");
        let line = self
            .lines()
            .into_iter()
            .rev()
            .find(|l| l.contains(&needle))
            .unwrap_or_else(|| panic!("{label} was never started; console:\n{}", self.console()));
        let pid = line
            .split(&needle)
            .nth(1)
            .and_then(|rest| rest.strip_suffix(')'))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no pid in `{line}`"));
        Pid::from_raw(pid)
    }

    pub fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).expect("signal orch");
    }

    /// Whether orch has exited (reaping it if so).
    pub fn exited(&mut self) -> bool {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().expect("check on orch");
        }
        self.exit.is_some()
    }

    /// Wait for orch to exit with a code; the code. Its console has been read to the end.
    pub fn wait_exit(&mut self) -> i32 {
        self.wait_exit_within(DEADLINE)
    }

    /// Like [`Orch::wait_exit`] with another deadline.
    pub fn wait_exit_within(&mut self, limit: Duration) -> i32 {
        if poll(limit, || self.exited().then_some(())).is_none() {
            panic!(
                "orch did not exit within {limit:?}; console:\n{}",
                self.console()
            );
        }
        self.read_console();
        // Whatever orch started has its own pipes: its output ends with it.
        if poll(DEADLINE, || {
            self.readers
                .iter()
                .all(JoinHandle::is_finished)
                .then_some(())
        })
        .is_none()
        {
            panic!(
                "orch's stdout or stderr stayed open {DEADLINE:?} after it exited; console:\n{}",
                self.console()
            );
        }
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        let status = self.exit.expect("orch has exited");
        status.code().unwrap_or_else(|| {
            panic!(
                "orch ended without an exit code ({status}); console:\n{}",
                self.console()
            )
        })
    }

    /// SIGKILL orch (only orch: not its guardian nor its members) and reap it.
    pub fn kill9(&mut self) {
        self.signal(Signal::SIGKILL);
        if poll(DEADLINE, || self.exited().then_some(())).is_none() {
            panic!("orch survived SIGKILL for {DEADLINE:?}");
        }
    }

    /// orch's guardian process (`orch guard`), while orch runs.
    pub fn guardian(&self) -> Pid {
        self.wait_for("orch's guardian process", || {
            children(self.pid())
                .into_iter()
                .find(|&c| cmdline(c).contains(" guard ORCH_RUN="))
        })
    }

    /// Wait for orch to exit with `code`.
    pub fn assert_exit(&mut self, code: i32) {
        let got = self.wait_exit();
        assert_eq!(got, code, "orch's exit code; console:\n{}", self.console());
    }
}

impl Drop for Orch {
    /// Leave nothing running, whatever happened in the test.
    fn drop(&mut self) {
        if !self.exited() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        kill_marked(&self.marker);
    }
}

/// The members of `service` in a status report.
pub fn members<'a>(report: &'a serde_json::Value, service: &str) -> &'a [serde_json::Value] {
    report["services"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["name"] == service))
        .and_then(|s| s["members"].as_array())
        .unwrap_or_else(|| panic!("no service `{service}` with members in {report:#}"))
}

/// How many times the members of `service` were restarted, in all.
pub fn restarts(report: &serde_json::Value, service: &str) -> u64 {
    members(report, service)
        .iter()
        .map(|m| m["restarts"].as_u64().expect("`restarts` is a number"))
        .sum()
}

/// Whether a console line is one of orch's own (`orch | ...`).
pub fn is_orch_line(line: &str) -> bool {
    line.split_once(" | ")
        .is_some_and(|(label, _)| label.trim_end() == "orch")
}

/// Live (not zombie) processes whose environment holds `ORCH_TEST_MARK=marker`.
pub fn marked_processes(marker: &str) -> Vec<Pid> {
    let wanted = format!("{MARK}={marker}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                env.split(|&b| b == 0)
                    .any(|entry| entry == wanted.as_bytes())
            }) && process_state(Pid::from_raw(pid)).is_some_and(|s| s != 'Z')
        })
        .map(Pid::from_raw)
        .collect()
}

/// SIGKILL every process of a test, until none is left (at most a few seconds).
pub fn kill_marked(marker: &str) {
    let _ = poll(Duration::from_secs(10), || {
        let left = marked_processes(marker);
        for &pid in &left {
            let _ = kill(pid, Signal::SIGKILL);
        }
        left.is_empty().then_some(())
    });
}

/// The state letter of a process (`R`, `S`, `Z`, ...), `None` when it does not exist.
pub fn process_state(pid: Pid) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// The peak resident memory of a process, in KiB (`VmHWM`).
pub fn peak_memory_kib(pid: Pid) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read its status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix(" kB"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in:\n{status}"))
}

/// Whether a process exists and is not a zombie.
pub fn alive(pid: Pid) -> bool {
    process_state(pid).is_some_and(|s| s != 'Z')
}

/// The command line of a process, its arguments joined by spaces.
pub fn cmdline(pid: Pid) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            String::from_utf8_lossy(&c)
                .split('\0')
                .filter(|a| !a.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn describe(pid: Pid) -> String {
    format!("pid {pid}: {}", cmdline(pid))
}

/// The children of a process, from `/proc/PID/task/*/children`.
pub fn children(pid: Pid) -> Vec<Pid> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|text| {
            text.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .map(Pid::from_raw)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `n` consecutive TCP ports on 127.0.0.1 that nothing listens on now, below
/// the ephemeral range, different for each call within a test binary.
pub fn free_ports(n: u16) -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Test binaries run one after another; spread each one's ports by pid anyway.
    let base = 20_000 + u16::try_from(std::process::id() % 50).expect("below 50") * 100;
    loop {
        let low = base + NEXT.fetch_add(n, Ordering::Relaxed);
        assert!(low < 30_000, "no free ports left for the tests");
        if (low..low + n).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            return low;
        }
    }
}

/// One free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    free_ports(1)
}
