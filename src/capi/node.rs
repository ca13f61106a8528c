//! `skc_node`: create / destroy a node, its node map, listening, registered names.

use super::error::{guard, skc_status, Error, Res};
use super::event::{self, LinkSlot};
use super::handle::{self, cstr, lookup, out, remove, Obj};
use super::log::{self, LogSlot};
use crate::engine::{Config, Handle, Node, NodeMap};
use parking_lot::Mutex;
use std::cell::Cell;
use std::os::raw::c_char;
use std::sync::Arc;

/// A node of the cluster: one I/O thread, its listeners and its links to peer nodes.
/// Opaque: create with `skc_node_new`, destroy with `skc_node_destroy`.
pub struct skc_node {
    _private: [u8; 0],
}

pub(crate) struct NodeObj {
    pub token: usize,
    pub node: Mutex<Option<Node>>,
    pub handle: Handle,
    /// The host's link callback (`skc_set_link_callback`); the engine's hook reports to it.
    pub links: Arc<LinkSlot>,
    /// The host's log callback (`skc_set_log_callback`; none: stderr).
    pub logs: Arc<LogSlot>,
}

thread_local! {
    /// The token of the node whose callback (service handler, call completion) runs on this
    /// thread right now, 0 outside callbacks.
    static IN_CALLBACK: Cell<usize> = const { Cell::new(0) };
}

/// Runs `f` marked as a callback of node `token`.
pub(crate) fn in_callback<R>(token: usize, f: impl FnOnce() -> R) -> R {
    let prev = IN_CALLBACK.with(|c| c.replace(token));
    struct Reset(usize);
    impl Drop for Reset {
        fn drop(&mut self) {
            IN_CALLBACK.with(|c| c.set(self.0));
        }
    }
    let _r = Reset(prev);
    f()
}

pub(crate) fn node_token(p: *const skc_node) -> usize {
    p as usize
}

/// The live node behind a handle.
pub(crate) fn get(p: *const skc_node) -> Res<Arc<NodeObj>> {
    lookup("skc_node", node_token(p), |o| match o {
        Obj::Node(n) => Some(n.clone()),
        _ => None,
    })
}

/// Creates a node and starts its I/O thread. It calls nothing until it has a node map
/// (`skc_reload` / `skc_reload_text`) and serves nothing until `skc_listen` and `skc_serve`.
///
/// `nodename`: the name that goes into trace tags; NULL for stock's default (hostname + pid).
/// On success `*out` is the new node; on failure it is set to NULL.
///
/// Ownership: the caller owns the node and must destroy it with `skc_node_destroy`
/// (exactly once). `nodename` is copied.
/// Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_node_new(nodename: *const c_char, out: *mut *mut skc_node) -> skc_status {
    handle::clear(out);
    guard(|| {
        if out.is_null() {
            return Err(Error::null("out"));
        }
        let nodename = if nodename.is_null() { None } else { Some(cstr(nodename, "nodename")?.to_string()) };
        start(Config { nodename, ..Config::default() }, out)
    })
}

/// Starts a node with `cfg` and registers it; its token goes to `*out`.
pub(crate) fn start(cfg: Config, out: *mut *mut skc_node) -> Res<()> {
    let node = Node::new(cfg).map_err(|e| {
        // InvalidInput: a setting that cannot work (the TLS files); the text names it.
        let code = match e.kind() {
            std::io::ErrorKind::InvalidInput => skc_status::SKC_ERR_INVALID,
            _ => skc_status::SKC_ERR_IO,
        };
        Error::new(code, format!("cannot start node: {e}"))
    })?;
    let t = handle::new_token();
    let handle = node.handle();
    let links = Arc::new(LinkSlot::default());
    handle.set_link_hook(Some(event::hook(&links, t)));
    let logs = Arc::new(LogSlot::default());
    handle.set_log(Some(log::hook(&logs, t)));
    let obj = NodeObj { token: t, node: Mutex::new(Some(node)), handle, links, logs };
    handle::insert_at(t, Obj::Node(Arc::new(obj)));
    handle::out(out, "out", t as *mut skc_node)
}

/// Destroys a node: fails its pending calls (`SKC_ERR_LINK_DOWN`, "node shut down"; their
/// callbacks run before this returns), closes every link and listener, drops the responders
/// of requests it has not answered yet, and joins its I/O thread.
///
/// Errors: `SKC_ERR_HANDLE` for a node already destroyed (double destroy is detected and
/// harmless), `SKC_ERR_NULL` for NULL, `SKC_ERR_DEADLOCK` when called from one of this
/// node's own callbacks (the node is then left alive).
///
/// Ownership: takes back the node; the handle is invalid afterwards (every later use returns
/// `SKC_ERR_HANDLE`). Responders of this node become invalid too. No link callback of this
/// node runs after it returns (its `ud` may be freed).
/// Thread-safety: thread-safe; calls still running on other threads return `SKC_ERR_SHUTDOWN`
/// or `SKC_ERR_LINK_DOWN`.
#[no_mangle]
pub extern "C" fn skc_node_destroy(node: *mut skc_node) -> skc_status {
    guard(|| {
        let t = node_token(node);
        if t != 0 && IN_CALLBACK.with(|c| c.get()) == t {
            get(node)?;
            return Err(Error::new(
                skc_status::SKC_ERR_DEADLOCK,
                "skc_node_destroy called from the node's own callback",
            ));
        }
        let obj = remove("skc_node", t, |o| match o {
            Obj::Node(n) => Ok(n),
            o => Err(o),
        })?;
        // No link callback runs after this returns (nor one started by a thread still inside
        // a call on this node), so the host may free its `ud`.
        obj.links.set(t, None);
        obj.logs.set(t, None);
        let n = obj.node.lock().take();
        // Shuts down, joins the I/O thread.
        drop(n);
        // Unanswered requests of this node: dropping a responder answers "no response" on a
        // closed link, which is discarded.
        let stale = handle::remove_where(|o| matches!(o, Obj::Responder(n, _) if *n == t));
        drop(stale);
        Ok(())
    })
}

/// Listens for peer nodes on `addr` (`"host:port"`; port 0 picks a free port). On success the
/// bound port is written to `*port` (when `port` is not NULL). Accepted links are served by the
/// handler set with `skc_serve` (without one, calls are answered with the error "no service").
///
/// Ownership: `addr` is borrowed for the call. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_listen(node: *mut skc_node, addr: *const c_char, port: *mut u16) -> skc_status {
    guard(|| {
        let n = get(node)?;
        let a = cstr(addr, "addr")?;
        let sa = n.handle.listen(a).map_err(|e| Error::new(skc_status::SKC_ERR_IO, format!("listen on {a}: {e}")))?;
        if !port.is_null() {
            out(port, "port", sa.port())?;
        }
        Ok(())
    })
}

/// `skc_listen` with a bound on the links this listener keeps open at once, like stock's
/// `cluster.open(port, maxclient)`: a connection beyond `max_clients` is accepted and closed
/// at once (counted in `skc_health.refused_links`); the links already open keep working.
/// The node-wide bound (`skc_config_set_max_links`) applies too. `max_clients` 0:
/// `SKC_ERR_INVALID` (use `skc_listen` for no per-listener bound).
///
/// Ownership: `addr` is borrowed for the call. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_listen_max(
    node: *mut skc_node,
    addr: *const c_char,
    max_clients: usize,
    port: *mut u16,
) -> skc_status {
    guard(|| {
        let n = get(node)?;
        let a = cstr(addr, "addr")?;
        if max_clients == 0 {
            return Err(Error::invalid("max_clients must be at least 1 (skc_listen: no per-listener bound)"));
        }
        let sa = n
            .handle
            .listen_with(a, Some(max_clients))
            .map_err(|e| Error::new(skc_status::SKC_ERR_IO, format!("listen on {a}: {e}")))?;
        if !port.is_null() {
            out(port, "port", sa.port())?;
        }
        Ok(())
    })
}

/// Updates the node map, like `cluster.reload`: for each `i < n`, node `names[i]` is at
/// `addrs[i]` (`"host:port"`), or marked down when `addrs[i]` is NULL. Nodes not named keep
/// their entry. A node whose address changed loses its link (its pending calls fail with
/// `SKC_ERR_LINK_DOWN`); the next call connects to the new address. Calls waiting for an
/// address are woken.
///
/// Ownership: the arrays and strings are borrowed for the call. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_reload(
    node: *mut skc_node,
    names: *const *const c_char,
    addrs: *const *const c_char,
    n: usize,
) -> skc_status {
    guard(|| {
        let nd = get(node)?;
        if n == 0 {
            return Ok(());
        }
        if names.is_null() || addrs.is_null() {
            return Err(Error::null("names or addrs"));
        }
        if n > (isize::MAX as usize) / std::mem::size_of::<*const c_char>() {
            return Err(Error::new(skc_status::SKC_ERR_SIZE, "n is out of range"));
        }
        // SAFETY: both arrays are non-NULL and documented to hold `n` pointers.
        let (ns, as_) = unsafe { (std::slice::from_raw_parts(names, n), std::slice::from_raw_parts(addrs, n)) };
        let mut map = Vec::with_capacity(n);
        for i in 0..n {
            let name = cstr(ns[i], "names[i]")?;
            let a = if as_[i].is_null() { None } else { Some(cstr(as_[i], "addrs[i]")?) };
            map.push((name, a));
        }
        nd.handle.reload(&map);
        Ok(())
    })
}

/// `skc_reload` from text in stock's cluster config format, e.g.
/// `"db = \"127.0.0.1:2528\"\ndb2 = false\n__nowaiting = true"`, read with stock `clusterd`'s
/// rules: `name = "host:port"` or `["any name"] = ...`, `false` marks a node down, keys
/// beginning with `__` are options (`__nowaiting`: any value but false turns it on), `--`
/// comments. Nothing is applied when the text does not parse (`SKC_ERR_INVALID`, the text
/// names the line).
///
/// Ownership: `text` is borrowed for the call. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_reload_text(node: *mut skc_node, text: *const c_char) -> skc_status {
    guard(|| {
        let nd = get(node)?;
        let t = cstr(text, "text")?;
        let map = NodeMap::parse(t).map_err(Error::invalid)?;
        if let Some(w) = map.nowaiting {
            nd.handle.set_nowaiting(w);
        }
        nd.handle.reload(&map.reload_entries());
        Ok(())
    })
}

/// Stock's `__nowaiting`: when true, a call to a node that has no address fails at once with
/// `SKC_ERR_NODE_ABSENT` instead of waiting (until its timeout) for a reload that gives one.
///
/// Ownership: nothing is allocated. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_set_nowaiting(node: *mut skc_node, on: bool) -> skc_status {
    guard(|| {
        get(node)?.handle.set_nowaiting(on);
        Ok(())
    })
}

/// Registers `name` (without the `@`) for the numeric address `id`, like `cluster.register`:
/// calls to `@name` reach the handler with `id`, and `skc_query` / `cluster.query` answer `id`.
/// Names beginning with `__skc.` are reserved for the engine's own probes: `SKC_ERR_INVALID`.
///
/// Ownership: `name` is copied. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_register(node: *mut skc_node, name: *const c_char, id: u32) -> skc_status {
    guard(|| {
        let nd = get(node)?;
        let n = cstr(name, "name")?;
        if n.is_empty() || n.len() > 255 {
            return Err(Error::invalid("name length must be between 1 and 255"));
        }
        nd.handle.register(n, id)?;
        Ok(())
    })
}

/// Removes a name registered with `skc_register` (no error if it was not registered).
///
/// Ownership: `name` is borrowed for the call. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_unregister(node: *mut skc_node, name: *const c_char) -> skc_status {
    guard(|| {
        let nd = get(node)?;
        nd.handle.unregister(cstr(name, "name")?);
        Ok(())
    })
}

/// Reads the TLS certificate files again (the paths given to `skc_config_set_tls`), without a
/// restart: links made from now on use them, links already up keep theirs. When a file is
/// missing or unusable the certificates in use stay and `SKC_ERR_INVALID` is returned, its
/// text naming the file and what is wrong (the node also logs it). A node with TLS off: nothing
/// to read, `SKC_OK`.
///
/// Ownership: nothing is allocated. Thread-safety: thread-safe (it reads files: call it from
/// a thread that may block for that long, not from a signal handler).
#[no_mangle]
pub extern "C" fn skc_node_reload_tls(node: *mut skc_node) -> skc_status {
    guard(|| {
        let nd = get(node)?;
        nd.handle.reload_tls().map_err(Error::invalid)
    })
}

/// Writes to `*up` whether a link to peer node `peer` is connected right now.
///
/// Ownership: `peer` is borrowed for the call. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_link_up(node: *mut skc_node, peer: *const c_char, up: *mut bool) -> skc_status {
    guard(|| {
        let nd = get(node)?;
        let p = cstr(peer, "peer")?;
        out(up, "up", nd.handle.link_up(p))
    })
}
