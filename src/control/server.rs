//! The control socket of a running stack: accepts connections from the same
//! user (or root) only, reads one request per line, hands it to the
//! supervisor as a message and writes back its answer. It holds no state of
//! its own. Each connection is its own task, with a time limit, so a client
//! that never finishes its request (or never reads the answer) holds up
//! nothing else; when orch exits, every request it took gets its answer.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use super::protocol::{decode, Request, Response, MAX_REQUEST};

/// A request with the way back to its client.
pub type Call = (Request, oneshot::Sender<Response>);

/// How long a client may take to send its request, and to read the answer.
const CLIENT_TIME: Duration = Duration::from_secs(10);
/// Once orch stops, how long a client's request that was already sent has
/// to arrive (a new connection is seen readable on the next turn).
const SENT_ALREADY: Duration = Duration::from_millis(100);

/// Why the socket could not be opened.
#[derive(Debug)]
pub enum BindError {
    /// Another orch serves this stack.
    InUse(PathBuf),
    Io(io::Error),
}

/// Bind the socket at `path` with mode 0600, replacing a stale one left by an
/// orch that died.
///
/// `stale` says the socket is known to be an old one: the orch that made it
/// is dead. It may still take connections for a moment (a process that is
/// killed releases its descriptors only once its last thread has exited),
/// but nothing will answer them.
pub fn bind(path: &Path, stale: bool) -> Result<std::os::unix::net::UnixListener, BindError> {
    if path.exists() {
        if !stale && std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(BindError::InUse(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(BindError::Io)?;
    }
    let listener = std::os::unix::net::UnixListener::bind(path).map_err(BindError::Io)?;
    listener.set_nonblocking(true).map_err(BindError::Io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(BindError::Io)?;
    Ok(listener)
}

/// The serving task.
pub struct Server {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    path: PathBuf,
}

impl Server {
    /// Serve `listener` (bound at `path`), handing requests to `calls`.
    pub fn start(listener: UnixListener, calls: mpsc::Sender<Call>, path: PathBuf) -> Server {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(serve(listener, calls, stopped));
        Server { stop, task, path }
    }

    /// Take no new connection (the socket goes away); those open go on.
    pub fn stop_accepting(&self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = self.stop.send(true);
    }

    /// Wait, for at most `limit`, until every open connection got its answer.
    pub async fn finish(self, limit: Duration) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(limit, &mut task).await.is_err() {
            task.abort();
        }
    }
}

async fn serve(
    listener: UnixListener,
    calls: mpsc::Sender<Call>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                admit(&mut connections, stream, &calls, &stopped);
                while connections.try_join_next().is_some() {}
            }
            _ = stopped.changed() => break,
        }
    }
    // Clients the kernel queued before the socket went away are answered
    // too: closing the listener would reset them unanswered.
    if let Ok(listener) = listener.into_std() {
        while let Ok((stream, _)) = listener.accept() {
            let stream = stream
                .set_nonblocking(true)
                .and_then(|()| UnixStream::from_std(stream));
            if let Ok(stream) = stream {
                admit(&mut connections, stream, &calls, &stopped);
            }
        }
    }
    drop(calls);
    while connections.join_next().await.is_some() {}
}

/// Serve one client in a task of its own, with a time limit.
fn admit(
    connections: &mut JoinSet<()>,
    stream: UnixStream,
    calls: &mpsc::Sender<Call>,
    stopped: &watch::Receiver<bool>,
) {
    let me = nix::unistd::Uid::current().as_raw();
    let allowed = stream
        .peer_cred()
        .is_ok_and(|cred| cred.uid() == me || cred.uid() == 0);
    let (calls, stopped) = (calls.clone(), stopped.clone());
    connections.spawn(async move {
        let served = connection(stream, allowed, calls, stopped);
        let _ = tokio::time::timeout(CLIENT_TIME * 2, served).await;
    });
}

async fn connection(
    stream: UnixStream,
    allowed: bool,
    calls: mpsc::Sender<Call>,
    mut stopped: watch::Receiver<bool>,
) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    // The request is read (up to the cap) before any answer, so a client
    // that is refused still finds the reply instead of a closed socket.
    let mut reader = BufReader::new(read.take(MAX_REQUEST as u64 + 1));
    let mut line = Vec::new();
    // A client that has not sent its request when orch stops is not waited
    // for; one whose request is already there is still served.
    let gone = async {
        let _ = stopped.wait_for(|stopped| *stopped).await;
        tokio::time::sleep(SENT_ALREADY).await;
    };
    let read = tokio::select! {
        read = tokio::time::timeout(CLIENT_TIME, reader.read_until(b'\n', &mut line)) => Some(read),
        () = gone => None,
    };
    let response = if read.is_none() {
        Response::error("the stack has stopped")
    } else if read.is_some_and(|r| r.is_err()) {
        Response::error(format!(
            "no whole request within {}s",
            CLIENT_TIME.as_secs()
        ))
    } else if !allowed {
        Response::error("permission denied: this stack belongs to another user")
    } else {
        match decode(&line) {
            Ok(envelope) => {
                let request = envelope.request;
                let gone = match &request {
                    Request::Down => Response::Done {
                        lines: vec!["the stack has stopped".into()],
                    },
                    _ => Response::error("the stack has stopped"),
                };
                let (tx, rx) = oneshot::channel();
                if calls.send((request, tx)).await.is_err() {
                    gone
                } else {
                    rx.await.unwrap_or(gone)
                }
            }
            Err(e) => Response::error(e.to_string()),
        }
    };
    let mut reply = serde_json::to_vec(&response).expect("responses are plain data");
    reply.push(b'\n');
    tokio::time::timeout(CLIENT_TIME, write.write_all(&reply))
        .await
        .unwrap_or(Ok(()))
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead as _, Write as _};

    use super::*;

    #[test]
    fn a_socket_that_takes_connections_is_in_use_unless_known_stale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stack.sock");
        // A dying orch's socket: still open, nobody answering.
        let old = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert!(matches!(bind(&path, false), Err(BindError::InUse(_))));
        let new = bind(&path, true).expect("a stale socket is replaced");
        drop(old);
        assert!(std::os::unix::net::UnixStream::connect(&path).is_ok());
        drop(new);
    }

    #[test]
    fn clients_queued_when_the_server_stops_are_answered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stack.sock");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let clients = runtime.block_on(async {
            let listener = UnixListener::from_std(bind(&path, false).unwrap()).unwrap();
            let (calls, requests) = mpsc::channel(8);
            let server = Server::start(listener, calls, path.clone());
            // The serving task has not run yet: these wait in the kernel's queue.
            let clients: Vec<std::os::unix::net::UnixStream> = (0..20)
                .map(|_| {
                    let mut client = std::os::unix::net::UnixStream::connect(&path).unwrap();
                    client
                        .write_all(b"{\"version\":1,\"request\":{\"type\":\"down\"}}\n")
                        .unwrap();
                    client
                })
                .collect();
            server.stop_accepting();
            // The supervisor has gone.
            drop(requests);
            server.finish(Duration::from_secs(10)).await;
            clients
        });
        for client in clients {
            let mut answer = String::new();
            std::io::BufReader::new(client)
                .read_line(&mut answer)
                .unwrap();
            assert_eq!(
                answer,
                "{\"type\":\"done\",\"lines\":[\"the stack has stopped\"]}\n"
            );
        }
    }
}
