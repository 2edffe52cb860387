//! Starting member processes, signalling their process groups and reaping them.
//!
//! A member is started with [`std::process::Command`]: its program resolved to a path
//! beforehand (so the common mistakes get a precise error and std can use `posix_spawn`,
//! which shares orch's memory until the exec instead of copying its page tables), in a
//! process group of its own, with exactly the environment orch computed, stdin from
//! `/dev/null` and stdout and stderr on pipes whose read ends orch keeps. When orch runs as
//! root and the command names a user or group, std forks instead and the child switches
//! identity before its exec.
//!
//! orch never waits for a specific child: it is a child subreaper and collects every exit
//! with [`reap`], which also reaps orphaned grandchildren. Nothing else in the process may
//! wait for children (no `Child::wait`, no `tokio::process`), or it would race with [`reap`]
//! for the exit statuses.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use nix::errno::Errno;
use nix::sys::prctl;
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::WaitPidFlag;
use nix::unistd::{
    access, getegid, geteuid, getgrouplist, AccessFlags, Gid, Group, Pid, Uid, User,
};

use crate::model::Program;

/// Interpreter for [`Program::Shell`] scripts.
const SHELL: &str = "/bin/sh";

/// Search path used when the environment has no `PATH`, as `execvp` does.
const DEFAULT_PATH: &str = "/bin:/usr/bin";

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
}

/// A started member: its pid, which is also its process group id, and the read ends of
/// its output pipes (close-on-exec, blocking: make them non-blocking to poll them).
#[derive(Debug)]
pub struct Spawned {
    /// Process id and process group id of the member.
    pub pid: Pid,
    pub stdout: OwnedFd,
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
    /// The program exists but the kernel found no interpreter (`#!` line) or loader for it.
    #[error("{} exists but its interpreter (the `#!` line) or loader is missing", path.display())]
    MissingInterpreter {
        /// The resolved path.
        path: PathBuf,
    },
    /// The arguments or the environment hold a NUL byte, which `exec` cannot pass.
    #[error("a nul byte in the command, its environment or its folder")]
    NulByte,
    /// Creating the process, or its exec, failed (out of descriptors or processes, a
    /// format the kernel does not know, ...).
    #[error("{}", describe(.0))]
    Os(io::Error),
}

/// `ENOEXEC`-style text for an OS error: its symbolic name and what it means.
fn describe(error: &io::Error) -> String {
    match error.raw_os_error().map(Errno::from_raw) {
        Some(Errno::ENOEXEC) => "not an executable format (ENOEXEC)".to_owned(),
        Some(errno) => errno.to_string(),
        None => error.to_string(),
    }
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
        let status = std::process::ExitStatus::from_raw(status);
        match (status.code(), status.signal()) {
            (Some(code), _) => Some(Self::Code(code)),
            (None, Some(signal)) => Some(Self::Signaled {
                signal,
                core_dumped: status.core_dumped(),
            }),
            (None, None) => None,
        }
    }

    /// Whether the process exited with code 0.
    #[must_use]
    pub fn success(self) -> bool {
        self == Self::Code(0)
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
/// The program, its interpreter and the working directory are checked first, so the
/// common mistakes get a precise error; what only the exec can tell (a format the kernel
/// does not know) comes back as [`SpawnFailure::Os`].
///
/// # Errors
/// A [`SpawnError`] naming the program and the reason.
pub fn spawn(spec: &SpawnSpec<'_>) -> Result<Spawned, SpawnError> {
    let fail = |reason| SpawnError {
        program: spec.program.to_string(),
        reason,
    };
    check_cwd(spec.cwd).map_err(fail)?;
    let mut command = match spec.program {
        Program::Shell(script) => {
            let mut command = std::process::Command::new(SHELL);
            command.arg("-c").arg(script);
            command
        }
        Program::Argv(argv) => {
            let name = argv
                .first()
                .filter(|name| !name.is_empty())
                .ok_or_else(|| fail(SpawnFailure::EmptyCommand))?;
            let path = find_program(name, spec.env, spec.cwd).map_err(fail)?;
            check_interpreter(&path).map_err(fail)?;
            let mut command = std::process::Command::new(path);
            command.arg0(name).args(&argv[1..]);
            command
        }
    };
    let nul = |s: &str| s.contains('\0');
    if spec.env.iter().any(|(k, v)| nul(k) || nul(v))
        || spec.cwd.as_os_str().as_bytes().contains(&0)
        || match spec.program {
            Program::Shell(script) => nul(script),
            Program::Argv(argv) => argv.iter().any(|a| nul(a)),
        }
    {
        return Err(fail(SpawnFailure::NulByte));
    }
    command
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(spec.cwd)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(identity) =
        switch_identity(spec.identity).map_err(|error| fail(SpawnFailure::Identity(error)))?
    {
        let groups = identity.groups.clone();
        // SAFETY: the closure runs in the forked child before its exec and only makes
        // three system calls (setgroups, setgid, setuid: async-signal-safe) on data
        // prepared before the fork; it allocates nothing and takes no lock. std has no
        // stable way to set supplementary groups, and its own uid/gid would be applied
        // before this hook, after which setgroups is no longer allowed.
        unsafe {
            command.pre_exec(move || {
                nix::unistd::setgroups(&groups)?;
                nix::unistd::setgid(identity.gid)?;
                nix::unistd::setuid(identity.uid)?;
                Ok(())
            });
        }
    }
    let mut child = command.spawn().map_err(|e| fail(SpawnFailure::Os(e)))?;
    let pid = Pid::from_raw(i32::try_from(child.id()).expect("a pid fits in i32"));
    let stdout = child.stdout.take().expect("stdout was asked to be piped");
    let stderr = child.stderr.take().expect("stderr was asked to be piped");
    // `child` is dropped without waiting: `reap` collects its exit.
    Ok(Spawned {
        pid,
        stdout: stdout.into(),
        stderr: stderr.into(),
    })
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
        let pid = unsafe { nix::libc::waitpid(-1, &raw mut status, WaitPidFlag::WNOHANG.bits()) };
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
mod tests;
