//! The control socket of a running stack: accepts connections from the same
//! user (or root) only, reads one request per line, hands it to the
//! supervisor as a message and writes back its answer. It holds no state of
//! its own.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use super::protocol::{decode, Request, Response, MAX_REQUEST};

/// A request with the way back to its client.
pub type Call = (Request, oneshot::Sender<Response>);

/// Why the socket could not be opened.
#[derive(Debug)]
pub enum BindError {
    /// Another orch serves this stack.
    InUse(PathBuf),
    Io(io::Error),
}

/// Bind the socket at `path` with mode 0600, replacing a stale one left by an
/// orch that died.
pub fn bind(path: &Path) -> Result<std::os::unix::net::UnixListener, BindError> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
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

/// Serve connections until the supervisor goes away.
pub async fn serve(listener: UnixListener, calls: mpsc::Sender<Call>) {
    let me = nix::unistd::Uid::current().as_raw();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let allowed = stream
            .peer_cred()
            .is_ok_and(|cred| cred.uid() == me || cred.uid() == 0);
        let calls = calls.clone();
        tokio::spawn(async move {
            let _ = connection(stream, allowed, calls).await;
        });
    }
}

async fn connection(
    stream: UnixStream,
    allowed: bool,
    calls: mpsc::Sender<Call>,
) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let reply = |response: &Response| {
        let mut line = serde_json::to_vec(response).expect("responses are plain data");
        line.push(b'\n');
        line
    };
    // The request is read (up to the cap) before any answer, so a client
    // that is refused still finds the reply instead of a closed socket.
    let mut reader = BufReader::new(read.take(MAX_REQUEST as u64 + 1));
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).await?;
    let response = if !allowed {
        Response::error("permission denied: this stack belongs to another user")
    } else {
        match decode(&line) {
            Ok(envelope) => {
                let (tx, rx) = oneshot::channel();
                if calls.send((envelope.request, tx)).await.is_err() {
                    Response::error("the stack is shutting down")
                } else {
                    rx.await
                        .unwrap_or(Response::error("the stack is shutting down"))
                }
            }
            Err(e) => Response::error(e.to_string()),
        }
    };
    write.write_all(&reply(&response)).await
}
