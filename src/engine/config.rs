//! Node configuration and the node map (`clustername` / `cluster.reload`).

use std::time::Duration;

/// Where a peer node can be reached, as in stock's cluster config: an address, or
/// `false` (marked down). A node that has no entry at all is *absent*.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeAddr {
    /// No address yet (never configured). Calls wait for a reload, or fail at once when
    /// [`Config::nowaiting`] is set (stock's `__nowaiting`).
    Absent,
    /// Marked down (`false` in stock's config): calls fail at once.
    Down,
    /// `host:port`.
    At(String),
}

impl NodeAddr {
    /// `Some("host:port")` -> `At`, `None` -> `Down` (the shape of a reload entry).
    pub fn from_option(a: Option<&str>) -> NodeAddr {
        match a {
            Some(s) => NodeAddr::At(s.to_string()),
            None => NodeAddr::Down,
        }
    }
}

/// TCP keepalive settings. The cluster protocol has no heartbeat frame, so a link that a
/// NAT or load balancer silently dropped is only noticed through keepalive probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe.
    pub idle: Duration,
    /// Time between probes.
    pub interval: Duration,
    /// Unanswered probes before the kernel drops the connection.
    pub count: u32,
}

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive { idle: Duration::from_secs(60), interval: Duration::from_secs(10), count: 3 }
    }
}

/// Heartbeat on idle outbound links. The protocol has no heartbeat frame, but every stock
/// agent answers a name query, so the probe is a query for [`HEARTBEAT_NAME`] (a reserved
/// name nobody can register): any answer, `name not found` included, proves the peer alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    /// A link that received nothing for this long is probed.
    pub interval: Duration,
    /// No answer to the probe within this long: the link is declared dead, its pending
    /// calls fail at once with `LinkDown("heartbeat: ...")`, and the next call reconnects.
    pub deadline: Duration,
}

impl Heartbeat {
    /// The same value for interval and deadline (the CLI's `--heartbeat SECS`).
    pub fn every(d: Duration) -> Heartbeat {
        Heartbeat { interval: d, deadline: d }
    }
}

/// Names beginning with this are the engine's own (heartbeat probes, the TLS hello): a peer asking for one gets what it gets for any unknown name, and
/// [`Handle::register`](super::Handle::register) refuses them.
pub const RESERVED_PREFIX: &str = "__skc.";
/// The name a heartbeat probe queries (`cluster.query(node, HEARTBEAT_NAME)`).
pub const HEARTBEAT_NAME: &str = "__skc.heartbeat";

/// Default node-wide budgets: together with the buffer pool (at most ~35 MiB), a node's
/// reassembly and send buffers stay under 512 MiB whatever the number of links.
pub const DEFAULT_REASSEMBLY_TOTAL: usize = 224 << 20;
pub const DEFAULT_SEND_TOTAL: usize = 224 << 20;
/// Default bound on open links (both directions) per node.
pub const DEFAULT_MAX_LINKS: usize = 16384;

/// What a remote caller may reach on this node's listeners.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Exposure {
    /// Every address: numeric handles, `.name`, `:hex`, `@name` (stock behaviour).
    #[default]
    All,
    /// Only the names registered with [`Handle::register`](super::Handle::register)
    /// (`@name`), and name queries for them.
    Registered,
    /// Only these registered names (without the `@`).
    Names(Vec<String>),
}

impl Exposure {
    /// May a caller reach (or query) the registered name `name` (without the `@`)?
    pub fn allows_name(&self, name: &[u8]) -> bool {
        match self {
            Exposure::All | Exposure::Registered => true,
            Exposure::Names(list) => list.iter().any(|n| n.as_bytes() == name),
        }
    }
}

/// Settings of one [`Node`](super::Node). `Config::default()` is a sensible production setup.
#[derive(Clone, Debug)]
pub struct Config {
    /// The name that goes into trace tags, `(<nodename>-<node>-<session>)`. `None`: the
    /// same value stock's `cluster.nodename()` gives (hostname, bytes <= 0x20 replaced by
    /// `_`, followed by the pid).
    pub nodename: Option<String>,
    /// Stock's `__nowaiting`: a call to a node with no address fails at once instead of
    /// waiting for a reload that provides one.
    pub nowaiting: bool,
    /// Largest multi-part message (request or response) accepted from a peer, and the most
    /// bytes the multi-part messages being joined on one link may declare together. A
    /// header beyond that drops the link: the peer is broken or hostile.
    pub max_message: usize,
    /// Multi-part messages being reassembled at once on one link (more drops the link).
    pub max_multi_pending: usize,
    /// Bytes queued for sending on one link before new calls and pushes fail with
    /// [`CallError::Overloaded`](super::CallError::Overloaded). On an accepted link, the
    /// engine stops reading requests instead, so TCP pushes back on the peer.
    pub max_send_queue: usize,
    /// Requests in service (handed to the host, not yet answered) on one accepted link
    /// before the engine stops reading from it until some are answered.
    pub max_inflight: usize,
    /// TCP keepalive for every link, both directions (`None`: off).
    pub keepalive: Option<Keepalive>,
    /// A connect attempt that has not completed after this long is abandoned (its queued
    /// calls fail with `LinkDown("connect ... timed out")`) and counts as a failed attempt
    /// for the backoff. Without it, a peer behind a black hole ties the node's one attempt
    /// up for the kernel's SYN retries (about two minutes).
    pub connect_timeout: Duration,
    /// Wait after the first failed connect attempt to a node before the next; doubles per
    /// consecutive failure up to `backoff_max`. A link that was up and dropped reconnects
    /// at once on next use.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Timeout used by [`Node::call`](super::Handle::call) when the caller passes `None`.
    /// `None` here too: wait forever (stock's behaviour).
    pub default_timeout: Option<Duration>,
    /// First session number of a new link (stock: 1). Tests use a value near 0x7fffffff
    /// to see the wrap. Must be in 1..=0x7fffffff.
    pub first_session: u32,
    /// For hosts whose [`Service::after_events`](super::Service::after_events) may run
    /// long (the skynet service runs skynet messages there): when one call has run this
    /// long, a standby thread serves the node's links until it returns, and
    /// [`Service::stalled`](super::Service::stalled) is told. `None` (the default): one
    /// I/O thread, and a slow `after_events` holds up every link.
    pub standby_after: Option<Duration>,
    /// Links open at once, both directions, node-wide. A connection accepted beyond it is
    /// closed at once (counted, logged once per episode); a connect beyond it fails with
    /// `ConnectFailed`. Each listener may have its own lower bound ([`Handle::listen_with`](super::Handle::listen_with)).
    pub max_links: usize,
    /// Bytes of multi-part messages being reassembled, over all links (the per-link bound
    /// is `max_message`). A multi-part request whose header would go beyond it is answered
    /// with an error at once and its parts are dropped; the link stays up.
    pub max_reassembly_total: usize,
    /// Bytes queued to send, over all links (the per-link bound is `max_send_queue`).
    /// Beyond it, a link that already has 1 MiB (`FAIR_SHARE`) queued is the one refused
    /// (`Overloaded` for calls and pushes; reading paused for accepted links): links that
    /// drain their answers keep working.
    pub max_send_total: usize,
    /// A multi-part message (request or answer) not completed within this long closes its
    /// link: the peer left it unfinished. `None`: no limit (stock).
    pub multi_timeout: Option<Duration>,
    /// An accepted link that receives nothing for this long is closed. `None` (the
    /// default): never (stock never closes an agent).
    pub idle_timeout: Option<Duration>,
    /// Probe idle outbound links (see [`Heartbeat`]). `None` (the default): stock behaviour.
    pub heartbeat: Option<Heartbeat>,
    /// Admission: accepted connections only from these blocks (IPv4 and IPv6); one from
    /// elsewhere is closed before a byte of it is read (counted, logged once per source per
    /// interval). `None` (the default): from anywhere, as stock.
    pub allow: Option<Vec<ipnet::IpNet>>,
    /// Admission: at most this many accepted links from one source address at once.
    /// `None` (the default): no bound of its own.
    pub max_links_per_source: Option<usize>,
    /// What remote callers may reach (see [`Exposure`]). Refused requests are answered
    /// `Invalid name`, what a stock agent answers for an unknown name; refused name queries
    /// `name not found`.
    pub exposure: Exposure,
    /// TLS between native nodes (see [`TlsMode`](super::TlsMode)). Default: off (stock).
    /// A mode other than off needs the crate's `tls` feature and readable certificates.
    pub tls: super::TlsConfig,
    /// Where the engine's log lines go (`None`: stderr). Replaceable later with
    /// [`Handle::set_log`](super::Handle::set_log).
    pub log: Option<super::LogHook>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            nodename: None,
            nowaiting: false,
            max_message: 64 << 20,
            max_multi_pending: 1024,
            max_send_queue: 64 << 20,
            max_inflight: 65536,
            keepalive: Some(Keepalive::default()),
            connect_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            default_timeout: None,
            first_session: 1,
            standby_after: None,
            max_links: DEFAULT_MAX_LINKS,
            max_reassembly_total: DEFAULT_REASSEMBLY_TOTAL,
            max_send_total: DEFAULT_SEND_TOTAL,
            multi_timeout: Some(Duration::from_secs(60)),
            idle_timeout: None,
            heartbeat: None,
            allow: None,
            max_links_per_source: None,
            exposure: Exposure::All,
            tls: super::TlsConfig::default(),
            log: None,
        }
    }
}

/// What a reload did to one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeChange {
    pub name: String,
    pub old: NodeAddr,
    pub new: NodeAddr,
    /// The address differed, so an existing link (if any) was closed.
    pub changed: bool,
    /// A link to the node is connected right now (after the reload).
    pub link_up: bool,
}

/// What [`Handle::reload`](super::Handle::reload) did: one entry per node named in the
/// reload, in the order given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReloadReport {
    pub nodes: Vec<NodeChange>,
}

impl ReloadReport {
    /// The entries whose address changed.
    pub fn changed(&self) -> impl Iterator<Item = &NodeChange> {
        self.nodes.iter().filter(|c| c.changed)
    }
}

/// Stock's `cluster.nodename()`: hostname (bytes <= 0x20 -> `_`) followed by the pid.
pub fn default_nodename() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is a valid writable buffer of the length passed; gethostname writes at
    // most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len() - 1) };
    let pid = std::process::id();
    if rc != 0 {
        return format!("noname{pid}");
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let host: String = buf[..end].iter().map(|&b| if b <= 0x20 { '_' } else { b as char }).collect();
    format!("{host}{pid}")
}
