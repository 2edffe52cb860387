//! The client side: find the running stack's socket from its file, send one
//! request, read one response.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use super::protocol::{Envelope, Request, Response, VERSION};

/// Why a request got no answer.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ClientError {
    #[error("no running stack for {}", file.display())]
    #[diagnostic(help("start it with `orch up {}`", file.display()))]
    NotRunning { file: PathBuf },
    #[error("cannot talk to the running stack: {0}")]
    Io(#[from] std::io::Error),
    #[error("the running stack sent an answer orch cannot read: {0}")]
    Garbled(#[from] serde_json::Error),
}

/// Send `request` to the stack of `file` and wait for its answer.
pub fn call(file: &Path, request: Request) -> Result<Response, ClientError> {
    let path = crate::paths::socket_path(file)?;
    let mut stream = UnixStream::connect(&path).map_err(|_| ClientError::NotRunning {
        file: file.to_path_buf(),
    })?;
    let mut line = serde_json::to_vec(&Envelope {
        version: VERSION,
        request,
    })?;
    line.push(b'\n');
    // A server that refuses the request may close its end before reading all
    // of it; its answer is still there to read.
    if let Err(e) = stream.write_all(&line) {
        if !matches!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
        ) {
            return Err(e.into());
        }
    }
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    Ok(serde_json::from_str(&answer)?)
}
