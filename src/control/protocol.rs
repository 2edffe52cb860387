//! The control protocol: one JSON object per line each way. A client sends
//! `{"version": 1, "request": {...}}` and reads one response line.
//! Requests larger than [`MAX_REQUEST`] bytes are refused with an error reply.

use serde::{Deserialize, Serialize};

pub const VERSION: u32 = 1;
/// Longest request line accepted.
pub const MAX_REQUEST: usize = 64 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub version: u32,
    pub request: Request,
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

/// Read one request line as a client sent it; the error reply when it is
/// too long, not a request of this shape, or of another protocol version.
pub fn decode(line: &[u8]) -> Result<Request, Response> {
    if line.len() > MAX_REQUEST {
        return Err(Response::error(format!(
            "request too large: at most {MAX_REQUEST} bytes"
        )));
    }
    match serde_json::from_slice::<Envelope>(line) {
        Ok(envelope) if envelope.version != VERSION => Err(Response::error(format!(
            "protocol version {} is not spoken here (this orch speaks {VERSION})",
            envelope.version
        ))),
        Ok(envelope) => Ok(envelope.request),
        Err(e) => Err(Response::error(format!("malformed request: {e}"))),
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
