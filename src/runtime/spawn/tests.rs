use super::*;

use std::env;
use std::io::Read;
use std::time::{Duration, Instant};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};

/// Generous: these waits end as soon as their condition holds.
const DEADLINE: Duration = Duration::from_secs(60);
/// Selects the role of the test binary when re-executed by [`run_helper`].
const HELPER_ENV: &str = "ORCH_SPAWN_TEST_HELPER";

fn env_with_path() -> Vec<(String, String)> {
    vec![("PATH".to_owned(), "/usr/local/bin:/usr/bin:/bin".to_owned())]
}

fn start(program: &Program, env: &[(String, String)]) -> Spawned {
    spawn(&SpawnSpec {
        program,
        env,
        cwd: Path::new("/"),
        identity: None,
    })
    .expect("spawn")
}

fn shell(script: &str) -> Spawned {
    start(&Program::Shell(script.to_owned()), &env_with_path())
}

fn spawn_error(program: &Program, cwd: &Path) -> String {
    let env = env_with_path();
    let spec = SpawnSpec {
        program,
        env: &env,
        cwd,
        identity: None,
    };
    spawn(&spec).expect_err("spawn must fail").to_string()
}

/// Reads a pipe to end-of-file (the pipes are blocking).
fn read_all(fd: OwnedFd) -> String {
    let mut text = String::new();
    std::fs::File::from(fd)
        .read_to_string(&mut text)
        .expect("read");
    text
}

/// Waits for one specific child of the test process.
fn wait_child(pid: Pid) -> ExitStatus {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid, writable int for the duration of the call.
        let result = unsafe { nix::libc::waitpid(pid.as_raw(), &raw mut status, 0) };
        if result == -1 && Errno::last() == Errno::EINTR {
            continue;
        }
        assert_eq!(result, pid.as_raw(), "waitpid: {}", Errno::last());
        return ExitStatus::from_wait(status).expect("an exit status");
    }
}

fn wait_until(mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    condition()
}

/// State letter and start time of a process, from `/proc/PID/stat`.
fn proc_state(pid: Pid) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some((fields[0].chars().next()?, fields[19].parse().ok()?))
}

/// Whether the process that had `start_time` is gone (a zombie counts as gone: its
/// new parent, not this test, has to reap it).
fn is_gone(pid: Pid, start_time: u64) -> bool {
    proc_state(pid).is_none_or(|(state, start)| state == 'Z' || start != start_time)
}

fn start_time(pid: Pid) -> u64 {
    proc_state(pid).expect("the process exists").1
}

/// Runs this test binary again, executing only [`helper_process`] in `mode`: for tests
/// that need a process to themselves (one that reaps any child, or changes its signals).
fn assert_helper_succeeds(mode: &str) {
    let tests_module = module_path!()
        .split_once("::")
        .expect("tests live inside a crate")
        .1;
    let output = std::process::Command::new(env::current_exe().expect("test binary"))
        .args([
            &format!("{tests_module}::helper_process"),
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_ENV, mode)
        .output()
        .expect("re-execute the test binary");
    assert!(
        output.status.success(),
        "helper {mode} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Not a test of its own: the body of the re-executed test binary.
#[test]
fn helper_process() {
    let Ok(mode) = env::var(HELPER_ENV) else {
        return;
    };
    match mode.as_str() {
        "reap" => helper_reap(),
        "signals" => helper_signals(),
        other => panic!("unknown helper mode {other}"),
    }
}

fn helper_reap() {
    become_subreaper().expect("become subreaper");
    let exit3 = shell("exit 3").pid;
    let killed = shell("exec sleep 1000").pid;
    signal_group(killed, Signal::SIGKILL).expect("kill");
    let parent = shell("sleep 1000 >/dev/null 2>&1 & echo $!");
    let orphan = Pid::from_raw(read_all(parent.stdout).trim().parse().expect("a pid"));
    kill(orphan, Signal::SIGKILL).expect("kill the orphan");

    let mut statuses = Vec::new();
    let all_reaped = wait_until(|| {
        statuses.extend(reap());
        statuses.len() >= 4
    });
    assert!(all_reaped, "reaped only {statuses:?}");
    statuses.sort_by_key(|(pid, _)| pid.as_raw());
    let killed_status = ExitStatus::Signaled {
        signal: Signal::SIGKILL as i32,
        core_dumped: false,
    };
    let mut expected = vec![
        (exit3, ExitStatus::Code(3)),
        (killed, killed_status),
        (parent.pid, ExitStatus::Code(0)),
        (orphan, killed_status),
    ];
    expected.sort_by_key(|(pid, _)| pid.as_raw());
    assert_eq!(statuses, expected);
    assert!(reap().is_empty());
}

/// A member starts with no blocked signal and SIGPIPE at its default, whatever the
/// thread that starts it blocks or ignores (orch ignores SIGPIPE; the signals it handles
/// have handlers, which an exec resets by itself).
fn helper_signals() {
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: ignoring a signal installs no handler code.
    unsafe { sigaction(Signal::SIGPIPE, &ignore) }.expect("ignore");
    let mut blocked = SigSet::empty();
    blocked.add(Signal::SIGTERM);
    blocked.add(Signal::SIGCHLD);
    blocked.thread_block().expect("block");

    let member = shell("grep -E '^Sig(Blk|Ign):' /proc/self/status");
    let text = read_all(member.stdout);
    assert_eq!(wait_child(member.pid), ExitStatus::Code(0));
    let mask = |name: &str| {
        let line = text.lines().find_map(|line| line.strip_prefix(name));
        u64::from_str_radix(line.expect("mask line").trim(), 16).expect("hex mask")
    };
    assert_eq!(mask("SigBlk:"), 0, "{text}");
    let pipe = 1 << (Signal::SIGPIPE as i32 - 1);
    assert_eq!(mask("SigIgn:") & pipe, 0, "SIGPIPE still ignored: {text}");
}

use nix::sys::signal::kill;

#[test]
fn output_goes_to_pipes() {
    let member = shell("echo out; echo err >&2; echo more");
    assert_eq!(read_all(member.stdout), "out\nmore\n");
    assert_eq!(read_all(member.stderr), "err\n");
    assert_eq!(wait_child(member.pid), ExitStatus::Code(0));
}

#[test]
fn stdin_is_dev_null() {
    let member = shell("cat; readlink /proc/self/fd/0");
    assert_eq!(read_all(member.stdout), "/dev/null\n");
    assert_eq!(wait_child(member.pid), ExitStatus::Code(0));
}

#[test]
fn environment_is_exactly_the_given_one() {
    let mut env = env_with_path();
    env.push(("GREETING".to_owned(), "hello there".to_owned()));
    let program = Program::Argv(vec!["env".to_owned()]);
    let member = start(&program, &env);
    let mut lines: Vec<String> = read_all(member.stdout).lines().map(str::to_owned).collect();
    lines.sort();
    assert_eq!(
        lines,
        ["GREETING=hello there", "PATH=/usr/local/bin:/usr/bin:/bin"]
    );
    assert_eq!(wait_child(member.pid), ExitStatus::Code(0));
}

#[test]
fn argv_runs_without_shell_in_cwd_with_its_own_argv0() {
    let program = Program::Argv(vec![
        "sh".to_owned(),
        "-c".to_owned(),
        "pwd; echo \"$0\" \"$1\"; tr '\\0' ' ' < /proc/$$/cmdline".to_owned(),
        "zero".to_owned(),
        "a b".to_owned(),
    ]);
    let env = env_with_path();
    let member = spawn(&SpawnSpec {
        program: &program,
        env: &env,
        cwd: Path::new("/usr"),
        identity: None,
    })
    .expect("spawn");
    let out = read_all(member.stdout);
    assert!(out.starts_with("/usr\nzero a b\nsh -c "), "{out}");
    assert_eq!(wait_child(member.pid), ExitStatus::Code(0));
}

#[test]
fn member_leads_its_own_process_group() {
    let member = shell("exec sleep 1000");
    assert_eq!(nix::unistd::getpgid(Some(member.pid)), Ok(member.pid));
    assert_ne!(nix::unistd::getpgrp(), member.pid);
    assert!(group_exists(member.pid));
    signal_group(member.pid, Signal::SIGKILL).expect("kill");
    assert_eq!(
        wait_child(member.pid),
        ExitStatus::Signaled {
            signal: Signal::SIGKILL as i32,
            core_dumped: false
        }
    );
    assert!(!group_exists(member.pid));
    assert_eq!(signal_group(member.pid, Signal::SIGTERM), Ok(()));
}

#[test]
fn signal_group_reaches_grandchildren() {
    let member = shell(
        "sleep 1000 >/dev/null 2>&1 & echo $!; sleep 1000 >/dev/null 2>&1 & echo $!; \
         exec >&-; wait",
    );
    let grandchildren: Vec<(Pid, u64)> = read_all(member.stdout)
        .lines()
        .map(|line| {
            let pid = Pid::from_raw(line.parse().expect("a pid"));
            (pid, start_time(pid))
        })
        .collect();
    assert_eq!(grandchildren.len(), 2);
    for (pid, _) in &grandchildren {
        assert_eq!(nix::unistd::getpgid(Some(*pid)), Ok(member.pid));
    }
    signal_group(member.pid, Signal::SIGTERM).expect("signal");
    assert_eq!(
        wait_child(member.pid),
        ExitStatus::Signaled {
            signal: Signal::SIGTERM as i32,
            core_dumped: false
        },
        "the shell dies of SIGTERM"
    );
    for (pid, start) in grandchildren {
        assert!(wait_until(|| is_gone(pid, start)), "{pid} survived");
    }
}

#[test]
fn reap_returns_typed_statuses_including_orphans() {
    assert_helper_succeeds("reap");
}

#[test]
fn member_starts_with_clean_signal_state() {
    assert_helper_succeeds("signals");
}

#[test]
fn missing_program_is_reported() {
    let program = Program::Argv(vec!["orch-no-such-program".to_owned()]);
    assert_eq!(
        spawn_error(&program, Path::new("/")),
        "cannot start `orch-no-such-program`: program not found in PATH \
         (/usr/local/bin:/usr/bin:/bin)"
    );
    let program = Program::Argv(vec!["./bin/orch-missing".to_owned(), "-x".to_owned()]);
    assert_eq!(
        spawn_error(&program, Path::new("/opt")),
        "cannot start `./bin/orch-missing -x`: /opt/./bin/orch-missing does not exist"
    );
}

#[test]
fn non_executable_program_is_reported() {
    let program = Program::Argv(vec!["/etc/passwd".to_owned()]);
    assert_eq!(
        spawn_error(&program, Path::new("/")),
        "cannot start `/etc/passwd`: /etc/passwd is not executable (EACCES: Permission \
         denied)"
    );
    let program = Program::Argv(vec!["/usr".to_owned()]);
    assert_eq!(
        spawn_error(&program, Path::new("/")),
        "cannot start `/usr`: /usr is not executable (EISDIR: Is a directory)"
    );
}

#[test]
fn empty_command_is_reported() {
    assert_eq!(
        spawn_error(&Program::Argv(Vec::new()), Path::new("/")),
        "cannot start ``: the command is empty"
    );
}

#[test]
fn bad_working_directory_is_reported() {
    let program = Program::Shell("true".to_owned());
    assert_eq!(
        spawn_error(&program, Path::new("/orch-no-such-dir")),
        "cannot start `true`: working directory /orch-no-such-dir does not exist"
    );
    assert_eq!(
        spawn_error(&program, Path::new("/etc/passwd")),
        "cannot start `true`: working directory /etc/passwd is not a directory"
    );
}

#[test]
fn an_exec_the_kernel_refuses_is_a_spawn_error() {
    // Executable but in no format the kernel knows: only execve can tell.
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("garbage");
    std::fs::write(&file, "not a program").expect("write");
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let program = Program::Argv(vec![file.display().to_string()]);
    assert_eq!(
        spawn_error(&program, Path::new("/")),
        format!(
            "cannot start `{}`: not an executable format (ENOEXEC)",
            file.display()
        )
    );
}

#[test]
fn missing_interpreter_is_reported() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let script = dir.path().join("script");
    std::fs::write(&script, "#!/orch/no/such/interpreter\n").expect("write script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let program = Program::Argv(vec!["./script".to_owned()]);
    assert_eq!(
        spawn_error(&program, dir.path()),
        format!(
            "cannot start `./script`: {}/./script exists but its interpreter (the `#!` \
             line) or loader is missing",
            dir.path().display()
        )
    );
}

#[test]
fn nul_byte_is_reported() {
    let program = Program::Argv(vec!["sh".to_owned(), "nul\0byte".to_owned()]);
    assert_eq!(
        spawn_error(&program, Path::new("/")),
        "cannot start `sh nul\0byte`: a nul byte in the command, its environment or its folder"
    );
}

#[test]
fn identity_is_resolved_by_name_and_number() {
    let root = User::from_uid(Uid::from_raw(0))
        .expect("passwd")
        .expect("root exists");
    if geteuid().is_root() {
        let identity = resolve_identity(Some(&root.name), None).expect("root");
        assert_eq!((identity.uid, identity.gid), (root.uid, root.gid));
        assert!(identity.groups.contains(&root.gid));
        let numeric = resolve_identity(Some("4242"), Some("4343")).expect("numbers");
        assert_eq!(
            numeric,
            Identity {
                uid: Uid::from_raw(4242),
                gid: Gid::from_raw(4343),
                groups: vec![Gid::from_raw(4343)],
            }
        );
    } else {
        assert!(matches!(
            resolve_identity(Some("0"), Some("0")),
            Err(IdentityError::NotRoot { uid: 0, gid: 0, .. })
        ));
    }
    let me = resolve_identity(None, Some(&getegid().to_string())).expect("own group");
    assert_eq!((me.uid, me.gid), (geteuid(), getegid()));
}

#[test]
fn identity_errors_are_clear() {
    assert_eq!(
        resolve_identity(Some("orch-no-such-user"), None)
            .expect_err("unknown")
            .to_string(),
        "unknown user `orch-no-such-user`"
    );
    assert_eq!(
        resolve_identity(None, Some("orch-no-such-group"))
            .expect_err("unknown")
            .to_string(),
        "unknown group `orch-no-such-group`"
    );
    let unknown_uid = (60_000..65_000)
        .find(|&uid| matches!(User::from_uid(Uid::from_raw(uid)), Ok(None)))
        .expect("a free uid");
    assert_eq!(
        resolve_identity(Some(&unknown_uid.to_string()), None)
            .expect_err("no group")
            .to_string(),
        format!(
            "user {unknown_uid} has no entry in the user database, so its group is \
             unknown; set `group`"
        )
    );
    let not_root = IdentityError::NotRoot {
        current_uid: 1000,
        current_gid: 1000,
        uid: 33,
        gid: 33,
    };
    assert_eq!(
        not_root.to_string(),
        "orch runs as uid 1000 gid 1000 and can only switch to uid 33 gid 33 when run as root"
    );
}

#[test]
fn member_runs_as_the_given_identity() {
    let identity = Identity {
        uid: Uid::from_raw(4242),
        gid: Gid::from_raw(4343),
        groups: vec![Gid::from_raw(4343), Gid::from_raw(4444)],
    };
    let program = Program::Shell("id -u; id -g; id -G".to_owned());
    let env = env_with_path();
    let spec = SpawnSpec {
        program: &program,
        env: &env,
        cwd: Path::new("/"),
        identity: Some(&identity),
    };
    if !geteuid().is_root() {
        let error = spawn(&spec).expect_err("needs root").to_string();
        assert!(error.contains("when run as root"), "{error}");
        return;
    }
    let member = spawn(&spec).expect("spawn");
    assert_eq!(read_all(member.stdout), "4242\n4343\n4343 4444\n");
    assert_eq!(wait_child(member.pid), ExitStatus::Code(0));
}

#[test]
fn exit_status_reads_well() {
    assert_eq!(ExitStatus::Code(3).to_string(), "exited with code 3");
    let killed = ExitStatus::Signaled {
        signal: Signal::SIGKILL as i32,
        core_dumped: false,
    };
    assert_eq!(killed.to_string(), "killed by SIGKILL");
    let realtime = ExitStatus::Signaled {
        signal: nix::libc::SIGRTMIN() + 2,
        core_dumped: true,
    };
    assert_eq!(
        realtime.to_string(),
        format!(
            "killed by signal {} (core dumped)",
            nix::libc::SIGRTMIN() + 2
        )
    );
    assert!(ExitStatus::Code(0).success());
    assert!(!killed.success());
    // Raw statuses as the kernel builds them.
    assert_eq!(ExitStatus::from_wait(3 << 8), Some(ExitStatus::Code(3)));
    assert_eq!(ExitStatus::from_wait(9), Some(killed));
    assert_eq!(
        ExitStatus::from_wait(0x80 | 11),
        Some(ExitStatus::Signaled {
            signal: 11,
            core_dumped: true
        })
    );
    assert_eq!(ExitStatus::from_wait(0x7f | (19 << 8)), None);
}
