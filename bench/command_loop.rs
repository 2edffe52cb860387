//! The floor for starting members: a bare `std::process::Command` loop that
//! starts N processes the way orch starts members (the program resolved to a
//! path, a process group of its own, the environment set in full, stdin from
//! /dev/null, stdout and stderr on pipes), then holds their pipes until it
//! is killed. `bench/peers.py` runs it beside orch in the same run.
//!
//! Usage: command-loop N PROGRAM ARG

use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(n), Some(program), Some(arg)) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: command-loop N PROGRAM ARG");
        std::process::exit(2);
    };
    let Ok(n) = n.parse::<usize>() else {
        eprintln!("command-loop: N must be a number, not {n}");
        std::process::exit(2);
    };
    let env: Vec<(String, String)> = std::env::vars().collect();
    let mut children = Vec::with_capacity(n);
    for _ in 0..n {
        let child = Command::new(&program)
            .arg(&arg)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        match child {
            Ok(child) => children.push(child),
            Err(e) => {
                eprintln!("command-loop: cannot start {program}: {e}");
                std::process::exit(1);
            }
        }
    }
    // Hold the pipes, as a supervisor does, until stopped.
    loop {
        std::thread::park();
    }
}
