//! Link events: a host learns when a link goes up or down as it happens, instead of
//! discovering a dead peer through a call's timeout.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

/// Which way a link was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkDir {
    /// A link this node opened to a peer node (a `clustersender` in stock's terms).
    Outbound,
    /// A link a peer opened to one of this node's listeners (a `clusteragent`).
    Inbound,
}

/// Why a link went down. `Display` gives the text a log line shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DownReason {
    /// The peer closed the connection (EOF).
    PeerClosed,
    /// A read or write failed (reset, broken pipe...): the OS error text.
    Io(String),
    /// Connecting failed or did not complete within `Config::connect_timeout`.
    ConnectFailed(String),
    /// No answer to a heartbeat probe within its deadline: the peer is frozen or the path
    /// to it is dead (`Config::heartbeat`).
    Heartbeat(String),
    /// The peer left a multi-part message unfinished past `Config::multi_timeout`, or sent
    /// nothing for `Config::idle_timeout`.
    Expired(String),
    /// The peer broke the protocol (a frame that cannot be decoded, a limit exceeded).
    Protocol(String),
    /// TLS: the handshake failed (a certificate from another CA, naming another node,
    /// expired; not TLS at all), did not complete in time, or a plain-text peer was refused
    /// (`TlsMode::Require`).
    Tls(String),
    /// `reload` changed or removed the node's address.
    Reload,
    /// The node shut down.
    Shutdown,
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownReason::PeerClosed => f.write_str("peer closed the connection"),
            DownReason::Io(e) => write!(f, "i/o error: {e}"),
            DownReason::ConnectFailed(e) => write!(f, "{e}"),
            DownReason::Heartbeat(e) => write!(f, "heartbeat: {e}"),
            DownReason::Expired(e) => write!(f, "{e}"),
            DownReason::Protocol(e) => write!(f, "protocol error: {e}"),
            DownReason::Tls(e) => write!(f, "{e}"),
            DownReason::Reload => f.write_str("node address changed"),
            DownReason::Shutdown => f.write_str("node shut down"),
        }
    }
}

/// One link going up or down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkEvent {
    pub dir: LinkDir,
    /// Outbound: the peer node's name in the node map. Inbound: empty (a stock sender does
    /// not say who it is).
    pub node: String,
    /// The peer's socket address.
    pub peer: Option<SocketAddr>,
    /// Identifies the link within the node (the `link` of [`Inbound`](super::Inbound) for
    /// accepted links).
    pub link: u64,
    /// `None`: the link is up. `Some(reason)`: it went down.
    pub down: Option<DownReason>,
}

impl LinkEvent {
    pub fn is_up(&self) -> bool {
        self.down.is_none()
    }
}

impl fmt::Display for LinkEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let peer = self.peer.map_or_else(|| "?".to_string(), |p| p.to_string());
        let who = match self.dir {
            LinkDir::Outbound => format!("link to [{}] ({peer})", self.node),
            LinkDir::Inbound => format!("accepted link from {peer}"),
        };
        match &self.down {
            None => write!(f, "{who} up"),
            Some(r) => write!(f, "{who} down: {r}"),
        }
    }
}

/// The host's link-event hook. Runs on the engine's I/O thread (or on the thread whose
/// action closed the link, e.g. a reload): short, never blocking, like a service handler.
/// A panic in it is caught and logged.
pub type LinkHook = Arc<dyn Fn(&LinkEvent) + Send + Sync>;
