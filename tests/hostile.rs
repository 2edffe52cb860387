//! Hostile stack files through the real binary: each ends with a clear
//! message and exit 2 (a huge but valid stack: success), never a crash, a
//! hang or memory without bound.
//!
//! Memory is bounded by running orch under an address-space limit (`ulimit
//! -v` in the shell that execs it): an allocation past it fails, and orch
//! aborts instead of exiting 2. Time is bounded by a deadline far above the
//! real times (docs/reliability.md has those), so a hang fails the test
//! without a timing assertion that a busy machine could break.

mod common;

use std::time::Duration;

use common::Project;

/// Far above the real times: only a hang reaches it.
const DEADLINE: Duration = Duration::from_secs(300);

/// What orch printed, once it exited with `code`.
struct Output {
    stdout: String,
    stderr: String,
}

/// `orch ARGS` in `project`, with at most `mib` MiB of address space.
fn orch(project: &Project, mib: u64, args: &[&str], code: i32) -> Output {
    let out = assert_cmd::Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -v "$0" && exec "$@""#)
        .arg((mib * 1024).to_string())
        .arg(env!("CARGO_BIN_EXE_orch"))
        .args(args)
        .current_dir(project.path())
        .env("NO_COLOR", "1")
        .env_remove("ORCH_FILE")
        .timeout(DEADLINE)
        .assert()
        .code(code);
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    Output {
        stdout: text(&out.get_output().stdout),
        stderr: text(&out.get_output().stderr),
    }
}

/// `orch check` of a stack file holding `bytes`: exit 2, within `mib` MiB.
fn check_fails(bytes: &[u8], mib: u64) -> String {
    let project = Project::new();
    std::fs::write(project.path().join("stack.yaml"), bytes).expect("write stack.yaml");
    let out = orch(&project, mib, &["check"], 2);
    assert_eq!(out.stdout, "");
    out.stderr
}

/// Bytes that look random, the same every run.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed.to_le_bytes()[3]
        })
        .collect()
}

/// A chain of `n` services, each depending on the one before it; with
/// `closed`, the first depends on the last.
fn chain(n: usize, closed: bool) -> String {
    let mut text = String::from("services:\n");
    for i in 0..n {
        text.push_str(&format!("  s{i}:\n"));
        if i > 0 || closed {
            text.push_str(&format!("    depends_on: [s{}]\n", (i + n - 1) % n));
        }
        text.push_str(&format!(
            "    commands:\n      c: {{ command: \"echo {i}\" }}\n"
        ));
    }
    text
}

#[test]
fn an_empty_file() {
    for bytes in [&b""[..], b"\n\n", b"# nothing but a comment\n", b"~\n"] {
        let stderr = check_fails(bytes, 64);
        assert!(stderr.contains("the stack file is empty"), "{stderr}");
        assert!(stderr.contains("see examples/minimal.yaml"), "{stderr}");
    }
}

#[test]
fn binary_garbage() {
    let mut garbage = b"services:\n  a:\n".to_vec();
    garbage.extend(noise(1 << 20, 0x9e37_79b9_7f4a_7c15));
    let stderr = check_fails(&garbage, 64);
    let at = std::str::from_utf8(&garbage)
        .expect_err("noise is not UTF-8")
        .valid_up_to();
    let before = std::str::from_utf8(&garbage[..at]).expect("valid up to there");
    let line = 1 + before.matches('\n').count();
    let column = 1 + before.rsplit('\n').next().map_or(0, |l| l.chars().count());
    let message = format!(
        "the stack file is not UTF-8 text: line {line}, column {column} holds the byte {:#04x}",
        garbage[at]
    );
    assert!(stderr.contains(&message), "{message} in {stderr}");
    assert!(stderr.contains("convert the file"), "{stderr}");

    // Garbage that is UTF-8: ASCII, control characters included.
    let ascii: Vec<u8> = noise(1 << 20, 7).into_iter().map(|b| b & 0x7f).collect();
    let stderr = check_fails(&ascii, 64);
    assert!(
        !stderr.contains('\u{1b}'),
        "no escape sequence reaches the terminal"
    );
    assert!(
        stderr.contains("\\u{"),
        "control characters shown escaped: {stderr}"
    );

    // A value of a megabyte where a mapping belongs: the message quotes the
    // start of it (the line of the file is shown as it is, underlined).
    let text = format!("services: {}\n", "x".repeat(1 << 20));
    let stderr = check_fails(text.as_bytes(), 64);
    assert!(
        stderr.contains("expected a mapping, found"),
        "{}",
        &stderr[..2000]
    );
    assert!(stderr.contains("xxxx...\n"), "{}", &stderr[..2000]);
    // The line, and the line underlined; not the value a third time.
    assert!(stderr.len() < 5 << 19, "{} bytes", stderr.len());
}

#[test]
fn a_file_of_50_megabytes() {
    let mut text = String::from("services:\n  a:\n    commands:\n      x: { command: x }\n");
    let line = format!("# {}\n", "x".repeat(1021));
    text.push_str(&line.repeat(50 * 1024));
    // Reading it all would take 50 MB, and parsing it more: only its first
    // 16 MiB are read.
    let stderr = check_fails(text.as_bytes(), 64);
    assert!(
        stderr.contains("the file is over 16 MiB; orch reads stack files of at most 16 MiB"),
        "{stderr}"
    );
    assert!(stderr.contains("check the path"), "{stderr}");
}

#[test]
fn nesting_10_000_levels_deep() {
    let deep = [
        format!("services: {}{}\n", "[".repeat(10_000), "]".repeat(10_000)),
        format!(
            "services: {}1{}\n",
            "{a: ".repeat(10_000),
            "}".repeat(10_000)
        ),
        format!("services:\n{}x\n", "- ".repeat(10_000)),
    ];
    for text in deep {
        let stderr = check_fails(text.as_bytes(), 64);
        assert!(
            stderr.contains("values are nested more than 64 levels deep"),
            "{stderr}"
        );
        assert!(stderr.contains("check for runaway brackets"), "{stderr}");
    }
}

#[test]
fn a_chain_of_100_000_services() {
    let project = Project::with_stack(&chain(100_000, false));
    let out = orch(&project, 1024, &["check"], 0);
    assert_eq!(
        out.stdout,
        "stack: ok, 100000 services, 100000 members, 0 locators, 100000 start waves\n"
    );
    // The tree stops drawing at a depth, instead of indenting each of the
    // 100,000 levels further (20 GB of spaces).
    let out = orch(&project, 1024, &["graph"], 0);
    assert!(out.stdout.starts_with("s99999 [c]\n└── s99998 [c]\n"));
    assert!(
        out.stdout.contains("└── s99967 (...)\n"),
        "cut at 32 levels"
    );
    assert!(out.stdout.ends_with(
        "(...): deeper than 32 levels; `orch graph --format json` lists every dependency\n"
    ));
    assert!(out.stdout.len() < 10_000, "{} bytes", out.stdout.len());
}

#[test]
fn a_cycle_through_100_000_services() {
    let text = chain(100_000, true);
    let p = common::problem(&text);
    assert_eq!(
        p.message,
        "dependency cycle of 100000 services: s0 -> s99999 -> s99998 -> s99997 -> s99996 \
         -> ... -> s4 -> s3 -> s2 -> s1 -> s0"
    );
    // Eight edges labelled, not 100,000.
    assert_eq!(p.labels.len(), 8);
    assert_eq!(
        p.labels[0],
        ((3, 18), "`s0` depends on `s99999`".to_owned())
    );

    let stderr = check_fails(text.as_bytes(), 1024);
    assert!(
        stderr.contains("dependency cycle of 100000 services"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("` depends on `").count(), 8, "{stderr}");
    assert!(stderr.lines().count() < 100, "{stderr}");
}

#[test]
fn a_mistake_in_each_of_100_000_services() {
    // Each unknown dependency and each undefined variable could be compared
    // with every name of the stack for a "did you mean": only the first are.
    let mut text = String::from("env:\n");
    for i in 0..100_000 {
        text.push_str(&format!("  E{i}: v\n"));
    }
    text.push_str("services:\n");
    for i in 0..100_000 {
        text.push_str(&format!(
            "  s{i}:\n    depends_on: [t{i}]\n    commands:\n      c: {{ command: \"${{U{i}}}\" }}\n"
        ));
    }
    let stderr = check_fails(text.as_bytes(), 1024);
    assert!(
        stderr.contains("x stack.yaml: 200000 problems (the first 50 are shown)"),
        "{}",
        &stderr[..2000]
    );
    assert!(
        stderr.contains("help: did you mean `s0`?"),
        "{}",
        &stderr[..2000]
    );
}

#[test]
fn names_with_unicode_and_control_characters() {
    let text = "services:\n  \"a\\e[31mb\\0\":\n    commands:\n      \"\u{2603}\": { command: x }\n  d\u{e9}\u{200b}j\u{e0}:\n    env: { \"X\\u202eY\": 1 }\n    commands:\n      c: { command: \"${\u{e9}t\u{e9}}\" }\n";
    let stderr = check_fails(text.as_bytes(), 64);
    for message in [
        "`a\\u{1b}[31mb\\u{0}` is not a valid service name",
        "`\u{2603}` is not a valid command name",
        "`d\u{e9}\u{200b}j\u{e0}` is not a valid service name",
        "`X\\u{202e}Y` is not a valid environment variable name",
    ] {
        assert!(stderr.contains(message), "{message} in {stderr}");
    }
    // What would steer the terminal is shown escaped, in the file's lines too.
    for c in ['\u{1b}', '\0', '\u{202e}'] {
        assert!(!stderr.contains(c), "{c:?} in {stderr}");
    }

    // A plain scalar with a raw escape character, and a template naming something unicode.
    let text = "services:\n  a\u{1b}[2Jb:\n    commands:\n      c: { command: x }\n  e:\n    commands:\n      c: { command: \"${\u{e9}t\u{e9}}\" }\n";
    let stderr = check_fails(text.as_bytes(), 64);
    assert!(
        stderr.contains("`a\\u{1b}[2Jb` is not a valid service name"),
        "{stderr}"
    );
    assert!(stderr.contains(" 2 |   a?[2Jb:"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
    // Templates are checked once the file reads cleanly: on their own.
    let text = "services:\n  e:\n    commands:\n      c: { command: \"${\u{e9}t\u{e9}}\" }\n";
    let stderr = check_fails(text.as_bytes(), 64);
    assert!(
        stderr.contains("`\u{e9}t\u{e9}` is not a name a template can refer to"),
        "{stderr}"
    );
}

#[test]
fn self_referencing_templates() {
    let text = "\
env:
  A: ${A}
  B: ${C}
  C: ${B}
services:
  a:
    commands:
      x: { command: \"serve ${OWN_URL}\" }
    provides:
      OWN_URL: http://${OWN_URL}
";
    let project = Project::with_stack(text);
    // `orch up` reads it the same way, and starts nothing.
    let up = orch(&project, 256, &["up"], 2);
    let stderr = check_fails(text.as_bytes(), 64);
    assert_eq!(up.stderr, stderr);
    for message in [
        "x stack.yaml: 3 problems",
        "`${A}` is not defined",
        "`${C}` is not defined",
        "`OWN_URL` is used before `provides` defines it",
    ] {
        assert!(stderr.contains(message), "{message} in {stderr}");
    }
    // Expansion is one pass: a default that spells a reference is text.
    let project = Project::with_stack(
        "env:\n  D: ${ORCH_TEST_UNSET_D:-$${D}}\nservices:\n  a:\n    commands:\n      x: { command: x }\n",
    );
    let out = orch(&project, 64, &["env", "a", "--all"], 0);
    assert_eq!(out.stdout, "D=${D}\n");
}

#[test]
fn template_bombs() {
    // Each value twice the one before: 2^64 bytes at the end.
    let mut env = String::from("env:\n  A0: xxxxxxxx\n");
    let mut provides = String::from("    provides:\n      L0: xxxxxxxx\n");
    for i in 1..64 {
        env.push_str(&format!("  A{i}: ${{A{}}}${{A{}}}\n", i - 1, i - 1));
        provides.push_str(&format!("      L{i}: ${{L{}}}${{L{}}}\n", i - 1, i - 1));
    }
    for text in [
        format!("{env}services:\n  a:\n    commands:\n      c: {{ command: x }}\n"),
        format!("services:\n  a:\n    commands:\n      c: {{ command: x }}\n{provides}"),
    ] {
        let stderr = check_fails(text.as_bytes(), 256);
        // The 16th value is the first past 128 KiB; what stands in for it
        // (its text) grows past it again every 14 values.
        assert!(stderr.contains("x stack.yaml: 4 problems\n"), "{stderr}");
        assert!(
            stderr.contains("14}` makes this value longer than 128 KiB"),
            "{stderr}"
        );
        assert!(
            stderr.contains("no process can receive an argument or a variable this long"),
            "{stderr}"
        );
    }

    // A million members from a few kilobytes.
    let mut text = String::from("services:\n  a:\n    commands:\n");
    for i in 0..100 {
        text.push_str(&format!(
            "      c{i}: {{ command: x, number_of_processes: 10000 }}\n"
        ));
    }
    let stderr = check_fails(text.as_bytes(), 256);
    assert!(
        stderr.contains("the stack has more than 100000 members (processes)"),
        "{stderr}"
    );
    assert!(stderr.contains("reached with `a.c10`"), "{stderr}");
    assert!(stderr.contains(",-[stack.yaml:14:"), "{stderr}");

    // 10,000 processes, each given the ports of all of them: 600 MB.
    let text = "port_range: 10000-60000\nservices:\n  a:\n    commands:\n      c: { command: \"x ${c.ports}\", port: auto, number_of_processes: 10000 }\n";
    let stderr = check_fails(text.as_bytes(), 256);
    assert!(
        stderr.contains("the templates of this file expand to more than 64 MiB"),
        "{stderr}"
    );
    assert!(stderr.contains("x stack.yaml: 1 problem\n"), "{stderr}");
}

#[test]
fn the_stack_file_is_not_a_file() {
    let project = Project::new();
    std::fs::create_dir(project.path().join("stack.yaml")).expect("a folder");
    let out = orch(&project, 64, &["check"], 2);
    assert!(
        out.stderr.contains("cannot read the stack file stack.yaml"),
        "{}",
        out.stderr
    );
    // An endless file: only the first 16 MiB are read.
    let out = orch(&project, 64, &["check", "-f", "/dev/zero"], 2);
    assert!(
        out.stderr.contains("the file is over 16 MiB"),
        "{}",
        out.stderr
    );
}
