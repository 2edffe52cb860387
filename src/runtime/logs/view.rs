//! `orch logs`: the last lines of members' log files, and following them as
//! they grow and rotate. It reads the files directly, so it also works once
//! the stack has stopped.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::file::{rotated, KEEP_ROTATED};
use crate::model::Stack;

/// How often followed files are looked at.
const FOLLOW_EVERY: Duration = Duration::from_millis(200);
/// Bytes read at a time when reading a file backwards.
const BLOCK: u64 = 64 * 1024;
/// Most bytes a followed file gives at a time: a member that writes faster
/// than the lines are printed never makes `orch logs -f` hold more.
const FOLLOW_CHUNK: u64 = 1024 * 1024;

/// The last `n` whole lines of a member's log, older ones first, reading
/// back into its rotated files when the current one holds fewer.
pub fn tail(path: &Path, n: usize) -> Vec<String> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let files =
        std::iter::once(path.to_path_buf()).chain((1..=KEEP_ROTATED).map(|k| rotated(path, k)));
    for file in files {
        if lines.len() >= n {
            break;
        }
        let Ok(mut file) = File::open(&file) else {
            break;
        };
        let mut older = last_lines(&mut file, n - lines.len()).unwrap_or_default();
        older.append(&mut lines);
        lines = older;
    }
    lines
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect()
}

/// The last `n` whole lines of a file (a line still being written at its
/// end does not count), whatever their length.
fn last_lines(file: &mut File, n: usize) -> io::Result<Vec<Vec<u8>>> {
    let len = file.metadata()?.len();
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    let mut newlines = 0;
    let mut pos = len;
    // Until the bytes read hold n + 1 newlines (the one before the first line wanted), or the start.
    while pos > 0 && newlines <= n {
        let start = pos.saturating_sub(BLOCK);
        let mut block = vec![0; usize::try_from(pos - start).expect("a block fits in memory")];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut block)?;
        newlines += memchr::memchr_iter(b'\n', &block).count();
        blocks.push(block);
        pos = start;
    }
    blocks.reverse();
    let text = blocks.concat();
    // What follows the last newline is a line not finished yet.
    let Some(end) = memchr::memrchr(b'\n', &text) else {
        return Ok(Vec::new());
    };
    let mut lines: Vec<Vec<u8>> = text[..end]
        .split(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    if pos > 0 {
        // The first piece started before the bytes read.
        lines.remove(0);
    }
    let skip = lines.len().saturating_sub(n);
    Ok(lines.split_off(skip))
}

/// A log file being followed: the file read now (kept open, so a rotation
/// does not take it away), how far, and a line not finished yet.
struct Followed {
    label: String,
    path: PathBuf,
    file: Option<(File, u64)>,
    partial: Vec<u8>,
}

impl Followed {
    /// Start at the end of the current file's whole lines.
    fn new(label: String, path: PathBuf) -> Followed {
        let file = File::open(&path).ok().and_then(|mut f| {
            let meta = f.metadata().ok()?;
            let end = whole_end(&mut f, meta.len()).ok()?;
            f.seek(SeekFrom::Start(end)).ok()?;
            Some((f, meta.ino()))
        });
        Followed {
            label,
            path,
            file,
            partial: Vec::new(),
        }
    }

    /// Whole lines added since the last look, at most [`FOLLOW_CHUNK`] bytes
    /// of them, across rotations in order: the file being read is finished
    /// before the next one is opened. `true` when there may be more to read
    /// at once.
    fn read_new(&mut self, out: &mut Vec<Vec<u8>>) -> io::Result<bool> {
        loop {
            let current = std::fs::metadata(&self.path).ok().map(|m| m.ino());
            let Some((file, ino)) = &mut self.file else {
                match File::open(&self.path) {
                    Ok(f) => {
                        let ino = f.metadata()?.ino();
                        self.file = Some((f, ino));
                        continue;
                    }
                    Err(_) => return Ok(false),
                }
            };
            let mut bytes = std::mem::take(&mut self.partial);
            let read = file.take(FOLLOW_CHUNK).read_to_end(&mut bytes)?;
            let end = memchr::memrchr(b'\n', &bytes).map_or(0, |i| i + 1);
            if end > 0 {
                out.extend(bytes[..end - 1].split(|&b| b == b'\n').map(<[u8]>::to_vec));
            }
            self.partial = bytes[end..].to_vec();
            if read as u64 == FOLLOW_CHUNK {
                return Ok(true);
            }
            if current.is_none() || current == Some(*ino) {
                return Ok(false);
            }
            // Rotated: what comes after the file just finished.
            if !self.partial.is_empty() {
                out.push(std::mem::take(&mut self.partial));
            }
            let old = *ino;
            let next = (1..=KEEP_ROTATED)
                .find(|&k| std::fs::metadata(rotated(&self.path, k)).is_ok_and(|m| m.ino() == old))
                .map_or_else(
                    || self.path.clone(),
                    |k| {
                        if k == 1 {
                            self.path.clone()
                        } else {
                            rotated(&self.path, k - 1)
                        }
                    },
                );
            let opened = File::open(&next)?;
            let ino = opened.metadata()?.ino();
            self.file = Some((opened, ino));
            if !out.is_empty() {
                return Ok(true);
            }
        }
    }
}

/// Where the whole lines of a file of `len` bytes end.
fn whole_end(file: &mut File, len: u64) -> io::Result<u64> {
    let mut pos = len;
    while pos > 0 {
        let start = pos.saturating_sub(BLOCK);
        let mut block = vec![0; usize::try_from(pos - start).expect("a block fits in memory")];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut block)?;
        if let Some(i) = memchr::memrchr(b'\n', &block) {
            return Ok(start + i as u64 + 1);
        }
        pos = start;
    }
    Ok(0)
}

/// `orch logs`: the last `n` lines of each member's log, prefixed like the
/// console; with `follow`, then every line appended, until interrupted.
pub fn show(stack: &Stack, services: &[usize], n: usize, follow: bool) -> io::Result<()> {
    let mut files: Vec<Followed> = Vec::new();
    for (sid, cid, instance) in stack.members() {
        if !services.is_empty() && !services.contains(&sid) {
            continue;
        }
        let label = stack.member_label(sid, cid, instance.index as usize);
        let path = stack.log_path(&label);
        files.push(Followed::new(label, path));
    }
    let width = files.iter().map(|f| f.label.len()).max().unwrap_or(4);
    let mut stdout = io::stdout().lock();
    for f in &files {
        for line in tail(&f.path, n) {
            writeln!(stdout, "{:<width$} | {line}", f.label)?;
        }
    }
    stdout.flush()?;
    if !follow {
        return Ok(());
    }
    let mut lines = Vec::new();
    let mut more = false;
    loop {
        if !std::mem::take(&mut more) {
            std::thread::sleep(FOLLOW_EVERY);
        }
        for f in &mut files {
            lines.clear();
            // A file that cannot be read now (removed, rotating) is looked at again next time.
            more |= f.read_new(&mut lines).unwrap_or(false);
            for line in &lines {
                writeln!(
                    stdout,
                    "{:<width$} | {}",
                    f.label,
                    String::from_utf8_lossy(line)
                )?;
            }
        }
        stdout.flush()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(from: usize, to: usize, width: usize) -> String {
        (from..to).map(|i| format!("{i:0width$}\n")).collect()
    }

    #[test]
    fn tail_gives_whole_lines_of_any_length_across_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(rotated(&path, 1), numbered(0, 3000, 99)).unwrap();
        std::fs::write(&path, format!("{}partial", numbered(3000, 5001, 99))).unwrap();
        let lines = tail(&path, 2000);
        assert_eq!(lines.len(), 2000);
        assert_eq!(lines[0], format!("{:099}", 3001));
        assert_eq!(lines[1999], format!("{:099}", 5000));
        let lines = tail(&path, 4000);
        assert_eq!(lines.len(), 4000);
        assert_eq!(lines[0], format!("{:099}", 1001));
        let long = "x".repeat(200_000);
        std::fs::write(&path, format!("a\n{long}\nb\n")).unwrap();
        assert_eq!(tail(&path, 2), vec![long.clone(), "b".to_owned()]);
    }

    #[test]
    fn follow_finishes_a_rotated_file_before_the_next_and_skips_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, numbered(0, 10, 6)).unwrap();
        let mut f = Followed::new("a".into(), path.clone());
        let append = |p: &Path, text: &str| {
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(p)
                .unwrap();
            file.write_all(text.as_bytes()).unwrap();
        };
        append(&path, &numbered(10, 20, 6));
        // Two rotations between looks, each after more lines.
        std::fs::rename(&path, rotated(&path, 1)).unwrap();
        append(&path, &numbered(20, 30, 6));
        std::fs::rename(rotated(&path, 1), rotated(&path, 2)).unwrap();
        std::fs::rename(&path, rotated(&path, 1)).unwrap();
        append(&path, &numbered(30, 35, 6));
        append(&path, "3");
        let mut out = Vec::new();
        while f.read_new(&mut out).unwrap() {}
        let got: Vec<String> = out
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
        let want: Vec<String> = (10..35).map(|i| format!("{i:06}")).collect();
        assert_eq!(got, want);
        append(&path, "5\n");
        out.clear();
        assert!(!f.read_new(&mut out).unwrap());
        assert_eq!(out, vec![b"35".to_vec()]);
    }

    #[test]
    fn follow_reads_a_bounded_chunk_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "").unwrap();
        let mut f = Followed::new("a".into(), path.clone());
        // 3 MiB and a bit of 100-byte lines, then a rotation and a last line.
        let lines = 3 * 1024 * 1024 / 100 + 7;
        std::fs::write(&path, numbered(0, lines, 99)).unwrap();
        std::fs::rename(&path, rotated(&path, 1)).unwrap();
        std::fs::write(&path, numbered(lines, lines + 1, 99)).unwrap();
        let mut got = Vec::new();
        let mut out = Vec::new();
        loop {
            out.clear();
            let more = f.read_new(&mut out).unwrap();
            let bytes: usize = out.iter().map(|l| l.len() + 1).sum();
            assert!(bytes as u64 <= FOLLOW_CHUNK + 100, "{bytes} bytes at once");
            got.extend(out.drain(..).map(|l| String::from_utf8(l).unwrap()));
            if !more {
                break;
            }
        }
        let want: Vec<String> = (0..=lines).map(|i| format!("{i:099}")).collect();
        assert_eq!(got, want);
    }
}
