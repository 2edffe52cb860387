//! Starting member processes, signalling their process groups and reaping them.
//!
//! Every member runs as the leader of its own process group, with its stdout and stderr
//! connected to pipes whose read ends orch keeps. The child asks the kernel for SIGKILL
//! when orch dies (`PR_SET_PDEATHSIG`), starts with a clean signal mask and default signal
//! dispositions, and switches user and group when orch runs as root.
//!
//! orch never waits for a specific child: it becomes a child subreaper and collects every
//! exit with [`reap`], which also reaps orphaned grandchildren. Nothing else in the process
//! may wait for children (no `Command::status`/`output`/`wait`, no `tokio::process`), or it
//! would race with [`reap`] for the exit statuses.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::libc;
use nix::sys::prctl;
use nix::sys::signal::{killpg, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::unistd::{
    access, getegid, geteuid, getgrouplist, getpid, pipe2, AccessFlags, Gid, Group, Pid, Uid, User,
};

use crate::model::Program;

/// Interpreter for [`Program::Shell`] scripts.
const SHELL: &str = "/bin/sh";

/// Search path used when the environment has no `PATH`, as `execvp` does.
const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// Signals orch handles or ignores; a member gets their default dispositions back.
const RESET_SIGNALS: [Signal; 5] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGCHLD,
    Signal::SIGPIPE,
];

/// The user and groups a member runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User id set with `setuid`.
    pub uid: Uid,
    /// Primary group id set with `setgid`.
    pub gid: Gid,
    /// Supplementary groups set with `setgroups`, resolved before spawning because the
    /// group database cannot be read safely between `fork` and `exec`.
    pub groups: Vec<Gid>,
}

/// Everything needed to start one member process.
#[derive(Debug, Clone, Copy)]
pub struct SpawnSpec<'a> {
    /// What to run.
    pub program: &'a Program,
    /// The complete environment; nothing is inherited from orch.
    pub env: &'a [(String, String)],
    /// Working directory; relative program paths and `PATH` entries resolve against it.
    pub cwd: &'a Path,
    /// Who to run as; `None` keeps orch's own identity.
    pub identity: Option<&'a Identity>,
    /// Connect stdin to `/dev/null` instead of orch's stdin. A member reading orch's
    /// terminal is stopped by SIGTTIN, since it is not in the foreground process group.
    pub stdin_null: bool,
}

/// A started member: its pid, which is also its process group id, and the read ends of
/// its output pipes.
#[derive(Debug)]
pub struct Spawned {
    /// Process id and process group id of the member.
    pub pid: Pid,
    /// Read end of the member's stdout pipe: close-on-exec and non-blocking, ready for
    /// `tokio::net::unix::pipe::Receiver::from_owned_fd`.
    pub stdout: OwnedFd,
    /// Read end of the member's stderr pipe, set up like `stdout`.
    pub stderr: OwnedFd,
}

/// A member that could not be started: which command, and why.
#[derive(Debug, thiserror::Error)]
#[error("cannot start `{program}`: {reason}")]
pub struct SpawnError {
    /// The command as written, for the message.
    pub program: String,
    /// Why it could not start.
    pub reason: SpawnFailure,
}

/// Why a member could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnFailure {
    /// The argument vector is empty or its program name is.
    #[error("the command is empty")]
    EmptyCommand,
    /// No executable of that name in any `PATH` directory.
    #[error("program not found in PATH ({search_path})")]
    NotFound {
        /// The `PATH` that was searched.
        search_path: String,
    },
    /// A program given as a path that does not exist.
    #[error("{} does not exist", path.display())]
    NoSuchFile {
        /// The resolved path.
        path: PathBuf,
    },
    /// The program exists but cannot be executed.
    #[error("{} is not executable ({errno})", path.display())]
    NotExecutable {
        /// The resolved path.
        path: PathBuf,
        /// Why, e.g. `EACCES` or `EISDIR`.
        errno: Errno,
    },
    /// The working directory does not exist.
    #[error("working directory {} does not exist", cwd.display())]
    CwdMissing {
        /// The working directory asked for.
        cwd: PathBuf,
    },
    /// The working directory exists but is not a directory.
    #[error("working directory {} is not a directory", cwd.display())]
    CwdNotDirectory {
        /// The working directory asked for.
        cwd: PathBuf,
    },
    /// The working directory cannot be inspected.
    #[error("working directory {}: {error}", cwd.display())]
    CwdUnusable {
        /// The working directory asked for.
        cwd: PathBuf,
        /// What went wrong.
        error: io::Error,
    },
    /// A different user or group was asked for while orch does not run as root.
    #[error(transparent)]
    Identity(IdentityError),
    /// The output pipes could not be created (usually out of file descriptors).
    #[error("cannot create an output pipe: {0}")]
    Pipe(Errno),
    /// The program exists but the kernel found no interpreter (`#!` line) or loader for it.
    #[error("{} exists but its interpreter (the `#!` line) or loader is missing", path.display())]
    MissingInterpreter {
        /// The resolved path.
        path: PathBuf,
    },
    /// `fork`, the child's setup or `exec` failed with this errno.
    #[error("{0}")]
    Exec(Errno),
    /// The arguments or the environment cannot be passed to `exec`, e.g. a NUL byte.
    #[error("{0}")]
    InvalidInput(io::Error),
}

/// A `user`/`group` setting that cannot be applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    /// No such user in the user database.
    #[error("unknown user `{0}`")]
    UnknownUser(String),
    /// No such group in the group database.
    #[error("unknown group `{0}`")]
    UnknownGroup(String),
    /// A numeric user without a user database entry, and no group given.
    #[error("user {0} has no entry in the user database, so its group is unknown; set `group`")]
    NoPrimaryGroup(u32),
    /// The user or group database could not be read.
    #[error("cannot look up `{name}`: {errno}")]
    Lookup {
        /// The user or group name.
        name: String,
        /// The error from the lookup.
        errno: Errno,
    },
    /// orch is not root, so it can only run members as itself.
    #[error(
        "orch runs as uid {current_uid} gid {current_gid} and can only switch to uid {uid} \
         gid {gid} when run as root"
    )]
    NotRoot {
        /// orch's effective uid.
        current_uid: u32,
        /// orch's effective gid.
        current_gid: u32,
        /// The uid asked for.
        uid: u32,
        /// The gid asked for.
        gid: u32,
    },
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this code (0 to 255).
    Code(i32),
    /// It was killed by a signal.
    Signaled {
        /// The signal number; kept raw because real-time signals have no [`Signal`] name.
        signal: i32,
        /// The kernel wrote a core dump.
        core_dumped: bool,
    },
}

impl ExitStatus {
    /// Decodes a `wait` status; `None` for a stop or continue report.
    fn from_wait(status: i32) -> Option<Self> {
        if libc::WIFEXITED(status) {
            Some(Self::Code(libc::WEXITSTATUS(status)))
        } else if libc::WIFSIGNALED(status) {
            Some(Self::Signaled {
                signal: libc::WTERMSIG(status),
                core_dumped: libc::WCOREDUMP(status),
            })
        } else {
            None
        }
    }

    /// Whether the process exited with code 0.
    #[must_use]
    pub fn success(self) -> bool {
        self == Self::Code(0)
    }

    /// The signal that killed the process, when it has a name.
    #[must_use]
    pub fn signal(self) -> Option<Signal> {
        match self {
            Self::Code(_) => None,
            Self::Signaled { signal, .. } => Signal::try_from(signal).ok(),
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Code(code) => write!(f, "exited with code {code}"),
            Self::Signaled {
                signal,
                core_dumped,
            } => {
                match Signal::try_from(signal) {
                    Ok(name) => write!(f, "killed by {name}")?,
                    Err(_) => write!(f, "killed by signal {signal}")?,
                }
                if core_dumped {
                    f.write_str(" (core dumped)")?;
                }
                Ok(())
            }
        }
    }
}

/// Starts a member in its own process group with piped stdout and stderr.
///
/// The program and working directory are checked first, so the common mistakes get a
/// precise error; whatever still fails in the child (e.g. `EACCES` from `exec`) comes
/// back as [`SpawnFailure::Exec`] with its errno.
///
/// The member receives SIGKILL when the *thread* that spawned it exits (that is how
/// `PR_SET_PDEATHSIG` works), so call this from a thread that lives as long as orch,
/// never from a short-lived one such as a `spawn_blocking` worker.
///
/// # Errors
/// A [`SpawnError`] naming the program and the reason.
pub fn spawn(spec: &SpawnSpec<'_>) -> Result<Spawned, SpawnError> {
    let fail = |reason| SpawnError {
        program: spec.program.to_string(),
        reason,
    };
    check_cwd(spec.cwd).map_err(fail)?;
    let (path, argv): (PathBuf, Vec<&str>) = match spec.program {
        Program::Shell(script) => (PathBuf::from(SHELL), vec![SHELL, "-c", script]),
        Program::Argv(argv) => {
            let name = argv
                .first()
                .filter(|name| !name.is_empty())
                .ok_or_else(|| fail(SpawnFailure::EmptyCommand))?;
            let path = find_program(name, spec.env, spec.cwd).map_err(fail)?;
            check_interpreter(&path).map_err(fail)?;
            (path, argv.iter().map(String::as_str).collect())
        }
    };
    let switch =
        switch_identity(spec.identity).map_err(|error| fail(SpawnFailure::Identity(error)))?;
    let (stdout, stdout_child) = output_pipe().map_err(|errno| fail(SpawnFailure::Pipe(errno)))?;
    let (stderr, stderr_child) = output_pipe().map_err(|errno| fail(SpawnFailure::Pipe(errno)))?;
    let stdin = if spec.stdin_null {
        Some(
            nix::fcntl::open(
                "/dev/null",
                OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|errno| fail(SpawnFailure::Pipe(errno)))?,
        )
    } else {
        None
    };
    let nul = || {
        fail(SpawnFailure::InvalidInput(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a nul byte in the command, its environment or its folder",
        )))
    };
    let c = |s: &[u8]| CString::new(s).map_err(|_| nul());
    let path_c = c(path.as_os_str().as_encoded_bytes())?;
    let cwd_c = c(spec.cwd.as_os_str().as_encoded_bytes())?;
    let argv_c = argv
        .iter()
        .map(|a| c(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let env_c = spec
        .env
        .iter()
        .map(|(k, v)| c(format!("{k}={v}").as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let child = ChildSetup {
        path: path_c.as_ptr(),
        argv: null_terminated(&argv_c),
        envp: null_terminated(&env_c),
        cwd: cwd_c.as_ptr(),
        stdin: stdin.as_ref().map(AsRawFd::as_raw_fd),
        stdout: stdout_child.as_raw_fd(),
        stderr: stderr_child.as_raw_fd(),
        parent: getpid().as_raw(),
        failure: format!("orch: cannot start `{}`: ", spec.program).into_bytes(),
        identity: switch.as_ref().map(|id| {
            (
                id.uid.as_raw(),
                id.gid.as_raw(),
                id.groups.iter().map(|g| g.as_raw()).collect(),
            )
        }),
    };
    let launch = Launch::new(child, (path_c, cwd_c, argv_c, env_c))
        .map_err(|errno| fail(SpawnFailure::Pipe(errno)))?;
    let pid = start_child(launch).map_err(|errno| fail(SpawnFailure::Exec(errno)))?;
    // Closing orch's copies of the write ends lets the read ends see end-of-file once
    // the member and everything it started have closed theirs.
    drop((stdout_child, stderr_child, stdin));
    Ok(Spawned {
        pid,
        stdout,
        stderr,
    })
}

/// Everything the child needs, prepared before it exists: it may only make
/// system calls on this data.
struct ChildSetup {
    path: *const libc::c_char,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    cwd: *const libc::c_char,
    stdin: Option<i32>,
    stdout: i32,
    stderr: i32,
    parent: libc::pid_t,
    identity: Option<(libc::uid_t, libc::gid_t, Vec<libc::gid_t>)>,
    /// Written to the member's stderr before the reason, if the exec fails.
    failure: Vec<u8>,
}

fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// A child being started: what it reads until it has called `execve`, and
/// the stack it runs on. It shares orch's memory until then, so all of it is
/// kept alive until the child's end of `report` closes (at its exec or exit).
struct Launch {
    setup: ChildSetup,
    _strings: (CString, CString, Vec<CString>, Vec<CString>),
    stack: Box<[std::mem::MaybeUninit<u8>]>,
    /// Read end of a close-on-exec pipe the child holds: end-of-file once it has exec'd.
    report: OwnedFd,
    report_child: Option<OwnedFd>,
}

/// The child's stack: it makes a handful of system calls and nothing else.
const CHILD_STACK: usize = 16 * 1024;

impl Launch {
    fn new(
        setup: ChildSetup,
        strings: (CString, CString, Vec<CString>, Vec<CString>),
    ) -> Result<Box<Launch>, Errno> {
        let (report, report_child) = pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        Ok(Box::new(Launch {
            setup,
            _strings: strings,
            stack: Box::new_uninit_slice(CHILD_STACK),
            report,
            report_child: Some(report_child),
        }))
    }

    /// Whether the child has exec'd (or exited), so its launch can be freed.
    fn done(&self) -> bool {
        let mut byte = [0u8; 1];
        !matches!(
            nix::unistd::read(self.report.as_raw_fd(), &mut byte),
            Err(Errno::EAGAIN)
        )
    }
}

impl Drop for Launch {
    /// Never free what a child may still be reading: wait for its exec (a
    /// matter of microseconds) if it has not happened yet.
    fn drop(&mut self) {
        while !self.done() {
            let mut fds = [nix::poll::PollFd::new(
                self.report.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE);
        }
    }
}

thread_local! {
    /// Launches whose children may not have exec'd yet, oldest first.
    static LAUNCHING: std::cell::RefCell<std::collections::VecDeque<Box<Launch>>> =
        const { std::cell::RefCell::new(std::collections::VecDeque::new()) };
}

/// Free the launches of children that have exec'd, oldest first, up to the
/// first that has not (children exec roughly in the order they were
/// started, so this stays cheap during a burst); how many are left.
pub fn settle() -> usize {
    LAUNCHING.with_borrow_mut(|launching| {
        while launching.front().is_some_and(|launch| launch.done()) {
            launching.pop_front();
        }
        launching.len()
    })
}

/// Start the child with `clone(CLONE_VM)` and return at once: the child
/// shares orch's memory (no copy of page tables, no copy-on-write faults
/// afterwards) and runs on a stack of its own until its `execve`, while orch
/// goes on starting the next member. The child makes only raw system calls
/// (not even libc's wrappers, which would write orch's `errno`) on data that
/// stays alive until it has exec'd. What cannot be checked beforehand (a
/// permission error from `execve` itself, say) is written to the member's
/// stderr, so it lands in its log, and the member exits with 127, like a
/// shell's "command not found".
fn start_child(mut launch: Box<Launch>) -> Result<Pid, Errno> {
    settle();
    // Block every signal across the clone, so no handler of orch's runs in the
    // child; the child unblocks once it has reset the handlers.
    let mut all = SigSet::all();
    all.remove(Signal::SIGKILL);
    let mut old = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&all), Some(&mut old))?;
    let top = launch.stack.as_mut_ptr_range().end as usize & !15;
    let arg = std::ptr::from_ref(&launch.setup)
        .cast_mut()
        .cast::<libc::c_void>();
    // SAFETY: the child runs `child_entry` on its own stack with a pointer to
    // `launch.setup`, which is kept alive (in LAUNCHING) until the child has
    // exec'd or exited; it ends in execve or exit_group.
    let pid = unsafe {
        libc::clone(
            child_entry,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::SIGCHLD,
            arg,
        )
    };
    let started = Errno::result(pid).map(Pid::from_raw);
    if pid > 0 {
        // The child makes itself a group leader too; doing it here as well means
        // the group exists when this returns, whichever runs first (as shells do).
        // It fails harmlessly once the child has exec'd.
        // SAFETY: a plain system call on the child's pid.
        unsafe { libc::setpgid(pid, pid) };
    }
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None)?;
    // The child has its own copy of the descriptor table: orch's copy of the
    // report pipe's write end goes now, the child's at its exec.
    launch.report_child = None;
    if started.is_ok() {
        LAUNCHING.with_borrow_mut(|launching| launching.push_back(launch));
    }
    started
}

extern "C" fn child_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` points at the ChildSetup that `start_child` keeps alive
    // until this child has exec'd or exited.
    let setup = unsafe { &*arg.cast::<ChildSetup>() };
    // SAFETY: raw system calls only, as `child_main` requires.
    unsafe {
        let errno = child_main(setup);
        let name = errno_name(errno);
        raw::call(
            libc::SYS_write,
            [
                2,
                setup.failure.as_ptr() as usize,
                setup.failure.len(),
                0,
                0,
                0,
            ],
        );
        raw::call(
            libc::SYS_write,
            [2, name.as_ptr() as usize, name.len(), 0, 0, 0],
        );
        raw::call(libc::SYS_exit_group, [127, 0, 0, 0, 0, 0]);
    }
    127
}

/// A line naming an errno, for a child that cannot allocate or format.
fn errno_name(errno: i32) -> &'static [u8] {
    match errno {
        libc::ENOENT => b"no such file or directory (ENOENT)\n",
        libc::EACCES => b"permission denied (EACCES)\n",
        libc::EPERM => b"operation not permitted (EPERM)\n",
        libc::ENOEXEC => b"not an executable format (ENOEXEC)\n",
        libc::ENOTDIR => b"a path component is not a folder (ENOTDIR)\n",
        libc::ETXTBSY => b"the file is open for writing (ETXTBSY)\n",
        libc::E2BIG => b"the arguments and environment are too large (E2BIG)\n",
        libc::ENOMEM => b"out of memory (ENOMEM)\n",
        libc::ESRCH => b"orch went away before the member started (ESRCH)\n",
        _ => b"the system refused (see errno)\n",
    }
}

/// The child's work between clone and exec; returns the errno of what failed.
///
/// # Safety
/// Only in a child made by [`start_child`]: raw system calls only, on data
/// the parent keeps alive.
unsafe fn child_main(setup: &ChildSetup) -> i32 {
    // A raw call's result: the errno of a failure.
    let check = |result: isize| {
        if result < 0 {
            Err(i32::try_from(-result).unwrap_or(libc::EINVAL))
        } else {
            Ok(result)
        }
    };
    // SAFETY: each call is a plain system call on data the parent keeps alive.
    let steps = || -> Result<(), i32> {
        unsafe {
            check(raw::call(
                libc::SYS_prctl,
                [
                    libc::PR_SET_PDEATHSIG as usize,
                    libc::SIGKILL as usize,
                    0,
                    0,
                    0,
                    0,
                ],
            ))?;
            // orch may have died before the line above; the death signal would then never come.
            if raw::call(libc::SYS_getppid, [0; 6]) != setup.parent as isize {
                return Err(libc::ESRCH);
            }
            check(raw::call(libc::SYS_setpgid, [0; 6]))?;
            // The kernel's sigaction: handler, flags, restorer, mask. SIG_DFL is 0.
            let default = [0usize; 4];
            for signal in RESET_SIGNALS {
                raw::call(
                    libc::SYS_rt_sigaction,
                    [signal as usize, default.as_ptr() as usize, 0, 8, 0, 0],
                );
            }
            let empty = 0u64;
            raw::call(
                libc::SYS_rt_sigprocmask,
                [
                    libc::SIG_SETMASK as usize,
                    std::ptr::from_ref(&empty) as usize,
                    0,
                    8,
                    0,
                    0,
                ],
            );
            for (from, to) in [
                (setup.stdin, 0),
                (Some(setup.stdout), 1),
                (Some(setup.stderr), 2),
            ] {
                if let Some(from) = from {
                    check(raw::call(libc::SYS_dup3, [from as usize, to, 0, 0, 0, 0]))?;
                }
            }
            check(raw::call(
                libc::SYS_chdir,
                [setup.cwd as usize, 0, 0, 0, 0, 0],
            ))?;
            if let Some((uid, gid, groups)) = &setup.identity {
                // Supplementary groups, then the group, then the user: each step
                // needs the privileges the next one drops.
                check(raw::call(
                    libc::SYS_setgroups,
                    [groups.len(), groups.as_ptr() as usize, 0, 0, 0, 0],
                ))?;
                check(raw::call(libc::SYS_setgid, [*gid as usize, 0, 0, 0, 0, 0]))?;
                check(raw::call(libc::SYS_setuid, [*uid as usize, 0, 0, 0, 0, 0]))?;
            }
            check(raw::call(
                libc::SYS_execve,
                [
                    setup.path as usize,
                    setup.argv.as_ptr() as usize,
                    setup.envp.as_ptr() as usize,
                    0,
                    0,
                    0,
                ],
            ))?;
        }
        Ok(())
    };
    steps().err().unwrap_or(libc::ENOEXEC)
}

/// System calls without libc, for the child that shares orch's memory: libc's
/// wrappers would write `errno`, which that child shares with orch.
mod raw {
    use nix::libc;

    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    compile_error!("orch starts members with raw Linux system calls, written for x86_64 and aarch64; add this architecture's `raw::call`");

    /// Make system call `number` with up to six arguments; a negative result is `-errno`.
    ///
    /// # Safety
    /// As for the system call itself.
    #[cfg(target_arch = "x86_64")]
    pub unsafe fn call(number: libc::c_long, args: [usize; 6]) -> isize {
        let result: isize;
        // SAFETY: the Linux x86_64 system call convention.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") number as isize => result,
                in("rdi") args[0], in("rsi") args[1], in("rdx") args[2],
                in("r10") args[3], in("r8") args[4], in("r9") args[5],
                lateout("rcx") _, lateout("r11") _,
                options(nostack),
            );
        }
        result
    }

    /// Make system call `number` with up to six arguments; a negative result is `-errno`.
    ///
    /// # Safety
    /// As for the system call itself.
    #[cfg(target_arch = "aarch64")]
    pub unsafe fn call(number: libc::c_long, args: [usize; 6]) -> isize {
        let result: isize;
        // SAFETY: the Linux aarch64 system call convention.
        unsafe {
            std::arch::asm!(
                "svc 0",
                in("x8") number,
                inlateout("x0") args[0] as isize => result,
                in("x1") args[1], in("x2") args[2], in("x3") args[3], in("x4") args[4], in("x5") args[5],
                options(nostack),
            );
        }
        result
    }
}

/// A script's `#!` interpreter must exist, or `execve` fails with a
/// misleading "no such file" for a file that is there.
fn check_interpreter(path: &Path) -> Result<(), SpawnFailure> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    let Some(line) = head[..n].strip_prefix(b"#!") else {
        return Ok(());
    };
    let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
    let interpreter = line
        .split(|b| b.is_ascii_whitespace())
        .find(|w| !w.is_empty())
        .unwrap_or_default();
    let interpreter = Path::new(std::ffi::OsStr::from_bytes(interpreter));
    if interpreter.as_os_str().is_empty() || interpreter.is_file() {
        Ok(())
    } else {
        Err(SpawnFailure::MissingInterpreter {
            path: path.to_path_buf(),
        })
    }
}

/// Checks that `cwd` is a usable directory.
fn check_cwd(cwd: &Path) -> Result<(), SpawnFailure> {
    match cwd.metadata() {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(SpawnFailure::CwdNotDirectory {
            cwd: cwd.to_path_buf(),
        }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Err(SpawnFailure::CwdMissing {
            cwd: cwd.to_path_buf(),
        }),
        Err(error) => Err(SpawnFailure::CwdUnusable {
            cwd: cwd.to_path_buf(),
            error,
        }),
    }
}

/// Finds the file `execvp` would run for `name` in the member's environment.
fn find_program(name: &str, env: &[(String, String)], cwd: &Path) -> Result<PathBuf, SpawnFailure> {
    if name.contains('/') {
        let path = cwd.join(name);
        return match executable(&path) {
            Ok(()) => Ok(path),
            Err(Errno::ENOENT | Errno::ENOTDIR) => Err(SpawnFailure::NoSuchFile { path }),
            Err(errno) => Err(SpawnFailure::NotExecutable { path, errno }),
        };
    }
    let search_path = env
        .iter()
        .rev()
        .find(|(key, _)| key == "PATH")
        .map_or(DEFAULT_PATH, |(_, value)| value.as_str());
    let mut not_executable = None;
    for dir in search_path.split(':') {
        let path = cwd.join(dir).join(name);
        match executable(&path) {
            Ok(()) => return Ok(path),
            Err(Errno::ENOENT | Errno::ENOTDIR) => {}
            Err(errno) => {
                not_executable.get_or_insert(SpawnFailure::NotExecutable { path, errno });
            }
        }
    }
    Err(not_executable.unwrap_or_else(|| SpawnFailure::NotFound {
        search_path: search_path.to_owned(),
    }))
}

/// Whether `path` is a file orch may execute.
fn executable(path: &Path) -> Result<(), Errno> {
    let meta = path
        .metadata()
        .map_err(|error| error.raw_os_error().map_or(Errno::EIO, Errno::from_raw))?;
    if meta.is_dir() {
        return Err(Errno::EISDIR);
    }
    access(path, AccessFlags::X_OK)
}

/// Creates a pipe for one output stream: the read end for orch (close-on-exec and
/// non-blocking) and the write end for the child (blocking, so a fast writer waits for
/// orch instead of failing with `EAGAIN`; close-on-exec too, so it only reaches the child
/// through `dup2` onto its stdout or stderr).
///
/// The kernel's default capacity (64 KiB) is kept: 1 MiB pipes measured no faster into a
/// log file, and they eat into the per-user pipe quota (`fs.pipe-user-pages-soft`), past
/// which every new pipe of that user, orch's or not, shrinks to 8 KiB.
fn output_pipe() -> Result<(OwnedFd, OwnedFd), Errno> {
    let (read, write) = pipe2(OFlag::O_CLOEXEC)?;
    fcntl(read.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    Ok((read, write))
}

/// Decides which identity the child must switch to: only root switches; anyone else may
/// only ask for the identity it already has.
fn switch_identity(identity: Option<&Identity>) -> Result<Option<Identity>, IdentityError> {
    let Some(identity) = identity else {
        return Ok(None);
    };
    if geteuid().is_root() {
        return Ok(Some(identity.clone()));
    }
    check_unprivileged(identity.uid, identity.gid)?;
    Ok(None)
}

/// An unprivileged orch can only run members as itself.
fn check_unprivileged(uid: Uid, gid: Gid) -> Result<(), IdentityError> {
    let current = (geteuid(), getegid());
    if (uid, gid) == current {
        Ok(())
    } else {
        Err(IdentityError::NotRoot {
            current_uid: current.0.as_raw(),
            current_gid: current.1.as_raw(),
            uid: uid.as_raw(),
            gid: gid.as_raw(),
        })
    }
}

/// Resolves a `user`/`group` setting, each a name or a number, to an [`Identity`].
///
/// Without `group`, the user's primary group is used; the supplementary groups are the
/// user's groups from the group database (what `initgroups` would set). Without `user`,
/// the member keeps orch's user and gets `group` as its only group.
///
/// # Errors
/// An unknown user or group, a numeric user without a database entry and no `group`,
/// a failed lookup, or a different identity while orch does not run as root.
pub fn resolve_identity(
    user: Option<&str>,
    group: Option<&str>,
) -> Result<Identity, IdentityError> {
    let (uid, entry) = match user {
        Some(user) => lookup_user(user)?,
        None => (geteuid(), None),
    };
    let gid = match (group, &entry) {
        (Some(group), _) => lookup_group(group)?,
        (None, Some(entry)) => entry.gid,
        (None, None) if user.is_some() => return Err(IdentityError::NoPrimaryGroup(uid.as_raw())),
        (None, None) => getegid(),
    };
    let groups = match &entry {
        Some(entry) => {
            let lookup_error = |errno| IdentityError::Lookup {
                name: entry.name.clone(),
                errno,
            };
            let name =
                CString::new(entry.name.as_str()).map_err(|_| lookup_error(Errno::EINVAL))?;
            getgrouplist(&name, gid).map_err(lookup_error)?
        }
        None => vec![gid],
    };
    if !geteuid().is_root() {
        check_unprivileged(uid, gid)?;
    }
    Ok(Identity { uid, gid, groups })
}

/// A user by name or number, with its database entry when there is one.
fn lookup_user(user: &str) -> Result<(Uid, Option<User>), IdentityError> {
    let lookup_error = |errno| IdentityError::Lookup {
        name: user.to_owned(),
        errno,
    };
    if let Ok(number) = user.parse::<u32>() {
        let uid = Uid::from_raw(number);
        return Ok((uid, User::from_uid(uid).map_err(lookup_error)?));
    }
    match User::from_name(user).map_err(lookup_error)? {
        Some(entry) => Ok((entry.uid, Some(entry))),
        None => Err(IdentityError::UnknownUser(user.to_owned())),
    }
}

/// A group by name or number.
fn lookup_group(group: &str) -> Result<Gid, IdentityError> {
    if let Ok(number) = group.parse::<u32>() {
        return Ok(Gid::from_raw(number));
    }
    let entry = Group::from_name(group).map_err(|errno| IdentityError::Lookup {
        name: group.to_owned(),
        errno,
    })?;
    entry
        .map(|entry| entry.gid)
        .ok_or_else(|| IdentityError::UnknownGroup(group.to_owned()))
}

/// Sends `signal` to every process in the process group `pgid`.
///
/// An empty group is not an error. Once a group is known to be empty, stop signalling
/// it: its number may then be reused by an unrelated group.
///
/// # Errors
/// `EPERM` when a member changed to a user orch may not signal.
pub fn signal_group(pgid: Pid, signal: Signal) -> nix::Result<()> {
    match killpg(pgid, signal) {
        Err(Errno::ESRCH) => Ok(()),
        result => result,
    }
}

/// Whether any process (zombies included) is still in the process group `pgid`.
///
/// Cheaper than scanning `/proc`; the same caveat about reused numbers as for
/// [`signal_group`] applies.
#[must_use]
pub fn group_exists(pgid: Pid) -> bool {
    // Signal 0 only checks existence and permission: EPERM still means "exists".
    !matches!(killpg(pgid, None), Err(Errno::ESRCH))
}

/// Makes orch the reaper of its orphaned descendants, so a member's leftover children
/// come back to orch (and are collected by [`reap`]) instead of going to init.
///
/// # Errors
/// The `prctl` error; none is expected on Linux 3.4 and later.
pub fn become_subreaper() -> nix::Result<()> {
    prctl::set_child_subreaper(true)
}

/// Collects the exit status of every child that has ended so far, without blocking.
///
/// Call it on each SIGCHLD (signals coalesce, so one SIGCHLD may stand for many exits)
/// and once after installing the SIGCHLD handler. Orphaned grandchildren show up here
/// too; pids that are not members should be ignored.
#[must_use]
pub fn reap() -> Vec<(Pid, ExitStatus)> {
    let mut reaped = Vec::new();
    loop {
        let mut status = 0;
        // nix's `waitpid` is not used: it reports a child killed by a real-time signal as
        // EINVAL after the kernel has already released it, losing that exit for good.
        // SAFETY: `status` is a valid, writable int for the duration of the call.
        let pid = unsafe { libc::waitpid(-1, &raw mut status, libc::WNOHANG) };
        match pid {
            0 => break,
            -1 if Errno::last() == Errno::EINTR => {}
            -1 => break, // ECHILD: no children left
            pid => {
                if let Some(status) = ExitStatus::from_wait(status) {
                    reaped.push((Pid::from_raw(pid), status));
                }
            }
        }
    }
    reaped
}

#[cfg(test)]
mod tests {
    use super::*;

    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler};
    use std::process::Stdio;

    use std::env;
    use std::io::{BufRead, BufReader, Read};
    use std::time::{Duration, Instant};

    use nix::sys::signal::kill;
    use tokio::io::AsyncReadExt;
    use tokio::net::unix::pipe;

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
            stdin_null: true,
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
            stdin_null: true,
        };
        spawn(&spec).expect_err("spawn must fail").to_string()
    }

    /// Reads a pipe to end-of-file, with a deadline.
    fn read_all(fd: OwnedFd) -> String {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let mut receiver = pipe::Receiver::from_owned_fd(fd).expect("pipe receiver");
            let mut text = String::new();
            tokio::time::timeout(DEADLINE, receiver.read_to_string(&mut text))
                .await
                .expect("end of file before the deadline")
                .expect("read");
            text
        })
    }

    /// Waits for one specific child of the test process.
    fn wait_child(pid: Pid) -> ExitStatus {
        loop {
            let mut status = 0;
            // SAFETY: `status` is a valid, writable int for the duration of the call.
            let result = unsafe { libc::waitpid(pid.as_raw(), &raw mut status, 0) };
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

    /// Runs this test binary again, executing only [`helper_process`] in `mode`.
    fn run_helper(mode: &str) -> std::process::Child {
        let tests_module = module_path!()
            .split_once("::")
            .expect("tests live inside a crate")
            .1;
        std::process::Command::new(env::current_exe().expect("test binary"))
            .args([
                &format!("{tests_module}::helper_process"),
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(HELPER_ENV, mode)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("re-execute the test binary")
    }

    fn assert_helper_succeeds(mode: &str) {
        let output = run_helper(mode).wait_with_output().expect("helper output");
        assert!(
            output.status.success(),
            "helper {mode} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Not a test of its own: the body of the re-executed test binary, which needs a
    /// process to itself (it reaps any child, or is killed on purpose).
    #[test]
    fn helper_process() {
        let Ok(mode) = env::var(HELPER_ENV) else {
            return;
        };
        match mode.as_str() {
            "orphan-parent" => {
                let member = shell("exec sleep 1000");
                println!("member={}", member.pid);
                // Wait to be killed; exit anyway after the deadline.
                std::thread::sleep(DEADLINE);
            }
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

    fn helper_signals() {
        let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
        for signal in [Signal::SIGHUP, Signal::SIGINT, Signal::SIGPIPE] {
            // SAFETY: ignoring a signal installs no handler code.
            unsafe { sigaction(signal, &ignore) }.expect("ignore");
        }
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
        for signal in RESET_SIGNALS {
            let bit = 1 << (signal as i32 - 1);
            assert_eq!(mask("SigIgn:") & bit, 0, "{signal} still ignored: {text}");
        }
    }

    #[test]
    fn output_goes_to_pipes() {
        let member = shell("echo out; echo err >&2; echo more");
        assert_eq!(read_all(member.stdout), "out\nmore\n");
        assert_eq!(read_all(member.stderr), "err\n");
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
    fn argv_runs_without_shell_in_cwd() {
        let program = Program::Argv(vec![
            "sh".to_owned(),
            "-c".to_owned(),
            "pwd; echo \"$0\" \"$1\"".to_owned(),
            "zero".to_owned(),
            "a b".to_owned(),
        ]);
        let env = env_with_path();
        let member = spawn(&SpawnSpec {
            program: &program,
            env: &env,
            cwd: Path::new("/usr"),
            identity: None,
            stdin_null: true,
        })
        .expect("spawn");
        assert_eq!(read_all(member.stdout), "/usr\nzero a b\n");
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
            wait_child(member.pid).signal(),
            Some(Signal::SIGTERM),
            "the shell dies of SIGTERM"
        );
        for (pid, start) in grandchildren {
            assert!(wait_until(|| is_gone(pid, start)), "{pid} survived");
        }
    }

    #[test]
    fn member_dies_with_its_parent() {
        let mut parent = run_helper("orphan-parent");
        let stdout = parent.stdout.take().expect("piped stdout");
        let member = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| line.split_once("member=").map(|(_, pid)| pid.to_owned()))
            .expect("the helper prints its member's pid");
        let member = Pid::from_raw(member.parse().expect("a pid"));
        let member_start = start_time(member);
        parent.kill().expect("SIGKILL the parent");
        parent.wait().expect("wait for the parent");
        assert!(
            wait_until(|| is_gone(member, member_start)),
            "member {member} outlived its parent"
        );
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
    fn an_exec_that_fails_in_the_child_says_why_on_stderr_and_exits_127() {
        // Executable but in no format the kernel knows: only execve can tell.
        let dir = tempfile::tempdir().expect("temporary directory");
        let file = dir.path().join("garbage");
        std::fs::write(&file, "not a program").expect("write");
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let member = start(
            &Program::Argv(vec![file.display().to_string()]),
            &env_with_path(),
        );
        assert_eq!(
            read_all(member.stderr),
            format!(
                "orch: cannot start `{}`: not an executable format (ENOEXEC)\n",
                file.display()
            )
        );
        assert_eq!(wait_child(member.pid), ExitStatus::Code(127));
        assert_eq!(settle(), 0, "the launch is freed once the child is gone");
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
        let error = spawn_error(&program, Path::new("/"));
        assert!(
            error.starts_with("cannot start `sh nul\0byte`: ") && error.contains("nul byte"),
            "{error}"
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
            stdin_null: true,
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
            signal: libc::SIGRTMIN() + 2,
            core_dumped: true,
        };
        assert_eq!(
            realtime.to_string(),
            format!("killed by signal {} (core dumped)", libc::SIGRTMIN() + 2)
        );
        assert_eq!(realtime.signal(), None);
        assert!(ExitStatus::Code(0).success());
        assert!(!killed.success());
        // Raw statuses as the kernel builds them.
        assert_eq!(ExitStatus::from_wait(3 << 8), Some(ExitStatus::Code(3)));
        assert_eq!(ExitStatus::from_wait(9), Some(killed));
        assert_eq!(ExitStatus::from_wait(0x7f | (19 << 8)), None);
    }

    #[test]
    fn output_pipe_read_end_is_nonblocking() {
        let (read, write) = output_pipe().expect("pipe");
        let flags = |fd: &OwnedFd| {
            OFlag::from_bits_truncate(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL).expect("flags"))
        };
        assert!(flags(&read).contains(OFlag::O_NONBLOCK));
        assert!(!flags(&write).contains(OFlag::O_NONBLOCK));
        let mut file = std::fs::File::from(read);
        let mut buffer = [0; 8];
        assert_eq!(
            file.read(&mut buffer).map_err(|error| error.kind()),
            Err(io::ErrorKind::WouldBlock)
        );
        drop(write);
    }
}
