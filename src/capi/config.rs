//! `skc_config`: a node's settings, built before the node starts (after rustls-ffi's config
//! builders): `skc_config_new`, setters that check each value as it is given, then
//! `skc_node_new_with`, which copies the settings into a new node.

use super::error::{guard, skc_status, Error, Res};
use super::handle::{self, cstr, insert, lookup, out, remove, Obj};
use super::node::{self, skc_node};
use crate::engine::{Config, Exposure, Heartbeat, IpNet, TlsConfig, TlsMode};
use parking_lot::Mutex;
use std::os::raw::c_char;
use std::path::PathBuf;
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
/// timeout, no heartbeat; connections from anywhere, no bound per source, every address
/// reachable, TLS off (all as stock). On failure `*out` is set to NULL.
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

/// Admission: accept connections only from these blocks, a comma-separated list of CIDR blocks
/// or single addresses, IPv4 or IPv6 (e.g. `"10.0.0.0/8,192.168.1.7,fd00::/8"`; spaces around
/// the commas are ignored). A connection from elsewhere is closed before a byte of it is read
/// (counted in `skc_health.refused_not_allowed`, logged once per source per 10 s). NULL or
/// `""` (the default): from anywhere, as stock. A block that does not parse, or an empty one
/// between commas: `SKC_ERR_INVALID`, the text names it, and the setting is left as it was.
///
/// Ownership: `cidrs` is borrowed for the call (parsed into the config). Thread-safety:
/// thread-safe.
#[no_mangle]
pub extern "C" fn skc_config_set_allow(cfg: *mut skc_config, cidrs: *const c_char) -> skc_status {
    with(cfg, |c| {
        let list = if cidrs.is_null() { "" } else { cstr(cidrs, "cidrs")? };
        c.allow = parse_allow(list)?;
        Ok(())
    })
}

/// `"a/n, b, ..."` -> the blocks (a bare address is a block of one); `""` -> `None` (anywhere).
fn parse_allow(list: &str) -> Res<Option<Vec<IpNet>>> {
    if list.trim().is_empty() {
        return Ok(None);
    }
    let block = |b: &str| -> Res<IpNet> {
        let b = b.trim();
        if b.is_empty() {
            return Err(Error::invalid(format!("allow: empty block in {list:?}")));
        }
        b.parse::<IpNet>().or_else(|_| b.parse::<std::net::IpAddr>().map(IpNet::from)).map_err(|_| {
            Error::invalid(format!("allow: `{b}` is not a CIDR block (e.g. 10.0.0.0/8 or fd00::/8) or an IP address"))
        })
    };
    Ok(Some(list.split(',').map(block).collect::<Res<_>>()?))
}

/// Admission: at most `n` links open at once from one source address, over all listeners; a
/// connection beyond it is closed before a byte of it is read (counted in
/// `skc_health.refused_per_source`). 0 (the default): no bound of its own (`max_links` and a
/// listener's `max_clients` still apply).
///
/// Ownership: nothing is allocated. Thread-safety: thread-safe.
#[no_mangle]
pub extern "C" fn skc_config_set_max_links_per_source(cfg: *mut skc_config, n: usize) -> skc_status {
    with(cfg, |c| {
        c.max_links_per_source = (n > 0).then_some(n);
        Ok(())
    })
}

/// Exposure: what remote callers may reach on this node.
///
/// - NULL (the default): everything, as stock: numeric handles, `.name`, `:hex`, `@name`.
/// - `"registered"` (or `"*"`): only the names registered with `skc_register` (`@name`).
/// - `"a,b"`: only these registered names (`@a`, `@b`; a leading `@` is optional, spaces
///   around the commas are ignored).
///
/// A refused request is answered `Invalid name`, what a stock node answers for an unknown
/// name, and a name query for a hidden name `name not found`; each refusal is counted in
/// `skc_health.refused_exposure`. `""`, an empty name between commas or a name longer than
/// 255 bytes: `SKC_ERR_INVALID`, and the setting is left as it was.
///
/// Ownership: `names` is borrowed for the call (copied into the config). Thread-safety:
/// thread-safe.
#[no_mangle]
pub extern "C" fn skc_config_set_exposure(cfg: *mut skc_config, names: *const c_char) -> skc_status {
    with(cfg, |c| {
        c.exposure = if names.is_null() { Exposure::All } else { parse_exposure(cstr(names, "names")?)? };
        Ok(())
    })
}

/// `"registered"` / `"*"` -> `Registered`, `"a,@b"` -> `Names(["a", "b"])`.
fn parse_exposure(s: &str) -> Res<Exposure> {
    match s.trim() {
        "registered" | "*" => return Ok(Exposure::Registered),
        "" => {
            return Err(Error::invalid("exposure: no names (NULL: everything, \"registered\": every registered name)"))
        }
        _ => {}
    }
    let name = |n: &str| -> Res<String> {
        let n = n.trim();
        let n = n.strip_prefix('@').unwrap_or(n);
        if n.is_empty() || n.len() > 255 {
            return Err(Error::invalid(format!("exposure: name {n:?} in {s:?} must be 1 to 255 bytes long")));
        }
        Ok(n.to_string())
    };
    Ok(Exposure::Names(s.split(',').map(name).collect::<Res<_>>()?))
}

/// TLS between native nodes. `mode`: `"off"` (the default: stock behaviour), `"prefer"` (TLS
/// with native peers, plain text with stock ones) or `"require"` (TLS only: a stock sender's
/// connection is closed, a call to a node that does not speak TLS fails with
/// `SKC_ERR_LINK_DOWN` saying why). `ca`: PEM file of the cluster CA certificate(s); `cert`:
/// this node's certificate chain (its DNS name is the node name peers know it by); `key`: its
/// private key. With `"off"` the paths may be NULL (they are ignored); otherwise each must be
/// given (`SKC_ERR_NULL`) and not empty (`SKC_ERR_INVALID`). A mode other than these three:
/// `SKC_ERR_INVALID`.
///
/// The files are not read here but when a node starts (`skc_node_new_with` fails with
/// `SKC_ERR_INVALID` and a text naming the file and what is wrong with it) and again on
/// `skc_node_reload_tls`. Handshakes that fail are counted in `skc_health.tls_failures`.
///
/// Ownership: the strings are borrowed for the call (copied into the config). Thread-safety:
/// thread-safe.
#[no_mangle]
pub extern "C" fn skc_config_set_tls(
    cfg: *mut skc_config,
    mode: *const c_char,
    ca: *const c_char,
    cert: *const c_char,
    key: *const c_char,
) -> skc_status {
    with(cfg, |c| {
        let m = cstr(mode, "mode")?;
        let mode = TlsMode::parse(m)
            .ok_or_else(|| Error::invalid(format!("tls mode {m:?}: must be \"off\", \"prefer\" or \"require\"")))?;
        if mode == TlsMode::Off {
            c.tls = TlsConfig::default();
            return Ok(());
        }
        let file = |p: *const c_char, what: &str| -> Res<PathBuf> {
            let f = cstr(p, what)?;
            if f.is_empty() {
                return Err(Error::invalid(format!("tls {}: {what} is empty (a PEM file is needed)", mode.as_str())));
            }
            Ok(PathBuf::from(f))
        };
        c.tls = TlsConfig { mode, ca: file(ca, "ca")?, cert: file(cert, "cert")?, key: file(key, "key")? };
        Ok(())
    })
}

/// Creates a node with the settings of `cfg` and starts its I/O thread (otherwise as
/// `skc_node_new`). On success `*out` is the new node; on failure it is set to NULL. With TLS
/// on (`skc_config_set_tls`), the certificate files are read now: a file that is missing or
/// unusable gives `SKC_ERR_INVALID`, its text naming the file and what is wrong with it.
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

    fn last() -> String {
        // SAFETY: the library's own NUL-terminated thread-local text.
        unsafe { std::ffi::CStr::from_ptr(super::super::error::skc_last_error()) }.to_string_lossy().into_owned()
    }

    #[test]
    fn admission_exposure_and_tls_setters() {
        let mut c = std::ptr::null_mut();
        assert_eq!(skc_config_new(&mut c), skc_status::SKC_OK);
        let cfg = || get(c).unwrap().lock().clone();
        assert_eq!(skc_config_set_allow(c, c" 10.0.0.0/8 , 127.0.0.1,::1/128".as_ptr()), skc_status::SKC_OK);
        let want: Vec<IpNet> = ["10.0.0.0/8", "127.0.0.1/32", "::1/128"].iter().map(|b| b.parse().unwrap()).collect();
        assert_eq!(cfg().allow, Some(want.clone()));
        for bad in [c"10.0.0.0/33", c"10.0.0.0/8,,127.0.0.1", c"localhost", c"10.0.0.0/8,"] {
            assert_eq!(skc_config_set_allow(c, bad.as_ptr()), skc_status::SKC_ERR_INVALID, "{bad:?}");
            assert!(last().starts_with("allow: "), "{}", last());
        }
        assert!(last().contains("empty block"), "{}", last());
        assert_eq!(cfg().allow, Some(want), "a refused list leaves the one before it");
        assert_eq!(skc_config_set_allow(c, c"".as_ptr()), skc_status::SKC_OK);
        assert_eq!(cfg().allow, None);
        assert_eq!(skc_config_set_allow(c, c"127.0.0.0/8".as_ptr()), skc_status::SKC_OK);
        assert_eq!(skc_config_set_allow(c, std::ptr::null()), skc_status::SKC_OK);
        assert_eq!(cfg().allow, None);

        assert_eq!(skc_config_set_max_links_per_source(c, 3), skc_status::SKC_OK);
        assert_eq!(cfg().max_links_per_source, Some(3));
        assert_eq!(skc_config_set_max_links_per_source(c, 0), skc_status::SKC_OK);
        assert_eq!(cfg().max_links_per_source, None);

        assert_eq!(skc_config_set_exposure(c, c"registered".as_ptr()), skc_status::SKC_OK);
        assert_eq!(cfg().exposure, Exposure::Registered);
        assert_eq!(skc_config_set_exposure(c, c"*".as_ptr()), skc_status::SKC_OK);
        assert_eq!(cfg().exposure, Exposure::Registered);
        assert_eq!(skc_config_set_exposure(c, c"echo, @db".as_ptr()), skc_status::SKC_OK);
        assert_eq!(cfg().exposure, Exposure::Names(vec!["echo".into(), "db".into()]));
        assert_eq!(skc_config_set_exposure(c, c"".as_ptr()), skc_status::SKC_ERR_INVALID);
        assert_eq!(skc_config_set_exposure(c, c"a,,b".as_ptr()), skc_status::SKC_ERR_INVALID);
        assert!(last().contains("must be 1 to 255 bytes"), "{}", last());
        let long = std::ffi::CString::new("x".repeat(256)).unwrap();
        assert_eq!(skc_config_set_exposure(c, long.as_ptr()), skc_status::SKC_ERR_INVALID);
        assert_eq!(cfg().exposure, Exposure::Names(vec!["echo".into(), "db".into()]));
        assert_eq!(skc_config_set_exposure(c, std::ptr::null()), skc_status::SKC_OK);
        assert_eq!(cfg().exposure, Exposure::All);

        let (ca, cert, key) = (c"ca.pem".as_ptr(), c"n.pem".as_ptr(), c"n.key".as_ptr());
        assert_eq!(skc_config_set_tls(c, c"require".as_ptr(), ca, cert, key), skc_status::SKC_OK);
        let t = cfg().tls;
        assert_eq!((t.mode, t.ca, t.cert, t.key), (TlsMode::Require, "ca.pem".into(), "n.pem".into(), "n.key".into()));
        assert_eq!(skc_config_set_tls(c, c"on".as_ptr(), ca, cert, key), skc_status::SKC_ERR_INVALID);
        assert!(last().contains("\"off\", \"prefer\" or \"require\""), "{}", last());
        assert_eq!(skc_config_set_tls(c, std::ptr::null(), ca, cert, key), skc_status::SKC_ERR_NULL);
        assert_eq!(skc_config_set_tls(c, c"prefer".as_ptr(), ca, std::ptr::null(), key), skc_status::SKC_ERR_NULL);
        assert!(last().contains("cert"), "{}", last());
        assert_eq!(skc_config_set_tls(c, c"prefer".as_ptr(), ca, cert, c"".as_ptr()), skc_status::SKC_ERR_INVALID);
        assert_eq!(cfg().tls.mode, TlsMode::Require, "a refused setting leaves the one before it");
        let null = std::ptr::null();
        assert_eq!(skc_config_set_tls(c, c"off".as_ptr(), null, null, null), skc_status::SKC_OK);
        assert_eq!(cfg().tls, TlsConfig::default());
        assert_eq!(skc_config_free(c), skc_status::SKC_OK);
    }
}
