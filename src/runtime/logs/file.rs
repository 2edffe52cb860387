//! One member's log file: appended to, rotated by size, and kept usable
//! when the storage under it fails. A write that fails (disk full, EIO, the
//! folder removed) puts the file in trouble: that is reported once, what
//! comes meanwhile is dropped and counted (the member's pipes are still
//! drained, so it never blocks), a write is tried again each second, and the
//! first one that works ends the trouble, reported once with the count.
//!
//! The file is created only when there is something to write. orch's own
//! notes about the member (that it started, say) wait in memory until the
//! member writes, its process ends or orch stops, so a member that never
//! says anything costs no file and no open descriptor meanwhile: starting
//! hundreds of quiet members is twice as fast for it, since every process
//! orch starts copies and closes orch's descriptors.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A log file is rotated when it would grow past this.
pub const ROTATE_AT: u64 = 64 * 1024 * 1024;
/// Rotated files kept: `NAME.log.1` (newest) to `NAME.log.4`.
pub const KEEP_ROTATED: u32 = 4;
/// How often a file in trouble is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// `NAME.log.N`, the `n`th rotated file of `path`.
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// A change in whether a log file can be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Writing started failing, for this reason.
    Failing(String),
    /// Writing works again; this many lines were dropped meanwhile.
    Recovered { dropped: u64 },
}

#[derive(Debug)]
struct Trouble {
    dropped: u64,
    last_try: Instant,
}

/// An append-only log file with size-based rotation.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    /// Open lazily, and again after a failure.
    file: Option<File>,
    size: u64,
    trouble: Option<Trouble>,
    /// Whether the file ends with a whole line.
    at_line_start: bool,
    /// orch's notes not written yet (see the module's docs).
    notes: Vec<u8>,
}

/// Most bytes of notes kept back before they are written anyway.
const NOTES: usize = 64 * 1024;

impl LogFile {
    pub fn new(path: &Path) -> LogFile {
        LogFile {
            path: path.to_path_buf(),
            file: None,
            size: 0,
            trouble: None,
            at_line_start: true,
            notes: Vec::new(),
        }
    }

    /// One of orch's notes (whole lines): kept back while the file has not
    /// been needed yet, written at once afterwards.
    pub fn note(&mut self, bytes: &[u8], now: Instant) -> Option<Change> {
        if self.file.is_some() || self.trouble.is_some() || self.notes.len() + bytes.len() > NOTES {
            return self.write(bytes, now);
        }
        self.notes.extend_from_slice(bytes);
        None
    }

    /// Write the notes kept back, if any (the member's process ended, or
    /// orch stops).
    pub fn flush(&mut self, now: Instant) -> Option<Change> {
        if self.notes.is_empty() {
            return None;
        }
        self.write(&[], now)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write to `path` from now on (the stack's `log_dir` changed).
    pub fn relocate(&mut self, path: &Path) {
        if path != self.path {
            self.path = path.to_path_buf();
            self.file = None;
        }
    }

    /// Append whole lines (or pieces of a line, each ending with a newline),
    /// after the notes kept back; a change in whether the file can be
    /// written, to report.
    pub fn write(&mut self, bytes: &[u8], now: Instant) -> Option<Change> {
        let notes = std::mem::take(&mut self.notes);
        let bytes = if notes.is_empty() {
            std::borrow::Cow::Borrowed(bytes)
        } else {
            std::borrow::Cow::Owned([notes.as_slice(), bytes].concat())
        };
        let bytes = bytes.as_ref();
        if let Some(trouble) = &mut self.trouble {
            if now.duration_since(trouble.last_try) < RETRY {
                trouble.dropped += lines(bytes);
                return None;
            }
            trouble.last_try = now;
        }
        match self.append(bytes) {
            Ok(()) => self
                .trouble
                .take()
                .map(|t| Change::Recovered { dropped: t.dropped }),
            Err(e) => {
                self.file = None;
                match &mut self.trouble {
                    Some(trouble) => {
                        trouble.dropped += lines(bytes);
                        None
                    }
                    None => {
                        self.trouble = Some(Trouble {
                            dropped: lines(bytes),
                            last_try: now,
                        });
                        Some(Change::Failing(format!("{}: {e}", self.path.display())))
                    }
                }
            }
        }
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.file.is_none() {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            self.size = file.metadata()?.len();
            self.file = Some(file);
        }
        if self.size > 0 && self.size + bytes.len() as u64 > ROTATE_AT {
            self.rotate()?;
        }
        let file = self.file.as_mut().expect("opened above");
        if !self.at_line_start {
            // What a failed write left of a line: end it, so the next line is whole.
            file.write_all(b"\n")?;
            self.size += 1;
            self.at_line_start = true;
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            match file.write(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.size += n as u64;
                    self.at_line_start = rest[n - 1] == b'\n';
                    rest = &rest[n..];
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        for n in (1..KEEP_ROTATED).rev() {
            let from = rotated(&self.path, n);
            if from.exists() {
                std::fs::rename(&from, rotated(&self.path, n + 1))?;
            }
        }
        std::fs::rename(&self.path, rotated(&self.path, 1))?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        self.file = Some(file);
        Ok(())
    }
}

fn lines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_every_line_that_fits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut log = LogFile::new(&path);
        let line = vec![b'x'; 1024 * 1024 - 1]
            .into_iter()
            .chain([b'\n'])
            .collect::<Vec<u8>>();
        let now = Instant::now();
        for _ in 0..(ROTATE_AT / (1024 * 1024) + 1) {
            assert_eq!(log.write(&line, now), None);
        }
        assert_eq!(
            std::fs::metadata(rotated(&path, 1)).unwrap().len(),
            ROTATE_AT
        );
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 1024 * 1024);
    }

    #[test]
    fn notes_wait_for_the_member_to_need_its_file_and_come_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut log = LogFile::new(&path);
        let now = Instant::now();
        assert_eq!(log.note(b"[orch] started\n", now), None);
        assert!(!path.exists(), "a quiet member costs no file");
        assert_eq!(log.write(b"hello\n", now), None);
        assert_eq!(log.note(b"[orch] stopped\n", now), None);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "[orch] started\nhello\n[orch] stopped\n"
        );
        // One that never writes gets its notes when its process ends.
        let quiet = dir.path().join("b.log");
        let mut log = LogFile::new(&quiet);
        log.note(b"[orch] started\n", now);
        assert_eq!(log.flush(now), None);
        assert_eq!(std::fs::read_to_string(&quiet).unwrap(), "[orch] started\n");
    }

    #[test]
    fn a_failing_file_is_reported_once_retried_each_second_and_counts_what_it_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let mut log = LogFile::new(&logs.join("a.log"));
        let t0 = Instant::now();
        assert_eq!(log.write(b"one\n", t0), None);
        std::fs::remove_dir_all(&logs).unwrap();
        log.file = None; // the next write opens the file again, in a folder now gone
        let Some(Change::Failing(why)) = log.write(b"two\n", t0) else {
            panic!("the first failure is reported")
        };
        assert!(why.contains("No such file or directory"), "{why}");
        // Within the second: not even tried, only counted.
        assert_eq!(
            log.write(b"three\nfour\n", t0 + Duration::from_millis(500)),
            None
        );
        // Tried again after a second, still failing: counted, not reported again.
        assert_eq!(log.write(b"five\n", t0 + Duration::from_secs(1)), None);
        std::fs::create_dir(&logs).unwrap();
        assert_eq!(log.write(b"six\n", t0 + Duration::from_millis(1500)), None);
        assert_eq!(
            log.write(b"seven\n", t0 + Duration::from_secs(2)),
            Some(Change::Recovered { dropped: 5 })
        );
        assert_eq!(
            std::fs::read_to_string(logs.join("a.log")).unwrap(),
            "seven\n"
        );
    }
}
