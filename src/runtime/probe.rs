//! Readiness probes and monitor commands. Each runs in its own task and
//! reports back as a supervisor event; none blocks the supervisor.
//!
//! A TCP or HTTP check counts only a listener of the member itself: when the
//! connection succeeds, the listening socket must be one of the member's
//! process group (its inode, from /proc/net/tcp and tcp6, among the group's
//! open descriptors), so another program on the port never makes a member
//! ready.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};

use super::procfs::{self, Listener};
use super::reaper::Reaper;
use super::spawn::{self, SpawnSpec};
use crate::model::{Check, HumanDuration, Program};

/// What a probe or monitor command needs to run like its member.
#[derive(Clone)]
pub struct Context {
    pub reaper: Arc<Reaper>,
    pub env: Arc<Vec<(String, String)>>,
    pub cwd: PathBuf,
    /// The member's process group: a listener must be one of it.
    pub group: nix::unistd::Pid,
}

/// Try `check` every `interval` until it passes (`Ok`) or `limit` has passed
/// (`Err` with the last failure). `waiting` hears each new reason it has not
/// passed yet that is worth telling (a stranger on the member's port).
pub async fn until_ready(
    check: &Check,
    interval: Duration,
    limit: Duration,
    ctx: &Context,
    waiting: impl Fn(String),
) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    let mut told = None;
    loop {
        let attempt_limit = interval
            .max(Duration::from_secs(1))
            .min(limit.max(Duration::from_millis(100)));
        let last = match timeout(attempt_limit, attempt(check, ctx, attempt_limit)).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(Failure::Stranger(why))) => {
                if told.as_ref() != Some(&why) {
                    waiting(why.clone());
                    told = Some(why.clone());
                }
                why
            }
            Ok(Err(Failure::Plain(e))) => e,
            Err(_) => format!("no answer within {}", HumanDuration(attempt_limit)),
        };
        if Instant::now() + interval >= deadline {
            return Err(format!("after {}: {last}", HumanDuration(limit)));
        }
        tokio::time::sleep(interval).await;
    }
}

/// Why an attempt did not pass.
enum Failure {
    Plain(String),
    /// Something answered on the port, but not the member.
    Stranger(String),
}

impl From<String> for Failure {
    fn from(why: String) -> Failure {
        Failure::Plain(why)
    }
}

async fn attempt(check: &Check, ctx: &Context, limit: Duration) -> Result<(), Failure> {
    match check {
        Check::Tcp { host, port } => {
            tcp(host.as_deref(), *port).await?;
            owned(*port, ctx.group).await
        }
        Check::Http { url } => {
            let port = http(url).await?;
            owned(port, ctx.group).await
        }
        Check::Command(program) => Ok(run(program, ctx, limit).await?),
        // Started and Completed are decided by the supervisor, Log by the log pump.
        Check::Started | Check::Completed | Check::Log(_) => std::future::pending().await,
    }
}

/// Whether the listener on `port` that answered is the member's (or, when
/// nothing here listens on it, a remote one).
async fn owned(port: u16, group: nix::unistd::Pid) -> Result<(), Failure> {
    let seen = tokio::task::spawn_blocking(move || procfs::listener(port, group))
        .await
        .unwrap_or(Listener::Nobody);
    match seen {
        Listener::Nobody | Listener::Member => Ok(()),
        Listener::Stranger(holder) => {
            let who = holder.map_or_else(
                || "another program".to_owned(),
                |(pid, name)| format!("pid {pid} ({name})"),
            );
            Err(Failure::Stranger(format!(
                "port {port} is held by {who}, not by this member"
            )))
        }
    }
}

/// Connect to `host:port`, or to the port on 127.0.0.1 and then [::1].
async fn tcp(host: Option<&str>, port: u16) -> Result<TcpStream, String> {
    let hosts: &[&str] = match host {
        Some(h) => &[h],
        None => &["127.0.0.1", "::1"],
    };
    let mut last = String::new();
    for h in hosts {
        match TcpStream::connect((*h, port)).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = format!("{h} port {port}: {e}"),
        }
    }
    Err(last)
}

/// GET the URL and expect a 2xx status; the port it answered on.
async fn http(url: &str) -> Result<u16, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url} is not an http:// URL"))?;
    let (authority, path) = rest
        .find('/')
        .map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (
            h.trim_start_matches('[').trim_end_matches(']'),
            p.parse().map_err(|_| format!("bad port in {url}"))?,
        ),
        _ => (authority.trim_start_matches('[').trim_end_matches(']'), 80),
    };
    let mut stream = tcp(Some(host), port).await?;
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {authority}\r\nUser-Agent: orch\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut head = vec![0u8; 512];
    let mut got = 0;
    while got < head.len() && !head[..got].contains(&b'\n') {
        let n = stream
            .read(&mut head[got..])
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let line = String::from_utf8_lossy(&head[..got])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    match line.split_whitespace().nth(1) {
        Some(code) if code.starts_with('2') && code.len() == 3 => Ok(port),
        Some(_) => Err(format!("{url} answered `{}`", line.trim())),
        None => Err(format!("{url} gave no HTTP answer")),
    }
}

/// Run a command like the member would; `Ok` when it exits 0 within `limit`.
/// The error carries the end of its output.
pub async fn run(program: &Program, ctx: &Context, limit: Duration) -> Result<(), String> {
    let spec = SpawnSpec {
        program,
        env: &ctx.env,
        cwd: &ctx.cwd,
        identity: None,
    };
    let (spawned, status) = ctx.reaper.spawn_task(&spec).map_err(|e| e.to_string())?;
    let pid = spawned.pid;
    // Kills the command's process group when this future ends, however it
    // ends: a caller's timeout or a cancelled probe drops it mid-run.
    let _group = KillGroupOnDrop(pid);
    let output = async move {
        let mut text = Vec::new();
        for fd in [spawned.stdout, spawned.stderr] {
            if let Ok(mut pipe) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) {
                let mut chunk = Vec::new();
                let _ = pipe.read_to_end(&mut chunk).await;
                text.extend_from_slice(&chunk);
            }
        }
        text
    };
    match timeout(limit, async { (output.await, status.await) }).await {
        Ok((_, Ok(s))) if s.success() => Ok(()),
        Ok((text, Ok(s))) => {
            let text = String::from_utf8_lossy(&text);
            let tail = text.trim().lines().last().unwrap_or_default();
            Err(if tail.is_empty() {
                format!("`{program}` {s}")
            } else {
                format!("`{program}` {s}: {tail}")
            })
        }
        Ok((_, Err(_))) => Err(format!("`{program}` vanished")),
        Err(_) => Err(format!(
            "`{program}` took longer than {}",
            HumanDuration(limit)
        )),
    }
}

/// SIGKILL to a probe or monitor command's process group when dropped: what
/// the command left behind once it exited, or all of it when it is abandoned.
struct KillGroupOnDrop(nix::unistd::Pid);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        let _ = spawn::signal_group(self.0, nix::sys::signal::Signal::SIGKILL);
    }
}
