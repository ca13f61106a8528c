//! Errors a call, push or query can end with.

use std::fmt;

/// Why a call (or push, or query) did not produce an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// No answer within the call's timeout. The link stays up; a late answer is dropped.
    Timeout,
    /// The serving node answered with an error frame; the bytes are its text (e.g.
    /// `name not found`, `Invalid name`, or skynet's `...: call failed`).
    Remote(Vec<u8>),
    /// The link dropped (or was closed by a reload) while the call was pending; the text
    /// says why. The next call reconnects.
    LinkDown(String),
    /// Connecting to the node failed (now, or recently and the backoff has not expired).
    ConnectFailed(String),
    /// The link's send queue is full ([`Config::max_send_queue`](super::Config::max_send_queue)).
    Overloaded,
    /// The node is marked down in the node map.
    NodeDown(String),
    /// The node has no address and the engine does not wait (`nowaiting`, or a
    /// non-blocking call). Text as stock: `cluster node [x] is absent.`
    NodeAbsent(String),
    /// The request cannot be encoded (e.g. a name of 0 or more than 255 bytes).
    Invalid(String),
    /// A blocking call was made on the engine's I/O thread, where it would deadlock.
    WouldDeadlock,
    /// The node has shut down.
    Shutdown,
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Timeout => f.write_str("call timed out"),
            CallError::Remote(m) => write!(f, "remote error: {}", String::from_utf8_lossy(m)),
            CallError::LinkDown(r) => write!(f, "link down: {r}"),
            CallError::ConnectFailed(r) => write!(f, "connect failed: {r}"),
            CallError::Overloaded => f.write_str("overloaded: link send queue is full"),
            CallError::NodeDown(n) => write!(f, "cluster node [{n}] is down."),
            CallError::NodeAbsent(n) => write!(f, "cluster node [{n}] is absent."),
            CallError::Invalid(m) => write!(f, "invalid request: {m}"),
            CallError::WouldDeadlock => f.write_str("blocking call on the engine I/O thread"),
            CallError::Shutdown => f.write_str("node is shut down"),
        }
    }
}

impl std::error::Error for CallError {}
