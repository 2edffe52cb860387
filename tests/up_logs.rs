//! `orch up`: log files keep every line a member writes, however fast.

mod common;

use common::run::Stack;

/// Numbered lines the member writes: about 100 MB in all.
const LINES: usize = 1_000_000;
/// What follows the number on each line (with the space, 97 bytes a line).
const PAD: &str =
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

/// Writes lines 0..LINES-1 in blocks, even lines to stdout and odd ones to
/// stderr, flushing both after each block so the streams interleave; the
/// last line has no newline.
const WRITER: &str = r#"
import sys
lines, pad = int(sys.argv[1]), sys.argv[2].encode()
out, err = sys.stdout.buffer, sys.stderr.buffer
block = 2000
for start in range(0, lines - 1, block):
    numbers = range(start, min(start + block, lines - 1))
    out.write(b"".join(b"%08d %s\n" % (i, pad) for i in numbers if i % 2 == 0))
    err.write(b"".join(b"%08d %s\n" % (i, pad) for i in numbers if i % 2 == 1))
    out.flush()
    err.flush()
out.write(b"%08d %s" % (lines - 1, pad))
out.flush()
"#;

#[test]
fn log_files_keep_every_line_of_a_100_mb_burst() {
    let stack = Stack::new(&format!(
        r"
services:
  burst:
    commands:
      w:
        command: [python3, writer.py, '{LINES}', '{PAD}']
        when_to_run: once
"
    ));
    std::fs::write(stack.path("writer.py"), WRITER).expect("write writer.py");
    let mut orch = stack.up_quiet();
    orch.assert_exit(0);
    orch.wait_line("burst.w: completed");
    // Every line went to the console, or was counted as not shown there
    // (the console may fall behind; the log files may not).
    let not_shown: usize = orch
        .lines()
        .iter()
        .filter_map(|l| {
            let count = l.split("console fell behind: ").nth(1)?;
            let count = count.split(" lines not shown").next()?;
            Some(count.replace(',', "").parse::<usize>().expect("a count"))
        })
        .sum();
    assert_eq!(
        orch.dropped_lines() + not_shown,
        LINES,
        "{}",
        orch.console()
    );

    let logs = stack.path(".orch/logs");
    let mut files: Vec<_> = std::fs::read_dir(&logs)
        .expect("the log folder")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|f| {
            f.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    // About 100 MB: one rotation at 64 MiB.
    assert_eq!(names, ["burst.w.log", "burst.w.log.1"]);

    let mut seen = vec![0u32; LINES];
    for file in &files {
        let text = std::fs::read(file).expect("read a log file");
        for line in text.split_inclusive(|&b| b == b'\n') {
            assert_eq!(line.last(), Some(&b'\n'), "a log file ends mid-line");
            let line = &line[..line.len() - 1];
            if line.starts_with(b"[orch] ") {
                continue;
            }
            let text = String::from_utf8_lossy(line);
            let (number, rest) = text
                .split_once(' ')
                .unwrap_or_else(|| panic!("a broken line in {}: {text:?}", file.display()));
            assert_eq!(rest, PAD, "a broken line in {}: {text:?}", file.display());
            let number: usize = number
                .parse()
                .unwrap_or_else(|_| panic!("a broken line in {}: {text:?}", file.display()));
            seen[number] += 1;
        }
    }
    let wrong: Vec<(usize, u32)> = seen
        .iter()
        .enumerate()
        .filter(|&(_, &n)| n != 1)
        .map(|(i, &n)| (i, n))
        .take(10)
        .collect();
    assert!(
        wrong.is_empty(),
        "lines missing or repeated (number, times): {wrong:?}"
    );
}
