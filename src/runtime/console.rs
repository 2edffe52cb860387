//! The console: every member's lines behind `service.command |`, a stable
//! colour per service, and orch's own lines.
//!
//! A thread of its own writes to stdout, fed through a queue bounded in
//! bytes, so a console that nobody reads (a paused pager, a stuck terminal,
//! a full pipe) never holds up anything else. When the queue is full, new
//! lines are dropped and counted, never waited for; members' lines are all
//! in their log files anyway. Once the writer has caught up it says how many
//! lines were not shown.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Colours for service prefixes, picked by service index so a service keeps
/// its colour from run to run.
const PALETTE: [u8; 6] = [36, 33, 32, 35, 34, 31];

/// Bytes of members' output the queue may hold before their lines are dropped.
const MEMBER_QUEUE: usize = 1 << 20;
/// Bytes of orch's own lines it may hold: those are not in any log file, so
/// they get more room, but a console stuck for hours must not grow orch.
const ORCH_QUEUE: usize = 4 << 20;

enum Chunk {
    /// Whole lines of a member, to show behind the prefix.
    Lines { prefix: Arc<[u8]>, bytes: Vec<u8> },
    /// One of orch's own lines, already prefixed.
    Own(Vec<u8>),
    /// A report for stderr (a diagnostic), as it is.
    Error(Vec<u8>),
}

/// Counts shared by the writers (anyone) and the writing thread.
#[derive(Default)]
struct Queue {
    member_bytes: AtomicUsize,
    orch_bytes: AtomicUsize,
    dropped_member_lines: AtomicU64,
    dropped_orch_lines: AtomicU64,
}

/// A handle on the console; cheap to clone, never blocks.
#[derive(Clone)]
pub struct Console {
    tx: mpsc::Sender<Chunk>,
    queue: Arc<Queue>,
    color: bool,
    width: usize,
}

/// The thread that writes the console, to wait for at exit.
pub struct Writer {
    done: mpsc::Receiver<()>,
}

impl Console {
    /// Start the console writing to `out` (and reports to `err`). `width` is
    /// the widest prefix, so the bars line up.
    pub fn start(
        out: Box<dyn Write + Send>,
        err: Box<dyn Write + Send>,
        color: bool,
        width: usize,
    ) -> (Console, Writer) {
        let (tx, rx) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        let queue = Arc::new(Queue::default());
        let console = Console {
            tx,
            queue: Arc::clone(&queue),
            color,
            width: width.max(4),
        };
        let own_prefix = console.own_prefix();
        std::thread::Builder::new()
            .name("orch-console".into())
            .spawn(move || {
                write_all_chunks(&rx, [out, err], &queue, &own_prefix);
                let _ = done_tx.send(());
            })
            .expect("a thread can be started at orch's start-up");
        (console, Writer { done })
    }

    /// The prefix of a member's lines: padded label, coloured, and the bar.
    pub fn prefix(&self, label: &str, service_index: usize) -> Arc<[u8]> {
        let padded = format!("{label:<width$} | ", width = self.width);
        let text = if self.color {
            format!(
                "\x1b[{}m{padded}\x1b[0m",
                PALETTE[service_index % PALETTE.len()]
            )
        } else {
            padded
        };
        text.into_bytes().into()
    }

    fn own_prefix(&self) -> Vec<u8> {
        if self.color {
            format!("\x1b[1m{:<width$} | \x1b[0m", "orch", width = self.width)
        } else {
            format!("{:<width$} | ", "orch", width = self.width)
        }
        .into_bytes()
    }

    /// Show whole lines of a member (`bytes` ends with a newline), or count
    /// them as dropped when the console is behind.
    pub fn lines(&self, prefix: &Arc<[u8]>, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if !reserve(&self.queue.member_bytes, bytes.len(), MEMBER_QUEUE) {
            self.queue
                .dropped_member_lines
                .fetch_add(line_count(bytes), Ordering::Relaxed);
            return;
        }
        let chunk = Chunk::Lines {
            prefix: Arc::clone(prefix),
            bytes: bytes.to_vec(),
        };
        if self.tx.send(chunk).is_err() {
            self.queue
                .member_bytes
                .fetch_sub(bytes.len(), Ordering::Relaxed);
        }
    }

    /// One of orch's own lines.
    pub fn say(&self, text: &str) {
        let mut line = self.own_prefix();
        line.extend_from_slice(text.as_bytes());
        line.push(b'\n');
        self.send_own(Chunk::Own, line);
    }

    /// A report for stderr, such as a diagnostic, written as it is.
    pub fn error(&self, text: &str) {
        self.send_own(Chunk::Error, text.as_bytes().to_vec());
    }

    /// Queue one of orch's own texts, within their room.
    fn send_own(&self, chunk: fn(Vec<u8>) -> Chunk, bytes: Vec<u8>) {
        let len = bytes.len();
        if !reserve(&self.queue.orch_bytes, len, ORCH_QUEUE) {
            self.queue
                .dropped_orch_lines
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.tx.send(chunk(bytes)).is_err() {
            self.queue.orch_bytes.fetch_sub(len, Ordering::Relaxed);
        }
    }
}

impl Writer {
    /// Let the console write what it holds, for at most `limit` (a console
    /// that nobody reads does not keep orch from exiting). Every
    /// [`Console`] handle must have been dropped.
    pub fn finish(self, limit: Duration) {
        let _ = self.done.recv_timeout(limit);
    }
}

/// Take `len` bytes of room in a queue holding at most `limit`.
fn reserve(used: &AtomicUsize, len: usize, limit: usize) -> bool {
    used.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |now| {
        (now + len <= limit || now == 0).then_some(now + len)
    })
    .is_ok()
}

fn line_count(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

/// The writing thread: batches what is queued, writes it, and when it has
/// caught up says what it had to drop. A console that went away (closed
/// pipe, terminal hung up) is not written to any more, but still drained.
fn write_all_chunks(
    rx: &mpsc::Receiver<Chunk>,
    [mut out, mut err]: [Box<dyn Write + Send>; 2],
    queue: &Queue,
    own_prefix: &[u8],
) {
    let mut buf = Vec::with_capacity(256 * 1024);
    let mut open = true;
    let mut err_open = true;
    while let Ok(first) = rx.recv() {
        buf.clear();
        let (mut members, mut own) = (0, 0);
        let mut next = Some(first);
        while let Some(chunk) = next.take() {
            match chunk {
                Chunk::Lines { prefix, bytes } => {
                    members += bytes.len();
                    let mut start = 0;
                    for end in memchr::memchr_iter(b'\n', &bytes) {
                        buf.extend_from_slice(&prefix);
                        buf.extend_from_slice(&bytes[start..=end]);
                        start = end + 1;
                    }
                }
                Chunk::Own(line) => {
                    own += line.len();
                    buf.extend_from_slice(&line);
                }
                Chunk::Error(text) => {
                    own += text.len();
                    // In order with what came before it on stdout.
                    if open {
                        open = write_fully(&mut out, &buf);
                    }
                    buf.clear();
                    if err_open {
                        err_open = write_fully(&mut err, &text);
                    }
                }
            }
            if buf.len() < 256 * 1024 {
                next = rx.try_recv().ok();
            }
        }
        if open {
            open = write_fully(&mut out, &buf);
        }
        queue.member_bytes.fetch_sub(members, Ordering::Relaxed);
        queue.orch_bytes.fetch_sub(own, Ordering::Relaxed);
        let caught_up = queue.member_bytes.load(Ordering::Relaxed) == 0
            && queue.orch_bytes.load(Ordering::Relaxed) == 0;
        if caught_up && open {
            let lines = queue.dropped_member_lines.swap(0, Ordering::Relaxed);
            let own = queue.dropped_orch_lines.swap(0, Ordering::Relaxed);
            if lines + own > 0 {
                let mut text = own_prefix.to_vec();
                text.extend_from_slice(fell_behind(lines, own).as_bytes());
                open = write_fully(&mut out, &text);
            }
        }
    }
}

/// Write everything, waiting as long as it takes (this thread may); whether
/// the console is still there.
fn write_fully(out: &mut Box<dyn Write + Send>, bytes: &[u8]) -> bool {
    let mut rest = bytes;
    let mut waited = Instant::now();
    while !rest.is_empty() {
        match out.write(rest) {
            Ok(0) => return false,
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A console left in non-blocking mode by another program.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if waited.elapsed() > Duration::from_millis(1) {
                    std::thread::sleep(Duration::from_millis(1));
                    waited = Instant::now();
                }
            }
            Err(_) => return false,
        }
    }
    out.flush().is_ok()
}

/// The line said when the console caught up after dropping lines.
pub fn fell_behind(member_lines: u64, orch_lines: u64) -> String {
    let mut text = format!(
        "console fell behind: {} lines not shown (they are in the log files)",
        thousands(member_lines)
    );
    if orch_lines > 0 {
        text.push_str(&format!(", and {} of orch's own", thousands(orch_lines)));
    }
    text.push('\n');
    text
}

/// `12345` as `12,345`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A console output that accepts nothing until opened, like a paused pager.
    #[derive(Clone, Default)]
    struct Gate {
        open: Arc<(Mutex<bool>, std::sync::Condvar)>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Gate {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let (lock, cvar) = &*self.open;
            let mut open = lock.lock().unwrap();
            while !*open {
                open = cvar.wait(open).unwrap();
            }
            self.written.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_console_that_is_not_read_drops_lines_without_waiting_then_says_how_many() {
        let gate = Gate::default();
        let (console, writer) =
            Console::start(Box::new(gate.clone()), Box::new(io::sink()), false, 4);
        let prefix = console.prefix("a.b", 0);
        let line = [b'x'; 99].iter().chain(b"\n").copied().collect::<Vec<u8>>();
        // Far more than the queue holds: every call returns at once.
        for _ in 0..50_000 {
            console.lines(&prefix, &line);
        }
        let dropped = console.queue.dropped_member_lines.load(Ordering::Relaxed);
        assert!(dropped > 30_000, "{dropped} dropped");
        {
            let (lock, cvar) = &*gate.open;
            *lock.lock().unwrap() = true;
            cvar.notify_all();
        }
        drop(console);
        writer.finish(Duration::from_secs(60));
        let text = String::from_utf8(gate.written.lock().unwrap().clone()).unwrap();
        let shown = text.lines().filter(|l| l.starts_with("a.b  | x")).count() as u64;
        assert_eq!(shown + dropped, 50_000);
        let notice = format!(
            "orch | console fell behind: {} lines not shown (they are in the log files)",
            thousands(dropped)
        );
        assert_eq!(
            text.lines().last(),
            Some(notice.as_str()),
            "{}",
            &text[text.len() - 300..]
        );
    }

    #[test]
    fn lines_are_prefixed_and_orch_lines_are_its_own() {
        let gate = Gate::default();
        *gate.open.0.lock().unwrap() = true;
        let (console, writer) =
            Console::start(Box::new(gate.clone()), Box::new(io::sink()), false, 6);
        console.lines(&console.prefix("db.pg", 0), b"one\ntwo\n");
        console.say("hello");
        drop(console);
        writer.finish(Duration::from_secs(60));
        let text = String::from_utf8(gate.written.lock().unwrap().clone()).unwrap();
        assert_eq!(text, "db.pg  | one\ndb.pg  | two\norch   | hello\n");
    }

    #[test]
    fn numbers_have_thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(12_345), "12,345");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
