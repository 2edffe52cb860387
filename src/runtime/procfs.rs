//! What Linux's `/proc` tells about processes: process groups, memory, start times and
//! who listens on a TCP port.
//!
//! Parsing is done by pure functions on text, so it is tested with fixtures; the readers
//! around them treat a process that vanishes mid-scan, or one orch may not inspect, as
//! absent rather than as an error.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::Read;
use std::path::Path;

use nix::unistd::{sysconf, Pid, SysconfVar};

/// The fields of `/proc/PID/stat` that orch uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat<'a> {
    /// Executable name (`comm`), at most 15 bytes, chosen by the process.
    pub comm: &'a str,
    /// State letter: `R`, `S`, `D`, `Z` (zombie), `T`, ...
    pub state: char,
    /// Parent process id.
    pub ppid: i32,
    /// Process group id.
    pub pgrp: i32,
    /// Start time in clock ticks since boot; with the pid, it identifies a process even
    /// after its pid was reused.
    pub start_time: u64,
    /// Resident set size in pages.
    pub rss_pages: u64,
}

/// Parses the text of `/proc/PID/stat`.
///
/// `comm` may contain spaces and parentheses, so it spans from the first `(` to the last
/// `)`; the numbered fields are counted from there.
#[must_use]
pub fn parse_stat(text: &str) -> Option<Stat<'_>> {
    let (_, after_open) = text.split_once('(')?;
    let (comm, rest) = after_open.rsplit_once(')')?;
    // Field 3 (state) is the first one after `comm`.
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?; // field 4
    let pgrp = fields.next()?.parse().ok()?; // field 5
    let start_time = fields.nth(16)?.parse().ok()?; // field 22
    let rss_pages = fields.nth(1)?.parse().ok()?; // field 24
    Some(Stat {
        comm,
        state,
        ppid,
        pgrp,
        start_time,
        rss_pages,
    })
}

/// Reads `/proc/{pid}/stat` into `buffer`, replacing its contents; `path` is scratch
/// space, reused to avoid an allocation per process.
fn read_stat(pid: i32, path: &mut String, buffer: &mut Vec<u8>) -> Option<()> {
    path.clear();
    write!(path, "/proc/{pid}/stat").ok()?;
    buffer.clear();
    File::open(&*path).ok()?.read_to_end(buffer).ok()?;
    Some(())
}

/// Reads and parses `/proc/{pid}/stat`, handing the result to `use_stat`.
fn with_stat<T>(pid: Pid, use_stat: impl FnOnce(Stat<'_>) -> T) -> Option<T> {
    let mut buffer = Vec::new();
    read_stat(pid.as_raw(), &mut String::new(), &mut buffer)?;
    // `comm` is whatever bytes the process chose, not necessarily UTF-8.
    parse_stat(&String::from_utf8_lossy(&buffer)).map(use_stat)
}

/// Calls `visit` with the pid and stat of every process that can be read.
fn for_each_process(mut visit: impl FnMut(i32, Stat<'_>)) {
    let Ok(entries) = fs::read_dir("/proc") else {
        return;
    };
    let mut path = String::with_capacity(32);
    let mut buffer = Vec::with_capacity(512);
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse().ok())
        else {
            continue;
        };
        if read_stat(pid, &mut path, &mut buffer).is_some() {
            if let Some(stat) = parse_stat(&String::from_utf8_lossy(&buffer)) {
                visit(pid, stat);
            }
        }
    }
}

/// Start time of a process in clock ticks since boot, or `None` when it does not exist.
///
/// Recorded with the pid, it tells a leftover member from an unrelated process that got
/// the same pid later.
#[must_use]
pub fn process_start_time(pid: Pid) -> Option<u64> {
    with_stat(pid, |stat| stat.start_time)
}

/// Whether a process has exited and waits to be reaped; `false` when it does not exist.
#[must_use]
pub fn is_zombie(pid: Pid) -> bool {
    with_stat(pid, |stat| stat.state == 'Z').unwrap_or(false)
}

/// Executable name (`comm`) of a process, or `None` when it does not exist.
#[must_use]
pub fn process_name(pid: Pid) -> Option<String> {
    with_stat(pid, |stat| stat.comm.to_owned())
}

/// The live children of `parent` (zombies, already gone, are left out): for a
/// subreaper, also the orphans it adopted.
#[must_use]
pub fn children(parent: Pid) -> Vec<Pid> {
    let mut children = Vec::new();
    for_each_process(|pid, stat| {
        if stat.ppid == parent.as_raw() && stat.state != 'Z' {
            children.push(Pid::from_raw(pid));
        }
    });
    children.sort_unstable();
    children
}

/// Resident memory, in bytes, of each process group in `pgids` (same order), summed over
/// its processes, from one pass over `/proc`: check all members together rather than one
/// at a time.
///
/// Pages shared between processes (e.g. a database's shared buffers) count once per
/// process, so a forking server is over-estimated; RSS is also approximate by design.
#[must_use]
pub fn group_rss_bytes(pgids: &[Pid]) -> Vec<u64> {
    let page_size = sysconf(SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|size| u64::try_from(size).ok())
        .unwrap_or(4096);
    let mut totals = vec![0; pgids.len()];
    for_each_process(|_, stat| {
        if let Some(index) = pgids.iter().position(|pgid| pgid.as_raw() == stat.pgrp) {
            totals[index] += stat.rss_pages * page_size;
        }
    });
    totals
}

/// Inodes of the sockets listening on TCP `port` in the text of `/proc/net/tcp` or
/// `/proc/net/tcp6`.
#[must_use]
pub fn parse_listening_inodes(table: &str, port: u16) -> Vec<u64> {
    const LISTEN: &str = "0A";
    table
        .lines()
        .skip(1) // header
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_ascii_whitespace().collect();
            let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
            let (_, local_port) = local.rsplit_once(':')?;
            let listening = *state == LISTEN && u16::from_str_radix(local_port, 16).ok()? == port;
            let inode = inode.parse().ok()?;
            (listening && inode != 0).then_some(inode)
        })
        .collect()
}

/// The inode in a `/proc/PID/fd/N` link target such as `socket:[12345]`.
fn socket_inode(target: &Path) -> Option<u64> {
    target
        .to_str()?
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Inodes of the sockets listening on TCP `port`, IPv4 or IPv6, in orch's
/// network namespace.
#[must_use]
pub fn listening_inodes(port: u16) -> Vec<u64> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| fs::read_to_string(table).ok())
        .flat_map(|table| parse_listening_inodes(&table, port))
        .collect()
}

/// Every pid in `/proc`, in order.
fn pids() -> Vec<Pid> {
    let mut pids: Vec<i32> = fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    pids.sort_unstable();
    pids.into_iter().map(Pid::from_raw).collect()
}

/// Whether `pid` has an open file descriptor on one of the sockets `inodes`.
fn holds_socket(pid: Pid, inodes: &[u64]) -> bool {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        fs::read_link(fd.path())
            .ok()
            .and_then(|target| socket_inode(&target))
            .is_some_and(|inode| inodes.contains(&inode))
    })
}

/// The process (pid and name) that holds a socket listening on TCP `port` on any
/// address, IPv4 or IPv6, in orch's network namespace.
///
/// `None` when nothing listens, or when the holder's file descriptors cannot be read
/// (another user's process while orch is not root). Slow (it reads every open file
/// descriptor): meant for an error message, not for polling.
#[must_use]
pub fn port_holder(port: u16) -> Option<(Pid, String)> {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return None;
    }
    pids()
        .into_iter()
        .find(|&pid| holds_socket(pid, &inodes))
        .map(|pid| (pid, process_name(pid).unwrap_or_default()))
}

/// Who listens on a TCP port, as seen from a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listener {
    /// Nothing in this network namespace listens on it.
    Nobody,
    /// A process of the member's process group does.
    Member,
    /// Only other processes do: the first found (pid and name), if it can be read.
    Stranger(Option<(Pid, String)>),
}

/// Who listens on TCP `port`: the process group `pgid` (a member), or
/// someone else. Reads the descriptors of the group's processes only.
#[must_use]
pub fn listener(port: u16, pgid: Pid) -> Listener {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return Listener::Nobody;
    }
    let mut group = Vec::new();
    for_each_process(|pid, stat| {
        if stat.pgrp == pgid.as_raw() {
            group.push(Pid::from_raw(pid));
        }
    });
    if group.iter().any(|&pid| holds_socket(pid, &inodes)) {
        Listener::Member
    } else {
        Listener::Stranger(port_holder(port))
    }
}

/// The process group of a process, `None` when it does not exist.
#[must_use]
pub fn process_group(pid: Pid) -> Option<Pid> {
    with_stat(pid, |stat| Pid::from_raw(stat.pgrp))
}

/// Live processes whose environment (as they were started) holds `entry`
/// (`NAME=value`), for a sweep of what a run of orch started.
#[must_use]
pub fn processes_with_env(entry: &str) -> Vec<Pid> {
    let mut found = Vec::new();
    let mut buffer = Vec::new();
    for pid in pids() {
        buffer.clear();
        let read =
            File::open(format!("/proc/{pid}/environ")).and_then(|mut f| f.read_to_end(&mut buffer));
        if read.is_ok()
            && buffer.split(|&b| b == 0).any(|e| e == entry.as_bytes())
            && !is_zombie(pid)
        {
            found.push(pid);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::{Ipv6Addr, TcpListener};
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};

    use nix::unistd::getpid;

    const STAT: &str = "4242 (postgres) S 1 4242 4242 0 -1 4194560 1130 0 0 0 2 1 0 0 20 0 \
                        1 0 987654 175104000 2048 18446744073709551615 1 1 0 0 0 0 0 \
                        16781312 134235395 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

    #[test]
    fn stat_fields_are_counted_from_comm() {
        assert_eq!(
            parse_stat(STAT),
            Some(Stat {
                comm: "postgres",
                state: 'S',
                ppid: 1,
                pgrp: 4242,
                start_time: 987_654,
                rss_pages: 2048,
            })
        );
    }

    #[test]
    fn comm_may_contain_spaces_and_parentheses() {
        let text = STAT.replace("(postgres) S", "(a) b (c) )) Z");
        let stat = parse_stat(&text).expect("parses");
        assert_eq!(stat.comm, "a) b (c) )");
        assert_eq!(stat.state, 'Z');
        assert_eq!(
            (stat.pgrp, stat.start_time, stat.rss_pages),
            (4242, 987_654, 2048)
        );
    }

    #[test]
    fn malformed_stat_is_none() {
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("12 (x S 1 12 12"), None);
        assert_eq!(parse_stat("12 (x) S 1 12 12 0"), None);
        assert_eq!(
            parse_stat(&STAT.replace(" 4242 4242 0", " pg 4242 0")),
            None
        );
    }

    #[test]
    fn own_process_is_described() {
        let me = getpid();
        let comm = fs::read_to_string("/proc/self/comm").expect("comm");
        assert_eq!(process_name(me).as_deref(), Some(comm.trim_end()));
        assert!(process_start_time(me).is_some());
        assert_eq!(process_start_time(me), process_start_time(me));
        assert!(children(nix::unistd::getppid()).contains(&me));
        assert!(!is_zombie(me));
    }

    #[test]
    fn exited_child_not_yet_reaped_is_a_zombie() {
        let mut child = Command::new("true").spawn().expect("spawn true");
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid fits"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !is_zombie(pid) {
            assert!(std::time::Instant::now() < deadline, "`true` never exited");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        child.wait().expect("reap");
        assert!(!is_zombie(pid));
    }

    #[test]
    fn missing_process_is_none() {
        // Above the largest possible pid (2^22).
        let nobody = Pid::from_raw(5_000_000);
        assert_eq!(process_name(nobody), None);
        assert_eq!(process_start_time(nobody), None);
        assert!(!is_zombie(nobody));
        assert!(children(nobody).is_empty());
        assert_eq!(group_rss_bytes(&[nobody]), [0]);
    }

    #[test]
    fn children_and_group_memory_are_found() {
        let mut child = Command::new("sh")
            .args(["-c", "sleep 1000 & exec sleep 1000"])
            .process_group(0)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn");
        let pgid = Pid::from_raw(i32::try_from(child.id()).expect("pid"));
        // The leader is in the group as soon as spawn returns; the background sleep may
        // take a moment.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut members = children(pgid);
        while members.is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
            members = children(pgid);
        }
        let rss = group_rss_bytes(&[Pid::from_raw(5_000_000), pgid]);
        nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL).expect("kill");
        child.wait().expect("wait");
        assert_eq!(
            members.len(),
            1,
            "the shell's background sleep: {members:?}"
        );
        assert_eq!(rss[0], 0);
        assert!(rss[1] > 0, "{rss:?}");
    }

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 31337 1 0000000000000000 100 0 0 10 0
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 22 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 555 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:C350 0100007F:1F90 06 00000000:00000000 03:00001234 00000000     0        0 0 3 0000000000000000
";

    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4711 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4712 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn listening_sockets_are_found_by_port() {
        assert_eq!(parse_listening_inodes(TCP, 8080), [31337]);
        assert_eq!(parse_listening_inodes(TCP, 22), [22]);
        assert!(
            parse_listening_inodes(TCP, 50000).is_empty(),
            "not listening"
        );
        assert_eq!(parse_listening_inodes(TCP6, 8080), [4711]);
        assert_eq!(parse_listening_inodes(TCP6, 80), [4712]);
        assert!(parse_listening_inodes("", 80).is_empty());
        assert!(parse_listening_inodes("header\n   0: garbage\n", 80).is_empty());
    }

    #[test]
    fn socket_links_are_parsed() {
        assert_eq!(socket_inode(Path::new("socket:[31337]")), Some(31337));
        assert_eq!(socket_inode(Path::new("pipe:[31337]")), None);
        assert_eq!(socket_inode(Path::new("/dev/null")), None);
    }

    #[test]
    fn a_listener_is_told_from_a_stranger_by_its_process_group() {
        let v4 = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = v4.local_addr().expect("address").port();
        let mine = nix::unistd::getpgrp();
        assert_eq!(listener(port, mine), Listener::Member);
        let me = (getpid(), process_name(getpid()).expect("own name"));
        assert_eq!(
            listener(port, Pid::from_raw(5_000_000)),
            Listener::Stranger(Some(me))
        );
        drop(v4);
        assert_eq!(listener(port, mine), Listener::Nobody);
        assert_eq!(process_group(getpid()), Some(mine));
    }

    #[test]
    fn processes_are_found_by_an_entry_of_their_environment() {
        let mark = format!("ORCH_PROCFS_TEST={}", std::process::id());
        let mut child = Command::new("sleep")
            .arg("1000")
            .env("ORCH_PROCFS_TEST", std::process::id().to_string())
            .spawn()
            .expect("spawn");
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid"));
        // Its new environment is in place a moment after its exec began.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while processes_with_env(&mark).is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(processes_with_env(&mark), [pid]);
        child.kill().expect("kill");
        child.wait().expect("wait");
        assert!(processes_with_env(&mark).is_empty());
    }

    #[test]
    fn port_holder_finds_this_process() {
        let me = (getpid(), process_name(getpid()).expect("own name"));
        let v4 = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = v4.local_addr().expect("address").port();
        assert_eq!(port_holder(port), Some(me.clone()));
        // IPv6 may be disabled where the tests run.
        if let Ok(v6) = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)) {
            let port = v6.local_addr().expect("address").port();
            assert_eq!(port_holder(port), Some(me));
        }
    }
}
