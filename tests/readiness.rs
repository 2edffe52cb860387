//! What another program cannot fake, and what a reload checks before it
//! changes anything, against a real `orch up`: a listener on a member's
//! port that is not the member's never makes it ready; a reload is checked
//! like `orch up` (held ports, `system_packages`, users) and refused as a
//! whole when a check fails; an invalid file is reported once; an order
//! that means nothing is not a change.

mod common;

use std::net::TcpListener;

use common::client::{client, ok, pid, service, status, up_serving, wait_up, Out};
use common::run::{alive, free_port, Orch, Stack};

/// A server that listens on the port given as its argument once a file
/// named `go` exists in its folder.
const SERVER: &str = r#"
import os, socket, sys, time
while not os.path.exists("go"):
    time.sleep(0.05)
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen()
print("listening", flush=True)
while True:
    server.accept()[0].close()
"#;

/// This test process, as orch names a port's holder: `pid P (name)`.
fn me() -> String {
    let pid = std::process::id();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).expect("read my comm");
    format!("pid {pid} ({})", comm.trim_end())
}

#[test]
fn a_stranger_listening_on_the_port_does_not_make_a_member_ready() {
    let port = free_port();
    let stack = Stack::new(&format!(
        r#"
services:
  db:
    commands:
      server:
        command: [python3, server.py, "${{port}}"]
        port: {port}
        ready: {{ tcp: "${{port}}" }}
  api:
    depends_on: [db]
    commands:
      web:
        command: exec sleep 1000
"#
    ));
    std::fs::write(stack.path("server.py"), SERVER).expect("write server.py");
    let mut orch = up_serving(&stack, &[]);
    // Free when orch checked it; taken before the member binds it.
    let stranger = TcpListener::bind(("127.0.0.1", port)).expect("listen on the port");

    let held = format!("port {port} is held by {}, not by this member", me());
    let table = orch.wait_for("status to name the stranger", || {
        let table = ok(&stack, &["status"]);
        table.contains(&held).then_some(table)
    });
    assert!(
        table
            .lines()
            .any(|l| l == format!("db: db.server is starting: {held}")),
        "{table}"
    );
    let why = ok(&stack, &["why", "api"]);
    let lines: Vec<&str> = why.lines().collect();
    assert_eq!(
        lines[..3],
        [
            "api is down: db is not up".to_owned(),
            format!("db is down: db.server is starting: {held}"),
            format!("  db.server is starting: {held}"),
        ],
        "{why}"
    );
    assert_eq!(orch.count("db.server: ready"), 0, "{}", orch.console());
    assert_eq!(orch.count("api.web: started"), 0, "{}", orch.console());

    // The stranger goes, the member listens: now it is ready.
    drop(stranger);
    std::fs::write(stack.path("go"), "").expect("write go");
    orch.assert_before("db.server: ready", "api.web: started");
    wait_up(&orch, &stack, &["db", "api"]);
    ok(&stack, &["down"]);
    orch.assert_exit(0);
}

/// `api`, ready once it says so, on `port`, with `more` added to its command.
fn one(port: u16, more: &str) -> String {
    format!(
        r"
services:
  api:
    commands:
      web:
        command: echo up; exec sleep 1000
        port: {port}
        ready: {{ log: up }}{more}
  other:
    commands:
      w:
        command: exec sleep 1000
"
    )
}

/// Start [`one`] on a free port and wait until it is up; orch and api's pid.
fn up_one(stack: &Stack) -> (Orch, nix::unistd::Pid) {
    let orch = up_serving(stack, &[]);
    let report = wait_up(&orch, stack, &["api", "other"]);
    (orch, pid(&report, "api"))
}

/// Reload to `text`, which must be refused for `why`; nothing changes.
fn assert_reload_refused(
    stack: &Stack,
    orch: &Orch,
    api: nix::unistd::Pid,
    text: &str,
    why: &str,
) -> Out {
    let before = status(stack);
    std::fs::write(stack.path("stack.yaml"), text).expect("write stack.yaml");
    let out = client(stack, &["reload"]);
    assert_ne!(out.code, 0, "the reload must be refused: {}", out.stdout);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    // A long message is wrapped, its next lines marked with `|`.
    let err = out.err().replace(" | ", " ");
    assert!(err.contains(&format!("reload refused: {why}")), "{err}");
    orch.wait_line(&format!(
        "reload refused: {why}; everything keeps running unchanged"
    ));
    let after = status(stack);
    assert_eq!(pid(&after, "api"), api);
    assert!(alive(api));
    assert_eq!(after["services"], before["services"]);
    assert_eq!(orch.count("reload:"), 0, "{}", orch.console());
    assert_eq!(orch.count("api.web: started"), 1, "{}", orch.console());
    out
}

#[test]
fn a_reload_to_a_port_another_program_holds_is_refused() {
    let (port, taken) = (free_port(), free_port());
    let stack = Stack::new(&one(port, ""));
    let (orch, api) = up_one(&stack);
    let stranger = TcpListener::bind(("127.0.0.1", taken)).expect("listen on the port");

    assert_reload_refused(
        &stack,
        &orch,
        api,
        &one(taken, ""),
        &format!(
            "port {taken}, wanted by api.web, is already held by {}",
            me()
        ),
    );

    // Once the port is free, the same file reloads.
    drop(stranger);
    ok(&stack, &["reload"]);
    orch.wait_line("reload: changed api");
    orch.wait_line("api.web: killed by SIGTERM; starting it again");
    let report = wait_up(&orch, &stack, &["api", "other"]);
    assert_eq!(service(&report, "api")["members"][0]["port"], taken);
}

/// A reload that adds `more` to api's command is refused for `why`, with
/// exit code 2, as `orch up` refuses such a file: nothing was started.
fn a_reload_adding_is_refused(more: &str, why: &str) {
    let port = free_port();
    let stack = Stack::new(&one(port, ""));
    let (orch, api) = up_one(&stack);
    let out = assert_reload_refused(&stack, &orch, api, &one(port, more), why);
    assert_eq!(out.code, 2, "{}", out.err());
}

#[test]
fn a_reload_that_needs_a_missing_program_is_refused() {
    a_reload_adding_is_refused(
        "\n        system_packages: [orch-test-no-such-program]",
        "programs missing from PATH: orch-test-no-such-program (for api.web)",
    );
}

#[test]
fn a_reload_to_a_user_that_cannot_be_used_is_refused() {
    a_reload_adding_is_refused(
        "\n        user: orch-test-no-such-user",
        if nix::unistd::Uid::effective().is_root() {
            "api.web: unknown user `orch-test-no-such-user`"
        } else {
            "api.web runs as another user or group, which needs orch to run as root"
        },
    );
}

#[test]
fn an_invalid_file_on_reload_is_reported_once() {
    let port = free_port();
    let stack = Stack::new(&one(port, ""));
    let (mut orch, api) = up_one(&stack);
    std::fs::write(stack.path("stack.yaml"), one(port, "\n        bogus: 1")).expect("write");

    let check = client(&stack, &["check"]);
    assert_eq!(check.code, 2, "{}", check.stderr);
    let reload = client(&stack, &["reload"]);
    assert_eq!(reload.code, 2, "{}", reload.stderr);
    // The report of `orch check`, as it is: not inside another one.
    assert_eq!(reload.stderr.trim_end(), check.stderr.trim_end());
    assert_eq!(reload.stderr.matches("unknown key `bogus`").count(), 1);
    orch.wait_line("reload: the stack file is not valid; everything keeps running unchanged");
    assert_eq!(pid(&status(&stack), "api"), api);

    ok(&stack, &["down"]);
    orch.assert_exit(0);
    let errors = orch.raw_stderr();
    assert_eq!(errors.matches("unknown key `bogus`").count(), 1, "{errors}");
    assert!(errors.contains(check.stderr.trim()), "{errors}");
}

/// `c` depends on `a` and `b`, in the order given.
fn fan_in(order: &str) -> String {
    format!(
        r"
services:
  a:
    commands:
      x:
        command: exec sleep 1000
  b:
    commands:
      x:
        command: exec sleep 1000
  c:
    depends_on: [{order}]
    commands:
      x:
        command: exec sleep 1000
"
    )
}

#[test]
fn reordering_depends_on_is_not_a_change() {
    let stack = Stack::new(&fan_in("a, b"));
    let mut orch = up_serving(&stack, &[]);
    let before = wait_up(&orch, &stack, &["a", "b", "c"]);
    std::fs::write(stack.path("stack.yaml"), fan_in("b, a")).expect("write stack.yaml");
    ok(&stack, &["reload"]);

    orch.wait_line("reload: nothing changed");
    assert_eq!(status(&stack)["services"], before["services"]);
    ok(&stack, &["down"]);
    orch.assert_exit(0);
    assert_eq!(orch.count("c.x: started"), 1, "{}", orch.console());
    assert_eq!(orch.count("reload: "), 1, "{}", orch.console());
}
