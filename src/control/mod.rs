//! Steering a running stack: the protocol, the socket server inside
//! `orch up`, and the client the other commands use.

pub mod client;
pub mod protocol;
pub mod server;
