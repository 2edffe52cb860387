//! The console: every member's lines prefixed with `service.command |`, a
//! stable colour per service, and orch's own lines.

use std::io::Write;

/// Colours for service prefixes, picked by service index so a service keeps
/// its colour from run to run.
const PALETTE: [u8; 6] = [36, 33, 32, 35, 34, 31];

thread_local! {
    /// The buffer lines are prefixed in, kept between writes.
    static OUT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[derive(Debug)]
pub struct Console {
    color: bool,
    width: usize,
}

impl Console {
    /// `width` is the widest prefix, so the bars line up.
    pub fn new(color: bool, width: usize) -> Self {
        Self {
            color,
            width: width.max(4),
        }
    }

    /// The prefix of a member's lines: padded label, coloured, and the bar.
    pub fn prefix(&self, label: &str, service_index: usize) -> Vec<u8> {
        let padded = format!("{label:<width$} | ", width = self.width);
        if self.color {
            format!(
                "\x1b[{}m{padded}\x1b[0m",
                PALETTE[service_index % PALETTE.len()]
            )
            .into_bytes()
        } else {
            padded.into_bytes()
        }
    }

    /// Write complete lines (`lines` ends with a newline), each behind `prefix`.
    pub fn lines(&self, prefix: &[u8], lines: &[u8]) {
        OUT.with_borrow_mut(|buf| {
            buf.clear();
            let mut start = 0;
            for end in memchr::memchr_iter(b'\n', lines) {
                buf.extend_from_slice(prefix);
                buf.extend_from_slice(&lines[start..=end]);
                start = end + 1;
            }
            // A console that went away (closed pipe) must not stop orch: the log files have it all.
            let _ = std::io::stdout().lock().write_all(buf);
        });
    }

    /// One of orch's own lines.
    pub fn say(&self, text: &str) {
        let prefix = if self.color {
            format!("\x1b[1m{:<width$} | \x1b[0m", "orch", width = self.width)
        } else {
            format!("{:<width$} | ", "orch", width = self.width)
        };
        let _ = writeln!(std::io::stdout().lock(), "{prefix}{text}");
    }
}
