//! The shop example (examples/shop) end to end: real PostgreSQL, Redis and
//! nginx servers from Debian's packages and the example's Python API, run by
//! the real `orch` binary the way a user runs it, as root (as CI runs it).
//!
//! One test, in steps: bring the stack up with `orch up stack.yaml docgen` and
//! check the start order; talk to the API through nginx (PostgreSQL and Redis
//! behind it); compare `orch env api --all` with what the API processes really
//! received; `kill -9` PostgreSQL and watch `db` go down, come back and keep
//! its data; SIGTERM orch and check the stop order, the exit code and that no
//! process of the stack is left.
//!
//! The example is copied into a fresh temporary folder (its `.state` left
//! behind), made searchable by the `postgres` account, which must reach it.
//! Its ports are the default `port_range` (8300 and up) when those are free;
//! otherwise the copy gets a `port_range` of free ones.
//!
//! Without the servers (or as a user other than root) the test is skipped,
//! saying why, unless `CI` is set: then it fails. `.ci/run` installs them.
//!
//! Every wait polls a condition against a deadline; nothing sleeps for a fixed
//! time to let something happen.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::{Pid, User};
use serde_json::Value;

use common::run::poll;

const ORCH: &str = env!("CARGO_BIN_EXE_orch");
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/shop");

/// From `orch up` until every service is up (a cold initdb included).
const STARTUP: Duration = Duration::from_secs(90);
/// Any other single condition.
const DEADLINE: Duration = Duration::from_secs(30);
/// After orch has exited, for the last processes to be gone from /proc.
const GONE: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(50);

/// Ports the stack takes from its `port_range`: postgres, redis, two API
/// processes and the nginx port allocated to `webconf.render`, with room to spare.
const PORTS_NEEDED: u16 = 10;
const DEFAULT_PORT_LOW: u16 = 8300;
const DEFAULT_PORT_HIGH: u16 = 8499;

/// Set in orch's environment (so in every member's): one more way to find a
/// process of this test.
const MARK: &str = "ORCH_SHOP_TEST";

#[test]
fn shop_stack_end_to_end() {
    if let Err(missing) = prerequisites() {
        if std::env::var_os("CI").is_some() {
            panic!(
                "the shop end-to-end test cannot run: {missing}.\n\
                 It needs, as root, Debian's postgresql, redis-server, nginx (or nginx-light), \
                 curl and python3; .ci/run installs them with apt-get."
            );
        }
        eprintln!(
            "SKIPPED shop_stack_end_to_end: {missing}. Install postgresql, redis-server, \
             nginx-light, curl and python3 and run as root (set CI to make this a failure)."
        );
        return;
    }

    let work = workdir();
    let dir = work.path().join("shop");
    copy_example(Path::new(EXAMPLE), &dir);
    choose_ports(&dir.join("stack.yaml"));
    let marker = format!("shop-{}-{}", std::process::id(), unique());

    // 1. Up, in dependency order.
    let mut orch = Orch::up(&dir, &marker);
    let status = orch.wait_until("every service is up", STARTUP, |s| {
        services(s).iter().all(|svc| svc["state"] == "up")
    });
    for name in ["db", "cache", "api", "webconf", "web", "docgen"] {
        assert_eq!(
            service(&status, name)["state"],
            "up",
            "service {name} in {status:#}"
        );
    }
    let console = orch.orch_lines();
    for (first, then) in [
        ("db.postgres: ready", "api.app.0: started"),
        ("db.postgres: ready", "api.app.1: started"),
        ("cache.redis: ready", "api.app.0: started"),
        ("cache.redis: ready", "api.app.1: started"),
        ("api.app.0: ready", "webconf.render: started"),
        ("api.app.1: ready", "webconf.render: started"),
        ("webconf.render: completed", "web.nginx: started"),
    ] {
        assert_before(&console, first, then);
    }

    // 2. Through nginx to the API, to PostgreSQL and Redis, and back.
    let web = orch.env("web", false);
    let web_url = web
        .get("WEB_URL")
        .unwrap_or_else(|| panic!("orch env web gave no WEB_URL: {web:?}"))
        .clone();
    let (code, health) = http("GET", &format!("{web_url}/nginx-health"));
    assert_eq!((code, health.trim()), (200, "ok"), "nginx itself");

    let name = format!("teapot-{marker}");
    let (code, body) = http("POST", &format!("{web_url}/items?name={name}"));
    assert_eq!(code, 201, "POST /items: {body}");
    let created = json(&body);
    assert_eq!(
        created["item"]["name"],
        name.as_str(),
        "POST /items: {body}"
    );
    let item_id = created["item"]["id"].clone();
    assert!(item_id.is_u64(), "POST /items gave no id: {body}");

    // nginx alternates between the two API processes: both must answer, and
    // both must see the row in PostgreSQL.
    let mut seen = [false, false];
    for _ in 0..10 {
        let (code, body) = http("GET", &format!("{web_url}/items"));
        assert_eq!(code, 200, "GET /items: {body}");
        let answer = json(&body);
        assert!(
            has_item(&answer, &item_id, &name),
            "GET /items lacks {name}: {body}"
        );
        let instance = answer["instance"].as_u64().expect("an instance number");
        seen[usize::try_from(instance).expect("a small number").min(1)] = true;
        if seen == [true, true] {
            break;
        }
    }
    assert_eq!(
        seen,
        [true, true],
        "nginx should send requests to both API processes"
    );

    let hits = |what: &str| -> u64 {
        let (code, body) = http("GET", &format!("{web_url}/hits"));
        assert_eq!(code, 200, "GET /hits ({what}): {body}");
        json(&body)["hits"]
            .as_u64()
            .unwrap_or_else(|| panic!("GET /hits gave no count: {body}"))
    };
    let first = hits("first");
    let second = hits("second");
    assert_eq!(second, first + 1, "the Redis counter goes up by one a hit");

    // 3. `orch env api --all` is exactly what the API processes received.
    let printed = orch.env("api", true);
    for key in ["DATABASE_URL", "REDIS_URL", "PYTHONUNBUFFERED"] {
        assert!(
            printed.contains_key(key),
            "orch env api --all lacks {key}: {printed:?}"
        );
    }
    let db_port = member(&status, "db", "postgres", 0)["port"].clone();
    let redis_port = member(&status, "cache", "redis", 0)["port"].clone();
    assert_eq!(
        printed["DATABASE_URL"],
        format!("postgres://shop@127.0.0.1:{db_port}/shop")
    );
    assert_eq!(
        printed["REDIS_URL"],
        format!("redis://127.0.0.1:{redis_port}/0")
    );
    for instance in 0..2 {
        let app = member(&status, "api", "app", instance);
        let pid = pid_of(app);
        let cmdline = read_proc(pid, "cmdline").replace('\0', " ");
        assert!(
            cmdline.contains("app.py"),
            "api.app.{instance} (pid {pid}) is not the API: {cmdline}"
        );
        let seen = environ(pid);
        for (key, value) in &printed {
            assert_eq!(
                seen.get(key),
                Some(value),
                "{key} of api.app.{instance} (pid {pid}): orch env api --all printed {value:?}"
            );
        }
        // And the per-process variables that --all leaves out.
        assert_eq!(seen.get("PORT"), Some(&app["port"].to_string()));
        assert_eq!(seen.get("ORCH_INSTANCE"), Some(&instance.to_string()));
        assert_eq!(seen.get("ORCH_SERVICE").map(String::as_str), Some("api"));
    }

    // 4. kill -9 PostgreSQL: db goes down, is respawned, comes back with the data.
    let postgres = pid_of(member(&status, "db", "postgres", 0));
    assert_eq!(read_proc(postgres, "comm").trim(), "postgres");
    kill(Pid::from_raw(postgres), Signal::SIGKILL).expect("kill -9 the postmaster");
    orch.wait_until_fast("db is down after kill -9", DEADLINE, |s| {
        service(s, "db")["state"] == "down"
    });
    let status = orch.wait_until("db is up again", DEADLINE, |s| {
        let pg = member(s, "db", "postgres", 0);
        service(s, "db")["state"] == "up"
            && pg["state"] == "running"
            && pg["restarts"].as_u64() >= Some(1)
            && pg["pid"].as_i64().is_some_and(|p| p != i64::from(postgres))
    });
    let respawned = member(&status, "db", "postgres", 0);
    assert!(respawned["restarts"].as_u64() >= Some(1), "{respawned}");
    assert_before(
        &orch.orch_lines(),
        "db.postgres: killed by SIGKILL",
        "db.postgres: ready#2",
    );
    // The API's pooled connections to the old server fail once and are
    // replaced; the committed row must be there.
    poll(DEADLINE, || {
        let (code, body) = http("GET", &format!("{web_url}/items"));
        (code == 200 && has_item(&json(&body), &item_id, &name)).then_some(())
    })
    .unwrap_or_else(|| {
        let (code, body) = http("GET", &format!("{web_url}/items"));
        panic!("after PostgreSQL's crash, {name} is gone: GET /items: {code} {body}")
    });

    // 5. SIGTERM to orch: everything stops, dependents first, and exits 0.
    let exit = orch.terminate();
    let console = orch.orch_lines();
    assert!(
        exit.success(),
        "orch exited with {exit} after SIGTERM\n{}",
        console.join("\n")
    );
    let stopping = console
        .iter()
        .position(|l| l == "stopping the stack")
        .expect("orch says it is stopping the stack");
    // (service, line index) of each `SERVICE.COMMAND[.N]: stopped (...)` line.
    let stopped: Vec<(String, usize)> = console[stopping..]
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let (label, text) = l.split_once(": ")?;
            text.starts_with("stopped").then(|| {
                let service = label.split('.').next().unwrap_or(label);
                (service.to_owned(), stopping + i)
            })
        })
        .collect();
    let order: Vec<&str> = stopped.iter().map(|(s, _)| s.as_str()).collect();
    let span = |name: &str| {
        let at: Vec<usize> = stopped
            .iter()
            .filter(|(s, _)| s == name)
            .map(|&(_, i)| i)
            .collect();
        assert!(
            !at.is_empty(),
            "no `{name}...: stopped` line; stopped lines by service: {order:?}"
        );
        (at[0], at[at.len() - 1])
    };
    let (web_first, web_last) = span("web");
    let (api_first, api_last) = span("api");
    let (cache_first, _) = span("cache");
    let (db_first, _) = span("db");
    assert_eq!(
        stopped.iter().filter(|(s, _)| s == "api").count(),
        2,
        "both API processes stop: {order:?}"
    );
    let _ = web_first;
    // Each service stops only once everything that depends on it has stopped:
    // web before api, api before cache and db. cache and db do not depend on
    // each other, and orch signals them in the same step (cache first, as the
    // reverse of the file order), so which of the two finishes first is a race
    // between Redis and PostgreSQL; it is not asserted.
    assert!(web_last < api_first, "web stops before api: {order:?}");
    assert!(api_last < cache_first, "api stops before cache: {order:?}");
    assert!(api_last < db_first, "api stops before db: {order:?}");
    eprintln!("stop order: {order:?}");

    // 6. Nothing of the stack is left.
    let left = poll(GONE, || {
        let left = stack_processes(&dir, &marker);
        left.is_empty().then_some(())
    });
    if left.is_none() {
        panic!(
            "processes of the stack are left after orch exited:\n{}",
            stack_processes(&dir, &marker).join("\n")
        );
    }
}

// ---------------------------------------------------------------- orch

/// A running `orch up`, its console collected by reader threads. Dropping it
/// (a failed assertion) stops orch and kills whatever of the stack is left.
struct Orch {
    child: Child,
    dir: PathBuf,
    marker: String,
    lines: Arc<Mutex<Vec<String>>>,
    open_streams: Arc<AtomicUsize>,
    exit: Option<ExitStatus>,
}

impl Orch {
    fn up(dir: &Path, marker: &str) -> Orch {
        let mut child = Command::new(ORCH)
            .args(["up", "stack.yaml", "docgen"])
            .current_dir(dir)
            .env("PATH", search_path())
            .env("NO_COLOR", "1")
            .env(MARK, marker)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start orch up");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let open_streams = Arc::new(AtomicUsize::new(2));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        drain(stdout, "", &lines, &open_streams);
        drain(stderr, "stderr: ", &lines, &open_streams);
        Orch {
            child,
            dir: dir.to_owned(),
            marker: marker.to_owned(),
            lines,
            open_streams,
            exit: None,
        }
    }

    /// Every console line so far, as printed.
    fn console(&self) -> Vec<String> {
        self.lines.lock().expect("console lock").clone()
    }

    /// orch's own lines (`orch | TEXT`), as TEXT.
    fn orch_lines(&self) -> Vec<String> {
        self.console()
            .iter()
            .filter_map(|l| {
                let (who, text) = l.split_once(" | ")?;
                (who.trim_end() == "orch").then(|| text.to_owned())
            })
            .collect()
    }

    fn console_tail(&self) -> String {
        let lines = self.console();
        let from = lines.len().saturating_sub(80);
        lines[from..].join("\n")
    }

    fn orch_cmd(&self, args: &[&str]) -> Output {
        Command::new(ORCH)
            .args(args)
            .current_dir(&self.dir)
            .env("PATH", search_path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .expect("run orch")
    }

    /// `orch -f stack.yaml status --json`, if it answers.
    fn status(&self) -> Option<Value> {
        let out = self.orch_cmd(&["-f", "stack.yaml", "status", "--json"]);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// `orch env SERVICE [--all] -f stack.yaml`, as a map.
    fn env(&self, service: &str, all: bool) -> BTreeMap<String, String> {
        let mut args = vec!["env", service];
        if all {
            args.push("--all");
        }
        args.extend(["-f", "stack.yaml"]);
        let out = self.orch_cmd(&args);
        assert!(
            out.status.success(),
            "orch {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).expect("UTF-8 from orch env");
        text.lines()
            .map(|l| {
                let (k, v) = l
                    .split_once('=')
                    .unwrap_or_else(|| panic!("orch env printed a line without '=': {l:?}"));
                (k.to_owned(), v.to_owned())
            })
            .collect()
    }

    fn wait_until(&mut self, what: &str, limit: Duration, ok: impl Fn(&Value) -> bool) -> Value {
        self.wait(what, limit, POLL, ok)
    }

    /// As `wait_until`, without pausing between looks: for a state that may
    /// last only a few hundred milliseconds.
    fn wait_until_fast(
        &mut self,
        what: &str,
        limit: Duration,
        ok: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait(what, limit, Duration::ZERO, ok)
    }

    fn wait(
        &mut self,
        what: &str,
        limit: Duration,
        pause: Duration,
        ok: impl Fn(&Value) -> bool,
    ) -> Value {
        let end = Instant::now() + limit;
        let mut last = None;
        loop {
            if let Some(exit) = self.child.try_wait().expect("wait for orch") {
                self.exit = Some(exit);
                panic!(
                    "orch exited ({exit}) while waiting until {what}; console:\n{}",
                    self.console_tail()
                );
            }
            if let Some(status) = self.status() {
                if ok(&status) {
                    return status;
                }
                last = Some(status);
            }
            if Instant::now() >= end {
                panic!(
                    "not within {limit:?}: {what}\nlast status: {last:#?}\nconsole:\n{}",
                    self.console_tail()
                );
            }
            std::thread::sleep(pause);
        }
    }

    /// SIGTERM orch and wait for it to exit (and its console to close).
    fn terminate(&mut self) -> ExitStatus {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("a pid"));
        kill(pid, Signal::SIGTERM).expect("SIGTERM orch");
        // db's stop_timeout is 30s; give orch a little more.
        let limit = Duration::from_secs(45);
        let exit =
            poll(limit, || self.child.try_wait().expect("wait for orch")).unwrap_or_else(|| {
                panic!(
                    "orch has not exited {limit:?} after SIGTERM; console:\n{}",
                    self.console_tail()
                )
            });
        self.exit = Some(exit);
        // Its console closes with it, unless a process it left holds it open.
        if poll(GONE, || {
            (self.open_streams.load(Ordering::SeqCst) == 0).then_some(())
        })
        .is_none()
        {
            panic!(
                "orch's stdout/stderr stay open after it exited: a process holds them\n{}",
                stack_processes(&self.dir, &self.marker).join("\n")
            );
        }
        exit
    }
}

impl Drop for Orch {
    fn drop(&mut self) {
        if self.exit.is_none() {
            if let Ok(None) = self.child.try_wait() {
                let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(0));
                let _ = kill(pid, Signal::SIGTERM);
                let stopped = poll(Duration::from_secs(40), || {
                    self.child.try_wait().ok().flatten()
                });
                if stopped.is_none() {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                }
            }
        }
        // Whatever is left (a failed test): kill it, so the temporary folder
        // can go and the ports are free for the next run.
        let _ = poll(GONE, || {
            let left = stack_pids(&self.dir, &self.marker);
            for &pid in &left {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            left.is_empty().then_some(())
        });
        if std::thread::panicking() {
            eprintln!(
                "--- console of orch up (last lines) ---\n{}",
                self.console_tail()
            );
        }
    }
}

/// Read `stream` line by line into `lines` (and echo it for a failing test's
/// output) until it closes.
fn drain(
    stream: impl Read + Send + 'static,
    tag: &'static str,
    lines: &Arc<Mutex<Vec<String>>>,
    open: &Arc<AtomicUsize>,
) {
    let lines = Arc::clone(lines);
    let open = Arc::clone(open);
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = format!("{tag}{}", line.trim_end_matches(['\n', '\r']));
                    eprintln!("{line}");
                    lines.lock().expect("console lock").push(line);
                }
            }
        }
        open.fetch_sub(1, Ordering::SeqCst);
    });
}

// ---------------------------------------------------------------- status

fn services(status: &Value) -> &[Value] {
    status["services"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_else(|| panic!("status without services: {status}"))
}

fn service<'a>(status: &'a Value, name: &str) -> &'a Value {
    services(status)
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no service {name} in {status}"))
}

fn member<'a>(status: &'a Value, svc: &str, command: &str, instance: u64) -> &'a Value {
    service(status, svc)["members"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["command"] == command && m["instance"].as_u64() == Some(instance))
        .unwrap_or_else(|| panic!("no member {svc}.{command}.{instance} in {status}"))
}

fn pid_of(member: &Value) -> i32 {
    member["pid"]
        .as_i64()
        .and_then(|p| i32::try_from(p).ok())
        .unwrap_or_else(|| panic!("member without a pid: {member}"))
}

/// `first` appears among orch's lines before `then`. `TEXT#N` means the N-th
/// line that starts with TEXT; plain TEXT, the first.
fn assert_before(lines: &[String], first: &str, then: &str) {
    let find = |what: &str| {
        let (text, nth) = match what.rsplit_once('#') {
            Some((text, n)) => (text, n.parse::<usize>().expect("a number after #")),
            None => (what, 1),
        };
        lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.starts_with(text))
            .nth(nth - 1)
            .map(|(i, _)| i)
            .unwrap_or_else(|| panic!("orch never said {what:?}:\n{}", lines.join("\n")))
    };
    let (a, b) = (find(first), find(then));
    assert!(
        a < b,
        "orch said {then:?} (line {b}) before {first:?} (line {a}):\n{}",
        lines.join("\n")
    );
}

// ---------------------------------------------------------------- HTTP

/// `curl -X METHOD URL`: the status code and the body.
fn http(method: &str, url: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-X", method])
        .args(["-o", "-", "-w", "\n%{http_code}", url])
        .stdin(Stdio::null())
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    let code = code.trim().parse().unwrap_or(0);
    if code == 0 {
        return (0, String::from_utf8_lossy(&out.stderr).into_owned());
    }
    (code, body.to_owned())
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn has_item(answer: &Value, id: &Value, name: &str) -> bool {
    answer["items"]
        .as_array()
        .is_some_and(|items| items.iter().any(|i| &i["id"] == id && i["name"] == name))
}

// ---------------------------------------------------------------- processes

fn read_proc(pid: i32, what: &str) -> String {
    let bytes = std::fs::read(format!("/proc/{pid}/{what}"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/{what}: {e}"));
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A process's environment, from /proc/PID/environ.
fn environ(pid: i32) -> BTreeMap<String, String> {
    read_proc(pid, "environ")
        .split('\0')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Live processes (zombies aside) of this test's stack: working folder or
/// command line under `dir`, or `MARK=marker` in the environment.
fn stack_pids(dir: &Path, marker: &str) -> Vec<i32> {
    let me = std::process::id();
    let dir_text = dir.to_string_lossy().into_owned();
    let mark = format!("{MARK}={marker}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| u32::try_from(pid).ok() != Some(me))
        .filter(|&pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // The state follows the command name in parentheses.
            let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
            if state.flatten().is_none_or(|c| c == 'Z' || c == 'X') {
                return false;
            }
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            cwd.is_some_and(|c| c.starts_with(dir))
                || String::from_utf8_lossy(&cmdline).contains(&dir_text)
                || env.split(|&b| b == 0).any(|kv| kv == mark.as_bytes())
        })
        .collect()
}

/// `pid: command line` of each process of the stack still alive.
fn stack_processes(dir: &Path, marker: &str) -> Vec<String> {
    stack_pids(dir, marker)
        .into_iter()
        .map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            format!("  {pid}: {}", cmdline.trim_end())
        })
        .collect()
}

// ---------------------------------------------------------------- setting up

fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// PATH for orch and its members: the test's, plus the sbin folders where
/// Debian puts nginx, should they be missing from it.
fn search_path() -> OsString {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for extra in [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ] {
        if !dirs.iter().any(|d| d == Path::new(extra)) {
            dirs.push(PathBuf::from(extra));
        }
    }
    std::env::join_paths(dirs).expect("a valid PATH")
}

fn on_path(program: &str) -> bool {
    std::env::split_paths(&search_path()).any(|d| {
        std::fs::metadata(d.join(program))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// What the stack needs of this machine, or what is missing.
fn prerequisites() -> Result<(), String> {
    let mut missing = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        missing.push("root (the stack runs PostgreSQL as the postgres account)".to_owned());
    }
    // bin/pg looks in /usr/lib/postgresql/*/bin, then on PATH.
    let pg_bindirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    for program in ["postgres", "initdb"] {
        if !pg_bindirs.iter().any(|d| d.join(program).is_file()) && !on_path(program) {
            missing.push(format!("{program} (package postgresql)"));
        }
    }
    for (program, package) in [
        ("pg_isready", "postgresql-client"),
        ("redis-server", "redis-server"),
        ("redis-cli", "redis-tools"),
        ("nginx", "nginx-light or nginx"),
        ("python3", "python3"),
        ("curl", "curl"),
        ("setpriv", "util-linux"),
    ] {
        if !on_path(program) {
            missing.push(format!("{program} (package {package})"));
        }
    }
    for account in ["postgres", "www-data"] {
        if !matches!(User::from_name(account), Ok(Some(_))) {
            missing.push(format!("the {account} account"));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("missing {}", missing.join(", ")))
    }
}

/// A temporary folder that the `postgres` account can reach: mode 755, and
/// every folder above it searchable by others. The system's temporary folder
/// first, then Cargo's own under target/.
fn workdir() -> tempfile::TempDir {
    let bases = [
        std::env::temp_dir(),
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")),
    ];
    let mut refused = Vec::new();
    for base in bases {
        let Ok(dir) = tempfile::Builder::new()
            .prefix("orch-shop-")
            .tempdir_in(&base)
        else {
            refused.push(format!("{}: cannot create a folder there", base.display()));
            continue;
        };
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod 755 the temporary folder");
        let path = dir
            .path()
            .canonicalize()
            .expect("canonical temporary folder");
        let closed: Vec<&Path> = path
            .ancestors()
            .filter(|a| std::fs::metadata(a).map_or(true, |m| m.permissions().mode() & 0o001 == 0))
            .collect();
        if closed.is_empty() {
            return dir;
        }
        refused.push(format!(
            "{}: not searchable by others (o+x): {closed:?}",
            path.display()
        ));
    }
    panic!(
        "no temporary folder the postgres account can reach:\n{}",
        refused.join("\n")
    );
}

/// Copy the example, without its run-time state (`.state`, `.orch`), into
/// `to`; folders 755, files with their modes.
fn copy_example(from: &Path, to: &Path) {
    fn copy(from: &Path, to: &Path, top: bool) {
        std::fs::create_dir(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755)).expect("chmod 755");
        for entry in std::fs::read_dir(from).expect("read the example") {
            let entry = entry.expect("a folder entry");
            let name = entry.file_name();
            if top && (name == ".state" || name == ".orch") {
                continue;
            }
            let kind = entry.file_type().expect("a file type");
            if kind.is_dir() {
                copy(&entry.path(), &to.join(&name), false);
            } else if kind.is_file() {
                std::fs::copy(entry.path(), to.join(&name)).expect("copy a file of the example");
            }
        }
    }
    copy(from, to, true);
    let state = to.join(".state");
    std::fs::create_dir(&state).expect("mkdir .state");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).expect("chmod 755");
}

fn ports_free(low: u16, count: u16) -> bool {
    (low..low + count).all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok())
}

/// Keep the default port range when its first ports are free; otherwise give
/// the stack a range of free ones (say, an instance of the example running
/// beside the test).
fn choose_ports(stack_yaml: &Path) {
    if ports_free(DEFAULT_PORT_LOW, PORTS_NEEDED) {
        return;
    }
    let low = (DEFAULT_PORT_LOW + PORTS_NEEDED..=DEFAULT_PORT_HIGH - PORTS_NEEDED + 1)
        .step_by(usize::from(PORTS_NEEDED))
        .find(|&low| ports_free(low, PORTS_NEEDED))
        .unwrap_or_else(|| {
            panic!("no {PORTS_NEEDED} free ports in {DEFAULT_PORT_LOW}-{DEFAULT_PORT_HIGH}")
        });
    let high = low + PORTS_NEEDED - 1;
    let text = std::fs::read_to_string(stack_yaml).expect("read stack.yaml");
    assert!(
        !text.contains("\nport_range:"),
        "the example sets port_range itself; update choose_ports"
    );
    let text = text.replacen(
        "\nservices:",
        &format!("\nport_range: {low}-{high}\n\nservices:"),
        1,
    );
    std::fs::write(stack_yaml, text).expect("write stack.yaml");
    eprintln!("ports {DEFAULT_PORT_LOW}+ are taken: the stack uses port_range {low}-{high}");
}
