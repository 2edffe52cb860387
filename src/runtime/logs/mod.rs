//! Members' output, off the supervision path: a thread of its own drains
//! every member's stdout and stderr into its log file
//! (`<log_dir>/<label>.log`), offers the lines to the console, and watches
//! for the `log` readiness pattern. The supervisor only hands it pipes and
//! notes, and hears back through its event channel (a pattern seen, a log
//! file that cannot be written or works again); it never waits for it.

pub mod file;
pub mod lines;
pub mod view;

use std::cell::RefCell;
use std::collections::HashMap;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::unix::pipe;
use tokio::sync::mpsc;

use super::console::Console;
use super::core::{Event, MemberId};
use file::{Change, LogFile};
use lines::Lines;

/// The `log` readiness check of a process: the pattern, and whom it reports to.
pub struct Watch {
    pub pattern: regex::Regex,
    pub generation: u64,
}

/// A new process's output, for the log thread.
pub struct Attach {
    pub member: MemberId,
    /// The member's log file.
    pub path: PathBuf,
    /// What its lines show behind on the console.
    pub prefix: Arc<[u8]>,
    /// Read ends of its stdout and stderr.
    pub pipes: (OwnedFd, OwnedFd),
    pub watch: Option<Watch>,
}

enum Command {
    /// Drain a process's output into the member's log file.
    Attach(Attach),
    /// One of orch's own lines about the member, for its log file.
    Note {
        member: MemberId,
        path: PathBuf,
        text: String,
    },
    /// Write the member's log file at `path` from now on.
    Relocate { member: MemberId, path: PathBuf },
    /// Drain what is left (for at most `limit`), then end.
    Finish { limit: Duration },
}

/// The supervisor's handle on the log thread.
pub struct Logs {
    tx: mpsc::UnboundedSender<Command>,
    thread: std::thread::JoinHandle<()>,
}

impl Logs {
    /// Start the log thread; it reports to `events` and shows lines on `console`.
    pub fn start(events: mpsc::UnboundedSender<Event>, console: Console) -> std::io::Result<Logs> {
        let (tx, rx) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("orch-logs".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime can be built at orch's start-up");
                let local = tokio::task::LocalSet::new();
                local.block_on(&runtime, serve(rx, events, console));
            })?;
        Ok(Logs { tx, thread })
    }

    /// Drain a new process's output into its member's log file.
    pub fn attach(&self, attach: Attach) {
        let _ = self.tx.send(Command::Attach(attach));
    }

    /// Write one of orch's own lines into the member's log file.
    pub fn note(&self, member: MemberId, path: PathBuf, text: String) {
        let _ = self.tx.send(Command::Note { member, path, text });
    }

    /// Write the member's log file at `path` from now on (`log_dir` changed).
    pub fn relocate(&self, member: MemberId, path: PathBuf) {
        let _ = self.tx.send(Command::Relocate { member, path });
    }

    /// Let the members' last lines reach their logs (a pipe that something
    /// outside the members' groups still holds does not keep orch waiting
    /// longer than `limit`), then stop the thread.
    pub fn finish(self, limit: Duration) {
        let _ = self.tx.send(Command::Finish { limit });
        let (done_tx, done) = std::sync::mpsc::channel();
        let thread = self.thread;
        std::thread::spawn(move || {
            let _ = thread.join();
            let _ = done_tx.send(());
        });
        let _ = done.recv_timeout(limit + Duration::from_secs(1));
    }
}

/// What the pumps of one thread share.
struct Shared {
    events: mpsc::UnboundedSender<Event>,
    console: Console,
    files: RefCell<HashMap<MemberId, Rc<RefCell<LogFile>>>>,
    /// Where a pump reads into and joins or cuts lines. One pair for all:
    /// a pump uses them only between two awaits, and hundreds of chatty
    /// members would otherwise hold a quarter of a megabyte each.
    buffers: RefCell<Buffers>,
}

struct Buffers {
    read: Vec<u8>,
    scratch: Vec<u8>,
}

impl Shared {
    /// The member's log file, opened (lazily) at `path`.
    fn file(&self, member: MemberId, path: &std::path::Path) -> Rc<RefCell<LogFile>> {
        let file = Rc::clone(
            self.files
                .borrow_mut()
                .entry(member)
                .or_insert_with(|| Rc::new(RefCell::new(LogFile::new(path)))),
        );
        file.borrow_mut().relocate(path);
        file
    }

    /// Write a member's output to its log file.
    fn write(&self, member: MemberId, file: &RefCell<LogFile>, bytes: &[u8]) {
        let change = file.borrow_mut().write(bytes, Instant::now());
        self.report(member, change);
    }

    /// Tell the supervisor when a log file starts failing or works again.
    fn report(&self, member: MemberId, change: Option<Change>) {
        let (trouble, dropped) = match change {
            None => return,
            Some(Change::Failing(why)) => (Some(why), 0),
            Some(Change::Recovered { dropped }) => (None, dropped),
        };
        let _ = self.events.send(Event::LogTrouble {
            member,
            trouble,
            dropped,
        });
    }
}

async fn serve(
    mut rx: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<Event>,
    console: Console,
) {
    let shared = Rc::new(Shared {
        events,
        console,
        files: RefCell::new(HashMap::new()),
        buffers: RefCell::new(Buffers {
            read: vec![0u8; READ],
            scratch: Vec::new(),
        }),
    });
    let mut pumps = tokio::task::JoinSet::new();
    while let Some(command) = rx.recv().await {
        match command {
            Command::Attach(attach) => {
                let file = shared.file(attach.member, &attach.path);
                let shared = Rc::clone(&shared);
                pumps.spawn_local(async move {
                    pump(attach, &file, &shared).await;
                });
                // Forget pumps that are done, so a flapping member costs nothing.
                while pumps.try_join_next().is_some() {}
            }
            Command::Note { member, path, text } => {
                let file = shared.file(member, &path);
                let note = format!("[orch] {text}\n");
                let change = file.borrow_mut().note(note.as_bytes(), Instant::now());
                shared.report(member, change);
            }
            Command::Relocate { member, path } => {
                if shared.files.borrow().contains_key(&member) {
                    shared.file(member, &path);
                }
            }
            Command::Finish { limit } => {
                let _ = tokio::time::timeout(limit, async {
                    while pumps.join_next().await.is_some() {}
                })
                .await;
                let files: Vec<_> = shared.files.borrow().values().cloned().collect();
                for file in files {
                    let _ = file.borrow_mut().flush(Instant::now());
                }
                return;
            }
        }
    }
}

/// The bytes of one read.
const READ: usize = 256 * 1024;
/// A read this long found the pipe full (its default capacity)...
const FULL_PIPE: usize = 64 * 1024;
/// ...so the pipe is grown to this, once: a chatty member then wakes orch
/// far less often. Quiet members keep the default, so many of them do not
/// use up the per-user pipe quota (`fs.pipe-user-pages-soft`).
const CHATTY_PIPE: nix::libc::c_int = 1 << 20;

/// Copy a process's stdout and stderr into its member's log and the console
/// until both are closed.
async fn pump(attach: Attach, file: &RefCell<LogFile>, shared: &Shared) {
    let Attach {
        member,
        prefix,
        pipes: (stdout, stderr),
        mut watch,
        ..
    } = attach;
    let (Ok(out), Ok(err)) = (
        pipe::Receiver::from_owned_fd(stdout),
        pipe::Receiver::from_owned_fd(stderr),
    ) else {
        shared.console.say("cannot read a member's output");
        return;
    };
    let mut streams = [
        (out, Lines::default(), true, false),
        (err, Lines::default(), true, false),
    ];
    while streams.iter().any(|s| s.2) {
        let [(out, _, out_open, _), (err, _, err_open, _)] = &streams;
        let which = tokio::select! {
            _ = out.readable(), if *out_open => 0,
            _ = err.readable(), if *err_open => 1,
        };
        let (pipe, lines, open, grown) = &mut streams[which];
        let mut buffers = shared.buffers.borrow_mut();
        let Buffers { read: buf, scratch } = &mut *buffers;
        // A bounded number of reads, so one busy member cannot starve the others.
        for _ in 0..16 {
            let ready = match pipe.try_read(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Ok(0) | Err(_) => {
                    *open = false;
                    match lines.finish() {
                        Some(last) => {
                            *scratch = last;
                            &scratch[..]
                        }
                        None => break,
                    }
                }
                Ok(n) => {
                    if n >= FULL_PIPE && !*grown {
                        *grown = true;
                        // Refused past the system's limit: the pipe stays as it is.
                        let _ = nix::fcntl::fcntl(
                            pipe.as_raw_fd(),
                            nix::fcntl::FcntlArg::F_SETPIPE_SZ(CHATTY_PIPE),
                        );
                    }
                    lines.feed(&buf[..n], scratch)
                }
            };
            if !ready.is_empty() {
                shared.write(member, file, ready);
                shared.console.lines(&prefix, ready);
                if let Some(w) = &watch {
                    // `ready` ends with a newline: the lines are what comes before each.
                    if ready[..ready.len() - 1]
                        .split(|&b| b == b'\n')
                        .any(|line| w.pattern.is_match(&String::from_utf8_lossy(line)))
                    {
                        let _ = shared.events.send(Event::Ready {
                            member,
                            generation: w.generation,
                        });
                        watch = None;
                    }
                }
            }
            if !*open {
                break;
            }
        }
    }
    // The process is over: what orch said about it goes to the file now.
    let change = file.borrow_mut().flush(Instant::now());
    shared.report(member, change);
}
