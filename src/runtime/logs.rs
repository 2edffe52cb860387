//! Per-member log files and the pumps that fill them from the members' pipes.
//!
//! A pump reads a member's stdout and stderr until both are closed, writes
//! whole lines to the member's log file (a line cut off by the member's exit
//! is completed with a newline, never dropped), copies them to the console,
//! and watches for the `log` readiness pattern.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::net::unix::pipe;

use super::console::Console;

/// A log file is rotated when it would grow past this.
pub const ROTATE_AT: u64 = 64 * 1024 * 1024;
/// Rotated files kept: `NAME.log.1` (newest) to `NAME.log.4`.
pub const KEEP_ROTATED: u32 = 4;

/// An append-only log file with size-based rotation.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: File,
    size: u64,
}

impl LogFile {
    pub fn open(path: &Path) -> io::Result<LogFile> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(LogFile {
            path: path.to_path_buf(),
            file,
            size,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append whole lines, rotating first if they would not fit.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.size > 0 && self.size + bytes.len() as u64 > ROTATE_AT {
            self.rotate()?;
        }
        self.file.write_all(bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let numbered = |n: u32| {
            let mut name = self.path.clone().into_os_string();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        for n in (1..KEEP_ROTATED).rev() {
            let from = numbered(n);
            if from.exists() {
                std::fs::rename(&from, numbered(n + 1))?;
            }
        }
        std::fs::rename(&self.path, numbered(1))?;
        *self = LogFile::open(&self.path)?;
        Ok(())
    }
}

/// The last `n` lines of a log file (reading at most its last 64 KiB).
pub fn tail(path: &Path, n: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = File::open(path) else {
        return Vec::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| (*l).to_owned())
        .collect()
}

/// `orch logs`: the last `n` lines of each member's log, prefixed like the
/// console; with `follow`, then every line appended, until interrupted.
pub fn show(
    stack: &crate::model::Stack,
    services: &[usize],
    n: usize,
    follow: bool,
) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut files: Vec<(String, PathBuf, u64)> = Vec::new();
    for (sid, cid, instance) in stack.members() {
        if !services.is_empty() && !services.contains(&sid) {
            continue;
        }
        let label = stack.member_label(sid, cid, instance.index as usize);
        let path = stack.log_path(&label);
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        files.push((label, path, len));
    }
    let width = files.iter().map(|f| f.0.len()).max().unwrap_or(4);
    let mut stdout = io::stdout().lock();
    for (label, path, _) in &files {
        for line in tail(path, n) {
            writeln!(stdout, "{label:<width$} | {line}")?;
        }
    }
    stdout.flush()?;
    if !follow {
        return Ok(());
    }
    loop {
        std::thread::sleep(std::time::Duration::from_millis(200));
        for (label, path, offset) in &mut files {
            let Ok(mut file) = File::open(&*path) else {
                continue;
            };
            let len = file.metadata()?.len();
            if len < *offset {
                *offset = 0; // rotated
            }
            if len == *offset {
                continue;
            }
            file.seek(SeekFrom::Start(*offset))?;
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)?;
            let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            *offset += complete as u64;
            for line in String::from_utf8_lossy(&bytes[..complete]).lines() {
                writeln!(stdout, "{label:<width$} | {line}")?;
            }
            stdout.flush()?;
        }
    }
}

/// Where a pump sends what it reads.
pub struct Sink {
    pub log: Arc<Mutex<LogFile>>,
    pub console: Arc<Console>,
    pub prefix: Vec<u8>,
    /// The `log` readiness pattern, and what to call the first time a line matches it.
    pub watch: Option<(regex::Regex, Box<dyn FnOnce() + Send>)>,
}

impl Sink {
    fn lines(&mut self, lines: &[u8]) {
        if let Err(e) = self
            .log
            .lock()
            .expect("a log writer never panics while holding it")
            .write(lines)
        {
            self.console.say(&format!("cannot write a log line: {e}"));
        }
        self.console.lines(&self.prefix, lines);
        if let Some((pattern, _)) = &self.watch {
            let text = String::from_utf8_lossy(lines);
            if text.lines().any(|line| pattern.is_match(line)) {
                if let Some((_, ready)) = self.watch.take() {
                    ready();
                }
            }
        }
    }
}

/// Copy a member's stdout and stderr into `sink` until both are closed.
pub async fn pump(stdout: OwnedFd, stderr: OwnedFd, mut sink: Sink) {
    let (Ok(out), Ok(err)) = (
        pipe::Receiver::from_owned_fd(stdout),
        pipe::Receiver::from_owned_fd(stderr),
    ) else {
        sink.console.say("cannot read a member's output");
        return;
    };
    let (mut out_rest, mut err_rest) = (Vec::new(), Vec::new());
    let (mut out_open, mut err_open) = (true, true);
    while out_open || err_open {
        tokio::select! {
            ready = out.readable(), if out_open => {
                out_open = ready.is_ok() && drain(&out, &mut out_rest, &mut sink);
                if ready.is_err() { take(Ok(0), &[], &mut out_rest, &mut sink); }
            }
            ready = err.readable(), if err_open => {
                err_open = ready.is_ok() && drain(&err, &mut err_rest, &mut sink);
                if ready.is_err() { take(Ok(0), &[], &mut err_rest, &mut sink); }
            }
        }
    }
}

thread_local! {
    /// One read buffer for every pump: they all run on the supervisor's
    /// thread and never hold it across an await, so idle members cost no
    /// buffer memory.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 256 * 1024]);
}

/// Read what a ready pipe holds (a bounded number of reads, so one busy
/// member cannot starve the others); whether it is still open.
fn drain(pipe: &pipe::Receiver, rest: &mut Vec<u8>, sink: &mut Sink) -> bool {
    SCRATCH.with_borrow_mut(|buf| {
        for _ in 0..16 {
            match pipe.try_read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                read => {
                    if !take(read, buf, rest, sink) {
                        return false;
                    }
                }
            }
        }
        true
    })
}

/// Hand the complete lines of a read to the sink, keeping a partial last
/// line for later; at the end of the stream, complete it. Whether the stream is still open.
fn take(read: io::Result<usize>, buf: &[u8], rest: &mut Vec<u8>, sink: &mut Sink) -> bool {
    let n = match read {
        Ok(0) | Err(_) => {
            if !rest.is_empty() {
                rest.push(b'\n');
                sink.lines(rest);
                rest.clear();
            }
            return false;
        }
        Ok(n) => n,
    };
    let chunk = &buf[..n];
    match chunk.iter().rposition(|&b| b == b'\n') {
        None => rest.extend_from_slice(chunk),
        Some(last) if rest.is_empty() => {
            sink.lines(&chunk[..=last]);
            rest.extend_from_slice(&chunk[last + 1..]);
        }
        Some(last) => {
            rest.extend_from_slice(&chunk[..=last]);
            sink.lines(rest);
            rest.clear();
            rest.extend_from_slice(&chunk[last + 1..]);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_every_line_that_fits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut log = LogFile::open(&path).unwrap();
        let line = vec![b'x'; 1024 * 1024 - 1]
            .into_iter()
            .chain([b'\n'])
            .collect::<Vec<u8>>();
        for _ in 0..(ROTATE_AT / (1024 * 1024) + 1) {
            log.write(&line).unwrap();
        }
        let rotated = dir.path().join("a.log.1");
        assert_eq!(std::fs::metadata(&rotated).unwrap().len(), ROTATE_AT);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 1024 * 1024);
    }
}
