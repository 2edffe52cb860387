//! The control protocol: one JSON object per line each way. A client sends
//! `{"version": 1, "request": {...}}` and reads one response line.
//! Requests larger than [`MAX_REQUEST`] bytes are refused with an error reply;
//! [`decode`] reads a request line, whatever bytes it holds.

use serde::{Deserialize, Serialize};

pub const VERSION: u32 = 1;
/// Longest request line accepted.
pub const MAX_REQUEST: usize = 64 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub version: u32,
    pub request: Request,
}

/// Why a request line is refused.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("request too large: at most {MAX_REQUEST} bytes")]
    TooLarge,
    #[error("malformed request: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("protocol version {0} is not spoken here (this orch speaks {VERSION})")]
    Version(u32),
}

/// Read one request line (its newline included or not): at most
/// [`MAX_REQUEST`] bytes of JSON, of this protocol's version.
pub fn decode(line: &[u8]) -> Result<Envelope, DecodeError> {
    if line.len() > MAX_REQUEST {
        return Err(DecodeError::TooLarge);
    }
    let envelope: Envelope = serde_json::from_slice(line)?;
    if envelope.version != VERSION {
        return Err(DecodeError::Version(envelope.version));
    }
    Ok(envelope)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The state of the named services (all when empty).
    Status { services: Vec<String> },
    /// Why a service is not up.
    Why { service: String },
    /// Send each member its restart signal; `hard` stops and starts them instead.
    Restart { services: Vec<String>, hard: bool },
    /// Stop services, their dependents first.
    Stop { services: Vec<String> },
    /// Start services, their dependencies first.
    Start { services: Vec<String> },
    /// Stop the whole stack, as SIGTERM to `orch up` does.
    Down,
    /// Read the stack file again and apply the difference, as SIGHUP does.
    Reload,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    Status(StatusReport),
    Why {
        lines: Vec<String>,
    },
    /// Done; what orch did, for the user.
    Done {
        lines: Vec<String>,
    },
    Error {
        message: String,
        /// What to do about it, when orch knows.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        help: Option<String>,
        /// A full diagnostic (an invalid stack file's), to show as it is.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        diagnostic: Option<String>,
    },
}

impl Response {
    pub fn error(message: impl Into<String>) -> Response {
        Response::Error {
            message: message.into(),
            help: None,
            diagnostic: None,
        }
    }
}

/// `orch status --json` (a contract).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub services: Vec<ServiceStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub name: String,
    /// `up` or `down`.
    pub state: String,
    pub members: Vec<MemberStatus>,
    /// Why it is down; not part of the JSON contract.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub why: Option<String>,
    /// Milliseconds from the start of `orch up` until it was first up; not part of the JSON contract.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub up_after_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberStatus {
    pub command: String,
    pub instance: usize,
    pub state: String,
    pub pid: Option<i32>,
    pub port: Option<u16>,
    pub restarts: u32,
    pub exit_code: Option<i32>,
    /// Seconds since it became ready; not part of the JSON contract.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub uptime: Option<u64>,
    /// Resident memory of its process group in bytes; not part of the JSON contract.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub memory: Option<u64>,
    /// Why its log file cannot be written, while it cannot.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub log_error: Option<String>,
    /// A scheduled member: the exit code of its last run, when it had one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_exit: Option<i32>,
    /// A scheduled member: when its next run comes (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub next_run: Option<String>,
    /// A scheduled member: runs skipped because the previous one still ran.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub skipped: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_request_line() {
        let envelope = decode(b"{\"version\":1,\"request\":{\"type\":\"down\"}}\n").unwrap();
        assert_eq!(envelope.request, Request::Down);
    }

    #[test]
    fn refuses_what_it_cannot_serve() {
        let too_large = vec![b' '; MAX_REQUEST + 1];
        assert!(matches!(decode(&too_large), Err(DecodeError::TooLarge)));
        assert!(matches!(
            decode(b"\xff\xfe{"),
            Err(DecodeError::Malformed(_))
        ));
        let other = decode(b"{\"version\":2,\"request\":{\"type\":\"down\"}}");
        assert!(matches!(other, Err(DecodeError::Version(2))));
        assert_eq!(
            other.unwrap_err().to_string(),
            "protocol version 2 is not spoken here (this orch speaks 1)"
        );
    }
}
