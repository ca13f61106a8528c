//! `skc_config`: a node's settings, built before the node starts (after rustls-ffi's config
//! builders): `skc_config_new`, setters that check each value as it is given, then
//! `skc_node_new_with`, which copies the settings into a new node.

use super::error::{guard, skc_status, Error, Res};
use super::handle::{self, cstr, insert, lookup, out, remove, Obj};
use super::node::{self, skc_node};
use crate::engine::{Config, Heartbeat};
use parking_lot::Mutex;
use std::os::raw::c_char;
use std::sync::Arc;
use std::time::Duration;

/// A node's settings, before it starts. Opaque: create with `skc_config_new` (every setting at
/// its default), change settings with `skc_config_set_*`, start nodes with `skc_node_new_with`
/// (as many as you like), free with `skc_config_free`.
pub struct skc_config {
    _private: [u8; 0],
}

fn ctoken(c: *const skc_config) -> usize {
    c as usize
}

fn get(c: *const skc_config) -> Res<Arc<Mutex<Config>>> {
    lookup("skc_config", ctoken(c), |o| match o {
        Obj::Config(c) => Some(c.clone()),
        _ => None,
    })
}

/// Runs `f` on the live config behind `c`.
fn with(c: *mut skc_config, f: impl FnOnce(&mut Config) -> Res<()>) -> skc_status {
    guard(|| {
        let cfg = get(c)?;
        let mut g = cfg.lock();
        f(&mut g)
    })
}

fn at_least_one(v: usize, what: &str, why: &str) -> Res<usize> {
    if v == 0 {
        return Err(Error::invalid(format!("{what} must be at least 1 ({why})")));
    }
    Ok(v)
}

fn ms(v: u32) -> Duration {
    Duration::from_millis(v as u64)
}

/// `0` = off, otherwise that many milliseconds.
fn ms_or_off(v: u32) -> Option<Duration> {
    (v > 0).then(|| ms(v))
}

/// Creates a config with every setting at its default (the settings `skc_node_new` uses):
/// node name from the host name and pid, `max_links` 16384, `max_reassembly_total` and
/// `max_send_total` 224 MiB, `max_message` and `max_send_queue` 64 MiB, `max_inflight`
/// 65536, `max_multi_pending` 1024, `multi_timeout` 60 s, `connect_timeout` 5 s, no idle
/// timeout, no heartbeat. On failure `*out` is set to NULL.
///
/// Ownership: the caller owns the config and frees it with `skc_config_free` (nodes made from
/// it keep their own copy, so it may be freed at once after `skc_node_new_with`).
/// Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_config_new(out_cfg: *mut *mut skc_config) -> skc_status {
    handle::clear(out_cfg);
    guard(|| {
        if out_cfg.is_null() {
            return Err(Error::null("out"));
        }
        let t = insert(Obj::Config(Arc::new(Mutex::new(Config::default()))));
        out(out_cfg, "out", t as *mut skc_config)
    })
}

/// Frees a config. Nodes already made from it are not affected.
///
/// Ownership: takes back the config; the handle is invalid afterwards (`SKC_ERR_HANDLE` on
/// every later use, including a second free). Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_config_free(cfg: *mut skc_config) -> skc_status {
    guard(|| {
        remove("skc_config", ctoken(cfg), |o| match o {
            Obj::Config(c) => Ok(c),
            o => Err(o),
        })?;
        Ok(())
    })
}

/// The name that goes into trace tags (`skc_node_new`'s `nodename`). NULL restores the
/// default (stock's: host name + pid). An empty or non-UTF-8 name: `SKC_ERR_INVALID`.
///
/// Ownership: `nodename` is copied. Thread-safety: thread-safe (the config is locked).
#[no_mangle]
pub extern "C" fn skc_config_set_nodename(cfg: *mut skc_config, nodename: *const c_char) -> skc_status {
    with(cfg, |c| {
        c.nodename = if nodename.is_null() {
            None
        } else {
            let n = cstr(nodename, "nodename")?;
            if n.is_empty() {
                return Err(Error::invalid("nodename is empty (pass NULL for the default)"));
            }
            Some(n.to_string())
        };
        Ok(())
    })
}

/// Links open at once, both directions, node-wide (default 16384). A connection accepted
/// beyond it is closed at once (counted in `skc_health.refused_links`); a call that needs a
/// new link beyond it fails with `SKC_ERR_CONNECT`. 0: `SKC_ERR_INVALID`.
///
/// Ownership: nothing is allocated. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_config_set_max_links(cfg: *mut skc_config, n: usize) -> skc_status {
    with(cfg, |c| {
        c.max_links = at_least_one(n, "max_links", "a node with no links can do nothing")?;
        Ok(())
    })
}

/// Bytes of multi-part messages being reassembled, over all links (default 224 MiB). A
/// multi-part request beyond it is answered with an error and dropped; the link stays up.
/// 0: `SKC_ERR_INVALID`.
///
/// Ownership: nothing is allocated. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_config_set_max_reassembly_total(cfg: *mut skc_config, bytes: usize) -> skc_status {
    with(cfg, |c| {
        c.max_reassembly_total = at_least_one(bytes, "max_reassembly_total", "bytes over all links")?;
        Ok(())
    })
}

/// Bytes queued to send, over all links (default 224 MiB). Beyond it, the links holding the
/// most are refused (`SKC_ERR_OVERLOADED`; an accepted link stops being read) while links
/// that drain keep working. 0: `SKC_ERR_INVALID`.
///
/// Ownership: nothing is allocated. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_config_set_max_send_total(cfg: *mut skc_config, bytes: usize) -> skc_status {
    with(cfg, |c| {
        c.max_send_total = at_least_one(bytes, "max_send_total", "bytes over all links")?;
        Ok(())
    })
}

/// Bytes queued for sending on one link (default 64 MiB) before calls and pushes on it fail
/// with `SKC_ERR_OVERLOADED` (on an accepted link, reading stops until it drains).
/// 0: `SKC_ERR_INVALID`.
///
/// Ownership: nothing is allocated. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_config_set_max_send_queue(cfg: *mut skc_config, bytes: usize) -> skc_status {
    with(cfg, |c| {
        c.max_send_queue = at_least_one(bytes, "max_send_queue", "bytes on one link")?;
        Ok(())
    })
}

/// Largest multi-part message (request or answer) accepted from a peer, and the most bytes
/// the multi-part messages being joined on one link may declare together (default 64 MiB).
/// Beyond it the link is dropped: the peer is broken or hostile. 0: `SKC_ERR_INVALID`.
///
/// Ownership: nothing is allocated. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_config_set_max_message(cfg: *mut skc_config, bytes: usize) -> skc_status {
    with(cfg, |c| {
        c.max_message = at_least_one(bytes, "max_message", "bytes of one message")?;
        Ok(())
    })
}

/// Requests handed to the handler and not answered yet, on one accepted link (default 65536),
/// before the node stops reading that link until some are answered. 0: `SKC_ERR_INVALID`.
///
/// Ownership: nothing is allocated. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_config_set_max_inflight(cfg: *mut skc_config, n: usize) -> skc_status {
    with(cfg, |c| {
        c.max_inflight = at_least_one(n, "max_inflight", "a link with 0 would never be read")?;
        Ok(())
    })
}

/// Multi-part messages being reassembled at once on one link (default 1024); more drops the
/// link. 0: `SKC_ERR_INVALID`.
///
/// Ownership: nothing is allocated. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_config_set_max_multi_pending(cfg: *mut skc_config, n: usize) -> skc_status {
    with(cfg, |c| {
        c.max_multi_pending =
            at_least_one(n, "max_multi_pending", "0 would drop every link that gets a message above 32 KiB")?;
        Ok(())
    })
}

/// A multi-part message (request or answer) not completed within `ms` milliseconds closes its
/// link: the peer left it unfinished (default 60000). 0: off (stock's behaviour).
///
/// Ownership: nothing is allocated. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_config_set_multi_timeout_ms(cfg: *mut skc_config, ms: u32) -> skc_status {
    with(cfg, |c| {
        c.multi_timeout = ms_or_off(ms);
        Ok(())
    })
}

/// An accepted link that receives nothing for `ms` milliseconds is closed (its down event
/// says `SKC_DOWN_EXPIRED`). 0 (the default): never, as stock.
///
/// Ownership: nothing is allocated. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_config_set_idle_timeout_ms(cfg: *mut skc_config, ms: u32) -> skc_status {
    with(cfg, |c| {
        c.idle_timeout = ms_or_off(ms);
        Ok(())
    })
}

/// Heartbeat on outbound links: a link that received nothing for `interval_ms` is probed (a
/// name query for the reserved name `__skc.heartbeat`, which every stock node answers); with
/// no answer within `deadline_ms` the link is declared dead, its pending calls fail at once
/// with `SKC_ERR_LINK_DOWN` (text `heartbeat: ...`) and the next call reconnects. Both 0
/// (the default): off. One of them 0 and not the other: `SKC_ERR_INVALID`.
///
/// Ownership: nothing is allocated. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_config_set_heartbeat_ms(cfg: *mut skc_config, interval_ms: u32, deadline_ms: u32) -> skc_status {
    with(cfg, |c| {
        c.heartbeat = match (interval_ms, deadline_ms) {
            (0, 0) => None,
            (0, _) | (_, 0) => {
                return Err(Error::invalid(format!(
                    "heartbeat interval {interval_ms} ms and deadline {deadline_ms} ms: both must be 0 (off) or both above 0"
                )))
            }
            (i, d) => Some(Heartbeat { interval: ms(i), deadline: ms(d) }),
        };
        Ok(())
    })
}

/// A connect attempt not completed after `ms` milliseconds is abandoned (default 5000): the
/// calls waiting for it fail with `SKC_ERR_LINK_DOWN`. 0: `SKC_ERR_INVALID`.
///
/// Ownership: nothing is allocated. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_config_set_connect_timeout_ms(cfg: *mut skc_config, ms: u32) -> skc_status {
    with(cfg, |c| {
        if ms == 0 {
            return Err(Error::invalid("connect_timeout must be at least 1 ms"));
        }
        c.connect_timeout = self::ms(ms);
        Ok(())
    })
}

/// Creates a node with the settings of `cfg` and starts its I/O thread (otherwise as
/// `skc_node_new`). On success `*out` is the new node; on failure it is set to NULL.
///
/// Ownership: `cfg` is borrowed for the call (the node keeps a copy: later changes to `cfg`
/// do not reach it, and `cfg` may be freed at once). The caller owns the node and destroys it
/// with `skc_node_destroy`.
/// Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_node_new_with(cfg: *const skc_config, out: *mut *mut skc_node) -> skc_status {
    handle::clear(out);
    guard(|| {
        if out.is_null() {
            return Err(Error::null("out"));
        }
        let c = get(cfg)?.lock().clone();
        node::start(c, out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setters_check_values_and_node_takes_a_copy() {
        let mut c = std::ptr::null_mut();
        assert_eq!(skc_config_new(&mut c), skc_status::SKC_OK);
        assert_eq!(skc_config_set_max_links(c, 0), skc_status::SKC_ERR_INVALID);
        assert_eq!(skc_config_set_heartbeat_ms(c, 0, 5), skc_status::SKC_ERR_INVALID);
        assert_eq!(skc_config_set_connect_timeout_ms(c, 0), skc_status::SKC_ERR_INVALID);
        assert_eq!(skc_config_set_max_links(c, 7), skc_status::SKC_OK);
        assert_eq!(skc_config_set_heartbeat_ms(c, 100, 200), skc_status::SKC_OK);
        let g = get(c).unwrap().lock().clone();
        assert_eq!(g.max_links, 7);
        assert_eq!(g.heartbeat, Some(Heartbeat { interval: ms(100), deadline: ms(200) }));
        assert_eq!(skc_config_free(c), skc_status::SKC_OK);
        assert_eq!(skc_config_free(c), skc_status::SKC_ERR_HANDLE);
    }
}
