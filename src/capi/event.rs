//! Link events: the host's callback is told of every link of the node going up or down.

use super::error::{guard, quiet, skc_status};
use super::node::{get, in_callback, skc_node};
use super::slot::Slot;
use crate::engine::{DownReason, LinkDir, LinkEvent, LinkHook};
use std::os::raw::{c_char, c_void};
use std::sync::Arc;

/// Which way a link was made.
/// cbindgen:prefix-with-name=false
/// cbindgen:rename-all=None
#[allow(non_camel_case_types)]
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum skc_link_dir {
    /// A link this node opened to a peer node of its node map (stock's `clustersender`).
    SKC_LINK_OUTBOUND = 0,
    /// A link a peer opened to one of this node's listeners (stock's `clusteragent`).
    SKC_LINK_INBOUND = 1,
}

/// Why a link went down (`SKC_DOWN_NONE` in an event that says the link is up). Values are
/// stable: new reasons are only ever added, so treat an unknown value as "other".
/// cbindgen:prefix-with-name=false
/// cbindgen:rename-all=None
#[allow(non_camel_case_types)]
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum skc_down_reason {
    /// The link is up.
    SKC_DOWN_NONE = 0,
    /// The peer closed the connection.
    SKC_DOWN_PEER_CLOSED = 1,
    /// A read or write failed (connection reset, broken pipe, ...).
    SKC_DOWN_IO = 2,
    /// Connecting failed, or did not complete within the connect timeout.
    SKC_DOWN_CONNECT_FAILED = 3,
    /// No answer to a heartbeat probe within its deadline (`skc_config_set_heartbeat_ms`).
    SKC_DOWN_HEARTBEAT = 4,
    /// The peer left a multi-part message unfinished past the multi-part timeout, or sent
    /// nothing for the idle timeout.
    SKC_DOWN_EXPIRED = 5,
    /// The peer broke the protocol (an undecodable frame, a limit exceeded).
    SKC_DOWN_PROTOCOL = 6,
    /// `skc_reload` changed or removed the peer node's address.
    SKC_DOWN_RELOAD = 7,
    /// The node shut down.
    SKC_DOWN_SHUTDOWN = 8,
    /// TLS: the handshake failed or timed out, or a plain-text peer was refused (tls=require).
    SKC_DOWN_TLS = 9,
}

/// One link going up or down, as the link callback sees it. Every pointer in it is borrowed
/// for the duration of the callback only: copy what you keep.
#[repr(C)]
pub struct skc_link_event {
    /// Which way the link was made.
    pub dir: skc_link_dir,
    /// Outbound: the peer node's name in the node map. Inbound: `""` (a stock node does not
    /// say who it is). NUL-terminated, never NULL.
    pub node: *const c_char,
    /// Bytes of `node` without the NUL.
    pub node_len: usize,
    /// The peer's address as `"ip:port"` (NUL-terminated), or NULL when unknown.
    pub peer: *const c_char,
    /// Identifies the link within the node; for an inbound link, the `link` of the
    /// `skc_request`s that arrive on it.
    pub link: u64,
    /// True: the link is up (connected, or accepted). False: it went down.
    pub up: bool,
    /// Why it went down (`SKC_DOWN_NONE` when `up`).
    pub reason: skc_down_reason,
    /// The reason as text, e.g. `"heartbeat: no answer to a probe within 200ms"`
    /// (NUL-terminated, never NULL; `""` when `up`).
    pub reason_text: *const c_char,
    /// Bytes of `reason_text` without the NUL.
    pub reason_len: usize,
}

/// The link callback given to `skc_set_link_callback`.
///
/// Runs on the node's I/O thread, or on the thread whose action closed the link (a down
/// event with `SKC_DOWN_RELOAD` runs inside that thread's `skc_reload`), one event at a time
/// per thread: it must not block. It must not unwind (no C++ exception may leave it). It may
/// call the node (push, `skc_call_async`, `skc_set_link_callback`, ...); a blocking `skc_call`
/// on the I/O thread and `skc_node_destroy` of its own node fail with `SKC_ERR_DEADLOCK`.
/// Ownership: `ev` and everything it points to are borrowed for the call.
pub type skc_link_cb = Option<unsafe extern "C" fn(ud: *mut c_void, ev: *const skc_link_event)>;

type Cb = unsafe extern "C" fn(*mut c_void, *const skc_link_event);

/// A node's link callback (see `slot.rs`).
pub(crate) type LinkSlot = Slot<Cb>;

/// The engine hook that reports to `slot`'s callback for node `token`.
pub(crate) fn hook(slot: &Arc<LinkSlot>, token: usize) -> LinkHook {
    let slot = Arc::downgrade(slot);
    Arc::new(move |ev: &LinkEvent| {
        if let Some(s) = slot.upgrade() {
            quiet(|| run(&s, token, ev));
        }
    })
}

fn run(slot: &LinkSlot, token: usize, ev: &LinkEvent) {
    let Some((cb, ud, _running)) = slot.enter(token) else { return };
    let mut node = ev.node.as_bytes().to_vec();
    node.push(0);
    let peer = ev.peer.map(|p| {
        let mut v = p.to_string().into_bytes();
        v.push(0);
        v
    });
    let (reason, mut text) = match &ev.down {
        None => (skc_down_reason::SKC_DOWN_NONE, Vec::new()),
        Some(r) => (reason_code(r), r.to_string().into_bytes()),
    };
    let reason_len = text.len();
    text.push(0);
    let e = skc_link_event {
        dir: match ev.dir {
            LinkDir::Outbound => skc_link_dir::SKC_LINK_OUTBOUND,
            LinkDir::Inbound => skc_link_dir::SKC_LINK_INBOUND,
        },
        node: node.as_ptr().cast(),
        node_len: node.len() - 1,
        peer: peer.as_ref().map_or(std::ptr::null(), |p| p.as_ptr().cast()),
        link: ev.link,
        up: ev.down.is_none(),
        reason,
        reason_text: text.as_ptr().cast(),
        reason_len,
    };
    // SAFETY: the host's callback with its own `ud`, and an event whose pointers (into
    // `node`, `peer`, `text`, all NUL-terminated) live until it returns (documented as
    // borrowed for the call).
    in_callback(token, || unsafe { cb(ud as *mut c_void, &e) });
}

pub(crate) fn reason_code(r: &DownReason) -> skc_down_reason {
    use skc_down_reason::*;
    match r {
        DownReason::PeerClosed => SKC_DOWN_PEER_CLOSED,
        DownReason::Io(_) => SKC_DOWN_IO,
        DownReason::ConnectFailed(_) => SKC_DOWN_CONNECT_FAILED,
        DownReason::Heartbeat(_) => SKC_DOWN_HEARTBEAT,
        DownReason::Expired(_) => SKC_DOWN_EXPIRED,
        DownReason::Protocol(_) => SKC_DOWN_PROTOCOL,
        DownReason::Reload => SKC_DOWN_RELOAD,
        DownReason::Shutdown => SKC_DOWN_SHUTDOWN,
        DownReason::Tls(_) => SKC_DOWN_TLS,
    }
}

/// Sets (or replaces) the callback told of every link of the node going up or down: outbound
/// links (connected; closed by the peer, an I/O error, a failed connect, the heartbeat, a
/// reload) and accepted links (accepted; closed by the peer, an error, a timeout). Links
/// closed by the node's own destroy are not reported. A NULL `cb` clears it (`ud` is then
/// ignored). Connections refused by a limit never become links and are not reported (see
/// `skc_health.refused_links`).
///
/// When this returns, the previous callback is not running on any other thread and will not
/// be called again, so its `ud` may be freed; called from inside the link callback itself,
/// it does not wait (other threads may still be finishing a call of the old callback).
///
/// Ownership: `ud` stays the caller's; it must stay valid until the callback is replaced or
/// cleared, or the node destroyed (the library never frees it).
/// Thread-safety: thread-safe. Waits for calls of the old callback running on other threads,
/// which must not block, so it does not block for long.
#[no_mangle]
pub extern "C" fn skc_set_link_callback(node: *mut skc_node, cb: skc_link_cb, ud: *mut c_void) -> skc_status {
    guard(|| {
        let n = get(node)?;
        n.links.set(n.token, cb.map(|f| (f, ud as usize)));
        Ok(())
    })
}
