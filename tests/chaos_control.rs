//! Chaos at orch's controls: a storm of SIGHUPs while the stack file keeps
//! changing, and a control socket held open, flooded and fed garbage. orch
//! must end in one consistent stack, keep answering, and stop cleanly.
//!
//! The garbage is random, from a seed printed by the test (shown when it
//! fails); `ORCH_CHAOS_SEED=N cargo test --test chaos_control` sends it again.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::run::{cmdline, socket, Orch, Stack, DEADLINE};
use common::seed::seeded;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use proptest::prelude::Rng;
use serde_json::Value;

/// One member: its service, its instance, and the command line its process runs.
type Member = (String, u64, String);

/// Version `v` of the stack the reload storm rewrites: some services change
/// at every version, some every other or third, one never; one comes and
/// goes, and one changes how many processes it runs. Members ignore SIGTERM
/// and are killed 250 ms after it, so reloads overlap: each one finds the
/// last still stopping what it replaces.
fn storm_stack(v: u32) -> (String, Vec<Member>) {
    let (db, cache, api, web) = (2000 + v / 3, 3000, 4000 + v / 2, 5000 + v);
    let api_processes = 1 + v % 3;
    let command =
        |n: u32| format!("command: \"trap '' TERM; exec sleep {n}\", stop_timeout: 250ms");
    let mut yaml = format!(
        "services:
  db:
    commands: {{ server: {{ {} }} }}
  cache:
    commands: {{ server: {{ {} }} }}
  api:
    depends_on: [db, cache]
    commands: {{ w: {{ {}, number_of_processes: {api_processes} }} }}
  web:
    depends_on: [api]
    commands: {{ ui: {{ {} }} }}
",
        command(db),
        command(cache),
        command(api),
        command(web)
    );
    let mut members = vec![
        ("db".to_owned(), 0, format!("sleep {db}")),
        ("cache".to_owned(), 0, format!("sleep {cache}")),
        ("web".to_owned(), 0, format!("sleep {web}")),
    ];
    members.extend(
        (0..api_processes).map(|i| ("api".to_owned(), u64::from(i), format!("sleep {api}"))),
    );
    if v % 2 == 1 {
        yaml.push_str(&format!(
            "  extra:\n    depends_on: [db]\n    commands: {{ x: {{ {} }} }}\n",
            command(6000)
        ));
        members.push(("extra".to_owned(), 0, "sleep 6000".to_owned()));
    }
    members.sort();
    (yaml, members)
}

/// The value of `key` in the environment of `pid`.
fn env_of(pid: Pid, key: &str) -> Option<String> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{key}=");
    environ
        .split(|&b| b == 0)
        .find_map(|entry| entry.strip_prefix(prefix.as_bytes()))
        .map(|value| String::from_utf8_lossy(value).into_owned())
}

/// Every member process of the stack as /proc shows it, with its pid, sorted.
fn members_in_proc(stack: &Stack) -> Vec<(Member, Pid)> {
    let mut found: Vec<(Member, Pid)> = stack
        .processes()
        .into_iter()
        .filter_map(|pid| {
            let service = env_of(pid, "ORCH_SERVICE")?;
            let instance = env_of(pid, "ORCH_INSTANCE")?.parse().ok()?;
            Some(((service, instance, cmdline(pid)), pid))
        })
        .collect();
    found.sort();
    found
}

/// Every member in a status report as (service, instance, pid, state), sorted.
fn members_in_status(report: &Value) -> Vec<(String, u64, Option<i64>, String)> {
    let mut found = Vec::new();
    for service in report["services"].as_array().expect("`services` is a list") {
        let name = service["name"].as_str().expect("a service name");
        for member in service["members"].as_array().expect("`members` is a list") {
            found.push((
                name.to_owned(),
                member["instance"].as_u64().expect("an instance"),
                member["pid"].as_i64(),
                member["state"].as_str().expect("a state").to_owned(),
            ));
        }
    }
    found.sort();
    found
}

/// Wait until exactly `expected` runs, one process per member, and
/// `orch status` shows each of them running with the pid /proc shows.
fn wait_converged(orch: &Orch, stack: &Stack, expected: &[Member]) {
    let mut last = String::new();
    let converged = common::run::poll(DEADLINE, || {
        let processes = members_in_proc(stack);
        let report = stack.status_within(DEADLINE);
        let shown = members_in_status(&report);
        let running: Vec<Member> = processes.iter().map(|(m, _)| m.clone()).collect();
        let agreed: Vec<(String, u64, Option<i64>, String)> = processes
            .iter()
            .map(|((service, instance, _), pid)| {
                (
                    service.clone(),
                    *instance,
                    Some(i64::from(pid.as_raw())),
                    "running".to_owned(),
                )
            })
            .collect();
        last = format!("/proc: {processes:?}\nstatus: {shown:?}");
        (running == expected && shown == agreed).then_some(())
    });
    assert!(
        converged.is_some(),
        "waited {DEADLINE:?} for {expected:?} to run alone, as status says;\n{last}\nconsole:\n{}",
        orch.console()
    );
}

#[test]
fn a_reload_storm_ends_with_the_last_file_running_once() {
    let (first, members) = storm_stack(0);
    let stack = Stack::new(&first);
    let mut orch = stack.up(&[]);
    socket(&stack);
    wait_converged(&orch, &stack, &members);

    // 50 SIGHUPs in about a second, the file rewritten (in place, so a
    // reload may read it half written) before every other one.
    let mut version = 0;
    for i in 0..50 {
        if i % 2 == 1 {
            version += 1;
            std::fs::write(stack.path("stack.yaml"), storm_stack(version).0)
                .expect("write stack.yaml");
        }
        orch.signal(Signal::SIGHUP);
        // The pace of the storm, not a wait for anything.
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, last) = storm_stack(version);
    wait_converged(&orch, &stack, &last);
    assert!(orch.count("reload: ") > 1, "{}", orch.console());

    orch.signal(Signal::SIGTERM);
    orch.assert_exit(0);
    stack.wait_all_gone();
}

/// Connect to the control socket.
fn connect(socket: &std::path::Path) -> UnixStream {
    let stream = UnixStream::connect(socket).expect("connect to the control socket");
    stream
        .set_read_timeout(Some(DEADLINE))
        .expect("set a read timeout");
    stream
}

/// Read the one-line answer on `stream`: an error that says `needle`.
fn assert_error(stream: &UnixStream, needle: &str) {
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .expect("read the answer");
    let answer: Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("the answer is not JSON ({e}): {line:?}"));
    assert_eq!(answer["type"], "error", "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.contains(needle)),
        "{answer}"
    );
}

#[test]
fn status_answers_within_a_second_while_the_socket_is_abused() {
    let stack = Stack::new(
        r"
services:
  db:
    commands: { server: { command: exec sleep 1000 } }
  api:
    depends_on: [db]
    commands: { web: { command: exec sleep 1000, number_of_processes: 2 } }
",
    );
    let mut orch = stack.up(&[]);
    orch.wait_line("api.web.1: started");
    let socket = socket(&stack);
    let mut garbage = vec![0u8; 4096];
    seeded("status_answers_within_a_second_while_the_socket_is_abused").fill_bytes(&mut garbage);
    garbage.retain(|&b| b != b'\n');

    // 20 connections that never say a word.
    let idle: Vec<UnixStream> = (0..20).map(|_| connect(&socket)).collect();
    // 1 MB without a newline: orch reads no more than its cap, answers and
    // hangs up, however much the client still means to send.
    let flood = connect(&socket);
    let mut writer = flood.try_clone().expect("clone the stream");
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(&vec![b'x'; 1 << 20]);
    });
    assert_error(&flood, "request too large");
    sender.join().expect("the sender thread");
    // Binary garbage, as a line and as a start that never ends.
    let mut line = connect(&socket);
    line.write_all(&garbage).expect("send garbage");
    line.write_all(b"\n").expect("end the line");
    assert_error(&line, "malformed request");
    let mut endless = connect(&socket);
    endless.write_all(&garbage).expect("send garbage");

    // Meanwhile a client is answered at once.
    let limit = Duration::from_secs(1);
    let out = stack
        .run_within(&["status"], limit)
        .unwrap_or_else(|| panic!("`orch status` did not answer within {limit:?}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.lines().any(|l| l.starts_with("api ")), "{table}");

    // orch stops with every connection still open.
    orch.signal(Signal::SIGTERM);
    orch.assert_exit(0);
    stack.wait_all_gone();
    drop((idle, flood, line, endless));
}
